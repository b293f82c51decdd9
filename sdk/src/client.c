// SPDX-License-Identifier: MIT
//
// client: the initiator side of libdtx. A dtx_client is one REQ socket dialed
// (in the background) to dtxd; every request gets its own nng context and
// aio, so any number of threads share a client with no lock of ours. A dtx_tx
// collects branches locally and sends them in one Submit; the coordinator's
// replies (branch results with their payloads) are copied into the tx so
// that what dtx_tx_branch_result hands out lives as long as the documented
// rule says. This file and participant.c are the only ones that touch nng.

#include <dtx/dtx.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "clock.h"
#include "codec.h"
#include "gid.h"
#include "log.h"
#include "strs.h"
#include "transport.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_TX_TIMEOUT 30000
// Time allowed for phase two on top of the transaction's own timeout.
#define PHASE_TWO_MS 60000
// Longest single long-poll of dtx_tx_wait (dtxd holds the request that long).
#define WAIT_POLL_MS 5000
#define RECV_MAX     (128u * 1024u * 1024u)

typedef struct async_op async_op;

// An asynchronous commit in flight. Ops are kept on the client's free list
// and reused, context and aio included, so that a closed loop of thousands
// of commits costs no nng_ctx_open/nng_aio_alloc per transaction (the
// client shares the machine with the coordinator it measures).
struct async_op {
	async_op     *next; // on the free list
	dtx_client   *c;
	nng_ctx       ctx;
	nng_aio      *aio;
	bool          sending;
	int64_t       deadline; // dtxi_mono_ms() of the whole exchange
	dtx_tx       *tx;
	dtx_commit_fn cb;
	void         *arg;
};

// Lock order: mtx is a leaf (it guards the free list only).
struct dtx_client {
	nng_socket      sock;
	atomic_int      timeout_ms;
	pthread_mutex_t mtx;
	pthread_cond_t  idle_cv; // signalled when busy_ops drops to 0
	async_op       *free_ops;
	unsigned        busy_ops; // taken and not yet back on free_ops
};

typedef struct txbranch {
	char   endpoint[DTX_ENDPOINT_MAX + 1];
	char   method[DTX_METHOD_MAX + 1];
	void  *payload;
	size_t len;
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
} txresult;

struct dtx_tx {
	dtx_client *c;
	dtx_mode    mode; // 0 for an attached handle
	char        gid[DTX_GID_MAX + 1];
	uint32_t    timeout_ms;
	uint32_t    call_timeout_ms;
	uint32_t    retries;
	bool        sent; // commit or submit was attempted (or attached)
	txbranch   *branches;
	unsigned    nbranches;
	txresult   *results;
	unsigned    nresults;
	bool        stuck;
	char        message[DTX_MESSAGE_MAX + 1];
};

// Request and reply of one exchange. Both are tens of KB (their unions are
// sized for the largest message), so they live on the heap, not on a user
// thread's stack of unknown size.
// The reply's payloads are slices of msg, so msg lives as long as x.
typedef struct exchange {
	dtxi_request req;
	dtxi_reply   rep;
	nng_msg     *msg; // the received reply, or NULL
} exchange;

static bool
str_ok(const char *s, size_t max, unsigned char lo)
{
	size_t n;

	if (s == NULL) {
		return false;
	}
	n = strnlen(s, max + 1);
	if (n == 0 || n > max) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < lo || ch > 0x7e) {
			return false;
		}
	}
	return true;
}

static bool
gid_ok(const char *gid)
{
	return str_ok(gid, DTX_GID_MAX, 0x21);
}

static bool
method_ok(const char *m)
{
	return str_ok(m, DTX_METHOD_MAX, 0x20);
}

static bool
endpoint_ok(const char *e)
{
	return str_ok(e, DTX_ENDPOINT_MAX, 0x21) && strstr(e, "://") != NULL;
}

static int32_t
clamp_ms(int64_t ms)
{
	if (ms > INT32_MAX) {
		return INT32_MAX;
	}
	return ms < 1 ? 1 : (int32_t)ms;
}

static exchange *
exchange_alloc(dtxi_req_kind kind)
{
	exchange *x = malloc(sizeof(*x));

	if (x != NULL) {
		memset(&x->req, 0, offsetof(dtxi_request, u));
		x->req.version = DTX_PROTOCOL_VERSION;
		x->req.kind    = kind;
		x->msg         = NULL;
	}
	return x;
}

static void
exchange_free(exchange *x)
{
	if (x != NULL) {
		if (x->msg != NULL) {
			nng_msg_free(x->msg);
		}
		free(x);
	}
}

// Sends x->req and waits up to timeout_ms in all for the reply, decoded into
// x->rep (its payloads point into x->msg). Returns 0 only for a reply with
// code 0; a reply with an error code returns that code with its message copied
// to msg (if not NULL). Every other failure writes a readable reason to msg
// too.
static int
exchange_run(dtx_client *c, exchange *x, int32_t timeout_ms, char *msg)
{
	nng_ctx  ctx;
	bool     ctx_open = false;
	nng_aio *aio      = NULL;
	nng_msg *m        = NULL;
	int64_t  deadline = dtxi_mono_ms() + timeout_ms;
	char     why[DTX_MESSAGE_MAX + 1];
	int      rv;

	why[0] = '\0';
	if ((rv = dtxi_transport_encode_request(&x->req, &m)) != 0) {
		snprintf(why, sizeof(why), "cannot encode the request: %s",
		    dtx_strerror(rv));
		goto fail;
	}
	if ((rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		rv = dtxi_transport_err(rv, "client: allocating an aio");
		goto fail;
	}
	if ((rv = nng_ctx_open(&ctx, c->sock)) != 0) {
		rv = dtxi_transport_err(rv, "client: opening a context");
		goto fail;
	}
	ctx_open = true;

	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		// A failed send leaves the message with us.
		snprintf(why, sizeof(why), "sending to the coordinator: %s",
		    nng_strerror(rv));
		rv = dtxi_transport_err(rv, "client: sending a request");
		goto fail;
	}
	m = NULL;

	nng_aio_set_timeout(aio, clamp_ms(deadline - dtxi_mono_ms()));
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		snprintf(why, sizeof(why), "waiting for the coordinator: %s",
		    nng_strerror(rv));
		rv = dtxi_transport_err(rv, "client: receiving a reply");
		goto fail;
	}
	m  = nng_aio_get_msg(aio);
	rv = dtxi_reply_decode(&x->rep, nng_msg_body(m), nng_msg_len(m),
	    SIZE_MAX, DTX_PAYLOAD_MAX_DEFAULT, why);
	if (rv != 0) {
		DTXI_WARN("client: undecodable reply from the coordinator "
		          "(%s): %s",
		    dtx_strerror(rv), why);
		goto fail;
	}
	if (x->rep.code != 0) {
		rv = x->rep.code;
		dtxi_strlcpy(why, x->rep.message, sizeof(why));
		goto fail;
	}
	x->msg = m;
	nng_ctx_close(ctx);
	nng_aio_free(aio);
	if (msg != NULL) {
		msg[0] = '\0';
	}
	return 0;

fail:
	if (ctx_open) {
		nng_ctx_close(ctx);
	}
	if (aio != NULL) {
		nng_aio_free(aio);
	}
	if (m != NULL) {
		nng_msg_free(m);
	}
	if (msg != NULL) {
		dtxi_strlcpy(msg, why, DTX_MESSAGE_MAX + 1);
	}
	return rv;
}

int
dtx_client_open(dtx_client **cp, const char *url)
{
	dtx_client *c;
	int         rv;

	if (cp == NULL || url == NULL || url[0] == '\0') {
		return DTX_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return DTX_ENOMEM;
	}
	atomic_init(&c->timeout_ms, DEFAULT_TIMEOUT_MS);
	if (pthread_mutex_init(&c->mtx, NULL) != 0) {
		free(c);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&c->idle_cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return DTX_ENOMEM;
	}
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		rv = dtxi_transport_err(rv, "client: opening the socket");
		pthread_cond_destroy(&c->idle_cv);
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return rv;
	}
	// No resend timer: a Submit that waits for its outcome may take
	// minutes, and dtxd answers every request it accepts. nng still
	// resends at once when the connection a request went out on breaks.
	if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	         NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, RECV_MAX)) !=
	        0) {
		rv = dtxi_transport_err(rv, "client: setting socket options");
		goto fail;
	}
	if ((rv = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		rv = dtxi_transport_addr_err(rv, "client: dialing", url);
		goto fail;
	}
	*cp = c;
	return 0;

fail:
	nng_close(c->sock);
	pthread_cond_destroy(&c->idle_cv);
	pthread_mutex_destroy(&c->mtx);
	free(c);
	return rv;
}

int
dtx_client_set_timeout_ms(dtx_client *c, int32_t ms)
{
	if (c == NULL || ms <= 0) {
		return DTX_EINVAL;
	}
	atomic_store(&c->timeout_ms, ms);
	return 0;
}

void
dtx_client_close(dtx_client *c)
{
	if (c == NULL) {
		return;
	}
	// Every async commit has ended (the header's rule), but its op goes
	// back on the free list only after the user's callback returned: a
	// close right after the last callback must wait for that.
	pthread_mutex_lock(&c->mtx);
	while (c->busy_ops > 0) {
		pthread_cond_wait(&c->idle_cv, &c->mtx);
	}
	pthread_mutex_unlock(&c->mtx);
	while (c->free_ops != NULL) {
		async_op *op = c->free_ops;
		c->free_ops  = op->next;
		nng_aio_free(op->aio);
		nng_ctx_close(op->ctx);
		free(op);
	}
	nng_close(c->sock);
	pthread_cond_destroy(&c->idle_cv);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

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
		r->flen     = b->forward_payload.len;
		r->fstatus  = (dtx_branch_status)b->forward_status;
		r->len      = b->payload.len;
		r->status   = (dtx_branch_status)b->status;
		r->phase    = (dtx_phase)b->phase;
		r->attempts = b->attempts;
	}
	results_clear(tx);
	tx->results  = rs;
	tx->nresults = n;
	tx->stuck    = info->stuck;
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

	if (!gid_ok(gid)) {
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
	if (tx == NULL || !gid_ok(gid)) {
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

int
dtx_tx_set_timeout_ms(dtx_tx *tx, uint32_t ms)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	tx->timeout_ms = ms;
	return 0;
}

int
dtx_tx_set_call_timeout_ms(dtx_tx *tx, uint32_t ms)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	tx->call_timeout_ms = ms;
	return 0;
}

int
dtx_tx_set_retries(dtx_tx *tx, uint32_t n)
{
	if (tx == NULL) {
		return DTX_EINVAL;
	}
	if (tx->sent) {
		return DTX_ESTATE;
	}
	tx->retries = n;
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
	if (m == NULL || !method_ok(m->name)) {
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

	if (tx == NULL || !endpoint_ok(endpoint) || !method_ok(method) ||
	    (payload == NULL && len > 0)) {
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
	b->payload = copy;
	b->len     = len;
	return 0;
}

// Fills x's Submit request from tx (payloads are borrowed from tx) and
// returns the timeout of the whole exchange, following the rule in the
// header: a waiting submit may take the transaction's timeout, the client's
// own timeout and phase two.
static int32_t
submit_fill(dtx_tx *tx, exchange *x, bool wait)
{
	int64_t tmo;

	memset(&x->req.u.submit, 0, offsetof(dtxi_submit, branches));
	dtxi_strlcpy(
	    x->req.u.submit.gid, tx->gid, sizeof(x->req.u.submit.gid));
	x->req.u.submit.mode            = tx->mode;
	x->req.u.submit.timeout_ms      = tx->timeout_ms;
	x->req.u.submit.call_timeout_ms = tx->call_timeout_ms;
	x->req.u.submit.retries         = tx->retries;
	x->req.u.submit.wait            = wait;
	x->req.u.submit.nbranches       = tx->nbranches;
	for (unsigned i = 0; i < tx->nbranches; i++) {
		dtxi_branch_spec *s = &x->req.u.submit.branches[i];

		memcpy(s->endpoint, tx->branches[i].endpoint,
		    sizeof(s->endpoint));
		memcpy(s->method, tx->branches[i].method, sizeof(s->method));
		s->payload.ptr = tx->branches[i].payload;
		s->payload.len = tx->branches[i].len;
	}
	tmo = atomic_load(&tx->c->timeout_ms);
	if (wait) {
		tmo += (tx->timeout_ms != 0 ? tx->timeout_ms
		                            : DEFAULT_TX_TIMEOUT) +
		    PHASE_TWO_MS;
	}
	return clamp_ms(tmo);
}

// Takes a successful Submit reply: copies the branch results into tx and,
// with wait, insists on a terminal state.
static int
submit_finish(dtx_tx *tx, const dtxi_reply *rep, bool wait, dtx_state *state)
{
	int rv;

	if (rep->kind != DTXI_REP_TX) {
		dtxi_strlcpy(tx->message,
		    "coordinator sent a reply of the "
		    "wrong kind",
		    sizeof(tx->message));
		return DTX_EPROTO;
	}
	if ((rv = results_copy(tx, &rep->u.tx)) != 0) {
		return rv;
	}
	if (wait && !dtx_state_is_terminal(rep->u.tx.state)) {
		snprintf(tx->message, sizeof(tx->message),
		    "no outcome yet: transaction is %s",
		    dtx_state_name(rep->u.tx.state));
		return DTX_ETIMEDOUT;
	}
	if (state != NULL) {
		*state = (dtx_state)rep->u.tx.state;
	}
	return 0;
}

// Submits the transaction; with wait, the reply carries its outcome.
static int
tx_submit(dtx_tx *tx, bool wait, dtx_state *state)
{
	exchange *x = NULL;
	int32_t   tmo;
	int       rv;

	if (tx == NULL) {
		return DTX_EINVAL;
	}
	tx->message[0] = '\0';
	if (tx->mode == 0 || tx->nbranches == 0) {
		return DTX_EINVAL;
	}
	if ((x = exchange_alloc(DTXI_REQ_SUBMIT)) == NULL) {
		return DTX_ENOMEM;
	}
	tx->sent = true;
	tmo      = submit_fill(tx, x, wait);
	if ((rv = exchange_run(tx->c, x, tmo, tx->message)) != 0) {
		goto fail;
	}
	rv = submit_finish(tx, &x->rep, wait, state);

fail:
	exchange_free(x);
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

// Asynchronous commit. The request is encoded at once into an nng message
// (the big request struct is freed before returning), then one op's aio
// carries it: the send completes, the same callback posts the receive, and
// the reply is decoded and copied into tx on the nng thread that got it.
// The op goes back to the free list only after the user's callback
// returned, so that a callback which starts the next commit takes another
// op and never reuses the aio it is running on.

static void async_cb(void *arg);

static void
async_release(async_op *op)
{
	dtx_client *c = op->c;

	op->tx  = NULL;
	op->cb  = NULL;
	op->arg = NULL;
	pthread_mutex_lock(&c->mtx);
	op->next    = c->free_ops;
	c->free_ops = op;
	if (--c->busy_ops == 0) {
		pthread_cond_broadcast(&c->idle_cv);
	}
	pthread_mutex_unlock(&c->mtx);
}

static int
async_get(dtx_client *c, async_op **opp)
{
	async_op *op;
	int       rv;

	pthread_mutex_lock(&c->mtx);
	if ((op = c->free_ops) != NULL) {
		c->free_ops = op->next;
		c->busy_ops++;
	}
	pthread_mutex_unlock(&c->mtx);
	if (op != NULL) {
		*opp = op;
		return 0;
	}
	if ((op = calloc(1, sizeof(*op))) == NULL) {
		return DTX_ENOMEM;
	}
	op->c = c;
	if ((rv = nng_aio_alloc(&op->aio, async_cb, op)) != 0) {
		free(op);
		return dtxi_transport_err(rv, "client: allocating an aio");
	}
	if ((rv = nng_ctx_open(&op->ctx, c->sock)) != 0) {
		nng_aio_free(op->aio);
		free(op);
		return dtxi_transport_err(rv, "client: opening a context");
	}
	pthread_mutex_lock(&c->mtx);
	c->busy_ops++;
	pthread_mutex_unlock(&c->mtx);
	*opp = op;
	return 0;
}

// Ends the op: the user's callback, then the op is reusable.
static void
async_done(async_op *op, int rv, dtx_state state)
{
	op->cb(op->tx, rv, state, op->arg);
	async_release(op);
}

static void
async_cb(void *arg)
{
	async_op   *op = arg;
	dtx_tx     *tx = op->tx;
	dtxi_reply *rep;
	nng_msg    *m;
	dtx_state   st = 0;
	int         rv = nng_aio_result(op->aio);

	if (op->sending) {
		op->sending = false;
		if (rv != 0) {
			// A failed send leaves the message with us.
			nng_msg_free(nng_aio_get_msg(op->aio));
			snprintf(tx->message, sizeof(tx->message),
			    "sending to the coordinator: %s",
			    nng_strerror(rv));
			async_done(op,
			    dtxi_transport_err(
			        rv, "client: sending a request"),
			    0);
			return;
		}
		nng_aio_set_timeout(
		    op->aio, clamp_ms(op->deadline - dtxi_mono_ms()));
		nng_ctx_recv(op->ctx, op->aio);
		return;
	}
	if (rv != 0) {
		snprintf(tx->message, sizeof(tx->message),
		    "waiting for the coordinator: %s", nng_strerror(rv));
		async_done(op,
		    dtxi_transport_err(rv, "client: receiving a reply"), 0);
		return;
	}
	m = nng_aio_get_msg(op->aio);
	if ((rep = malloc(sizeof(*rep))) == NULL) {
		nng_msg_free(m);
		async_done(op, DTX_ENOMEM, 0);
		return;
	}
	rv = dtxi_reply_decode(rep, nng_msg_body(m), nng_msg_len(m), SIZE_MAX,
	    DTX_PAYLOAD_MAX_DEFAULT, tx->message);
	if (rv != 0) {
		DTXI_WARN("client: undecodable reply from the coordinator "
		          "(%s): %s",
		    dtx_strerror(rv), tx->message);
	} else if (rep->code != 0) {
		rv = rep->code;
		dtxi_strlcpy(tx->message, rep->message, sizeof(tx->message));
	} else {
		rv = submit_finish(tx, rep, true, &st);
	}
	free(rep);
	nng_msg_free(m);
	async_done(op, rv, st);
}

int
dtx_tx_commit_async(dtx_tx *tx, dtx_commit_fn cb, void *arg)
{
	exchange *x  = NULL;
	async_op *op = NULL;
	nng_msg  *m  = NULL;
	int32_t   tmo;
	int       rv;

	if (tx == NULL || cb == NULL) {
		return DTX_EINVAL;
	}
	tx->message[0] = '\0';
	if (tx->mode == 0 || tx->nbranches == 0) {
		return DTX_EINVAL;
	}
	if ((x = exchange_alloc(DTXI_REQ_SUBMIT)) == NULL) {
		return DTX_ENOMEM;
	}
	tmo = submit_fill(tx, x, true);
	if ((rv = dtxi_transport_encode_request(&x->req, &m)) != 0) {
		snprintf(tx->message, sizeof(tx->message),
		    "cannot encode the request: %s", dtx_strerror(rv));
		goto fail;
	}
	if ((rv = async_get(tx->c, &op)) != 0) {
		goto fail;
	}
	exchange_free(x);
	tx->sent     = true;
	op->tx       = tx;
	op->cb       = cb;
	op->arg      = arg;
	op->sending  = true;
	op->deadline = dtxi_mono_ms() + tmo;
	nng_aio_set_timeout(op->aio, tmo);
	nng_aio_set_msg(op->aio, m);
	nng_ctx_send(op->ctx, op->aio);
	return 0;

fail:
	if (m != NULL) {
		nng_msg_free(m);
	}
	exchange_free(x);
	return rv;
}

// One Status request; wait_ms > 0 lets dtxd hold it until the transaction
// is terminal or wait_ms passed, so the request timeout covers both.
static int
tx_status(dtx_tx *tx, uint32_t wait_ms, dtx_state *state)
{
	exchange *x;
	int64_t   tmo;
	int       rv;

	tx->message[0] = '\0';
	if ((x = exchange_alloc(DTXI_REQ_STATUS)) == NULL) {
		return DTX_ENOMEM;
	}
	dtxi_strlcpy(
	    x->req.u.status.gid, tx->gid, sizeof(x->req.u.status.gid));
	x->req.u.status.wait_ms = wait_ms;
	tmo = (int64_t)atomic_load(&tx->c->timeout_ms) + wait_ms;
	if ((rv = exchange_run(tx->c, x, clamp_ms(tmo), tx->message)) != 0) {
		goto fail;
	}
	if (x->rep.kind != DTXI_REP_TX) {
		rv = DTX_EPROTO;
		dtxi_strlcpy(tx->message,
		    "coordinator sent a reply of the "
		    "wrong kind",
		    sizeof(tx->message));
		goto fail;
	}
	if ((rv = results_copy(tx, &x->rep.u.tx)) != 0) {
		goto fail;
	}
	*state = (dtx_state)x->rep.u.tx.state;
	exchange_free(x);
	return 0;

fail:
	exchange_free(x);
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

static int
client_gid_request(
    dtx_client *c, dtxi_req_kind kind, const char *gid, dtx_state *state)
{
	exchange *x;
	int       rv;

	if (c == NULL || !gid_ok(gid) || state == NULL) {
		return DTX_EINVAL;
	}
	if ((x = exchange_alloc(kind)) == NULL) {
		return DTX_ENOMEM;
	}
	if (kind == DTXI_REQ_ABORT) {
		dtxi_strlcpy(
		    x->req.u.abort.gid, gid, sizeof(x->req.u.abort.gid));
	} else {
		dtxi_strlcpy(
		    x->req.u.resolve.gid, gid, sizeof(x->req.u.resolve.gid));
	}
	rv = exchange_run(c, x, atomic_load(&c->timeout_ms), NULL);
	if (rv != 0) {
		goto fail;
	}
	if (kind == DTXI_REQ_ABORT && x->rep.kind == DTXI_REP_TX) {
		*state = (dtx_state)x->rep.u.tx.state;
	} else if (kind == DTXI_REQ_RESOLVE &&
	    x->rep.kind == DTXI_REP_RESOLVE) {
		*state = (dtx_state)x->rep.u.resolve.state;
	} else {
		rv = DTX_EPROTO;
		goto fail;
	}
	exchange_free(x);
	return 0;

fail:
	exchange_free(x);
	return rv;
}

int
dtx_client_abort(dtx_client *c, const char *gid, dtx_state *state)
{
	return client_gid_request(c, DTXI_REQ_ABORT, gid, state);
}

int
dtx_client_resolve(dtx_client *c, const char *gid, dtx_state *state)
{
	return client_gid_request(c, DTXI_REQ_RESOLVE, gid, state);
}

int
dtx_client_list(dtx_client *c, int filter, const char *cursor,
    dtx_tx_info *out, unsigned max, unsigned *n, char *next)
{
	exchange *x;
	int       rv;

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
	if ((x = exchange_alloc(DTXI_REQ_LIST)) == NULL) {
		return DTX_ENOMEM;
	}
	x->req.u.list.state = filter;
	x->req.u.list.limit = max;
	dtxi_strlcpy(
	    x->req.u.list.cursor, cursor, sizeof(x->req.u.list.cursor));
	rv = exchange_run(c, x, atomic_load(&c->timeout_ms), NULL);
	if (rv != 0) {
		goto fail;
	}
	if (x->rep.kind != DTXI_REP_LIST || x->rep.u.list.n > max) {
		rv = DTX_EPROTO;
		goto fail;
	}
	for (unsigned i = 0; i < x->rep.u.list.n; i++) {
		const dtxi_txsummary *s = &x->rep.u.list.items[i];

		dtxi_strlcpy(out[i].gid, s->gid, sizeof(out[i].gid));
		out[i].mode         = (dtx_mode)s->mode;
		out[i].state        = (dtx_state)s->state;
		out[i].stuck        = s->stuck;
		out[i].created_ms   = s->created_ms;
		out[i].updated_ms   = s->updated_ms;
		out[i].branch_count = s->nbranches;
	}
	*n = x->rep.u.list.n;
	dtxi_strlcpy(next, x->rep.u.list.next_cursor, DTX_GID_MAX + 1);
	exchange_free(x);
	return 0;

fail:
	exchange_free(x);
	return rv;
}

int
dtx_client_stats(dtx_client *c, dtx_coordinator_stats *out)
{
	exchange *x;
	int       rv;

	if (c == NULL || out == NULL) {
		return DTX_EINVAL;
	}
	if ((x = exchange_alloc(DTXI_REQ_STATS)) == NULL) {
		return DTX_ENOMEM;
	}
	rv = exchange_run(c, x, atomic_load(&c->timeout_ms), NULL);
	if (rv == 0 && x->rep.kind != DTXI_REP_STATS) {
		rv = DTX_EPROTO;
	}
	if (rv == 0) {
		*out = x->rep.u.stats;
	}
	exchange_free(x);
	return rv;
}
