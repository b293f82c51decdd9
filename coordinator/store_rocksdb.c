// SPDX-License-Identifier: MIT
//
// store_rocksdb: the RocksDB backend of the store (store.h), through
// RocksDB's C API, and the only file of dtxd that touches RocksDB; the
// default, embedded, for one dtxd. Writes are group-committed: callers
// queue operations, and one writer thread turns everything queued at a time
// into one WriteBatch and one (possibly synced) write, so that many
// concurrent transactions share one fsync. Reads go straight to RocksDB,
// which is safe from any thread. A purge thread drops what has expired.
// RocksDB's error strings are logged, freed and mapped to DTX_ELOCKED,
// DTX_ENOSPC or DTX_ESTORAGE here, at the boundary, so no other module ever
// sees them.
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
// Lock order: store->mtx is a leaf lock. It guards only the queue, the
// closing flags and the stats; no RocksDB call and no callback runs under it.
// store->dblock (a rwlock) guards the database and family handles: every
// read, scan, purge, flush and ingest holds it for reading while it uses
// them (the ops take it around an rdb_* body: the held_* functions), and only
// the writer takes it for writing, to reopen. It is never taken under mtx.

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <time.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "log.h"
#include "store.h"
#include "store_backend.h"

// Memory, for a daemon whose whole RSS should stay within 64 MiB at 10,000
// transactions in flight and flat in a steady state: memtables of all
// families together at most STORE_DB_WRITE_BUFFER_BYTES (RocksDB flushes
// the largest when they reach it), a block cache that also holds the index
// and filter blocks of every file (by default they stay in memory outside
// the cache, and RSS grew with the data kept: 72 -> 157 MiB in 3 minutes
// at 10,000 in flight), and bloom filters where a lookup may miss. Both
// pools fill in the first minutes of a run and then hold (once a minute the
// purge thread logs how full they are). Halving them (24 -> 12 MiB of
// memtables, 8 -> 4 MiB of cache) cost no throughput or CPU measurable in
// 90 s runs at --retention 60 (5.5k and 6.0k tx/s at 118 and 106 us/tx,
// against 5.2k and 5.7k at 117 and 114 us/tx) and 8 MiB of peak RSS.
#define STORE_BLOCK_CACHE_BYTES     (4u * 1024u * 1024u)
#define STORE_DB_WRITE_BUFFER_BYTES (12u * 1024u * 1024u)
#define STORE_MAX_WRITE_BUFFERS     2
#define STORE_BLOOM_BITS_PER_KEY    10.0
#define STORE_PARALLELISM           2
#define STORE_KEEP_LOG_FILES        3
#define STORE_MAX_LOG_FILE_BYTES    (1024u * 1024u)
// The WAL is shared by the families; a family written slowly (gids) would
// otherwise keep old WAL files alive until its memtable filled, and all of
// them are read again when dtxd starts after a crash. Past this size
// RocksDB flushes the families that hold the oldest one.
#define STORE_MAX_WAL_BYTES (24u * 1024u * 1024u)

// RocksDB's own LOG file at WARN (its InfoLogLevel 2) rather than INFO.
// Beside saving I/O, this matters on a full disk: Debian's librocksdb is
// built with assertions on, and a LOG line written after an earlier LOG
// write failed aborts the process (WritableFileWriter's
// "sync_without_flush_called_" assertion). At INFO the WAL failure itself
// produces enough LOG lines to get there; at WARN a failed write is
// reported to its caller instead.
#define STORE_INFO_LOG_LEVEL 2

#define STORE_USAGE_LOG_MS 60000

// The layout's version, in the default family; an earlier dtxd kept every
// key in the default family and wrote no version.
#define STORE_FORMAT_KEY   "format"
#define STORE_FORMAT_VALUE "dtxd-store 2"

// The longest key is a finished one: 8 bytes of expiry, then the gid.
#define STORE_KEY_MAX (8 + DTX_GID_MAX + 1)

enum { CF_DEFAULT, CF_UNFINISHED, CF_FINISHED, CF_GIDS, CF_COUNT };

// How each family is written, and the shape chosen for it. At 13k tx/s the
// unfinished family takes about 13 MiB/s of puts and deletes that mostly
// cancel in the memtable, the finished one 3-4 MiB/s, the gid index under
// 1 MiB/s. Small target files keep each compaction short and make the unit
// a purge frees small (an 8 MiB file of records spans 2-3 s of expiry);
// small level targets keep the unfinished tree at two levels, so its
// tombstones reach the bottom, and are dropped, within seconds.
typedef struct cf_shape {
	const char *name;
	size_t      write_buffer;
	uint64_t    target_file;
	uint64_t    level_base;
	bool        bloom; // lookups may miss (a new gid)
} cf_shape;

// A broken store is reopened only when its file system has this much room:
// the log's preallocation and a memtable flushed at open, with some to
// spare. With less, opening could fail and leave nothing to read from.
// Tried every STORE_REOPEN_EVERY_MS meanwhile.
#define STORE_REOPEN_FREE_BYTES (16u * 1024u * 1024u)
#define STORE_REOPEN_EVERY_MS   1000

static const cf_shape cf_shapes[CF_COUNT] = {
    [CF_DEFAULT]    = {"default", 1u << 20, 1u << 20, 4u << 20, false},
    [CF_UNFINISHED] = {"unfinished", 4u << 20, 4u << 20, 16u << 20, true},
    [CF_FINISHED]   = {"finished", 4u << 20, 8u << 20, 32u << 20, false},
    [CF_GIDS]       = {"gids", 2u << 20, 4u << 20, 16u << 20, true},
};

typedef struct rdb_store {
	dtxd_store         base; // first: a rdb_store * is a rdb_store *
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
	uint32_t                        sync_delay_ms;
	void (*on_batch)(void *arg, uint64_t n, bool sync, int64_t us, int rv);
	void            *on_batch_arg;
	pthread_rwlock_t dblock; // see the top of the file
	bool             broken; // the writer's: a write failed, reopen
	uint32_t         purge_every_ms;
	char            *dir;

	// Finished records whose expiry is at or before this are purged:
	// reads skip them and the compaction filters drop them.
	_Atomic int64_t  purge_before;
	_Atomic uint64_t filtered; // dropped by the compaction filter

	pthread_mutex_t  mtx;
	pthread_cond_t   cv;  // the writer's queue
	pthread_cond_t   pcv; // the purge thread's sleep
	dtxd_wop        *head;
	dtxd_wop        *tail;
	bool             closing;
	bool             purge_stop;
	dtxd_store_stats stats;
	pthread_t        writer;
	pthread_t        purger;
	bool             writer_started;
	bool             purger_started;
} rdb_store;

static int  held_purge(dtxd_store *base, int64_t now_ms, uint64_t *purgedp);
static void rdb_get_stats(dtxd_store *base, dtxd_store_stats *st);

// Maps a RocksDB error string to our code, logs it with what we were doing,
// and frees it: after this call nobody may touch err again.
static int
store_error(char *err, const char *what, bool at_open)
{
	int rv = DTX_ESTORAGE;

	if (strstr(err, "No space left on device") != NULL) {
		rv = DTX_ENOSPC;
	} else if (at_open) {
		// RocksDB reports the LOCK file held by another process as an
		// IO error whose text names the lock ("While lock file"); the
		// wording has changed across versions, so match loosely.
		// "block" (as in a corrupt block) must not count, so the
		// word has to start there.
		for (const char *p = err; *p != '\0'; p++) {
			if (strncasecmp(p, "lock", 4) == 0 &&
			    (p == err || !isalpha((unsigned char)p[-1]))) {
				rv = DTX_ELOCKED;
				break;
			}
		}
	}
	DTXI_ERROR("store: %s: %s", what, err);
	rocksdb_free(err);
	return rv;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
}

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

// Key builders. Each writes into buf (STORE_KEY_MAX bytes) and returns the
// key's length; the gid has been validated, so the key always fits.
static size_t
key_specs(char *buf, const char *gid, size_t glen)
{
	memcpy(buf, gid, glen);
	buf[glen] = '\0';
	return glen + 1;
}

static size_t
key_finished(char *buf, int64_t expire_ms, const char *gid, size_t glen)
{
	put_be64((uint8_t *)buf, (uint64_t)expire_ms);
	memcpy(buf + 8, gid, glen);
	return 8 + glen;
}

// True when a finished record that expires at expire_ms has been purged.
static bool
purged(rdb_store *s, uint64_t expire_ms)
{
	int64_t before =
	    atomic_load_explicit(&s->purge_before, memory_order_relaxed);

	return before >= 0 && expire_ms <= (uint64_t)before;
}

// The compaction filters run on RocksDB's compaction threads; they read
// only the atomic purge time. The finished family's keys start with the
// expiry, the gid index's values are the expiry.
static unsigned char
filter_finished(void *arg, int level, const char *key, size_t klen,
    const char *val, size_t vlen, char **nval, size_t *nlen,
    unsigned char *changed)
{
	rdb_store *s = arg;

	(void)level;
	(void)val;
	(void)vlen;
	(void)nval;
	(void)nlen;
	*changed = 0;
	if (klen >= 8 && purged(s, get_be64((const uint8_t *)key))) {
		atomic_fetch_add_explicit(
		    &s->filtered, 1, memory_order_relaxed);
		return 1;
	}
	return 0;
}

static unsigned char
filter_gids(void *arg, int level, const char *key, size_t klen,
    const char *val, size_t vlen, char **nval, size_t *nlen,
    unsigned char *changed)
{
	(void)level;
	(void)key;
	(void)klen;
	(void)nval;
	(void)nlen;
	*changed = 0;
	return vlen == 8 && purged(arg, get_be64((const uint8_t *)val));
}

static const char *
filter_finished_name(void *arg)
{
	(void)arg;
	return "dtxd.finished-expiry";
}

static const char *
filter_gids_name(void *arg)
{
	(void)arg;
	return "dtxd.gids-expiry";
}

static void
filter_state_free(void *arg)
{
	(void)arg; // the store outlives its filters and frees itself
}

static void
sleep_ms(uint32_t ms)
{
	struct timespec ts;

	ts.tv_sec  = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static int64_t
mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// Adds one operation's puts and deletes to the batch. Operations were
// validated when queued, so this cannot fail. The specs are framed as
// (u32 BE length, bytes) pairs in one value, gathered by putv without a
// copy: one key to write at create and one to delete at finish, whatever
// the number of branches.
static void
batch_add(rdb_store *s, rocksdb_writebatch_t *b, const dtxd_wop *op)
{
	char        key[STORE_KEY_MAX];
	uint8_t     exp[8];
	size_t      glen = strlen(op->gid);
	size_t      klen;
	const char *kp[1];
	size_t      kl[1];

	switch (op->kind) {
	case DTXD_WOP_CREATE: {
		uint8_t     hdr[DTX_BRANCHES_MAX][4];
		const char *vp[2 * DTX_BRANCHES_MAX];
		size_t      vl[2 * DTX_BRANCHES_MAX];

		rocksdb_writebatch_put_cf(b, s->cf[CF_UNFINISHED], op->gid,
		    glen, (const char *)op->record, op->record_len);
		for (uint32_t i = 0; i < op->nspecs; i++) {
			put_be32(hdr[i], (uint32_t)op->spec_lens[i]);
			vp[2 * i]     = (const char *)hdr[i];
			vl[2 * i]     = 4;
			vp[2 * i + 1] = (const char *)op->specs[i];
			vl[2 * i + 1] = op->spec_lens[i];
		}
		kp[0] = key;
		kl[0] = key_specs(key, op->gid, glen);
		rocksdb_writebatch_putv_cf(b, s->cf[CF_UNFINISHED], 1, kp, kl,
		    (int)(2 * op->nspecs), vp, vl);
		break;
	}
	case DTXD_WOP_UPDATE:
		rocksdb_writebatch_put_cf(b, s->cf[CF_UNFINISHED], op->gid,
		    glen, (const char *)op->record, op->record_len);
		break;
	case DTXD_WOP_FINISH:
		klen = key_finished(key, op->expire_ms, op->gid, glen);
		rocksdb_writebatch_put_cf(b, s->cf[CF_FINISHED], key, klen,
		    (const char *)op->record, op->record_len);
		put_be64(exp, (uint64_t)op->expire_ms);
		rocksdb_writebatch_put_cf(b, s->cf[CF_GIDS], op->gid, glen,
		    (const char *)exp, sizeof(exp));
		rocksdb_writebatch_delete_cf(
		    b, s->cf[CF_UNFINISHED], op->gid, glen);
		klen = key_specs(key, op->gid, glen);
		rocksdb_writebatch_delete_cf(
		    b, s->cf[CF_UNFINISHED], key, klen);
		break;
	}
}

// The database handles for a read, scan, purge, flush or ingest: false
// (nothing held) when the store is between a failed reopen and the next.
static bool
db_enter(rdb_store *s)
{
	pthread_rwlock_rdlock(&s->dblock);
	if (s->db == NULL) {
		pthread_rwlock_unlock(&s->dblock);
		return false;
	}
	return true;
}

static void
db_leave(rdb_store *s)
{
	pthread_rwlock_unlock(&s->dblock);
}

static bool
has_room(const char *dir)
{
	struct statvfs v;

	return statvfs(dir, &v) == 0 &&
	    (uint64_t)v.f_bavail * v.f_frsize >= STORE_REOPEN_FREE_BYTES;
}

// The writer's repair of a broken store (see the top of the file): once
// there is room, the database is closed and opened again with the same
// options and families. A failed open leaves no handle (reads fail with
// DTX_ESTORAGE) and is tried again.
static void
store_reopen(rdb_store *s)
{
	const char *names[CF_COUNT];
	char       *err = NULL;

	if (s->db != NULL && !has_room(s->dir)) {
		return;
	}
	for (int i = 0; i < CF_COUNT; i++) {
		names[i] = cf_shapes[i].name;
	}
	pthread_rwlock_wrlock(&s->dblock);
	if (s->db != NULL) {
		for (int i = 0; i < CF_COUNT; i++) {
			if (s->cf[i] != NULL) {
				rocksdb_column_family_handle_destroy(s->cf[i]);
			}
		}
		rocksdb_close(s->db);
	}
	memset(s->cf, 0, sizeof(s->cf));
	s->db = rocksdb_open_column_families(s->opts, s->dir, CF_COUNT, names,
	    (const rocksdb_options_t *const *)s->cfopts, s->cf, &err);
	if (err != NULL) {
		s->db = NULL;
		memset(s->cf, 0, sizeof(s->cf));
	}
	pthread_rwlock_unlock(&s->dblock);
	if (err != NULL) {
		int rv = store_error(err, "reopen", false);
		dtxi_log_event(DTXI_LOG_ERROR, "store_reopen_failed",
		    DTXI_FIELDS(DTXI_F_STR("dir", s->dir)),
		    "cannot reopen the store: %s; trying again",
		    dtx_strerror(rv));
		return;
	}
	s->broken = false;
	dtxi_log_event(DTXI_LOG_INFO, "store_reopened",
	    DTXI_FIELDS(DTXI_F_STR("dir", s->dir)),
	    "the store takes writes again");
	if (s->on_batch != NULL) {
		s->on_batch(s->on_batch_arg, 0, false, 0, 0);
	}
}

// The writer thread. Each round takes the whole queue at once, so the
// operations that arrived while the previous batch was being fsynced all
// ride on the next single write: that is the group commit. Callbacks run
// after the write and outside the lock, in queue order, so a caller that
// queues A before B sees A's done before B's. On close the loop keeps
// going until the queue is empty, so no accepted operation is dropped.
static void *
store_writer(void *arg)
{
	rdb_store *s = arg;

	for (;;) {
		dtxd_wop *list;
		dtxd_wop *op;
		dtxd_wop *next;
		bool      sync = false;
		uint64_t  n    = 0;
		char     *err  = NULL;
		int       rv   = 0;
		bool      closing;

		pthread_mutex_lock(&s->mtx);
		while (s->head == NULL && !s->closing) {
			if (!s->broken) {
				pthread_cond_wait(&s->cv, &s->mtx);
				continue;
			}
			// Broken and idle: try the repair now and then.
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += STORE_REOPEN_EVERY_MS / 1000;
			if (pthread_cond_timedwait(&s->cv, &s->mtx, &ts) ==
			    ETIMEDOUT) {
				break;
			}
		}
		list    = s->head;
		s->head = NULL;
		s->tail = NULL;
		closing = s->closing;
		pthread_mutex_unlock(&s->mtx);
		if (list == NULL && closing) {
			break; // Closing and drained.
		}
		if (s->broken && !closing) {
			store_reopen(s);
		}
		if (list == NULL) {
			continue; // a repair attempt while idle
		}

		rocksdb_writebatch_clear(s->batch);
		for (op = list; op != NULL; op = op->next) {
			batch_add(s, s->batch, op);
			sync = sync || op->sync;
			n++;
		}
		if (sync && s->sync_delay_ms > 0) {
			sleep_ms(s->sync_delay_ms);
		}
		int64_t t0 = mono_us();
		if (s->db == NULL) {
			rv = DTX_ESTORAGE; // between failed reopens
		} else {
			rocksdb_write(s->db, sync ? s->wo_sync : s->wo_nosync,
			    s->batch, &err);
		}
		if (err != NULL) {
			rv = store_error(err, "write", false);
		}
		if (rv != 0 && !s->broken) {
			s->broken = true;
			dtxi_log_event(DTXI_LOG_WARN, "store_failing",
			    DTXI_FIELDS(DTXI_F_STR("dir", s->dir)),
			    "a write failed (%s): the store is reopened once "
			    "there is room",
			    dtx_strerror(rv));
		}
		if (s->on_batch != NULL) {
			s->on_batch(
			    s->on_batch_arg, n, sync, mono_us() - t0, rv);
		}

		pthread_mutex_lock(&s->mtx);
		if (rv == 0) {
			s->stats.ops += n;
			s->stats.batches++;
			if (sync) {
				s->stats.syncs++;
			}
		} else {
			s->stats.errors++;
		}
		pthread_mutex_unlock(&s->mtx);

		// The caller may reuse or free op as soon as done runs, so
		// the link is read first.
		for (op = list; op != NULL; op = next) {
			next     = op->next;
			op->next = NULL;
			op->done(op->arg, rv);
		}
	}
	return NULL;
}

// What RocksDB holds in memory and on disk, logged once a minute at info
// level: the figures to look at first when dtxd's RSS is in question.
static void
log_usage(rdb_store *s)
{
	uint64_t         mem = 0, readers = 0, disk = 0;
	dtxd_store_stats st;

	for (int i = 0; i < CF_COUNT; i++) {
		uint64_t v = 0;
		if (rocksdb_property_int_cf(s->db, s->cf[i],
		        "rocksdb.cur-size-all-mem-tables", &v) == 0) {
			mem += v;
		}
		if (rocksdb_property_int_cf(s->db, s->cf[i],
		        "rocksdb.estimate-table-readers-mem", &v) == 0) {
			readers += v;
		}
		if (rocksdb_property_int_cf(s->db, s->cf[i],
		        "rocksdb.live-sst-files-size", &v) == 0) {
			disk += v;
		}
	}
	rdb_get_stats(&s->base, &st);
	DTXI_INFO("store: memtables %.1f MiB, block cache %.1f MiB (%.1f "
	          "pinned), table readers %.1f MiB; %.0f MiB of table "
	          "files; %llu purged",
	    (double)mem / 1048576.0,
	    (double)rocksdb_cache_get_usage(s->cache) / 1048576.0,
	    (double)rocksdb_cache_get_pinned_usage(s->cache) / 1048576.0,
	    (double)readers / 1048576.0, (double)disk / 1048576.0,
	    (unsigned long long)st.purged);
}

// The purge thread: every purge_every_ms, whatever has expired by the wall
// clock. A purge is a few metadata operations (see dtxd_store_purge), so
// it runs often and never has much to do at once. Once a minute it logs
// the store's memory and disk use.
static void *
store_purger(void *arg)
{
	rdb_store *s        = arg;
	int64_t    next_log = dtxi_mono_ms() + STORE_USAGE_LOG_MS;

	pthread_mutex_lock(&s->mtx);
	while (!s->purge_stop) {
		struct timespec ts;
		uint64_t        n;

		pthread_mutex_unlock(&s->mtx);
		(void)held_purge(&s->base, dtxi_now_ms(), &n);
		if (dtxi_mono_ms() >= next_log && db_enter(s)) {
			log_usage(s);
			db_leave(s);
			next_log = dtxi_mono_ms() + STORE_USAGE_LOG_MS;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += s->purge_every_ms / 1000;
		ts.tv_nsec += (long)(s->purge_every_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&s->mtx);
		while (!s->purge_stop &&
		    pthread_cond_timedwait(&s->pcv, &s->mtx, &ts) == 0) {
		}
	}
	pthread_mutex_unlock(&s->mtx);
	return NULL;
}

// Frees whatever part of the store exists; used both by a failed open and
// by close (after the threads have stopped).
static void
store_free(rdb_store *s)
{
	for (int i = 0; i < CF_COUNT; i++) {
		if (s->cf[i] != NULL) {
			rocksdb_column_family_handle_destroy(s->cf[i]);
		}
	}
	if (s->db != NULL) {
		rocksdb_close(s->db);
	}
	if (s->batch != NULL) {
		rocksdb_writebatch_destroy(s->batch);
	}
	if (s->ro != NULL) {
		rocksdb_readoptions_destroy(s->ro);
	}
	if (s->wo_sync != NULL) {
		rocksdb_writeoptions_destroy(s->wo_sync);
	}
	if (s->wo_nosync != NULL) {
		rocksdb_writeoptions_destroy(s->wo_nosync);
	}
	for (int i = 0; i < CF_COUNT; i++) {
		if (s->cfopts[i] != NULL) {
			rocksdb_options_destroy(s->cfopts[i]);
		}
	}
	if (s->opts != NULL) {
		rocksdb_options_destroy(s->opts);
	}
	// The options held raw pointers to the filters: they go last.
	if (s->filter_finished != NULL) {
		rocksdb_compactionfilter_destroy(s->filter_finished);
	}
	if (s->filter_gids != NULL) {
		rocksdb_compactionfilter_destroy(s->filter_gids);
	}
	if (s->cache != NULL) {
		rocksdb_cache_destroy(s->cache);
	}
	pthread_rwlock_destroy(&s->dblock);
	free(s->dir);
	free(s);
}

// The table options of a family: blocks, index and filter blocks all in
// the one bounded cache (a reference is taken; L0's index and filter stay
// pinned there, the newest files that most lookups touch), a bloom filter
// where a lookup may miss. The factory copies the table options.
static void
set_table(rdb_store *s, rocksdb_options_t *o, bool bloom)
{
	rocksdb_block_based_table_options_t *t =
	    rocksdb_block_based_options_create();

	rocksdb_block_based_options_set_block_cache(t, s->cache);
	if (bloom) {
		rocksdb_block_based_options_set_filter_policy(t,
		    rocksdb_filterpolicy_create_bloom(
		        STORE_BLOOM_BITS_PER_KEY));
	}
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
	    t, 1);
	rocksdb_options_set_block_based_table_factory(o, t);
	rocksdb_block_based_options_destroy(t);
}

// Builds the options of family i from the database's.
static int
cf_options(rdb_store *s, int i, int64_t retention_ms)
{
	const cf_shape    *sh = &cf_shapes[i];
	rocksdb_options_t *o  = rocksdb_options_create_copy(s->opts);

	if (o == NULL) {
		return DTX_ENOMEM;
	}
	s->cfopts[i] = o;
	set_table(s, o, sh->bloom);
	rocksdb_options_set_write_buffer_size(o, sh->write_buffer);
	rocksdb_options_set_max_write_buffer_number(
	    o, STORE_MAX_WRITE_BUFFERS);
	rocksdb_options_set_target_file_size_base(o, sh->target_file);
	rocksdb_options_set_max_bytes_for_level_base(o, sh->level_base);
	if (i == CF_FINISHED) {
		rocksdb_options_set_compaction_filter(o, s->filter_finished);
	} else if (i == CF_GIDS) {
		// Old index files are compacted (and their expired entries
		// dropped) once they are a retention period and a minute
		// old. The C API has no setter for this option; the options
		// string parser keeps every other option of o.
		char               spec[96];
		char              *err = NULL;
		rocksdb_options_t *p   = rocksdb_options_create();
		long long secs         = (long long)(retention_ms / 1000) + 60;

		if (p == NULL) {
			return DTX_ENOMEM;
		}
		rocksdb_options_set_compaction_filter(o, s->filter_gids);
		snprintf(spec, sizeof(spec),
		    "periodic_compaction_seconds=%lld", secs);
		rocksdb_get_options_from_string(o, spec, p, &err);
		if (err != NULL) {
			rocksdb_options_destroy(p);
			return store_error(err, "options", false);
		}
		rocksdb_options_destroy(o);
		s->cfopts[i] = p;
	}
	return 0;
}

// An earlier dtxd kept t/, b/, u/ and e/ keys in the default family. Such a
// directory is refused rather than opened beside its data, which would
// silently forget its unfinished transactions. Returns 0 when dir holds no
// database yet or one of this layout.
static int
check_layout(rdb_store *s, const char *dir)
{
	char              **names;
	size_t              n     = 0;
	bool                ours  = false;
	bool                empty = true;
	char               *err   = NULL;
	rocksdb_t          *db    = NULL;
	rocksdb_iterator_t *it    = NULL;
	rocksdb_options_t  *o     = NULL;

	names = rocksdb_list_column_families(s->opts, dir, &n, &err);
	if (err != NULL) {
		// No database there yet. The list is allocated even then.
		rocksdb_free(err);
		rocksdb_list_column_families_destroy(names, n);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		ours = ours || strcmp(names[i], "unfinished") == 0;
	}
	rocksdb_list_column_families_destroy(names, n);
	if (ours) {
		return 0;
	}
	if ((o = rocksdb_options_create_copy(s->opts)) == NULL) {
		return DTX_ENOMEM;
	}
	rocksdb_options_set_create_if_missing(o, 0);
	db = rocksdb_open(o, dir, &err);
	rocksdb_options_destroy(o);
	if (err != NULL) {
		return store_error(err, "open", true);
	}
	if ((it = rocksdb_create_iterator(db, s->ro)) != NULL) {
		rocksdb_iter_seek_to_first(it);
		empty = !rocksdb_iter_valid(it);
		rocksdb_iter_destroy(it);
	}
	rocksdb_close(db);
	if (!empty) {
		DTXI_ERROR("store: %s holds data in the layout of an earlier "
		           "dtxd, which this one cannot read; it was left "
		           "untouched (finish its transactions with that "
		           "dtxd, or move the directory aside)",
		    dir);
		return DTX_ESTORAGE;
	}
	return 0;
}

// Writes the layout's version into a new store, or checks it.
static int
check_format(rdb_store *s)
{
	rocksdb_pinnableslice_t *ps;
	const char              *v;
	size_t                   vlen = 0;
	char                    *err  = NULL;
	bool                     ok;

	ps = rocksdb_get_pinned_cf(s->db, s->ro, s->cf[CF_DEFAULT],
	    STORE_FORMAT_KEY, strlen(STORE_FORMAT_KEY), &err);
	if (err != NULL) {
		return store_error(err, "get", false);
	}
	if (ps == NULL) {
		rocksdb_flushoptions_t *fo;

		rocksdb_put_cf(s->db, s->wo_sync, s->cf[CF_DEFAULT],
		    STORE_FORMAT_KEY, strlen(STORE_FORMAT_KEY),
		    STORE_FORMAT_VALUE, strlen(STORE_FORMAT_VALUE), &err);
		if (err != NULL) {
			return store_error(err, "write", false);
		}
		// Flushed at once: a family whose memtable holds anything
		// keeps every WAL file since that write, and the default
		// family is never written again. Left in its memtable, the
		// version kept 10 WAL files (up to STORE_MAX_WAL_BYTES) alive,
		// all read again at each start.
		if ((fo = rocksdb_flushoptions_create()) == NULL) {
			return DTX_ENOMEM;
		}
		rocksdb_flushoptions_set_wait(fo, 1);
		rocksdb_flush_cf(s->db, fo, s->cf[CF_DEFAULT], &err);
		rocksdb_flushoptions_destroy(fo);
		return err != NULL ? store_error(err, "flush", false) : 0;
	}
	v  = rocksdb_pinnableslice_value(ps, &vlen);
	ok = vlen == strlen(STORE_FORMAT_VALUE) &&
	    memcmp(v, STORE_FORMAT_VALUE, vlen) == 0;
	if (!ok) {
		DTXI_ERROR("store: unknown layout '%.*s' (this dtxd writes "
		           "'%s')",
		    (int)(vlen > 64 ? 64 : vlen), v, STORE_FORMAT_VALUE);
	}
	rocksdb_pinnableslice_destroy(ps);
	return ok ? 0 : DTX_ESTORAGE;
}

static int
store_threads_start(rdb_store *s)
{
	if (pthread_mutex_init(&s->mtx, NULL) != 0) {
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&s->cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mtx);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&s->pcv, NULL) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mtx);
		return DTX_ENOMEM;
	}
	if (pthread_create(&s->writer, NULL, store_writer, s) != 0) {
		pthread_cond_destroy(&s->pcv);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mtx);
		return DTX_ENOMEM;
	}
	s->writer_started = true;
	if (s->purge_every_ms > 0 &&
	    pthread_create(&s->purger, NULL, store_purger, s) == 0) {
		s->purger_started = true;
	} else if (s->purge_every_ms > 0) {
		DTXI_WARN("store: no purge thread; expired transactions stay");
	}
	return 0;
}

static const dtxd_store_ops rdb_ops;

int
dtxd_store_rocksdb_open(
    dtxd_store **sp, const char *dir, const dtxd_store_opts *o)
{
	rdb_store  *s;
	const char *names[CF_COUNT];
	char       *err = NULL;
	int         rv;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return DTX_ENOMEM;
	}
	s->base.ops       = &rdb_ops;
	s->sync_delay_ms  = o->sync_delay_ms;
	s->purge_every_ms = o->purge_every_ms;
	s->on_batch       = o->on_batch;
	s->on_batch_arg   = o->on_batch_arg;
	if (pthread_rwlock_init(&s->dblock, NULL) != 0) {
		free(s);
		return DTX_ENOMEM;
	}
	if ((s->dir = strdup(dir)) == NULL) {
		pthread_rwlock_destroy(&s->dblock);
		free(s);
		return DTX_ENOMEM;
	}
	atomic_init(&s->purge_before, -1);
	atomic_init(&s->filtered, 0);

	// The C API returns NULL from these constructors only when C++'s new
	// fails, which would have thrown first; they are checked anyway so
	// that an odd build degrades to DTX_ENOMEM rather than a crash.
	s->opts            = rocksdb_options_create();
	s->cache           = rocksdb_cache_create_lru(STORE_BLOCK_CACHE_BYTES);
	s->wo_sync         = rocksdb_writeoptions_create();
	s->wo_nosync       = rocksdb_writeoptions_create();
	s->ro              = rocksdb_readoptions_create();
	s->batch           = rocksdb_writebatch_create();
	s->filter_finished = rocksdb_compactionfilter_create(
	    s, filter_state_free, filter_finished, filter_finished_name);
	s->filter_gids = rocksdb_compactionfilter_create(
	    s, filter_state_free, filter_gids, filter_gids_name);
	if (s->opts == NULL || s->cache == NULL || s->wo_sync == NULL ||
	    s->wo_nosync == NULL || s->ro == NULL || s->batch == NULL ||
	    s->filter_finished == NULL || s->filter_gids == NULL) {
		store_free(s);
		return DTX_ENOMEM;
	}
	rocksdb_writeoptions_set_sync(s->wo_sync, 1);
	rocksdb_writeoptions_set_sync(s->wo_nosync, 0);

	rocksdb_options_set_create_if_missing(
	    s->opts, o->create_if_missing ? 1 : 0);
	rocksdb_options_set_create_missing_column_families(s->opts, 1);
	rocksdb_options_increase_parallelism(s->opts, STORE_PARALLELISM);
	rocksdb_options_set_db_write_buffer_size(
	    s->opts, STORE_DB_WRITE_BUFFER_BYTES);
	rocksdb_options_set_max_total_wal_size(s->opts, STORE_MAX_WAL_BYTES);
	rocksdb_options_set_keep_log_file_num(s->opts, STORE_KEEP_LOG_FILES);
	rocksdb_options_set_info_log_level(s->opts, STORE_INFO_LOG_LEVEL);
	rocksdb_options_set_max_log_file_size(
	    s->opts, STORE_MAX_LOG_FILE_BYTES);
	for (int i = 0; i < CF_COUNT; i++) {
		names[i] = cf_shapes[i].name;
		if ((rv = cf_options(s, i, o->retention_ms)) != 0) {
			store_free(s);
			return rv;
		}
	}
	if ((rv = check_layout(s, dir)) != 0) {
		store_free(s);
		return rv;
	}
	s->db = rocksdb_open_column_families(s->opts, dir, CF_COUNT, names,
	    (const rocksdb_options_t *const *)s->cfopts, s->cf, &err);
	if (err != NULL) {
		rv    = store_error(err, "open", true);
		s->db = NULL;
		memset(s->cf, 0, sizeof(s->cf));
		store_free(s);
		return rv;
	}
	if ((rv = check_format(s)) != 0 ||
	    (rv = store_threads_start(s)) != 0) {
		store_free(s);
		return rv;
	}
	*sp = &s->base;
	return 0;
}

static void
rdb_close(dtxd_store *base)
{
	rdb_store *s = (rdb_store *)base;

	// The purge thread first: it may be inside RocksDB.
	pthread_mutex_lock(&s->mtx);
	s->purge_stop = true;
	pthread_cond_signal(&s->pcv);
	pthread_mutex_unlock(&s->mtx);
	if (s->purger_started) {
		pthread_join(s->purger, NULL);
	}
	// From here on new writes are refused, but the writer still drains
	// everything already accepted (each accepted op's done must run
	// exactly once) before it sees the empty queue and exits.
	pthread_mutex_lock(&s->mtx);
	s->closing = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	pthread_join(s->writer, NULL);

	pthread_cond_destroy(&s->pcv);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mtx);
	store_free(s);
}

static int
rdb_write(dtxd_store *base, dtxd_wop *op)
{
	rdb_store *s = (rdb_store *)base;

	op->next = NULL;
	pthread_mutex_lock(&s->mtx);
	if (s->closing) {
		pthread_mutex_unlock(&s->mtx);
		return DTX_ECLOSED;
	}
	if (s->tail == NULL) {
		s->head = op;
	} else {
		s->tail->next = op;
	}
	s->tail = op;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	return 0;
}

// Reads one key of family cf: 0 (the caller destroys *psp), DTX_ENOTFOUND
// or an error. The pinned-slice API tells an absent key from an empty
// value, which rocksdb_get() does not reliably do.
static int
get_pinned(rdb_store *s, const rocksdb_readoptions_t *ro, int cf,
    const char *key, size_t klen, rocksdb_pinnableslice_t **psp)
{
	char *err = NULL;

	*psp = rocksdb_get_pinned_cf(s->db, ro, s->cf[cf], key, klen, &err);
	if (err != NULL) {
		*psp = NULL;
		return store_error(err, "get", false);
	}
	return *psp == NULL ? DTX_ENOTFOUND : 0;
}

// Copies data[0..n) into a fresh malloc'd buffer.
static int
dup_bytes(const void *data, size_t n, uint8_t **val, size_t *len)
{
	uint8_t *buf;

	if ((buf = malloc(n > 0 ? n : 1)) == NULL) {
		return DTX_ENOMEM;
	}
	if (n > 0) {
		memcpy(buf, data, n);
	}
	*val = buf;
	*len = n;
	return 0;
}

// Reads a key into a malloc'd copy: 0, DTX_ENOTFOUND or an error.
static int
get_copy(rdb_store *s, const rocksdb_readoptions_t *ro, int cf,
    const char *key, size_t klen, uint8_t **val, size_t *len)
{
	rocksdb_pinnableslice_t *ps;
	const char              *data;
	size_t                   n = 0;
	int                      rv;

	if ((rv = get_pinned(s, ro, cf, key, klen, &ps)) != 0) {
		return rv;
	}
	data = rocksdb_pinnableslice_value(ps, &n);
	rv   = dup_bytes(data, n, val, len);
	rocksdb_pinnableslice_destroy(ps);
	return rv;
}

// The expiry of a finished gid from the index: 0 and *expire, or
// DTX_ENOTFOUND (never finished, or purged).
static int
get_expiry(rdb_store *s, const rocksdb_readoptions_t *ro, const char *gid,
    size_t glen, int64_t *expire)
{
	rocksdb_pinnableslice_t *ps;
	const char              *v;
	size_t                   n = 0;
	uint64_t                 e;
	int                      rv;

	if ((rv = get_pinned(s, ro, CF_GIDS, gid, glen, &ps)) != 0) {
		return rv;
	}
	v = rocksdb_pinnableslice_value(ps, &n);
	e = n == 8 ? get_be64((const uint8_t *)v) : 0;
	rocksdb_pinnableslice_destroy(ps);
	if (n != 8 || e > INT64_MAX) {
		DTXI_WARN("store: malformed index entry of %.*s (%zu bytes)",
		    (int)glen, gid, n);
		return DTX_ENOTFOUND;
	}
	if (purged(s, e)) {
		return DTX_ENOTFOUND;
	}
	*expire = (int64_t)e;
	return 0;
}

// The finished record of gid, through the index.
static int
get_finished(rdb_store *s, const rocksdb_readoptions_t *ro, const char *gid,
    size_t glen, uint8_t **val, size_t *len)
{
	char    key[STORE_KEY_MAX];
	int64_t expire;
	int     rv;

	if ((rv = get_expiry(s, ro, gid, glen, &expire)) != 0) {
		return rv;
	}
	return get_copy(s, ro, CF_FINISHED, key,
	    key_finished(key, expire, gid, glen), val, len);
}

static int
rdb_get_record(dtxd_store *base, const char *gid, uint8_t **val, size_t *len)
{
	rdb_store *s    = (rdb_store *)base;
	size_t     glen = strlen(gid);
	int        rv;

	// Unfinished first: a FINISH writes both families in one batch, so a
	// transaction missing here has either never existed or is already
	// in the finished family when we look there.
	rv = get_copy(s, s->ro, CF_UNFINISHED, gid, glen, val, len);
	if (rv != DTX_ENOTFOUND) {
		return rv;
	}
	return get_finished(s, s->ro, gid, glen, val, len);
}

// Splits a specs value into u's specs. Returns false (and sets none) when
// it is damaged.
static bool
specs_parse(const uint8_t *p, size_t n, dtxd_store_unfinished *u)
{
	uint32_t k = 0;

	while (n > 0) {
		uint32_t len;

		if (n < 4 || k == DTX_BRANCHES_MAX ||
		    (len = get_be32(p)) > n - 4) {
			u->nspecs = 0;
			return false;
		}
		u->specs[k]     = p + 4;
		u->spec_lens[k] = len;
		k++;
		p += 4 + len;
		n -= 4 + len;
	}
	u->nspecs = k;
	return true;
}

static int
rdb_get_spec(
    dtxd_store *base, const char *gid, uint32_t i, uint8_t **val, size_t *len)
{
	rdb_store               *s = (rdb_store *)base;
	char                     key[STORE_KEY_MAX];
	rocksdb_pinnableslice_t *ps;
	dtxd_store_unfinished    u;
	const char              *v;
	size_t                   n    = 0;
	size_t                   glen = strlen(gid);
	int                      rv;

	rv = get_pinned(
	    s, s->ro, CF_UNFINISHED, key, key_specs(key, gid, glen), &ps);
	if (rv != 0) {
		return rv;
	}
	v = rocksdb_pinnableslice_value(ps, &n);
	if (!specs_parse((const uint8_t *)v, n, &u)) {
		DTXI_WARN("store: the specs of %s are damaged", gid);
	}
	rv = i < u.nspecs ? dup_bytes(u.specs[i], u.spec_lens[i], val, len)
	                  : DTX_ENOTFOUND;
	rocksdb_pinnableslice_destroy(ps);
	return rv;
}

// Opens an iterator over family cf with its own read options (not filling
// the block cache: a scan would evict what lookups need), reading the
// snapshot snap when not NULL; iter_close() frees both.
static rocksdb_iterator_t *
iter_open(rdb_store *s, int cf, const rocksdb_snapshot_t *snap,
    rocksdb_readoptions_t **rop)
{
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;

	if ((ro = rocksdb_readoptions_create()) == NULL) {
		return NULL;
	}
	rocksdb_readoptions_set_fill_cache(ro, 0);
	if (snap != NULL) {
		rocksdb_readoptions_set_snapshot(ro, snap);
	}
	if ((it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf])) == NULL) {
		rocksdb_readoptions_destroy(ro);
		return NULL;
	}
	*rop = ro;
	return it;
}

// Closes the iterator and reports any error it met: an iterator that
// stops being valid early because of an I/O error is otherwise
// indistinguishable from the end of the data.
static int
iter_close(rocksdb_iterator_t *it, rocksdb_readoptions_t *ro, int rv)
{
	char *err = NULL;

	if (it == NULL) {
		return rv;
	}
	rocksdb_iter_get_error(it, &err);
	if (err != NULL) {
		int erv = store_error(err, "scan", false);
		if (rv == 0) {
			rv = erv;
		}
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return rv;
}

// Copies a key that should be a gid (from off to the end) out as a
// NUL-terminated string. Keys come from disk, so one whose gid is not valid
// is reported to the caller (who skips it with a warning) rather than
// trusted.
static bool
key_gid(const char *key, size_t klen, size_t off, char *gid)
{
	size_t glen;
	size_t n;

	if (klen <= off || klen - off > DTX_GID_MAX) {
		return false;
	}
	n = klen - off;
	memcpy(gid, key + off, n);
	gid[n] = '\0';
	return dtxd_store_gid_valid(gid, &glen) && glen == n;
}

// A growable copy of one record, kept while the scan looks at the next key.
typedef struct recbuf {
	uint8_t *p;
	size_t   len;
	size_t   cap;
} recbuf;

static int
recbuf_set(recbuf *b, const char *v, size_t n)
{
	if (n > b->cap) {
		uint8_t *np = realloc(b->p, n);
		if (np == NULL) {
			return DTX_ENOMEM;
		}
		b->p   = np;
		b->cap = n;
	}
	if (n > 0) {
		memcpy(b->p, v, n);
	}
	b->len = n;
	return 0;
}

// The unfinished family holds each record ("gid") right before its specs
// ("gid" NUL), so one pass reads both. A record without specs, or specs
// without a record, is damage from outside (both are written in one batch):
// the record is handed on with no specs (recovery skips it, saying why),
// stray specs are skipped.
static int
rdb_scan_unfinished(dtxd_store *base,
    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg)
{
	rdb_store             *s = (rdb_store *)base;
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;
	dtxd_store_unfinished  u;
	char                   gid[DTX_GID_MAX + 1];
	recbuf                 rec = {NULL, 0, 0};
	int                    rv  = 0;

	if ((it = iter_open(s, CF_UNFINISHED, NULL, &ro)) == NULL) {
		return DTX_ENOMEM;
	}
	rocksdb_iter_seek_to_first(it);
	while (rv == 0 && rocksdb_iter_valid(it)) {
		size_t      klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v;

		if (!key_gid(k, klen, 0, gid)) {
			if (memchr(k, '\0', klen) == NULL) {
				DTXI_WARN("store: skipping a malformed "
				          "unfinished key (%zu bytes)",
				    klen);
			} else {
				DTXI_WARN("store: skipping branch specs "
				          "without a record");
			}
			rocksdb_iter_next(it);
			continue;
		}
		v = rocksdb_iter_value(it, &vlen);
		if ((rv = recbuf_set(&rec, v, vlen)) != 0) {
			break;
		}
		memset(&u, 0, sizeof(u));
		u.gid        = gid;
		u.record     = rec.p;
		u.record_len = rec.len;
		rocksdb_iter_next(it);
		if (rocksdb_iter_valid(it)) {
			k = rocksdb_iter_key(it, &klen);
			if (klen == strlen(gid) + 1 && k[klen - 1] == '\0' &&
			    memcmp(k, gid, klen - 1) == 0) {
				v = rocksdb_iter_value(it, &vlen);
				if (!specs_parse(
				        (const uint8_t *)v, vlen, &u)) {
					DTXI_WARN("store: the specs of %s are "
					          "damaged",
					    gid);
				}
				rv = fn(arg, &u);
				rocksdb_iter_next(it);
				continue;
			}
		}
		rv = fn(arg, &u);
	}
	free(rec.p);
	return iter_close(it, ro, rv);
}

// One side of the merged scan: an iterator and the gid it is at.
typedef struct side {
	rocksdb_iterator_t    *it;
	rocksdb_readoptions_t *ro;
	char                   gid[DTX_GID_MAX + 1];
	bool                   at; // gid is valid
} side;

// Moves the unfinished side to its next record strictly after cursor.
static void
side_next_unfinished(side *u, const char *cursor)
{
	for (; rocksdb_iter_valid(u->it); rocksdb_iter_next(u->it)) {
		size_t      klen;
		const char *k = rocksdb_iter_key(u->it, &klen);

		if (memchr(k, '\0', klen) != NULL) {
			continue; // specs
		}
		if (!key_gid(k, klen, 0, u->gid)) {
			DTXI_WARN("store: skipping a malformed record key "
			          "(%zu bytes)",
			    klen);
			continue;
		}
		if (strcmp(u->gid, cursor) > 0) {
			u->at = true;
			return;
		}
	}
	u->at = false;
}

// Moves the index side to its next finished, not purged gid strictly after
// cursor.
static void
side_next_gid(rdb_store *s, side *g, const char *cursor)
{
	for (; rocksdb_iter_valid(g->it); rocksdb_iter_next(g->it)) {
		size_t      klen, vlen;
		const char *k = rocksdb_iter_key(g->it, &klen);
		const char *v = rocksdb_iter_value(g->it, &vlen);

		if (!key_gid(k, klen, 0, g->gid) || vlen != 8) {
			DTXI_WARN("store: skipping a malformed index entry "
			          "(%zu bytes)",
			    klen);
			continue;
		}
		if (purged(s, get_be64((const uint8_t *)v))) {
			continue;
		}
		if (strcmp(g->gid, cursor) > 0) {
			g->at = true;
			return;
		}
	}
	g->at = false;
}

// List walks two families in gid order at once: the unfinished records,
// and the gid index of the finished ones (whose records it reads by their
// expiry key), all in one snapshot, so a transaction that finishes during
// the scan is seen once.
static int
rdb_scan_records(dtxd_store *base, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg)
{
	rdb_store                *s = (rdb_store *)base;
	const rocksdb_snapshot_t *snap;
	rocksdb_readoptions_t    *ro;
	side                      u = {0}, g = {0};
	char                      prev[DTX_GID_MAX + 1];
	size_t                    clen = strlen(cursor);
	int                       rv   = 0;

	if ((ro = rocksdb_readoptions_create()) == NULL) {
		return DTX_ENOMEM;
	}
	snap = rocksdb_create_snapshot(s->db);
	rocksdb_readoptions_set_snapshot(ro, snap);
	rocksdb_readoptions_set_fill_cache(ro, 0);
	u.it = iter_open(s, CF_UNFINISHED, snap, &u.ro);
	g.it = iter_open(s, CF_GIDS, snap, &g.ro);
	if (u.it == NULL || g.it == NULL) {
		rv = DTX_ENOMEM;
		goto out;
	}
	rocksdb_iter_seek(u.it, cursor, clen);
	rocksdb_iter_seek(g.it, cursor, clen);
	side_next_unfinished(&u, cursor);
	side_next_gid(s, &g, cursor);
	while (rv == 0 && (u.at || g.at)) {
		int cmp = !u.at ? 1 : !g.at ? -1 : strcmp(u.gid, g.gid);

		if (cmp <= 0) {
			// Unfinished wins a tie: the gid was reused after an
			// earlier transaction of that gid finished.
			size_t      vlen;
			const char *v = rocksdb_iter_value(u.it, &vlen);

			rv = fn(arg, u.gid, (const uint8_t *)v, vlen);
			memcpy(prev, u.gid, sizeof(prev));
			if (cmp == 0) {
				rocksdb_iter_next(g.it);
				side_next_gid(s, &g, prev);
			}
			rocksdb_iter_next(u.it);
			side_next_unfinished(&u, prev);
		} else {
			uint8_t *rec;
			size_t   len;
			int      grv = get_finished(
			         s, ro, g.gid, strlen(g.gid), &rec, &len);

			if (grv == 0) {
				rv = fn(arg, g.gid, rec, len);
				free(rec);
			} else if (grv != DTX_ENOTFOUND) {
				rv = grv;
			}
			memcpy(prev, g.gid, sizeof(prev));
			rocksdb_iter_next(g.it);
			side_next_gid(s, &g, prev);
		}
	}
	if (rv < 0) {
		rv = 0;
	}
out:
	rv = iter_close(u.it, u.ro, rv);
	rv = iter_close(g.it, g.ro, rv);
	rocksdb_readoptions_destroy(ro);
	rocksdb_release_snapshot(s->db, snap);
	return rv;
}

// Compares two keys bytewise, a shorter prefix first (RocksDB's order).
static int
key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0) {
		return c;
	}
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

// The files of the finished family below level 0 that lie wholly at or
// before limit (at the start of the family: its oldest expiries), and the
// records each holds.
typedef struct expired_files {
	char    **names;
	uint64_t *records;
	size_t    n;
} expired_files;

static int
expired_files_list(
    rdb_store *s, const char *limit, size_t llen, expired_files *x)
{
	const rocksdb_livefiles_t *lf = rocksdb_livefiles(s->db);
	int                        n;

	memset(x, 0, sizeof(*x));
	if (lf == NULL) {
		return DTX_ENOMEM;
	}
	n = rocksdb_livefiles_count(lf);
	if (n > 0 &&
	    ((x->names = calloc((size_t)n, sizeof(*x->names))) == NULL ||
	        (x->records = calloc((size_t)n, sizeof(*x->records))) ==
	            NULL)) {
		free(x->names);
		rocksdb_livefiles_destroy(lf);
		return DTX_ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		size_t      len;
		const char *large;
		const char *cf = rocksdb_livefiles_column_family_name(lf, i);

		if (cf == NULL || strcmp(cf, "finished") != 0 ||
		    rocksdb_livefiles_level(lf, i) == 0) {
			continue;
		}
		large = rocksdb_livefiles_largestkey(lf, i, &len);
		if (key_cmp(large, len, limit, llen) > 0 ||
		    (x->names[x->n] = strdup(rocksdb_livefiles_name(lf, i))) ==
		        NULL) {
			continue;
		}
		x->records[x->n++] = rocksdb_livefiles_entries(lf, i);
	}
	rocksdb_livefiles_destroy(lf);
	return 0;
}

static void
expired_files_free(expired_files *x)
{
	for (size_t i = 0; i < x->n; i++) {
		free(x->names[i]);
	}
	free(x->names);
	free(x->records);
}

// The records of the files of x that are gone from the database now (a
// file being compacted is skipped by the deletion and stays).
static uint64_t
expired_files_gone(rdb_store *s, const expired_files *x)
{
	const rocksdb_livefiles_t *lf   = rocksdb_livefiles(s->db);
	uint64_t                   gone = 0;
	int                        n;

	if (lf == NULL) {
		return 0;
	}
	n = rocksdb_livefiles_count(lf);
	for (size_t j = 0; j < x->n; j++) {
		bool left = false;
		for (int i = 0; i < n && !left; i++) {
			left = strcmp(rocksdb_livefiles_name(lf, i),
			           x->names[j]) == 0;
		}
		if (!left) {
			gone += x->records[j];
		}
	}
	rocksdb_livefiles_destroy(lf);
	return gone;
}

// A purge first makes the expired records invisible (the purge time that
// reads and the compaction filters compare with), then frees whole files
// of them: the finished family is ordered by expiry, so everything expired
// sits at its start, in files no new write overlaps, and DeleteFilesInRange
// drops those from the file set in one metadata update. No tombstone is
// written and nothing is read; level 0 (the newest files, rarely expired)
// and a file that straddles the limit are left to the compaction filter.
static int
rdb_purge(dtxd_store *base, int64_t now_ms, uint64_t *purgedp)
{
	rdb_store    *s = (rdb_store *)base;
	char          limit[9];
	expired_files x;
	char         *err = NULL;
	int64_t       old;
	uint64_t      n = 0;
	int           rv;

	old = atomic_load(&s->purge_before);
	while (old < now_ms &&
	    !atomic_compare_exchange_weak(&s->purge_before, &old, now_ms)) {
	}
	// Every key of a record expiring at or before now_ms sorts at or
	// before this limit: its expiry and then a byte above any gid's.
	put_be64((uint8_t *)limit, (uint64_t)now_ms);
	limit[8] = 0x7f;
	if ((rv = expired_files_list(s, limit, sizeof(limit), &x)) != 0) {
		return rv;
	}
	if (x.n > 0) {
		rocksdb_delete_file_in_range_cf(s->db, s->cf[CF_FINISHED], "",
		    0, limit, sizeof(limit), &err);
		if (err != NULL) {
			rv = store_error(err, "purge", false);
		} else {
			n = expired_files_gone(s, &x);
		}
	}
	expired_files_free(&x);
	if (rv != 0) {
		return rv;
	}
	if (n > 0) {
		pthread_mutex_lock(&s->mtx);
		s->stats.purged += n;
		pthread_mutex_unlock(&s->mtx);
		DTXI_INFO("store: purged %llu finished transactions (whole "
		          "files)",
		    (unsigned long long)n);
	}
	*purgedp = n;
	return 0;
}

// Writes the n keys that key_of yields, in order, into a new table file
// at path built with the options of family cf.
static int
sst_write(rdb_store *s, int cf, const char *path, const dtxd_store_finished *f,
    size_t n)
{
	rocksdb_envoptions_t    *env = rocksdb_envoptions_create();
	rocksdb_sstfilewriter_t *w   = NULL;
	char                    *err = NULL;
	int                      rv  = 0;

	if (env == NULL ||
	    (w = rocksdb_sstfilewriter_create(env, s->cfopts[cf])) == NULL) {
		rv = DTX_ENOMEM;
		goto out;
	}
	rocksdb_sstfilewriter_open(w, path, &err);
	for (size_t i = 0; err == NULL && i < n; i++) {
		char    key[STORE_KEY_MAX];
		uint8_t exp[8];
		size_t  glen = strlen(f[i].gid);

		if (cf == CF_FINISHED) {
			rocksdb_sstfilewriter_put(w, key,
			    key_finished(key, f[i].expire_ms, f[i].gid, glen),
			    (const char *)f[i].record, f[i].record_len, &err);
		} else {
			put_be64(exp, (uint64_t)f[i].expire_ms);
			rocksdb_sstfilewriter_put(w, f[i].gid, glen,
			    (const char *)exp, sizeof(exp), &err);
		}
	}
	if (err == NULL) {
		rocksdb_sstfilewriter_finish(w, &err);
	}
	if (err != NULL) {
		rv = store_error(err, "bulk load", false);
	}
out:
	if (w != NULL) {
		rocksdb_sstfilewriter_destroy(w);
	}
	if (env != NULL) {
		rocksdb_envoptions_destroy(env);
	}
	return rv;
}

// A bulk load builds one table file per family and hands it to RocksDB
// whole (IngestExternalFile), which places it at the lowest level where it
// overlaps nothing, as if it had been written long ago and compacted down:
// no WAL, no memtable, no compaction, 10 million records in well under a
// minute. Both files are in key order because the input is in gid order
// and in expiry order.
static int
rdb_ingest_finished(dtxd_store *base, const dtxd_store_finished *f, size_t n)
{
	rdb_store                           *s      = (rdb_store *)base;
	static const int                     cfs[2] = {CF_FINISHED, CF_GIDS};
	rocksdb_ingestexternalfileoptions_t *io;
	char                                 path[4096 + 32];
	char                                *err = NULL;
	int                                  rv  = 0;

	if ((io = rocksdb_ingestexternalfileoptions_create()) == NULL) {
		return DTX_ENOMEM;
	}
	rocksdb_ingestexternalfileoptions_set_move_files(io, 1);
	for (int c = 0; c < 2 && rv == 0; c++) {
		const char *files[1] = {path};

		snprintf(path, sizeof(path), "%s/bulk-%s.sst", s->dir,
		    cf_shapes[cfs[c]].name);
		if ((rv = sst_write(s, cfs[c], path, f, n)) != 0) {
			remove(path);
			break;
		}
		rocksdb_ingest_external_file_cf(
		    s->db, s->cf[cfs[c]], files, 1, io, &err);
		if (err != NULL) {
			rv = store_error(err, "bulk load", false);
			remove(path);
		}
	}
	rocksdb_ingestexternalfileoptions_destroy(io);
	return rv;
}

// Waits until no compaction of any family is pending or running.
static void
wait_compactions(rdb_store *s)
{
	for (;;) {
		uint64_t running = 0;
		uint64_t pending = 0;

		rocksdb_property_int(
		    s->db, "rocksdb.num-running-compactions", &running);
		for (int i = 0; i < CF_COUNT; i++) {
			uint64_t p = 0;
			rocksdb_property_int_cf(
			    s->db, s->cf[i], "rocksdb.compaction-pending", &p);
			pending += p;
		}
		if (running == 0 && pending == 0) {
			return;
		}
		sleep_ms(20);
	}
}

static int
rdb_flush(dtxd_store *base)
{
	rdb_store              *s = (rdb_store *)base;
	rocksdb_flushoptions_t *fo;
	char                   *err = NULL;
	int                     rv  = 0;

	if ((fo = rocksdb_flushoptions_create()) == NULL) {
		return DTX_ENOMEM;
	}
	rocksdb_flushoptions_set_wait(fo, 1);
	for (int i = 0; i < CF_COUNT && rv == 0; i++) {
		rocksdb_flush_cf(s->db, fo, s->cf[i], &err);
		if (err != NULL) {
			rv = store_error(err, "flush", false);
		}
	}
	rocksdb_flushoptions_destroy(fo);
	if (rv == 0) {
		wait_compactions(s);
	}
	return rv;
}

static int
rdb_compact(dtxd_store *base)
{
	rdb_store                *s = (rdb_store *)base;
	rocksdb_compactoptions_t *co;
	int                       rv;

	if ((rv = rdb_flush(base)) != 0) {
		return rv;
	}
	if ((co = rocksdb_compactoptions_create()) == NULL) {
		return DTX_ENOMEM;
	}
	// kForce: the bottommost level too, where old records rest.
	rocksdb_compactoptions_set_bottommost_level_compaction(co, 2);
	for (int i = 0; i < CF_COUNT; i++) {
		rocksdb_compact_range_cf_opt(
		    s->db, s->cf[i], co, NULL, 0, NULL, 0);
	}
	rocksdb_compactoptions_destroy(co);
	return 0;
}

static void
rdb_get_stats(dtxd_store *base, dtxd_store_stats *st)
{
	rdb_store *s = (rdb_store *)base;

	pthread_mutex_lock(&s->mtx);
	*st = s->stats;
	pthread_mutex_unlock(&s->mtx);
	st->purged += atomic_load(&s->filtered);
}

// The ops that use the database handle hold it (db_enter) around the
// rdb_* body, so a reopen never pulls it from under them (see the top of
// the file); between a failed reopen and the next they fail with
// DTX_ESTORAGE. The writer is the only one that reopens, so write needs
// no lock.

static int
held_get_record(dtxd_store *base, const char *gid, uint8_t **val, size_t *len)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_get_record(base, gid, val, len);
	db_leave(s);
	return rv;
}

static int
held_get_spec(
    dtxd_store *base, const char *gid, uint32_t i, uint8_t **val, size_t *len)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_get_spec(base, gid, i, val, len);
	db_leave(s);
	return rv;
}

static int
held_scan_unfinished(dtxd_store *base,
    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_scan_unfinished(base, fn, arg);
	db_leave(s);
	return rv;
}

static int
held_scan_records(dtxd_store *base, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_scan_records(base, cursor, fn, arg);
	db_leave(s);
	return rv;
}

static int
held_purge(dtxd_store *base, int64_t now_ms, uint64_t *purgedp)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_purge(base, now_ms, purgedp);
	db_leave(s);
	return rv;
}

static int
held_ingest_finished(dtxd_store *base, const dtxd_store_finished *f, size_t n)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_ingest_finished(base, f, n);
	db_leave(s);
	return rv;
}

static int
held_flush(dtxd_store *base)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_flush(base);
	db_leave(s);
	return rv;
}

static int
held_compact(dtxd_store *base)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!db_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = rdb_compact(base);
	db_leave(s);
	return rv;
}

static const dtxd_store_ops rdb_ops = {
    .close           = rdb_close,
    .write           = rdb_write,
    .get_record      = held_get_record,
    .get_spec        = held_get_spec,
    .scan_unfinished = held_scan_unfinished,
    .scan_records    = held_scan_records,
    .purge           = held_purge,
    .ingest_finished = held_ingest_finished,
    .flush           = held_flush,
    .compact         = held_compact,
    .get_stats       = rdb_get_stats,
};
