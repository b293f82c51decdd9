// SPDX-License-Identifier: MIT
//
// dtx.integration.list: Lists that read much of the store do not hold up
// the transactions in flight. dtxd's store is preloaded with many finished
// transactions (written through the store module, as dtxd writes them),
// then a client commits transactions one after the other; the commits of
// a window without Lists are counted, then those of an equal window in
// which another client asks for Lists back to back that match none of the
// records, so that dtxd reads every record for each. The store is read on
// dtxd's reader thread, not on its loop: the commit rate holds (at least an
// eighth of it: the reader takes a core of two, and other processes share
// the machine). When the loop did the
// scans, one or two transactions committed between two Lists. The rate is
// measured in the same run, so the test does not depend on the machine's
// speed. Each List's answer is checked too: an empty page, no cursor.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "record_codec.h"
#include "store.h"
#include "world_suite.h"

// Enough records that a List costs dtxd far more than a transaction (some
// 20 to 50 ms here); dtxd replays them from RocksDB's log when it opens
// the store, hence the generous start-up time (under ASan on a busy
// machine).
#define PRELOAD 25000

TestSuite(list, .init = world_setup, .fini = world_teardown, .timeout = 120);

typedef struct preload {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	unsigned        pending;
	int             rv;
} preload;

typedef struct pop {
	dtxd_wop op;
	preload *pl;
	char     gid[DTX_GID_MAX + 1];
	uint8_t  rec[256];
} pop;

static void
pop_done(void *arg, int rv)
{
	pop     *p  = arg;
	preload *pl = p->pl;

	pthread_mutex_lock(&pl->mtx);
	if (rv != 0) {
		pl->rv = rv;
	}
	if (--pl->pending == 0) {
		pthread_cond_signal(&pl->cv);
	}
	pthread_mutex_unlock(&pl->mtx);
}

// Writes n finished, committed 2PC transactions straight into the store at
// dir, unsynced, kept for ten days.
static void
preload_store(const char *dir, unsigned n)
{
	dtxd_store     *st = NULL;
	dtxd_store_opts so;
	preload         pl  = {.pending = n, .rv = 0};
	pop            *ops = calloc(n, sizeof(*ops));
	dtxd_record     rec;
	int64_t         now = dtxi_now_ms();

	cr_assert_not_null(ops);
	pthread_mutex_init(&pl.mtx, NULL);
	pthread_cond_init(&pl.cv, NULL);
	dtxd_store_opts_init(&so);
	cr_assert_eq(dtxd_store_open(&st, dir, &so), 0);
	memset(&rec, 0, sizeof(rec));
	rec.info.mode       = DTX_2PC;
	rec.info.state      = DTX_STATE_COMMITTED;
	rec.info.created_ms = now;
	rec.info.updated_ms = now;
	rec.info.nbranches  = 1;
	for (unsigned i = 0; i < n; i++) {
		pop   *p = &ops[i];
		size_t len;

		snprintf(p->gid, sizeof(p->gid), "pre-%08u", i);
		strcpy(rec.info.gid, p->gid);
		cr_assert_eq(
		    dtxd_record_encode(&rec, p->rec, sizeof(p->rec), &len), 0);
		p->pl            = &pl;
		p->op.kind       = DTXD_WOP_FINISH;
		p->op.gid        = p->gid;
		p->op.record     = p->rec;
		p->op.record_len = len;
		p->op.expire_ms  = now + 10LL * 24 * 3600 * 1000;
		p->op.done       = pop_done;
		p->op.arg        = p;
		cr_assert_eq(dtxd_store_write(st, &p->op), 0);
	}
	pthread_mutex_lock(&pl.mtx);
	while (pl.pending > 0) {
		pthread_cond_wait(&pl.cv, &pl.mtx);
	}
	pthread_mutex_unlock(&pl.mtx);
	cr_assert_eq(pl.rv, 0);
	dtxd_store_close(st);
	pthread_cond_destroy(&pl.cv);
	pthread_mutex_destroy(&pl.mtx);
	free(ops);
}

typedef struct committer {
	const char *dtxd_url;
	const char *part_url;
	atomic_bool stop;
	atomic_int  failed;
	// Completion times of the commits, monotonic ms.
	pthread_mutex_t mtx;
	int64_t        *done_ms;
	size_t          n, cap;
} committer;

// Commits one-branch 2PC transactions back to back until told to stop.
static void *
commit_loop(void *arg)
{
	committer  *c  = arg;
	dtx_client *cl = NULL;

	if (dtx_client_open(&cl, c->dtxd_url) != 0) {
		atomic_store(&c->failed, 1);
		return NULL;
	}
	dtx_client_set_timeout_ms(cl, 10000);
	while (!atomic_load(&c->stop)) {
		dtx_tx   *tx = NULL;
		dtx_state st = 0;

		if (dtx_tx_begin(&tx, cl, DTX_2PC) != 0 ||
		    dtx_tx_add(tx, c->part_url, "op", "", 0) != 0 ||
		    dtx_tx_commit(tx, &st) != 0 || st != DTX_STATE_COMMITTED) {
			atomic_store(&c->failed, 1);
			dtx_tx_free(tx);
			break;
		}
		dtx_tx_free(tx);
		pthread_mutex_lock(&c->mtx);
		if (c->n < c->cap) {
			c->done_ms[c->n++] = dtxi_mono_ms();
		}
		pthread_mutex_unlock(&c->mtx);
	}
	dtx_client_close(cl);
	return NULL;
}

// Commits counted strictly inside (from, to).
static size_t
commits_within(committer *c, int64_t from, int64_t to)
{
	size_t k = 0;

	pthread_mutex_lock(&c->mtx);
	for (size_t i = 0; i < c->n; i++) {
		k += c->done_ms[i] > from && c->done_ms[i] < to;
	}
	pthread_mutex_unlock(&c->mtx);
	return k;
}

static int
some_committed(void *arg)
{
	committer *c = arg;
	size_t     n;

	pthread_mutex_lock(&c->mtx);
	n = c->n;
	pthread_mutex_unlock(&c->mtx);
	return n >= 10 || atomic_load(&c->failed);
}

typedef struct lister {
	const char *url;
	atomic_bool stop;
	atomic_int  lists;
	atomic_int  failed;
} lister;

// Asks for Lists that match nothing, back to back, until told to stop.
static void *
list_loop(void *arg)
{
	static dtx_tx_info info[16];
	lister            *l  = arg;
	dtx_client        *cl = NULL;
	unsigned           n;
	char               next[DTX_GID_MAX + 1];

	if (dtx_client_open(&cl, l->url) != 0) {
		atomic_store(&l->failed, 1);
		return NULL;
	}
	dtx_client_set_timeout_ms(cl, 30000);
	while (!atomic_load(&l->stop)) {
		if (dtx_client_list(cl, DTX_STATE_COMPENSATED, "", info, 16,
		        &n, next) != 0 ||
		    n != 0 || next[0] != '\0') {
			atomic_store(&l->failed, 1);
			break;
		}
		atomic_fetch_add(&l->lists, 1);
	}
	dtx_client_close(cl);
	return NULL;
}

// Commits in the window [t, t + WINDOW_MS).
#define WINDOW_MS 400

static size_t
commits_in_window(committer *c, int64_t t)
{
	return commits_within(c, t - 1, t + WINDOW_MS);
}

static int
window_over(void *arg)
{
	return dtxi_mono_ms() >= *(const int64_t *)arg + WINDOW_MS;
}

static int
some_listed(void *arg)
{
	lister *l = arg;
	return atomic_load(&l->lists) > 0 || atomic_load(&l->failed);
}

Test(list, lists_that_read_the_whole_store_do_not_stall_transactions)
{
	committer  c = {.cap = 1 << 20};
	lister     l = {0};
	pthread_t  th, lt;
	dtxt_part *p;
	int64_t    quiet, busy;
	size_t     before, during;

	dtxt_dtxd_opts o = {.start_timeout_ms = 60000};

	preload_store(w.data, PRELOAD);
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
	p = dtxt_world_part(&w, "a");
	CHECK(p != NULL && dtxt_part_start(p) == 0, "participant down");

	c.dtxd_url = w.url;
	c.part_url = p->url;
	c.done_ms  = calloc(c.cap, sizeof(*c.done_ms));
	CHECK(c.done_ms != NULL, "no memory");
	pthread_mutex_init(&c.mtx, NULL);
	CHECK(pthread_create(&th, NULL, commit_loop, &c) == 0, "no thread");
	CHECK(dtxt_wait_until(some_committed, &c, 10, 10000) == 0 &&
	        !atomic_load(&c.failed),
	    "the load did not start");

	// The commit rate without Lists, then with Lists back to back: a
	// loop that scanned the store itself committed next to nothing
	// while the Lists ran (one or two commits between two Lists).
	quiet = dtxi_mono_ms();
	CHECK(dtxt_wait_until(window_over, &quiet, 5, 10000) == 0, "clock");
	l.url = w.url;
	CHECK(pthread_create(&lt, NULL, list_loop, &l) == 0, "no thread");
	CHECK(dtxt_wait_until(some_listed, &l, 1, 30000) == 0,
	    "no List came back");
	busy = dtxi_mono_ms();
	CHECK(dtxt_wait_until(window_over, &busy, 5, 10000) == 0, "clock");
	atomic_store(&l.stop, true);
	pthread_join(lt, NULL);
	atomic_store(&c.stop, true);
	pthread_join(th, NULL);

	before = commits_in_window(&c, quiet);
	during = commits_in_window(&c, busy);
	CHECK(!atomic_load(&c.failed), "a commit failed under the Lists");
	CHECK(!atomic_load(&l.failed), "a List failed or listed something");
	CHECK(atomic_load(&l.lists) >= 2, "only %d Lists ran",
	    atomic_load(&l.lists));
	CHECK(during * 8 >= before,
	    "%zu commits in %d ms of Lists, %zu in as long before", during,
	    WINDOW_MS, before);
	cr_log_info("%d Lists; %zu commits in %d ms without, %zu with",
	    atomic_load(&l.lists), before, WINDOW_MS, during);
	pthread_mutex_destroy(&c.mtx);
	free(c.done_ms);
}
