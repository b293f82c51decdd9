// SPDX-License-Identifier: MIT
//
// admin: the client's requests that are not about one transaction being
// built: abort, retry and settle (an operator's), resolve (a participant's
// in-doubt question), list and the coordinator's counters. Each is one
// synchronous request on the client's exchange engine (client.h); the reply is
// copied out in its done, while the caller waits.

#include <dtx/dtx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "codec.h"
#include "names.h"
#include "strs.h"

// A Resolve or Abort: the state the coordinator answered.
typedef struct gidreply {
	dtxi_req_kind kind;
	dtx_state     state;
} gidreply;

static int
gid_done(void *arg, int rv, const dtxi_reply *rep, const char *why)
{
	gidreply *g = arg;

	(void)why;
	if (rv != 0) {
		return rv;
	}
	if (g->kind != DTXI_REQ_RESOLVE && rep->kind == DTXI_REP_TX) {
		g->state = (dtx_state)rep->u.tx.state;
	} else if (g->kind == DTXI_REQ_RESOLVE &&
	    rep->kind == DTXI_REP_RESOLVE) {
		g->state = (dtx_state)rep->u.resolve.state;
	} else {
		return DTX_EPROTO;
	}
	return 0;
}

// Checks an operator request's gid; false (c's message says why) if bad.
static bool
gid_checked(dtx_client *c, const char *gid)
{
	char why[DTX_MESSAGE_MAX + 1];

	if (dtxi_gid_ok(gid)) {
		return true;
	}
	snprintf(why, sizeof(why),
	    "a gid is 1..%d printable ASCII characters, without spaces",
	    DTX_GID_MAX);
	dtxi_client_set_message(c, why);
	return false;
}

// A request about one gid; settle's branch and note ride along.
static int
client_gid_request(dtx_client *c, dtxi_req_kind kind, const char *gid,
    unsigned branch, const char *note, dtx_state *state)
{
	gidreply      g = {.kind = kind};
	dtxi_request *r;
	int           rv;

	if (c == NULL || state == NULL || !gid_checked(c, gid)) {
		return DTX_EINVAL;
	}
	if ((r = dtxi_client_request(kind)) == NULL) {
		return DTX_ENOMEM;
	}
	switch (kind) {
	case DTXI_REQ_ABORT:
		dtxi_strlcpy(r->u.abort.gid, gid, sizeof(r->u.abort.gid));
		break;
	case DTXI_REQ_RETRY:
		dtxi_strlcpy(r->u.retry.gid, gid, sizeof(r->u.retry.gid));
		break;
	case DTXI_REQ_SETTLE:
		dtxi_strlcpy(r->u.settle.gid, gid, sizeof(r->u.settle.gid));
		r->u.settle.branch = branch;
		dtxi_strlcpy(r->u.settle.note, note, sizeof(r->u.settle.note));
		break;
	default:
		dtxi_strlcpy(r->u.resolve.gid, gid, sizeof(r->u.resolve.gid));
		break;
	}
	rv = dtxi_client_call(
	    c, r, dtxi_client_timeout_ms(c), gid_done, &g, NULL);
	free(r);
	if (rv == 0) {
		*state = g.state;
	}
	return rv;
}

int
dtx_client_abort(dtx_client *c, const char *gid, dtx_state *state)
{
	return client_gid_request(c, DTXI_REQ_ABORT, gid, 0, NULL, state);
}

int
dtx_client_retry(dtx_client *c, const char *gid, dtx_state *state)
{
	return client_gid_request(c, DTXI_REQ_RETRY, gid, 0, NULL, state);
}

int
dtx_client_settle(dtx_client *c, const char *gid, unsigned branch,
    const char *note, dtx_state *state)
{
	char why[DTX_MESSAGE_MAX + 1];

	if (c == NULL) {
		return DTX_EINVAL;
	}
	if (note == NULL || note[0] == '\0' ||
	    strnlen(note, DTXI_NOTE_MAX + 1) > DTXI_NOTE_MAX) {
		snprintf(why, sizeof(why),
		    "a settlement needs a note of 1..%d bytes saying what was "
		    "done by hand",
		    DTXI_NOTE_MAX);
		dtxi_client_set_message(c, why);
		return DTX_EINVAL;
	}
	// The settlement is written synced before dtxd answers.
	return client_gid_request(
	    c, DTXI_REQ_SETTLE, gid, branch, note, state);
}

int
dtx_client_resolve(dtx_client *c, const char *gid, dtx_state *state)
{
	return client_gid_request(c, DTXI_REQ_RESOLVE, gid, 0, NULL, state);
}

// A List page, copied into the caller's arrays.
typedef struct listreply {
	dtx_tx_info *out;
	unsigned     max;
	unsigned     n;
	char        *next;
} listreply;

static int
list_done(void *arg, int rv, const dtxi_reply *rep, const char *why)
{
	listreply *l = arg;

	(void)why;
	if (rv != 0) {
		return rv;
	}
	if (rep->kind != DTXI_REP_LIST || rep->u.list.n > l->max) {
		return DTX_EPROTO;
	}
	for (unsigned i = 0; i < rep->u.list.n; i++) {
		const dtxi_txsummary *s = &rep->u.list.items[i];
		dtx_tx_info          *o = &l->out[i];

		dtxi_strlcpy(o->gid, s->gid, sizeof(o->gid));
		o->mode         = (dtx_mode)s->mode;
		o->state        = (dtx_state)s->state;
		o->stuck        = s->stuck;
		o->created_ms   = s->created_ms;
		o->updated_ms   = s->updated_ms;
		o->branch_count = s->nbranches;
	}
	l->n = rep->u.list.n;
	dtxi_strlcpy(l->next, rep->u.list.next_cursor, DTX_GID_MAX + 1);
	return 0;
}

int
dtx_client_list(dtx_client *c, int filter, const char *cursor,
    dtx_tx_info *out, unsigned max, unsigned *n, char *next)
{
	char          page_next[DTX_GID_MAX + 1];
	listreply     l = {.out = out, .max = max, .next = page_next};
	dtxi_request *r;
	int           rv;

	bool stuck = (filter & DTX_LIST_STUCK) != 0;

	filter &= ~DTX_LIST_STUCK;
	if (c == NULL || out == NULL || max == 0 || max > DTXI_LIST_MAX ||
	    n == NULL || next == NULL || filter < 0 ||
	    filter > DTX_STATE_COMPENSATED) {
		return DTX_EINVAL;
	}
	if (cursor == NULL) {
		cursor = "";
	}
	if (strnlen(cursor, DTX_GID_MAX + 1) > DTX_GID_MAX) {
		return DTX_EINVAL;
	}
	if ((r = dtxi_client_request(DTXI_REQ_LIST)) == NULL) {
		return DTX_ENOMEM;
	}
	r->u.list.state = filter;
	r->u.list.limit = max;
	r->u.list.stuck = stuck;
	dtxi_strlcpy(r->u.list.cursor, cursor, sizeof(r->u.list.cursor));
	rv = dtxi_client_call(
	    c, r, dtxi_client_timeout_ms(c), list_done, &l, NULL);
	free(r);
	if (rv == 0) {
		*n = l.n;
		memcpy(next, page_next, sizeof(page_next));
	}
	return rv;
}

static int
stats_done(void *arg, int rv, const dtxi_reply *rep, const char *why)
{
	(void)why;
	if (rv != 0) {
		return rv;
	}
	if (rep->kind != DTXI_REP_STATS) {
		return DTX_EPROTO;
	}
	*(dtx_coordinator_stats *)arg = rep->u.stats;
	return 0;
}

int
dtx_client_stats(dtx_client *c, dtx_coordinator_stats *out)
{
	dtx_coordinator_stats s;
	dtxi_request         *r;
	int                   rv;

	if (c == NULL || out == NULL) {
		return DTX_EINVAL;
	}
	if ((r = dtxi_client_request(DTXI_REQ_STATS)) == NULL) {
		return DTX_ENOMEM;
	}
	rv = dtxi_client_call(
	    c, r, dtxi_client_timeout_ms(c), stats_done, &s, NULL);
	free(r);
	if (rv == 0) {
		*out = s;
	}
	return rv;
}
