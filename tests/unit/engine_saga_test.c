// SPDX-License-Identifier: MIT
//
// Unit tests of engine_saga: every transition of the saga state machine,
// plus the shared backoff rule, driven event by event with a fixed clock
// and rng seed, without sockets or disk. Each test reads the actions back
// as a short string.

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "engine_drv.h"
#include "engine_saga.h"

// Runs steps 0..k-1 to OK, leaving step k's EXECUTE in flight.
static void
run_to(struct drv *d, uint32_t k)
{
	char want[64];

	cr_assert_str_eq(START(d), "execute(0)");
	for (uint32_t i = 0; i < k; i++) {
		snprintf(want, sizeof(want), "persist execute(%u)", i + 1);
		cr_assert_str_eq(REPLY(d, i, EXECUTE, OK), want);
		cr_assert_eq(d->tx.cursor, i + 1);
	}
}

// --- RUNNING -> COMMITTED ------------------------------------------------

Test(engine_saga, executes_steps_in_order_one_at_a_time_then_commits)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	cr_assert_str_eq(START(&d), "execute(0)");
	cr_assert_eq(d.tx.cursor, 0);
	cr_assert(d.br[0].done & DTXD_DONE_SENT);
	cr_assert_eq(d.br[1].done, 0, "later steps wait their turn");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "persist execute(1)");
	cr_assert(d.br[0].done & DTXD_DONE_FWD);
	cr_assert_eq(d.tx.cursor, 1);
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "persist execute(2)");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
	cr_assert_eq(d.tx.wake_ms, 0);
}

Test(engine_saga, retries_a_step_with_growing_backoff_then_goes_on)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.retries     = 3;
	d.tx.deadline_ms = 100000;
	run_to(&d, 1);
	int64_t lo = 50, hi = 100;
	for (uint32_t n = 1; n <= 3; n++) {
		cr_assert_str_eq(n % 2 ? FAILED(&d, 1, EXECUTE)
		                       : REPLY(&d, 1, EXECUTE, RETRY),
		    "");
		int64_t wait = d.br[1].retry_at_ms - d.now;
		cr_assert(wait >= lo && wait <= hi, "retry %u waits %lld", n,
		    (long long)wait);
		cr_assert_eq(d.tx.wake_ms, d.br[1].retry_at_ms);
		char want[32];
		snprintf(want, sizeof(want), "execute(1)#%u", n + 1);
		cr_assert_str_eq(drv_wake(&d), want);
		lo *= 2;
		hi *= 2;
	}
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
}

// --- RUNNING -> COMPENSATING -> COMPENSATED -----------------------------

Test(engine_saga, compensates_in_reverse_order_when_step_refused)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 4);
	run_to(&d, 2);
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
	cr_assert(d.br[2].done & DTXD_DONE_REFUSED);
	cr_assert(d.tx.persisting);
	d.now += 100000;
	cr_assert_str_eq(TIMER(&d), "", "nothing before the decision");
	cr_assert_str_eq(PERSISTED(&d), "compensate(2)");
	cr_assert_str_eq(
	    REPLY(&d, 2, COMPENSATE, OK), "persist compensate(1)");
	cr_assert_eq(d.tx.cursor, 1);
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
	cr_assert_eq(d.br[3].done, 0, "the last step never ran");
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert(d.br[i].done & DTXD_DONE_FINAL);
	}
}

Test(engine_saga, compensates_when_the_first_step_is_refused)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	run_to(&d, 0);
	cr_assert_str_eq(
	    REPLY(&d, 0, EXECUTE, NO_SUCH_METHOD), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
}

Test(engine_saga, compensates_when_a_step_finds_the_request_bad)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	run_to(&d, 1);
	cr_assert_str_eq(
	    REPLY(&d, 1, EXECUTE, BAD_REQUEST), "persist(sync,wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)");
}

Test(engine_saga, compensates_when_retries_run_out)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	d.tx.retries = 1;
	run_to(&d, 1);
	cr_assert_str_eq(FAILED(&d, 1, EXECUTE), "");
	cr_assert_str_eq(drv_wake(&d), "execute(1)#2");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, RETRY), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)",
	    "the failed step may have partly run");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

Test(engine_saga, compensates_when_a_retry_would_start_after_the_deadline)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.retries     = 9;
	d.tx.deadline_ms = d.now + 40;
	run_to(&d, 0);
	cr_assert_str_eq(FAILED(&d, 0, EXECUTE), "persist(sync,wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
}

Test(engine_saga, deadline_with_a_call_in_flight_waits_for_it)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	d.tx.deadline_ms = 5000;
	run_to(&d, 1);
	cr_assert_eq(d.tx.wake_ms, 5000);
	d.now = 5000;
	cr_assert_str_eq(TIMER(&d), "persist(sync,wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
	cr_assert_eq(d.tx.wake_ms, 0);
	cr_assert_str_eq(PERSISTED(&d), "", "EXECUTE(1) is still running");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "compensate(1)");
	cr_assert(d.br[1].done & DTXD_DONE_FWD);
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

Test(engine_saga, call_ending_before_the_decision_is_written_waits_for_it)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.deadline_ms = 5000;
	run_to(&d, 1);
	d.now = 6000;
	cr_assert_str_eq(TIMER(&d), "persist(sync,wait)");
	cr_assert_str_eq(FAILED(&d, 1, EXECUTE), "", "still persisting");
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)");
}

Test(engine_saga, deadline_with_a_retry_pending_compensates_at_once)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.retries     = 5;
	d.tx.deadline_ms = 1300;
	run_to(&d, 0);
	d.now = 1000;
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, RETRY), "");
	cr_assert(d.br[0].retry_at_ms < 1300);
	d.now = 1300;
	cr_assert_str_eq(TIMER(&d), "persist(sync,wait)");
	cr_assert_eq(d.br[0].retry_at_ms, 0, "the retry is cancelled");
	cr_assert_str_eq(PERSISTED(&d), "compensate(0)");
}

Test(engine_saga, step_finishing_after_the_deadline_does_not_start_the_next)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	d.tx.deadline_ms = 5000;
	run_to(&d, 1);
	d.now = 5001; // the reply overtakes the timer
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "persist(sync,wait)");
	cr_assert_eq(d.br[2].done, 0);
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)",
	    "step 2 never ran: nothing to undo");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
}

Test(engine_saga, last_step_finishing_after_the_deadline_still_commits)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.deadline_ms = 5000;
	run_to(&d, 1);
	d.now = 5001;
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
}

Test(engine_saga, start_after_the_deadline_compensates_nothing)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.deadline_ms = 900;
	cr_assert_str_eq(START(&d), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
}

// --- Compensation is retried for ever -----------------------------------

Test(engine_saga, retries_compensation_for_ever_and_flags_stuck)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.p.stuck_after = 4;
	run_to(&d, 1);
	REPLY(&d, 1, EXECUTE, REFUSED);
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)");
	for (uint32_t n = 1; n <= 25; n++) {
		cr_assert_str_eq(n % 2 ? FAILED(&d, 1, COMPENSATE)
		                       : REPLY(&d, 1, COMPENSATE, REFUSED),
		    n == 4 ? "persist" : "", "failure %u", n);
		cr_assert_eq(d.tx.stuck, n >= 4);
		int64_t wait = d.br[1].retry_at_ms - d.now;
		cr_assert(wait >= 0 && wait <= 10000, "capped: %lld",
		    (long long)wait);
		char want[32];
		snprintf(want, sizeof(want), "compensate(1)#%u", n + 1);
		cr_assert_str_eq(drv_wake(&d), want);
	}
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_eq(d.br[0].attempts, 1, "a new phase counts from one");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert(d.tx.stuck);
}

Test(engine_saga, no_such_method_compensates_a_step_that_never_executed_ok)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	run_to(&d, 1);
	REPLY(&d, 1, EXECUTE, REFUSED);
	PERSISTED(&d);
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, NO_SUCH_METHOD), "persist compensate(0)");
	cr_assert(d.br[1].done & DTXD_DONE_FINAL);
}

Test(engine_saga, no_such_method_is_retried_for_a_step_that_executed_ok)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	run_to(&d, 1);
	REPLY(&d, 1, EXECUTE, REFUSED);
	PERSISTED(&d);
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, NO_SUCH_METHOD), "");
	cr_assert_eq(d.br[0].done & DTXD_DONE_FINAL, 0);
	cr_assert_str_eq(drv_wake(&d), "compensate(0)#2");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, BAD_REQUEST), "");
	cr_assert_str_eq(drv_wake(&d), "compensate(0)#3");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

// --- Operator abort ----------------------------------------------------

Test(engine_saga, operator_abort_while_running_compensates_with_rv_0)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	run_to(&d, 1);
	cr_assert_str_eq(ABORT(&d), "persist(sync,wait)");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
	cr_assert_str_eq(PERSISTED(&d), "");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, RETRY), "compensate(1)");
}

Test(engine_saga, operator_abort_while_compensating_does_nothing_with_rv_0)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	run_to(&d, 1);
	REPLY(&d, 1, EXECUTE, REFUSED);
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)");
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
}

Test(engine_saga, operator_abort_after_commit_fails_with_estate)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 1);
	run_to(&d, 0);
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "finish");
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
}

Test(engine_saga, operator_abort_after_compensation_does_nothing_with_rv_0)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 1);
	run_to(&d, 0);
	REPLY(&d, 0, EXECUTE, REFUSED);
	PERSISTED(&d);
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, 0);
}

// --- Recovery ----------------------------------------------------------

Test(engine_saga, recovery_while_running_executes_the_cursor_step_again)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	d.tx.deadline_ms = 9000;
	run_to(&d, 1);
	cr_assert_str_eq(drv_recover(&d), "execute(1)#2");
	cr_assert_eq(d.tx.state, DTX_STATE_RUNNING);
	cr_assert_eq(d.tx.wake_ms, 9000);
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "persist execute(2)");
}

Test(engine_saga, recovery_while_running_after_the_deadline_compensates)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	d.tx.deadline_ms = 9000;
	run_to(&d, 1);
	d.now = 9000;
	cr_assert_str_eq(drv_recover(&d), "persist(sync,wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
	// Step 2 may have run too (its EXECUTE could have left after the
	// record was written): a null compensation where it did not.
	cr_assert_str_eq(PERSISTED(&d), "compensate(2)");
	cr_assert_str_eq(
	    REPLY(&d, 2, COMPENSATE, OK), "persist compensate(1)");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
}

// The record as a crash leaves it: the first EXECUTE left, but the record
// is still the create record (cursor 0, no step marked sent), because the
// first progress write comes only with the next step. Past the deadline,
// recovery must still compensate step 0 (finding 1 of the spin model).
Test(
    engine_saga, recovery_compensates_a_step_sent_after_its_record_was_written)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.deadline_ms = 9000;
	cr_assert_str_eq(START(&d), "execute(0)");
	// The crash: memory is lost; the record knows nothing of the call.
	d.br[0].done     = 0;
	d.br[0].phase    = 0;
	d.br[0].attempts = 0;
	d.now            = 9000;
	cr_assert_str_eq(drv_recover(&d), "persist(sync,wait)");
	cr_assert(d.br[0].done & DTXD_DONE_SENT, "step 0 may have run");
	cr_assert(d.br[1].done & DTXD_DONE_SENT, "step 1 may have run");
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
}

// Before the deadline a recovered saga goes on; if it then turns back,
// the steps above the cursor that it marked get (null) compensations.
Test(engine_saga, recovery_then_refusal_compensates_every_step_marked)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	d.tx.deadline_ms = 9000;
	run_to(&d, 1);
	cr_assert_str_eq(drv_recover(&d), "execute(1)#2");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_eq(d.tx.cursor, 2, "turned back from the last step");
	cr_assert_str_eq(PERSISTED(&d), "compensate(2)");
	cr_assert_str_eq(
	    REPLY(&d, 2, COMPENSATE, OK), "persist compensate(1)");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

Test(engine_saga, recovery_while_compensating_compensates_the_cursor_step)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	run_to(&d, 2);
	REPLY(&d, 2, EXECUTE, REFUSED);
	PERSISTED(&d);
	REPLY(&d, 2, COMPENSATE, OK);
	cr_assert_eq(d.tx.cursor, 1);
	cr_assert_str_eq(drv_recover(&d), "compensate(1)#2");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
}

Test(engine_saga, recovery_while_the_decision_was_written_compensates)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	run_to(&d, 1);
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, REFUSED), "persist(sync,wait)");
	// Crash before PERSISTED: the restart resumes from the record.
	cr_assert_str_eq(drv_recover(&d), "compensate(1)");
}

Test(engine_saga, recovery_of_a_finished_saga_finishes_again)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	d.tx.state = DTX_STATE_COMPENSATED;
	cr_assert_str_eq(drv_recover(&d), "finish");
	cr_assert_str_eq(drv_recover(&d), "finish");
	d.tx.state = DTX_STATE_COMMITTED;
	cr_assert_str_eq(drv_recover(&d), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
	cr_assert_eq(d.tx.wake_ms, 0);
}

// --- Stale results and the end ------------------------------------------

Test(engine_saga, ignores_stale_and_duplicate_replies)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	run_to(&d, 1);
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "", "duplicate");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, REFUSED), "", "duplicate");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, OK), "", "not called yet");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "", "wrong phase");
	cr_assert_str_eq(FAILED(&d, 9, EXECUTE), "", "no such branch");
	cr_assert_eq(d.tx.cursor, 1);
	cr_assert_eq(d.tx.state, DTX_STATE_RUNNING);
	cr_assert_str_eq(FAILED(&d, 1, EXECUTE), "");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "", "late, not in flight");
	cr_assert_str_eq(drv_wake(&d), "execute(1)#2");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "", "old phase");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "", "duplicate");
	cr_assert_eq(d.tx.cursor, 0);
}

Test(engine_saga, does_nothing_after_finish)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 1);
	run_to(&d, 0);
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "finish");
	d.now += 100000;
	cr_assert_str_eq(TIMER(&d), "");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "");
	cr_assert_str_eq(PERSISTED(&d), "");
	cr_assert_str_eq(START(&d), "");
	cr_assert_eq(d.tx.wake_ms, 0);
}

// --- Backoff and determinism ---------------------------------------------

Test(engine_saga, backoff_is_capped_and_jitter_stays_within_half_to_full)
{
	dtxd_txcore tx;
	dtxd_policy p;

	memset(&tx, 0, sizeof(tx));
	dtxd_policy_init(&p);
	cr_assert_eq(p.backoff_base_ms, 100);
	cr_assert_eq(p.backoff_max_ms, 10000);
	cr_assert_eq(p.stuck_after, 10);
	for (uint64_t seed = 1; seed <= 200; seed++) {
		tx.rng = seed * 0x9e3779b97f4a7c15ull;
		for (uint32_t n = 1; n <= 70; n++) {
			uint64_t d = 100;
			for (uint32_t i = 1; i < n && d < 10000; i++) {
				d *= 2;
			}
			d           = d > 10000 ? 10000 : d;
			uint64_t r0 = tx.rng;
			uint32_t w  = dtxd_tx_backoff(&tx, &p, n);
			cr_assert(w >= d / 2 && w <= d,
			    "n %u: %u not in [%u, %u]", n, w,
			    (unsigned)(d / 2), (unsigned)d);
			cr_assert_neq(tx.rng, r0, "the rng advances");
			cr_assert_neq(tx.rng, 0);
		}
	}
	tx.rng = 7;
	cr_assert_leq(dtxd_tx_backoff(&tx, &p, UINT32_MAX), 10000);
}

Test(engine_saga, backoff_jitter_spreads_over_the_range)
{
	dtxd_txcore tx;
	dtxd_policy p;
	uint32_t    lo = UINT32_MAX, hi = 0;

	memset(&tx, 0, sizeof(tx));
	tx.rng = 12345;
	dtxd_policy_init(&p);
	for (int i = 0; i < 1000; i++) {
		uint32_t w = dtxd_tx_backoff(&tx, &p, 3); // d = 400
		lo         = w < lo ? w : lo;
		hi         = w > hi ? w : hi;
	}
	cr_assert(lo < 220 && hi > 380, "jitter spans [%u, %u]", lo, hi);
}

static void
run_history(struct drv *d, uint64_t seed, char *log, size_t cap)
{
	size_t len = 0;

	drv_init(d, DTX_SAGA, 3);
	d->tx.rng        = seed;
	d->tx.retries    = 3;
	d->p.stuck_after = 3;
	log[0]           = '\0';
#define LOG(expr)                                                             \
	len += (size_t)snprintf(log + len, cap - len, "%s|%lld;", (expr),     \
	    (long long)d->tx.wake_ms)
	LOG(START(d));
	LOG(FAILED(d, 0, EXECUTE));
	LOG(drv_wake(d));
	LOG(REPLY(d, 0, EXECUTE, OK));
	LOG(REPLY(d, 1, EXECUTE, RETRY));
	LOG(drv_wake(d));
	LOG(REPLY(d, 1, EXECUTE, REFUSED));
	LOG(PERSISTED(d));
	for (int i = 0; i < 5; i++) {
		LOG(FAILED(d, 1, COMPENSATE));
		LOG(drv_wake(d));
	}
	LOG(REPLY(d, 1, COMPENSATE, OK));
	LOG(REPLY(d, 0, COMPENSATE, OK));
#undef LOG
	cr_assert(len < cap);
}

Test(engine_saga, replays_the_same_history_for_the_same_seed)
{
	struct drv d;
	char       a[2048], b[2048], c[2048];

	run_history(&d, 99, a, sizeof(a));
	run_history(&d, 99, b, sizeof(b));
	run_history(&d, 100, c, sizeof(c));
	cr_assert_str_eq(a, b);
	cr_assert_str_neq(a, c, "jitter does not depend on the seed");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
}

// --- Groups: steps in parallel --------------------------------------------

// Makes steps first..end-1 one group.
static void
group(struct drv *d, uint32_t first, uint32_t end)
{
	for (uint32_t i = first + 1; i < end; i++) {
		d->br[i].same_group = true;
	}
}

// Groups {0} {1,2,3} {4}, run to the middle group's EXECUTEs in flight.
static void
run_to_group(struct drv *d)
{
	drv_init(d, DTX_SAGA, 5);
	group(d, 1, 4);
	cr_assert_str_eq(START(d), "execute(0)");
	cr_assert_str_eq(REPLY(d, 0, EXECUTE, OK),
	    "persist execute(1) execute(2) execute(3)");
	cr_assert_eq(d->tx.cursor, 1);
}

Test(engine_saga, runs_a_group_in_parallel_and_the_next_after_all_of_it)
{
	struct drv d;
	run_to_group(&d);
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, OK), "", "1 and 3 still run");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "");
	cr_assert_eq(d.tx.cursor, 1);
	cr_assert_str_eq(REPLY(&d, 3, EXECUTE, OK), "persist execute(4)");
	cr_assert_eq(d.tx.cursor, 4);
	cr_assert_str_eq(REPLY(&d, 4, EXECUTE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
}

Test(engine_saga, a_saga_of_one_group_starts_all_and_commits_after_all)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	group(&d, 0, 3);
	cr_assert_str_eq(START(&d), "execute(0) execute(1) execute(2)");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
}

// A refusal in a group: the refused step and every step of the group that
// ran (or is running) are compensated, then the earlier groups, in reverse
// group order; the later group never ran.
Test(engine_saga, a_refusal_in_a_group_undoes_the_group_then_the_ones_before)
{
	struct drv d;
	run_to_group(&d);
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATING);
	cr_assert_str_eq(PERSISTED(&d), "compensate(2)",
	    "1 and 3 are still executing: their COMPENSATE waits");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "compensate(1)");
	cr_assert_str_eq(REPLY(&d, 2, COMPENSATE, OK), "");
	cr_assert_str_eq(FAILED(&d, 3, EXECUTE), "compensate(3)",
	    "a step that may have run is undone");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "");
	cr_assert_str_eq(
	    REPLY(&d, 3, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_eq(d.tx.cursor, 0);
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
	cr_assert_eq(d.br[4].done, 0, "the last group never ran");
}

Test(engine_saga, a_step_of_a_group_is_retried_while_the_others_go_on)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	group(&d, 0, 2);
	d.tx.deadline_ms = 100000;
	cr_assert_str_eq(START(&d), "execute(0) execute(1)");
	cr_assert_str_eq(FAILED(&d, 1, EXECUTE), "");
	cr_assert_neq(d.br[1].retry_at_ms, 0);
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "", "1 is not done yet");
	cr_assert_str_eq(drv_wake(&d), "execute(1)#2");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, RETRY), "");
	cr_assert_str_eq(drv_wake(&d), "execute(1)#3");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "finish");
}

Test(engine_saga, retries_running_out_in_a_group_turn_it_back)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	group(&d, 0, 2);
	d.tx.retries = 0;
	cr_assert_str_eq(START(&d), "execute(0) execute(1)");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, RETRY), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(1)");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
	cr_assert_eq(d.br[2].done, 0);
}

// The deadline turns a running group back at once; each step's
// compensation waits for its own EXECUTE to end.
Test(engine_saga, the_deadline_turns_a_group_back_and_waits_for_its_calls)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	group(&d, 0, 3);
	d.tx.deadline_ms = 9000;
	cr_assert_str_eq(START(&d), "execute(0) execute(1) execute(2)");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "");
	d.now = 9000;
	cr_assert_str_eq(TIMER(&d), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(0)");
	cr_assert_str_eq(FAILED(&d, 2, EXECUTE), "compensate(2)");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "compensate(1)");
	cr_assert_str_eq(REPLY(&d, 2, COMPENSATE, OK), "");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

// The last reply of a group past the deadline turns back instead of
// starting the next group; the whole group is undone.
Test(engine_saga, a_group_done_past_the_deadline_turns_back)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	group(&d, 0, 2);
	d.tx.deadline_ms = 9000;
	cr_assert_str_eq(START(&d), "execute(0) execute(1)");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "");
	d.now = 9000;
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(0) compensate(1)");
	cr_assert_eq(d.br[2].done, 0, "no EXECUTE past the deadline");
}

Test(engine_saga, an_abort_turns_a_running_group_back)
{
	struct drv d;
	run_to_group(&d);
	cr_assert_str_eq(ABORT(&d), "persist(sync,wait)");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_str_eq(PERSISTED(&d), "", "every step is still executing");
	cr_assert_str_eq(REPLY(&d, 3, EXECUTE, OK), "compensate(3)");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, REFUSED), "compensate(1)");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, OK), "compensate(2)");
}

// A compensation in a group that keeps failing is retried and holds the
// group: the groups below wait for it. A step that never executed OK may
// answer NO_SUCH_METHOD: nothing to undo.
Test(engine_saga, a_failing_compensation_in_a_group_holds_the_groups_below)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	group(&d, 1, 3);
	cr_assert_str_eq(START(&d), "execute(0)");
	cr_assert_str_eq(
	    REPLY(&d, 0, EXECUTE, OK), "persist execute(1) execute(2)");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(2)");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "compensate(1)");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, RETRY), "");
	cr_assert_str_eq(REPLY(&d, 2, COMPENSATE, NO_SUCH_METHOD), "",
	    "1 is still to be undone");
	cr_assert(d.br[2].done & DTXD_DONE_FINAL);
	cr_assert_str_eq(drv_wake(&d), "compensate(1)#2");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, NO_SUCH_METHOD), "",
	    "1 executed OK: NO_SUCH_METHOD does not undo it");
	cr_assert_str_eq(drv_wake(&d), "compensate(1)#3");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

Test(engine_saga, recovery_in_a_group_executes_its_steps_not_done_again)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	group(&d, 1, 3);
	d.tx.deadline_ms = 9000;
	cr_assert_str_eq(START(&d), "execute(0)");
	cr_assert_str_eq(
	    REPLY(&d, 0, EXECUTE, OK), "persist execute(1) execute(2)");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, OK), "");
	cr_assert_str_eq(drv_recover(&d), "execute(1)#2");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "finish");
}

// The record as a crash leaves it in the middle group: its cursor at the
// group, no step of it known to be done. Past the deadline every step from
// the group up may have run, and is undone, group by group downwards.
Test(engine_saga, recovery_past_the_deadline_undoes_groups_in_reverse)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 4);
	group(&d, 1, 3);
	d.tx.deadline_ms = 9000;
	cr_assert_str_eq(START(&d), "execute(0)");
	cr_assert_str_eq(
	    REPLY(&d, 0, EXECUTE, OK), "persist execute(1) execute(2)");
	d.br[1].done = 0; // lost with the crash, with the calls
	d.br[2].done = 0;
	d.now        = 9000;
	cr_assert_str_eq(drv_recover(&d), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(3)");
	cr_assert_str_eq(REPLY(&d, 3, COMPENSATE, OK),
	    "persist compensate(1) compensate(2)");
	cr_assert_str_eq(REPLY(&d, 2, COMPENSATE, OK), "");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

Test(engine_saga, recovery_while_compensating_a_group_undoes_what_is_left)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	group(&d, 0, 2);
	cr_assert_str_eq(START(&d), "execute(0) execute(1)");
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, OK), "");
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "persist execute(2)");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(2)");
	cr_assert_str_eq(REPLY(&d, 2, COMPENSATE, OK),
	    "persist compensate(0) compensate(1)");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "");
	cr_assert_str_eq(drv_recover(&d), "compensate(0)#2");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}

// --- An operator re-drives and settles ----------------------------------

// Runs steps 0..n-2 OK and refuses step n-1: the saga turns back and asks
// step n-1 to compensate (it may have partly run).
static void
turn_back_at_last(struct drv *d, uint32_t n)
{
	char want[32];

	START(d);
	for (uint32_t i = 0; i + 1 < n; i++) {
		snprintf(want, sizeof(want), "persist execute(%u)", i + 1);
		cr_assert_str_eq(REPLY(d, i, EXECUTE, OK), want);
	}
	cr_assert_str_eq(
	    REPLY(d, n - 1, EXECUTE, REFUSED), "persist(sync,wait)");
	// Settling is refused until the turn-back is written.
	cr_assert_str_eq(SETTLE(d, 0), "");
	cr_assert_eq(d->out.rv, DTX_ESTATE);
	snprintf(want, sizeof(want), "compensate(%u)", n - 1);
	cr_assert_str_eq(PERSISTED(d), want);
}

Test(engine_saga, settle_is_refused_while_running)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	cr_assert_str_eq(START(&d), "execute(0)");
	cr_assert_str_eq(SETTLE(&d, 0), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
}

Test(engine_saga, settle_of_a_failing_compensation_moves_on_down)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	turn_back_at_last(&d, 2);
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, RETRY), "");
	cr_assert_str_eq(SETTLE(&d, 1), "persist(sync) compensate(0)");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMPENSATED);
}

Test(engine_saga, settle_of_a_lower_step_is_skipped_when_reached)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	turn_back_at_last(&d, 3);
	cr_assert_str_eq(SETTLE(&d, 0), "persist(sync)");
	cr_assert_str_eq(
	    REPLY(&d, 2, COMPENSATE, OK), "persist compensate(1)");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "persist finish");
}

Test(engine_saga, settle_of_a_step_that_never_ran_is_refused)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 3);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "compensate(0)");
	cr_assert_str_eq(SETTLE(&d, 2), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
	cr_assert_str_eq(SETTLE(&d, 0), "persist(sync) finish");
}

Test(engine_saga, redrive_sends_a_waiting_compensation_now)
{
	struct drv d;
	drv_init(&d, DTX_SAGA, 2);
	turn_back_at_last(&d, 2);
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, RETRY), "");
	cr_assert_str_eq(REDRIVE(&d), "compensate(1)#2");
	cr_assert_str_eq(
	    REPLY(&d, 1, COMPENSATE, OK), "persist compensate(0)");
}

Test(engine_saga, settle_in_a_group_goes_down_once_the_group_is_undone)
{
	struct drv d;
	run_to_group(&d);
	cr_assert_str_eq(REPLY(&d, 1, EXECUTE, OK), "");
	cr_assert_str_eq(REPLY(&d, 3, EXECUTE, OK), "");
	cr_assert_str_eq(REPLY(&d, 2, EXECUTE, REFUSED), "persist(sync,wait)");
	cr_assert_str_eq(
	    PERSISTED(&d), "compensate(1) compensate(2) compensate(3)");
	cr_assert_str_eq(REPLY(&d, 2, COMPENSATE, RETRY), "");
	// Settled while 1 and 3 are still being undone: nothing more yet.
	cr_assert_str_eq(SETTLE(&d, 2), "persist(sync)");
	cr_assert_str_eq(REPLY(&d, 1, COMPENSATE, OK), "");
	cr_assert_str_eq(
	    REPLY(&d, 3, COMPENSATE, OK), "persist compensate(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMPENSATE, OK), "finish");
}
