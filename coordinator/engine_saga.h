// SPDX-License-Identifier: MIT
//
// engine_saga: the saga state machine. Pure: see engine_util.h for the
// event/action vocabulary and the shared rules. Steps run one at a time in
// branch order; cursor names the step being executed (RUNNING) or compensated
// (COMPENSATING).
//
// RUNNING
//   START: cursor 0, send EXECUTE to step 0 (marking DONE_SENT).
//   REPLY OK for the cursor step: DONE_FWD; cursor++; if past the last step
//     FINISH(COMMITTED), else PERSIST{no sync, no wait} and EXECUTE the next.
//   REPLY REFUSED / NO_SUCH_METHOD / BAD_REQUEST: turn back at cursor.
//   REPLY RETRY, FAILED: retry after backoff while calls < 1 + retries and
//     the retry would start before the deadline; otherwise turn back.
//   TIMER at or after the deadline: turn back at cursor (the step may have
//     run); if its call is in flight, its COMPENSATE waits for it to end.
//   ABORT (operator): turn back at cursor, rv 0.
//   Turning back: state COMPENSATING, cursor to the last step,
//   PERSIST{sync, wait}; on PERSISTED send COMPENSATE to the highest step
//   that may have run (DONE_SENT) and is not compensated. The failed step
//   is compensated too: it may have partly run. A step never sent (no
//   DONE_SENT) cannot have run and is skipped (cursor--, or
//   FINISH(COMPENSATED) below step 0).
//   No EXECUTE is sent at or after the deadline: a REPLY OK that arrives
//   then turns back instead of executing the next step.
// COMPENSATING
//   REPLY OK for the cursor step, or NO_SUCH_METHOD for a step that never
//   executed OK: DONE_FINAL; if cursor is 0 FINISH(COMPENSATED), else
//   cursor--, PERSIST{no sync, no wait}, COMPENSATE the next lower step.
//   Anything else: retry for ever with backoff, stuck after stuck_after.
//   ABORT: rv 0.
// COMMITTED: ABORT gives rv DTX_ESTATE.
// RECOVER: RUNNING marks every step from the cursor up DONE_SENT (its
//   EXECUTE may have left after the record was written), then re-sends
//   EXECUTE to the cursor step (or turns back if the deadline passed);
//   COMPENSATING re-sends COMPENSATE to the cursor step; a terminal state
//   emits FINISH again.

#ifndef DTXD_ENGINE_SAGA_H
#define DTXD_ENGINE_SAGA_H

#include "engine_util.h"

void dtxd_saga_handle(dtxd_txcore *tx, const dtxd_policy *p,
    const dtxd_event *ev, dtxd_actions *out);

#endif // DTXD_ENGINE_SAGA_H
