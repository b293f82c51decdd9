// SPDX-License-Identifier: MIT
//
// reply: dtx_reply's public functions (dtx.h) and the helpers of reply.h.

#include "reply.h"

#include <stdlib.h>
#include <string.h>

#include "strs.h"

int
dtx_reply_alloc_payload(dtx_reply *r, size_t len, void **bufp)
{
	void *buf = NULL;

	if (r == NULL || bufp == NULL) {
		return DTX_EINVAL;
	}
	if (len > r->max_payload) {
		return DTX_ETOOBIG;
	}
	if (len > 0 && (buf = malloc(len)) == NULL) {
		return DTX_ENOMEM;
	}
	free(r->payload);
	r->payload = buf;
	r->len     = len;
	*bufp      = buf;
	return 0;
}

int
dtx_reply_set_payload(dtx_reply *r, const void *data, size_t len)
{
	void *copy = NULL;

	if (r == NULL || (data == NULL && len > 0)) {
		return DTX_EINVAL;
	}
	if (len > r->max_payload) {
		return DTX_ETOOBIG;
	}
	if (len > 0) {
		if ((copy = malloc(len)) == NULL) {
			return DTX_ENOMEM;
		}
		memcpy(copy, data, len);
	}
	free(r->payload);
	r->payload = copy;
	r->len     = len;
	return 0;
}

void
dtx_reply_set_message(dtx_reply *r, const char *msg)
{
	if (r == NULL) {
		return;
	}
	dtxi_strlcpy(r->message, msg != NULL ? msg : "", sizeof(r->message));
}

rocksdb_writebatch_t *
dtx_reply_writebatch(dtx_reply *r)
{
	return r != NULL ? r->wb : NULL;
}

void
dtxi_reply_reset(dtx_reply *r)
{
	free(r->payload);
	r->payload    = NULL;
	r->len        = 0;
	r->message[0] = '\0';
	r->durable    = 0;
}

void *
dtxi_reply_take_payload(dtx_reply *r, size_t *len)
{
	void *p = r->payload;

	*len       = r->len;
	r->payload = NULL;
	r->len     = 0;
	return p;
}

void
dtxi_reply_answer(dtxi_branch_reply *out, int status, const char *msg,
    const void *data, size_t len)
{
	out->status      = status;
	out->payload.ptr = data;
	out->payload.len = len;
	dtxi_strlcpy(out->message, msg, sizeof(out->message));
}
