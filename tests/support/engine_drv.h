// SPDX-License-Identifier: MIT
//
// engine_drv: the driver both engine suites use. It owns one transaction,
// feeds it events at a chosen time and renders the resulting actions as a
// string such as "persist(sync,wait) commit(0) commit(1)#2 finish", so a
// test states a whole step in one comparison and a failure shows what
// really happened. After every event it checks the rules every transition
// must keep (engine_util.h): FINISH last, one call per branch, nothing sent
// while persisting or after PERSIST{wait}, attempts and phases as
// recorded, wake_ms as computed here independently, and a saga's group
// order (an EXECUTE only after every earlier group executed, a COMPENSATE
// only after every later group was undone).

#ifndef DTX_TEST_ENGINE_DRV_H
#define DTX_TEST_ENGINE_DRV_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"

#define NB 8

struct drv {
	dtxd_txcore  tx;
	dtxd_branch  br[NB];
	dtxd_policy  p;
	dtxd_actions out;
	int64_t      now;
	char         text[1024];
};

// A transaction of mode with n branches (n <= NB), in its first state, at
// time 1000, with a fixed rng seed, call timeout 500 ms and 2 retries.
void drv_init(struct drv *d, int mode, uint32_t n);

// Feeds one event at d->now and returns the rendered actions.
const char *drv_ev(
    struct drv *d, dtxd_ev_kind kind, uint32_t b, int phase, int status);

// What the loop does when it resumes a record loaded at start-up.
const char *drv_recover(struct drv *d);

// Moves the clock to the earliest wake time and fires the timer.
const char *drv_wake(struct drv *d);

#define START(d)     drv_ev(d, DTXD_EV_START, 0, 0, 0)
#define TIMER(d)     drv_ev(d, DTXD_EV_TIMER, 0, 0, 0)
#define PERSISTED(d) drv_ev(d, DTXD_EV_PERSISTED, 0, 0, 0)
#define ABORT(d)     drv_ev(d, DTXD_EV_ABORT, 0, 0, 0)
#define REPLY(d, b, ph, st)                                                   \
	drv_ev(d, DTXD_EV_REPLY, b, DTX_PHASE_##ph, DTX_BRANCH_##st)
#define FAILED(d, b, ph) drv_ev(d, DTXD_EV_FAILED, b, DTX_PHASE_##ph, 0)
#define REDRIVE(d)       drv_ev(d, DTXD_EV_REDRIVE, 0, 0, 0)
#define SETTLE(d, b)     drv_ev(d, DTXD_EV_SETTLE, b, 0, 0)

#endif // DTX_TEST_ENGINE_DRV_H
