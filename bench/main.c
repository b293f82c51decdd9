// SPDX-License-Identifier: MIT
//
// dtx-bench: the benchmark of dtx. With no arguments it starts dtxd (fresh
// data directory) and one participant per branch on loopback, drives a
// closed-loop load of 2PC transactions, stops everything, measures this
// machine's limits (raw nng round trips and synced RocksDB writes at the
// same concurrency and transport) and prints a report whose last line is
// the ratio achieved / bound: the figure to track, since absolute numbers
// drift with the machine's load. It can also target a running coordinator,
// sweep one knob (CSV and a gnuplot PNG), and time a recovery. See usage().

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "limits.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: dtx-bench [options]\n"
	    "workload:\n"
	    "  --mode 2pc|saga|mix       transaction mode (2pc)\n"
	    "  --branches N              branches per transaction (2)\n"
	    "  --saga-group N            saga steps in parallel groups of N "
	    "(1)\n"
	    "  --concurrency N           transactions in flight (64)\n"
	    "  --duration S              measured seconds (10)\n"
	    "  --count N                 measure N transactions instead\n"
	    "  --warmup S                unmeasured seconds first (2)\n"
	    "  --payload BYTES           payload of each branch (64)\n"
	    "  --transport tcp|ipc       loopback transport (tcp)\n"
	    "  --tls DIR                 tcp with mutual TLS, certificates "
	    "from "
	    "DIR\n"
	    "                            (made by samples/tls/make-certs.sh)\n"
	    "participants (started here):\n"
	    "  --participants K          processes (= branches)\n"
	    "  --refuse-rate F           prepare/execute refusals, 0..1 (0)\n"
	    "  --delay-us N              work per prepare/execute (0)\n"
	    "  --part-workers N          callback threads each (4)\n"
	    "  --barrier                 participants use the barrier, each "
	    "on a\n"
	    "                            RocksDB of its own (a 16-byte "
	    "write per call)\n"
	    "  --barrier-lock            the same, with the barrier's lock "
	    "hooks\n"
	    "targets:\n"
	    "  --dtxd PATH               dtxd (next to dtx-bench in the "
	    "build)\n"
	    "  --part PATH               dtx-bench-part (next to dtx-bench)\n"
	    "  --dtxd-arg ARG            extra dtxd argument (repeatable)\n"
	    "  --coordinator URL         use a running dtxd instead\n"
	    "  --participant-url URL     a running participant serving "
	    "\"bench\"\n"
	    "                            (repeatable; with --coordinator)\n"
	    "  --dtxd-pid PID            the running dtxd, for CPU and RSS\n"
	    "report:\n"
	    "  --json                    one JSON object on stdout\n"
	    "  --quiet                   no progress line\n"
	    "  --limits-seconds S        each limit measurement (2; 0: skip)\n"
	    "  --keep                    keep the temporary directory\n"
	    "  --interval S              a steady-state line every S seconds "
	    "of the\n"
	    "                            window (tx/s, p99, dtxd CPU/tx and "
	    "RSS)\n"
	    "store:\n"
	    "  --preload N               start dtxd on a store holding N "
	    "finished\n"
	    "                            transactions (written directly, "
	    "fast)\n"
	    "  --store rocksdb|postgres  dtxd's store (rocksdb); postgres: a "
	    "private\n"
	    "                            PostgreSQL 15 started here\n"
	    "  --store-conn CONNINFO     postgres: this running database "
	    "instead\n"
	    "  --nodes N                 postgres: N dtxd nodes on it, the "
	    "load spread\n"
	    "                            over them by a client given all "
	    "their URLs (1)\n"
	    "other modes:\n"
	    "  --sweep concurrency|branches   one run per value; CSV + PNG\n"
	    "  --sweep-values V,V,...    (1,2,4,...,256 or 1,2,4,8,16)\n"
	    "  --out PREFIX              sweep output (dtx-bench-sweep)\n"
	    "  --recovery                time the recovery of unfinished "
	    "transactions\n"
	    "  --recovery-n N            how many (100000)\n");
}

static int
parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char              *end;
	unsigned long long v;

	errno = 0;
	v     = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-') {
		return -1;
	}
	*out = v;
	return 0;
}

static int
parse_double(const char *s, double lo, double hi, double *out)
{
	char  *end;
	double v;

	errno = 0;
	v     = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		return -1;
	}
	*out = v;
	return 0;
}

typedef struct cli {
	bench_opts  o;
	const char *sweep;
	char       *sweep_values;
	const char *out;
	bool        recovery;
} cli;

static int
parse(cli *c, int argc, char **argv)
{
	bench_opts *o = &c->o;

	memset(c, 0, sizeof(*c));
	o->mode         = BENCH_2PC;
	o->branches     = 2;
	o->saga_group   = 1;
	o->concurrency  = 64;
	o->nodes        = 1;
	o->duration_s   = 10;
	o->warmup_s     = 2;
	o->payload      = 64;
	o->part_workers = 4;
	o->limits_s     = 2;
	o->recovery_n   = 100000;
	c->out          = "dtx-bench-sweep";

	// Every flag, and what a value of it must be (said when it is not).
	static const struct {
		const char *name;
		int         has_arg;
		const char *takes;
	} flags[] = {
	    {"help", no_argument, NULL},
	    {"json", no_argument, NULL},
	    {"quiet", no_argument, NULL},
	    {"keep", no_argument, NULL},
	    {"recovery", no_argument, NULL},
	    {"barrier", no_argument, NULL},
	    {"barrier-lock", no_argument, NULL},
	    {"mode", required_argument, "2pc, saga or mix"},
	    {"branches", required_argument, "an integer from 1 to 64"},
	    {"saga-group", required_argument, "an integer from 1 to 64"},
	    {"concurrency", required_argument, "an integer from 1 to 60000"},
	    {"duration", required_argument, "seconds from 0.1 to 1000000"},
	    {"count", required_argument, "an integer from 1"},
	    {"warmup", required_argument, "seconds from 0 to 1000000"},
	    {"payload", required_argument, "bytes from 0 to 1048576"},
	    {"transport", required_argument, "tcp or ipc"},
	    {"tls", required_argument,
	        "a directory made by samples/tls/make-certs.sh"},
	    {"participants", required_argument, "an integer from 1 to 64"},
	    {"refuse-rate", required_argument, "a fraction from 0 to 1"},
	    {"delay-us", required_argument, "an integer from 0 to 10000000"},
	    {"part-workers", required_argument, "an integer from 1 to 256"},
	    {"dtxd", required_argument, "a path"},
	    {"part", required_argument, "a path"},
	    {"dtxd-arg", required_argument, "an argument (at most 16)"},
	    {"coordinator", required_argument, "a URL"},
	    {"participant-url", required_argument, "a URL (at most 64)"},
	    {"dtxd-pid", required_argument, "a process id"},
	    {"limits-seconds", required_argument, "seconds from 0 to 600"},
	    {"sweep", required_argument, "concurrency or branches"},
	    {"sweep-values", required_argument, "values V,V,..."},
	    {"out", required_argument, "a file name prefix"},
	    {"interval", required_argument, "seconds from 1 to 1000000"},
	    {"preload", required_argument, "an integer from 0 to 1000000000"},
	    {"store", required_argument, "rocksdb or postgres"},
	    {"store-conn", required_argument, "a libpq connection string"},
	    {"nodes", required_argument, "an integer from 1 to 8"},
	    {"recovery-n", required_argument,
	        "an integer from 1 to 100000000"},
	};
	enum { NFLAGS = sizeof(flags) / sizeof(flags[0]) };
	struct option longopts[NFLAGS + 1];
	int           ch, idx = -1;

	for (int k = 0; k < NFLAGS; k++) {
		longopts[k] =
		    (struct option) {flags[k].name, flags[k].has_arg, NULL, 0};
	}
	longopts[NFLAGS] = (struct option) {NULL, 0, NULL, 0};
	opterr           = 0;
	while ((ch = getopt_long(argc, argv, ":h", longopts, &idx)) != -1) {
		char               a[64];
		const char        *v   = optarg;
		unsigned long long u   = 0;
		int                bad = 0;

		if (ch == 'h') {
			usage(stdout);
			exit(0);
		}
		if (ch == '?' || ch == ':') {
			fprintf(stderr, "dtx-bench: %s '%s'\n",
			    ch == ':' ? "no value for" : "unknown option",
			    optind > 0 && optind <= argc ? argv[optind - 1]
			                                 : "?");
			usage(stderr);
			return -1;
		}
		snprintf(a, sizeof(a), "--%s", flags[idx].name);

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--json") == 0) {
			o->json = true;
			continue;
		}
		if (strcmp(a, "--quiet") == 0) {
			o->quiet = true;
			continue;
		}
		if (strcmp(a, "--keep") == 0) {
			o->keep = true;
			continue;
		}
		if (strcmp(a, "--recovery") == 0) {
			c->recovery = true;
			continue;
		}
		if (strcmp(a, "--barrier") == 0 ||
		    strcmp(a, "--barrier-lock") == 0) {
			o->barrier      = true;
			o->barrier_lock = o->barrier_lock ||
			    strcmp(a, "--barrier-lock") == 0;
			continue;
		}
		if (strcmp(a, "--mode") == 0) {
			if (strcmp(v, "2pc") == 0) {
				o->mode = BENCH_2PC;
			} else if (strcmp(v, "saga") == 0) {
				o->mode = BENCH_SAGA;
			} else if (strcmp(v, "mix") == 0) {
				o->mode = BENCH_MIX;
			} else {
				bad = 1;
			}
		} else if (strcmp(a, "--branches") == 0) {
			bad = parse_uint(v, DTX_BRANCHES_MAX, &u) || u == 0;
			o->branches = (unsigned)u;
		} else if (strcmp(a, "--saga-group") == 0) {
			bad = parse_uint(v, DTX_BRANCHES_MAX, &u) || u == 0;
			o->saga_group = (unsigned)u;
		} else if (strcmp(a, "--concurrency") == 0) {
			bad            = parse_uint(v, 60000, &u) || u == 0;
			o->concurrency = (unsigned)u;
		} else if (strcmp(a, "--duration") == 0) {
			bad = parse_double(v, 0.1, 1e6, &o->duration_s);
		} else if (strcmp(a, "--count") == 0) {
			bad      = parse_uint(v, UINT64_MAX, &u) || u == 0;
			o->count = u;
		} else if (strcmp(a, "--warmup") == 0) {
			bad = parse_double(v, 0, 1e6, &o->warmup_s);
		} else if (strcmp(a, "--payload") == 0) {
			bad = parse_uint(v, DTX_PAYLOAD_MAX_DEFAULT, &u);
			o->payload = (size_t)u;
		} else if (strcmp(a, "--tls") == 0) {
			o->tls_dir = v;
		} else if (strcmp(a, "--transport") == 0) {
			bad = strcmp(v, "tcp") != 0 && strcmp(v, "ipc") != 0;
			o->ipc = strcmp(v, "ipc") == 0;
		} else if (strcmp(a, "--participants") == 0) {
			bad = parse_uint(v, BENCH_PARTS_MAX, &u) || u == 0;
			o->parts = (unsigned)u;
		} else if (strcmp(a, "--refuse-rate") == 0) {
			bad = parse_double(v, 0, 1, &o->refuse_rate);
		} else if (strcmp(a, "--delay-us") == 0) {
			bad         = parse_uint(v, 10000000, &u);
			o->delay_us = (unsigned)u;
		} else if (strcmp(a, "--part-workers") == 0) {
			bad             = parse_uint(v, 256, &u) || u == 0;
			o->part_workers = (unsigned)u;
		} else if (strcmp(a, "--dtxd") == 0) {
			o->dtxd_bin = v;
		} else if (strcmp(a, "--part") == 0) {
			o->part_bin = v;
		} else if (strcmp(a, "--dtxd-arg") == 0) {
			bad = o->ndtxd_extra == BENCH_EXTRA_MAX;
			if (!bad) {
				o->dtxd_extra[o->ndtxd_extra++] = v;
			}
		} else if (strcmp(a, "--coordinator") == 0) {
			o->coord_url = v;
		} else if (strcmp(a, "--participant-url") == 0) {
			bad = o->npart_urls == BENCH_PARTS_MAX ||
			    strlen(v) >= BENCH_URL_MAX;
			if (!bad) {
				o->part_urls[o->npart_urls++] = (char *)v;
			}
		} else if (strcmp(a, "--dtxd-pid") == 0) {
			bad         = parse_uint(v, 1u << 30, &u) || u == 0;
			o->dtxd_pid = (pid_t)u;
		} else if (strcmp(a, "--limits-seconds") == 0) {
			bad = parse_double(v, 0, 600, &o->limits_s);
		} else if (strcmp(a, "--sweep") == 0) {
			bad = strcmp(v, "concurrency") != 0 &&
			    strcmp(v, "branches") != 0;
			c->sweep = v;
		} else if (strcmp(a, "--sweep-values") == 0) {
			c->sweep_values = (char *)v;
		} else if (strcmp(a, "--out") == 0) {
			c->out = v;
		} else if (strcmp(a, "--interval") == 0) {
			bad = parse_double(v, 1, 1e6, &o->interval_s);
		} else if (strcmp(a, "--store") == 0) {
			o->store_pg = strcmp(v, "postgres") == 0;
			bad = !o->store_pg && strcmp(v, "rocksdb") != 0;
		} else if (strcmp(a, "--store-conn") == 0) {
			o->store_conn = v;
		} else if (strcmp(a, "--nodes") == 0) {
			bad = parse_uint(v, BENCH_NODES_MAX, &u) || u == 0;
			o->nodes = (unsigned)u;
		} else if (strcmp(a, "--preload") == 0) {
			bad        = parse_uint(v, 1000000000, &u);
			o->preload = u;
		} else if (strcmp(a, "--recovery-n") == 0) {
			bad           = parse_uint(v, 100000000, &u) || u == 0;
			o->recovery_n = u;
		} else {
			fprintf(stderr, "dtx-bench: unknown option %s\n", a);
			usage(stderr);
			return -1;
		}
		if (bad) {
			fprintf(stderr,
			    "dtx-bench: %s: invalid value '%s' (%s)\n", a, v,
			    flags[idx].takes);
			return -1;
		}
		idx = -1;
	}
	if (optind < argc) {
		fprintf(stderr, "dtx-bench: unexpected argument '%s'\n",
		    argv[optind]);
		usage(stderr);
		return -1;
	}
	if ((o->coord_url == NULL) != (o->npart_urls == 0)) {
		fprintf(stderr,
		    "dtx-bench: --coordinator and --participant-url "
		    "go together\n");
		return -1;
	}
	if (o->preload > 0 && o->coord_url != NULL) {
		fprintf(stderr,
		    "dtx-bench: --preload fills the store of the dtxd it "
		    "starts; it cannot fill a running one\n");
		return -1;
	}
	if (o->barrier && o->coord_url != NULL) {
		fprintf(stderr,
		    "dtx-bench: --barrier sets up the participants it "
		    "starts; it cannot change running ones\n");
		return -1;
	}
	if (o->store_conn != NULL) {
		o->store_pg = true;
	}
	if (o->store_pg &&
	    (o->coord_url != NULL || o->preload > 0 || c->recovery)) {
		fprintf(stderr,
		    "dtx-bench: --store postgres starts its own dtxd nodes; "
		    "not with --coordinator, --preload or --recovery\n");
		return -1;
	}
	if (o->nodes > 1 && !o->store_pg) {
		fprintf(stderr,
		    "dtx-bench: --nodes %u needs --store postgres (nodes "
		    "share one database)\n",
		    o->nodes);
		return -1;
	}
	if (o->dtxd_pid != 0 && o->coord_url == NULL) {
		fprintf(stderr,
		    "dtx-bench: --dtxd-pid is for a running "
		    "coordinator (--coordinator)\n");
		return -1;
	}
	return 0;
}

static void
print_config(FILE *f, const bench_opts *o)
{
	fprintf(f,
	    "dtx-bench: %s, %u branch%s, %u in flight, %zu-byte payloads, %s, "
	    "%u participant%s (refuse %g, delay %u us%s), ",
	    bench_mode_name(o->mode), o->branches,
	    o->branches == 1 ? "" : "es", o->concurrency, o->payload,
	    o->ipc                   ? "ipc"
	        : o->tls_dir != NULL ? "tls+tcp"
	                             : "tcp",
	    o->coord_url ? o->npart_urls : (o->parts ? o->parts : o->branches),
	    (o->coord_url ? o->npart_urls
	                  : (o->parts ? o->parts : o->branches)) == 1
	        ? ""
	        : "s",
	    o->refuse_rate, o->delay_us,
	    o->barrier_lock  ? ", barrier + lock hooks"
	        : o->barrier ? ", barrier"
	                     : "");
	if (o->count > 0) {
		fprintf(f, "%llu transactions", (unsigned long long)o->count);
	} else {
		fprintf(f, "%g s", o->duration_s);
	}
	fprintf(f, " after %g s warm-up%s\n", o->warmup_s,
	    o->coord_url ? ", running coordinator" : "");
}

static void
print_text(const bench_opts *o, const bench_result *r)
{
	const bench_model *m = &r->model;

	print_config(stdout, o);
	printf("transactions  %llu in %.2f s: %.0f tx/s (committed %llu, "
	       "aborted %llu, compensated %llu, errors %llu)\n",
	    (unsigned long long)r->transactions, r->seconds, r->tx_per_s,
	    (unsigned long long)r->committed, (unsigned long long)r->aborted,
	    (unsigned long long)r->compensated, (unsigned long long)r->errors);
	if (r->first_error[0] != '\0') {
		printf("first error   %s\n", r->first_error);
	}
	if (o->preload > 0) {
		printf("preload       %llu finished transactions in the store "
		       "at start, written in %.1f s (%.0f MiB)\n",
		    (unsigned long long)o->preload, r->preload_s,
		    (double)r->preload_bytes / 1048576.0);
	}
	printf("latency (ms)  p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max "
	       "%.2f  mean %.2f\n",
	    r->p50 / 1e3, r->p90 / 1e3, r->p99 / 1e3, r->p999 / 1e3,
	    r->max / 1e3, r->mean_us / 1e3);
	if (r->dtxd_known) {
		printf(
		    "coordinator   CPU %.2f s (%.2f cores, %.1f us/tx); peak "
		    "RSS %.1f MiB (RSS %.1f -> %.1f MiB over the run)\n",
		    r->dtxd_cpu_s,
		    r->seconds > 0 ? r->dtxd_cpu_s / r->seconds : 0,
		    r->transactions ? r->dtxd_cpu_s * 1e6 / r->transactions
		                    : 0,
		    r->dtxd_hwm_kib / 1024.0, r->dtxd_rss0_kib / 1024.0,
		    r->dtxd_rss1_kib / 1024.0);
	} else {
		printf(
		    "coordinator   CPU and RSS unknown (a running dtxd: give "
		    "--dtxd-pid)\n");
	}
	if (o->store_pg) {
		printf("database      PostgreSQL, %u dtxd node%s; ", o->nodes,
		    o->nodes == 1 ? "" : "s");
		if (r->db_cpu_s >= 0) {
			printf("CPU %.2f s (%.2f cores, %.1f us/tx); ",
			    r->db_cpu_s,
			    r->seconds > 0 ? r->db_cpu_s / r->seconds : 0,
			    r->transactions
			        ? r->db_cpu_s * 1e6 / r->transactions
			        : 0);
		} else {
			printf("CPU unknown (not started here); ");
		}
		if (r->db_commits_per_tx >= 0) {
			printf("%.3f commits/tx\n", r->db_commits_per_tx);
		} else {
			printf("commits unknown\n");
		}
	}
	if (r->parts_cpu_s >= 0) {
		printf(
		    "others        participants CPU %.2f s (%.1f us/tx); this "
		    "client CPU %.2f s (%.1f us/tx)\n",
		    r->parts_cpu_s,
		    r->transactions ? r->parts_cpu_s * 1e6 / r->transactions
		                    : 0,
		    r->client_cpu_s,
		    r->transactions ? r->client_cpu_s * 1e6 / r->transactions
		                    : 0);
	}
	if (r->stats_ok) {
		printf(
		    "store         %.2f records/tx in %.3f batches/tx; %.3f "
		    "synced writes (fsyncs)/tx, %.1f tx per fsync "
		    "(group commit)\n",
		    r->writes_per_tx, r->batches_per_tx, r->syncs_per_tx,
		    r->syncs_per_tx > 0 ? 1.0 / r->syncs_per_tx : 0);
	}
	if (r->part_stats_ok) {
		printf("participants  %" PRIu64 " barrier calls, %" PRIu64
		       " fsyncs: %.3f fsyncs/call, %.1f calls per fsync "
		       "(group commit; whole run)\n",
		    r->part_calls, r->part_syncs,
		    (double)r->part_syncs / (double)r->part_calls,
		    r->part_syncs > 0
		        ? (double)r->part_calls / (double)r->part_syncs
		        : 0);
	}
	if (!r->echo.ok || !r->store.ok) {
		printf("bound         not measured (--limits-seconds 0 or a "
		       "failed measurement): no ratio\n");
		return;
	}
	printf(
	    "limits        measured just now, %s, %u in flight, %d cores:\n",
	    o->ipc                   ? "ipc"
	        : o->tls_dir != NULL ? "tls+tcp"
	                             : "tcp",
	    o->concurrency > 4096 ? 4096 : o->concurrency, r->cores);
	printf("  nng echo    %.0f round trips/s, %.2f us CPU each (both "
	       "ends)\n",
	    r->echo.ops_per_s, r->echo.cpu_us_per_op);
	printf("  rocksdb     %.0f synced writes/s in batches of %.0f (group "
	       "commit), %.2f us CPU each\n",
	    r->store.ops_per_s, r->store.ops_per_batch,
	    r->store.cpu_us_per_op);
	printf("model         %.1f round trips/tx (%s; counted as messages)\n",
	    m->rt, m->rt_how);
	printf("              %.1f records/tx, %.1f synced (%s)\n", m->writes,
	    m->syncs, m->w_how);
	printf("bound         CPU: %d cores / (%.1f x %.2f us + %.1f x %.2f "
	       "us) = %.0f tx/s\n",
	    r->cores, m->rt, r->echo.cpu_us_per_op, m->writes,
	    r->store.cpu_us_per_op, r->cpu_bound);
	printf("              throughput only: min(%.0f rt/s / %.1f, %.0f "
	       "synced writes/s / %.1f) = %.0f tx/s\n",
	    r->echo.ops_per_s, m->rt, r->store.ops_per_s, m->syncs,
	    r->tput_bound);
	if (r->ratio_error) {
		printf(
		    "ratio         MEASUREMENT ERROR: achieved %.0f tx/s is "
		    "above the bound (CPU %.0f, throughput %.0f tx/s), so "
		    "the limits were measured low (a busy machine?); no "
		    "ratio\n",
		    r->tx_per_s, r->cpu_bound, r->tput_bound);
	} else {
		printf("ratio         %.3f (achieved %.0f tx/s / CPU bound "
		       "%.0f tx/s)%s\n",
		    r->ratio, r->tx_per_s, r->cpu_bound,
		    o->refuse_rate > 0 || o->delay_us > 0
		        ? "; the model assumes no refusals and no delay"
		        : "");
	}
}

// The long run's table and its steady-state figures: the last interval's
// throughput against the first's, and dtxd's peak RSS in the first
// interval against the last's.
static void
print_intervals(const bench_opts *o, const bench_result *r)
{
	const bench_interval *a, *z;

	if (r->nintervals == 0) {
		return;
	}
	printf("intervals     every %g s (p99 and CPU of the transactions "
	       "that finished in each; load: 1-min load average)\n",
	    o->interval_s);
	printf("     end s      tx/s   p99 ms  dtxd us/tx  dtxd RSS MiB  "
	       "(peak)   load\n");
	for (unsigned i = 0; i < r->nintervals; i++) {
		const bench_interval *x = &r->intervals[i];
		printf("  %8.1f  %8.0f  %7.2f  %10.1f  %12.1f  %6.1f  %5.2f\n",
		    x->end_s, x->tx_per_s, x->p99 / 1e3, x->dtxd_cpu_us_per_tx,
		    x->dtxd_rss_kib / 1024.0, x->dtxd_peak_kib / 1024.0,
		    x->load1);
	}
	a = &r->intervals[0];
	z = &r->intervals[r->nintervals - 1];
	// The peak of an interval, not RSS at one instant, which swings with
	// how full RocksDB's memtables happen to be.
	printf("steady state  last/first interval: throughput %.2f, dtxd peak "
	       "RSS %.1f -> %.1f MiB (%+.1f %%)\n",
	    a->tx_per_s > 0 ? z->tx_per_s / a->tx_per_s : 0,
	    a->dtxd_peak_kib / 1024.0, z->dtxd_peak_kib / 1024.0,
	    a->dtxd_peak_kib > 0 ? 100.0 *
	            ((double)z->dtxd_peak_kib / (double)a->dtxd_peak_kib - 1.0)
	                         : 0);
}

static void
json_num(const char *key, double v, bool last)
{
	printf("    \"%s\": %.6g%s\n", key, v, last ? "" : ",");
}

static void
print_json(const bench_opts *o, const bench_result *r)
{
	const bench_model *m = &r->model;
	bool               b = r->echo.ok && r->store.ok;

	printf("{\n  \"config\": {\n");
	printf("    \"mode\": \"%s\",\n", bench_mode_name(o->mode));
	printf("    \"transport\": \"%s\",\n",
	    o->ipc                   ? "ipc"
	        : o->tls_dir != NULL ? "tls+tcp"
	                             : "tcp");
	json_num("branches", o->branches, false);
	json_num("saga_group", o->saga_group, false);
	json_num("concurrency", o->concurrency, false);
	json_num("payload", (double)o->payload, false);
	json_num("refuse_rate", o->refuse_rate, false);
	json_num("delay_us", o->delay_us, false);
	json_num("duration_s", o->count > 0 ? 0 : o->duration_s, false);
	json_num("count", (double)o->count, false);
	json_num("warmup_s", o->warmup_s, false);
	printf(
	    "    \"store\": \"%s\",\n", o->store_pg ? "postgres" : "rocksdb");
	json_num("nodes", o->nodes, true);
	printf("  },\n  \"result\": {\n");
	json_num("transactions", (double)r->transactions, false);
	json_num("committed", (double)r->committed, false);
	json_num("aborted", (double)r->aborted, false);
	json_num("compensated", (double)r->compensated, false);
	json_num("errors", (double)r->errors, false);
	json_num("seconds", r->seconds, false);
	json_num("tx_per_s", r->tx_per_s, false);
	json_num("db_cpu_us_per_tx",
	    r->db_cpu_s >= 0 && r->transactions > 0
	        ? r->db_cpu_s * 1e6 / (double)r->transactions
	        : -1,
	    false);
	json_num("db_commits_per_tx", r->db_commits_per_tx, true);
	printf("  },\n  \"latency_us\": {\n");
	json_num("p50", (double)r->p50, false);
	json_num("p90", (double)r->p90, false);
	json_num("p99", (double)r->p99, false);
	json_num("p999", (double)r->p999, false);
	json_num("max", (double)r->max, false);
	json_num("mean", r->mean_us, true);
	printf("  },\n  \"coordinator\": ");
	if (r->dtxd_known) {
		printf("{\n");
		json_num("cpu_s", r->dtxd_cpu_s, false);
		json_num("peak_rss_kib", (double)r->dtxd_hwm_kib, false);
		json_num("rss_start_kib", (double)r->dtxd_rss0_kib, false);
		json_num("rss_end_kib", (double)r->dtxd_rss1_kib, true);
		printf("  },\n");
	} else {
		printf("null,\n");
	}
	printf("  \"store\": ");
	if (r->stats_ok) {
		printf("{\n");
		json_num("records_per_tx", r->writes_per_tx, false);
		json_num("batches_per_tx", r->batches_per_tx, false);
		json_num("syncs_per_tx", r->syncs_per_tx, true);
		printf("  },\n");
	} else {
		printf("null,\n");
	}
	printf("  \"participant_barrier\": ");
	if (r->part_stats_ok) {
		printf("{\n");
		json_num("calls", (double)r->part_calls, false);
		json_num("fsyncs", (double)r->part_syncs, false);
		json_num("fsyncs_per_call",
		    (double)r->part_syncs / (double)r->part_calls, true);
		printf("  },\n");
	} else {
		printf("null,\n");
	}
	printf("  \"limits\": ");
	if (b) {
		printf("{\n");
		json_num("cores", r->cores, false);
		json_num("rt_per_s", r->echo.ops_per_s, false);
		json_num("cpu_us_per_rt", r->echo.cpu_us_per_op, false);
		json_num("sync_writes_per_s", r->store.ops_per_s, false);
		json_num("writes_per_sync", r->store.ops_per_batch, false);
		json_num("cpu_us_per_write", r->store.cpu_us_per_op, true);
		printf("  },\n");
	} else {
		printf("null,\n");
	}
	printf("  \"bound\": {\n");
	json_num("rt_per_tx", m->rt, false);
	json_num("writes_per_tx", m->writes, false);
	json_num("synced_per_tx", m->syncs, false);
	json_num("cpu_bound_tx_per_s", r->cpu_bound, false);
	json_num("throughput_bound_tx_per_s", r->tput_bound, false);
	// Above a bound the limits were measured low: no ratio.
	if (r->ratio_error) {
		printf("    \"ratio\": null,\n    \"ratio_error\": "
		       "\"achieved above the bound: the limits were measured "
		       "low\"\n");
	} else {
		json_num("ratio", r->ratio, true);
	}
	printf("  },\n  \"preload\": ");
	if (o->preload > 0) {
		printf("{\n");
		json_num("transactions", (double)o->preload, false);
		json_num("seconds", r->preload_s, false);
		json_num("bytes", (double)r->preload_bytes, true);
		printf("  },\n");
	} else {
		printf("null,\n");
	}
	printf("  \"intervals\": [");
	for (unsigned i = 0; i < r->nintervals; i++) {
		const bench_interval *x = &r->intervals[i];
		printf(
		    "%s\n    {\"end_s\": %.6g, \"tx\": %llu, \"tx_per_s\": "
		    "%.6g, \"p99_us\": %llu, \"dtxd_cpu_us_per_tx\": "
		    "%.6g, \"dtxd_rss_kib\": %llu, \"dtxd_peak_kib\": %llu, "
		    "\"load1\": %.3g}",
		    i > 0 ? "," : "", x->end_s, (unsigned long long)x->tx,
		    x->tx_per_s, (unsigned long long)x->p99,
		    x->dtxd_cpu_us_per_tx, (unsigned long long)x->dtxd_rss_kib,
		    (unsigned long long)x->dtxd_peak_kib, x->load1);
	}
	printf("%s]\n}\n", r->nintervals > 0 ? "\n  " : "");
}

static void
print_recovery(const bench_opts *o, const bench_recovery *r)
{
	if (o->json) {
		printf("{\n  \"recovery\": {\n");
		printf("    \"mode\": \"%s\",\n", bench_mode_name(o->mode));
		json_num("n", (double)r->n, false);
		json_num("submitted", (double)r->submitted, false);
		json_num("submit_errors", (double)r->errors, false);
		json_num("unfinished", (double)r->unfinished, false);
		json_num("recovered", (double)r->recovered, false);
		json_num("finished", (double)r->finished, false);
		json_num("submit_s", r->submit_s, false);
		json_num("ready_s", r->ready_s, false);
		json_num("total_s", r->total_s, false);
		json_num("rate_per_s", r->rate, false);
		json_num("dtxd_cpu_s", r->dtxd_cpu_s, false);
		json_num("peak_rss_kib", (double)r->dtxd_hwm_kib, true);
		printf("  }\n}\n");
		return;
	}
	printf("dtx-bench recovery: %s, %u branch%s, %s\n",
	    bench_mode_name(o->mode), o->branches,
	    o->branches == 1 ? "" : "es",
	    o->ipc                   ? "ipc"
	        : o->tls_dir != NULL ? "tls+tcp"
	                             : "tcp");
	printf("left unfinished  %llu accepted in %.2f s (%llu errors), %llu "
	       "active when dtxd was killed\n",
	    (unsigned long long)r->submitted, r->submit_s,
	    (unsigned long long)r->errors, (unsigned long long)r->unfinished);
	printf("restart          answering after %.2f s; all %llu recovered "
	       "terminal after %.2f s (%llu finished)\n",
	    r->ready_s, (unsigned long long)r->recovered, r->total_s,
	    (unsigned long long)r->finished);
	printf("rate             %.0f transactions resumed per second; dtxd "
	       "CPU %.2f s, peak RSS %.1f MiB\n",
	    r->rate, r->dtxd_cpu_s, r->dtxd_hwm_kib / 1024.0);
}

// ---------------------------------------------------------------------------
// Sweep
// ---------------------------------------------------------------------------

static int
plot(const char *csv, const char *png, const char *knob)
{
	char  cmd[8192];
	FILE *p;

	if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
		fprintf(stderr,
		    "dtx-bench: gnuplot is not installed: no PNG "
		    "(apt-get install gnuplot-nox)\n");
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "gnuplot");
	if ((p = popen(cmd, "w")) == NULL) {
		return -1;
	}
	fprintf(p,
	    "set terminal pngcairo size 900,540 noenhanced\n"
	    "set output '%s'\n"
	    "set datafile separator ','\n"
	    "set key autotitle columnhead top left\n"
	    "set title 'dtx-bench sweep of %s'\n"
	    "set xlabel '%s'\n"
	    "set logscale x 2\n"
	    "set ylabel 'tx/s'\n"
	    "set y2label 'p99 latency (ms)'\n"
	    "set ytics nomirror\n"
	    "set y2tics\n"
	    "set yrange [0:*]\n"
	    "set y2range [0:*]\n"
	    "set grid\n"
	    "plot '%s' using 1:2 with linespoints lw 2 title 'tx/s', "
	    "'' using 1:($5/1000) axes x1y2 with linespoints lw 2 title 'p99 "
	    "(ms)', '' using 1:9 with lines dt 2 title 'CPU bound (tx/s)'\n",
	    png, knob, knob, csv);
	if (pclose(p) != 0) {
		// pngcairo may be missing from a minimal gnuplot: try png.
		if ((p = popen(cmd, "w")) == NULL) {
			return -1;
		}
		fprintf(p,
		    "set terminal png size 900,540\n"
		    "set output '%s'\n"
		    "set datafile separator ','\n"
		    "set logscale x 2\n"
		    "set y2tics\n"
		    "set ytics nomirror\n"
		    "set xlabel '%s'\n"
		    "set ylabel 'tx/s'\n"
		    "set y2label 'p99 (ms)'\n"
		    "plot '%s' using 1:2 every ::1 with linespoints title "
		    "'tx/s', '' using 1:($5/1000) every ::1 axes x1y2 with "
		    "linespoints title 'p99 (ms)'\n",
		    png, knob, csv);
		if (pclose(p) != 0) {
			fprintf(stderr, "dtx-bench: gnuplot failed: no PNG\n");
			return -1;
		}
	}
	return 0;
}

static int
sweep(cli *c)
{
	static const char conc_default[]     = "1,2,4,8,16,32,64,128,256";
	static const char branches_default[] = "1,2,4,8,16";
	bool              conc   = strcmp(c->sweep, "concurrency") == 0;
	char             *values = NULL;
	char             *save   = NULL;
	char              csv[4096], png[4096];
	FILE             *f;
	int               failures = 0;

	values =
	    strdup(c->sweep_values ? c->sweep_values
	                           : (conc ? conc_default : branches_default));
	if (values == NULL) {
		return 1;
	}
	snprintf(csv, sizeof(csv), "%s-%s.csv", c->out, c->sweep);
	snprintf(png, sizeof(png), "%s-%s.png", c->out, c->sweep);
	if ((f = fopen(csv, "w")) == NULL) {
		fprintf(stderr, "dtx-bench: %s: %s\n", csv, strerror(errno));
		free(values);
		return 1;
	}
	fprintf(f,
	    "%s,tx_per_s,p50_us,p90_us,p99_us,p999_us,max_us,errors,"
	    "cpu_bound_tx_per_s,ratio,dtxd_cpu_s,dtxd_peak_rss_kib,"
	    "syncs_per_tx\n",
	    c->sweep);
	for (char *tok = strtok_r(values, ",", &save); tok != NULL;
	     tok       = strtok_r(NULL, ",", &save)) {
		bench_opts         o = c->o;
		bench_result       r;
		unsigned long long v;

		if (parse_uint(tok, 60000, &v) != 0 || v == 0 ||
		    (!conc && v > DTX_BRANCHES_MAX)) {
			fprintf(
			    stderr, "dtx-bench: bad sweep value %s\n", tok);
			failures++;
			continue;
		}
		if (conc) {
			o.concurrency = (unsigned)v;
		} else {
			o.branches = (unsigned)v;
		}
		o.json = false;
		if (bench_run(&o, &r) != 0) {
			failures++;
			continue;
		}
		// A ratio above 1 is a measurement error: its cell stays
		// empty.
		char ratio[32] = "";
		if (!r.ratio_error) {
			snprintf(ratio, sizeof(ratio), "%.4f", r.ratio);
		}
		fprintf(stderr,
		    "dtx-bench: %s %llu: %.0f tx/s, p99 %.2f ms, %s%s\n",
		    c->sweep, v, r.tx_per_s, r.p99 / 1e3,
		    r.ratio_error ? "ratio: measurement error" : "ratio ",
		    ratio);
		fprintf(f,
		    "%llu,%.1f,%llu,%llu,%llu,%llu,%llu,%llu,%.1f,%s,"
		    "%.3f,%llu,%.4f\n",
		    v, r.tx_per_s, (unsigned long long)r.p50,
		    (unsigned long long)r.p90, (unsigned long long)r.p99,
		    (unsigned long long)r.p999, (unsigned long long)r.max,
		    (unsigned long long)r.errors, r.cpu_bound, ratio,
		    r.dtxd_cpu_s, (unsigned long long)r.dtxd_hwm_kib,
		    r.syncs_per_tx);
		fflush(f);
	}
	fclose(f);
	free(values);
	printf("dtx-bench: sweep of %s written to %s\n", c->sweep, csv);
	if (plot(csv, png, c->sweep) == 0 &&
	    system("command -v gnuplot >/dev/null 2>&1") == 0) {
		printf("dtx-bench: plot in %s\n", png);
	}
	return failures == 0 ? 0 : 1;
}

static int
run(cli *c)
{
	if (c->recovery) {
		bench_recovery r;
		if (bench_run_recovery(&c->o, &r) != 0) {
			return 1;
		}
		print_recovery(&c->o, &r);
		return r.recovered > 0 ? 0 : 1;
	}
	if (c->sweep != NULL) {
		return sweep(c);
	}
	bench_result r;
	if (bench_run(&c->o, &r) != 0) {
		return 1;
	}
	if (c->o.json) {
		print_json(&c->o, &r);
	} else {
		print_text(&c->o, &r);
		print_intervals(&c->o, &r);
	}
	return r.errors == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	cli c;
	int rv;

	if (argc > 1 &&
	    (strcmp(argv[1], "--limit-echo-server") == 0 ||
	        strcmp(argv[1], "--limit-echo-client") == 0)) {
		bench_limit_echo_child(argc, argv);
	}
	if (parse(&c, argc, argv) != 0) {
		return 2;
	}
	rv = run(&c);
	fflush(stdout);
	bench_net_fini();
	return rv;
}
