// SPDX-License-Identifier: MIT
//
// loopstate: what the loop's modules share and nobody else sees (nng
// keeps its sockimpl.h beside socket.c, pipe.c and dialer.c the same way):
// the manager's state, and the events posted to its queue. The modules, from
// the bottom up: txtable (the transactions in memory), record (a
// transaction <-> its record), actions (carry out what the engines ask,
// complete it, answer the waiters), recovery (adopt and resume), requests
// (the Coordinator API), and txmgr.c (the loop, alone).

#ifndef DTXD_LOOPSTATE_H
#define DTXD_LOOPSTATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "crashpoint.h"
#include "dispatcher.h"
#include "engine.h"
#include "evqueue.h"
#include "reader.h"
#include "record.h"
#include "server.h"
#include "store.h"
#include "txmgr.h"
#include "txtable.h"

// The kinds of event on the queue.
enum {
	MEV_REQUEST = 1,
	MEV_CALL,
	MEV_WRITE,
	MEV_READ,
	MEV_SNAPSHOT,
	MEV_ADOPT,
	MEV_WATCH,
	MEV_ABORT_ASKED // an abort asked through the store (requests.c)
};

// A request from the server.
typedef struct mreq {
	dtxd_ev    ev;
	dtxd_sreq *r;
} mreq;

// The end of a branch call (dispatcher thread -> loop).
typedef struct mcall {
	dtxd_ev     ev;
	dtxd_txmgr *m;
	txn        *tx;
	uint32_t    branch;
	int         phase;
	int         rv;
	int         status;
	char       *message; // the reply's, malloc'd; NULL when empty
	uint8_t    *payload;
	size_t      payload_len;
} mcall;

// What a write is for.
enum { W_CREATE = 1, W_PERSIST, W_FINISH };

// The end of a store write (writer thread -> loop).
typedef struct mwrite {
	dtxd_ev     ev;
	dtxd_txmgr *m;
	dtxd_wop    op;
	txn        *tx;
	int         purpose; // W_*
	bool        wait;
	uint64_t    seq; // the transaction's wseq for this write
	int         rv;
	uint8_t    *rec;
	uint32_t    nspecs;
	uint8_t   **specs;
	size_t     *spec_lens;
} mwrite;

// The end of a store read (reader thread -> loop) for a request: r's, or
// for tx (a Submit's read; tx holds a reference then, r is NULL).
typedef struct mread {
	dtxd_ev     ev;
	dtxd_txmgr *m;
	dtxd_sreq  *r;
	txn        *tx;
	dtxd_read   rd;
} mread;

// A status page's question (HTTP thread -> loop).
typedef struct msnap {
	dtxd_ev             ev;
	dtxd_snapshot_query q;
	dtxd_snapshot_fn    fn;
	void               *arg;
} msnap;

typedef struct dtxd_txstats {
	_Atomic uint64_t started;
	_Atomic uint64_t finished;
	_Atomic uint64_t recovered;
	_Atomic uint64_t taken_over; // adopted from another session
	_Atomic uint64_t fenced;     // dropped: another node took it over
} dtxd_txstats;

struct dtxd_watch;

struct dtxd_txmgr {
	dtxd_config      cfg;
	dtxd_store      *store;
	dtxd_dispatcher *disp;
	dtxd_reader     *reader;
	dtxi_crash       crash; // cfg.crash_at, armed at open
	dtxd_evq         q;
	bool             running;
	pthread_t        thread;
	dtxd_ev         *late; // after the stop: completions to release

	// The loop's (whichever thread runs it, see txmgr.c) from here on,
	// and the adopting thread's before the loop starts.
	dtxd_txtable tab;
	int64_t      start_ms; // monotonic
	dtxd_actions acts;
	dtxi_reply  *rep;     // scratch reply
	dtxd_recbuf  rb;      // scratch record and encoding buffer
	txn         *adopted; // recovered, not yet resumed (FIFO)
	txn         *adopted_tail;
	uint32_t     resuming;      // resumed and not yet finished
	uint64_t     resumed_total; // adopted transactions resumed so far
	bool         recovery_done; // all of them resumed (logged once)
	// Adopted and not yet gone (recovery.c paces takeovers by it); read
	// by the cluster's thread.
	_Atomic uint32_t   adopting;
	struct dtxd_watch *watches; // waits on other nodes' (watch.c)
	int64_t            watch_poll_ms;

	dtxd_txstats stats;

	// A few passes of the loop on the calling thread (txmgr.c), for
	// dtxd_txmgr_push.
	void (*run_inline)(struct dtxd_txmgr *m);
};

// Queues ev for the loop and, with run, handles it (with whatever else is
// queued) on the calling thread, if nobody runs the loop at this moment
// (see txmgr.c). Without run, a push with run (or the running pass) must
// follow soon. Returns false once the loop is closed: the caller still
// owns ev. The passes run through m->run_inline, which txmgr.c sets: the
// modules the loop calls reach the loop through this header, never by
// name, so no module depends on txmgr.c and txmgr.c on it in turn.
static inline bool
dtxd_txmgr_push(dtxd_txmgr *m, dtxd_ev *ev, bool run)
{
	switch (dtxd_evq_push(&m->q, ev, run)) {
	case DTXD_EVQ_CLOSED:
		return false;
	case DTXD_EVQ_RUN:
		m->run_inline(m);
		return true;
	default:
		return true;
	}
}

// dtxd_txmgr_push for a completion: after the loop stopped, keeps it for
// the close.
static inline void
txmgr_push(dtxd_txmgr *m, dtxd_ev *ev, bool run)
{
	if (!dtxd_txmgr_push(m, ev, run)) {
		dtxd_evq_post_late(&m->q, ev);
	}
}

// Posts ev for the loop thread (woken unless the loop is running); after
// the loop stopped, keeps it for the close.
static inline void
txmgr_post(dtxd_txmgr *m, dtxd_ev *ev)
{
	if (!dtxd_evq_post(&m->q, ev)) {
		dtxd_evq_post_late(&m->q, ev);
	}
}

#endif // DTXD_LOOPSTATE_H
