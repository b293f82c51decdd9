// SPDX-License-Identifier: MIT
//
// pstats: a participant's counters (dtx_participant_stats in dtx.h), as
// relaxed atomics that the serving threads, the barrier and the resolver
// add to and dtx_participant_stats_get() reads. Owned by the participant;
// the barrier and its resolver hold a pointer to it.

#ifndef DTX_PSTATS_H
#define DTX_PSTATS_H

#include <stdatomic.h>

#include <dtx/dtx.h>

typedef struct dtxi_pstats {
	atomic_ullong calls[DTX_PHASE_COMPENSATE + 1]
	                   [DTX_BRANCH_BAD_REQUEST + 1];
	atomic_ullong shed;
	atomic_ullong replays;
	atomic_ullong null_ops;
	atomic_ullong hanging;
	atomic_ullong resolve_asks;
	atomic_ullong resolve_commits;
	atomic_ullong resolve_aborts;
	atomic_ullong resolve_failures;
} dtxi_pstats;

// Adds one to c (NULL: nothing, for a barrier without a participant).
static inline void
dtxi_pstats_inc(atomic_ullong *c)
{
	if (c != NULL) {
		atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
	}
}

#endif // DTX_PSTATS_H
