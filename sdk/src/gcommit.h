// SPDX-License-Identifier: MIT
//
// gcommit: group commit for the barrier. Calls write their batches to the
// store unsynced, each taking a ticket (the store's sequence number after
// its write); one thread then makes them durable together, one sync for
// all the writes made since the last one, and completes every wait whose
// ticket that sync covered. A call's reply waits here, off the worker
// that ran it, so the workers go on running calls while a sync is under
// way and the next sync covers all of them. It knows nothing of the store:
// the barrier gives it the function that syncs (barrier.c, the RocksDB
// file). The barrier's opening comment says why writing unsynced first
// loses nothing.

#ifndef DTX_GCOMMIT_H
#define DTX_GCOMMIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct dtxi_gcommit dtxi_gcommit;

// Makes everything written to the store so far durable, and writes to *upto
// the ticket of the last write it covered (a ticket taken before the call
// is <= it). Returns 0 or an error (DTX_ESTORAGE): then nothing is known to
// be durable any more, and every wait, then and later, fails with it.
typedef int (*dtxi_gcommit_sync_fn)(void *arg, uint64_t *upto);

// Called once a wait's ticket is durable (err 0) or cannot become so (err
// the sync's error), on the group commit's thread, with no lock held. It
// must not block, nor call into the group commit.
typedef void (*dtxi_gcommit_done_fn)(void *arg, int err);

// A wait, embedded in its owner (no allocation): set ticket, done and arg,
// then pass it to dtxi_gcommit_after(); it belongs to the group commit
// until done runs.
typedef struct dtxi_gwait {
	struct dtxi_gwait   *next; // the queue's
	uint64_t             ticket;
	dtxi_gcommit_done_fn done;
	void                *arg;
} dtxi_gwait;

// Starts the group commit's thread, which syncs with sync(arg, ...).
// Errors: DTX_ENOMEM.
int dtxi_gcommit_start(
    dtxi_gcommit **gp, dtxi_gcommit_sync_fn sync, void *arg);

// Completes every wait still queued (one last sync), stops the thread and
// frees g. Accepts NULL. No wait may be queued once it is called.
void dtxi_gcommit_stop(dtxi_gcommit *g);

// True when ticket is durable already (0 always is). Thread-safe.
bool dtxi_gcommit_durable(dtxi_gcommit *g, uint64_t ticket);

// Queues w, unless its ticket is durable already: then returns false and
// w->done is never called. Otherwise returns true, and w->done runs once,
// on the group commit's thread, after the sync that covers the ticket (or
// that failed). Thread-safe.
bool dtxi_gcommit_after(dtxi_gcommit *g, dtxi_gwait *w);

// Blocks until ticket is durable. Returns 0 or the failed sync's error.
// Thread-safe; not from a done callback.
int dtxi_gcommit_wait(dtxi_gcommit *g, uint64_t ticket);

// Blocks until every wait queued before the call has completed (its done
// returned). Thread-safe; not from a done callback.
void dtxi_gcommit_flush(dtxi_gcommit *g);

// Syncs made so far, and the error that broke the group commit (0: none).
uint64_t dtxi_gcommit_syncs(dtxi_gcommit *g);
int      dtxi_gcommit_error(dtxi_gcommit *g);

#endif // DTX_GCOMMIT_H
