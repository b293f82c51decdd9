// SPDX-License-Identifier: MIT
//
// log: leveled logging to stderr, one line per event, one write per line.
// No other module writes to stderr.

#ifndef DTX_LOG_H
#define DTX_LOG_H

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

#endif // DTX_LOG_H
