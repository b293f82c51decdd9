// SPDX-License-Identifier: MIT
//
// store_rocksdb: the RocksDB backend of the store (store.h), through
// RocksDB's C API; the default, embedded, for one dtxd. This file opens
// and closes the database: its options and memory, the shape of each
// column family, the layout check, the write queue (store_queue.c) with
// the callbacks its threads run. The backend's other jobs
// have a file each (writes, reads, purge), and the layout and the state
// they share are in store_rocksdb_state.h. Only these files of dtxd touch
// RocksDB: its error strings are logged, freed and mapped to DTX_ELOCKED,
// DTX_ENOSPC or DTX_ESTORAGE at the boundary (store_rocksdb_state.c), so
// no other module ever sees them.

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "log.h"
#include "store.h"
#include "store_backend.h"
#include "store_queue.h"
#include "store_rocksdb_state.h"

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

// The layout's version, in the default family; an earlier dtxd kept every
// key in the default family and wrote no version.
#define STORE_FORMAT_KEY   "format"
#define STORE_FORMAT_VALUE "dtxd-store 2"

// How each family is written, and the shape chosen for it. At 13k tx/s the
// unfinished family takes about 13 MiB/s of puts and deletes that mostly
// cancel in the memtable, the finished one 3-4 MiB/s, the gid index under
// 1 MiB/s. Small target files keep each compaction short and make the unit
// a purge frees small (an 8 MiB file of records spans 2-3 s of expiry);
// small level targets keep the unfinished tree at two levels, so its
// tombstones reach the bottom, and are dropped, within seconds.
typedef struct cf_shape {
	size_t   write_buffer;
	uint64_t target_file;
	uint64_t level_base;
	bool     bloom; // lookups may miss (a new gid)
} cf_shape;

static const cf_shape cf_shapes[CF_COUNT] = {
    [CF_DEFAULT]    = {1u << 20, 1u << 20, 4u << 20, false},
    [CF_UNFINISHED] = {4u << 20, 4u << 20, 16u << 20, true},
    [CF_FINISHED]   = {4u << 20, 8u << 20, 32u << 20, false},
    [CF_GIDS]       = {2u << 20, 4u << 20, 16u << 20, true},
};

// Frees whatever part of the store exists; used both by a failed open and
// by close. The queue goes first: its close drains the writes and stops
// the threads, which use the database.
static void
store_free(rdb_store *s)
{
	dtxd_store_queue_free(s->queue);
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
			return dtxd_rdb_error(err, "options", false);
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
		return dtxd_rdb_error(err, "open", true);
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
		return dtxd_rdb_error(err, "get", false);
	}
	if (ps == NULL) {
		rocksdb_flushoptions_t *fo;

		rocksdb_put_cf(s->db, s->wo_sync, s->cf[CF_DEFAULT],
		    STORE_FORMAT_KEY, strlen(STORE_FORMAT_KEY),
		    STORE_FORMAT_VALUE, strlen(STORE_FORMAT_VALUE), &err);
		if (err != NULL) {
			return dtxd_rdb_error(err, "write", false);
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
		return err != NULL ? dtxd_rdb_error(err, "flush", false) : 0;
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

// What the write queue and its threads (store_queue.h) call back.
static const dtxd_store_queue_ops rdb_queue_ops = {
    .write         = dtxd_rdb_write_batch,
    .broken        = dtxd_rdb_broken,
    .mend          = dtxd_rdb_reopen,
    .mend_every_ms = STORE_REOPEN_EVERY_MS,
    .purge         = dtxd_rdb_purge_round,
};

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
	s->base.ops     = &rdb_ops;
	s->on_batch     = o->on_batch;
	s->on_batch_arg = o->on_batch_arg;
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
	s->opts      = rocksdb_options_create();
	s->cache     = rocksdb_cache_create_lru(STORE_BLOCK_CACHE_BYTES);
	s->wo_sync   = rocksdb_writeoptions_create();
	s->wo_nosync = rocksdb_writeoptions_create();
	s->ro        = rocksdb_readoptions_create();
	s->batch     = rocksdb_writebatch_create();
	if (dtxd_rdb_filters_create(s) != 0 || s->opts == NULL ||
	    s->cache == NULL || s->wo_sync == NULL || s->wo_nosync == NULL ||
	    s->ro == NULL || s->batch == NULL) {
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
		names[i] = dtxd_rdb_cf_name(i);
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
		rv    = dtxd_rdb_error(err, "open", true);
		s->db = NULL;
		memset(s->cf, 0, sizeof(s->cf));
		store_free(s);
		return rv;
	}
	if ((rv = check_format(s)) != 0 ||
	    (rv = dtxd_store_queue_alloc(&s->queue, &rdb_queue_ops, s, o)) !=
	        0 ||
	    (rv = dtxd_store_queue_start(s->queue)) != 0) {
		store_free(s);
		return rv;
	}
	*sp = &s->base;
	return 0;
}

static void
rdb_close(dtxd_store *base)
{
	store_free((rdb_store *)base);
}

static const dtxd_store_ops rdb_ops = {
    .close           = rdb_close,
    .write           = dtxd_rdb_write,
    .get_record      = dtxd_rdb_get_record,
    .get_spec        = dtxd_rdb_get_spec,
    .scan_unfinished = dtxd_rdb_scan_unfinished,
    .scan_records    = dtxd_rdb_scan_records,
    .purge           = dtxd_rdb_purge,
    .ingest_finished = dtxd_rdb_ingest_finished,
    .flush           = dtxd_rdb_flush,
    .compact         = dtxd_rdb_compact,
    .get_stats       = dtxd_rdb_get_stats,
};
