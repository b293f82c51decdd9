// SPDX-License-Identifier: MIT
//
// base: logging, clocks, randomness and string copying shared by libdtx and
// dtxd (see base.h).

#include "base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

// -1: not yet read from the environment.
static atomic_int log_level = -1;

int
dtxi_log_level_parse(const char *s)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	if (s == NULL) {
		return -1;
	}
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			return i;
		}
	}
	return -1;
}

void
dtxi_log_set_level(int level)
{
	if (level < DTXI_LOG_ERROR) {
		level = DTXI_LOG_ERROR;
	}
	if (level > DTXI_LOG_DEBUG) {
		level = DTXI_LOG_DEBUG;
	}
	atomic_store(&log_level, level);
}

int
dtxi_log_get_level(void)
{
	int level = atomic_load(&log_level);
	if (level < 0) {
		level = dtxi_log_level_parse(getenv("DTX_LOG_LEVEL"));
		if (level < 0) {
			level = DTXI_LOG_WARN;
		}
		atomic_store(&log_level, level);
	}
	return level;
}

void
dtxi_log(int level, const char *fmt, ...)
{
	static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	char                     line[1024];
	struct timespec          ts;
	struct tm                tm;
	va_list                  ap;
	int                      n;
	int                      m;

	if (level > dtxi_log_get_level()) {
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%d] ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
	    tags[level < 0      ? 0
	            : level > 3 ? 3
	                        : level],
	    (int)getpid());
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0) {
		m = 0;
	}
	n += m;
	if (n > (int)sizeof(line) - 2) {
		n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	// One write so that lines from several threads never interleave.
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}

int64_t
dtxi_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
dtxi_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

void
dtxi_gid_new(char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t           raw[16];
	uint64_t          ms = (uint64_t)dtxi_now_ms();

	// 48 bits of wall-clock milliseconds first, then 80 random bits: gids
	// made close in time sort close together. dtxd's store keys records by
	// gid, and RocksDB inserts a key into its memtable far more cheaply
	// near the keys it just touched than at a random place (a fifth of
	// the store's CPU per transaction); listings come out in time order
	// too. 80 random bits per millisecond keep gids unique.
	for (int i = 0; i < 6; i++) {
		raw[i] = (uint8_t)(ms >> (8 * (5 - i)));
	}
	dtxi_random(raw + 6, sizeof(raw) - 6);
	for (int i = 0; i < 16; i++) {
		out[2 * i]     = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0xf];
	}
	out[32] = '\0';
}

size_t
dtxi_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t len = strlen(src);
	if (cap > 0) {
		size_t n = len < cap - 1 ? len : cap - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}
