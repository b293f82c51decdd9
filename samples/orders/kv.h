// SPDX-License-Identifier: MIT
//
// kv: the orders samples' local state, a RocksDB database behind a few
// calls. Every write is one atomic, synced batch, because a participant that
// answered OK to a prepare must still hold what it promised after a crash.
// This is the only file of the samples that touches RocksDB; errors are
// printed to stderr once, here, and become -1 for the callers.

#ifndef ORDERS_KV_H
#define ORDERS_KV_H

#include <stdbool.h>
#include <stddef.h>

#include <dtx/dtx.h>

typedef struct orders_kv    orders_kv;
typedef struct orders_batch orders_batch;

// Opens (creating it if needed) the database in dir. read_only opens it
// without taking its lock, for --dump while a service may be running.
// Returns 0, or -1 after printing why. On success *kvp must be released with
// orders_kv_close().
int orders_kv_open(orders_kv **kvp, const char *dir, bool read_only);

// Closes the database. Accepts NULL.
void orders_kv_close(orders_kv *kv);

// Reads key into buf (NUL-terminated, cap bytes). Returns 1 if found, 0 if
// absent, -1 on a storage error or a value that does not fit. Thread-safe.
int orders_kv_get(orders_kv *kv, const char *key, char *buf, size_t cap);

// Calls fn for every key starting with prefix, in key order, with the
// NUL-terminated key and value. Returns 0 or -1. Thread-safe.
int orders_kv_scan(orders_kv *kv, const char                      *prefix,
    void (*fn)(const char *key, const char *val, void *arg), void *arg);

// A batch of puts and deletes applied atomically by orders_kv_write().
// orders_batch_alloc returns NULL when out of memory.
orders_batch *orders_batch_alloc(void);
void orders_batch_put(orders_batch *b, const char *key, const char *val);
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
void orders_stage_put(dtx_reply *r, const char *key, const char *val);
void orders_stage_del(dtx_reply *r, const char *key);

#endif // ORDERS_KV_H
