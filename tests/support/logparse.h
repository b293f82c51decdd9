// SPDX-License-Identifier: MIT
//
// logparse: reads the log lines dtxd and libdtx write (proto/log.h), as a
// log pipeline would: logfmt (key=value, values quoted when they hold a
// space, with \" \\ \n \t \xNN escapes) and JSON objects of strings and
// numbers. Tests use it to prove that each event has its line, level and
// fields. Test code only.

#ifndef DTX_TESTS_LOGPARSE_H
#define DTX_TESTS_LOGPARSE_H

#include <stdbool.h>
#include <stddef.h>

#define DTXT_LOG_FIELDS 32

typedef struct dtxt_logline {
	unsigned n;
	char     key[DTXT_LOG_FIELDS][32];
	char     val[DTXT_LOG_FIELDS][512];
} dtxt_logline;

// Parses one line (logfmt, or JSON when it starts with '{'). Returns 0, or
// -1 when it is not a well-formed line of either.
int dtxt_logline_parse(const char *line, dtxt_logline *out);

// The value of key in l, or NULL.
const char *dtxt_logline_get(const dtxt_logline *l, const char *key);

// Counts the lines of the file at path that parse, have event=event (NULL:
// any) and every key=value of match (NULL-terminated pairs of strings, may
// be NULL); the first such line goes to *first when not NULL. Lines that
// do not parse are counted in *bad when not NULL.
size_t dtxt_log_events(const char *path, const char *event,
    const char *const *match, dtxt_logline *first, size_t *bad);

#endif // DTX_TESTS_LOGPARSE_H
