// SPDX-License-Identifier: MIT
//
// barrier: the SDK's durable barrier in one process. A participant with a
// RocksDB store of its own serves over inproc; a raw REQ socket that speaks
// the wire protocol through the codec plays dtxd, so every call can be
// delivered twice, late or out of order at will. The callback counts its
// runs and stages a business write in the barrier's batch; the tests read
// the counters, the replies and the store.

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "rawcall.h"

// What the callbacks saw, shared with the test.
typedef struct seen {
	atomic_uint runs[6];      // per dtx_phase
	atomic_uint retries_left; // "retry-once": dtxt_answer RETRY while > 0
	atomic_uint in_callback;  // callbacks running right now
	atomic_uint overlap;      // times two ran at once for one branch
	atomic_bool had_batch;    // dtx_reply_writebatch was not NULL
} seen;

typedef struct fixture {
	char             dir[256];
	char             url[64];
	rocksdb_t       *db;
	dtx_participant *p;
	seen             s;
} fixture;

static fixture F;

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

// The one callback: the payload says what to do ("ok", "refuse",
// "retry-once", "slow"). It stages "biz/<gid>/<branch>/<phase>" in the
// barrier's batch and answers "ran <n>" with payload "r<n>", n being its
// run count for the phase, so a replay is told apart from a second run.
static dtx_result
cb(const dtx_call *call, dtx_reply *reply, void *arg)
{
	seen                 *s  = arg;
	rocksdb_writebatch_t *wb = dtx_reply_writebatch(reply);
	char                  text[64], key[256], out[32];
	size_t     n = call->payload_len < sizeof(text) - 1 ? call->payload_len
	                                                    : sizeof(text) - 1;
	unsigned   run;
	dtx_result res = DTX_OK;

	memcpy(text, call->payload != NULL ? call->payload : "", n);
	text[n] = '\0';
	if (atomic_fetch_add(&s->in_callback, 1) > 0) {
		atomic_fetch_add(&s->overlap, 1);
	}
	run = atomic_fetch_add(&s->runs[call->phase], 1) + 1;
	if (wb != NULL) {
		atomic_store(&s->had_batch, true);
		snprintf(key, sizeof(key), "biz/%s/%u/%s", call->gid,
		    (unsigned)call->branch_id, dtx_phase_name(call->phase));
		rocksdb_writebatch_put(wb, key, strlen(key), "x", 1);
	}
	if (strcmp(text, "slow") == 0) {
		sleep_ms(20);
	} else if (strcmp(text, "refuse") == 0) {
		res = DTX_REFUSED;
	} else if (strcmp(text, "retry-once") == 0) {
		unsigned left = atomic_load(&s->retries_left);
		while (left > 0 &&
		    !atomic_compare_exchange_weak(
		        &s->retries_left, &left, left - 1)) {
		}
		if (left > 0) {
			res = DTX_RETRY;
		}
	}
	atomic_fetch_sub(&s->in_callback, 1);
	snprintf(out, sizeof(out), "ran %u", run);
	dtx_reply_set_message(reply, out);
	snprintf(out, sizeof(out), "r%u", run);
	dtx_reply_set_payload(reply, out, strlen(out));
	return res;
}

static rocksdb_t *
open_db(const char *dir)
{
	rocksdb_options_t *o   = rocksdb_options_create();
	char              *err = NULL;
	rocksdb_t         *db;

	rocksdb_options_set_create_if_missing(o, 1);
	db = rocksdb_open(o, dir, &err);
	rocksdb_options_destroy(o);
	cr_assert_null(err, "rocksdb_open: %s", err);
	return db;
}

static void
start_resolving(int64_t retention_ms, unsigned workers, const char *coord,
    uint32_t after_ms)
{
	static const dtx_method_ops ops = {cb, cb, cb, cb, cb};
	dtx_barrier_opts            o   = {.retention_ms = retention_ms};

	snprintf(F.dir, sizeof(F.dir), "/tmp/dtx-barrier-unit.XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	snprintf(F.url, sizeof(F.url), "inproc://barrier-%d", (int)getpid());
	F.db = open_db(F.dir);
	atomic_store(&F.s.retries_left, 1);
	cr_assert_eq(dtx_participant_open(&F.p), 0);
	cr_assert_eq(dtx_participant_set_workers(F.p, workers), 0);
	cr_assert_eq(dtx_participant_register(F.p, "op", &ops, &F.s), 0);
	cr_assert_eq(dtx_participant_use_barrier(F.p, F.db, &o), 0);
	if (coord != NULL) {
		cr_assert_eq(
		    dtx_participant_set_resolver(F.p, coord, after_ms), 0);
	}
	cr_assert_eq(dtx_participant_listen(F.p, F.url), 0);
}

static void
start(int64_t retention_ms, unsigned workers)
{
	start_resolving(retention_ms, workers, NULL, 0);
}

static void
stop(void)
{
	char cmd[300];

	dtx_participant_close(F.p);
	F.p = NULL;
	if (F.db != NULL) {
		rocksdb_close(F.db);
		F.db = NULL;
	}
	if (F.dir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", F.dir);
		cr_expect_eq(system(cmd), 0);
	}
}

static nng_socket
raw_open(void)
{
	return dtxt_raw_open(F.url);
}

static bool
db_has(const char *key)
{
	rocksdb_readoptions_t *ro  = rocksdb_readoptions_create();
	char                  *err = NULL;
	size_t                 len;
	char *v = rocksdb_get(F.db, ro, key, strlen(key), &len, &err);

	rocksdb_readoptions_destroy(ro);
	cr_assert_null(err);
	if (v != NULL) {
		rocksdb_free(v);
		return true;
	}
	return false;
}

// Number of keys that start with prefix.
static unsigned
db_count(const char *prefix)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t    *it = rocksdb_create_iterator(F.db, ro);
	unsigned               n  = 0;
	size_t                 pl = strlen(prefix);

	for (rocksdb_iter_seek(it, prefix, pl); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t      klen;
		const char *k = rocksdb_iter_key(it, &klen);
		if (klen < pl || memcmp(k, prefix, pl) != 0) {
			break;
		}
		n++;
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return n;
}

static unsigned
runs(dtx_phase ph)
{
	return atomic_load(&F.s.runs[ph]);
}

static void
nolock(void *arg)
{
	(void)arg;
}

TestSuite(barrier, .fini = stop, .timeout = 120);

Test(barrier, duplicate_call_replays_the_first_reply_without_running_again)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a = dtxt_raw_call(s, "g1", 1, DTX_PHASE_PREPARE, "ok");

	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 1");
	cr_assert_str_eq(a.payload, "r1");
	cr_assert(atomic_load(&F.s.had_batch));
	cr_assert(db_has("biz/g1/1/PREPARE"), "business write not stored");
	for (int i = 0; i < 3; i++) {
		a = dtxt_raw_call(s, "g1", 1, DTX_PHASE_PREPARE, "ok");
		cr_assert_eq(a.status, DTX_BRANCH_OK);
		cr_assert_str_eq(a.message, "ran 1");
		cr_assert_str_eq(a.payload, "r1");
	}
	cr_assert_eq(runs(DTX_PHASE_PREPARE), 1);

	// Each phase and each branch has its own record.
	a = dtxt_raw_call(s, "g1", 2, DTX_PHASE_PREPARE, "ok");
	cr_assert_str_eq(a.message, "ran 2");
	a = dtxt_raw_call(s, "g1", 1, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(s, "g1", 1, DTX_PHASE_COMMIT, "ok");
	cr_assert_str_eq(a.message, "ran 1");
	cr_assert_eq(runs(DTX_PHASE_COMMIT), 1);
	cr_assert_eq(runs(DTX_PHASE_PREPARE), 2);

	// Seven calls, replays included; each answer waited for a sync
	// covering what it read or wrote, and one sync may cover several.
	dtx_barrier_stats st;
	cr_assert_eq(dtx_participant_barrier_stats(F.p, &st), 0);
	cr_assert_eq(st.calls, 7);
	cr_assert(st.syncs >= 1 && st.syncs <= st.calls, "%llu syncs",
	    (unsigned long long)st.syncs);
	nng_close(s);
}

Test(barrier, refused_prepare_is_replayed_and_its_abort_is_null)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a = dtxt_raw_call(s, "g2", 0, DTX_PHASE_PREPARE, "refuse");

	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert_str_eq(a.message, "ran 1");
	a = dtxt_raw_call(s, "g2", 0, DTX_PHASE_PREPARE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED, "the first reply counts");
	cr_assert_str_eq(a.payload, "r1");
	a = dtxt_raw_call(s, "g2", 0, DTX_PHASE_ABORT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert(strstr(a.message, "null abort") != NULL, "%s", a.message);
	cr_assert_eq(runs(DTX_PHASE_PREPARE), 1);
	cr_assert_eq(runs(DTX_PHASE_ABORT), 0);
	nng_close(s);
}

Test(barrier, retry_stores_nothing_and_the_next_delivery_runs_again)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a =
	    dtxt_raw_call(s, "g3", 0, DTX_PHASE_EXECUTE, "retry-once");

	cr_assert_eq(a.status, DTX_BRANCH_RETRY);
	cr_assert_not(
	    db_has("biz/g3/0/EXECUTE"), "a RETRY's batch was written");
	a = dtxt_raw_call(s, "g3", 0, DTX_PHASE_EXECUTE, "retry-once");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 2");
	cr_assert(db_has("biz/g3/0/EXECUTE"));
	a = dtxt_raw_call(s, "g3", 0, DTX_PHASE_EXECUTE, "retry-once");
	cr_assert_str_eq(a.message, "ran 2");
	cr_assert_eq(runs(DTX_PHASE_EXECUTE), 2);
	nng_close(s);
}

Test(barrier, null_abort_is_recorded_and_a_late_prepare_is_refused)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a = dtxt_raw_call(s, "g4", 3, DTX_PHASE_ABORT, "ok");

	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert(strstr(a.message, "null abort") != NULL, "%s", a.message);
	cr_assert_eq(runs(DTX_PHASE_ABORT), 0);
	a = dtxt_raw_call(s, "g4", 3, DTX_PHASE_PREPARE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert(strstr(a.message, "aborted") != NULL, "%s", a.message);
	a = dtxt_raw_call(s, "g4", 3, DTX_PHASE_PREPARE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert_eq(runs(DTX_PHASE_PREPARE), 0, "hanging reservation");
	cr_assert_not(db_has("biz/g4/3/PREPARE"));
	a = dtxt_raw_call(s, "g4", 3, DTX_PHASE_ABORT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_eq(runs(DTX_PHASE_ABORT), 0);
	nng_close(s);
}

Test(barrier, null_compensation_is_recorded_and_a_late_execute_is_refused)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a = dtxt_raw_call(s, "g5", 0, DTX_PHASE_COMPENSATE, "ok");

	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert(
	    strstr(a.message, "null compensation") != NULL, "%s", a.message);
	a = dtxt_raw_call(s, "g5", 0, DTX_PHASE_EXECUTE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert(strstr(a.message, "compensated") != NULL, "%s", a.message);
	cr_assert_eq(runs(DTX_PHASE_EXECUTE), 0);
	cr_assert_eq(runs(DTX_PHASE_COMPENSATE), 0);

	// A compensation after a real execute runs once.
	a = dtxt_raw_call(s, "g5", 1, DTX_PHASE_EXECUTE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(s, "g5", 1, DTX_PHASE_COMPENSATE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 1");
	a = dtxt_raw_call(s, "g5", 1, DTX_PHASE_COMPENSATE, "ok");
	cr_assert_str_eq(a.message, "ran 1");
	cr_assert_eq(runs(DTX_PHASE_COMPENSATE), 1);
	cr_assert(db_has("biz/g5/1/COMPENSATE"));
	nng_close(s);
}

// Finding 3 of the protocol model (tests/model): a duplicate prepare or
// execute that arrives after its branch was undone must not replay its OK.
Test(barrier, forward_ok_is_not_replayed_once_its_branch_was_undone)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a = dtxt_raw_call(s, "g10", 0, DTX_PHASE_PREPARE, "ok");

	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(s, "g10", 0, DTX_PHASE_ABORT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 1");
	for (int i = 0; i < 2; i++) {
		a = dtxt_raw_call(s, "g10", 0, DTX_PHASE_PREPARE, "ok");
		cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
		cr_assert(strstr(a.message,
		              "aborted here after this prepare") != NULL,
		    "%s", a.message);
	}
	cr_assert_eq(runs(DTX_PHASE_PREPARE), 1);
	// The undo itself still replays, and a commit is still refused.
	a = dtxt_raw_call(s, "g10", 0, DTX_PHASE_ABORT, "ok");
	cr_assert_str_eq(a.message, "ran 1");
	a = dtxt_raw_call(s, "g10", 0, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);

	a = dtxt_raw_call(s, "g10", 1, DTX_PHASE_EXECUTE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(s, "g10", 1, DTX_PHASE_COMPENSATE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(s, "g10", 1, DTX_PHASE_EXECUTE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert(
	    strstr(a.message, "compensated here after this execute") != NULL,
	    "%s", a.message);
	cr_assert_eq(runs(DTX_PHASE_EXECUTE), 1);
	cr_assert_eq(runs(DTX_PHASE_COMPENSATE), 1);

	// A prepare committed here replays its OK as before.
	a = dtxt_raw_call(s, "g10", 2, DTX_PHASE_PREPARE, "ok");
	a = dtxt_raw_call(s, "g10", 2, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(s, "g10", 2, DTX_PHASE_PREPARE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 2");
	nng_close(s);
}

Test(barrier, protocol_violations_are_refused_without_running_the_callback)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a;

	// Commit of a branch never prepared.
	a = dtxt_raw_call(s, "g6", 0, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert(strstr(a.message, "not prepared") != NULL, "%s", a.message);
	// Commit after abort.
	a = dtxt_raw_call(s, "g6", 1, DTX_PHASE_PREPARE, "ok");
	a = dtxt_raw_call(s, "g6", 1, DTX_PHASE_ABORT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 1");
	a = dtxt_raw_call(s, "g6", 1, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert(strstr(a.message, "aborted") != NULL, "%s", a.message);
	// Abort after commit.
	a = dtxt_raw_call(s, "g6", 2, DTX_PHASE_PREPARE, "ok");
	a = dtxt_raw_call(s, "g6", 2, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(s, "g6", 2, DTX_PHASE_ABORT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert(strstr(a.message, "committed") != NULL, "%s", a.message);
	cr_assert_eq(runs(DTX_PHASE_COMMIT), 1);
	cr_assert_eq(runs(DTX_PHASE_ABORT), 1);
	nng_close(s);
}

Test(barrier, refused_commit_is_not_recorded_so_dtxd_can_retry_it)
{
	start(0, 4);
	nng_socket  s = raw_open();
	dtxt_answer a = dtxt_raw_call(s, "g7", 0, DTX_PHASE_PREPARE, "ok");

	a = dtxt_raw_call(s, "g7", 0, DTX_PHASE_COMMIT, "refuse");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);
	cr_assert_not(db_has("biz/g7/0/COMMIT"));
	a = dtxt_raw_call(s, "g7", 0, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 2");
	cr_assert(db_has("biz/g7/0/COMMIT"));
	nng_close(s);
}

// Many threads deliver the same call at once, each on its own socket, so
// that the participant's workers really run them side by side. The
// callback is slow, which widens any read-then-write window.
#define THREADS 16
#define ROUNDS  12

typedef struct racer {
	nng_socket         s;
	int                round;
	dtxt_answer        a;
	pthread_barrier_t *go;
} racer;

static void *
race(void *arg)
{
	racer *r = arg;
	char   gid[32];

	snprintf(gid, sizeof(gid), "race-%d", r->round);
	pthread_barrier_wait(r->go);
	r->a = dtxt_raw_call(r->s, gid, 0,
	    r->round % 2 == 0 ? DTX_PHASE_PREPARE : DTX_PHASE_EXECUTE, "slow");
	return NULL;
}

Test(barrier, concurrent_duplicates_run_the_callback_at_most_once)
{
	racer             r[THREADS];
	pthread_t         t[THREADS];
	pthread_barrier_t go;

	start(0, THREADS);
	for (int i = 0; i < THREADS; i++) {
		r[i].s = raw_open();
	}
	for (int round = 0; round < ROUNDS; round++) {
		cr_assert_eq(pthread_barrier_init(&go, NULL, THREADS), 0);
		for (int i = 0; i < THREADS; i++) {
			r[i].round = round;
			r[i].go    = &go;
			cr_assert_eq(
			    pthread_create(&t[i], NULL, race, &r[i]), 0);
		}
		for (int i = 0; i < THREADS; i++) {
			pthread_join(t[i], NULL);
		}
		pthread_barrier_destroy(&go);
		for (int i = 0; i < THREADS; i++) {
			cr_assert_eq(r[i].a.status, DTX_BRANCH_OK);
			cr_assert_str_eq(r[i].a.payload, r[0].a.payload,
			    "round %d: thread %d got another reply", round, i);
		}
	}
	cr_assert_eq(runs(DTX_PHASE_PREPARE) + runs(DTX_PHASE_EXECUTE), ROUNDS,
	    "callbacks ran %u times for %d distinct calls",
	    runs(DTX_PHASE_PREPARE) + runs(DTX_PHASE_EXECUTE), ROUNDS);
	cr_assert_eq(atomic_load(&F.s.overlap), 0);
	for (int i = 0; i < THREADS; i++) {
		nng_close(r[i].s);
	}
}

Test(barrier, records_are_purged_after_retention_but_undecided_prepares_stay)
{
	nng_socket  s;
	dtxt_answer a;
	int         waited = 0;

	start(300, 4);
	s = raw_open();
	a = dtxt_raw_call(s, "g8", 0, DTX_PHASE_EXECUTE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	a = dtxt_raw_call(
	    s, "g8", 1, DTX_PHASE_PREPARE, "ok"); // never decided
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_gt(db_count("dtx/"), 0);
	// The execute's record goes; the undecided prepare's stays, with
	// its prepared key and time entry: three keys.
	while (db_count("dtx/") != 3 && waited < 30000) {
		sleep_ms(50);
		waited += 50;
	}
	cr_assert_eq(
	    db_count("dtx/"), 3, "barrier keys left: %u", db_count("dtx/"));
	a = dtxt_raw_call(s, "g8", 1, DTX_PHASE_PREPARE, "ok");
	cr_assert_str_eq(a.message, "ran 1", "undecided prepare ran again");
	// Past retention a duplicate is not recognised any more.
	a = dtxt_raw_call(s, "g8", 0, DTX_PHASE_EXECUTE, "ok");
	cr_assert_str_eq(a.message, "ran 2");
	cr_assert_eq(runs(DTX_PHASE_EXECUTE), 2);

	// Once decided, the prepare is purged too.
	a = dtxt_raw_call(s, "g8", 1, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	waited = 0;
	while (db_count("dtx/") != 0 && waited < 30000) {
		sleep_ms(50);
		waited += 50;
	}
	cr_assert_eq(
	    db_count("dtx/"), 0, "barrier keys left: %u", db_count("dtx/"));
	nng_close(s);
}

Test(barrier, api_checks_arguments_and_state)
{
	dtx_participant  *p;
	dtx_barrier_stats st;
	dtx_barrier_opts  bad         = {.retention_ms = -1};
	dtx_barrier_opts  half        = {.lock = nolock};
	dtx_barrier_opts  long_prefix = {
	     .prefix = "0123456789012345678901234567890123456789012345678901"
	                "23456789012345"};

	snprintf(F.dir, sizeof(F.dir), "/tmp/dtx-barrier-unit.XXXXXX");
	cr_assert_not_null(mkdtemp(F.dir));
	F.db = open_db(F.dir);
	cr_assert_null(dtx_reply_writebatch(NULL));
	cr_assert_eq(dtx_participant_open(&p), 0);
	cr_assert_eq(dtx_participant_barrier_stats(p, &st), DTX_ESTATE,
	    "no barrier, no counters");
	cr_assert_eq(dtx_participant_barrier_stats(NULL, &st), DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_use_barrier(NULL, F.db, NULL), DTX_EINVAL);
	cr_assert_eq(dtx_participant_use_barrier(p, NULL, NULL), DTX_EINVAL);
	cr_assert_eq(dtx_participant_use_barrier(p, F.db, &bad), DTX_EINVAL);
	cr_assert_eq(dtx_participant_use_barrier(p, F.db, &half), DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_use_barrier(p, F.db, &long_prefix), DTX_EINVAL);
	cr_assert_eq(dtx_participant_set_resolver(p, "tcp://127.0.0.1:1", 100),
	    DTX_ESTATE, "a resolver needs the barrier");
	cr_assert_eq(dtx_participant_use_barrier(p, F.db, NULL), 0);
	cr_assert_eq(dtx_participant_use_barrier(p, F.db, NULL), DTX_ESTATE);
	cr_assert_eq(dtx_participant_barrier_stats(p, NULL), DTX_EINVAL);
	cr_assert_eq(dtx_participant_barrier_stats(p, &st), 0);
	cr_assert(st.calls == 0 && st.syncs == 0);
	cr_assert_eq(dtx_participant_set_resolver(p, NULL, 100), DTX_EINVAL);
	cr_assert_eq(dtx_participant_set_resolver(p, "tcp://127.0.0.1:1", 0),
	    DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_set_resolver(p, "tcp://127.0.0.1:1", 100), 0);
	cr_assert_eq(dtx_participant_listen(p, "inproc://barrier-api"), 0);
	cr_assert_eq(dtx_participant_set_resolver(p, "tcp://127.0.0.1:1", 100),
	    DTX_ESTATE);
	dtx_participant_close(p);

	// Without the barrier, a callback gets no batch.
	{
		static const dtx_method_ops ops = {cb, cb, cb, cb, cb};
		nng_socket                  s;
		dtxt_answer                 a;

		snprintf(F.url, sizeof(F.url), "inproc://barrier-plain");
		cr_assert_eq(dtx_participant_open(&F.p), 0);
		cr_assert_eq(
		    dtx_participant_register(F.p, "op", &ops, &F.s), 0);
		cr_assert_eq(dtx_participant_listen(F.p, F.url), 0);
		s = raw_open();
		a = dtxt_raw_call(s, "g9", 0, DTX_PHASE_PREPARE, "ok");
		cr_assert_eq(a.status, DTX_BRANCH_OK);
		cr_assert_not(atomic_load(&F.s.had_batch));
		nng_close(s);
	}
}

// A coordinator that answers every Resolve with the state the test sets,
// and counts the questions.
typedef struct fakecoord {
	nng_socket  s;
	pthread_t   thread;
	atomic_int  state;
	atomic_uint asked;
	atomic_bool stop;
} fakecoord;

static void *
fake_main(void *arg)
{
	fakecoord    *fc  = arg;
	dtxi_request *req = calloc(1, sizeof(*req));
	dtxi_reply   *rep = calloc(1, sizeof(*rep));

	while (!atomic_load(&fc->stop)) {
		nng_msg *m;
		size_t   len;
		char     why[DTX_MESSAGE_MAX + 1];

		if (nng_recvmsg(fc->s, &m, 0) != 0) {
			continue; // the receive timeout: look at stop again
		}
		memset(rep, 0, sizeof(*rep));
		rep->version = DTX_PROTOCOL_VERSION;
		if (dtxi_request_decode(req, nng_msg_body(m), nng_msg_len(m),
		        SIZE_MAX, SIZE_MAX, why) == 0 &&
		    req->kind == DTXI_REQ_RESOLVE) {
			rep->kind            = DTXI_REP_RESOLVE;
			rep->u.resolve.state = atomic_load(&fc->state);
			atomic_fetch_add(&fc->asked, 1);
		} else {
			rep->code = DTX_EUNSUPPORTED;
		}
		nng_msg_free(m);
		if (dtxi_reply_encode(rep, NULL, 0, &len) != 0 ||
		    nng_msg_alloc(&m, len) != 0) {
			continue;
		}
		if (dtxi_reply_encode(rep, nng_msg_body(m), len, &len) != 0 ||
		    nng_sendmsg(fc->s, m, 0) != 0) {
			nng_msg_free(m);
		}
	}
	free(req);
	free(rep);
	return NULL;
}

// Waits until the resolver asked n more times, so it surely saw the state.
// False when it stopped asking (it has nothing in doubt any more).
static bool
wait_asked(fakecoord *fc, unsigned n)
{
	unsigned from = atomic_load(&fc->asked);

	for (int waited = 0;
	     atomic_load(&fc->asked) < from + n && waited < 10000;
	     waited += 10) {
		sleep_ms(10);
	}
	return atomic_load(&fc->asked) >= from + n;
}

Test(barrier, resolver_acts_only_on_answers_that_cannot_change)
{
	fakecoord   fc;
	char        url[64];
	dtxt_answer a;
	nng_socket  s;

	snprintf(url, sizeof(url), "inproc://coord-%d", (int)getpid());
	atomic_init(&fc.state, DTX_STATE_PREPARING);
	atomic_init(&fc.asked, 0);
	atomic_init(&fc.stop, false);
	cr_assert_eq(nng_rep0_open(&fc.s), 0);
	cr_assert_eq(nng_socket_set_ms(fc.s, NNG_OPT_RECVTIMEO, 50), 0);
	cr_assert_eq(nng_listen(fc.s, url, NULL, 0), 0);
	cr_assert_eq(pthread_create(&fc.thread, NULL, fake_main, &fc), 0);

	start_resolving(0, 4, url, 100);
	s = raw_open();
	a = dtxt_raw_call(s, "doubt", 0, DTX_PHASE_PREPARE, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);

	// Undecided: the branch stays held.
	cr_assert(wait_asked(&fc, 3), "the resolver never asked");
	cr_assert_eq(runs(DTX_PHASE_COMMIT) + runs(DTX_PHASE_ABORT), 0,
	    "the resolver settled an undecided branch");

	// Presumed abort: the resolver aborts it itself, once.
	atomic_store(&fc.state, DTX_STATE_ABORTED);
	for (int waited = 0; runs(DTX_PHASE_ABORT) == 0 && waited < 30000;
	     waited += 10) {
		sleep_ms(10);
	}
	cr_assert_eq(runs(DTX_PHASE_ABORT), 1);
	a = dtxt_raw_call(s, "doubt", 0, DTX_PHASE_ABORT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_OK);
	cr_assert_str_eq(a.message, "ran 1", "dtxd's abort was not replayed");
	a = dtxt_raw_call(s, "doubt", 0, DTX_PHASE_COMMIT, "ok");
	cr_assert_eq(a.status, DTX_BRANCH_REFUSED);

	// COMMITTING (dtxd answers it only once the decision is synced) and
	// COMMITTED are final too: the resolver commits on each.
	a = dtxt_raw_call(s, "doubt", 1, DTX_PHASE_PREPARE, "ok");
	atomic_store(&fc.state, DTX_STATE_COMMITTING);
	// The callback counts before its batch is written: wait for the
	// write.
	for (int waited = 0; !db_has("biz/doubt/1/COMMIT") && waited < 30000;
	     waited += 10) {
		sleep_ms(10);
	}
	cr_assert(db_has("biz/doubt/1/COMMIT"), "not committed on COMMITTING");
	cr_assert_eq(runs(DTX_PHASE_COMMIT), 1);
	a = dtxt_raw_call(s, "doubt", 2, DTX_PHASE_PREPARE, "ok");
	atomic_store(&fc.state, DTX_STATE_COMMITTED);
	for (int waited = 0; !db_has("biz/doubt/2/COMMIT") && waited < 30000;
	     waited += 10) {
		sleep_ms(10);
	}
	cr_assert(db_has("biz/doubt/2/COMMIT"), "not committed on COMMITTED");
	cr_assert_eq(runs(DTX_PHASE_COMMIT), 2);
	nng_close(s);

	dtx_participant_close(F.p);
	F.p = NULL;
	atomic_store(&fc.stop, true);
	pthread_join(fc.thread, NULL);
	nng_close(fc.s);
}
