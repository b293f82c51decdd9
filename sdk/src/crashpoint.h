// SPDX-License-Identifier: MIT
//
// crashpoint: named places where a participant kills itself on purpose, so
// that fault tests (and operators rehearsing a failure) can crash it exactly
// where a real crash hurts most. DTX_PARTICIPANT_CRASH_AT=<point>[:<n>]
// makes the n-th pass (default the first) through <point> raise SIGKILL:
// no clean-up, no reply, like a power cut. Points:
//
//   before-business-write  the callback ran, its batch is not written yet
//                          (without a barrier: before the callback runs)
//   after-business-write   the batch and the barrier record are synced,
//                          the reply is not sent (without a barrier: the
//                          callback returned, the reply is not sent)

#ifndef DTX_CRASHPOINT_H
#define DTX_CRASHPOINT_H

#include <stdatomic.h>
#include <stdbool.h>

#define DTXI_CRASH_ENV "DTX_PARTICIPANT_CRASH_AT"

typedef struct dtxi_crash {
	bool          armed;
	char          point[64];
	unsigned long nth;  // die on this pass (1 = the first)
	atomic_ulong  hits; // passes through point so far
} dtxi_crash;

// Reads DTX_PARTICIPANT_CRASH_AT; a malformed value is logged and ignored.
void dtxi_crash_init(dtxi_crash *c);

// Counts a pass through point and kills the process on the chosen one.
void dtxi_crash_point(dtxi_crash *c, const char *point);

#endif // DTX_CRASHPOINT_H
