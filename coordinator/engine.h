// SPDX-License-Identifier: MIT
//
// engine: the engines' interface for the loop. A transaction's engine is
// chosen by its mode: dtxd_engine_handle() hands the event to the 2PC or
// the saga state machine (engine_2pc.h, engine_saga.h hold their transition
// tables). The vocabulary (events, actions, the transaction's core, the
// retry policy) is engine_util.h's, included here, so the loop's modules
// include this header alone.

#ifndef DTXD_ENGINE_H
#define DTXD_ENGINE_H

#include "engine_util.h"

// Dispatches to the engine of tx->mode. Each engine first resets out, then
// fills it (the caller may reuse one buffer), and leaves tx->wake_ms
// correct.
void dtxd_engine_handle(dtxd_txcore *tx, const dtxd_policy *p,
    const dtxd_event *ev, dtxd_actions *out);

#endif // DTXD_ENGINE_H
