// SPDX-License-Identifier: MIT
//
// txmgr: the transaction manager, dtxd's single event loop. It owns every
// transaction in flight: requests from the server, answers from the
// dispatcher, completed writes from the store and completed reads from the
// reader are queued to it from whichever thread produced them, and one
// thread at a time (often the one the event arrived on, see txmgr.c)
// applies them to the transactions, runs the pure engines, and carries out
// their actions (calls, writes, replies). Nothing about a transaction is
// ever touched by two threads at once, so transactions need no locks; the
// only lock guards the queue. The loop's work is split by job:
// requests.c (the Coordinator API), actions.c (engine actions and their
// completions), record.c (a transaction <-> its record), recovery.c
// (adoption and resume pacing), txtable.c (transactions in memory).

#ifndef DTXD_TXMGR_H
#define DTXD_TXMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatcher.h"
#include "engine.h"
#include "metrics.h"
#include "server.h"
#include "store.h"

typedef struct dtxd_config {
	uint32_t    timeout_ms;      // default transaction timeout
	uint32_t    call_timeout_ms; // default per-call timeout
	uint32_t    retries;         // default forward retries
	dtxd_policy policy;
	int64_t     retention_ms; // keep finished transactions this long
	size_t      max_payload;
	// Test hook: kill the process with SIGKILL at this crash point
	// ("<point>[:<n>]", see crashpoint.h and DTXD_CRASH_AT in the
	// README). NULL: never.
	const char *crash_at;
	// Where the loop counts what it does (not owned); NULL: nowhere.
	dtxd_metrics *metrics;
	// Several nodes on one store: this node's session (store.h), which
	// owns the transactions it creates; 0 alone on RocksDB.
	uint64_t session;
} dtxd_config;

void dtxd_config_init(dtxd_config *c);

typedef struct dtxd_txmgr dtxd_txmgr;

// Creates a manager over st and d (neither owned) with its reader thread;
// the loop does not run yet (recovery adopts first). On success *mp must be
// closed with dtxd_txmgr_close(). Errors: DTX_ENOMEM.
int dtxd_txmgr_open(
    dtxd_txmgr **mp, const dtxd_config *c, dtxd_store *st, dtxd_dispatcher *d);

// Starts the loop thread. Adopted transactions are in the gid table from the
// start and resume (their RECOVER event) a few hundred per loop pass, a few
// thousand at a time, while requests are served. Errors: DTX_ENOMEM.
int dtxd_txmgr_start(dtxd_txmgr *m);

// The server's request handler (a dtxd_server_fn): m is the arg.
void dtxd_txmgr_on_request(void *m, dtxd_sreq *r);

// Answers every waiting client with DTX_ESHUTDOWN, stops the loop and the
// reader. The transactions stay as durable as they are; they resume at the
// next start. Accepts NULL.
void dtxd_txmgr_stop(dtxd_txmgr *m);

// Frees everything; the dispatcher and store must be closed first (their
// late completions are queued here and dropped). Accepts NULL.
void dtxd_txmgr_close(dtxd_txmgr *m);

// What the status page asks of the live transactions: those in state (0:
// any), only the STUCK ones, at most limit of them (STUCK first, then the
// oldest).
typedef struct dtxd_snapshot_query {
	int      state;
	bool     stuck;
	uint32_t limit;
} dtxd_snapshot_query;

// Receives the JSON (snapshot.h describes it) on the loop thread, or NULL
// (len 0) on the stopping thread when the loop stopped first. json is valid
// during the call only.
typedef void (*dtxd_snapshot_fn)(void *arg, const char *json, size_t len);

// Asks the loop for a JSON view of the live transactions; fn runs exactly
// once unless an error is returned. Never blocks. Errors: DTX_ENOMEM,
// DTX_ESHUTDOWN (the loop has stopped). Thread-safe.
int dtxd_txmgr_snapshot(dtxd_txmgr *m, const dtxd_snapshot_query *q,
    dtxd_snapshot_fn fn, void *arg);

typedef struct dtxd_txmgr_stats {
	uint64_t active;     // transactions in memory
	uint64_t started;    // accepted since start
	uint64_t finished;   // reached a terminal state since start
	uint64_t recovered;  // resumed from the store: at start or taken over
	uint64_t taken_over; // of those, taken over from another session
	uint64_t fenced;     // dropped: another node took it over
} dtxd_txmgr_stats;

// Thread-safe.
void dtxd_txmgr_get_stats(dtxd_txmgr *m, dtxd_txmgr_stats *st);

#endif // DTXD_TXMGR_H
