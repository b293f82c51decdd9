// SPDX-License-Identifier: MIT
//
// dtx.integration.sdkops: what libdtx tells the application that runs it.
// A log handler set with dtx_set_log_handler() receives libdtx's lines
// (logfmt, one per event) instead of stderr, among them the resolver's
// decision about an in-doubt branch; a participant's counters
// (dtx_participant_stats_get) count its calls by phase and status, the
// barrier's replays, null aborts and refusals of late prepares, and the
// resolver's questions and actions; and each refused call says why on the
// object it was made on: a method name with a space, a name registered
// twice, a bad gid, a bad traceparent.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "harness.h"
#include "logparse.h"
#include "rawcall.h"
#include "world_suite.h"

TestSuite(sdkops, .init = world_setup, .fini = world_teardown, .timeout = 60);

typedef struct sink {
	pthread_mutex_t mtx;
	char            decision[1024]; // the resolver's ABORT decision
	char            traces[4][64];  // traceparents the callback saw
	int             ntraces;
} sink;

static sink s = {.mtx = PTHREAD_MUTEX_INITIALIZER};

static void
collect(void *arg, int level, const char *line)
{
	sink        *k = arg;
	dtxt_logline l;

	if (level == DTX_LOG_INFO && dtxt_logline_parse(line, &l) == 0 &&
	    dtxt_logline_get(&l, "event") != NULL &&
	    strcmp(dtxt_logline_get(&l, "event"), "resolver_decision") == 0) {
		pthread_mutex_lock(&k->mtx);
		snprintf(k->decision, sizeof(k->decision), "%s", line);
		pthread_mutex_unlock(&k->mtx);
	}
}

static dtx_result
cb(const dtx_call *call, dtx_reply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	pthread_mutex_lock(&s.mtx);
	if (s.ntraces < 4) {
		snprintf(s.traces[s.ntraces++], sizeof(s.traces[0]), "%s",
		    call->traceparent != NULL ? call->traceparent : "(null)");
	}
	pthread_mutex_unlock(&s.mtx);
	return DTX_OK;
}

static int
decided(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&s.mtx);
	int done = s.decision[0] != '\0';
	pthread_mutex_unlock(&s.mtx);
	return done;
}

Test(sdkops, counters_and_log_lines_of_a_participant_with_its_resolver)
{
	static const dtx_method_ops ops = {cb, cb, cb, cb, cb};
	char                        dir[DTXT_PATH_MAX + 8], url[DTXT_PATH_MAX];
	dtx_participant_stats       st;
	dtx_participant            *p;
	rocksdb_options_t          *o   = rocksdb_options_create();
	char                       *err = NULL;
	rocksdb_t                  *db;
	nng_socket                  raw;
	dtxt_logline                l;

	CHECK(dtxt_world_start_dtxd(&w, NULL) == 0, "dtxd did not start");
	snprintf(dir, sizeof(dir), "%s/pdb", w.dir);
	snprintf(url, sizeof(url), "ipc://%s/part", w.dir);
	rocksdb_options_set_create_if_missing(o, 1);
	db = rocksdb_open(o, dir, &err);
	rocksdb_options_destroy(o);
	CHECK(err == NULL, "rocksdb_open: %s", err);

	dtx_set_log_level(DTX_LOG_INFO);
	dtx_set_log_handler(collect, &s);
	CHECK_RV(dtx_participant_open(&p));
	CHECK_RV(dtx_participant_register(p, "op", &ops, NULL));
	CHECK_RV(dtx_participant_use_barrier(p, db, NULL));
	CHECK_RV(dtx_participant_set_resolver(p, w.url, 100));
	CHECK_RV(dtx_participant_listen(p, url));
	raw = dtxt_raw_open(url);

	// A prepare and its duplicate (replayed), a null abort and the late
	// prepare it refuses, and a prepare dtxd never heard of (in doubt).
	CHECK(dtxt_raw_call(raw, "g1", 0, DTX_PHASE_PREPARE, "").status ==
	    DTX_BRANCH_OK);
	CHECK(dtxt_raw_call(raw, "g1", 0, DTX_PHASE_PREPARE, "").status ==
	    DTX_BRANCH_OK);
	CHECK(dtxt_raw_call(raw, "g2", 0, DTX_PHASE_ABORT, "").status ==
	    DTX_BRANCH_OK);
	CHECK(dtxt_raw_call(raw, "g2", 0, DTX_PHASE_PREPARE, "").status ==
	    DTX_BRANCH_REFUSED);
	CHECK(dtxt_raw_call(raw, "g3", 0, DTX_PHASE_PREPARE, "").status ==
	    DTX_BRANCH_OK);
	// dtxd knows neither g1 nor g3: presumed abort. The resolver aborts
	// both, and says so.
	CHECK(dtxt_wait_until(decided, NULL, 20, 20000) == 0,
	    "no resolver decision logged");
	CHECK_RV(dtx_participant_stats_get(p, &st));
	CHECK(st.calls[DTX_PHASE_PREPARE][DTX_BRANCH_OK] == 3 &&
	        st.calls[DTX_PHASE_PREPARE][DTX_BRANCH_REFUSED] == 1 &&
	        st.calls[DTX_PHASE_ABORT][DTX_BRANCH_OK] == 1,
	    "calls: prepare ok %llu refused %llu, abort ok %llu",
	    (unsigned long long)st.calls[DTX_PHASE_PREPARE][DTX_BRANCH_OK],
	    (unsigned long long)
	        st.calls[DTX_PHASE_PREPARE][DTX_BRANCH_REFUSED],
	    (unsigned long long)st.calls[DTX_PHASE_ABORT][DTX_BRANCH_OK]);
	CHECK(st.replays == 1 && st.null_ops == 1 && st.hanging == 1,
	    "replays %llu null %llu hanging %llu",
	    (unsigned long long)st.replays, (unsigned long long)st.null_ops,
	    (unsigned long long)st.hanging);
	CHECK(st.resolve_asks >= 1 && st.resolve_aborts >= 1 &&
	        st.resolve_commits == 0,
	    "resolver asks %llu aborts %llu commits %llu",
	    (unsigned long long)st.resolve_asks,
	    (unsigned long long)st.resolve_aborts,
	    (unsigned long long)st.resolve_commits);
	pthread_mutex_lock(&s.mtx);
	CHECK(dtxt_logline_parse(s.decision, &l) == 0, "%s", s.decision);
	pthread_mutex_unlock(&s.mtx);
	CHECK(strcmp(dtxt_logline_get(&l, "answer"), "ABORTED") == 0 &&
	        strcmp(dtxt_logline_get(&l, "action"), "ABORT") == 0 &&
	        strcmp(dtxt_logline_get(&l, "branch"), "0") == 0 &&
	        strcmp(dtxt_logline_get(&l, "result"), "done") == 0,
	    "resolver_decision: %s", s.decision);
	// Calls without a traceparent show "" to the callback.
	CHECK(s.ntraces > 0 && strcmp(s.traces[0], "") == 0,
	    "traceparent '%s'", s.traces[0]);

	dtx_set_log_handler(NULL, NULL);
	nng_close(raw);
	dtx_participant_close(p);
	rocksdb_close(db);
}

Test(sdkops, refused_calls_say_why_on_their_object)
{
	static const dtx_method_ops ops = {cb, cb, cb, cb, cb};
	dtx_participant            *p;
	dtx_client                 *c;
	dtx_tx                     *tx;

	CHECK_RV(dtx_participant_open(&p));
	CHECK(dtx_participant_register(p, "a b", &ops, NULL) == DTX_EINVAL,
	    "a method name with a space");
	CHECK(strstr(dtx_participant_message(p), "printable") != NULL, "%s",
	    dtx_participant_message(p));
	CHECK_RV(dtx_participant_register(p, "op", &ops, NULL));
	CHECK(dtx_participant_register(p, "op", &ops, NULL) == DTX_EEXIST,
	    "registered twice");
	CHECK(strstr(dtx_participant_message(p), "op is already registered"),
	    "%s", dtx_participant_message(p));
	CHECK(strstr(dtx_strerror(DTX_EEXIST), "name") != NULL, "%s",
	    dtx_strerror(DTX_EEXIST));
	dtx_participant_close(p);

	CHECK_RV(dtx_client_open(&c, "tcp://127.0.0.1:1"));
	CHECK_RV(dtx_tx_begin(&tx, c, DTX_2PC));
	CHECK(dtx_tx_add(tx, "tcp://127.0.0.1:2", "a b", "", 0) == DTX_EINVAL,
	    "a branch method with a space");
	CHECK(strstr(dtx_tx_message(tx), "without spaces"), "%s",
	    dtx_tx_message(tx));
	CHECK(dtx_tx_add(tx, "not a url", "op", "", 0) == DTX_EINVAL, "url");
	CHECK(
	    strstr(dtx_tx_message(tx), "endpoint"), "%s", dtx_tx_message(tx));
	CHECK(dtx_tx_set_gid(tx, "g with space") == DTX_EINVAL, "gid");
	CHECK(strstr(dtx_tx_message(tx), "gid"), "%s", dtx_tx_message(tx));
	CHECK(dtx_tx_set_traceparent(tx,
	          "00-00000000000000000000000000000000-00f067aa0ba902b7-01") ==
	        DTX_EINVAL,
	    "an all-zero trace id");
	CHECK(strstr(dtx_tx_message(tx), "trace id is all zero"), "%s",
	    dtx_tx_message(tx));
	CHECK_RV(dtx_tx_set_traceparent(
	    tx, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
	CHECK(strcmp(dtx_tx_traceparent(tx),
	          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") ==
	        0,
	    "%s", dtx_tx_traceparent(tx));
	dtx_tx_free(tx);
	dtx_client_close(c);
}
