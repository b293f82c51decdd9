// SPDX-License-Identifier: MIT
//
// txmgr: dtxd's event loop (see txmgr.h). Three kinds of event reach the
// queue: a client request (from the server's nng threads), the end of a
// branch call (from the dispatcher's nng threads) and the end of a store
// write (from the store's writer thread). The loop thread takes them in
// order, feeds the engines and carries out what they ask.
//
// Lifetime. A transaction is referenced by the gid table, by every branch
// call and store write in flight for it, and by every timer entry naming it;
// all of these are counted in tx->refs, touched only on the loop thread. A
// finished transaction leaves the table once its final record is written and
// is freed when the last reference goes.
//
// Durability. A transaction is answered "accepted" (or started) only after
// its create record is written: synced for a saga and for a client that does
// not wait, unsynced for a 2PC whose client waits (presumed abort: if that
// record is lost, nobody was told anything and every participant that asks
// is told ABORTED). Decisions are synced by the engines' PERSIST{sync}.
// The outcome is told as soon as the transaction reaches it, without waiting
// for its final (unsynced) record, when what it says is already settled: by
// the synced decision (2PC commit, saga compensation) or by presumed abort
// (2PC abort); if that record is lost recovery drives the same phase again
// to the same end. Waiting for it cost every client a turn in the store's
// queue, behind a group commit's fsync. A saga's COMMITTED is not settled
// that way: its last step's result lives only in that record, and a
// recovery that finds the step unrecorded calls it again, which past the
// deadline or the retries turns the saga back. So its waiters are told only
// once the record is written.
// A write that fails (a full disk, say) is retried every second; the
// transaction waits, nothing is lost, and the error is logged.
//
// Lock order: txmgr->mtx (the queue) is a leaf.

#include "txmgr.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "crashpoint.h"
#include "gid.h"
#include "log.h"
#include "random.h"
#include "strs.h"

enum { MEV_REQUEST = 1, MEV_CALL, MEV_WRITE };

typedef struct mev {
	struct mev *next;
	int         kind;
} mev;

typedef struct mtx mtx;

typedef struct mreq {
	mev        ev;
	dtxd_sreq *r;
} mreq;

typedef struct mcall {
	mev         ev;
	dtxd_txmgr *m;
	mtx        *tx;
	uint32_t    branch;
	int         phase;
	int         rv;
	int         status;
	char       *message; // the reply's, malloc'd; NULL when empty
	uint8_t    *payload;
	size_t      payload_len;
} mcall;

enum { W_CREATE = 1, W_PERSIST, W_FINISH };

typedef struct mwrite {
	mev         ev;
	dtxd_txmgr *m;
	dtxd_wop    op;
	mtx        *tx;
	int         purpose;
	bool        wait;
	int         rv;
	uint8_t    *rec;
	uint32_t    nspecs;
	uint8_t   **specs;
	size_t     *spec_lens;
} mwrite;

enum { WAIT_ACCEPT = 1, WAIT_OUTCOME, WAIT_STATUS };

typedef struct waiter {
	struct waiter *next;
	dtxd_sreq     *r;
	int            kind;
	int64_t        deadline_ms; // WAIT_STATUS
} waiter;

typedef struct mbranch {
	char      *endpoint;
	char      *method;
	uint8_t   *payload;
	size_t     payload_len;
	dtxd_peer *peer;
	int        last_status;
	int        last_phase;
	// The last reply's message, malloc'd, or NULL when it had none (most
	// replies): a fixed buffer here was a quarter of a transaction's
	// memory.
	char    *message;
	uint8_t *rpayload;
	size_t   rpayload_len;
} mbranch;

struct mtx {
	mtx        *hnext;          // gid table chain
	mtx        *anext, **aprev; // list of every live transaction
	char        gid[DTX_GID_MAX + 1];
	dtxd_txcore core;
	mbranch    *mb;
	uint64_t    content_hash;
	uint32_t    timeout_ms;
	bool        wait;
	int64_t     created_ms;
	int64_t     updated_ms;
	uint32_t    refs;
	bool        created;    // create record written
	bool        in_table;   //
	bool        finishing;  // FINISH write issued
	bool        resumed;    // adopted: its RECOVER event was handled
	bool        recovering; // resumed and counted in txmgr->resuming
	mtx        *rnext;      // in the list of adopted, not yet resumed
	size_t      hidx;       // position in the timer heap, or NO_HEAP
	int64_t     twhen;      // when the heap wakes it
	// A failed write to redo at redo_at: PERSIST (with these flags) or
	// FINISH.
	int     redo;
	int64_t redo_at;
	bool    redo_sync;
	bool    redo_wait;
	waiter *waiters;
};

#define NO_HEAP SIZE_MAX

struct dtxd_txmgr {
	dtxd_config      cfg;
	dtxd_store      *store;
	dtxd_dispatcher *disp;
	dtxi_crash       crash; // cfg.crash_at, armed at open

	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	mev            *qhead;
	mev            *qtail;
	bool            stopping;
	bool            stopped;
	bool            running;
	pthread_t       thread;

	// Loop thread only from here on.
	mtx        **table;
	size_t       tsize; // power of two
	size_t       tcount;
	mtx         *all;
	mtx        **heap; // min-heap on twhen; each entry holds a reference
	size_t       hlen;
	size_t       hcap;
	int64_t      next_purge_ms;
	int64_t      start_ms; // monotonic
	dtxd_actions acts;
	dtxi_reply  *rep;  // scratch reply
	dtxd_record *rec;  // scratch record
	uint8_t     *wbuf; // scratch encoding buffer (see encode_dup)
	size_t       wcap;
	mtx         *adopted; // recovered, not yet resumed (FIFO)
	mtx         *adopted_tail;
	uint32_t     resuming; // resumed and not yet finished

	_Atomic uint64_t active;
	_Atomic uint64_t started;
	_Atomic uint64_t finished;
	_Atomic uint64_t recovered;
};

void
dtxd_config_init(dtxd_config *c)
{
	memset(c, 0, sizeof(*c));
	c->timeout_ms      = 30000;
	c->call_timeout_ms = 5000;
	c->retries         = 5;
	dtxd_policy_init(&c->policy);
	c->retention_ms = 24LL * 3600 * 1000;
	c->max_payload  = DTX_PAYLOAD_MAX_DEFAULT;
	c->crash_at     = NULL;
}

// ---------------------------------------------------------------------
// Queue
// ---------------------------------------------------------------------

// Returns false (and posts nothing) once the loop has stopped.
static bool
post(dtxd_txmgr *m, mev *ev)
{
	pthread_mutex_lock(&m->mtx);
	if (m->stopped) {
		pthread_mutex_unlock(&m->mtx);
		return false;
	}
	ev->next = NULL;
	if (m->qtail != NULL) {
		m->qtail->next = ev;
	} else {
		m->qhead = ev;
	}
	m->qtail = ev;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mtx);
	return true;
}

// Events that arrive after the loop stopped are kept for dtxd_txmgr_free
// to release: completions still hold their buffers.
static void
post_late(dtxd_txmgr *m, mev *ev)
{
	pthread_mutex_lock(&m->mtx);
	ev->next = NULL;
	if (m->qtail != NULL) {
		m->qtail->next = ev;
	} else {
		m->qhead = ev;
	}
	m->qtail = ev;
	pthread_mutex_unlock(&m->mtx);
}

// ---------------------------------------------------------------------
// Transactions: table, references, timers
// ---------------------------------------------------------------------

static uint64_t
gid_hash(const char *gid)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)gid; *p; p++) {
		h = (h ^ *p) * 1099511628211ULL;
	}
	return h;
}

static mtx *
table_find(dtxd_txmgr *m, const char *gid)
{
	mtx *tx = m->table[gid_hash(gid) & (m->tsize - 1)];
	while (tx != NULL && strcmp(tx->gid, gid) != 0) {
		tx = tx->hnext;
	}
	return tx;
}

static void
table_grow(dtxd_txmgr *m)
{
	size_t nsize = m->tsize * 2;
	mtx  **nt    = calloc(nsize, sizeof(*nt));
	if (nt == NULL) {
		return; // longer chains, still correct
	}
	for (size_t i = 0; i < m->tsize; i++) {
		mtx *tx = m->table[i];
		while (tx != NULL) {
			mtx   *next = tx->hnext;
			size_t b    = gid_hash(tx->gid) & (nsize - 1);
			tx->hnext   = nt[b];
			nt[b]       = tx;
			tx          = next;
		}
	}
	free(m->table);
	m->table = nt;
	m->tsize = nsize;
}

static void
table_insert(dtxd_txmgr *m, mtx *tx)
{
	if (m->tcount >= m->tsize) {
		table_grow(m);
	}
	size_t b     = gid_hash(tx->gid) & (m->tsize - 1);
	tx->hnext    = m->table[b];
	m->table[b]  = tx;
	tx->in_table = true;
	tx->refs++;
	m->tcount++;
	atomic_fetch_add(&m->active, 1);
}

// A malloc'd copy of a NUL-terminated string, or NULL without memory.
static char *
dup_str(const char *str)
{
	size_t n = strlen(str) + 1;
	char  *d = malloc(n);
	if (d != NULL) {
		memcpy(d, str, n);
	}
	return d;
}

static void
tx_free(mtx *tx)
{
	if (tx->mb != NULL) {
		for (uint32_t i = 0; i < tx->core.nbranches; i++) {
			free(tx->mb[i].endpoint);
			free(tx->mb[i].method);
			free(tx->mb[i].payload);
			free(tx->mb[i].rpayload);
			free(tx->mb[i].message);
		}
	}
	free(tx->mb);
	free(tx->core.br);
	free(tx);
}

static void
tx_release(mtx *tx)
{
	if (--tx->refs == 0) {
		*tx->aprev = tx->anext;
		if (tx->anext != NULL) {
			tx->anext->aprev = tx->aprev;
		}
		tx_free(tx);
	}
}

static void timer_set(dtxd_txmgr *m, mtx *tx, int64_t when);

static void
table_remove(dtxd_txmgr *m, mtx *tx)
{
	timer_set(m, tx, 0);
	mtx **pp = &m->table[gid_hash(tx->gid) & (m->tsize - 1)];
	while (*pp != tx) {
		pp = &(*pp)->hnext;
	}
	*pp          = tx->hnext;
	tx->in_table = false;
	m->tcount--;
	if (tx->recovering) {
		tx->recovering = false;
		m->resuming--;
	}
	atomic_fetch_sub(&m->active, 1);
	tx_release(tx);
}

static mtx *
tx_alloc(dtxd_txmgr *m, uint32_t nbranches)
{
	mtx *tx = calloc(1, sizeof(*tx));
	if (tx == NULL) {
		return NULL;
	}
	tx->core.br = calloc(nbranches, sizeof(*tx->core.br));
	tx->mb      = calloc(nbranches, sizeof(*tx->mb));
	if (tx->core.br == NULL || tx->mb == NULL) {
		free(tx->core.br);
		free(tx->mb);
		free(tx);
		return NULL;
	}
	tx->core.nbranches = nbranches;
	tx->hidx           = NO_HEAP;
	do {
		dtxi_random(&tx->core.rng, sizeof(tx->core.rng));
	} while (tx->core.rng == 0);
	// Linked into the list of live transactions; the list itself holds
	// no reference (the table or an operation always does).
	tx->anext = m->all;
	tx->aprev = &m->all;
	if (m->all != NULL) {
		m->all->aprev = &tx->anext;
	}
	m->all = tx;
	return tx;
}

// The timer heap holds each transaction at most once, at the earliest of
// the times it needs the loop: its engine's wake-up, a write to redo, a
// long-polling status request's deadline. A transaction leaves the heap
// when it finishes, so no finished transaction lingers until some old
// deadline.

static void
heap_place(dtxd_txmgr *m, size_t i, mtx *tx)
{
	m->heap[i] = tx;
	tx->hidx   = i;
}

static void
heap_up(dtxd_txmgr *m, size_t i)
{
	mtx *tx = m->heap[i];
	while (i > 0 && m->heap[(i - 1) / 2]->twhen > tx->twhen) {
		heap_place(m, i, m->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_place(m, i, tx);
}

static void
heap_down(dtxd_txmgr *m, size_t i)
{
	mtx *tx = m->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, c = l;
		if (l >= m->hlen) {
			break;
		}
		if (r < m->hlen && m->heap[r]->twhen < m->heap[l]->twhen) {
			c = r;
		}
		if (m->heap[c]->twhen >= tx->twhen) {
			break;
		}
		heap_place(m, i, m->heap[c]);
		i = c;
	}
	heap_place(m, i, tx);
}

static void tx_release(mtx *tx);

// Sets the transaction's wake-up time; 0 takes it out of the heap.
static void
timer_set(dtxd_txmgr *m, mtx *tx, int64_t when)
{
	if (when == 0) {
		if (tx->hidx == NO_HEAP) {
			return;
		}
		size_t i    = tx->hidx;
		mtx   *last = m->heap[--m->hlen];
		tx->hidx    = NO_HEAP;
		if (last != tx) {
			heap_place(m, i, last);
			heap_up(m, i);
			heap_down(m, last->hidx);
		}
		tx_release(tx);
		return;
	}
	if (tx->hidx != NO_HEAP) {
		int64_t old = tx->twhen;
		tx->twhen   = when;
		if (when < old) {
			heap_up(m, tx->hidx);
		} else if (when > old) {
			heap_down(m, tx->hidx);
		}
		return;
	}
	if (m->hlen == m->hcap) {
		size_t ncap = m->hcap == 0 ? 1024 : m->hcap * 2;
		mtx  **nh   = realloc(m->heap, ncap * sizeof(*nh));
		if (nh == NULL) {
			// Without a timer the transaction would stall:
			// there is no safe way on, so say it loudly.
			DTXI_ERROR(
			    "txmgr: out of memory for a timer of %s", tx->gid);
			return;
		}
		m->heap = nh;
		m->hcap = ncap;
	}
	tx->refs++;
	tx->twhen = when;
	heap_place(m, m->hlen++, tx);
	heap_up(m, tx->hidx);
}

static int64_t
earliest(int64_t a, int64_t b)
{
	return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

static void
tx_timer_update(dtxd_txmgr *m, mtx *tx)
{
	int64_t when = 0;
	if (tx->in_table) {
		if (tx->created && !tx->finishing) {
			when = tx->core.wake_ms;
		}
		if (tx->redo != 0) {
			when = earliest(when, tx->redo_at);
		}
		for (waiter *w = tx->waiters; w != NULL; w = w->next) {
			if (w->kind == WAIT_STATUS) {
				when = earliest(when, w->deadline_ms);
			}
		}
	}
	timer_set(m, tx, when);
}

// ---------------------------------------------------------------------
// Views of a transaction: status info and the durable record
// ---------------------------------------------------------------------

static void
tx_info(const mtx *tx, dtxi_txinfo *info)
{
	dtxi_strlcpy(info->gid, tx->gid, sizeof(info->gid));
	info->mode       = tx->core.mode;
	info->state      = tx->core.state;
	info->stuck      = tx->core.stuck;
	info->created_ms = tx->created_ms;
	info->updated_ms = tx->updated_ms;
	info->nbranches  = tx->core.nbranches;
	for (uint32_t i = 0; i < tx->core.nbranches; i++) {
		dtxi_branch_result *b  = &info->branches[i];
		const dtxd_branch  *br = &tx->core.br[i];
		const mbranch      *mb = &tx->mb[i];
		b->branch_id           = i;
		b->status              = mb->last_status;
		b->phase               = br->phase;
		b->attempts            = br->attempts;
		dtxi_strlcpy(b->message,
		    mb->message != NULL ? mb->message : "",
		    sizeof(b->message));
		b->payload.ptr = mb->rpayload;
		b->payload.len = mb->rpayload_len;
	}
}

static void
tx_record(const mtx *tx, dtxd_record *rec)
{
	tx_info(tx, &rec->info);
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

// ---------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------

static dtxi_reply *
reply_init(dtxd_txmgr *m, dtxi_rep_kind kind)
{
	dtxi_reply *rep = m->rep;
	rep->version    = DTX_PROTOCOL_VERSION;
	rep->code       = 0;
	rep->message[0] = '\0';
	rep->kind       = kind;
	return rep;
}

static void
reply_tx(dtxd_txmgr *m, dtxd_sreq *r, const mtx *tx)
{
	dtxi_reply *rep = reply_init(m, DTXI_REP_TX);
	tx_info(tx, &rep->u.tx);
	dtxd_server_reply(r, rep);
}

static void
reply_waiters(dtxd_txmgr *m, mtx *tx, int kind)
{
	waiter **pp = &tx->waiters;
	while (*pp != NULL) {
		waiter *w = *pp;
		if (kind == 0 || w->kind == kind) {
			*pp = w->next;
			reply_tx(m, w->r, tx);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

static void
fail_waiters(mtx *tx, int code, const char *msg)
{
	while (tx->waiters != NULL) {
		waiter *w   = tx->waiters;
		tx->waiters = w->next;
		dtxd_server_reply_error(w->r, code, msg);
		free(w);
	}
}

// Parks r on tx until it is answered. The request's content is no longer
// needed (the handlers have read or copied all of it before parking it), so
// its decoded form and frame go now rather than at the reply: with 10,000
// clients waiting for outcomes, they were most of dtxd's memory.
static int
add_waiter(mtx *tx, dtxd_sreq *r, int kind, int64_t deadline_ms)
{
	waiter *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return DTX_ENOMEM;
	}
	dtxd_sreq_drop_request(r);
	w->r           = r;
	w->kind        = kind;
	w->deadline_ms = deadline_ms;
	w->next        = tx->waiters;
	tx->waiters    = w;
	return 0;
}

// ---------------------------------------------------------------------
// Actions: calls and writes
// ---------------------------------------------------------------------

static void on_call_done(void *arg, int rv, const dtxi_branch_reply *rep);
static void tx_resume(dtxd_txmgr *m, mtx *tx);
static void on_write_done(void *arg, int rv);
static void tx_event(
    dtxd_txmgr *m, mtx *tx, const dtxd_event *ev, dtxi_crash_pt crash_after);

// Makes the engine see a call that could not even be started as a call
// that got no answer, through the queue (the engine is not re-entered).
static void
fail_call_async(dtxd_txmgr *m, mcall *mc, int rv)
{
	mc->rv = rv;
	if (!post(m, &mc->ev)) {
		post_late(m, &mc->ev);
	}
}

static void
do_send(dtxd_txmgr *m, mtx *tx, const dtxd_action *a)
{
	mbranch  *mb = &tx->mb[a->branch];
	mcall    *mc = calloc(1, sizeof(*mc));
	dtxi_call call;
	int       rv = 0;

	if (mc == NULL) {
		// No memory even for the call record: leave the branch idle
		// with a retry due in a second; the engine's timer resends.
		DTXI_ERROR(
		    "txmgr: out of memory for a branch call of %s", tx->gid);
		tx->core.br[a->branch].inflight    = false;
		tx->core.br[a->branch].retry_at_ms = dtxi_now_ms() + 1000;
		dtxd_tx_update_wake(&tx->core);
		return;
	}
	mc->ev.kind = MEV_CALL;
	mc->m       = m;
	mc->tx      = tx;
	mc->branch  = a->branch;
	mc->phase   = a->phase;
	tx->refs++;

	memset(&call, 0, sizeof(call));
	dtxi_strlcpy(call.gid, tx->gid, sizeof(call.gid));
	call.branch_id = a->branch;
	call.phase     = a->phase;
	dtxi_strlcpy(call.method, mb->method, sizeof(call.method));
	call.payload.ptr = mb->payload;
	call.payload.len = mb->payload_len;
	call.attempt     = a->attempt;
	call.deadline_ms =
	    (a->phase == DTX_PHASE_PREPARE || a->phase == DTX_PHASE_EXECUTE)
	    ? tx->core.deadline_ms
	    : 0;
	call.timeout_ms = a->timeout_ms;

	if (mb->peer == NULL) {
		rv = dtxd_dispatcher_peer(m->disp, mb->endpoint, &mb->peer);
	}
	if (rv == 0) {
		// Sent at the end of this pass of the loop, batched with the
		// other calls to the same participant.
		rv = dtxd_dispatcher_queue(
		    m->disp, mb->peer, &call, a->timeout_ms, on_call_done, mc);
	}
	if (rv != 0) {
		fail_call_async(m, mc, rv);
	}
}

static void
on_call_done(void *arg, int rv, const dtxi_branch_reply *rep)
{
	mcall *mc = arg;
	mc->rv    = rv;
	if (rv == 0) {
		mc->status = rep->status;
		// Without memory for it the message is dropped; the status
		// is what the engine needs.
		if (rep->message[0] != '\0') {
			mc->message = dup_str(rep->message);
		}
		if (rep->payload.len > 0 &&
		    (mc->payload = malloc(rep->payload.len)) != NULL) {
			memcpy(
			    mc->payload, rep->payload.ptr, rep->payload.len);
			mc->payload_len = rep->payload.len;
		}
	}
	if (!post(mc->m, &mc->ev)) {
		post_late(mc->m, &mc->ev);
	}
}

static void
mwrite_free(mwrite *w)
{
	if (w->specs != NULL) {
		for (uint32_t i = 0; i < w->nspecs; i++) {
			free(w->specs[i]);
		}
	}
	free(w->specs);
	free(w->spec_lens);
	free(w->rec);
	free(w);
}

// The record and spec encoders, with one signature for encode_dup.
static int
record_enc(const void *o, uint8_t *buf, size_t cap, size_t *len)
{
	return dtxd_record_encode(o, buf, cap, len);
}

static int
spec_enc(const void *o, uint8_t *buf, size_t cap, size_t *len)
{
	return dtxd_spec_encode(o, buf, cap, len);
}

// Encodes obj into a fresh buffer of its exact size. The encoding goes to
// the loop's scratch buffer first, so nanopb runs once, not once to size
// and once to write (that second pass was 4% of dtxd's time); the scratch
// grows when something does not fit.
static int
encode_dup(dtxd_txmgr *m,
    int (*enc)(const void *, uint8_t *, size_t, size_t *), const void *obj,
    uint8_t **outp, size_t *lenp)
{
	size_t   len = 0;
	uint8_t *out;
	int      rv = enc(obj, m->wbuf, m->wcap, &len);

	if (rv == DTX_ETOOBIG) {
		uint8_t *nb;
		if ((rv = enc(obj, NULL, 0, &len)) != 0) {
			return rv;
		}
		if ((nb = realloc(m->wbuf, len)) == NULL) {
			return DTX_ENOMEM;
		}
		m->wbuf = nb;
		m->wcap = len;
		rv      = enc(obj, m->wbuf, m->wcap, &len);
	}
	if (rv != 0) {
		return rv;
	}
	if ((out = malloc(len > 0 ? len : 1)) == NULL) {
		return DTX_ENOMEM;
	}
	memcpy(out, m->wbuf, len);
	*outp = out;
	*lenp = len;
	return 0;
}

// Encodes the transaction's record (and, for CREATE, its branch specs)
// and queues the write. Returns 0 or an error (then nothing is queued).
static int
do_write(dtxd_txmgr *m, mtx *tx, int purpose, bool sync, bool wait)
{
	mwrite *w = calloc(1, sizeof(*w));
	size_t  len;
	int     rv;

	if (w == NULL) {
		return DTX_ENOMEM;
	}
	w->ev.kind     = MEV_WRITE;
	w->m           = m;
	w->tx          = tx;
	w->purpose     = purpose;
	w->wait        = wait;
	tx->updated_ms = dtxi_now_ms();
	tx_record(tx, m->rec);
	if ((rv = encode_dup(m, record_enc, m->rec, &w->rec, &len)) != 0) {
		mwrite_free(w);
		return rv;
	}
	w->op.record     = w->rec;
	w->op.record_len = len;
	if (purpose == W_CREATE) {
		uint32_t n   = tx->core.nbranches;
		w->nspecs    = n;
		w->specs     = calloc(n, sizeof(*w->specs));
		w->spec_lens = calloc(n, sizeof(*w->spec_lens));
		if (w->specs == NULL || w->spec_lens == NULL) {
			mwrite_free(w);
			return DTX_ENOMEM;
		}
		for (uint32_t i = 0; i < n; i++) {
			dtxi_branch_spec spec;
			dtxi_strlcpy(spec.endpoint, tx->mb[i].endpoint,
			    sizeof(spec.endpoint));
			dtxi_strlcpy(spec.method, tx->mb[i].method,
			    sizeof(spec.method));
			spec.payload.ptr = tx->mb[i].payload;
			spec.payload.len = tx->mb[i].payload_len;
			rv =
			    encode_dup(m, spec_enc, &spec, &w->specs[i], &len);
			if (rv != 0) {
				mwrite_free(w);
				return rv;
			}
			w->spec_lens[i] = len;
		}
		w->op.kind      = DTXD_WOP_CREATE;
		w->op.nspecs    = n;
		w->op.specs     = (const uint8_t *const *)w->specs;
		w->op.spec_lens = w->spec_lens;
	} else if (purpose == W_FINISH) {
		w->op.kind      = DTXD_WOP_FINISH;
		w->op.expire_ms = tx->updated_ms + m->cfg.retention_ms;
	} else {
		w->op.kind = DTXD_WOP_UPDATE;
	}
	w->op.gid  = tx->gid;
	w->op.sync = sync;
	w->op.done = on_write_done;
	w->op.arg  = w;
	tx->refs++;
	if ((rv = dtxd_store_write(m->store, &w->op)) != 0) {
		tx->refs--;
		mwrite_free(w);
		return rv;
	}
	return 0;
}

static void
on_write_done(void *arg, int rv)
{
	mwrite *w = arg;
	w->rv     = rv;
	if (!post(w->m, &w->ev)) {
		post_late(w->m, &w->ev);
	}
}

// A write that could not be queued or failed is redone a second later: a
// full disk must not lose a decision, and the transaction simply waits.
static void
schedule_redo(dtxd_txmgr *m, mtx *tx, int purpose, bool sync, bool wait)
{
	if (purpose == W_FINISH || tx->redo == W_FINISH) {
		tx->redo = W_FINISH;
	} else {
		tx->redo = W_PERSIST;
	}
	tx->redo_at = dtxi_now_ms() + 1000;
	tx->redo_sync |= sync;
	tx->redo_wait |= wait;
	tx_timer_update(m, tx);
}

static void
write_or_redo(dtxd_txmgr *m, mtx *tx, int purpose, bool sync, bool wait)
{
	int rv = do_write(m, tx, purpose, sync, wait);
	if (rv != 0) {
		DTXI_ERROR("txmgr: cannot write %s: %s; retrying", tx->gid,
		    dtx_strerror(rv));
		schedule_redo(m, tx, purpose, sync, wait);
	}
}

// True when tx's terminal state cannot change even if its final record is
// lost (see the top of this file).
static bool
outcome_settled(const mtx *tx)
{
	return !(tx->core.mode == DTX_SAGA &&
	    tx->core.state == DTX_STATE_COMMITTED);
}

static void
run_actions(dtxd_txmgr *m, mtx *tx, const dtxd_actions *acts)
{
	for (uint32_t i = 0; i < acts->n; i++) {
		const dtxd_action *a = &acts->v[i];
		switch (a->kind) {
		case DTXD_ACT_SEND:
			do_send(m, tx, a);
			break;
		case DTXD_ACT_PERSIST:
			write_or_redo(m, tx, W_PERSIST, a->sync, a->wait);
			break;
		case DTXD_ACT_FINISH:
			if (!tx->finishing) {
				tx->finishing = true;
				if (outcome_settled(tx)) {
					reply_waiters(m, tx, 0);
				}
				dtxi_crash_point(
				    &m->crash, DTXI_CRASH_BEFORE_FINAL_RECORD);
				write_or_redo(m, tx, W_FINISH, false, false);
			}
			break;
		}
	}
}

// Feeds one event to the transaction's engine and carries out the
// actions. crash_after names a crash point checked between the two, where
// the engine has decided but nothing of the decision has left the process.
// The before-*-decision points sit there too: the engine has just turned
// to COMMITTING or COMPENSATING in memory, and the write that makes the
// decision durable has not even been queued, so recovery must act as if
// the decision had never been taken.
static void
tx_event(
    dtxd_txmgr *m, mtx *tx, const dtxd_event *ev, dtxi_crash_pt crash_after)
{
	dtxd_actions *acts = &m->acts;
	int           was  = tx->core.state;

	dtxd_tx_handle(&tx->core, &m->cfg.policy, ev, acts);
	dtxi_crash_point(&m->crash, crash_after);
	if (was != tx->core.state) {
		if (tx->core.state == DTX_STATE_COMMITTING) {
			dtxi_crash_point(
			    &m->crash, DTXI_CRASH_BEFORE_COMMIT_DECISION);
		} else if (tx->core.state == DTX_STATE_COMPENSATING) {
			dtxi_crash_point(
			    &m->crash, DTXI_CRASH_BEFORE_COMPENSATE_DECISION);
		}
	}
	// The actions buffer is reused by nested work only through the
	// queue, never re-entrantly, so it can be carried out in place.
	run_actions(m, tx, acts);
	tx_timer_update(m, tx);
}

// ---------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------

static void
on_call_event(dtxd_txmgr *m, mcall *mc)
{
	mtx          *tx = mc->tx;
	mbranch      *mb = &tx->mb[mc->branch];
	dtxd_event    ev;
	dtxi_crash_pt crash = DTXI_CRASH_NONE;

	if (tx->in_table && !tx->finishing) {
		memset(&ev, 0, sizeof(ev));
		ev.now_ms = dtxi_now_ms();
		ev.branch = mc->branch;
		ev.phase  = mc->phase;
		if (mc->rv == 0) {
			ev.kind         = DTXD_EV_REPLY;
			ev.status       = mc->status;
			mb->last_status = mc->status;
			mb->last_phase  = mc->phase;
			free(mb->message);
			mb->message = mc->message;
			mc->message = NULL;
			free(mb->rpayload);
			mb->rpayload     = mc->payload;
			mb->rpayload_len = mc->payload_len;
			mc->payload      = NULL;
			if (mc->status == DTX_BRANCH_OK) {
				crash = mc->phase == DTX_PHASE_COMMIT
				    ? DTXI_CRASH_AFTER_FIRST_COMMIT
				    : mc->phase == DTX_PHASE_EXECUTE
				    ? DTXI_CRASH_AFTER_FIRST_EXECUTE
				    : mc->phase == DTX_PHASE_COMPENSATE
				    ? DTXI_CRASH_AFTER_FIRST_COMPENSATE
				    : DTXI_CRASH_NONE;
			}
		} else {
			ev.kind         = DTXD_EV_FAILED;
			mb->last_status = DTX_BRANCH_NONE;
			mb->last_phase  = mc->phase;
			char msg[DTX_MESSAGE_MAX + 1];
			snprintf(msg, sizeof(msg), "no answer from %s: %s",
			    mb->endpoint, dtx_strerror(mc->rv));
			free(mb->message);
			mb->message = dup_str(msg);
		}
		tx_event(m, tx, &ev, crash);
	}
	free(mc->payload);
	free(mc->message);
	free(mc);
	tx_release(tx);
}

static void
on_write_event(dtxd_txmgr *m, mwrite *w)
{
	mtx *tx = w->tx;
	char msg[DTX_MESSAGE_MAX + 1];

	switch (w->purpose) {
	case W_CREATE:
		if (w->rv != 0) {
			// Never accepted: tell whoever waits, and forget it.
			snprintf(msg, sizeof(msg),
			    "cannot store the transaction: %s",
			    dtx_strerror(w->rv));
			fail_waiters(tx, w->rv, msg);
			table_remove(m, tx);
			break;
		}
		tx->created = true;
		atomic_fetch_add(&m->started, 1);
		reply_waiters(m, tx, WAIT_ACCEPT);
		dtxd_event ev = {
		    .kind = DTXD_EV_START, .now_ms = dtxi_now_ms()};
		tx_event(m, tx, &ev, DTXI_CRASH_NONE);
		break;
	case W_PERSIST:
		if (w->rv != 0) {
			DTXI_ERROR("txmgr: write of %s failed: %s; retrying",
			    tx->gid, dtx_strerror(w->rv));
			schedule_redo(m, tx, W_PERSIST, w->op.sync, w->wait);
			break;
		}
		if (w->wait && tx->in_table && !tx->finishing) {
			if (tx->core.state == DTX_STATE_COMMITTING) {
				dtxi_crash_point(&m->crash,
				    DTXI_CRASH_AFTER_COMMIT_DECISION);
			} else if (tx->core.state == DTX_STATE_COMPENSATING) {
				dtxi_crash_point(&m->crash,
				    DTXI_CRASH_AFTER_COMPENSATE_DECISION);
			}
			dtxd_event pev = {.kind = DTXD_EV_PERSISTED,
			    .now_ms             = dtxi_now_ms()};
			tx_event(m, tx, &pev, DTXI_CRASH_NONE);
		}
		break;
	case W_FINISH:
		if (w->rv != 0) {
			DTXI_ERROR("txmgr: final write of %s failed: %s; "
			           "retrying",
			    tx->gid, dtx_strerror(w->rv));
			schedule_redo(m, tx, W_FINISH, false, false);
			break;
		}
		atomic_fetch_add(&m->finished, 1);
		DTXI_DEBUG(
		    "txmgr: %s %s", tx->gid, dtx_state_name(tx->core.state));
		reply_waiters(m, tx, 0);
		if (tx->in_table) {
			table_remove(m, tx);
		}
		break;
	}
	mwrite_free(w);
	tx_release(tx);
}

static void
on_timer(dtxd_txmgr *m, mtx *tx, int64_t now)
{
	if (!tx->in_table) {
		return;
	}
	if (tx->redo != 0 && tx->redo_at <= now) {
		int  purpose  = tx->redo;
		bool sync     = tx->redo_sync;
		bool wait     = tx->redo_wait;
		tx->redo      = 0;
		tx->redo_sync = false;
		tx->redo_wait = false;
		write_or_redo(m, tx, purpose, sync, wait);
	}
	// Status requests that long-poll and ran out of time get the state
	// as it is.
	waiter **pp = &tx->waiters;
	while (*pp != NULL) {
		waiter *w = *pp;
		if (w->kind == WAIT_STATUS && w->deadline_ms <= now) {
			*pp = w->next;
			reply_tx(m, w->r, tx);
			free(w);
		} else {
			pp = &w->next;
		}
	}
	if (tx->created && !tx->finishing && tx->core.wake_ms != 0 &&
	    tx->core.wake_ms <= now) {
		dtxd_event ev = {.kind = DTXD_EV_TIMER, .now_ms = now};
		tx_event(m, tx, &ev, DTXI_CRASH_NONE);
	}
}

// ---------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------

static bool
gid_valid(const char *gid)
{
	size_t n = strlen(gid);
	if (n == 0 || n > DTX_GID_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (gid[i] < 0x21 || gid[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

// Reads a finished transaction's record. On success *buf holds the bytes
// that m->rec's payload slices point into; free it after use.
static int
load_record(dtxd_txmgr *m, const char *gid, uint8_t **buf)
{
	size_t len;
	int    rv = dtxd_store_get_record(m->store, gid, buf, &len);
	if (rv != 0) {
		return rv;
	}
	if ((rv = dtxd_record_decode(m->rec, *buf, len)) != 0) {
		DTXI_ERROR("txmgr: the record of %s does not decode", gid);
		free(*buf);
		return DTX_ESTORAGE;
	}
	return 0;
}

static void
reply_record(dtxd_txmgr *m, dtxd_sreq *r)
{
	dtxi_reply *rep = reply_init(m, DTXI_REP_TX);
	rep->u.tx       = m->rec->info;
	dtxd_server_reply(r, rep);
}

static void
reply_code(dtxd_sreq *r, int code, const char *fmt, const char *arg)
{
	char msg[DTX_MESSAGE_MAX + 1];
	snprintf(msg, sizeof(msg), fmt, arg);
	dtxd_server_reply_error(r, code, msg);
}

static int
validate_submit(dtxd_txmgr *m, const dtxi_submit *s, char *why, size_t cap)
{
	if (s->mode != DTX_2PC && s->mode != DTX_SAGA) {
		snprintf(why, cap, "unknown mode %d", s->mode);
		return DTX_EINVAL;
	}
	if (s->nbranches == 0) {
		snprintf(why, cap, "a transaction needs at least one branch");
		return DTX_EINVAL;
	}
	if (s->gid[0] != '\0' && !gid_valid(s->gid)) {
		snprintf(why, cap, "gid must be 1..%d printable characters",
		    DTX_GID_MAX);
		return DTX_EINVAL;
	}
	if (s->timeout_ms > 24u * 3600 * 1000 ||
	    s->call_timeout_ms > 3600u * 1000 || s->retries > 1000) {
		snprintf(why, cap,
		    "timeout (max 24 h), call timeout (max 1 h) or retries "
		    "(max 1000) out of range");
		return DTX_EINVAL;
	}
	for (uint32_t i = 0; i < s->nbranches; i++) {
		const dtxi_branch_spec *b = &s->branches[i];
		dtxd_peer              *peer;
		if (b->method[0] == '\0') {
			snprintf(why, cap, "branch %u has no method", i);
			return DTX_EINVAL;
		}
		if (strstr(b->endpoint, "://") == NULL ||
		    dtxd_dispatcher_peer(m->disp, b->endpoint, &peer) != 0) {
			snprintf(why, cap,
			    "branch %u: invalid endpoint '%.200s'", i,
			    b->endpoint);
			return DTX_EINVAL;
		}
	}
	return 0;
}

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

static void
on_submit(dtxd_txmgr *m, dtxd_sreq *r, const dtxi_submit *s)
{
	char     why[DTX_MESSAGE_MAX + 1];
	char     gid[DTX_GID_MAX + 1];
	uint8_t *buf;
	mtx     *tx;
	int      rv;

	if ((rv = validate_submit(m, s, why, sizeof(why))) != 0) {
		dtxd_server_reply_error(r, rv, why);
		return;
	}
	if (s->gid[0] != '\0') {
		dtxi_strlcpy(gid, s->gid, sizeof(gid));
	} else {
		dtxi_gid_new(gid);
	}
	uint64_t hash = dtxi_submit_hash(s);

	// Idempotency: the same gid with the same content is the same
	// transaction, whether it is running or long finished.
	if ((tx = table_find(m, gid)) != NULL) {
		if (tx->content_hash != hash) {
			reply_code(r, DTX_EEXIST,
			    "gid %s already used with different content", gid);
		} else if (s->wait && !dtx_state_is_terminal(tx->core.state)) {
			if (add_waiter(tx, r, WAIT_OUTCOME, 0) != 0) {
				dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
			}
		} else if (!tx->created) {
			if (add_waiter(tx, r, WAIT_ACCEPT, 0) != 0) {
				dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
			}
		} else {
			reply_tx(m, r, tx);
		}
		return;
	}
	rv = load_record(m, gid, &buf);
	if (rv == 0) {
		if (m->rec->content_hash != hash) {
			reply_code(r, DTX_EEXIST,
			    "gid %s already used with different content", gid);
		} else {
			reply_record(m, r);
		}
		free(buf);
		return;
	}
	if (rv != DTX_ENOTFOUND) {
		dtxd_server_reply_error(r, rv, "cannot read the store");
		return;
	}

	if ((tx = tx_alloc(m, s->nbranches)) == NULL) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		return;
	}
	dtxi_strlcpy(tx->gid, gid, sizeof(tx->gid));
	for (uint32_t i = 0; i < s->nbranches; i++) {
		const dtxi_branch_spec *b  = &s->branches[i];
		mbranch                *mb = &tx->mb[i];
		mb->endpoint = dup_bytes(b->endpoint, strlen(b->endpoint));
		mb->method   = dup_bytes(b->method, strlen(b->method));
		mb->payload =
		    (uint8_t *)dup_bytes(b->payload.ptr, b->payload.len);
		mb->payload_len = b->payload.len;
		if (mb->endpoint == NULL || mb->method == NULL ||
		    mb->payload == NULL) {
			tx->refs = 1;
			tx_release(tx);
			dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
			return;
		}
	}
	int64_t now      = dtxi_now_ms();
	tx->content_hash = hash;
	tx->wait         = s->wait;
	tx->created_ms   = now;
	tx->updated_ms   = now;
	tx->timeout_ms   = s->timeout_ms ? s->timeout_ms : m->cfg.timeout_ms;
	tx->core.mode    = s->mode;
	tx->core.state =
	    s->mode == DTX_2PC ? DTX_STATE_PREPARING : DTX_STATE_RUNNING;
	tx->core.deadline_ms = now + tx->timeout_ms;
	tx->core.call_timeout_ms =
	    s->call_timeout_ms ? s->call_timeout_ms : m->cfg.call_timeout_ms;
	tx->core.retries = s->retries ? s->retries : m->cfg.retries;
	// A saga must be durable before its first step; a client that does
	// not wait is told "accepted" only once it is durable. A waiting 2PC
	// client can skip the sync: presumed abort covers a lost record.
	// (Decided before add_waiter, which frees the request s points into.)
	bool sync = s->mode == DTX_SAGA || !s->wait;
	table_insert(m, tx);
	if (add_waiter(tx, r, s->wait ? WAIT_OUTCOME : WAIT_ACCEPT, 0) != 0) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		table_remove(m, tx);
		return;
	}
	if ((rv = do_write(m, tx, W_CREATE, sync, false)) != 0) {
		fail_waiters(tx, rv, "cannot store the transaction");
		table_remove(m, tx);
	}
}

static void
on_status(dtxd_txmgr *m, dtxd_sreq *r, const char *gid, uint32_t wait_ms)
{
	mtx     *tx = table_find(m, gid);
	uint8_t *buf;
	int      rv;

	if (tx != NULL) {
		if (wait_ms > 0 && !dtx_state_is_terminal(tx->core.state)) {
			int64_t deadline = dtxi_now_ms() + wait_ms;
			if (add_waiter(tx, r, WAIT_STATUS, deadline) != 0) {
				dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
				return;
			}
			tx_timer_update(m, tx);
			return;
		}
		reply_tx(m, r, tx);
		return;
	}
	if ((rv = load_record(m, gid, &buf)) != 0) {
		reply_code(r, rv,
		    rv == DTX_ENOTFOUND ? "no transaction %s"
		                        : "cannot read %s",
		    gid);
		return;
	}
	reply_record(m, r);
	free(buf);
}

typedef struct list_ctx {
	dtxd_txmgr *m;
	dtxi_reply *rep;
	int         state;
	uint32_t    limit;
	bool        more;
} list_ctx;

static int
list_one(void *arg, const char *gid, const uint8_t *rec, size_t len)
{
	list_ctx      *lc  = arg;
	dtxi_reply    *rep = lc->rep;
	dtxd_txmgr    *m   = lc->m;
	mtx           *tx  = table_find(m, gid);
	dtxi_txsummary sum;

	memset(&sum, 0, sizeof(sum));
	if (tx != NULL) {
		// Memory is ahead of the last write.
		dtxi_strlcpy(sum.gid, tx->gid, sizeof(sum.gid));
		sum.mode       = tx->core.mode;
		sum.state      = tx->core.state;
		sum.stuck      = tx->core.stuck;
		sum.created_ms = tx->created_ms;
		sum.updated_ms = tx->updated_ms;
		sum.nbranches  = tx->core.nbranches;
	} else {
		if (dtxd_record_decode(m->rec, rec, len) != 0) {
			return 0; // logged by recovery; not listable
		}
		dtxi_strlcpy(sum.gid, gid, sizeof(sum.gid));
		sum.mode       = m->rec->info.mode;
		sum.state      = m->rec->info.state;
		sum.stuck      = m->rec->info.stuck;
		sum.created_ms = m->rec->info.created_ms;
		sum.updated_ms = m->rec->info.updated_ms;
		sum.nbranches  = m->rec->info.nbranches;
	}
	if (lc->state != 0 && sum.state != lc->state) {
		return 0;
	}
	if (rep->u.list.n == lc->limit) {
		lc->more = true;
		return -1;
	}
	rep->u.list.items[rep->u.list.n++] = sum;
	return 0;
}

static void
on_list(
    dtxd_txmgr *m, dtxd_sreq *r, int state, const char *cursor, uint32_t limit)
{
	dtxi_reply *rep = reply_init(m, DTXI_REP_LIST);
	list_ctx    lc  = {m, rep, state, limit, false};
	int         rv;

	if (lc.limit == 0 || lc.limit > DTXI_LIST_MAX) {
		lc.limit = DTXI_LIST_MAX;
	}
	if (state < 0 || state > DTX_STATE_COMPENSATED) {
		dtxd_server_reply_error(r, DTX_EINVAL, "unknown state filter");
		return;
	}
	rep->u.list.n              = 0;
	rep->u.list.next_cursor[0] = '\0';
	if ((rv = dtxd_store_scan_records(m->store, cursor, list_one, &lc)) !=
	    0) {
		dtxd_server_reply_error(r, rv, "cannot read the store");
		return;
	}
	if (lc.more && rep->u.list.n > 0) {
		dtxi_strlcpy(rep->u.list.next_cursor,
		    rep->u.list.items[rep->u.list.n - 1].gid,
		    sizeof(rep->u.list.next_cursor));
	}
	dtxd_server_reply(r, rep);
}

static void
on_abort(dtxd_txmgr *m, dtxd_sreq *r, const char *gid)
{
	mtx     *tx = table_find(m, gid);
	uint8_t *buf;
	int      rv;

	if (tx != NULL) {
		if (!tx->created) {
			reply_code(r, DTX_ESTATE,
			    "%s is still being accepted; ask again", gid);
			return;
		}
		if (!tx->resumed) {
			tx_resume(m, tx);
		}
		dtxd_event ev = {
		    .kind = DTXD_EV_ABORT, .now_ms = dtxi_now_ms()};
		tx_event(m, tx, &ev, DTXI_CRASH_NONE);
		if (m->acts.rv != 0) {
			reply_code(r, m->acts.rv,
			    "%s has already decided to commit", gid);
			return;
		}
		reply_tx(m, r, tx);
		return;
	}
	if ((rv = load_record(m, gid, &buf)) != 0) {
		reply_code(r, rv,
		    rv == DTX_ENOTFOUND ? "no transaction %s"
		                        : "cannot read %s",
		    gid);
		return;
	}
	if (m->rec->info.state == DTX_STATE_COMMITTED) {
		reply_code(r, DTX_ESTATE, "%s is already committed", gid);
	} else {
		reply_record(m, r);
	}
	free(buf);
}

static void
on_resolve(dtxd_txmgr *m, dtxd_sreq *r, const char *gid)
{
	dtxi_reply *rep = reply_init(m, DTXI_REP_RESOLVE);
	mtx        *tx  = table_find(m, gid);
	uint8_t    *buf;
	int         rv;

	if (tx != NULL) {
		rep->u.resolve.state = tx->core.state;
		// The engine is COMMITTING from the moment it decides, but the
		// decision binds only once it is synced: a crash before that
		// restarts the transaction without it, and presumed abort
		// aborts it. A participant told COMMITTED-to-be in between
		// could commit a transaction that ends aborted, so until then
		// it is told the truth: still undecided.
		if (tx->core.state == DTX_STATE_COMMITTING &&
		    tx->core.persisting) {
			rep->u.resolve.state = DTX_STATE_PREPARING;
		}
	} else if ((rv = load_record(m, gid, &buf)) == 0) {
		rep->u.resolve.state = m->rec->info.state;
		free(buf);
	} else if (rv == DTX_ENOTFOUND) {
		// Presumed abort: no record means no commit was ever decided.
		rep->u.resolve.state = DTX_STATE_ABORTED;
	} else {
		dtxd_server_reply_error(r, rv, "cannot read the store");
		return;
	}
	dtxd_server_reply(r, rep);
}

static void
on_stats(dtxd_txmgr *m, dtxd_sreq *r)
{
	dtxi_reply      *rep = reply_init(m, DTXI_REP_STATS);
	dtxd_txmgr_stats ts;
	dtxd_store_stats ss;

	dtxd_txmgr_get_stats(m, &ts);
	dtxd_store_get_stats(m->store, &ss);
	rep->u.stats.active        = ts.active;
	rep->u.stats.started       = ts.started;
	rep->u.stats.finished      = ts.finished;
	rep->u.stats.recovered     = ts.recovered;
	rep->u.stats.store_writes  = ss.ops;
	rep->u.stats.store_batches = ss.batches;
	rep->u.stats.store_syncs   = ss.syncs;
	rep->u.stats.store_errors  = ss.errors;
	rep->u.stats.uptime_ms     = (uint64_t)(dtxi_mono_ms() - m->start_ms);
	dtxd_dispatcher_get_counts(
	    m->disp, &rep->u.stats.branch_calls, &rep->u.stats.call_messages);
	dtxd_server_reply(r, rep);
}

static void
on_request(dtxd_txmgr *m, dtxd_sreq *r)
{
	const dtxi_request *req = dtxd_sreq_request(r);
	switch (req->kind) {
	case DTXI_REQ_SUBMIT:
		on_submit(m, r, &req->u.submit);
		break;
	case DTXI_REQ_STATUS:
		on_status(m, r, req->u.status.gid, req->u.status.wait_ms);
		break;
	case DTXI_REQ_LIST:
		on_list(m, r, req->u.list.state, req->u.list.cursor,
		    req->u.list.limit);
		break;
	case DTXI_REQ_ABORT:
		on_abort(m, r, req->u.abort.gid);
		break;
	case DTXI_REQ_RESOLVE:
		on_resolve(m, r, req->u.resolve.gid);
		break;
	case DTXI_REQ_STATS:
		on_stats(m, r);
		break;
	default:
		dtxd_server_reply_error(
		    r, DTX_EUNSUPPORTED, "not a coordinator request");
		break;
	}
}

void
dtxd_txmgr_on_request(void *arg, dtxd_sreq *r)
{
	dtxd_txmgr *m  = arg;
	mreq       *mr = malloc(sizeof(*mr));
	if (mr == NULL) {
		dtxd_server_reply_error(
		    r, DTX_ENOMEM, "coordinator out of memory");
		return;
	}
	mr->ev.kind = MEV_REQUEST;
	mr->r       = r;
	if (!post(m, &mr->ev)) {
		free(mr);
		dtxd_server_reply_error(r, DTX_ESHUTDOWN, NULL);
	}
}

// ---------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------

static void
dispatch(dtxd_txmgr *m, mev *ev)
{
	switch (ev->kind) {
	case MEV_REQUEST: {
		mreq *mr = (mreq *)ev;
		on_request(m, mr->r);
		free(mr);
		break;
	}
	case MEV_CALL:
		on_call_event(m, (mcall *)ev);
		break;
	case MEV_WRITE:
		on_write_event(m, (mwrite *)ev);
		break;
	}
}

static void
run_timers(dtxd_txmgr *m)
{
	int64_t now = dtxi_now_ms();
	while (m->hlen > 0 && m->heap[0]->twhen <= now) {
		mtx *tx = m->heap[0];
		tx->refs++; // on_timer may finish it
		timer_set(m, tx, 0);
		on_timer(m, tx, now);
		tx_timer_update(m, tx);
		tx_release(tx);
	}
	if (now >= m->next_purge_ms) {
		uint64_t purged = 0;
		int      rv     = dtxd_store_purge(m->store, now, &purged);
		if (rv != 0) {
			DTXI_ERROR(
			    "txmgr: purge failed: %s", dtx_strerror(rv));
		} else if (purged > 0) {
			DTXI_INFO("txmgr: purged %llu finished transactions",
			    (unsigned long long)purged);
		}
		int64_t every = m->cfg.retention_ms / 4;
		every = every < 1000 ? 1000 : every > 60000 ? 60000 : every;
		m->next_purge_ms = now + every;
	}
}

// Resuming recovered transactions. All of them are in the gid table from
// the start, so a Status, Resolve or resubmit finds each one at once, and
// the server answers while they are being resumed. Their RECOVER events,
// which send the calls that drive them on, are spread over the loop's
// passes instead of being handled all in the first: at most
// RESUME_PER_PASS per pass, so requests and replies are served between
// them, and at most RESUME_INFLIGHT_MAX resumed but unfinished at a time,
// so the participants are not handed 100,000 calls at once (a herd whose
// calls would time out in their queues and be retried, costing more than
// they did) and dtxd holds calls and their buffers for a bounded number of
// transactions. They resume in gid order, which is creation order (gids
// lead with their creation time): the oldest first. A request that must
// change a transaction not yet resumed (an operator Abort) resumes it
// first, out of turn, so that no event reaches an engine before RECOVER.
#define RESUME_PER_PASS     256
#define RESUME_INFLIGHT_MAX 4096

static bool
resume_ready(const dtxd_txmgr *m)
{
	return m->adopted != NULL && m->resuming < RESUME_INFLIGHT_MAX;
}

static void
tx_resume(dtxd_txmgr *m, mtx *tx)
{
	tx->resumed    = true;
	tx->recovering = true;
	m->resuming++;
	for (uint32_t i = 0; i < tx->core.nbranches; i++) {
		tx->core.br[i].inflight    = false;
		tx->core.br[i].retry_at_ms = 0;
	}
	dtxd_event ev = {.kind = DTXD_EV_RECOVER, .now_ms = dtxi_now_ms()};
	tx_event(m, tx, &ev, DTXI_CRASH_NONE);
}

static void
resume_some(dtxd_txmgr *m)
{
	uint32_t n = 0;

	while (resume_ready(m) && n < RESUME_PER_PASS) {
		mtx *tx    = m->adopted;
		m->adopted = tx->rnext;
		if (m->adopted == NULL) {
			m->adopted_tail = NULL;
		}
		tx->rnext = NULL;
		// One resumed out of turn is still on the list; it is
		// simply dropped from it here.
		if (!tx->resumed && tx->in_table) {
			tx_resume(m, tx);
			n++;
		}
		tx_release(tx); // the list's reference
	}
}

static void *
loop_main(void *arg)
{
	dtxd_txmgr *m = arg;

	pthread_mutex_lock(&m->mtx);
	while (!m->stopping) {
		if (m->qhead == NULL && !resume_ready(m)) {
			int64_t wait_ms = 1000;
			if (m->hlen > 0) {
				wait_ms = m->heap[0]->twhen - dtxi_now_ms();
			}
			if (wait_ms > 0) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				if (wait_ms > 1000) {
					wait_ms = 1000;
				}
				ts.tv_sec += wait_ms / 1000;
				ts.tv_nsec += (wait_ms % 1000) * 1000000;
				if (ts.tv_nsec >= 1000000000) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000;
				}
				pthread_cond_timedwait(&m->cv, &m->mtx, &ts);
			}
		}
		mev *batch = m->qhead;
		m->qhead = m->qtail = NULL;
		pthread_mutex_unlock(&m->mtx);
		while (batch != NULL) {
			mev *next = batch->next;
			dispatch(m, batch);
			batch = next;
		}
		run_timers(m);
		resume_some(m);
		// The calls of this pass go out now, one message per
		// participant.
		dtxd_dispatcher_flush(m->disp);
		pthread_mutex_lock(&m->mtx);
	}
	pthread_mutex_unlock(&m->mtx);
	return NULL;
}

int
dtxd_txmgr_open(
    dtxd_txmgr **mp, const dtxd_config *c, dtxd_store *st, dtxd_dispatcher *d)
{
	dtxd_txmgr *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return DTX_ENOMEM;
	}
	m->cfg   = *c;
	m->store = st;
	m->disp  = d;
	dtxi_crash_init(&m->crash, DTXI_CRASH_COORDINATOR, c->crash_at);
	m->tsize = 1024;
	m->table = calloc(m->tsize, sizeof(*m->table));
	m->rep   = calloc(1, sizeof(*m->rep));
	m->rec   = calloc(1, sizeof(*m->rec));
	m->wcap  = 4096;
	m->wbuf  = malloc(m->wcap);
	if (m->table == NULL || m->rep == NULL || m->rec == NULL ||
	    m->wbuf == NULL) {
		free(m->table);
		free(m->rep);
		free(m->rec);
		free(m->wbuf);
		free(m);
		return DTX_ENOMEM;
	}
	pthread_mutex_init(&m->mtx, NULL);
	pthread_cond_init(&m->cv, NULL);
	*mp = m;
	return 0;
}

int
dtxd_txmgr_adopt(dtxd_txmgr *m, const dtxd_record *rec,
    const uint8_t *const *specs, const size_t *spec_lens)
{
	const dtxi_txinfo *info = &rec->info;
	mtx               *tx;

	if (info->nbranches == 0 || info->nbranches > DTX_BRANCHES_MAX) {
		return DTX_EPROTO;
	}
	if ((tx = tx_alloc(m, info->nbranches)) == NULL) {
		return DTX_ENOMEM;
	}
	tx->refs = 1; // held by the list of adopted until it is resumed
	dtxi_strlcpy(tx->gid, info->gid, sizeof(tx->gid));
	for (uint32_t i = 0; i < info->nbranches; i++) {
		dtxi_branch_spec spec;
		mbranch         *mb = &tx->mb[i];
		if (dtxd_spec_decode(&spec, specs[i], spec_lens[i]) != 0) {
			tx_release(tx);
			return DTX_EPROTO;
		}
		mb->endpoint = dup_bytes(spec.endpoint, strlen(spec.endpoint));
		mb->method   = dup_bytes(spec.method, strlen(spec.method));
		mb->payload =
		    (uint8_t *)dup_bytes(spec.payload.ptr, spec.payload.len);
		mb->payload_len             = spec.payload.len;
		const dtxi_branch_result *b = &info->branches[i];
		mb->last_status             = b->status;
		mb->last_phase              = b->phase;
		if (b->message[0] != '\0' &&
		    (mb->message = dup_str(b->message)) == NULL) {
			tx_release(tx);
			return DTX_ENOMEM;
		}
		if (b->payload.len > 0) {
			mb->rpayload = (uint8_t *)dup_bytes(
			    b->payload.ptr, b->payload.len);
			mb->rpayload_len = mb->rpayload ? b->payload.len : 0;
		}
		tx->core.br[i].done     = rec->done[i];
		tx->core.br[i].phase    = b->phase;
		tx->core.br[i].attempts = b->attempts;
		if (mb->endpoint == NULL || mb->method == NULL ||
		    mb->payload == NULL) {
			tx_release(tx);
			return DTX_ENOMEM;
		}
	}
	tx->content_hash         = rec->content_hash;
	tx->wait                 = rec->wait;
	tx->created_ms           = info->created_ms;
	tx->updated_ms           = info->updated_ms;
	tx->timeout_ms           = rec->timeout_ms;
	tx->created              = true;
	tx->core.mode            = info->mode;
	tx->core.state           = info->state;
	tx->core.stuck           = info->stuck;
	tx->core.cursor          = rec->cursor;
	tx->core.deadline_ms     = rec->deadline_ms;
	tx->core.call_timeout_ms = rec->call_timeout_ms
	    ? rec->call_timeout_ms
	    : m->cfg.call_timeout_ms;
	tx->core.retries         = rec->retries;
	// Into the table now (the loop is not running yet, so this thread
	// owns it), and onto the list of those to resume, which keeps the
	// reference taken above.
	table_insert(m, tx);
	if (m->adopted_tail != NULL) {
		m->adopted_tail->rnext = tx;
	} else {
		m->adopted = tx;
	}
	m->adopted_tail = tx;
	atomic_fetch_add(&m->recovered, 1);
	return 0;
}

int
dtxd_txmgr_start(dtxd_txmgr *m)
{
	m->next_purge_ms = dtxi_now_ms() + 1000;
	m->start_ms      = dtxi_mono_ms();
	if (pthread_create(&m->thread, NULL, loop_main, m) != 0) {
		return DTX_ENOMEM;
	}
	m->running = true;
	return 0;
}

void
dtxd_txmgr_stop(dtxd_txmgr *m)
{
	if (m == NULL) {
		return;
	}
	pthread_mutex_lock(&m->mtx);
	m->stopping = true;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mtx);
	if (m->running) {
		pthread_join(m->thread, NULL);
		m->running = false;
	}
	// From now on nothing new is queued (post() refuses); requests that
	// were queued and clients that wait are told the coordinator is
	// going. Their transactions are as durable as their writes.
	pthread_mutex_lock(&m->mtx);
	m->stopped = true;
	mev  *q    = m->qhead;
	mev **pp   = &q;
	while (*pp != NULL) {
		mev *ev = *pp;
		if (ev->kind == MEV_REQUEST) {
			*pp = ev->next;
			dtxd_server_reply_error(((mreq *)ev)->r, DTX_ESHUTDOWN,
			    "coordinator shutting down");
			free(ev);
		} else {
			pp = &ev->next;
		}
	}
	m->qhead = q;
	m->qtail = NULL;
	for (mev *ev = q; ev != NULL; ev = ev->next) {
		m->qtail = ev;
	}
	pthread_mutex_unlock(&m->mtx);
	for (mtx *tx = m->all; tx != NULL; tx = tx->anext) {
		fail_waiters(tx, DTX_ESHUTDOWN,
		    "coordinator shutting down; the transaction resumes "
		    "when it restarts");
	}
}

void
dtxd_txmgr_free(dtxd_txmgr *m)
{
	if (m == NULL) {
		return;
	}
	// Late completions hold buffers and references: drop them all, then
	// every transaction regardless of its count.
	mev *ev = m->qhead;
	while (ev != NULL) {
		mev *next = ev->next;
		if (ev->kind == MEV_CALL) {
			free(((mcall *)ev)->payload);
			free(((mcall *)ev)->message);
			free(ev);
		} else if (ev->kind == MEV_WRITE) {
			mwrite_free((mwrite *)ev);
		} else {
			free(ev);
		}
		ev = next;
	}
	m->adopted = NULL; // adopted transactions are on the list too
	while (m->all != NULL) {
		mtx *tx = m->all;
		m->all  = tx->anext;
		while (tx->waiters != NULL) {
			waiter *w   = tx->waiters;
			tx->waiters = w->next;
			free(w);
		}
		tx_free(tx);
	}
	free(m->heap);
	free(m->table);
	free(m->rep);
	free(m->rec);
	free(m->wbuf);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mtx);
	free(m);
}

void
dtxd_txmgr_get_stats(dtxd_txmgr *m, dtxd_txmgr_stats *st)
{
	st->active    = atomic_load(&m->active);
	st->started   = atomic_load(&m->started);
	st->finished  = atomic_load(&m->finished);
	st->recovered = atomic_load(&m->recovered);
}
