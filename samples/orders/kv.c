// SPDX-License-Identifier: MIT
//
// kv: RocksDB behind the small interface in kv.h. Writes are synced: a
// participant's OK to prepare is a promise, and an unsynced promise is lost
// by a power cut. Reads need no lock of ours (RocksDB's are thread-safe);
// the services serialise their read-modify-write sequences themselves.

#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

struct orders_kv {
	rocksdb_t              *db;
	rocksdb_options_t      *opts;
	rocksdb_readoptions_t  *ropts;
	rocksdb_writeoptions_t *wopts;
};

struct orders_batch {
	rocksdb_writebatch_t *wb;
};

// RocksDB reports errors as malloc'd strings: print and free them here so
// no caller has to know.
static int
kv_failed(const char *what, char *err)
{
	fprintf(stderr, "storage: %s: %s\n", what, err != NULL ? err : "?");
	rocksdb_free(err);
	return -1;
}

int
orders_kv_open(orders_kv **kvp, const char *dir, bool read_only)
{
	orders_kv *kv;
	char      *err = NULL;

	if ((kv = calloc(1, sizeof(*kv))) == NULL) {
		fprintf(stderr, "storage: out of memory\n");
		return -1;
	}
	kv->opts  = rocksdb_options_create();
	kv->ropts = rocksdb_readoptions_create();
	kv->wopts = rocksdb_writeoptions_create();
	rocksdb_options_set_create_if_missing(kv->opts, 1);
	rocksdb_writeoptions_set_sync(kv->wopts, 1);
	if (read_only) {
		kv->db = rocksdb_open_for_read_only(kv->opts, dir, 0, &err);
	} else {
		kv->db = rocksdb_open(kv->opts, dir, &err);
	}
	if (err != NULL || kv->db == NULL) {
		fprintf(stderr, "storage: cannot open %s: %s\n", dir,
		    err != NULL ? err : "?");
		rocksdb_free(err);
		kv->db = NULL;
		orders_kv_close(kv);
		return -1;
	}
	*kvp = kv;
	return 0;
}

void
orders_kv_close(orders_kv *kv)
{
	if (kv == NULL) {
		return;
	}
	if (kv->db != NULL) {
		rocksdb_close(kv->db);
	}
	rocksdb_writeoptions_destroy(kv->wopts);
	rocksdb_readoptions_destroy(kv->ropts);
	rocksdb_options_destroy(kv->opts);
	free(kv);
}

bool
orders_name_ok(const char *s)
{
	size_t n = s != NULL ? strnlen(s, ORDERS_NAME_MAX + 1) : 0;

	if (n == 0 || n > ORDERS_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		        c == '-')) {
			return false;
		}
	}
	return true;
}

int
orders_kv_get(
    orders_kv *kv, const char *key, void *buf, size_t cap, size_t *len)
{
	char  *err = NULL;
	size_t n   = 0;
	char  *val;

	val = rocksdb_get(kv->db, kv->ropts, key, strlen(key), &n, &err);
	if (err != NULL) {
		return kv_failed("get", err);
	}
	if (val == NULL) {
		return 0;
	}
	if (n > cap) {
		fprintf(stderr, "storage: value of %s too long (%zu bytes)\n",
		    key, n);
		rocksdb_free(val);
		return -1;
	}
	memcpy(buf, val, n);
	*len = n;
	rocksdb_free(val);
	return 1;
}

int
orders_kv_scan(orders_kv *kv, const char *prefix,
    void (*fn)(const char *key, const void *val, size_t len, void *arg),
    void *arg)
{
	rocksdb_iterator_t *it;
	size_t              plen = strlen(prefix);
	char               *err  = NULL;
	int                 rv   = 0;

	it = rocksdb_create_iterator(kv->db, kv->ropts);
	for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t      klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);
		char        kbuf[512];

		if (klen < plen || memcmp(k, prefix, plen) != 0) {
			break;
		}
		// Our own keys are short; a longer one was not written by
		// these samples and is skipped rather than cut.
		if (klen >= sizeof(kbuf)) {
			continue;
		}
		memcpy(kbuf, k, klen);
		kbuf[klen] = '\0';
		fn(kbuf, v, vlen, arg);
	}
	rocksdb_iter_get_error(it, &err);
	if (err != NULL) {
		rv = kv_failed("scan", err);
	}
	rocksdb_iter_destroy(it);
	return rv;
}

rocksdb_t *
orders_kv_rocksdb(orders_kv *kv)
{
	return kv->db;
}

void
orders_stage_put(dtx_reply *r, const char *key, const void *val, size_t len)
{
	rocksdb_writebatch_put(
	    dtx_reply_writebatch(r), key, strlen(key), val, len);
}

void
orders_stage_del(dtx_reply *r, const char *key)
{
	rocksdb_writebatch_delete(dtx_reply_writebatch(r), key, strlen(key));
}

orders_batch *
orders_batch_alloc(void)
{
	orders_batch *b;

	if ((b = malloc(sizeof(*b))) == NULL) {
		return NULL;
	}
	b->wb = rocksdb_writebatch_create();
	return b;
}

void
orders_batch_put(orders_batch *b, const char *key, const void *val, size_t len)
{
	rocksdb_writebatch_put(b->wb, key, strlen(key), val, len);
}

void
orders_batch_del(orders_batch *b, const char *key)
{
	rocksdb_writebatch_delete(b->wb, key, strlen(key));
}

void
orders_batch_free(orders_batch *b)
{
	if (b == NULL) {
		return;
	}
	rocksdb_writebatch_destroy(b->wb);
	free(b);
}

int
orders_kv_write(orders_kv *kv, orders_batch *b)
{
	char *err = NULL;

	rocksdb_write(kv->db, kv->wopts, b->wb, &err);
	if (err != NULL) {
		return kv_failed("write", err);
	}
	return 0;
}
