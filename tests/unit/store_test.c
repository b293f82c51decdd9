// SPDX-License-Identifier: MIT
//
// Unit tests of store, dtxd's store interface, through its header only, run
// against both backends (suites store_rocksdb and store_pg): records and
// specs survive a reopen, transactions move from the unfinished to the
// finished ones at FINISH, scans page in gid order over both (gids may
// contain '/'), group commit really shares syncs, purge hides exactly the
// expired finished transactions, close loses no accepted write, bad input
// is refused. RocksDB's own: a second open of a directory is refused and
// so is one in an earlier layout, a purge frees whole files of expired
// records at once (compaction drops the rest: both counted exactly), a
// full disk is an error, not a crash. PostgreSQL's own are in
// store_pg_test.c. Each RocksDB test works in its own mkdtemp() directory
// and removes it; each PostgreSQL test in its own database of one server
// the suite starts (tests/support/pg.h).

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <rocksdb/c.h>

#include "pg.h"
#include "store.h"

// The backend the running test uses, and where its store is: a directory
// or a connection string.
static dtxd_store_backend backend;
static char               where[512];

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

// A test body run once per backend: Test(store_rocksdb, name) and
// Test(store_pg, name).
#define BOTH(name)                                                            \
	static void name##_body(void);                                        \
	Test(store_rocksdb, name)                                             \
	{                                                                     \
		backend = DTXD_STORE_ROCKSDB;                                 \
		name##_body();                                                \
	}                                                                     \
	Test(store_pg, name)                                                  \
	{                                                                     \
		backend = DTXD_STORE_POSTGRES;                                \
		name##_body();                                                \
	}                                                                     \
	static void name##_body(void)

// Removes a directory tree. RocksDB's directories are flat, but the
// recursion keeps this correct should it ever add a subdirectory.
static void
rm_tree(const char *path)
{
	DIR           *d;
	struct dirent *e;
	char           sub[4096];
	struct stat    st;

	if ((d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0) {
				continue;
			}
			snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) {
				rm_tree(sub);
			} else {
				unlink(sub);
			}
		}
		closedir(d);
	}
	rmdir(path);
}

static char *
tmp_dir(char *buf, size_t cap)
{
	snprintf(buf, cap, "/tmp/dtx-store-test-XXXXXX");
	cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
	return buf;
}

// A fresh, empty place for the test's store (where).
static const char *
fresh(void)
{
	static int n;
	char       db[64];

	if (backend == DTXD_STORE_ROCKSDB) {
		return tmp_dir(where, sizeof(where));
	}
	snprintf(db, sizeof(db), "store_%d_%d", (int)getpid(), n++);
	cr_assert_eq(dtxt_pg_suite_db(db, where, sizeof(where)), 0);
	return where;
}

// Removes the test's store (PostgreSQL's go with the server).
static void
discard(const char *w)
{
	if (backend == DTXD_STORE_ROCKSDB) {
		rm_tree(w);
	}
}

static dtxd_store *
open_store(const char *dir, uint32_t sync_delay_ms)
{
	dtxd_store     *s = NULL;
	dtxd_store_opts o;
	int             rv;

	dtxd_store_opts_init(&o);
	o.backend       = backend;
	o.sync_delay_ms = sync_delay_ms;
	// The tests purge by hand, at times of their choosing.
	o.purge_every_ms = 0;
	rv               = dtxd_store_open(&s, dir, &o);
	cr_assert_eq(rv, 0, "open %s: %s", dir, dtx_strerror(rv));
	return s;
}

// A done callback the test thread can wait for.
typedef struct waiter {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	int             calls;
	int             errors; // calls with rv != 0
	int             rv;     // of the last call
} waiter;

static void
waiter_init(waiter *w)
{
	pthread_mutex_init(&w->mtx, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->calls  = 0;
	w->errors = 0;
	w->rv     = -1;
}

static void
waiter_fini(waiter *w)
{
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mtx);
}

static void
waiter_done(void *arg, int rv)
{
	waiter *w = arg;

	pthread_mutex_lock(&w->mtx);
	w->calls++;
	if (rv != 0) {
		w->errors++;
	}
	w->rv = rv;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mtx);
}

// Queues op and waits for its done; returns the queueing error or done's
// rv. Safe from any thread (no Criterion assertion inside).
static int
write_wait(dtxd_store *s, dtxd_wop *op)
{
	waiter w;
	int    rv;

	waiter_init(&w);
	op->done = waiter_done;
	op->arg  = &w;
	if ((rv = dtxd_store_write(s, op)) == 0) {
		pthread_mutex_lock(&w.mtx);
		while (w.calls == 0) {
			pthread_cond_wait(&w.cv, &w.mtx);
		}
		rv = w.rv;
		pthread_mutex_unlock(&w.mtx);
	}
	waiter_fini(&w);
	return rv;
}

static int
put_create(dtxd_store *s, const char *gid, const char *rec, uint32_t nspecs,
    const char *const *specs)
{
	dtxd_wop       op;
	const uint8_t *sp[8];
	size_t         sl[8];

	cr_assert_leq(nspecs, 8);
	for (uint32_t i = 0; i < nspecs; i++) {
		sp[i] = (const uint8_t *)specs[i];
		sl[i] = strlen(specs[i]);
	}
	memset(&op, 0, sizeof(op));
	op.kind       = DTXD_WOP_CREATE;
	op.gid        = gid;
	op.record     = (const uint8_t *)rec;
	op.record_len = strlen(rec);
	op.nspecs     = nspecs;
	op.specs      = sp;
	op.spec_lens  = sl;
	op.owner      = 1;
	op.sync       = true;
	return write_wait(s, &op);
}

static int
put_update(dtxd_store *s, const char *gid, const char *rec)
{
	dtxd_wop op;

	memset(&op, 0, sizeof(op));
	op.kind       = DTXD_WOP_UPDATE;
	op.gid        = gid;
	op.record     = (const uint8_t *)rec;
	op.record_len = strlen(rec);
	op.owner      = 1;
	op.epoch      = 1;
	return write_wait(s, &op);
}

static int
put_finish(dtxd_store *s, const char *gid, const char *rec, int64_t expire)
{
	dtxd_wop op;

	memset(&op, 0, sizeof(op));
	op.kind       = DTXD_WOP_FINISH;
	op.gid        = gid;
	op.record     = (const uint8_t *)rec;
	op.record_len = strlen(rec);
	op.expire_ms  = expire;
	op.owner      = 1;
	op.epoch      = 1;
	op.sync       = true;
	return write_wait(s, &op);
}

// Asserts that key holds exactly want (a C string).
static void
expect_record(dtxd_store *s, const char *gid, const char *want)
{
	uint8_t *val = NULL;
	size_t   len = 0;
	int      rv  = dtxd_store_get_record(s, gid, &val, &len);

	cr_assert_eq(rv, 0, "get %s: %s", gid, dtx_strerror(rv));
	cr_assert_eq(len, strlen(want), "record of %s", gid);
	cr_assert_eq(memcmp(val, want, len), 0, "record of %s", gid);
	free(val);
}

static void
expect_spec(dtxd_store *s, const char *gid, uint32_t i, const char *want)
{
	uint8_t *val = NULL;
	size_t   len = 0;
	int      rv  = dtxd_store_get_spec(s, gid, i, &val, &len);

	cr_assert_eq(rv, 0, "spec %u of %s: %s", i, gid, dtx_strerror(rv));
	cr_assert_eq(len, strlen(want), "spec %u of %s", i, gid);
	cr_assert_eq(memcmp(val, want, len), 0, "spec %u of %s", i, gid);
	free(val);
}

static void
expect_no_record(dtxd_store *s, const char *gid)
{
	uint8_t *val = NULL;
	size_t   len = 0;

	cr_assert_eq(dtxd_store_get_record(s, gid, &val, &len), DTX_ENOTFOUND,
	    "%s", gid);
	cr_assert_null(val);
}

static void
expect_no_spec(dtxd_store *s, const char *gid, uint32_t i)
{
	uint8_t *val = NULL;
	size_t   len = 0;

	cr_assert_eq(dtxd_store_get_spec(s, gid, i, &val, &len), DTX_ENOTFOUND,
	    "spec %u of %s", i, gid);
	cr_assert_null(val);
}

// Collects the gids a scan visits, comma-separated, and can stop early.
typedef struct collect {
	char buf[1024];
	int  seen;
	int  stop_after; // 0: never
	int  stop_with;
} collect;

static int
collect_fn(void *arg, const char *gid, const uint8_t *rec, size_t len)
{
	collect *c = arg;
	size_t   n = strlen(c->buf);

	(void)rec;
	(void)len;
	snprintf(
	    c->buf + n, sizeof(c->buf) - n, "%s%s", n > 0 ? "," : "", gid);
	c->seen++;
	if (c->stop_after > 0 && c->seen == c->stop_after) {
		return c->stop_with;
	}
	return 0;
}

// The same for an unfinished scan, which also sees the specs: each gid is
// followed by "/<number of specs>".
static int
collect_unf_fn(void *arg, const dtxd_store_unfinished *u)
{
	char gid[DTX_GID_MAX + 16];

	snprintf(gid, sizeof(gid), "%s/%u", u->gid, u->nspecs);
	return collect_fn(arg, gid, u->record, u->record_len);
}

static const char *
scan_unfinished(dtxd_store *s, collect *c)
{
	memset(c, 0, sizeof(*c));
	cr_assert_eq(dtxd_store_scan_unfinished(s, collect_unf_fn, c), 0);
	return c->buf;
}

BOTH(write_then_reopen_reads_the_same_record_and_specs)
{
	const char       *dir;
	dtxd_store       *s;
	const char *const specs[] = {"spec-zero", "", "spec-two"};

	dir = fresh();
	s   = open_store(dir, 0);
	cr_assert_eq(put_create(s, "gid-1", "record-1", 3, specs), 0);
	dtxd_store_close(s);

	s = open_store(dir, 0);
	expect_record(s, "gid-1", "record-1");
	expect_spec(s, "gid-1", 0, "spec-zero");
	expect_spec(s, "gid-1", 1, "");
	expect_spec(s, "gid-1", 2, "spec-two");
	expect_no_spec(s, "gid-1", 3);
	dtxd_store_close(s);
	discard(dir);
}

BOTH(finish_moves_a_transaction_from_unfinished_to_finished)
{
	const char       *dir;
	collect           c;
	uint64_t          purged = 99;
	dtxd_store       *s;
	const char *const specs[] = {"s0"};

	dir = fresh();
	s   = open_store(dir, 0);
	cr_assert_eq(put_create(s, "b", "rec-b", 1, specs), 0);
	cr_assert_eq(put_create(s, "a", "rec-a", 1, specs), 0);
	cr_assert_eq(put_create(s, "c", "rec-c", 1, specs), 0);
	cr_assert_str_eq(scan_unfinished(s, &c), "a/1,b/1,c/1");

	// The scan stops at fn's first non-zero return and passes it on.
	memset(&c, 0, sizeof(c));
	c.stop_after = 2;
	c.stop_with  = 42;
	cr_assert_eq(dtxd_store_scan_unfinished(s, collect_unf_fn, &c), 42);
	cr_assert_str_eq(c.buf, "a/1,b/1");

	// Finished: no longer unfinished, its last record readable, its
	// specs gone (only recovery reads them).
	cr_assert_eq(put_finish(s, "b", "rec-b-done", 1000), 0);
	cr_assert_str_eq(scan_unfinished(s, &c), "a/1,c/1");
	expect_record(s, "b", "rec-b-done");
	expect_no_spec(s, "b", 0);
	expect_spec(s, "a", 0, "s0");

	// Retention: nothing is due just before the expiry, b is at it.
	cr_assert_eq(dtxd_store_purge(s, 999, &purged), 0);
	cr_assert_eq(purged, 0);
	expect_record(s, "b", "rec-b-done");
	dtxd_store_close(s);

	// Both families are durable.
	s = open_store(dir, 0);
	cr_assert_str_eq(scan_unfinished(s, &c), "a/1,c/1");
	expect_record(s, "b", "rec-b-done");
	cr_assert_eq(dtxd_store_purge(s, 1000, &purged), 0);
	expect_no_record(s, "b");
	expect_record(s, "a", "rec-a");
	dtxd_store_close(s);
	discard(dir);
}

BOTH(update_rewrites_the_record)
{
	const char       *dir;
	collect           c;
	dtxd_store       *s;
	const char *const specs[] = {"s0", "s1"};

	dir = fresh();
	s   = open_store(dir, 0);
	cr_assert_eq(put_create(s, "g", "first", 2, specs), 0);
	cr_assert_eq(put_update(s, "g", "second, longer"), 0);
	expect_record(s, "g", "second, longer");
	cr_assert_eq(put_update(s, "g", "3rd"), 0);
	dtxd_store_close(s);

	s = open_store(dir, 0);
	expect_record(s, "g", "3rd");
	expect_spec(s, "g", 0, "s0");
	expect_spec(s, "g", 1, "s1");
	// An update leaves the transaction unfinished.
	cr_assert_str_eq(scan_unfinished(s, &c), "g/2");
	dtxd_store_close(s);
	discard(dir);
}

BOTH(scan_records_pages_by_cursor_in_gid_order)
{
	const char       *dir;
	collect           c;
	dtxd_store       *s;
	const char *const gids[]  = {"b", "a/z", "a", "c", "a/", "ab", "a/b"};
	const char *const specs[] = {"x"};

	dir = fresh();
	s   = open_store(dir, 0);
	for (size_t i = 0; i < sizeof(gids) / sizeof(gids[0]); i++) {
		cr_assert_eq(put_create(s, gids[i], gids[i], 1, specs), 0);
	}
	// Some finished, in another family: the scan merges both.
	cr_assert_eq(put_finish(s, "a/", "a/", 5000), 0);
	cr_assert_eq(put_finish(s, "ab", "ab", 4000), 0);
	cr_assert_eq(put_finish(s, "c", "c", 6000), 0);

	// Bytewise gid order: '/' sorts before letters.
	memset(&c, 0, sizeof(c));
	cr_assert_eq(dtxd_store_scan_records(s, "", collect_fn, &c), 0);
	cr_assert_str_eq(c.buf, "a,a/,a/b,a/z,ab,b,c");

	// Pages of three, each starting strictly after the previous last gid;
	// -1 stops a scan without an error.
	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	c.stop_with  = -1;
	cr_assert_eq(dtxd_store_scan_records(s, "", collect_fn, &c), 0);
	cr_assert_str_eq(c.buf, "a,a/,a/b");
	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	c.stop_with  = -1;
	cr_assert_eq(dtxd_store_scan_records(s, "a/b", collect_fn, &c), 0);
	cr_assert_str_eq(c.buf, "a/z,ab,b");
	memset(&c, 0, sizeof(c));
	c.stop_after = 3;
	c.stop_with  = -1;
	cr_assert_eq(dtxd_store_scan_records(s, "b", collect_fn, &c), 0);
	cr_assert_str_eq(c.buf, "c");

	// A cursor that names no transaction still pages from its place.
	memset(&c, 0, sizeof(c));
	cr_assert_eq(dtxd_store_scan_records(s, "a/c", collect_fn, &c), 0);
	cr_assert_str_eq(c.buf, "a/z,ab,b,c");

	// A positive return stops the scan and is returned.
	memset(&c, 0, sizeof(c));
	c.stop_after = 1;
	c.stop_with  = 7;
	cr_assert_eq(dtxd_store_scan_records(s, "ab", collect_fn, &c), 7);
	cr_assert_str_eq(c.buf, "b");

	// A purged transaction is not listed. A gid used again after its
	// transaction finished: RocksDB (one dtxd, which looks before it
	// creates) lists it once, as the new one; PostgreSQL refuses the
	// create (another node may have finished it).
	if (backend == DTXD_STORE_ROCKSDB) {
		cr_assert_eq(put_create(s, "c", "c again", 1, specs), 0);
	} else {
		cr_assert_eq(
		    put_create(s, "c", "c again", 1, specs), DTX_EEXIST);
	}
	cr_assert_eq(dtxd_store_purge(s, 4000, &(uint64_t) {0}), 0);
	memset(&c, 0, sizeof(c));
	cr_assert_eq(dtxd_store_scan_records(s, "", collect_fn, &c), 0);
	cr_assert_str_eq(c.buf, "a,a/,a/b,a/z,b,c");
	expect_record(s, "c", backend == DTXD_STORE_ROCKSDB ? "c again" : "c");
	dtxd_store_close(s);
	discard(dir);
}

Test(store_rocksdb, a_second_open_of_the_same_dir_returns_elocked)
{
	char        dir[64];
	dtxd_store *s;
	dtxd_store *s2 = NULL;
	int         go[2];
	pid_t       pid;
	int         status;
	char        byte = 0;

	tmp_dir(dir, sizeof(dir));
	cr_assert_eq(pipe(go), 0);

	// Another process: forked before this one has touched RocksDB, so the
	// child is single-threaded and meets the LOCK file's fcntl lock.
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		dtxd_store *cs = NULL;
		int         rv;

		close(go[1]);
		if (read(go[0], &byte, 1) != 1) {
			_exit(100);
		}
		rv = dtxd_store_open(&cs, dir, NULL);
		if (rv == 0) {
			dtxd_store_close(cs);
		}
		_exit(rv);
	}
	close(go[0]);
	s = open_store(dir, 0);
	cr_assert_eq(write(go[1], &byte, 1), 1);
	close(go[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), DTX_ELOCKED, "child open: %s",
	    dtx_strerror(WEXITSTATUS(status)));

	// The same process opening it twice is refused the same way.
	cr_assert_eq(dtxd_store_open(&s2, dir, NULL), DTX_ELOCKED);
	cr_assert_null(s2);
	dtxd_store_close(s);

	// Once closed, the directory opens again.
	s = open_store(dir, 0);
	dtxd_store_close(s);
	rm_tree(dir);
}

Test(store_rocksdb, open_refuses_a_missing_dir_without_create_if_missing)
{
	char            dir[64];
	char            sub[96];
	dtxd_store     *s = NULL;
	dtxd_store_opts o;

	tmp_dir(dir, sizeof(dir));
	snprintf(sub, sizeof(sub), "%s/absent", dir);
	dtxd_store_opts_init(&o);
	cr_assert(o.create_if_missing);
	o.create_if_missing = false;
	cr_assert_eq(dtxd_store_open(&s, sub, &o), DTX_ESTORAGE);
	cr_assert_null(s);
	cr_assert_eq(dtxd_store_open(&s, NULL, &o), DTX_EINVAL);
	cr_assert_eq(dtxd_store_open(NULL, dir, &o), DTX_EINVAL);
	dtxd_store_close(NULL);
	rm_tree(dir);
}

BOTH(get_of_a_missing_gid_returns_enotfound)
{
	const char *dir;
	dtxd_store *s;

	dir = fresh();
	s   = open_store(dir, 0);
	expect_no_record(s, "nobody");
	expect_no_spec(s, "nobody", 0);
	dtxd_store_close(s);
	discard(dir);
}

BOTH(invalid_writes_and_reads_are_refused_with_einval)
{
	const char *dir;
	char        longgid[DTX_GID_MAX + 2];
	dtxd_store *s;
	dtxd_wop    op;
	uint8_t    *val = NULL;
	size_t      len;

	memset(longgid, 'x', sizeof(longgid) - 1);
	longgid[sizeof(longgid) - 1] = '\0';
	dir                          = fresh();
	s                            = open_store(dir, 0);

	memset(&op, 0, sizeof(op));
	op.kind = DTXD_WOP_UPDATE;
	op.gid  = "ok";
	cr_assert_eq(dtxd_store_write(s, &op), DTX_EINVAL, "no done");
	cr_assert_eq(dtxd_store_write(s, NULL), DTX_EINVAL);
	cr_assert_eq(put_update(s, "", "r"), DTX_EINVAL);
	cr_assert_eq(put_update(s, "tab\there", "r"), DTX_EINVAL);
	cr_assert_eq(put_update(s, longgid, "r"), DTX_EINVAL);
	longgid[DTX_GID_MAX] = '\0'; // Exactly the limit is fine.
	cr_assert_eq(put_create(s, longgid, "r", 0, NULL), 0);
	expect_record(s, longgid, "r");
	cr_assert_eq(put_finish(s, "neg", "r", -1), DTX_EINVAL);
	memset(&op, 0, sizeof(op));
	op.kind = (dtxd_wop_kind)99;
	op.gid  = "ok";
	cr_assert_eq(write_wait(s, &op), DTX_EINVAL);
	cr_assert_eq(dtxd_store_get_record(s, "", &val, &len), DTX_EINVAL);
	cr_assert_eq(dtxd_store_get_spec(s, NULL, 0, &val, &len), DTX_EINVAL);
	cr_assert_null(val);
	dtxd_store_close(s);
	discard(dir);
}

// Group commit: eight threads, each with one synced write in flight at a
// time. While one batch sleeps in its synced write, the others queue and
// share the next batch, so far fewer syncs than operations are needed.
#define GC_THREADS 8
#define GC_WRITES  50

typedef struct gc_ctx {
	dtxd_store     *s;
	int             id;
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	int             calls[GC_WRITES];
	int             bad_rv;
	int             queue_err;
} gc_ctx;

typedef struct gc_op {
	gc_ctx *c;
	int     i;
} gc_op;

static void
gc_done(void *arg, int rv)
{
	gc_op  *g = arg;
	gc_ctx *c = g->c;

	pthread_mutex_lock(&c->mtx);
	c->calls[g->i]++;
	if (rv != 0) {
		c->bad_rv++;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mtx);
}

static void *
gc_thread(void *arg)
{
	gc_ctx *c = arg;

	for (int i = 0; i < GC_WRITES; i++) {
		char           gid[32];
		char           rec[32];
		dtxd_wop       op;
		gc_op          g = {c, i};
		const uint8_t *sp[1];
		size_t         sl[1];
		int            rv;

		snprintf(gid, sizeof(gid), "t%d/w%03d", c->id, i);
		snprintf(rec, sizeof(rec), "record %d %d", c->id, i);
		sp[0] = (const uint8_t *)gid;
		sl[0] = strlen(gid);
		memset(&op, 0, sizeof(op));
		op.kind       = DTXD_WOP_CREATE;
		op.gid        = gid;
		op.record     = (const uint8_t *)rec;
		op.record_len = strlen(rec);
		op.nspecs     = 1;
		op.specs      = sp;
		op.spec_lens  = sl;
		op.sync       = true;
		op.done       = gc_done;
		op.arg        = &g;
		if ((rv = dtxd_store_write(c->s, &op)) != 0) {
			c->queue_err = rv;
			break;
		}
		pthread_mutex_lock(&c->mtx);
		while (c->calls[i] == 0) {
			pthread_cond_wait(&c->cv, &c->mtx);
		}
		pthread_mutex_unlock(&c->mtx);
	}
	return NULL;
}

BOTH(group_commit_shares_syncs_among_concurrent_writers)
{
	const char      *dir;
	dtxd_store      *s;
	gc_ctx           ctx[GC_THREADS];
	pthread_t        th[GC_THREADS];
	dtxd_store_stats st;

	dir = fresh();
	s   = open_store(dir, 20);
	for (int t = 0; t < GC_THREADS; t++) {
		memset(&ctx[t], 0, sizeof(ctx[t]));
		ctx[t].s  = s;
		ctx[t].id = t;
		pthread_mutex_init(&ctx[t].mtx, NULL);
		pthread_cond_init(&ctx[t].cv, NULL);
		cr_assert_eq(
		    pthread_create(&th[t], NULL, gc_thread, &ctx[t]), 0);
	}
	for (int t = 0; t < GC_THREADS; t++) {
		pthread_join(th[t], NULL);
	}
	dtxd_store_get_stats(s, &st);
	dtxd_store_close(s);

	for (int t = 0; t < GC_THREADS; t++) {
		cr_assert_eq(ctx[t].queue_err, 0, "thread %d: %s", t,
		    dtx_strerror(ctx[t].queue_err));
		cr_assert_eq(ctx[t].bad_rv, 0, "thread %d", t);
		for (int i = 0; i < GC_WRITES; i++) {
			cr_assert_eq(ctx[t].calls[i], 1, "op %d/%d", t, i);
		}
		pthread_cond_destroy(&ctx[t].cv);
		pthread_mutex_destroy(&ctx[t].mtx);
	}
	cr_log_info("group commit: %llu ops in %llu batches, %llu syncs",
	    (unsigned long long)st.ops, (unsigned long long)st.batches,
	    (unsigned long long)st.syncs);
	cr_assert_eq(st.ops, GC_THREADS * GC_WRITES);
	cr_assert_eq(st.errors, 0);
	cr_assert_leq(st.syncs, st.batches);
	cr_assert_leq(st.syncs * 2, st.ops, "syncs %llu for %llu ops",
	    (unsigned long long)st.syncs, (unsigned long long)st.ops);

	s = open_store(dir, 0);
	for (int t = 0; t < GC_THREADS; t++) {
		for (int i = 0; i < GC_WRITES; i++) {
			char gid[32];
			char rec[32];

			snprintf(gid, sizeof(gid), "t%d/w%03d", t, i);
			snprintf(rec, sizeof(rec), "record %d %d", t, i);
			expect_record(s, gid, rec);
			expect_spec(s, gid, 0, gid);
		}
	}
	dtxd_store_close(s);
	discard(dir);
}

BOTH(purge_hides_only_expired_finished_transactions)
{
	const char       *dir;
	collect           c;
	uint64_t          purged = 99;
	dtxd_store       *s;
	dtxd_store_stats  st;
	const char *const specs[] = {"s0", "s1"};

	dir = fresh();
	s   = open_store(dir, 0);
	// "a" expires first; "a/bcde" shares a's prefix and must survive a's
	// purge; "live" never finishes.
	cr_assert_eq(put_create(s, "a", "rec-a", 2, specs), 0);
	cr_assert_eq(put_create(s, "a/bcde", "rec-a2", 2, specs), 0);
	cr_assert_eq(put_create(s, "late", "rec-late", 2, specs), 0);
	cr_assert_eq(put_create(s, "live", "rec-live", 2, specs), 0);
	cr_assert_eq(put_finish(s, "a", "done-a", 1000), 0);
	cr_assert_eq(put_finish(s, "a/bcde", "done-a2", 3000), 0);
	cr_assert_eq(put_finish(s, "late", "done-late", 5000), 0);

	cr_assert_eq(dtxd_store_purge(s, 2000, &purged), 0);
	// RocksDB: nothing is in a file below level 0 yet, so nothing is
	// freed at once; PostgreSQL deletes the row.
	cr_assert_eq(purged, backend == DTXD_STORE_ROCKSDB ? 0 : 1);
	expect_no_record(s, "a");
	expect_record(s, "a/bcde", "done-a2");
	expect_record(s, "late", "done-late");
	expect_record(s, "live", "rec-live");
	expect_spec(s, "live", 0, "s0");
	cr_assert_str_eq(scan_unfinished(s, &c), "live/2");

	// A purge at an earlier time brings nothing back.
	cr_assert_eq(dtxd_store_purge(s, 1500, &purged), 0);
	expect_no_record(s, "a");

	// Compaction drops what the purge hid, and only that.
	cr_assert_eq(dtxd_store_compact(s), 0);
	dtxd_store_get_stats(s, &st);
	cr_assert_eq(st.purged, 1);
	expect_record(s, "a/bcde", "done-a2");

	cr_assert_eq(dtxd_store_purge(s, 5000, &purged), 0);
	expect_no_record(s, "a/bcde");
	expect_no_record(s, "late");
	expect_record(s, "live", "rec-live");
	memset(&c, 0, sizeof(c));
	cr_assert_eq(dtxd_store_scan_records(s, "", collect_fn, &c), 0);
	cr_assert_str_eq(c.buf, "live");
	cr_assert_eq(dtxd_store_compact(s), 0);
	dtxd_store_get_stats(s, &st);
	cr_assert_eq(st.purged, 3);

	// Far in the future, unfinished transactions are still kept.
	cr_assert_eq(dtxd_store_purge(s, INT64_MAX, &purged), 0);
	expect_record(s, "live", "rec-live");
	dtxd_store_close(s);

	// What compaction dropped stays gone after a reopen, which starts
	// with no purge time.
	s = open_store(dir, 0);
	expect_no_record(s, "a");
	expect_no_record(s, "late");
	cr_assert_str_eq(scan_unfinished(s, &c), "live/2");
	dtxd_store_close(s);
	discard(dir);
}

// A purge frees whole files of expired records without reading them: the
// finished family is in expiry order, so those files lie at its start.
// Records of files straddling the limit are dropped by compaction later;
// together the two account for every expired record exactly.
Test(store_rocksdb, purge_frees_whole_files_of_expired_records_at_once)
{
	enum { N = 100000, HALF = N / 2, RECLEN = 200 };
	char                 dir[64];
	char                 gid[32];
	uint64_t             purged = 0;
	dtxd_store          *s;
	dtxd_store_stats     st;
	static char          gids[N][16];
	static uint8_t       recs[N][RECLEN];
	dtxd_store_finished *f = calloc(N, sizeof(*f));
	uint64_t             x = 88172645463325252ull;

	cr_assert_not_null(f);
	tmp_dir(dir, sizeof(dir));
	s = open_store(dir, 0);
	// Incompressible records, so that they fill several files.
	for (int i = 0; i < N; i++) {
		for (int j = 0; j < RECLEN; j++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			recs[i][j] = (uint8_t)x;
		}
		snprintf(gids[i], sizeof(gids[i]), "g%06d", i);
		f[i].gid        = gids[i];
		f[i].record     = recs[i];
		f[i].record_len = RECLEN;
		f[i].expire_ms  = 1000 + i;
	}
	// Loaded in pieces, as dtx-bench preloads, and compacted once so
	// that the pieces' files are cut at the usual size.
	for (int i = 0; i < N; i += 10000) {
		cr_assert_eq(dtxd_store_ingest_finished(s, f + i, 10000), 0);
	}
	cr_assert_eq(dtxd_store_compact(s), 0);
	dtxd_store_get_stats(s, &st);
	cr_assert_eq(st.purged, 0);

	// Records 0..HALF expire at or before 1000 + HALF.
	cr_assert_eq(dtxd_store_purge(s, 1000 + HALF, &purged), 0);
	cr_log_info("purge: %llu of %d expired records freed with their "
	            "files",
	    (unsigned long long)purged, HALF + 1);
	cr_assert_gt(purged, 0, "no whole file was freed");
	cr_assert_leq(purged, HALF + 1);
	dtxd_store_get_stats(s, &st);
	cr_assert_eq(st.purged, purged);
	snprintf(gid, sizeof(gid), "g%06d", 0);
	expect_no_record(s, gid);
	snprintf(gid, sizeof(gid), "g%06d", HALF);
	expect_no_record(s, gid);
	snprintf(gid, sizeof(gid), "g%06d", HALF + 1);
	{
		uint8_t *val = NULL;
		size_t   len = 0;
		cr_assert_eq(dtxd_store_get_record(s, gid, &val, &len), 0);
		cr_assert_eq(len, RECLEN);
		cr_assert_eq(memcmp(val, recs[HALF + 1], RECLEN), 0);
		free(val);
	}

	cr_assert_eq(dtxd_store_compact(s), 0);
	dtxd_store_get_stats(s, &st);
	cr_assert_eq(
	    st.purged, HALF + 1, "purged %llu", (unsigned long long)st.purged);
	dtxd_store_close(s);
	free(f);
	rm_tree(dir);
}

BOTH(ingest_refuses_bad_input_and_loads_readable_records)
{
	const char         *dir;
	dtxd_store         *s;
	dtxd_store_finished f[3] = {
	    {"one", (const uint8_t *)"r1", 2, 10},
	    {"two", (const uint8_t *)"r2", 2, 20},
	    {"zzz", (const uint8_t *)"r3", 2, 20},
	};

	dir = fresh();
	s   = open_store(dir, 0);
	cr_assert_eq(dtxd_store_ingest_finished(NULL, f, 3), DTX_EINVAL);
	cr_assert_eq(dtxd_store_ingest_finished(s, NULL, 3), DTX_EINVAL);
	f[1].expire_ms = -1;
	cr_assert_eq(dtxd_store_ingest_finished(s, f, 3), DTX_EINVAL);
	f[1].expire_ms = 20;
	f[1].gid       = "bad\tgid";
	cr_assert_eq(dtxd_store_ingest_finished(s, f, 3), DTX_EINVAL);
	f[1].gid = "a-before-one"; // out of gid order
	cr_assert_eq(dtxd_store_ingest_finished(s, f, 3), DTX_EINVAL);
	f[1].gid       = "two";
	f[1].expire_ms = 5; // out of expiry order
	cr_assert_eq(dtxd_store_ingest_finished(s, f, 3), DTX_EINVAL);
	expect_no_record(s, "one"); // nothing of a refused load
	f[1].expire_ms = 20;
	cr_assert_eq(dtxd_store_ingest_finished(s, f, 3), 0);
	cr_assert_eq(dtxd_store_ingest_finished(s, f, 0), 0);
	dtxd_store_close(s);

	// Durable without a flush; purged like any finished transaction.
	s = open_store(dir, 0);
	expect_record(s, "one", "r1");
	expect_record(s, "two", "r2");
	cr_assert_eq(dtxd_store_purge(s, 10, &(uint64_t) {0}), 0);
	expect_no_record(s, "one");
	expect_record(s, "two", "r2");
	expect_record(s, "zzz", "r3");
	dtxd_store_close(s);
	discard(dir);
}

// A directory an earlier dtxd wrote (every key in the default column
// family) is refused with DTX_ESTORAGE, and left as it was.
Test(
    store_rocksdb, a_directory_in_the_earlier_layout_is_refused_and_left_alone)
{
	char               dir[64];
	dtxd_store        *s = NULL;
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_t         *db;
	char              *err = NULL;
	char              *v;
	size_t             vlen = 0;

	tmp_dir(dir, sizeof(dir));
	rocksdb_options_set_create_if_missing(o, 1);
	db = rocksdb_open(o, dir, &err);
	cr_assert_null(err, "%s", err);
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_put(db, wo, "u/old", 5, "", 0, &err);
	cr_assert_null(err, "%s", err);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_close(db);

	cr_assert_eq(dtxd_store_open(&s, dir, NULL), DTX_ESTORAGE);
	cr_assert_null(s);

	// Untouched: no family was added, the key is still there.
	db = rocksdb_open(o, dir, &err);
	cr_assert_null(err, "the earlier layout no longer opens: %s", err);
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	v = rocksdb_get(db, ro, "u/old", 5, &vlen, &err);
	cr_assert_null(err, "%s", err);
	cr_assert_not_null(v);
	rocksdb_free(v);
	rocksdb_readoptions_destroy(ro);
	rocksdb_close(db);
	rocksdb_options_destroy(o);
	rm_tree(dir);
}

// Close while writes are in flight: each chain keeps exactly one write
// queued, and its done callback queues the next one until the store says
// DTX_ECLOSED. Every accepted write must see its done exactly once; a
// refused one must never see it.
#define CHAINS 16

typedef struct chain {
	dtxd_store     *s;
	dtxd_wop        op;
	char            gid[16];
	pthread_mutex_t mtx;
	int             accepted;
	int             dones;
	int             closed;
	int             other;
	int             bad_rv;
} chain;

static void
chain_done(void *arg, int rv)
{
	chain *c = arg;
	int    qrv;

	pthread_mutex_lock(&c->mtx);
	c->dones++;
	if (rv != 0) {
		c->bad_rv++;
	}
	pthread_mutex_unlock(&c->mtx);

	// The op is ours again now that done runs: queue it once more.
	qrv = dtxd_store_write(c->s, &c->op);
	pthread_mutex_lock(&c->mtx);
	if (qrv == 0) {
		c->accepted++;
	} else if (qrv == DTX_ECLOSED) {
		c->closed++;
	} else {
		c->other++;
	}
	pthread_mutex_unlock(&c->mtx);
}

BOTH(writes_after_close_has_begun_are_refused_or_drained)
{
	const char  *dir;
	dtxd_store  *s;
	static chain ch[CHAINS];

	dir = fresh();
	s   = open_store(dir, 5);
	for (int i = 0; i < CHAINS; i++) {
		chain *c = &ch[i];

		memset(c, 0, sizeof(*c));
		pthread_mutex_init(&c->mtx, NULL);
		c->s = s;
		snprintf(c->gid, sizeof(c->gid), "chain-%d", i);
		cr_assert_eq(put_create(s, c->gid, "", 0, NULL), 0);
		c->op.kind       = DTXD_WOP_UPDATE;
		c->op.owner      = 1;
		c->op.epoch      = 1;
		c->op.gid        = c->gid;
		c->op.record     = (const uint8_t *)"x";
		c->op.record_len = 1;
		c->op.sync       = (i % 2) == 0;
		c->op.done       = chain_done;
		c->op.arg        = c;
		pthread_mutex_lock(&c->mtx);
		cr_assert_eq(dtxd_store_write(s, &c->op), 0);
		c->accepted++;
		pthread_mutex_unlock(&c->mtx);
	}
	nanosleep(&(struct timespec) {0, 30 * 1000 * 1000}, NULL);
	dtxd_store_close(s);

	for (int i = 0; i < CHAINS; i++) {
		chain *c = &ch[i];

		cr_assert_eq(c->dones, c->accepted, "chain %d", i);
		cr_assert_eq(c->closed, 1, "chain %d", i);
		cr_assert_eq(c->other, 0, "chain %d", i);
		cr_assert_eq(c->bad_rv, 0, "chain %d", i);
		pthread_mutex_destroy(&c->mtx);
	}

	// Whatever was accepted is durable.
	s = open_store(dir, 0);
	for (int i = 0; i < CHAINS; i++) {
		expect_record(s, ch[i].gid, "x");
	}
	dtxd_store_close(s);
	discard(dir);
}

// The full-disk test needs a small file system of its own: a 1 MiB tmpfs,
// which only root may mount. Elsewhere it is skipped.
Test(store_rocksdb, a_full_disk_fails_the_write_and_the_store_still_closes)
{
	char        dir[64];
	char        cmd[256];
	char        fill[128];
	char        sub[96];
	dtxd_store *s;
	dtxd_wop    op;
	FILE       *f;
	static char buf[64 * 1024];
	uint8_t    *big;
	size_t      big_len = 256 * 1024;
	int         rv;

	tmp_dir(dir, sizeof(dir));
	snprintf(cmd, sizeof(cmd),
	    "mount -t tmpfs -o size=1m dtx-store-test %s 2>/dev/null", dir);
	if (geteuid() != 0 || system(cmd) != 0) {
		rm_tree(dir);
		cr_skip_test("mounting a tmpfs is not permitted here");
	}
	snprintf(sub, sizeof(sub), "%s/db", dir);
	s = open_store(sub, 0);

	// Fill what is left of the file system.
	snprintf(fill, sizeof(fill), "%s/filler", dir);
	cr_assert_not_null(f = fopen(fill, "w"));
	memset(buf, 'f', sizeof(buf));
	while (fwrite(buf, 1, sizeof(buf), f) == sizeof(buf)) {
	}
	fclose(f);

	cr_assert_not_null(big = malloc(big_len));
	memset(big, 'r', big_len);
	memset(&op, 0, sizeof(op));
	op.kind       = DTXD_WOP_UPDATE;
	op.gid        = "too-big";
	op.record     = big;
	op.record_len = big_len;
	op.sync       = true;
	rv            = write_wait(s, &op);
	cr_assert(rv == DTX_ENOSPC || rv == DTX_ESTORAGE, "write: %s",
	    dtx_strerror(rv));

	// The store is still usable for reads and closes cleanly.
	expect_no_record(s, "too-big");
	dtxd_store_close(s);
	free(big);

	snprintf(cmd, sizeof(cmd), "umount %s", dir);
	cr_assert_eq(system(cmd), 0);
	rm_tree(dir);
}
