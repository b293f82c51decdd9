// SPDX-License-Identifier: MIT
//
// pg: the PostgreSQL database dtx-bench runs dtxd on with --store postgres,
// and what it measures of it. Either a private server started here from
// nothing (initdb in the run's directory, the server on a loopback port,
// fsync on as in production, stopped at the end) or a running one given by
// its connection string (--store-conn). PostgreSQL refuses to run as root:
// then its programs run as the postgres user (setpriv). Measured: the
// database's commits (pg_stat_database.xact_commit of dtxd's database, read
// with psql) and, for a private server, the CPU of all its processes (the
// postmaster and its children, from /proc). No libpq here: bench/ talks to
// PostgreSQL only through its programs, as an operator would.

#ifndef DTX_BENCH_PG_H
#define DTX_BENCH_PG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct bench_pg {
	char  conninfo[512]; // dtxd's --store-conn
	char  dir[300];      // a private server's directory, or ""
	int   port;
	pid_t pid; // a private server's postmaster, or 0
} bench_pg;

// Starts a private server in a fresh directory (removed by
// bench_pg_stop), its log in dir/pg.log, and creates database "dtx" on
// it. Returns 0, or -1 with the reason on stderr.
int bench_pg_start(bench_pg *pg, const char *dir);

// Uses the running database at conninfo.
void bench_pg_use(bench_pg *pg, const char *conninfo);

// Stops a private server (fast shutdown). Idempotent.
void bench_pg_stop(bench_pg *pg);

// Commits of dtxd's database so far (pg_stat_database.xact_commit), or -1
// when it cannot be read.
int64_t bench_pg_commits(const bench_pg *pg);

// CPU seconds of every process of a private server so far; negative for a
// server not started here.
double bench_pg_cpu_s(const bench_pg *pg);

#endif // DTX_BENCH_PG_H
