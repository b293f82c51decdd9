// SPDX-License-Identifier: MIT
//
// dtx.fault.pgfailover: dtxd on PostgreSQL survives the fail-over of its
// database with nothing acknowledged lost. A primary and a synchronous
// standby on loopback (synchronous_standby_names, so a commit the primary
// acknowledged is on the standby too), dtxd connected through a
// multi-host connection string with target_session_attrs=read-write, two
// participants and client threads committing 2PC transactions of two
// branches back to back. Mid-load the primary is killed (SIGKILL) and the
// standby promoted; dtxd's writes wait and are retried until libpq finds
// the new primary. Then every transaction a client was told the outcome
// of must have that outcome, with each participant's effects to match
// (the call logs: APPLY once for a COMMITTED one, no effect left for an
// ABORTED one), and every transaction whose commit failed or was in flight
// at the kill must end, terminal, likewise. The same dtxd, never restarted,
// must tell every outcome: a Status that times out while dtxd reconnects
// is asked again, but within STATUS_BOUND_MS per transaction, or the test
// fails (its reads have deadlines; none may hang). The figures of the
// fail-over (acknowledged before the kill, in flight at the kill, time
// from the promotion to the first commit acknowledged, the longest wait
// for a Status, lost) are printed.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pg.h"
#include "world_suite.h"

#define THREADS        4
#define PER_THREAD_MAX 20000
// Acknowledged commits wanted before the kill, and after the promotion.
#define BEFORE 150
#define AFTER  150
// How long dtxd may take to tell one transaction's outcome after the
// fail-over: a read has a 5 s deadline and one more try on a fresh
// connection, well within this.
#define STATUS_BOUND_MS 30000

TestSuite(
    pgfailover, .init = world_setup, .fini = world_teardown, .timeout = 280);

typedef struct sent {
	char      gid[DTX_GID_MAX + 1];
	int       rv;    // of the commit
	dtx_state state; // when rv is 0
	int64_t   start_ms;
	int64_t   done_ms;
} sent;

typedef struct loader {
	pthread_t    thread;
	dtx_client  *c;
	const char  *part[2];
	atomic_bool *stop;
	atomic_uint *acked;
	sent        *s;
	unsigned     n;
} loader;

static void *
load_main(void *arg)
{
	loader *l = arg;

	while (!atomic_load(l->stop) && l->n < PER_THREAD_MAX) {
		dtx_tx *tx;
		sent   *s = &l->s[l->n];

		if (dtx_tx_begin(&tx, l->c, DTX_2PC) != 0) {
			break;
		}
		dtx_tx_add(tx, l->part[0], "op", "", 0);
		dtx_tx_add(tx, l->part[1], "op", "", 0);
		snprintf(s->gid, sizeof(s->gid), "%s", dtx_tx_gid(tx));
		s->start_ms = dtxi_mono_ms();
		s->rv       = dtx_tx_commit(tx, &s->state);
		s->done_ms  = dtxi_mono_ms();
		dtx_tx_free(tx);
		l->n++;
		if (s->rv == 0) {
			atomic_fetch_add(l->acked, 1);
		}
	}
	return NULL;
}

static bool
wait_acked(atomic_uint *acked, unsigned want, int timeout_ms)
{
	int64_t until = dtxi_mono_ms() + timeout_ms;

	while (atomic_load(acked) < want) {
		if (dtxi_mono_ms() > until) {
			return false;
		}
		dtxt_sleep_ms(20);
	}
	return true;
}

// Waits until dtxd tells gid's terminal state, by the deadline: a request
// that times out (dtxd busy reconnecting) is asked again. Returns 0,
// DTX_ENOTFOUND, or the last error.
static int
outcome_of(dtx_client *c, const char *gid, int64_t deadline, dtx_state *st)
{
	int rv;

	do {
		dtx_tx *tx;

		if ((rv = dtx_tx_attach(&tx, c, gid)) != 0) {
			return rv;
		}
		rv = dtx_tx_wait(tx, 5000, st);
		if (rv != 0 && rv != DTX_ETIMEDOUT && rv != DTX_ENOTFOUND) {
			fprintf(stderr, "pgfailover: %s: %s: %s\n", gid,
			    dtx_strerror(rv), dtx_tx_message(tx));
		}
		dtx_tx_free(tx);
	} while (rv == DTX_ETIMEDOUT && dtxi_mono_ms() < deadline);
	return rv;
}

// The outcome of gid from the running dtxd, which must tell it within
// STATUS_BOUND_MS (asked again while it times out). *longest is raised to
// the time it took.
static int
outcome(const char *gid, int64_t *longest, dtx_state *st)
{
	int64_t t0   = dtxi_mono_ms();
	int     rv   = outcome_of(w.client, gid, t0 + STATUS_BOUND_MS, st);
	int64_t took = dtxi_mono_ms() - t0;

	if (took > *longest) {
		*longest = took;
	}
	if (rv == DTX_ETIMEDOUT) {
		fprintf(stderr,
		    "pgfailover: dtxd did not tell the outcome of %s in %lld "
		    "ms after the fail-over\n",
		    gid, (long long)took);
	}
	return rv;
}

// Checks one transaction against both call logs: its effects must match
// its outcome. Returns true when they do.
static bool
effects_match(const dtxt_log logs[2], const char *gid, dtx_state st)
{
	for (int b = 0; b < 2; b++) {
		long eff = dtxt_log_effect(&logs[b], gid, b);

		if (st == DTX_STATE_COMMITTED &&
		    (eff != 1 ||
		        dtxt_log_count(
		            &logs[b], DTXT_APPLY, gid, b, NULL, NULL) != 1)) {
			return false;
		}
		if (st == DTX_STATE_ABORTED && eff != 0) {
			return false;
		}
	}
	return true;
}

Test(
    pgfailover, a_promoted_standby_takes_over_and_nothing_acknowledged_is_lost)
{
	// Both servers skip fsync: the test kills processes, not the
	// machine, and what a process wrote survives it in the OS.
	const char *conf = "fsync = off\nfull_page_writes = off\n";
	dtxt_pg     pri, sby;
	char        conn[512], db[128];
	dtxt_part *p[2] = {dtxt_world_part(&w, "p"), dtxt_world_part(&w, "q")};
	loader     ls[THREADS];
	atomic_bool stop  = false;
	atomic_uint acked = 0;
	unsigned    before, at_kill = 0, lost = 0, inflight = 0, total = 0;
	unsigned    unknown = 0;
	int64_t     t_kill, t_promoted, first_after = -1;

	cr_assert_eq(dtxt_pg_init(&pri, conf), 0, "initdb failed");
	cr_assert_eq(dtxt_pg_start(&pri), 0, "primary did not start");
	cr_assert_eq(dtxt_pg_createdb(&pri, "dtx", db, sizeof(db)), 0);
	cr_assert_eq(dtxt_pg_init_standby(&sby, &pri, "standby1", conf), 0,
	    "pg_basebackup failed");
	cr_assert_eq(dtxt_pg_start(&sby), 0, "standby did not start");
	// Synchronous only now: with no standby yet, every commit on the
	// primary (the CREATE DATABASE) would wait for one.
	cr_assert_eq(dtxt_pg_sql(&pri, "postgres",
	                 "ALTER SYSTEM SET synchronous_standby_names = "
	                 "'standby1'"),
	    0);
	cr_assert_eq(
	    dtxt_pg_sql(&pri, "postgres", "SELECT pg_reload_conf()"), 0);
	cr_assert_eq(dtxt_pg_wait_sync(&pri, "standby1", 20000), 0);
	snprintf(conn, sizeof(conn),
	    "host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres dbname=dtx "
	    "target_session_attrs=read-write connect_timeout=2",
	    pri.port, sby.port);

	dtxt_dtxd_opts o = {
	    .call_timeout_ms  = 2000,
	    .store_conn       = conn,
	    .extra            = {"--node", "n1", NULL},
	    .start_timeout_ms = 20000,
	};
	CHECK_RV(dtxt_world_start_dtxd(&w, &o));
	CHECK_RV(dtxt_part_start(p[0]));
	CHECK_RV(dtxt_part_start(p[1]));
	CHECK_RV(dtx_client_set_timeout_ms(w.client, 30000));

	memset(ls, 0, sizeof(ls));
	for (int i = 0; i < THREADS; i++) {
		ls[i].c       = w.client;
		ls[i].part[0] = p[0]->url;
		ls[i].part[1] = p[1]->url;
		ls[i].stop    = &stop;
		ls[i].acked   = &acked;
		ls[i].s       = calloc(PER_THREAD_MAX, sizeof(sent));
		cr_assert_not_null(ls[i].s);
		cr_assert_eq(
		    pthread_create(&ls[i].thread, NULL, load_main, &ls[i]), 0);
	}
	CHECK(wait_acked(&acked, BEFORE, 60000), "no load before the kill");

	// The kill: every commit not ended by now is in flight.
	before = atomic_load(&acked);
	t_kill = dtxi_mono_ms();
	dtxt_pg_stop(&pri, true);
	CHECK(dtxt_pg_promote(&sby) == 0, "promotion failed");
	t_promoted = dtxi_mono_ms();
	fprintf(stderr,
	    "pgfailover: primary killed, standby promoted in %lld ms\n",
	    (long long)(t_promoted - t_kill));
	CHECK(wait_acked(&acked, before + AFTER, 90000),
	    "no commits after the promotion (%u acknowledged)",
	    atomic_load(&acked));
	atomic_store(&stop, true);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(ls[i].thread, NULL);
	}

	// Every transaction must end, within two minutes; those whose
	// commit failed are waited for. Then the logs are read once.
	int64_t longest = 0;
	CHECK_RV(dtx_client_set_timeout_ms(w.client, 5000));
	for (int i = 0; i < THREADS; i++) {
		for (unsigned k = 0; k < ls[i].n; k++) {
			sent *s = &ls[i].s[k];
			int   rv;

			total++;
			if (s->rv == 0 && s->done_ms > t_promoted &&
			    (first_after < 0 ||
			        s->done_ms - t_promoted < first_after)) {
				first_after = s->done_ms - t_promoted;
			}
			if (s->start_ms < t_kill && s->done_ms > t_kill) {
				at_kill++;
			}
			if (s->rv == 0) {
				continue;
			}
			inflight++;
			rv = outcome(s->gid, &longest, &s->state);
			// A Submit that failed before it was accepted left
			// nothing: presumed abort (no effect may exist).
			if (rv == DTX_ENOTFOUND) {
				s->state = DTX_STATE_ABORTED;
				unknown++;
				rv = 0;
			}
			CHECK(rv == 0, "%s never ended: %s", s->gid,
			    dtx_strerror(rv));
		}
	}
	dtxt_log logs[2];
	dtxt_log_load(&logs[0], p[0]->calllog);
	dtxt_log_load(&logs[1], p[1]->calllog);
	for (int i = 0; i < THREADS; i++) {
		for (unsigned k = 0; k < ls[i].n; k++) {
			sent     *s = &ls[i].s[k];
			dtx_state now;
			int       rv;

			// What dtxd says now must be what was acknowledged.
			rv = outcome(s->gid, &longest, &now);
			if (rv == DTX_ENOTFOUND && s->rv != 0) {
				now = DTX_STATE_ABORTED;
				rv  = 0;
			}
			CHECK(rv == 0, "%s: %s", s->gid, dtx_strerror(rv));
			if (now != s->state ||
			    !effects_match(logs, s->gid, now)) {
				fprintf(stderr,
				    "pgfailover: %s acknowledged %s, now %s, "
				    "effects %ld/%ld\n",
				    s->gid, dtx_state_name(s->state),
				    dtx_state_name(now),
				    dtxt_log_effect(&logs[0], s->gid, 0),
				    dtxt_log_effect(&logs[1], s->gid, 1));
				lost++;
			}
		}
	}
	fprintf(stderr,
	    "pgfailover: %u transactions, %u acknowledged before the kill, "
	    "%u in flight at the kill, %u failed to the client (%u of them "
	    "never accepted), promotion took %lld ms, first commit "
	    "acknowledged %lld ms after the promotion, longest Status %lld "
	    "ms, lost %u\n",
	    total, before, at_kill, inflight, unknown,
	    (long long)(t_promoted - t_kill), (long long)first_after,
	    (long long)longest, lost);
	dtxt_log_fini(&logs[0]);
	dtxt_log_fini(&logs[1]);
	CHECK(lost == 0, "%u transactions lost or inconsistent", lost);
	CHECK(longest <= STATUS_BOUND_MS,
	    "dtxd took %lld ms to tell an outcome (bound %d ms)",
	    (long long)longest, STATUS_BOUND_MS);
	CHECK(first_after >= 0, "no commit after the promotion");
	for (int i = 0; i < THREADS; i++) {
		free(ls[i].s);
	}
	dtxt_world_fini(&w);
	dtxt_pg_fini(&sby);
	dtxt_pg_fini(&pri);
}
