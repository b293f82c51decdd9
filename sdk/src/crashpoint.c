// SPDX-License-Identifier: MIT
//
// crashpoint: the participant's deliberate crashes (see crashpoint.h). The
// environment is read once, when the participant starts listening, so a
// test sets it for the child process it spawns and nothing else changes.

#include "crashpoint.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

void
dtxi_crash_init(dtxi_crash *c)
{
	const char   *v = getenv(DTXI_CRASH_ENV);
	const char   *colon;
	size_t        n;
	unsigned long nth = 1;

	c->armed    = false;
	c->point[0] = '\0';
	c->nth      = 1;
	atomic_init(&c->hits, 0);
	if (v == NULL || v[0] == '\0') {
		return;
	}
	colon = strchr(v, ':');
	n     = colon != NULL ? (size_t)(colon - v) : strlen(v);
	if (colon != NULL) {
		char *end = NULL;
		nth       = strtoul(colon + 1, &end, 10);
		if (end == colon + 1 || *end != '\0' || nth == 0) {
			DTXI_ERROR("participant: %s=%s: the count must be a "
			           "positive number; ignored",
			    DTXI_CRASH_ENV, v);
			return;
		}
	}
	if (n == 0 || n >= sizeof(c->point)) {
		DTXI_ERROR("participant: %s=%s: bad point; ignored",
		    DTXI_CRASH_ENV, v);
		return;
	}
	memcpy(c->point, v, n);
	c->point[n] = '\0';
	c->nth      = nth;
	c->armed    = true;
	DTXI_WARN("participant: will crash at %s (pass %lu)", c->point, nth);
}

void
dtxi_crash_point(dtxi_crash *c, const char *point)
{
	if (c == NULL || !c->armed || strcmp(c->point, point) != 0) {
		return;
	}
	if (atomic_fetch_add(&c->hits, 1) + 1 == c->nth) {
		DTXI_WARN("participant: crash point %s reached: killing the "
		          "process",
		    point);
		raise(SIGKILL);
	}
}
