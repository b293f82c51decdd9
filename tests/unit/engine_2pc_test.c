// SPDX-License-Identifier: MIT
//
// Unit tests of engine_2pc: every transition of the two-phase commit state
// machine, driven event by event with a fixed clock and rng seed, without
// sockets or disk. Each test reads the actions back as a short string.

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "engine_2pc.h"
#include "engine_drv.h"

// Renders "<phase>(0) <phase>(1) ..." for every branch of d.
static const char *
all_branches(struct drv *d, const char *phase, char *buf, size_t cap)
{
	size_t len = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < d->tx.nbranches; i++) {
		len += (size_t)snprintf(buf + len, cap - len, "%s%s(%u)",
		    i == 0 ? "" : " ", phase, (unsigned)i);
	}
	return buf;
}

// Prepares every branch, each voting OK (the start included).
static void
prepare_all_ok(struct drv *d)
{
	char want[256];

	cr_assert_str_eq(
	    START(d), all_branches(d, "prepare", want, sizeof(want)));
	for (uint32_t i = 0; i + 1 < d->tx.nbranches; i++) {
		cr_assert_str_eq(REPLY(d, i, PREPARE, OK), "");
	}
	cr_assert_str_eq(
	    REPLY(d, d->tx.nbranches - 1, PREPARE, OK), "persist(sync,wait)");
}

static void
commit_all(struct drv *d)
{
	char want[256];

	prepare_all_ok(d);
	cr_assert_str_eq(
	    PERSISTED(d), all_branches(d, "commit", want, sizeof(want)));
}

// --- PREPARING -> COMMITTING -> COMMITTED -------------------------------

Test(engine_2pc, prepares_every_branch_at_once_on_start)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	d.tx.deadline_ms = 5000;
	cr_assert_str_eq(START(&d), "prepare(0) prepare(1) prepare(2)");
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert(d.br[i].inflight);
		cr_assert_eq(d.br[i].attempts, 1);
		cr_assert(d.br[i].done & DTXD_DONE_SENT);
		cr_assert_eq(d.out.v[i].timeout_ms, 500);
	}
	cr_assert_eq(d.tx.wake_ms, 5000, "the deadline is the wake time");
}

Test(engine_2pc, commits_only_after_the_decision_is_persisted_synced)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	prepare_all_ok(&d);
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTING);
	cr_assert(d.tx.persisting);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert(d.br[i].done & DTXD_DONE_FWD);
	}
	d.now += 100000;
	cr_assert_str_eq(TIMER(&d), "", "nothing is sent before PERSISTED");
	cr_assert_str_eq(PERSISTED(&d), "commit(0) commit(1) commit(2)");
	cr_assert(!d.tx.persisting);
	cr_assert_str_eq(REPLY(&d, 1, COMMIT, OK), "");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "");
	cr_assert_str_eq(REPLY(&d, 2, COMMIT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
	cr_assert_eq(d.tx.wake_ms, 0);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert(d.br[i].done & DTXD_DONE_FINAL);
	}
}

Test(engine_2pc, restarts_attempts_at_one_for_phase_two)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	cr_assert_str_eq(START(&d), "prepare(0)");
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, RETRY), "");
	cr_assert_str_eq(drv_wake(&d), "prepare(0)#2");
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "commit(0)");
	cr_assert_eq(d.br[0].attempts, 1);
}

Test(engine_2pc, ignores_persisted_when_no_decision_is_being_written)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(PERSISTED(&d), "");
	REPLY(&d, 0, PREPARE, OK);
	REPLY(&d, 1, PREPARE, OK);
	cr_assert_str_eq(PERSISTED(&d), "commit(0) commit(1)");
	cr_assert_str_eq(PERSISTED(&d), "", "a second PERSISTED resends");
}

// --- PREPARING -> ABORTING -> ABORTED -----------------------------------

Test(engine_2pc, aborts_every_branch_when_one_refuses)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, REFUSED), "persist abort(1)");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
	cr_assert(d.br[1].done & DTXD_DONE_REFUSED);
	cr_assert(!d.tx.persisting, "abort needs no synced write");
	// The branches still preparing get ABORT when their call ends.
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "abort(0)");
	cr_assert(d.br[0].done & DTXD_DONE_FWD);
	cr_assert_str_eq(FAILED(&d, 2, PREPARE), "abort(2)");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "");
	cr_assert_str_eq(REPLY(&d, 2, ABORT, OK), "");
	cr_assert_str_eq(REPLY(&d, 1, ABORT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
	cr_assert_eq(d.tx.wake_ms, 0);
}

Test(engine_2pc, aborts_when_a_branch_has_no_such_method)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(
	    REPLY(&d, 0, PREPARE, NO_SUCH_METHOD), "persist abort(0)");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
	cr_assert_eq(d.br[0].done & DTXD_DONE_REFUSED, 0);
}

Test(engine_2pc, aborts_when_a_branch_finds_the_request_bad)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, OK), "");
	cr_assert_str_eq(
	    REPLY(&d, 0, PREPARE, BAD_REQUEST), "persist abort(0) abort(1)");
}

Test(engine_2pc, aborts_at_the_deadline_when_a_vote_is_missing)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	d.tx.deadline_ms = 3000;
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	d.now = 2999;
	cr_assert_str_eq(TIMER(&d), "");
	cr_assert_eq(d.tx.state, DTX_STATE_PREPARING);
	d.now = 3000;
	cr_assert_str_eq(TIMER(&d), "persist abort(0)");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
	cr_assert_eq(d.tx.wake_ms, 0, "the deadline no longer matters");
	cr_assert_str_eq(FAILED(&d, 1, PREPARE), "abort(1)");
	cr_assert_str_eq(REPLY(&d, 1, ABORT, OK), "");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
}

Test(engine_2pc, aborts_when_prepare_times_out_and_retries_run_out)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	d.tx.retries = 1;
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	cr_assert_str_eq(FAILED(&d, 1, PREPARE), "");
	cr_assert_str_eq(drv_wake(&d), "prepare(1)#2");
	cr_assert_str_eq(FAILED(&d, 1, PREPARE), "persist abort(0) abort(1)");
}

Test(engine_2pc, retries_a_prepare_with_growing_backoff_then_commits)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	d.tx.retries = 3;
	START(&d);
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, OK), "");
	int64_t lo = 50, hi = 100; // first retry: d = base = 100
	for (uint32_t n = 1; n <= 3; n++) {
		cr_assert_str_eq(REPLY(&d, 0, PREPARE, RETRY), "");
		int64_t wait = d.br[0].retry_at_ms - d.now;
		cr_assert(wait >= lo && wait <= hi, "retry %u waits %lld", n,
		    (long long)wait);
		cr_assert_eq(d.tx.wake_ms, d.br[0].retry_at_ms);
		d.now = d.tx.wake_ms - 1;
		cr_assert_str_eq(TIMER(&d), "", "a retry is not early");
		char want[32];
		snprintf(want, sizeof(want), "prepare(0)#%u", n + 1);
		cr_assert_str_eq(drv_wake(&d), want);
		lo *= 2;
		hi *= 2;
	}
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "persist(sync,wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTING);
}

Test(engine_2pc, aborts_when_retries_are_exhausted)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	d.tx.retries = 2;
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, RETRY), "");
	cr_assert_str_eq(drv_wake(&d), "prepare(0)#2");
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, RETRY), "");
	cr_assert_str_eq(drv_wake(&d), "prepare(0)#3");
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, RETRY), "persist abort(0)");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
}

Test(engine_2pc, aborts_when_a_retry_would_start_after_the_deadline)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	d.tx.retries     = 5;
	d.tx.deadline_ms = d.now + 50; // every first retry waits >= 50
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, RETRY), "persist abort(0)");
}

Test(engine_2pc, abort_cancels_a_pending_prepare_retry)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(FAILED(&d, 0, PREPARE), "");
	cr_assert_neq(d.br[0].retry_at_ms, 0);
	cr_assert_str_eq(
	    REPLY(&d, 1, PREPARE, REFUSED), "persist abort(0) abort(1)");
	cr_assert_eq(d.br[0].retry_at_ms, 0);
	cr_assert_eq(d.tx.wake_ms, 0);
}

// --- Phase two is retried for ever -------------------------------------

Test(engine_2pc, retries_commit_for_ever_and_flags_stuck)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	d.p.stuck_after = 3;
	commit_all(&d);
	cr_assert_str_eq(REPLY(&d, 1, COMMIT, OK), "");
	for (uint32_t n = 1; n <= 30; n++) {
		const char *want = n == 3 ? "persist" : "";
		cr_assert_str_eq(n % 2 ? FAILED(&d, 0, COMMIT)
		                       : REPLY(&d, 0, COMMIT, RETRY),
		    want, "failure %u", n);
		cr_assert_eq(d.tx.stuck, n >= 3);
		int64_t wait = d.br[0].retry_at_ms - d.now;
		cr_assert(wait >= 0 && wait <= 10000, "capped: %lld",
		    (long long)wait);
		if (n >= 10) {
			cr_assert(
			    wait >= 5000, "at the cap: %lld", (long long)wait);
		}
		char s[32];
		snprintf(s, sizeof(s), "commit(0)#%u", n + 1);
		cr_assert_str_eq(drv_wake(&d), s);
	}
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTING);
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
	cr_assert(d.tx.stuck);
}

Test(engine_2pc, retries_a_refused_commit)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	cr_assert_str_eq(START(&d), "prepare(0)");
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "commit(0)");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, REFUSED), "");
	cr_assert_str_eq(drv_wake(&d), "commit(0)#2");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, NO_SUCH_METHOD), "");
	cr_assert_str_eq(drv_wake(&d), "commit(0)#3");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "finish");
}

Test(engine_2pc, retries_abort_for_ever_and_flags_stuck)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	d.p.stuck_after = 10;
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, REFUSED), "persist abort(0)");
	for (uint32_t n = 1; n <= 12; n++) {
		cr_assert_str_eq(
		    FAILED(&d, 0, ABORT), n == 10 ? "persist" : "");
		cr_assert_eq(d.tx.stuck, n >= 10);
		drv_wake(&d);
	}
	cr_assert_eq(d.br[0].attempts, 13);
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
}

Test(engine_2pc, abort_no_such_method_is_done_for_a_branch_that_never_prepared)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, REFUSED), "persist abort(0)");
	cr_assert_str_eq(FAILED(&d, 1, PREPARE), "abort(1)");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, NO_SUCH_METHOD), "");
	cr_assert(d.br[0].done & DTXD_DONE_FINAL);
	cr_assert_str_eq(REPLY(&d, 1, ABORT, BAD_REQUEST), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
}

Test(engine_2pc, abort_no_such_method_is_retried_for_a_branch_that_prepared)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	cr_assert_str_eq(
	    REPLY(&d, 1, PREPARE, REFUSED), "persist abort(0) abort(1)");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, NO_SUCH_METHOD), "");
	cr_assert_eq(d.br[0].done & DTXD_DONE_FINAL, 0);
	cr_assert_str_eq(REPLY(&d, 1, ABORT, OK), "");
	cr_assert_str_eq(drv_wake(&d), "abort(0)#2");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, BAD_REQUEST), "");
	cr_assert_str_eq(drv_wake(&d), "abort(0)#3");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "finish");
}

// --- Operator abort ----------------------------------------------------

Test(engine_2pc, operator_abort_while_preparing_aborts_with_rv_0)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	cr_assert_str_eq(ABORT(&d), "persist abort(0)");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, OK), "abort(1)");
}

Test(engine_2pc, operator_abort_while_committing_fails_with_estate)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	prepare_all_ok(&d);
	cr_assert_str_eq(ABORT(&d), "", "decision still being written");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
	cr_assert_str_eq(PERSISTED(&d), "commit(0) commit(1) commit(2)");
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTING);
}

Test(engine_2pc, operator_abort_while_aborting_does_nothing_with_rv_0)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	START(&d);
	ABORT(&d);
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
}

Test(engine_2pc, operator_abort_after_the_end_reports_the_outcome)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	START(&d);
	REPLY(&d, 0, PREPARE, OK);
	PERSISTED(&d);
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "finish");
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);

	drv_init(&d, DTX_2PC, 1);
	START(&d);
	REPLY(&d, 0, PREPARE, REFUSED);
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "finish");
	cr_assert_str_eq(ABORT(&d), "");
	cr_assert_eq(d.out.rv, 0);
}

// --- A cluster: no ABORT before the abort's write (abort_waits) ---------

Test(engine_2pc, cluster_abort_sends_nothing_until_its_write_is_persisted)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	d.p.abort_waits = true;
	START(&d);
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, REFUSED), "persist(wait)");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
	cr_assert(d.tx.persisting);
	// A vote that ends meanwhile gets no ABORT yet; neither does a
	// timer.
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	cr_assert_str_eq(TIMER(&d), "");
	// Once written, every branch not in flight is aborted.
	cr_assert_str_eq(PERSISTED(&d), "abort(0) abort(1)");
	cr_assert(!d.tx.persisting);
	cr_assert_str_eq(FAILED(&d, 2, PREPARE), "abort(2)");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "");
	cr_assert_str_eq(REPLY(&d, 1, ABORT, OK), "");
	cr_assert_str_eq(REPLY(&d, 2, ABORT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
}

Test(engine_2pc, cluster_deadline_and_operator_aborts_wait_for_the_write)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	d.p.abort_waits  = true;
	d.tx.deadline_ms = 3000;
	START(&d);
	REPLY(&d, 0, PREPARE, OK);
	FAILED(&d, 1, PREPARE);
	d.now = 3000;
	cr_assert_str_eq(TIMER(&d), "persist(wait)");
	cr_assert_str_eq(PERSISTED(&d), "abort(0) abort(1)");

	drv_init(&d, DTX_2PC, 2);
	d.p.abort_waits = true;
	START(&d);
	cr_assert_str_eq(ABORT(&d), "persist(wait)");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	cr_assert_str_eq(PERSISTED(&d), "abort(0)");
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, OK), "abort(1)");
}

Test(engine_2pc, cluster_takeover_of_a_preparing_record_aborts_after_a_write)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	d.p.abort_waits = true;
	START(&d);
	REPLY(&d, 0, PREPARE, OK);
	cr_assert_str_eq(drv_recover(&d), "persist(wait)");
	cr_assert_str_eq(PERSISTED(&d), "abort(0) abort(1)");
	// A record already ABORTING was decided: its ABORTs go at once.
	drv_init(&d, DTX_2PC, 2);
	d.p.abort_waits = true;
	d.tx.state      = DTX_STATE_ABORTING;
	cr_assert_str_eq(drv_recover(&d), "abort(0) abort(1)");
}

// --- Recovery ----------------------------------------------------------

Test(engine_2pc, recovery_while_preparing_aborts_every_branch)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	d.tx.deadline_ms = 9000;
	START(&d);
	REPLY(&d, 0, PREPARE, OK);
	FAILED(&d, 1, PREPARE);
	cr_assert_str_eq(
	    drv_recover(&d), "persist abort(0) abort(1) abort(2)");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTING);
	cr_assert_eq(d.tx.wake_ms, 0);
}

Test(engine_2pc, recovery_while_committing_commits_unfinished_branches_only)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	commit_all(&d);
	REPLY(&d, 1, COMMIT, OK);
	FAILED(&d, 2, COMMIT);
	cr_assert_str_eq(drv_recover(&d), "commit(0)#2 commit(2)#2");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "");
	cr_assert_str_eq(REPLY(&d, 2, COMMIT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
}

Test(engine_2pc, recovery_while_the_commit_decision_was_written_commits)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	REPLY(&d, 0, PREPARE, OK);
	REPLY(&d, 1, PREPARE, OK); // crash before PERSISTED arrived
	cr_assert_str_eq(drv_recover(&d), "commit(0) commit(1)");
}

Test(engine_2pc, recovery_while_aborting_aborts_unfinished_branches_only)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 3);
	START(&d);
	REPLY(&d, 0, PREPARE, REFUSED);
	REPLY(&d, 0, ABORT, OK);
	cr_assert_str_eq(drv_recover(&d), "abort(1) abort(2)");
	REPLY(&d, 1, ABORT, OK);
	cr_assert_str_eq(REPLY(&d, 2, ABORT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
}

Test(engine_2pc, recovery_of_a_finished_transaction_finishes_again)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	d.tx.state = DTX_STATE_COMMITTED;
	cr_assert_str_eq(drv_recover(&d), "finish");
	cr_assert_str_eq(drv_recover(&d), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
	d.tx.state = DTX_STATE_ABORTED;
	cr_assert_str_eq(drv_recover(&d), "finish");
	cr_assert_eq(d.tx.wake_ms, 0);
}

// --- Stale results and the end ------------------------------------------

Test(engine_2pc, ignores_stale_and_duplicate_replies)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, REFUSED), "", "duplicate");
	cr_assert_str_eq(FAILED(&d, 0, PREPARE), "", "duplicate failure");
	cr_assert_str_eq(REPLY(&d, 1, COMMIT, OK), "", "wrong phase");
	cr_assert_str_eq(REPLY(&d, 7, PREPARE, OK), "", "no such branch");
	cr_assert_eq(d.tx.state, DTX_STATE_PREPARING);
	cr_assert_eq(d.br[0].last_status, DTX_BRANCH_OK);
	cr_assert(d.br[1].inflight);
	cr_assert_eq(d.br[1].done & DTXD_DONE_FWD, 0);
	// A retried branch: the answer to the first call arrives late.
	cr_assert_str_eq(FAILED(&d, 1, PREPARE), "");
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, OK), "", "not in flight");
	cr_assert_str_eq(drv_wake(&d), "prepare(1)#2");
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, OK), "persist(sync,wait)");
	cr_assert_str_eq(PERSISTED(&d), "commit(0) commit(1)");
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "", "old phase");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "", "duplicate");
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTING);
}

Test(engine_2pc, does_nothing_after_finish)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 1);
	START(&d);
	REPLY(&d, 0, PREPARE, REFUSED);
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "finish");
	d.now += 100000;
	cr_assert_str_eq(TIMER(&d), "");
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "");
	cr_assert_str_eq(PERSISTED(&d), "");
	cr_assert_str_eq(START(&d), "");
	cr_assert_eq(d.tx.wake_ms, 0);
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
}

Test(engine_2pc, timer_without_anything_due_does_nothing)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	commit_all(&d);
	d.now += 5;
	cr_assert_str_eq(TIMER(&d), "");
}

// --- Determinism --------------------------------------------------------

static void
run_history(struct drv *d, uint64_t seed, char *log, size_t cap)
{
	size_t len = 0;

	drv_init(d, DTX_2PC, 3);
	d->tx.rng        = seed;
	d->tx.retries    = 4;
	d->p.stuck_after = 4;
	log[0]           = '\0';
#define LOG(expr)                                                             \
	len += (size_t)snprintf(log + len, cap - len, "%s|%lld;", (expr),     \
	    (long long)d->tx.wake_ms)
	LOG(START(d));
	LOG(REPLY(d, 0, PREPARE, RETRY));
	LOG(FAILED(d, 1, PREPARE));
	LOG(REPLY(d, 2, PREPARE, OK));
	LOG(drv_wake(d));
	LOG(drv_wake(d));
	LOG(REPLY(d, 0, PREPARE, OK));
	LOG(REPLY(d, 1, PREPARE, OK));
	LOG(PERSISTED(d));
	for (int i = 0; i < 6; i++) {
		LOG(FAILED(d, 0, COMMIT));
		LOG(drv_wake(d));
	}
#undef LOG
	cr_assert(len < cap);
}

Test(engine_2pc, replays_the_same_history_for_the_same_seed)
{
	struct drv d;
	char       a[2048], b[2048], c[2048];

	run_history(&d, 42, a, sizeof(a));
	run_history(&d, 42, b, sizeof(b));
	run_history(&d, 4242, c, sizeof(c));
	cr_assert_str_eq(a, b);
	cr_assert_str_neq(a, c, "jitter does not depend on the seed");
}

// --- An operator re-drives and settles ----------------------------------

Test(engine_2pc, redrive_sends_waiting_retries_now_and_restarts_backoff)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	commit_all(&d);
	cr_assert_str_eq(REPLY(&d, 1, COMMIT, OK), "");
	for (int i = 0; i < 6; i++) {
		FAILED(&d, 0, COMMIT);
		drv_wake(&d);
	}
	cr_assert_str_eq(FAILED(&d, 0, COMMIT), "");
	cr_assert_gt(d.br[0].retry_at_ms - d.now, 1000, "grown backoff");
	cr_assert_str_eq(REDRIVE(&d), "commit(0)#8");
	cr_assert_eq(d.out.rv, 0);
	// The next failure waits no longer than the first backoff did.
	cr_assert_str_eq(FAILED(&d, 0, COMMIT), "");
	cr_assert_leq(d.br[0].retry_at_ms - d.now, 100);
	// Nothing waiting: nothing sent.
	cr_assert_str_eq(drv_wake(&d), "commit(0)#9");
	cr_assert_str_eq(REDRIVE(&d), "");
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, OK), "finish");
}

Test(engine_2pc, settle_is_refused_while_the_outcome_is_undecided)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(SETTLE(&d, 0), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, OK), "");
	cr_assert_str_eq(REPLY(&d, 1, PREPARE, OK), "persist(sync,wait)");
	// Decided in memory, not durable yet: still refused.
	cr_assert_str_eq(SETTLE(&d, 0), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
	cr_assert_eq(d.br[0].done & DTXD_DONE_SETTLED, 0);
}

Test(engine_2pc, settle_of_the_last_unacknowledged_branch_commits)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	commit_all(&d);
	cr_assert_str_eq(REPLY(&d, 1, COMMIT, OK), "");
	cr_assert_str_eq(FAILED(&d, 0, COMMIT), "");
	cr_assert_str_eq(SETTLE(&d, 0), "persist(sync) finish");
	cr_assert_eq(d.out.rv, 0);
	cr_assert_eq(d.tx.state, DTX_STATE_COMMITTED);
	cr_assert_eq(d.br[0].done & (DTXD_DONE_FINAL | DTXD_DONE_SETTLED),
	    DTXD_DONE_FINAL | DTXD_DONE_SETTLED);
}

Test(engine_2pc, settle_forgets_the_call_in_flight_and_waits_for_the_others)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	commit_all(&d);
	cr_assert_str_eq(SETTLE(&d, 0), "persist(sync)");
	cr_assert(!d.br[0].inflight);
	// Its call ending late is stale; settling again is a no-op.
	cr_assert_str_eq(REPLY(&d, 0, COMMIT, RETRY), "");
	cr_assert_str_eq(SETTLE(&d, 0), "");
	cr_assert_eq(d.out.rv, 0);
	// An acknowledged branch cannot be settled.
	cr_assert_str_eq(REPLY(&d, 1, COMMIT, OK), "finish");
	cr_assert_str_eq(SETTLE(&d, 1), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
}

Test(engine_2pc, settle_while_aborting_finishes_the_abort)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	START(&d);
	cr_assert_str_eq(REPLY(&d, 0, PREPARE, REFUSED), "persist abort(0)");
	// Branch 1's prepare is still in flight; it is settled by hand.
	cr_assert_str_eq(SETTLE(&d, 1), "persist(sync)");
	cr_assert_str_eq(FAILED(&d, 1, PREPARE), "");
	cr_assert_str_eq(SETTLE(&d, 7), "");
	cr_assert_eq(d.out.rv, DTX_ESTATE);
	cr_assert_str_eq(REPLY(&d, 0, ABORT, OK), "finish");
	cr_assert_eq(d.tx.state, DTX_STATE_ABORTED);
}

Test(engine_2pc, a_settled_branch_stays_settled_after_recovery)
{
	struct drv d;
	drv_init(&d, DTX_2PC, 2);
	commit_all(&d);
	cr_assert_str_eq(SETTLE(&d, 0), "persist(sync)");
	cr_assert_str_eq(drv_recover(&d), "commit(1)#2");
}
