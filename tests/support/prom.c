// SPDX-License-Identifier: MIT
//
// prom: the Prometheus text format read back and checked (see prom.h).

#include "prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TYPED_MAX 128

typedef struct typed {
	char name[128];
	char type[16];
} typed;

static int
fail(char *why, size_t cap, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
	return -1;
}

static bool
name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    c == ':' || (!first && c >= '0' && c <= '9');
}

// Checks label="value",... up to the closing brace.
static bool
labels_ok(const char *s)
{
	while (*s != '\0') {
		if (!name_char(*s, true)) {
			return false;
		}
		while (name_char(*s, false)) {
			s++;
		}
		if (*s++ != '=' || *s++ != '"') {
			return false;
		}
		while (*s != '"') {
			if (*s == '\0' || *s == '\n') {
				return false;
			}
			if (*s == '\\') {
				s++;
			}
			s++;
		}
		s++;
		if (*s == ',') {
			s++;
		} else if (*s != '\0') {
			return false;
		}
	}
	return true;
}

static const char *
family(const char *name, const typed *t, size_t nt)
{
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (size_t i = 0; i < nt; i++) {
		size_t n = strlen(t[i].name);
		if (strcmp(name, t[i].name) == 0) {
			return t[i].type;
		}
		if (strncmp(name, t[i].name, n) == 0 &&
		    strcmp(t[i].type, "histogram") == 0) {
			for (size_t k = 0; k < 3; k++) {
				if (strcmp(name + n, suffixes[k]) == 0) {
					return t[i].type;
				}
			}
		}
	}
	return NULL;
}

// The labels of a bucket without its le, and its le.
static void
split_le(const char *labels, char *rest, size_t cap, double *le)
{
	const char *l = strstr(labels, "le=\"");
	size_t      n = l != NULL ? (size_t)(l - labels) : strlen(labels);

	if (n > 0 && labels[n - 1] == ',') {
		n--;
	}
	snprintf(rest, cap, "%.*s", (int)n, labels);
	*le = l == NULL                      ? NAN
	    : strncmp(l + 4, "+Inf", 4) == 0 ? INFINITY
	                                     : strtod(l + 4, NULL);
}

static int
check_histograms(const dtxt_prom *p, char *why, size_t cap)
{
	for (size_t i = 0; i < p->n; i++) {
		const dtxt_prom_sample *s  = &p->s[i];
		size_t                  nl = strlen(s->name);
		char                    base[128], rest[256], rest2[256];
		char                    count_name[160];
		double                  le, prev_le = -INFINITY, prev = 0;

		if (nl < 7 || strcmp(s->name + nl - 7, "_bucket") != 0) {
			continue;
		}
		snprintf(base, sizeof(base), "%.*s", (int)(nl - 7), s->name);
		split_le(s->labels, rest, sizeof(rest), &le);
		if (i > 0 && strcmp(p->s[i - 1].name, s->name) == 0) {
			split_le(p->s[i - 1].labels, rest2, sizeof(rest2),
			    &prev_le);
			if (strcmp(rest, rest2) == 0) {
				continue; // checked from its first bucket
			}
		}
		// From the first bucket of this series, walk its buckets.
		prev_le = -INFINITY;
		for (size_t k = i; k < p->n; k++) {
			const dtxt_prom_sample *b = &p->s[k];
			if (strcmp(b->name, s->name) != 0) {
				break;
			}
			split_le(b->labels, rest2, sizeof(rest2), &le);
			if (strcmp(rest, rest2) != 0) {
				break;
			}
			if (!(le > prev_le) || b->value < prev) {
				return fail(why, cap,
				    "%s{%s}: buckets out of order", b->name,
				    b->labels);
			}
			prev_le = le;
			prev    = b->value;
		}
		if (!isinf(prev_le)) {
			return fail(
			    why, cap, "%s{%s}: no +Inf bucket", s->name, rest);
		}
		snprintf(count_name, sizeof(count_name), "%s_count", base);
		if (dtxt_prom_get(p, count_name, rest) != prev) {
			return fail(why, cap,
			    "%s{%s}: +Inf bucket %g but count %g", base, rest,
			    prev, dtxt_prom_get(p, count_name, rest));
		}
	}
	return 0;
}

int
dtxt_prom_parse(const char *text, dtxt_prom *p, char *why, size_t cap)
{
	typed  t[TYPED_MAX];
	size_t nt = 0, cap_s = 0, lineno = 0;

	memset(p, 0, sizeof(*p));
	while (*text != '\0') {
		const char *eol = strchr(text, '\n');
		size_t len = eol != NULL ? (size_t)(eol - text) : strlen(text);
		char   line[1024];

		lineno++;
		if (eol == NULL) {
			return fail(why, cap, "line %zu does not end with \\n",
			    lineno);
		}
		if (len >= sizeof(line)) {
			return fail(why, cap, "line %zu too long", lineno);
		}
		memcpy(line, text, len);
		line[len] = '\0';
		text      = eol + 1;
		if (line[0] == '#') {
			char name[128], type[16];
			if (sscanf(line, "# TYPE %127s %15s", name, type) ==
			    2) {
				if (nt == TYPED_MAX || family(name, t, nt)) {
					return fail(why, cap,
					    "line %zu: %s typed twice", lineno,
					    name);
				}
				snprintf(t[nt].name, sizeof(t[nt].name), "%s",
				    name);
				snprintf(t[nt].type, sizeof(t[nt].type), "%s",
				    type);
				nt++;
			} else if (strncmp(line, "# HELP ", 7) != 0) {
				return fail(why, cap,
				    "line %zu: a comment that is neither HELP "
				    "nor TYPE",
				    lineno);
			}
			continue;
		}
		dtxt_prom_sample s;
		const char      *c = line;
		char            *end;
		memset(&s, 0, sizeof(s));
		if (!name_char(*c, true)) {
			return fail(why, cap, "line %zu: bad metric name: %s",
			    lineno, line);
		}
		while (name_char(*c, false)) {
			c++;
		}
		snprintf(
		    s.name, sizeof(s.name), "%.*s", (int)(c - line), line);
		if (*c == '{') {
			const char *close = strchr(c, '}');
			if (close == NULL) {
				return fail(
				    why, cap, "line %zu: no '}'", lineno);
			}
			snprintf(s.labels, sizeof(s.labels), "%.*s",
			    (int)(close - c - 1), c + 1);
			if (!labels_ok(s.labels)) {
				return fail(why, cap,
				    "line %zu: bad labels: %s", lineno,
				    s.labels);
			}
			c = close + 1;
		}
		if (*c++ != ' ') {
			return fail(why, cap, "line %zu: no value", lineno);
		}
		s.value = strtod(c, &end);
		if (end == c || *end != '\0') {
			return fail(
			    why, cap, "line %zu: bad value '%s'", lineno, c);
		}
		if (family(s.name, t, nt) == NULL) {
			return fail(why, cap,
			    "line %zu: %s has no TYPE before it", lineno,
			    s.name);
		}
		if (p->n == cap_s) {
			cap_s = cap_s == 0 ? 256 : cap_s * 2;
			p->s  = realloc(p->s, cap_s * sizeof(*p->s));
			if (p->s == NULL) {
				return fail(why, cap, "out of memory");
			}
		}
		p->s[p->n++] = s;
	}
	return check_histograms(p, why, cap);
}

void
dtxt_prom_fini(dtxt_prom *p)
{
	free(p->s);
	p->s = NULL;
	p->n = 0;
}

double
dtxt_prom_get(const dtxt_prom *p, const char *name, const char *labels)
{
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->s[i].name, name) == 0 &&
		    strcmp(p->s[i].labels, labels) == 0) {
			return p->s[i].value;
		}
	}
	return -1;
}

double
dtxt_prom_sum(const dtxt_prom *p, const char *name)
{
	double sum = 0;
	for (size_t i = 0; i < p->n; i++) {
		if (strcmp(p->s[i].name, name) == 0) {
			sum += p->s[i].value;
		}
	}
	return sum;
}

bool
dtxt_prom_has_label(const dtxt_prom *p, const char *label)
{
	char pat[64];

	snprintf(pat, sizeof(pat), "%s=\"", label);
	for (size_t i = 0; i < p->n; i++) {
		const char *l = p->s[i].labels;
		if (strncmp(l, pat, strlen(pat)) == 0) {
			return true;
		}
		for (const char *c = strchr(l, ','); c != NULL;
		     c             = strchr(c + 1, ',')) {
			if (strncmp(c + 1, pat, strlen(pat)) == 0) {
				return true;
			}
		}
	}
	return false;
}
