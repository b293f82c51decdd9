// SPDX-License-Identifier: MIT
//
// Unit tests of what the PostgreSQL backend of the store adds to the
// interface both backends share (store_test.c has those): every write is
// fenced by owner and epoch, and a fenced operation leaves the rest of its
// batch alone; a create is idempotent for its writer and refused for
// another; sessions hold leases on the database's clock, and another
// session takes over the transactions of one whose lease ran out (in
// bounded batches, at the next epoch), or of one ended by a newer session
// of its name, at once; after a database restart every session gets a
// lease's time to renew before anything is taken; the writer rides out a
// database restart and loses nothing; a read from a server that stops
// answering returns on time; a schema of another version is refused and
// left alone; an abort asked of a node that does not own a transaction is
// handed to its owner once, and only while the transaction is
// unfinished. The suite shares one private PostgreSQL server; the restart
// test has its own.

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "pg.h"
#include "store.h"

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	dtxt_pg_suite_start();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	dtxt_pg_suite_stop();
}

TestSuite(store_pg, .timeout = 120);

static void
fresh_db(char *conninfo, size_t cap)
{
	static int n;
	char       db[64];

	snprintf(db, sizeof(db), "pgs_%d_%d", (int)getpid(), n++);
	cr_assert_eq(dtxt_pg_suite_db(db, conninfo, cap), 0);
}

static dtxd_store *
open_pg(const char *conninfo, uint32_t sync_delay_ms)
{
	dtxd_store     *s = NULL;
	dtxd_store_opts o;
	int             rv;

	dtxd_store_opts_init(&o);
	o.backend        = DTXD_STORE_POSTGRES;
	o.purge_every_ms = 0;
	o.sync_delay_ms  = sync_delay_ms;
	rv               = dtxd_store_open(&s, conninfo, &o);
	cr_assert_eq(rv, 0, "open: %s", dtx_strerror(rv));
	return s;
}

// Outcomes of queued writes, counted; the test thread waits for them.
typedef struct outcomes {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	int             n;
	int             rv[16];
} outcomes;

typedef struct slot {
	outcomes *o;
	int       i;
	dtxd_wop  op;
} slot;

static void
slot_done(void *arg, int rv)
{
	slot *sl = arg;

	pthread_mutex_lock(&sl->o->mtx);
	sl->o->rv[sl->i] = rv;
	sl->o->n++;
	pthread_cond_broadcast(&sl->o->cv);
	pthread_mutex_unlock(&sl->o->mtx);
}

static void
outcomes_wait(outcomes *o, int n)
{
	pthread_mutex_lock(&o->mtx);
	while (o->n < n) {
		pthread_cond_wait(&o->cv, &o->mtx);
	}
	pthread_mutex_unlock(&o->mtx);
}

// Fills slot i with a write of kind for gid as (owner, epoch).
static dtxd_wop *
prep(slot *sl, outcomes *o, int i, dtxd_wop_kind kind, const char *gid,
    uint64_t owner, uint64_t epoch, const char *rec)
{
	slot *x = &sl[i];

	memset(x, 0, sizeof(*x));
	x->o             = o;
	x->i             = i;
	x->op.kind       = kind;
	x->op.gid        = gid;
	x->op.owner      = owner;
	x->op.epoch      = epoch;
	x->op.record     = (const uint8_t *)rec;
	x->op.record_len = strlen(rec);
	x->op.expire_ms  = 1000;
	x->op.sync       = true;
	x->op.done       = slot_done;
	x->op.arg        = x;
	return &x->op;
}

// One write, waited for: its rv.
static int
write1(dtxd_store *s, dtxd_wop_kind kind, const char *gid, uint64_t owner,
    uint64_t epoch, const char *rec)
{
	outcomes o = {
	    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
	slot sl[1];
	int  rv;

	rv =
	    dtxd_store_write(s, prep(sl, &o, 0, kind, gid, owner, epoch, rec));
	cr_assert_eq(rv, 0);
	outcomes_wait(&o, 1);
	return o.rv[0];
}

static void
expect_record(dtxd_store *s, const char *gid, const char *want)
{
	uint8_t *val = NULL;
	size_t   len = 0;
	int      rv  = dtxd_store_get_record(s, gid, &val, &len);

	cr_assert_eq(rv, 0, "get %s: %s", gid, dtx_strerror(rv));
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(memcmp(val, want, len), 0, "record of %s", gid);
	free(val);
}

Test(store_pg, every_write_is_fenced_by_owner_and_epoch)
{
	char             ci[256];
	dtxd_store      *s;
	dtxd_store_stats st;

	fresh_db(ci, sizeof(ci));
	s = open_pg(ci, 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "g", 7, 0, "r1"), 0);
	// Another owner, or this owner at another epoch, writes nothing.
	cr_assert_eq(
	    write1(s, DTXD_WOP_UPDATE, "g", 8, 1, "x"), DTXD_STORE_FENCED);
	cr_assert_eq(
	    write1(s, DTXD_WOP_UPDATE, "g", 7, 2, "x"), DTXD_STORE_FENCED);
	cr_assert_eq(
	    write1(s, DTXD_WOP_FINISH, "g", 8, 1, "x"), DTXD_STORE_FENCED);
	cr_assert_eq(write1(s, DTXD_WOP_UPDATE, "nobody", 7, 1, "x"),
	    DTXD_STORE_FENCED);
	expect_record(s, "g", "r1");
	cr_assert_eq(write1(s, DTXD_WOP_UPDATE, "g", 7, 1, "r2"), 0);
	expect_record(s, "g", "r2");
	cr_assert_eq(write1(s, DTXD_WOP_FINISH, "g", 7, 1, "r3"), 0);
	expect_record(s, "g", "r3");
	// Sent again (as after a lost connection), the finish still lands.
	cr_assert_eq(write1(s, DTXD_WOP_FINISH, "g", 7, 1, "r3"), 0);
	dtxd_store_get_stats(s, &st);
	cr_assert_eq(st.fenced, 4);
	cr_assert_eq(st.ops, 4);
	dtxd_store_close(s);
}

Test(store_pg, a_create_is_idempotent_for_its_writer_and_refused_to_others)
{
	char        ci[256];
	dtxd_store *s;

	fresh_db(ci, sizeof(ci));
	s = open_pg(ci, 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "g", 7, 0, "r1"), 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "g", 7, 0, "r1"), 0);
	cr_assert_eq(
	    write1(s, DTXD_WOP_CREATE, "g", 9, 0, "other"), DTX_EEXIST);
	expect_record(s, "g", "r1");
	cr_assert_eq(write1(s, DTXD_WOP_FINISH, "g", 7, 1, "done"), 0);
	// Finished: not even its writer creates it again.
	cr_assert_eq(
	    write1(s, DTXD_WOP_CREATE, "g", 7, 0, "again"), DTX_EEXIST);
	expect_record(s, "g", "done");
	dtxd_store_close(s);
}

// Collects the gids dtxd_store_aborts_asked hands over.
typedef struct asked {
	int  n;
	char gids[4][DTX_GID_MAX + 1];
} asked;

static int
asked_one(void *arg, const char *gid)
{
	asked *a = arg;

	cr_assert_lt(a->n, 4);
	snprintf(a->gids[a->n++], sizeof(a->gids[0]), "%s", gid);
	return 0;
}

Test(store_pg, an_abort_asked_goes_to_the_owner_once_and_only_while_unfinished)
{
	char        ci[256];
	dtxd_store *s;
	asked       a = {0};

	fresh_db(ci, sizeof(ci));
	s = open_pg(ci, 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "mine", 7, 0, "r"), 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "theirs", 8, 0, "r"), 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "done", 7, 0, "r"), 0);
	cr_assert_eq(dtxd_store_ask_abort(s, "mine"), 0);
	cr_assert_eq(dtxd_store_ask_abort(s, "mine"), 0); // asked once
	cr_assert_eq(dtxd_store_ask_abort(s, "theirs"), 0);
	cr_assert_eq(dtxd_store_ask_abort(s, "done"), 0);
	// Unknown: nothing to ask, and no error (the record tells).
	cr_assert_eq(dtxd_store_ask_abort(s, "nobody"), 0);
	cr_assert_eq(dtxd_store_ask_abort(s, ""), DTX_EINVAL);
	cr_assert_eq(write1(s, DTXD_WOP_FINISH, "done", 7, 1, "f"), 0);
	// Session 7 gets its own unfinished one, once.
	cr_assert_eq(dtxd_store_aborts_asked(s, 7, asked_one, &a), 0);
	cr_assert_eq(a.n, 1);
	cr_assert_str_eq(a.gids[0], "mine");
	a.n = 0;
	cr_assert_eq(dtxd_store_aborts_asked(s, 7, asked_one, &a), 0);
	cr_assert_eq(a.n, 0);
	// Finished before its owner looked: handed to nobody.
	cr_assert_eq(write1(s, DTXD_WOP_FINISH, "theirs", 8, 1, "f"), 0);
	cr_assert_eq(dtxd_store_aborts_asked(s, 8, asked_one, &a), 0);
	cr_assert_eq(a.n, 0, "an ask of a finished transaction was handed");
	cr_assert_eq(dtxd_store_aborts_asked(s, 0, asked_one, &a), DTX_EINVAL);
	dtxd_store_close(s);
}

Test(store_pg, a_fenced_operation_leaves_the_rest_of_its_batch_alone)
{
	char        ci[256];
	dtxd_store *s;
	outcomes    o = {
	       PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
	slot             sl[6];
	dtxd_store_stats st;

	fresh_db(ci, sizeof(ci));
	// Each synced batch sleeps, so the writes queued meanwhile share
	// the next one.
	s = open_pg(ci, 50);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "a", 1, 0, "a0"), 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "b", 1, 0, "b0"), 0);
	dtxd_store_get_stats(s, &st);
	uint64_t batches = st.batches;
	cr_assert_eq(dtxd_store_write(
	                 s, prep(sl, &o, 0, DTXD_WOP_UPDATE, "a", 1, 1, "a1")),
	    0);
	cr_assert_eq(dtxd_store_write(
	                 s, prep(sl, &o, 1, DTXD_WOP_UPDATE, "b", 2, 1, "b1")),
	    0);
	cr_assert_eq(dtxd_store_write(
	                 s, prep(sl, &o, 2, DTXD_WOP_CREATE, "c", 1, 0, "c0")),
	    0);
	cr_assert_eq(dtxd_store_write(
	                 s, prep(sl, &o, 3, DTXD_WOP_CREATE, "a", 2, 0, "zz")),
	    0);
	cr_assert_eq(dtxd_store_write(
	                 s, prep(sl, &o, 4, DTXD_WOP_FINISH, "b", 1, 1, "b2")),
	    0);
	outcomes_wait(&o, 5);
	cr_assert_eq(o.rv[0], 0);
	cr_assert_eq(o.rv[1], DTXD_STORE_FENCED);
	cr_assert_eq(o.rv[2], 0);
	cr_assert_eq(o.rv[3], DTX_EEXIST);
	cr_assert_eq(o.rv[4], 0);
	dtxd_store_get_stats(s, &st);
	cr_assert_leq(st.batches - batches, 2, "%llu batches",
	    (unsigned long long)(st.batches - batches));
	expect_record(s, "a", "a1");
	expect_record(s, "b", "b2");
	expect_record(s, "c", "c0");
	dtxd_store_close(s);
}

// Collects what a takeover hands over.
typedef struct taken {
	char     gids[256];
	uint64_t owner, epoch;
	uint32_t nspecs;
	int      n;
} taken;

static int
take_fn(void *arg, const dtxd_store_unfinished *u)
{
	taken *t = arg;
	size_t n = strlen(t->gids);

	snprintf(
	    t->gids + n, sizeof(t->gids) - n, "%s%s", n ? "," : "", u->gid);
	t->owner  = u->owner;
	t->epoch  = u->epoch;
	t->nspecs = u->nspecs;
	t->n++;
	return 0;
}

static uint32_t
take(dtxd_store *s, uint64_t session, uint32_t lease, uint32_t max, taken *t)
{
	uint32_t n = 99;

	memset(t, 0, sizeof(*t));
	cr_assert_eq(
	    dtxd_store_takeover(s, session, lease, max, take_fn, t, &n), 0);
	cr_assert_eq((int)n, t->n);
	return n;
}

typedef struct lapse {
	dtxd_store *s;
	uint64_t    session;
} lapse;

// True once l's session takes something over (two at most).
static int
took_some(void *arg)
{
	lapse *l = arg;
	taken  t;

	return take(l->s, l->session, 300, 2, &t) > 0;
}

Test(store_pg, a_session_whose_lease_ran_out_is_taken_over_in_batches)
{
	char        ci[256];
	dtxd_store *a, *b;
	uint64_t    sa = 0, sb = 0;
	bool        lapsed = true;
	taken       t;
	char        gid[16];

	fresh_db(ci, sizeof(ci));
	a = open_pg(ci, 0);
	b = open_pg(ci, 0);
	cr_assert_eq(
	    dtxd_store_session_open(a, "node-a", "tcp://a", 300, &sa), 0);
	cr_assert_eq(
	    dtxd_store_session_open(b, "node-b", "tcp://b", 300, &sb), 0);
	cr_assert(sa != 0 && sb != 0 && sa != sb);
	for (int i = 0; i < 5; i++) {
		snprintf(gid, sizeof(gid), "t%d", i);
		cr_assert_eq(write1(a, DTXD_WOP_CREATE, gid, sa, 0, gid), 0);
	}
	cr_assert_eq(write1(a, DTXD_WOP_FINISH, "t4", sa, 1, "done"), 0);
	// A's lease holds: nothing to take.
	cr_assert_eq(dtxd_store_session_renew(a, sa, 300, &lapsed), 0);
	cr_assert(!lapsed);
	cr_assert_eq(take(b, sb, 300, 10, &t), 0);

	// A stops renewing; B keeps its own lease and, once A's ran out,
	// takes A's unfinished ones two at a time, at epoch 2.
	lapse l = {b, sb};
	cr_assert_eq(dtxd_store_session_renew(b, sb, 5000, &lapsed), 0);
	cr_assert_eq(dtxt_wait_until(took_some, &l, 50, 5000), 0);
	// The first batch was t0 and t1 (oldest first); the rest now.
	cr_assert_eq(take(b, sb, 300, 2, &t), 2);
	cr_assert_str_eq(t.gids, "t2,t3");
	cr_assert_eq(t.owner, sb);
	cr_assert_eq(t.epoch, 2);
	cr_assert_eq(take(b, sb, 300, 2, &t), 0);

	// A, a zombie now, is fenced, and learns its lease had lapsed.
	cr_assert_eq(write1(a, DTXD_WOP_UPDATE, "t0", sa, 1, "zombie"),
	    DTXD_STORE_FENCED);
	cr_assert_eq(dtxd_store_session_renew(a, sa, 300, &lapsed), 0);
	cr_assert(lapsed);
	cr_assert_eq(write1(b, DTXD_WOP_UPDATE, "t0", sb, 2, "new owner"), 0);
	expect_record(b, "t0", "new owner");
	dtxd_store_close(a);
	dtxd_store_close(b);
}

Test(store_pg, a_restarted_node_ends_its_old_session_and_takes_over_at_once)
{
	char        ci[256];
	dtxd_store *old, *neu;
	uint64_t    s1 = 0, s2 = 0;
	bool        lapsed;
	taken       t;

	fresh_db(ci, sizeof(ci));
	old = open_pg(ci, 0);
	cr_assert_eq(
	    dtxd_store_session_open(old, "n1", "tcp://n1", 60000, &s1), 0);
	cr_assert_eq(write1(old, DTXD_WOP_CREATE, "g", s1, 0, "r"), 0);
	// The same name again: the old session ends, its lease no matter.
	neu = open_pg(ci, 0);
	cr_assert_eq(
	    dtxd_store_session_open(neu, "n1", "tcp://n1", 60000, &s2), 0);
	cr_assert_eq(take(neu, s2, 60000, 10, &t), 1);
	cr_assert_str_eq(t.gids, "g");
	cr_assert_eq(t.nspecs, 0);
	cr_assert_eq(
	    dtxd_store_session_renew(old, s1, 60000, &lapsed), DTX_ECLOSED);
	cr_assert_eq(dtxd_store_session_renew(neu, s2, 60000, &lapsed), 0);
	dtxd_store_close(old);
	dtxd_store_close(neu);
}

Test(store_pg, an_ended_session_is_taken_over_at_once_and_cannot_renew)
{
	char        ci[256];
	dtxd_store *a, *b;
	uint64_t    sa = 0, sb = 0;
	bool        lapsed;
	taken       t;

	fresh_db(ci, sizeof(ci));
	a = open_pg(ci, 0);
	b = open_pg(ci, 0);
	cr_assert_eq(
	    dtxd_store_session_open(a, "node-a", "tcp://a", 60000, &sa), 0);
	cr_assert_eq(
	    dtxd_store_session_open(b, "node-b", "tcp://b", 60000, &sb), 0);
	cr_assert_eq(write1(a, DTXD_WOP_CREATE, "g1", sa, 0, "r"), 0);
	cr_assert_eq(take(b, sb, 60000, 10, &t), 0);
	// A stops cleanly: its minute-long lease does not hold B back.
	cr_assert_eq(dtxd_store_session_end(a, sa), 0);
	cr_assert_eq(take(b, sb, 60000, 10, &t), 1);
	cr_assert_str_eq(t.gids, "g1");
	cr_assert_eq(t.owner, sb);
	cr_assert_eq(t.epoch, 2);
	cr_assert_eq(
	    dtxd_store_session_renew(a, sa, 60000, &lapsed), DTX_ECLOSED);
	cr_assert_eq(dtxd_store_session_end(a, 0), DTX_EINVAL);
	dtxd_store_close(a);
	dtxd_store_close(b);
}

Test(store_pg, sessions_and_takeover_refuse_bad_arguments)
{
	char        ci[256];
	dtxd_store *s;
	uint64_t    id;
	uint32_t    n;
	bool        lapsed;

	fresh_db(ci, sizeof(ci));
	s = open_pg(ci, 0);
	cr_assert_eq(
	    dtxd_store_session_open(s, "", "u", 100, &id), DTX_EINVAL);
	cr_assert_eq(
	    dtxd_store_session_open(s, "n", NULL, 100, &id), DTX_EINVAL);
	cr_assert_eq(dtxd_store_session_open(s, "n", "u", 0, &id), DTX_EINVAL);
	cr_assert_eq(dtxd_store_session_renew(s, 0, 100, &lapsed), DTX_EINVAL);
	cr_assert_eq(
	    dtxd_store_takeover(s, 1, 100, 1, NULL, NULL, &n), DTX_EINVAL);
	// A session that never existed cannot renew.
	cr_assert_eq(
	    dtxd_store_session_renew(s, 424242, 100, &lapsed), DTX_ECLOSED);
	dtxd_store_close(s);
}

Test(store_pg, a_schema_of_another_version_is_refused_and_left_alone)
{
	char            ci[256], db[64];
	dtxd_store     *s = NULL;
	dtxd_store_opts o;

	fresh_db(ci, sizeof(ci));
	s = open_pg(ci, 0);
	dtxd_store_close(s);
	s = NULL;
	// The database name is the last word of the connection string.
	snprintf(db, sizeof(db), "%s", strrchr(ci, '=') + 1);
	dtxt_pg pg;
	memset(&pg, 0, sizeof(pg));
	pg.port = atoi(strstr(ci, "port=") + 5);
	snprintf(pg.log, sizeof(pg.log), "/dev/null");
	cr_assert_eq(dtxt_pg_sql(&pg, db,
	                 "UPDATE dtxd_meta SET value = 'dtxd-pg 99' WHERE "
	                 "key = 'schema'"),
	    0);
	dtxd_store_opts_init(&o);
	o.backend = DTXD_STORE_POSTGRES;
	cr_assert_eq(dtxd_store_open(&s, ci, &o), DTX_ESTORAGE);
	cr_assert_null(s);
	cr_assert_eq(dtxt_pg_sql(&pg, db,
	                 "SELECT 1/(count(*) = 1)::int FROM dtxd_meta WHERE "
	                 "value = 'dtxd-pg 99'"),
	    0);
	// An unreachable database is an error too, not a hang, and one that
	// says another try may do better, and why.
	char why[256] = "";
	o.why         = why;
	o.why_cap     = sizeof(why);
	cr_assert_eq(dtxd_store_open(&s,
	                 "host=127.0.0.1 port=1 user=postgres dbname=x "
	                 "connect_timeout=2",
	                 &o),
	    DTX_EUNREACHABLE);
	cr_assert(strstr(why, "cannot reach PostgreSQL") != NULL &&
	        strstr(why, "port 1 ") != NULL,
	    "why: %s", why);
	// A malformed connection string is refused before any connection.
	cr_assert_eq(
	    dtxd_store_open(&s, "host=127.0.0.1 nosuchkey=1", &o), DTX_EINVAL);
	cr_assert(strstr(why, "nosuchkey") != NULL, "why: %s", why);
	cr_assert_null(s);
}

static int
store_down(void *arg)
{
	return !dtxd_store_ready(arg);
}

typedef struct young {
	dtxd_store *s;
	uint64_t    session;
} young;

static int
takes_after_grace(void *arg)
{
	young *y = arg;
	taken  t;

	return take(y->s, y->session, 200, 10, &t) == 1;
}

// Stops (SIGSTOP) the backends of the store's connections (application
// name dtxd) on pg, recording them in pids[*n]. Returns how many.
static int
stop_backends(dtxt_pg *pg, pid_t *pids, int *n, int cap)
{
	char  out[512];
	char *p = out, *end;
	int   k = 0;

	cr_assert_eq(dtxt_pg_query(pg, "postgres",
	                 "SELECT string_agg(pid::text, ' ') FROM "
	                 "pg_stat_activity WHERE application_name = 'dtxd'",
	                 out, sizeof(out)),
	    0);
	for (long pid; *n < cap && (pid = strtol(p, &end, 10)) > 0; p = end) {
		cr_assert_eq(kill((pid_t)pid, SIGSTOP), 0);
		pids[(*n)++] = (pid_t)pid;
		k++;
	}
	return k;
}

// A server that stops answering, its sockets open (its processes
// stopped), must not hang a read. With the backends alone stopped, the
// read gives up its connection at the deadline and gets its answer on a
// fresh one; with the postmaster stopped too, it fails with
// DTX_ESTORAGE, in bounded time; once the server goes on, reads work.
Test(store_pg, a_read_from_a_server_that_stops_answering_returns_on_time,
    .timeout = 120)
{
	dtxt_pg     pg;
	char        ci[256];
	dtxd_store *s;
	uint64_t    sa = 0;
	pid_t       pids[32];
	int         n = 0;
	uint8_t    *val;
	size_t      len;
	int64_t     t0, took;
	int         rv;

	cr_assert_eq(dtxt_pg_init(&pg, NULL), 0);
	cr_assert_eq(dtxt_pg_start(&pg), 0);
	dtxt_pg_conninfo(&pg, "postgres", ci, sizeof(ci));
	s = open_pg(ci, 0);
	cr_assert_eq(dtxd_store_session_open(s, "a", "u", 60000, &sa), 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "g", sa, 0, "r0"), 0);
	expect_record(s, "g", "r0"); // a pooled connection now

	cr_assert_gt(stop_backends(&pg, pids, &n, 32), 0);
	t0 = dtxi_mono_ms();
	expect_record(s, "g", "r0");
	took = dtxi_mono_ms() - t0;
	cr_assert(took >= 4000 && took < 15000,
	    "the read took %lld ms: no deadline, or no fresh connection",
	    (long long)took);

	// The fresh connection's backend too, then the postmaster: nothing
	// answers at all.
	cr_assert_gt(stop_backends(&pg, pids, &n, 32), 0);
	cr_assert_eq(kill(pg.pid, SIGSTOP), 0);
	t0   = dtxi_mono_ms();
	val  = NULL;
	rv   = dtxd_store_get_record(s, "g", &val, &len);
	took = dtxi_mono_ms() - t0;
	free(val);
	cr_assert_eq(kill(pg.pid, SIGCONT), 0);
	for (int i = 0; i < n; i++) {
		kill(pids[i], SIGCONT);
	}
	cr_assert_eq(rv, DTX_ESTORAGE, "a read of a stopped server: %s",
	    dtx_strerror(rv));
	cr_assert_lt(
	    took, 20000, "the failed read took %lld ms", (long long)took);
	expect_record(s, "g", "r0");
	dtxd_store_close(s);
	dtxt_pg_fini(&pg);
}

// The server restarts under a write: the write waits, lands after, and
// the store says not ready meanwhile. Then, while the database is young,
// nobody's lease counts as run out.
Test(store_pg, the_writer_rides_out_a_database_restart, .timeout = 120)
{
	dtxt_pg     pg;
	char        ci[256];
	dtxd_store *s;
	uint64_t    sa = 0, sb = 0;
	outcomes    o = {
	       PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {0}};
	slot  sl[2];
	taken t;
	bool  lapsed;

	cr_assert_eq(dtxt_pg_init(&pg, NULL), 0);
	cr_assert_eq(dtxt_pg_start(&pg), 0);
	dtxt_pg_conninfo(&pg, "postgres", ci, sizeof(ci));
	s = open_pg(ci, 0);
	cr_assert_eq(dtxd_store_session_open(s, "a", "u", 1500, &sa), 0);
	cr_assert_eq(dtxd_store_session_open(s, "b", "u", 1500, &sb), 0);
	cr_assert_eq(write1(s, DTXD_WOP_CREATE, "g", sa, 0, "r0"), 0);

	dtxt_pg_stop(&pg, true);
	cr_assert_eq(dtxd_store_write(s,
	                 prep(sl, &o, 0, DTXD_WOP_UPDATE, "g", sa, 1, "r1")),
	    0);
	cr_assert_eq(dtxt_wait_until(store_down, s, 20, 10000), 0);
	dtxt_sleep_ms(2000); // a's lease runs out while the server is down
	pthread_mutex_lock(&o.mtx);
	cr_assert_eq(o.n, 0, "a write finished while the database was down");
	pthread_mutex_unlock(&o.mtx);
	cr_assert_eq(dtxt_pg_start(&pg), 0);
	outcomes_wait(&o, 1);
	cr_assert_eq(o.rv[0], 0);
	cr_assert(dtxd_store_ready(s));
	expect_record(s, "g", "r1");
	// The database is younger than a minute (the grace asked for here):
	// a's lapsed lease does not count yet.
	cr_assert_eq(take(s, sb, 60000, 10, &t), 0);
	cr_assert_eq(dtxd_store_session_renew(s, sb, 1500, &lapsed), 0);
	cr_assert(lapsed);
	// With a grace shorter than the database's age, it does.
	young y = {s, sb};
	cr_assert_eq(dtxt_wait_until(takes_after_grace, &y, 100, 10000), 0);
	dtxd_store_close(s);
	dtxt_pg_fini(&pg);
}
