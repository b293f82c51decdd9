// SPDX-License-Identifier: MIT
//
// metrics: the registry and its Prometheus text (see metrics.h). Every
// series is an array of atomics indexed by its labels, so recording is an
// index computation and an atomic add, and the number of series is fixed
// at compile time. The metrics:
//
//   dtxd_build_info{version}                      1
//   dtxd_ready                                    1 when /readyz says ready
//   dtxd_recovering                               1 while recovering
//   dtxd_uptime_seconds
//   dtxd_transactions_started_total{mode}         accepted (create written)
//   dtxd_transactions_finished_total{mode,outcome}
//   dtxd_transaction_duration_seconds{mode}       histogram: created to the
//                                                 terminal state
//   dtxd_transactions_in_flight                   in memory, unfinished
//   dtxd_transactions_stuck                       flagged STUCK, in memory
//   dtxd_branch_calls_total{phase,result}         ended calls; result: ok,
//                                                 refused, retry,
//                                                 no_such_method,
//                                                 bad_request, timeout,
//                                                 unreachable, error
//   dtxd_branch_retries_total{phase}              calls after a phase's
//                                                 first
//   dtxd_call_messages_total                      frames carrying calls
//   dtxd_store_records_total                      records written
//   dtxd_store_batches_total                      write batches (group
//                                                 commits)
//   dtxd_store_syncs_total                        synced batches (fsyncs)
//   dtxd_store_errors_total                       failed batches
//   dtxd_store_sync_seconds                       histogram: one synced
//                                                 batch write, fsync
//                                                 included
//   dtxd_store_failing                            1 from a failed batch
//                                                 until one succeeds
//   dtxd_recovery_transactions{result}            loaded, skipped at start
//   dtxd_recovery_load_seconds                    reading them back
//   dtxd_recovery_resume_seconds                  loop start to the last
//                                                 one resumed
//   dtxd_requests_total{kind}                     Coordinator API requests
//   dtxd_tls_handshakes_refused_total{listener}   client, operator: peers
//                                                 without a certificate of
//                                                 the listener's CA
//   dtxd_resolve_requests_total{answer}           Resolve answers by state

#include "metrics.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dtx/dtx.h>

#include "codec.h"

#define NMODES  2 // DTX_2PC, DTX_SAGA
#define NOUT    3 // committed, aborted, compensated
#define NPHASES 5 // DTX_PHASE_PREPARE .. DTX_PHASE_COMPENSATE
#define NSTATES 9 // 0 .. DTX_STATE_COMPENSATED
#define NKINDS  (DTXI_REQ_SETTLE + 1)

typedef atomic_ullong counter;

// Bucket bounds in microseconds; the last bucket (+Inf) is implicit.
static const uint64_t tx_bounds[]   = {1000, 2500, 5000, 10000, 25000, 50000,
      100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000,
      60000000, 300000000};
static const uint64_t sync_bounds[] = {100, 250, 500, 1000, 2500, 5000, 10000,
    25000, 50000, 100000, 250000, 1000000};

#define TX_NB   (sizeof(tx_bounds) / sizeof(tx_bounds[0]))
#define SYNC_NB (sizeof(sync_bounds) / sizeof(sync_bounds[0]))

typedef struct histo {
	counter count;             // observations
	counter sum;               // microseconds
	counter bucket[TX_NB + 1]; // non-cumulative; [nb] is +Inf
} histo;

struct dtxd_metrics {
	counter      started[NMODES];
	counter      finished[NMODES][NOUT];
	histo        duration[NMODES];
	counter      calls[NPHASES][DTXD_CALL_RESULTS];
	counter      retries[NPHASES];
	atomic_llong stuck;
	counter      store_records;
	counter      store_batches;
	counter      store_syncs;
	counter      store_errors;
	histo        store_sync;
	atomic_bool  store_failing;
	atomic_int   store_last_error;
	counter      requests[NKINDS];
	counter      resolve[NSTATES];
	atomic_bool  recovering;
	atomic_bool  lease_lost;
	// Why the store cannot be opened yet; the one string here, so the
	// one lock (a leaf, held only to copy it).
	atomic_bool     waiting;
	pthread_mutex_t waiting_mtx;
	char            waiting_why[DTXD_METRICS_WHY_MAX];
	atomic_bool     stopping;
	counter         rec_loaded;
	counter         rec_skipped;
	atomic_llong    rec_load_ms;
	atomic_llong    rec_resume_ms;
};

_Static_assert(SYNC_NB <= TX_NB, "a histogram holds the longer bounds");

int
dtxd_metrics_alloc(dtxd_metrics **mp)
{
	// All zero is the initial state of every atomic here (C11 atomics
	// of integer type have the representation of their integer).
	dtxd_metrics *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		return DTX_ENOMEM;
	}
	if (pthread_mutex_init(&m->waiting_mtx, NULL) != 0) {
		free(m);
		return DTX_ENOMEM;
	}
	atomic_store(&m->recovering, true);
	*mp = m;
	return 0;
}

void
dtxd_metrics_free(dtxd_metrics *m)
{
	if (m != NULL) {
		pthread_mutex_destroy(&m->waiting_mtx);
	}
	free(m);
}

static void
inc(counter *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static void
observe(histo *h, const uint64_t *bounds, size_t nb, int64_t us)
{
	size_t i = 0;
	if (us < 0) {
		us = 0;
	}
	while (i < nb && (uint64_t)us > bounds[i]) {
		i++;
	}
	inc(&h->bucket[i], 1);
	inc(&h->sum, (uint64_t)us);
	inc(&h->count, 1);
}

static int
mode_index(int mode)
{
	return mode == DTX_SAGA ? 1 : 0;
}

static int
outcome_index(int state)
{
	return state == DTX_STATE_COMMITTED ? 0
	    : state == DTX_STATE_ABORTED    ? 1
	                                    : 2;
}

static bool
phase_valid(int phase)
{
	return phase >= DTX_PHASE_PREPARE && phase <= DTX_PHASE_COMPENSATE;
}

void
dtxd_metrics_tx_started(dtxd_metrics *m, int mode)
{
	if (m != NULL) {
		inc(&m->started[mode_index(mode)], 1);
	}
}

void
dtxd_metrics_tx_finished(dtxd_metrics *m, int mode, int state, int64_t ms)
{
	if (m == NULL) {
		return;
	}
	inc(&m->finished[mode_index(mode)][outcome_index(state)], 1);
	observe(&m->duration[mode_index(mode)], tx_bounds, TX_NB, ms * 1000);
}

void
dtxd_metrics_call(dtxd_metrics *m, int phase, dtxd_call_result result)
{
	if (m != NULL && phase_valid(phase) && result < DTXD_CALL_RESULTS) {
		inc(&m->calls[phase - 1][result], 1);
	}
}

void
dtxd_metrics_retry(dtxd_metrics *m, int phase)
{
	if (m != NULL && phase_valid(phase)) {
		inc(&m->retries[phase - 1], 1);
	}
}

void
dtxd_metrics_stuck_add(dtxd_metrics *m, int delta)
{
	if (m != NULL) {
		atomic_fetch_add(&m->stuck, delta);
	}
}

void
dtxd_metrics_store_batch(
    dtxd_metrics *m, uint64_t n, bool sync, int64_t us, int rv)
{
	if (m == NULL) {
		return;
	}
	if (rv != 0) {
		inc(&m->store_errors, 1);
		atomic_store(&m->store_last_error, rv);
		atomic_store(&m->store_failing, true);
		return;
	}
	atomic_store(&m->store_failing, false);
	if (n == 0) {
		return; // the store says it takes writes again
	}
	inc(&m->store_records, n);
	inc(&m->store_batches, 1);
	if (sync) {
		inc(&m->store_syncs, 1);
		observe(&m->store_sync, sync_bounds, SYNC_NB, us);
	}
}

void
dtxd_metrics_request(dtxd_metrics *m, int kind)
{
	if (m != NULL && kind >= 0 && kind < NKINDS) {
		inc(&m->requests[kind], 1);
	}
}

void
dtxd_metrics_resolve(dtxd_metrics *m, int state)
{
	if (m != NULL && state >= 0 && state < NSTATES) {
		inc(&m->resolve[state], 1);
	}
}

void
dtxd_metrics_recovery_loaded(
    dtxd_metrics *m, uint64_t n, uint64_t skipped, int64_t ms)
{
	if (m != NULL) {
		atomic_store(&m->rec_loaded, n);
		atomic_store(&m->rec_skipped, skipped);
		atomic_store(&m->rec_load_ms, ms);
	}
}

void
dtxd_metrics_recovery_resumed(dtxd_metrics *m, int64_t ms)
{
	if (m != NULL) {
		atomic_store(&m->rec_resume_ms, ms);
		atomic_store(&m->recovering, false);
	}
}

void
dtxd_metrics_set_store_waiting(dtxd_metrics *m, const char *why)
{
	if (m == NULL) {
		return;
	}
	pthread_mutex_lock(&m->waiting_mtx);
	snprintf(m->waiting_why, sizeof(m->waiting_why), "%s",
	    why != NULL ? why : "");
	atomic_store(&m->waiting, why != NULL);
	pthread_mutex_unlock(&m->waiting_mtx);
}

void
dtxd_metrics_set_recovering(dtxd_metrics *m, bool on)
{
	if (m != NULL) {
		atomic_store(&m->recovering, on);
	}
}

void
dtxd_metrics_set_lease_lost(dtxd_metrics *m, bool lost)
{
	if (m != NULL) {
		atomic_store(&m->lease_lost, lost);
	}
}

void
dtxd_metrics_set_stopping(dtxd_metrics *m)
{
	if (m != NULL) {
		atomic_store(&m->stopping, true);
	}
}

bool
dtxd_metrics_store_failing(dtxd_metrics *m, int *last_error)
{
	bool failing = atomic_load(&m->store_failing);
	if (failing && last_error != NULL) {
		*last_error = atomic_load(&m->store_last_error);
	}
	return failing;
}

bool
dtxd_metrics_ready(dtxd_metrics *m, char *why, size_t cap)
{
	int err = 0;

	if (atomic_load(&m->stopping)) {
		snprintf(why, cap, "shutting down");
		return false;
	}
	if (atomic_load(&m->waiting)) {
		pthread_mutex_lock(&m->waiting_mtx);
		snprintf(
		    why, cap, "waiting for the store: %s", m->waiting_why);
		pthread_mutex_unlock(&m->waiting_mtx);
		return false;
	}
	if (atomic_load(&m->recovering)) {
		snprintf(why, cap, "recovering");
		return false;
	}
	if (dtxd_metrics_store_failing(m, &err)) {
		snprintf(why, cap, "store failing: %s", dtx_strerror(err));
		return false;
	}
	if (atomic_load(&m->lease_lost)) {
		snprintf(why, cap,
		    "this node's lease is not renewed (the database is out "
		    "of reach): the other nodes may take its work over");
		return false;
	}
	return true;
}

// ---------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------

static const char *const mode_names[NMODES] = {"2pc", "saga"};
static const char *const out_names[NOUT]    = {
       "committed", "aborted", "compensated"};
static const char *const phase_names[NPHASES] = {
    "prepare", "commit", "abort", "execute", "compensate"};
static const char *const result_names[DTXD_CALL_RESULTS] = {"ok", "refused",
    "retry", "no_such_method", "bad_request", "timeout", "unreachable",
    "error"};
static const char *const kind_names[NKINDS] = {"none", "submit", "status",
    "list", "abort", "resolve", "call", "stats", "call_batch", "retry",
    "settle"};

static uint64_t
get(counter *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static void
head(dtxd_textbuf *t, const char *name, const char *type, const char *help)
{
	dtxd_textbuf_printf(
	    t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
scalar(dtxd_textbuf *t, const char *name, const char *type, const char *help,
    double v)
{
	head(t, name, type, help);
	dtxd_textbuf_printf(t, "%s %.15g\n", name, v);
}

// A histogram's series, with labels (may be "") before le.
static void
histogram(dtxd_textbuf *t, const char *name, const char *labels, histo *h,
    const uint64_t *bounds, size_t nb)
{
	uint64_t cum = 0;
	// The atomics are read one by one while observations go on, so the
	// buckets may be a little ahead of the count read first: the +Inf
	// bucket and the count are written as the larger of the two, which
	// keeps the series monotonic, as Prometheus requires.
	uint64_t    count = get(&h->count);
	const char *sep   = labels[0] != '\0' ? "," : "";

	for (size_t i = 0; i < nb; i++) {
		cum += get(&h->bucket[i]);
		dtxd_textbuf_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name,
		    labels, sep, (double)bounds[i] / 1e6,
		    (unsigned long long)cum);
	}
	cum += get(&h->bucket[nb]);
	if (cum < count) {
		cum = count;
	}
	dtxd_textbuf_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name,
	    labels, sep, (unsigned long long)cum);
	dtxd_textbuf_printf(t, "%s_sum%s%s%s %.6f\n", name,
	    labels[0] != '\0' ? "{" : "", labels, labels[0] != '\0' ? "}" : "",
	    (double)get(&h->sum) / 1e6);
	dtxd_textbuf_printf(t, "%s_count%s%s%s %llu\n", name,
	    labels[0] != '\0' ? "{" : "", labels, labels[0] != '\0' ? "}" : "",
	    (unsigned long long)cum);
}

void
dtxd_metrics_render(
    dtxd_metrics *m, const dtxd_metrics_gauges *g, dtxd_textbuf *t)
{
	char why[64];
	char labels[64];

	head(t, "dtxd_build_info", "gauge", "dtxd's version");
	dtxd_textbuf_printf(t, "dtxd_build_info{version=\"%d.%d.%d\"} 1\n",
	    DTX_VERSION_MAJOR, DTX_VERSION_MINOR, DTX_VERSION_PATCH);
	scalar(t, "dtxd_ready", "gauge",
	    "1 when dtxd serves (not recovering, stopping or failing to "
	    "store)",
	    dtxd_metrics_ready(m, why, sizeof(why)) ? 1 : 0);
	scalar(t, "dtxd_recovering", "gauge",
	    "1 until every recovered transaction is resumed",
	    atomic_load(&m->recovering) ? 1 : 0);
	scalar(t, "dtxd_uptime_seconds", "gauge", "seconds since dtxd started",
	    (double)g->uptime_ms / 1e3);

	head(t, "dtxd_transactions_started_total", "counter",
	    "transactions accepted (create record written)");
	for (int i = 0; i < NMODES; i++) {
		dtxd_textbuf_printf(t,
		    "dtxd_transactions_started_total{mode=\"%s\"} %llu\n",
		    mode_names[i], (unsigned long long)get(&m->started[i]));
	}
	head(t, "dtxd_transactions_finished_total", "counter",
	    "transactions that reached their outcome");
	for (int i = 0; i < NMODES; i++) {
		for (int o = 0; o < NOUT; o++) {
			// A 2PC is never compensated, a saga never aborted.
			if ((i == 0 && o == 2) || (i == 1 && o == 1)) {
				continue;
			}
			dtxd_textbuf_printf(t,
			    "dtxd_transactions_finished_total{mode=\"%s\","
			    "outcome=\"%s\"} %llu\n",
			    mode_names[i], out_names[o],
			    (unsigned long long)get(&m->finished[i][o]));
		}
	}
	head(t, "dtxd_transaction_duration_seconds", "histogram",
	    "from acceptance to the outcome");
	for (int i = 0; i < NMODES; i++) {
		snprintf(labels, sizeof(labels), "mode=\"%s\"", mode_names[i]);
		histogram(t, "dtxd_transaction_duration_seconds", labels,
		    &m->duration[i], tx_bounds, TX_NB);
	}
	scalar(t, "dtxd_transactions_in_flight", "gauge",
	    "unfinished transactions in memory", (double)g->in_flight);
	scalar(t, "dtxd_transactions_stuck", "gauge",
	    "transactions flagged STUCK (phase two or compensation keeps "
	    "failing)",
	    (double)atomic_load(&m->stuck));

	head(t, "dtxd_branch_calls_total", "counter",
	    "branch calls that ended, by phase and result");
	for (int p = 0; p < NPHASES; p++) {
		for (int r = 0; r < DTXD_CALL_RESULTS; r++) {
			dtxd_textbuf_printf(t,
			    "dtxd_branch_calls_total{phase=\"%s\",result=\"%"
			    "s\"} %llu\n",
			    phase_names[p], result_names[r],
			    (unsigned long long)get(&m->calls[p][r]));
		}
	}
	head(t, "dtxd_branch_retries_total", "counter",
	    "branch calls after the first of their phase");
	for (int p = 0; p < NPHASES; p++) {
		dtxd_textbuf_printf(t,
		    "dtxd_branch_retries_total{phase=\"%s\"} %llu\n",
		    phase_names[p], (unsigned long long)get(&m->retries[p]));
	}
	scalar(t, "dtxd_call_messages_total", "counter",
	    "frames that carried branch calls (a batch is one)",
	    (double)g->call_messages);
	head(t, "dtxd_tls_handshakes_refused_total", "counter",
	    "TLS handshakes a listener refused (counted every 2 s)");
	for (int i = 0; i < 2; i++) {
		dtxd_textbuf_printf(t,
		    "dtxd_tls_handshakes_refused_total{listener=\"%s\"} "
		    "%llu\n",
		    i == 0 ? "client" : "operator",
		    (unsigned long long)g->tls_refused[i]);
	}

	scalar(t, "dtxd_store_records_total", "counter", "records written",
	    (double)get(&m->store_records));
	scalar(t, "dtxd_store_batches_total", "counter",
	    "write batches (group commits)", (double)get(&m->store_batches));
	scalar(t, "dtxd_store_syncs_total", "counter",
	    "synced write batches (fsyncs)", (double)get(&m->store_syncs));
	scalar(t, "dtxd_store_errors_total", "counter",
	    "write batches that failed", (double)get(&m->store_errors));
	head(t, "dtxd_store_sync_seconds", "histogram",
	    "time of one synced batch write, fsync included");
	histogram(t, "dtxd_store_sync_seconds", "", &m->store_sync,
	    sync_bounds, SYNC_NB);
	scalar(t, "dtxd_store_failing", "gauge",
	    "1 from a failed write batch until one succeeds",
	    dtxd_metrics_store_failing(m, NULL) ? 1 : 0);

	head(t, "dtxd_recovery_transactions", "gauge",
	    "unfinished transactions found at start");
	dtxd_textbuf_printf(t,
	    "dtxd_recovery_transactions{result=\"loaded\"} %llu\n"
	    "dtxd_recovery_transactions{result=\"skipped\"} %llu\n",
	    (unsigned long long)get(&m->rec_loaded),
	    (unsigned long long)get(&m->rec_skipped));
	scalar(t, "dtxd_recovery_load_seconds", "gauge",
	    "time to read the unfinished transactions back",
	    (double)atomic_load(&m->rec_load_ms) / 1e3);
	scalar(t, "dtxd_recovery_resume_seconds", "gauge",
	    "time from the loop's start until every recovered transaction "
	    "was resumed",
	    (double)atomic_load(&m->rec_resume_ms) / 1e3);

	head(t, "dtxd_requests_total", "counter",
	    "Coordinator API requests by kind");
	for (int k = DTXI_REQ_SUBMIT; k < NKINDS; k++) {
		if (k == DTXI_REQ_CALL || k == DTXI_REQ_CALL_BATCH) {
			continue; // participant requests, never dtxd's
		}
		dtxd_textbuf_printf(t,
		    "dtxd_requests_total{kind=\"%s\"} %llu\n", kind_names[k],
		    (unsigned long long)get(&m->requests[k]));
	}
	head(t, "dtxd_resolve_requests_total", "counter",
	    "Resolve requests (participants' in-doubt questions) by answer");
	for (int s = 1; s < NSTATES; s++) {
		char        lower[16];
		const char *name = dtx_state_name(s);
		size_t      i    = 0;
		for (; name[i] != '\0' && i + 1 < sizeof(lower); i++) {
			lower[i] = (char)tolower((unsigned char)name[i]);
		}
		lower[i] = '\0';
		dtxd_textbuf_printf(t,
		    "dtxd_resolve_requests_total{answer=\"%s\"} %llu\n", lower,
		    (unsigned long long)get(&m->resolve[s]));
	}
}
