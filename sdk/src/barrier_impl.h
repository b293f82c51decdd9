// SPDX-License-Identifier: MIT
//
// barrier_impl: what the barrier's core (barrier.c) shares with its
// background work (resolver.c), which reads and purges the same keys: the
// barrier object and its key layout. Private to those two files, as nng's
// sockimpl.h is to its socket files. The key layout itself is described
// at the top of barrier.c.

#ifndef DTX_BARRIER_IMPL_H
#define DTX_BARRIER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <rocksdb/c.h>

#include "barrier.h"
#include "gcommit.h"

#define DTXI_BARRIER_STRIPES    64
#define DTXI_BARRIER_PREFIX_MAX 64
// prefix, kind, time, gid, NUL, branch, phase.
#define DTXI_BARRIER_KEY_MAX                                                  \
	(DTXI_BARRIER_PREFIX_MAX + 1 + 8 + DTX_GID_MAX + 1 + 4 + 1)

struct dtxi_barrier {
	rocksdb_t              *db;
	rocksdb_readoptions_t  *ro;
	rocksdb_writeoptions_t *wo;       // never synced: gc syncs
	rocksdb_writeoptions_t *wo_purge; // never synced: a lost purge redoes
	char                    prefix[DTXI_BARRIER_PREFIX_MAX + 1];
	size_t                  plen;
	int64_t                 retention_ms;
	void (*lock)(void *);
	void (*unlock)(void *);
	void           *lock_arg;
	dtxi_crash     *crash;
	dtxi_gcommit   *gc;    // group commit; NULL with no_sync
	atomic_ullong   calls; // answered through the barrier
	dtxi_pstats    *stats; // may be NULL
	pthread_mutex_t stripes[DTXI_BARRIER_STRIPES];
};

// The counter f of b's stats, or NULL without stats.
#define DTXI_BSTAT(b, f) ((b)->stats != NULL ? &(b)->stats->f : NULL)

// Big-endian integers in keys and values.
void     dtxi_barrier_put_be32(unsigned char *p, uint32_t v);
uint32_t dtxi_barrier_get_be32(const unsigned char *p);
void     dtxi_barrier_put_be64(unsigned char *p, uint64_t v);
uint64_t dtxi_barrier_get_be64(const unsigned char *p);

// Key builders; each writes into k (DTXI_BARRIER_KEY_MAX bytes) and returns
// the key's length. gid is at most DTX_GID_MAX bytes (the codec enforces
// it).
size_t dtxi_barrier_key_record(const dtxi_barrier *b, unsigned char *k,
    const char *gid, uint32_t branch, int phase);
size_t dtxi_barrier_key_prepared(
    const dtxi_barrier *b, unsigned char *k, const char *gid, uint32_t branch);
size_t dtxi_barrier_key_time(const dtxi_barrier *b, unsigned char *k,
    int64_t at, const char *gid, uint32_t branch, int phase);

// Reads a key; *val is rocksdb's buffer (rocksdb_free it) or NULL when the
// key is absent. Writes a batch with wo. Errors (logged): DTX_ESTORAGE.
int dtxi_barrier_db_get(dtxi_barrier *b, const unsigned char *k, size_t klen,
    char **val, size_t *vlen);
int dtxi_barrier_db_write(dtxi_barrier *b, rocksdb_writebatch_t *wb,
    const rocksdb_writeoptions_t *wo);

#endif // DTX_BARRIER_IMPL_H
