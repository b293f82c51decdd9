// SPDX-License-Identifier: MIT
//
// barrier: the participant's durable guard that runs each callback at most
// once per (gid, branch, phase), in the same RocksDB write as its business
// effect, plus the background work that goes with it: purging old records
// and settling in-doubt prepared branches with the coordinator. The only
// file of the SDK that touches RocksDB. See dtx_participant_use_barrier()
// in dtx.h for the contract.

#ifndef DTX_BARRIER_H
#define DTX_BARRIER_H

#include <dtx/dtx.h>

#include <stddef.h>
#include <stdint.h>

#include "crashpoint.h"

typedef struct dtxi_barrier dtxi_barrier;

// Runs one call as if it had been delivered: finds the method's callback
// for call->phase and calls dtxi_barrier_call() with it. The participant
// provides it, so that the resolver can run commit and abort callbacks.
typedef dtx_result (*dtxi_barrier_runner)(
    void *arg, const dtx_call *call, dtx_reply *reply);

// Creates a barrier over db (not owned) with o (NULL: defaults). crash may
// be NULL. Errors: DTX_EINVAL, DTX_ENOMEM.
int dtxi_barrier_alloc(dtxi_barrier **bp, rocksdb_t *db,
    const dtx_barrier_opts *o, dtxi_crash *crash);

// Enables the in-doubt resolver (before start). Errors: DTX_EINVAL,
// DTX_ENOMEM.
int dtxi_barrier_set_resolver(
    dtxi_barrier *b, const char *url, uint32_t after_ms);

// Starts the background thread (purge, resolver). run and arg serve the
// resolver; max_payload bounds its replies. Errors: DTX_ENOMEM.
int dtxi_barrier_start(
    dtxi_barrier *b, dtxi_barrier_runner run, void *arg, size_t max_payload);

// Stops and joins the background thread (waits for a callback it runs).
// Idempotent.
void dtxi_barrier_stop(dtxi_barrier *b);

// Frees b (stopping it first). Accepts NULL.
void dtxi_barrier_free(dtxi_barrier *b);

// Runs fn(call, reply, arg) under the barrier, or replays, refuses or
// answers a null operation without running it, as dtx.h describes. Fills
// reply and returns the result to send. Storage errors become DTX_RETRY
// with a message. Thread-safe.
dtx_result dtxi_barrier_call(dtxi_barrier *b, const dtx_call *call,
    dtx_phase_fn fn, void *arg, dtx_reply *reply);

// Records purged since start (for tests and logs). Thread-safe.
uint64_t dtxi_barrier_purged(dtxi_barrier *b);

#endif // DTX_BARRIER_H
