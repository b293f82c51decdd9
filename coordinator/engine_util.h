// SPDX-License-Identifier: MIT
//
// engine_util: the engines' view of one transaction, the event/action
// vocabulary of the two pure state machines (engine_2pc, engine_saga), and
// the helpers both use. engine.h adds the mode switch on top; the loop's
// modules include that. An engine is
// handed an event and the transaction, updates the transaction in place and
// appends actions for its caller (the transaction manager) to carry out:
// send a branch call, write the record, finish. Engines touch no library, no
// clock and no socket: time comes in with the event and randomness (backoff
// jitter) from the transaction's own rng state, so a test can replay any
// history exactly.
//
// Rules shared by both engines:
// - A branch has at most one call in flight. A result (REPLY or FAILED) is
//   accepted only for the in-flight call of that branch and phase; anything
//   else is a stale duplicate and ignored. A branch that must be called in
//   a new phase while a call is in flight is called once that call ends.
// - A decision (2PC COMMIT, saga COMPENSATE) is written synced before any
//   call that depends on it: the engine emits PERSIST{sync, wait}, sets
//   persisting, and sends nothing until PERSISTED arrives.
// - Retries use capped exponential backoff with jitter: the n-th retry
//   (n >= 1) waits d/2 + rand(0..d/2) ms with d = min(max, base * 2^(n-1)).
// - Forward calls (PREPARE, EXECUTE) give up after 1 + retries calls or at
//   the transaction's deadline, whichever is first. Phase-two calls (COMMIT,
//   ABORT) and COMPENSATE are retried for ever; after stuck_after calls to
//   one branch the transaction is flagged stuck (and a PERSIST is emitted so
//   the flag is visible and survives restart).
// - An operator may re-drive a transaction (REDRIVE: every waiting retry
//   is due now, and the backoff of each branch starts again from its base)
//   and settle a branch by hand once the outcome is decided (SETTLE: the
//   branch counts as done, DONE_SETTLED records why, and the settlement is
//   written synced before anything that depends on it).

#ifndef DTXD_ENGINE_UTIL_H
#define DTXD_ENGINE_UTIL_H

#include <stdbool.h>
#include <stdint.h>

#include <dtx/dtx.h>

// Progress bits of one branch; persisted in the record.
#define DTXD_DONE_FWD     0x1u  // PREPARE / EXECUTE answered OK
#define DTXD_DONE_FINAL   0x2u  // COMMIT / ABORT / COMPENSATE completed
#define DTXD_DONE_SENT    0x4u  // a forward call was sent (may have run)
#define DTXD_DONE_REFUSED 0x8u  // the forward call was refused
#define DTXD_DONE_SETTLED 0x10u // an operator settled it (with FINAL)

typedef struct dtxd_branch {
	uint32_t done;         // DTXD_DONE_* bits
	bool     inflight;     // a call is outstanding
	int      phase;        // dtx_phase of the current (or last) call
	uint32_t attempts;     // calls made in that phase
	int64_t  retry_at_ms;  // resend at this time; 0: none scheduled
	int      last_status;  // dtx_branch_status of the last reply, 0: none
	bool     same_group;   // saga: in the group of the step before it
	uint32_t backoff_from; // attempts when the backoff last restarted
} dtxd_branch;

typedef struct dtxd_txcore {
	int          mode;  // dtx_mode
	int          state; // dtx_state
	bool         stuck;
	bool         persisting; // a synced decision is being written
	uint32_t     nbranches;
	uint32_t     cursor; // saga: a step of the group being run or undone
	int64_t      deadline_ms; // end of the prepare/forward phase; 0 none
	uint32_t     call_timeout_ms; // per call
	uint32_t     retries;         // forward retries after the first call
	uint64_t     rng;             // xorshift64 state, never 0
	int64_t      wake_ms; // engine wants a TIMER at this time; 0: none
	dtxd_branch *br;      // nbranches entries, owned by the caller
} dtxd_txcore;

typedef struct dtxd_policy {
	uint32_t backoff_base_ms; // first retry delay (default 100)
	uint32_t backoff_max_ms;  // cap of a retry delay (default 10000)
	uint32_t stuck_after; // calls before a branch flags stuck (def. 10)
	// Several nodes on one store: a 2PC abort is written (and its write
	// found still owned) before any ABORT is sent, as a commit is, so
	// that a node that lost the transaction sends nothing. Default off.
	bool abort_waits;
} dtxd_policy;

void dtxd_policy_init(dtxd_policy *p);

typedef enum dtxd_ev_kind {
	// The transaction was accepted (its create record is written): begin.
	DTXD_EV_START = 1,
	// The transaction was loaded from the store at start-up: the caller
	// has cleared inflight and retry_at_ms of every branch. Resume from
	// the durable state (see each engine).
	DTXD_EV_RECOVER,
	// The in-flight call of branch answered with status.
	DTXD_EV_REPLY,
	// The in-flight call of branch got no answer (timeout, transport).
	DTXD_EV_FAILED,
	// now_ms >= wake_ms.
	DTXD_EV_TIMER,
	// The synced write asked by PERSIST{wait} completed.
	DTXD_EV_PERSISTED,
	// An operator (or the client) asked to abort.
	DTXD_EV_ABORT,
	// An operator asked to re-drive the transaction now.
	DTXD_EV_REDRIVE,
	// An operator settled branch by hand: rv DTX_ESTATE unless the
	// outcome is decided (and durable) and the branch still needs its
	// phase two or compensation (or was settled before: then nothing).
	DTXD_EV_SETTLE,
} dtxd_ev_kind;

typedef struct dtxd_event {
	dtxd_ev_kind kind;
	int64_t      now_ms;
	uint32_t     branch; // REPLY, FAILED, SETTLE
	int          phase;  // REPLY, FAILED: phase of the call
	int          status; // REPLY: dtx_branch_status
} dtxd_event;

typedef enum dtxd_act_kind {
	// Call branch in phase (attempt is br[branch].attempts, already
	// incremented); the call must end (REPLY or FAILED) within
	// timeout_ms.
	DTXD_ACT_SEND = 1,
	// Write the record as it is now. sync: synced write. wait: the
	// engine is persisting and expects PERSISTED after the write.
	DTXD_ACT_PERSIST,
	// The transaction reached a terminal state: write the final record,
	// answer waiters, forget it. Always the last action.
	DTXD_ACT_FINISH,
} dtxd_act_kind;

typedef struct dtxd_action {
	dtxd_act_kind kind;
	uint32_t      branch;
	int           phase;
	uint32_t      attempt;
	uint32_t      timeout_ms;
	bool          sync;
	bool          wait;
} dtxd_action;

#define DTXD_ACTIONS_MAX (2 * DTX_BRANCHES_MAX + 4)

typedef struct dtxd_actions {
	uint32_t    n;
	int         rv; // ABORT, SETTLE: 0 or DTX_ESTATE; otherwise 0
	dtxd_action v[DTXD_ACTIONS_MAX];
} dtxd_actions;

// Helpers the engines share (engine_util.c).

// Clears out (n = 0, rv = 0).
void dtxd_actions_reset(dtxd_actions *out);

// Appends a SEND for branch b in phase: marks it in flight, counts the
// attempt (reset to 1 when the phase changes), clears retry_at_ms, and for
// a forward phase marks DTXD_DONE_SENT.
void dtxd_tx_send(dtxd_txcore *tx, uint32_t b, int phase, dtxd_actions *out);

// Appends a PERSIST; wait also sets tx->persisting.
void dtxd_tx_persist(dtxd_txcore *tx, bool sync, bool wait, dtxd_actions *out);
// Enters the terminal state, cancels retries, clears persisting and wake_ms
// and appends FINISH. The caller appends nothing after it.
void dtxd_tx_finish(dtxd_txcore *tx, int state, dtxd_actions *out);

// Delay before the n-th retry (n >= 1), advancing tx->rng.
uint32_t dtxd_tx_backoff(dtxd_txcore *tx, const dtxd_policy *p, uint32_t n);

// Sets tx->wake_ms to the earliest pending retry_at_ms (none counts while
// persisting: PERSISTED resumes the sending), or the deadline if the
// transaction is still in its forward phase, whichever is first, or 0
// (always 0 in a terminal state).
void dtxd_tx_update_wake(dtxd_txcore *tx);

// Accepts the end (REPLY or FAILED) of branch ev->branch's call: false if
// that branch has no call in flight in ev->phase (a stale duplicate, to be
// ignored entirely); otherwise clears inflight, records a REPLY's status in
// last_status and returns true.
bool dtxd_tx_accept(dtxd_txcore *tx, const dtxd_event *ev);

// Schedules the retry of branch b's failed forward call at now + backoff
// and returns true, or returns false (give up) when it made 1 + retries
// calls or the retry would start at or after the deadline.
bool dtxd_tx_retry_forward(
    dtxd_txcore *tx, const dtxd_policy *p, uint32_t b, int64_t now);

// Schedules the retry of branch b's failed phase-two or COMPENSATE call at
// now + backoff; flags the transaction stuck (with a PERSIST{no sync, no
// wait}) once the branch made stuck_after calls.
void dtxd_tx_retry_final(dtxd_txcore *tx, const dtxd_policy *p, uint32_t b,
    int64_t now, dtxd_actions *out);

// Sends phase to every branch not in flight whose retry is due at now;
// nothing while persisting.
void dtxd_tx_send_due(
    dtxd_txcore *tx, int phase, int64_t now, dtxd_actions *out);

// Cancels every scheduled retry.
void dtxd_tx_clear_retries(dtxd_txcore *tx);

// REDRIVE's bookkeeping: every scheduled retry is due at now, and each
// branch's backoff starts again from its base. The engine then sends what
// is due as on a TIMER.
void dtxd_tx_redrive(dtxd_txcore *tx, int64_t now);

// Whether SETTLE of branch b has nothing left to do because the branch is
// done: true then, with out->rv DTX_ESTATE unless an operator settled it
// already (settling a settled branch again is a no-op).
bool dtxd_tx_settle_done(const dtxd_txcore *tx, uint32_t b, dtxd_actions *out);

// SETTLE's bookkeeping for branch b, once the engine allowed it: DONE_FINAL
// and DONE_SETTLED, its call (if any) forgotten, no retry, and a
// PERSIST{sync} so the settlement is durable before what follows it.
void dtxd_tx_settle(dtxd_txcore *tx, uint32_t b, dtxd_actions *out);

// True for COMMITTED, ABORTED and COMPENSATED (dtx_state_is_terminal
// without linking libdtx).
bool dtxd_tx_is_terminal(int state);

#endif // DTXD_ENGINE_UTIL_H
