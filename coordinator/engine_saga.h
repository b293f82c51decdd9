// SPDX-License-Identifier: MIT
//
// engine_saga: the saga state machine. Pure: see engine_util.h for the
// event/action vocabulary and the shared rules. Steps run in branch order,
// group by group: a step whose same_group is set is in the group of the
// step before it, and the steps of a group run in parallel (a step alone
// is a group of one). cursor names a step of the group being executed
// (RUNNING: its first) or compensated (COMPENSATING).
//
// RUNNING
//   START: cursor 0, send EXECUTE to every step of the first group
//     (marking DONE_SENT).
//   REPLY OK for a step of the group: DONE_FWD. Once every step of the
//     group is DONE_FWD: cursor to the next group; if none is left
//     FINISH(COMMITTED), else PERSIST{no sync, no wait} and EXECUTE every
//     step of the next group. Before that: nothing (the others run on).
//   REPLY REFUSED / NO_SUCH_METHOD / BAD_REQUEST: turn back.
//   REPLY RETRY, FAILED: retry that step after backoff while calls < 1 +
//     retries and the retry would start before the deadline; otherwise
//     turn back.
//   TIMER at or after the deadline: turn back (the group's steps may have
//     run); a step whose call is in flight gets its COMPENSATE once that
//     call ends.
//   ABORT (operator): turn back, rv 0.
//   Turning back: state COMPENSATING, cursor to the last step, retries
//   cancelled, PERSIST{sync, wait}; on PERSISTED compensate the highest
//   group with a step that may have run (DONE_SENT) and is not
//   compensated (DONE_FINAL): COMPENSATE to each such step not in flight.
//   The failed step is compensated too: it may have partly run. A step
//   never sent cannot have run and is skipped; a group with nothing to undo
//   is passed (cursor down), and below the first group FINISH(COMPENSATED).
//   No EXECUTE is sent at or after the deadline: a REPLY OK that completes
//   a group then turns back instead of executing the next one.
// COMPENSATING
//   REPLY OK for a step of the cursor's group, or NO_SUCH_METHOD for a
//   step that never executed OK: DONE_FINAL. Once no step of the group is
//   left to undo: below the first group FINISH(COMPENSATED), else cursor
//   to the group below, PERSIST{no sync, no wait}, compensate that group.
//   The end of an EXECUTE still in flight: COMPENSATE that step.
//   Anything else: retry for ever with backoff, stuck after stuck_after.
//   ABORT: rv 0.
//   SETTLE (operator) of a step that was sent and is not compensated,
//   once the turn-back is written: DONE_FINAL | DONE_SETTLED, its call
//   forgotten, PERSIST{sync, no wait}; if it is in the cursor's group, go
//   on as after its REPLY OK (down once the group is undone). Anything
//   else: rv DTX_ESTATE (a settled step again: rv 0, nothing).
// REDRIVE (operator), any unfinished state: every scheduled retry is due
//   now with its backoff restarted; then as TIMER.
// COMMITTED: ABORT gives rv DTX_ESTATE. RUNNING, terminal: SETTLE gives
//   rv DTX_ESTATE (the outcome is not decided, or nothing is left).
// RECOVER: RUNNING marks every step from the cursor's group up DONE_SENT
//   (an EXECUTE may have left after the record was written), then sends
//   EXECUTE to the steps of the cursor's group not DONE_FWD (or turns back
//   if the deadline passed); COMPENSATING compensates the cursor's group
//   again; a terminal state emits FINISH again.

#ifndef DTXD_ENGINE_SAGA_H
#define DTXD_ENGINE_SAGA_H

#include "engine_util.h"

void dtxd_saga_handle(dtxd_txcore *tx, const dtxd_policy *p,
    const dtxd_event *ev, dtxd_actions *out);

#endif // DTXD_ENGINE_SAGA_H
