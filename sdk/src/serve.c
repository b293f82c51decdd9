// SPDX-License-Identifier: MIT
//
// serve: the participant's transport and worker pool (serve.h). One REP
// socket with many nng contexts receives BranchCalls from dtxd; each
// received frame is handed to a pool of worker threads that decode it, run
// the call (which may block on the service's own database) and send the
// encoded reply back on the context it came from. A BranchCallBatch
// (several calls that dtxd sends one participant in one frame) is split
// into one job per call on the same queue, so its calls run concurrently on
// the workers exactly as single calls do; the worker that finishes the last
// one sends one BranchReplyBatch with the replies in call order. nng's
// callbacks never decode, never run user code and never block: they only
// move a context between "receiving", "queued" and "sending".
//
// A reply that rests on barrier writes not synced yet (its ticket,
// dtx_reply.durable; barrier.c says why) is encoded at once and parked on
// its context in the group commit (gcommit.h), which sends it after the
// sync that covers it; the worker goes on with the next call. A batch's
// reply waits for the highest ticket of its calls.
//
// Lock order: two locks, never nested. dtxi_serve.mtx guards the work
// queue and the stop flag; it is never held while calling into nng or user
// code. dtxi_serve.io_lock (a rwlock) is held for reading around every
// nng_ctx_send/nng_ctx_recv, which are only posted while "closing" is false,
// and for writing when stop sets "closing": once that write lock is
// released no nng call on a context is in progress or can start, so
// nng_close never races with one (nng 1.5.2 panics on a context operation
// that runs concurrently with the close of its socket).

#include "serve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "clock.h"
#include "gcommit.h"
#include "link.h"
#include "log.h"
#include "reply.h"
#include "strs.h"
#include "transport.h"

// Room for everything in a BranchCall that is not the payload.
#define FRAME_OVERHEAD (64u * 1024u)
// A batch reply may carry up to max_payload plus this much: room for 64
// messages and framing, so a batch never costs more than one full single
// reply plus change (dtxd's dispatcher accepts max_payload + 64 KiB).
#define BATCH_REPLY_SLACK (32u * 1024u)
// What one item costs in a batch reply besides its payload and message:
// tags, lengths and the status at their widest.
#define BATCH_ITEM_OVERHEAD 24u
// An item whose reply does not fit is answered with a short RETRY; this
// bounds its encoded size, and is kept in reserve for every later item.
#define BATCH_STUB_BYTES 128u

typedef struct pbatch pbatch;

// A unit of work on the queue: a received frame (batch == NULL) on context
// c, or call number index of a batch.
typedef struct job {
	struct job  *next; // queue link
	struct pctx *c;
	pbatch      *batch;
	uint32_t     index;
} job;

// One call of a batch and, once run, its reply.
typedef struct bitem {
	job       job;
	dtxi_call call; // payload points into the batch's request frame
	int       status;
	char      message[DTX_MESSAGE_MAX + 1];
	void     *payload; // malloc'd by dtx_reply_set_payload, or NULL
	size_t    len;
	uint64_t  durable; // group commit ticket of its reply, 0: none
} bitem;

// A batch being served. It owns the request frame (the calls' payloads
// point into it) and is freed by whoever ends its last item: the worker
// that sends the reply, or close dropping queued items.
struct pbatch {
	struct pctx *c;
	nng_msg     *req;
	int64_t      recv_ms; // monotonic time the frame was received
	atomic_uint  left;    // items not run yet
	uint32_t     n;
	bitem        items[];
};

// One nng context and its aio. While a request is being served it is owned
// by exactly one party: nng (receive or send posted), the queue, a worker,
// or the group commit (its reply parked until durable).
typedef struct pctx {
	dtxi_serve *s;
	nng_ctx     ctx;
	nng_aio    *aio;
	bool        sending; // the posted operation is a send
	nng_msg    *req;     // the request, while queued or in a worker
	int64_t     recv_ms; // monotonic time req was received
	job         job;     // its place on the queue
	dtxi_gwait  wait;    // its parked reply's place in the group commit
	nng_msg    *parked;  // that reply
} pctx;

typedef struct worker {
	dtxi_serve      *s;
	pthread_t        thread;
	dtxi_request     req;  // decoded request (large: kept off the stack)
	const dtxi_call *call; // the call run_call runs
	int64_t          recv_ms; // monotonic time its frame was received
	dtxi_reply       rep;     // reply being encoded
	dtx_reply        reply;
} worker;

struct dtxi_serve {
	dtxi_serve_opts o;
	dtxi_serve_fn   run;
	void           *arg;

	atomic_bool closing;
	dtxi_watch *watch; // logs the listener's refused handshakes
	nng_socket  sock;
	bool        sock_open;
	pctx       *ctxs;
	unsigned    nctxs; // contexts whose aio was allocated
	worker     *workers;
	unsigned    nthreads; // workers whose thread was started

	pthread_rwlock_t io_lock; // see the lock order above
	pthread_mutex_t  mtx;
	pthread_cond_t   cv;
	job             *qhead; // work queue, guarded by mtx
	job             *qtail;
	bool             stop; // guarded by mtx
};

// Posts the next receive on a context, unless serving is stopping.
static void
pctx_recv(pctx *c)
{
	pthread_rwlock_rdlock(&c->s->io_lock);
	if (!atomic_load(&c->s->closing)) {
		c->sending = false;
		nng_ctx_recv(c->ctx, c->aio);
	}
	pthread_rwlock_unlock(&c->s->io_lock);
}

// Sends msg on a context; when serving is stopping, frees it instead.
static void
pctx_send(pctx *c, nng_msg *msg)
{
	pthread_rwlock_rdlock(&c->s->io_lock);
	if (!atomic_load(&c->s->closing)) {
		c->sending = true;
		nng_aio_set_msg(c->aio, msg);
		nng_ctx_send(c->ctx, c->aio);
		msg = NULL;
	}
	pthread_rwlock_unlock(&c->s->io_lock);
	if (msg != NULL) {
		nng_msg_free(msg);
	}
}

// The aio callback of a context, on an nng thread. A completed receive is
// queued for the workers; a completed send posts the next receive. A send
// that failed still owns its message, which is freed here. Errors other than
// "closed" (a peer that went away mid-request, say) only cost that request:
// the context goes back to receiving.
static void
pctx_cb(void *arg)
{
	pctx       *c  = arg;
	dtxi_serve *s  = c->s;
	int         rv = nng_aio_result(c->aio);
	nng_msg    *msg;

	if (c->sending) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
		}
		pctx_recv(c);
		return;
	}
	if (rv != 0) {
		if (rv != NNG_ECLOSED && rv != NNG_ECANCELED &&
		    !atomic_load(&s->closing)) {
			DTXI_WARN("participant: receive failed: %s",
			    nng_strerror(rv));
			pctx_recv(c);
		}
		return;
	}
	msg = nng_aio_get_msg(c->aio);
	nng_aio_set_msg(c->aio, NULL);
	pthread_mutex_lock(&s->mtx);
	if (s->stop) {
		pthread_mutex_unlock(&s->mtx);
		nng_msg_free(msg);
		return;
	}
	c->req       = msg;
	c->recv_ms   = dtxi_mono_ms();
	c->job.next  = NULL;
	c->job.c     = c;
	c->job.batch = NULL;
	if (s->qtail != NULL) {
		s->qtail->next = &c->job;
	} else {
		s->qhead = &c->job;
	}
	s->qtail = &c->job;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
}

static void
reply_error(dtxi_reply *rep, int code, const char *why)
{
	rep->code = code;
	rep->kind = DTXI_REP_NONE;
	dtxi_strlcpy(rep->message, why, sizeof(rep->message));
}

// Runs the call of w (single or batched) and fills w->rep with its
// branch reply.
static void
run_call(worker *w)
{
	w->rep.code       = 0;
	w->rep.kind       = DTXI_REP_BRANCH;
	w->rep.message[0] = '\0';
	w->s->run(w->s->arg, w->call, w->recv_ms, &w->reply, &w->rep.u.branch);
}

// The group commit's completion of a parked reply (on its thread): sends
// it, or, when the sync failed, an error reply instead (the reply may
// claim a write that is lost): dtxd calls again.
static void
parked_done(void *arg, int err)
{
	pctx       *c   = arg;
	nng_msg    *msg = c->parked;
	dtxi_reply *rep;

	c->parked = NULL;
	if (err == 0) {
		pctx_send(c, msg);
		return;
	}
	nng_msg_free(msg);
	msg = NULL;
	if ((rep = calloc(1, sizeof(*rep))) != NULL) {
		rep->version = DTX_PROTOCOL_VERSION;
		reply_error(rep, err,
		    "participant barrier: syncing its store failed; restart "
		    "the participant");
		if (dtxi_transport_encode_reply(rep, &msg) != 0) {
			msg = NULL;
		}
		free(rep);
	}
	if (msg != NULL) {
		pctx_send(c, msg);
	} else {
		pctx_recv(c);
	}
}

// Encodes w->rep and sends it on c, at once or, when it rests on writes
// not durable yet (durable, a group commit ticket), once they are. A
// branch reply the codec refuses is replaced by an error reply that says
// so; with no reply at all the coordinator times out and calls again.
static void
send_reply(worker *w, pctx *c, uint64_t durable)
{
	nng_msg *rep = NULL;
	int      rv  = dtxi_transport_encode_reply(&w->rep, &rep);

	if (rv != 0 && w->rep.kind != DTXI_REP_NONE) {
		DTXI_ERROR("participant: cannot encode a reply: %s",
		    dtx_strerror(rv));
		reply_error(&w->rep, DTX_EINTERNAL, "cannot encode the reply");
		rv = dtxi_transport_encode_reply(&w->rep, &rep);
	}
	if (rv != 0) {
		pctx_recv(c);
		return;
	}
	if (durable != 0 && w->s->o.gc != NULL) {
		c->parked      = rep;
		c->wait.ticket = durable;
		c->wait.done   = parked_done;
		c->wait.arg    = c;
		if (dtxi_gcommit_after(w->s->o.gc, &c->wait)) {
			return;
		}
		c->parked = NULL;
	}
	pctx_send(c, rep);
}

static void
batch_free(pbatch *b)
{
	for (uint32_t i = 0; i < b->n; i++) {
		free(b->items[i].payload);
	}
	nng_msg_free(b->req);
	free(b);
}

// Builds the BranchReplyBatch of a finished batch in w->rep, in call order.
// The frame must stay under max_payload + BATCH_REPLY_SLACK whatever the
// callbacks answered (64 replies of max_payload each would not): replies
// are taken in order while they fit, keeping BATCH_STUB_BYTES in reserve for
// each later one; one that does not fit is answered RETRY with a message
// instead. The callback did run, so RETRY is the honest answer: dtxd calls
// again (in a smaller batch, or alone, where it always fits) and an
// idempotent participant answers the same.
static void
batch_reply(worker *w, pbatch *b)
{
	size_t budget = w->s->o.max_payload + BATCH_REPLY_SLACK -
	    (DTX_MESSAGE_MAX + 64); // the envelope
	size_t used = 0;

	w->rep.version    = DTX_PROTOCOL_VERSION;
	w->rep.code       = 0;
	w->rep.message[0] = '\0';
	w->rep.kind       = DTXI_REP_BRANCH_BATCH;
	w->rep.u.batch.n  = b->n;
	for (uint32_t i = 0; i < b->n; i++) {
		bitem             *it = &b->items[i];
		dtxi_branch_reply *r  = &w->rep.u.batch.replies[i];
		size_t             cost =
		    it->len + strlen(it->message) + BATCH_ITEM_OVERHEAD;
		size_t reserve = (size_t)(b->n - i - 1) * BATCH_STUB_BYTES;

		if (used + cost + reserve <= budget) {
			r->status = it->status;
			dtxi_strlcpy(
			    r->message, it->message, sizeof(r->message));
			r->payload.ptr = it->payload;
			r->payload.len = it->len;
			used += cost;
			continue;
		}
		DTXI_WARN("participant: reply %u of a batch of %u (%zu bytes) "
		          "does not fit in the batch reply",
		    (unsigned)i, (unsigned)b->n, it->len);
		r->status = DTX_BRANCH_RETRY;
		snprintf(r->message, sizeof(r->message),
		    "reply of %zu bytes did not fit in the batch reply; call "
		    "again",
		    it->len);
		r->payload.ptr = NULL;
		r->payload.len = 0;
		used += BATCH_STUB_BYTES;
	}
}

// The ticket a batch's reply waits for: the highest of its calls'. The
// calls' writes ended before their items did, so all are at or below it.
static uint64_t
batch_durable(const pbatch *b)
{
	uint64_t t = 0;

	for (uint32_t i = 0; i < b->n; i++) {
		if (b->items[i].durable > t) {
			t = b->items[i].durable;
		}
	}
	return t;
}

// Runs call number i of batch b. The worker that ends the last call sends
// the batch's reply and frees it.
static void
run_item(worker *w, pbatch *b, uint32_t i)
{
	bitem *it = &b->items[i];

	dtxi_reply_reset(&w->reply);
	w->call    = &it->call;
	w->recv_ms = b->recv_ms;
	if (it->call.payload.len > w->s->o.max_payload) {
		// A single call this size is refused whole (ETOOBIG, which
		// dtxd reports as BAD_REQUEST); in a batch only this call is.
		char why[DTX_MESSAGE_MAX + 1];
		snprintf(why, sizeof(why),
		    "payload of batched call %u is %zu bytes, limit %zu",
		    (unsigned)i, it->call.payload.len, w->s->o.max_payload);
		w->rep.kind = DTXI_REP_BRANCH;
		dtxi_reply_answer(
		    &w->rep.u.branch, DTX_BRANCH_BAD_REQUEST, why, NULL, 0);
	} else {
		run_call(w);
	}
	it->status = w->rep.u.branch.status;
	dtxi_strlcpy(
	    it->message, w->rep.u.branch.message, sizeof(it->message));
	// The reply payload, if any, is w->reply's: the item takes it over.
	it->len     = w->rep.u.branch.payload.len;
	it->durable = w->reply.durable;
	it->payload = NULL;
	if (it->len > 0) {
		size_t len;
		it->payload = dtxi_reply_take_payload(&w->reply, &len);
	}
	dtxi_reply_reset(&w->reply);

	if (atomic_fetch_sub(&b->left, 1) != 1) {
		return;
	}
	batch_reply(w, b);
	send_reply(w, b->c, batch_durable(b));
	batch_free(b);
}

// Turns a decoded batch (in w->req, its payloads in req) into jobs: every
// call but the first goes on the queue for any worker, the first runs here.
// On error nothing was queued and the caller still owns req.
static int
start_batch(worker *w, pctx *c, nng_msg *req)
{
	dtxi_serve            *s  = w->s;
	const dtxi_call_batch *in = &w->req.u.batch;
	pbatch                *b;

	b = malloc(sizeof(*b) + in->n * sizeof(b->items[0]));
	if (b == NULL) {
		return DTX_ENOMEM;
	}
	b->c       = c;
	b->req     = req;
	b->recv_ms = c->recv_ms;
	b->n       = in->n;
	atomic_init(&b->left, in->n);
	for (uint32_t i = 0; i < in->n; i++) {
		bitem *it      = &b->items[i];
		it->job.next   = NULL;
		it->job.c      = c;
		it->job.batch  = b;
		it->job.index  = i;
		it->call       = in->calls[i];
		it->status     = 0;
		it->message[0] = '\0';
		it->payload    = NULL;
		it->len        = 0;
		it->durable    = 0;
	}
	if (b->n > 1) {
		pthread_mutex_lock(&s->mtx);
		for (uint32_t i = 1; i < b->n; i++) {
			job *j = &b->items[i].job;
			if (s->qtail != NULL) {
				s->qtail->next = j;
			} else {
				s->qhead = j;
			}
			s->qtail = j;
		}
		if (b->n > 2) {
			pthread_cond_broadcast(&s->cv);
		} else {
			pthread_cond_signal(&s->cv);
		}
		pthread_mutex_unlock(&s->mtx);
	}
	run_item(w, b, 0);
	return 0;
}

// Serves the frame queued on c: decodes it, runs a single call here or
// starts a batch, and sends the reply (a batch's goes when its last call
// ends).
static void
serve(worker *w, pctx *c)
{
	dtxi_serve *s   = w->s;
	nng_msg    *req = c->req;
	char        why[DTX_MESSAGE_MAX + 1];
	int         rv;

	c->req         = NULL;
	w->rep.version = DTX_PROTOCOL_VERSION;
	why[0]         = '\0';
	dtxi_reply_reset(&w->reply);

	// Payloads are checked against max_payload below, not by the
	// decoder: one oversized call must not sink the rest of its batch.
	rv = dtxi_request_decode(&w->req, nng_msg_body(req), nng_msg_len(req),
	    s->o.max_payload + FRAME_OVERHEAD,
	    s->o.max_payload + FRAME_OVERHEAD, why);
	if (rv == 0 && w->req.kind == DTXI_REQ_CALL &&
	    w->req.u.call.payload.len > s->o.max_payload) {
		rv = DTX_ETOOBIG;
		snprintf(why, sizeof(why),
		    "payload of the branch call is %zu bytes, limit %zu",
		    w->req.u.call.payload.len, s->o.max_payload);
	}
	if (rv != 0) {
		DTXI_WARN("participant: bad request (%s): %s",
		    dtx_strerror(rv), why);
		reply_error(&w->rep, rv, why);
	} else if (w->req.kind == DTXI_REQ_CALL_BATCH) {
		if ((rv = start_batch(w, c, req)) == 0) {
			return;
		}
		reply_error(&w->rep, rv, "cannot take the batch");
	} else if (w->req.kind != DTXI_REQ_CALL) {
		DTXI_WARN("participant: request of kind %d is not a call",
		    (int)w->req.kind);
		reply_error(
		    &w->rep, DTX_EUNSUPPORTED, "not a participant request");
	} else {
		w->call    = &w->req.u.call;
		w->recv_ms = c->recv_ms;
		run_call(w);
	}
	send_reply(w, c, w->reply.durable);
	dtxi_reply_reset(&w->reply);
	nng_msg_free(req);
}

static void *
worker_main(void *arg)
{
	worker     *w = arg;
	dtxi_serve *s = w->s;

	for (;;) {
		job *j;

		pthread_mutex_lock(&s->mtx);
		while (!s->stop && s->qhead == NULL) {
			pthread_cond_wait(&s->cv, &s->mtx);
		}
		if (s->stop) {
			pthread_mutex_unlock(&s->mtx);
			break;
		}
		j        = s->qhead;
		s->qhead = j->next;
		if (s->qhead == NULL) {
			s->qtail = NULL;
		}
		pthread_mutex_unlock(&s->mtx);
		if (j->batch != NULL) {
			run_item(w, j->batch, j->index);
		} else {
			serve(w, j->c);
		}
	}
	dtxi_reply_reset(&w->reply);
	return NULL;
}

// Undoes whatever start built, in the only safe order: close the socket
// (every posted operation completes with NNG_ECLOSED), stop the workers
// (a running callback is waited for; queued frames and batch calls are
// dropped), let the group commit complete the replies parked in it (they
// are dropped, the socket being closed), stop every aio (waits for its
// callback, so nothing can queue any more), free what the queue still
// holds, then free the aios.
static void
serve_stop(dtxi_serve *s)
{
	pthread_rwlock_wrlock(&s->io_lock);
	atomic_store(&s->closing, true);
	pthread_rwlock_unlock(&s->io_lock);
	if (s->sock_open) {
		nng_close(s->sock);
		s->sock_open = false;
	}
	dtxi_watch_close(s->watch);
	s->watch = NULL;
	pthread_mutex_lock(&s->mtx);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	for (unsigned i = 0; i < s->nthreads; i++) {
		pthread_join(s->workers[i].thread, NULL);
	}
	s->nthreads = 0;
	if (s->o.gc != NULL) {
		dtxi_gcommit_flush(s->o.gc);
	}
	for (unsigned i = 0; i < s->nctxs; i++) {
		nng_aio_stop(s->ctxs[i].aio);
	}
	while (s->qhead != NULL) {
		job *j   = s->qhead;
		s->qhead = j->next;
		if (j->batch == NULL) {
			nng_msg_free(j->c->req);
			j->c->req = NULL;
		} else if (atomic_fetch_sub(&j->batch->left, 1) == 1) {
			// Its other calls ran: nobody is left to answer.
			batch_free(j->batch);
		}
	}
	s->qtail = NULL;
	for (unsigned i = 0; i < s->nctxs; i++) {
		nng_aio_free(s->ctxs[i].aio);
	}
	s->nctxs = 0;
	free(s->ctxs);
	s->ctxs = NULL;
	free(s->workers);
	s->workers = NULL;
}

int
dtxi_serve_start(dtxi_serve **sp, const char *url, const dtxi_serve_opts *o,
    dtxi_serve_fn run, void *arg, char *why)
{
	dtxi_serve *s;
	int         rv;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return DTX_ENOMEM;
	}
	if (pthread_mutex_init(&s->mtx, NULL) != 0) {
		free(s);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&s->cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mtx);
		free(s);
		return DTX_ENOMEM;
	}
	if (pthread_rwlock_init(&s->io_lock, NULL) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mtx);
		free(s);
		return DTX_ENOMEM;
	}
	s->o   = *o;
	s->run = run;
	s->arg = arg;
	atomic_init(&s->closing, false);

	if ((rv = dtxi_watch_open(&s->watch, 0)) != 0) {
		goto fail;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		rv = dtxi_transport_err(rv, "participant: opening the socket");
		goto fail;
	}
	s->sock_open = true;
	// Twice the largest valid frame: a moderately oversized call still
	// reaches the decoder and gets a readable error reply, an absurd one
	// is dropped by nng before it costs memory. Never below what a dtxd
	// with the default payload limit sends: a participant with a smaller
	// limit answers those calls DTX_ETOOBIG rather than dropping the
	// connection, because in nng 1.5.2 a dropped connection can leave the
	// sender's socket stuck (transport.h, DTXI_FRAME_MAX_DEFAULT).
	size_t payload = o->max_payload;
	if (payload < DTX_PAYLOAD_MAX_DEFAULT) {
		payload = DTX_PAYLOAD_MAX_DEFAULT;
	}
	rv = nng_socket_set_size(
	    s->sock, NNG_OPT_RECVMAXSZ, 2 * (payload + FRAME_OVERHEAD));
	if (rv != 0) {
		rv = dtxi_transport_err(
		    rv, "participant: setting the receive limit");
		goto fail;
	}

	s->ctxs    = calloc(o->contexts, sizeof(s->ctxs[0]));
	s->workers = calloc(o->workers, sizeof(s->workers[0]));
	if (s->ctxs == NULL || s->workers == NULL) {
		rv = DTX_ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < o->contexts; i++) {
		pctx *c = &s->ctxs[i];

		c->s = s;
		if ((rv = nng_aio_alloc(&c->aio, pctx_cb, c)) != 0) {
			rv = dtxi_transport_err(
			    rv, "participant: allocating an aio");
			goto fail;
		}
		s->nctxs++;
		if ((rv = nng_ctx_open(&c->ctx, s->sock)) != 0) {
			rv = dtxi_transport_err(
			    rv, "participant: opening a context");
			goto fail;
		}
	}
	for (unsigned i = 0; i < o->workers; i++) {
		worker *w = &s->workers[i];

		w->s                 = s;
		w->reply.max_payload = o->max_payload;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			rv = DTX_ENOMEM;
			goto fail;
		}
		s->nthreads++;
	}
	char reason[DTX_MESSAGE_MAX + 1];
	if ((rv = dtxi_listen(s->watch, s->sock, url, o->tls, 0,
	         "participant listener", reason, sizeof(reason))) != 0) {
		snprintf(
		    why, DTX_MESSAGE_MAX + 1, "cannot listen: %.240s", reason);
		DTXI_WARN("participant: %s", why);
		goto fail;
	}
	for (unsigned i = 0; i < s->nctxs; i++) {
		pctx_recv(&s->ctxs[i]);
	}
	*sp = s;
	return 0;

fail:
	dtxi_serve_stop(s);
	return rv;
}

void
dtxi_serve_stop(dtxi_serve *s)
{
	if (s == NULL) {
		return;
	}
	serve_stop(s);
	pthread_rwlock_destroy(&s->io_lock);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mtx);
	free(s);
}
