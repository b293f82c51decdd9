// SPDX-License-Identifier: MIT
//
// preload: fills a store with finished transactions, as if dtxd had run
// them, without running them: for benchmarks of a store that already holds
// millions (dtx-bench --preload) and tests of what happens when they expire.
// The records are what dtxd writes when a 2PC commits; gids lead with their
// creation time as generated gids do, and are as random after it.

#ifndef DTXD_PRELOAD_H
#define DTXD_PRELOAD_H

#include <stdint.h>

#include "store.h"

typedef struct dtxd_preload_opts {
	uint64_t n;          // transactions
	uint32_t branches;   // per transaction, 1..DTX_BRANCHES_MAX
	int64_t  created_ms; // creation time of the first
	int64_t  expire_ms;  // expiry of the first
	// Time between two transactions, in microseconds, for both creation
	// and expiry: the i-th is created at created_ms + i * spacing_us /
	// 1000 and expires as much after expire_ms.
	uint64_t spacing_us;
} dtxd_preload_opts;

// Adds o->n finished transactions to s (see dtxd_store_ingest_finished:
// only for a store no transaction is using). Their gids sort before any
// gid made after o->created_ms plus the span. Errors: DTX_EINVAL,
// DTX_ENOMEM, DTX_ESTORAGE.
int dtxd_preload(dtxd_store *s, const dtxd_preload_opts *o);

// Writes the gid dtxd_preload() gives to its i-th transaction (i < o->n)
// into gid (DTX_GID_MAX + 1 bytes). Errors: DTX_EINVAL.
int dtxd_preload_gid(const dtxd_preload_opts *o, uint64_t i, char *gid);

#endif // DTXD_PRELOAD_H
