// SPDX-License-Identifier: MIT
//
// dispatcher: outbound branch calls (see dispatcher.h). A call is a small
// state machine on its own aio: SEND the encoded BranchCall on a context of
// the peer's REQ socket, then RECV the answer, then decode it and report
// once. Contexts and aios are kept per peer and reused: opening and closing
// them per call cost an nng reaper hand-off and an allocation each, a fifth
// of dtxd's time under load. A reused REQ context drops whatever request it
// still had outstanding (a call that timed out), so a late answer to it is
// discarded by nng. nng's own resend is switched off: the engines decide
// retries, with backoff, and a resent request would be a second delivery they
// did not ask for.
//
// Batching. Under load the loop thread issues many calls to the same
// participant in one pass (the PREPAREs of every transaction submitted since
// the last pass, say). Each message costs dtxd far more CPU (nng task
// threads, wake-ups, syscalls) than its bytes, so queued calls are held per
// peer until the pass ends and then go out as one BranchCallBatch per peer
// and timeout, bounded by DTXI_BATCH_MAX calls and BATCH_BYTES; a lone call
// still goes out as a plain BranchCall. The batch is one REQ/REP exchange
// with one timeout: its replies come back together, in call order, and a
// batch that fails or times out fails every call in it (the engines retry
// each as usual). A participant whose SDK predates batches answers
// EUNSUPPORTED: its calls are then resent one by one and that peer gets
// plain calls from then on.
//
// TLS. Each peer's socket dials through a watched link (proto/link.h) with
// a TLS configuration of its own (its server name is the peer's host).
// When the handshake fails for a reason that retrying will not fix, the
// link's watch aborts the peer's calls in flight and calls queued for it
// fail at flush time, each with the reason (DTX_EAUTH and a message),
// which becomes the branch's message; the dialer keeps trying, and the
// first connection that works clears the failure.
//
// Lock order: dispatcher->mtx only (a leaf, never held across an nng call
// that may complete an aio; aborting an aio completes it on another
// thread). The pending queues and the dirty list belong to the thread that
// queues and flushes (whichever runs dtxd's loop) and take no lock.

#include "dispatcher.h"

#include <stdatomic.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "link.h"
#include "log.h"
#include "strs.h"
#include "transport.h"

// Largest answer we take: a single reply (max_payload plus its message) or a
// batch of replies, which a participant keeps within its max_payload plus
// 32 KiB.
#define REPLY_FRAME_MAX(d) ((d)->max_payload + 64u * 1024u)

// A batch stays well inside the smallest frame a participant accepts (its
// payload limit plus 64 KiB of overhead): a call that alone is bigger goes
// out by itself, as it always did.
#define BATCH_BYTES (48u * 1024u)

// Pending calls a peer's queue keeps room for between passes.
#define PEND_KEEP 256u

// How long a probe of an unreachable participant may try to connect.
#define PROBE_TIMEOUT_MS 2000

typedef struct dcall dcall;

// A call waiting for the end of the loop's pass (and, in a batch, kept
// until the answer for the EUNSUPPORTED fallback).
typedef struct ditem {
	dtxi_call    call;
	uint32_t     timeout_ms;
	dtxd_call_fn fn;
	void        *arg;
} ditem;

struct dtxd_peer {
	struct dtxd_peer *next;
	dtxd_dispatcher  *d;
	nng_socket        sock;
	dtxi_link        *link;
	dcall            *all;  // every call object of the peer
	dcall            *idle; // finished calls, their ctx and aio reusable
	atomic_bool       nobatch;    // answered a batch with EUNSUPPORTED
	atomic_bool       want_probe; // a call found no connection
	dtxi_probe       *probe;      // why not; flushing thread
	// Flushing thread only.
	ditem            *pend;
	uint32_t          npend;
	uint32_t          cappend;
	struct dtxd_peer *dnext; // in the dirty list
	bool              dirty;
	char              url[DTX_ENDPOINT_MAX + 1];
};

struct dtxd_dispatcher {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	dtxi_watch     *watch;
	dtxi_tls       *tls; // for tls+tcp:// peers, or NULL
	dtxd_peer      *peers;
	uint64_t        inflight;
	bool            closing;
	size_t          max_payload;
	atomic_ullong   calls;    // branch calls sent
	atomic_ullong   messages; // frames that carried them
	void (*after)(void *);    // see dtxd_dispatcher_set_after
	void *after_arg;
	// Flushing thread only.
	dtxd_peer    *dirty;   // peers with pending calls
	dtxi_request *scratch; // request being encoded
	uint64_t      batches; // batches sent, for the log at close
	uint64_t      batched; // calls sent in them
};

struct dcall {
	dcall           *next; // in peer->idle
	dcall           *all;  // in peer->all
	bool             busy; // taken (under the dispatcher's mtx)
	dtxd_dispatcher *d;
	dtxd_peer       *peer;
	nng_ctx          ctx;
	nng_aio         *aio;
	bool             sent;
	int64_t          deadline; // monotonic ms: the call ends by then
	dtxd_call_fn     fn;       // a single call
	void            *arg;
	ditem           *items; // a batch: n calls, owned; NULL for a single
	uint32_t         n;
};

int
dtxd_dispatcher_open(dtxd_dispatcher **dp, size_t max_payload)
{
	dtxd_dispatcher *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		return DTX_ENOMEM;
	}
	// A participant is looked at every 250 ms while a call waits for
	// it: dtxd has many pipes, each pass copies all of nng's statistics,
	// and a call that fails for TLS a little later costs no one a wait.
	if ((d->scratch = malloc(sizeof(*d->scratch))) == NULL ||
	    dtxi_watch_open(&d->watch, 250) != 0) {
		free(d->scratch);
		free(d);
		return DTX_ENOMEM;
	}
	pthread_mutex_init(&d->mtx, NULL);
	pthread_cond_init(&d->cv, NULL);
	d->max_payload = max_payload;
	atomic_init(&d->calls, 0);
	atomic_init(&d->messages, 0);
	*dp = d;
	return 0;
}

void
dtxd_dispatcher_set_tls(dtxd_dispatcher *d, dtxi_tls *t)
{
	dtxi_tls_hold(t);
	dtxi_tls_rele(d->tls);
	d->tls = t;
}

void
dtxd_dispatcher_close(dtxd_dispatcher *d)
{
	if (d == NULL) {
		return;
	}
	pthread_mutex_lock(&d->mtx);
	d->closing = true;
	pthread_mutex_unlock(&d->mtx);
	// Calls queued but never flushed end like calls in flight.
	for (dtxd_peer *p = d->peers; p != NULL; p = p->next) {
		for (uint32_t i = 0; i < p->npend; i++) {
			p->pend[i].fn(p->pend[i].arg, DTX_ECLOSED, NULL);
		}
		p->npend = 0;
	}
	if (d->batches > 0) {
		DTXI_INFO("dispatcher: %llu batches carried %llu calls",
		    (unsigned long long)d->batches,
		    (unsigned long long)d->batched);
	}
	// Closing a socket completes every aio on its contexts with
	// NNG_ECLOSED, so each call reports and the count drains.
	for (dtxd_peer *p = d->peers; p != NULL; p = p->next) {
		nng_close(p->sock);
	}
	pthread_mutex_lock(&d->mtx);
	while (d->inflight > 0) {
		pthread_cond_wait(&d->cv, &d->mtx);
	}
	pthread_mutex_unlock(&d->mtx);
	// The links before the calls: a link's watch may be aborting them.
	for (dtxd_peer *p = d->peers; p != NULL; p = p->next) {
		dtxi_link_close(p->link);
	}
	dtxi_watch_close(d->watch);
	while (d->peers != NULL) {
		dtxd_peer *p = d->peers;
		d->peers     = p->next;
		dtxi_probe_close(p->probe);
		while (p->all != NULL) {
			dcall *c = p->all;
			p->all   = c->all;
			nng_aio_free(c->aio);
			free(c);
		}
		free(p->pend);
		free(p);
	}
	dtxi_tls_rele(d->tls);
	free(d->scratch);
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mtx);
	free(d);
}

// nng 1.5.2 makes a dialer for "tcp://host:99999" or "tcp://host:abc" and
// fails only when it dials, again and again in the background, so a branch
// with such an endpoint would be accepted and time out instead of being
// refused at submit. A TCP-based URL must end in a port 1..65535.
static bool
port_ok(const char *url)
{
	static const char *const tcp[] = {"tcp://", "tcp4://", "tcp6://",
	    "tls+tcp://", "tls+tcp4://", "tls+tcp6://"};
	const char              *colon;
	unsigned long            port   = 0;
	bool                     is_tcp = false;

	for (size_t i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++) {
		if (strncmp(url, tcp[i], strlen(tcp[i])) == 0) {
			is_tcp = true;
		}
	}
	if (!is_tcp) {
		return true;
	}
	if ((colon = strrchr(url, ':')) == NULL || colon[1] == '\0') {
		return false;
	}
	for (const char *c = colon + 1; *c != '\0'; c++) {
		if (*c < '0' || *c > '9' || port > 65535) {
			return false;
		}
		port = port * 10 + (unsigned long)(*c - '0');
	}
	return port >= 1 && port <= 65535;
}

// On the link's watch thread: the peer's link fails (link.h). Its calls in
// flight end now with the reason (dcall_cb asks the link for it).
static void
peer_link_failed(void *arg)
{
	dtxd_peer *p = arg;

	pthread_mutex_lock(&p->d->mtx);
	for (dcall *c = p->all; c != NULL; c = c->all) {
		if (c->busy) {
			nng_aio_abort(c->aio, NNG_EPEERAUTH);
		}
	}
	pthread_mutex_unlock(&p->d->mtx);
}

int
dtxd_dispatcher_peer(dtxd_dispatcher *d, const char *endpoint, dtxd_peer **pp,
    char *why, size_t cap)
{
	dtxd_peer *p;
	char       reason[DTX_MESSAGE_MAX + 1];
	int        rv;

	if (why == NULL) {
		why = reason;
		cap = sizeof(reason);
	}
	if (endpoint == NULL || strlen(endpoint) > DTX_ENDPOINT_MAX ||
	    !port_ok(endpoint)) {
		snprintf(why, cap, "not an address with a valid port");
		return DTX_EINVAL;
	}
	if (dtxi_tls_url(endpoint) && d->tls == NULL) {
		snprintf(why, cap,
		    "a TLS endpoint, and dtxd has no TLS settings for "
		    "participants (--participant-tls-ca)");
		return DTX_EINVAL;
	}
	pthread_mutex_lock(&d->mtx);
	for (p = d->peers; p != NULL; p = p->next) {
		if (strcmp(p->url, endpoint) == 0) {
			pthread_mutex_unlock(&d->mtx);
			*pp = p;
			return 0;
		}
	}
	if (d->closing) {
		pthread_mutex_unlock(&d->mtx);
		return DTX_ECLOSED;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		pthread_mutex_unlock(&d->mtx);
		return DTX_ENOMEM;
	}
	dtxi_strlcpy(p->url, endpoint, sizeof(p->url));
	p->d = d;
	if ((rv = nng_req0_open(&p->sock)) != 0) {
		pthread_mutex_unlock(&d->mtx);
		free(p);
		DTXI_ERROR(
		    "dispatcher: cannot open socket: %s", nng_strerror(rv));
		return DTX_ETRANSPORT;
	}
	nng_socket_set_ms(
	    p->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 1000);
	nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, REPLY_FRAME_MAX(d));
	// In the background: the dialer keeps trying, so a participant that
	// is down now is reached once it comes up.
	dtxi_link_opts lo = {
	    .url  = endpoint,
	    .tls  = dtxi_tls_url(endpoint) ? d->tls : NULL,
	    .peer = "participant",
	    .hint = "a participant takes calls only from the coordinator CA",
	    .fail = peer_link_failed,
	    .arg  = p,
	};
	if ((rv = dtxi_link_open(
	         &p->link, d->watch, p->sock, &lo, why, cap)) != 0) {
		pthread_mutex_unlock(&d->mtx);
		nng_close(p->sock);
		free(p);
		DTXI_WARN("dispatcher: cannot dial %s: %s", endpoint, why);
		return rv;
	}
	p->next  = d->peers;
	d->peers = p;
	pthread_mutex_unlock(&d->mtx);
	*pp = p;
	return 0;
}

// Puts a call that has reported back on its peer's idle list. The call is
// not touched after the unlock: another thread may reuse it at once (nng
// lets an aio start again while its callback finishes).
static void
dcall_release(dcall *c)
{
	dtxd_dispatcher *d = c->d;

	free(c->items);
	c->items = NULL;
	c->n     = 0;
	pthread_mutex_lock(&d->mtx);
	c->busy       = false;
	c->next       = c->peer->idle;
	c->peer->idle = c;
	if (--d->inflight == 0) {
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mtx);
}

// Reports the end of a call (every call of a batch gets rv and rep) and
// releases it.
static void
dcall_end(dcall *c, int rv, const dtxi_branch_reply *rep)
{
	if (c->items == NULL) {
		c->fn(c->arg, rv, rep);
	} else {
		for (uint32_t i = 0; i < c->n; i++) {
			c->items[i].fn(c->items[i].arg, rv, rep);
		}
	}
	dcall_release(c);
}

static int send_one(dtxd_dispatcher *d, dtxd_peer *peer, const dtxi_call *call,
    uint32_t timeout_ms, dtxd_call_fn fn, void *arg);

// The answer to a batch: each call gets its own reply. A participant that
// does not know batches gets the calls again one by one, within what is
// left of their time, and plain calls from now on.
static void
dcall_on_batch_reply(dcall *c, dtxi_reply *rep)
{
	dtxd_dispatcher *d = c->d;

	if (rep->code == DTX_EUNSUPPORTED) {
		int64_t left = c->deadline - dtxi_mono_ms();
		if (!atomic_exchange(&c->peer->nobatch, true)) {
			DTXI_WARN(
			    "dispatcher: %s does not take batched calls; "
			    "sending it single calls",
			    c->peer->url);
		}
		for (uint32_t i = 0; i < c->n; i++) {
			ditem *it = &c->items[i];
			int    rv = send_one(d, c->peer, &it->call,
			       (uint32_t)(left > 1 ? left : 1), it->fn, it->arg);
			if (rv != 0) {
				it->fn(it->arg, rv, NULL);
			}
		}
		dcall_release(c);
		return;
	}
	if (rep->kind != DTXI_REP_BRANCH_BATCH || rep->u.batch.n != c->n) {
		DTXI_WARN(
		    "dispatcher: %s answered a batch of %u calls with %u "
		    "replies",
		    c->peer->url, (unsigned)c->n,
		    rep->kind == DTXI_REP_BRANCH_BATCH
		        ? (unsigned)rep->u.batch.n
		        : 0u);
		dcall_end(c, DTX_EPROTO, NULL);
		return;
	}
	for (uint32_t i = 0; i < c->n; i++) {
		c->items[i].fn(c->items[i].arg, 0, &rep->u.batch.replies[i]);
	}
	dcall_release(c);
}

static void
dcall_on_reply(dcall *c, nng_msg *msg)
{
	// The reply is decoded into a heap struct: it is a few hundred bytes
	// but dtxi_reply's union is sized for the largest reply.
	dtxi_reply *rep = malloc(sizeof(*rep));
	char        why[DTX_MESSAGE_MAX + 1];
	int         rv;

	if (rep == NULL) {
		nng_msg_free(msg);
		dcall_end(c, DTX_ENOMEM, NULL);
		return;
	}
	why[0] = '\0';
	rv     = dtxi_reply_decode(rep, nng_msg_body(msg), nng_msg_len(msg),
	        REPLY_FRAME_MAX(c->d), c->d->max_payload, why);
	if (rv == 0 && c->items != NULL &&
	    (rep->code == 0 || rep->code == DTX_EUNSUPPORTED)) {
		dcall_on_batch_reply(c, rep);
		free(rep);
		nng_msg_free(msg);
		return;
	}
	if (rv != 0 || (rep->code == 0 && rep->kind != DTXI_REP_BRANCH)) {
		DTXI_WARN("dispatcher: undecodable answer from a participant: "
		          "%s %s",
		    dtx_strerror(rv != 0 ? rv : DTX_EPROTO), why);
		free(rep);
		nng_msg_free(msg);
		dcall_end(c, DTX_EPROTO, NULL);
		return;
	}
	if (rep->code != 0) {
		// The participant could not take the call at all (malformed,
		// too large, wrong version): report it as BAD_REQUEST with
		// the participant's words.
		dtxi_branch_reply br;
		memset(&br, 0, sizeof(br));
		br.status = DTX_BRANCH_BAD_REQUEST;
		snprintf(br.message, sizeof(br.message), "%s: %.200s",
		    dtx_strerror(rep->code), rep->message);
		dcall_end(c, 0, &br);
	} else {
		dcall_end(c, 0, &rep->u.branch);
	}
	free(rep);
	nng_msg_free(msg);
}

// Ends a failed call. Once the dispatcher is closing, every failure is
// DTX_ECLOSED, as dispatcher.h promises: closing the socket may end a
// context's pending receive as a reset connection (NNG_ECONNRESET, its
// pipe closed first) rather than NNG_ECLOSED. A TLS failure of the link
// comes with its reason.
static void
dcall_fail(dcall *c, int rv)
{
	dtxi_branch_reply br;
	bool              closing;

	pthread_mutex_lock(&c->d->mtx);
	closing = c->d->closing;
	pthread_mutex_unlock(&c->d->mtx);
	if (closing) {
		dcall_end(c, DTX_ECLOSED, NULL);
		return;
	}
	memset(&br, 0, sizeof(br));
	rv = dtxi_link_err(c->peer->link, rv, "calling the participant",
	    br.message, sizeof(br.message));
	if (rv != DTX_EAUTH && !dtxi_link_up(c->peer->link)) {
		atomic_store(&c->peer->want_probe, true);
		rv = DTX_EUNREACHABLE;
	}
	dcall_end(c, rv, rv == DTX_EAUTH ? &br : NULL);
}

// One step of a call; true when it reported its end (c is released
// then and must not be touched).
static bool
dcall_step(dcall *c)
{
	int rv = nng_aio_result(c->aio);

	if (!c->sent) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
			dcall_fail(c, rv);
			return true;
		}
		// The answer gets what is left of the call's time.
		int64_t left = c->deadline - dtxi_mono_ms();
		c->sent      = true;
		nng_aio_set_timeout(
		    c->aio, (nng_duration)(left > 1 ? left : 1));
		nng_ctx_recv(c->ctx, c->aio);
		return false;
	}
	if (rv != 0) {
		dcall_fail(c, rv);
		return true;
	}
	dcall_on_reply(c, nng_aio_get_msg(c->aio));
	return true;
}

static void
dcall_cb(void *arg)
{
	dcall           *c = arg;
	dtxd_dispatcher *d = c->d;

	if (dcall_step(c) && d->after != NULL) {
		d->after(d->after_arg);
	}
}

void
dtxd_dispatcher_set_after(
    dtxd_dispatcher *d, void (*after)(void *arg), void *arg)
{
	d->after     = after;
	d->after_arg = arg;
}

// A new call object with its own context on peer's socket and its aio.
static int
dcall_new(dtxd_dispatcher *d, dtxd_peer *peer, dcall **cp)
{
	dcall *c = calloc(1, sizeof(*c));
	int    rv;

	if (c == NULL) {
		return DTX_ENOMEM;
	}
	c->d    = d;
	c->peer = peer;
	if ((rv = nng_aio_alloc(&c->aio, dcall_cb, c)) != 0) {
		free(c);
		return dtxi_transport_err(rv, NULL);
	}
	if ((rv = nng_ctx_open(&c->ctx, peer->sock)) != 0) {
		nng_aio_free(c->aio);
		free(c);
		return dtxi_transport_err(rv, NULL);
	}
	pthread_mutex_lock(&d->mtx);
	c->busy   = true;
	c->all    = peer->all;
	peer->all = c;
	pthread_mutex_unlock(&d->mtx);
	*cp = c;
	return 0;
}

// Takes an idle call of peer (or makes one) and counts it in flight. On
// success the caller fills it and starts it with dcall_start.
static int
dcall_take(dtxd_dispatcher *d, dtxd_peer *peer, dcall **cp)
{
	dcall *c;
	int    rv;

	pthread_mutex_lock(&d->mtx);
	if (d->closing) {
		pthread_mutex_unlock(&d->mtx);
		return DTX_ECLOSED;
	}
	if ((c = peer->idle) != NULL) {
		peer->idle = c->next;
		c->busy    = true;
	}
	d->inflight++;
	pthread_mutex_unlock(&d->mtx);
	if (c == NULL && (rv = dcall_new(d, peer, &c)) != 0) {
		pthread_mutex_lock(&d->mtx);
		if (--d->inflight == 0) {
			pthread_cond_broadcast(&d->cv);
		}
		pthread_mutex_unlock(&d->mtx);
		return rv;
	}
	c->sent  = false;
	c->items = NULL;
	c->n     = 0;
	*cp      = c;
	return 0;
}

static void
dcall_start(dcall *c, nng_msg *msg, uint32_t timeout_ms)
{
	// One timeout covers send and receive: a call ends within it.
	c->deadline = dtxi_mono_ms() + timeout_ms;
	nng_aio_set_timeout(c->aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
	// The link failed since flush checked it: the watch's abort may have
	// come before this send (see dtxi_link_failing).
	if (dtxi_link_failing(c->peer->link)) {
		nng_aio_abort(c->aio, NNG_EPEERAUTH);
	}
}

// Encodes and sends one plain BranchCall, with req as scratch space.
static int
send_single(dtxd_dispatcher *d, dtxd_peer *peer, dtxi_request *req,
    const dtxi_call *call, uint32_t timeout_ms, dtxd_call_fn fn, void *arg)
{
	nng_msg *msg;
	dcall   *c;
	int      rv;

	req->version = DTX_PROTOCOL_VERSION;
	req->kind    = DTXI_REQ_CALL;
	req->u.call  = *call;
	if ((rv = dtxi_transport_encode_request(req, &msg)) != 0) {
		return rv;
	}
	if ((rv = dcall_take(d, peer, &c)) != 0) {
		nng_msg_free(msg);
		return rv;
	}
	c->fn  = fn;
	c->arg = arg;
	atomic_fetch_add(&d->calls, 1);
	atomic_fetch_add(&d->messages, 1);
	dcall_start(c, msg, timeout_ms);
	return 0;
}

// send_single from any thread: the scratch request is its own.
static int
send_one(dtxd_dispatcher *d, dtxd_peer *peer, const dtxi_call *call,
    uint32_t timeout_ms, dtxd_call_fn fn, void *arg)
{
	// Only the call member is used; the request is sized for a submit.
	dtxi_request *req = malloc(sizeof(*req));
	int           rv;

	if (req == NULL) {
		return DTX_ENOMEM;
	}
	rv = send_single(d, peer, req, call, timeout_ms, fn, arg);
	free(req);
	return rv;
}

int
dtxd_dispatcher_call(dtxd_dispatcher *d, dtxd_peer *peer,
    const dtxi_call *call, uint32_t timeout_ms, dtxd_call_fn fn, void *arg)
{
	if (d == NULL || peer == NULL || call == NULL || fn == NULL) {
		return DTX_EINVAL;
	}
	return send_one(d, peer, call, timeout_ms, fn, arg);
}

int
dtxd_dispatcher_queue(dtxd_dispatcher *d, dtxd_peer *peer,
    const dtxi_call *call, uint32_t timeout_ms, dtxd_call_fn fn, void *arg)
{
	ditem *it;

	if (d == NULL || peer == NULL || call == NULL || fn == NULL) {
		return DTX_EINVAL;
	}
	if (peer->npend == peer->cappend) {
		uint32_t cap = peer->cappend == 0 ? 16 : peer->cappend * 2;
		ditem   *np  = realloc(peer->pend, cap * sizeof(*np));
		if (np == NULL) {
			return DTX_ENOMEM;
		}
		peer->pend    = np;
		peer->cappend = cap;
	}
	it             = &peer->pend[peer->npend++];
	it->call       = *call;
	it->timeout_ms = timeout_ms;
	it->fn         = fn;
	it->arg        = arg;
	if (!peer->dirty) {
		peer->dirty = true;
		peer->dnext = d->dirty;
		d->dirty    = peer;
	}
	return 0;
}

// What a call adds to a batch frame, near enough: its payload, its two
// strings and a few dozen bytes of tags, lengths and integers.
static size_t
item_bytes(const ditem *it)
{
	return it->call.payload.len + strlen(it->call.gid) +
	    strlen(it->call.method) + 48;
}

// Sends the n calls in its as one batch. On error nothing was sent and the
// caller still owns the calls.
static int
send_batch(dtxd_dispatcher *d, dtxd_peer *peer, const ditem *its, uint32_t n)
{
	dtxi_request *req = d->scratch;
	ditem        *items;
	nng_msg      *msg;
	dcall        *c;
	int           rv;

	req->version   = DTX_PROTOCOL_VERSION;
	req->kind      = DTXI_REQ_CALL_BATCH;
	req->u.batch.n = n;
	for (uint32_t i = 0; i < n; i++) {
		req->u.batch.calls[i] = its[i].call;
	}
	if ((items = malloc(n * sizeof(*items))) == NULL) {
		return DTX_ENOMEM;
	}
	memcpy(items, its, n * sizeof(*items));
	if ((rv = dtxi_transport_encode_request(req, &msg)) != 0) {
		free(items);
		return rv;
	}
	if ((rv = dcall_take(d, peer, &c)) != 0) {
		nng_msg_free(msg);
		free(items);
		return rv;
	}
	c->items = items;
	c->n     = n;
	d->batches++;
	d->batched += n;
	atomic_fetch_add(&d->calls, n);
	atomic_fetch_add(&d->messages, 1);
	dcall_start(c, msg, its[0].timeout_ms);
	return 0;
}

// Sends one group of pending calls: as one batch when there are several
// and the batch can be sent, else one by one. A call that cannot even be
// sent is failed through its callback (which only posts to the loop).
static void
flush_group(dtxd_dispatcher *d, dtxd_peer *p, const ditem *g, uint32_t n)
{
	if (n > 1 && send_batch(d, p, g, n) == 0) {
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		int rv = send_single(d, p, d->scratch, &g[i].call,
		    g[i].timeout_ms, g[i].fn, g[i].arg);
		if (rv != 0) {
			g[i].fn(g[i].arg, rv, NULL);
		}
	}
}

// Sends what one peer has pending, in the order it was queued, in one pass:
// a run of calls with the same timeout goes as one batch of up to
// DTXI_BATCH_MAX calls or BATCH_BYTES, and a call that does not fit the
// current batch starts the next. (Calls to one peer share one timeout in
// practice, so runs are long.) The earlier way picked each batch's calls out
// of the whole queue and compacted the rest, which is quadratic in the
// queue: when recovery resumed 100,000 transactions in one pass, that copy
// was half of dtxd's CPU and kept it from answering for seconds.
static void
flush_peer(dtxd_dispatcher *d, dtxd_peer *p)
{
	bool              batch = !atomic_load(&p->nobatch);
	uint32_t          npend = p->npend;
	uint32_t          first = 0;
	size_t            bytes = 0;
	dtxi_branch_reply br;
	int               rv;

	// A link known to fail would only hold the calls until they time
	// out: they fail now, with its reason.
	memset(&br, 0, sizeof(br));
	if ((rv = dtxi_link_check(p->link, br.message, sizeof(br.message))) !=
	    0) {
		for (uint32_t i = 0; i < npend; i++) {
			p->pend[i].fn(p->pend[i].arg, rv, &br);
		}
		npend = 0;
	}

	// A call ended without a connection to this participant: a probe
	// learns why (for the messages of the next ones), unless it is up
	// again or its link knows why (a TLS failure). Only then: a
	// connection closed before nng's handshake was seen to stall an nng
	// 1.5.2 ipc listener that was up.
	if (atomic_exchange(&p->want_probe, false) && !dtxi_link_up(p->link) &&
	    !dtxi_link_failing(p->link)) {
		if (p->probe == NULL &&
		    dtxi_probe_open(&p->probe, p->url) != 0) {
			p->probe = NULL;
		}
		dtxi_probe_start(p->probe, PROBE_TIMEOUT_MS);
	}
	// Sending never queues to this peer again (a failed call's callback
	// only posts to the loop), so the array is stable during the pass.
	for (uint32_t i = 0; i < npend; i++) {
		const ditem *it = &p->pend[i];
		size_t       b  = item_bytes(it);
		uint32_t     n  = i - first;

		if (n > 0 &&
		    (it->timeout_ms != p->pend[first].timeout_ms || !batch ||
		        n == DTXI_BATCH_MAX || bytes + b > BATCH_BYTES)) {
			flush_group(d, p, &p->pend[first], n);
			first = i;
			bytes = 0;
		}
		bytes += b;
	}
	if (npend > first) {
		flush_group(d, p, &p->pend[first], npend - first);
	}
	p->npend = 0;
	// A burst (10,000 submits at once, say) grows the array to thousands
	// of 400-byte entries; keeping that for ever would pin megabytes per
	// peer, so a large array goes once it is empty.
	if (p->cappend > PEND_KEEP) {
		free(p->pend);
		p->pend    = NULL;
		p->cappend = 0;
	}
}

void
dtxd_dispatcher_peer_reason(dtxd_peer *p, char *why, size_t cap)
{
	if (dtxi_link_up(p->link)) {
		snprintf(why, cap, "connected");
	} else if (dtxi_probe_result(p->probe, why, cap) <= 0) {
		snprintf(why, cap, "no connection");
	}
}

void
dtxd_dispatcher_get_counts(
    dtxd_dispatcher *d, uint64_t *calls, uint64_t *messages)
{
	*calls    = atomic_load(&d->calls);
	*messages = atomic_load(&d->messages);
}

void
dtxd_dispatcher_flush(dtxd_dispatcher *d)
{
	while (d->dirty != NULL) {
		dtxd_peer *p = d->dirty;
		d->dirty     = p->dnext;
		p->dnext     = NULL;
		p->dirty     = false;
		flush_peer(d, p);
	}
}
