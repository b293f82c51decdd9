// SPDX-License-Identifier: MIT
//
// crashpoint: deliberate crashes of dtxd and of participants (see
// crashpoint.h). The specification is read once, when the process starts
// its work, so a test sets it for the child process it spawns and nothing
// else changes.

#include "crashpoint.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static const struct {
	const char     *name;
	dtxi_crash_side side;
	// Wait this long first, so replies handed to nng leave. A point with
	// a linger lets the process go on meanwhile (the caller withholds
	// what the point stands before), so that what it answers then can be
	// seen.
	long linger_ms;
} points[] = {
    [DTXI_CRASH_BEFORE_BUSINESS_WRITE]      = {"before-business-write",
             DTXI_CRASH_PARTICIPANT, 0},
    [DTXI_CRASH_AFTER_BUSINESS_WRITE]       = {"after-business-write",
              DTXI_CRASH_PARTICIPANT, 0},
    [DTXI_CRASH_BEFORE_COMMIT_DECISION]     = {"before-commit-decision",
            DTXI_CRASH_COORDINATOR, 0},
    [DTXI_CRASH_BEFORE_COMPENSATE_DECISION] = {"before-compensate-decision",
        DTXI_CRASH_COORDINATOR, 0},
    [DTXI_CRASH_AFTER_COMMIT_DECISION]      = {"after-commit-decision",
             DTXI_CRASH_COORDINATOR, 0},
    [DTXI_CRASH_AFTER_COMPENSATE_DECISION]  = {"after-compensate-decision",
         DTXI_CRASH_COORDINATOR, 0},
    [DTXI_CRASH_AFTER_FIRST_COMMIT]         = {"after-first-commit",
                DTXI_CRASH_COORDINATOR, 0},
    [DTXI_CRASH_AFTER_FIRST_EXECUTE]        = {"after-first-execute",
               DTXI_CRASH_COORDINATOR, 0},
    [DTXI_CRASH_AFTER_FIRST_COMPENSATE]     = {"after-first-compensate",
            DTXI_CRASH_COORDINATOR, 0},
    [DTXI_CRASH_BEFORE_FINAL_RECORD]        = {"before-final-record",
               DTXI_CRASH_COORDINATOR, 300},
};

_Static_assert(sizeof(points) / sizeof(points[0]) == DTXI_CRASH_NONE,
    "every crash point has a row");

static const char *
side_name(dtxi_crash_side side)
{
	return side == DTXI_CRASH_COORDINATOR ? "dtxd" : "participant";
}

void
dtxi_crash_init(dtxi_crash *c, dtxi_crash_side side, const char *spec)
{
	const char   *colon;
	size_t        n;
	unsigned long nth = 1;

	c->point = DTXI_CRASH_NONE;
	c->nth   = 1;
	atomic_init(&c->hits, 0);
	if (spec == NULL || spec[0] == '\0') {
		return;
	}
	colon = strchr(spec, ':');
	n     = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
	if (colon != NULL) {
		char *end = NULL;
		nth       = strtoul(colon + 1, &end, 10);
		if (end == colon + 1 || *end != '\0' || nth == 0) {
			DTXI_ERROR("%s: crash point '%s': the count must be a "
			           "positive number; ignored",
			    side_name(side), spec);
			return;
		}
	}
	for (int i = 0; i < DTXI_CRASH_NONE; i++) {
		if (points[i].side == side &&
		    strncmp(points[i].name, spec, n) == 0 &&
		    points[i].name[n] == '\0') {
			c->point = (dtxi_crash_pt)i;
			c->nth   = nth;
			DTXI_WARN("%s: will crash at %s (pass %lu)",
			    side_name(side), points[i].name, nth);
			return;
		}
	}
	DTXI_ERROR("%s: no crash point '%s' (see crashpoint.h); ignored",
	    side_name(side), spec);
}

static void
crash_now(dtxi_crash_pt point)
{
	DTXI_WARN("%s: crash point %s reached: killing the process",
	    side_name(points[point].side), points[point].name);
	raise(SIGKILL);
}

// The thread of a lingering point: waits, then kills the process.
static void *
crash_later(void *arg)
{
	dtxi_crash_pt   point = (dtxi_crash_pt)(intptr_t)arg;
	long            ms    = points[point].linger_ms;
	struct timespec ts    = {
	       .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};

	while (nanosleep(&ts, &ts) != 0) {
	}
	crash_now(point);
	return NULL;
}

bool
dtxi_crash_point(dtxi_crash *c, dtxi_crash_pt point)
{
	pthread_t th;

	if (c == NULL || point == DTXI_CRASH_NONE || c->point != point) {
		return false;
	}
	if (atomic_fetch_add(&c->hits, 1) + 1 != c->nth) {
		return false;
	}
	if (points[point].linger_ms > 0 &&
	    pthread_create(&th, NULL, crash_later, (void *)(intptr_t)point) ==
	        0) {
		DTXI_WARN("%s: crash point %s reached: the process dies in "
		          "%ld ms",
		    side_name(points[point].side), points[point].name,
		    points[point].linger_ms);
		pthread_detach(th);
		return true;
	}
	crash_now(point);
	return false;
}

bool
dtxi_crash_armed(const dtxi_crash *c, dtxi_crash_pt point)
{
	return c != NULL && point != DTXI_CRASH_NONE && c->point == point;
}
