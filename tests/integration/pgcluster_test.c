// SPDX-License-Identifier: MIT
//
// dtx.integration.pgcluster: requests about one transaction sent to a node
// of a cluster that does not run it. Two real dtxd nodes on one private
// PostgreSQL server started by the test (support/pg.h). What is checked:
// an Abort sent to the node that does not own a 2PC transaction, while
// that transaction is blocked in its prepare phase (one branch prepared,
// the other's prepare still running), is carried out by its owner (the only
// node that may write the abort and send ABORT): the node asked answers
// with the owner's decision, the transaction ends ABORTED, the client that
// submitted it is told ABORTED, and each participant sees ABORT exactly
// once, and no COMMIT.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "commit_wait.h"
#include "pg.h"
#include "world_suite.h"

TestSuite(
    pgcluster, .init = world_setup, .fini = world_teardown, .timeout = 120);

typedef struct terminal_at {
	dtx_client *c;
	const char *gid;
	dtx_state   st;
} terminal_at;

static int
is_terminal(void *arg)
{
	terminal_at *t = arg;
	dtx_tx      *tx;
	int          rv;

	if (dtx_tx_attach(&tx, t->c, t->gid) != 0) {
		return 0;
	}
	rv = dtx_tx_status(tx, &t->st);
	dtx_tx_free(tx);
	return rv == 0 && dtx_state_is_terminal(t->st);
}

Test(pgcluster,
    an_abort_sent_to_a_node_that_does_not_own_the_tx_is_done_by_its_owner)
{
	static const char *gid = "abort-via-the-other-node";
	char               conninfo[256], url_b[DTXT_URL_MAX];
	char               data_b[DTXT_PATH_MAX], log_b[DTXT_PATH_MAX];
	// The second branch's prepare runs long: the transaction is held,
	// one branch prepared, when the abort is asked.
	const char    *slow = "prepare=sleep:6000";
	dtxt_dtxd_opts o    = {
	       .call_timeout_ms = 10000, .extra = {"--node", "na", NULL}};
	dtxt_dtxd_opts   ob = o;
	dtxt_part       *p1 = dtxt_world_part(&w, "p1");
	dtxt_part       *p2 = dtxt_world_part(&w, "p2");
	dtxt_commit_wait r;
	dtxt_pg          pg;
	dtxt_proc       *b;
	dtx_client      *cb;
	dtx_tx          *tx;
	dtx_state        st = 0;
	int64_t          t0;
	int              rv;

	dtxt_commit_wait_init(&r);
	cr_assert_eq(dtxt_pg_init(&pg, NULL), 0);
	cr_assert_eq(dtxt_pg_start(&pg), 0);
	cr_assert_eq(
	    dtxt_pg_createdb(&pg, "dtx", conninfo, sizeof(conninfo)), 0);
	o.store_conn  = conninfo;
	ob.store_conn = conninfo;
	ob.extra[1]   = "nb";
	// Node A (w.url, whose client is w.client) and node B.
	CHECK_RV(dtxt_world_start_dtxd(&w, &o));
	cr_assert_eq(dtxt_free_url(url_b, sizeof(url_b)), 0);
	snprintf(data_b, sizeof(data_b), "%s/data-b", w.dir);
	snprintf(log_b, sizeof(log_b), "%s/dtxd-b.log", w.dir);
	b = dtxt_start_dtxd(url_b, data_b, log_b, &ob);
	CHECK(b != NULL, "node B did not start (see %s)", log_b);
	CHECK_RV(dtxt_part_start(p1));
	CHECK_RV(dtxt_part_start(p2));

	// Submitted to A, which owns it from then on; its client waits for
	// the outcome past the slow prepare if it must.
	dtx_client_set_timeout_ms(w.client, 20000);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_set_gid(tx, gid));
	CHECK_RV(dtx_tx_add(tx, p1->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, p2->url, "op", slow, strlen(slow)));
	CHECK_RV(dtx_tx_commit_async(tx, dtxt_commit_done, &r));
	CHECK(dtxt_wait_log(
	          p1->calllog, DTXT_CALL, gid, 0, "PREPARE", "OK", 5000) == 0,
	    "the first branch was never prepared");

	// The abort goes to B.
	CHECK_RV(dtx_client_open(&cb, url_b));
	dtx_client_set_timeout_ms(cb, 15000);
	t0 = dtxi_mono_ms();
	rv = dtx_client_abort(cb, gid, &st);
	char msg[DTX_MESSAGE_MAX + 1];
	dtx_client_message(cb, msg, sizeof(msg));
	CHECK(rv == 0, "abort via B: %s: %s", dtx_strerror(rv), msg);
	CHECK(st == DTX_STATE_ABORTING || st == DTX_STATE_ABORTED,
	    "abort via B answered %s", dtx_state_name(st));
	// Decided while the slow prepare still ran: the owner acted on it
	// within about a third of its lease, not at the prepare's end.
	CHECK(dtxi_mono_ms() - t0 < 5000, "the abort took %lld ms",
	    (long long)(dtxi_mono_ms() - t0));

	// The submitting client is told ABORTED, and so is anyone asking B.
	CHECK(
	    dtxt_commit_wait_for(&r, 30000), "the commit did not end in 30 s");
	CHECK(r.rv == 0 && r.st == DTX_STATE_ABORTED, "commit: %s, %s (%s)",
	    dtx_strerror(r.rv), dtx_state_name(r.st), r.msg);
	terminal_at t = {.c = cb, .gid = gid};
	CHECK(dtxt_wait_until(is_terminal, &t, 50, 20000) == 0 &&
	        t.st == DTX_STATE_ABORTED,
	    "the transaction ended %s, not ABORTED", dtx_state_name(t.st));

	// Each participant saw ABORT once, and no COMMIT; no effect stays.
	CHECK(dtxt_wait_log(
	          p2->calllog, DTXT_CALL, gid, 1, "ABORT", NULL, 10000) == 0,
	    "the second branch never got its ABORT");
	dtxt_part *parts[2] = {p1, p2};
	for (int i = 0; i < 2; i++) {
		dtxt_log l;
		dtxt_log_load(&l, parts[i]->calllog);
		size_t aborts =
		    dtxt_log_count(&l, DTXT_CALL, gid, i, "ABORT", NULL);
		size_t commits =
		    dtxt_log_count(&l, DTXT_CALL, gid, i, "COMMIT", NULL);
		long effect = dtxt_log_effect(&l, gid, i);
		dtxt_log_fini(&l);
		CHECK(aborts == 1 && commits == 0 && effect == 0,
		    "branch %d saw %zu ABORT, %zu COMMIT, effect %ld", i,
		    aborts, commits, effect);
	}
	// The owner (A) carried it out, asked through the database.
	char *log_a = dtxt_read_file(w.log);
	CHECK(strstr(log_a, "abort asked of another node") != NULL,
	    "node A's log does not say it was asked through the database");
	free(log_a);

	dtx_client_close(cb);
	dtxt_world_fini(&w);
	dtxt_kill(b);
	dtxt_pg_fini(&pg);
	dtxt_commit_wait_fini(&r);
}
