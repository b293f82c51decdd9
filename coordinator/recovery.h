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

#endif // DTXD_RECOVERY_H
