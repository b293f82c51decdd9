// SPDX-License-Identifier: MIT
//
// participant: the server side of libdtx. One REP socket with many nng
// contexts receives BranchCalls from dtxd; each received frame is handed to a
// pool of worker threads that decode it, run the registered callback (which
// may block on the service's own database) and send the encoded reply back
// on the context it came from. A BranchCallBatch (several calls that dtxd
// sends one participant in one frame) is split into one job per call on the
// same queue, so its calls run concurrently on the workers exactly as single
// calls do; the worker that finishes the last one sends one BranchReplyBatch
// with the replies in call order. nng's callbacks never decode, never run user
// code and never block: they only move a context between "receiving",
// "queued" and "sending". This file and client.c are the only ones that
// touch nng.
//
// Lock order: two locks, never nested. dtx_participant.mtx guards the work
// queue and the stop flag; it is never held while calling into nng or user
// code. dtx_participant.io_lock (a rwlock) is held for reading around every
// nng_ctx_send/nng_ctx_recv, which are only posted while "closing" is false,
// and for writing when close sets "closing": once that write lock is
// released no nng call on a context is in progress or can start, so
// nng_close never races with one (nng 1.5.2 panics on a context operation
// that runs concurrently with the close of its socket). The method table
// needs no lock: it is written before listen only and is immutable
// afterwards.

#include <dtx/dtx.h>

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "barrier.h"
#include "clock.h"
#include "codec.h"
#include "crashpoint.h"
#include "log.h"
#include "reply.h"
#include "strs.h"
#include "transport.h"

#define DEFAULT_WORKERS  4
#define MAX_WORKERS      256
#define DEFAULT_CONTEXTS 64
#define MAX_CONTEXTS     4096
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
// Largest payload limit we accept: twice (limit + overhead) must stay far
// from SIZE_MAX and be something nng can buffer.
#define MAX_PAYLOAD_LIMIT (1024u * 1024u * 1024u)

typedef struct method {
	char           name[DTX_METHOD_MAX + 1];
	dtx_method_ops ops;
	void          *arg;
	void          *owned; // arg, when the participant made it (freed)
} method;

typedef struct dtx_participant dtx_participant;
typedef struct pbatch          pbatch;

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
// by exactly one party: nng (receive or send posted), the queue, or a worker.
typedef struct pctx {
	dtx_participant *p;
	nng_ctx          ctx;
	nng_aio         *aio;
	bool             sending; // the posted operation is a send
	nng_msg         *req;     // the request, while queued or in a worker
	int64_t          recv_ms; // monotonic time req was received
	job              job;     // its place on the queue
} pctx;

typedef struct worker {
	dtx_participant *p;
	pthread_t        thread;
	dtxi_request     req;  // decoded request (large: kept off the stack)
	const dtxi_call *call; // the call run_call runs
	int64_t          recv_ms; // monotonic time its frame was received
	dtxi_reply       rep;     // reply being encoded
	dtx_reply        reply;
} worker;

struct dtx_participant {
	unsigned nworkers;
	unsigned ncontexts;
	size_t   max_payload;

	method  *methods; // sorted by name, immutable once listening
	unsigned nmethods;
	unsigned capmethods;

	bool        listening;
	atomic_bool closing;
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

	dtxi_barrier *barrier; // NULL: callbacks run unguarded
	dtxi_crash    crash;   // DTX_PARTICIPANT_CRASH_AT, read at listen
	char          message[DTX_MESSAGE_MAX + 1]; // why the last call failed
};

static bool
method_name_ok(const char *s)
{
	size_t n;

	if (s == NULL) {
		return false;
	}
	n = strnlen(s, DTX_METHOD_MAX + 1);
	if (n == 0 || n > DTX_METHOD_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch > 0x7e) {
			return false;
		}
	}
	return true;
}

// Binary search; *at receives the insertion point when not found.
static method *
method_find(const dtx_participant *p, const char *name, unsigned *at)
{
	unsigned lo = 0;
	unsigned hi = p->nmethods;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int      c   = strcmp(name, p->methods[mid].name);
		if (c == 0) {
			return &p->methods[mid];
		}
		if (c < 0) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	if (at != NULL) {
		*at = lo;
	}
	return NULL;
}

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

int
dtx_participant_open(dtx_participant **pp)
{
	dtx_participant *p;

	if (pp == NULL) {
		return DTX_EINVAL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return DTX_ENOMEM;
	}
	if (pthread_mutex_init(&p->mtx, NULL) != 0) {
		free(p);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&p->cv, NULL) != 0) {
		pthread_mutex_destroy(&p->mtx);
		free(p);
		return DTX_ENOMEM;
	}
	if (pthread_rwlock_init(&p->io_lock, NULL) != 0) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mtx);
		free(p);
		return DTX_ENOMEM;
	}
	p->nworkers    = DEFAULT_WORKERS;
	p->ncontexts   = DEFAULT_CONTEXTS;
	p->max_payload = DTX_PAYLOAD_MAX_DEFAULT;
	atomic_init(&p->closing, false);
	*pp = p;
	return 0;
}

int
dtx_participant_set_workers(dtx_participant *p, unsigned n)
{
	if (p == NULL || n == 0 || n > MAX_WORKERS) {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return DTX_ESTATE;
	}
	p->nworkers = n;
	return 0;
}

int
dtx_participant_set_contexts(dtx_participant *p, unsigned n)
{
	if (p == NULL || n == 0 || n > MAX_CONTEXTS) {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return DTX_ESTATE;
	}
	p->ncontexts = n;
	return 0;
}

int
dtx_participant_set_max_payload(dtx_participant *p, size_t n)
{
	if (p == NULL || n == 0 || n > MAX_PAYLOAD_LIMIT) {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return DTX_ESTATE;
	}
	p->max_payload = n;
	return 0;
}

// Refuses a call on p with rv, keeping the reason for
// dtx_participant_message().
static int
refuse(dtx_participant *p, int rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
	DTXI_WARN("participant: %s", p->message);
	return rv;
}

// Adds a method to the table; on success it owns owned (may be NULL).
static int
method_add(dtx_participant *p, const char *name, const dtx_method_ops *ops,
    void *arg, void *owned)
{
	method  *m;
	unsigned at = 0;

	if (p->listening) {
		return refuse(p, DTX_ESTATE,
		    "method %s: the participant is already listening", name);
	}
	if (method_find(p, name, &at) != NULL) {
		return refuse(
		    p, DTX_EEXIST, "method %s is already registered", name);
	}
	if (p->nmethods == p->capmethods) {
		unsigned cap = p->capmethods == 0 ? 8 : p->capmethods * 2;
		method  *nm  = realloc(p->methods, cap * sizeof(*nm));
		if (nm == NULL) {
			return DTX_ENOMEM;
		}
		p->methods    = nm;
		p->capmethods = cap;
	}
	memmove(&p->methods[at + 1], &p->methods[at],
	    (p->nmethods - at) * sizeof(p->methods[0]));
	m = &p->methods[at];
	dtxi_strlcpy(m->name, name, sizeof(m->name));
	m->ops   = *ops;
	m->arg   = arg;
	m->owned = owned;
	p->nmethods++;
	return 0;
}

int
dtx_participant_register(
    dtx_participant *p, const char *name, const dtx_method_ops *ops, void *arg)
{
	if (p == NULL) {
		return DTX_EINVAL;
	}
	p->message[0] = '\0';
	if (ops == NULL || !method_name_ok(name)) {
		return refuse(p, DTX_EINVAL,
		    "no callbacks, or a method name that is not 1-%d "
		    "printable "
		    "ASCII bytes",
		    DTX_METHOD_MAX);
	}
	if (ops->prepare == NULL && ops->commit == NULL &&
	    ops->abort == NULL && ops->execute == NULL &&
	    ops->compensate == NULL) {
		return refuse(
		    p, DTX_EINVAL, "method %s has no callback", name);
	}
	return method_add(p, name, ops, arg, NULL);
}

int
dtx_participant_register_method(dtx_participant *p, const dtx_method_desc *m,
    const dtx_method_ops *ops, const void *ctx, size_t len)
{
	static const struct {
		unsigned    mode;
		const char *phase;
		size_t      off;
	} need[] = {
	    {DTX_2PC, "prepare", offsetof(dtx_method_ops, prepare)},
	    {DTX_2PC, "commit", offsetof(dtx_method_ops, commit)},
	    {DTX_2PC, "abort", offsetof(dtx_method_ops, abort)},
	    {DTX_SAGA, "execute", offsetof(dtx_method_ops, execute)},
	    {DTX_SAGA, "compensate", offsetof(dtx_method_ops, compensate)},
	};
	void *copy = NULL;
	int   rv;

	if (p == NULL) {
		return DTX_EINVAL;
	}
	p->message[0] = '\0';
	if (m == NULL || ops == NULL || !method_name_ok(m->name) ||
	    (ctx == NULL && len > 0)) {
		return refuse(p, DTX_EINVAL,
		    "no method, no callbacks, or a method name that is not "
		    "1-%d printable ASCII bytes",
		    DTX_METHOD_MAX);
	}
	if (m->modes == 0 || (m->modes & ~(unsigned)(DTX_2PC | DTX_SAGA))) {
		return refuse(p, DTX_EINVAL,
		    "method %s: modes %u are not DTX_2PC, DTX_SAGA or both",
		    m->name, m->modes);
	}
	// Missing callbacks first (the likelier mistake), then extra ones.
	for (int extra = 0; extra < 2; extra++) {
		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
			dtx_phase_fn fn;
			bool         want = (m->modes & need[i].mode) != 0;

			memcpy(
			    &fn, (const char *)ops + need[i].off, sizeof(fn));
			if (!extra && want && fn == NULL) {
				return refuse(p, DTX_EINVAL,
				    "method %s (%s) has no %s callback",
				    m->name,
				    m->modes == (DTX_2PC | DTX_SAGA)
				        ? "2pc and saga"
				        : dtx_mode_name((int)m->modes),
				    need[i].phase);
			}
			if (extra && !want && fn != NULL) {
				return refuse(p, DTX_EINVAL,
				    "method %s is not a %s method but has a "
				    "%s callback",
				    m->name, dtx_mode_name((int)need[i].mode),
				    need[i].phase);
			}
		}
	}
	if (len > 0) {
		if ((copy = malloc(len)) == NULL) {
			return DTX_ENOMEM;
		}
		memcpy(copy, ctx, len);
	}
	if ((rv = method_add(p, m->name, ops, copy, copy)) != 0) {
		free(copy);
	}
	return rv;
}

const char *
dtx_participant_message(const dtx_participant *p)
{
	return p != NULL ? p->message : "";
}

int
dtx_participant_use_barrier(
    dtx_participant *p, rocksdb_t *db, const dtx_barrier_opts *o)
{
	if (p == NULL || db == NULL) {
		return DTX_EINVAL;
	}
	if (p->listening || p->barrier != NULL) {
		return DTX_ESTATE;
	}
	return dtxi_barrier_alloc(&p->barrier, db, o, &p->crash);
}

int
dtx_participant_set_resolver(
    dtx_participant *p, const char *url, uint32_t after_ms)
{
	if (p == NULL || url == NULL || url[0] == '\0' || after_ms == 0) {
		return DTX_EINVAL;
	}
	if (p->listening || p->barrier == NULL) {
		return DTX_ESTATE;
	}
	return dtxi_barrier_set_resolver(p->barrier, url, after_ms);
}

// Posts the next receive on a context, unless the participant is closing.
static void
pctx_recv(pctx *c)
{
	pthread_rwlock_rdlock(&c->p->io_lock);
	if (!atomic_load(&c->p->closing)) {
		c->sending = false;
		nng_ctx_recv(c->ctx, c->aio);
	}
	pthread_rwlock_unlock(&c->p->io_lock);
}

// Sends msg on a context; when the participant is closing, frees it instead.
static void
pctx_send(pctx *c, nng_msg *msg)
{
	pthread_rwlock_rdlock(&c->p->io_lock);
	if (!atomic_load(&c->p->closing)) {
		c->sending = true;
		nng_aio_set_msg(c->aio, msg);
		nng_ctx_send(c->ctx, c->aio);
		msg = NULL;
	}
	pthread_rwlock_unlock(&c->p->io_lock);
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
	pctx            *c  = arg;
	dtx_participant *p  = c->p;
	int              rv = nng_aio_result(c->aio);
	nng_msg         *msg;

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
		    !atomic_load(&p->closing)) {
			DTXI_WARN("participant: receive failed: %s",
			    nng_strerror(rv));
			pctx_recv(c);
		}
		return;
	}
	msg = nng_aio_get_msg(c->aio);
	nng_aio_set_msg(c->aio, NULL);
	pthread_mutex_lock(&p->mtx);
	if (p->stop) {
		pthread_mutex_unlock(&p->mtx);
		nng_msg_free(msg);
		return;
	}
	c->req       = msg;
	c->recv_ms   = dtxi_mono_ms();
	c->job.next  = NULL;
	c->job.c     = c;
	c->job.batch = NULL;
	if (p->qtail != NULL) {
		p->qtail->next = &c->job;
	} else {
		p->qhead = &c->job;
	}
	p->qtail = &c->job;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mtx);
}

static void
reply_error(dtxi_reply *rep, int code, const char *why)
{
	rep->code = code;
	rep->kind = DTXI_REP_NONE;
	dtxi_strlcpy(rep->message, why, sizeof(rep->message));
}

static void
reply_branch(
    dtxi_reply *rep, int status, const char *msg, const void *data, size_t len)
{
	rep->code                 = 0;
	rep->kind                 = DTXI_REP_BRANCH;
	rep->message[0]           = '\0';
	rep->u.branch.status      = status;
	rep->u.branch.payload.ptr = data;
	rep->u.branch.payload.len = len;
	dtxi_strlcpy(
	    rep->u.branch.message, msg, sizeof(rep->u.branch.message));
}

static dtx_phase_fn
phase_fn(const dtx_method_ops *ops, int phase)
{
	switch (phase) {
	case DTX_PHASE_PREPARE:
		return ops->prepare;
	case DTX_PHASE_COMMIT:
		return ops->commit;
	case DTX_PHASE_ABORT:
		return ops->abort;
	case DTX_PHASE_EXECUTE:
		return ops->execute;
	case DTX_PHASE_COMPENSATE:
		return ops->compensate;
	default:
		return NULL;
	}
}

// Runs one callback: through the barrier when there is one (which also
// passes the crash points around its write), else directly, with the crash
// points around the callback itself.
static dtx_result
run_guarded(dtx_participant *p, const dtx_call *dc, dtx_phase_fn fn, void *arg,
    dtx_reply *reply)
{
	dtx_result res;

	if (p->barrier != NULL) {
		return dtxi_barrier_call(p->barrier, dc, fn, arg, reply);
	}
	dtxi_crash_point(&p->crash, DTXI_CRASH_BEFORE_BUSINESS_WRITE);
	res = fn(dc, reply, arg);
	dtxi_crash_point(&p->crash, DTXI_CRASH_AFTER_BUSINESS_WRITE);
	return res;
}

// The resolver's way to run a phase as if dtxd had called: the same method
// lookup as a delivery, then the barrier.
static dtx_result
run_resolved(void *arg, const dtx_call *dc, dtx_reply *reply)
{
	dtx_participant *p = arg;
	const method    *m = method_find(p, dc->method, NULL);
	dtx_phase_fn     fn;

	if (m == NULL || (fn = phase_fn(&m->ops, dc->phase)) == NULL) {
		DTXI_ERROR("participant: cannot settle %s/%u: method %s has "
		           "no %s callback",
		    dc->gid, (unsigned)dc->branch_id, dc->method,
		    dtx_phase_name(dc->phase));
		return DTX_RETRY;
	}
	return dtxi_barrier_call(p->barrier, dc, fn, m->arg, reply);
}

// Runs the callback for one decoded BranchCall (w->call) and fills w->rep.
// The reply's payload points into w->reply, which stays alive until the
// reply is encoded. Single and batched calls both come through here.
static void
run_call(worker *w)
{
	dtx_participant *p    = w->p;
	const dtxi_call *call = w->call;
	const method    *m;
	dtx_phase_fn     fn;
	dtx_call         dc;
	dtx_result       res;
	char             why[DTX_MESSAGE_MAX + 1];

	if (call->phase < DTX_PHASE_PREPARE ||
	    call->phase > DTX_PHASE_COMPENSATE) {
		snprintf(why, sizeof(why), "call for method %s has no phase",
		    call->method);
		reply_branch(&w->rep, DTX_BRANCH_BAD_REQUEST, why, NULL, 0);
		return;
	}
	if ((m = method_find(p, call->method, NULL)) == NULL) {
		snprintf(why, sizeof(why), "no method %s", call->method);
		reply_branch(&w->rep, DTX_BRANCH_NO_SUCH_METHOD, why, NULL, 0);
		return;
	}
	if ((fn = phase_fn(&m->ops, call->phase)) == NULL) {
		char lower[32];
		dtxi_strlcpy(
		    lower, dtx_phase_name(call->phase), sizeof(lower));
		for (char *s = lower; *s != '\0'; s++) {
			if (*s >= 'A' && *s <= 'Z') {
				*s = (char)(*s - 'A' + 'a');
			}
		}
		snprintf(why, sizeof(why), "method %s has no %s callback",
		    call->method, lower);
		reply_branch(&w->rep, DTX_BRANCH_NO_SUCH_METHOD, why, NULL, 0);
		return;
	}
	// Load shedding: a call that waited for a worker longer than dtxd
	// waits for its reply is answered without running. Running it would
	// only occupy a worker with an answer nobody reads while dtxd's retry
	// queues up behind it: under overload every call would then time out.
	// The wait is measured here, from receipt, so clocks do not matter.
	if (call->timeout_ms > 0) {
		int64_t waited = dtxi_mono_ms() - w->recv_ms;
		if (waited >= (int64_t)call->timeout_ms) {
			snprintf(why, sizeof(why),
			    "not run: waited %lld ms for a worker, past the "
			    "coordinator's %u ms call timeout",
			    (long long)waited, (unsigned)call->timeout_ms);
			DTXI_WARN("participant: %s %u %s: %s", call->gid,
			    (unsigned)call->branch_id,
			    dtx_phase_name(call->phase), why);
			reply_branch(&w->rep, DTX_BRANCH_RETRY, why, NULL, 0);
			return;
		}
	}

	dc.gid         = call->gid;
	dc.branch_id   = call->branch_id;
	dc.phase       = (dtx_phase)call->phase;
	dc.method      = call->method;
	dc.payload     = call->payload.len > 0 ? call->payload.ptr : NULL;
	dc.payload_len = call->payload.len;
	dc.attempt     = call->attempt;
	dc.deadline_ms = call->deadline_ms;

	res = run_guarded(p, &dc, fn, m->arg, &w->reply);
	switch ((int)res) {
	case DTX_OK:
		reply_branch(&w->rep, DTX_BRANCH_OK, w->reply.message,
		    w->reply.payload, w->reply.len);
		break;
	case DTX_REFUSED:
		reply_branch(&w->rep, DTX_BRANCH_REFUSED, w->reply.message,
		    w->reply.payload, w->reply.len);
		break;
	case DTX_RETRY:
		reply_branch(&w->rep, DTX_BRANCH_RETRY, w->reply.message,
		    w->reply.payload, w->reply.len);
		break;
	case DTX_BAD_REQUEST:
		reply_branch(&w->rep, DTX_BRANCH_BAD_REQUEST, w->reply.message,
		    w->reply.payload, w->reply.len);
		break;
	default:
		snprintf(why, sizeof(why),
		    "%s callback of %s returned %d, not a dtx_result",
		    dtx_phase_name(call->phase), call->method, (int)res);
		DTXI_WARN("participant: %s", why);
		reply_branch(&w->rep, DTX_BRANCH_RETRY, why, w->reply.payload,
		    w->reply.len);
		break;
	}
}

// Clears what the previous call left in w->reply.
static void
reply_reset(worker *w)
{
	free(w->reply.payload);
	w->reply.payload    = NULL;
	w->reply.len        = 0;
	w->reply.message[0] = '\0';
}

// Encodes w->rep and sends it on c. A branch reply the codec refuses is
// replaced by an error reply that says so; with no reply at all the
// coordinator times out and calls again.
static void
send_reply(worker *w, pctx *c)
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
	size_t budget = w->p->max_payload + BATCH_REPLY_SLACK -
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

// Runs call number i of batch b. The worker that ends the last call sends
// the batch's reply and frees it.
static void
run_item(worker *w, pbatch *b, uint32_t i)
{
	bitem *it = &b->items[i];

	reply_reset(w);
	w->call    = &it->call;
	w->recv_ms = b->recv_ms;
	if (it->call.payload.len > w->p->max_payload) {
		// A single call this size is refused whole (ETOOBIG, which
		// dtxd reports as BAD_REQUEST); in a batch only this call is.
		char why[DTX_MESSAGE_MAX + 1];
		snprintf(why, sizeof(why),
		    "payload of batched call %u is %zu bytes, limit %zu",
		    (unsigned)i, it->call.payload.len, w->p->max_payload);
		reply_branch(&w->rep, DTX_BRANCH_BAD_REQUEST, why, NULL, 0);
	} else {
		run_call(w);
	}
	it->status = w->rep.u.branch.status;
	dtxi_strlcpy(
	    it->message, w->rep.u.branch.message, sizeof(it->message));
	// The reply payload, if any, is w->reply's: the item takes it over.
	it->len     = w->rep.u.branch.payload.len;
	it->payload = NULL;
	if (it->len > 0) {
		it->payload      = w->reply.payload;
		w->reply.payload = NULL;
	}
	reply_reset(w);

	if (atomic_fetch_sub(&b->left, 1) != 1) {
		return;
	}
	batch_reply(w, b);
	send_reply(w, b->c);
	batch_free(b);
}

// Turns a decoded batch (in w->req, its payloads in req) into jobs: every
// call but the first goes on the queue for any worker, the first runs here.
// On error nothing was queued and the caller still owns req.
static int
start_batch(worker *w, pctx *c, nng_msg *req)
{
	dtx_participant       *p  = w->p;
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
	}
	if (b->n > 1) {
		pthread_mutex_lock(&p->mtx);
		for (uint32_t i = 1; i < b->n; i++) {
			job *j = &b->items[i].job;
			if (p->qtail != NULL) {
				p->qtail->next = j;
			} else {
				p->qhead = j;
			}
			p->qtail = j;
		}
		if (b->n > 2) {
			pthread_cond_broadcast(&p->cv);
		} else {
			pthread_cond_signal(&p->cv);
		}
		pthread_mutex_unlock(&p->mtx);
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
	dtx_participant *p   = w->p;
	nng_msg         *req = c->req;
	char             why[DTX_MESSAGE_MAX + 1];
	int              rv;

	c->req         = NULL;
	w->rep.version = DTX_PROTOCOL_VERSION;
	why[0]         = '\0';
	reply_reset(w);

	// Payloads are checked against max_payload below, not by the
	// decoder: one oversized call must not sink the rest of its batch.
	rv = dtxi_request_decode(&w->req, nng_msg_body(req), nng_msg_len(req),
	    p->max_payload + FRAME_OVERHEAD, p->max_payload + FRAME_OVERHEAD,
	    why);
	if (rv == 0 && w->req.kind == DTXI_REQ_CALL &&
	    w->req.u.call.payload.len > p->max_payload) {
		rv = DTX_ETOOBIG;
		snprintf(why, sizeof(why),
		    "payload of the branch call is %zu bytes, limit %zu",
		    w->req.u.call.payload.len, p->max_payload);
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
	send_reply(w, c);
	reply_reset(w);
	nng_msg_free(req);
}

static void *
worker_main(void *arg)
{
	worker          *w = arg;
	dtx_participant *p = w->p;

	for (;;) {
		job *j;

		pthread_mutex_lock(&p->mtx);
		while (!p->stop && p->qhead == NULL) {
			pthread_cond_wait(&p->cv, &p->mtx);
		}
		if (p->stop) {
			pthread_mutex_unlock(&p->mtx);
			break;
		}
		j        = p->qhead;
		p->qhead = j->next;
		if (p->qhead == NULL) {
			p->qtail = NULL;
		}
		pthread_mutex_unlock(&p->mtx);
		if (j->batch != NULL) {
			run_item(w, j->batch, j->index);
		} else {
			serve(w, j->c);
		}
	}
	reply_reset(w);
	return NULL;
}

// Undoes whatever listen built, in the only safe order: close the socket
// (every posted operation completes with NNG_ECLOSED), stop the workers
// (a running callback is waited for; queued frames and batch calls are
// dropped), stop every
// aio (waits for its callback, so nothing can queue any more), free what the
// queue still holds, then free the aios.
static void
serve_stop(dtx_participant *p)
{
	pthread_rwlock_wrlock(&p->io_lock);
	atomic_store(&p->closing, true);
	pthread_rwlock_unlock(&p->io_lock);
	if (p->sock_open) {
		nng_close(p->sock);
		p->sock_open = false;
	}
	pthread_mutex_lock(&p->mtx);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mtx);
	for (unsigned i = 0; i < p->nthreads; i++) {
		pthread_join(p->workers[i].thread, NULL);
	}
	p->nthreads = 0;
	for (unsigned i = 0; i < p->nctxs; i++) {
		nng_aio_stop(p->ctxs[i].aio);
	}
	while (p->qhead != NULL) {
		job *j   = p->qhead;
		p->qhead = j->next;
		if (j->batch == NULL) {
			nng_msg_free(j->c->req);
			j->c->req = NULL;
		} else if (atomic_fetch_sub(&j->batch->left, 1) == 1) {
			// Its other calls ran: nobody is left to answer.
			batch_free(j->batch);
		}
	}
	p->qtail = NULL;
	for (unsigned i = 0; i < p->nctxs; i++) {
		nng_aio_free(p->ctxs[i].aio);
	}
	p->nctxs = 0;
	free(p->ctxs);
	p->ctxs = NULL;
	free(p->workers);
	p->workers = NULL;
}

int
dtx_participant_listen(dtx_participant *p, const char *url)
{
	int rv;

	if (p == NULL || url == NULL || url[0] == '\0') {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return refuse(p, DTX_ESTATE, "the participant is listening");
	}
	p->message[0] = '\0';
	atomic_store(&p->closing, false);
	p->stop = false;
	dtxi_crash_init(&p->crash, DTXI_CRASH_PARTICIPANT,
	    getenv(DTXI_CRASH_ENV_PARTICIPANT));

	if ((rv = nng_rep0_open(&p->sock)) != 0) {
		rv = dtxi_transport_err(rv, "participant: opening the socket");
		goto fail;
	}
	p->sock_open = true;
	// Twice the largest valid frame: a moderately oversized call still
	// reaches the decoder and gets a readable error reply, an absurd one
	// is dropped by nng before it costs memory.
	rv = nng_socket_set_size(
	    p->sock, NNG_OPT_RECVMAXSZ, 2 * (p->max_payload + FRAME_OVERHEAD));
	if (rv != 0) {
		rv = dtxi_transport_err(
		    rv, "participant: setting the receive limit");
		goto fail;
	}

	p->ctxs    = calloc(p->ncontexts, sizeof(p->ctxs[0]));
	p->workers = calloc(p->nworkers, sizeof(p->workers[0]));
	if (p->ctxs == NULL || p->workers == NULL) {
		rv = DTX_ENOMEM;
		goto fail;
	}
	for (unsigned i = 0; i < p->ncontexts; i++) {
		pctx *c = &p->ctxs[i];

		c->p = p;
		if ((rv = nng_aio_alloc(&c->aio, pctx_cb, c)) != 0) {
			rv = dtxi_transport_err(
			    rv, "participant: allocating an aio");
			goto fail;
		}
		p->nctxs++;
		if ((rv = nng_ctx_open(&c->ctx, p->sock)) != 0) {
			rv = dtxi_transport_err(
			    rv, "participant: opening a context");
			goto fail;
		}
	}
	for (unsigned i = 0; i < p->nworkers; i++) {
		worker *w = &p->workers[i];

		w->p                 = p;
		w->reply.max_payload = p->max_payload;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			rv = DTX_ENOMEM;
			goto fail;
		}
		p->nthreads++;
	}
	if ((rv = nng_listen(p->sock, url, NULL, 0)) != 0) {
		snprintf(p->message, sizeof(p->message),
		    "cannot listen on %s: %s", url, nng_strerror(rv));
		rv =
		    dtxi_transport_addr_err(rv, "participant: listening", url);
		goto fail;
	}
	if (p->barrier != NULL &&
	    (rv = dtxi_barrier_start(
	         p->barrier, run_resolved, p, p->max_payload)) != 0) {
		goto fail;
	}
	p->listening = true;
	for (unsigned i = 0; i < p->nctxs; i++) {
		pctx_recv(&p->ctxs[i]);
	}
	return 0;

fail:
	serve_stop(p);
	atomic_store(&p->closing, false);
	p->stop = false;
	return rv;
}

void
dtx_participant_close(dtx_participant *p)
{
	if (p == NULL) {
		return;
	}
	dtxi_barrier_stop(p->barrier);
	serve_stop(p);
	dtxi_barrier_free(p->barrier);
	for (unsigned i = 0; i < p->nmethods; i++) {
		free(p->methods[i].owned);
	}
	free(p->methods);
	pthread_rwlock_destroy(&p->io_lock);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mtx);
	free(p);
}
