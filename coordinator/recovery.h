// SPDX-License-Identifier: MIT
//
// recovery: how dtxd gets back to work after a stop or a crash. At
// start-up, before the loop runs, every unfinished transaction is read
// back from the store into memory (dtxd_recover); once the loop runs, they
// are resumed from their last durable state a few at a time (the engines'
// RECOVER event says how each goes on), between the requests it serves.

#ifndef DTXD_RECOVERY_H
#define DTXD_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"
#include "txmgr.h"

// Loads every unfinished transaction into m (before dtxd_txmgr_start).
// *count receives how many. A record that does not decode is logged and
// skipped (it stays in the store for an operator to inspect). Errors:
// DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_recover(dtxd_store *st, dtxd_txmgr *m, uint64_t *count);

// The loop's side.

struct txn;

// True when adopted transactions wait and there is room to resume some.
bool dtxd_recovery_ready(const dtxd_txmgr *m);

// Resumes the next few adopted transactions (the pacing is described in
// recovery.c).
void dtxd_recovery_resume_some(dtxd_txmgr *m);

// Resumes tx, adopted and not yet resumed (tx->to_resume), now, out of
// turn: a request must change it, and no event may reach an engine before
// RECOVER. Never for any other transaction: RECOVER trusts only the record
// and clears what is in flight (calls, a decision being written), which in
// a running transaction would send a second EXECUTE over one in flight, or
// COMMIT before the commit decision is synced.
void dtxd_recovery_resume(dtxd_txmgr *m, struct txn *tx);

// ---------------------------------------------------------------------
// Takeover: several nodes on one store. The cluster's thread takes over
// the transactions of a dead node's session in the store (at the next
// epoch), copies them into a batch and posts it; the loop adopts them as
// recovery does and resumes them with the same pacing.
// ---------------------------------------------------------------------

typedef struct dtxd_adopt_batch dtxd_adopt_batch;

// An empty batch, or NULL without memory.
dtxd_adopt_batch *dtxd_adopt_batch_alloc(void);

// Copies u into b. Errors: DTX_ENOMEM.
int dtxd_adopt_batch_add(dtxd_adopt_batch *b, const dtxd_store_unfinished *u);

// Accepts NULL.
void dtxd_adopt_batch_free(dtxd_adopt_batch *b);

// Hands b to m's loop (which frees it). Thread-safe.
void dtxd_recovery_post(dtxd_txmgr *m, dtxd_adopt_batch *b);

// How many more transactions m would adopt now: recovery's bound on those
// resuming, less those adopted and not yet finished. Thread-safe.
uint32_t dtxd_recovery_room(dtxd_txmgr *m);

// Loop thread: adopts the transactions of b, then frees it. One that this
// node already holds is replaced: a copy held from before the takeover is
// dropped (its waiters go on to the new one), and a Submit still reading
// the store for that gid hands its requests over when its read ends.
void dtxd_recovery_on_adopt(dtxd_txmgr *m, dtxd_adopt_batch *b);

#endif // DTXD_RECOVERY_H
