// SPDX-License-Identifier: MIT
//
// run: one benchmark (see bench.h). The load is a closed loop: each of the
// concurrency slots keeps one transaction in flight with
// dtx_tx_commit_async, and its callback starts the slot's next transaction
// at once, so the offered load adapts to what dtxd sustains and no thread is
// spent per transaction. Only transactions begun inside the measured
// window are counted (those of the warm-up are not); when the window ends
// no new transaction starts and the ones in flight are waited for, so every
// counted transaction has an outcome or an error. The machine's limits are
// measured after the load, with every process of the benchmark stopped, so
// that neither disturbs the other.

#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "loopback_port.h"
#include "pg.h"
#include "preload.h"
#include "proc.h"
#include "store.h"

#define PATH_MAX_ 4096

// The processes and addresses of one run.
typedef struct world {
	char     dir[256]; // temporary directory ("" when none)
	char     data[PATH_MAX_ + 16];
	char     coord[BENCH_URL_MAX];
	char     parts[BENCH_PARTS_MAX][BENCH_URL_MAX];
	unsigned nparts;
	pid_t    dtxd; // node 0's
	pid_t    part_pids[BENCH_PARTS_MAX];
	// --store postgres: the database and every node (dtxd is nodes[0]);
	// coord is then the list of their URLs.
	bench_pg pg;
	pid_t    nodes[BENCH_NODES_MAX];
	char     node_urls[BENCH_NODES_MAX][BENCH_URL_MAX];
	bool     started; // the processes are ours
	char     dtxd_bin[PATH_MAX_];
	char     part_bin[PATH_MAX_];
} world;

typedef struct load load;

typedef struct slot {
	load   *l;
	int64_t t0;
	bool    counted;
	int     mode;
} slot;

struct load {
	const bench_opts    *o;
	const world         *w;
	dtx_client          *c;
	void                *payload;
	slot                *slots;
	atomic_bool          stop;
	atomic_bool          window; // transactions begun now are counted
	atomic_uint_fast64_t begun;  // counted transactions begun
	atomic_uint_fast64_t mixseq;
	atomic_uint_fast64_t committed, aborted, compensated, errors;
	atomic_uint_fast64_t done_all; // every outcome, counted or not
	atomic_int_fast64_t  last_done_us;
	atomic_uint          inflight;
	bench_hist           hist;
	pthread_mutex_t      mtx;
	pthread_cond_t       cv;
	char                 first_error[DTX_MESSAGE_MAX + 64];
};

const char *
bench_mode_name(int mode)
{
	switch (mode) {
	case BENCH_2PC:
		return "2pc";
	case BENCH_SAGA:
		return "saga";
	case BENCH_MIX:
		return "mix";
	default:
		return "?";
	}
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static unsigned
nparts_of(const bench_opts *o)
{
	unsigned k = o->parts != 0 ? o->parts : o->branches;

	if (o->coord_url != NULL) {
		k = o->npart_urls; // the running participants given
	}
	return k > BENCH_PARTS_MAX ? BENCH_PARTS_MAX : k;
}

// Round trips are counted as messages: dtxd sends the calls of one loop
// pass to one participant as one message, so the prepares (and the
// commits) of a 2PC cost one message per participant, not per branch. Saga
// steps run one after the other and are never merged, but for the steps of
// one group (--saga-group), which run together. Records follow
// coordinator/txmgr.c and the engines: a waiting 2PC writes its create
// record unsynced (presumed abort), the commit decision synced, and the
// finish record; a saga writes its create record synced, one unsynced
// progress record between steps, and the finish record.
static void
model_one(const bench_opts *o, int mode, bench_model *m)
{
	unsigned b         = o->branches;
	unsigned k         = nparts_of(o);
	unsigned per_phase = b < k ? b : k;

	if (mode == BENCH_2PC) {
		m->rt     = 1 + 2.0 * per_phase;
		m->writes = 3;
		m->syncs  = 1;
		snprintf(m->rt_how, sizeof(m->rt_how) / 2,
		    "1 submit + %u prepare + %u commit messages", per_phase,
		    per_phase);
		snprintf(m->w_how, sizeof(m->w_how) / 2,
		    "create (unsynced) + commit decision (synced) + finish");
	} else {
		// --saga-group G: groups of G steps, the calls of one group
		// to one participant in one message, a progress record per
		// group.
		unsigned g      = o->saga_group > 1 ? o->saga_group : 1;
		unsigned groups = (b + g - 1) / g, msgs = 0;
		for (unsigned first = 0; first < b; first += g) {
			unsigned n = b - first < g ? b - first : g;
			msgs += n < k ? n : k;
		}
		m->rt     = 1 + (double)msgs;
		m->writes = 2 + (double)(groups - 1);
		m->syncs  = 1;
		snprintf(m->rt_how, sizeof(m->rt_how) / 2,
		    "1 submit + %u execute messages", msgs);
		snprintf(m->w_how, sizeof(m->w_how) / 2,
		    "create (synced) + %u progress + finish", groups - 1);
	}
}

void
bench_model_of(const bench_opts *o, bench_model *m)
{
	memset(m, 0, sizeof(*m));
	if (o->mode != BENCH_MIX) {
		model_one(o, o->mode, m);
		return;
	}
	bench_model a, s;
	model_one(o, BENCH_2PC, &a);
	model_one(o, BENCH_SAGA, &s);
	m->rt     = (a.rt + s.rt) / 2;
	m->writes = (a.writes + s.writes) / 2;
	m->syncs  = (a.syncs + s.syncs) / 2;
	snprintf(m->rt_how, sizeof(m->rt_how),
	    "mean of 2pc (%.100s) and saga (%.100s)", a.rt_how, s.rt_how);
	snprintf(m->w_how, sizeof(m->w_how),
	    "mean of 2pc (%.100s) and saga (%.100s)", a.w_how, s.w_how);
}

// ---------------------------------------------------------------------------
// The world: dtxd and participants started here, or given addresses.
// ---------------------------------------------------------------------------

static void
world_url(const bench_opts *o, const char *dir, const char *name, char *out)
{
	char url[BENCH_URL_MAX];

	if (o->ipc) {
		snprintf(url, sizeof(url), "ipc://%s/%s.ipc", dir, name);
	} else {
		snprintf(url, sizeof(url), "%s://127.0.0.1:%d",
		    o->tls_dir != NULL ? "tls+tcp" : "tcp",
		    dtxi_loopback_port());
	}
	memcpy(out, url, sizeof(url));
}

static bool
find_bins(const bench_opts *o, world *w)
{
	char        self[PATH_MAX_];
	char        c1[PATH_MAX_ + 32], c2[PATH_MAX_ + 32];
	const char *cands[3] = {c1, c2, NULL};

	bench_self_dir(self, sizeof(self));
	if (o->dtxd_bin != NULL) {
		snprintf(w->dtxd_bin, sizeof(w->dtxd_bin), "%s", o->dtxd_bin);
	} else {
		snprintf(c1, sizeof(c1), "%s/dtxd", self);
		snprintf(c2, sizeof(c2), "%s/../coordinator/dtxd", self);
		if (!bench_find_program(
		        "dtxd", cands, w->dtxd_bin, sizeof(w->dtxd_bin))) {
			fprintf(stderr,
			    "dtx-bench: cannot find dtxd (use --dtxd PATH)\n");
			return false;
		}
	}
	if (o->part_bin != NULL) {
		snprintf(w->part_bin, sizeof(w->part_bin), "%s", o->part_bin);
	} else {
		snprintf(c1, sizeof(c1), "%s/dtx-bench-part", self);
		cands[1] = NULL;
		if (!bench_find_program("dtx-bench-part", cands, w->part_bin,
		        sizeof(w->part_bin))) {
			fprintf(stderr,
			    "dtx-bench: cannot find dtx-bench-part "
			    "(use --part PATH)\n");
			return false;
		}
	}
	return true;
}

// Prepares the directory and addresses (nothing runs yet).
static int
world_init(const bench_opts *o, world *w)
{
	int rv;

	memset(w, 0, sizeof(*w));
	if ((rv = bench_mkdtemp(w->dir, sizeof(w->dir))) != 0) {
		fprintf(stderr, "dtx-bench: temporary directory: %s\n",
		    strerror(rv));
		return -1;
	}
	snprintf(w->data, sizeof(w->data), "%s/data", w->dir);
	if (o->coord_url != NULL) {
		snprintf(w->coord, sizeof(w->coord), "%s", o->coord_url);
		w->nparts = o->npart_urls;
		for (unsigned i = 0; i < w->nparts; i++) {
			snprintf(w->parts[i], sizeof(w->parts[i]), "%s",
			    o->part_urls[i]);
		}
		w->dtxd = o->dtxd_pid;
		return 0;
	}
	if (!find_bins(o, w)) {
		return -1;
	}
	w->started = true;
	w->nparts  = nparts_of(o);
	world_url(o, w->dir, "dtxd", w->coord);
	if (o->store_pg) {
		w->coord[0] = '\0';
		for (unsigned k = 0; k < o->nodes; k++) {
			char   name[16];
			size_t len = strlen(w->coord);

			snprintf(name, sizeof(name), "dtxd%u", k);
			world_url(o, w->dir, name, w->node_urls[k]);
			snprintf(w->coord + len, sizeof(w->coord) - len,
			    "%s%s", k > 0 ? "," : "", w->node_urls[k]);
		}
	}
	for (unsigned i = 0; i < w->nparts; i++) {
		char name[16];
		snprintf(name, sizeof(name), "p%u", i);
		world_url(o, w->dir, name, w->parts[i]);
	}
	return 0;
}

// Starts dtxd on the world's data directory with the load's settings plus
// extra (NULL-terminated, may be NULL). Does not wait for it.
static int world_start_node(
    const bench_opts *o, world *w, const char *const *extra, unsigned k);

static int
world_start_dtxd(const bench_opts *o, world *w, const char *const *extra)
{
	for (unsigned k = 0; k < (o->store_pg ? o->nodes : 1); k++) {
		if (world_start_node(o, w, extra, k) != 0) {
			return -1;
		}
	}
	return 0;
}

// Starts dtxd node k (0 unless --store postgres).
static int
world_start_node(
    const bench_opts *o, world *w, const char *const *extra, unsigned k)
{
	char  contexts[32];
	char  log[PATH_MAX_ + 16];
	char *argv[32 + 2 * BENCH_EXTRA_MAX];
	char  tls[4][PATH_MAX_ + 32];
	char  node[16];
	int   n = 0;
	pid_t pid;

	// Every transaction in flight holds one of dtxd's request contexts
	// (a waiting commit is answered with its outcome), plus some room.
	snprintf(contexts, sizeof(contexts), "%u",
	    o->concurrency + 64 > 65536 ? 65536 : o->concurrency + 64);
	snprintf(log, sizeof(log), "%s/dtxd%s.log", w->dir,
	    k == 0 ? "" : (snprintf(node, sizeof(node), "%u", k), node));
	argv[n++] = w->dtxd_bin;
	argv[n++] = "--listen";
	if (o->store_pg) {
		snprintf(node, sizeof(node), "n%u", k);
		argv[n++] = w->node_urls[k];
		argv[n++] = "--store";
		argv[n++] = "postgres";
		argv[n++] = "--store-conn";
		argv[n++] = w->pg.conninfo;
		argv[n++] = "--node";
		argv[n++] = node;
	} else {
		argv[n++] = w->coord;
		argv[n++] = "--data-dir";
		argv[n++] = w->data;
	}
	argv[n++] = "--log-level";
	argv[n++] = "warn";
	argv[n++] = "--contexts";
	argv[n++] = contexts;
	if (o->tls_dir != NULL) {
		static const char *const flag[] = {"--tls-cert", "--tls-key",
		    "--tls-ca", "--participant-tls-ca"};
		static const char *const file[] = {"dtxd.crt", "dtxd.key",
		    "services-ca.crt", "services-ca.crt"};
		for (int i = 0; i < 4; i++) {
			snprintf(tls[i], sizeof(tls[i]), "%s/%s", o->tls_dir,
			    file[i]);
			argv[n++] = (char *)flag[i];
			argv[n++] = tls[i];
		}
	}
	for (unsigned i = 0; extra != NULL && extra[i] != NULL; i++) {
		argv[n++] = (char *)extra[i];
	}
	for (unsigned i = 0; i < o->ndtxd_extra; i++) {
		argv[n++] = (char *)o->dtxd_extra[i];
	}
	argv[n] = NULL;
	if ((pid = bench_spawn(argv, log)) < 0) {
		fprintf(stderr, "dtx-bench: cannot start %s: %s\n",
		    w->dtxd_bin, strerror(errno));
		return -1;
	}
	w->nodes[k] = pid;
	if (k == 0) {
		w->dtxd = pid;
	}
	return 0;
}

// Stops every dtxd node.
static void
world_stop_dtxd(world *w)
{
	for (unsigned k = 1; k < BENCH_NODES_MAX; k++) {
		if (w->nodes[k] > 0) {
			bench_stop(w->nodes[k], 30000);
			w->nodes[k] = 0;
		}
	}
	bench_stop(w->dtxd, 30000);
	w->dtxd     = 0;
	w->nodes[0] = 0;
}

// CPU seconds of every dtxd node, or -1.
static double
nodes_cpu(const world *w)
{
	double sum = w->dtxd > 0 ? bench_proc_cpu_s(w->dtxd) : -1;

	for (unsigned k = 1; sum >= 0 && k < BENCH_NODES_MAX; k++) {
		if (w->nodes[k] > 0) {
			double c = bench_proc_cpu_s(w->nodes[k]);
			sum      = c < 0 ? -1 : sum + c;
		}
	}
	return sum;
}

static int
world_start_parts(const bench_opts *o, world *w)
{
	char refuse[32], delay[32], workers[32], contexts[32];
	char log[PATH_MAX_ + 16], store[PATH_MAX_ + 16];
	char tls[PATH_MAX_ + 16];
	char stats[PATH_MAX_ + 16];

	snprintf(refuse, sizeof(refuse), "%g", o->refuse_rate);
	snprintf(delay, sizeof(delay), "%u", o->delay_us);
	snprintf(workers, sizeof(workers), "%u", o->part_workers);
	// Every branch of every transaction in flight may be at one
	// participant at once.
	snprintf(contexts, sizeof(contexts), "%u",
	    o->concurrency + 16 > 4096 ? 4096 : o->concurrency + 16);
	for (unsigned i = 0; i < w->nparts; i++) {
		char    *argv[] = {w->part_bin, "--listen", w->parts[i],
		       "--refuse-rate", refuse, "--delay-us", delay, "--workers",
		       workers, "--contexts", contexts, NULL, NULL, NULL, NULL,
		       NULL, NULL, NULL, NULL};
		unsigned n      = 11;
		snprintf(tls, sizeof(tls), "%s", o->tls_dir ? o->tls_dir : "");
		if (o->tls_dir != NULL) {
			argv[n++] = "--tls";
			argv[n++] = tls;
		}
		snprintf(log, sizeof(log), "%s/part%u.log", w->dir, i);
		snprintf(store, sizeof(store), "%s/part%u.store", w->dir, i);
		snprintf(stats, sizeof(stats), "%s/part%u.stats", w->dir, i);
		if (o->barrier) {
			argv[n++] = "--store";
			argv[n++] = store;
			argv[n++] = "--stats";
			argv[n++] = stats;
			if (o->barrier_lock) {
				argv[n++] = "--lock";
			}
		}
		if ((w->part_pids[i] = bench_spawn(argv, log)) < 0) {
			fprintf(stderr, "dtx-bench: cannot start %s: %s\n",
			    w->part_bin, strerror(errno));
			return -1;
		}
	}
	for (unsigned i = 0; i < w->nparts; i++) {
		if (bench_wait_listening(
		        w->parts[i], 20000, w->part_pids[i]) != 0) {
			fprintf(stderr,
			    "dtx-bench: participant %s did not start (see "
			    "%s/part%u.log)\n",
			    w->parts[i], w->dir, i);
			return -1;
		}
	}
	return 0;
}

// A client of the world's dtxd, with the service certificate of --tls.
static int
open_client(const bench_opts *o, const world *w, dtx_client **cp)
{
	char         cert[PATH_MAX_ + 16], key[PATH_MAX_ + 16];
	char         ca[PATH_MAX_ + 32];
	dtx_tls_opts t = {.cert_file = cert, .key_file = key, .ca_file = ca};

	if (o->tls_dir == NULL) {
		return dtx_client_open(cp, w->coord);
	}
	snprintf(cert, sizeof(cert), "%s/service.crt", o->tls_dir);
	snprintf(key, sizeof(key), "%s/service.key", o->tls_dir);
	snprintf(ca, sizeof(ca), "%s/coordinator-ca.crt", o->tls_dir);
	return dtx_client_open_tls(cp, w->coord, &t);
}

// Sums the barrier counters the stopped participants wrote (--stats):
// their whole run, warm-up included. false when one is missing.
static bool
parts_barrier_stats(const world *w, bench_result *r)
{
	char               path[sizeof(w->dir) + 32];
	unsigned long long calls, syncs;
	FILE              *f;
	int                n;

	r->part_calls = r->part_syncs = 0;
	for (unsigned i = 0; i < w->nparts; i++) {
		snprintf(path, sizeof(path), "%s/part%u.stats", w->dir, i);
		if ((f = fopen(path, "r")) == NULL) {
			return false;
		}
		n = fscanf(f, "calls %llu syncs %llu", &calls, &syncs);
		fclose(f);
		if (n != 2) {
			return false;
		}
		r->part_calls += calls;
		r->part_syncs += syncs;
	}
	return r->part_calls > 0;
}

// Copies the end of dtxd's log to stderr, to say why it is gone.
static void
dump_dtxd_log(const world *w)
{
	char   path[sizeof(w->dir) + 16];
	char   buf[4096];
	FILE  *f;
	long   size;
	size_t n;

	snprintf(path, sizeof(path), "%s/dtxd.log", w->dir);
	if ((f = fopen(path, "r")) == NULL) {
		return;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f,
	    size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0,
	    SEEK_SET);
	n      = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "----- end of %s\n%s\n-----\n", path, buf);
}

// The transactions in flight cannot end once the dtxd we started is gone:
// each would wait for its whole client timeout (minutes), and a count run
// would start more. Say so and give up at once; our children die with us.
static void
die_if_dtxd_gone(const bench_opts *o, const world *w)
{
	if (!w->started || w->dtxd <= 0 || bench_alive(w->dtxd)) {
		return;
	}
	fprintf(stderr, "dtx-bench: dtxd ended during the run\n");
	dump_dtxd_log(w);
	if (!o->keep) {
		bench_rmtree(w->dir);
	}
	fflush(NULL);
	_exit(1);
}

// No transaction finished for this long with some in flight: the system is
// stuck (a participant or dtxd hangs), and waiting out every client timeout
// would take minutes per round of the closed loop.
#define STALL_US (120 * INT64_C(1000000))

static void
die_if_stalled(
    const bench_opts *o, const world *w, load *l, int64_t *t, uint64_t *seen)
{
	uint64_t done = atomic_load(&l->done_all);
	int64_t  now  = bench_now_us();

	if (done != *seen || atomic_load(&l->inflight) == 0) {
		*seen = done;
		*t    = now;
		return;
	}
	if (now - *t < STALL_US) {
		return;
	}
	fprintf(stderr,
	    "dtx-bench: no transaction finished in %lld s (%u in flight)\n",
	    (long long)(STALL_US / 1000000), atomic_load(&l->inflight));
	if (w->started) {
		dump_dtxd_log(w);
	}
	if (!o->keep) {
		bench_rmtree(w->dir);
	}
	fflush(NULL);
	_exit(1);
}

// Waits until the coordinator answers a Stats request.
static int
wait_dtxd(const world *w, dtx_client *c, int timeout_ms, bool mine)
{
	int64_t end = bench_now_us() + (int64_t)timeout_ms * 1000;
	dtx_coordinator_stats s;
	int                   rv;

	for (;;) {
		rv = dtx_client_stats(c, &s);
		// An answer from a dtxd that is not ours (another one took
		// the port we picked, so ours could not listen) is no answer.
		if (mine && !bench_alive(w->dtxd)) {
			fprintf(stderr, "dtx-bench: dtxd ended\n");
			dump_dtxd_log(w);
			return -1;
		}
		if (rv == 0) {
			return 0;
		}
		if (bench_now_us() > end) {
			fprintf(stderr, "dtx-bench: coordinator %s: %s\n",
			    w->coord, dtx_strerror(rv));
			return -1;
		}
		sleep_ms(20);
	}
}

static void
world_stop(const bench_opts *o, world *w)
{
	if (w->started) {
		for (unsigned i = 0; i < w->nparts; i++) {
			bench_stop(w->part_pids[i], 10000);
			w->part_pids[i] = 0;
		}
		world_stop_dtxd(w);
	}
	bench_pg_stop(&w->pg);
	if (w->dir[0] != '\0') {
		if (o->keep) {
			fprintf(stderr, "dtx-bench: kept %s\n", w->dir);
		} else {
			bench_rmtree(w->dir);
		}
		w->dir[0] = '\0';
	}
}

static double
parts_cpu(const world *w)
{
	double sum = 0;

	if (!w->started) {
		return -1;
	}
	for (unsigned i = 0; i < w->nparts; i++) {
		double c = bench_proc_cpu_s(w->part_pids[i]);
		if (c < 0) {
			return -1;
		}
		sum += c;
	}
	return sum;
}

// ---------------------------------------------------------------------------
// The closed loop
// ---------------------------------------------------------------------------

static void slot_issue(slot *s);

static void
slot_end(load *l)
{
	pthread_mutex_lock(&l->mtx);
	atomic_fetch_sub(&l->inflight, 1);
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mtx);
}

static void
note_error(load *l, int rv, const char *msg)
{
	atomic_fetch_add(&l->errors, 1);
	pthread_mutex_lock(&l->mtx);
	if (l->first_error[0] == '\0') {
		snprintf(l->first_error, sizeof(l->first_error), "%s: %s",
		    dtx_strerror(rv), msg);
	}
	pthread_mutex_unlock(&l->mtx);
}

static void
on_outcome(dtx_tx *tx, int rv, dtx_state outcome, void *arg)
{
	slot   *s   = arg;
	load   *l   = s->l;
	int64_t now = bench_now_us();

	atomic_fetch_add(&l->done_all, 1);
	if (s->counted) {
		if (rv != 0) {
			note_error(l, rv, dtx_tx_message(tx));
		} else if (outcome == DTX_STATE_COMMITTED) {
			atomic_fetch_add(&l->committed, 1);
		} else if (outcome == DTX_STATE_ABORTED) {
			atomic_fetch_add(&l->aborted, 1);
		} else {
			atomic_fetch_add(&l->compensated, 1);
		}
		bench_hist_add(&l->hist, (uint64_t)(now - s->t0));
		atomic_store(&l->last_done_us, now);
	}
	dtx_tx_free(tx);
	slot_issue(s);
}

// Starts the slot's next transaction, or ends the slot when the window is
// over (or the count reached).
static void
slot_issue(slot *s)
{
	load             *l = s->l;
	const bench_opts *o = l->o;
	dtx_tx           *tx;
	dtx_mode          mode;
	int               rv;

	if (atomic_load(&l->stop)) {
		slot_end(l);
		return;
	}
	s->counted = atomic_load(&l->window);
	if (s->counted && o->count > 0 &&
	    atomic_fetch_add(&l->begun, 1) >= o->count) {
		atomic_store(&l->stop, true);
		slot_end(l);
		return;
	}
	mode = o->mode == BENCH_SAGA ? DTX_SAGA : DTX_2PC;
	if (o->mode == BENCH_MIX) {
		mode =
		    (atomic_fetch_add(&l->mixseq, 1) & 1) ? DTX_SAGA : DTX_2PC;
	}
	if ((rv = dtx_tx_begin(&tx, l->c, mode)) != 0) {
		goto fail;
	}
	for (unsigned i = 0; i < o->branches; i++) {
		// --saga-group N: steps i..i+N-1 run in parallel.
		bool group = mode == DTX_SAGA && o->saga_group > 1;
		if (group && i % o->saga_group == 0) {
			rv = dtx_tx_saga_group_begin(tx);
		}
		if (rv == 0) {
			rv = dtx_tx_add(tx, l->w->parts[i % l->w->nparts],
			    "bench", l->payload, o->payload);
		}
		if (rv == 0 && group &&
		    (i % o->saga_group == o->saga_group - 1 ||
		        i == o->branches - 1)) {
			rv = dtx_tx_saga_group_end(tx);
		}
		if (rv != 0) {
			dtx_tx_free(tx);
			goto fail;
		}
	}
	s->t0 = bench_now_us();
	if ((rv = dtx_tx_commit_async(tx, on_outcome, s)) != 0) {
		dtx_tx_free(tx);
		goto fail;
	}
	return;

fail:
	// Cannot even start one: the slot stops, so a broken setup ends the
	// run instead of spinning.
	note_error(l, rv, "starting a transaction");
	slot_end(l);
}

// A snapshot of everything measured over the window.
typedef struct snap {
	int64_t               t;
	bool                  stats_ok;
	dtx_coordinator_stats stats;
	double                dtxd_cpu, parts_cpu, self_cpu;
	uint64_t              rss_kib;
	double                db_cpu;     // negative: unknown
	int64_t               db_commits; // negative: unknown
} snap;

static void
take_snap(const world *w, dtx_client *c, snap *s)
{
	s->t        = bench_now_us();
	s->stats_ok = dtx_client_stats(c, &s->stats) == 0;
	s->dtxd_cpu = nodes_cpu(w);
	s->rss_kib = w->dtxd > 0 ? bench_proc_status_kib(w->dtxd, "VmRSS") : 0;
	s->db_cpu  = bench_pg_cpu_s(&w->pg);
	s->db_commits =
	    w->pg.conninfo[0] != '\0' ? bench_pg_commits(&w->pg) : -1;
	s->parts_cpu = parts_cpu(w);
	s->self_cpu  = bench_self_cpu_s();
}

static void
progress(const bench_opts *o, load *l, const world *w, const char *phase,
    double el, uint64_t *last_done, int64_t *last_t)
{
	uint64_t done = atomic_load(&l->done_all);
	int64_t  now  = bench_now_us();
	double   rate = (double)(done - *last_done) * 1e6 /
	    (double)(now - *last_t > 0 ? now - *last_t : 1);
	uint64_t rss =
	    w->dtxd > 0 ? bench_proc_status_kib(w->dtxd, "VmRSS") : 0;

	*last_done = done;
	*last_t    = now;
	if (o->quiet) {
		return;
	}
	fprintf(stderr,
	    "%s[%6.1fs] %-7s %9llu done %8.0f tx/s  p99 %7.2f ms  in flight "
	    "%5u  dtxd RSS %6.1f MiB%s",
	    isatty(2) ? "\r" : "", el, phase, (unsigned long long)done, rate,
	    (double)bench_hist_quantile(&l->hist, 0.99) / 1000.0,
	    atomic_load(&l->inflight), (double)rss / 1024.0,
	    isatty(2) ? "   " : "\n");
	fflush(stderr);
}

// The steady-state report (--interval): at the end of each interval, what
// the window did in it. The latency quantile is of the transactions that
// finished in the interval (the histogram's growth since the last mark).
typedef struct ivstate {
	int64_t          next_us; // when the current interval ends
	int64_t          t_us;    // when it began
	uint64_t         count;   // histogram count then
	double           dtxd_cpu;
	bool             hwm_ok;   // VmHWM was reset when it began
	uint64_t         peak_kib; // the highest of the intervals' peaks
	bench_hist_mark *mark;
} ivstate;

static void
iv_begin(const world *w, load *l, ivstate *iv, int64_t now, double secs)
{
	iv->t_us     = now;
	iv->next_us  = now + (int64_t)(secs * 1e6);
	iv->count    = bench_hist_count(&l->hist);
	iv->dtxd_cpu = w->dtxd > 0 ? bench_proc_cpu_s(w->dtxd) : -1;
	iv->hwm_ok   = w->dtxd > 0 && bench_proc_reset_hwm(w->dtxd);
	bench_hist_mark_take(&l->hist, iv->mark);
}

static void
iv_end(const bench_opts *o, const world *w, load *l, ivstate *iv,
    int64_t window_t0, bench_result *r)
{
	int64_t         now = bench_now_us();
	bench_interval *x;
	double          cpu;

	if (r->nintervals == BENCH_INTERVALS_MAX) {
		iv_begin(w, l, iv, now, o->interval_s);
		return;
	}
	x           = &r->intervals[r->nintervals++];
	x->end_s    = (double)(now - window_t0) / 1e6;
	x->tx       = bench_hist_count(&l->hist) - iv->count;
	x->tx_per_s = (double)x->tx * 1e6 / (double)(now - iv->t_us);
	x->p99      = bench_hist_quantile_since(&l->hist, iv->mark, 0.99);
	cpu         = w->dtxd > 0 ? bench_proc_cpu_s(w->dtxd) : -1;
	x->dtxd_cpu_us_per_tx = cpu >= 0 && iv->dtxd_cpu >= 0 && x->tx > 0
	    ? (cpu - iv->dtxd_cpu) * 1e6 / (double)x->tx
	    : -1;
	x->dtxd_rss_kib =
	    w->dtxd > 0 ? bench_proc_status_kib(w->dtxd, "VmRSS") : 0;
	// RSS at one instant swings with how full RocksDB's memtables are
	// (up to 24 MiB); the peak of each interval does not, so it is what
	// a steady state compares.
	x->dtxd_peak_kib =
	    iv->hwm_ok ? bench_proc_status_kib(w->dtxd, "VmHWM") : 0;
	if (x->dtxd_peak_kib > iv->peak_kib) {
		iv->peak_kib = x->dtxd_peak_kib;
	}
	x->load1 = bench_loadavg();
	fprintf(stderr,
	    "%sinterval %4u: %8.1f s %8.0f tx/s  p99 %7.2f ms  dtxd %6.1f "
	    "us/tx  RSS %6.1f MiB (peak %6.1f)  load %.2f\n",
	    isatty(2) && !o->quiet ? "\n" : "", r->nintervals, x->end_s,
	    x->tx_per_s, (double)x->p99 / 1e3, x->dtxd_cpu_us_per_tx,
	    (double)x->dtxd_rss_kib / 1024.0,
	    (double)x->dtxd_peak_kib / 1024.0, x->load1);
	iv_begin(w, l, iv, now, o->interval_s);
}

static int
run_load(const bench_opts *o, const world *w, dtx_client *c, bench_result *r)
{
	load    *l = calloc(1, sizeof(*l));
	ivstate  iv;
	uint64_t run_peak_kib = 0;
	snap     s0, s1;
	int64_t  start, last_t, end;
	uint64_t last_done = 0, stall_seen = 0;
	int64_t  stall_t = bench_now_us();
	int      rv      = 0;

	if (l == NULL ||
	    (l->slots = calloc(o->concurrency, sizeof(slot))) == NULL ||
	    (l->payload = malloc(o->payload > 0 ? o->payload : 1)) == NULL) {
		if (l != NULL) {
			free(l->slots);
		}
		free(l);
		fprintf(stderr, "dtx-bench: out of memory\n");
		return -1;
	}
	memset(l->payload, 'p', o->payload);
	l->o = o;
	l->w = w;
	l->c = c;
	bench_hist_init(&l->hist);
	pthread_mutex_init(&l->mtx, NULL);
	pthread_cond_init(&l->cv, NULL);
	atomic_init(&l->window, o->warmup_s <= 0);

	start  = bench_now_us();
	last_t = start;
	if (o->warmup_s <= 0) {
		take_snap(w, c, &s0);
	}
	atomic_store(&l->inflight, o->concurrency);
	for (unsigned i = 0; i < o->concurrency; i++) {
		l->slots[i].l = l;
		slot_issue(&l->slots[i]);
	}
	// Warm-up: the load runs, nothing is counted.
	if (o->warmup_s > 0) {
		int64_t wend = start + (int64_t)(o->warmup_s * 1e6);
		while (
		    bench_now_us() < wend && atomic_load(&l->inflight) > 0) {
			sleep_ms(100);
			die_if_dtxd_gone(o, w);
			die_if_stalled(o, w, l, &stall_t, &stall_seen);
			if (bench_now_us() - last_t >= 1000000) {
				progress(o, l, w, "warm-up",
				    (double)(bench_now_us() - start) / 1e6,
				    &last_done, &last_t);
			}
		}
		take_snap(w, c, &s0);
		atomic_store(&l->window, true);
	}
	// The window: until the duration passed or the count was begun.
	end = s0.t + (int64_t)(o->duration_s * 1e6);
	memset(&iv, 0, sizeof(iv));
	if (o->interval_s > 0 &&
	    (iv.mark = malloc(sizeof(*iv.mark))) != NULL) {
		iv_begin(w, l, &iv, s0.t, o->interval_s);
	}
	while (!atomic_load(&l->stop) && atomic_load(&l->inflight) > 0 &&
	    (o->count > 0 || bench_now_us() < end)) {
		sleep_ms(50);
		if (iv.mark != NULL && bench_now_us() >= iv.next_us) {
			iv_end(o, w, l, &iv, s0.t, r);
		}
		die_if_dtxd_gone(o, w);
		die_if_stalled(o, w, l, &stall_t, &stall_seen);
		if (bench_now_us() - last_t >= 1000000) {
			progress(o, l, w, "run",
			    (double)(bench_now_us() - start) / 1e6, &last_done,
			    &last_t);
		}
	}
	// The window's last interval, when it is most of one (the window
	// ends on an interval's boundary give or take the 50 ms tick).
	if (iv.mark != NULL &&
	    bench_now_us() - iv.t_us >= (int64_t)(o->interval_s * 0.5e6)) {
		iv_end(o, w, l, &iv, s0.t, r);
	}
	atomic_store(&l->stop, true);
	free(iv.mark);
	run_peak_kib = iv.peak_kib;
	// Drain: every counted transaction gets its outcome (or its error:
	// the client's own timeouts bound this wait).
	pthread_mutex_lock(&l->mtx);
	while (atomic_load(&l->inflight) > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&l->cv, &l->mtx, &ts);
		die_if_dtxd_gone(o, w);
		die_if_stalled(o, w, l, &stall_t, &stall_seen);
	}
	pthread_mutex_unlock(&l->mtx);
	take_snap(w, c, &s1);
	if (!o->quiet) {
		progress(o, l, w, "done",
		    (double)(bench_now_us() - start) / 1e6, &last_done,
		    &last_t);
		if (isatty(2)) {
			fputc('\n', stderr);
		}
	}

	r->committed   = atomic_load(&l->committed);
	r->aborted     = atomic_load(&l->aborted);
	r->compensated = atomic_load(&l->compensated);
	r->errors      = atomic_load(&l->errors);
	r->transactions =
	    r->committed + r->aborted + r->compensated + r->errors;
	{
		int64_t last = atomic_load(&l->last_done_us);
		r->seconds   = last > s0.t ? (double)(last - s0.t) / 1e6 : 0;
	}
	r->tx_per_s = r->seconds > 0
	    ? (double)(r->committed + r->aborted + r->compensated) / r->seconds
	    : 0;
	snprintf(r->first_error, sizeof(r->first_error), "%s", l->first_error);
	r->p50        = bench_hist_quantile(&l->hist, 0.50);
	r->p90        = bench_hist_quantile(&l->hist, 0.90);
	r->p99        = bench_hist_quantile(&l->hist, 0.99);
	r->p999       = bench_hist_quantile(&l->hist, 0.999);
	r->max        = bench_hist_quantile(&l->hist, 1.0);
	r->mean_us    = bench_hist_mean(&l->hist);
	r->dtxd_known = w->dtxd > 0 && s0.dtxd_cpu >= 0 && s1.dtxd_cpu >= 0;
	if (r->dtxd_known) {
		r->dtxd_cpu_s   = s1.dtxd_cpu - s0.dtxd_cpu;
		r->dtxd_hwm_kib = bench_proc_status_kib(w->dtxd, "VmHWM");
		if (run_peak_kib > r->dtxd_hwm_kib) {
			r->dtxd_hwm_kib = run_peak_kib;
		}
		r->dtxd_rss0_kib = s0.rss_kib;
		r->dtxd_rss1_kib = s1.rss_kib;
	}
	r->db_cpu_s =
	    s0.db_cpu >= 0 && s1.db_cpu >= 0 ? s1.db_cpu - s0.db_cpu : -1;
	r->db_commits_per_tx =
	    s0.db_commits >= 0 && s1.db_commits >= 0 && r->transactions > 0
	    ? (double)(s1.db_commits - s0.db_commits) / (double)r->transactions
	    : -1;
	r->parts_cpu_s  = s0.parts_cpu >= 0 && s1.parts_cpu >= 0
	     ? s1.parts_cpu - s0.parts_cpu
	     : -1;
	r->client_cpu_s = s1.self_cpu - s0.self_cpu;
	r->stats_ok     = s0.stats_ok && s1.stats_ok && r->transactions > 0;
	if (r->stats_ok) {
		double n = (double)r->transactions;
		r->writes_per_tx =
		    (double)(s1.stats.store_writes - s0.stats.store_writes) /
		    n;
		r->batches_per_tx =
		    (double)(s1.stats.store_batches - s0.stats.store_batches) /
		    n;
		r->syncs_per_tx =
		    (double)(s1.stats.store_syncs - s0.stats.store_syncs) / n;
	}
	if (r->transactions == 0) {
		fprintf(stderr, "dtx-bench: no transaction completed%s%s\n",
		    l->first_error[0] ? ": " : "", l->first_error);
		rv = -1;
	}
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mtx);
	free(l->payload);
	free(l->slots);
	free(l);
	return rv;
}

// The limits at the run's concurrency and transport, and the bound.
static void
measure_limits(const bench_opts *o, const world *w, bench_result *r)
{
	char     url[BENCH_URL_MAX];
	char     dir[PATH_MAX_ + 16];
	unsigned conc = o->concurrency > 4096 ? 4096 : o->concurrency;
	double   cpu;

	r->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	bench_model_of(o, &r->model);
	if (o->limits_s <= 0) {
		return;
	}
	if (o->ipc) {
		snprintf(url, sizeof(url), "ipc://%s/echo.ipc", w->dir);
	} else {
		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d",
		    dtxi_loopback_port());
	}
	if (!o->quiet) {
		fprintf(stderr,
		    "dtx-bench: measuring this machine's limits "
		    "(%.0f s each)...\n",
		    o->limits_s);
	}
	// A branch call carries the payload plus about 100 bytes of gid,
	// method and header; a record about 200 bytes plus the payload.
	if (bench_limit_echo(
	        url, conc, o->payload + 100, o->limits_s, &r->echo) != 0) {
		fprintf(
		    stderr, "dtx-bench: the nng echo measurement failed\n");
	}
	snprintf(dir, sizeof(dir), "%s/limit-db", w->dir);
	if (bench_limit_store(
	        dir, conc, o->payload + 200, o->limits_s, &r->store) != 0) {
		fprintf(stderr, "dtx-bench: the RocksDB measurement failed\n");
	}
	if (!r->echo.ok || !r->store.ok) {
		return;
	}
	cpu = r->model.rt * r->echo.cpu_us_per_op +
	    r->model.writes * r->store.cpu_us_per_op;
	r->cpu_bound = cpu > 0 ? r->cores * 1e6 / cpu : 0;
	// Throughput alone: the round trips, and the records that must wait
	// for an fsync (the unsynced ones ride in the same batches).
	r->tput_bound = r->echo.ops_per_s / r->model.rt;
	if (r->store.ops_per_s / r->model.syncs < r->tput_bound) {
		r->tput_bound = r->store.ops_per_s / r->model.syncs;
	}
	r->ratio = r->cpu_bound > 0 ? r->tx_per_s / r->cpu_bound : 0;
	// Above a bound the bound is wrong, not dtx faster than the machine:
	// the limits were measured low (another load on the machine, or a
	// measurement that shares threads between its ends, as the echo did
	// when both ran in one process).
	r->ratio_error = r->ratio > 1.0 ||
	    (r->tput_bound > 0 && r->tx_per_s > r->tput_bound);
}

// --preload: the store dtxd starts on already holds o->preload finished
// transactions, written straight into it (coordinator/preload.c), as if
// dtxd had run them at 10,000 tx/s until now. They expire in a day, so a
// run sees them all, whatever its --retention.
static int
preload_store(const bench_opts *o, const world *w, bench_result *r)
{
	dtxd_store       *s;
	dtxd_store_opts   so;
	dtxd_preload_opts po;
	int64_t           t0  = bench_now_us();
	int64_t           now = dtxi_now_ms();
	int               rv;

	dtxd_store_opts_init(&so);
	so.purge_every_ms = 0;
	if ((rv = dtxd_store_open(&s, w->data, &so)) != 0) {
		fprintf(stderr, "dtx-bench: preload: cannot open %s: %s\n",
		    w->data, dtx_strerror(rv));
		return -1;
	}
	memset(&po, 0, sizeof(po));
	po.n          = o->preload;
	po.branches   = o->branches;
	po.spacing_us = 100;
	po.created_ms = now - (int64_t)(o->preload / 10) - 1000;
	po.expire_ms  = now + 24LL * 3600 * 1000;
	if (!o->quiet) {
		fprintf(stderr,
		    "dtx-bench: preloading %llu finished transactions...\n",
		    (unsigned long long)o->preload);
	}
	rv = dtxd_preload(s, &po);
	dtxd_store_close(s);
	if (rv != 0) {
		fprintf(stderr, "dtx-bench: preload: %s\n", dtx_strerror(rv));
		return -1;
	}
	r->preload_s     = (double)(bench_now_us() - t0) / 1e6;
	r->preload_bytes = bench_dir_bytes(w->data);
	if (!o->quiet) {
		fprintf(stderr,
		    "dtx-bench: preloaded %llu in %.1f s (store %.0f MiB)\n",
		    (unsigned long long)o->preload, r->preload_s,
		    (double)r->preload_bytes / 1048576.0);
	}
	return 0;
}

int
bench_run(const bench_opts *o, bench_result *r)
{
	world       w;
	dtx_client *c  = NULL;
	int         rv = -1;

	memset(r, 0, sizeof(*r));
	r->parts_cpu_s = -1;
	if (world_init(o, &w) != 0) {
		return -1;
	}
	if (w.started && o->preload > 0 && preload_store(o, &w, r) != 0) {
		goto out;
	}
	if (w.started && o->store_pg &&
	    (o->store_conn != NULL ? (bench_pg_use(&w.pg, o->store_conn), 0)
	                           : bench_pg_start(&w.pg, w.dir)) != 0) {
		goto out;
	}
	if (w.started &&
	    (world_start_dtxd(o, &w, NULL) != 0 ||
	        world_start_parts(o, &w) != 0)) {
		goto out;
	}
	if ((rv = open_client(o, &w, &c)) != 0) {
		fprintf(
		    stderr, "dtx-bench: %s: %s\n", w.coord, dtx_strerror(rv));
		rv = -1;
		goto out;
	}
	dtx_client_set_timeout_ms(c, 10000);
	if ((rv = wait_dtxd(&w, c, 30000, w.started)) != 0) {
		goto out;
	}
	rv = run_load(o, &w, c, r);
	dtx_client_close(c);
	c = NULL;
	if (w.started) {
		// Stop the benchmark's processes before measuring the limits.
		for (unsigned i = 0; i < w.nparts; i++) {
			bench_stop(w.part_pids[i], 10000);
			w.part_pids[i] = 0;
		}
		world_stop_dtxd(&w);
		r->part_stats_ok = o->barrier && parts_barrier_stats(&w, r);
	}
	if (rv == 0) {
		measure_limits(o, &w, r);
	}

out:
	dtx_client_close(c);
	world_stop(o, &w);
	return rv;
}

// ---------------------------------------------------------------------------
// Recovery
// ---------------------------------------------------------------------------

// The recovery benchmark needs N transactions that are durable and
// unfinished when dtxd dies. They are submitted (dtx_tx_submit: durably
// accepted, synced) while no participant runs, with timeouts and retries
// long enough that none gives up; then dtxd is killed with SIGKILL, the
// participants start, and dtxd restarts on the same data. The time counted
// runs from that restart until dtxd reports no active transaction: loading
// the unfinished index and driving every one to a terminal state.

typedef struct submitter {
	const bench_opts    *o;
	const world         *w;
	dtx_client          *c;
	atomic_uint_fast64_t next;
	atomic_uint_fast64_t ok;
	atomic_uint_fast64_t errors;
} submitter;

static void *
submit_main(void *arg)
{
	submitter        *s = arg;
	const bench_opts *o = s->o;
	char              payload[64];
	size_t            plen =
            o->payload < sizeof(payload) ? o->payload : sizeof(payload);

	memset(payload, 'r', sizeof(payload));
	while (atomic_fetch_add(&s->next, 1) < o->recovery_n) {
		dtx_tx *tx;
		int     rv;
		int     mode = o->mode;

		if (mode == BENCH_MIX) {
			mode = (atomic_load(&s->next) & 1) ? BENCH_SAGA
			                                   : BENCH_2PC;
		}
		rv = dtx_tx_begin(
		    &tx, s->c, mode == BENCH_SAGA ? DTX_SAGA : DTX_2PC);
		if (rv == 0) {
			dtx_tx_set_timeout_ms(tx, 3600u * 1000);
			dtx_tx_set_call_timeout_ms(tx, 600u * 1000);
			dtx_tx_set_retries(tx, 1000);
			for (unsigned i = 0; rv == 0 && i < o->branches; i++) {
				rv = dtx_tx_add(tx,
				    s->w->parts[i % s->w->nparts], "bench",
				    payload, plen);
			}
			if (rv == 0) {
				rv = dtx_tx_submit(tx);
			}
			dtx_tx_free(tx);
		}
		atomic_fetch_add(rv == 0 ? &s->ok : &s->errors, 1);
	}
	return NULL;
}

int
bench_run_recovery(const bench_opts *o, bench_recovery *r)
{
	// Calls to the absent participants wait long, and retry late, so the
	// first dtxd spends its time accepting, not retrying.
	static const char *const hold[] = {"--call-timeout-ms", "600000",
	    "--backoff-base-ms", "600000", "--backoff-max-ms", "600000", NULL};
	world                    w;
	dtx_client              *c = NULL;
	submitter                sub;
	pthread_t                th[64];
	unsigned              nth = o->concurrency < 64 ? o->concurrency : 64;
	dtx_coordinator_stats st;
	int64_t               t0;
	int                   rv = -1;

	memset(r, 0, sizeof(*r));
	r->n = o->recovery_n;
	if (world_init(o, &w) != 0) {
		return -1;
	}
	if (!w.started) {
		fprintf(stderr,
		    "dtx-bench: --recovery starts its own dtxd; it "
		    "cannot target a running one\n");
		goto out;
	}
	if (world_start_dtxd(o, &w, hold) != 0 ||
	    open_client(o, &w, &c) != 0) {
		goto out;
	}
	dtx_client_set_timeout_ms(c, 30000);
	if (wait_dtxd(&w, c, 30000, true) != 0) {
		goto out;
	}
	memset(&sub, 0, sizeof(sub));
	sub.o = o;
	sub.w = &w;
	sub.c = c;
	t0    = bench_now_us();
	if (nth == 0) {
		nth = 1;
	}
	for (unsigned i = 0; i < nth; i++) {
		if (pthread_create(&th[i], NULL, submit_main, &sub) != 0) {
			nth = i;
			break;
		}
	}
	while (
	    atomic_load(&sub.ok) + atomic_load(&sub.errors) < o->recovery_n &&
	    nth > 0) {
		sleep_ms(500);
		if (!o->quiet) {
			fprintf(stderr,
			    "%s[recovery] submitted %llu of %llu%s",
			    isatty(2) ? "\r" : "",
			    (unsigned long long)atomic_load(&sub.ok),
			    (unsigned long long)o->recovery_n,
			    isatty(2) ? "   " : "\n");
		}
	}
	for (unsigned i = 0; i < nth; i++) {
		pthread_join(th[i], NULL);
	}
	r->submit_s  = (double)(bench_now_us() - t0) / 1e6;
	r->submitted = atomic_load(&sub.ok);
	r->errors    = atomic_load(&sub.errors);
	if (dtx_client_stats(c, &st) == 0) {
		r->unfinished = st.active;
	}
	if (!o->quiet) {
		fprintf(stderr,
		    "%s[recovery] %llu accepted, %llu active; killing dtxd\n",
		    isatty(2) ? "\n" : "", (unsigned long long)r->submitted,
		    (unsigned long long)r->unfinished);
	}
	bench_kill(w.dtxd);
	w.dtxd = 0;
	if (world_start_parts(o, &w) != 0) {
		goto out;
	}
	t0 = bench_now_us();
	if (world_start_dtxd(o, &w, NULL) != 0) {
		goto out;
	}
	if (wait_dtxd(&w, c, 600000, true) != 0) {
		goto out;
	}
	r->ready_s = (double)(bench_now_us() - t0) / 1e6;
	for (;;) {
		if (dtx_client_stats(c, &st) == 0 && st.active == 0) {
			break;
		}
		if (!bench_alive(w.dtxd)) {
			fprintf(stderr,
			    "dtx-bench: dtxd ended (see %s/dtxd.log)\n",
			    w.dir);
			goto out;
		}
		sleep_ms(5);
	}
	r->total_s    = (double)(bench_now_us() - t0) / 1e6;
	r->recovered  = st.recovered;
	r->finished   = st.finished;
	r->rate       = r->total_s > 0 ? (double)st.recovered / r->total_s : 0;
	r->dtxd_cpu_s = bench_proc_cpu_s(w.dtxd);
	r->dtxd_hwm_kib = bench_proc_status_kib(w.dtxd, "VmHWM");
	rv              = 0;

out:
	dtx_client_close(c);
	world_stop(o, &w);
	return rv;
}
