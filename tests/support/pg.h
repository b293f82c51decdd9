// SPDX-License-Identifier: MIT
//
// pg: a private PostgreSQL 15 server for tests, started from nothing: initdb
// in a fresh directory, the server on a free loopback port (and a unix
// socket in its directory), trust authentication, and stopped by the test.
// PostgreSQL refuses to run as root, so when the tests run as root the
// directory is handed to the postgres user and every PostgreSQL program
// runs as that user (setpriv). The server gets SIGKILL if the test process
// dies, and its backends follow their postmaster, so nothing outlives a
// test. Servers started here are not in harness.c's registry: a suite may
// start one in its runner (dtxt_pg_suite) and share it with every test it
// forks. Its programs come from PostgreSQL's bindir ($DTXT_PG_BINDIR, else
// /usr/lib/postgresql/15/bin). Test code only: not thread-safe.

#ifndef DTX_TESTS_PG_H
#define DTX_TESTS_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "harness.h"

typedef struct dtxt_pg {
	char  dir[512];            // its own directory (data/, log, socket)
	char  data[DTXT_PATH_MAX]; // the data directory
	char  log[DTXT_PATH_MAX];  // the server's output
	int   port;
	pid_t pid; // the postmaster, or 0
	// Backends of a postmaster killed by dtxt_pg_stop(crash): one held
	// in a synchronous COMMIT outlives it, socket open, as a server that
	// went silent would; dtxt_pg_fini kills them.
	pid_t              orphans[64];
	unsigned long long orphan_start[64]; // their start times (/proc)
	int                norphans;
} dtxt_pg;

// Makes a fresh directory and a database cluster in it (initdb), on a free
// port; starts nothing. extra_conf (may be NULL) is appended to
// postgresql.conf. Returns 0, or -1 with the reason on stderr.
int dtxt_pg_init(dtxt_pg *pg, const char *extra_conf);

// A standby of primary (running): a base backup with the replication
// settings written (pg_basebackup -R), its own port, named name for
// synchronous_standby_names. Starts nothing. 0 or -1.
int dtxt_pg_init_standby(dtxt_pg *pg, const dtxt_pg *primary, const char *name,
    const char *extra_conf);

// Starts the server and waits (up to 20 s) until it accepts connections
// (pg_isready). 0 or -1 (see pg->log).
int dtxt_pg_start(dtxt_pg *pg);

// Stops the server: SIGKILL (a crash: the next start recovers from the
// WAL) when crash is set, else a fast shutdown (SIGINT). Waits until it is
// gone. Idempotent.
void dtxt_pg_stop(dtxt_pg *pg, bool crash);

// Promotes a standby to primary and waits (up to 20 s) until it takes
// writes. 0 or -1.
int dtxt_pg_promote(dtxt_pg *pg);

// Waits up to timeout_ms until the standby called name streams from
// primary as its synchronous standby (pg_stat_replication). 0 or -1.
int dtxt_pg_wait_sync(
    const dtxt_pg *primary, const char *name, int timeout_ms);

// Runs sql (psql, one command) in database db as the postgres user.
// Returns 0 or -1.
int dtxt_pg_sql(const dtxt_pg *pg, const char *db, const char *sql);

// Runs sql (psql, one query) in database db and writes its output, values
// unaligned without headers ("-At"), to out without the last newline.
// Returns 0 or -1.
int dtxt_pg_query(
    const dtxt_pg *pg, const char *db, const char *sql, char *out, size_t cap);

// Creates database name and writes its libpq connection string to out.
// Returns 0 or -1.
int dtxt_pg_createdb(
    const dtxt_pg *pg, const char *name, char *out, size_t cap);

// Writes the connection string of database db to out.
void dtxt_pg_conninfo(
    const dtxt_pg *pg, const char *db, char *out, size_t cap);

// Stops the server and removes its directory (unless DTXT_KEEP is set).
void dtxt_pg_fini(dtxt_pg *pg);

// For a suite that shares one server among its tests: starts it once in
// the runner (call from a Criterion ReportHook(PRE_ALL)), and publishes it
// to the forked tests in the environment; dtxt_pg_suite_db then gives each
// test a database of its own. dtxt_pg_suite_stop (ReportHook(POST_ALL))
// stops it. When PostgreSQL is not installed the suite's tests fail with a
// message saying so.
void dtxt_pg_suite_start(void);
void dtxt_pg_suite_stop(void);
int  dtxt_pg_suite_db(const char *name, char *conninfo, size_t cap);

// DTXT_STORE=postgres runs a suite's dtxd processes on PostgreSQL: the
// suite's server starts before its tests (a report hook here does it) and
// dtxt_start_dtxd asks dtxt_pg_store_conn for the database that stands for
// a data directory. True when that is asked for.
bool dtxt_pg_store_wanted(void);

// The connection string of the database that stands for data_dir (the same
// database each time a test restarts dtxd on it), created at the first
// call. Returns 0 or -1.
int dtxt_pg_store_conn(const char *data_dir, char *conninfo, size_t cap);

#endif // DTX_TESTS_PG_H
