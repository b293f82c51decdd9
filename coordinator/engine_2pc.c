// SPDX-License-Identifier: MIT
//
// engine_2pc: the two-phase commit state machine with presumed abort. It
// turns one event (a start, a branch reply or failure, a timer, a finished
// write, an operator abort, a recovery) into the transaction's next state
// and the calls and writes its manager must carry out. It is pure: time
// arrives with the event, jitter comes from the transaction's rng, and the
// full transition table lives in engine_2pc.h.

#include "engine_2pc.h"

// Prepare phase. Every branch is asked at once, because the transaction
// holds its participants' locks for as long as the slowest vote takes.
// One refusal settles the outcome, so abort is decided at the first
// one without waiting for the rest. A branch that cannot be reached is
// asked again with backoff, but only within the retry budget and before
// the deadline: a vote that comes too late is as good as no vote, and
// presumed abort makes giving up safe. When every vote is in, the commit
// decision must be durable before the first COMMIT leaves, or a crash could
// commit some branches and then abort the rest by presumption.
//
// Abort needs no synced write: a coordinator that forgets it aborted finds
// the transaction PREPARING on restart and aborts again. Branches whose
// PREPARE is still in flight get their ABORT when that call ends, so a
// participant never sees ABORT overtake the PREPARE it belongs to.
//
// Phase two. A decided outcome cannot be given up: COMMIT and ABORT are
// repeated with capped backoff until every branch acknowledges, and the
// transaction is flagged stuck (still retried) when one branch keeps
// failing. An ABORT answered NO_SUCH_METHOD or BAD_REQUEST is taken as done
// only for a branch that never voted OK: such a participant holds nothing.
// One that did prepare holds locks, so it is asked again until it says OK.

static bool
all_done(const dtxd_txcore *tx, uint32_t bit)
{
	for (uint32_t i = 0; i < tx->nbranches; i++) {
		if ((tx->br[i].done & bit) == 0) {
			return false;
		}
	}
	return true;
}

// Calls phase on every branch that still needs it and has no call in
// flight; the in-flight ones are called when their call ends.
static void
send_all(dtxd_txcore *tx, int phase, dtxd_actions *out)
{
	for (uint32_t i = 0; i < tx->nbranches; i++) {
		const dtxd_branch *br = &tx->br[i];
		if (!br->inflight && (br->done & DTXD_DONE_FINAL) == 0) {
			dtxd_tx_send(tx, i, phase, out);
		}
	}
}

// In a cluster (abort_waits) the ABORTs wait for the abort's write, which
// lands only while this node still owns the transaction: a node that was
// paused and lost it sends nothing. (Sending them at once would be safe
// too, since a takeover aborts what it finds PREPARING; the spin model
// checks both. The wait is defence in depth, and costs one write's
// latency on the abort path only.)
static void
decide_abort(dtxd_txcore *tx, const dtxd_policy *p, dtxd_actions *out)
{
	tx->state = DTX_STATE_ABORTING;
	dtxd_tx_clear_retries(tx);
	dtxd_tx_persist(tx, false, p->abort_waits, out);
	if (!p->abort_waits) {
		send_all(tx, DTX_PHASE_ABORT, out);
	}
}

static void
decide_commit(dtxd_txcore *tx, dtxd_actions *out)
{
	tx->state = DTX_STATE_COMMITTING;
	dtxd_tx_clear_retries(tx);
	dtxd_tx_persist(tx, true, true, out);
}

// Phase-two sends and the final check, once nothing is being written.
static void
phase_two(dtxd_txcore *tx, int phase, int final, dtxd_actions *out)
{
	if (all_done(tx, DTXD_DONE_FINAL)) {
		dtxd_tx_finish(tx, final, out);
		return;
	}
	send_all(tx, phase, out);
}

static void
on_prepare_end(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
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
	if (tx->state != DTX_STATE_PREPARING) {
		// A late vote after abort was decided: the branch now
		// gets the ABORT it was waiting for (COMMITTING cannot have
		// a PREPARE in flight).
		if (tx->state == DTX_STATE_ABORTING && !tx->persisting) {
			dtxd_tx_send(tx, ev->branch, DTX_PHASE_ABORT, out);
		}
		return;
	}
	if (ev->kind == DTXD_EV_REPLY && ev->status == DTX_BRANCH_OK) {
		if (all_done(tx, DTXD_DONE_FWD)) {
			decide_commit(tx, out);
		}
		return;
	}
	if (ev->kind == DTXD_EV_FAILED || ev->status == DTX_BRANCH_RETRY) {
		if (!dtxd_tx_retry_forward(tx, p, ev->branch, ev->now_ms)) {
			decide_abort(tx, p, out);
		}
		return;
	}
	// REFUSED, NO_SUCH_METHOD, BAD_REQUEST or a status we do not know:
	// this branch will never vote yes.
	decide_abort(tx, p, out);
}

static void
on_final_end(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
    dtxd_actions *out)
{
	dtxd_branch *br    = &tx->br[ev->branch];
	bool         abort = ev->phase == DTX_PHASE_ABORT;
	int          want  = abort ? DTX_STATE_ABORTING : DTX_STATE_COMMITTING;
	bool         ok    = false;

	if (tx->state != want) {
		return; // cannot happen: the phase follows the state
	}
	if (ev->kind == DTXD_EV_REPLY) {
		ok = ev->status == DTX_BRANCH_OK ||
		    (abort && (br->done & DTXD_DONE_FWD) == 0 &&
		        (ev->status == DTX_BRANCH_NO_SUCH_METHOD ||
		            ev->status == DTX_BRANCH_BAD_REQUEST));
	}
	if (!ok) {
		dtxd_tx_retry_final(tx, p, ev->branch, ev->now_ms, out);
		return;
	}
	br->done |= DTXD_DONE_FINAL;
	if (all_done(tx, DTXD_DONE_FINAL)) {
		dtxd_tx_finish(
		    tx, abort ? DTX_STATE_ABORTED : DTX_STATE_COMMITTED, out);
	}
}

// Recovery trusts only what was written. A PREPARING record may have lost
// votes, and nothing was promised, so it aborts; COMMITTING and ABORTING
// were decided and only the branches not yet acknowledged are called again
// (calls in flight at the crash were cleared by the caller).
static void
on_recover(dtxd_txcore *tx, const dtxd_policy *p, dtxd_actions *out)
{
	tx->persisting = false;
	dtxd_tx_clear_retries(tx);
	switch (tx->state) {
	case DTX_STATE_PREPARING:
		decide_abort(tx, p, out);
		break;
	case DTX_STATE_COMMITTING:
		phase_two(tx, DTX_PHASE_COMMIT, DTX_STATE_COMMITTED, out);
		break;
	case DTX_STATE_ABORTING:
		phase_two(tx, DTX_PHASE_ABORT, DTX_STATE_ABORTED, out);
		break;
	default:
		if (dtxd_tx_is_terminal(tx->state)) {
			dtxd_tx_finish(tx, tx->state, out);
		}
		break;
	}
}

static void
on_timer(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
    dtxd_actions *out)
{
	switch (tx->state) {
	case DTX_STATE_PREPARING:
		if (tx->deadline_ms != 0 && ev->now_ms >= tx->deadline_ms) {
			decide_abort(tx, p, out);
		} else {
			dtxd_tx_send_due(
			    tx, DTX_PHASE_PREPARE, ev->now_ms, out);
		}
		break;
	case DTX_STATE_COMMITTING:
		dtxd_tx_send_due(tx, DTX_PHASE_COMMIT, ev->now_ms, out);
		break;
	case DTX_STATE_ABORTING:
		dtxd_tx_send_due(tx, DTX_PHASE_ABORT, ev->now_ms, out);
		break;
	default:
		break;
	}
}

// An operator settles a branch of a decided transaction: it counts as
// acknowledged. A commit decision still being written is not decided yet
// for anyone outside (presumed abort would undo it after a crash), so it
// cannot be settled either.
static void
on_settle(dtxd_txcore *tx, const dtxd_event *ev, dtxd_actions *out)
{
	int final;

	if (ev->branch >= tx->nbranches ||
	    (tx->state != DTX_STATE_ABORTING &&
	        (tx->state != DTX_STATE_COMMITTING || tx->persisting))) {
		out->rv = DTX_ESTATE;
		return;
	}
	if (dtxd_tx_settle_done(tx, ev->branch, out)) {
		return;
	}
	final = tx->state == DTX_STATE_ABORTING ? DTX_STATE_ABORTED
	                                        : DTX_STATE_COMMITTED;
	dtxd_tx_settle(tx, ev->branch, out);
	if (all_done(tx, DTXD_DONE_FINAL)) {
		dtxd_tx_finish(tx, final, out);
	}
}

static void
on_abort(dtxd_txcore *tx, const dtxd_policy *p, dtxd_actions *out)
{
	switch (tx->state) {
	case DTX_STATE_PREPARING:
		decide_abort(tx, p, out);
		break;
	case DTX_STATE_COMMITTING:
	case DTX_STATE_COMMITTED:
		out->rv = DTX_ESTATE;
		break;
	default:
		break; // already aborting or aborted: nothing to do
	}
}

void
dtxd_2pc_handle(dtxd_txcore *tx, const dtxd_policy *p, const dtxd_event *ev,
    dtxd_actions *out)
{
	dtxd_actions_reset(out);
	if (ev->kind == DTXD_EV_RECOVER) {
		on_recover(tx, p, out);
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
		if (tx->state == DTX_STATE_PREPARING) {
			send_all(tx, DTX_PHASE_PREPARE, out);
			if (tx->nbranches == 0) {
				decide_commit(tx, out);
			}
		}
		break;
	case DTXD_EV_REPLY:
	case DTXD_EV_FAILED:
		if (!dtxd_tx_accept(tx, ev)) {
			break;
		}
		if (ev->phase == DTX_PHASE_PREPARE) {
			on_prepare_end(tx, p, ev, out);
		} else {
			on_final_end(tx, p, ev, out);
		}
		break;
	case DTXD_EV_TIMER:
		on_timer(tx, p, ev, out);
		break;
	case DTXD_EV_PERSISTED:
		if (tx->persisting && tx->state == DTX_STATE_COMMITTING) {
			tx->persisting = false;
			phase_two(
			    tx, DTX_PHASE_COMMIT, DTX_STATE_COMMITTED, out);
		} else if (tx->persisting && tx->state == DTX_STATE_ABORTING) {
			tx->persisting = false;
			phase_two(tx, DTX_PHASE_ABORT, DTX_STATE_ABORTED, out);
		}
		break;
	case DTXD_EV_ABORT:
		on_abort(tx, p, out);
		break;
	case DTXD_EV_REDRIVE:
		dtxd_tx_redrive(tx, ev->now_ms);
		on_timer(tx, p, ev, out);
		break;
	case DTXD_EV_SETTLE:
		on_settle(tx, ev, out);
		break;
	default:
		break;
	}
	dtxd_tx_update_wake(tx);
}
