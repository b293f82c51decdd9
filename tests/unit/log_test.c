// SPDX-License-Identifier: MIT
//
// dtx.unit.log: the log line format and its writer (proto/log.c). A line
// is logfmt or JSON with ts, level, pid, event, the given fields (a string
// field without a value is left out) and msg; values are quoted and
// escaped so that a line never breaks, and the log parser the integration
// tests use reads every line back to the same fields. A handler receives
// the lines instead of stderr, and a burst of one event is cut to the
// limiter's burst, the next line that gets through saying how many were
// dropped.

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "log.h"
#include "logparse.h"

#define MS 1796093233859LL // 2026-12-01T02:47:13.859Z

static const dtxi_field fields[] = {
    DTXI_F_STR("gid", "g-1"),
    DTXI_F_NUM("branch", 2),
    DTXI_F_STR("phase", "COMMIT"),
    DTXI_F_STR("trace_id", ""), // absent: left out
    DTXI_F_STR("endpoint", NULL),
    DTXI_F_STR("note", "two words, \"quoted\"\n\\ and = sign"),
};
#define NF (sizeof(fields) / sizeof(fields[0]))

Test(log, logfmt_lines_have_their_fields_in_order)
{
	char buf[1024];

	dtxi_log_format_line(buf, sizeof(buf), DTXI_LOG_LOGFMT, MS, 42,
	    DTXI_LOG_WARN, "branch_call_failed", fields, 3, 0, "no answer");
	cr_assert_str_eq(buf,
	    "ts=2026-12-01T02:47:13.859Z level=warn pid=42 "
	    "event=branch_call_failed gid=g-1 branch=2 phase=COMMIT "
	    "msg=\"no answer\"");
}

Test(log, values_are_quoted_and_escaped_and_read_back_alike)
{
	for (int f = DTXI_LOG_LOGFMT; f <= DTXI_LOG_JSON; f++) {
		char         buf[1024];
		dtxt_logline l;

		dtxi_log_format_line(buf, sizeof(buf), f, MS, 7, DTXI_LOG_INFO,
		    "ev", fields, NF, 3, "a\tb");
		cr_assert_null(strchr(buf, '\n'), "a newline in %s", buf);
		cr_assert_eq(dtxt_logline_parse(buf, &l), 0, "%s", buf);
		cr_assert_str_eq(dtxt_logline_get(&l, "level"), "info");
		cr_assert_str_eq(dtxt_logline_get(&l, "pid"), "7");
		cr_assert_str_eq(dtxt_logline_get(&l, "event"), "ev");
		cr_assert_str_eq(dtxt_logline_get(&l, "branch"), "2");
		cr_assert_str_eq(dtxt_logline_get(&l, "note"),
		    "two words, \"quoted\"\n\\ and = sign");
		cr_assert_str_eq(dtxt_logline_get(&l, "suppressed"), "3");
		cr_assert_str_eq(dtxt_logline_get(&l, "msg"), "a\tb");
		cr_assert_null(dtxt_logline_get(&l, "trace_id"));
		cr_assert_null(dtxt_logline_get(&l, "endpoint"));
	}
}

Test(log, a_line_cut_short_is_still_one_line_and_json_stays_an_object)
{
	char buf[80];
	char big[600];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	dtxi_log_format_line(buf, sizeof(buf), DTXI_LOG_JSON, MS, 1,
	    DTXI_LOG_ERROR, "ev", NULL, 0, 0, big);
	cr_assert_lt(strlen(buf), sizeof(buf));
	cr_assert_eq(buf[0], '{');
	cr_assert_eq(buf[strlen(buf) - 1], '}', "%s", buf);
}

Test(log, levels_and_formats_parse_by_name)
{
	cr_assert_eq(dtxi_log_level_parse("debug"), DTXI_LOG_DEBUG);
	cr_assert_eq(dtxi_log_level_parse("loud"), -1);
	cr_assert_eq(dtxi_log_level_parse(NULL), -1);
	cr_assert_eq(dtxi_log_format_parse("json"), DTXI_LOG_JSON);
	cr_assert_eq(dtxi_log_format_parse("logfmt"), DTXI_LOG_LOGFMT);
	cr_assert_eq(dtxi_log_format_parse("xml"), -1);
}

typedef struct sink {
	pthread_mutex_t mtx;
	int             n;
	int             levels[512];
	char            last[1024];
	char            with_suppressed[1024];
} sink;

static void
collect(void *arg, int level, const char *line)
{
	sink *s = arg;

	pthread_mutex_lock(&s->mtx);
	if (s->n < 512) {
		s->levels[s->n] = level;
	}
	s->n++;
	snprintf(s->last, sizeof(s->last), "%s", line);
	if (strstr(line, "suppressed=") != NULL) {
		snprintf(s->with_suppressed, sizeof(s->with_suppressed), "%s",
		    line);
	}
	pthread_mutex_unlock(&s->mtx);
}

Test(log, a_handler_gets_the_lines_of_the_enabled_levels)
{
	sink s = {.mtx = PTHREAD_MUTEX_INITIALIZER};

	dtxi_log_set_level(DTXI_LOG_INFO);
	dtxi_log_set_format(DTXI_LOG_LOGFMT);
	dtxi_log_set_handler(collect, &s);
	DTXI_DEBUG("hidden %d", 1);
	DTXI_INFO("shown %d", 2);
	dtxi_log_event(DTXI_LOG_WARN, "something",
	    DTXI_FIELDS(DTXI_F_STR("gid", "g")), "with %s", "fields");
	dtxi_log_set_handler(NULL, NULL);
	DTXI_WARN("to stderr, not to the handler");
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.levels[0], DTXI_LOG_INFO);
	cr_assert_eq(s.levels[1], DTXI_LOG_WARN);
	cr_assert(strstr(s.last, "event=something gid=g msg=\"with fields\""),
	    "%s", s.last);
}

typedef struct passed {
	sink *s;
	int   before;
} passed;

static int
suppressed_reported(void *arg)
{
	passed *p = arg;
	dtxi_log_event(DTXI_LOG_WARN, "burst", NULL, 0, "again");
	return p->s->with_suppressed[0] != '\0';
}

Test(log, a_burst_of_one_event_is_cut_and_the_drop_is_counted)
{
	sink   s = {.mtx = PTHREAD_MUTEX_INITIALIZER};
	passed p = {&s, 0};

	dtxi_log_set_level(DTXI_LOG_INFO);
	dtxi_log_set_handler(collect, &s);
	for (int i = 0; i < 500; i++) {
		dtxi_log_event(DTXI_LOG_WARN, "burst", NULL, 0, "line %d", i);
	}
	// Another event is not held back by this one's limit.
	dtxi_log_event(DTXI_LOG_WARN, "other", NULL, 0, "other");
	cr_assert(s.n >= 100 && s.n < 200, "%d lines of a burst of 500", s.n);
	cr_assert(strstr(s.last, "event=other"), "%s", s.last);
	// Once tokens come back, the next line says how many were dropped.
	cr_assert_eq(dtxt_wait_until(suppressed_reported, &p, 10, 5000), 0,
	    "no line with suppressed=");
	dtxi_log_set_handler(NULL, NULL);
	cr_assert(
	    strstr(s.with_suppressed, "event=burst"), "%s", s.with_suppressed);
	long dropped = atol(strstr(s.with_suppressed, "suppressed=") + 11);
	cr_assert(dropped >= 300, "suppressed=%ld", dropped);
}
