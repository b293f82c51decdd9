// SPDX-License-Identifier: MIT
//
// textbuf: a growing text buffer (see textbuf.h).

#include "textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
dtxd_textbuf_init(dtxd_textbuf *t)
{
	memset(t, 0, sizeof(*t));
}

void
dtxd_textbuf_fini(dtxd_textbuf *t)
{
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

static bool
reserve(dtxd_textbuf *t, size_t more)
{
	size_t cap;
	char  *nb;

	if (t->failed) {
		return false;
	}
	if (t->len + more + 1 <= t->cap) {
		return true;
	}
	cap = t->cap == 0 ? 4096 : t->cap;
	while (cap < t->len + more + 1) {
		cap *= 2;
	}
	if ((nb = realloc(t->buf, cap)) == NULL) {
		t->failed = true;
		return false;
	}
	t->buf = nb;
	t->cap = cap;
	return true;
}

void
dtxd_textbuf_puts(dtxd_textbuf *t, const char *s)
{
	size_t n = strlen(s);

	if (reserve(t, n)) {
		memcpy(t->buf + t->len, s, n + 1);
		t->len += n;
	}
}

void
dtxd_textbuf_printf(dtxd_textbuf *t, const char *fmt, ...)
{
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(t, (size_t)n)) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

void
dtxd_textbuf_json_str(dtxd_textbuf *t, const char *s)
{
	char esc[8];

	dtxd_textbuf_puts(t, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	     p++) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			esc[2] = '\0';
			dtxd_textbuf_puts(t, esc);
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			dtxd_textbuf_puts(t, esc);
		} else {
			esc[0] = (char)*p;
			esc[1] = '\0';
			dtxd_textbuf_puts(t, esc);
		}
	}
	dtxd_textbuf_puts(t, "\"");
}
