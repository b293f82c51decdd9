// SPDX-License-Identifier: MIT
//
// record: a transaction and its stored form, both ways, in one place.
// What a record holds (dtxd_txrec_fill), what Status shows
// (dtxd_txrec_info), how a transaction is rebuilt from its record at
// recovery (dtxd_txrec_load), and how a branch is built from its spec,
// for a Submit and for a recovered record alike (dtxd_txrec_branch). The
// bytes are record_codec's; where they are kept, the store backends'.

#ifndef DTXD_RECORD_H
#define DTXD_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "record_codec.h"
#include "txtable.h"

// The loop's scratch for records: one decoded record and one encoding
// buffer, reused for every write (see dtxd_txrec_encode).
typedef struct dtxd_recbuf {
	dtxd_record *rec;
	uint8_t     *buf;
	size_t       cap;
} dtxd_recbuf;

// Errors: DTX_ENOMEM.
int  dtxd_recbuf_init(dtxd_recbuf *b);
void dtxd_recbuf_fini(dtxd_recbuf *b);

// The status of tx as a client sees it. The branch payloads point into tx.
void dtxd_txrec_info(const txn *tx, dtxi_txinfo *info);

// The record of tx as it is now (payloads point into tx).
void dtxd_txrec_fill(const txn *tx, dtxd_record *rec);

// Gives branch i of tx the endpoint, method and payload of spec (copied)
// and its saga group.
// Errors: DTX_ENOMEM (then tx is unchanged where it failed; free it).
int dtxd_txrec_branch(txn *tx, uint32_t i, const dtxi_branch_spec *spec);

// Fills tx (allocated for rec's branches) from a stored record and its
// encoded branch specs, as it was when written. call_timeout_ms replaces
// a stored 0. Errors: DTX_EPROTO (a spec does not decode), DTX_ENOMEM.
int dtxd_txrec_load(txn *tx, const dtxd_record *rec,
    const uint8_t *const *specs, const size_t *spec_lens,
    uint32_t call_timeout_ms);

// Encodes tx's record (spec < 0) or the spec of its branch spec into a
// fresh buffer of its exact size (*outp, malloc'd). Errors: those of the
// record codec, DTX_ENOMEM.
int dtxd_txrec_encode(
    dtxd_recbuf *b, const txn *tx, int spec, uint8_t **outp, size_t *lenp);

#endif // DTXD_RECORD_H
