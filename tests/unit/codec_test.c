// SPDX-License-Identifier: MIT
//
// codec: every request and reply kind survives an encode/decode round trip
// field for field; decoded payloads are slices of the frame; and bad frames
// (truncated, garbage, oversized, wrong version, bad enums, payloads over
// the limit) are refused with the documented code and never crash. Random
// garbage is the fuzz targets' job (tests/fuzz replays their corpus in
// CTest); here valid frames are corrupted, and what decodes must still
// point inside the frame. The big structs are static: each test runs in
// its own process, and the stack stays small.

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include "codec.h"

#define FRAME_MAX (1024u * 1024u)

static uint8_t      frame[256 * 1024];
static uint8_t      payloads[DTX_BRANCHES_MAX][300];
static dtxi_request req, req2;
static dtxi_reply   rep, rep2;
static char         err[DTX_MESSAGE_MAX + 1];

// A small deterministic generator, so a failing garbage case can be
// replayed from its seed.
static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

// Payload i is binary with zero bytes in it; payload 1 is empty.
static dtxi_bytes
payload(unsigned i)
{
	dtxi_bytes b;
	size_t     n = i == 1 ? 0 : 1 + (i * 37) % 290;

	for (size_t k = 0; k < n; k++) {
		payloads[i][k] = (uint8_t)(k % 3 == 0 ? 0 : k * 7 + i);
	}
	b.ptr = payloads[i];
	b.len = n;
	return b;
}

static void
fill_submit(dtxi_submit *s, unsigned nbranches)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->gid, "gid-0123456789abcdef");
	s->mode            = DTX_SAGA;
	s->timeout_ms      = 30000;
	s->call_timeout_ms = 2500;
	s->retries         = 7;
	s->wait            = true;
	s->nbranches       = nbranches;
	for (unsigned i = 0; i < nbranches; i++) {
		snprintf(s->branches[i].endpoint,
		    sizeof(s->branches[i].endpoint), "tcp://10.0.0.%u:%u", i,
		    7000 + i);
		snprintf(s->branches[i].method, sizeof(s->branches[i].method),
		    "Inventory.Reserve%u", i);
		s->branches[i].payload    = payload(i);
		s->branches[i].same_group = i % 3 == 2;
	}
}

static void
assert_bytes_eq(dtxi_bytes got, dtxi_bytes want)
{
	cr_assert_eq(got.len, want.len);
	if (want.len > 0) {
		cr_assert_not_null(got.ptr);
		cr_assert_eq(memcmp(got.ptr, want.ptr, want.len), 0);
	}
}

static void
assert_submit_eq(const dtxi_submit *a, const dtxi_submit *b)
{
	cr_assert_str_eq(a->gid, b->gid);
	cr_assert_eq(a->mode, b->mode);
	cr_assert_eq(a->timeout_ms, b->timeout_ms);
	cr_assert_eq(a->call_timeout_ms, b->call_timeout_ms);
	cr_assert_eq(a->retries, b->retries);
	cr_assert_eq(a->wait, b->wait);
	cr_assert_eq(a->nbranches, b->nbranches);
	for (unsigned i = 0; i < a->nbranches; i++) {
		cr_assert_str_eq(
		    a->branches[i].endpoint, b->branches[i].endpoint);
		cr_assert_str_eq(a->branches[i].method, b->branches[i].method);
		assert_bytes_eq(
		    a->branches[i].payload, b->branches[i].payload);
		cr_assert_eq(
		    a->branches[i].same_group, b->branches[i].same_group);
	}
}

static void
fill_txinfo(dtxi_txinfo *t, unsigned nbranches)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->gid, "tx-42");
	t->mode       = DTX_2PC;
	t->state      = DTX_STATE_COMMITTING;
	t->stuck      = true;
	t->created_ms = 1700000000123;
	t->updated_ms = 1700000009999;
	t->nbranches  = nbranches;
	for (unsigned i = 0; i < nbranches; i++) {
		dtxi_branch_result *b = &t->branches[i];

		b->branch_id = i;
		b->status    = (int)(i % 6);
		b->phase     = (int)(i % 6);
		b->attempts  = i * 3;
		snprintf(b->message, sizeof(b->message), "message %u", i);
		b->payload         = payload(i);
		b->forward_status  = (int)((i + 1) % 6);
		b->forward_payload = payload((i + 7) % DTX_BRANCHES_MAX);
	}
}

static void
assert_txinfo_eq(const dtxi_txinfo *a, const dtxi_txinfo *b)
{
	cr_assert_str_eq(a->gid, b->gid);
	cr_assert_eq(a->mode, b->mode);
	cr_assert_eq(a->state, b->state);
	cr_assert_eq(a->stuck, b->stuck);
	cr_assert_eq(a->created_ms, b->created_ms);
	cr_assert_eq(a->updated_ms, b->updated_ms);
	cr_assert_eq(a->nbranches, b->nbranches);
	for (unsigned i = 0; i < a->nbranches; i++) {
		const dtxi_branch_result *x = &a->branches[i];
		const dtxi_branch_result *y = &b->branches[i];

		cr_assert_eq(x->branch_id, y->branch_id);
		cr_assert_eq(x->status, y->status);
		cr_assert_eq(x->phase, y->phase);
		cr_assert_eq(x->attempts, y->attempts);
		cr_assert_str_eq(x->message, y->message);
		assert_bytes_eq(x->payload, y->payload);
		cr_assert_eq(x->forward_status, y->forward_status);
		assert_bytes_eq(x->forward_payload, y->forward_payload);
	}
}

static size_t
encode_req(const dtxi_request *r)
{
	size_t len = 0, size = 0;

	cr_assert_eq(dtxi_request_encode(r, NULL, 0, &size), 0);
	cr_assert_eq(dtxi_request_encode(r, frame, sizeof(frame), &len), 0);
	cr_assert_eq(
	    len, size, "size-only mode says %zu, encoded %zu", size, len);
	return len;
}

static size_t
encode_rep(const dtxi_reply *r)
{
	size_t len = 0, size = 0;

	cr_assert_eq(dtxi_reply_encode(r, NULL, 0, &size), 0);
	cr_assert_eq(dtxi_reply_encode(r, frame, sizeof(frame), &len), 0);
	cr_assert_eq(len, size);
	return len;
}

static void
decode_req_ok(size_t len)
{
	int rv = dtxi_request_decode(
	    &req2, frame, len, FRAME_MAX, DTX_PAYLOAD_MAX_DEFAULT, err);

	cr_assert_eq(rv, 0, "decode: %d (%s)", rv, err);
	cr_assert_eq(req2.version, DTX_PROTOCOL_VERSION);
}

static void
decode_rep_ok(size_t len)
{
	int rv = dtxi_reply_decode(
	    &rep2, frame, len, FRAME_MAX, DTX_PAYLOAD_MAX_DEFAULT, err);

	cr_assert_eq(rv, 0, "decode: %d (%s)", rv, err);
	cr_assert_eq(rep2.version, DTX_PROTOCOL_VERSION);
}

static void
new_req(dtxi_req_kind kind)
{
	memset(&req, 0, sizeof(req));
	req.version = DTX_PROTOCOL_VERSION;
	req.kind    = kind;
}

static void
new_rep(dtxi_rep_kind kind)
{
	memset(&rep, 0, sizeof(rep));
	rep.version = DTX_PROTOCOL_VERSION;
	rep.kind    = kind;
}

static const uint8_t *
find(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
	for (size_t i = 0; i + m <= n; i++) {
		if (memcmp(hay + i, needle, m) == 0) {
			return hay + i;
		}
	}
	return NULL;
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

Test(codec, round_trips_a_submit_with_every_field)
{
	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, DTX_BRANCHES_MAX);
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_SUBMIT);
	assert_submit_eq(&req2.u.submit, &req.u.submit);
	cr_assert_eq(req2.u.submit.branches[1].payload.len, 0);
}

Test(codec, round_trips_a_submit_with_no_branches_and_defaults)
{
	new_req(DTXI_REQ_SUBMIT);
	req.u.submit.mode = DTX_2PC;
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_SUBMIT);
	assert_submit_eq(&req2.u.submit, &req.u.submit);
}

Test(codec, round_trips_a_status_request)
{
	new_req(DTXI_REQ_STATUS);
	strcpy(req.u.status.gid, "status-gid");
	req.u.status.wait_ms = 1234;
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_STATUS);
	cr_assert_str_eq(req2.u.status.gid, "status-gid");
	cr_assert_eq(req2.u.status.wait_ms, 1234);
}

Test(codec, round_trips_a_list_request)
{
	new_req(DTXI_REQ_LIST);
	req.u.list.state = DTX_STATE_COMPENSATED;
	strcpy(req.u.list.cursor, "cursor-gid");
	req.u.list.limit = 100;
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_LIST);
	cr_assert_eq(req2.u.list.state, DTX_STATE_COMPENSATED);
	cr_assert_str_eq(req2.u.list.cursor, "cursor-gid");
	cr_assert_eq(req2.u.list.limit, 100);
}

Test(codec, round_trips_an_abort_request)
{
	new_req(DTXI_REQ_ABORT);
	strcpy(req.u.abort.gid, "abort-me");
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_ABORT);
	cr_assert_str_eq(req2.u.abort.gid, "abort-me");
}

Test(codec, round_trips_a_resolve_request)
{
	new_req(DTXI_REQ_RESOLVE);
	strcpy(req.u.resolve.gid, "in-doubt");
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_RESOLVE);
	cr_assert_str_eq(req2.u.resolve.gid, "in-doubt");
}

Test(codec, round_trips_a_stats_request)
{
	new_req(DTXI_REQ_STATS);
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_STATS);
}

Test(codec, round_trips_a_branch_call)
{
	new_req(DTXI_REQ_CALL);
	strcpy(req.u.call.gid, "call-gid");
	req.u.call.branch_id = 17;
	req.u.call.phase     = DTX_PHASE_COMPENSATE;
	strcpy(req.u.call.method, "Bank.Debit");
	req.u.call.payload     = payload(5);
	req.u.call.attempt     = 3;
	req.u.call.deadline_ms = 1700000000999;
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_CALL);
	cr_assert_str_eq(req2.u.call.gid, "call-gid");
	cr_assert_eq(req2.u.call.branch_id, 17);
	cr_assert_eq(req2.u.call.phase, DTX_PHASE_COMPENSATE);
	cr_assert_str_eq(req2.u.call.method, "Bank.Debit");
	assert_bytes_eq(req2.u.call.payload, req.u.call.payload);
	cr_assert_eq(req2.u.call.attempt, 3);
	cr_assert_eq(req2.u.call.deadline_ms, 1700000000999);
}

Test(codec, round_trips_a_branch_call_with_an_empty_payload)
{
	new_req(DTXI_REQ_CALL);
	req.u.call.phase = DTX_PHASE_PREPARE;
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_CALL);
	cr_assert_eq(req2.u.call.payload.len, 0);
}

Test(codec, decodes_a_request_without_body_as_kind_none)
{
	new_req(DTXI_REQ_NONE);
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_NONE);
}

Test(codec, round_trips_a_tx_reply_with_64_branch_results)
{
	new_rep(DTXI_REP_TX);
	strcpy(rep.message, "accepted");
	fill_txinfo(&rep.u.tx, DTX_BRANCHES_MAX);
	decode_rep_ok(encode_rep(&rep));
	cr_assert_eq(rep2.kind, DTXI_REP_TX);
	cr_assert_eq(rep2.code, 0);
	cr_assert_str_eq(rep2.message, "accepted");
	assert_txinfo_eq(&rep2.u.tx, &rep.u.tx);
}

Test(codec, round_trips_a_full_list_reply)
{
	new_rep(DTXI_REP_LIST);
	rep.u.list.n = DTXI_LIST_MAX;
	for (unsigned i = 0; i < DTXI_LIST_MAX; i++) {
		dtxi_txsummary *s = &rep.u.list.items[i];

		snprintf(s->gid, sizeof(s->gid), "gid-%03u", i);
		s->mode       = i % 2 ? DTX_2PC : DTX_SAGA;
		s->state      = (int)(i % 9);
		s->stuck      = i % 3 == 0;
		s->created_ms = 1000 + i;
		s->updated_ms = 2000 + i;
		s->nbranches  = i % 65;
	}
	strcpy(rep.u.list.next_cursor, "gid-099");
	decode_rep_ok(encode_rep(&rep));
	cr_assert_eq(rep2.kind, DTXI_REP_LIST);
	cr_assert_eq(rep2.u.list.n, DTXI_LIST_MAX);
	for (unsigned i = 0; i < DTXI_LIST_MAX; i++) {
		const dtxi_txsummary *a = &rep2.u.list.items[i];
		const dtxi_txsummary *b = &rep.u.list.items[i];

		cr_assert_str_eq(a->gid, b->gid);
		cr_assert_eq(a->mode, b->mode);
		cr_assert_eq(a->state, b->state);
		cr_assert_eq(a->stuck, b->stuck);
		cr_assert_eq(a->created_ms, b->created_ms);
		cr_assert_eq(a->updated_ms, b->updated_ms);
		cr_assert_eq(a->nbranches, b->nbranches);
	}
	cr_assert_str_eq(rep2.u.list.next_cursor, "gid-099");
}

Test(codec, round_trips_a_resolve_reply)
{
	new_rep(DTXI_REP_RESOLVE);
	rep.u.resolve.state = DTX_STATE_ABORTED;
	decode_rep_ok(encode_rep(&rep));
	cr_assert_eq(rep2.kind, DTXI_REP_RESOLVE);
	cr_assert_eq(rep2.u.resolve.state, DTX_STATE_ABORTED);
}

Test(codec, round_trips_a_stats_reply)
{
	new_rep(DTXI_REP_STATS);
	rep.u.stats.active        = 1;
	rep.u.stats.started       = 2;
	rep.u.stats.finished      = 3;
	rep.u.stats.recovered     = 4;
	rep.u.stats.store_writes  = 5;
	rep.u.stats.store_batches = 6;
	rep.u.stats.store_syncs   = 7;
	rep.u.stats.store_errors  = 8;
	rep.u.stats.uptime_ms     = UINT64_C(1) << 40;
	decode_rep_ok(encode_rep(&rep));
	cr_assert_eq(rep2.kind, DTXI_REP_STATS);
	cr_assert_eq(memcmp(&rep.u.stats, &rep2.u.stats, sizeof(rep.u.stats)),
	    0, "the counters differ after a round trip");
}

Test(codec, round_trips_a_branch_reply)
{
	new_rep(DTXI_REP_BRANCH);
	rep.u.branch.status = DTX_BRANCH_REFUSED;
	strcpy(rep.u.branch.message, "insufficient stock");
	rep.u.branch.payload = payload(9);
	decode_rep_ok(encode_rep(&rep));
	cr_assert_eq(rep2.kind, DTXI_REP_BRANCH);
	cr_assert_eq(rep2.u.branch.status, DTX_BRANCH_REFUSED);
	cr_assert_str_eq(rep2.u.branch.message, "insufficient stock");
	assert_bytes_eq(rep2.u.branch.payload, rep.u.branch.payload);
}

Test(codec, round_trips_an_error_reply_without_body)
{
	new_rep(DTXI_REP_NONE);
	rep.code = DTX_EEXIST;
	strcpy(rep.message, "gid already used with different content");
	decode_rep_ok(encode_rep(&rep));
	cr_assert_eq(rep2.kind, DTXI_REP_NONE);
	cr_assert_eq(rep2.code, DTX_EEXIST);
	cr_assert_str_eq(rep2.message, rep.message);
}

Test(codec, round_trips_strings_of_the_maximum_length)
{
	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, 1);
	memset(req.u.submit.gid, 'g', DTX_GID_MAX);
	memset(req.u.submit.branches[0].endpoint, 'e', DTX_ENDPOINT_MAX);
	memset(req.u.submit.branches[0].method, 'm', DTX_METHOD_MAX);
	decode_req_ok(encode_req(&req));
	assert_submit_eq(&req2.u.submit, &req.u.submit);
	cr_assert_eq(strlen(req2.u.submit.gid), DTX_GID_MAX);
}

// ---------------------------------------------------------------------------
// Zero copy
// ---------------------------------------------------------------------------

Test(codec, decodes_payloads_as_slices_of_the_frame)
{
	size_t len;

	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, DTX_BRANCHES_MAX);
	len = encode_req(&req);
	decode_req_ok(len);
	for (unsigned i = 0; i < DTX_BRANCHES_MAX; i++) {
		dtxi_bytes p = req2.u.submit.branches[i].payload;

		if (p.len == 0) {
			continue;
		}
		cr_assert(p.ptr >= frame && p.ptr + p.len <= frame + len,
		    "payload %u is not inside the frame", i);
		cr_assert_neq(p.ptr, payloads[i]);
	}

	new_rep(DTXI_REP_BRANCH);
	rep.u.branch.status  = DTX_BRANCH_OK;
	rep.u.branch.payload = payload(3);
	len                  = encode_rep(&rep);
	decode_rep_ok(len);
	cr_assert(rep2.u.branch.payload.ptr >= frame &&
	    rep2.u.branch.payload.ptr + rep2.u.branch.payload.len <=
	        frame + len);
}

Test(codec, keeps_no_payload_of_a_oneof_member_that_was_replaced)
{
	size_t a, b;

	// Two frames back to back are one protobuf message whose oneof ends
	// as the last member seen: the submit's payloads must not surface in
	// the call that replaced it.
	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, 4);
	a = encode_req(&req);
	new_req(DTXI_REQ_CALL);
	req.u.call.phase = DTX_PHASE_COMMIT;
	cr_assert_eq(
	    dtxi_request_encode(&req, frame + a, sizeof(frame) - a, &b), 0);
	decode_req_ok(a + b);
	cr_assert_eq(req2.kind, DTXI_REQ_CALL);
	cr_assert_eq(req2.u.call.payload.len, 0);
	cr_assert_null(req2.u.call.payload.ptr);
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

Test(codec, survives_every_prefix_of_a_submit_frame)
{
	size_t len;

	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, 8);
	len = encode_req(&req);
	for (size_t n = 0; n < len; n++) {
		int rv = dtxi_request_decode(
		    &req2, frame, n, FRAME_MAX, DTX_PAYLOAD_MAX_DEFAULT, err);

		cr_assert(rv == 0 || rv == DTX_EPROTO || rv == DTX_EVERSION,
		    "prefix %zu: %d", n, rv);
	}
	// An empty frame has no version field at all.
	cr_assert_eq(dtxi_request_decode(&req2, frame, 0, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EVERSION);
}

Test(codec, reports_a_cut_inside_a_payload_as_malformed)
{
	const uint8_t *at;
	dtxi_bytes     p;
	size_t         len;
	int            rv;

	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, 8);
	len = encode_req(&req);
	p   = req.u.submit.branches[4].payload;
	at  = find(frame, len, p.ptr, p.len);
	cr_assert_not_null(at);
	rv =
	    dtxi_request_decode(&req2, frame, (size_t)(at - frame) + p.len / 2,
	        FRAME_MAX, DTX_PAYLOAD_MAX_DEFAULT, err);
	cr_assert_eq(rv, DTX_EPROTO);
	cr_assert_gt(strlen(err), 0);
}

Test(codec, survives_random_corruption_of_valid_frames)
{
	uint8_t  good[8192];
	size_t   len;
	uint64_t s = 12345;

	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, 6);
	len = encode_req(&req);
	cr_assert_leq(len, sizeof(good));
	memcpy(good, frame, len);
	for (int round = 0; round < 3000; round++) {
		int rv;

		memcpy(frame, good, len);
		for (int k = 0; k < 1 + round % 4; k++) {
			frame[xorshift(&s) % len] ^=
			    (uint8_t)(1 << (xorshift(&s) % 8));
		}
		rv = dtxi_request_decode(
		    &req2, frame, len, FRAME_MAX, 200, err);
		cr_assert(rv == 0 || rv == DTX_EPROTO || rv == DTX_EVERSION ||
		        rv == DTX_ETOOBIG,
		    "round %d: unexpected %d", round, rv);
		if (rv == 0 && req2.kind == DTXI_REQ_SUBMIT) {
			for (unsigned i = 0; i < req2.u.submit.nbranches;
			     i++) {
				dtxi_bytes p =
				    req2.u.submit.branches[i].payload;

				cr_assert(p.len == 0 ||
				    (p.ptr >= frame &&
				        p.ptr + p.len <= frame + len));
			}
		}
	}
}

Test(codec, refuses_an_oversized_frame_before_parsing)
{
	size_t len;

	new_req(DTXI_REQ_STATUS);
	strcpy(req.u.status.gid, "x");
	len = encode_req(&req);
	cr_assert_eq(dtxi_request_decode(&req2, frame, len, len - 1,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_ETOOBIG);
	cr_assert_gt(strlen(err), 0);
	// Garbage is not even looked at when the frame is too big.
	memset(frame, 0xff, 100);
	cr_assert_eq(
	    dtxi_reply_decode(&rep2, frame, 100, 99, 10, NULL), DTX_ETOOBIG);
}

Test(codec, refuses_a_payload_over_the_limit_and_names_it)
{
	size_t len;

	new_req(DTXI_REQ_SUBMIT);
	// Branch 3 gets the largest payload of the seven.
	fill_submit(&req.u.submit, 7);
	req.u.submit.branches[3].payload.len = 250;
	len                                  = encode_req(&req);
	cr_assert_eq(
	    dtxi_request_decode(&req2, frame, len, FRAME_MAX, 249, err),
	    DTX_ETOOBIG);
	cr_assert_not_null(strstr(err, "branch 3"), "err: %s", err);
	cr_assert_not_null(strstr(err, "250"), "err: %s", err);
	cr_assert_not_null(strstr(err, "249"), "err: %s", err);
	cr_assert_eq(
	    dtxi_request_decode(&req2, frame, len, FRAME_MAX, 250, err), 0);

	new_rep(DTXI_REP_BRANCH);
	rep.u.branch.status  = DTX_BRANCH_OK;
	rep.u.branch.payload = payload(2);
	len                  = encode_rep(&rep);
	cr_assert_eq(dtxi_reply_decode(&rep2, frame, len, FRAME_MAX, 1, err),
	    DTX_ETOOBIG);
	cr_assert_not_null(strstr(err, "reply"), "err: %s", err);
}

Test(codec, refuses_a_payload_sent_with_a_scalar_wire_type)
{
	// Request{version 1, call{payload as varint 7}}.
	static const uint8_t f[] = {0x08, 0x01, 0x7a, 0x02, 0x28, 0x07};

	memcpy(frame, f, sizeof(f));
	cr_assert_eq(dtxi_request_decode(&req2, frame, sizeof(f), FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	cr_assert_not_null(strstr(err, "length-delimited"), "err: %s", err);
}

Test(codec, refuses_a_wrong_protocol_version)
{
	size_t len;

	new_req(DTXI_REQ_ABORT);
	req.version = DTX_PROTOCOL_VERSION + 1;
	strcpy(req.u.abort.gid, "g");
	len = encode_req(&req);
	cr_assert_eq(dtxi_request_decode(&req2, frame, len, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EVERSION);
	cr_assert_gt(strlen(err), 0);

	new_rep(DTXI_REP_RESOLVE);
	rep.version         = 7;
	rep.u.resolve.state = DTX_STATE_COMMITTED;
	len                 = encode_rep(&rep);
	cr_assert_eq(dtxi_reply_decode(&rep2, frame, len, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EVERSION);
}

Test(codec, refuses_version_zero)
{
	size_t len;

	new_req(DTXI_REQ_ABORT);
	req.version = 0;
	strcpy(req.u.abort.gid, "g");
	len = encode_req(&req);
	cr_assert_eq(dtxi_request_decode(&req2, frame, len, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, NULL),
	    DTX_EVERSION);

	new_rep(DTXI_REP_NONE);
	rep.version = 0;
	len         = encode_rep(&rep);
	cr_assert_eq(dtxi_reply_decode(&rep2, frame, len, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EVERSION);
}

Test(codec, refuses_an_enum_value_out_of_range)
{
	// Request{version 1, list{state 99}}.
	static const uint8_t list[] = {0x08, 0x01, 0x62, 0x02, 0x08, 0x63};
	// Reply{version 1, branch{status 9}}.
	static const uint8_t branch[] = {0x08, 0x01, 0x6a, 0x02, 0x08, 0x09};
	// Request{version 1, call{phase 6}}.
	static const uint8_t call[] = {0x08, 0x01, 0x7a, 0x02, 0x18, 0x06};
	// Request{version 1, submit{mode 3}}.
	static const uint8_t submit[] = {0x08, 0x01, 0x52, 0x02, 0x10, 0x03};

	memcpy(frame, list, sizeof(list));
	cr_assert_eq(dtxi_request_decode(&req2, frame, sizeof(list), FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	cr_assert_gt(strlen(err), 0);
	memcpy(frame, call, sizeof(call));
	cr_assert_eq(dtxi_request_decode(&req2, frame, sizeof(call), FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	memcpy(frame, submit, sizeof(submit));
	cr_assert_eq(dtxi_request_decode(&req2, frame, sizeof(submit),
	                 FRAME_MAX, DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	memcpy(frame, branch, sizeof(branch));
	cr_assert_eq(dtxi_reply_decode(&rep2, frame, sizeof(branch), FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
}

Test(codec, refuses_a_string_over_its_limit_on_decode)
{
	// Request{version 1, abort{gid of 129 bytes}}: one byte too many.
	size_t n = 0;

	frame[n++] = 0x08;
	frame[n++] = 0x01;
	frame[n++] = 0x6a;
	frame[n++] = 0x84; // 1 + 2 + 129 = 132 as a varint
	frame[n++] = 0x01;
	frame[n++] = 0x0a;
	frame[n++] = 0x81; // 129
	frame[n++] = 0x01;
	memset(frame + n, 'a', 129);
	n += 129;
	cr_assert_eq(dtxi_request_decode(&req2, frame, n, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
}

Test(codec, refuses_to_encode_65_branches)
{
	size_t len = 0;

	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, DTX_BRANCHES_MAX);
	req.u.submit.nbranches = DTX_BRANCHES_MAX + 1;
	cr_assert_eq(
	    dtxi_request_encode(&req, frame, sizeof(frame), &len), DTX_EINVAL);
	cr_assert_eq(dtxi_request_encode(&req, NULL, 0, &len), DTX_EINVAL);

	new_rep(DTXI_REP_TX);
	rep.u.tx.nbranches = DTX_BRANCHES_MAX + 1;
	cr_assert_eq(
	    dtxi_reply_encode(&rep, frame, sizeof(frame), &len), DTX_EINVAL);

	new_rep(DTXI_REP_LIST);
	rep.u.list.n = DTXI_LIST_MAX + 1;
	cr_assert_eq(
	    dtxi_reply_encode(&rep, frame, sizeof(frame), &len), DTX_EINVAL);
}

Test(codec, refuses_to_encode_bad_values)
{
	size_t len = 0;

	new_req(DTXI_REQ_SUBMIT);
	req.u.submit.mode = 3;
	cr_assert_eq(
	    dtxi_request_encode(&req, frame, sizeof(frame), &len), DTX_EINVAL);

	new_req(DTXI_REQ_CALL);
	req.u.call.phase = 6;
	cr_assert_eq(
	    dtxi_request_encode(&req, frame, sizeof(frame), &len), DTX_EINVAL);

	new_req(DTXI_REQ_CALL);
	req.u.call.payload.len = 10; // ptr NULL
	cr_assert_eq(
	    dtxi_request_encode(&req, frame, sizeof(frame), &len), DTX_EINVAL);

	new_req(DTXI_REQ_ABORT);
	memset(req.u.abort.gid, 'x', sizeof(req.u.abort.gid)); // no NUL
	cr_assert_eq(
	    dtxi_request_encode(&req, frame, sizeof(frame), &len), DTX_EINVAL);

	new_req(DTXI_REQ_NONE);
	req.kind = (dtxi_req_kind)42;
	cr_assert_eq(
	    dtxi_request_encode(&req, frame, sizeof(frame), &len), DTX_EINVAL);

	new_rep(DTXI_REP_RESOLVE);
	rep.u.resolve.state = 9;
	cr_assert_eq(
	    dtxi_reply_encode(&rep, frame, sizeof(frame), &len), DTX_EINVAL);

	new_rep(DTXI_REP_BRANCH);
	rep.u.branch.status = -1;
	cr_assert_eq(
	    dtxi_reply_encode(&rep, frame, sizeof(frame), &len), DTX_EINVAL);

	new_rep(DTXI_REP_NONE);
	rep.code = -1;
	cr_assert_eq(
	    dtxi_reply_encode(&rep, frame, sizeof(frame), &len), DTX_EINVAL);
}

Test(codec, reports_too_small_a_buffer)
{
	size_t len = 0, need = 0, got = 0;

	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, 4);
	cr_assert_eq(dtxi_request_encode(&req, NULL, 0, &need), 0);
	cr_assert_eq(
	    dtxi_request_encode(&req, frame, need - 1, &len), DTX_ETOOBIG);
	cr_assert_eq(dtxi_request_encode(&req, frame, 1, &len), DTX_ETOOBIG);
	cr_assert_eq(dtxi_request_encode(&req, frame, need, &got), 0);
	cr_assert_eq(got, need);

	new_rep(DTXI_REP_BRANCH);
	rep.u.branch.payload = payload(0);
	cr_assert_eq(dtxi_reply_encode(&rep, NULL, 0, &need), 0);
	cr_assert_eq(
	    dtxi_reply_encode(&rep, frame, need - 1, &len), DTX_ETOOBIG);
}

// ---------------------------------------------------------------------------
// Content hash
// ---------------------------------------------------------------------------

Test(codec, hashes_equal_content_equally_whatever_the_gid_and_timeouts)
{
	static dtxi_submit a, b;
	uint8_t            copy[300];

	fill_submit(&a, 5);
	fill_submit(&b, 5);
	strcpy(b.gid, "another-gid");
	b.timeout_ms      = 1;
	b.call_timeout_ms = 2;
	b.retries         = 3;
	b.wait            = false;
	// The same payload bytes at another address hash the same.
	memcpy(copy, b.branches[2].payload.ptr, b.branches[2].payload.len);
	b.branches[2].payload.ptr = copy;
	cr_assert_eq(dtxi_submit_hash(&a), dtxi_submit_hash(&b));
}

Test(codec, hashes_different_content_differently)
{
	static dtxi_submit a, b;
	uint64_t           h;
	uint8_t            copy[300];

	fill_submit(&a, 5);
	h = dtxi_submit_hash(&a);

	b      = a;
	b.mode = DTX_2PC;
	cr_assert_neq(dtxi_submit_hash(&b), h);

	b           = a;
	b.nbranches = 4;
	cr_assert_neq(dtxi_submit_hash(&b), h);

	b = a;
	strcpy(b.branches[0].endpoint, "tcp://elsewhere:1");
	cr_assert_neq(dtxi_submit_hash(&b), h);

	b = a;
	strcpy(b.branches[4].method, "Other");
	cr_assert_neq(dtxi_submit_hash(&b), h);

	b = a;
	memcpy(copy, a.branches[3].payload.ptr, a.branches[3].payload.len);
	copy[0] ^= 1;
	b.branches[3].payload.ptr = copy;
	cr_assert_neq(dtxi_submit_hash(&b), h);

	b = a;
	b.branches[3].payload.len--;
	cr_assert_neq(dtxi_submit_hash(&b), h);

	b                        = a;
	b.branches[1].same_group = !a.branches[1].same_group;
	cr_assert_neq(
	    dtxi_submit_hash(&b), h, "the same steps in other groups");

	// The separators keep a boundary shift from colliding.
	b = a;
	strcpy(b.branches[0].endpoint, "ab");
	strcpy(b.branches[0].method, "c");
	h = dtxi_submit_hash(&b);
	strcpy(b.branches[0].endpoint, "a");
	strcpy(b.branches[0].method, "bc");
	cr_assert_neq(dtxi_submit_hash(&b), h);
}

// ---------------------------------------------------------------------------
// Batches of branch calls and their replies
// ---------------------------------------------------------------------------

static void
fill_batch(dtxi_call_batch *b, unsigned n)
{
	b->n = n;
	for (unsigned i = 0; i < n; i++) {
		dtxi_call *c = &b->calls[i];
		snprintf(c->gid, sizeof(c->gid), "batch-gid-%u", i);
		c->branch_id = i % 3;
		c->phase     = 1 + (int)(i % 5);
		snprintf(c->method, sizeof(c->method), "Method%u", i);
		c->payload     = payload(i % DTX_BRANCHES_MAX);
		c->attempt     = i;
		c->deadline_ms = 1700000000000 + i;
	}
}

Test(codec, round_trips_a_batch_of_branch_calls_in_order)
{
	new_req(DTXI_REQ_CALL_BATCH);
	fill_batch(&req.u.batch, 5);
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_CALL_BATCH);
	cr_assert_eq(req2.u.batch.n, 5);
	for (unsigned i = 0; i < 5; i++) {
		const dtxi_call *x = &req.u.batch.calls[i];
		const dtxi_call *y = &req2.u.batch.calls[i];
		cr_assert_str_eq(y->gid, x->gid);
		cr_assert_eq(y->branch_id, x->branch_id);
		cr_assert_eq(y->phase, x->phase);
		cr_assert_str_eq(y->method, x->method);
		assert_bytes_eq(y->payload, x->payload);
		cr_assert_eq(y->attempt, x->attempt);
		cr_assert_eq(y->deadline_ms, x->deadline_ms);
		// Zero-copy: every payload is a slice of the frame.
		if (y->payload.len > 0) {
			cr_assert(y->payload.ptr >= frame &&
			    y->payload.ptr < frame + sizeof(frame));
		}
	}
}

Test(codec, round_trips_a_full_batch_of_64_calls)
{
	new_req(DTXI_REQ_CALL_BATCH);
	fill_batch(&req.u.batch, DTXI_BATCH_MAX);
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.u.batch.n, DTXI_BATCH_MAX);
	cr_assert_str_eq(req2.u.batch.calls[63].gid, "batch-gid-63");
	assert_bytes_eq(
	    req2.u.batch.calls[63].payload, req.u.batch.calls[63].payload);
}

Test(codec, round_trips_a_batch_of_replies_in_order)
{
	new_rep(DTXI_REP_BRANCH_BATCH);
	rep.u.batch.n = 4;
	for (unsigned i = 0; i < 4; i++) {
		rep.u.batch.replies[i].status = 1 + (int)i;
		snprintf(rep.u.batch.replies[i].message,
		    sizeof(rep.u.batch.replies[i].message), "reply %u", i);
		rep.u.batch.replies[i].payload = payload(i);
	}
	decode_rep_ok(encode_rep(&rep));
	cr_assert_eq(rep2.kind, DTXI_REP_BRANCH_BATCH);
	cr_assert_eq(rep2.u.batch.n, 4);
	for (unsigned i = 0; i < 4; i++) {
		cr_assert_eq(rep2.u.batch.replies[i].status, 1 + (int)i);
		cr_assert_str_eq(rep2.u.batch.replies[i].message,
		    rep.u.batch.replies[i].message);
		assert_bytes_eq(rep2.u.batch.replies[i].payload,
		    rep.u.batch.replies[i].payload);
	}
}

Test(codec, refuses_to_encode_an_empty_or_oversized_batch)
{
	size_t len;

	new_req(DTXI_REQ_CALL_BATCH);
	req.u.batch.n = 0;
	cr_assert_eq(dtxi_request_encode(&req, NULL, 0, &len), DTX_EINVAL);
	req.u.batch.n = DTXI_BATCH_MAX + 1;
	cr_assert_eq(dtxi_request_encode(&req, NULL, 0, &len), DTX_EINVAL);
	new_rep(DTXI_REP_BRANCH_BATCH);
	rep.u.batch.n = 0;
	cr_assert_eq(dtxi_reply_encode(&rep, NULL, 0, &len), DTX_EINVAL);
	rep.u.batch.n                 = 1;
	rep.u.batch.replies[0].status = 99;
	cr_assert_eq(dtxi_reply_encode(&rep, NULL, 0, &len), DTX_EINVAL);
}

Test(codec, refuses_an_empty_batch_on_decode)
{
	// Request{version 1, call_batch{}} and Reply{version 1,
	// branch_batch{}}.
	static const uint8_t q[] = {0x08, 0x01, 0x8a, 0x01, 0x00};
	static const uint8_t a[] = {0x08, 0x01, 0x7a, 0x00};

	memcpy(frame, q, sizeof(q));
	cr_assert_eq(dtxi_request_decode(&req2, frame, sizeof(q), FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	cr_assert_not_null(strstr(err, "empty"), "err: %s", err);
	memcpy(frame, a, sizeof(a));
	cr_assert_eq(dtxi_reply_decode(&rep2, frame, sizeof(a), FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	cr_assert_not_null(strstr(err, "empty"), "err: %s", err);
}

Test(codec, refuses_a_batch_of_more_than_64_calls)
{
	// Request{version 1, call_batch{65 x calls{phase 1}}}: 65 * 4 = 260
	// bytes of body, length varint 0x84 0x02.
	size_t n = 0;

	frame[n++] = 0x08;
	frame[n++] = 0x01;
	frame[n++] = 0x8a;
	frame[n++] = 0x01;
	frame[n++] = 0x84;
	frame[n++] = 0x02;
	for (unsigned i = 0; i < DTXI_BATCH_MAX + 1; i++) {
		frame[n++] = 0x0a;
		frame[n++] = 0x02;
		frame[n++] = 0x18;
		frame[n++] = 0x01;
	}
	cr_assert_eq(dtxi_request_decode(&req2, frame, n, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	// 64 of them are fine.
	frame[4] = 0x80;
	cr_assert_eq(dtxi_request_decode(&req2, frame, n - 4, FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    0, "err: %s", err);
	cr_assert_eq(req2.u.batch.n, DTXI_BATCH_MAX);
}

Test(codec, refuses_a_batched_payload_over_the_limit_and_names_it)
{
	size_t len;

	new_req(DTXI_REQ_CALL_BATCH);
	fill_batch(&req.u.batch, 4);
	req.u.batch.calls[2].payload.len = 250;
	for (unsigned i = 0; i < 4; i++) {
		if (i != 2 && req.u.batch.calls[i].payload.len > 100) {
			req.u.batch.calls[i].payload.len = 100;
		}
	}
	len = encode_req(&req);
	cr_assert_eq(
	    dtxi_request_decode(&req2, frame, len, FRAME_MAX, 249, err),
	    DTX_ETOOBIG);
	cr_assert_not_null(strstr(err, "batched call 2"), "err: %s", err);
}

Test(codec, refuses_a_batched_call_with_a_bad_phase_and_names_it)
{
	// Request{version 1, call_batch{calls{phase 1}, calls{phase 9}}}.
	static const uint8_t q[] = {0x08, 0x01, 0x8a, 0x01, 0x08, 0x0a, 0x02,
	    0x18, 0x01, 0x0a, 0x02, 0x18, 0x09};

	memcpy(frame, q, sizeof(q));
	cr_assert_eq(dtxi_request_decode(&req2, frame, sizeof(q), FRAME_MAX,
	                 DTX_PAYLOAD_MAX_DEFAULT, err),
	    DTX_EPROTO);
	cr_assert_not_null(strstr(err, "batched call 1"), "err: %s", err);
}

Test(codec, survives_every_prefix_of_a_batch_frame)
{
	size_t len;

	new_req(DTXI_REQ_CALL_BATCH);
	fill_batch(&req.u.batch, 6);
	len = encode_req(&req);
	for (size_t i = 0; i < len; i++) {
		int rv = dtxi_request_decode(
		    &req2, frame, i, FRAME_MAX, DTX_PAYLOAD_MAX_DEFAULT, err);
		cr_assert(rv == 0 || rv == DTX_EPROTO || rv == DTX_EVERSION,
		    "prefix %zu: %d", i, rv);
	}
}

// ---------------------------------------------------------------------------
// Operations: Retry, Settle, the STUCK list, trace context, branch errors
// ---------------------------------------------------------------------------

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Test(codec, round_trips_retry_settle_and_a_stuck_list)
{
	new_req(DTXI_REQ_RETRY);
	strcpy(req.u.retry.gid, "stuck-1");
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_RETRY);
	cr_assert_str_eq(req2.u.retry.gid, "stuck-1");

	new_req(DTXI_REQ_SETTLE);
	strcpy(req.u.settle.gid, "stuck-1");
	req.u.settle.branch = 63;
	memset(req.u.settle.note, 'n', DTXI_NOTE_MAX);
	decode_req_ok(encode_req(&req));
	cr_assert_eq(req2.kind, DTXI_REQ_SETTLE);
	cr_assert_str_eq(req2.u.settle.gid, "stuck-1");
	cr_assert_eq(req2.u.settle.branch, 63);
	cr_assert_eq(strlen(req2.u.settle.note), DTXI_NOTE_MAX);

	new_req(DTXI_REQ_LIST);
	req.u.list.stuck = true;
	decode_req_ok(encode_req(&req));
	cr_assert(req2.u.list.stuck);
}

Test(codec, round_trips_the_trace_context_and_the_decided_wait)
{
	new_req(DTXI_REQ_SUBMIT);
	fill_submit(&req.u.submit, 2);
	strcpy(req.u.submit.traceparent, TP);
	req.u.submit.wait    = true;
	req.u.submit.decided = true;
	decode_req_ok(encode_req(&req));
	cr_assert_str_eq(req2.u.submit.traceparent, TP);
	cr_assert(req2.u.submit.wait && req2.u.submit.decided);

	new_req(DTXI_REQ_CALL);
	req.u.call.phase = DTX_PHASE_COMMIT;
	strcpy(req.u.call.traceparent, TP);
	decode_req_ok(encode_req(&req));
	cr_assert_str_eq(req2.u.call.traceparent, TP);
}

Test(codec, round_trips_settled_branches_and_call_errors)
{
	new_rep(DTXI_REP_TX);
	strcpy(rep.u.tx.gid, "g");
	strcpy(rep.u.tx.traceparent, TP);
	rep.u.tx.mode                   = DTX_2PC;
	rep.u.tx.state                  = DTX_STATE_COMMITTING;
	rep.u.tx.nbranches              = 2;
	rep.u.tx.branches[0].error      = DTX_EUNREACHABLE;
	rep.u.tx.branches[1].settled_ms = 1796093233859LL;
	rep.u.tx.branches[1].status     = DTX_BRANCH_NONE;
	strcpy(rep.u.tx.branches[1].message, "refunded by hand");
	decode_rep_ok(encode_rep(&rep));
	cr_assert_str_eq(rep2.u.tx.traceparent, TP);
	cr_assert_eq(rep2.u.tx.branches[0].error, DTX_EUNREACHABLE);
	cr_assert_eq(rep2.u.tx.branches[0].settled_ms, 0);
	cr_assert_eq(rep2.u.tx.branches[1].settled_ms, 1796093233859LL);
	cr_assert_str_eq(rep2.u.tx.branches[1].message, "refunded by hand");

	// Values a struct cannot carry are refused when encoding.
	rep.u.tx.branches[0].error = -1;
	cr_assert_eq(
	    dtxi_reply_encode(&rep, frame, sizeof(frame), &(size_t) {0}),
	    DTX_EINVAL);
}
