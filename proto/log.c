// SPDX-License-Identifier: MIT
//
// log: the one writer to stderr, shared by libdtx and dtxd (see log.h).

#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
