// SPDX-License-Identifier: MIT
//
// watch: waiting on a transaction that another node runs. With several
// dtxd nodes on one store, any node answers for any transaction, but only
// its owner has it in memory. A request that must wait for an outcome (a
// Submit that waits, a resubmit after the first node died, a long-polling
// Status) on a node that does not own the transaction is parked on a watch
// of its gid; the loop reads the watched records every WATCH_POLL_MS off
// the loop (the reader's threads), and answers each waiter once the record
// says what it waits for. A transaction this node drops because another
// took it over (a write came back DTXD_STORE_FENCED) hands its waiters to a
// watch the same way, and a transaction that comes into this node's memory
// (taken over) takes the waiters of its watch. Loop thread only.

#ifndef DTXD_WATCH_H
#define DTXD_WATCH_H

#include "loopstate.h"

// The end of a watch's read (reader thread -> loop).
typedef struct mwatch {
	dtxd_ev            ev;
	dtxd_txmgr        *m;
	struct dtxd_watch *w;
	dtxd_read          rd;
} mwatch;

// Parks r on the watch of gid (kind WAIT_OUTCOME, WAIT_STATUS with its
// deadline, WAIT_ACCEPT, or WAIT_DECIDED: a decision, or its deadline);
// mode is the transaction's (0: unknown). The
// request's content is released as dtxd_waiter_add does. Errors:
// DTX_ENOMEM (r is not answered then).
int dtxd_watch_add(dtxd_txmgr *m, const char *gid, int mode, dtxd_sreq *r,
    int kind, int64_t deadline_ms);

// tx was taken over by another node (why says how this node found out):
// its waiters go to a watch of its gid, and it leaves memory at once. Calls
// and writes still in flight for it are ignored when they end.
void dtxd_watch_drop(dtxd_txmgr *m, txn *tx, const char *why);

// tx has come into memory: the waiters of its gid's watch become its own
// (those it can answer now are answered).
void dtxd_watch_claim(dtxd_txmgr *m, txn *tx);

// Hands the waiters of list to tx (see dtxd_watch_claim).
void dtxd_watch_hand(dtxd_txmgr *m, waiter *list, txn *tx);

// Queues the reads of the watched records when they are due; called once
// per loop pass.
void dtxd_watch_poll(dtxd_txmgr *m);

// A watch's read came back: answers what it can; frees mw.
void dtxd_watch_on_read(dtxd_txmgr *m, mwatch *mw);

// The loop stopped: every watch's waiters are told DTX_ESHUTDOWN, and
// every watch freed; mw (may be NULL) is a read that came back late.
void dtxd_watch_stop(dtxd_txmgr *m);
void dtxd_watch_free_read(mwatch *mw);

#endif // DTXD_WATCH_H
