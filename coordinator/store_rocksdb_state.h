// SPDX-License-Identifier: MIT
//
// store_rocksdb_state: what the RocksDB backend's files share and nobody
// else sees (as loopstate.h is for the loop's modules): the backend's
// state, its key layout and the functions one file calls in another. The
// backend, by job: store_rocksdb_state.c maps errors and reads the
// counters; store_rocksdb.c opens and closes the database and holds
// the options; store_rocksdb_write.c writes each batch that the write
// queue (store_queue.c, shared with PostgreSQL) group-commits, and does
// the bulk load, flush and compaction; store_rocksdb_read.c answers
// gets and scans; store_rocksdb_purge.c drops what has expired. Its entry
// point, dtxd_store_rocksdb_open(), is declared in store_backend.h.
//
// The layout, three column families shaped for how each is written:
//
//   unfinished  <gid>               record (rewritten at each step)
//               <gid> NUL           the branch specs (written once)
//   finished    <u64 BE expire_ms><gid>   record (written once)
//   gids        <gid>               <u64 BE expire_ms> (finished, by gid)
//
// The default family holds only the layout's version.
//
// Why three column families. With every kind of
// key in one family, each memtable flush carried new keys of every kind,
// spread over the whole key space, so every level-0 compaction overlapped
// (and rewrote) all of level 1; write amplification and CPU grew with the
// data kept, and a 10-minute run fell from 11k to 2.7k tx/s. Now:
// - "unfinished" holds only transactions in flight: a few MiB that new
//   transactions enter and finished ones leave. Its deletes are the only
//   tombstones dtxd writes, and they meet their puts within a level or two
//   of a small tree, where compaction drops both.
// - "finished" is keyed by expiry time first, so it is written only at its
//   end (finish times grow) and purged only from its start: a purge deletes
//   whole files of expired records (DeleteFilesInRange: no tombstone, no
//   rewrite, no read), and a compaction filter drops the expired rest of a
//   file when compaction reaches it. Nothing below level 0 overlaps a new
//   file, so data moves down the levels without being rewritten.
// - "gids" maps a finished gid to its expiry (8 bytes), so Status, List and
//   a resubmit find it. Gids lead with their creation time, so it too grows
//   at its end; its compaction filter drops expired entries, and periodic
//   compaction (one retention period) makes compaction reach old files.
// The previous purge walked a retention index and deleted four keys per
// transaction from the loop thread, in one call: 20-60k records stalled
// every transaction for 5-10 s, and at 10k tx/s it never caught up.
//
// A full disk. After a failed write (no space left, or any I/O error)
// RocksDB refuses every later write until it is reopened (its C API has no
// resume), so dtxd used to stay read-only until restarted. Now the writer
// marks the store broken and, once the file system has room again
// (STORE_REOPEN_FREE_BYTES free), closes and reopens the database by
// itself, then goes on with what is queued. Nothing accepted is lost: the
// failed batch was not written (its callers were told, and dtxd's loop
// writes its records again a second later), and RocksDB's log recovery on
// open keeps every write it had acknowledged. While the disk is still
// full, the old handle stays open, so Status and List keep reading.
//
// Lock order: the write queue's mutex (store_queue.h) is a leaf lock; no
// RocksDB call and no callback runs under it. store->dblock (a rwlock)
// guards the database and family handles: every read, scan, purge, flush
// and ingest holds it for reading while it uses them (the ops take it
// around their body: dtxd_rdb_enter/leave), and only the writer takes it
// for writing, to reopen. It is never taken under the queue's mutex.

#ifndef DTXD_STORE_ROCKSDB_STATE_H
#define DTXD_STORE_ROCKSDB_STATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "store.h"
#include "store_backend.h"
#include "store_queue.h"

// The longest key is a finished one: 8 bytes of expiry, then the gid.
#define STORE_KEY_MAX (8 + DTX_GID_MAX + 1)

enum { CF_DEFAULT, CF_UNFINISHED, CF_FINISHED, CF_GIDS, CF_COUNT };

typedef struct rdb_store {
	dtxd_store         base; // first: a dtxd_store * is a rdb_store *
	rocksdb_t         *db;
	rocksdb_options_t *opts;
	rocksdb_options_t *cfopts[CF_COUNT];
	rocksdb_column_family_handle_t *cf[CF_COUNT];
	rocksdb_compactionfilter_t     *filter_finished;
	rocksdb_compactionfilter_t     *filter_gids;
	rocksdb_cache_t                *cache;
	rocksdb_writeoptions_t         *wo_sync;
	rocksdb_writeoptions_t         *wo_nosync;
	rocksdb_readoptions_t          *ro;
	rocksdb_writebatch_t           *batch; // the writer thread's own
	dtxd_store_queue               *queue; // the writes, the threads
	void (*on_batch)(void *arg, uint64_t n, bool sync, int64_t us, int rv);
	void            *on_batch_arg;
	pthread_rwlock_t dblock; // see the top of the file
	bool             broken; // the writer's: a write failed, reopen
	int64_t          next_usage_log; // the purge thread's (mono ms)
	char            *dir;

	// Finished records whose expiry is at or before this are purged:
	// reads skip them and the compaction filters drop them.
	_Atomic int64_t  purge_before;
	_Atomic uint64_t filtered; // dropped by the compaction filter
} rdb_store;

// Maps a RocksDB error string to our code, logs it with what we were doing,
// and frees it: after this call nobody may touch err again. at_open: a
// held LOCK file is DTX_ELOCKED.
int dtxd_rdb_error(char *err, const char *what, bool at_open);

// A family's name, as RocksDB knows it.
const char *dtxd_rdb_cf_name(int cf);

// The database handles for a read, scan, purge, flush or ingest: false
// (nothing held) when the store is between a failed reopen and the next;
// the op then fails with DTX_ESTORAGE. The writer is the only one that
// reopens, so writes need no lock.
bool dtxd_rdb_enter(rdb_store *s);
void dtxd_rdb_leave(rdb_store *s);

// store_rocksdb_write.c: the write queue's callbacks (store_queue.h: the
// batch's write, and the reopen of a broken store) and the write-side
// operations.
#define STORE_REOPEN_EVERY_MS 1000 // while idle, a broken store's reopen
int dtxd_rdb_write_batch(
    void *arg, dtxd_wop *list, uint32_t n, bool sync, int *res);
bool dtxd_rdb_broken(void *arg);
void dtxd_rdb_reopen(void *arg);
int  dtxd_rdb_write(dtxd_store *base, dtxd_wop *op);
int  dtxd_rdb_ingest_finished(
     dtxd_store *base, const dtxd_store_finished *f, size_t n);
int dtxd_rdb_flush(dtxd_store *base);
int dtxd_rdb_compact(dtxd_store *base);

// store_rocksdb_read.c: from any thread.
int dtxd_rdb_get_record(
    dtxd_store *base, const char *gid, uint8_t **val, size_t *len);
int dtxd_rdb_get_spec(
    dtxd_store *base, const char *gid, uint32_t i, uint8_t **val, size_t *len);
int dtxd_rdb_scan_unfinished(dtxd_store *base,
    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg);
int dtxd_rdb_scan_records(dtxd_store *base, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg);

// store_rocksdb_purge.c: the compaction filters (made before the open, as
// the families' options name them), the purge thread's round (the queue's
// purge callback), the purge.
int  dtxd_rdb_filters_create(rdb_store *s);
void dtxd_rdb_purge_round(void *arg);
int  dtxd_rdb_purge(dtxd_store *base, int64_t now_ms, uint64_t *purgedp);

// The counters, with what the compaction filters dropped counted as purged.
void dtxd_rdb_get_stats(dtxd_store *base, dtxd_store_stats *st);

static inline void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t
get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

static inline void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static inline uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++) {
		v = (v << 8) | p[i];
	}
	return v;
}

// Key builders. Each writes into buf (STORE_KEY_MAX bytes) and returns the
// key's length; the gid has been validated, so the key always fits.
static inline size_t
key_specs(char *buf, const char *gid, size_t glen)
{
	memcpy(buf, gid, glen);
	buf[glen] = '\0';
	return glen + 1;
}

static inline size_t
key_finished(char *buf, int64_t expire_ms, const char *gid, size_t glen)
{
	put_be64((uint8_t *)buf, (uint64_t)expire_ms);
	memcpy(buf + 8, gid, glen);
	return 8 + glen;
}

// True when a finished record that expires at expire_ms has been purged.
static inline bool
purged(rdb_store *s, uint64_t expire_ms)
{
	int64_t before =
	    atomic_load_explicit(&s->purge_before, memory_order_relaxed);

	return before >= 0 && expire_ms <= (uint64_t)before;
}

#endif // DTXD_STORE_ROCKSDB_STATE_H
