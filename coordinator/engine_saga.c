// SPDX-License-Identifier: MIT
//
// engine_saga: the saga state machine. Steps are executed group by group in
// branch order (a step alone is a group of one; the steps of a group run in
// parallel); when one cannot be done the saga turns back and compensates,
// group by group in reverse order, every step that ran or may have run.
// Like engine_2pc it is pure (time in the event, jitter from the
// transaction's rng) and its transition table lives in engine_saga.h.

#include "engine_saga.h"

// Forward phase (RUNNING). One group at a time, because a later step may
// depend on what an earlier one did, and a saga has no locks to keep that
// consistent otherwise; the steps of one group are declared independent by
// the caller, so they run in parallel (DTM's concurrent saga). Progress is
// written unsynced after each group: after a crash the worst case is
// executing the last group again, which the participant's barrier makes
// harmless. A step that refuses, or keeps failing past its retry budget or
// the deadline, turns the saga back; so does the deadline itself, even with
// calls in flight, since their steps may be running and must be undone, but
// not before each call ends: COMPENSATE must never overtake the EXECUTE it
// undoes. Forward calls are never sent once the deadline has passed, and a
// step never sent is never compensated.
//
// Backward phase (COMPENSATING). Turning back is a decision, written synced
// before the first COMPENSATE: a coordinator that forgot it would resume
// executing steps the client was told are being undone. Compensation starts
// from the last group that may have run and goes down group by group; the
// steps of a group are compensated in parallel, and the group below starts
// only once every step of this one is undone. Compensation cannot be given
// up; each step is retried with capped backoff until it says OK, and the
// saga is flagged stuck (still retried) when one step keeps failing.
// NO_SUCH_METHOD or BAD_REQUEST count as done only for a step that never
// executed OK: then nothing needs undoing. For one that did, giving up
// would leave its effect in place, so it is retried like any failure.

// The group of step i is [group_first, group_end).
static uint32_t
group_first(const dtxd_txcore *tx, uint32_t i)
{
	while (i > 0 && tx->br[i].same_group) {
		i--;
	}
	return i;
}

static uint32_t
group_end(const dtxd_txcore *tx, uint32_t i)
{
	for (i++; i < tx->nbranches && tx->br[i].same_group; i++) {
	}
	return i;
}

static bool
in_group(const dtxd_txcore *tx, uint32_t b)
{
	uint32_t first = group_first(tx, tx->cursor);
	return b >= first && b < group_end(tx, first);
}

// A step that ran or may have run and is not undone yet.
static bool
to_undo(const dtxd_branch *br)
{
	return (br->done & DTXD_DONE_SENT) != 0 &&
	    (br->done & DTXD_DONE_FINAL) == 0;
}

// Compensation starts from the last step that may have run and goes down.
// Above the cursor's group only a recovered saga has any (on_recover marks
// them); for the others the walk down past steps never sent costs a loop.
static void
turn_back(dtxd_txcore *tx, dtxd_actions *out)
{
	tx->state = DTX_STATE_COMPENSATING;
	if (tx->nbranches > 0) {
		tx->cursor = tx->nbranches - 1;
	}
	dtxd_tx_clear_retries(tx);
	dtxd_tx_persist(tx, true, true, out);
}

// Compensates every step of the cursor's group that needs it and is idle
// (not in flight, no retry pending), going down past groups that need
// nothing (never sent, or already compensated), or finishes when none is
// left. A step whose EXECUTE is still in flight waits for that call to end.
static void
compensate_next(dtxd_txcore *tx, dtxd_actions *out)
{
	if (tx->persisting) {
		return;
	}
	if (tx->nbranches == 0) {
		dtxd_tx_finish(tx, DTX_STATE_COMPENSATED, out);
		return;
	}
	if (tx->cursor >= tx->nbranches) {
		tx->cursor = tx->nbranches - 1;
	}
	for (;;) {
		uint32_t first = group_first(tx, tx->cursor);
		uint32_t end   = group_end(tx, first);
		bool     left  = false;

		tx->cursor = first;
		for (uint32_t i = first; i < end; i++) {
			const dtxd_branch *br = &tx->br[i];
			if (!to_undo(br)) {
				continue;
			}
			left = true;
			if (!br->inflight && br->retry_at_ms == 0) {
				dtxd_tx_send(tx, i, DTX_PHASE_COMPENSATE, out);
			}
		}
		if (left) {
			return;
		}
		if (first == 0) {
			dtxd_tx_finish(tx, DTX_STATE_COMPENSATED, out);
			return;
		}
		tx->cursor = first - 1;
	}
}

static bool
past_deadline(const dtxd_txcore *tx, int64_t now)
{
	return tx->deadline_ms != 0 && now >= tx->deadline_ms;
}

// Executes the steps of the cursor's group not yet done, or finishes when
// every group is done.
static void
execute_next(dtxd_txcore *tx, int64_t now, dtxd_actions *out)
{
	if (tx->cursor >= tx->nbranches) {
		dtxd_tx_finish(tx, DTX_STATE_COMMITTED, out);
		return;
	}
	if (past_deadline(tx, now)) {
		turn_back(tx, out);
		return;
	}
	uint32_t end = group_end(tx, tx->cursor);
	for (uint32_t i = tx->cursor; i < end; i++) {
		const dtxd_branch *br = &tx->br[i];
		if ((br->done & DTXD_DONE_FWD) == 0 && !br->inflight &&
		    br->retry_at_ms == 0) {
			dtxd_tx_send(tx, i, DTX_PHASE_EXECUTE, out);
		}
	}
}

// True when every step of the cursor's group executed OK.
static bool
group_done(const dtxd_txcore *tx)
{
	uint32_t end = group_end(tx, tx->cursor);
	for (uint32_t i = tx->cursor; i < end; i++) {
		if ((tx->br[i].done & DTXD_DONE_FWD) == 0) {
			return false;
		}
	}
	return true;
}

static void
on_execute_end(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
    dtxd_actions *out)
{
	dtxd_branch *br = &tx->br[ev->branch];

	if (ev->kind == DTXD_EV_REPLY) {
		if (ev->status == DTX_BRANCH_OK) {
			br->done |= DTXD_DONE_FWD;
		} else if (ev->status == DTX_BRANCH_REFUSED) {
			br->done |= DTXD_DONE_REFUSED;
		}
	}
	if (tx->state != DTX_STATE_RUNNING) {
		// The saga turned back while this step was running: now
		// that its call has ended it can be compensated.
		if (tx->state == DTX_STATE_COMPENSATING) {
			compensate_next(tx, out);
		}
		return;
	}
	if (!in_group(tx, ev->branch)) {
		return; // cannot happen: only the cursor's group is called
	}
	if (ev->kind == DTXD_EV_REPLY && ev->status == DTX_BRANCH_OK) {
		if (!group_done(tx)) {
			return; // the others of the group are still running
		}
		tx->cursor = group_end(tx, tx->cursor);
		if (tx->cursor < tx->nbranches &&
		    !past_deadline(tx, ev->now_ms)) {
			dtxd_tx_persist(tx, false, false, out);
		}
		execute_next(tx, ev->now_ms, out);
		return;
	}
	if (ev->kind == DTXD_EV_FAILED || ev->status == DTX_BRANCH_RETRY) {
		if (!dtxd_tx_retry_forward(tx, p, ev->branch, ev->now_ms)) {
			turn_back(tx, out);
		}
		return;
	}
	// REFUSED, NO_SUCH_METHOD, BAD_REQUEST or an unknown status.
	turn_back(tx, out);
}

static void
on_compensate_end(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
    dtxd_actions *out)
{
	dtxd_branch *br = &tx->br[ev->branch];
	bool         ok = false;

	if (tx->state != DTX_STATE_COMPENSATING) {
		return; // cannot happen: the phase follows the state
	}
	if (ev->kind == DTXD_EV_REPLY) {
		ok = ev->status == DTX_BRANCH_OK ||
		    ((br->done & DTXD_DONE_FWD) == 0 &&
		        (ev->status == DTX_BRANCH_NO_SUCH_METHOD ||
		            ev->status == DTX_BRANCH_BAD_REQUEST));
	}
	if (!ok) {
		dtxd_tx_retry_final(tx, p, ev->branch, ev->now_ms, out);
		return;
	}
	br->done |= DTXD_DONE_FINAL;
	if (!in_group(tx, ev->branch)) {
		return; // cannot happen: only the cursor's group is called
	}
	uint32_t first = group_first(tx, tx->cursor);
	uint32_t end   = group_end(tx, first);
	for (uint32_t i = first; i < end; i++) {
		if (to_undo(&tx->br[i])) {
			return; // the others of the group are being undone
		}
	}
	if (first == 0) {
		dtxd_tx_finish(tx, DTX_STATE_COMPENSATED, out);
		return;
	}
	tx->cursor = first - 1;
	dtxd_tx_persist(tx, false, false, out);
	compensate_next(tx, out);
}

// Recovery resumes from the written cursor. The record may be older than
// the calls that left before the crash: a step's DONE_SENT reaches it only
// with the progress write queued (unsynced) in the pass that sent its
// EXECUTE, and the first group's with no write at all before the first
// progress write. So in a RUNNING saga every step from the cursor's group
// up may have run, and is marked so: turning back then compensates it (a
// null compensation where it never ran, which the barrier records so that
// a late EXECUTE is refused). Without the mark, a restart past the deadline
// turned back from a cursor below a step that had run, and left it
// uncompensated (found by the spin model, tests/model). A RUNNING saga
// then calls the steps of the cursor's group again (an EXECUTE may or may
// not have run; the barrier makes a repeat harmless) unless the deadline
// passed meanwhile, and then turns back; a COMPENSATING one compensates
// the cursor's group again.
static void
on_recover(dtxd_txcore *tx, const dtxd_event *ev, dtxd_actions *out)
{
	tx->persisting = false;
	dtxd_tx_clear_retries(tx);
	switch (tx->state) {
	case DTX_STATE_RUNNING:
		if (tx->cursor < tx->nbranches) {
			tx->cursor = group_first(tx, tx->cursor);
		}
		for (uint32_t i = tx->cursor; i < tx->nbranches; i++) {
			tx->br[i].done |= DTXD_DONE_SENT;
		}
		execute_next(tx, ev->now_ms, out);
		break;
	case DTX_STATE_COMPENSATING:
		compensate_next(tx, out);
		break;
	default:
		if (dtxd_tx_is_terminal(tx->state)) {
			dtxd_tx_finish(tx, tx->state, out);
		}
		break;
	}
}

// An operator settles a step's compensation by hand: only once the saga
// has turned back (durably) and for a step that ran or may have run and is
// not compensated yet. The cursor moves on past it as if it had answered.
static void
on_settle(dtxd_txcore *tx, const dtxd_event *ev, dtxd_actions *out)
{
	const dtxd_branch *br;

	if (ev->branch >= tx->nbranches ||
	    tx->state != DTX_STATE_COMPENSATING || tx->persisting) {
		out->rv = DTX_ESTATE;
		return;
	}
	if (dtxd_tx_settle_done(tx, ev->branch, out)) {
		return;
	}
	br = &tx->br[ev->branch];
	if ((br->done & DTXD_DONE_SENT) == 0) {
		out->rv = DTX_ESTATE; // never ran: nothing to undo
		return;
	}
	dtxd_tx_settle(tx, ev->branch, out);
	// Settled in the group being undone: once the group has nothing
	// left to undo, compensation goes on down.
	if (in_group(tx, ev->branch)) {
		compensate_next(tx, out);
	}
}

static void
on_timer(dtxd_txcore *tx, const dtxd_event *ev, dtxd_actions *out)
{
	switch (tx->state) {
	case DTX_STATE_RUNNING:
		if (past_deadline(tx, ev->now_ms)) {
			turn_back(tx, out);
		} else {
			dtxd_tx_send_due(
			    tx, DTX_PHASE_EXECUTE, ev->now_ms, out);
		}
		break;
	case DTX_STATE_COMPENSATING:
		dtxd_tx_send_due(tx, DTX_PHASE_COMPENSATE, ev->now_ms, out);
		break;
	default:
		break;
	}
}

void
dtxd_saga_handle(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
    dtxd_actions *out)
{
	dtxd_actions_reset(out);
	if (ev->kind == DTXD_EV_RECOVER) {
		on_recover(tx, ev, out);
		dtxd_tx_update_wake(tx);
		return;
	}
	if (dtxd_tx_is_terminal(tx->state)) {
		if ((ev->kind == DTXD_EV_ABORT &&
		        tx->state == DTX_STATE_COMMITTED) ||
		    ev->kind == DTXD_EV_SETTLE) {
			out->rv = DTX_ESTATE;
		}
		tx->wake_ms = 0;
		return;
	}
	switch (ev->kind) {
	case DTXD_EV_START:
		if (tx->state == DTX_STATE_RUNNING) {
			tx->cursor = 0;
			execute_next(tx, ev->now_ms, out);
		}
		break;
	case DTXD_EV_REPLY:
	case DTXD_EV_FAILED:
		if (!dtxd_tx_accept(tx, ev)) {
			break;
		}
		if (ev->phase == DTX_PHASE_EXECUTE) {
			on_execute_end(tx, p, ev, out);
		} else {
			on_compensate_end(tx, p, ev, out);
		}
		break;
	case DTXD_EV_TIMER:
		on_timer(tx, ev, out);
		break;
	case DTXD_EV_PERSISTED:
		if (tx->persisting && tx->state == DTX_STATE_COMPENSATING) {
			tx->persisting = false;
			compensate_next(tx, out);
		}
		break;
	case DTXD_EV_ABORT:
		if (tx->state == DTX_STATE_RUNNING) {
			turn_back(tx, out);
		}
		break;
	case DTXD_EV_REDRIVE:
		dtxd_tx_redrive(tx, ev->now_ms);
		on_timer(tx, ev, out);
		break;
	case DTXD_EV_SETTLE:
		on_settle(tx, ev, out);
		break;
	default:
		break;
	}
	dtxd_tx_update_wake(tx);
}
