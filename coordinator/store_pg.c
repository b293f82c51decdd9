// SPDX-License-Identifier: MIT
//
// store_pg: the PostgreSQL backend of the store (store.h), through libpq,
// and the only file of dtxd that touches libpq: several dtxd nodes keep
// their transactions in one database, and PostgreSQL's own replication
// gives the store's fail-over. dtxd creates the schema itself and records
// its version in dtxd_meta; a database of another version is refused and
// left untouched.
//
//   dtxd_tx     gid (COLLATE "C": byte order, as RocksDB's keys) PRIMARY
//               KEY, owner (session), epoch, expire_ms (NULL while
//               unfinished), record, specs (NULL once finished). One row
//               per transaction, updated in place.
//               unfinished index: (owner, gid) WHERE expire_ms IS NULL,
//               so recovery and takeover read what is in flight only;
//               expiry index: (expire_ms) WHERE expire_ms IS NOT NULL,
//               for the purge.
//   dtxd_nodes  one row per session: name, url, lease_until (the
//               database's clock), ended.
//   dtxd_abort_asked  gid: an abort asked of a node that does not own
//               it, for the owner to act on (store.h).
//
// Group commit. One writer thread (store_queue.c, shared with RocksDB)
// takes everything queued at a time and this file writes it as one
// database transaction, sent in one pipeline (libpq's
// pipeline mode: every statement goes out at once and the results come
// back together, one round trip per batch rather than per statement).
// Every batch commits with the database's synchronous_commit, even one
// with no synced operation: the database is shared and outlives dtxd, so
// a commit it acknowledged and then lost (a crash, or a fail-over to a
// standby it had not reached) would leave a row dtxd already forgot, such
// as a transaction's decision without its final record, which no live
// node would ever finish. (RocksDB's unsynced write is lost only with
// dtxd itself, whose recovery then reads what survived.) Every statement is
// conditional on owner and epoch and affects one row or none; none is
// DTXD_STORE_FENCED (or DTX_EEXIST for a create), and the rest of the batch
// still commits.
//
// Reconnecting. When the connection fails (the database restarts, or fails
// over: with a multi-host connection string and target_session_attrs=
// read-write libpq finds the new primary), the writer reconnects with
// backoff and sends the whole batch again, until it lands or the store
// closes: nothing accepted is lost, and done only comes late. A batch
// whose commit may or may not have happened is safe to send again because
// every statement is idempotent for its writer: a create matches its own
// earlier row (same owner, epoch 1, unfinished), an update or finish
// matches the same owner and epoch again. Reads try once more on a fresh
// connection, then fail.
//
// Threads and connections: the writer has its own; the session calls
// (lease, takeover) have their own, so that a lease is never renewed
// late behind a large batch; reads and the purge take one from a small
// pool. Lock order: the write queue's mutex (store_queue.h: the queue,
// flags, stats) and pg_store.pool_mtx are leaves; no libpq call runs
// under either.

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "log.h"
#include "store.h"
#include "store_backend.h"
#include "store_queue.h"

#define PG_SCHEMA_VERSION "dtxd-pg 1"
// pg_advisory_xact_lock key that serialises nodes creating the schema.
#define PG_SCHEMA_LOCK "7415431240421"
#define PG_POOL_MAX    8
// A batch, a scan or the schema that gets no answer this long is taken as
// a lost connection (a database that hangs, or a partition): a batch's
// commit may legitimately take long on a loaded database.
#define PG_IO_TIMEOUT_MS 15000
// A single-row statement (a read, a lease) that gets no answer this long
// is taken as a lost connection: it is tried once more on a fresh one.
#define PG_STMT_TIMEOUT_MS 5000
// While a batch waits for its answer, every this long the writer checks
// that the server of its connection is still there (PQping): a dead
// primary is given up in about this long, a slow one gets its full
// PG_IO_TIMEOUT_MS.
#define PG_PROBE_MS    1000
#define PG_BACKOFF_MIN 50
#define PG_BACKOFF_MAX 1000
#define PG_LIST_PAGE   128
#define PG_PURGE_CHUNK 5000

// PostgreSQL's type oids for the parameters (pg_type.h, stable).
#define OID_INT8  20
#define OID_TEXT  25
#define OID_BYTEA 17

typedef struct pg_stmt {
	const char *name;
	const char *sql;
	int         nparams;
	Oid         types[6];
} pg_stmt;

enum {
	ST_CREATE,
	ST_UPDATE,
	ST_FINISH,
	ST_GET,
	ST_SPECS,
	ST_LIST,
	ST_UNFINISHED,
	ST_PURGE,
	ST_SESSION,
	ST_RENEW,
	ST_END,
	ST_TAKEOVER,
	ST_ASK_ABORT,
	ST_ABORTS_ASKED,
	ST_COUNT
};

// Every statement dtxd runs more than once, prepared on each connection.
static const pg_stmt stmts[ST_COUNT] = {
    [ST_CREATE]     = {"c",
            "INSERT INTO dtxd_tx (gid, owner, epoch, record, specs) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gid) DO UPDATE SET "
                "record = EXCLUDED.record, specs = EXCLUDED.specs WHERE "
                "dtxd_tx.owner = EXCLUDED.owner AND dtxd_tx.epoch = "
                "EXCLUDED.epoch AND dtxd_tx.expire_ms IS NULL",
            5, {OID_TEXT, OID_INT8, OID_INT8, OID_BYTEA, OID_BYTEA}},
    [ST_UPDATE]     = {"u",
            "UPDATE dtxd_tx SET record = $4 WHERE gid = $1 AND owner = $2 "
                "AND epoch = $3",
            4, {OID_TEXT, OID_INT8, OID_INT8, OID_BYTEA}},
    [ST_FINISH]     = {"f",
            "UPDATE dtxd_tx SET record = $4, specs = NULL, expire_ms = $5 "
                "WHERE gid = $1 AND owner = $2 AND epoch = $3",
            5, {OID_TEXT, OID_INT8, OID_INT8, OID_BYTEA, OID_INT8}},
    [ST_GET]        = {"g",
               "SELECT record FROM dtxd_tx WHERE gid = $1 AND (expire_ms IS "
                      "NULL OR expire_ms > $2)",
               2, {OID_TEXT, OID_INT8}},
    [ST_SPECS]      = {"s",
             "SELECT specs FROM dtxd_tx WHERE gid = $1 AND expire_ms IS NULL", 1,
             {OID_TEXT}},
    [ST_LIST]       = {"l",
              "SELECT gid, record FROM dtxd_tx WHERE gid > $1 AND (expire_ms "
                    "IS NULL OR expire_ms > $2) ORDER BY gid LIMIT $3",
              3, {OID_TEXT, OID_INT8, OID_INT8}},
    [ST_UNFINISHED] = {"w",
        "SELECT gid, owner, epoch, record, specs FROM dtxd_tx WHERE "
        "expire_ms IS NULL ORDER BY gid",
        0, {0}},
    [ST_PURGE]      = {"p",
             "DELETE FROM dtxd_tx WHERE ctid = ANY (ARRAY(SELECT ctid FROM "
                  "dtxd_tx WHERE expire_ms <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
             2, {OID_INT8, OID_INT8}},
    // A new session ends the earlier ones of its name, in one statement.
    [ST_SESSION] = {"n",
        "WITH e AS (UPDATE dtxd_nodes SET ended = true WHERE name = $1 AND "
        "NOT ended) INSERT INTO dtxd_nodes (name, url, started, "
        "lease_until) VALUES ($1, $2, clock_timestamp(), "
        "clock_timestamp() + $3 * interval '1 millisecond') RETURNING "
        "session",
        3, {OID_TEXT, OID_TEXT, OID_INT8}},
    // The lease, on the database's clock. The sub-select reads (and
    // locks) the lease as it was, so the renewal can say whether it had
    // run out.
    [ST_RENEW] = {"r",
        "UPDATE dtxd_nodes n SET lease_until = clock_timestamp() + $2 * "
        "interval '1 millisecond' FROM (SELECT session, lease_until FROM "
        "dtxd_nodes WHERE session = $1 FOR UPDATE) o WHERE n.session = "
        "o.session AND NOT n.ended RETURNING o.lease_until < "
        "clock_timestamp()",
        2, {OID_INT8, OID_INT8}},
    [ST_END]   = {"e", "UPDATE dtxd_nodes SET ended = true WHERE session = $1",
          1, {OID_INT8}},
    // A session is dead when it ended, or when its lease ran out and the
    // database has been up longer than a lease (after a restart every
    // node gets one lease to renew). SKIP LOCKED: nodes taking over at
    // the same time take different transactions.
    [ST_TAKEOVER] = {"t",
        "WITH dead AS (SELECT session FROM dtxd_nodes WHERE session <> $1 "
        "AND (ended OR (lease_until < clock_timestamp() AND "
        "pg_postmaster_start_time() < clock_timestamp() - $2 * interval "
        "'1 millisecond'))), c AS (SELECT t.gid FROM dtxd_tx t WHERE "
        "t.expire_ms IS NULL AND t.owner IN (SELECT session FROM dead) "
        "ORDER BY t.gid LIMIT $3 FOR UPDATE OF t SKIP LOCKED) UPDATE "
        "dtxd_tx t SET owner = $1, epoch = t.epoch + 1 FROM c WHERE "
        "t.gid = c.gid RETURNING t.gid, t.owner, t.epoch, t.record, "
        "t.specs",
        3, {OID_INT8, OID_INT8, OID_INT8}},
    // An abort asked of a node that does not own the transaction, for
    // its owner (store.h).
    [ST_ASK_ABORT] = {"a",
        "INSERT INTO dtxd_abort_asked (gid) SELECT gid FROM dtxd_tx WHERE "
        "gid = $1 AND expire_ms IS NULL ON CONFLICT DO NOTHING",
        1, {OID_TEXT}},
    // The owner takes the asks of its own transactions, and clears those
    // of finished ones, in one statement.
    [ST_ABORTS_ASKED] = {"A",
        "DELETE FROM dtxd_abort_asked a USING dtxd_tx t WHERE a.gid = "
        "t.gid AND (t.owner = $1 OR t.expire_ms IS NOT NULL) RETURNING "
        "a.gid, t.expire_ms IS NULL",
        1, {OID_INT8}},
};

typedef struct pg_store {
	dtxd_store base; // first: a dtxd_store * is a pg_store *
	char      *conninfo;
	// dtxd's metrics (store.h): each batch, and each attempt that did
	// not reach the database.
	void (*on_batch)(void *arg, uint64_t n, bool sync, int64_t us, int rv);
	void *on_batch_arg;

	// Finished records whose expiry is at or before this are purged:
	// reads skip them even before their rows are deleted.
	_Atomic int64_t purge_before;
	atomic_bool     up; // the writer's last attempt reached the database

	dtxd_store_queue *queue; // the writes, the threads
	PGconn           *wconn; // the writer's

	pthread_mutex_t pool_mtx;
	PGconn         *pool[PG_POOL_MAX];
	int             npool;

	PGconn *sconn; // the session calls'
} pg_store;

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++) {
		v = (v << 8) | p[i];
	}
	return v;
}

// ---------------------------------------------------------------------
// Connections and errors
// ---------------------------------------------------------------------

// What a failure means for the caller.
typedef enum pg_fail {
	PG_OK = 0,
	PG_RETRY,  // the connection, or the server's state: try again
	PG_NOSPC,  // the database's disk is full
	PG_STORAGE // anything else
} pg_fail;

// Classifies a failed result (NULL: none came, the connection broke) by
// its SQLSTATE and logs it. Connection exceptions (08), operator
// intervention (57: shutting down), transaction rollbacks (40: conflicts
// between nodes) and a read-only server (25006: a standby, or a primary
// being demoted) are worth another try, on a new connection.
static pg_fail
pg_failure(PGconn *c, const PGresult *r, const char *what)
{
	const char *state =
	    r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char *msg =
	    r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c);
	pg_fail f = PG_STORAGE;

	if (state == NULL || PQstatus(c) != CONNECTION_OK ||
	    strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
	    strncmp(state, "40", 2) == 0 || strcmp(state, "25006") == 0) {
		f = PG_RETRY;
	} else if (strcmp(state, "53100") == 0) {
		f = PG_NOSPC;
	}
	DTXI_WARN("store: %s: %s%s%.*s", what, state != NULL ? state : "",
	    state != NULL ? " " : "", (int)strcspn(msg, "\n"), msg);
	return f;
}

static int
pg_fail_rv(pg_fail f)
{
	return f == PG_NOSPC ? DTX_ENOSPC : DTX_ESTORAGE;
}

// Waits until c's socket is ready for what it has to do (readable, and
// writable while output is pending), until deadline (dtxi_mono_ms). False
// when the deadline passed, or on a poll error.
static bool
pg_wait_until(PGconn *c, bool out, int64_t deadline)
{
	struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
	int           rv;

	if (pfd.fd < 0) {
		return false;
	}
	if (out) {
		pfd.events |= POLLOUT;
	}
	do {
		int64_t left = deadline - dtxi_mono_ms();
		if (left <= 0) {
			return false;
		}
		rv = poll(&pfd, 1, (int)left);
	} while (rv < 0 && errno == EINTR);
	return rv > 0;
}

// Says that c gave no answer to what in ms; the caller drops c.
static void
pg_timed_out(PGconn *c, const char *what, int ms)
{
	DTXI_WARN("store: %s: no answer from PostgreSQL at %s:%s in %d ms; "
	          "dropping that connection",
	    what, PQhost(c), PQport(c), ms);
}

// Whether the server at the other end of c still answers at its address
// (a fresh connection attempt, PQping: a server that refuses or fails the
// start-up still answers). Only a server that cannot be reached at all
// counts as gone.
static bool
pg_server_alive(PGconn *c)
{
	const char *keys[5];
	const char *vals[5];
	const char *addr = PQhostaddr(c);
	int         k    = 0;

	keys[k]   = "host";
	vals[k++] = PQhost(c);
	if (addr != NULL && addr[0] != '\0') {
		keys[k]   = "hostaddr";
		vals[k++] = addr;
	}
	keys[k]   = "port";
	vals[k++] = PQport(c);
	keys[k]   = "connect_timeout";
	vals[k++] = "2";
	keys[k]   = NULL;
	vals[k]   = NULL;
	return PQpingParams(keys, vals, 0) != PQPING_NO_RESPONSE;
}

// pg_wait_until for a batch: up to PG_IO_TIMEOUT_MS of silence, but the
// server is checked every PG_PROBE_MS, and the wait ends as soon as it no
// longer answers. False when the connection is to be dropped (logged).
static bool
pg_wait_batch(PGconn *c, bool out)
{
	int64_t t0       = dtxi_mono_ms();
	int64_t deadline = t0 + PG_IO_TIMEOUT_MS;

	if (PQsocket(c) < 0) {
		return false;
	}
	for (;;) {
		int64_t now   = dtxi_mono_ms();
		int64_t slice = now + PG_PROBE_MS;

		if (pg_wait_until(
		        c, out, slice < deadline ? slice : deadline)) {
			return true;
		}
		if (dtxi_mono_ms() >= deadline) {
			pg_timed_out(c, "write", PG_IO_TIMEOUT_MS);
			return false;
		}
		if (!pg_server_alive(c)) {
			DTXI_WARN(
			    "store: write: PostgreSQL at %s:%s no longer "
			    "answers (no answer to the batch in %lld ms); "
			    "dropping that connection",
			    PQhost(c), PQport(c),
			    (long long)(dtxi_mono_ms() - t0));
			return false;
		}
	}
}

// PQgetResult with a deadline: sends what is still queued and reads until
// a result is complete. Returns the result, or NULL at the end of the
// results; *lost says that the connection broke or the deadline passed
// (then NULL, and the caller drops c).
static PGresult *
pg_result_until(
    PGconn *c, int64_t deadline, int ms, const char *what, bool *lost)
{
	*lost = false;
	for (;;) {
		int flushed = PQflush(c);

		if (flushed < 0) {
			(void)pg_failure(c, NULL, what);
			*lost = true;
			return NULL;
		}
		if (!PQisBusy(c)) {
			return PQgetResult(c);
		}
		if (!pg_wait_until(c, flushed == 1, deadline)) {
			pg_timed_out(c, what, ms);
			*lost = true;
			return NULL;
		}
		if (!PQconsumeInput(c)) {
			(void)pg_failure(c, NULL, what);
			*lost = true;
			return NULL;
		}
	}
}

// Reads every result of what was sent on c, within ms. Returns the last
// one when all succeeded (PQclear it), else NULL with *f saying what
// failed.
static PGresult *
pg_collect(PGconn *c, int ms, pg_fail *f, const char *what)
{
	int64_t   deadline = dtxi_mono_ms() + ms;
	PGresult *keep     = NULL;
	pg_fail   fail     = PG_OK;

	for (;;) {
		bool      lost;
		PGresult *r = pg_result_until(c, deadline, ms, what, &lost);

		if (lost) {
			PQclear(keep);
			*f = PG_RETRY;
			return NULL;
		}
		if (r == NULL) {
			break;
		}
		if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK) {
			if (fail == PG_OK) {
				fail = pg_failure(c, r, what);
			}
			PQclear(r);
		} else {
			PQclear(keep);
			keep = r;
		}
	}
	if (fail != PG_OK) {
		PQclear(keep);
		keep = NULL;
	}
	*f = fail;
	return keep;
}

// Runs sql (no parameters, possibly several statements) and checks that
// it succeeded, within PG_IO_TIMEOUT_MS. Returns PG_OK or what failed.
static pg_fail
pg_exec(PGconn *c, const char *sql, const char *what)
{
	pg_fail f;

	if (!PQsendQuery(c, sql)) {
		return pg_failure(c, NULL, what);
	}
	PQclear(pg_collect(c, PG_IO_TIMEOUT_MS, &f, what));
	return f;
}

// libpq prints notices (such as "relation already exists, skipping") on
// stderr by default; dtxd's log is the place for them.
static void
pg_notice(void *arg, const char *msg)
{
	(void)arg;
	DTXI_DEBUG("store: postgres says: %.*s", (int)strcspn(msg, "\n"), msg);
}

// The settings of every connection to the store's database: the
// connection string's own settings win over the defaults given here (a
// connect timeout, dtxd's application name, and TCP keepalives and a TCP
// user timeout, so that a peer that vanished, a host down or a partition,
// is found out by the kernel in seconds rather than by a statement's
// deadline). keys and vals hold PG_CONN_PARAMS entries.
#define PG_CONN_PARAMS 9
static void
pg_conn_params(const pg_store *s, const char **keys, const char **vals)
{
	static const char *const k[PG_CONN_PARAMS]     = {"connect_timeout",
	        "application_name", "keepalives", "keepalives_idle",
	        "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	        "dbname", NULL};
	static const char *const v[PG_CONN_PARAMS - 2] = {
	    "5", "dtxd", "1", "5", "2", "3", "10000"};

	for (int i = 0; i < PG_CONN_PARAMS; i++) {
		keys[i] = k[i];
		vals[i] = i < PG_CONN_PARAMS - 2 ? v[i] : NULL;
	}
	vals[PG_CONN_PARAMS - 2] = s->conninfo; // expanded: its settings win
}

// Opens a connection to the store's database (pg_conn_params), made
// non-blocking: every call on it waits with a deadline. NULL when it
// cannot be made; *failed (when not NULL) then receives the failed
// connection, for the caller to read why and PQfinish, and nothing is
// logged; otherwise the reason is logged.
static PGconn *
pg_connect_or(pg_store *s, PGconn **failed)
{
	const char *keys[PG_CONN_PARAMS];
	const char *vals[PG_CONN_PARAMS];
	PGconn     *c;

	pg_conn_params(s, keys, vals);
	if ((c = PQconnectdbParams(keys, vals, 1)) == NULL) {
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		if (failed != NULL) {
			*failed = c;
			return NULL;
		}
		DTXI_WARN("store: cannot connect to the database: %.*s",
		    (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	if (PQsetnonblocking(c, 1) != 0) {
		DTXI_WARN("store: cannot make the connection non-blocking");
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, pg_notice, NULL);
	return c;
}

static PGconn *
pg_connect(pg_store *s)
{
	return pg_connect_or(s, NULL);
}

// Prepares the statements on c. Returns PG_OK or what failed.
static pg_fail
pg_prepare(PGconn *c)
{
	for (int i = 0; i < ST_COUNT; i++) {
		const pg_stmt *st = &stmts[i];
		pg_fail        f;

		if (!PQsendPrepare(
		        c, st->name, st->sql, st->nparams, st->types)) {
			return pg_failure(c, NULL, "prepare");
		}
		PQclear(pg_collect(c, PG_IO_TIMEOUT_MS, &f, "prepare"));
		if (f != PG_OK) {
			return f;
		}
	}
	return PG_OK;
}

// A connection from the pool (unless fresh), or a new one; NULL when the
// database cannot be reached.
static PGconn *
pool_get(pg_store *s, bool fresh)
{
	PGconn *c = NULL;

	pthread_mutex_lock(&s->pool_mtx);
	if (s->npool > 0 && !fresh) {
		c = s->pool[--s->npool];
	}
	pthread_mutex_unlock(&s->pool_mtx);
	if (c == NULL && (c = pg_connect(s)) != NULL &&
	    pg_prepare(c) != PG_OK) {
		PQfinish(c);
		c = NULL;
	}
	return c;
}

// Gives c back, or closes it when it is broken or the pool is full.
static void
pool_put(pg_store *s, PGconn *c)
{
	if (c == NULL) {
		return;
	}
	if (PQstatus(c) == CONNECTION_OK &&
	    PQtransactionStatus(c) == PQTRANS_IDLE) {
		pthread_mutex_lock(&s->pool_mtx);
		if (s->npool < PG_POOL_MAX) {
			s->pool[s->npool++] = c;
			c                   = NULL;
		}
		pthread_mutex_unlock(&s->pool_mtx);
	}
	PQfinish(c);
}

// Closes every pooled connection: after one was lost (the database
// restarted, or failed over) the others most likely were too, and each
// would cost a reader a failed try.
static void
pool_drop(pg_store *s)
{
	PGconn *old[PG_POOL_MAX];
	int     n;

	pthread_mutex_lock(&s->pool_mtx);
	n = s->npool;
	memcpy(old, s->pool, (size_t)n * sizeof(old[0]));
	s->npool = 0;
	pthread_mutex_unlock(&s->pool_mtx);
	for (int i = 0; i < n; i++) {
		PQfinish(old[i]);
	}
}

// How long statement st may go unanswered: a single-row one briefly, the
// purge and the takeover (many rows, under load) as long as a batch.
static int
stmt_timeout_ms(int st)
{
	return st == ST_PURGE || st == ST_TAKEOVER ? PG_IO_TIMEOUT_MS
	                                           : PG_STMT_TIMEOUT_MS;
}

// Runs prepared statement st with params (binary) on c, results in
// binary, within its deadline. Returns the result (PQclear it) when it
// succeeded, else NULL with *f saying what failed (PG_RETRY when no
// answer came in time: the caller drops c).
static PGresult *
pg_run(PGconn *c, int st, const char *const *vals, const int *lens, pg_fail *f,
    const char *what)
{
	int fmts[6] = {1, 1, 1, 1, 1, 1};

	if (!PQsendQueryPrepared(
	        c, stmts[st].name, stmts[st].nparams, vals, lens, fmts, 1)) {
		*f = pg_failure(c, NULL, what);
		return NULL;
	}
	return pg_collect(c, stmt_timeout_ms(st), f, what);
}

// Runs st on a pooled connection, and once more on a fresh one when the
// first failed in a way worth retrying (the connection broke, or gave no
// answer by the statement's deadline). Never waits longer than two
// deadlines and two connects.
static PGresult *
pool_run(pg_store *s, int st, const char *const *vals, const int *lens,
    int *rv, const char *what)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		PGconn   *c = pool_get(s, attempt > 0);
		PGresult *r;
		pg_fail   f;

		if (c == NULL) {
			*rv = DTX_ESTORAGE;
			continue;
		}
		r = pg_run(c, st, vals, lens, &f, what);
		if (f != PG_OK) {
			PQfinish(c);
			*rv = pg_fail_rv(f);
			if (f == PG_RETRY) {
				pool_drop(s);
				continue;
			}
			return NULL;
		}
		pool_put(s, c);
		*rv = 0;
		return r;
	}
	DTXI_WARN("store: %s failed on two connections to PostgreSQL; "
	          "giving up: %s",
	    what, dtx_strerror(*rv));
	return NULL;
}

// ---------------------------------------------------------------------
// The schema
// ---------------------------------------------------------------------

static const char schema_sql[] =
    "CREATE SEQUENCE IF NOT EXISTS dtxd_session_seq;"
    "CREATE TABLE IF NOT EXISTS dtxd_nodes ("
    " session bigint PRIMARY KEY DEFAULT nextval('dtxd_session_seq'),"
    " name text NOT NULL, url text NOT NULL,"
    " started timestamptz NOT NULL, lease_until timestamptz NOT NULL,"
    " ended boolean NOT NULL DEFAULT false);"
    "CREATE TABLE IF NOT EXISTS dtxd_tx ("
    " gid text COLLATE \"C\" PRIMARY KEY,"
    " owner bigint NOT NULL, epoch bigint NOT NULL, expire_ms bigint,"
    " record bytea NOT NULL, specs bytea)"
    // Room on each page for the updates of a transaction's record, so
    // that they stay on its page (heap-only tuples, no index change).
    " WITH (fillfactor = 80);"
    "CREATE INDEX IF NOT EXISTS dtxd_tx_unfinished ON dtxd_tx"
    " (owner, gid) WHERE expire_ms IS NULL;"
    "CREATE INDEX IF NOT EXISTS dtxd_tx_expiry ON dtxd_tx (expire_ms)"
    " WHERE expire_ms IS NOT NULL;"
    "INSERT INTO dtxd_meta VALUES ('schema', '" PG_SCHEMA_VERSION "');";

// Aborts asked of a node that does not own the transaction (store.h):
// gone with their transaction's row.
static const char abort_asked_sql[] =
    "CREATE TABLE IF NOT EXISTS dtxd_abort_asked ("
    " gid text COLLATE \"C\" PRIMARY KEY"
    " REFERENCES dtxd_tx (gid) ON DELETE CASCADE)";

// What a failure while opening the store means for dtxd: a connection
// lost (or a server going down) may mend, anything else is final.
static int
pg_open_rv(pg_fail f)
{
	return f == PG_OK   ? 0
	    : f == PG_RETRY ? DTX_EUNREACHABLE
	                    : pg_fail_rv(f);
}

// Creates the schema in an empty database, or checks its version. Nodes
// starting together take turns (an advisory lock for the transaction).
// Returns 0 or an error as dtxd_store_pg_open's, with why written.
static int
pg_schema(PGconn *c, char *why, size_t cap)
{
	PGresult *r;
	pg_fail   f;
	int       rv = 0;

	f = pg_exec(c,
	    "BEGIN; SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ");"
	    "CREATE TABLE IF NOT EXISTS dtxd_meta (key text PRIMARY KEY, "
	    "value text NOT NULL)",
	    "schema");
	if (f != PG_OK) {
		snprintf(why, cap,
		    "cannot create or check dtxd's schema (the database's "
		    "reason is logged above)");
		return pg_open_rv(f);
	}
	if (!PQsendQuery(
	        c, "SELECT value FROM dtxd_meta WHERE key = 'schema'")) {
		f = pg_failure(c, NULL, "schema");
		r = NULL;
	} else {
		r = pg_collect(c, PG_IO_TIMEOUT_MS, &f, "schema");
	}
	if (r == NULL) {
		rv = pg_open_rv(f);
	} else if (PQntuples(r) == 0) {
		f = pg_exec(c, schema_sql, "schema");
		if (f == PG_OK) {
			f = pg_exec(c, abort_asked_sql, "schema");
		}
		rv = pg_open_rv(f);
		if (rv == 0) {
			DTXI_INFO("store: created the schema (%s)",
			    PG_SCHEMA_VERSION);
		}
	} else if (strcmp(PQgetvalue(r, 0, 0), PG_SCHEMA_VERSION) == 0) {
		// Added to version 1 later, and left alone by a dtxd that
		// predates it (which then does not act on aborts asked of
		// other nodes for its transactions).
		f  = pg_exec(c, abort_asked_sql, "schema");
		rv = pg_open_rv(f);
	} else {
		snprintf(why, cap,
		    "the database holds dtxd's schema '%.64s', which this "
		    "dtxd (%s) cannot use; it was left untouched",
		    PQgetvalue(r, 0, 0), PG_SCHEMA_VERSION);
		rv = DTX_ESTORAGE;
	}
	PQclear(r);
	f = pg_exec(c, rv == 0 ? "COMMIT" : "ROLLBACK", "schema");
	if (rv == 0 && f != PG_OK) {
		rv = pg_open_rv(f);
	}
	if (rv != 0 && why[0] == '\0') {
		snprintf(why, cap,
		    "cannot create or check dtxd's schema (the database's "
		    "reason is logged above)");
	}
	return rv;
}

// ---------------------------------------------------------------------
// Opening: a database that cannot be reached yet, or never will
// ---------------------------------------------------------------------

// Copies libpq's message msg to out as one line: each line of its own
// (one per host tried) joined with "; ", libpq's indented hints left
// out.
static void
pg_oneline(const char *msg, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	while (*msg != '\0' && o + 1 < cap) {
		size_t n = strcspn(msg, "\n");
		if (n > 0 && msg[0] != '\t') {
			int w = snprintf(out + o, cap - o, "%s%.*s",
			    o > 0 ? "; " : "", (int)n, msg);
			o     = w < 0                 ? o
			        : o + (size_t)w < cap ? o + (size_t)w
			                              : cap - 1;
		}
		msg += n;
		msg += *msg == '\n';
	}
	while (o > 0 && (out[o - 1] == ' ' || out[o - 1] == '.')) {
		out[--o] = '\0';
	}
}

// The SQLSTATE of the error a server that answers sent when it refused a
// connection (libpq's PQconnectdbParams does not tell it): a second
// attempt, made with verbose errors, whose message then reads
// "SEVERITY:  SQLSTATE: text". Writes it to state (6 bytes) and returns
// true, or false when there is none (no answer in time, or the attempt
// succeeded: the server is taking connections now).
static bool
pg_refusal_state(pg_store *s, char *state)
{
	const char *keys[PG_CONN_PARAMS];
	const char *vals[PG_CONN_PARAMS];
	int64_t     deadline = dtxi_mono_ms() + PG_STMT_TIMEOUT_MS;
	PGconn     *c;
	const char *m;
	bool        found = false;

	pg_conn_params(s, keys, vals);
	if ((c = PQconnectStartParams(keys, vals, 1)) == NULL) {
		return false;
	}
	PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
	for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	     st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED;) {
		if (PQstatus(c) == CONNECTION_BAD ||
		    !pg_wait_until(c, st == PGRES_POLLING_WRITING, deadline)) {
			break;
		}
		st = PQconnectPoll(c);
	}
	m = PQstatus(c) == CONNECTION_BAD ? PQerrorMessage(c) : "";
	// "...failed: FATAL:  28P01: password authentication failed..."
	while (!found && (m = strstr(m, ":  ")) != NULL) {
		m += 3;
		found =
		    strspn(m, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") == 5 &&
		    m[5] == ':';
	}
	if (found) {
		memcpy(state, m, 5);
		state[5] = '\0';
	}
	PQfinish(c);
	return found;
}

// Says in why (cap bytes) why c, a connection attempt at opening, failed,
// and whether trying again later can mend it: DTX_EUNREACHABLE when it
// may (no server answers at the address, or it is starting up or shutting
// down, or it turns connections away for now, such as when it has too
// many), else DTX_EINVAL (settings libpq refuses) or DTX_ESTORAGE (the
// server refuses dtxd itself: no password given where one is asked, a
// wrong one, a role or database that does not exist, pg_hba.conf). libpq
// never puts the password in its messages.
static int
pg_open_failure(pg_store *s, PGconn *c, char *why, size_t cap)
{
	const char *keys[PG_CONN_PARAMS];
	const char *vals[PG_CONN_PARAMS];
	char        msg[400];
	char        state[6];

	pg_oneline(PQerrorMessage(c), msg, sizeof(msg));
	if (PQconnectionNeedsPassword(c)) {
		snprintf(why, cap,
		    "PostgreSQL asks for a password and the connection "
		    "string gives none: %s",
		    msg);
		return DTX_ESTORAGE;
	}
	pg_conn_params(s, keys, vals);
	switch (PQpingParams(keys, vals, 1)) {
	case PQPING_NO_ATTEMPT:
		snprintf(
		    why, cap, "libpq refuses the connection string: %s", msg);
		return DTX_EINVAL;
	case PQPING_NO_RESPONSE:
		snprintf(why, cap, "cannot reach PostgreSQL: %s", msg);
		return DTX_EUNREACHABLE;
	case PQPING_REJECT:
		snprintf(why, cap,
		    "PostgreSQL does not take connections yet (starting up "
		    "or shutting down): %s",
		    msg);
		return DTX_EUNREACHABLE;
	case PQPING_OK:
		break;
	}
	// The server answers, and refused this connection: class 28 is
	// about who dtxd is (password, role, pg_hba.conf), 3D000 a database
	// that does not exist; no number of tries mends those.
	if (!pg_refusal_state(s, state)) {
		snprintf(why, cap, "cannot connect to PostgreSQL: %s", msg);
		return DTX_EUNREACHABLE;
	}
	if (strncmp(state, "28", 2) == 0 || strcmp(state, "3D000") == 0) {
		snprintf(why, cap,
		    "PostgreSQL refuses dtxd's connection (SQLSTATE %s): %s",
		    state, msg);
		return DTX_ESTORAGE;
	}
	snprintf(why, cap,
	    "PostgreSQL turns the connection away for now (SQLSTATE %s): %s",
	    state, msg);
	return DTX_EUNREACHABLE;
}

// ---------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------

// One operation's parameters, in binary: the text gid as its bytes, the
// integers big-endian.
typedef struct wparams {
	const char *vals[5];
	int         lens[5];
	int         fmts[5];
	uint8_t     owner[8], epoch[8], expire[8];
	uint8_t    *specs; // CREATE: the framed specs (malloc'd)
} wparams;

// Frames the specs of a create as (u32 BE length, bytes) pairs, the one
// value dtxd_store_specs_parse reads back.
static int
specs_frame(const dtxd_wop *op, uint8_t **out, size_t *len)
{
	size_t   n = 0;
	uint8_t *p;

	for (uint32_t i = 0; i < op->nspecs; i++) {
		n += 4 + op->spec_lens[i];
	}
	if ((p = malloc(n > 0 ? n : 1)) == NULL) {
		return DTX_ENOMEM;
	}
	*out = p;
	*len = n;
	for (uint32_t i = 0; i < op->nspecs; i++) {
		uint32_t l = (uint32_t)op->spec_lens[i];
		p[0]       = (uint8_t)(l >> 24);
		p[1]       = (uint8_t)(l >> 16);
		p[2]       = (uint8_t)(l >> 8);
		p[3]       = (uint8_t)l;
		if (l > 0) {
			memcpy(p + 4, op->specs[i], l);
		}
		p += 4 + l;
	}
	return 0;
}

static int
wparams_fill(wparams *w, const dtxd_wop *op)
{
	size_t slen;
	int    rv;

	memset(w, 0, sizeof(*w));
	for (int i = 0; i < 5; i++) {
		w->fmts[i] = 1;
	}
	put_be64(w->owner, op->owner);
	put_be64(w->epoch, op->kind == DTXD_WOP_CREATE ? 1 : op->epoch);
	w->vals[0] = op->gid;
	w->lens[0] = (int)strlen(op->gid);
	w->vals[1] = (const char *)w->owner;
	w->lens[1] = 8;
	w->vals[2] = (const char *)w->epoch;
	w->lens[2] = 8;
	// An empty record is an empty bytea, not NULL.
	w->vals[3] =
	    op->record_len > 0 ? (const char *)op->record : (const char *)"";
	w->lens[3] = (int)op->record_len;
	switch (op->kind) {
	case DTXD_WOP_CREATE:
		if ((rv = specs_frame(op, &w->specs, &slen)) != 0) {
			return rv;
		}
		w->vals[4] = (const char *)w->specs;
		w->lens[4] = (int)slen;
		break;
	case DTXD_WOP_FINISH:
		put_be64(w->expire, (uint64_t)op->expire_ms);
		w->vals[4] = (const char *)w->expire;
		w->lens[4] = 8;
		break;
	case DTXD_WOP_UPDATE:
		break;
	}
	return 0;
}

static int
wop_stmt(const dtxd_wop *op)
{
	return op->kind == DTXD_WOP_CREATE ? ST_CREATE
	    : op->kind == DTXD_WOP_UPDATE  ? ST_UPDATE
	                                   : ST_FINISH;
}

// The batch as one transaction in one pipeline: BEGIN, one statement per
// operation, COMMIT, a sync. The connection is non-blocking and results are
// read while the rest is still being sent, so a large batch cannot deadlock on
// full socket buffers. res[i] receives operation i's outcome. Returns PG_OK,
// or what failed (then no outcome counts).
static pg_fail
pipe_batch(PGconn *c, dtxd_wop *list, uint32_t n, int *res)
{
	const int first = 1; // results before the operations' (BEGIN)
	const int total = first + (int)n + 1;
	wparams   w;
	int       got     = 0; // results read (not counting the sync)
	bool      aborted = false;
	uint32_t  i;
	dtxd_wop *op;

	if (PQsetnonblocking(c, 1) != 0 || PQenterPipelineMode(c) != 1) {
		return pg_failure(c, NULL, "write");
	}
	if (!PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0)) {
		goto broken;
	}
	for (op = list, i = 0; op != NULL; op = op->next, i++) {
		int st = wop_stmt(op);
		int ok;
		if (wparams_fill(&w, op) != 0) {
			free(w.specs);
			goto broken; // out of memory: the batch is sent again
		}
		ok = PQsendQueryPrepared(c, stmts[st].name, stmts[st].nparams,
		    w.vals, w.lens, w.fmts, 0);
		free(w.specs);
		if (!ok) {
			goto broken;
		}
	}
	if (!PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(c)) {
		goto broken;
	}
	for (;;) {
		int flushed = PQflush(c);
		int nulls   = 0;

		if (flushed < 0 || !PQconsumeInput(c)) {
			goto broken;
		}
		// In pipeline mode each statement's results end with a NULL,
		// after which the next statement's may already be here: read
		// on while they are, wait only when libpq has none complete.
		while (!PQisBusy(c) && nulls < 2) {
			PGresult      *r = PQgetResult(c);
			ExecStatusType t;

			if (r == NULL) {
				nulls++;
				continue;
			}
			nulls = 0;
			t     = PQresultStatus(r);
			if (t == PGRES_PIPELINE_SYNC) {
				PQclear(r);
				if (got != total) {
					goto broken;
				}
				PQexitPipelineMode(c);
				return aborted ? PG_STORAGE : PG_OK;
			}
			if (t == PGRES_FATAL_ERROR) {
				pg_fail f = pg_failure(c, r, "write");
				if (f != PG_STORAGE) {
					PQclear(r);
					return f; // sent whole again, anew
				}
				aborted = true;
			} else if (t == PGRES_PIPELINE_ABORTED) {
				aborted = true;
			} else if (got >= first && got < first + (int)n) {
				// Rows affected: 1, or 0 when fenced.
				res[got - first] =
				    strcmp(PQcmdTuples(r), "1") == 0 ? 0 : 1;
			}
			PQclear(r);
			got++;
		}
		if (!pg_wait_batch(c, flushed == 1)) {
			return PG_RETRY;
		}
	}
broken:
	return pg_failure(c, NULL, "write");
}

// Writes the batch until it lands: a broken connection is replaced (with
// backoff) and the whole batch sent again. Gives up only when the store
// closes meanwhile, or on an error that another try cannot mend. res as
// pipe_batch's. Returns 0 or the error every operation gets.
static int
write_batch(pg_store *s, dtxd_wop *list, uint32_t n, bool sync, int *res)
{
	uint32_t backoff = PG_BACKOFF_MIN;

	for (;;) {
		pg_fail f;

		if (s->wconn == NULL) {
			if ((s->wconn = pg_connect(s)) != NULL &&
			    pg_prepare(s->wconn) != PG_OK) {
				PQfinish(s->wconn);
				s->wconn = NULL;
			}
		}
		if (s->wconn != NULL) {
			memset(res, 0, n * sizeof(*res));
			f = pipe_batch(s->wconn, list, n, res);
			if (f == PG_OK) {
				atomic_store(&s->up, true);
				return 0;
			}
			// A failed pipeline leaves the connection in an odd
			// state; a new one is cheaper to reason about.
			PQfinish(s->wconn);
			s->wconn = NULL;
			if (f != PG_RETRY) {
				return pg_fail_rv(f);
			}
		}
		atomic_store(&s->up, false);
		// Not failed yet (it is sent again), but not written either:
		// /readyz says so meanwhile.
		if (s->on_batch != NULL) {
			s->on_batch(s->on_batch_arg, 0, sync, 0, DTX_ESTORAGE);
		}
		if (dtxd_store_queue_closing(s->queue)) {
			return DTX_ESTORAGE;
		}
		dtxi_sleep_ms(backoff);
		backoff = backoff * 2 > PG_BACKOFF_MAX ? PG_BACKOFF_MAX
		                                       : backoff * 2;
	}
}

// The write queue's batch (store_queue.c does the group commit and calls
// every operation's done): one database transaction, in which an operation
// that found no row of its owner and epoch is refused alone, a create with
// DTX_EEXIST and the others with DTXD_STORE_FENCED.
static int
pg_write_batch(void *arg, dtxd_wop *list, uint32_t n, bool sync, int *res)
{
	pg_store *s  = arg;
	int       rv = write_batch(s, list, n, sync, res);
	uint32_t  i  = 0;

	for (dtxd_wop *op = list; rv == 0 && op != NULL; op = op->next, i++) {
		if (res[i] != 0) {
			res[i] = op->kind == DTXD_WOP_CREATE
			    ? DTX_EEXIST
			    : DTXD_STORE_FENCED;
		}
	}
	return rv;
}

static int
pg_write(dtxd_store *base, dtxd_wop *op)
{
	return dtxd_store_queue_push(((pg_store *)base)->queue, op);
}

// ---------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------

static int
pg_get_record(dtxd_store *base, const char *gid, uint8_t **val, size_t *len)
{
	pg_store   *s = (pg_store *)base;
	uint8_t     before[8];
	const char *vals[2] = {gid, (const char *)before};
	int         lens[2] = {(int)strlen(gid), 8};
	PGresult   *r;
	int         rv;

	put_be64(before, (uint64_t)atomic_load(&s->purge_before));
	if ((r = pool_run(s, ST_GET, vals, lens, &rv, "read")) == NULL) {
		return rv;
	}
	rv = PQntuples(r) == 0 ? DTX_ENOTFOUND
	                       : dtxd_store_dup_bytes(PQgetvalue(r, 0, 0),
	                             (size_t)PQgetlength(r, 0, 0), val, len);
	PQclear(r);
	return rv;
}

static int
pg_get_spec(
    dtxd_store *base, const char *gid, uint32_t i, uint8_t **val, size_t *len)
{
	pg_store             *s       = (pg_store *)base;
	const char           *vals[1] = {gid};
	int                   lens[1] = {(int)strlen(gid)};
	dtxd_store_unfinished u;
	PGresult             *r;
	int                   rv;

	if ((r = pool_run(s, ST_SPECS, vals, lens, &rv, "read")) == NULL) {
		return rv;
	}
	if (PQntuples(r) == 0 || PQgetisnull(r, 0, 0)) {
		PQclear(r);
		return DTX_ENOTFOUND;
	}
	if (!dtxd_store_specs_parse((const uint8_t *)PQgetvalue(r, 0, 0),
	        (size_t)PQgetlength(r, 0, 0), &u)) {
		DTXI_WARN("store: the specs of %s are damaged", gid);
	}
	rv = i < u.nspecs
	    ? dtxd_store_dup_bytes(u.specs[i], u.spec_lens[i], val, len)
	    : DTX_ENOTFOUND;
	PQclear(r);
	return rv;
}

// Fills u from row i of r (gid, owner, epoch, record, specs). The gid is
// copied to gid; a row with an invalid gid or no specs is reported with
// false (and no specs).
static bool
row_unfinished(PGresult *r, int i, char *gid, dtxd_store_unfinished *u)
{
	size_t glen = (size_t)PQgetlength(r, i, 0);
	size_t n;

	memset(u, 0, sizeof(*u));
	if (glen == 0 || glen > DTX_GID_MAX) {
		return false;
	}
	memcpy(gid, PQgetvalue(r, i, 0), glen);
	gid[glen] = '\0';
	if (!dtxd_store_gid_valid(gid, &n) || n != glen) {
		return false;
	}
	u->gid        = gid;
	u->owner      = get_be64((const uint8_t *)PQgetvalue(r, i, 1));
	u->epoch      = get_be64((const uint8_t *)PQgetvalue(r, i, 2));
	u->record     = (const uint8_t *)PQgetvalue(r, i, 3);
	u->record_len = (size_t)PQgetlength(r, i, 3);
	if (!PQgetisnull(r, i, 4) &&
	    !dtxd_store_specs_parse((const uint8_t *)PQgetvalue(r, i, 4),
	        (size_t)PQgetlength(r, i, 4), u)) {
		DTXI_WARN("store: the specs of %s are damaged", gid);
	}
	return true;
}

// The unfinished ones come row by row (libpq's single-row mode), so a
// large backlog is never held whole in memory; a row that does not come
// within PG_IO_TIMEOUT_MS of the one before fails the scan (rows already
// handed to fn cannot be taken back, so it is not tried again here).
static int
pg_scan_unfinished(dtxd_store *base,
    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg)
{
	pg_store *s = (pg_store *)base;
	PGconn   *c = pool_get(s, false);
	PGresult *r;
	char      gid[DTX_GID_MAX + 1];
	int       rv     = 0;
	bool      failed = false;
	bool      lost;

	if (c == NULL) {
		return DTX_ESTORAGE;
	}
	if (!PQsendQueryPrepared(
	        c, stmts[ST_UNFINISHED].name, 0, NULL, NULL, NULL, 1) ||
	    !PQsetSingleRowMode(c)) {
		rv = pg_fail_rv(pg_failure(c, NULL, "scan"));
		PQfinish(c);
		return rv;
	}
	while ((r = pg_result_until(c, dtxi_mono_ms() + PG_IO_TIMEOUT_MS,
	            PG_IO_TIMEOUT_MS, "scan", &lost)) != NULL) {
		ExecStatusType t = PQresultStatus(r);
		if (t == PGRES_SINGLE_TUPLE && rv == 0) {
			dtxd_store_unfinished u;
			if (row_unfinished(r, 0, gid, &u)) {
				rv = fn(arg, &u);
			} else {
				DTXI_WARN("store: skipping a malformed "
				          "unfinished row");
			}
		} else if (t != PGRES_SINGLE_TUPLE && t != PGRES_TUPLES_OK) {
			rv     = pg_fail_rv(pg_failure(c, r, "scan"));
			failed = true;
		}
		PQclear(r);
	}
	if (lost) {
		rv     = DTX_ESTORAGE;
		failed = true;
		pool_drop(s);
	}
	if (failed) {
		PQfinish(c);
	} else {
		pool_put(s, c);
	}
	return rv;
}

// List reads pages in gid order (the primary key's order), each after the
// last gid of the one before, until fn says stop.
static int
pg_scan_records(dtxd_store *base, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg)
{
	pg_store *s = (pg_store *)base;
	char      after[DTX_GID_MAX + 1];
	uint8_t   before[8], limit[8];
	int       rv = 0;

	snprintf(after, sizeof(after), "%s", cursor);
	put_be64(before, (uint64_t)atomic_load(&s->purge_before));
	put_be64(limit, PG_LIST_PAGE);
	for (;;) {
		const char *vals[3] = {
		    after, (const char *)before, (const char *)limit};
		int       lens[3] = {(int)strlen(after), 8, 8};
		PGresult *r = pool_run(s, ST_LIST, vals, lens, &rv, "scan");
		int       rows;

		if (r == NULL) {
			return rv;
		}
		rows = PQntuples(r);
		for (int i = 0; i < rows && rv == 0; i++) {
			size_t glen = (size_t)PQgetlength(r, i, 0);
			char   gid[DTX_GID_MAX + 1];
			if (glen == 0 || glen > DTX_GID_MAX) {
				continue;
			}
			memcpy(gid, PQgetvalue(r, i, 0), glen);
			gid[glen] = '\0';
			rv = fn(arg, gid, (const uint8_t *)PQgetvalue(r, i, 1),
			    (size_t)PQgetlength(r, i, 1));
			memcpy(after, gid, glen + 1);
		}
		PQclear(r);
		if (rv != 0 || rows < PG_LIST_PAGE) {
			return rv < 0 ? 0 : rv;
		}
	}
}

// ---------------------------------------------------------------------
// Purge
// ---------------------------------------------------------------------

// Marks everything expired by now_ms invisible at once, then deletes it
// in chunks, each its own short transaction, so that no write waits long
// behind it. Nodes purging together skip each other's rows.
static int
pg_purge(dtxd_store *base, int64_t now_ms, uint64_t *purgedp)
{
	pg_store *s   = (pg_store *)base;
	int64_t   old = atomic_load(&s->purge_before);
	uint8_t   t[8], lim[8];
	uint64_t  total = 0;
	int       rv    = 0;

	while (old < now_ms &&
	    !atomic_compare_exchange_weak(&s->purge_before, &old, now_ms)) {
	}
	put_be64(t, (uint64_t)now_ms);
	put_be64(lim, PG_PURGE_CHUNK);
	for (;;) {
		const char *vals[2] = {(const char *)t, (const char *)lim};
		int         lens[2] = {8, 8};
		PGresult *r = pool_run(s, ST_PURGE, vals, lens, &rv, "purge");
		long      n;

		if (r == NULL) {
			break;
		}
		n = strtol(PQcmdTuples(r), NULL, 10);
		PQclear(r);
		total += (uint64_t)(n > 0 ? n : 0);
		if (n < PG_PURGE_CHUNK) {
			break;
		}
	}
	if (total > 0) {
		dtxd_store_queue_add_purged(s->queue, total);
		DTXI_INFO("store: purged %llu finished transactions",
		    (unsigned long long)total);
	}
	*purgedp = total;
	return rv;
}

// The purge thread's round (store_queue.c runs it every purge_every_ms).
static void
pg_purge_round(void *arg)
{
	pg_store *s = arg;
	uint64_t  n;

	(void)pg_purge(&s->base, dtxi_now_ms(), &n);
}

// ---------------------------------------------------------------------
// Bulk load
// ---------------------------------------------------------------------

// Appends "\\x" and the hex of p to a COPY line (bytea in text COPY).
static char *
hex_put(char *o, const uint8_t *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";

	*o++ = '\\';
	*o++ = '\\';
	*o++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*o++ = hx[p[i] >> 4];
		*o++ = hx[p[i] & 15];
	}
	return o;
}

// Queues n bytes of COPY data on c (buf NULL: the end of the data, n < 0:
// abort the COPY), waiting for room while the socket's buffers are full,
// at most PG_IO_TIMEOUT_MS. False when the connection broke or the time
// passed.
static bool
copy_put(PGconn *c, const char *buf, int n)
{
	int64_t deadline = dtxi_mono_ms() + PG_IO_TIMEOUT_MS;

	for (;;) {
		int x = buf != NULL
		    ? PQputCopyData(c, buf, n)
		    : PQputCopyEnd(c, n < 0 ? "dtxd: bulk load failed" : NULL);
		if (x != 0) {
			return x == 1;
		}
		if (!pg_wait_until(c, true, deadline)) {
			pg_timed_out(c, "bulk load", PG_IO_TIMEOUT_MS);
			return false;
		}
		if (!PQconsumeInput(c)) {
			return false;
		}
	}
}

// One COPY in text format, in one transaction: finished rows, owner 0.
static int
pg_ingest_finished(dtxd_store *base, const dtxd_store_finished *f, size_t n)
{
	pg_store *s   = (pg_store *)base;
	PGconn   *c   = pool_get(s, false);
	char     *buf = NULL;
	size_t    cap = 0;
	PGresult *r;
	int       rv   = 0;
	bool      lost = false;

	if (c == NULL) {
		return DTX_ESTORAGE;
	}
	if (!PQsendQuery(c,
	        "COPY dtxd_tx (gid, owner, epoch, expire_ms, record) "
	        "FROM STDIN")) {
		r = NULL;
	} else {
		r = pg_result_until(c, dtxi_mono_ms() + PG_IO_TIMEOUT_MS,
		    PG_IO_TIMEOUT_MS, "bulk load", &lost);
	}
	if (r == NULL || PQresultStatus(r) != PGRES_COPY_IN) {
		rv = lost ? DTX_ESTORAGE
		          : pg_fail_rv(pg_failure(c, r, "bulk load"));
		PQclear(r);
		PQfinish(c);
		return rv;
	}
	PQclear(r);
	for (size_t i = 0; i < n && rv == 0; i++) {
		size_t need = strlen(f[i].gid) + 2 * f[i].record_len + 64;
		char  *o;
		if (need > cap) {
			char *nb = realloc(buf, need);
			if (nb == NULL) {
				rv = DTX_ENOMEM;
				break;
			}
			buf = nb;
			cap = need;
		}
		o = buf +
		    snprintf(buf, cap, "%s\t0\t0\t%lld\t", f[i].gid,
		        (long long)f[i].expire_ms);
		o    = hex_put(o, f[i].record, f[i].record_len);
		*o++ = '\n';
		if (!copy_put(c, buf, (int)(o - buf))) {
			rv = DTX_ESTORAGE;
		}
	}
	free(buf);
	if (!copy_put(c, NULL, rv == 0 ? 0 : -1)) {
		rv = DTX_ESTORAGE;
	}
	while ((r = pg_result_until(c, dtxi_mono_ms() + PG_IO_TIMEOUT_MS,
	            PG_IO_TIMEOUT_MS, "bulk load", &lost)) != NULL) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK && rv == 0) {
			rv = pg_fail_rv(pg_failure(c, r, "bulk load"));
		}
		PQclear(r);
	}
	if (lost) {
		PQfinish(c);
		return DTX_ESTORAGE;
	}
	pool_put(s, c);
	return rv;
}

// ---------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------

// Runs st on the session calls' own connection (made on demand), and
// once more on a fresh one when the first failed in a way worth retrying
// (a connection the database closed is only found out when used).
static PGresult *
sess_run(pg_store *s, int st, const char *const *vals, const int *lens,
    int *rv, const char *what)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		PGresult *r;
		pg_fail   f;

		if (s->sconn == NULL && (s->sconn = pg_connect(s)) != NULL &&
		    pg_prepare(s->sconn) != PG_OK) {
			PQfinish(s->sconn);
			s->sconn = NULL;
		}
		if (s->sconn == NULL) {
			*rv = DTX_ESTORAGE;
			continue;
		}
		if ((r = pg_run(s->sconn, st, vals, lens, &f, what)) != NULL) {
			*rv = 0;
			return r;
		}
		PQfinish(s->sconn);
		s->sconn = NULL;
		*rv      = pg_fail_rv(f);
		if (f != PG_RETRY) {
			break;
		}
	}
	return NULL;
}

static int
pg_session_open(dtxd_store *base, const char *name, const char *url,
    uint32_t lease_ms, uint64_t *session)
{
	pg_store   *s = (pg_store *)base;
	uint8_t     lease[8];
	const char *vals[3] = {name, url, (const char *)lease};
	int         lens[3] = {(int)strlen(name), (int)strlen(url), 8};
	PGresult   *r;
	int         rv;

	put_be64(lease, lease_ms);
	if ((r = sess_run(s, ST_SESSION, vals, lens, &rv, "session")) ==
	    NULL) {
		return rv;
	}
	if (PQntuples(r) != 1) {
		rv = DTX_ESTORAGE;
	} else {
		*session = get_be64((const uint8_t *)PQgetvalue(r, 0, 0));
	}
	PQclear(r);
	return rv;
}

static int
pg_session_renew(
    dtxd_store *base, uint64_t session, uint32_t lease_ms, bool *lapsed)
{
	pg_store   *s = (pg_store *)base;
	uint8_t     id[8], lease[8];
	const char *vals[2] = {(const char *)id, (const char *)lease};
	int         lens[2] = {8, 8};
	PGresult   *r;
	int         rv = 0;

	put_be64(id, session);
	put_be64(lease, lease_ms);
	if ((r = sess_run(s, ST_RENEW, vals, lens, &rv, "lease")) == NULL) {
		return rv;
	}
	if (PQntuples(r) != 1) {
		rv = DTX_ECLOSED; // ended, or never was
	} else {
		*lapsed = *PQgetvalue(r, 0, 0) != 0;
	}
	PQclear(r);
	return rv;
}

static int
pg_session_end(dtxd_store *base, uint64_t session)
{
	pg_store   *s = (pg_store *)base;
	uint8_t     id[8];
	const char *vals[1] = {(const char *)id};
	int         lens[1] = {8};
	PGresult   *r;
	int         rv;

	put_be64(id, session);
	if ((r = sess_run(s, ST_END, vals, lens, &rv, "session")) != NULL) {
		PQclear(r);
	}
	return rv;
}

static int
pg_takeover(dtxd_store *base, uint64_t session, uint32_t lease_ms,
    uint32_t max, int (*fn)(void *arg, const dtxd_store_unfinished *u),
    void *arg, uint32_t *n)
{
	pg_store   *s = (pg_store *)base;
	uint8_t     id[8], lease[8], lim[8];
	const char *vals[3] = {
	    (const char *)id, (const char *)lease, (const char *)lim};
	int       lens[3] = {8, 8, 8};
	char      gid[DTX_GID_MAX + 1];
	PGresult *r;
	int       rv;

	put_be64(id, session);
	put_be64(lease, lease_ms);
	put_be64(lim, max);
	// One statement, so one transaction: the rows are ours once it
	// commits, and handed on only then.
	if ((r = sess_run(s, ST_TAKEOVER, vals, lens, &rv, "takeover")) ==
	    NULL) {
		return rv;
	}
	for (int i = 0; i < PQntuples(r) && rv == 0; i++) {
		dtxd_store_unfinished u;
		if (!row_unfinished(r, i, gid, &u)) {
			DTXI_WARN("store: took over a malformed row");
			continue;
		}
		(*n)++;
		rv = fn(arg, &u);
	}
	PQclear(r);
	return rv;
}

static int
pg_ask_abort(dtxd_store *base, const char *gid)
{
	pg_store   *s       = (pg_store *)base;
	const char *vals[1] = {gid};
	int         lens[1] = {(int)strlen(gid)};
	PGresult   *r;
	int         rv;

	if ((r = pool_run(s, ST_ASK_ABORT, vals, lens, &rv, "ask abort")) !=
	    NULL) {
		PQclear(r);
	}
	return rv;
}

static int
pg_aborts_asked(dtxd_store *base, uint64_t       session,
    int (*fn)(void *arg, const char *gid), void *arg)
{
	pg_store   *s = (pg_store *)base;
	uint8_t     id[8];
	const char *vals[1] = {(const char *)id};
	int         lens[1] = {8};
	char        gid[DTX_GID_MAX + 1];
	PGresult   *r;
	int         rv;

	put_be64(id, session);
	if ((r = sess_run(s, ST_ABORTS_ASKED, vals, lens, &rv,
	         "aborts asked")) == NULL) {
		return rv;
	}
	for (int i = 0; i < PQntuples(r) && rv == 0; i++) {
		size_t glen = (size_t)PQgetlength(r, i, 0);
		// Binary bool: one byte, 1 while the transaction is
		// unfinished.
		if (glen == 0 || glen > DTX_GID_MAX ||
		    *PQgetvalue(r, i, 1) == 0) {
			continue;
		}
		memcpy(gid, PQgetvalue(r, i, 0), glen);
		gid[glen] = '\0';
		rv        = fn(arg, gid);
	}
	PQclear(r);
	return rv;
}

// ---------------------------------------------------------------------
// Open, close, stats
// ---------------------------------------------------------------------

static void
pg_get_stats(dtxd_store *base, dtxd_store_stats *st)
{
	dtxd_store_queue_get_stats(((pg_store *)base)->queue, st);
}

static bool
pg_ready(dtxd_store *base)
{
	return atomic_load(&((pg_store *)base)->up);
}

static void
pg_free(pg_store *s)
{
	PQfinish(s->wconn);
	PQfinish(s->sconn);
	for (int i = 0; i < s->npool; i++) {
		PQfinish(s->pool[i]);
	}
	free(s->conninfo);
	free(s);
}

static void
pg_close(dtxd_store *base)
{
	pg_store *s = (pg_store *)base;

	dtxd_store_queue_free(s->queue); // drains the writes first
	pthread_mutex_destroy(&s->pool_mtx);
	pg_free(s);
}

// What the write queue and its threads (store_queue.h) call back.
static const dtxd_store_queue_ops pg_queue_ops = {
    .write = pg_write_batch,
    .purge = pg_purge_round,
};

static const dtxd_store_ops pg_ops = {
    .close           = pg_close,
    .write           = pg_write,
    .get_record      = pg_get_record,
    .get_spec        = pg_get_spec,
    .scan_unfinished = pg_scan_unfinished,
    .scan_records    = pg_scan_records,
    .purge           = pg_purge,
    .ingest_finished = pg_ingest_finished,
    .get_stats       = pg_get_stats,
    .ready           = pg_ready,
    .session_open    = pg_session_open,
    .session_renew   = pg_session_renew,
    .session_end     = pg_session_end,
    .takeover        = pg_takeover,
    .ask_abort       = pg_ask_abort,
    .aborts_asked    = pg_aborts_asked,
};

// Opening connects once: whether the database is reachable, and if not
// whether it may become so, is the caller's to act on (dtxd serves "not
// ready" meanwhile and opens again with backoff, main.c). What cannot
// mend fails at once: a connection string libpq cannot parse, credentials
// the server refuses, a schema of another version.
int
dtxd_store_pg_open(
    dtxd_store **sp, const char *conninfo, const dtxd_store_opts *o)
{
	pg_store         *s;
	PGconn           *c      = NULL;
	PGconn           *failed = NULL;
	PQconninfoOption *parsed;
	char             *perr = NULL;
	char              why[512];
	int               rv;

	why[0] = '\0';
	if ((parsed = PQconninfoParse(conninfo, &perr)) == NULL) {
		snprintf(why, sizeof(why),
		    "the connection string is malformed: %.*s",
		    perr != NULL ? (int)strcspn(perr, "\n") : 13,
		    perr != NULL ? perr : "out of memory");
		rv = perr != NULL ? DTX_EINVAL : DTX_ENOMEM;
		PQfreemem(perr);
		goto fail_early;
	}
	PQconninfoFree(parsed);
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		rv = DTX_ENOMEM;
		goto fail_early;
	}
	s->base.ops     = &pg_ops;
	s->on_batch     = o->on_batch;
	s->on_batch_arg = o->on_batch_arg;
	atomic_init(&s->purge_before, -1);
	atomic_init(&s->up, true);
	if ((s->conninfo = strdup(conninfo)) == NULL) {
		free(s);
		rv = DTX_ENOMEM;
		goto fail_early;
	}
	// The first connection creates or checks the schema; it then serves
	// the pool.
	if ((c = pg_connect_or(s, &failed)) == NULL) {
		if (failed == NULL) {
			snprintf(why, sizeof(why), "out of memory");
			rv = DTX_ENOMEM;
		} else {
			rv = pg_open_failure(s, failed, why, sizeof(why));
			PQfinish(failed);
		}
		pg_free(s);
		goto fail_early;
	}
	if ((rv = pg_schema(c, why, sizeof(why))) != 0 ||
	    (rv = pg_open_rv(pg_prepare(c))) != 0) {
		if (why[0] == '\0') {
			snprintf(why, sizeof(why),
			    "cannot prepare dtxd's statements (the "
			    "database's reason is logged above)");
		}
		PQfinish(c);
		pg_free(s);
		goto fail_early;
	}
	DTXI_INFO(
	    "store: connected to PostgreSQL at %s:%s", PQhost(c), PQport(c));
	s->pool[s->npool++] = c;
	if (pthread_mutex_init(&s->pool_mtx, NULL) != 0) {
		pg_free(s);
		return DTX_ENOMEM;
	}
	if ((rv = dtxd_store_queue_alloc(&s->queue, &pg_queue_ops, s, o)) !=
	        0 ||
	    (rv = dtxd_store_queue_start(s->queue)) != 0) {
		pg_close(&s->base);
		return rv;
	}
	*sp = &s->base;
	return 0;

fail_early:
	if (o->why != NULL && o->why_cap > 0) {
		snprintf(o->why, o->why_cap, "%s", why);
	} else if (why[0] != '\0') {
		DTXI_ERROR("store: %s", why);
	}
	return rv;
}
