// SPDX-License-Identifier: MIT
//
// store_rocksdb_write: the RocksDB backend's writes (see
// store_rocksdb_state.h for the layout). Writes are group-committed
// (store_queue.c: callers queue operations, and one writer thread hands
// everything queued at a time to this file as one batch), and each batch
// is one WriteBatch and one (possibly synced) write, so that many
// concurrent transactions share one fsync. Also here: the bulk load
// of finished transactions (dtx-bench's preload) as whole table files, and
// the flush and compaction that tests and the preload ask for, and the
// writer's reopen of a store whose write failed (see store_rocksdb_state.h).

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "log.h"
#include "store_rocksdb_state.h"

// A broken store is reopened only when its file system has this much room:
// the log's preallocation and a memtable flushed at open, with some to
// spare. With less, opening could fail and leave nothing to read from.
// Tried every STORE_REOPEN_EVERY_MS meanwhile (store_rocksdb_state.h).
#define STORE_REOPEN_FREE_BYTES (16u * 1024u * 1024u)

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

static bool
has_room(const char *dir)
{
	struct statvfs v;

	return statvfs(dir, &v) == 0 &&
	    (uint64_t)v.f_bavail * v.f_frsize >= STORE_REOPEN_FREE_BYTES;
}

// The writer's repair of a broken store (see store_rocksdb_state.h), the
// write queue's mend: once there is room, the database is closed and
// opened again with the same options and families. A failed open leaves
// no handle (reads fail with DTX_ESTORAGE) and is tried again.
void
dtxd_rdb_reopen(void *arg)
{
	rdb_store  *s = arg;
	const char *names[CF_COUNT];
	char       *err = NULL;

	if (s->db != NULL && !has_room(s->dir)) {
		return;
	}
	for (int i = 0; i < CF_COUNT; i++) {
		names[i] = dtxd_rdb_cf_name(i);
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
		int rv = dtxd_rdb_error(err, "reopen", false);
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

bool
dtxd_rdb_broken(void *arg)
{
	return ((rdb_store *)arg)->broken;
}

// The write queue's batch (store_queue.c does the group commit): every
// operation of the batch in one WriteBatch, and one write, synced when any
// of them asked. A failed write marks the store broken: the queue then
// calls dtxd_rdb_reopen before the next batch, and now and then while
// idle. RocksDB refuses no single operation, so res stays all 0.
int
dtxd_rdb_write_batch(
    void *arg, dtxd_wop *list, uint32_t n, bool sync, int *res)
{
	rdb_store *s   = arg;
	char      *err = NULL;
	int        rv  = 0;

	(void)n;
	(void)res;
	rocksdb_writebatch_clear(s->batch);
	for (dtxd_wop *op = list; op != NULL; op = op->next) {
		batch_add(s, s->batch, op);
	}
	if (s->db == NULL) {
		rv = DTX_ESTORAGE; // between failed reopens
	} else {
		rocksdb_write(
		    s->db, sync ? s->wo_sync : s->wo_nosync, s->batch, &err);
	}
	if (err != NULL) {
		rv = dtxd_rdb_error(err, "write", false);
	}
	if (rv != 0 && !s->broken) {
		s->broken = true;
		dtxi_log_event(DTXI_LOG_WARN, "store_failing",
		    DTXI_FIELDS(DTXI_F_STR("dir", s->dir)),
		    "a write failed (%s): the store is reopened once there "
		    "is room",
		    dtx_strerror(rv));
	}
	return rv;
}

int
dtxd_rdb_write(dtxd_store *base, dtxd_wop *op)
{
	return dtxd_store_queue_push(((rdb_store *)base)->queue, op);
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
		rv = dtxd_rdb_error(err, "bulk load", false);
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
ingest_finished(dtxd_store *base, const dtxd_store_finished *f, size_t n)
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
		    dtxd_rdb_cf_name(cfs[c]));
		if ((rv = sst_write(s, cfs[c], path, f, n)) != 0) {
			remove(path);
			break;
		}
		rocksdb_ingest_external_file_cf(
		    s->db, s->cf[cfs[c]], files, 1, io, &err);
		if (err != NULL) {
			rv = dtxd_rdb_error(err, "bulk load", false);
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
		dtxi_sleep_ms(20);
	}
}

static int
flush(dtxd_store *base)
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
			rv = dtxd_rdb_error(err, "flush", false);
		}
	}
	rocksdb_flushoptions_destroy(fo);
	if (rv == 0) {
		wait_compactions(s);
	}
	return rv;
}

static int
compact(dtxd_store *base)
{
	rdb_store                *s = (rdb_store *)base;
	rocksdb_compactoptions_t *co;
	int                       rv;

	if ((rv = flush(base)) != 0) {
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

// The ops below hold the database handles around their bodies (see
// dtxd_rdb_enter); compact's body flushes with flush's body, not the op.

int
dtxd_rdb_ingest_finished(
    dtxd_store *base, const dtxd_store_finished *f, size_t n)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = ingest_finished(base, f, n);
	dtxd_rdb_leave(s);
	return rv;
}

int
dtxd_rdb_flush(dtxd_store *base)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = flush(base);
	dtxd_rdb_leave(s);
	return rv;
}

int
dtxd_rdb_compact(dtxd_store *base)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = compact(base);
	dtxd_rdb_leave(s);
	return rv;
}
