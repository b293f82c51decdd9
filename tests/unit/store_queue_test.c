// SPDX-License-Identifier: MIT
//
// Unit tests of store_queue, the write queue and threads both store
// backends share, alone: its callbacks here are a fake backend that records
// what it was handed and can hold a batch until the test lets it go. They
// check that every accepted operation's done runs exactly once and in queue
// order, that operations queued while a batch is being written ride on the
// next one (group commit), that a batch's error reaches every operation of
// it and a refusal only its own, that a close while a batch is being
// written refuses new writes and still drains the accepted ones, and that
// the repair and the purge thread run when they should and stop at close.
// Threads wait for each other with deadlines, never fixed sleeps.

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "store.h"
#include "store_queue.h"

#define NOPS       64
#define BATCHES    64
#define WAIT_MS    10000
#define FAR_MS     3600000 // a purge period no test waits out
#define NEVER_DONE (-12345)

// The fake backend. mtx guards everything but the atomics; cv is
// broadcast at every change.
typedef struct fake {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	bool            hold;    // write waits while true
	bool            holding; // a write is waiting
	int             fail;    // what write returns
	int             refuse;  // res[i] for every odd i (0: none)
	uint32_t        nbatches;
	uint32_t        sizes[BATCHES];
	bool            syncs[BATCHES];
	int             order[NOPS]; // the index of each op written, in order
	uint32_t        nwritten;
	atomic_bool     broken;
	atomic_int      mends;
	atomic_int      purges;
	atomic_bool     purge_closing; // a purge ran once writes were refused
	dtxd_store_queue *q;

	// The on_batch hook's view.
	uint64_t hook_n;
	int      hook_calls;
	int      hook_rv;
} fake;

typedef struct op {
	dtxd_wop w;
	fake    *f;
	int      index;
	int      rv;    // what done said
	int      calls; // how often done ran
	int      seq;   // the order in which done ran
} op;

static fake f;
static op   ops[NOPS];
static int  done_seq;

static void
wait_cv(void)
{
	// Every waiter here re-checks its condition; a deadline bounds a
	// test that would otherwise hang on a lost wake-up.
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 1;
	pthread_cond_timedwait(&f.cv, &f.mtx, &ts);
}

static int
fake_write(void *arg, dtxd_wop *list, uint32_t n, bool sync, int *res)
{
	fake    *fk = arg;
	uint32_t i  = 0;

	pthread_mutex_lock(&fk->mtx);
	fk->holding = true;
	pthread_cond_broadcast(&fk->cv);
	while (fk->hold) {
		wait_cv();
	}
	fk->holding = false;
	if (fk->nbatches < BATCHES) {
		fk->sizes[fk->nbatches] = n;
		fk->syncs[fk->nbatches] = sync;
	}
	fk->nbatches++;
	for (dtxd_wop *w = list; w != NULL; w = w->next, i++) {
		cr_assert_eq(res[i], 0, "res is cleared before each batch");
		if (fk->nwritten < NOPS) {
			fk->order[fk->nwritten++] = ((op *)w->arg)->index;
		}
		if (fk->refuse != 0 && i % 2 == 1) {
			res[i] = fk->refuse;
		}
	}
	cr_assert_eq(i, n, "n is the length of the list");
	pthread_cond_broadcast(&fk->cv);
	pthread_mutex_unlock(&fk->mtx);
	return fk->fail;
}

static bool
fake_broken(void *arg)
{
	return atomic_load(&((fake *)arg)->broken);
}

static void
fake_mend(void *arg)
{
	fake *fk = arg;

	atomic_fetch_add(&fk->mends, 1);
	pthread_mutex_lock(&fk->mtx);
	pthread_cond_broadcast(&fk->cv);
	pthread_mutex_unlock(&fk->mtx);
}

static void
fake_purge(void *arg)
{
	fake *fk = arg;

	// The close stops this thread before it refuses writes.
	if (dtxd_store_queue_closing(fk->q)) {
		atomic_store(&fk->purge_closing, true);
	}
	atomic_fetch_add(&fk->purges, 1);
	pthread_mutex_lock(&fk->mtx);
	pthread_cond_broadcast(&fk->cv);
	pthread_mutex_unlock(&fk->mtx);
}

static void
on_batch(void *arg, uint64_t n, bool sync, int64_t us, int rv)
{
	fake *fk = arg;

	(void)sync;
	cr_assert_geq(us, 0);
	pthread_mutex_lock(&fk->mtx);
	fk->hook_n += n;
	fk->hook_calls++;
	fk->hook_rv = rv;
	pthread_mutex_unlock(&fk->mtx);
}

static const dtxd_store_queue_ops fake_ops = {
    .write         = fake_write,
    .broken        = fake_broken,
    .mend          = fake_mend,
    .mend_every_ms = 10,
    .purge         = fake_purge,
};

static void
op_done(void *arg, int rv)
{
	op *o = arg;

	pthread_mutex_lock(&f.mtx);
	o->rv = rv;
	o->calls++;
	o->seq = done_seq++;
	pthread_cond_broadcast(&f.cv);
	pthread_mutex_unlock(&f.mtx);
}

static void
op_init(int i, bool sync)
{
	memset(&ops[i], 0, sizeof(ops[i]));
	ops[i].w.kind = DTXD_WOP_UPDATE;
	ops[i].w.gid  = "g";
	ops[i].w.sync = sync;
	ops[i].w.done = op_done;
	ops[i].w.arg  = &ops[i];
	ops[i].f      = &f;
	ops[i].index  = i;
	ops[i].rv     = NEVER_DONE;
}

static void
queue_open(uint32_t purge_every_ms)
{
	dtxd_store_opts o;

	dtxd_store_opts_init(&o);
	o.purge_every_ms = purge_every_ms;
	o.on_batch       = on_batch;
	o.on_batch_arg   = &f;
	cr_assert_eq(dtxd_store_queue_alloc(&f.q, &fake_ops, &f, &o), 0);
	cr_assert_eq(dtxd_store_queue_start(f.q), 0);
}

static void
setup(void)
{
	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.mtx, NULL);
	pthread_cond_init(&f.cv, NULL);
	atomic_init(&f.broken, false);
	atomic_init(&f.mends, 0);
	atomic_init(&f.purges, 0);
	atomic_init(&f.purge_closing, false);
	done_seq = 0;
}

static void
teardown(void)
{
	pthread_mutex_lock(&f.mtx);
	f.hold = false;
	pthread_cond_broadcast(&f.cv);
	pthread_mutex_unlock(&f.mtx);
	dtxd_store_queue_free(f.q);
	pthread_cond_destroy(&f.cv);
	pthread_mutex_destroy(&f.mtx);
}

TestSuite(store_queue, .init = setup, .fini = teardown, .timeout = 30);

// Waits until ops [0, n) have all run their done.
static void
wait_done(int n)
{
	int64_t deadline = dtxi_mono_ms() + WAIT_MS;

	pthread_mutex_lock(&f.mtx);
	for (;;) {
		int left = 0;
		for (int i = 0; i < n; i++) {
			left += ops[i].calls == 0;
		}
		if (left == 0) {
			break;
		}
		cr_assert_lt(
		    dtxi_mono_ms(), deadline, "%d dones missing", left);
		wait_cv();
	}
	pthread_mutex_unlock(&f.mtx);
}

// Waits until a write is being held.
static void
wait_holding(void)
{
	int64_t deadline = dtxi_mono_ms() + WAIT_MS;

	pthread_mutex_lock(&f.mtx);
	while (!f.holding) {
		cr_assert_lt(dtxi_mono_ms(), deadline, "no write came");
		wait_cv();
	}
	pthread_mutex_unlock(&f.mtx);
}

static void
release(void)
{
	pthread_mutex_lock(&f.mtx);
	f.hold = false;
	pthread_cond_broadcast(&f.cv);
	pthread_mutex_unlock(&f.mtx);
}

// Opens the queue with writes held, queues op 0 and waits until its write
// is held, then queues ops 1..n-1 behind it. Only op sync_at asks for a
// sync. The test then releases the write, or closes.
static void
queue_behind_held_write(int n, int sync_at, uint32_t purge_every_ms)
{
	f.hold = true;
	queue_open(purge_every_ms);
	for (int i = 0; i < n; i++) {
		op_init(i, i == sync_at);
		cr_assert_eq(dtxd_store_queue_push(f.q, &ops[i].w), 0);
		if (i == 0) {
			wait_holding();
		}
	}
}

Test(store_queue, runs_every_done_once_in_queue_order)
{
	dtxd_store_stats st;

	queue_open(0);
	for (int i = 0; i < NOPS; i++) {
		op_init(i, false);
		cr_assert_eq(dtxd_store_queue_push(f.q, &ops[i].w), 0);
	}
	wait_done(NOPS);
	for (int i = 0; i < NOPS; i++) {
		cr_assert_eq(ops[i].calls, 1, "op %d: done ran %d times", i,
		    ops[i].calls);
		cr_assert_eq(ops[i].rv, 0);
		cr_assert_eq(
		    ops[i].seq, i, "op %d's done came %d-th", i, ops[i].seq);
		cr_assert_eq(f.order[i], i, "written out of order");
		cr_assert_null(ops[i].w.next, "the link is cleared");
	}
	dtxd_store_queue_get_stats(f.q, &st);
	cr_assert_eq(st.ops, NOPS);
	cr_assert_eq(st.batches, f.nbatches);
	cr_assert_eq(st.errors, 0);
	cr_assert_eq(st.syncs, 0);
	pthread_mutex_lock(&f.mtx);
	cr_assert_eq(f.hook_n, NOPS, "on_batch saw every operation");
	cr_assert_eq(f.hook_calls, (int)f.nbatches);
	pthread_mutex_unlock(&f.mtx);
}

Test(store_queue, writes_what_queued_meanwhile_as_one_synced_batch)
{
	dtxd_store_stats st;

	// Only the last op asks for a sync; its batch is synced.
	queue_behind_held_write(NOPS, NOPS - 1, 0);
	release();
	wait_done(NOPS);
	cr_assert_eq(f.nbatches, 2, "the queued ones shared one batch");
	cr_assert_eq(f.sizes[0], 1);
	cr_assert_eq(f.sizes[1], NOPS - 1);
	cr_assert_not(f.syncs[0]);
	cr_assert(f.syncs[1], "one synced op makes the batch synced");
	dtxd_store_queue_get_stats(f.q, &st);
	cr_assert_eq(st.batches, 2);
	cr_assert_eq(st.syncs, 1);
	cr_assert_eq(st.ops, NOPS);
}

Test(store_queue, tells_every_waiter_of_a_failed_batch)
{
	dtxd_store_stats st;

	f.fail = DTX_ENOSPC;
	queue_behind_held_write(NOPS, 0, 0);
	release();
	wait_done(NOPS);
	for (int i = 0; i < NOPS; i++) {
		cr_assert_eq(
		    ops[i].rv, DTX_ENOSPC, "op %d got %d", i, ops[i].rv);
		cr_assert_eq(ops[i].calls, 1);
	}
	dtxd_store_queue_get_stats(f.q, &st);
	cr_assert_eq(st.errors, 2);
	cr_assert_eq(st.ops, 0);
	cr_assert_eq(st.batches, 0);
	cr_assert_eq(st.syncs, 0);
	pthread_mutex_lock(&f.mtx);
	cr_assert_eq(f.hook_rv, DTX_ENOSPC, "on_batch saw the error");
	pthread_mutex_unlock(&f.mtx);
}

Test(store_queue, refuses_an_operation_alone)
{
	dtxd_store_stats st;

	f.refuse = DTXD_STORE_FENCED;
	queue_behind_held_write(5, -1, 0);
	release();
	wait_done(5);
	// Batches: {0}, {1, 2, 3, 4}: the second and fourth of the latter
	// are refused.
	cr_assert_eq(f.nbatches, 2);
	cr_assert_eq(ops[0].rv, 0);
	cr_assert_eq(ops[1].rv, 0);
	cr_assert_eq(ops[2].rv, DTXD_STORE_FENCED);
	cr_assert_eq(ops[3].rv, 0);
	cr_assert_eq(ops[4].rv, DTXD_STORE_FENCED);
	dtxd_store_queue_get_stats(f.q, &st);
	cr_assert_eq(st.ops, 3);
	cr_assert_eq(st.fenced, 2);
	cr_assert_eq(st.batches, 2);
	cr_assert_eq(st.errors, 0);
}

static void *
free_thread(void *arg)
{
	(void)arg;
	dtxd_store_queue_free(f.q);
	return NULL;
}

Test(store_queue, close_while_busy_refuses_new_writes_and_drains)
{
	pthread_t t;
	int64_t   deadline;
	op        late;

	queue_behind_held_write(NOPS, 0, FAR_MS);
	deadline = dtxi_mono_ms() + WAIT_MS;
	while (atomic_load(&f.purges) < 1) {
		cr_assert_lt(dtxi_mono_ms(), deadline, "no purge at start");
		sched_yield();
	}
	cr_assert_eq(pthread_create(&t, NULL, free_thread, NULL), 0);
	while (!dtxd_store_queue_closing(f.q)) {
		cr_assert_lt(
		    dtxi_mono_ms(), deadline, "the close never began");
		sched_yield();
	}
	memset(&late, 0, sizeof(late));
	late.w.kind = DTXD_WOP_UPDATE;
	late.w.gid  = "late";
	late.w.done = op_done;
	late.w.arg  = &late;
	late.rv     = NEVER_DONE;
	cr_assert_eq(dtxd_store_queue_push(f.q, &late.w), DTX_ECLOSED);
	pthread_mutex_lock(&f.mtx);
	cr_assert_eq(done_seq, 0, "nothing is done while the write is held");
	pthread_mutex_unlock(&f.mtx);
	release();
	pthread_join(t, NULL);
	f.q = NULL; // freed by the thread
	for (int i = 0; i < NOPS; i++) {
		cr_assert_eq(ops[i].calls, 1, "op %d: done ran %d times", i,
		    ops[i].calls);
		cr_assert_eq(ops[i].rv, 0);
	}
	cr_assert_eq(late.calls, 0, "a refused write's done never runs");
	cr_assert_eq(f.nbatches, 2);
	cr_assert_eq(f.sizes[1], NOPS - 1, "the drain wrote them together");
	cr_assert_not(
	    atomic_load(&f.purge_closing), "the purge thread stopped first");
}

Test(store_queue, holds_writes_queued_before_the_start)
{
	dtxd_store_opts o;

	dtxd_store_opts_init(&o);
	o.purge_every_ms = 0;
	cr_assert_eq(dtxd_store_queue_alloc(&f.q, &fake_ops, &f, &o), 0);
	for (int i = 0; i < 3; i++) {
		op_init(i, false);
		cr_assert_eq(dtxd_store_queue_push(f.q, &ops[i].w), 0);
	}
	cr_assert_eq(f.nbatches, 0);
	cr_assert_eq(dtxd_store_queue_start(f.q), 0);
	wait_done(3);
	cr_assert_eq(f.nbatches, 1);
	cr_assert_eq(f.sizes[0], 3);
	cr_assert_eq(atomic_load(&f.purges), 0, "no purge thread at 0 ms");
}

Test(store_queue, mends_a_broken_backend_while_idle_and_before_a_batch)
{
	int64_t deadline;
	int     before;

	queue_open(0);
	atomic_store(&f.broken, true);
	// The writer sleeps until something wakes it; a write does, and the
	// mend comes before that write's batch.
	op_init(0, false);
	cr_assert_eq(dtxd_store_queue_push(f.q, &ops[0].w), 0);
	wait_done(1);
	cr_assert_geq(atomic_load(&f.mends), 1, "mended before the batch");
	// Idle and still broken: mended again, every mend_every_ms.
	before   = atomic_load(&f.mends);
	deadline = dtxi_mono_ms() + WAIT_MS;
	while (atomic_load(&f.mends) < before + 3) {
		cr_assert_lt(dtxi_mono_ms(), deadline, "no mend while idle");
		pthread_mutex_lock(&f.mtx);
		wait_cv();
		pthread_mutex_unlock(&f.mtx);
	}
	// Mended: the writer goes back to sleeping on the queue. A write
	// wakes it, and that batch comes with no mend before it.
	atomic_store(&f.broken, false);
	op_init(1, false);
	cr_assert_eq(dtxd_store_queue_push(f.q, &ops[1].w), 0);
	wait_done(2);
	before = atomic_load(&f.mends);
	op_init(2, false);
	cr_assert_eq(dtxd_store_queue_push(f.q, &ops[2].w), 0);
	wait_done(3);
	cr_assert_eq(atomic_load(&f.mends), before, "mended while whole");
}

Test(store_queue, purges_at_start_and_stops_at_close)
{
	int64_t deadline = dtxi_mono_ms() + WAIT_MS;

	queue_open(10);
	while (atomic_load(&f.purges) < 3) {
		cr_assert_lt(
		    dtxi_mono_ms(), deadline, "the purge did not run");
		pthread_mutex_lock(&f.mtx);
		wait_cv();
		pthread_mutex_unlock(&f.mtx);
	}
	dtxd_store_queue_free(f.q);
	f.q = NULL;
	cr_assert_not(atomic_load(&f.purge_closing));
}

Test(store_queue, close_does_not_wait_out_the_purge_period)
{
	int64_t deadline = dtxi_mono_ms() + WAIT_MS;

	// A purge every hour: the first one runs at once, and the close
	// wakes the thread from its sleep rather than waiting out the hour.
	queue_open(FAR_MS);
	while (atomic_load(&f.purges) < 1) {
		cr_assert_lt(dtxi_mono_ms(), deadline, "no purge at start");
		pthread_mutex_lock(&f.mtx);
		wait_cv();
		pthread_mutex_unlock(&f.mtx);
	}
	dtxd_store_queue_free(f.q);
	f.q = NULL;
	cr_assert_eq(atomic_load(&f.purges), 1);
}
