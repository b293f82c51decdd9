// SPDX-License-Identifier: MIT
//
// engine_2pc: the two-phase commit state machine, presumed abort. Pure: see
// engine_util.h for the event/action vocabulary and the shared rules.
//
// PREPARING
//   START: send PREPARE to every branch.
//   REPLY OK: mark DONE_FWD. When every branch is DONE_FWD: state
//     COMMITTING, PERSIST{sync, wait}; on PERSISTED send COMMIT to all.
//   REPLY REFUSED / NO_SUCH_METHOD / BAD_REQUEST: mark DONE_REFUSED (for
//     REFUSED) and decide abort at once.
//   REPLY RETRY, FAILED: retry after backoff while calls < 1 + retries and
//     the retry would start before the deadline; otherwise decide abort.
//   TIMER at or after the deadline: decide abort.
//   ABORT (operator): decide abort, rv 0.
//   Deciding abort: state ABORTING, PERSIST{no sync, no wait} (presumed
//   abort needs no sync), send ABORT to every branch not in flight; those in
//   flight get ABORT when their call ends. With policy abort_waits (a
//   cluster): PERSIST{no sync, wait}, and the ABORTs go on PERSISTED.
// COMMITTING
//   REPLY OK to COMMIT: DONE_FINAL; all DONE_FINAL: FINISH(COMMITTED).
//   Anything else: retry for ever with backoff, stuck after stuck_after.
//   ABORT: rv DTX_ESTATE.
// ABORTING
//   PERSISTED (abort_waits): send ABORT to every branch not in flight.
//   REPLY to a PREPARE while the abort is being written: no ABORT yet.
//   REPLY OK to ABORT, or NO_SUCH_METHOD for a branch that never prepared:
//   DONE_FINAL; all DONE_FINAL: FINISH(ABORTED). Else retry for ever.
//   ABORT: rv 0.
// SETTLE (operator) in ABORTING, or COMMITTING once the decision is
//   written, of a branch not DONE_FINAL: DONE_FINAL | DONE_SETTLED, its
//   call forgotten, PERSIST{sync, no wait}; all DONE_FINAL: FINISH. A
//   settled branch again: rv 0, nothing. Otherwise (PREPARING, a commit
//   decision being written, a branch acknowledged, terminal): rv
//   DTX_ESTATE.
// REDRIVE (operator), any unfinished state: every scheduled retry is due
//   now with its backoff restarted; then as TIMER.
// RECOVER: PREPARING decides abort (the coordinator may have lost votes);
//   COMMITTING sends COMMIT, ABORTING sends ABORT to every branch not
//   DONE_FINAL; a terminal state emits FINISH again.

#ifndef DTXD_ENGINE_2PC_H
#define DTXD_ENGINE_2PC_H

#include "engine_util.h"

void dtxd_2pc_handle(dtxd_txcore *tx, const dtxd_policy *p,
    const dtxd_event *ev, dtxd_actions *out);

#endif // DTXD_ENGINE_2PC_H
