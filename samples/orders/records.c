// SPDX-License-Identifier: MIT
//
// records: nanopb behind records.h. Records are small fixed-size messages
// (orders.options bounds every string), so each is encoded into a stack
// buffer of RECORD_MAX bytes.

#include "records.h"

#include <stdio.h>

#include <pb_decode.h>
#include <pb_encode.h>

// Larger than any record of orders.proto: two names of 64 bytes, a state
// and a quantity, with their tags and lengths.
#define RECORD_MAX 256

int
orders_record_decode(const char *key, const void *val, size_t len,
    const pb_msgdesc_t *type, void *msg)
{
	pb_istream_t in = pb_istream_from_buffer(val, len);

	if (!pb_decode(&in, type, msg)) {
		fprintf(stderr, "storage: record %s is damaged: %s\n", key,
		    PB_GET_ERROR(&in));
		return -1;
	}
	return 0;
}

int
orders_record_get(
    orders_kv *kv, const char *key, const pb_msgdesc_t *type, void *msg)
{
	unsigned char buf[RECORD_MAX];
	size_t        len = 0;
	int           rv  = orders_kv_get(kv, key, buf, sizeof(buf), &len);

	if (rv != 1) {
		// Absent or unreadable: msg gets the defaults either way.
		(void)orders_record_decode(key, NULL, 0, type, msg);
		return rv;
	}
	return orders_record_decode(key, buf, len, type, msg) == 0 ? 1 : -1;
}

// Encodes msg into buf and its length into *len. Returns 0, or -1 after
// printing why.
static int
encode(const char *key, const pb_msgdesc_t *type, const void *msg,
    unsigned char *buf, size_t cap, size_t *len)
{
	pb_ostream_t out = pb_ostream_from_buffer(buf, cap);

	if (!pb_encode(&out, type, msg)) {
		fprintf(stderr, "storage: record %s does not encode: %s\n",
		    key, PB_GET_ERROR(&out));
		return -1;
	}
	*len = out.bytes_written;
	return 0;
}

int
orders_record_stage(
    dtx_reply *r, const char *key, const pb_msgdesc_t *type, const void *msg)
{
	unsigned char buf[RECORD_MAX];
	size_t        len;

	if (encode(key, type, msg, buf, sizeof(buf), &len) != 0) {
		return -1;
	}
	orders_stage_put(r, key, buf, len);
	return 0;
}

int
orders_record_put(orders_batch *b, const char *key, const pb_msgdesc_t *type,
    const void *msg)
{
	unsigned char buf[RECORD_MAX];
	size_t        len;

	if (encode(key, type, msg, buf, sizeof(buf), &len) != 0) {
		return -1;
	}
	orders_batch_put(b, key, buf, len);
	return 0;
}
