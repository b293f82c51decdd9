// SPDX-License-Identifier: MIT
//
// actions: carrying out what the engines ask, and feeding back what came
// of it. An event goes to the transaction's engine (dtxd_act_event); its
// actions become branch calls (through the dispatcher), record writes
// (through the store) and, at the end, replies. The ends of calls and
// writes come back as events from other threads through the loop's queue,
// and are fed to the engine in turn (dtxd_act_on_call, dtxd_act_on_write,
// dtxd_act_on_timer). The engine is never re-entered: a call that cannot
// even start is failed through the queue too.
//
// The waiters live here, with the actions that complete them: a request
// parked on a transaction (a Submit that waits for acceptance or the
// outcome, a long-polling Status) is answered when the transaction gets
// there.
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
// once the record is written, and until then nobody is told it: a Status,
// a List or a Resolve says RUNNING (dtxd_act_told_state), and a Status that
// waits for the outcome (dtx_tx_wait) or a waiting Submit waits on.
// A write that fails (a full disk, say) is retried every second; the
// transaction waits, nothing is lost, and the error is logged.
//
// The decided reply (fail fast). A client that submits with `decided`
// (dtx_tx_commit does) is told the outcome as soon as it is reached, as
// any other, but also earlier, with the state it is in (COMMITTING,
// ABORTING, COMPENSATING), once the outcome is decided and durable (a 2PC
// commit or a saga's turn-back once synced, a 2PC abort at once: presumed
// abort) and its delivery is held up: a phase-two or compensation call got
// no answer (a participant that answers, even RETRY, is alive and gets the
// time), or the deadline of the forward phase plus one call timeout has
// passed. So a commit against a dead participant returns within the
// transaction's timeout plus one call timeout, with each branch's reason,
// while dtxd goes on delivering; a healthy one still returns its outcome.

#ifndef DTXD_ACTIONS_H
#define DTXD_ACTIONS_H

#include "loopstate.h"

// Feeds ev to tx's engine and carries out the actions. crash_after names a
// crash point checked between the two, where the engine has decided but
// nothing of the decision has left the process.
void dtxd_act_event(
    dtxd_txmgr *m, txn *tx, const dtxd_event *ev, dtxi_crash_pt crash_after);

// Encodes tx's record (and, for W_CREATE, its branch specs) and queues the
// write. Returns 0 or an error (then nothing is queued).
int dtxd_act_write(dtxd_txmgr *m, txn *tx, int purpose, bool sync, bool wait);

// The ends of a branch call and of a write, taken off the queue.
void dtxd_act_on_call(dtxd_txmgr *m, mcall *mc);
void dtxd_act_on_write(dtxd_txmgr *m, mwrite *w);

// tx's wake-up came (its timer entry is already gone): redo a failed
// write, answer long-polls that ran out, hand the engine its TIMER.
void dtxd_act_on_timer(dtxd_txmgr *m, txn *tx, int64_t now);

// Puts tx in the timer heap at the earliest time it needs the loop.
void dtxd_act_wake(dtxd_txmgr *m, txn *tx);

// Takes tx out of memory (its final record is written, or it never got
// one).
void dtxd_act_forget(dtxd_txmgr *m, txn *tx);

// Frees a completion that never reached the loop.
void dtxd_act_free_call(mcall *mc);
void dtxd_act_free_write(mwrite *w);

// The loop's scratch reply, reset to an empty one of kind.
dtxi_reply *dtxd_act_reply_init(dtxd_txmgr *m, dtxi_rep_kind kind);

// The state a client may be told of tx (see the top of this file): its
// state, but a saga's COMMITTED only once its final record is written, and
// RUNNING until then.
int dtxd_act_told_state(const txn *tx);

// Answers r with tx's status (its told state).
void dtxd_act_reply_tx(dtxd_txmgr *m, dtxd_sreq *r, const txn *tx);

// Parks r on tx until it is answered (kind WAIT_*; deadline for
// WAIT_STATUS). The request's content is no longer needed (the handlers
// have read or copied all of it before parking it), so its decoded form
// and frame go now rather than at the reply: with 10,000 clients waiting
// for outcomes, they were most of dtxd's memory. Errors: DTX_ENOMEM.
int dtxd_waiter_add(txn *tx, dtxd_sreq *r, int kind, int64_t deadline_ms);

// Answers tx's waiters of kind (0: all) with its status.
void dtxd_waiters_reply(dtxd_txmgr *m, txn *tx, int kind);

// Answers every waiter but those of WAIT_SYNCED (whose write may not be
// synced yet) with tx's status: its outcome is reached.
void dtxd_waiters_reply_outcome(dtxd_txmgr *m, txn *tx);

// Answers the clients waiting with `decided` if they may be told now (see
// the top of this file).
void dtxd_act_tell_decided(dtxd_txmgr *m, txn *tx);

// Answers all of tx's waiters with an error.
void dtxd_waiters_fail(txn *tx, int code, const char *msg);

#endif // DTXD_ACTIONS_H
