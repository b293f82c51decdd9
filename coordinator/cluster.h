// SPDX-License-Identifier: MIT
//
// cluster: one dtxd node among several on one store (PostgreSQL). It opens
// the node's session, keeps its lease renewed on the database's clock, and
// takes over the unfinished transactions of sessions that died (their
// lease ran out, or a newer node of their name ended them), in bounded
// batches as the loop has room, handing them to the loop to resume as
// recovery does. All of it on one thread of its own, so that a busy loop
// never renews a lease late.
//
// The protocol (ownership, epoch, fencing, what a zombie may still do) is
// the one tests/model checks; store.h says what each store call promises,
// ARCHITECTURE.md ("Beyond one machine") why.

#ifndef DTXD_CLUSTER_H
#define DTXD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"
#include "txmgr.h"

typedef struct dtxd_cluster dtxd_cluster;

typedef struct dtxd_cluster_opts {
	const char *name;     // the node's name: one running node per name
	const char *url;      // where it listens (for operators)
	uint32_t    lease_ms; // renewed every third of it
	// Told when the lease stops or starts being known to hold
	// (/readyz); may be NULL.
	dtxd_metrics *metrics;
} dtxd_cluster_opts;

// Opens a session for the node named o->name in st (ending its earlier
// ones) and writes its id to *session. Errors: those of
// dtxd_store_session_open.
int dtxd_cluster_open(dtxd_cluster **cp, dtxd_store *st,
    const dtxd_cluster_opts *o, uint64_t *session);

// Starts renewing and taking over for m (whose config holds the session).
// A session ended by another node of the same name stops this process
// (SIGTERM to itself: it shuts down, sending nothing more). Errors:
// DTX_ENOMEM.
int dtxd_cluster_start(dtxd_cluster *c, dtxd_txmgr *m);

typedef struct dtxd_cluster_stats {
	uint64_t session;
	uint64_t renewals;  // leases renewed
	uint64_t failures;  // renewals that did not reach the database
	uint64_t lapses;    // renewals that found the lease had run out
	uint64_t takeovers; // transactions taken over
} dtxd_cluster_stats;

void dtxd_cluster_get_stats(dtxd_cluster *c, dtxd_cluster_stats *st);

// Stops the thread, then ends the session so that the others take over at
// once what this node leaves unfinished. Accepts NULL.
void dtxd_cluster_close(dtxd_cluster *c);

#endif // DTXD_CLUSTER_H
