// SPDX-License-Identifier: MIT
//
// fields: the samples' tiny text format, "key=value;key=value". Branch
// payloads ("sku=widget;qty=2") and the services' stored records use it, so
// a payload can be typed by hand on a command line and a record read in a
// dump. Parsing is strict: a malformed payload must be refused with a reason,
// never half-understood.

#ifndef ORDERS_FIELDS_H
#define ORDERS_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ORDERS_FIELDS_MAX 8
#define ORDERS_KEY_MAX    16
#define ORDERS_VAL_MAX    200
#define ORDERS_NAME_MAX   64
#define ORDERS_QTY_MAX    1000000000u

typedef struct orders_fields {
	unsigned n;
	struct {
		char key[ORDERS_KEY_MAX + 1];
		char val[ORDERS_VAL_MAX + 1];
	} f[ORDERS_FIELDS_MAX];
} orders_fields;

// Parses len bytes of data (no NUL needed). Keys are 1..ORDERS_KEY_MAX
// lowercase letters and appear once; values are 1..ORDERS_VAL_MAX printable
// bytes other than ';' and '='; fields are separated by single ';' with none
// leading or trailing. Returns 0, or -1 with a readable reason in err.
int orders_fields_parse(
    orders_fields *f, const void *data, size_t len, char *err, size_t errcap);

// Checks that f holds exactly the keys of want (a NULL-terminated list), in
// any order. Returns 0, or -1 with a reason in err.
int orders_fields_expect(
    const orders_fields *f, const char *const *want, char *err, size_t errcap);

// The value of key, or NULL.
const char *orders_fields_get(const orders_fields *f, const char *key);

// True for a usable SKU or order id: 1..ORDERS_NAME_MAX bytes of
// [A-Za-z0-9._-]. Such names can be used inside storage keys as they are.
bool orders_name_ok(const char *s);

// Parses a quantity: decimal digits only, no sign, no leading zero, at most
// ORDERS_QTY_MAX. Returns 0 or -1.
int orders_qty_parse(const char *s, uint32_t *out);

#endif // ORDERS_FIELDS_H
