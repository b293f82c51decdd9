// SPDX-License-Identifier: MIT
//
// dtx.fault.crash: dtxd killed at each of its crash points loses nothing.
// DTXD_CRASH_AT=<point> makes dtxd SIGKILL itself the first time it gets
// there; the test runs a transaction that reaches the point, checks that
// dtxd died by SIGKILL, restarts it on the same data directory without the
// variable, waits for the outcome, and proves from the participants' call
// logs that the outcome was carried out exactly once. The participants
// (dtx-testpart) keep running across the crash, as real services would, so
// their in-memory effect sets see every redelivered call.
//
//   point                       transaction                    outcome
//   before-commit-decision      2PC, two branches              ABORTED
//   after-commit-decision       2PC, two branches              COMMITTED
//   after-first-commit          2PC, three branches            COMMITTED
//   after-first-execute         saga, two steps                COMMITTED
//   before-compensate-decision  saga, three steps, last refuses COMPENSATED
//   after-compensate-decision   saga, three steps, last refuses COMPENSATED
//   after-first-compensate      saga, three steps, last refuses COMPENSATED
//   before-final-record         saga, two steps, deadline past  what the
//                               client was told, if anything
//
// Two more restart past the saga's deadline, where recovery must turn back
// from what the record says (the spin model's findings, tests/model):
//   after-first-execute         saga, two steps, deadline past  COMPENSATED,
//                               step 0 undone although its record never
//                               said it was sent
//   before-final-record         saga, two steps, deadline past  COMPENSATED;
//                               Status and Wait said RUNNING, never
//                               COMMITTED, until the crash
//   after-first-execute         saga, a group of two, then a    COMPENSATED,
//                               step; deadline past             the group
//                               undone, the last step never run
//
// before-commit-decision is the one point where the crash changes the
// outcome: every branch voted yes, but the decision never reached the disk,
// so the restarted dtxd presumes abort and no branch may have committed.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "strs.h"
#include "world_suite.h"

TestSuite(crash, .init = world_setup, .fini = world_teardown, .timeout = 40);

// One step of the transaction: on participant part (0 = a, 1 = b), with
// payload.
typedef struct step {
	int         part;
	const char *payload;
} step;

// Starts dtxd with o and the two participants a and b.
static void
start_world(const dtxt_dtxd_opts *o, dtxt_part **parts)
{
	CHECK(dtxt_world_start_dtxd(&w, o) == 0, "dtxd did not start");
	parts[0] = dtxt_world_part(&w, "a");
	parts[1] = dtxt_world_part(&w, "b");
	for (int i = 0; i < 2; i++) {
		CHECK(parts[i] != NULL && dtxt_part_start(parts[i]) == 0,
		    "participant %d did not start", i);
	}
}

// Runs the whole scenario and returns nothing: it asserts. Steps are the
// branches in order; want is the expected outcome.
static void
crash_and_recover(const char *point, dtx_mode mode, const step *steps,
    unsigned nsteps, dtx_state want)
{
	dtxt_dtxd_opts o = {.crash_at = point};
	dtxt_part     *parts[2];
	dtxt_exit      how;
	dtx_tx        *tx;
	dtx_state      st = 0;
	char           gid[DTX_GID_MAX + 1];
	dtxt_log       logs[2];

	start_world(&o, parts);

	CHECK_RV(dtx_tx_begin(&tx, w.client, mode));
	CHECK_RV(dtx_tx_set_retries(tx, 50));
	for (unsigned i = 0; i < nsteps; i++) {
		const char *pl = steps[i].payload;
		CHECK_RV(dtx_tx_add(
		    tx, parts[steps[i].part]->url, "op", pl, strlen(pl)));
	}
	CHECK_RV(dtx_tx_submit(tx));
	dtxi_strlcpy(gid, dtx_tx_gid(tx), sizeof(gid));
	dtx_tx_free(tx);

	CHECK(dtxt_wait(w.dtxd, 10000, &how) == 0,
	    "dtxd did not reach crash point %s", point);
	CHECK(how.signaled && how.signo == SIGKILL,
	    "dtxd ended with %s %d, expected SIGKILL at %s",
	    how.exited ? "exit code" : "signal",
	    how.exited ? how.code : how.signo, point);

	// The old connection is gone with the process: a fresh client, and
	// a dtxd without the crash point on the same data directory.
	dtx_client_close(w.client);
	w.client = NULL;
	CHECK(dtxt_world_start_dtxd(&w, NULL) == 0, "dtxd did not restart");
	CHECK_RV(dtx_tx_attach(&tx, w.client, gid));
	CHECK_RV(dtx_tx_wait(tx, 20000, &st));
	dtx_tx_free(tx);
	CHECK(st == want, "after %s: %s, expected %s", point,
	    dtx_state_name(st), dtx_state_name(want));

	dtxt_log_load(&logs[0], parts[0]->calllog);
	dtxt_log_load(&logs[1], parts[1]->calllog);
	for (unsigned i = 0; i < nsteps; i++) {
		const dtxt_log *l = &logs[steps[i].part];
		bool   refused    = strstr(steps[i].payload, "refuse") != NULL;
		size_t applied =
		    dtxt_log_count(l, DTXT_APPLY, gid, (int)i, NULL, NULL);
		size_t undone =
		    dtxt_log_count(l, DTXT_UNDO, gid, (int)i, NULL, NULL);

		if (want == DTX_STATE_COMMITTED) {
			CHECK(applied == 1 && undone == 0,
			    "%s: branch %u applied %zu, undone %zu", point, i,
			    applied, undone);
		} else if (want == DTX_STATE_ABORTED) {
			CHECK(applied == 0 && undone == 0 &&
			        dtxt_log_count(l, DTXT_CALL, gid, (int)i,
			            "COMMIT", NULL) == 0,
			    "%s: aborted branch %u applied %zu, undone %zu",
			    point, i, applied, undone);
			CHECK(dtxt_log_count(l, DTXT_CALL, gid, (int)i,
			          "ABORT", "OK") >= 1,
			    "%s: aborted branch %u got no ABORT", point, i);
		} else if (refused) {
			CHECK(applied == 0 && undone == 0,
			    "%s: refused step %u applied %zu, undone %zu",
			    point, i, applied, undone);
		} else {
			CHECK(applied == 1 && undone == 1,
			    "%s: step %u applied %zu, undone %zu", point, i,
			    applied, undone);
		}
		CHECK(want != DTX_STATE_COMPENSATED ||
		        dtxt_log_effect(l, gid, (int)i) == 0,
		    "%s: step %u left an effect", point, i);
	}
	dtxt_log_fini(&logs[0]);
	dtxt_log_fini(&logs[1]);
}

static const step two_branches[]   = {{0, ""}, {1, ""}};
static const step three_branches[] = {{0, ""}, {1, ""}, {0, ""}};
static const step last_refuses[]   = {{0, ""}, {1, ""}, {0, "execute=refuse"}};

Test(crash, two_phase_commit_is_aborted_after_a_crash_before_the_decision)
{
	crash_and_recover("before-commit-decision", DTX_2PC, two_branches, 2,
	    DTX_STATE_ABORTED);
}

Test(crash, two_phase_commit_is_committed_after_a_crash_after_the_decision)
{
	crash_and_recover("after-commit-decision", DTX_2PC, two_branches, 2,
	    DTX_STATE_COMMITTED);
}

Test(crash, two_phase_commit_is_committed_after_a_crash_after_one_commit)
{
	// Three branches on two participants: the crash falls between the
	// COMMITs of one phase two, whichever was acknowledged first.
	crash_and_recover("after-first-commit", DTX_2PC, three_branches, 3,
	    DTX_STATE_COMMITTED);
}

Test(crash, saga_is_committed_after_a_crash_after_the_first_execute)
{
	crash_and_recover("after-first-execute", DTX_SAGA, two_branches, 2,
	    DTX_STATE_COMMITTED);
}

Test(crash, saga_is_compensated_after_a_crash_before_the_decision)
{
	crash_and_recover("before-compensate-decision", DTX_SAGA, last_refuses,
	    3, DTX_STATE_COMPENSATED);
}

Test(crash, saga_is_compensated_after_a_crash_after_the_decision)
{
	crash_and_recover("after-compensate-decision", DTX_SAGA, last_refuses,
	    3, DTX_STATE_COMPENSATED);
}

Test(crash, saga_is_compensated_after_a_crash_after_one_compensation)
{
	crash_and_recover("after-first-compensate", DTX_SAGA, last_refuses, 3,
	    DTX_STATE_COMPENSATED);
}

// A saga's COMMITTED is settled only by its final record: the last step's
// result is in no other. A client must not be told COMMITTED before that
// record is written, or a crash in between lets recovery, which finds the
// last step unrecorded and the deadline past, compensate a saga the client
// believes committed. The crash point lingers 300 ms first, so a reply
// already given to nng would reach the client.
typedef struct told {
	dtx_tx   *tx;
	int       rv;
	dtx_state st;
} told;

static void *
commit_thread(void *arg)
{
	told *t = arg;
	t->rv   = dtx_tx_commit(t->tx, &t->st);
	return NULL;
}

static int
clock_past(void *arg)
{
	return dtxi_now_ms() > *(const int64_t *)arg;
}

Test(crash, saga_outcome_is_told_only_once_its_final_record_is_written)
{
	dtxt_dtxd_opts o = {
	    .crash_at = "before-final-record", .timeout_ms = 1000};
	dtxt_part *parts[2];
	dtxt_exit  how;
	dtx_tx    *tx;
	dtx_state  st = 0;
	told       t  = {0};
	pthread_t  th;
	char       gid[DTX_GID_MAX + 1];
	int64_t    deadline;

	start_world(&o, parts);
	CHECK_RV(dtx_tx_begin(&t.tx, w.client, DTX_SAGA));
	CHECK_RV(dtx_tx_add(t.tx, parts[0]->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(t.tx, parts[1]->url, "op", "", 0));
	dtxi_strlcpy(gid, dtx_tx_gid(t.tx), sizeof(gid));
	// The deadline is set when dtxd accepts the saga, after this; a
	// little more covers the clocks' rounding.
	deadline = dtxi_now_ms() + o.timeout_ms + 50;
	CHECK(pthread_create(&th, NULL, commit_thread, &t) == 0, "thread");

	CHECK(dtxt_wait(w.dtxd, 10000, &how) == 0,
	    "dtxd did not reach before-final-record");
	CHECK(how.signaled && how.signo == SIGKILL, "dtxd did not crash");
	// Past the saga's deadline, so recovery may not execute any more.
	CHECK(dtxt_wait_until(clock_past, &deadline, 20, 5000) == 0,
	    "the clock did not pass the deadline");
	CHECK(dtxt_world_start_dtxd(&w, NULL) == 0, "dtxd did not restart");
	pthread_join(th, NULL);
	dtx_tx_free(t.tx);

	CHECK_RV(dtx_tx_attach(&tx, w.client, gid));
	CHECK_RV(dtx_tx_wait(tx, 20000, &st));
	dtx_tx_free(tx);
	CHECK(t.rv != 0 || t.st == st,
	    "the client was told %s, but the saga ended %s",
	    dtx_state_name(t.st), dtx_state_name(st));
	CHECK(
	    dtx_state_is_terminal(st), "not terminal: %s", dtx_state_name(st));
}

// Waits until the saga's deadline (set by dtxd when it accepted the saga,
// after *deadline was taken) has passed, so that recovery may not execute.
static void
wait_past(int64_t deadline)
{
	CHECK(dtxt_wait_until(clock_past, &deadline, 20, 5000) == 0,
	    "the clock did not pass the deadline");
}

// Restarts dtxd without the crash point and returns the saga's outcome.
static dtx_state
restart_and_wait(const char *gid)
{
	dtx_tx   *tx;
	dtx_state st = 0;

	dtx_client_close(w.client);
	w.client = NULL;
	CHECK(dtxt_world_start_dtxd(&w, NULL) == 0, "dtxd did not restart");
	CHECK_RV(dtx_tx_attach(&tx, w.client, gid));
	CHECK_RV(dtx_tx_wait(tx, 20000, &st));
	dtx_tx_free(tx);
	return st;
}

// Starts dtxd with the crash point and a 1 s saga timeout, two
// participants, and submits a saga of one step on each (with group: those
// two as one parallel group, then a third step on the first). Returns the
// deadline's upper bound; the gid goes to gid.
static int64_t
start_saga_of(const char *point, dtxt_part **parts, char *gid, bool group)
{
	dtxt_dtxd_opts o = {.crash_at = point, .timeout_ms = 1000};
	dtx_tx        *tx;
	int64_t        deadline;

	start_world(&o, parts);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
	if (group) {
		CHECK_RV(dtx_tx_saga_group_begin(tx));
	}
	CHECK_RV(dtx_tx_add(tx, parts[0]->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, parts[1]->url, "op", "", 0));
	if (group) {
		CHECK_RV(dtx_tx_saga_group_end(tx));
		CHECK_RV(dtx_tx_add(tx, parts[0]->url, "op", "", 0));
	}
	// dtxd sets the deadline when the Submit arrives, so the bound is
	// taken once it is answered (taken before, it missed a Submit that
	// took over 50 ms to arrive on a loaded machine); a little more than
	// the timeout covers the clocks' rounding.
	CHECK_RV(dtx_tx_submit(tx));
	deadline = dtxi_now_ms() + o.timeout_ms + 50;
	dtxi_strlcpy(gid, dtx_tx_gid(tx), DTX_GID_MAX + 1);
	dtx_tx_free(tx);
	return deadline;
}

// dtxd dies at its crash point; restarted past the deadline, the saga
// must end COMPENSATED.
static void
crash_restart_compensated(int64_t deadline, const char *gid)
{
	dtxt_exit how;

	CHECK(dtxt_wait(w.dtxd, 10000, &how) == 0,
	    "dtxd did not reach its crash point");
	CHECK(how.signaled && how.signo == SIGKILL, "dtxd did not crash");
	wait_past(deadline);
	dtx_state st = restart_and_wait(gid);
	CHECK(st == DTX_STATE_COMPENSATED, "ended %s, expected COMPENSATED",
	    dtx_state_name(st));
}

static int64_t
start_saga(const char *point, dtxt_part **parts, char *gid)
{
	return start_saga_of(point, parts, gid, false);
}

// Step 0's EXECUTE left and ran, and dtxd died before any write recorded
// it (its DONE_SENT goes out only with the next step's progress write).
// Restarted past the deadline, recovery turns back; step 0 must be
// compensated all the same, and step 1, which may have run for all the
// record knows, gets its (null) compensation.
Test(crash, saga_step_run_before_its_record_is_compensated_past_deadline)
{
	dtxt_part *parts[2];
	dtxt_log   logs[2];
	char       gid[DTX_GID_MAX + 1];
	int64_t    deadline = start_saga("after-first-execute", parts, gid);

	crash_restart_compensated(deadline, gid);

	dtxt_log_load(&logs[0], parts[0]->calllog);
	dtxt_log_load(&logs[1], parts[1]->calllog);
	CHECK(dtxt_log_count(&logs[0], DTXT_APPLY, gid, 0, NULL, NULL) == 1,
	    "step 0 did not run before the crash");
	CHECK(dtxt_log_count(&logs[0], DTXT_UNDO, gid, 0, NULL, NULL) == 1,
	    "step 0 ran and was never compensated");
	CHECK(dtxt_log_effect(&logs[0], gid, 0) == 0, "step 0 left an effect");
	CHECK(
	    dtxt_log_count(&logs[1], DTXT_CALL, gid, 1, "EXECUTE", NULL) == 0,
	    "step 1 executed past the deadline");
	CHECK(dtxt_log_count(
	          &logs[1], DTXT_CALL, gid, 1, "COMPENSATE", "OK") >= 1,
	    "step 1, which may have run, got no compensation");
	CHECK(dtxt_log_effect(&logs[1], gid, 1) == 0, "step 1 left an effect");
	dtxt_log_fini(&logs[0]);
	dtxt_log_fini(&logs[1]);
}

// A Wait started once the last step ran: its answer, if any.
typedef struct waited {
	dtx_tx   *tx;
	int       rv;
	dtx_state st;
} waited;

static void *
wait_thread(void *arg)
{
	waited *t = arg;
	t->rv     = dtx_tx_wait(t->tx, 5000, &t->st);
	return NULL;
}

// Both steps ran; dtxd has the saga COMMITTED in memory, its final record
// is never written (before-final-record lets dtxd go on 300 ms, then it
// dies). Meanwhile Status is asked again and again, and a Wait starts:
// neither may say COMMITTED, because the restart past the deadline finds
// the saga RUNNING at step 1 and compensates it.
Test(crash, saga_status_says_running_until_its_final_record_is_written)
{
	dtxt_part *parts[2];
	dtxt_exit  how;
	dtx_tx    *tx;
	char       gid[DTX_GID_MAX + 1];
	char       applied[DTX_GID_MAX + 32];
	dtx_state  said     = 0;
	unsigned   answered = 0;
	waited     wt       = {0};
	pthread_t  th;
	bool       waiting  = false;
	int64_t    deadline = start_saga("before-final-record", parts, gid);

	// dtxd dies under these requests: do not wait long for answers.
	dtx_client_set_timeout_ms(w.client, 1000);
	CHECK_RV(dtx_tx_attach(&tx, w.client, gid));
	CHECK_RV(dtx_tx_attach(&wt.tx, w.client, gid));
	snprintf(applied, sizeof(applied), "APPLY %s 1", gid);
	while (dtxt_alive(w.dtxd)) {
		char     *log = dtxt_read_file(parts[1]->calllog);
		bool      ran = strstr(log, applied) != NULL;
		dtx_state s   = 0;
		free(log);
		if (ran && !waiting) {
			CHECK(pthread_create(&th, NULL, wait_thread, &wt) == 0,
			    "thread");
			waiting = true;
		}
		if (dtx_tx_status(tx, &s) == 0) {
			answered += ran;
			if (dtx_state_is_terminal(s)) {
				said = s;
			}
		}
		dtxt_sleep_ms(5);
	}
	CHECK(dtxt_wait(w.dtxd, 10000, &how) == 0 && how.signaled &&
	        how.signo == SIGKILL,
	    "dtxd did not crash at before-final-record");
	CHECK(waiting, "the last step never ran");
	pthread_join(th, NULL);
	CHECK(answered > 0, "no Status was answered after the last step ran");
	dtx_tx_free(tx);
	dtx_tx_free(wt.tx);

	wait_past(deadline);
	dtx_state st = restart_and_wait(gid);
	CHECK(st == DTX_STATE_COMPENSATED, "ended %s, expected COMPENSATED",
	    dtx_state_name(st));
	CHECK(said == 0,
	    "Status said %s before the final record, and the "
	    "saga ended %s",
	    dtx_state_name(said), dtx_state_name(st));
	CHECK(wt.rv != 0 || wt.st == st,
	    "Wait said %s before the final record, and the saga ended %s",
	    dtx_state_name(wt.st), dtx_state_name(st));
}

// The same with a parallel group {0, 1} then step 2: dtxd dies once the
// first of the group answered OK, before any write; the other may have run
// too. Past the deadline both are undone, and step 2 never runs.
Test(crash, saga_group_run_before_its_record_is_compensated_past_deadline)
{
	dtxt_part *parts[2];
	dtxt_log   logs[2];
	char       gid[DTX_GID_MAX + 1];
	int64_t    deadline =
	    start_saga_of("after-first-execute", parts, gid, true);

	crash_restart_compensated(deadline, gid);

	dtxt_log_load(&logs[0], parts[0]->calllog);
	dtxt_log_load(&logs[1], parts[1]->calllog);
	for (int i = 0; i < 2; i++) {
		const dtxt_log *l = &logs[i];
		CHECK(dtxt_log_count(
		          l, DTXT_CALL, gid, i, "COMPENSATE", "OK") >= 1,
		    "step %d of the group got no compensation", i);
		CHECK(dtxt_log_count(l, DTXT_APPLY, gid, i, NULL, NULL) ==
		        dtxt_log_count(l, DTXT_UNDO, gid, i, NULL, NULL),
		    "step %d ran and was never compensated", i);
		CHECK(dtxt_log_effect(l, gid, i) == 0,
		    "step %d left an effect", i);
	}
	CHECK(dtxt_log_count(&logs[0], DTXT_APPLY, gid, 0, NULL, NULL) +
	            dtxt_log_count(&logs[1], DTXT_APPLY, gid, 1, NULL, NULL) >=
	        1,
	    "no step of the group ran before the crash");
	CHECK(
	    dtxt_log_count(&logs[0], DTXT_CALL, gid, 2, "EXECUTE", NULL) == 0,
	    "the step after the group executed");
	dtxt_log_fini(&logs[0]);
	dtxt_log_fini(&logs[1]);
}
