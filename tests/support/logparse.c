// SPDX-License-Identifier: MIT
//
// logparse: logfmt and JSON log lines read back (see logparse.h).

#include "logparse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static bool
put(dtxt_logline *out, const char *k, size_t kn, const char *v, size_t vn)
{
	if (out->n == DTXT_LOG_FIELDS || kn == 0 ||
	    kn >= sizeof(out->key[0])) {
		return false;
	}
	if (vn >= sizeof(out->val[0])) {
		vn = sizeof(out->val[0]) - 1;
	}
	memcpy(out->key[out->n], k, kn);
	out->key[out->n][kn] = '\0';
	memcpy(out->val[out->n], v, vn);
	out->val[out->n][vn] = '\0';
	out->n++;
	return true;
}

// Reads a quoted string at *pp (after its opening quote) into val,
// unescaping; leaves *pp after the closing quote. False if unterminated.
static bool
quoted(const char **pp, char *val, size_t cap, size_t *vn)
{
	const char *p = *pp;
	size_t      n = 0;

	while (*p != '"') {
		char c = *p;
		if (c == '\0') {
			return false;
		}
		if (c == '\\') {
			p++;
			switch (*p) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'x':
			case 'u': {
				unsigned v = 0;
				int      d = *p == 'x' ? 2 : 4;
				if (sscanf(p + 1, *p == 'x' ? "%2x" : "%4x",
				        &v) != 1) {
					return false;
				}
				p += d;
				c = (char)v;
				break;
			}
			case '\0':
				return false;
			default:
				c = *p;
				break;
			}
		}
		if (n + 1 < cap) {
			val[n++] = c;
		}
		p++;
	}
	*pp = p + 1;
	*vn = n;
	return true;
}

static int
parse_logfmt(const char *p, dtxt_logline *out)
{
	char val[512];

	while (*p != '\0' && *p != '\n') {
		const char *k = p;
		size_t      kn, vn;

		while (*p == ' ') {
			p++;
		}
		k = p;
		while (*p != '=' && *p != ' ' && *p != '\0') {
			p++;
		}
		if (*p != '=') {
			return -1;
		}
		kn = (size_t)(p - k);
		p++;
		if (*p == '"') {
			p++;
			if (!quoted(&p, val, sizeof(val), &vn)) {
				return -1;
			}
		} else {
			const char *v = p;
			while (*p != ' ' && *p != '\0' && *p != '\n') {
				if (*p == '"' || *p == '=') {
					return -1;
				}
				p++;
			}
			vn = (size_t)(p - v);
			memcpy(val, v, vn);
		}
		if (!put(out, k, kn, val, vn)) {
			return -1;
		}
		if (*p != ' ' && *p != '\0' && *p != '\n') {
			return -1;
		}
	}
	return out->n > 0 ? 0 : -1;
}

// A flat JSON object of string and integer values (what log.c writes).
static int
parse_json(const char *p, dtxt_logline *out)
{
	char key[32], val[512];

	if (*p++ != '{') {
		return -1;
	}
	for (;;) {
		size_t kn, vn;
		if (*p++ != '"' || !quoted(&p, key, sizeof(key), &kn) ||
		    *p++ != ':') {
			return -1;
		}
		if (*p == '"') {
			p++;
			if (!quoted(&p, val, sizeof(val), &vn)) {
				return -1;
			}
		} else {
			const char *v = p;
			if (*p == '-') {
				p++;
			}
			while (*p >= '0' && *p <= '9') {
				p++;
			}
			vn = (size_t)(p - v);
			if (vn == 0) {
				return -1;
			}
			memcpy(val, v, vn);
		}
		if (!put(out, key, kn, val, vn)) {
			return -1;
		}
		if (*p == '}') {
			p++;
			break;
		}
		if (*p++ != ',') {
			return -1;
		}
	}
	return *p == '\0' || *p == '\n' ? 0 : -1;
}

int
dtxt_logline_parse(const char *line, dtxt_logline *out)
{
	memset(out, 0, sizeof(*out));
	return line[0] == '{' ? parse_json(line, out)
	                      : parse_logfmt(line, out);
}

const char *
dtxt_logline_get(const dtxt_logline *l, const char *key)
{
	for (unsigned i = 0; i < l->n; i++) {
		if (strcmp(l->key[i], key) == 0) {
			return l->val[i];
		}
	}
	return NULL;
}

size_t
dtxt_log_events(const char *path, const char *event, const char *const *match,
    dtxt_logline *first, size_t *bad)
{
	char        *text = dtxt_read_file(path);
	char        *save = NULL;
	size_t       n    = 0;
	dtxt_logline l;

	if (bad != NULL) {
		*bad = 0;
	}
	for (char *line = strtok_r(text, "\n", &save); line != NULL;
	     line       = strtok_r(NULL, "\n", &save)) {
		const char *ev;
		bool        ok = true;

		if (dtxt_logline_parse(line, &l) != 0) {
			if (bad != NULL) {
				(*bad)++;
			}
			continue;
		}
		ev = dtxt_logline_get(&l, "event");
		if (event != NULL && (ev == NULL || strcmp(ev, event) != 0)) {
			continue;
		}
		for (size_t i = 0; match != NULL && match[i] != NULL; i += 2) {
			const char *v = dtxt_logline_get(&l, match[i]);
			if (v == NULL || strcmp(v, match[i + 1]) != 0) {
				ok = false;
			}
		}
		if (!ok) {
			continue;
		}
		if (n == 0 && first != NULL) {
			*first = l;
		}
		n++;
	}
	free(text);
	return n;
}
