// SPDX-License-Identifier: MIT
//
// textbuf: a growing text buffer for the HTTP bodies dtxd builds (the
// Prometheus text, the status page's JSON), with JSON string escaping. A
// failed allocation is remembered and reported once, at the end, so the
// builders need not check every append.

#ifndef DTXD_TEXTBUF_H
#define DTXD_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dtxd_textbuf {
	char  *buf; // NUL-terminated while not failed
	size_t len;
	size_t cap;
	bool   failed; // an allocation failed: the text is incomplete
} dtxd_textbuf;

void dtxd_textbuf_init(dtxd_textbuf *t);
void dtxd_textbuf_fini(dtxd_textbuf *t);

void dtxd_textbuf_puts(dtxd_textbuf *t, const char *s);
void dtxd_textbuf_printf(dtxd_textbuf *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Appends s as a JSON string, quotes included.
void dtxd_textbuf_json_str(dtxd_textbuf *t, const char *s);

#endif // DTXD_TEXTBUF_H
