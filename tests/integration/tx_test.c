// SPDX-License-Identifier: MIT
//
// dtx.integration.tx: transactions end to end with real processes. Each
// test starts its own dtxd (fresh data directory, loopback port, short
// backoff and call timeouts) and dtx-testpart participants, drives a 2PC or
// a saga through the public client API, and then proves from the
// participants' call logs what happened: which phases were called in which
// order, and that every effect was applied (and undone) exactly once. The
// branch payload tells dtx-testpart how to answer (see testpart.c). A
// failed check prints every process' log before it fails the test.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "gid.h"
#include "harness.h"
#include "world_suite.h"

TestSuite(tx, .init = world_setup, .fini = world_teardown, .timeout = 30);

#define CHECK_STATE(got, want)                                                \
	CHECK((got) == (want), "state %s, expected %s", dtx_state_name(got),  \
	    dtx_state_name(want))

static void
start_dtxd(const dtxt_dtxd_opts *o)
{
	CHECK(dtxt_world_start_dtxd(&w, o) == 0, "dtxd did not start");
}

static dtxt_part *
start_part(const char *name)
{
	dtxt_part *p = dtxt_world_part(&w, name);

	CHECK(p != NULL, "no address for %s", name);
	CHECK(dtxt_part_start(p) == 0, "participant %s did not start", name);
	return p;
}

static dtx_tx *
begin(dtx_mode mode)
{
	dtx_tx *tx = NULL;

	CHECK_RV(dtx_tx_begin(&tx, w.client, mode));
	return tx;
}

static void
add(dtx_tx *tx, const dtxt_part *p, const char *method, const char *payload)
{
	CHECK_RV(dtx_tx_add(tx, p->url, method, payload, strlen(payload)));
}

static dtx_state
commit(dtx_tx *tx)
{
	dtx_state st = 0;

	CHECK_RV(dtx_tx_commit(tx, &st));
	return st;
}

static void
load(dtxt_log *l, const dtxt_part *p)
{
	dtxt_log_load(l, p->calllog);
}

// Asserts that the branch's last reply is OK for phase with the payload
// "<name>:<PHASE>" that dtx-testpart answers.
static void
check_reply(dtx_tx *tx, unsigned i, const char *name, dtx_phase phase)
{
	dtx_branch_result r;
	char              want[64];

	CHECK_RV(dtx_tx_branch_result(tx, i, &r));
	snprintf(want, sizeof(want), "%s:%s", name, dtx_phase_name(phase));
	CHECK(r.status == DTX_BRANCH_OK, "branch %u status %s", i,
	    dtx_branch_status_name(r.status));
	CHECK(r.phase == phase, "branch %u phase %s, expected %s", i,
	    dtx_phase_name(r.phase), dtx_phase_name(phase));
	CHECK(r.payload_len == strlen(want) &&
	        memcmp(r.payload, want, r.payload_len) == 0,
	    "branch %u payload '%.*s', expected '%s'", i, (int)r.payload_len,
	    r.payload ? (const char *)r.payload : "", want);
}

Test(tx, two_phase_commit_prepares_then_commits_every_branch_once)
{
	dtxt_log    la, lb;
	dtx_tx     *tx;
	const char *gid;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_2PC);
	add(tx, a, "op", "");
	add(tx, b, "op", "");
	CHECK_STATE(commit(tx), DTX_STATE_COMMITTED);
	gid = dtx_tx_gid(tx);
	CHECK(dtx_tx_branch_count(tx) == 2, "branch count");
	check_reply(tx, 0, "a", DTX_PHASE_COMMIT);
	check_reply(tx, 1, "b", DTX_PHASE_COMMIT);

	load(&la, a);
	load(&lb, b);
	for (int i = 0; i < 2; i++) {
		dtxt_log *l = i == 0 ? &la : &lb;
		long      prep, com;

		prep = dtxt_log_find(l, 0, DTXT_CALL, gid, i, "PREPARE", "OK");
		com  = dtxt_log_find(l, 0, DTXT_CALL, gid, i, "COMMIT", "OK");
		CHECK(prep >= 0, "branch %d not prepared", i);
		CHECK(com > prep, "branch %d: no COMMIT after PREPARE", i);
		CHECK(dtxt_log_count(l, DTXT_APPLY, gid, i, NULL, NULL) == 1,
		    "branch %d not applied exactly once", i);
		CHECK(
		    dtxt_log_count(l, DTXT_CALL, gid, -1, "ABORT", NULL) == 0,
		    "ABORT sent to a committed branch");
	}
	dtxt_log_fini(&la);
	dtxt_log_fini(&lb);
	dtx_tx_free(tx);
}

Test(tx, two_phase_commit_aborts_every_branch_when_one_refuses)
{
	dtxt_log    la, lb;
	dtx_tx     *tx;
	const char *gid;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_2PC);
	add(tx, a, "op", "");
	add(tx, b, "op", "prepare=refuse");
	CHECK_STATE(commit(tx), DTX_STATE_ABORTED);
	gid = dtx_tx_gid(tx);

	load(&la, a);
	load(&lb, b);
	CHECK(
	    dtxt_log_count(&lb, DTXT_CALL, gid, 1, "PREPARE", "REFUSED") == 1,
	    "b did not refuse once");
	CHECK(dtxt_log_count(&la, DTXT_CALL, gid, 0, "ABORT", "OK") >= 1,
	    "a was not aborted");
	CHECK(dtxt_log_count(&lb, DTXT_CALL, gid, 1, "ABORT", "OK") >= 1,
	    "b was not aborted");
	CHECK(dtxt_log_count(&la, DTXT_CALL, NULL, -1, "COMMIT", NULL) +
	            dtxt_log_count(&lb, DTXT_CALL, NULL, -1, "COMMIT", NULL) ==
	        0,
	    "COMMIT sent in an aborted transaction");
	CHECK(dtxt_log_count(&la, DTXT_APPLY, NULL, -1, NULL, NULL) +
	            dtxt_log_count(&lb, DTXT_APPLY, NULL, -1, NULL, NULL) ==
	        0,
	    "an effect was applied");
	dtxt_log_fini(&la);
	dtxt_log_fini(&lb);
	dtx_tx_free(tx);
}

Test(tx, two_phase_commit_aborts_when_prepare_times_out)
{
	dtxt_log    la, lb;
	dtx_tx     *tx;
	const char *gid;
	int64_t     t0;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_2PC);
	CHECK_RV(dtx_tx_set_timeout_ms(tx, 300));
	add(tx, a, "op", "");
	add(tx, b, "op", "prepare=sleep:2000");
	t0 = dtxi_mono_ms();
	CHECK_STATE(commit(tx), DTX_STATE_ABORTED);
	CHECK(dtxi_mono_ms() - t0 < 1800,
	    "the abort waited for the slow prepare (%lld ms)",
	    (long long)(dtxi_mono_ms() - t0));
	gid = dtx_tx_gid(tx);

	load(&la, a);
	load(&lb, b);
	CHECK(dtxt_log_count(&la, DTXT_CALL, gid, 0, "ABORT", "OK") >= 1,
	    "a was not aborted");
	CHECK(dtxt_log_count(&lb, DTXT_CALL, gid, 1, "ABORT", "OK") >= 1,
	    "b (which never answered PREPARE) was not aborted");
	CHECK(dtxt_log_count(&la, DTXT_CALL, NULL, -1, "COMMIT", NULL) == 0,
	    "COMMIT sent in an aborted transaction");
	dtxt_log_fini(&la);
	dtxt_log_fini(&lb);
	dtx_tx_free(tx);
}

Test(tx, saga_executes_steps_in_order_and_commits)
{
	dtxt_log    la, lb;
	dtx_tx     *tx;
	const char *gid;
	long        at = 0;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_SAGA);
	add(tx, a, "op", "");
	add(tx, a, "op", "");
	add(tx, b, "op", "");
	add(tx, a, "op", "");
	CHECK_STATE(commit(tx), DTX_STATE_COMMITTED);
	gid = dtx_tx_gid(tx);
	check_reply(tx, 0, "a", DTX_PHASE_EXECUTE);
	check_reply(tx, 2, "b", DTX_PHASE_EXECUTE);
	check_reply(tx, 3, "a", DTX_PHASE_EXECUTE);

	load(&la, a);
	load(&lb, b);
	// a's log is the global order of steps 0, 1 and 3.
	for (int i = 0; i < 4; i++) {
		dtxt_log *l = i == 2 ? &lb : &la;
		if (i != 2) {
			long next = dtxt_log_find(
			    l, (size_t)at, DTXT_CALL, gid, i, "EXECUTE", "OK");
			CHECK(next >= at, "step %d not executed after step %d",
			    i, i - 1);
			at = next;
		}
		CHECK(dtxt_log_count(l, DTXT_APPLY, gid, i, NULL, NULL) == 1,
		    "step %d not applied exactly once", i);
	}
	CHECK(dtxt_log_count(&la, DTXT_CALL, gid, -1, "COMPENSATE", NULL) +
	            dtxt_log_count(
	                &lb, DTXT_CALL, gid, -1, "COMPENSATE", NULL) ==
	        0,
	    "a successful saga was compensated");
	dtxt_log_fini(&la);
	dtxt_log_fini(&lb);
	dtx_tx_free(tx);
}

Test(tx, saga_compensates_in_reverse_order_including_the_failed_step)
{
	dtxt_log    la;
	dtx_tx     *tx;
	const char *gid;
	unsigned    order[8];
	unsigned    n = 0;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	tx           = begin(DTX_SAGA);
	add(tx, a, "op", "");
	add(tx, a, "op", "");
	add(tx, a, "op", "execute=refuse");
	CHECK_STATE(commit(tx), DTX_STATE_COMPENSATED);
	gid = dtx_tx_gid(tx);

	load(&la, a);
	for (size_t i = 0; i < la.n; i++) {
		const dtxt_line *x = &la.lines[i];
		if (x->kind == DTXT_CALL && strcmp(x->gid, gid) == 0 &&
		    strcmp(x->phase, "COMPENSATE") == 0 && n < 8) {
			order[n++] = x->branch;
		}
	}
	CHECK(n == 3 && order[0] == 2 && order[1] == 1 && order[2] == 0,
	    "COMPENSATE order is not 2, 1, 0 (%u calls: %u %u %u)", n,
	    n > 0 ? order[0] : 99, n > 1 ? order[1] : 99,
	    n > 2 ? order[2] : 99);
	CHECK(
	    dtxt_log_count(&la, DTXT_CALL, gid, 2, "EXECUTE", "REFUSED") == 1,
	    "step 2 did not refuse");
	for (int i = 0; i < 2; i++) {
		CHECK(dtxt_log_count(&la, DTXT_UNDO, gid, i, NULL, NULL) == 1,
		    "step %d not undone exactly once", i);
	}
	for (int i = 0; i < 3; i++) {
		CHECK(dtxt_log_effect(&la, gid, i) == 0,
		    "step %d left an effect", i);
	}
	dtxt_log_fini(&la);
	dtx_tx_free(tx);
}

Test(tx, retry_is_called_again_with_backoff_until_it_succeeds)
{
	dtxt_log    la, lb;
	dtx_tx     *tx;
	const char *gid;
	int64_t     t0;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_2PC);
	add(tx, a, "op", "prepare=retry:2");
	add(tx, b, "op", "commit=retry:2");
	t0 = dtxi_mono_ms();
	CHECK_STATE(commit(tx), DTX_STATE_COMMITTED);
	gid = dtx_tx_gid(tx);
	// Two backoffs of at least some ms each on both sides; jitter may
	// shorten a delay, never remove it.
	CHECK(dtxi_mono_ms() - t0 >= 10, "no backoff between attempts");

	load(&la, a);
	load(&lb, b);
	for (int i = 0; i < 2; i++) {
		dtxt_log   *l     = i == 0 ? &la : &lb;
		const char *phase = i == 0 ? "PREPARE" : "COMMIT";
		long        at    = 0;

		for (unsigned k = 1; k <= 3; k++) {
			const char *res = k < 3 ? "RETRY" : "OK";
			at              = dtxt_log_find(
			                 l, (size_t)at, DTXT_CALL, gid, i, phase, res);
			CHECK(at >= 0, "branch %d: no %s %s call", i, phase,
			    res);
			CHECK(l->lines[at].attempt == k,
			    "branch %d: %s call %u has attempt %u", i, phase,
			    k, l->lines[at].attempt);
			at++;
		}
		CHECK(dtxt_log_count(l, DTXT_CALL, gid, i, phase, NULL) == 3,
		    "branch %d: %s not called exactly 3 times", i, phase);
		CHECK(dtxt_log_count(l, DTXT_APPLY, gid, i, NULL, NULL) == 1,
		    "branch %d not applied once", i);
	}
	dtxt_log_fini(&la);
	dtxt_log_fini(&lb);
	dtx_tx_free(tx);
}

// Retries count the calls after the first (dtx.h, dtx_tx_set_retries): a
// forward call that always answers RETRY is made exactly 1 + n times, then
// the transaction gives up on it. The participant counts the calls.
Test(tx, retries_count_the_calls_after_the_first)
{
	static const struct {
		dtx_mode    mode;
		uint32_t    retries; // 0: dtxd's --retries 2
		const char *payload;
		const char *phase;
		size_t      calls;
		dtx_state   outcome;
	} cases[] = {
	    {DTX_SAGA, 3, "execute=retry:1000000", "EXECUTE", 4,
	        DTX_STATE_COMPENSATED},
	    {DTX_2PC, 6, "prepare=retry:1000000", "PREPARE", 7,
	        DTX_STATE_ABORTED},
	    {DTX_SAGA, 0, "execute=retry:1000000", "EXECUTE", 3,
	        DTX_STATE_COMPENSATED},
	};
	dtxt_dtxd_opts o = {.retries = 2};

	start_dtxd(&o);
	dtxt_part *a = start_part("a");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		dtx_tx  *tx = begin(cases[i].mode);
		dtxt_log l;

		CHECK_RV(dtx_tx_set_timeout_ms(tx, 60000));
		CHECK_RV(dtx_tx_set_retries(tx, cases[i].retries));
		add(tx, a, "op", cases[i].payload);
		CHECK_STATE(commit(tx), cases[i].outcome);
		load(&l, a);
		size_t n = dtxt_log_count(
		    &l, DTXT_CALL, dtx_tx_gid(tx), 0, cases[i].phase, NULL);
		CHECK(n == cases[i].calls,
		    "retries %u: %zu %s calls, expected %zu", cases[i].retries,
		    n, cases[i].phase, cases[i].calls);
		CHECK(dtxt_log_count(&l, DTXT_CALL, dtx_tx_gid(tx), 0,
		          cases[i].phase, "RETRY") == n,
		    "a call that did not answer RETRY");
		dtxt_log_fini(&l);
		dtx_tx_free(tx);
	}
}

// Saga groups, with real processes: {0} {1,2,3} {4}, all on participant
// a, so that its call log gives the order; p1..p3 are the group's
// payloads. Returns the saga's outcome.
static dtx_state
commit_grouped(dtx_tx *tx, const dtxt_part *a, const char *const p[3])
{
	add(tx, a, "op", "");
	CHECK_RV(dtx_tx_saga_group_begin(tx));
	for (int i = 0; i < 3; i++) {
		add(tx, a, "op", p[i]);
	}
	CHECK_RV(dtx_tx_saga_group_end(tx));
	add(tx, a, "op", "");
	return commit(tx);
}

// A group's steps all run; the next group runs only after every step of
// the group executed.
Test(tx, saga_group_runs_its_steps_together_then_the_next)
{
	static const char *const p[3] = {
	    "execute=sleep:100", "", "execute=retry:1"};
	dtxt_log l;

	start_dtxd(NULL);
	dtxt_part *a  = start_part("a");
	dtx_tx    *tx = begin(DTX_SAGA);
	CHECK_STATE(commit_grouped(tx, a, p), DTX_STATE_COMMITTED);
	load(&l, a);
	const char *gid = dtx_tx_gid(tx);
	long last4 = dtxt_log_find(&l, 0, DTXT_CALL, gid, 4, "EXECUTE", NULL);
	CHECK(last4 >= 0, "step 4 never executed");
	for (int i = 0; i < 5; i++) {
		CHECK(dtxt_log_effect(&l, gid, i) == 1, "step %d not applied",
		    i);
		CHECK(dtxt_log_count(
		          &l, DTXT_CALL, gid, i, "COMPENSATE", NULL) == 0,
		    "step %d compensated", i);
	}
	for (int i = 1; i <= 3; i++) {
		long at =
		    dtxt_log_find(&l, 0, DTXT_CALL, gid, i, "EXECUTE", "OK");
		CHECK(at >= 0 && at < last4,
		    "step 4 executed before step %d of the group before it",
		    i);
	}
	dtxt_log_fini(&l);
	dtx_tx_free(tx);
}

// A group of three where one refuses: the group's other steps still ran (a
// saga one step at a time would have stopped at the refusal), and every
// step of the group that ran or may have run is compensated, then the
// group before it; the group after it never runs.
Test(tx, saga_group_with_a_refusal_is_undone_group_by_group_in_reverse)
{
	static const char *const p[3] = {
	    "execute=sleep:100", "execute=refuse", ""};
	dtxt_log l;

	start_dtxd(NULL);
	dtxt_part *a  = start_part("a");
	dtx_tx    *tx = begin(DTX_SAGA);
	CHECK_STATE(commit_grouped(tx, a, p), DTX_STATE_COMPENSATED);
	load(&l, a);
	const char *gid = dtx_tx_gid(tx);
	for (int i = 0; i < 4; i++) {
		CHECK(dtxt_log_count(&l, DTXT_CALL, gid, i, "EXECUTE", NULL) ==
		        1,
		    "step %d not executed once", i);
		CHECK(dtxt_log_count(
		          &l, DTXT_CALL, gid, i, "COMPENSATE", "OK") == 1,
		    "step %d not compensated once", i);
		CHECK(dtxt_log_effect(&l, gid, i) == 0,
		    "step %d left an effect", i);
	}
	CHECK(dtxt_log_count(&l, DTXT_APPLY, gid, 2, NULL, NULL) == 0,
	    "the refused step took effect");
	CHECK(dtxt_log_count(&l, DTXT_UNDO, gid, 1, NULL, NULL) == 1 &&
	        dtxt_log_count(&l, DTXT_UNDO, gid, 3, NULL, NULL) == 1,
	    "the group's executed steps were not undone");
	CHECK(dtxt_log_count(&l, DTXT_CALL, gid, 4, NULL, NULL) == 0,
	    "the group after the refusal ran");
	// Reverse group order: the whole group is undone before step 0.
	long undo0 =
	    dtxt_log_find(&l, 0, DTXT_CALL, gid, 0, "COMPENSATE", NULL);
	for (int i = 1; i <= 3; i++) {
		long at = dtxt_log_find(
		    &l, 0, DTXT_CALL, gid, i, "COMPENSATE", NULL);
		CHECK(at >= 0 && at < undo0,
		    "step 0 compensated before step %d of the later group", i);
	}
	dtxt_log_fini(&l);
	dtx_tx_free(tx);
}

Test(tx, resubmitting_a_gid_returns_the_same_outcome_and_applies_once)
{
	dtxt_log la, lb;
	dtx_tx  *tx;
	char     gid[40];

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	snprintf(gid, sizeof(gid), "idem-");
	dtxi_gid_new(gid + 5);
	for (int round = 0; round < 2; round++) {
		tx = begin(DTX_2PC);
		CHECK_RV(dtx_tx_set_gid(tx, gid));
		add(tx, a, "op", "");
		add(tx, b, "op", "");
		CHECK_STATE(commit(tx), DTX_STATE_COMMITTED);
		CHECK(strcmp(dtx_tx_gid(tx), gid) == 0, "gid changed");
		dtx_tx_free(tx);
	}
	load(&la, a);
	load(&lb, b);
	CHECK(dtxt_log_count(&la, DTXT_APPLY, gid, 0, NULL, NULL) == 1,
	    "a applied more than once");
	CHECK(dtxt_log_count(&lb, DTXT_APPLY, gid, 1, NULL, NULL) == 1,
	    "b applied more than once");
	CHECK(dtxt_log_count(&la, DTXT_CALL, gid, 0, "PREPARE", NULL) == 1,
	    "the resubmission ran the transaction again");
	dtxt_log_fini(&la);
	dtxt_log_fini(&lb);
}

Test(tx, resubmitting_a_gid_with_other_branches_is_EEXIST)
{
	dtx_tx   *tx;
	dtx_state st;
	char      gid[40];
	int       rv;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	snprintf(gid, sizeof(gid), "idem-");
	dtxi_gid_new(gid + 5);
	tx = begin(DTX_SAGA);
	CHECK_RV(dtx_tx_set_gid(tx, gid));
	add(tx, a, "op", "");
	CHECK_STATE(commit(tx), DTX_STATE_COMMITTED);
	dtx_tx_free(tx);

	tx = begin(DTX_SAGA);
	CHECK_RV(dtx_tx_set_gid(tx, gid));
	add(tx, a, "op", "");
	add(tx, a, "op", "");
	rv = dtx_tx_commit(tx, &st);
	CHECK(
	    rv == DTX_EEXIST, "commit: %s, expected EEXIST", dtx_strerror(rv));
	dtx_tx_free(tx);

	tx = begin(DTX_SAGA);
	CHECK_RV(dtx_tx_set_gid(tx, gid));
	add(tx, a, "op", "execute=refuse");
	rv = dtx_tx_submit(tx);
	CHECK(rv == DTX_EEXIST, "submit with another payload: %s",
	    dtx_strerror(rv));
	dtx_tx_free(tx);
}

Test(tx, unknown_method_aborts_a_two_phase_commit)
{
	dtx_branch_result r;
	dtxt_log          la;
	dtx_tx           *tx;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_2PC);
	add(tx, a, "op", "");
	add(tx, b, "no-such-method", "");
	CHECK_STATE(commit(tx), DTX_STATE_ABORTED);
	CHECK_RV(dtx_tx_branch_result(tx, 1, &r));
	CHECK(r.status == DTX_BRANCH_NO_SUCH_METHOD,
	    "branch 1 status %s, expected NO_SUCH_METHOD",
	    dtx_branch_status_name(r.status));
	load(&la, a);
	CHECK(dtxt_log_count(&la, DTXT_APPLY, NULL, -1, NULL, NULL) == 0,
	    "an effect was applied");
	CHECK(dtxt_log_count(
	          &la, DTXT_CALL, dtx_tx_gid(tx), 0, "ABORT", "OK") >= 1,
	    "a was not aborted");
	dtxt_log_fini(&la);
	dtx_tx_free(tx);
}

Test(tx, unknown_method_compensates_a_saga)
{
	dtx_branch_result r;
	dtxt_log          la;
	dtx_tx           *tx;
	const char       *gid;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_SAGA);
	add(tx, a, "op", "");
	add(tx, b, "no-such-method", "");
	CHECK_STATE(commit(tx), DTX_STATE_COMPENSATED);
	gid = dtx_tx_gid(tx);
	CHECK_RV(dtx_tx_branch_result(tx, 1, &r));
	CHECK(r.status == DTX_BRANCH_NO_SUCH_METHOD,
	    "branch 1 status %s, expected NO_SUCH_METHOD",
	    dtx_branch_status_name(r.status));
	load(&la, a);
	CHECK(dtxt_log_count(&la, DTXT_APPLY, gid, 0, NULL, NULL) == 1,
	    "step 0 not applied once");
	CHECK(dtxt_log_count(&la, DTXT_UNDO, gid, 0, NULL, NULL) == 1,
	    "step 0 not undone once");
	dtxt_log_fini(&la);
	dtx_tx_free(tx);
}

Test(tx, saga_waits_for_a_participant_that_is_down_then_commits)
{
	dtxt_log    la;
	dtx_tx     *tx;
	dtx_state   st = 0;
	const char *gid;

	start_dtxd(NULL);
	dtxt_part *a = dtxt_world_part(&w, "a");
	CHECK(a != NULL, "no address");
	tx = begin(DTX_SAGA);
	CHECK_RV(dtx_tx_set_retries(tx, 100));
	add(tx, a, "op", "");
	add(tx, a, "op", "");
	CHECK_RV(dtx_tx_submit(tx));
	gid = dtx_tx_gid(tx);
	// The first EXECUTE fails while the participant is down.
	CHECK(dtxt_wait_failed_call(tx, 0, 10000) == 0,
	    "no call failed while the participant was down");
	CHECK(dtxt_part_start(a) == 0, "participant did not start");
	CHECK_RV(dtx_tx_wait(tx, 15000, &st));
	CHECK_STATE(st, DTX_STATE_COMMITTED);
	load(&la, a);
	for (int i = 0; i < 2; i++) {
		CHECK(dtxt_log_count(&la, DTXT_APPLY, gid, i, NULL, NULL) == 1,
		    "step %d not applied once", i);
	}
	CHECK(dtxt_log_count(&la, DTXT_CALL, gid, -1, "COMPENSATE", NULL) == 0,
	    "the saga was compensated");
	dtxt_log_fini(&la);
	dtx_tx_free(tx);
}

Test(tx, submit_returns_once_accepted_and_wait_gives_the_outcome)
{
	dtx_tx     *tx;
	dtx_tx     *other;
	dtx_state   st = 0;
	const char *gid;
	dtxt_log    la;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	tx           = begin(DTX_SAGA);
	add(tx, a, "op", "execute=sleep:400");
	add(tx, a, "op", "");
	CHECK_RV(dtx_tx_submit(tx));
	gid = dtx_tx_gid(tx);
	CHECK_RV(dtx_tx_status(tx, &st));
	CHECK(!dtx_state_is_terminal(st),
	    "submit waited for the outcome (state %s)", dtx_state_name(st));

	// A second handle attached by gid sees the same transaction.
	CHECK_RV(dtx_tx_attach(&other, w.client, gid));
	CHECK_RV(dtx_tx_wait(other, 10000, &st));
	CHECK_STATE(st, DTX_STATE_COMMITTED);
	CHECK_RV(dtx_tx_wait(tx, 10000, &st));
	CHECK_STATE(st, DTX_STATE_COMMITTED);
	load(&la, a);
	CHECK(dtxt_log_count(&la, DTXT_APPLY, gid, -1, NULL, NULL) == 2,
	    "not both steps applied");
	dtxt_log_fini(&la);
	dtx_tx_free(other);
	dtx_tx_free(tx);
}

Test(tx, status_of_an_unknown_gid_is_ENOTFOUND)
{
	dtx_tx   *tx;
	dtx_state st;
	int       rv;

	start_dtxd(NULL);
	CHECK_RV(dtx_tx_attach(&tx, w.client, "never-submitted"));
	rv = dtx_tx_status(tx, &st);
	CHECK(rv == DTX_ENOTFOUND, "status: %s", dtx_strerror(rv));
	rv = dtx_tx_wait(tx, 200, &st);
	CHECK(rv == DTX_ENOTFOUND, "wait: %s", dtx_strerror(rv));
	dtx_tx_free(tx);
}

Test(tx, resolve_of_an_unknown_gid_is_presumed_aborted)
{
	dtx_state st = 0;

	start_dtxd(NULL);
	CHECK_RV(dtx_client_resolve(w.client, "never-submitted", &st));
	CHECK_STATE(st, DTX_STATE_ABORTED);
}

Test(tx, operator_abort_of_a_two_phase_commit_stuck_in_prepare_aborts_it)
{
	dtxt_log    la, lb;
	dtx_tx     *tx;
	dtx_state   st = 0;
	const char *gid;

	start_dtxd(NULL);
	dtxt_part *a = start_part("a");
	dtxt_part *b = start_part("b");
	tx           = begin(DTX_2PC);
	CHECK_RV(dtx_tx_set_timeout_ms(tx, 20000));
	CHECK_RV(dtx_tx_set_call_timeout_ms(tx, 10000));
	add(tx, a, "op", "");
	add(tx, b, "op", "prepare=sleep:3000");
	CHECK_RV(dtx_tx_submit(tx));
	gid = dtx_tx_gid(tx);
	// a has prepared; b's prepare is still running.
	CHECK(dtxt_wait_log(
	          a->calllog, DTXT_CALL, gid, 0, "PREPARE", "OK", 10000) == 0,
	    "a did not prepare");
	CHECK_RV(dtx_client_abort(w.client, gid, &st));
	CHECK(st == DTX_STATE_ABORTING || st == DTX_STATE_ABORTED,
	    "state after abort %s", dtx_state_name(st));
	CHECK_RV(dtx_tx_wait(tx, 10000, &st));
	CHECK_STATE(st, DTX_STATE_ABORTED);

	load(&la, a);
	load(&lb, b);
	CHECK(dtxt_log_count(&la, DTXT_CALL, gid, 0, "ABORT", "OK") >= 1,
	    "a was not aborted");
	CHECK(dtxt_log_count(&la, DTXT_CALL, gid, -1, "COMMIT", NULL) +
	            dtxt_log_count(&lb, DTXT_CALL, gid, -1, "COMMIT", NULL) ==
	        0,
	    "COMMIT sent after an operator abort");
	dtxt_log_fini(&la);
	dtxt_log_fini(&lb);
	dtx_tx_free(tx);
}
