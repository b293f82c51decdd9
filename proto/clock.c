// SPDX-License-Identifier: MIT
//
// clock: wall and monotonic time, and a sleep (see clock.h).

#include "clock.h"

#include <errno.h>
#include <time.h>

// Reads clock id in units of unit_ns nanoseconds.
static int64_t
clock_read(clockid_t id, int64_t unit_ns)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * (1000000000 / unit_ns) +
	    ts.tv_nsec / unit_ns;
}

int64_t
dtxi_now_ms(void)
{
	return clock_read(CLOCK_REALTIME, 1000000);
}

int64_t
dtxi_mono_ms(void)
{
	return clock_read(CLOCK_MONOTONIC, 1000000);
}

int64_t
dtxi_mono_us(void)
{
	return clock_read(CLOCK_MONOTONIC, 1000);
}

struct timespec
dtxi_realtime_in(uint32_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

void
dtxi_sleep_ms(uint32_t ms)
{
	struct timespec ts;

	ts.tv_sec  = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}
