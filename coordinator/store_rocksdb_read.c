// SPDX-License-Identifier: MIT
//
// store_rocksdb_read: the RocksDB backend's gets and scans (see
// store_rocksdb_state.h for the layout). Reads go straight to RocksDB,
// which is safe from any thread; a finished record whose expiry has been
// purged is not found, whether or not its file is gone yet.

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "log.h"
#include "store_rocksdb_state.h"

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
		return dtxd_rdb_error(err, "get", false);
	}
	return *psp == NULL ? DTX_ENOTFOUND : 0;
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
	rv   = dtxd_store_dup_bytes(data, n, val, len);
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
get_record(dtxd_store *base, const char *gid, uint8_t **val, size_t *len)
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

static int
get_spec(
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
	if (!dtxd_store_specs_parse((const uint8_t *)v, n, &u)) {
		DTXI_WARN("store: the specs of %s are damaged", gid);
	}
	rv = i < u.nspecs
	    ? dtxd_store_dup_bytes(u.specs[i], u.spec_lens[i], val, len)
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
		int erv = dtxd_rdb_error(err, "scan", false);
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
scan_unfinished(dtxd_store *base,
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
				if (!dtxd_store_specs_parse(
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
scan_records(dtxd_store *base, const char *cursor,
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

// The ops hold the database handles around their bodies (see
// dtxd_rdb_enter).

int
dtxd_rdb_get_record(
    dtxd_store *base, const char *gid, uint8_t **val, size_t *len)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = get_record(base, gid, val, len);
	dtxd_rdb_leave(s);
	return rv;
}

int
dtxd_rdb_get_spec(
    dtxd_store *base, const char *gid, uint32_t i, uint8_t **val, size_t *len)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = get_spec(base, gid, i, val, len);
	dtxd_rdb_leave(s);
	return rv;
}

int
dtxd_rdb_scan_unfinished(dtxd_store *base,
    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = scan_unfinished(base, fn, arg);
	dtxd_rdb_leave(s);
	return rv;
}

int
dtxd_rdb_scan_records(dtxd_store *base, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg)
{
	rdb_store *s = (rdb_store *)base;
	int        rv;

	if (!dtxd_rdb_enter(s)) {
		return DTX_ESTORAGE;
	}
	rv = scan_records(base, cursor, fn, arg);
	dtxd_rdb_leave(s);
	return rv;
}
