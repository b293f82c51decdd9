// SPDX-License-Identifier: MIT
//
// dtx.integration.barrier: libdtx's durable barrier in real participant
// processes. dtx-testpart runs with --store DIR --barrier; a raw REQ socket
// that speaks the wire protocol plays dtxd when a test needs to deliver a
// call twice, late or out of order, and a real dtxd drives the crash and
// in-doubt scenarios. Every proof comes from the participant's own store
// (dtx-testpart --dump: how often each callback's batch was committed, and
// the effect), which commits atomically with the barrier's record, and from
// its call log (every run of a callback, including runs lost in a crash).

#include <criterion/criterion.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "harness.h"
#include "rawcall.h"
#include "strs.h"
#include "world_suite.h"

TestSuite(
    barrier, .init = world_setup, .fini = world_teardown, .timeout = 120);

// A barrier participant: a world participant plus its store.
typedef struct bpart {
	dtxt_part *p;
	char       store[DTXT_PATH_MAX];
} bpart;

static bpart
bpart_new(const char *name)
{
	bpart b;

	b.p = dtxt_world_part(&w, name);
	cr_assert_not_null(b.p);
	snprintf(b.store, sizeof(b.store), "%s/%s.store", w.dir, name);
	return b;
}

// Starts b with the barrier, env (NULL-terminated, may be NULL) and extra
// arguments (NULL-terminated, may be NULL); returns 0 once it listens.
static int
bpart_start(bpart *b, char *const env[], const char *const extra[])
{
	char *argv[32];
	int   n = 0;

	argv[n++] = (char *)dtxt_testpart_bin();
	argv[n++] = "--listen";
	argv[n++] = b->p->url;
	argv[n++] = "--log";
	argv[n++] = b->p->calllog;
	argv[n++] = "--name";
	argv[n++] = b->p->name;
	argv[n++] = "--workers";
	argv[n++] = "16";
	argv[n++] = "--store";
	argv[n++] = b->store;
	argv[n++] = "--barrier";
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 30; i++) {
		argv[n++] = (char *)extra[i];
	}
	argv[n]    = NULL;
	b->p->proc = dtxt_spawn(b->p->name, argv, env, b->p->outlog);
	if (b->p->proc == NULL) {
		return -1;
	}
	return dtxt_wait_tcp(b->p->proc, b->p->url, 10000) == 0 ? 0 : -1;
}

// Stops b cleanly (SIGTERM), as an operator restart would.
static void
bpart_stop(bpart *b)
{
	dtxt_exit how;

	CHECK(dtxt_term(b->p->proc, 10000, &how) == 0 && how.exited &&
	        how.code == 0,
	    "%s did not stop cleanly", b->p->name);
}

// One run of --dump --store: its output (heap) or NULL when it failed.
// popen, not dtxt_spawn: polls run it hundreds of times, and it always ends
// by itself.
static char *
dump_once(const bpart *b)
{
	char   cmd[2 * DTXT_PATH_MAX];
	FILE  *f;
	char  *text = NULL;
	size_t len  = 0;
	size_t cap  = 0;
	char   buf[4096];
	size_t got;

	snprintf(cmd, sizeof(cmd), "'%s' --dump --store '%s'",
	    dtxt_testpart_bin(), b->store);
	f = popen(cmd, "r");
	cr_assert_not_null(f, "cannot run %s", cmd);
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (len + got + 1 > cap) {
			cap  = (len + got + 1) * 2;
			text = realloc(text, cap);
			cr_assert_not_null(text);
		}
		memcpy(text + len, buf, got);
		len += got;
	}
	if (pclose(f) != 0) {
		free(text);
		return NULL;
	}
	if (text == NULL) {
		text = calloc(1, 1);
		cr_assert_not_null(text);
	}
	text[len] = '\0';
	return text;
}

// The participant's store as --dump prints it (heap, free it). A read-only
// open of a store that its participant is writing can fail now and then
// (a file replaced under it): try again a few times.
static char *
dump(const bpart *b)
{
	char *text = NULL;

	for (int i = 0; i < 10 && text == NULL; i++) {
		if ((text = dump_once(b)) == NULL) {
			dtxt_sleep_ms(100);
		}
	}
	cr_assert_not_null(
	    text, "dtx-testpart --dump --store %s failed", b->store);
	return text;
}

// How often the store says the phase's callback took effect for (gid,
// branch): 0 when never.
static unsigned
ran(const bpart *b, const char *phase, const char *gid, unsigned branch)
{
	char    *text = dump(b);
	char     want[DTX_GID_MAX + 64];
	char    *at;
	unsigned n = 0;

	snprintf(want, sizeof(want), "RAN %s %s %u ", phase, gid, branch);
	if ((at = strstr(text, want)) != NULL) {
		n = (unsigned)strtoul(at + strlen(want), NULL, 10);
	}
	free(text);
	return n;
}

// The effect of (gid, branch) in the store: 1 applied, 0 undone, -1 none.
static int
effect(const bpart *b, const char *gid, unsigned branch)
{
	char *text = dump(b);
	char  want[DTX_GID_MAX + 64];
	char *at;
	int   e = -1;

	snprintf(want, sizeof(want), "EFFECT %s %u ", gid, branch);
	if ((at = strstr(text, want)) != NULL) {
		e = atoi(at + strlen(want));
	}
	free(text);
	return e;
}

// For dtxt_wait_until: the callback of phase for (gid, branch 0) took
// effect in b's store.
typedef struct ran_cond {
	const bpart *b;
	const char  *phase;
	const char  *gid;
} ran_cond;

static int
has_run(void *arg)
{
	ran_cond *r = arg;
	return ran(r->b, r->phase, r->gid, 0) > 0;
}

static unsigned long
barrier_keys(const bpart *b)
{
	char         *text = dump(b);
	char         *at   = strstr(text, "BARRIER ");
	unsigned long n    = at != NULL ? strtoul(at + 8, NULL, 10) : 0;

	free(text);
	return n;
}

// For dtxt_wait_until: b's store holds no barrier record.
static int
no_barrier_keys(void *arg)
{
	return barrier_keys(arg) == 0;
}

static size_t
calls(const bpart *b, const char *gid, int branch, const char *phase)
{
	dtxt_log l;
	size_t   n;

	dtxt_log_load(&l, b->p->calllog);
	n = dtxt_log_count(&l, DTXT_CALL, gid, branch, phase, NULL);
	dtxt_log_fini(&l);
	return n;
}

// ---------------------------------------------------------------------------
// A raw REQ socket playing dtxd
// ---------------------------------------------------------------------------

// One delivery on a fresh connection.
static dtxt_answer
deliver1(const bpart *b, const char *gid, uint32_t branch, dtx_phase phase,
    const char *payload)
{
	nng_socket  s = dtxt_raw_open(b->p->url);
	dtxt_answer a = dtxt_raw_call(s, gid, branch, phase, payload);

	nng_close(s);
	return a;
}

// ---------------------------------------------------------------------------
// The three guarantees, across a restart
// ---------------------------------------------------------------------------

Test(barrier, duplicate_delivery_returns_the_first_reply_even_after_restart)
{
	bpart       a = bpart_new("a");
	dtxt_answer r;

	CHECK(bpart_start(&a, NULL, NULL) == 0, "a did not start");
	r = deliver1(&a, "dup", 0, DTX_PHASE_PREPARE, "prepare=refuse");
	CHECK(r.status == DTX_BRANCH_REFUSED, "status %d", r.status);
	CHECK(strcmp(r.payload, "a:PREPARE") == 0, "payload %s", r.payload);
	// The same call again, even with another payload, gets the first
	// reply: the callback does not run.
	r = deliver1(&a, "dup", 0, DTX_PHASE_PREPARE, "prepare=ok");
	CHECK(r.status == DTX_BRANCH_REFUSED, "status %d", r.status);
	CHECK(strcmp(r.message, "REFUSED") == 0, "message %s", r.message);
	r = deliver1(&a, "dup", 1, DTX_PHASE_EXECUTE, "ok");
	CHECK(r.status == DTX_BRANCH_OK, "status %d", r.status);
	bpart_stop(&a);

	CHECK(bpart_start(&a, NULL, NULL) == 0, "a did not restart");
	r = deliver1(&a, "dup", 0, DTX_PHASE_PREPARE, "prepare=ok");
	CHECK(r.status == DTX_BRANCH_REFUSED, "after restart: status %d",
	    r.status);
	r = deliver1(&a, "dup", 1, DTX_PHASE_EXECUTE, "execute=refuse");
	CHECK(r.status == DTX_BRANCH_OK, "after restart: status %d", r.status);
	CHECK(calls(&a, "dup", 0, "PREPARE") == 1, "prepare ran again");
	CHECK(calls(&a, "dup", 1, "EXECUTE") == 1, "execute ran again");
	CHECK(ran(&a, "PREPARE", "dup", 0) == 1);
	CHECK(ran(&a, "EXECUTE", "dup", 1) == 1);
	CHECK(effect(&a, "dup", 1) == 1);
}

Test(barrier, null_compensation_is_recorded_and_a_late_execute_refused)
{
	bpart       a = bpart_new("a");
	dtxt_answer r;

	CHECK(bpart_start(&a, NULL, NULL) == 0, "a did not start");
	r = deliver1(&a, "nullc", 2, DTX_PHASE_COMPENSATE, "ok");
	CHECK(r.status == DTX_BRANCH_OK, "status %d", r.status);
	CHECK(strstr(r.message, "null compensation") != NULL, "message %s",
	    r.message);
	bpart_stop(&a);
	// The fact survives a restart: the late execute is refused.
	CHECK(bpart_start(&a, NULL, NULL) == 0, "a did not restart");
	r = deliver1(&a, "nullc", 2, DTX_PHASE_EXECUTE, "ok");
	CHECK(r.status == DTX_BRANCH_REFUSED, "status %d", r.status);
	CHECK(
	    strstr(r.message, "compensated") != NULL, "message %s", r.message);
	r = deliver1(&a, "nullc", 2, DTX_PHASE_COMPENSATE, "ok");
	CHECK(r.status == DTX_BRANCH_OK, "status %d", r.status);
	CHECK(calls(&a, "nullc", 2, NULL) == 0, "a callback ran");
	CHECK(ran(&a, "EXECUTE", "nullc", 2) == 0);
	CHECK(effect(&a, "nullc", 2) == -1, "an effect was written");
}

Test(barrier, abort_before_prepare_leaves_no_hanging_reservation)
{
	bpart       a = bpart_new("a");
	dtxt_answer r;

	CHECK(bpart_start(&a, NULL, NULL) == 0, "a did not start");
	r = deliver1(&a, "hang", 0, DTX_PHASE_ABORT, "ok");
	CHECK(r.status == DTX_BRANCH_OK, "status %d", r.status);
	CHECK(
	    strstr(r.message, "null abort") != NULL, "message %s", r.message);
	bpart_stop(&a);
	CHECK(bpart_start(&a, NULL, NULL) == 0, "a did not restart");
	r = deliver1(&a, "hang", 0, DTX_PHASE_PREPARE, "ok");
	CHECK(r.status == DTX_BRANCH_REFUSED, "status %d", r.status);
	CHECK(strstr(r.message, "aborted") != NULL, "message %s", r.message);
	r = deliver1(&a, "hang", 0, DTX_PHASE_PREPARE, "ok");
	CHECK(r.status == DTX_BRANCH_REFUSED, "status %d", r.status);
	CHECK(calls(&a, "hang", 0, NULL) == 0, "a callback ran");
	CHECK(ran(&a, "PREPARE", "hang", 0) == 0);
}

// Many threads deliver the same call at once to a participant with 16
// workers; the callback sleeps, which widens any read-then-write window.
#define RACERS 16
#define ROUNDS 8

typedef struct racer {
	const bpart       *b;
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
	r->a =
	    dtxt_raw_call(r->s, gid, 0, DTX_PHASE_PREPARE, "prepare=sleep:30");
	return NULL;
}

Test(barrier, concurrent_duplicates_run_the_callback_once)
{
	bpart             a = bpart_new("a");
	racer             r[RACERS];
	pthread_t         t[RACERS];
	pthread_barrier_t go;

	CHECK(bpart_start(&a, NULL, NULL) == 0, "a did not start");
	for (int i = 0; i < RACERS; i++) {
		r[i].b = &a;
		r[i].s = dtxt_raw_open(a.p->url);
	}
	for (int round = 0; round < ROUNDS; round++) {
		char gid[32];

		cr_assert_eq(pthread_barrier_init(&go, NULL, RACERS), 0);
		for (int i = 0; i < RACERS; i++) {
			r[i].round = round;
			r[i].go    = &go;
			cr_assert_eq(
			    pthread_create(&t[i], NULL, race, &r[i]), 0);
		}
		for (int i = 0; i < RACERS; i++) {
			pthread_join(t[i], NULL);
		}
		pthread_barrier_destroy(&go);
		snprintf(gid, sizeof(gid), "race-%d", round);
		for (int i = 0; i < RACERS; i++) {
			CHECK(r[i].a.status == DTX_BRANCH_OK,
			    "round %d racer %d: status %d", round, i,
			    r[i].a.status);
		}
		CHECK(calls(&a, gid, 0, "PREPARE") == 1,
		    "round %d: the callback ran %zu times", round,
		    calls(&a, gid, 0, "PREPARE"));
		CHECK(ran(&a, "PREPARE", gid, 0) == 1);
	}
	for (int i = 0; i < RACERS; i++) {
		nng_close(r[i].s);
	}
}

Test(barrier, records_are_purged_after_retention)
{
	bpart a = bpart_new("a");
	// Long enough that the first dump surely sees the records, even on
	// a loaded machine under ASan; short enough for a quick test.
	const char *const extra[] = {"--retention-ms", "3000", NULL};
	dtxt_answer       r;

	CHECK(bpart_start(&a, NULL, extra) == 0, "a did not start");
	r = deliver1(&a, "old", 0, DTX_PHASE_PREPARE, "ok");
	CHECK(r.status == DTX_BRANCH_OK, "status %d", r.status);
	r = deliver1(&a, "old", 0, DTX_PHASE_COMMIT, "ok");
	CHECK(r.status == DTX_BRANCH_OK, "status %d", r.status);
	CHECK(barrier_keys(&a) > 0, "no barrier records were written");
	CHECK(dtxt_wait_until(no_barrier_keys, &a, 200, 60000) == 0,
	    "%lu barrier keys left after 60 s", barrier_keys(&a));
	CHECK(effect(&a, "old", 0) == 1, "the purge touched business data");
}

// ---------------------------------------------------------------------------
// Crash points with a real dtxd
// ---------------------------------------------------------------------------

// Runs a 2PC transaction over a (barrier, crashing at point on its pass
// nth) and b (plain); waits for a to die by SIGKILL, restarts it without
// the crash point, and returns the gid once the transaction committed.
static void
crash_and_retry(const char *point, int nth, char *gid, size_t cap)
{
	char           env_crash[96];
	char          *env[]  = {env_crash, "DTX_LOG_LEVEL=debug", NULL};
	char          *env2[] = {"DTX_LOG_LEVEL=debug", NULL};
	dtxt_dtxd_opts o      = {.retries = 50, .timeout_ms = 60000};
	bpart          a      = bpart_new("a");
	dtxt_part     *b      = dtxt_world_part(&w, "b");
	dtxt_exit      how;
	dtx_tx        *tx;
	dtx_state      st = 0;

	snprintf(env_crash, sizeof(env_crash),
	    "DTX_PARTICIPANT_CRASH_AT=%s:%d", point, nth);
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
	CHECK(bpart_start(&a, env, NULL) == 0, "a did not start");
	CHECK(b != NULL && dtxt_part_start(b) == 0, "b did not start");

	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_set_retries(tx, 50));
	CHECK_RV(dtx_tx_add(tx, a.p->url, "op", "ok", 2));
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "ok", 2));
	CHECK_RV(dtx_tx_submit(tx));
	dtxi_strlcpy(gid, dtx_tx_gid(tx), cap);
	dtx_tx_free(tx);

	CHECK(dtxt_wait(a.p->proc, 20000, &how) == 0, "a did not reach %s:%d",
	    point, nth);
	CHECK(how.signaled && how.signo == SIGKILL,
	    "a ended with %s %d, expected SIGKILL at %s",
	    how.exited ? "exit code" : "signal",
	    how.exited ? how.code : how.signo, point);
	CHECK(bpart_start(&a, env2, NULL) == 0, "a did not restart");
	CHECK_RV(dtx_tx_attach(&tx, w.client, gid));
	CHECK_RV(dtx_tx_wait(tx, 60000, &st));
	dtx_tx_free(tx);
	CHECK(st == DTX_STATE_COMMITTED, "outcome %s", dtx_state_name(st));

	// Exactly once in the store, whatever the call log says.
	CHECK(ran(&a, "PREPARE", gid, 0) == 1, "prepare took effect %u times",
	    ran(&a, "PREPARE", gid, 0));
	CHECK(ran(&a, "COMMIT", gid, 0) == 1, "commit took effect %u times",
	    ran(&a, "COMMIT", gid, 0));
	CHECK(effect(&a, gid, 0) == 1, "effect not applied");
}

// Whether the participant's output shows the barrier replaying phase.
static bool
replayed(const char *outlog, const char *phase, const char *gid)
{
	char *text = dtxt_read_file(outlog);
	char  want[DTX_GID_MAX + 64];
	bool  found;

	snprintf(want, sizeof(want), "barrier: %s %s/0 again: replayed OK",
	    phase, gid);
	found = strstr(text, want) != NULL;
	free(text);
	return found;
}

Test(barrier, crash_after_prepare_write_makes_the_retry_a_duplicate)
{
	char gid[DTX_GID_MAX + 1];

	crash_and_retry("after-business-write", 1, gid, sizeof(gid));
	// The crashed run is the only one: dtxd's retry was replayed.
	CHECK(calls(&(bpart) {.p = &w.parts[0]}, gid, 0, "PREPARE") == 1,
	    "prepare ran again after the crash");
	CHECK(replayed(w.parts[0].outlog, "PREPARE", gid),
	    "dtxd's retry of the prepare never reached the barrier");
}

Test(barrier, crash_after_commit_write_makes_the_retry_a_duplicate)
{
	char gid[DTX_GID_MAX + 1];

	crash_and_retry("after-business-write", 2, gid, sizeof(gid));
	CHECK(calls(&(bpart) {.p = &w.parts[0]}, gid, 0, "COMMIT") == 1,
	    "commit ran again after the crash");
	CHECK(replayed(w.parts[0].outlog, "COMMIT", gid),
	    "dtxd's retry of the commit never reached the barrier");
}

Test(barrier, crash_before_the_write_loses_the_whole_run)
{
	char gid[DTX_GID_MAX + 1];

	crash_and_retry("before-business-write", 1, gid, sizeof(gid));
	// The first run's staged writes died with it; the retry ran the
	// callback again, and the store counts one run.
	CHECK(calls(&(bpart) {.p = &w.parts[0]}, gid, 0, "PREPARE") == 2,
	    "prepare should have run twice (once lost in the crash)");
}

// ---------------------------------------------------------------------------
// In-doubt resolution
// ---------------------------------------------------------------------------

Test(barrier, participant_aborts_a_branch_its_coordinator_forgot)
{
	dtxt_dtxd_opts    o = {.timeout_ms = 60000, .call_timeout_ms = 20000};
	bpart             a = bpart_new("a");
	dtxt_part        *b = dtxt_world_part(&w, "b");
	const char *const extra[] = {
	    "--coordinator", w.url, "--resolve-after", "300", NULL};
	dtx_tx  *tx;
	char     gid[DTX_GID_MAX + 1];
	dtxt_log l;
	char     asked[DTX_GID_MAX + 64];
	ran_cond prepared = {&a, "PREPARE", NULL};
	ran_cond aborted  = {&a, "ABORT", NULL};

	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
	CHECK(bpart_start(&a, NULL, extra) == 0, "a did not start");
	CHECK(b != NULL && dtxt_part_start(b) == 0, "b did not start");

	// b's prepare takes long, so the transaction stays PREPARING with
	// a's branch prepared.
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, a.p->url, "op", "ok", 2));
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "prepare=sleep:15000", 19));
	CHECK_RV(dtx_tx_submit(tx));
	dtxi_strlcpy(gid, dtx_tx_gid(tx), sizeof(gid));
	dtx_tx_free(tx);
	prepared.gid = gid;
	dtxt_wait_until(has_run, &prepared, 100, 20000);
	CHECK(ran(&a, "PREPARE", gid, 0) == 1, "a never prepared");
	// Past resolve-after, the resolver asks, hears PREPARING and waits:
	// by its second question, it has done whatever it did with the
	// first answer.
	snprintf(asked, sizeof(asked), "resolve %s: PREPARING", gid);
	CHECK(dtxt_wait_text(w.log, asked, 2, 10000) == 0,
	    "the resolver did not ask twice");
	CHECK(calls(&a, gid, 0, "ABORT") == 0 &&
	        calls(&a, gid, 0, "COMMIT") == 0,
	    "a settled a branch its coordinator had not decided");

	// The coordinator dies and comes back with an empty data directory:
	// it has never heard of gid, which presumed abort makes ABORTED.
	dtxt_kill(w.dtxd);
	w.dtxd = NULL;
	dtx_client_close(w.client);
	w.client = NULL;
	CHECK(dtxt_rmtree(w.data) == 0, "cannot empty dtxd's data directory");
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not restart");
	aborted.gid = gid;
	dtxt_wait_until(has_run, &aborted, 100, 30000);
	CHECK(ran(&a, "ABORT", gid, 0) == 1,
	    "the participant did not release its reservation");
	CHECK(ran(&a, "COMMIT", gid, 0) == 0);
	// The resolver ran it (attempt 0), not dtxd.
	dtxt_log_load(&l, a.p->calllog);
	CHECK(dtxt_log_find(&l, 0, DTXT_CALL, gid, 0, "ABORT", "OK") >= 0);
	CHECK(l.lines[dtxt_log_find(&l, 0, DTXT_CALL, gid, 0, "ABORT", "OK")]
	            .attempt == 0,
	    "the abort was not the resolver's");
	dtxt_log_fini(&l);
	// A late abort from anyone is now a duplicate.
	CHECK(deliver1(&a, gid, 0, DTX_PHASE_ABORT, "ok").status ==
	    DTX_BRANCH_OK);
	CHECK(calls(&a, gid, 0, "ABORT") == 1, "abort ran twice");
}
