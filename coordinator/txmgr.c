// SPDX-License-Identifier: MIT
//
// txmgr: dtxd's event loop, alone (see txmgr.h for what it owns; the
// handlers of what it takes off its queue live in requests.c, actions.c and
// recovery.c).
//
// Where the loop runs. An event is handled on the thread it arrives on
// whenever nobody else is running the loop at that moment: a request on
// the server's nng thread that decoded it, the replies of a frame on the
// dispatcher's nng thread that received it, a read's result on the
// reader's thread (dtxd_evq_push). Waking a loop thread for each of them
// cost a futex wake and a context switch on both sides, and under load it
// was preempted in turn by the threads it woke. An event that arrives
// while someone runs the loop is queued, and that one takes it before it
// lets go (dtxd_evq_release). The loop thread is left with the timers,
// with recovery's pacing, with the ends of store writes (which arrive in
// groups, one after the other, and are best handled in one pass: their
// calls then go out batched) and with whatever an inline pass hands over
// after a few passes, so that no nng thread is kept from nng for long.
//
// What the loop may block on, and nothing else:
// - the queue's condition variable (the loop thread only), when there is
//   no event, no timer due and no recovered transaction to resume, for at
//   most a second;
// - the queue's mutex, a leaf held for a pointer swap.
// It never waits for the network (calls and replies leave through nng's
// asynchronous sends), for a write (the store's writer thread posts the
// end back) or for a read (the reader thread posts the result back: a
// Status, Submit or List never holds up the other transactions on a disk
// read).
//
// A pass takes every queued event in order, runs the timers that are due,
// resumes a few recovered transactions, and ends by flushing the branch
// calls of the pass, one message per participant.

#include "txmgr.h"

#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "clock.h"
#include "log.h"
#include "loopstate.h"
#include "recovery.h"
#include "requests.h"
#include "snapshot.h"
#include "watch.h"

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
	if (!dtxd_txmgr_push(m, &mr->ev, true)) {
		free(mr);
		dtxd_server_reply_error(r, DTX_ESHUTDOWN, NULL);
	}
}

// A write came back. Several nodes on one store: one that found its
// transaction owned by another node drops it at once (it sends nothing
// more from here; watch.c), and a create that found its gid created by
// another node first is answered as a resubmit (requests.c). Then, or
// else, actions.c ends the write.
static void
on_write(dtxd_txmgr *m, mwrite *w)
{
	txn *tx = w->tx;

	if (w->rv == DTXD_STORE_FENCED && tx->in_table) {
		dtxd_watch_drop(m, tx, "is run by another node now");
		w->purpose = 0;
	} else if (w->rv == DTX_EEXIST && w->purpose == W_CREATE &&
	    tx->in_table) {
		dtxd_requests_create_lost(m, tx);
		w->purpose = 0;
	}
	dtxd_act_on_write(m, w);
}

static void
dispatch(dtxd_txmgr *m, dtxd_ev *ev)
{
	switch (ev->kind) {
	case MEV_REQUEST: {
		mreq *mr = (mreq *)ev;
		dtxd_requests_handle(m, mr->r);
		free(mr);
		break;
	}
	case MEV_CALL:
		dtxd_act_on_call(m, (mcall *)ev);
		break;
	case MEV_WRITE:
		on_write(m, (mwrite *)ev);
		break;
	case MEV_READ:
		dtxd_requests_on_read(m, (mread *)ev);
		break;
	case MEV_SNAPSHOT:
		dtxd_snapshot_answer(m, &((msnap *)ev)->q, ((msnap *)ev)->fn,
		    ((msnap *)ev)->arg);
		free(ev);
		break;
	case MEV_ADOPT:
		dtxd_recovery_on_adopt(m, (dtxd_adopt_batch *)ev);
		break;
	case MEV_WATCH:
		dtxd_watch_on_read(m, (mwatch *)ev);
		break;
	case MEV_ABORT_ASKED:
		dtxd_requests_on_abort_asked(m, ev);
		break;
	}
}

int
dtxd_txmgr_snapshot(dtxd_txmgr *m, const dtxd_snapshot_query *q,
    dtxd_snapshot_fn fn, void *arg)
{
	msnap *ms = calloc(1, sizeof(*ms));

	if (ms == NULL) {
		return DTX_ENOMEM;
	}
	ms->ev.kind = MEV_SNAPSHOT;
	ms->q       = *q;
	ms->fn      = fn;
	ms->arg     = arg;
	if (!dtxd_evq_post(&m->q, &ms->ev)) {
		free(ms);
		return DTX_ESHUTDOWN;
	}
	return 0;
}

static void
run_timers(dtxd_txmgr *m)
{
	int64_t now = dtxi_now_ms();
	txn    *tx;

	while ((tx = dtxd_txtable_pop_due(&m->tab, now)) != NULL) {
		dtxd_act_on_timer(m, tx, now);
		dtxd_act_wake(m, tx);
		dtxd_txn_release(tx);
	}
}

// When the loop thread is wanted next: at the earliest timer, or at once
// while recovered transactions wait to resume (or recovery's end is still
// to be said).
static int64_t
wake_ms(dtxd_txmgr *m)
{
	if (dtxd_recovery_ready(m) ||
	    (m->adopted == NULL && !m->recovery_done)) {
		return 1; // resume, or say that recovery is over, at once
	}
	int64_t next = dtxd_txtable_next_wake(&m->tab);
	// Watches of other nodes' transactions are read every poll period
	// (watch.c); the period runs on the monotonic clock.
	if (m->watches != NULL) {
		int64_t poll =
		    dtxi_now_ms() + (m->watch_poll_ms - dtxi_mono_ms());
		if (next == 0 || poll < next) {
			next = poll > 0 ? poll : 1;
		}
	}
	return next;
}

// Runs passes as the queue's consumer until it may let go; an inline
// consumer (limit > 0) hands what is left to the loop thread after limit
// passes.
static void
run_passes(dtxd_txmgr *m, unsigned limit)
{
	unsigned passes = 0;

	do {
		dtxd_ev *batch = dtxd_evq_take(&m->q, 0);
		while (batch != NULL) {
			dtxd_ev *next = batch->next;
			dispatch(m, batch);
			batch = next;
		}
		run_timers(m);
		dtxd_recovery_resume_some(m);
		dtxd_watch_poll(m);
		// The calls of this pass go out now, one message per
		// participant.
		dtxd_dispatcher_flush(m->disp);
		passes++;
	} while (!dtxd_evq_release(
	    &m->q, limit > 0 && passes >= limit, wake_ms(m)));
}

// Passes an inline consumer runs before it hands over to the loop thread.
#define INLINE_PASSES 8

static void
run_inline(dtxd_txmgr *m)
{
	run_passes(m, INLINE_PASSES);
}

static void *
loop_main(void *arg)
{
	dtxd_txmgr *m = arg;

	while (dtxd_evq_acquire(&m->q)) {
		run_passes(m, 0);
	}
	return NULL;
}

// The dispatcher's after-hook: the replies of one frame, queued by their
// callbacks, are handled in one pass.
static void
run_replies(void *arg)
{
	dtxd_txmgr_push(arg, NULL, true);
}

int
dtxd_txmgr_open(
    dtxd_txmgr **mp, const dtxd_config *c, dtxd_store *st, dtxd_dispatcher *d)
{
	dtxd_txmgr *m = calloc(1, sizeof(*m));
	int         rv;

	if (m == NULL) {
		return DTX_ENOMEM;
	}
	m->cfg        = *c;
	m->store      = st;
	m->disp       = d;
	m->run_inline = run_inline;
	dtxi_crash_init(&m->crash, DTXI_CRASH_COORDINATOR, c->crash_at);
	dtxd_evq_init(&m->q);
	if ((rv = dtxd_txtable_init(&m->tab)) != 0 ||
	    (rv = dtxd_recbuf_init(&m->rb)) != 0 ||
	    (m->rep = calloc(1, sizeof(*m->rep))) == NULL ||
	    (rv = dtxd_reader_open(&m->reader, st)) != 0) {
		dtxd_txmgr_close(m);
		return rv != 0 ? rv : DTX_ENOMEM;
	}
	dtxd_dispatcher_set_after(d, run_replies, m);
	*mp = m;
	return 0;
}

int
dtxd_txmgr_start(dtxd_txmgr *m)
{
	m->start_ms = dtxi_mono_ms();
	// The loop thread's first wake-up: at once when recovery adopted
	// transactions to resume.
	dtxd_evq_release(&m->q, true, wake_ms(m));
	if (pthread_create(&m->thread, NULL, loop_main, m) != 0) {
		return DTX_ENOMEM;
	}
	m->running = true;
	return 0;
}

// Frees a completion that came after the loop stopped.
static void
drop_late(dtxd_ev *ev)
{
	while (ev != NULL) {
		dtxd_ev *next = ev->next;
		if (ev->kind == MEV_CALL) {
			dtxd_act_free_call((mcall *)ev);
		} else if (ev->kind == MEV_WRITE) {
			dtxd_act_free_write((mwrite *)ev);
		} else if (ev->kind == MEV_ADOPT) {
			dtxd_adopt_batch_free((dtxd_adopt_batch *)ev);
		} else if (ev->kind == MEV_WATCH) {
			dtxd_watch_free_read((mwatch *)ev);
		} else {
			free(ev);
		}
		ev = next;
	}
}

void
dtxd_txmgr_stop(dtxd_txmgr *m)
{
	if (m == NULL) {
		return;
	}
	dtxd_evq_stop(&m->q);
	if (m->running) {
		pthread_join(m->thread, NULL);
		m->running = false;
	}
	// Reads still queued complete (DTX_ECLOSED) into the queue.
	dtxd_reader_close(m->reader);
	m->reader = NULL;
	// From now on nothing new is queued; requests that were queued or
	// read for, and clients that wait, are told the coordinator is
	// going. Their transactions are as durable as their writes. Call
	// and write completions keep their buffers until the close.
	dtxd_ev *ev = dtxd_evq_close(&m->q);
	while (ev != NULL) {
		dtxd_ev *next = ev->next;
		if (ev->kind == MEV_REQUEST) {
			dtxd_server_reply_error(((mreq *)ev)->r, DTX_ESHUTDOWN,
			    "coordinator shutting down");
			free(ev);
		} else if (ev->kind == MEV_READ) {
			dtxd_requests_drop_read((mread *)ev);
		} else if (ev->kind == MEV_SNAPSHOT) {
			((msnap *)ev)->fn(((msnap *)ev)->arg, NULL, 0);
			free(ev);
		} else if (ev->kind == MEV_WATCH) {
			dtxd_watch_free_read((mwatch *)ev);
		} else {
			ev->next = m->late;
			m->late  = ev;
		}
		ev = next;
	}
	dtxd_watch_stop(m);
	for (txn *tx = m->tab.all; tx != NULL; tx = tx->anext) {
		dtxd_waiters_fail(tx, DTX_ESHUTDOWN,
		    "coordinator shutting down; the transaction resumes "
		    "when it restarts");
		while (tx->deferred != NULL) {
			waiter *w    = tx->deferred;
			tx->deferred = w->next;
			dtxd_server_reply_error(
			    w->r, DTX_ESHUTDOWN, "coordinator shutting down");
			free(w);
		}
	}
}

void
dtxd_txmgr_close(dtxd_txmgr *m)
{
	if (m == NULL) {
		return;
	}
	dtxd_reader_close(m->reader);
	// Late completions hold buffers and references: drop them all, then
	// every transaction regardless of its count.
	drop_late(m->late);
	drop_late(dtxd_evq_close(&m->q));
	m->adopted = NULL; // adopted transactions are on the list too
	dtxd_txtable_fini(&m->tab);
	dtxd_recbuf_fini(&m->rb);
	free(m->rep);
	dtxd_evq_fini(&m->q);
	free(m);
}

void
dtxd_txmgr_get_stats(dtxd_txmgr *m, dtxd_txmgr_stats *st)
{
	st->active     = atomic_load(&m->tab.active);
	st->started    = atomic_load(&m->stats.started);
	st->finished   = atomic_load(&m->stats.finished);
	st->recovered  = atomic_load(&m->stats.recovered);
	st->taken_over = atomic_load(&m->stats.taken_over);
	st->fenced     = atomic_load(&m->stats.fenced);
}
