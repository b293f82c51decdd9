// SPDX-License-Identifier: MIT
//
// txlog: log lines about one transaction, each with what identifies it
// (gid, mode, state, trace id) and, for a branch, the branch, its phase,
// its attempt and its participant's endpoint. Every event dtxd logs about
// a transaction goes through here, so they all carry the same fields (the
// README lists the events). Loop thread only (it reads the transaction).

#ifndef DTXD_TXLOG_H
#define DTXD_TXLOG_H

#include "txtable.h"

// Logs event at level about tx, and about its branch when branch >= 0.
void dtxd_txlog(int level, const char *event, const txn *tx, int branch,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif // DTXD_TXLOG_H
