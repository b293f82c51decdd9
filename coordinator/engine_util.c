// SPDX-License-Identifier: MIT
//
// engine_util: the helpers both transaction engines share. They keep the
// bookkeeping of a branch call (attempt counting, the in-flight flag, the
// forward-call marker), build the actions handed back to the transaction
// manager, draw backoff delays from the transaction's own xorshift64 state and
// compute when the engine next wants a TIMER. Like the engines, nothing here
// reads a clock, allocates or does I/O, so a test can replay any history
// exactly.

#include <string.h>

#include "engine_util.h"

void
dtxd_policy_init(dtxd_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->backoff_base_ms = 100;
	p->backoff_max_ms  = 10000;
	p->stuck_after     = 10;
}

void
dtxd_actions_reset(dtxd_actions *out)
{
	out->n  = 0;
	out->rv = 0;
}

// The buffer holds two actions per branch and a few more, more than any
// single event can produce (at most one SEND per branch plus a PERSIST and a
// FINISH); running out means an engine bug, so the extra action is dropped
// rather than written past the end.
static dtxd_action *
actions_push(dtxd_actions *out, dtxd_act_kind kind)
{
	dtxd_action *a;

	if (out->n >= DTXD_ACTIONS_MAX) {
		return NULL;
	}
	a = &out->v[out->n++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	return a;
}

static bool
phase_is_forward(int phase)
{
	return phase == DTX_PHASE_PREPARE || phase == DTX_PHASE_EXECUTE;
}

void
dtxd_tx_send(dtxd_txcore *tx, uint32_t b, int phase, dtxd_actions *out)
{
	dtxd_branch *br = &tx->br[b];
	dtxd_action *a;

	// Attempts count the calls of one phase, so the participant sees
	// attempt 1 for the first COMMIT even after three PREPAREs, and the
	// forward retry budget and the stuck threshold each start afresh.
	if (br->phase != phase) {
		br->attempts     = 1;
		br->backoff_from = 0;
	} else {
		br->attempts++;
	}
	br->phase       = phase;
	br->inflight    = true;
	br->retry_at_ms = 0;
	if (phase_is_forward(phase)) {
		// From now on the step may have run: it must be undone.
		br->done |= DTXD_DONE_SENT;
	}
	if ((a = actions_push(out, DTXD_ACT_SEND)) != NULL) {
		a->branch     = b;
		a->phase      = phase;
		a->attempt    = br->attempts;
		a->timeout_ms = tx->call_timeout_ms;
	}
}

void
dtxd_tx_persist(dtxd_txcore *tx, bool sync, bool wait, dtxd_actions *out)
{
	dtxd_action *a;

	if (wait) {
		tx->persisting = true;
	}
	if ((a = actions_push(out, DTXD_ACT_PERSIST)) != NULL) {
		a->sync = sync;
		a->wait = wait;
	}
}

void
dtxd_tx_finish(dtxd_txcore *tx, int state, dtxd_actions *out)
{
	tx->state      = state;
	tx->persisting = false;
	dtxd_tx_clear_retries(tx);
	tx->wake_ms = 0;
	(void)actions_push(out, DTXD_ACT_FINISH);
}

// xorshift64 (Marsaglia): tiny, fast and good enough for jitter, whose only
// job is to keep many transactions that failed together from retrying in
// lock-step. A zero state would stay zero for ever, so it is replaced.
static uint64_t
rng_next(dtxd_txcore *tx)
{
	uint64_t x = tx->rng;

	if (x == 0) {
		x = 0x9e3779b97f4a7c15ull;
	}
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	tx->rng = x;
	return x;
}

uint32_t
dtxd_tx_backoff(dtxd_txcore *tx, const dtxd_policy *p, uint32_t n)
{
	uint64_t d = p->backoff_base_ms;
	uint64_t lo;

	if (n < 1) {
		n = 1;
	}
	// Doubling stops at the cap, which also keeps the shift from
	// overflowing however many attempts a stuck branch has made.
	for (uint32_t i = 1; i < n && d < p->backoff_max_ms; i++) {
		d *= 2;
	}
	if (d > p->backoff_max_ms) {
		d = p->backoff_max_ms;
	}
	lo = d / 2;
	return (uint32_t)(lo + rng_next(tx) % (d - lo + 1));
}

bool
dtxd_tx_accept(dtxd_txcore *tx, const dtxd_event *ev)
{
	dtxd_branch *br;

	if (ev->branch >= tx->nbranches) {
		return false;
	}
	br = &tx->br[ev->branch];
	// Only the outstanding call of the branch can end; a duplicate or a
	// result of an earlier phase would otherwise be counted twice.
	if (!br->inflight || ev->phase != br->phase) {
		return false;
	}
	br->inflight = false;
	if (ev->kind == DTXD_EV_REPLY) {
		br->last_status = ev->status;
	}
	return true;
}

bool
dtxd_tx_retry_forward(
    dtxd_txcore *tx, const dtxd_policy *p, uint32_t b, int64_t now)
{
	dtxd_branch *br = &tx->br[b];
	int64_t      at;

	if ((uint64_t)br->attempts >= 1 + (uint64_t)tx->retries) {
		return false;
	}
	at = now + dtxd_tx_backoff(tx, p, br->attempts - br->backoff_from);
	// A retry that could only start once the deadline has passed would
	// be given up at once: give up now and save the participant a call.
	if (tx->deadline_ms != 0 && at >= tx->deadline_ms) {
		return false;
	}
	br->retry_at_ms = at;
	return true;
}

void
dtxd_tx_retry_final(dtxd_txcore *tx, const dtxd_policy *p, uint32_t b,
    int64_t now, dtxd_actions *out)
{
	dtxd_branch *br = &tx->br[b];

	// A decided outcome cannot be given up, only reported: the flag is
	// written (unsynced: losing it costs nothing but a late flag) so that
	// operators see it and it survives a restart.
	if (br->attempts >= p->stuck_after && !tx->stuck) {
		tx->stuck = true;
		dtxd_tx_persist(tx, false, false, out);
	}
	br->retry_at_ms =
	    now + dtxd_tx_backoff(tx, p, br->attempts - br->backoff_from);
}

void
dtxd_tx_send_due(dtxd_txcore *tx, int phase, int64_t now, dtxd_actions *out)
{
	if (tx->persisting) {
		return;
	}
	for (uint32_t i = 0; i < tx->nbranches; i++) {
		const dtxd_branch *br = &tx->br[i];
		if (!br->inflight && br->retry_at_ms != 0 &&
		    br->retry_at_ms <= now) {
			dtxd_tx_send(tx, i, phase, out);
		}
	}
}

void
dtxd_tx_clear_retries(dtxd_txcore *tx)
{
	for (uint32_t i = 0; i < tx->nbranches; i++) {
		tx->br[i].retry_at_ms = 0;
	}
}

// Attempts stay as they are (they count the calls the participant saw);
// only the backoff's exponent starts again.
void
dtxd_tx_redrive(dtxd_txcore *tx, int64_t now)
{
	for (uint32_t i = 0; i < tx->nbranches; i++) {
		dtxd_branch *br  = &tx->br[i];
		br->backoff_from = br->attempts;
		if (!br->inflight && br->retry_at_ms != 0) {
			br->retry_at_ms = now;
		}
	}
}

bool
dtxd_tx_settle_done(const dtxd_txcore *tx, uint32_t b, dtxd_actions *out)
{
	uint32_t done = tx->br[b].done;

	if ((done & DTXD_DONE_FINAL) == 0) {
		return false;
	}
	if ((done & DTXD_DONE_SETTLED) == 0) {
		out->rv = DTX_ESTATE;
	}
	return true;
}

// A call in flight is forgotten (inflight cleared), so its late end is a
// stale result the engines ignore: the operator's word replaces it.
void
dtxd_tx_settle(dtxd_txcore *tx, uint32_t b, dtxd_actions *out)
{
	dtxd_branch *br = &tx->br[b];

	br->done |= DTXD_DONE_FINAL | DTXD_DONE_SETTLED;
	br->inflight    = false;
	br->retry_at_ms = 0;
	dtxd_tx_persist(tx, true, false, out);
}

bool
dtxd_tx_is_terminal(int state)
{
	return state == DTX_STATE_COMMITTED || state == DTX_STATE_ABORTED ||
	    state == DTX_STATE_COMPENSATED;
}

void
dtxd_tx_update_wake(dtxd_txcore *tx)
{
	int64_t wake = 0;

	if (dtxd_tx_is_terminal(tx->state)) {
		tx->wake_ms = 0;
		return;
	}
	// While a decision is being written nothing may be sent, so a
	// pending retry is no reason to wake; PERSISTED picks it up.
	if (!tx->persisting) {
		for (uint32_t i = 0; i < tx->nbranches; i++) {
			const dtxd_branch *br = &tx->br[i];
			if (!br->inflight && br->retry_at_ms != 0 &&
			    (wake == 0 || br->retry_at_ms < wake)) {
				wake = br->retry_at_ms;
			}
		}
	}
	if ((tx->state == DTX_STATE_PREPARING ||
	        tx->state == DTX_STATE_RUNNING) &&
	    tx->deadline_ms != 0 && (wake == 0 || tx->deadline_ms < wake)) {
		wake = tx->deadline_ms;
	}
	tx->wake_ms = wake;
}
