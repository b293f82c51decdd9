// SPDX-License-Identifier: MIT
//
// record: a transaction <-> its stored record (see record.h).

#include "record.h"

#include <stdlib.h>
#include <string.h>

#include "strs.h"

int
dtxd_recbuf_init(dtxd_recbuf *b)
{
	b->rec = calloc(1, sizeof(*b->rec));
	b->cap = 4096;
	b->buf = malloc(b->cap);
	if (b->rec == NULL || b->buf == NULL) {
		dtxd_recbuf_fini(b);
		return DTX_ENOMEM;
	}
	return 0;
}

void
dtxd_recbuf_fini(dtxd_recbuf *b)
{
	free(b->rec);
	free(b->buf);
	b->rec = NULL;
	b->buf = NULL;
}

void
dtxd_txrec_info(const txn *tx, dtxi_txinfo *info)
{
	dtxi_strlcpy(info->gid, tx->gid, sizeof(info->gid));
	dtxi_strlcpy(
	    info->traceparent, tx->traceparent, sizeof(info->traceparent));
	info->mode       = tx->core.mode;
	info->state      = tx->core.state;
	info->stuck      = tx->core.stuck;
	info->created_ms = tx->created_ms;
	info->updated_ms = tx->updated_ms;
	info->nbranches  = tx->core.nbranches;
	for (uint32_t i = 0; i < tx->core.nbranches; i++) {
		dtxi_branch_result *b  = &info->branches[i];
		const dtxd_branch  *br = &tx->core.br[i];
		const txn_branch   *mb = &tx->mb[i];
		b->branch_id           = i;
		b->status              = mb->last_status;
		b->phase               = br->phase;
		b->attempts            = br->attempts;
		dtxi_strlcpy(b->message,
		    mb->message != NULL ? mb->message : "",
		    sizeof(b->message));
		b->payload.ptr = mb->last_is_fwd ? mb->fpayload : mb->rpayload;
		b->payload.len =
		    mb->last_is_fwd ? mb->fpayload_len : mb->rpayload_len;
		b->forward_status      = mb->fwd_status;
		b->forward_payload.ptr = mb->fpayload;
		b->forward_payload.len = mb->fpayload_len;
		b->settled_ms          = mb->settled_ms;
		b->error               = mb->error;
	}
}

void
dtxd_txrec_fill(const txn *tx, dtxd_record *rec)
{
	dtxd_txrec_info(tx, &rec->info);
	for (uint32_t i = 0; i < tx->core.nbranches; i++) {
		rec->done[i] = tx->core.br[i].done;
	}
	rec->timeout_ms      = tx->timeout_ms;
	rec->call_timeout_ms = tx->core.call_timeout_ms;
	rec->retries         = tx->core.retries;
	rec->deadline_ms     = tx->core.deadline_ms;
	rec->content_hash    = tx->content_hash;
	rec->cursor          = tx->core.cursor;
	rec->wait            = tx->wait;
}

// A malloc'd copy of n bytes with a NUL after them, or NULL without memory.
static char *
dup_bytes(const void *p, size_t n)
{
	char *d = malloc(n + 1);
	if (d != NULL) {
		if (n > 0) {
			memcpy(d, p, n);
		}
		d[n] = '\0';
	}
	return d;
}

int
dtxd_txrec_branch(txn *tx, uint32_t i, const dtxi_branch_spec *spec)
{
	txn_branch *mb = &tx->mb[i];

	mb->endpoint = dup_bytes(spec->endpoint, strlen(spec->endpoint));
	mb->method   = dup_bytes(spec->method, strlen(spec->method));
	mb->payload =
	    (uint8_t *)dup_bytes(spec->payload.ptr, spec->payload.len);
	mb->payload_len           = spec->payload.len;
	tx->core.br[i].same_group = spec->same_group;
	if (mb->endpoint == NULL || mb->method == NULL ||
	    mb->payload == NULL) {
		return DTX_ENOMEM;
	}
	return 0;
}

int
dtxd_txrec_load(txn *tx, const dtxd_record *rec, const uint8_t *const *specs,
    const size_t *spec_lens, uint32_t call_timeout_ms)
{
	const dtxi_txinfo *info = &rec->info;
	int                rv;

	dtxi_strlcpy(tx->gid, info->gid, sizeof(tx->gid));
	dtxi_strlcpy(
	    tx->traceparent, info->traceparent, sizeof(tx->traceparent));
	for (uint32_t i = 0; i < info->nbranches; i++) {
		const dtxi_branch_result *b  = &info->branches[i];
		txn_branch               *mb = &tx->mb[i];
		dtxi_branch_spec          spec;

		if (dtxd_spec_decode(&spec, specs[i], spec_lens[i]) != 0) {
			return DTX_EPROTO;
		}
		if ((rv = dtxd_txrec_branch(tx, i, &spec)) != 0) {
			return rv;
		}
		mb->last_status = b->status;
		mb->last_phase  = b->phase;
		mb->settled_ms  = b->settled_ms;
		mb->error       = b->error;
		if (b->message[0] != '\0' &&
		    (mb->message = dup_bytes(
		         b->message, strlen(b->message))) == NULL) {
			return DTX_ENOMEM;
		}
		if (b->payload.len > 0) {
			mb->rpayload = (uint8_t *)dup_bytes(
			    b->payload.ptr, b->payload.len);
			mb->rpayload_len = mb->rpayload ? b->payload.len : 0;
		}
		mb->fwd_status = b->forward_status;
		if (b->forward_payload.len > 0) {
			mb->fpayload = (uint8_t *)dup_bytes(
			    b->forward_payload.ptr, b->forward_payload.len);
			mb->fpayload_len =
			    mb->fpayload ? b->forward_payload.len : 0;
		}
		tx->core.br[i].done     = rec->done[i];
		tx->core.br[i].phase    = b->phase;
		tx->core.br[i].attempts = b->attempts;
	}
	tx->content_hash     = rec->content_hash;
	tx->wait             = rec->wait;
	tx->created_ms       = info->created_ms;
	tx->updated_ms       = info->updated_ms;
	tx->timeout_ms       = rec->timeout_ms;
	tx->created          = true;
	tx->core.mode        = info->mode;
	tx->core.state       = info->state;
	tx->core.stuck       = info->stuck;
	tx->core.cursor      = rec->cursor;
	tx->core.deadline_ms = rec->deadline_ms;
	tx->core.call_timeout_ms =
	    rec->call_timeout_ms ? rec->call_timeout_ms : call_timeout_ms;
	tx->core.retries = rec->retries;
	return 0;
}

static int
encode_one(const txn *tx, int spec, dtxd_record *rec, uint8_t *buf, size_t cap,
    size_t *len)
{
	dtxi_branch_spec s;

	if (spec < 0) {
		dtxd_txrec_fill(tx, rec);
		return dtxd_record_encode(rec, buf, cap, len);
	}
	dtxi_strlcpy(s.endpoint, tx->mb[spec].endpoint, sizeof(s.endpoint));
	dtxi_strlcpy(s.method, tx->mb[spec].method, sizeof(s.method));
	s.payload.ptr = tx->mb[spec].payload;
	s.payload.len = tx->mb[spec].payload_len;
	s.same_group  = tx->core.br[spec].same_group;
	return dtxd_spec_encode(&s, buf, cap, len);
}

// The encoding goes to the scratch buffer first, so nanopb runs once, not
// once to size and once to write (that second pass was 4% of dtxd's
// time); the scratch grows when something does not fit.
int
dtxd_txrec_encode(
    dtxd_recbuf *b, const txn *tx, int spec, uint8_t **outp, size_t *lenp)
{
	size_t   len = 0;
	uint8_t *out;
	int      rv = encode_one(tx, spec, b->rec, b->buf, b->cap, &len);

	if (rv == DTX_ETOOBIG) {
		uint8_t *nb;
		if ((rv = encode_one(tx, spec, b->rec, NULL, 0, &len)) != 0) {
			return rv;
		}
		if ((nb = realloc(b->buf, len)) == NULL) {
			return DTX_ENOMEM;
		}
		b->buf = nb;
		b->cap = len;
		rv     = encode_one(tx, spec, b->rec, b->buf, b->cap, &len);
	}
	if (rv != 0) {
		return rv;
	}
	if ((out = malloc(len > 0 ? len : 1)) == NULL) {
		return DTX_ENOMEM;
	}
	memcpy(out, b->buf, len);
	*outp = out;
	*lenp = len;
	return 0;
}
