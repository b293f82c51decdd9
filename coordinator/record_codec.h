// SPDX-License-Identifier: MIT
//
// record_codec: dtxd's on-disk format. A transaction is stored as one
// record (dtx.proto's TxRecord: its TxInfo plus what dtxd needs to resume
// it) and one encoded BranchSpec per branch. Only dtxd reads or writes
// them, so this codec lives here and not in libdtx. What goes into a
// record, and how a transaction is rebuilt from one, is record.c's job;
// the keys they are stored under are the store backends' (store.h).

#ifndef DTXD_RECORD_CODEC_H
#define DTXD_RECORD_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

// The stored record of one transaction (branch specs are stored
// separately, one dtxi_branch_spec each).
typedef struct dtxd_record {
	dtxi_txinfo info;
	uint32_t done[DTX_BRANCHES_MAX]; // engine bits per branch (engine.h)
	uint32_t timeout_ms;
	uint32_t call_timeout_ms;
	uint32_t retries;
	int64_t  deadline_ms;
	uint64_t content_hash;
	uint32_t cursor;
	bool     wait;
} dtxd_record;

// The encoders keep the wire codec's promises (codec.h): 0, DTX_EINVAL (a
// field out of range), DTX_ETOOBIG (does not fit in cap); buf == NULL and
// cap == 0 compute the size only.
int dtxd_record_encode(
    const dtxd_record *r, uint8_t *buf, size_t cap, size_t *len);
int dtxd_spec_encode(
    const dtxi_branch_spec *s, uint8_t *buf, size_t cap, size_t *len);

// Records are our own writing, read back from disk: no frame or payload
// limit applies. 0, DTX_EPROTO (not a record: truncated, garbage, a value
// out of range, version 0), DTX_EVERSION (written by a newer dtxd: refused
// rather than misread). Payload slices point into buf.
int dtxd_record_decode(dtxd_record *r, const uint8_t *buf, size_t len);
int dtxd_spec_decode(dtxi_branch_spec *s, const uint8_t *buf, size_t len);

#endif // DTXD_RECORD_CODEC_H
