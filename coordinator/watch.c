// SPDX-License-Identifier: MIT
//
// watch: waits on transactions other nodes run (see watch.h). Watches are
// few (they exist only where a client asked a node that does not own its
// transaction, or after a node lost one), so they are a plain list, and
// each is one point read per poll.

#include "watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "clock.h"
#include "log.h"
#include "strs.h"

// How often a watched record is read again: the delay a client waiting on
// another node's transaction may add to its outcome.
#define WATCH_POLL_MS 100

typedef struct dtxd_watch {
	struct dtxd_watch *next;
	char               gid[DTX_GID_MAX + 1];
	int                mode;
	waiter            *waiters;
	bool               reading; // a read is in flight
} dtxd_watch;

static dtxd_watch *
watch_find(dtxd_txmgr *m, const char *gid)
{
	for (dtxd_watch *w = m->watches; w != NULL; w = w->next) {
		if (strcmp(w->gid, gid) == 0) {
			return w;
		}
	}
	return NULL;
}

static dtxd_watch *
watch_get(dtxd_txmgr *m, const char *gid, int mode)
{
	dtxd_watch *w = watch_find(m, gid);

	if (w == NULL && (w = calloc(1, sizeof(*w))) != NULL) {
		dtxi_strlcpy(w->gid, gid, sizeof(w->gid));
		w->next    = m->watches;
		m->watches = w;
	}
	if (w != NULL && w->mode == 0) {
		w->mode = mode;
	}
	return w;
}

// Unlinks and frees w unless a read still refers to it (the read's end
// frees it then).
static void
watch_release(dtxd_txmgr *m, dtxd_watch *w)
{
	if (w->waiters != NULL || w->reading) {
		return;
	}
	for (dtxd_watch **pp = &m->watches; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	free(w);
}

static void
append(waiter **list, waiter *w)
{
	w->next = NULL;
	while (*list != NULL) {
		list = &(*list)->next;
	}
	*list = w;
}

int
dtxd_watch_add(dtxd_txmgr *m, const char *gid, int mode, dtxd_sreq *r,
    int kind, int64_t deadline_ms)
{
	dtxd_watch *w = watch_get(m, gid, mode);
	waiter     *x;

	if (w == NULL || (x = calloc(1, sizeof(*x))) == NULL) {
		if (w != NULL) {
			watch_release(m, w);
		}
		return DTX_ENOMEM;
	}
	// As dtxd_waiter_add: the request's content is not needed any more.
	dtxd_sreq_drop_request(r);
	x->r           = r;
	x->kind        = kind;
	x->deadline_ms = deadline_ms;
	append(&w->waiters, x);
	// Read soon, not a whole period from now.
	m->watch_poll_ms = 0;
	return 0;
}

// Whether a transaction in state (created: its create is written) answers
// waiter x now: a terminal state answers every waiter, the create
// WAIT_ACCEPT, the deadline WAIT_STATUS; a watch's WAIT_DECIDED (an abort
// asked of the owner, requests.c) is answered by a decision (no longer
// PREPARING or RUNNING) or its deadline.
static bool
answers(const waiter *x, int state, bool created, int64_t now)
{
	bool decided =
	    state != DTX_STATE_PREPARING && state != DTX_STATE_RUNNING;

	return dtx_state_is_terminal(state) ||
	    (x->kind == WAIT_ACCEPT && created) ||
	    ((x->kind == WAIT_STATUS || x->kind == WAIT_DECIDED) &&
	        x->deadline_ms <= now) ||
	    (x->kind == WAIT_DECIDED && decided);
}

void
dtxd_watch_hand(dtxd_txmgr *m, waiter *list, txn *tx)
{
	int64_t now   = dtxi_now_ms();
	int     state = dtxd_act_told_state(tx);

	while (list != NULL) {
		waiter *w = list;
		list      = w->next;
		if (answers(w, state, tx->created, now)) {
			dtxd_act_reply_tx(m, w->r, tx);
			free(w);
		} else {
			append(&tx->waiters, w);
		}
	}
	dtxd_act_wake(m, tx);
}

void
dtxd_watch_claim(dtxd_txmgr *m, txn *tx)
{
	dtxd_watch *w = watch_find(m, tx->gid);
	waiter     *list;

	if (w == NULL) {
		return;
	}
	list       = w->waiters;
	w->waiters = NULL;
	dtxd_watch_hand(m, list, tx);
	watch_release(m, w);
}

void
dtxd_watch_drop(dtxd_txmgr *m, txn *tx, const char *why)
{
	dtxd_watch *w;

	DTXI_WARN("watch: %s (%s, epoch %llu) %s: dropped here", tx->gid,
	    dtx_state_name(tx->core.state), (unsigned long long)tx->epoch,
	    why);
	atomic_fetch_add(&m->stats.fenced, 1);
	if (tx->waiters != NULL) {
		if ((w = watch_get(m, tx->gid, tx->core.mode)) == NULL) {
			dtxd_waiters_fail(tx, DTX_ENOMEM,
			    "the transaction moved to another node; ask "
			    "again");
		} else {
			while (tx->waiters != NULL) {
				waiter *x   = tx->waiters;
				tx->waiters = x->next;
				append(&w->waiters, x);
			}
			m->watch_poll_ms = 0;
		}
	}
	dtxd_act_forget(m, tx);
}

// ---------------------------------------------------------------------
// Polling
// ---------------------------------------------------------------------

// On a reader thread: back to the loop.
static void
read_done(dtxd_read *rd)
{
	mwatch *mw = (mwatch *)((char *)rd - offsetof(mwatch, rd));
	txmgr_post(mw->m, &mw->ev);
}

void
dtxd_watch_free_read(mwatch *mw)
{
	free(mw->rd.buf);
	free(mw);
}

void
dtxd_watch_poll(dtxd_txmgr *m)
{
	int64_t now = dtxi_mono_ms();

	if (m->watches == NULL || now < m->watch_poll_ms) {
		return;
	}
	m->watch_poll_ms = now + WATCH_POLL_MS;
	for (dtxd_watch *w = m->watches; w != NULL; w = w->next) {
		mwatch *mw;
		if (w->reading || w->waiters == NULL ||
		    (mw = calloc(1, sizeof(*mw))) == NULL) {
			continue;
		}
		mw->ev.kind = MEV_WATCH;
		mw->m       = m;
		mw->w       = w;
		mw->rd.kind = DTXD_READ_RECORD;
		mw->rd.done = read_done;
		dtxi_strlcpy(mw->rd.gid, w->gid, sizeof(mw->rd.gid));
		if (dtxd_reader_read(m->reader, &mw->rd) == 0) {
			w->reading = true;
		} else {
			free(mw);
		}
	}
}

// Answers the waiters of w that the record in m->rb.rec settles.
static void
answer_from_record(dtxd_txmgr *m, dtxd_watch *w)
{
	const dtxi_txinfo *info = &m->rb.rec->info;
	int64_t            now  = dtxi_now_ms();
	waiter           **pp   = &w->waiters;

	while (*pp != NULL) {
		waiter *x = *pp;
		// A stored record was created.
		if (answers(x, info->state, true, now)) {
			dtxi_reply *rep = dtxd_act_reply_init(m, DTXI_REP_TX);
			rep->u.tx       = *info;
			dtxd_server_reply(x->r, rep);
			*pp = x->next;
			free(x);
		} else {
			pp = &x->next;
		}
	}
}

static void
fail_all(dtxd_watch *w, int code, const char *msg)
{
	while (w->waiters != NULL) {
		waiter *x  = w->waiters;
		w->waiters = x->next;
		dtxd_server_reply_error(x->r, code, msg);
		free(x);
	}
}

void
dtxd_watch_on_read(dtxd_txmgr *m, mwatch *mw)
{
	dtxd_watch *w  = mw->w;
	txn        *tx = dtxd_txtable_find(&m->tab, w->gid);
	char        msg[DTX_MESSAGE_MAX + 1];

	w->reading = false;
	if (tx != NULL && !tx->loading) {
		// Taken over by this node meanwhile: it answers from memory.
		waiter *list = w->waiters;
		w->waiters   = NULL;
		dtxd_watch_hand(m, list, tx);
	} else if (mw->rd.rv == 0 &&
	    dtxd_record_decode(m->rb.rec, mw->rd.buf, mw->rd.len) == 0) {
		answer_from_record(m, w);
	} else if (mw->rd.rv == DTX_ENOTFOUND) {
		// Its create was lost with the database's last unsynced
		// writes, so nobody was told it was accepted.
		snprintf(msg, sizeof(msg),
		    "no record of %s any more: it was never accepted%s",
		    w->gid,
		    w->mode == DTX_2PC ? " (a 2PC without a record never "
		                         "commits: presumed abort)"
		                       : "");
		fail_all(w, DTX_ENOTFOUND, msg);
	}
	// A read error: asked again at the next poll.
	watch_release(m, w);
	dtxd_watch_free_read(mw);
}

void
dtxd_watch_stop(dtxd_txmgr *m)
{
	while (m->watches != NULL) {
		dtxd_watch *w = m->watches;
		m->watches    = w->next;
		fail_all(w, DTX_ESHUTDOWN, "coordinator shutting down");
		free(w);
	}
}
