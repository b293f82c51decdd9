// SPDX-License-Identifier: MIT
//
// base: the small services every dtx module needs: logging to stderr, wall
// and monotonic clocks, randomness. No other module writes to stderr.

#ifndef DTX_BASE_H
#define DTX_BASE_H

#include <stddef.h>
#include <stdint.h>

enum {
	DTXI_LOG_ERROR = 0,
	DTXI_LOG_WARN  = 1,
	DTXI_LOG_INFO  = 2,
	DTXI_LOG_DEBUG = 3,
};

// The process-wide log level (default: DTX_LOG_LEVEL from the environment,
// else WARN). The level is the one mutable global dtx has: logging is a
// process-wide facility and threading a logger through every call would
// buy nothing. It is an atomic, set once at start-up.
void dtxi_log_set_level(int level);
int  dtxi_log_get_level(void);

// Parses "error", "warn", "info" or "debug"; returns -1 for anything else.
int dtxi_log_level_parse(const char *s);

// Writes "<time> <level> <message>\n" to stderr in one write when level is
// enabled. Thread-safe.
void dtxi_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define DTXI_ERROR(...) dtxi_log(DTXI_LOG_ERROR, __VA_ARGS__)
#define DTXI_WARN(...)  dtxi_log(DTXI_LOG_WARN, __VA_ARGS__)
#define DTXI_INFO(...)  dtxi_log(DTXI_LOG_INFO, __VA_ARGS__)
#define DTXI_DEBUG(...) dtxi_log(DTXI_LOG_DEBUG, __VA_ARGS__)

// Wall clock, ms since the epoch (what deadlines on the wire use).
int64_t dtxi_now_ms(void);

// Monotonic clock, ms.
int64_t dtxi_mono_ms(void);

// Fills buf with n random bytes (getrandom; falls back to a seeded xorshift
// only if the kernel refuses).
void dtxi_random(void *buf, size_t n);

// Writes a fresh gid (32 lowercase hex digits and a NUL) to out, which has
// room for 33 bytes: 12 digits of wall-clock milliseconds, then 20 random
// ones, so gids sort by creation time (to the millisecond).
void dtxi_gid_new(char *out);

// Copies src into dst of size cap, always NUL-terminating; returns the
// length of src (a result >= cap means it was truncated).
size_t dtxi_strlcpy(char *dst, const char *src, size_t cap);

#endif // DTX_BASE_H
