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
#include "gcommit.h"
#include "pstats.h"

typedef struct dtxi_barrier dtxi_barrier;

// Creates a barrier over db (not owned) with o (NULL: defaults). crash and
// stats (where replays, null operations, refusals of hanging calls and the
// resolver's work are counted; not owned) may be NULL. Errors: DTX_EINVAL,
// DTX_ENOMEM.
int dtxi_barrier_alloc(dtxi_barrier **bp, rocksdb_t *db,
    const dtx_barrier_opts *o, dtxi_crash *crash, dtxi_pstats *stats);

// Frees b. Accepts NULL. Its resolver (resolver.h) must be stopped first.
void dtxi_barrier_free(dtxi_barrier *b);

// Runs fn(call, reply, arg) under the barrier, or replays, refuses or
// answers a null operation without running it, as dtx.h describes. Fills
// reply and returns the result to send. Storage errors become DTX_RETRY
// with a message. The answer may rest on writes not durable yet: it must
// not leave before reply->durable is (0: at once), which the caller learns
// from the group commit (dtxi_barrier_gcommit) or dtxi_barrier_wait().
// Thread-safe.
dtx_result dtxi_barrier_call(dtxi_barrier *b, const dtx_call *call,
    dtx_phase_fn fn, void *arg, dtx_reply *reply);

// b's group commit, where a reply waits for its durable ticket; NULL when
// nothing needs to wait (no barrier, or no_sync).
dtxi_gcommit *dtxi_barrier_gcommit(dtxi_barrier *b);

// Blocks until the ticket durable (from a reply) is synced. Returns 0 or
// DTX_ESTORAGE (a sync failed).
int dtxi_barrier_wait(dtxi_barrier *b, uint64_t durable);

// Calls answered through b, and syncs made for them, so far.
void dtxi_barrier_counts(dtxi_barrier *b, uint64_t *calls, uint64_t *syncs);

#endif // DTX_BARRIER_H
