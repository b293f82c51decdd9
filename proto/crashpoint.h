// SPDX-License-Identifier: MIT
//
// crashpoint: named places where dtxd or a participant kills itself on
// purpose, so that fault tests (and operators rehearsing a failure) can
// crash it exactly where a real crash hurts most. "<point>[:<n>]" makes the
// n-th pass (default the first) through <point> raise SIGKILL: no clean-up,
// no reply, like a power cut. dtxd reads it from DTXD_CRASH_AT (through its
// configuration), a participant from DTX_PARTICIPANT_CRASH_AT when it starts
// listening. The points, all in one table (crashpoint.c):
//
// participant:
//   before-business-write       the callback ran, its batch is not written
//                               yet (without a barrier: before the callback
//                               runs)
//   after-business-write        the batch and the barrier record are synced,
//                               the reply is not sent (without a barrier:
//                               the callback returned, the reply is not sent)
// dtxd:
//   before-commit-decision      the 2PC engine turned COMMITTING in memory;
//   before-compensate-decision  (the saga: COMPENSATING) the write of the
//                               decision is not even queued
//   after-commit-decision       the decision is synced, no phase-two call
//   after-compensate-decision   has left
//   after-first-commit          the first COMMIT (EXECUTE, COMPENSATE) was
//   after-first-execute         answered OK and the engine has taken it in,
//   after-first-compensate      nothing of its next step has left
//   before-final-record         the outcome is told where it is settled,
//                               the final record is never written; dtxd
//                               goes on for 300 ms (replies handed to nng
//                               leave, a Status meanwhile is answered),
//                               then dies

#ifndef DTX_CRASHPOINT_H
#define DTX_CRASHPOINT_H

#include <stdatomic.h>
#include <stdbool.h>

#define DTXI_CRASH_ENV_PARTICIPANT "DTX_PARTICIPANT_CRASH_AT"
#define DTXI_CRASH_ENV_COORDINATOR "DTXD_CRASH_AT"

typedef enum dtxi_crash_side {
	DTXI_CRASH_PARTICIPANT,
	DTXI_CRASH_COORDINATOR,
} dtxi_crash_side;

typedef enum dtxi_crash_pt {
	DTXI_CRASH_BEFORE_BUSINESS_WRITE,
	DTXI_CRASH_AFTER_BUSINESS_WRITE,
	DTXI_CRASH_BEFORE_COMMIT_DECISION,
	DTXI_CRASH_BEFORE_COMPENSATE_DECISION,
	DTXI_CRASH_AFTER_COMMIT_DECISION,
	DTXI_CRASH_AFTER_COMPENSATE_DECISION,
	DTXI_CRASH_AFTER_FIRST_COMMIT,
	DTXI_CRASH_AFTER_FIRST_EXECUTE,
	DTXI_CRASH_AFTER_FIRST_COMPENSATE,
	DTXI_CRASH_BEFORE_FINAL_RECORD,
	DTXI_CRASH_NONE, // not armed
} dtxi_crash_pt;

typedef struct dtxi_crash {
	dtxi_crash_pt point; // DTXI_CRASH_NONE: never
	unsigned long nth;   // die on this pass (1 = the first)
	atomic_ulong  hits;  // passes through point so far
} dtxi_crash;

// Arms c from spec ("<point>[:<n>]") for a process of the given side. NULL
// or "" leaves it unarmed. A malformed spec, or a point of the other side
// or of no side, is logged (naming the culprit) and leaves it unarmed: a
// test that asked for a crash that cannot happen sees the log and the
// missing crash.
void dtxi_crash_init(dtxi_crash *c, dtxi_crash_side side, const char *spec);

// Counts a pass through point and kills the process on the chosen one:
// at once, or, for a point that lets the process go on (before-final-
// record), from another thread a moment later, returning true: the caller
// then must not do what the point stands before. Otherwise returns false.
// Accepts NULL (never armed).
bool dtxi_crash_point(dtxi_crash *c, dtxi_crash_pt point);

// True when c is armed at point (whatever the pass): the caller can make
// the point mean what the table above says before passing it (the barrier
// waits for its write to be synced). Accepts NULL.
bool dtxi_crash_armed(const dtxi_crash *c, dtxi_crash_pt point);

#endif // DTX_CRASHPOINT_H
