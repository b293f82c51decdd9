// SPDX-License-Identifier: MIT
//
// store_backend: what a store backend implements, and the one place where
// store.c (the interface the rest of dtxd calls) meets the backends. Only
// store.c and the backends include this file.
//
// A backend embeds struct dtxd_store as its first member and fills ops.
// store.c has already checked every argument before it calls an op (the
// rules are in store.h, stated once), so an op may rely on them: a valid
// gid, a non-NULL callback, a valid write. Every op is required but these:
// without ingest_finished or a session op (session_open, session_renew,
// session_end, takeover, ask_abort, aborts_asked) the call returns
// DTX_EUNSUPPORTED; without flush or
// compact there is nothing to do and the call returns 0; without ready the
// store is always ready.

#ifndef DTXD_STORE_BACKEND_H
#define DTXD_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct dtxd_store_ops {
	// Each as the dtxd_store_* function of the same name in store.h.
	void (*close)(dtxd_store *s);
	int (*write)(dtxd_store *s, dtxd_wop *op);
	int (*get_record)(
	    dtxd_store *s, const char *gid, uint8_t **val, size_t *len);
	int (*get_spec)(dtxd_store *s, const char *gid, uint32_t i,
	    uint8_t **val, size_t *len);
	int (*scan_unfinished)(dtxd_store *s,
	    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg);
	int (*scan_records)(dtxd_store *s, const char *cursor,
	    int (*fn)(
	        void *arg, const char *gid, const uint8_t *rec, size_t len),
	    void *arg);
	int (*purge)(dtxd_store *s, int64_t now_ms, uint64_t *purged);
	int (*ingest_finished)(
	    dtxd_store *s, const dtxd_store_finished *f, size_t n);
	int (*flush)(dtxd_store *s);
	int (*compact)(dtxd_store *s);
	void (*get_stats)(dtxd_store *s, dtxd_store_stats *st);
	bool (*ready)(dtxd_store *s);
	int (*session_open)(dtxd_store *s, const char *name, const char *url,
	    uint32_t lease_ms, uint64_t *session);
	int (*session_renew)(
	    dtxd_store *s, uint64_t session, uint32_t lease_ms, bool *lapsed);
	int (*session_end)(dtxd_store *s, uint64_t session);
	int (*takeover)(dtxd_store *s, uint64_t session, uint32_t lease_ms,
	    uint32_t max, int (*fn)(void *arg, const dtxd_store_unfinished *u),
	    void *arg, uint32_t *n);
	int (*ask_abort)(dtxd_store *s, const char *gid);
	int (*aborts_asked)(dtxd_store *s, uint64_t      session,
	    int (*fn)(void *arg, const char *gid), void *arg);
} dtxd_store_ops;

struct dtxd_store {
	const dtxd_store_ops *ops;
};

// True when gid is 1..DTX_GID_MAX printable ASCII bytes (*lenp: its
// length). Gids come from the network and keys from disk, so both are
// checked with this rule.
bool dtxd_store_gid_valid(const char *gid, size_t *lenp);

// Copies data[0..n) into a fresh malloc'd *val (never NULL, even for n 0),
// as a read op returns a value: 0 or DTX_ENOMEM.
int dtxd_store_dup_bytes(
    const void *data, size_t n, uint8_t **val, size_t *len);

// The backends' constructors; as dtxd_store_open, where is a directory
// (RocksDB) or a libpq connection string (PostgreSQL).
int dtxd_store_rocksdb_open(
    dtxd_store **sp, const char *dir, const dtxd_store_opts *o);
int dtxd_store_pg_open(
    dtxd_store **sp, const char *conninfo, const dtxd_store_opts *o);

// Splits a specs value, framed as (u32 BE length, bytes) pairs, into u's
// specs (pointing into p). Returns false, with u->nspecs 0, when it is
// damaged. Both backends keep a transaction's specs in this one value.
bool dtxd_store_specs_parse(
    const uint8_t *p, size_t n, dtxd_store_unfinished *u);

#endif // DTXD_STORE_BACKEND_H
