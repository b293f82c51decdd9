// SPDX-License-Identifier: MIT
//
// snapshot: the status page's view of the live transactions, built by the
// loop from the transactions it owns (so nothing else reads them) and
// handed back as JSON:
//
//   {"now_ms": N, "live": N, "stuck": N, "shown": N,
//    "txs": [{"gid", "mode", "state", "stuck", "created_ms",
//             "updated_ms", "traceparent",
//             "branches": [{"id", "endpoint", "method", "phase",
//                           "status", "attempts", "error", "message",
//                           "settled_ms"}]}]}
//
// STUCK transactions come first, then the oldest; at most the query's
// limit of them. Finished transactions are not in memory and not shown
// (dtxctl status GID reads them).

#ifndef DTXD_SNAPSHOT_H
#define DTXD_SNAPSHOT_H

#include "loopstate.h"
#include "textbuf.h"

// Appends the JSON for q to t. Loop thread only.
void dtxd_snapshot_build(
    dtxd_txmgr *m, const dtxd_snapshot_query *q, dtxd_textbuf *t);

// Builds it and hands it to fn; out of memory, fn gets NULL (as when the
// loop has stopped: the page is told to come back).
void dtxd_snapshot_answer(dtxd_txmgr *m, const dtxd_snapshot_query *q,
    dtxd_snapshot_fn fn, void *arg);

#endif // DTXD_SNAPSHOT_H
