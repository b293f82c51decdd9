// SPDX-License-Identifier: MIT
//
// bench: dtx-bench's shared types. main.c parses the options and prints
// reports; run.c runs one benchmark or one recovery benchmark: the world
// (dtxd and participants it starts or targets), the closed-loop load and
// the snapshots the report is made of.

#ifndef DTX_BENCH_BENCH_H
#define DTX_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <dtx/dtx.h>

#include "hist.h"
#include "limits.h"

#define BENCH_PARTS_MAX 64
#define BENCH_URL_MAX   512
#define BENCH_EXTRA_MAX 16

enum { BENCH_2PC = 1, BENCH_SAGA = 2, BENCH_MIX = 3 };

typedef struct bench_opts {
	int         mode;        // BENCH_2PC, BENCH_SAGA or BENCH_MIX
	unsigned    branches;    // per transaction
	unsigned    saga_group;  // saga steps per parallel group (1: none)
	unsigned    concurrency; // transactions in flight
	unsigned    parts;       // participant processes (0: = branches)
	double      duration_s;  // measured window, when count is 0
	uint64_t    count;       // transactions measured (0: use duration)
	double      warmup_s;
	size_t      payload;     // bytes per branch
	bool        ipc;         // transport: ipc instead of tcp
	const char *tls_dir;     // --tls: samples/tls/make-certs.sh's output
	double      refuse_rate; // participant refusals of prepare/execute
	unsigned    delay_us;    // participant work per prepare/execute
	unsigned    part_workers;
	bool        barrier;      // participants use the barrier, own store
	bool        barrier_lock; // ... with its lock hooks
	double      limits_s;     // per limit measurement; 0: skip
	bool        json;
	bool        quiet; // no progress line
	bool        keep;  // keep the temporary directory
	const char *dtxd_bin;
	const char *part_bin;
	const char *coord_url; // target a running coordinator
	char       *part_urls[BENCH_PARTS_MAX];
	unsigned    npart_urls;
	pid_t       dtxd_pid; // of the running coordinator, or 0
	const char *dtxd_extra[BENCH_EXTRA_MAX];
	unsigned    ndtxd_extra;
	uint64_t    recovery_n; // recovery benchmark: unfinished transactions
	double      interval_s; // steady-state report every interval_s; 0: no
	uint64_t    preload;    // finished transactions in the store at start
	bool        store_pg;   // dtxd on PostgreSQL (--store postgres)
	const char *store_conn; // a running database, or NULL: a private one
	unsigned    nodes;      // dtxd processes on it (1..BENCH_NODES_MAX)
} bench_opts;

#define BENCH_NODES_MAX 8

#define BENCH_INTERVALS_MAX 1440

// One interval of a long run (--interval): what the window did in it.
typedef struct bench_interval {
	double   end_s;              // since the window began
	uint64_t tx;                 // counted transactions finished in it
	double   tx_per_s;           // of those
	uint64_t p99;                // microseconds, of those finished in it
	double   dtxd_cpu_us_per_tx; // -1: unknown
	uint64_t dtxd_rss_kib;       // at its end; 0: unknown
	uint64_t dtxd_peak_kib;      // its highest; 0: unknown
	double   load1;              // /proc/loadavg, 1 minute, at its end
} bench_interval;

// What the model says one transaction costs (see bench_model).
typedef struct bench_model {
	double rt;     // round trips (messages) per transaction
	double writes; // store records per transaction
	double syncs;  // synced records per transaction
	char   rt_how[256];
	char   w_how[256];
} bench_model;

typedef struct bench_result {
	// Load.
	uint64_t transactions, committed, aborted, compensated, errors;
	double   seconds, tx_per_s;
	char     first_error[DTX_MESSAGE_MAX + 64];
	uint64_t p50, p90, p99, p999, max; // microseconds
	double   mean_us;
	// Database (--store postgres): its CPU over the window (negative:
	// unknown, a database not started here) and its commits per
	// transaction (negative: unknown).
	double db_cpu_s;
	double db_commits_per_tx;
	// Coordinator (known when started here or --dtxd-pid given; with
	// several nodes, their sum).
	bool     dtxd_known;
	double   dtxd_cpu_s;
	uint64_t dtxd_hwm_kib, dtxd_rss0_kib, dtxd_rss1_kib;
	double   parts_cpu_s; // -1: unknown
	// --barrier: the participants' barrier calls and fsyncs over their
	// whole run (warm-up included).
	bool     part_stats_ok;
	uint64_t part_calls, part_syncs;
	double   client_cpu_s;
	// Store counters over the window.
	bool   stats_ok;
	double writes_per_tx, batches_per_tx, syncs_per_tx;
	// Limits and bound.
	int         cores;
	bench_limit echo, store;
	bench_model model;
	double      cpu_bound, tput_bound, ratio; // 0 when unknown
	// The achieved rate is above a bound: the limits were measured low
	// (a busy machine), so there is no ratio to report.
	bool ratio_error;
	// Long run (--interval) and preload (--preload).
	bench_interval intervals[BENCH_INTERVALS_MAX];
	unsigned       nintervals;
	double         preload_s;     // building the preloaded store
	uint64_t       preload_bytes; // its size on disk
} bench_result;

typedef struct bench_recovery {
	uint64_t n;          // asked to leave unfinished
	uint64_t submitted;  // durably accepted before the kill
	uint64_t unfinished; // active in dtxd just before the kill
	uint64_t recovered;  // resumed by the restarted dtxd
	uint64_t finished;   // terminal after the restart
	double   submit_s;   // time to submit them
	double   ready_s;    // restart until dtxd answered
	double   total_s;    // restart until none active
	double   rate;       // recovered / total_s
	double   dtxd_cpu_s;
	uint64_t dtxd_hwm_kib;
	uint64_t errors;
} bench_recovery;

// Workload cost model of o: round trips and records per transaction.
void bench_model_of(const bench_opts *o, bench_model *m);

// Runs one benchmark. Returns 0, or non-zero after printing why.
int bench_run(const bench_opts *o, bench_result *r);

// Runs the recovery benchmark. Returns 0, or non-zero after printing why.
int bench_run_recovery(const bench_opts *o, bench_recovery *r);

const char *bench_mode_name(int mode);

#endif // DTX_BENCH_BENCH_H
