// SPDX-License-Identifier: MIT
//
// store: the interface of dtxd's store (store.h). It checks every argument,
// once for both backends, then hands the call to the backend the store was
// opened with (store_backend.h). A write is checked here rather than in
// the backend's writer so that a bad one is refused at once instead of
// failing the batch it would share with others.

#include <string.h>

#include <dtx/dtx.h>

#include "store.h"
#include "store_backend.h"

void
dtxd_store_opts_init(dtxd_store_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->backend           = DTXD_STORE_ROCKSDB;
	o->create_if_missing = true;
	o->purge_every_ms    = 1000;
	o->retention_ms      = 24LL * 3600 * 1000;
	o->sync_delay_ms     = 0;
}

int
dtxd_store_open(dtxd_store **sp, const char *where, const dtxd_store_opts *o)
{
	dtxd_store_opts defaults;

	if (sp == NULL || where == NULL || where[0] == '\0') {
		return DTX_EINVAL;
	}
	if (o == NULL) {
		dtxd_store_opts_init(&defaults);
		o = &defaults;
	}
	switch (o->backend) {
	case DTXD_STORE_ROCKSDB:
		return dtxd_store_rocksdb_open(sp, where, o);
	case DTXD_STORE_POSTGRES:
		return dtxd_store_pg_open(sp, where, o);
	}
	return DTX_EINVAL;
}

void
dtxd_store_close(dtxd_store *s)
{
	if (s != NULL) {
		s->ops->close(s);
	}
}

static bool
wop_valid(const dtxd_wop *op)
{
	size_t glen;

	if (op == NULL || op->done == NULL ||
	    !dtxd_store_gid_valid(op->gid, &glen)) {
		return false;
	}
	if (op->record == NULL && op->record_len > 0) {
		return false;
	}
	switch (op->kind) {
	case DTXD_WOP_CREATE:
		if (op->nspecs > DTX_BRANCHES_MAX ||
		    (op->nspecs > 0 &&
		        (op->specs == NULL || op->spec_lens == NULL))) {
			return false;
		}
		for (uint32_t i = 0; i < op->nspecs; i++) {
			if ((op->specs[i] == NULL && op->spec_lens[i] > 0) ||
			    op->spec_lens[i] > UINT32_MAX) {
				return false;
			}
		}
		return true;
	case DTXD_WOP_UPDATE:
		return true;
	case DTXD_WOP_FINISH:
		// A negative time would sort after every positive one in
		// RocksDB's big-endian key and never be purged.
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
	return s->ops->write(s, op);
}

int
dtxd_store_get_record(
    dtxd_store *s, const char *gid, uint8_t **val, size_t *len)
{
	size_t glen;

	if (s == NULL || val == NULL || len == NULL ||
	    !dtxd_store_gid_valid(gid, &glen)) {
		return DTX_EINVAL;
	}
	return s->ops->get_record(s, gid, val, len);
}

int
dtxd_store_get_spec(
    dtxd_store *s, const char *gid, uint32_t i, uint8_t **val, size_t *len)
{
	size_t glen;

	if (s == NULL || val == NULL || len == NULL ||
	    !dtxd_store_gid_valid(gid, &glen)) {
		return DTX_EINVAL;
	}
	return s->ops->get_spec(s, gid, i, val, len);
}

int
dtxd_store_scan_unfinished(dtxd_store *s,
    int (*fn)(void *arg, const dtxd_store_unfinished *u), void *arg)
{
	if (s == NULL || fn == NULL) {
		return DTX_EINVAL;
	}
	return s->ops->scan_unfinished(s, fn, arg);
}

int
dtxd_store_scan_records(dtxd_store *s, const char *cursor,
    int (*fn)(void *arg, const char *gid, const uint8_t *rec, size_t len),
    void *arg)
{
	if (s == NULL || fn == NULL) {
		return DTX_EINVAL;
	}
	if (cursor == NULL) {
		cursor = "";
	}
	// The cursor is a gid handed back by a client; it need not exist any
	// more, but it must fit a key.
	if (strlen(cursor) > DTX_GID_MAX) {
		return DTX_EINVAL;
	}
	return s->ops->scan_records(s, cursor, fn, arg);
}

int
dtxd_store_purge(dtxd_store *s, int64_t now_ms, uint64_t *purged)
{
	if (s == NULL || purged == NULL) {
		return DTX_EINVAL;
	}
	*purged = 0;
	if (now_ms < 0) {
		return 0;
	}
	return s->ops->purge(s, now_ms, purged);
}

int
dtxd_store_ingest_finished(
    dtxd_store *s, const dtxd_store_finished *f, size_t n)
{
	if (s == NULL || (f == NULL && n > 0)) {
		return DTX_EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t glen;
		if (!dtxd_store_gid_valid(f[i].gid, &glen) ||
		    f[i].expire_ms < 0 ||
		    (f[i].record == NULL && f[i].record_len > 0) ||
		    (i > 0 &&
		        (strcmp(f[i - 1].gid, f[i].gid) >= 0 ||
		            f[i - 1].expire_ms > f[i].expire_ms))) {
			return DTX_EINVAL;
		}
	}
	if (n == 0) {
		return 0;
	}
	if (s->ops->ingest_finished == NULL) {
		return DTX_EUNSUPPORTED;
	}
	return s->ops->ingest_finished(s, f, n);
}

int
dtxd_store_flush(dtxd_store *s)
{
	if (s == NULL) {
		return DTX_EINVAL;
	}
	return s->ops->flush != NULL ? s->ops->flush(s) : 0;
}

int
dtxd_store_compact(dtxd_store *s)
{
	if (s == NULL) {
		return DTX_EINVAL;
	}
	return s->ops->compact != NULL ? s->ops->compact(s) : 0;
}

void
dtxd_store_get_stats(dtxd_store *s, dtxd_store_stats *st)
{
	memset(st, 0, sizeof(*st));
	s->ops->get_stats(s, st);
}

bool
dtxd_store_ready(dtxd_store *s)
{
	return s->ops->ready == NULL || s->ops->ready(s);
}

int
dtxd_store_session_open(dtxd_store *s, const char *name, const char *url,
    uint32_t lease_ms, uint64_t *session)
{
	if (s == NULL || name == NULL || name[0] == '\0' || url == NULL ||
	    lease_ms == 0 || session == NULL) {
		return DTX_EINVAL;
	}
	if (s->ops->session_open == NULL) {
		return DTX_EUNSUPPORTED;
	}
	return s->ops->session_open(s, name, url, lease_ms, session);
}

int
dtxd_store_session_renew(
    dtxd_store *s, uint64_t session, uint32_t lease_ms, bool *lapsed)
{
	if (s == NULL || session == 0 || lease_ms == 0 || lapsed == NULL) {
		return DTX_EINVAL;
	}
	if (s->ops->session_renew == NULL) {
		return DTX_EUNSUPPORTED;
	}
	*lapsed = false;
	return s->ops->session_renew(s, session, lease_ms, lapsed);
}

int
dtxd_store_session_end(dtxd_store *s, uint64_t session)
{
	if (s == NULL || session == 0) {
		return DTX_EINVAL;
	}
	if (s->ops->session_end == NULL) {
		return DTX_EUNSUPPORTED;
	}
	return s->ops->session_end(s, session);
}

int
dtxd_store_takeover(dtxd_store *s, uint64_t session, uint32_t lease_ms,
    uint32_t max, int (*fn)(void *arg, const dtxd_store_unfinished *u),
    void *arg, uint32_t *n)
{
	if (s == NULL || session == 0 || fn == NULL || n == NULL) {
		return DTX_EINVAL;
	}
	if (s->ops->takeover == NULL) {
		return DTX_EUNSUPPORTED;
	}
	*n = 0;
	return max == 0
	    ? 0
	    : s->ops->takeover(s, session, lease_ms, max, fn, arg, n);
}

int
dtxd_store_ask_abort(dtxd_store *s, const char *gid)
{
	size_t glen;

	if (s == NULL || gid == NULL || !dtxd_store_gid_valid(gid, &glen)) {
		return DTX_EINVAL;
	}
	if (s->ops->ask_abort == NULL) {
		return DTX_EUNSUPPORTED;
	}
	return s->ops->ask_abort(s, gid);
}

int
dtxd_store_aborts_asked(dtxd_store *s, uint64_t  session,
    int (*fn)(void *arg, const char *gid), void *arg)
{
	if (s == NULL || session == 0 || fn == NULL) {
		return DTX_EINVAL;
	}
	if (s->ops->aborts_asked == NULL) {
		return DTX_EUNSUPPORTED;
	}
	return s->ops->aborts_asked(s, session, fn, arg);
}
