// SPDX-License-Identifier: MIT
//
// log: leveled logging, one line per event, one write per line. A line is
// logfmt by default and JSON on request, and always carries the time, the
// level and the process id; an event line adds its name and its fields
// (gid, branch, phase, attempt, trace_id where they apply), then a
// readable message:
//
//   ts=2026-12-01T02:06:18.123Z level=warn pid=4242
//   event=branch_call_failed gid=0190... branch=1 phase=COMMIT attempt=1
//   msg="participant tcp://127.0.0.1:7801 unreachable: Connection refused"
//
// (one line; wrapped here). Lines go to stderr unless a handler is set
// (libdtx's dtx_set_log_handler). No other module writes to stderr.
//
// Repeats are rate-limited per event name: a burst of one event (a
// thousand transactions whose participant just died) gets through the
// first LOG_BURST lines, then LOG_RATE a second; the next line of that
// event that gets through says how many were dropped (suppressed=N).
//
// Lock order: the handler's rwlock and the limiter's mutex are leaves,
// never held together.

#ifndef DTX_LOG_H
#define DTX_LOG_H

#include <stddef.h>

enum {
	DTXI_LOG_ERROR = 0,
	DTXI_LOG_WARN  = 1,
	DTXI_LOG_INFO  = 2,
	DTXI_LOG_DEBUG = 3,
};

enum {
	DTXI_LOG_LOGFMT = 0,
	DTXI_LOG_JSON   = 1,
};

// The process-wide log level (default: DTX_LOG_LEVEL from the environment,
// else WARN), format (default: DTX_LOG_FORMAT, else logfmt) and handler.
// They are dtx's only mutable globals: logging is a process-wide facility
// and threading a logger through every call would buy nothing. Each is
// set once at start-up (or by the application, through libdtx).
void dtxi_log_set_level(int level);
int  dtxi_log_get_level(void);
void dtxi_log_set_format(int format);
int  dtxi_log_get_format(void);

// Parses "error", "warn", "info" or "debug"; returns -1 for anything else.
int dtxi_log_level_parse(const char *s);

// Parses "logfmt" or "json"; returns -1 for anything else.
int dtxi_log_format_parse(const char *s);

// Where lines go: fn(arg, level, line) with the line without its newline,
// instead of stderr; NULL restores stderr. fn may run on any thread,
// concurrently, and must not log itself. Once this returns, the previous
// handler is not running and will not be called again.
typedef void (*dtxi_log_fn)(void *arg, int level, const char *line);
void dtxi_log_set_handler(dtxi_log_fn fn, void *arg);

// One field of an event line. A string field whose value is NULL or "" is
// left out, so callers pass what they have.
enum { DTXI_FIELD_STR = 0, DTXI_FIELD_NUM = 1 };

typedef struct dtxi_field {
	const char *key;
	int         type;
	const char *str;
	long long   num;
} dtxi_field;

#define DTXI_F_STR(k, v)                                                      \
	((dtxi_field) {.key = (k), .type = DTXI_FIELD_STR, .str = (v)})
#define DTXI_F_NUM(k, v)                                                      \
	((dtxi_field) {                                                       \
	    .key = (k), .type = DTXI_FIELD_NUM, .num = (long long)(v)})

// Writes an event line when level is enabled: event (a name of
// [a-z_]), the n fields, and the message made from fmt. Rate-limited per
// event (see above). Thread-safe.
void dtxi_log_event(int level, const char *event, const dtxi_field *fields,
    size_t n, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

// Writes a line with the message only (no event name). Thread-safe.
void dtxi_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// The fields of an event as a literal array and its length, for
// dtxi_log_event: DTXI_FIELDS(DTXI_F_STR("gid", g), DTXI_F_NUM("n", 3)).
#define DTXI_FIELDS(...)                                                      \
	((const dtxi_field[]) {__VA_ARGS__}),                                 \
	    (sizeof((const dtxi_field[]) {__VA_ARGS__}) / sizeof(dtxi_field))

#define DTXI_ERROR(...) dtxi_log(DTXI_LOG_ERROR, __VA_ARGS__)
#define DTXI_WARN(...)  dtxi_log(DTXI_LOG_WARN, __VA_ARGS__)
#define DTXI_INFO(...)  dtxi_log(DTXI_LOG_INFO, __VA_ARGS__)
#define DTXI_DEBUG(...) dtxi_log(DTXI_LOG_DEBUG, __VA_ARGS__)

// Formats one line into buf (cap bytes, NUL-terminated, no newline) as
// dtxi_log_event would write it at time ms (wall clock) from pid, in
// format; suppressed > 0 adds that field. Returns the length. For tests,
// and the writer itself.
size_t dtxi_log_format_line(char *buf, size_t cap, int format, long long ms,
    int pid, int level, const char *event, const dtxi_field *fields, size_t n,
    unsigned long suppressed, const char *msg);

#endif // DTX_LOG_H
