// SPDX-License-Identifier: MIT
//
// kv: the orders samples' local state, a RocksDB database behind a few
// calls. Keys are text ("stock/widget"), values are bytes (records.h
// encodes them). Every write is one atomic, synced batch, because a
// participant that answered OK to a prepare must still hold what it
// promised after a crash. This is the only file of the samples that touches
// RocksDB; errors are printed to stderr once, here, and become -1 for the
// callers.

#ifndef ORDERS_KV_H
#define ORDERS_KV_H

#include <stdbool.h>
#include <stddef.h>

#include <dtx/dtx.h>

// Longest SKU or order id. Names go into storage keys as they are.
#define ORDERS_NAME_MAX 64

// True for a usable SKU or order id: 1..ORDERS_NAME_MAX bytes of
// [A-Za-z0-9._-].
bool orders_name_ok(const char *s);

typedef struct orders_kv    orders_kv;
typedef struct orders_batch orders_batch;

// Opens (creating it if needed) the database in dir. read_only opens it
// without taking its lock, for --dump while a service may be running.
// Returns 0, or -1 after printing why. On success *kvp must be released with
// orders_kv_close().
int orders_kv_open(orders_kv **kvp, const char *dir, bool read_only);

// Closes the database. Accepts NULL.
void orders_kv_close(orders_kv *kv);

// Reads the value of key into buf (cap bytes) and its length into *len.
// Returns 1 if found, 0 if absent, -1 on a storage error or a value that
// does not fit. Thread-safe.
int orders_kv_get(
    orders_kv *kv, const char *key, void *buf, size_t cap, size_t *len);

// Calls fn for every key starting with prefix, in key order, with the
// NUL-terminated key and the value. Returns 0 or -1. Thread-safe.
int orders_kv_scan(orders_kv *kv, const char *prefix,
    void (*fn)(const char *key, const void *val, size_t len, void *arg),
    void *arg);

// A batch of puts and deletes applied atomically by orders_kv_write().
// orders_batch_alloc returns NULL when out of memory.
orders_batch *orders_batch_alloc(void);
void          orders_batch_put(
             orders_batch *b, const char *key, const void *val, size_t len);
void orders_batch_del(orders_batch *b, const char *key);
void orders_batch_free(orders_batch *b);

// Applies b atomically and syncs it to disk. Returns 0 or -1. Thread-safe.
int orders_kv_write(orders_kv *kv, orders_batch *b);

// The RocksDB handle, for libdtx's barrier (dtx_participant_use_barrier),
// which keeps its records in the same database as the service's data.
rocksdb_t *orders_kv_rocksdb(orders_kv *kv);

// Inside a callback: stage a put or delete in the barrier's batch, which
// libdtx writes, synced, together with its record of the call once the
// callback returns OK or REFUSED (and drops when it returns RETRY).
void orders_stage_put(
    dtx_reply *r, const char *key, const void *val, size_t len);
void orders_stage_del(dtx_reply *r, const char *key);

#endif // ORDERS_KV_H
