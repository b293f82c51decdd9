// SPDX-License-Identifier: MIT
//
// dtx-bench-part: the participant dtx-bench starts, a plain libdtx
// participant with one method, "bench", whose callbacks do no work of their
// own: what is measured is dtx, not a service. Two knobs shape it:
// --refuse-rate makes prepare and execute refuse that fraction of calls (so
// 2PC aborts and sagas compensate), --delay-us makes prepare and execute
// take that long (a service that does real work). With --store DIR it is a
// participant as README tells users to write one: the barrier on its own
// RocksDB (dtx_participant_use_barrier), every callback staging one 16-byte
// business write in the barrier's batch; --lock adds the barrier's lock
// hooks, under which each callback also reads, and writes back, a counter
// shared by all calls (the read-modify-write the hooks are for); --stats
// FILE writes the barrier's counters (calls, fsyncs) there when it stops.
// It runs until SIGTERM or SIGINT.

#include <dtx/dtx.h>

#include <inttypes.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct part {
	double                 refuse_rate;
	unsigned               delay_us;
	atomic_ulong           seq;
	rocksdb_t             *db; // --store: the barrier's, NULL without
	rocksdb_readoptions_t *ro;
	pthread_mutex_t        mu; // --lock: the barrier's user lock
} part;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: dtx-bench-part --listen URL [--refuse-rate F] "
	    "[--delay-us N] [--workers N] [--contexts N]\n"
	    "                      [--store DIR [--lock] [--stats FILE]] "
	    "[--tls DIR]   (tls+tcp://: DIR made by "
	    "samples/tls/make-certs.sh)\n");
}

// A cheap, thread-safe pseudo-random draw: a hash of a shared counter, so
// refusals are spread evenly without a lock or per-thread state.
static double
draw(part *p)
{
	uint64_t x = atomic_fetch_add(&p->seq, 1) + 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (double)(x >> 11) / 9007199254740992.0;
}

// With the barrier: stages the call's business write, 16 bytes under a key
// of its own, and with the lock hooks reads the shared counter and stages
// it incremented (the hooks keep that read and the write consistent).
// false when the store failed.
static bool
stage(part *p, const dtx_call *call, dtx_reply *reply)
{
	rocksdb_writebatch_t *wb = dtx_reply_writebatch(reply);
	char                  key[DTX_GID_MAX + 32];
	char                  val[17];
	int                   n;

	if (wb == NULL) {
		return true;
	}
	n = snprintf(key, sizeof(key), "b/%s/%" PRIu32 "/%d", call->gid,
	    call->branch_id, (int)call->phase);
	snprintf(val, sizeof(val), "%016" PRIx64, (uint64_t)call->attempt);
	rocksdb_writebatch_put(wb, key, (size_t)n, val, 16);
	if (p->ro != NULL) {
		char    *err = NULL;
		size_t   len = 0;
		char    *v   = rocksdb_get(p->db, p->ro, "c", 1, &len, &err);
		uint64_t c   = 0;

		if (err != NULL) {
			dtx_reply_set_message(reply, err);
			rocksdb_free(err);
			return false;
		}
		if (v != NULL && len == 16) {
			memcpy(val, v, 16);
			val[16] = '\0';
			c       = strtoull(val, NULL, 16);
		}
		rocksdb_free(v);
		snprintf(val, sizeof(val), "%016" PRIx64, c + 1);
		rocksdb_writebatch_put(wb, "c", 1, val, 16);
	}
	return true;
}

static dtx_result
forward(const dtx_call *call, dtx_reply *reply, void *arg)
{
	part *p = arg;

	if (p->delay_us > 0) {
		struct timespec ts = {(time_t)(p->delay_us / 1000000),
		    (long)(p->delay_us % 1000000) * 1000L};
		nanosleep(&ts, NULL);
	}
	if (p->refuse_rate > 0 && draw(p) < p->refuse_rate) {
		return DTX_REFUSED;
	}
	return stage(p, call, reply) ? DTX_OK : DTX_RETRY;
}

static dtx_result
backward(const dtx_call *call, dtx_reply *reply, void *arg)
{
	return stage(arg, call, reply) ? DTX_OK : DTX_RETRY;
}

static void
lock_mu(void *arg)
{
	pthread_mutex_lock(&((part *)arg)->mu);
}

static void
unlock_mu(void *arg)
{
	pthread_mutex_unlock(&((part *)arg)->mu);
}

// Writes the barrier's counters to path: "calls N syncs M".
static int
write_stats(dtx_participant *p, const char *path)
{
	dtx_barrier_stats st;
	FILE             *f;
	int               rv;

	if ((rv = dtx_participant_barrier_stats(p, &st)) != 0) {
		fprintf(
		    stderr, "dtx-bench-part: stats: %s\n", dtx_strerror(rv));
		return -1;
	}
	if ((f = fopen(path, "w")) == NULL) {
		perror(path);
		return -1;
	}
	fprintf(
	    f, "calls %" PRIu64 " syncs %" PRIu64 "\n", st.calls, st.syncs);
	return fclose(f) == 0 ? 0 : -1;
}

// Opens (creating) the participant's own store, as a service would.
static rocksdb_t *
open_store(const char *dir)
{
	rocksdb_options_t *o   = rocksdb_options_create();
	char              *err = NULL;
	rocksdb_t         *db;

	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_info_log_level(o, 2); // WARN
	db = rocksdb_open(o, dir, &err);
	rocksdb_options_destroy(o);
	if (err != NULL) {
		fprintf(stderr, "dtx-bench-part: %s: %s\n", dir, err);
		rocksdb_free(err);
		return NULL;
	}
	return db;
}

int
main(int argc, char **argv)
{
	static const dtx_method_ops ops = {
	    .prepare    = forward,
	    .commit     = backward,
	    .abort      = backward,
	    .execute    = forward,
	    .compensate = backward,
	};
	part             pt;
	dtx_barrier_opts bo       = {0};
	const char      *url      = NULL;
	const char      *store    = NULL;
	const char      *stats    = NULL;
	bool             lock     = false;
	unsigned         workers  = 4;
	unsigned         contexts = 256;
	const char      *tls_dir  = NULL;
	char             cert[4096], key[4096], ca[4096];
	dtx_tls_opts tls = {.cert_file = cert, .key_file = key, .ca_file = ca};
	dtx_participant *p = NULL;
	sigset_t         stop;
	int              rv, sig;

	memset(&pt, 0, sizeof(pt));
	atomic_init(&pt.seq, 0);
	pthread_mutex_init(&pt.mu, NULL);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--lock") == 0) {
			lock = true;
			continue;
		}
		if (v == NULL) {
			usage(stderr);
			return 2;
		}
		if (strcmp(a, "--listen") == 0) {
			url = v;
		} else if (strcmp(a, "--refuse-rate") == 0) {
			pt.refuse_rate = atof(v);
		} else if (strcmp(a, "--delay-us") == 0) {
			pt.delay_us = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--workers") == 0) {
			workers = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--contexts") == 0) {
			contexts = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--tls") == 0) {
			tls_dir = v;
		} else if (strcmp(a, "--store") == 0) {
			store = v;
		} else if (strcmp(a, "--stats") == 0) {
			stats = v;
		} else {
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (url == NULL || ((lock || stats != NULL) && store == NULL)) {
		usage(stderr);
		return 2;
	}
	if (store != NULL && (pt.db = open_store(store)) == NULL) {
		return 1;
	}
	if (lock) {
		pt.ro       = rocksdb_readoptions_create();
		bo.lock     = lock_mu;
		bo.unlock   = unlock_mu;
		bo.lock_arg = &pt;
	}

	// Block the stop signals before any thread starts; wait for them
	// below.
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	if (tls_dir != NULL) {
		snprintf(cert, sizeof(cert), "%s/service.crt", tls_dir);
		snprintf(key, sizeof(key), "%s/service.key", tls_dir);
		snprintf(ca, sizeof(ca), "%s/coordinator-ca.crt", tls_dir);
	}
	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (tls_dir != NULL &&
	        (rv = dtx_participant_set_tls(p, &tls)) != 0) ||
	    (rv = dtx_participant_set_workers(p, workers)) != 0 ||
	    (rv = dtx_participant_set_contexts(p, contexts)) != 0 ||
	    (rv = dtx_participant_register(p, "bench", &ops, &pt)) != 0 ||
	    (pt.db != NULL &&
	        (rv = dtx_participant_use_barrier(p, pt.db, &bo)) != 0) ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(
		    stderr, "dtx-bench-part: %s: %s\n", url, dtx_strerror(rv));
		rv = 1;
	} else {
		sigwait(&stop, &sig);
		if (stats != NULL && write_stats(p, stats) != 0) {
			rv = 1;
		}
	}
	dtx_participant_close(p);
	if (pt.ro != NULL) {
		rocksdb_readoptions_destroy(pt.ro);
	}
	if (pt.db != NULL) {
		rocksdb_close(pt.db);
	}
	return rv != 0 ? 1 : 0;
}
