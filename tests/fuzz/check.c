// SPDX-License-Identifier: MIT
//
// check: the invariants the codec promises about a decoded struct
// (codec.h), and field-by-field equality for round trips. The modules above
// the codec trust a decoded struct without checking it again, so a broken
// promise here is a bug as real as a crash.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

void
dtxf_check(int cond, const char *what, const char *file, int line)
{
	if (!cond) {
		fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line,
		    what);
		abort();
	}
}

#define STR_OK(s)      DTXF_CHECK(memchr((s), 0, sizeof(s)) != NULL)
#define SAME_STR(a, b) DTXF_CHECK(strncmp((a), (b), sizeof(a)) == 0)

static void
check_slice(dtxi_bytes b, const uint8_t *buf, size_t len, size_t max_payload)
{
	DTXF_CHECK(b.len <= max_payload);
	if (b.ptr == NULL) {
		DTXF_CHECK(b.len == 0);
		return;
	}
	// A slice points into the decoded buffer, never elsewhere: the
	// decoder copies nothing, and a pointer outside buf would be memory
	// nobody owns once decoding returned.
	DTXF_CHECK(buf != NULL);
	DTXF_CHECK((uintptr_t)b.ptr >= (uintptr_t)buf);
	DTXF_CHECK((uintptr_t)b.ptr - (uintptr_t)buf <= len);
	DTXF_CHECK(b.len <= len - (size_t)(b.ptr - buf));
}

static void
same_bytes(dtxi_bytes a, dtxi_bytes b)
{
	DTXF_CHECK(a.len == b.len);
	if (a.len > 0) {
		DTXF_CHECK(memcmp(a.ptr, b.ptr, a.len) == 0);
	}
}

static int
mode_ok(int v)
{
	return v >= 0 && v <= DTX_SAGA;
}

static int
phase_ok(int v)
{
	return v >= 0 && v <= DTX_PHASE_COMPENSATE;
}

static int
status_ok(int v)
{
	return v >= DTX_BRANCH_NONE && v <= DTX_BRANCH_BAD_REQUEST;
}

static int
state_ok(int v)
{
	return v >= 0 && v <= DTX_STATE_COMPENSATED;
}

static void
check_call(const dtxi_call *c, const uint8_t *buf, size_t len, size_t maxp)
{
	STR_OK(c->gid);
	STR_OK(c->method);
	DTXF_CHECK(phase_ok(c->phase));
	DTXF_CHECK(c->deadline_ms >= 0);
	check_slice(c->payload, buf, len, maxp);
}

static void
check_txinfo(const dtxi_txinfo *t, const uint8_t *buf, size_t len, size_t maxp)
{
	STR_OK(t->gid);
	DTXF_CHECK(mode_ok(t->mode));
	DTXF_CHECK(state_ok(t->state));
	DTXF_CHECK(t->created_ms >= 0 && t->updated_ms >= 0);
	DTXF_CHECK(t->nbranches <= DTX_BRANCHES_MAX);
	for (uint32_t i = 0; i < t->nbranches; i++) {
		const dtxi_branch_result *b = &t->branches[i];

		DTXF_CHECK(status_ok(b->status));
		DTXF_CHECK(phase_ok(b->phase));
		STR_OK(b->message);
		check_slice(b->payload, buf, len, maxp);
	}
}

void
dtxf_check_request(
    const dtxi_request *r, const uint8_t *buf, size_t len, size_t max_payload)
{
	DTXF_CHECK(r->version == DTX_PROTOCOL_VERSION);
	switch (r->kind) {
	case DTXI_REQ_NONE:
	case DTXI_REQ_STATS:
		break;
	case DTXI_REQ_SUBMIT:
		STR_OK(r->u.submit.gid);
		STR_OK(r->u.submit.traceparent);
		DTXF_CHECK(mode_ok(r->u.submit.mode));
		DTXF_CHECK(r->u.submit.nbranches <= DTX_BRANCHES_MAX);
		for (uint32_t i = 0; i < r->u.submit.nbranches; i++) {
			const dtxi_branch_spec *b = &r->u.submit.branches[i];

			STR_OK(b->endpoint);
			STR_OK(b->method);
			check_slice(b->payload, buf, len, max_payload);
		}
		break;
	case DTXI_REQ_STATUS:
		STR_OK(r->u.status.gid);
		break;
	case DTXI_REQ_LIST:
		STR_OK(r->u.list.cursor);
		DTXF_CHECK(state_ok(r->u.list.state));
		break;
	case DTXI_REQ_ABORT:
		STR_OK(r->u.abort.gid);
		break;
	case DTXI_REQ_RESOLVE:
		STR_OK(r->u.resolve.gid);
		break;
	case DTXI_REQ_RETRY:
		STR_OK(r->u.retry.gid);
		break;
	case DTXI_REQ_SETTLE:
		STR_OK(r->u.settle.gid);
		STR_OK(r->u.settle.note);
		break;
	case DTXI_REQ_CALL:
		check_call(&r->u.call, buf, len, max_payload);
		break;
	case DTXI_REQ_CALL_BATCH:
		// An empty batch is refused by the decoder (codec.h).
		DTXF_CHECK(
		    r->u.batch.n >= 1 && r->u.batch.n <= DTXI_BATCH_MAX);
		for (uint32_t i = 0; i < r->u.batch.n; i++) {
			check_call(
			    &r->u.batch.calls[i], buf, len, max_payload);
		}
		break;
	default:
		DTXF_CHECK(!"request kind out of range");
	}
}

void
dtxf_check_reply(
    const dtxi_reply *r, const uint8_t *buf, size_t len, size_t max_payload)
{
	DTXF_CHECK(r->version == DTX_PROTOCOL_VERSION);
	DTXF_CHECK(r->code >= 0);
	STR_OK(r->message);
	switch (r->kind) {
	case DTXI_REP_NONE:
	case DTXI_REP_STATS:
		break;
	case DTXI_REP_TX:
		check_txinfo(&r->u.tx, buf, len, max_payload);
		break;
	case DTXI_REP_LIST:
		DTXF_CHECK(r->u.list.n <= DTXI_LIST_MAX);
		STR_OK(r->u.list.next_cursor);
		for (uint32_t i = 0; i < r->u.list.n; i++) {
			const dtxi_txsummary *s = &r->u.list.items[i];

			STR_OK(s->gid);
			DTXF_CHECK(mode_ok(s->mode) && state_ok(s->state));
			DTXF_CHECK(s->created_ms >= 0 && s->updated_ms >= 0);
		}
		break;
	case DTXI_REP_RESOLVE:
		DTXF_CHECK(state_ok(r->u.resolve.state));
		break;
	case DTXI_REP_BRANCH:
		DTXF_CHECK(status_ok(r->u.branch.status));
		STR_OK(r->u.branch.message);
		check_slice(r->u.branch.payload, buf, len, max_payload);
		break;
	case DTXI_REP_BRANCH_BATCH:
		DTXF_CHECK(
		    r->u.batch.n >= 1 && r->u.batch.n <= DTXI_BATCH_MAX);
		for (uint32_t i = 0; i < r->u.batch.n; i++) {
			const dtxi_branch_reply *b = &r->u.batch.replies[i];

			DTXF_CHECK(status_ok(b->status));
			STR_OK(b->message);
			check_slice(b->payload, buf, len, max_payload);
		}
		break;
	default:
		DTXF_CHECK(!"reply kind out of range");
	}
}

void
dtxf_check_record(const dtxd_record *r, const uint8_t *buf, size_t len)
{
	check_txinfo(&r->info, buf, len, SIZE_MAX);
	DTXF_CHECK(r->deadline_ms >= 0);
}

void
dtxf_check_spec(const dtxi_branch_spec *s, const uint8_t *buf, size_t len)
{
	STR_OK(s->endpoint);
	STR_OK(s->method);
	check_slice(s->payload, buf, len, SIZE_MAX);
}

static void
same_call(const dtxi_call *a, const dtxi_call *b)
{
	SAME_STR(a->gid, b->gid);
	SAME_STR(a->method, b->method);
	DTXF_CHECK(a->branch_id == b->branch_id);
	DTXF_CHECK(a->phase == b->phase);
	DTXF_CHECK(a->attempt == b->attempt);
	DTXF_CHECK(a->deadline_ms == b->deadline_ms);
	SAME_STR(a->traceparent, b->traceparent);
	same_bytes(a->payload, b->payload);
}

void
dtxf_same_spec(const dtxi_branch_spec *a, const dtxi_branch_spec *b)
{
	SAME_STR(a->endpoint, b->endpoint);
	SAME_STR(a->method, b->method);
	same_bytes(a->payload, b->payload);
	DTXF_CHECK(a->same_group == b->same_group);
}

static void
same_txinfo(const dtxi_txinfo *a, const dtxi_txinfo *b)
{
	SAME_STR(a->gid, b->gid);
	SAME_STR(a->traceparent, b->traceparent);
	DTXF_CHECK(a->mode == b->mode && a->state == b->state);
	DTXF_CHECK(a->stuck == b->stuck);
	DTXF_CHECK(a->created_ms == b->created_ms);
	DTXF_CHECK(a->updated_ms == b->updated_ms);
	DTXF_CHECK(a->nbranches == b->nbranches);
	for (uint32_t i = 0; i < a->nbranches; i++) {
		const dtxi_branch_result *x = &a->branches[i];
		const dtxi_branch_result *y = &b->branches[i];

		DTXF_CHECK(x->branch_id == y->branch_id);
		DTXF_CHECK(x->status == y->status && x->phase == y->phase);
		DTXF_CHECK(x->attempts == y->attempts);
		DTXF_CHECK(x->settled_ms == y->settled_ms);
		DTXF_CHECK(x->error == y->error);
		SAME_STR(x->message, y->message);
		same_bytes(x->payload, y->payload);
	}
}

void
dtxf_same_request(const dtxi_request *a, const dtxi_request *b)
{
	DTXF_CHECK(a->version == b->version);
	DTXF_CHECK(a->kind == b->kind);
	switch (a->kind) {
	case DTXI_REQ_SUBMIT:
		SAME_STR(a->u.submit.gid, b->u.submit.gid);
		DTXF_CHECK(a->u.submit.mode == b->u.submit.mode);
		DTXF_CHECK(a->u.submit.timeout_ms == b->u.submit.timeout_ms);
		DTXF_CHECK(a->u.submit.call_timeout_ms ==
		    b->u.submit.call_timeout_ms);
		DTXF_CHECK(a->u.submit.retries == b->u.submit.retries);
		DTXF_CHECK(a->u.submit.wait == b->u.submit.wait);
		DTXF_CHECK(a->u.submit.decided == b->u.submit.decided);
		SAME_STR(a->u.submit.traceparent, b->u.submit.traceparent);
		DTXF_CHECK(a->u.submit.nbranches == b->u.submit.nbranches);
		for (uint32_t i = 0; i < a->u.submit.nbranches; i++) {
			dtxf_same_spec(&a->u.submit.branches[i],
			    &b->u.submit.branches[i]);
		}
		// The content hash tells a resubmission from a conflict: equal
		// content must hash equal.
		DTXF_CHECK(dtxi_submit_hash(&a->u.submit) ==
		    dtxi_submit_hash(&b->u.submit));
		break;
	case DTXI_REQ_STATUS:
		SAME_STR(a->u.status.gid, b->u.status.gid);
		DTXF_CHECK(a->u.status.wait_ms == b->u.status.wait_ms);
		break;
	case DTXI_REQ_LIST:
		DTXF_CHECK(a->u.list.state == b->u.list.state);
		SAME_STR(a->u.list.cursor, b->u.list.cursor);
		DTXF_CHECK(a->u.list.limit == b->u.list.limit);
		DTXF_CHECK(a->u.list.stuck == b->u.list.stuck);
		break;
	case DTXI_REQ_RETRY:
		SAME_STR(a->u.retry.gid, b->u.retry.gid);
		break;
	case DTXI_REQ_SETTLE:
		SAME_STR(a->u.settle.gid, b->u.settle.gid);
		DTXF_CHECK(a->u.settle.branch == b->u.settle.branch);
		SAME_STR(a->u.settle.note, b->u.settle.note);
		break;
	case DTXI_REQ_ABORT:
		SAME_STR(a->u.abort.gid, b->u.abort.gid);
		break;
	case DTXI_REQ_RESOLVE:
		SAME_STR(a->u.resolve.gid, b->u.resolve.gid);
		break;
	case DTXI_REQ_CALL:
		same_call(&a->u.call, &b->u.call);
		break;
	case DTXI_REQ_CALL_BATCH:
		DTXF_CHECK(a->u.batch.n == b->u.batch.n);
		for (uint32_t i = 0; i < a->u.batch.n; i++) {
			same_call(&a->u.batch.calls[i], &b->u.batch.calls[i]);
		}
		break;
	default:
		break;
	}
}

void
dtxf_same_reply(const dtxi_reply *a, const dtxi_reply *b)
{
	DTXF_CHECK(a->version == b->version);
	DTXF_CHECK(a->code == b->code);
	SAME_STR(a->message, b->message);
	DTXF_CHECK(a->kind == b->kind);
	switch (a->kind) {
	case DTXI_REP_TX:
		same_txinfo(&a->u.tx, &b->u.tx);
		break;
	case DTXI_REP_LIST:
		DTXF_CHECK(a->u.list.n == b->u.list.n);
		SAME_STR(a->u.list.next_cursor, b->u.list.next_cursor);
		for (uint32_t i = 0; i < a->u.list.n; i++) {
			const dtxi_txsummary *x = &a->u.list.items[i];
			const dtxi_txsummary *y = &b->u.list.items[i];

			SAME_STR(x->gid, y->gid);
			DTXF_CHECK(x->mode == y->mode && x->state == y->state);
			DTXF_CHECK(x->stuck == y->stuck);
			DTXF_CHECK(x->created_ms == y->created_ms);
			DTXF_CHECK(x->updated_ms == y->updated_ms);
			DTXF_CHECK(x->nbranches == y->nbranches);
		}
		break;
	case DTXI_REP_RESOLVE:
		DTXF_CHECK(a->u.resolve.state == b->u.resolve.state);
		break;
	case DTXI_REP_BRANCH:
		DTXF_CHECK(a->u.branch.status == b->u.branch.status);
		SAME_STR(a->u.branch.message, b->u.branch.message);
		same_bytes(a->u.branch.payload, b->u.branch.payload);
		break;
	case DTXI_REP_STATS:
		DTXF_CHECK(
		    memcmp(&a->u.stats, &b->u.stats, sizeof(a->u.stats)) == 0);
		break;
	case DTXI_REP_BRANCH_BATCH:
		DTXF_CHECK(a->u.batch.n == b->u.batch.n);
		for (uint32_t i = 0; i < a->u.batch.n; i++) {
			const dtxi_branch_reply *x = &a->u.batch.replies[i];
			const dtxi_branch_reply *y = &b->u.batch.replies[i];

			DTXF_CHECK(x->status == y->status);
			SAME_STR(x->message, y->message);
			same_bytes(x->payload, y->payload);
		}
		break;
	default:
		break;
	}
}

void
dtxf_same_record(const dtxd_record *a, const dtxd_record *b)
{
	same_txinfo(&a->info, &b->info);
	for (uint32_t i = 0; i < a->info.nbranches; i++) {
		DTXF_CHECK(a->done[i] == b->done[i]);
	}
	DTXF_CHECK(a->timeout_ms == b->timeout_ms);
	DTXF_CHECK(a->call_timeout_ms == b->call_timeout_ms);
	DTXF_CHECK(a->retries == b->retries);
	DTXF_CHECK(a->deadline_ms == b->deadline_ms);
	DTXF_CHECK(a->content_hash == b->content_hash);
	DTXF_CHECK(a->cursor == b->cursor);
	DTXF_CHECK(a->wait == b->wait);
}
