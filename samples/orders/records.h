// SPDX-License-Identifier: MIT
//
// records: the services' stored records, nanopb-encoded messages of
// orders.proto (Stock, InventoryBranch, Order, OrderBranch), read from and
// staged into kv.h's store. The only file of the sample that encodes or
// decodes with nanopb (the generated code aside). A record that does not
// decode was damaged on disk: that is reported as a storage error, with
// nanopb's reason, never taken for an empty record.

#ifndef ORDERS_RECORDS_H
#define ORDERS_RECORDS_H

#include <pb.h>

#include "kv.h"

// Reads key and decodes it as a type into msg. Returns 1 if found, 0 if
// absent (msg then holds type's defaults), -1 on a storage error or a
// record that does not decode (printed). Thread-safe.
int orders_record_get(
    orders_kv *kv, const char *key, const pb_msgdesc_t *type, void *msg);

// Decodes the len bytes at val as a type into msg. Returns 0, or -1 after
// printing why (naming key).
int orders_record_decode(const char *key, const void *val, size_t len,
    const pb_msgdesc_t *type, void *msg);

// Inside a callback: encodes msg (a type) and stages it under key in the
// barrier's batch, which libdtx writes with its record of the call.
// Returns 0, or -1 when the record does not encode (printed).
int orders_record_stage(
    dtx_reply *r, const char *key, const pb_msgdesc_t *type, const void *msg);

// The same into a batch of orders_kv_write(). Returns 0 or -1.
int orders_record_put(orders_batch *b, const char *key,
    const pb_msgdesc_t *type, const void *msg);

#endif // ORDERS_RECORDS_H
