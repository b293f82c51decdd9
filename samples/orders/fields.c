// SPDX-License-Identifier: MIT
//
// fields: strict parsing of "key=value;key=value" text (see fields.h). The
// parser copies into fixed buffers so a hostile payload costs no memory and
// can never overrun anything: every length is checked before a copy.

#include "fields.h"

#include <stdio.h>
#include <string.h>

static bool
key_byte_ok(unsigned char c)
{
	return c >= 'a' && c <= 'z';
}

static bool
val_byte_ok(unsigned char c)
{
	return c >= 0x20 && c < 0x7f && c != ';' && c != '=';
}

int
orders_fields_parse(
    orders_fields *f, const void *data, size_t len, char *err, size_t errcap)
{
	const unsigned char *p   = data;
	const unsigned char *end = p + len;

	f->n = 0;
	if (len == 0) {
		snprintf(err, errcap, "empty payload");
		return -1;
	}
	for (;;) {
		const unsigned char *k = p, *v;
		size_t               klen, vlen;

		while (p < end && key_byte_ok(*p)) {
			p++;
		}
		klen = (size_t)(p - k);
		if (klen == 0 || klen > ORDERS_KEY_MAX || p == end ||
		    *p != '=') {
			snprintf(err, errcap,
			    "field %u: expected key=value with a lowercase "
			    "key",
			    f->n + 1);
			return -1;
		}
		v = ++p;
		while (p < end && val_byte_ok(*p)) {
			p++;
		}
		vlen = (size_t)(p - v);
		if (vlen == 0 || vlen > ORDERS_VAL_MAX) {
			snprintf(err, errcap,
			    "field '%.*s': value empty or longer than %d "
			    "bytes",
			    (int)klen, (const char *)k, ORDERS_VAL_MAX);
			return -1;
		}
		if (p < end && *p != ';') {
			snprintf(err, errcap,
			    "field '%.*s': unexpected byte 0x%02x in value",
			    (int)klen, (const char *)k, *p);
			return -1;
		}
		if (f->n == ORDERS_FIELDS_MAX) {
			snprintf(err, errcap, "more than %d fields",
			    ORDERS_FIELDS_MAX);
			return -1;
		}
		memcpy(f->f[f->n].key, k, klen);
		f->f[f->n].key[klen] = '\0';
		memcpy(f->f[f->n].val, v, vlen);
		f->f[f->n].val[vlen] = '\0';
		for (unsigned i = 0; i < f->n; i++) {
			if (strcmp(f->f[i].key, f->f[f->n].key) == 0) {
				snprintf(err, errcap, "field '%s' given twice",
				    f->f[i].key);
				return -1;
			}
		}
		f->n++;
		if (p == end) {
			return 0;
		}
		// Skip the ';'. One at the very end is a malformed payload,
		// not an empty last field to be forgiven.
		if (++p == end) {
			snprintf(err, errcap, "trailing ';'");
			return -1;
		}
	}
}

int
orders_fields_expect(
    const orders_fields *f, const char *const *want, char *err, size_t errcap)
{
	unsigned nwant = 0;

	for (const char *const *w = want; *w != NULL; w++) {
		if (orders_fields_get(f, *w) == NULL) {
			snprintf(err, errcap, "missing field '%s'", *w);
			return -1;
		}
		nwant++;
	}
	// Every wanted key is present and keys are unique, so any surplus is
	// a key we do not know.
	if (f->n != nwant) {
		for (unsigned i = 0; i < f->n; i++) {
			bool known = false;
			for (const char *const *w = want; *w != NULL; w++) {
				known = known || strcmp(*w, f->f[i].key) == 0;
			}
			if (!known) {
				snprintf(err, errcap, "unknown field '%s'",
				    f->f[i].key);
				return -1;
			}
		}
	}
	return 0;
}

const char *
orders_fields_get(const orders_fields *f, const char *key)
{
	for (unsigned i = 0; i < f->n; i++) {
		if (strcmp(f->f[i].key, key) == 0) {
			return f->f[i].val;
		}
	}
	return NULL;
}

bool
orders_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		unsigned char c = (unsigned char)s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		        c == '-')) {
			return false;
		}
	}
	return n >= 1 && n <= ORDERS_NAME_MAX;
}

int
orders_qty_parse(const char *s, uint32_t *out)
{
	uint64_t v = 0;
	size_t   n = 0;

	for (; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 10) {
			return -1;
		}
		v = v * 10 + (uint64_t)(s[n] - '0');
	}
	if (n == 0 || (n > 1 && s[0] == '0') || v > ORDERS_QTY_MAX) {
		return -1;
	}
	*out = (uint32_t)v;
	return 0;
}
