// SPDX-License-Identifier: MIT
//
// metrics: dtxd's counters, gauges and histograms, and their Prometheus
// text. Every recorder is a few relaxed atomic additions, callable from any
// thread (the loop, the store's writer, nng's threads), and rendering reads
// the same atomics, so a scrape never waits for the loop or holds it up.
// Labels are small fixed sets (mode, outcome, phase, result, request kind);
// never a gid, so the number of series is bounded whatever the load. The
// list of metrics, with their meaning, is the table in metrics.c (and the
// README's).

#ifndef DTXD_METRICS_H
#define DTXD_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "textbuf.h"

typedef struct dtxd_metrics dtxd_metrics;

// Errors: DTX_ENOMEM.
int  dtxd_metrics_alloc(dtxd_metrics **mp);
void dtxd_metrics_free(dtxd_metrics *m); // accepts NULL

// How a branch call ended, as counted (label result=).
typedef enum dtxd_call_result {
	DTXD_CALL_OK = 0,
	DTXD_CALL_REFUSED,
	DTXD_CALL_RETRY,
	DTXD_CALL_NO_SUCH_METHOD,
	DTXD_CALL_BAD_REQUEST,
	DTXD_CALL_TIMEOUT,     // no answer in time from a connected peer
	DTXD_CALL_UNREACHABLE, // no connection to the participant
	DTXD_CALL_ERROR,       // anything else (an undecodable answer, ...)
	DTXD_CALL_RESULTS
} dtxd_call_result;

// Every recorder accepts m == NULL and then does nothing, so modules built
// without a registry (unit tests) need no branches.
void dtxd_metrics_tx_started(dtxd_metrics *m, int mode);
// A transaction reached the terminal state after ms since it was created.
void dtxd_metrics_tx_finished(
    dtxd_metrics *m, int mode, int state, int64_t ms);
// A branch call of phase ended with result; retry: it was not the
// phase's first call.
void dtxd_metrics_call(dtxd_metrics *m, int phase, dtxd_call_result result);
void dtxd_metrics_retry(dtxd_metrics *m, int phase);
void dtxd_metrics_stuck_add(dtxd_metrics *m, int delta);
// A write batch of n records ended (rv 0 or an error) after us
// microseconds; the store's writer calls it.
void dtxd_metrics_store_batch(
    dtxd_metrics *m, uint64_t n, bool sync, int64_t us, int rv);
// A Coordinator API request of kind (dtxi_req_kind) arrived.
void dtxd_metrics_request(dtxd_metrics *m, int kind);
// A Resolve was answered state.
void dtxd_metrics_resolve(dtxd_metrics *m, int state);
// Recovery loaded n transactions (skipped unreadable) in ms; then all of
// them were resumed, after ms since the loop started.
void dtxd_metrics_recovery_loaded(
    dtxd_metrics *m, uint64_t n, uint64_t skipped, int64_t ms);
void dtxd_metrics_recovery_resumed(dtxd_metrics *m, int64_t ms);

// Readiness (/readyz): waiting for the store while it cannot be opened
// (PostgreSQL out of reach at start: why, copied, says what is wrong; NULL
// ends the wait); recovering from start until every recovered
// transaction is resumed; stopping once shutdown began; the store failing
// from a failed write until one succeeds; with several nodes on one
// database, the node's lease not known to hold (cluster.c).
#define DTXD_METRICS_WHY_MAX 400 // the longest why kept, with its NUL
void dtxd_metrics_set_store_waiting(dtxd_metrics *m, const char *why);
void dtxd_metrics_set_recovering(dtxd_metrics *m, bool on);
void dtxd_metrics_set_lease_lost(dtxd_metrics *m, bool lost);
void dtxd_metrics_set_stopping(dtxd_metrics *m);
bool dtxd_metrics_store_failing(dtxd_metrics *m, int *last_error);
// Writes why dtxd is not ready into why (cap bytes; DTXD_METRICS_WHY_MAX
// + 32 holds every reason whole), or returns true.
bool dtxd_metrics_ready(dtxd_metrics *m, char *why, size_t cap);

// What the registry does not count itself, read by the caller at scrape
// time from its owners' atomics.
typedef struct dtxd_metrics_gauges {
	uint64_t in_flight;      // transactions in memory
	uint64_t call_messages;  // frames that carried branch calls
	uint64_t tls_refused[2]; // handshakes refused: client, operator
	int64_t  uptime_ms;
} dtxd_metrics_gauges;

// Appends the Prometheus text exposition (version 0.0.4) to t.
void dtxd_metrics_render(
    dtxd_metrics *m, const dtxd_metrics_gauges *g, dtxd_textbuf *t);

#endif // DTXD_METRICS_H
