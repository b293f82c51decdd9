// SPDX-License-Identifier: MIT
//
// store: dtxd's durable state, behind one interface with two backends:
// RocksDB, embedded (store_rocksdb*.c, the default), and PostgreSQL through
// libpq (store_pg.c, for several dtxd nodes on one database). The rest of
// dtxd calls only the functions below; no file but a backend's includes
// its library. store.c checks every argument (the rules are stated here,
// once) and hands the call to the backend the store was opened with.
//
// What every backend keeps. Records and branch specs are opaque bytes here
// (record_codec's encoding); the backend owns where it keeps them. A
// transaction is unfinished from its CREATE until its FINISH, with its
// record (rewritten at each UPDATE) and its branch specs (written once, gone
// at FINISH); then it is finished, its last record kept until its expiry
// and purged after. The unfinished ones are found without reading the
// finished ones (recovery's scan costs what is in flight, not what is
// kept); a finished one is found by its gid (Status, List, a resubmit).
//
// Writes are asynchronous and group-committed: dtxd_store_write() queues an
// operation; the backend writes everything queued at a time as one atomic
// unit (a RocksDB WriteBatch, a PostgreSQL transaction), durable if any
// operation in it asked for sync, then calls every operation's done
// callback in queue order. Reads are synchronous and thread-safe. Expired
// finished transactions are purged by a thread of the store's own (see
// dtxd_store_purge).
//
// Several dtxd nodes on one store (PostgreSQL; see the end of this file).
// Each unfinished transaction has an owner, the session of the node that
// runs it, and an epoch, which grows at every change of owner. Every write
// names the owner and epoch its writer holds, and lands only if the store
// still has them: a write that does not (DTXD_STORE_FENCED) tells its node
// that another one took the transaction over. RocksDB, with one dtxd,
// ignores both.

#ifndef DTXD_STORE_H
#define DTXD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dtx/dtx.h>

typedef struct dtxd_store dtxd_store;

typedef enum dtxd_store_backend {
	DTXD_STORE_ROCKSDB = 0, // where is a directory
	DTXD_STORE_POSTGRES,    // where is a libpq connection string
} dtxd_store_backend;

typedef struct dtxd_store_opts {
	dtxd_store_backend backend; // default DTXD_STORE_ROCKSDB
	bool create_if_missing;     // default true in dtxd_store_opts_init()
	// How often the store's purge thread purges what has expired by the
	// wall clock (dtxd_store_purge); 0: never (a caller purges). Default
	// 1000.
	uint32_t purge_every_ms;
	// The longest retention FINISH operations will ask for (default one
	// day): the gid index is swept of expired entries about this often.
	int64_t retention_ms;
	// Tests: sleep this long inside every synced write, so that concurrent
	// writers pile up and group commit becomes observable. 0 in
	// production.
	uint32_t sync_delay_ms;
	// Called on the writer thread after each batch with its number of
	// operations, whether it was synced, how long the write took (us) and
	// its result; must not block. NULL: none. (dtxd's metrics.)
	void (*on_batch)(void *arg, uint64_t n, bool sync, int64_t us, int rv);
	void *on_batch_arg;
	// Where dtxd_store_open writes, when it fails, why in words for the
	// user (PostgreSQL: the server's or libpq's reason, never a
	// password); NULL: the reason is logged instead. A backend with
	// nothing to add to its error code leaves it empty.
	char  *why;
	size_t why_cap;
} dtxd_store_opts;

void dtxd_store_opts_init(dtxd_store_opts *o);

// A write that fails (a full disk) breaks the store until it is repaired;
// the RocksDB backend reopens itself once the disk has room again (see
// store_rocksdb.c); meanwhile writes fail and reads go on.
//
// Opens (creating if needed) the store of backend o->backend at where (see
// dtxd_store_backend) and starts its writer and purge threads. Errors:
// DTX_EINVAL (also a malformed PostgreSQL connection string, or settings
// libpq refuses), DTX_ELOCKED (RocksDB: another process has the directory
// open), DTX_EUNREACHABLE (PostgreSQL: the database cannot be reached now,
// or does not take connections yet: opening again later may succeed; the
// only error that may), DTX_ESTORAGE (with the reason: also a store
// written by an earlier dtxd in another layout, which is left untouched,
// or a database that refuses dtxd's credentials), DTX_ENOMEM.
int dtxd_store_open(
    dtxd_store **sp, const char *where, const dtxd_store_opts *o);

// Stops the purge thread, drains queued writes (their callbacks run), stops
// the writer, closes the database. Accepts NULL.
void dtxd_store_close(dtxd_store *s);

typedef enum dtxd_wop_kind {
	// Put the record and the specs specs[0..nspecs) of an unfinished
	// transaction.
	DTXD_WOP_CREATE = 1,
	// Put the record of an unfinished transaction.
	DTXD_WOP_UPDATE,
	// Move the transaction to the finished ones with this last record,
	// kept until expire_ms.
	DTXD_WOP_FINISH,
} dtxd_wop_kind;

// What done gets for a write that found its transaction owned by another
// session or at another epoch: nothing of that operation was written (the
// others of its batch were).
#define DTXD_STORE_FENCED DTX_ESTATE

// One write. The caller fills it and keeps it (and the bytes it points to)
// alive until done runs. done runs on the store's writer thread with rv 0;
// DTXD_STORE_FENCED (see above); DTX_EEXIST (CREATE, PostgreSQL only: the
// gid is another session's, or finished; nothing written. RocksDB, under
// one dtxd that looks before it creates, puts the create as it is);
// DTX_ESTORAGE or DTX_ENOSPC (the batch failed; nothing of it was
// written). A backend that loses its connection retries the batch itself
// until it lands or the store closes, so a database restart delays done
// rather than failing it. done must not block and must not call
// dtxd_store_close().
typedef struct dtxd_wop {
	dtxd_wop_kind         kind;
	const char           *gid;
	const uint8_t        *record;
	size_t                record_len;
	uint32_t              nspecs; // CREATE: at most DTX_BRANCHES_MAX
	const uint8_t *const *specs;  // CREATE: nspecs encoded specs
	const size_t         *spec_lens;
	int64_t               expire_ms; // FINISH
	// The session and epoch the writer holds (CREATE: the new owner;
	// its epoch is 1).
	uint64_t owner;
	uint64_t epoch;
	bool     sync;
	void (*done)(void *arg, int rv);
	void            *arg;
	struct dtxd_wop *next; // the store's queue link
} dtxd_wop;

// Queues op. Returns 0 (done will run exactly once), DTX_EINVAL, or
// DTX_ECLOSED (the store is closing; done will not run). A valid op has a
// done callback and a valid gid (1..DTX_GID_MAX printable ASCII bytes, so
// never a NUL); its record may be empty; CREATE has at most
// DTX_BRANCHES_MAX specs, each at most UINT32_MAX bytes; FINISH has
// expire_ms >= 0.
int dtxd_store_write(dtxd_store *s, dtxd_wop *op);

// Reads the record of gid: the unfinished one, else the finished one unless
// it has been purged. On success *val is malloc'd (free with free()).
// Errors: DTX_ENOTFOUND, DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_store_get_record(
    dtxd_store *s, const char *gid, uint8_t **val, size_t *len);

// Reads branch spec i of an unfinished transaction; as
// dtxd_store_get_record (specs go when the transaction finishes).
int dtxd_store_get_spec(
    dtxd_store *s, const char *gid, uint32_t i, uint8_t **val, size_t *len);

// One unfinished transaction as a scan sees it: its record and the specs
// written at create (n is 0 when they are missing or damaged). The bytes
// are valid only during the callback.
typedef struct dtxd_store_unfinished {
	const char    *gid;
	uint64_t       owner; // 0 in RocksDB
	uint64_t       epoch; // 0 in RocksDB
	const uint8_t *record;
	size_t         record_len;
	uint32_t       nspecs;
	const uint8_t *specs[DTX_BRANCHES_MAX];
	size_t         spec_lens[DTX_BRANCHES_MAX];
} dtxd_store_unfinished;

// Calls fn for every unfinished transaction (in gid order), reading
// records and specs in one pass; fn's non-zero return stops the scan and is
// returned. Errors: DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_store_scan_unfinished(dtxd_store *s,
    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg);

// Calls fn for the records of every transaction, unfinished or finished
// and not purged, whose gid sorts after cursor ("" for the first), in gid
// order, until fn returns non-zero (which stops the scan; a positive return
// is returned, -1 stops with 0). The bytes are valid only during the call.
// Errors: DTX_EINVAL, DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_store_scan_records(dtxd_store *s, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg);

// Purges every finished transaction whose retention ended at or before
// now_ms. From this call on, reads and scans no longer see them; *purged
// receives how many records were removed at once (RocksDB: whole files;
// the rest go as compaction reaches them, counted in the stats). It never
// holds up writes for long. Thread-safe; the purge thread calls it with
// the wall clock. Errors: DTX_EINVAL, DTX_ESTORAGE.
int dtxd_store_purge(dtxd_store *s, int64_t now_ms, uint64_t *purged);

// One finished transaction for dtxd_store_ingest_finished.
typedef struct dtxd_store_finished {
	const char    *gid;
	const uint8_t *record;
	size_t         record_len;
	int64_t        expire_ms;
} dtxd_store_finished;

// Bulk load (benchmarks and tests): adds n finished transactions, given in
// increasing gid order and non-decreasing expiry order, as FINISH would
// leave them, at once and durably (RocksDB: as whole table files, not
// through the log). Only for a store no transaction is using. Errors:
// DTX_EINVAL (also out of order), DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_store_ingest_finished(
    dtxd_store *s, const dtxd_store_finished *f, size_t n);

// Writes everything buffered in memory to disk and waits until the
// backend's background work has settled (RocksDB: memtables, compactions).
// Errors: DTX_ESTORAGE.
int dtxd_store_flush(dtxd_store *s);

// Flushes, then reclaims the space of everything purged (tests; RocksDB:
// a full compaction). Errors: DTX_ESTORAGE.
int dtxd_store_compact(dtxd_store *s);

typedef struct dtxd_store_stats {
	uint64_t ops;     // operations written
	uint64_t batches; // batches written (PostgreSQL: its commits)
	uint64_t syncs;   // synced writes (durable commits asked for)
	uint64_t fenced;  // operations refused: another owner or epoch
	uint64_t errors;  // failed batches
	uint64_t purged;  // finished records removed from disk so far
} dtxd_store_stats;

void dtxd_store_get_stats(dtxd_store *s, dtxd_store_stats *st);

// True while the store can take writes (PostgreSQL: its writer's last
// attempt reached the database). RocksDB: always. Thread-safe.
bool dtxd_store_ready(dtxd_store *s);

// ---------------------------------------------------------------------
// Several nodes on one store (PostgreSQL only: RocksDB returns
// DTX_EUNSUPPORTED). A node opens a session, which holds a lease renewed
// on the database's clock; the transactions of a session whose lease ran
// out, or which ended, are taken over by the others. Call these from one
// thread (they share one connection).
// ---------------------------------------------------------------------

// Opens a new session for the node called name (url: where it listens, for
// operators), with a lease of lease_ms from now by the database's clock,
// and ends every earlier session of that name (a node that restarts takes
// over its own unfinished transactions at once). *session receives the
// session's id (never 0). Errors: DTX_EINVAL, DTX_ESTORAGE.
int dtxd_store_session_open(dtxd_store *s, const char *name, const char *url,
    uint32_t lease_ms, uint64_t *session);

// Renews the session's lease to lease_ms from now by the database's clock.
// *lapsed is set when the lease had run out before this renewal (others may
// have taken some of its transactions over meanwhile). Errors: DTX_ECLOSED
// (the session was ended: another node of its name started), DTX_ESTORAGE
// (the database cannot be reached; the lease may run out).
int dtxd_store_session_renew(
    dtxd_store *s, uint64_t session, uint32_t lease_ms, bool *lapsed);

// Ends the session: its unfinished transactions are taken over by the
// others at once, as its lease had run out (a node that stops cleanly).
// Errors: DTX_ESTORAGE.
int dtxd_store_session_end(dtxd_store *s, uint64_t session);

// Takes over at most max unfinished transactions of sessions that ended or
// whose lease ran out (those of a session ended by this one first), for
// session: each gets this owner at its epoch plus one, in one database
// transaction, and is then handed to fn with its new owner and epoch, in
// gid order (the bytes are valid only during the call). A lease that ran
// out within lease_ms of the database's start does not count: after a
// database restart every node gets time to renew. *n receives how many
// were taken. Errors: DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_store_takeover(dtxd_store *s, uint64_t session, uint32_t lease_ms,
    uint32_t max, int (*fn)(void *arg, const dtxd_store_unfinished *u),
    void *arg, uint32_t *n);

// An abort asked of a node that does not own the transaction is recorded
// for its owner, which alone may write the abort and send ABORT calls (no
// phase-two call leaves before its own fenced decision write): the owner
// finds it with dtxd_store_aborts_asked and aborts as if asked itself.
//
// Records that an abort of gid was asked, when gid is unfinished (a
// finished one, or one asked already, is left alone: the caller reads the
// record for what became of it). Thread-safe (not a session call).
// Errors: DTX_EINVAL, DTX_ESTORAGE.
int dtxd_store_ask_abort(dtxd_store *s, const char *gid);

// Hands fn each gid owned by session whose abort was asked, and forgets
// those asks (and the asks of transactions that finished meanwhile): each
// is handed once; one that fn fails to act on is not asked again. A session
// call. Errors: DTX_EINVAL, DTX_ESTORAGE, or fn's.
int dtxd_store_aborts_asked(dtxd_store *s, uint64_t session,
    int (*fn)(void *arg, const char *gid), void    *arg);

#endif // DTXD_STORE_H
