// SPDX-License-Identifier: MIT
//
// store: dtxd's durable state in RocksDB, the only module that touches it.
// Values are opaque bytes here (the codec's encoded records); the store owns
// the key layout:
//
//   t/<gid>             transaction record (rewritten at each step)
//   b/<gid>/<u32 BE>    branch spec i (written once, at create)
//   u/<gid>             index of unfinished transactions (empty value)
//   e/<u64 BE ms>/<gid> retention index: finished, purge after that time
//
// Writes are asynchronous and group-committed: dtxd_store_write() queues an
// operation; one writer thread drains the queue into a single WriteBatch,
// writes it once (synced if any operation in it asked for sync), then calls
// every operation's done callback in queue order. Reads are synchronous and
// thread-safe. Lock order: store->mtx is a leaf lock.

#ifndef DTXD_STORE_H
#define DTXD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dtxd_store dtxd_store;

typedef struct dtxd_store_opts {
	bool create_if_missing; // default true in dtxd_store_opts_init()
	// Tests: sleep this long inside every synced write, so that concurrent
	// writers pile up and group commit becomes observable. 0 in
	// production.
	uint32_t sync_delay_ms;
} dtxd_store_opts;

void dtxd_store_opts_init(dtxd_store_opts *o);

// Opens (creating if needed) the store in dir and starts its writer thread.
// Errors: DTX_EINVAL, DTX_ELOCKED (another process has dir open: RocksDB's
// LOCK file), DTX_ESTORAGE (with the RocksDB reason logged), DTX_ENOMEM.
int dtxd_store_open(
    dtxd_store **sp, const char *dir, const dtxd_store_opts *o);

// Drains queued writes (their callbacks run), stops the writer, closes the
// database. Accepts NULL.
void dtxd_store_close(dtxd_store *s);

typedef enum dtxd_wop_kind {
	// Put t/<gid> = record, b/<gid>/<i> = specs[i] for i < nspecs, and
	// u/<gid>.
	DTXD_WOP_CREATE = 1,
	// Put t/<gid> = record.
	DTXD_WOP_UPDATE,
	// Put t/<gid> = record, delete u/<gid>, put e/<expire_ms>/<gid>.
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
	uint32_t              nspecs;
	const uint8_t *const *specs; // CREATE: nspecs encoded specs
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

// Reads t/<gid>. On success *val is malloc'd (free with free()). Errors:
// DTX_ENOTFOUND, DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_store_get_record(
    dtxd_store *s, const char *gid, uint8_t **val, size_t *len);

// Reads b/<gid>/<i>; as dtxd_store_get_record.
int dtxd_store_get_spec(
    dtxd_store *s, const char *gid, uint32_t i, uint8_t **val, size_t *len);

// Calls fn for every unfinished transaction's record (in gid order); fn's
// non-zero return stops the scan and is returned. The bytes are valid only
// during the call. Errors: DTX_ESTORAGE.
int dtxd_store_scan_unfinished(dtxd_store *s,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg);

// Calls fn for records whose gid sorts after cursor ("" for the first),
// in gid order, until fn returns non-zero (which stops the scan; a positive
// return is returned, -1 stops with 0). Errors: DTX_ESTORAGE.
int dtxd_store_scan_records(dtxd_store *s, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg);

// Deletes every finished transaction (t/, b/, e/ keys) whose retention ended
// at or before now_ms, in batches; *purged receives the count. Errors:
// DTX_ESTORAGE.
int dtxd_store_purge(dtxd_store *s, int64_t now_ms, uint64_t *purged);

typedef struct dtxd_store_stats {
	uint64_t ops;     // operations written
	uint64_t batches; // WriteBatches written
	uint64_t syncs;   // synced writes (fsyncs asked of RocksDB)
	uint64_t errors;  // failed batches
} dtxd_store_stats;

void dtxd_store_get_stats(dtxd_store *s, dtxd_store_stats *st);

#endif // DTXD_STORE_H
