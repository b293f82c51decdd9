// SPDX-License-Identifier: MIT
//
// store: dtxd's durable state in RocksDB (through its C API), and the only
// file of dtxd that touches RocksDB. Writes are group-committed: callers
// queue operations, and one writer thread turns everything queued at a time
// into one WriteBatch and one (possibly synced) write, so that many
// concurrent transactions share one fsync. Reads go straight to RocksDB,
// which is safe from any thread. RocksDB's error strings are logged, freed
// and mapped to DTX_ELOCKED, DTX_ENOSPC or DTX_ESTORAGE here, at the
// boundary, so no other module ever sees them.
//
// Lock order: store->mtx is a leaf lock. It guards only the queue, the
// closing flag and the stats; no RocksDB call and no callback runs under it.

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "log.h"
#include "store.h"

// Sizes chosen for a small daemon whose whole RSS should stay within 64 MiB
// at 10,000 transactions in flight: two memtables of 8 MiB at most (the
// active one and one being flushed), an 8 MiB block cache, and bloom filters
// so that a point lookup of an absent gid rarely reads a block at all. A
// transaction writes about 1 KiB of memtable (3 records, keys and index
// entries), so at 7,000 tx/s a memtable fills and is flushed about once a
// second, which RocksDB's two background threads keep up with; 16 MiB
// memtables cost 16 MiB more RSS at peak and bought no throughput we could
// measure.
#define STORE_BLOCK_CACHE_BYTES  (8u * 1024u * 1024u)
#define STORE_WRITE_BUFFER_BYTES (8u * 1024u * 1024u)
#define STORE_MAX_WRITE_BUFFERS  2
#define STORE_BLOOM_BITS_PER_KEY 10.0
#define STORE_PARALLELISM        2
#define STORE_KEEP_LOG_FILES     3
#define STORE_MAX_LOG_FILE_BYTES (1024u * 1024u)
#define STORE_PURGE_BATCH        1000

// RocksDB's own LOG file at WARN (its InfoLogLevel 2) rather than INFO.
// Beside saving I/O, this matters on a full disk: Debian's librocksdb is
// built with assertions on, and a LOG line written after an earlier LOG
// write failed aborts the process (WritableFileWriter's
// "sync_without_flush_called_" assertion). At INFO the WAL failure itself
// produces enough LOG lines to get there; at WARN a failed write is
// reported to its caller instead.
#define STORE_INFO_LOG_LEVEL 2

// The longest key is an e/ key: "e/" + 8 bytes + "/" + gid.
#define STORE_KEY_MAX (2 + 8 + 1 + DTX_GID_MAX)

struct dtxd_store {
	rocksdb_t              *db;
	rocksdb_options_t      *opts;
	rocksdb_cache_t        *cache;
	rocksdb_writeoptions_t *wo_sync;
	rocksdb_writeoptions_t *wo_nosync;
	rocksdb_readoptions_t  *ro;
	rocksdb_writebatch_t   *batch; // the writer thread's own
	uint32_t                sync_delay_ms;

	pthread_mutex_t  mtx;
	pthread_cond_t   cv;
	dtxd_wop        *head;
	dtxd_wop        *tail;
	bool             closing;
	dtxd_store_stats stats;
	pthread_t        writer;
};

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

// Gids come from the network, so they are checked here rather than trusted:
// 1..DTX_GID_MAX printable bytes. They may contain '/', which is why every
// key parser below works from the fixed-size parts of the key, never by
// searching for a separator.
static bool
gid_valid(const char *gid, size_t *lenp)
{
	size_t n;

	if (gid == NULL) {
		return false;
	}
	for (n = 0; gid[n] != '\0'; n++) {
		// Printable ASCII, spelled out so the locale cannot widen it.
		if (n >= DTX_GID_MAX || gid[n] < 0x20 || gid[n] > 0x7e) {
			return false;
		}
	}
	*lenp = n;
	return n > 0;
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
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
key_rec(char *buf, const char *gid, size_t glen)
{
	buf[0] = 't';
	buf[1] = '/';
	memcpy(buf + 2, gid, glen);
	return 2 + glen;
}

static size_t
key_unf(char *buf, const char *gid, size_t glen)
{
	buf[0] = 'u';
	buf[1] = '/';
	memcpy(buf + 2, gid, glen);
	return 2 + glen;
}

static size_t
key_spec(char *buf, const char *gid, size_t glen, uint32_t i)
{
	buf[0] = 'b';
	buf[1] = '/';
	memcpy(buf + 2, gid, glen);
	buf[2 + glen] = '/';
	put_be32((uint8_t *)buf + 3 + glen, i);
	return 2 + glen + 1 + 4;
}

static size_t
key_ret(char *buf, int64_t ms, const char *gid, size_t glen)
{
	buf[0] = 'e';
	buf[1] = '/';
	put_be64((uint8_t *)buf + 2, (uint64_t)ms);
	buf[10] = '/';
	memcpy(buf + 11, gid, glen);
	return 11 + glen;
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

// Adds one operation's puts and deletes to the batch. Operations were
// validated when queued, so this cannot fail.
static void
batch_add(rocksdb_writebatch_t *b, const dtxd_wop *op)
{
	char   key[STORE_KEY_MAX];
	size_t glen = strlen(op->gid);
	size_t klen;

	klen = key_rec(key, op->gid, glen);
	rocksdb_writebatch_put(
	    b, key, klen, (const char *)op->record, op->record_len);
	switch (op->kind) {
	case DTXD_WOP_CREATE:
		for (uint32_t i = 0; i < op->nspecs; i++) {
			klen = key_spec(key, op->gid, glen, i);
			rocksdb_writebatch_put(b, key, klen,
			    (const char *)op->specs[i], op->spec_lens[i]);
		}
		klen = key_unf(key, op->gid, glen);
		rocksdb_writebatch_put(b, key, klen, "", 0);
		break;
	case DTXD_WOP_UPDATE:
		break;
	case DTXD_WOP_FINISH:
		klen = key_unf(key, op->gid, glen);
		rocksdb_writebatch_delete(b, key, klen);
		klen = key_ret(key, op->expire_ms, op->gid, glen);
		rocksdb_writebatch_put(b, key, klen, "", 0);
		break;
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
	dtxd_store *s = arg;

	for (;;) {
		dtxd_wop *list;
		dtxd_wop *op;
		dtxd_wop *next;
		bool      sync = false;
		uint64_t  n    = 0;
		char     *err  = NULL;
		int       rv   = 0;

		pthread_mutex_lock(&s->mtx);
		while (s->head == NULL && !s->closing) {
			pthread_cond_wait(&s->cv, &s->mtx);
		}
		list    = s->head;
		s->head = NULL;
		s->tail = NULL;
		pthread_mutex_unlock(&s->mtx);
		if (list == NULL) {
			break; // Closing and drained.
		}

		rocksdb_writebatch_clear(s->batch);
		for (op = list; op != NULL; op = op->next) {
			batch_add(s->batch, op);
			sync = sync || op->sync;
			n++;
		}
		if (sync && s->sync_delay_ms > 0) {
			sleep_ms(s->sync_delay_ms);
		}
		rocksdb_write(
		    s->db, sync ? s->wo_sync : s->wo_nosync, s->batch, &err);
		if (err != NULL) {
			rv = store_error(err, "write", false);
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

void
dtxd_store_opts_init(dtxd_store_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->create_if_missing = true;
	o->sync_delay_ms     = 0;
}

// Frees whatever part of the store exists; used both by a failed open and
// by close (after the writer has stopped).
static void
store_free(dtxd_store *s)
{
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
	if (s->opts != NULL) {
		rocksdb_options_destroy(s->opts);
	}
	if (s->cache != NULL) {
		rocksdb_cache_destroy(s->cache);
	}
	free(s);
}

int
dtxd_store_open(dtxd_store **sp, const char *dir, const dtxd_store_opts *o)
{
	dtxd_store                          *s;
	dtxd_store_opts                      defaults;
	rocksdb_block_based_table_options_t *bbto;
	char                                *err = NULL;
	int                                  rv;

	if (sp == NULL || dir == NULL || dir[0] == '\0') {
		return DTX_EINVAL;
	}
	if (o == NULL) {
		dtxd_store_opts_init(&defaults);
		o = &defaults;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return DTX_ENOMEM;
	}
	s->sync_delay_ms = o->sync_delay_ms;

	// The C API returns NULL from these constructors only when C++'s new
	// fails, which would have thrown first; they are checked anyway so
	// that an odd build degrades to DTX_ENOMEM rather than a crash.
	s->opts      = rocksdb_options_create();
	s->cache     = rocksdb_cache_create_lru(STORE_BLOCK_CACHE_BYTES);
	s->wo_sync   = rocksdb_writeoptions_create();
	s->wo_nosync = rocksdb_writeoptions_create();
	s->ro        = rocksdb_readoptions_create();
	s->batch     = rocksdb_writebatch_create();
	bbto         = rocksdb_block_based_options_create();
	if (s->opts == NULL || s->cache == NULL || s->wo_sync == NULL ||
	    s->wo_nosync == NULL || s->ro == NULL || s->batch == NULL ||
	    bbto == NULL) {
		if (bbto != NULL) {
			rocksdb_block_based_options_destroy(bbto);
		}
		store_free(s);
		return DTX_ENOMEM;
	}
	rocksdb_writeoptions_set_sync(s->wo_sync, 1);
	rocksdb_writeoptions_set_sync(s->wo_nosync, 0);

	// The table options share the cache (a reference is taken) and own
	// the filter policy; the table factory copies the table options, so
	// they can go right away while the cache is ours to destroy at close.
	rocksdb_block_based_options_set_block_cache(bbto, s->cache);
	rocksdb_block_based_options_set_filter_policy(
	    bbto, rocksdb_filterpolicy_create_bloom(STORE_BLOOM_BITS_PER_KEY));
	// By default every SST file's index and bloom filter stay in memory
	// outside the cache, so dtxd's RSS grew with the data retained (about
	// 0.5 MiB/s at 7,000 tx/s: 72 -> 157 MiB in 3 minutes at 10,000 in
	// flight). In the block cache they share its fixed bound instead;
	// those of L0, the newest files and the ones most lookups of a new
	// gid touch, stay pinned there.
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(bbto, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
	    bbto, 1);
	rocksdb_options_set_block_based_table_factory(s->opts, bbto);
	rocksdb_block_based_options_destroy(bbto);

	rocksdb_options_set_create_if_missing(
	    s->opts, o->create_if_missing ? 1 : 0);
	rocksdb_options_increase_parallelism(s->opts, STORE_PARALLELISM);
	rocksdb_options_set_write_buffer_size(
	    s->opts, STORE_WRITE_BUFFER_BYTES);
	rocksdb_options_set_max_write_buffer_number(
	    s->opts, STORE_MAX_WRITE_BUFFERS);
	rocksdb_options_set_keep_log_file_num(s->opts, STORE_KEEP_LOG_FILES);
	rocksdb_options_set_info_log_level(s->opts, STORE_INFO_LOG_LEVEL);
	rocksdb_options_set_max_log_file_size(
	    s->opts, STORE_MAX_LOG_FILE_BYTES);

	s->db = rocksdb_open(s->opts, dir, &err);
	if (err != NULL) {
		rv    = store_error(err, "open", true);
		s->db = NULL;
		store_free(s);
		return rv;
	}

	if (pthread_mutex_init(&s->mtx, NULL) != 0) {
		store_free(s);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&s->cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mtx);
		store_free(s);
		return DTX_ENOMEM;
	}
	if (pthread_create(&s->writer, NULL, store_writer, s) != 0) {
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mtx);
		store_free(s);
		return DTX_ENOMEM;
	}
	*sp = s;
	return 0;
}

void
dtxd_store_close(dtxd_store *s)
{
	if (s == NULL) {
		return;
	}
	// From here on new writes are refused, but the writer still drains
	// everything already accepted (each accepted op's done must run
	// exactly once) before it sees the empty queue and exits.
	pthread_mutex_lock(&s->mtx);
	s->closing = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	pthread_join(s->writer, NULL);

	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mtx);
	store_free(s);
}

// Checks everything the writer will rely on, so that a bad operation is
// refused here instead of poisoning the batch it would share with others.
static bool
wop_valid(const dtxd_wop *op)
{
	size_t glen;

	if (op == NULL || op->done == NULL || !gid_valid(op->gid, &glen)) {
		return false;
	}
	if (op->record == NULL && op->record_len > 0) {
		return false;
	}
	switch (op->kind) {
	case DTXD_WOP_CREATE:
		if (op->nspecs > 0 &&
		    (op->specs == NULL || op->spec_lens == NULL)) {
			return false;
		}
		for (uint32_t i = 0; i < op->nspecs; i++) {
			if (op->specs[i] == NULL && op->spec_lens[i] > 0) {
				return false;
			}
		}
		return true;
	case DTXD_WOP_UPDATE:
		return true;
	case DTXD_WOP_FINISH:
		// A negative time would sort after every positive one in the
		// big-endian key and never be purged.
		return op->expire_ms >= 0;
	}
	return false;
}

int
dtxd_store_write(dtxd_store *s, dtxd_wop *op)
{
	if (s == NULL || !wop_valid(op)) {
		return DTX_EINVAL;
	}
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

// Reads one key into a fresh malloc'd copy. The pinned-slice API tells an
// absent key from an empty value, which rocksdb_get() does not reliably do.
static int
store_get(
    dtxd_store *s, const char *key, size_t klen, uint8_t **val, size_t *len)
{
	rocksdb_pinnableslice_t *ps;
	const char              *data;
	size_t                   n   = 0;
	char                    *err = NULL;
	uint8_t                 *buf;

	ps = rocksdb_get_pinned(s->db, s->ro, key, klen, &err);
	if (err != NULL) {
		return store_error(err, "get", false);
	}
	if (ps == NULL) {
		return DTX_ENOTFOUND;
	}
	data = rocksdb_pinnableslice_value(ps, &n);
	if ((buf = malloc(n > 0 ? n : 1)) == NULL) {
		rocksdb_pinnableslice_destroy(ps);
		return DTX_ENOMEM;
	}
	if (n > 0) {
		memcpy(buf, data, n);
	}
	rocksdb_pinnableslice_destroy(ps);
	*val = buf;
	*len = n;
	return 0;
}

int
dtxd_store_get_record(
    dtxd_store *s, const char *gid, uint8_t **val, size_t *len)
{
	char   key[STORE_KEY_MAX];
	size_t glen;

	if (s == NULL || val == NULL || len == NULL ||
	    !gid_valid(gid, &glen)) {
		return DTX_EINVAL;
	}
	return store_get(s, key, key_rec(key, gid, glen), val, len);
}

int
dtxd_store_get_spec(
    dtxd_store *s, const char *gid, uint32_t i, uint8_t **val, size_t *len)
{
	char   key[STORE_KEY_MAX];
	size_t glen;

	if (s == NULL || val == NULL || len == NULL ||
	    !gid_valid(gid, &glen)) {
		return DTX_EINVAL;
	}
	return store_get(s, key, key_spec(key, gid, glen, i), val, len);
}

// Opens an iterator over the keys of one prefix class ("t/", "u/", "e/"),
// bounded above by the next class, positioned at start. The read options
// hold a pointer to the bound, so the bound must outlive the iterator; the
// caller passes storage for it and frees both with iter_close().
static rocksdb_iterator_t *
iter_open(dtxd_store *s, char cls, char bound[2], rocksdb_readoptions_t **rop,
    const char *start, size_t start_len)
{
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;

	if ((ro = rocksdb_readoptions_create()) == NULL) {
		return NULL;
	}
	// '0' follows '/' in ASCII, so "x0" is the least key after every
	// "x/..." key.
	bound[0] = cls;
	bound[1] = '0';
	rocksdb_readoptions_set_iterate_upper_bound(ro, bound, 2);
	rocksdb_readoptions_set_fill_cache(ro, 0);
	if ((it = rocksdb_create_iterator(s->db, ro)) == NULL) {
		rocksdb_readoptions_destroy(ro);
		return NULL;
	}
	rocksdb_iter_seek(it, start, start_len);
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

// Copies the gid out of a key whose gid runs from off to the end, as a
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
	return gid_valid(gid, &glen) && glen == n;
}

int
dtxd_store_scan_unfinished(dtxd_store *s,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg)
{
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;
	char                   bound[2];
	int                    rv = 0;

	if (s == NULL || fn == NULL) {
		return DTX_EINVAL;
	}
	if ((it = iter_open(s, 'u', bound, &ro, "u/", 2)) == NULL) {
		return DTX_ENOMEM;
	}
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		char        gid[DTX_GID_MAX + 1];
		char        key[STORE_KEY_MAX];
		size_t      klen;
		const char *k = rocksdb_iter_key(it, &klen);
		uint8_t    *rec;
		size_t      len;

		if (!key_gid(k, klen, 2, gid)) {
			DTXI_WARN("store: skipping a malformed unfinished "
			          "index key (%zu bytes)",
			    klen);
			continue;
		}
		rv =
		    store_get(s, key, key_rec(key, gid, klen - 2), &rec, &len);
		if (rv == DTX_ENOTFOUND) {
			// A u/ key is only ever written with its record in one
			// batch, so this is damage from outside; the rest of
			// the transactions can still be recovered.
			DTXI_WARN("store: unfinished transaction %s has no "
			          "record; skipped",
			    gid);
			rv = 0;
			continue;
		}
		if (rv != 0) {
			break;
		}
		rv = fn(arg, gid, rec, len);
		free(rec);
		if (rv != 0) {
			break;
		}
	}
	return iter_close(it, ro, rv);
}

int
dtxd_store_scan_records(dtxd_store *s, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg)
{
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;
	char                   bound[2];
	char                   start[2 + DTX_GID_MAX];
	size_t                 clen;
	int                    rv = 0;

	if (s == NULL || fn == NULL) {
		return DTX_EINVAL;
	}
	if (cursor == NULL) {
		cursor = "";
	}
	// The cursor is a gid handed back by a client; it need not exist any
	// more, but it must fit a key.
	if ((clen = strlen(cursor)) > DTX_GID_MAX) {
		return DTX_EINVAL;
	}
	start[0] = 't';
	start[1] = '/';
	memcpy(start + 2, cursor, clen);
	if ((it = iter_open(s, 't', bound, &ro, start, 2 + clen)) == NULL) {
		return DTX_ENOMEM;
	}
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		char        gid[DTX_GID_MAX + 1];
		size_t      klen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v;
		size_t      vlen;

		// Seek lands on the cursor itself when it still exists;
		// the page starts strictly after it.
		if (klen == 2 + clen && memcmp(k, start, klen) == 0) {
			continue;
		}
		if (!key_gid(k, klen, 2, gid)) {
			DTXI_WARN("store: skipping a malformed record key "
			          "(%zu bytes)",
			    klen);
			continue;
		}
		v  = rocksdb_iter_value(it, &vlen);
		rv = fn(arg, gid, (const uint8_t *)v, vlen);
		if (rv != 0) {
			if (rv < 0) {
				rv = 0;
			}
			break;
		}
	}
	return iter_close(it, ro, rv);
}

// Adds the deletes of every branch spec of gid to the batch. A plain prefix
// "b/<gid>/" also matches the specs of longer gids that start with
// "<gid>/", so only keys of the exact length of this gid's spec keys are
// taken; same length and same prefix means same gid.
static int
purge_specs(
    dtxd_store *s, rocksdb_writebatch_t *b, const char *gid, size_t glen)
{
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;
	char                   bound[2];
	char                   prefix[STORE_KEY_MAX];
	size_t                 plen = key_spec(prefix, gid, glen, 0) - 4;

	if ((it = iter_open(s, 'b', bound, &ro, prefix, plen + 4)) == NULL) {
		return DTX_ENOMEM;
	}
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t      klen;
		const char *k = rocksdb_iter_key(it, &klen);

		if (klen < plen || memcmp(k, prefix, plen) != 0) {
			break;
		}
		if (klen == plen + 4) {
			rocksdb_writebatch_delete(b, k, klen);
		}
	}
	return iter_close(it, ro, 0);
}

// Purge walks the retention index in time order and stops at the first
// entry still inside its retention period, so its cost follows the number
// of expired transactions, not the size of the store. Deletes go out in
// batches of STORE_PURGE_BATCH transactions, unsynced: a purge lost in a
// crash is simply done again by the next one. The iterator reads a snapshot,
// so our own deletes do not disturb it.
int
dtxd_store_purge(dtxd_store *s, int64_t now_ms, uint64_t *purged)
{
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;
	rocksdb_writebatch_t  *b;
	char                   bound[2];
	uint64_t               n       = 0;
	uint64_t               pending = 0;
	char                  *err     = NULL;
	int                    rv      = 0;

	if (s == NULL || purged == NULL) {
		return DTX_EINVAL;
	}
	if (now_ms < 0) {
		*purged = 0;
		return 0;
	}
	if ((b = rocksdb_writebatch_create()) == NULL) {
		return DTX_ENOMEM;
	}
	if ((it = iter_open(s, 'e', bound, &ro, "e/", 2)) == NULL) {
		rocksdb_writebatch_destroy(b);
		return DTX_ENOMEM;
	}
	for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		char        gid[DTX_GID_MAX + 1];
		char        key[STORE_KEY_MAX];
		size_t      klen;
		const char *k = rocksdb_iter_key(it, &klen);

		if (klen < 11 || k[10] != '/') {
			DTXI_WARN("store: skipping a malformed retention key "
			          "(%zu bytes)",
			    klen);
			continue;
		}
		if (get_be64((const uint8_t *)k + 2) > (uint64_t)now_ms) {
			break;
		}
		// The e/ key goes even when its gid is malformed, so a bad
		// entry cannot pin the head of the index forever.
		rocksdb_writebatch_delete(b, k, klen);
		if (key_gid(k, klen, 11, gid)) {
			size_t glen = klen - 11;

			rocksdb_writebatch_delete(
			    b, key, key_rec(key, gid, glen));
			if ((rv = purge_specs(s, b, gid, glen)) != 0) {
				break;
			}
		} else {
			DTXI_WARN("store: retention key with a malformed gid "
			          "(%zu bytes) removed",
			    klen);
		}
		n++;
		if (++pending == STORE_PURGE_BATCH) {
			rocksdb_write(s->db, s->wo_nosync, b, &err);
			if (err != NULL) {
				rv = store_error(err, "purge", false);
				break;
			}
			rocksdb_writebatch_clear(b);
			pending = 0;
		}
	}
	if (rv == 0 && pending > 0) {
		rocksdb_write(s->db, s->wo_nosync, b, &err);
		if (err != NULL) {
			rv = store_error(err, "purge", false);
		}
	}
	rv = iter_close(it, ro, rv);
	rocksdb_writebatch_destroy(b);
	if (rv == 0) {
		*purged = n;
	}
	return rv;
}

void
dtxd_store_get_stats(dtxd_store *s, dtxd_store_stats *st)
{
	pthread_mutex_lock(&s->mtx);
	*st = s->stats;
	pthread_mutex_unlock(&s->mtx);
}
