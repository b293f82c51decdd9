// SPDX-License-Identifier: MIT
//
// txmgr: the transaction manager, dtxd's single event loop. It owns every
// transaction in flight: requests from the server, answers from the
// dispatcher and completed writes from the store are posted to its queue
// from whichever thread produced them, and one loop thread applies them to
// the transactions, runs the pure engines, and carries out their actions
// (calls, writes, replies). Nothing about a transaction is ever touched by
// two threads, so transactions need no locks; the only lock guards the
// queue.

#ifndef DTXD_TXMGR_H
#define DTXD_TXMGR_H

#include <stdint.h>

#include "codec.h"
#include "dispatcher.h"
#include "record_codec.h"
#include "server.h"
#include "store.h"
#include "tx.h"

typedef struct dtxd_config {
	uint32_t    timeout_ms;      // default transaction timeout
	uint32_t    call_timeout_ms; // default per-call timeout
	uint32_t    retries;         // default forward retries
	dtxd_policy policy;
	int64_t     retention_ms; // keep finished transactions this long
	size_t      max_payload;
	// Test hook: kill the process with SIGKILL at this named point (see
	// DTXD_CRASH_AT in the README). NULL: never.
	const char *crash_at;
} dtxd_config;

void dtxd_config_init(dtxd_config *c);

typedef struct dtxd_txmgr dtxd_txmgr;

int dtxd_txmgr_open(
    dtxd_txmgr **mp, const dtxd_config *c, dtxd_store *st, dtxd_dispatcher *d);

// Adopts a transaction loaded from the store (recovery). Before start only.
// rec is consumed; specs[i] are encoded branch specs, copied. Errors:
// DTX_EPROTO (a spec does not decode), DTX_ENOMEM.
int dtxd_txmgr_adopt(dtxd_txmgr *m, const dtxd_record *rec,
    const uint8_t *const *specs, const size_t *spec_lens);

// Starts the loop thread. Adopted transactions are in the gid table from the
// start and resume (their RECOVER event) a few hundred per loop pass, a few
// thousand at a time, while requests are served. Errors: DTX_ENOMEM.
int dtxd_txmgr_start(dtxd_txmgr *m);

// The server's request handler (a dtxd_server_fn): m is the arg.
void dtxd_txmgr_on_request(void *m, dtxd_sreq *r);

// Answers every waiting client with DTX_ESHUTDOWN and stops the loop. The
// transactions stay as durable as they are; they resume at the next start.
void dtxd_txmgr_stop(dtxd_txmgr *m);

// Frees everything; the dispatcher and store must be closed first (their
// late completions are queued here and dropped). Accepts NULL.
void dtxd_txmgr_free(dtxd_txmgr *m);

typedef struct dtxd_txmgr_stats {
	uint64_t active;    // transactions in memory
	uint64_t started;   // accepted since start
	uint64_t finished;  // reached a terminal state since start
	uint64_t recovered; // adopted at start
} dtxd_txmgr_stats;

void dtxd_txmgr_get_stats(dtxd_txmgr *m, dtxd_txmgr_stats *st);

#endif // DTXD_TXMGR_H
