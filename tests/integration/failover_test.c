// SPDX-License-Identifier: MIT
//
// dtx.integration.failover: a client given several dtxd URLs (dtx.h,
// dtx_client_open) sends each request to a node that answers. Real dtxd
// processes on their own RocksDB stores: the client's fail-over does not
// depend on the cluster mode, only on the nodes answering for the same
// transaction, which two independent nodes do for a transaction sent
// again whole (a Submit). What is checked: a dead node in the list costs
// a request at most the wait for a connection, never its outcome; a node
// killed while a client waits on it for an outcome hands the wait to
// another node, which answers it; a request no node answers fails in its
// time with a message naming every node; a malformed list is refused.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "commit_wait.h"
#include "harness.h"
#include "world_suite.h"

TestSuite(
    failover, .init = world_setup, .fini = world_teardown, .timeout = 90);

// A dead address: a port that was free a moment ago, where nothing
// listens.
static void
dead_url(char *out, size_t cap)
{
	cr_assert_eq(dtxt_free_url(out, cap), 0);
}

static dtx_state
commit_one(dtx_client *c, const char *part_url, const char *payload)
{
	dtx_tx   *tx;
	dtx_state st = 0;
	int       rv;

	CHECK_RV(dtx_tx_begin(&tx, c, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, part_url, "op", payload, strlen(payload)));
	rv = dtx_tx_commit(tx, &st);
	CHECK(rv == 0, "commit: %s: %s", dtx_strerror(rv), dtx_tx_message(tx));
	dtx_tx_free(tx);
	return st;
}

Test(failover, a_dead_node_first_in_the_list_costs_only_the_wait)
{
	char        urls[3 * DTXT_URL_MAX], dead[DTXT_URL_MAX];
	dtx_client *c;
	dtxt_part  *p = dtxt_world_part(&w, "p");

	CHECK_RV(dtxt_world_start_dtxd(&w, NULL));
	CHECK_RV(dtxt_part_start(p));
	dead_url(dead, sizeof(dead));
	snprintf(urls, sizeof(urls), "%s,%s", dead, w.url);
	CHECK_RV(dtx_client_open(&c, urls));
	// Requests start at each node in turn: half of them start at the
	// dead one and move on.
	for (int i = 0; i < 4; i++) {
		int64_t t0 = dtxi_mono_ms();

		CHECK(commit_one(c, p->url, "") == DTX_STATE_COMMITTED,
		    "commit %d not committed", i);
		// The wait for a connection (a second), and the commit.
		CHECK(dtxi_mono_ms() - t0 < 4000, "commit %d took %lld ms", i,
		    (long long)(dtxi_mono_ms() - t0));
	}
	dtx_coordinator_stats s;
	CHECK_RV(dtx_client_stats(c, &s));
	CHECK(s.started == 4, "the live node started %llu, not 4",
	    (unsigned long long)s.started);
	dtx_client_close(c);
}

static uint64_t
started_at(const char *url)
{
	dtx_client           *c;
	dtx_coordinator_stats s = {0};

	if (dtx_client_open(&c, url) != 0) {
		return 0;
	}
	dtx_client_set_timeout_ms(c, 1000);
	if (dtx_client_stats(c, &s) != 0) {
		s.started = 0;
	}
	dtx_client_close(c);
	return s.started;
}

Test(failover, a_wait_on_a_node_that_dies_is_answered_by_another)
{
	char             urls[3 * DTXT_URL_MAX], url_b[DTXT_URL_MAX];
	char             data_b[DTXT_PATH_MAX], log_b[DTXT_PATH_MAX];
	dtxt_proc       *b;
	dtx_client      *c;
	dtx_tx          *tx;
	dtxt_part       *p = dtxt_world_part(&w, "p");
	dtxt_commit_wait r;
	const char      *pl = "prepare=sleep:1500";
	// The prepare is slow on purpose: no call timeout may cut it.
	dtxt_dtxd_opts o = {.call_timeout_ms = 5000};
	dtxt_proc     *victim;
	const char    *survivor;
	int64_t        t0;

	dtxt_commit_wait_init(&r);
	CHECK_RV(dtxt_world_start_dtxd(&w, &o));
	CHECK_RV(dtxt_part_start(p));
	cr_assert_eq(dtxt_free_url(url_b, sizeof(url_b)), 0);
	snprintf(data_b, sizeof(data_b), "%s/data-b", w.dir);
	snprintf(log_b, sizeof(log_b), "%s/dtxd-b.log", w.dir);
	b = dtxt_start_dtxd(url_b, data_b, log_b, &o);
	CHECK(b != NULL, "second dtxd did not start (see %s)", log_b);
	snprintf(urls, sizeof(urls), "%s,%s", w.url, url_b);
	CHECK_RV(dtx_client_open(&c, urls));

	// The prepare takes 1.5 s: the node the Submit went to is killed
	// while the client waits on it for the outcome.
	CHECK_RV(dtx_tx_begin(&tx, c, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, p->url, "op", pl, strlen(pl)));
	CHECK_RV(dtx_tx_commit_async(tx, dtxt_commit_done, &r));
	t0     = dtxi_mono_ms();
	victim = NULL;
	while (victim == NULL && dtxi_mono_ms() - t0 < 5000) {
		if (started_at(w.url) == 1) {
			victim   = w.dtxd;
			survivor = url_b;
		} else if (started_at(url_b) == 1) {
			victim   = b;
			survivor = w.url;
		} else {
			dtxt_sleep_ms(20);
		}
	}
	CHECK(victim != NULL, "no node started the transaction");
	CHECK_RV(dtxt_kill(victim));

	CHECK(
	    dtxt_commit_wait_for(&r, 30000), "the commit did not end in 30 s");
	CHECK(r.rv == 0, "commit: %s: %s", dtx_strerror(r.rv), r.msg);
	CHECK(r.st == DTX_STATE_COMMITTED, "outcome %s", dtx_state_name(r.st));
	CHECK(started_at(survivor) == 1,
	    "the surviving node did not run the transaction");
	// Within the prepare's time twice and the kill, not a timeout.
	CHECK(dtxi_mono_ms() - t0 < 8000, "the outcome took %lld ms",
	    (long long)(dtxi_mono_ms() - t0));
	dtx_client_close(c);
	dtxt_commit_wait_fini(&r);
}

Test(failover, a_request_no_node_answers_names_every_node)
{
	char        urls[3 * DTXT_URL_MAX], a[DTXT_URL_MAX], b[DTXT_URL_MAX];
	dtx_client *c;
	dtx_tx     *tx;
	dtx_state   st;
	int64_t     t0;
	int         rv;

	dead_url(a, sizeof(a));
	dead_url(b, sizeof(b));
	snprintf(urls, sizeof(urls), "%s,%s", a, b);
	CHECK_RV(dtx_client_open(&c, urls));
	CHECK_RV(dtx_client_set_timeout_ms(c, 2500));
	CHECK_RV(dtx_tx_attach(&tx, c, "no-such-gid"));
	t0 = dtxi_mono_ms();
	rv = dtx_tx_status(tx, &st);
	CHECK(rv == DTX_EUNREACHABLE, "status: %s", dtx_strerror(rv));
	CHECK(dtxi_mono_ms() - t0 < 4500, "took %lld ms",
	    (long long)(dtxi_mono_ms() - t0));
	CHECK(strstr(dtx_tx_message(tx), a) != NULL &&
	        strstr(dtx_tx_message(tx), b) != NULL,
	    "message does not name both nodes: %s", dtx_tx_message(tx));
	dtx_tx_free(tx);
	dtx_client_close(c);
}

Test(failover, a_malformed_list_is_refused)
{
	char        many[40 * 32] = "";
	dtx_client *c             = NULL;

	cr_assert_eq(dtx_client_open(&c, "tcp://127.0.0.1:1,"), DTX_EINVAL);
	cr_assert_eq(dtx_client_open(&c, ",tcp://127.0.0.1:1"), DTX_EINVAL);
	cr_assert_eq(
	    dtx_client_open(&c, "tcp://127.0.0.1:1,,tcp://127.0.0.1:2"),
	    DTX_EINVAL);
	cr_assert_eq(
	    dtx_client_open(&c, "tcp://127.0.0.1:1,nosuch://x"), DTX_EINVAL);
	for (int i = 0; i <= DTX_COORDINATORS_MAX; i++) {
		char one[32];

		snprintf(one, sizeof(one), "%stcp://127.0.0.1:%d",
		    i > 0 ? "," : "", 1000 + i);
		strcat(many, one);
	}
	cr_assert_eq(dtx_client_open(&c, many), DTX_EINVAL);
	cr_assert_null(c);
}
