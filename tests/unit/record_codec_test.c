// SPDX-License-Identifier: MIT
//
// record_codec: dtxd's stored record and branch spec survive an
// encode/decode round trip field for field, the engine's progress bits
// included (they are stored, never sent); payloads decode as slices of the
// stored bytes; a record of a newer dtxd, a truncated one and a bad field
// are refused with the documented code.

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include "record_codec.h"

static dtxd_record rec, rec2;
static uint8_t     buf[64 * 1024];
static uint8_t     payloads[DTX_BRANCHES_MAX][40];

static void
fill_record(unsigned nbranches)
{
	memset(&rec, 0, sizeof(rec));
	strcpy(rec.info.gid, "tx-42");
	rec.info.mode       = DTX_SAGA;
	rec.info.state      = DTX_STATE_COMPENSATING;
	rec.info.stuck      = true;
	rec.info.created_ms = 1700000000123;
	rec.info.updated_ms = 1700000009999;
	rec.info.nbranches  = nbranches;
	for (unsigned i = 0; i < nbranches; i++) {
		dtxi_branch_result *b = &rec.info.branches[i];

		b->branch_id = i;
		b->status    = (int)(i % 6);
		b->phase     = (int)(i % 6);
		b->attempts  = i * 3;
		snprintf(b->message, sizeof(b->message), "message %u", i);
		memset(payloads[i], (int)i, i % sizeof(payloads[i]));
		b->payload.ptr = payloads[i];
		b->payload.len = i % sizeof(payloads[i]);
		rec.done[i]    = 0xf0u | i;
	}
	rec.timeout_ms      = 1;
	rec.call_timeout_ms = 2;
	rec.retries         = 3;
	rec.deadline_ms     = 1700000000000;
	rec.content_hash    = 0xfedcba9876543210ull;
	rec.cursor          = 63;
	rec.wait            = true;
}

Test(record_codec, round_trips_a_record_with_its_engine_bits)
{
	size_t len = 0, size = 0;

	fill_record(DTX_BRANCHES_MAX);
	cr_assert_eq(dtxd_record_encode(&rec, NULL, 0, &size), 0);
	cr_assert_eq(dtxd_record_encode(&rec, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, size);
	cr_assert_eq(dtxd_record_decode(&rec2, buf, len), 0);
	cr_assert_str_eq(rec2.info.gid, "tx-42");
	cr_assert_eq(rec2.info.mode, DTX_SAGA);
	cr_assert_eq(rec2.info.state, DTX_STATE_COMPENSATING);
	cr_assert(rec2.info.stuck);
	cr_assert_eq(rec2.info.created_ms, 1700000000123);
	cr_assert_eq(rec2.info.updated_ms, 1700000009999);
	cr_assert_eq(rec2.info.nbranches, DTX_BRANCHES_MAX);
	for (unsigned i = 0; i < DTX_BRANCHES_MAX; i++) {
		const dtxi_branch_result *a = &rec.info.branches[i];
		const dtxi_branch_result *b = &rec2.info.branches[i];

		cr_assert_eq(b->branch_id, i);
		cr_assert_eq(b->status, a->status);
		cr_assert_eq(b->phase, a->phase);
		cr_assert_eq(b->attempts, a->attempts);
		cr_assert_str_eq(b->message, a->message);
		cr_assert_eq(b->payload.len, a->payload.len);
		if (b->payload.len > 0) {
			cr_assert(b->payload.ptr >= buf &&
			    b->payload.ptr + b->payload.len <= buf + len);
			cr_assert_eq(memcmp(b->payload.ptr, a->payload.ptr,
			                 a->payload.len),
			    0);
		}
		cr_assert_eq(rec2.done[i], 0xf0u | i, "branch %u", i);
	}
	cr_assert_eq(rec2.timeout_ms, 1);
	cr_assert_eq(rec2.call_timeout_ms, 2);
	cr_assert_eq(rec2.retries, 3);
	cr_assert_eq(rec2.deadline_ms, 1700000000000);
	cr_assert_eq(rec2.content_hash, 0xfedcba9876543210ull);
	cr_assert_eq(rec2.cursor, 63);
	cr_assert(rec2.wait);
}

Test(record_codec, refuses_a_record_from_a_newer_version_or_truncated)
{
	size_t len = 0;

	fill_record(2);
	cr_assert_eq(dtxd_record_encode(&rec, buf, sizeof(buf), &len), 0);
	// Field 1 (version), varint, comes first in nanopb's output.
	cr_assert_eq(buf[0], 0x08);
	cr_assert_eq(buf[1], DTX_PROTOCOL_VERSION);
	buf[1] = DTX_PROTOCOL_VERSION + 1;
	cr_assert_eq(dtxd_record_decode(&rec2, buf, len), DTX_EVERSION);
	cr_assert_eq(dtxd_record_decode(&rec2, buf, 1), DTX_EPROTO);
}

Test(record_codec, refuses_a_bad_field_and_too_small_a_buffer)
{
	size_t len = 0, need = 0;

	fill_record(3);
	cr_assert_eq(dtxd_record_encode(&rec, NULL, 0, &need), 0);
	cr_assert_eq(
	    dtxd_record_encode(&rec, buf, need - 1, &len), DTX_ETOOBIG);
	rec.info.state = 12;
	cr_assert_eq(
	    dtxd_record_encode(&rec, buf, sizeof(buf), &len), DTX_EINVAL);
	fill_record(3);
	rec.deadline_ms = -1;
	cr_assert_eq(
	    dtxd_record_encode(&rec, buf, sizeof(buf), &len), DTX_EINVAL);
}

Test(record_codec, round_trips_a_spec)
{
	dtxi_branch_spec s, s2;
	size_t           len = 0, size = 0;

	memset(&s, 0, sizeof(s));
	strcpy(s.endpoint, "ipc:///tmp/inventory.ipc");
	strcpy(s.method, "Inventory.Reserve");
	memset(payloads[0], 0, 7);
	payloads[0][3] = 9;
	s.payload.ptr  = payloads[0];
	s.payload.len  = 7;
	cr_assert_eq(dtxd_spec_encode(&s, NULL, 0, &size), 0);
	cr_assert_eq(dtxd_spec_encode(&s, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, size);
	cr_assert_eq(dtxd_spec_decode(&s2, buf, len), 0);
	cr_assert_str_eq(s2.endpoint, s.endpoint);
	cr_assert_str_eq(s2.method, s.method);
	cr_assert_eq(s2.payload.len, 7);
	cr_assert_eq(memcmp(s2.payload.ptr, payloads[0], 7), 0);
	cr_assert(s2.payload.ptr >= buf && s2.payload.ptr < buf + len);
	cr_assert_eq(dtxd_spec_decode(&s2, buf, len - 1), DTX_EPROTO);
	cr_assert_not(s2.same_group);
	// A spec written before saga groups has no field 4: decoded as a
	// group of its own (the encoding above, without it, is such a spec).
	s.same_group = true;
	cr_assert_eq(dtxd_spec_encode(&s, buf, sizeof(buf), &len), 0);
	cr_assert_eq(len, size + 2, "field 4 costs two bytes when set");
	cr_assert_eq(dtxd_spec_decode(&s2, buf, len), 0);
	cr_assert(s2.same_group);
}
