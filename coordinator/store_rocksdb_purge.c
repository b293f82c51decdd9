// SPDX-License-Identifier: MIT
//
// store_rocksdb_purge: how the RocksDB backend drops finished transactions
// once their retention has passed (see store_rocksdb_state.h for the
// layout and why it makes this cheap): a purge time that reads and the
// compaction filters compare with, whole expired files deleted from the
// finished family, and the purge thread that does both every few seconds
// and logs the store's memory and disk use once a minute.

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "log.h"
#include "store_rocksdb_state.h"

#define STORE_USAGE_LOG_MS 60000

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

int
dtxd_rdb_filters_create(rdb_store *s)
{
	s->filter_finished = rocksdb_compactionfilter_create(
	    s, filter_state_free, filter_finished, filter_finished_name);
	s->filter_gids = rocksdb_compactionfilter_create(
	    s, filter_state_free, filter_gids, filter_gids_name);
	return s->filter_finished == NULL || s->filter_gids == NULL
	    ? DTX_ENOMEM
	    : 0;
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
	dtxd_rdb_get_stats(&s->base, &st);
	DTXI_INFO("store: memtables %.1f MiB, block cache %.1f MiB (%.1f "
	          "pinned), table readers %.1f MiB; %.0f MiB of table "
	          "files; %llu purged",
	    (double)mem / 1048576.0,
	    (double)rocksdb_cache_get_usage(s->cache) / 1048576.0,
	    (double)rocksdb_cache_get_pinned_usage(s->cache) / 1048576.0,
	    (double)readers / 1048576.0, (double)disk / 1048576.0,
	    (unsigned long long)st.purged);
}

// The purge thread's round (store_queue.c runs it every purge_every_ms):
// whatever has expired by the wall clock. A purge is a few metadata
// operations (see dtxd_store_purge), so it runs often and never has much
// to do at once. Once a minute, from a minute after the start, it logs
// the store's memory and disk use.
void
dtxd_rdb_purge_round(void *arg)
{
	rdb_store *s = arg;
	uint64_t   n;

	if (s->next_usage_log == 0) {
		s->next_usage_log = dtxi_mono_ms() + STORE_USAGE_LOG_MS;
	}
	(void)dtxd_rdb_purge(&s->base, dtxi_now_ms(), &n);
	if (dtxi_mono_ms() >= s->next_usage_log && dtxd_rdb_enter(s)) {
		log_usage(s);
		dtxd_rdb_leave(s);
		s->next_usage_log = dtxi_mono_ms() + STORE_USAGE_LOG_MS;
	}
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

		if (cf == NULL ||
		    strcmp(cf, dtxd_rdb_cf_name(CF_FINISHED)) != 0 ||
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
purge(dtxd_store *base, int64_t now_ms, uint64_t *purgedp)
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
			rv = dtxd_rdb_error(err, "purge", false);
		} else {
			n = expired_files_gone(s, &x);
		}
	}
	expired_files_free(&x);
	if (rv != 0) {
		return rv;
	}
	if (n > 0) {
		dtxd_store_queue_add_purged(s->queue, n);
		DTXI_INFO("store: purged %llu finished transactions (whole "
		          "files)",
		    (unsigned long long)n);
	}
	*purgedp = n;
	return 0;
}

// The op holds the database handles around the purge (see
// dtxd_rdb_enter).
int
dtxd_rdb_purge(dtxd_store *base, int64_t now_ms, uint64_t *purgedp)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = purge(base, now_ms, purgedp);
	dtxd_rdb_leave(s);
	return rv;
}
