// SPDX-License-Identifier: MIT
//
// log: the one writer of log lines, shared by libdtx and dtxd (see log.h).

#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

// The limiter: LOG_BURST lines of one event at once, then LOG_RATE a
// second. At 20 lines a second a day of one repeated event is 1.7 million
// lines, which a log pipeline takes; a burst of 10,000 in a second is not
// useful to anyone, and its cost lands on dtxd's loop.
#define LOG_BURST  100
#define LOG_RATE   20
#define LOG_EVENTS 64 // distinct event names tracked

// -1: not yet read from the environment.
static atomic_int log_level  = -1;
static atomic_int log_format = -1;

static pthread_rwlock_t handler_lock = PTHREAD_RWLOCK_INITIALIZER;
static dtxi_log_fn      handler_fn;
static void            *handler_arg;

typedef struct bucket {
	const char   *event;
	long long     tokens_milli; // tokens * 1000
	long long     last_ms;
	unsigned long dropped;
} bucket;

static pthread_mutex_t limit_mtx = PTHREAD_MUTEX_INITIALIZER;
static bucket          buckets[LOG_EVENTS];

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

int
dtxi_log_format_parse(const char *s)
{
	if (s == NULL) {
		return -1;
	}
	if (strcmp(s, "logfmt") == 0) {
		return DTXI_LOG_LOGFMT;
	}
	if (strcmp(s, "json") == 0) {
		return DTXI_LOG_JSON;
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
dtxi_log_set_format(int format)
{
	atomic_store(&log_format,
	    format == DTXI_LOG_JSON ? DTXI_LOG_JSON : DTXI_LOG_LOGFMT);
}

int
dtxi_log_get_format(void)
{
	int f = atomic_load(&log_format);
	if (f < 0) {
		f = dtxi_log_format_parse(getenv("DTX_LOG_FORMAT"));
		if (f < 0) {
			f = DTXI_LOG_LOGFMT;
		}
		atomic_store(&log_format, f);
	}
	return f;
}

void
dtxi_log_set_handler(dtxi_log_fn fn, void *arg)
{
	pthread_rwlock_wrlock(&handler_lock);
	handler_fn  = fn;
	handler_arg = arg;
	pthread_rwlock_unlock(&handler_lock);
}

// ---------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------

typedef struct out {
	char  *buf;
	size_t cap; // room for the text; one byte more for the NUL
	size_t n;
} out;

static void
put_c(out *o, char c)
{
	if (o->n < o->cap) {
		o->buf[o->n++] = c;
	}
}

static void
put_s(out *o, const char *s)
{
	while (*s != '\0') {
		put_c(o, *s++);
	}
}

static void put_fmt(out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
put_fmt(out *o, const char *fmt, ...)
{
	char    tmp[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	put_s(o, tmp);
}

// logfmt quotes a value that is empty or holds a space, '=', '"', '\\' or
// a control character; inside quotes, '"' and '\\' are escaped and control
// characters written as \n, \t or \xNN, so a value never breaks the line.
static bool
needs_quotes(const char *s)
{
	if (*s == '\0') {
		return true;
	}
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c <= ' ' || c == '=' || c == '"' || c == '\\' ||
		    c == 0x7f) {
			return true;
		}
	}
	return false;
}

// Escapes s inside quotes; JSON and logfmt escape alike, but for control
// characters JSON needs \u00NN.
static void
put_escaped(out *o, const char *s, bool json)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			put_c(o, '\\');
			put_c(o, (char)c);
		} else if (c == '\n') {
			put_s(o, "\\n");
		} else if (c == '\t') {
			put_s(o, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			put_fmt(o, json ? "\\u%04x" : "\\x%02x", c);
		} else {
			put_c(o, (char)c);
		}
	}
}

static void
put_str_field(out *o, bool json, const char *key, const char *val)
{
	if (json) {
		put_s(o, ",\"");
		put_s(o, key);
		put_s(o, "\":\"");
		put_escaped(o, val, true);
		put_c(o, '"');
		return;
	}
	put_c(o, ' ');
	put_s(o, key);
	put_c(o, '=');
	if (needs_quotes(val)) {
		put_c(o, '"');
		put_escaped(o, val, false);
		put_c(o, '"');
	} else {
		put_s(o, val);
	}
}

static void
put_num_field(out *o, bool json, const char *key, long long v)
{
	put_s(o, json ? ",\"" : " ");
	put_s(o, key);
	put_s(o, json ? "\":" : "=");
	put_fmt(o, "%lld", v);
}

size_t
dtxi_log_format_line(char *buf, size_t cap, int format, long long ms, int pid,
    int level, const char *event, const dtxi_field *fields, size_t n,
    unsigned long suppressed, const char *msg)
{
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	bool                     json     = format == DTXI_LOG_JSON;
	out                      o        = {buf, cap > 0 ? cap - 1 : 0, 0};
	time_t                   secs     = (time_t)(ms / 1000);
	struct tm                tm;
	char                     ts[64];

	if (cap == 0) {
		return 0;
	}
	gmtime_r(&secs, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	level = level < 0 ? 0 : level > 3 ? 3 : level;
	if (json) {
		put_s(&o, "{\"ts\":\"");
		put_s(&o, ts);
		put_s(&o, "\",\"level\":\"");
		put_s(&o, levels[level]);
		put_c(&o, '"');
	} else {
		put_s(&o, "ts=");
		put_s(&o, ts);
		put_s(&o, " level=");
		put_s(&o, levels[level]);
	}
	put_num_field(&o, json, "pid", pid);
	if (event != NULL) {
		put_str_field(&o, json, "event", event);
	}
	for (size_t i = 0; i < n; i++) {
		const dtxi_field *f = &fields[i];
		if (f->type == DTXI_FIELD_NUM) {
			put_num_field(&o, json, f->key, f->num);
		} else if (f->str != NULL && f->str[0] != '\0') {
			put_str_field(&o, json, f->key, f->str);
		}
	}
	if (suppressed > 0) {
		put_num_field(&o, json, "suppressed", (long long)suppressed);
	}
	put_str_field(&o, json, "msg", msg);
	if (json) {
		// A line cut short must still end the object.
		if (o.n + 1 >= o.cap) {
			o.n = o.cap > 2 ? o.cap - 2 : 0;
			put_s(&o, "\"}");
		} else {
			put_c(&o, '}');
		}
	}
	buf[o.n] = '\0';
	return o.n;
}

// ---------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// True when a line of event may go out now; *dropped receives the count
// of lines of that event dropped since the last one that went out. Events
// beyond the table's size are not limited.
static bool
limit_admit(const char *event, unsigned long *dropped)
{
	long long t = mono_ms();
	bucket   *b = NULL;
	bool      ok;

	*dropped = 0;
	pthread_mutex_lock(&limit_mtx);
	for (size_t i = 0; i < LOG_EVENTS; i++) {
		if (buckets[i].event == NULL) {
			b               = &buckets[i];
			b->event        = event;
			b->tokens_milli = LOG_BURST * 1000LL;
			b->last_ms      = t;
			break;
		}
		if (buckets[i].event == event ||
		    strcmp(buckets[i].event, event) == 0) {
			b = &buckets[i];
			break;
		}
	}
	if (b == NULL) {
		pthread_mutex_unlock(&limit_mtx);
		return true;
	}
	b->tokens_milli += (t - b->last_ms) * LOG_RATE;
	if (b->tokens_milli > LOG_BURST * 1000LL) {
		b->tokens_milli = LOG_BURST * 1000LL;
	}
	b->last_ms = t;
	ok         = b->tokens_milli >= 1000;
	if (ok) {
		b->tokens_milli -= 1000;
		*dropped   = b->dropped;
		b->dropped = 0;
	} else {
		b->dropped++;
	}
	pthread_mutex_unlock(&limit_mtx);
	return ok;
}

static void
emit(int level, const char *event, const dtxi_field *fields, size_t n,
    const char *fmt, va_list ap)
{
	char          msg[1024];
	char          line[LINE_MAX_BYTES];
	unsigned long dropped = 0;
	size_t        len;

	if (level > dtxi_log_get_level()) {
		return;
	}
	if (event != NULL && !limit_admit(event, &dropped)) {
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = dtxi_log_format_line(line, sizeof(line) - 1,
	    dtxi_log_get_format(), now_ms(), (int)getpid(), level, event,
	    fields, n, dropped, msg);
	pthread_rwlock_rdlock(&handler_lock);
	if (handler_fn != NULL) {
		handler_fn(handler_arg, level, line);
		pthread_rwlock_unlock(&handler_lock);
		return;
	}
	pthread_rwlock_unlock(&handler_lock);
	// One write so that lines from several threads never interleave.
	line[len++] = '\n';
	ssize_t w   = write(STDERR_FILENO, line, len);
	(void)w;
}

void
dtxi_log_event(int level, const char *event, const dtxi_field *fields,
    size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, event, fields, n, fmt, ap);
	va_end(ap);
}

void
dtxi_log(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(level, NULL, NULL, 0, fmt, ap);
	va_end(ap);
}
