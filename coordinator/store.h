// SPDX-License-Identifier: MIT
//
// store: dtxd's durable state in RocksDB, the only module that touches it.
// Values are opaque bytes here (the codec's encoded records); the store owns
// the layout, three column families shaped for how each is written:
//
//   unfinished  <gid>               record (rewritten at each step)
//               <gid> NUL           the branch specs (written once)
//   finished    <u64 BE expire_ms><gid>   record (written once)
//   gids        <gid>               <u64 BE expire_ms> (finished, by gid)
//
// An unfinished transaction lives in a small family that new ones enter and
// finished ones leave; a finished one is appended, in expiry order, to a
// family that only grows at its end and is purged from its other end, and
// indexed by gid for Status, List and resubmits. The default family holds
// only the layout's version. See store.c for why.
//
// Writes are asynchronous and group-committed: dtxd_store_write() queues an
// operation; one writer thread drains the queue into a single WriteBatch,
// writes it once (synced if any operation in it asked for sync), then calls
// every operation's done callback in queue order. Reads are synchronous and
// thread-safe. Purging runs on a thread of the store's own (see
// dtxd_store_purge). Lock order: store->mtx is a leaf lock.

#ifndef DTXD_STORE_H
#define DTXD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dtx/dtx.h>

typedef struct dtxd_store dtxd_store;

typedef struct dtxd_store_opts {
	bool create_if_missing; // default true in dtxd_store_opts_init()
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
} dtxd_store_opts;

void dtxd_store_opts_init(dtxd_store_opts *o);

// Opens (creating if needed) the store in dir and starts its writer and
// purge threads. Errors: DTX_EINVAL, DTX_ELOCKED (another process has dir
// open: RocksDB's LOCK file), DTX_ESTORAGE (with the reason logged: also a
// directory written by an earlier dtxd in another layout, which is left
// untouched), DTX_ENOMEM.
int dtxd_store_open(
    dtxd_store **sp, const char *dir, const dtxd_store_opts *o);

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

// One write. The caller fills it and keeps it (and the bytes it points to)
// alive until done runs. done runs on the store's writer thread with rv 0,
// DTX_ESTORAGE or DTX_ENOSPC (the batch failed; nothing of it was written);
// it must not block and must not call dtxd_store_close().
typedef struct dtxd_wop {
	dtxd_wop_kind         kind;
	const char           *gid;
	const uint8_t        *record;
	size_t                record_len;
	uint32_t              nspecs; // CREATE: at most DTX_BRANCHES_MAX
	const uint8_t *const *specs;  // CREATE: nspecs encoded specs
	const size_t         *spec_lens;
	int64_t               expire_ms; // FINISH
	bool                  sync;
	void (*done)(void *arg, int rv);
	void            *arg;
	struct dtxd_wop *next; // the store's queue link
} dtxd_wop;

// Queues op. Returns 0 (done will run exactly once), DTX_EINVAL, or
// DTX_ECLOSED (the store is closing; done will not run).
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
// now_ms. From this call on, reads and scans no longer see them; the space
// of whole files of them is freed at once (*purged receives how many
// records those held), the rest as compaction reaches it (counted in the
// stats). Its cost does not grow with what is purged, and it never holds up
// writes. Thread-safe; the purge thread calls it with the wall clock.
// Errors: DTX_EINVAL, DTX_ESTORAGE.
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
// leave them, at once and durably (as whole table files, not through the
// log). Only for a store no transaction is using. Errors: DTX_EINVAL
// (also out of order), DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_store_ingest_finished(
    dtxd_store *s, const dtxd_store_finished *f, size_t n);

// Writes every memtable to disk and waits until RocksDB's background
// compactions have settled. Errors: DTX_ESTORAGE.
int dtxd_store_flush(dtxd_store *s);

// Flushes and compacts every column family entirely, so that compaction
// drops everything purged (tests). Errors: DTX_ESTORAGE.
int dtxd_store_compact(dtxd_store *s);

typedef struct dtxd_store_stats {
	uint64_t ops;     // operations written
	uint64_t batches; // WriteBatches written
	uint64_t syncs;   // synced writes (fsyncs asked of RocksDB)
	uint64_t errors;  // failed batches
	uint64_t purged;  // finished records removed from disk so far
} dtxd_store_stats;

void dtxd_store_get_stats(dtxd_store *s, dtxd_store_stats *st);

#endif // DTXD_STORE_H
