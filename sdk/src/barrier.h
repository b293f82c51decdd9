// SPDX-License-Identifier: MIT
//
// barrier: the participant's durable guard that runs each callback at most
// once per (gid, branch, phase), in the same RocksDB write as its business
// effect. Its background work (purging old records, settling in-doubt
// prepared branches with the coordinator) is resolver.h's. barrier.c and
// resolver.c are the SDK's RocksDB files. See dtx_participant_use_barrier()
// in dtx.h for the contract.

#ifndef DTX_BARRIER_H
#define DTX_BARRIER_H

#include <dtx/dtx.h>

#include <stddef.h>
#include <stdint.h>

#include "crashpoint.h"

typedef struct dtxi_barrier dtxi_barrier;

// Creates a barrier over db (not owned) with o (NULL: defaults). crash may
// be NULL. Errors: DTX_EINVAL, DTX_ENOMEM.
int dtxi_barrier_alloc(dtxi_barrier **bp, rocksdb_t *db,
    const dtx_barrier_opts *o, dtxi_crash *crash);

// Frees b. Accepts NULL. Its resolver (resolver.h) must be stopped first.
void dtxi_barrier_free(dtxi_barrier *b);

// Runs fn(call, reply, arg) under the barrier, or replays, refuses or
// answers a null operation without running it, as dtx.h describes. Fills
// reply and returns the result to send. Storage errors become DTX_RETRY
// with a message. Thread-safe.
dtx_result dtxi_barrier_call(dtxi_barrier *b, const dtx_call *call,
    dtx_phase_fn fn, void *arg, dtx_reply *reply);

#endif // DTX_BARRIER_H
