// SPDX-License-Identifier: MIT
//
// random: the kernel's random bytes, with a fallback (see random.h).

#include "random.h"

#include <errno.h>
#include <stdint.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void
dtxi_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);
		if (got > 0) {
			p += got;
			n -= (size_t)got;
			continue;
		}
		if (got < 0 && errno == EINTR) {
			continue;
		}
		// The kernel refused: fall back to a clock-seeded xorshift.
		// Good enough for gids and jitter, which need uniqueness and
		// spread, not secrecy.
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t x = (uint64_t)ts.tv_nsec ^
		    ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
		while (n > 0) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			*p++ = (uint8_t)x;
			n--;
		}
	}
}
