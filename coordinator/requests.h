// SPDX-License-Identifier: MIT
//
// requests: the Coordinator API of proto/dtx.proto, answered: Submit,
// Status, List, Abort, Resolve, Stats. Each handler answers from memory
// when the transaction is live there (memory is ahead of the store) and
// from the store otherwise. The store is never read by the loop: a
// handler that needs a record queues a read on the reader thread and is
// called again with the result (see requests.c).

#ifndef DTXD_REQUESTS_H
#define DTXD_REQUESTS_H

#include "loopstate.h"

// Answers r (taken off the loop's queue), now or once what it waits for
// happens. Loop thread only.
void dtxd_requests_handle(dtxd_txmgr *m, dtxd_sreq *r);

// A read queued by a handler came back: finishes the request (or the
// Submit) it was for, and frees mr. Loop thread only.
void dtxd_requests_on_read(dtxd_txmgr *m, mread *mr);

// Releases a read that came back after the loop stopped: its request is
// answered DTX_ESHUTDOWN.
void dtxd_requests_drop_read(mread *mr);

// tx's create found its gid taken (DTX_EEXIST: another node created it
// first): it is answered as a Submit of a gid already stored is, once the
// store is read again. Loop thread only.
void dtxd_requests_create_lost(dtxd_txmgr *m, txn *tx);

// The owner's side of an abort asked through the store (on_abort in
// requests.c): posts an abort of gid to the loop, which aborts it as if
// asked here when it is live here. Thread-safe (the cluster's thread).
void dtxd_requests_post_abort(dtxd_txmgr *m, const char *gid);

// The loop's end of dtxd_requests_post_abort; frees ev. Loop thread only.
void dtxd_requests_on_abort_asked(dtxd_txmgr *m, dtxd_ev *ev);

#endif // DTXD_REQUESTS_H
