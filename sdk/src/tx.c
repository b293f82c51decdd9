// SPDX-License-Identifier: MIT
//
// tx: dtx_tx, a transaction as its initiator builds and follows it. A
// dtx_tx collects branches locally and sends them in one Submit; commit,
// submit and status are requests on the client's exchange engine
// (client.h), synchronous or, for dtx_tx_commit_async, not. The
// coordinator's replies (branch results with both their payloads) are
// copied into the tx, so that what dtx_tx_branch_result hands out lives as
// long as the header says, and a reply arriving on an nng thread never
// points into a frame that is gone.
//
// Fail fast. dtx_tx_commit asks dtxd for the decided reply (dtx.proto's
// SubmitRequest.decided): the outcome as soon as it is reached, or, when a
// participant holds up its delivery, the decided state with each branch's
// reason, by the transaction's deadline plus one call timeout. The client
// waits that long plus its own request timeout, the coordinator's margin
// for its own work, and no more.

#include <dtx/dtx.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "clock.h"
#include "codec.h"
#include "gid.h"
#include "names.h"
#include "strs.h"
#include "trace.h"

// dtxd's defaults (dtxd --timeout-ms, --call-timeout-ms) for a transaction
// that leaves its own at 0.
#define DEFAULT_TX_TIMEOUT   30000
#define DEFAULT_CALL_TIMEOUT 5000
// Time allowed for phase two on top of the transaction's own timeout, when
// the client waits for every acknowledgement (dtx_tx_set_wait_all).
#define PHASE_TWO_MS 60000
// Longest single long-poll of dtx_tx_wait (dtxd holds the request that long).
#define WAIT_POLL_MS 5000

typedef struct txbranch {
	char   endpoint[DTX_ENDPOINT_MAX + 1];
	char   method[DTX_METHOD_MAX + 1];
	void  *payload;
	size_t len;
	bool   same_group; // saga: in the group of the branch before it
} txbranch;

typedef struct txresult {
	dtx_branch_status status;
	dtx_phase         phase;
	uint32_t          attempts;
	char             *message; // heap copy, never NULL once set
	void             *payload; // heap copy or NULL
	size_t            len;
	dtx_branch_status fstatus;  // the forward phase's reply
	void             *fpayload; // heap copy or NULL
	size_t            flen;
	int               error;      // DTX_E* of a call without answer
	int64_t           settled_ms; // settled by an operator then
} txresult;

struct dtx_tx {
	dtx_client *c;
	dtx_mode    mode; // 0 for an attached handle
	char        gid[DTX_GID_MAX + 1];
	uint32_t    timeout_ms;
	uint32_t    call_timeout_ms;
	uint32_t    retries;
	bool        sent;     // commit or submit was attempted (or attached)
	bool        wait_all; // commit waits for every acknowledgement
	char        traceparent[DTXI_TRACEPARENT_MAX + 1];
	txbranch   *branches;
	unsigned    nbranches;
	bool        group_open;  // between saga_group_begin and _end
	unsigned    group_first; // the first branch added in that group
	txresult   *results;
	unsigned    nresults;
	bool        stuck;
	bool        reported; // info below is the coordinator's
	dtx_tx_info info;
	char        message[DTX_MESSAGE_MAX + 1];
	// The asynchronous commit in flight: tx is not to be touched until
	// it ends, so its callback can live here.
	dtx_commit_fn async_cb;
	void         *async_arg;
};

static void
results_clear(dtx_tx *tx)
{
	for (unsigned i = 0; i < tx->nresults; i++) {
		free(tx->results[i].message);
		free(tx->results[i].payload);
		free(tx->results[i].fpayload);
	}
	free(tx->results);
	tx->results  = NULL;
	tx->nresults = 0;
}

// Replaces the tx's branch results with copies of those in info. On failure
// the old results are kept.
static int
results_copy(dtx_tx *tx, const dtxi_txinfo *info)
{
	txresult *rs = NULL;
	unsigned  n  = 0;
	int       rv = DTX_ENOMEM;

	if (info->nbranches > 0) {
		if ((rs = calloc(info->nbranches, sizeof(*rs))) == NULL) {
			goto fail;
		}
	}
	for (; n < info->nbranches; n++) {
		const dtxi_branch_result *b  = &info->branches[n];
		txresult                 *r  = &rs[n];
		size_t                    ml = strlen(b->message) + 1;

		if ((r->message = malloc(ml)) == NULL) {
			goto fail;
		}
		memcpy(r->message, b->message, ml);
		if (b->payload.len > 0) {
			if ((r->payload = malloc(b->payload.len)) == NULL) {
				free(r->message);
				goto fail;
			}
			memcpy(r->payload, b->payload.ptr, b->payload.len);
		}
		if (b->forward_payload.len > 0) {
			r->fpayload = malloc(b->forward_payload.len);
			if (r->fpayload == NULL) {
				free(r->message);
				free(r->payload);
				goto fail;
			}
			memcpy(r->fpayload, b->forward_payload.ptr,
			    b->forward_payload.len);
		}
		r->flen       = b->forward_payload.len;
		r->fstatus    = (dtx_branch_status)b->forward_status;
		r->error      = b->error;
		r->settled_ms = b->settled_ms;
		r->len        = b->payload.len;
		r->status     = (dtx_branch_status)b->status;
		r->phase      = (dtx_phase)b->phase;
		r->attempts   = b->attempts;
	}
	results_clear(tx);
	tx->results  = rs;
	tx->nresults = n;
	tx->stuck    = info->stuck;
	tx->reported = true;
	dtxi_strlcpy(tx->info.gid, info->gid, sizeof(tx->info.gid));
	tx->info.mode         = (dtx_mode)info->mode;
	tx->info.state        = (dtx_state)info->state;
	tx->info.stuck        = info->stuck;
	tx->info.created_ms   = info->created_ms;
	tx->info.updated_ms   = info->updated_ms;
	tx->info.branch_count = info->nbranches;
	if (info->traceparent[0] != '\0') {
		dtxi_strlcpy(tx->traceparent, info->traceparent,
		    sizeof(tx->traceparent));
	}
	return 0;

fail:
	for (unsigned i = 0; i < n; i++) {
		free(rs[i].message);
		free(rs[i].payload);
		free(rs[i].fpayload);
	}
	free(rs);
	return rv;
}

static int
tx_alloc(dtx_tx **txp, dtx_client *c)
{
	dtx_tx *tx;

	if (txp == NULL || c == NULL) {
		return DTX_EINVAL;
	}
	if ((tx = calloc(1, sizeof(*tx))) == NULL) {
		return DTX_ENOMEM;
	}
	tx->c = c;
	*txp  = tx;
	return 0;
}

int
dtx_tx_begin(dtx_tx **txp, dtx_client *c, dtx_mode mode)
{
	dtx_tx *tx;
	int     rv;

	if (mode != DTX_2PC && mode != DTX_SAGA) {
		return DTX_EINVAL;
	}
	if ((rv = tx_alloc(&tx, c)) != 0) {
		return rv;
	}
	tx->mode = mode;
	dtxi_gid_new(tx->gid);
	*txp = tx;
	return 0;
}

int
dtx_tx_attach(dtx_tx **txp, dtx_client *c, const char *gid)
{
	dtx_tx *tx;
	int     rv;

	if (!dtxi_gid_ok(gid)) {
		return DTX_EINVAL;
	}
	if ((rv = tx_alloc(&tx, c)) != 0) {
		return rv;
	}
	dtxi_strlcpy(tx->gid, gid, sizeof(tx->gid));
	tx->sent = true;
	*txp     = tx;
	return 0;
}

int
dtx_tx_set_gid(dtx_tx *tx, const char *gid)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	tx->message[0] = '\0';
	if (!dtxi_gid_ok(gid)) {
		snprintf(tx->message, sizeof(tx->message),
		    "a gid is 1..%d printable ASCII characters, without "
		    "spaces",
		    DTX_GID_MAX);
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	dtxi_strlcpy(tx->gid, gid, sizeof(tx->gid));
	return 0;
}

const char *
dtx_tx_gid(const dtx_tx *tx)
{
	return tx != NULL ? tx->gid : "";
}

// A per-transaction setting: 0 (dtxd's default) or 1..max, before the
// transaction is sent. dtxd refuses the same range at Submit (its limits
// are dtx.h's); refusing here names the setter at once.
static int
tx_set(dtx_tx *tx, const char *setter, uint32_t v, uint32_t max, uint32_t *to)
{
	if (tx->sent) {
		return DTX_ESTATE;
	}
	if (v > max) {
		snprintf(tx->message, sizeof(tx->message),
		    "%s: %lu is out of range (0 for dtxd's default, or "
		    "1..%lu)",
		    setter, (unsigned long)v, (unsigned long)max);
		return DTX_EINVAL;
	}
	*to = v;
	return 0;
}

int
dtx_tx_set_timeout_ms(dtx_tx *tx, uint32_t ms)
{
	return tx == NULL ? DTX_EINVAL
	                  : tx_set(tx, "dtx_tx_set_timeout_ms", ms,
	                        DTX_TIMEOUT_MS_MAX, &tx->timeout_ms);
}

int
dtx_tx_set_call_timeout_ms(dtx_tx *tx, uint32_t ms)
{
	return tx == NULL ? DTX_EINVAL
	                  : tx_set(tx, "dtx_tx_set_call_timeout_ms", ms,
	                        DTX_CALL_TIMEOUT_MS_MAX, &tx->call_timeout_ms);
}

int
dtx_tx_set_retries(dtx_tx *tx, uint32_t n)
{
	return tx == NULL ? DTX_EINVAL
	                  : tx_set(tx, "dtx_tx_set_retries", n,
	                        DTX_RETRIES_MAX, &tx->retries);
}

int
dtx_tx_set_traceparent(dtx_tx *tx, const char *traceparent)
{
	char norm[DTXI_TRACEPARENT_MAX + 1];

	if (tx == NULL) {
		return DTX_EINVAL;
	}
	tx->message[0] = '\0';
	if (tx->sent) {
		return DTX_ESTATE;
	}
	if (!dtxi_traceparent_check(
	        traceparent, norm, tx->message, sizeof(tx->message))) {
		return DTX_EINVAL;
	}
	memcpy(tx->traceparent, norm, sizeof(norm));
	return 0;
}

const char *
dtx_tx_traceparent(const dtx_tx *tx)
{
	return tx != NULL ? tx->traceparent : "";
}

int
dtx_tx_set_wait_all(dtx_tx *tx, bool wait_all)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	tx->wait_all = wait_all;
	return 0;
}

int
dtx_tx_add_method(dtx_tx *tx, const char *endpoint, const dtx_method_desc *m,
    const void *payload, size_t len)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	tx->message[0] = '\0';
	if (m == NULL || !dtxi_method_ok(m->name)) {
		dtxi_strlcpy(tx->message, "no method, or a bad method name",
		    sizeof(tx->message));
		return DTX_EINVAL;
	}
	if (!tx->sent && (m->modes & (unsigned)tx->mode) == 0) {
		snprintf(tx->message, sizeof(tx->message),
		    "method %s does not take part in a %s transaction (its "
		    "modes: %s%s%s)",
		    m->name, dtx_mode_name(tx->mode),
		    (m->modes & DTX_2PC) ? "2pc" : "",
		    (m->modes & DTX_2PC) && (m->modes & DTX_SAGA) ? ", " : "",
		    (m->modes & DTX_SAGA) ? "saga" : "");
		return DTX_EINVAL;
	}
	return dtx_tx_add(tx, endpoint, m->name, payload, len);
}

int
dtx_tx_add(dtx_tx *tx, const char *endpoint, const char *method,
    const void *payload, size_t len)
{
	txbranch *b;
	void     *copy = NULL;

	if (tx == NULL) {
		return DTX_EINVAL;
	}
	if (!dtxi_endpoint_ok(endpoint)) {
		snprintf(tx->message, sizeof(tx->message),
		    "an endpoint is a URL (tcp://host:port, ipc://path) of "
		    "1..%d printable characters without spaces",
		    DTX_ENDPOINT_MAX);
		return DTX_EINVAL;
	}
	if (!dtxi_method_ok(method)) {
		snprintf(tx->message, sizeof(tx->message),
		    "a method name is 1..%d printable ASCII characters, "
		    "without spaces",
		    DTX_METHOD_MAX);
		return DTX_EINVAL;
	}
	if (payload == NULL && len > 0) {
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	if (len > DTX_PAYLOAD_MAX_DEFAULT ||
	    tx->nbranches >= DTX_BRANCHES_MAX) {
		return DTX_ETOOBIG;
	}
	if (len > 0) {
		if ((copy = malloc(len)) == NULL) {
			return DTX_ENOMEM;
		}
		memcpy(copy, payload, len);
	}
	b = realloc(tx->branches, (tx->nbranches + 1) * sizeof(*b));
	if (b == NULL) {
		free(copy);
		return DTX_ENOMEM;
	}
	tx->branches = b;
	b            = &tx->branches[tx->nbranches++];
	dtxi_strlcpy(b->endpoint, endpoint, sizeof(b->endpoint));
	dtxi_strlcpy(b->method, method, sizeof(b->method));
	b->payload    = copy;
	b->len        = len;
	b->same_group = tx->group_open && tx->nbranches - 1 > tx->group_first;
	return 0;
}

int
dtx_tx_saga_group_begin(dtx_tx *tx)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	if (tx->mode != DTX_SAGA) {
		dtxi_strlcpy(tx->message,
		    "dtx_tx_saga_group_begin: groups are for sagas (a 2PC "
		    "runs every branch in parallel)",
		    sizeof(tx->message));
		return DTX_EINVAL;
	}
	if (tx->group_open) {
		dtxi_strlcpy(tx->message,
		    "dtx_tx_saga_group_begin: a group is open already (groups "
		    "do not nest)",
		    sizeof(tx->message));
		return DTX_ESTATE;
	}
	tx->group_open  = true;
	tx->group_first = tx->nbranches;
	return 0;
}

int
dtx_tx_saga_group_end(dtx_tx *tx)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	if (!tx->group_open) {
		dtxi_strlcpy(tx->message,
		    "dtx_tx_saga_group_end: no group is open",
		    sizeof(tx->message));
		return DTX_ESTATE;
	}
	tx->group_open = false;
	return 0;
}

// Whether tx can be sent: 0, or DTX_EINVAL with tx's message saying why
// when the caller forgot something.
static int
tx_complete(dtx_tx *tx)
{
	if (tx->mode == 0 || tx->nbranches == 0) {
		return DTX_EINVAL;
	}
	if (tx->group_open) {
		dtxi_strlcpy(tx->message,
		    "a saga group is still open: end it with "
		    "dtx_tx_saga_group_end",
		    sizeof(tx->message));
		return DTX_EINVAL;
	}
	return 0;
}

// Fills r's Submit from tx (payloads are borrowed from tx) and returns the
// timeout of the whole exchange, following the rule in the header: a
// commit may take the transaction's timeout and one call timeout (dtxd
// answers by then; see the top of the file), or, waiting for every
// acknowledgement, its timeout and phase two; and the client's own
// request timeout on top.
static int64_t
submit_fill(dtx_tx *tx, dtxi_request *r, bool wait)
{
	dtxi_submit *s = &r->u.submit;
	int64_t      tmo;
	int64_t      fwd =
            tx->timeout_ms != 0 ? tx->timeout_ms : DEFAULT_TX_TIMEOUT;
	int64_t call = tx->call_timeout_ms != 0 ? tx->call_timeout_ms
	                                        : DEFAULT_CALL_TIMEOUT;

	memset(s, 0, offsetof(dtxi_submit, branches));
	dtxi_strlcpy(s->gid, tx->gid, sizeof(s->gid));
	s->mode            = tx->mode;
	s->timeout_ms      = tx->timeout_ms;
	s->call_timeout_ms = tx->call_timeout_ms;
	s->retries         = tx->retries;
	s->wait            = wait;
	s->decided         = wait && !tx->wait_all;
	dtxi_strlcpy(s->traceparent, tx->traceparent, sizeof(s->traceparent));
	s->nbranches = tx->nbranches;
	for (unsigned i = 0; i < tx->nbranches; i++) {
		dtxi_branch_spec *b = &s->branches[i];

		memcpy(b->endpoint, tx->branches[i].endpoint,
		    sizeof(b->endpoint));
		memcpy(b->method, tx->branches[i].method, sizeof(b->method));
		b->payload.ptr = tx->branches[i].payload;
		b->payload.len = tx->branches[i].len;
		b->same_group  = tx->branches[i].same_group;
	}
	tmo = dtxi_client_timeout_ms(tx->c);
	if (wait) {
		tmo += fwd + (tx->wait_all ? PHASE_TWO_MS : call);
	}
	return tmo;
}

// A reply that carries a transaction (Submit, Status): copies its branch
// results into tx and its state to *state; with wait, insists on a
// terminal state, or with decided on a decided one. A failed request
// leaves its reason in tx's message.
typedef struct txreply {
	dtx_tx   *tx;
	bool      wait;
	bool      decided;
	dtx_state state;
} txreply;

static bool
state_is_decided(int state)
{
	return state == DTX_STATE_COMMITTING || state == DTX_STATE_ABORTING ||
	    state == DTX_STATE_COMPENSATING;
}

// For a decided reply: says which branch holds up the delivery and why.
static void
held_up_message(dtx_tx *tx, int state)
{
	for (unsigned i = 0; i < tx->nresults; i++) {
		const txresult *r = &tx->results[i];
		if (r->error != 0 ||
		    (r->status != DTX_BRANCH_OK &&
		        r->status != DTX_BRANCH_NONE)) {
			snprintf(tx->message, sizeof(tx->message),
			    "%s; dtxd goes on delivering it: branch %u: "
			    "%.180s",
			    dtx_state_name(state), i, r->message);
			return;
		}
	}
	snprintf(tx->message, sizeof(tx->message),
	    "%s; dtxd goes on delivering it", dtx_state_name(state));
}

static int
txreply_done(void *arg, int rv, const dtxi_reply *rep, const char *why)
{
	txreply *t  = arg;
	dtx_tx  *tx = t->tx;

	if (rv != 0) {
		dtxi_strlcpy(tx->message, why, sizeof(tx->message));
		return rv;
	}
	if (rep->kind != DTXI_REP_TX) {
		dtxi_strlcpy(tx->message,
		    "coordinator sent a reply of the wrong kind",
		    sizeof(tx->message));
		return DTX_EPROTO;
	}
	if ((rv = results_copy(tx, &rep->u.tx)) != 0) {
		return rv;
	}
	t->state = (dtx_state)rep->u.tx.state;
	if (t->decided && state_is_decided(rep->u.tx.state)) {
		held_up_message(tx, rep->u.tx.state);
		return 0;
	}
	if (t->wait && !dtx_state_is_terminal(rep->u.tx.state)) {
		snprintf(tx->message, sizeof(tx->message),
		    "no outcome yet: transaction is %s",
		    dtx_state_name(rep->u.tx.state));
		return DTX_ETIMEDOUT;
	}
	return 0;
}

// Submits the transaction and waits for the reply; with wait, the reply
// carries its outcome.
static int
tx_submit(dtx_tx *tx, bool wait, dtx_state *state)
{
	txreply       t = {.tx = tx, .wait = wait};
	dtxi_request *r;
	int64_t       tmo;
	int           rv;

	if (tx == NULL) {
		return DTX_EINVAL;
	}
	t.decided      = wait && !tx->wait_all;
	tx->message[0] = '\0';
	if ((rv = tx_complete(tx)) != 0) {
		return rv;
	}
	if ((r = dtxi_client_request(DTXI_REQ_SUBMIT)) == NULL) {
		return DTX_ENOMEM;
	}
	tx->sent = true;
	tmo      = submit_fill(tx, r, wait);
	rv = dtxi_client_call(tx->c, r, tmo, txreply_done, &t, tx->message);
	free(r);
	if (rv == 0 && state != NULL) {
		*state = t.state;
	}
	return rv;
}

int
dtx_tx_commit(dtx_tx *tx, dtx_state *outcome)
{
	if (outcome == NULL) {
		return DTX_EINVAL;
	}
	return tx_submit(tx, true, outcome);
}

int
dtx_tx_submit(dtx_tx *tx)
{
	return tx_submit(tx, false, NULL);
}

// The end of an asynchronous commit, on an nng thread: the reply goes into
// tx, then the user's callback runs (and may free tx).
static int
commit_done(void *arg, int rv, const dtxi_reply *rep, const char *why)
{
	dtx_tx       *tx = arg;
	txreply       t  = {.tx = tx, .wait = true, .decided = !tx->wait_all};
	dtx_commit_fn cb = tx->async_cb;

	rv = txreply_done(&t, rv, rep, why);
	cb(tx, rv, rv == 0 ? t.state : 0, tx->async_arg);
	return rv;
}

int
dtx_tx_commit_async(dtx_tx *tx, dtx_commit_fn cb, void *arg)
{
	dtxi_request *r;
	int64_t       tmo;
	bool          was;
	int           rv;

	if (tx == NULL || cb == NULL) {
		return DTX_EINVAL;
	}
	tx->message[0] = '\0';
	if ((rv = tx_complete(tx)) != 0) {
		return rv;
	}
	if ((r = dtxi_client_request(DTXI_REQ_SUBMIT)) == NULL) {
		return DTX_ENOMEM;
	}
	tmo           = submit_fill(tx, r, true);
	tx->async_cb  = cb;
	tx->async_arg = arg;
	// Marked sent before sending: once the request is out, its callback
	// may run (and free tx) before dtxi_client_send even returns.
	was      = tx->sent;
	tx->sent = true;
	rv = dtxi_client_send(tx->c, r, tmo, commit_done, tx, tx->message);
	free(r);
	if (rv != 0) {
		tx->sent = was; // the callback will not run: tx is still ours
	}
	return rv;
}

// One Status request; wait_ms > 0 lets dtxd hold it until the transaction
// is terminal or wait_ms passed, so the request timeout covers both.
static int
tx_status(dtx_tx *tx, uint32_t wait_ms, dtx_state *state)
{
	txreply       t = {.tx = tx, .wait = false};
	dtxi_request *r;
	int64_t       tmo;
	int           rv;

	tx->message[0] = '\0';
	if ((r = dtxi_client_request(DTXI_REQ_STATUS)) == NULL) {
		return DTX_ENOMEM;
	}
	dtxi_strlcpy(r->u.status.gid, tx->gid, sizeof(r->u.status.gid));
	r->u.status.wait_ms = wait_ms;
	tmo                 = (int64_t)dtxi_client_timeout_ms(tx->c) + wait_ms;
	rv = dtxi_client_call(tx->c, r, tmo, txreply_done, &t, tx->message);
	free(r);
	if (rv == 0) {
		*state = t.state;
	}
	return rv;
}

int
dtx_tx_status(dtx_tx *tx, dtx_state *state)
{
	if (tx == NULL || state == NULL) {
		return DTX_EINVAL;
	}
	return tx_status(tx, 0, state);
}

// Waiting is a series of long polls of at most WAIT_POLL_MS each, so that a
// lost connection or a restarted coordinator costs one poll, not the whole
// wait, and a request never outlives the client timeout by much.
int
dtx_tx_wait(dtx_tx *tx, int32_t timeout_ms, dtx_state *state)
{
	int64_t   deadline;
	dtx_state st;
	int       rv;

	if (tx == NULL || state == NULL) {
		return DTX_EINVAL;
	}
	deadline = timeout_ms < 0 ? INT64_MAX : dtxi_mono_ms() + timeout_ms;
	for (;;) {
		int64_t  left = deadline - dtxi_mono_ms();
		uint32_t poll;

		if (left < 0) {
			left = 0;
		}
		poll = left > WAIT_POLL_MS ? WAIT_POLL_MS : (uint32_t)left;
		if ((rv = tx_status(tx, poll, &st)) != 0) {
			return rv;
		}
		if (dtx_state_is_terminal(st)) {
			*state = st;
			return 0;
		}
		if (dtxi_mono_ms() >= deadline) {
			snprintf(tx->message, sizeof(tx->message),
			    "transaction is still %s", dtx_state_name(st));
			return DTX_ETIMEDOUT;
		}
	}
}

int
dtx_tx_info_get(const dtx_tx *tx, dtx_tx_info *out)
{
	if (tx == NULL || out == NULL) {
		return DTX_EINVAL;
	}
	if (!tx->reported) {
		return DTX_ESTATE;
	}
	*out = tx->info;
	return 0;
}

bool
dtx_tx_stuck(const dtx_tx *tx)
{
	return tx != NULL && tx->stuck;
}

const char *
dtx_tx_message(const dtx_tx *tx)
{
	return tx != NULL ? tx->message : "";
}

unsigned
dtx_tx_branch_count(const dtx_tx *tx)
{
	if (tx == NULL) {
		return 0;
	}
	return tx->nresults > tx->nbranches ? tx->nresults : tx->nbranches;
}

const char *
dtx_tx_branch_method(const dtx_tx *tx, unsigned i)
{
	if (tx == NULL || i >= tx->nbranches) {
		return NULL;
	}
	return tx->branches[i].method;
}

int
dtx_tx_branch_result(const dtx_tx *tx, unsigned i, dtx_branch_result *out)
{
	if (tx == NULL || out == NULL || i >= dtx_tx_branch_count(tx)) {
		return DTX_EINVAL;
	}
	if (i < tx->nresults) {
		const txresult *r = &tx->results[i];

		out->status              = r->status;
		out->phase               = r->phase;
		out->attempts            = r->attempts;
		out->message             = r->message;
		out->payload             = r->payload;
		out->payload_len         = r->len;
		out->forward_status      = r->fstatus;
		out->forward_payload     = r->fpayload;
		out->forward_payload_len = r->flen;
		out->error               = r->error;
		out->settled_ms          = r->settled_ms;
	} else {
		out->status              = DTX_BRANCH_NONE;
		out->phase               = 0;
		out->attempts            = 0;
		out->message             = "";
		out->payload             = NULL;
		out->payload_len         = 0;
		out->forward_status      = DTX_BRANCH_NONE;
		out->forward_payload     = NULL;
		out->forward_payload_len = 0;
		out->error               = 0;
		out->settled_ms          = 0;
	}
	return 0;
}

void
dtx_tx_free(dtx_tx *tx)
{
	if (tx == NULL) {
		return;
	}
	for (unsigned i = 0; i < tx->nbranches; i++) {
		free(tx->branches[i].payload);
	}
	free(tx->branches);
	results_clear(tx);
	free(tx);
}
