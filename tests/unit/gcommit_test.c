// SPDX-License-Identifier: MIT
//
// gcommit: the barrier's group commit alone (sdk/src/gcommit.c), on a fake
// store: the test "writes" by advancing a sequence number and controls the
// sync, which can be held at a gate (to see what completes while a sync
// runs) or made to fail.

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <dtx/dtx.h>

#include "gcommit.h"

typedef struct fake {
	atomic_uint_fast64_t seq;     // the store's position
	atomic_uint          entered; // syncs begun
	atomic_bool          fail;    // the next syncs fail
	pthread_mutex_t      mu;
	pthread_cond_t       cv;
	bool                 gate_open; // guarded by mu
} fake;

static fake F;

static void
setup(void)
{
	atomic_init(&F.seq, 0);
	atomic_init(&F.entered, 0);
	atomic_init(&F.fail, false);
	pthread_mutex_init(&F.mu, NULL);
	pthread_cond_init(&F.cv, NULL);
	F.gate_open = true;
}

static void
teardown(void)
{
	pthread_cond_destroy(&F.cv);
	pthread_mutex_destroy(&F.mu);
}

TestSuite(gcommit, .init = setup, .fini = teardown, .timeout = 60);

static void
gate(bool open)
{
	pthread_mutex_lock(&F.mu);
	F.gate_open = open;
	pthread_cond_broadcast(&F.cv);
	pthread_mutex_unlock(&F.mu);
}

// The fake sync: reads the position first, as the barrier's does, then
// waits at the gate.
static int
fake_sync(void *arg, uint64_t *upto)
{
	uint64_t at = atomic_load(&F.seq);

	(void)arg;
	atomic_fetch_add(&F.entered, 1);
	pthread_mutex_lock(&F.mu);
	while (!F.gate_open) {
		pthread_cond_wait(&F.cv, &F.mu);
	}
	pthread_mutex_unlock(&F.mu);
	if (atomic_load(&F.fail)) {
		return DTX_ESTORAGE;
	}
	*upto = at;
	return 0;
}

static uint64_t
write1(void)
{
	return atomic_fetch_add(&F.seq, 1) + 1;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

// A wait and what its done callback saw.
typedef struct probe {
	dtxi_gwait w;
	atomic_int calls;
	atomic_int err;
	atomic_int syncs_entered; // F.entered when it completed
} probe;

static void
probe_done(void *arg, int err)
{
	probe *p = arg;

	atomic_store(&p->err, err);
	atomic_store(&p->syncs_entered, (int)atomic_load(&F.entered));
	atomic_fetch_add(&p->calls, 1);
}

static void
probe_init(probe *p, uint64_t ticket)
{
	p->w.ticket = ticket;
	p->w.done   = probe_done;
	p->w.arg    = p;
	atomic_init(&p->calls, 0);
	atomic_init(&p->err, -1);
	atomic_init(&p->syncs_entered, 0);
}

static bool
wait_for(atomic_uint *v, unsigned want)
{
	for (int waited = 0; atomic_load(v) < want && waited < 10000;
	     waited += 1) {
		sleep_ms(1);
	}
	return atomic_load(v) >= want;
}

static bool
wait_done(probe *p)
{
	for (int waited = 0; atomic_load(&p->calls) == 0 && waited < 10000;
	     waited += 1) {
		sleep_ms(1);
	}
	return atomic_load(&p->calls) > 0;
}

#define NWAITS 10

Test(gcommit, waits_queued_during_a_sync_complete_together_after_the_next)
{
	dtxi_gcommit *g;
	probe         first, later[NWAITS];

	cr_assert_eq(dtxi_gcommit_start(&g, fake_sync, NULL), 0);
	gate(false);
	probe_init(&first, write1());
	cr_assert(dtxi_gcommit_after(g, &first.w));
	cr_assert(wait_for(&F.entered, 1), "the first sync never began");
	for (int i = 0; i < NWAITS; i++) {
		probe_init(&later[i], write1());
		cr_assert(dtxi_gcommit_after(g, &later[i].w));
	}
	// Nothing is answered while the sync that covers it runs.
	sleep_ms(20);
	cr_assert_eq(atomic_load(&first.calls), 0,
	    "completed before its sync returned");
	gate(true);
	cr_assert(wait_done(&first));
	cr_assert_eq(atomic_load(&first.err), 0);
	cr_assert_eq(atomic_load(&first.syncs_entered), 1);
	for (int i = 0; i < NWAITS; i++) {
		cr_assert(wait_done(&later[i]));
		cr_assert_eq(atomic_load(&later[i].calls), 1);
		cr_assert_eq(atomic_load(&later[i].err), 0);
		// Written while the first sync ran: the second covers all.
		cr_assert_eq(atomic_load(&later[i].syncs_entered), 2);
	}
	dtxi_gcommit_flush(g);
	cr_assert_eq(dtxi_gcommit_syncs(g), 2, "%u waits took %llu syncs",
	    NWAITS + 1, (unsigned long long)dtxi_gcommit_syncs(g));
	dtxi_gcommit_stop(g);
}

Test(gcommit, durable_tickets_do_not_wait)
{
	dtxi_gcommit *g;
	probe         p;
	uint64_t      t;

	cr_assert_eq(dtxi_gcommit_start(&g, fake_sync, NULL), 0);
	probe_init(&p, 0);
	cr_assert_not(dtxi_gcommit_after(g, &p.w), "ticket 0 was queued");
	cr_assert(dtxi_gcommit_durable(g, 0));
	write1();
	t = write1();
	cr_assert_not(dtxi_gcommit_durable(g, t));
	cr_assert_eq(dtxi_gcommit_wait(g, t), 0);
	cr_assert(dtxi_gcommit_durable(g, t));
	cr_assert(dtxi_gcommit_durable(g, t - 1));
	probe_init(&p, t - 1);
	cr_assert_not(dtxi_gcommit_after(g, &p.w));
	cr_assert_eq(dtxi_gcommit_wait(g, t), 0);
	cr_assert_eq(dtxi_gcommit_syncs(g), 1);
	cr_assert_eq(atomic_load(&p.calls), 0);
	dtxi_gcommit_stop(g);
}

Test(gcommit, a_failed_sync_fails_every_wait_then_and_later)
{
	dtxi_gcommit *g;
	probe         p;
	uint64_t      t = write1();

	cr_assert_eq(dtxi_gcommit_start(&g, fake_sync, NULL), 0);
	cr_assert_eq(dtxi_gcommit_wait(g, t), 0);
	atomic_store(&F.fail, true);
	cr_assert_eq(dtxi_gcommit_wait(g, write1()), DTX_ESTORAGE);
	cr_assert_eq(dtxi_gcommit_error(g), DTX_ESTORAGE);
	// Even once the store would sync again, nothing is trusted: no
	// more syncs, every wait fails.
	atomic_store(&F.fail, false);
	probe_init(&p, write1());
	cr_assert(dtxi_gcommit_after(g, &p.w));
	cr_assert(wait_done(&p));
	cr_assert_eq(atomic_load(&p.err), DTX_ESTORAGE);
	cr_assert_eq(dtxi_gcommit_wait(g, write1()), DTX_ESTORAGE);
	cr_assert_eq(dtxi_gcommit_syncs(g), 2);
	// What was durable before the failure still is.
	cr_assert(dtxi_gcommit_durable(g, t));
	dtxi_gcommit_stop(g);
}

typedef struct flusher {
	dtxi_gcommit *g;
	atomic_bool   returned;
} flusher;

static void *
flush_main(void *arg)
{
	flusher *f = arg;

	dtxi_gcommit_flush(f->g);
	atomic_store(&f->returned, true);
	return NULL;
}

Test(gcommit, flush_returns_once_every_queued_wait_completed)
{
	dtxi_gcommit *g;
	probe         p[3];
	flusher       f;
	pthread_t     th;

	cr_assert_eq(dtxi_gcommit_start(&g, fake_sync, NULL), 0);
	gate(false);
	for (int i = 0; i < 3; i++) {
		probe_init(&p[i], write1());
		cr_assert(dtxi_gcommit_after(g, &p[i].w));
	}
	f.g = g;
	atomic_init(&f.returned, false);
	cr_assert_eq(pthread_create(&th, NULL, flush_main, &f), 0);
	sleep_ms(20);
	cr_assert_not(atomic_load(&f.returned), "flush returned early");
	gate(true);
	pthread_join(th, NULL);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(atomic_load(&p[i].calls), 1);
	}
	dtxi_gcommit_stop(g);
}

Test(gcommit, stop_completes_the_waits_still_queued)
{
	dtxi_gcommit *g;
	probe         p[4];

	cr_assert_eq(dtxi_gcommit_start(&g, fake_sync, NULL), 0);
	gate(false);
	for (int i = 0; i < 4; i++) {
		probe_init(&p[i], write1());
		cr_assert(dtxi_gcommit_after(g, &p[i].w));
	}
	cr_assert(wait_for(&F.entered, 1));
	gate(true);
	dtxi_gcommit_stop(g);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(atomic_load(&p[i].calls), 1, "wait %d", i);
		cr_assert_eq(atomic_load(&p[i].err), 0);
	}
	dtxi_gcommit_stop(NULL);
}
