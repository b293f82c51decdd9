// SPDX-License-Identifier: MIT
//
// dtx.integration.purge: the retention purge never holds up transactions.
// 100,000 finished transactions are written into dtxd's store before it
// starts (coordinator/preload.c, as dtx-bench --preload does), all expiring
// a few seconds after it starts; then a real dtxd and two participants run
// 2PC transactions from four threads without pause while dtxd purges them.
// The old purge ran on the loop thread and deleted every expired record in
// one call: 20-60k records stopped every transaction for 5-10 s. This test
// checks that dtxd's log reports all 100,000 purged, that no second of the
// run passed without a transaction finishing, that every transaction of the
// load committed, and that a preloaded transaction was visible before its
// expiry and is unknown after the purge.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "preload.h"
#include "store.h"
#include "world_suite.h"

#define NPRELOAD  100000
#define NTHREADS  4
#define EXPIRE_MS 6000 // after the preload, when the first one expires

// Under ASan on a loaded 2-core machine the whole test takes 15-25 s.
TestSuite(purge, .init = world_setup, .fini = world_teardown, .timeout = 120);

typedef struct load {
	const char      *url[2];
	atomic_bool      stop;
	_Atomic int64_t  last_ms; // when the last transaction finished
	_Atomic int64_t  max_gap_ms;
	_Atomic uint64_t committed;
	_Atomic uint64_t failed;
	char             first_error[256];
	pthread_mutex_t  mtx;
} load;

static void
note_done(load *l)
{
	int64_t now  = dtxi_mono_ms();
	int64_t prev = atomic_exchange(&l->last_ms, now);
	int64_t gap  = now - prev;
	int64_t max  = atomic_load(&l->max_gap_ms);

	while (gap > max &&
	    !atomic_compare_exchange_weak(&l->max_gap_ms, &max, gap)) {
	}
}

// One thread of the load: 2PC transactions of two branches, one after the
// other, each on its own client (a client is thread-safe, but one per
// thread keeps the threads independent).
static void *
load_main(void *arg)
{
	load       *l = arg;
	dtx_client *c = NULL;
	int         rv;

	if ((rv = dtx_client_open(&c, w.url)) != 0) {
		atomic_fetch_add(&l->failed, 1);
		return NULL;
	}
	dtx_client_set_timeout_ms(c, 30000);
	while (!atomic_load(&l->stop)) {
		dtx_tx   *tx;
		dtx_state st = 0;

		rv = dtx_tx_begin(&tx, c, DTX_2PC);
		if (rv == 0) {
			if ((rv = dtx_tx_add(tx, l->url[0], "op", "", 0)) ==
			        0 &&
			    (rv = dtx_tx_add(tx, l->url[1], "op", "", 0)) ==
			        0) {
				rv = dtx_tx_commit(tx, &st);
			}
			if (rv != 0 || st != DTX_STATE_COMMITTED) {
				pthread_mutex_lock(&l->mtx);
				if (l->first_error[0] == '\0') {
					snprintf(l->first_error,
					    sizeof(l->first_error),
					    "%s (state %s): %s",
					    dtx_strerror(rv),
					    dtx_state_name(st),
					    dtx_tx_message(tx));
				}
				pthread_mutex_unlock(&l->mtx);
			}
			dtx_tx_free(tx);
		}
		if (rv == 0 && st == DTX_STATE_COMMITTED) {
			atomic_fetch_add(&l->committed, 1);
			note_done(l);
		} else {
			atomic_fetch_add(&l->failed, 1);
		}
	}
	dtx_client_close(c);
	return NULL;
}

// The sum of "purged N finished transactions" in dtxd's log.
static uint64_t
purged_in_log(void)
{
	char       *log = dtxt_read_file(w.log);
	uint64_t    sum = 0;
	const char *p   = log;

	while ((p = strstr(p, "store: purged ")) != NULL) {
		unsigned long long n = 0;
		if (sscanf(p, "store: purged %llu finished", &n) == 1) {
			sum += n;
		}
		p++;
	}
	free(log);
	return sum;
}

static dtx_state
status_of(const char *gid, int *rvp)
{
	dtx_tx   *tx;
	dtx_state st = 0;

	CHECK_RV(dtx_tx_attach(&tx, w.client, gid));
	*rvp = dtx_tx_status(tx, &st);
	dtx_tx_free(tx);
	return st;
}

Test(purge, a_purge_of_100000_transactions_does_not_stop_the_load)
{
	dtxd_store       *s;
	dtxd_store_opts   so;
	dtxd_preload_opts po;
	dtxt_part        *parts[2];
	pthread_t         th[NTHREADS];
	load              l;
	char              gid0[DTX_GID_MAX + 1];
	int64_t           t0, deadline;
	uint64_t          purged = 0;
	int               rv;

	// The preload: a minute old, expiring within one second, starting
	// EXPIRE_MS from now. Its gids are those preload.c makes.
	dtxd_store_opts_init(&so);
	so.purge_every_ms = 0;
	CHECK_RV(dtxd_store_open(&s, w.data, &so));
	memset(&po, 0, sizeof(po));
	po.n          = NPRELOAD;
	po.branches   = 2;
	po.created_ms = dtxi_now_ms() - 60000;
	po.expire_ms  = dtxi_now_ms() + EXPIRE_MS;
	po.spacing_us = 10;
	t0            = dtxi_mono_ms();
	rv            = dtxd_preload(s, &po);
	dtxd_store_close(s);
	CHECK_RV(rv);
	cr_log_info("preloaded %d finished transactions in %lld ms", NPRELOAD,
	    (long long)(dtxi_mono_ms() - t0));
	CHECK_RV(dtxd_preload_gid(&po, 0, gid0));

	CHECK(dtxt_world_start_dtxd(&w, NULL) == 0, "dtxd did not start");
	parts[0] = dtxt_world_part(&w, "a");
	parts[1] = dtxt_world_part(&w, "b");
	CHECK(parts[0] != NULL && parts[1] != NULL, "no participant slot");
	CHECK(dtxt_part_start(parts[0]) == 0 && dtxt_part_start(parts[1]) == 0,
	    "participants did not start");
	CHECK(status_of(gid0, &rv) == DTX_STATE_COMMITTED && rv == 0,
	    "the preloaded %s is not visible to dtxd: %s", gid0,
	    dtx_strerror(rv));

	memset(&l, 0, sizeof(l));
	pthread_mutex_init(&l.mtx, NULL);
	l.url[0] = parts[0]->url;
	l.url[1] = parts[1]->url;
	atomic_store(&l.last_ms, dtxi_mono_ms());
	for (int i = 0; i < NTHREADS; i++) {
		CHECK(pthread_create(&th[i], NULL, load_main, &l) == 0,
		    "cannot start a load thread");
	}
	// Until dtxd says every preloaded transaction is purged, and a
	// little longer, so that a stall right after the purge would show.
	deadline = dtxi_mono_ms() + 60000;
	while (dtxi_mono_ms() < deadline &&
	    (purged = purged_in_log()) < NPRELOAD) {
		dtxt_sleep_ms(100);
	}
	if (purged >= NPRELOAD) {
		dtxt_sleep_ms(2000);
	}
	atomic_store(&l.stop, true);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
	}
	pthread_mutex_destroy(&l.mtx);
	cr_log_info("purged %llu; %llu transactions committed, longest "
	            "time without one finishing %lld ms",
	    (unsigned long long)purged,
	    (unsigned long long)atomic_load(&l.committed),
	    (long long)atomic_load(&l.max_gap_ms));

	CHECK(purged == NPRELOAD, "dtxd's log reports %llu purged, not %d",
	    (unsigned long long)purged, NPRELOAD);
	CHECK(atomic_load(&l.failed) == 0,
	    "%llu transactions failed; the first: %s",
	    (unsigned long long)atomic_load(&l.failed), l.first_error);
	CHECK(atomic_load(&l.committed) > 0, "no transaction committed");
	CHECK(atomic_load(&l.max_gap_ms) < 1000,
	    "no transaction finished for %lld ms",
	    (long long)atomic_load(&l.max_gap_ms));
	status_of(gid0, &rv);
	CHECK(rv == DTX_ENOTFOUND, "the purged %s: %s, expected not found",
	    gid0, dtx_strerror(rv));
}
