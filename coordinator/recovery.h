// SPDX-License-Identifier: MIT
//
// recovery: at start-up, before dtxd serves anything, every unfinished
// transaction is read back from the store and handed to the transaction
// manager, which resumes it from its last durable state (the engines'
// RECOVER event says how).

#ifndef DTXD_RECOVERY_H
#define DTXD_RECOVERY_H

#include <stdint.h>

#include "store.h"
#include "txmgr.h"

// Loads every unfinished transaction into m. *count receives how many.
// A record that does not decode is logged and skipped (it stays in the
// store for an operator to inspect). Errors: DTX_ESTORAGE, DTX_ENOMEM.
int dtxd_recover(dtxd_store *st, dtxd_txmgr *m, uint64_t *count);

#endif // DTXD_RECOVERY_H
