// SPDX-License-Identifier: MIT
//
// codec: the wire codec, one of the two files that touch nanopb (the other
// is dtxd's record codec, which borrows codec_pb.h). It converts the plain
// C structs of codec.h to and from the generated dtxp_* messages of
// proto/dtx.proto and runs nanopb over them. Payloads never get copied:
// decoding records them as slices of the buffer being decoded (through nanopb
// field callbacks), and encoding writes them straight from the caller's
// memory. Every value read from a frame is checked against its limit before
// the rest of dtx sees it, so the modules above the codec can trust a decoded
// struct.

#include "codec.h"
#include "codec_pb.h"

#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <pb_decode.h>
#include <pb_encode.h>

static void seterr(char *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
seterr(char *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(err, DTX_MESSAGE_MAX + 1, fmt, ap);
	va_end(ap);
}

// The proto enums mirror the public C enums value for value, so converting
// one is a range check. Zero (the proto default) is in range everywhere: it
// means "none" or "any", and whether it is acceptable in a given request is
// for the coordinator to decide, not the codec.
static bool
mode_ok(int v)
{
	return v >= _dtxp_Mode_MIN && v <= _dtxp_Mode_MAX;
}

static bool
phase_ok(int v)
{
	return v >= _dtxp_Phase_MIN && v <= _dtxp_Phase_MAX;
}

static bool
status_ok(int v)
{
	return v >= _dtxp_BranchStatus_MIN && v <= _dtxp_BranchStatus_MAX;
}

static bool
state_ok(int v)
{
	return v >= _dtxp_TxState_MIN && v <= _dtxp_TxState_MAX;
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

typedef dtxi_pb_slot slot;
typedef dtxi_pb_dctx dctx;

void
dtxi_pb_dctx_init(dctx *c, const uint8_t *buf, size_t len, size_t max_payload)
{
	c->buf         = buf;
	c->len         = len;
	c->max_payload = max_payload;
	c->member      = 0;
	c->rc          = 0;
	c->why[0]      = '\0';
	for (unsigned i = 0; i < DTX_BRANCHES_MAX; i++) {
		c->slots[i].bytes.ptr = NULL;
		c->slots[i].bytes.len = 0;
		c->slots[i].ctx       = c;
		c->slots[i].kind      = DTXI_SLOT_BRANCH;
		c->slots[i].index     = i;
		c->forward[i]         = c->slots[i];
		c->forward[i].kind    = DTXI_SLOT_FORWARD;
	}
}

void
dtxi_pb_install_results(dctx *c, dtxp_TxInfo *m)
{
	dtxi_pb_reset_slots(c, DTXI_SLOT_RESULT, DTX_BRANCHES_MAX);
	for (unsigned i = 0; i < DTX_BRANCHES_MAX; i++) {
		c->forward[i].bytes.ptr = NULL;
		c->forward[i].bytes.len = 0;
		dtxi_pb_install_payload(&m->branches[i].payload, &c->slots[i]);
		dtxi_pb_install_payload(
		    &m->branches[i].forward_payload, &c->forward[i]);
	}
}

// Points the first n slots at kind and forgets what they held: a payload
// recorded for a oneof member that a later one replaced must not surface in
// the member that won.
void
dtxi_pb_reset_slots(dctx *c, enum dtxi_slot_kind kind, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		c->slots[i].bytes.ptr = NULL;
		c->slots[i].bytes.len = 0;
		c->slots[i].kind      = kind;
	}
}

static const char *
slot_name(const slot *s, char *buf, size_t cap)
{
	switch (s->kind) {
	case DTXI_SLOT_BRANCH:
		snprintf(buf, cap, "payload of branch %u", s->index);
		break;
	case DTXI_SLOT_RESULT:
		snprintf(buf, cap, "payload of branch result %u", s->index);
		break;
	case DTXI_SLOT_FORWARD:
		snprintf(
		    buf, cap, "forward payload of branch result %u", s->index);
		break;
	case DTXI_SLOT_CALL:
		snprintf(buf, cap, "payload of the branch call");
		break;
	case DTXI_SLOT_REPLY:
		snprintf(buf, cap, "payload of the branch reply");
		break;
	case DTXI_SLOT_BATCH_CALL:
		snprintf(buf, cap, "payload of batched call %u", s->index);
		break;
	case DTXI_SLOT_BATCH_REPLY:
		snprintf(buf, cap, "payload of batched reply %u", s->index);
		break;
	case DTXI_SLOT_SPEC:
	default:
		snprintf(buf, cap, "payload of the branch spec");
		break;
	}
	return buf;
}

// Records a payload as a slice of the buffer being decoded. The stream is
// nanopb's substream over the field's bytes: for a buffer stream, state is
// the read position and bytes_left the field's length.
static bool
payload_decode(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
	slot          *s = *arg;
	dctx          *c = s->ctx;
	const uint8_t *p = stream->state;
	size_t         n = stream->bytes_left;
	uintptr_t      base, at;
	char           name[64];

	(void)field;

	// nanopb hands a field sent with a scalar wire type to the callback
	// from a copy on its own stack. Only a length-delimited field is a
	// slice of our buffer, so anything else is refused rather than kept
	// as a pointer to memory that is gone when the callback returns.
	base = (uintptr_t)c->buf;
	at   = (uintptr_t)p;
	if (c->buf == NULL || at < base || n > c->len ||
	    at - base > c->len - n) {
		c->rc = DTX_EPROTO;
		snprintf(c->why, sizeof(c->why), "%s is not length-delimited",
		    slot_name(s, name, sizeof(name)));
		PB_RETURN_ERROR(stream, "payload has the wrong wire type");
	}
	if (n > c->max_payload) {
		c->rc = DTX_ETOOBIG;
		snprintf(c->why, sizeof(c->why), "%s is %zu bytes, limit %zu",
		    slot_name(s, name, sizeof(name)), n, c->max_payload);
		PB_RETURN_ERROR(stream, "payload too large");
	}
	s->bytes.ptr = n > 0 ? p : NULL;
	s->bytes.len = n;
	return pb_read(stream, NULL, n);
}

void
dtxi_pb_install_payload(pb_callback_t *cb, slot *s)
{
	cb->funcs.decode = payload_decode;
	cb->arg          = s;
}

// nanopb zeroes a oneof member before decoding it, callbacks included, and
// then calls the message-level callback (submsg_callback in dtx.options)
// with field->pData on the fresh member: the one moment the payload
// callbacks can be put in place. Every element of a repeated member gets
// one, because nanopb leaves callbacks of static array elements alone.
static bool
req_body_decode(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
	dctx *c = *arg;

	(void)stream;
	if (field->tag != c->member) {
		c->member = field->tag;
		dtxi_pb_reset_slots(c, DTXI_SLOT_BRANCH, DTX_BRANCHES_MAX);
	}
	if (field->tag == dtxp_Request_submit_tag) {
		dtxp_SubmitRequest *m = field->pData;
		for (unsigned i = 0; i < DTX_BRANCHES_MAX; i++) {
			dtxi_pb_install_payload(
			    &m->branches[i].payload, &c->slots[i]);
		}
	} else if (field->tag == dtxp_Request_call_tag) {
		dtxp_BranchCall *m = field->pData;
		c->slots[0].kind   = DTXI_SLOT_CALL;
		dtxi_pb_install_payload(&m->payload, &c->slots[0]);
	} else if (field->tag == dtxp_Request_call_batch_tag) {
		dtxp_BranchCallBatch *m = field->pData;
		for (unsigned i = 0; i < DTXI_BATCH_MAX; i++) {
			c->slots[i].kind = DTXI_SLOT_BATCH_CALL;
			dtxi_pb_install_payload(
			    &m->calls[i].payload, &c->slots[i]);
		}
	}
	return true;
}

static bool
rep_body_decode(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
	dctx *c = *arg;

	(void)stream;
	if (field->tag != c->member) {
		c->member = field->tag;
		dtxi_pb_reset_slots(c, DTXI_SLOT_RESULT, DTX_BRANCHES_MAX);
	}
	if (field->tag == dtxp_Reply_tx_tag) {
		dtxi_pb_install_results(c, field->pData);
	} else if (field->tag == dtxp_Reply_branch_tag) {
		dtxp_BranchReply *m = field->pData;
		c->slots[0].kind    = DTXI_SLOT_REPLY;
		dtxi_pb_install_payload(&m->payload, &c->slots[0]);
	} else if (field->tag == dtxp_Reply_branch_batch_tag) {
		dtxp_BranchReplyBatch *m = field->pData;
		for (unsigned i = 0; i < DTXI_BATCH_MAX; i++) {
			c->slots[i].kind = DTXI_SLOT_BATCH_REPLY;
			dtxi_pb_install_payload(
			    &m->replies[i].payload, &c->slots[i]);
		}
	}
	return true;
}

// Turns a failed pb_decode into our code and message. A payload refused by
// its callback has its own reason; anything else is nanopb's.
int
dtxi_pb_decode_failed(
    const dctx *c, const pb_istream_t *s, const char *what, char *err)
{
	const char *e = PB_GET_ERROR(s);

	if (c->rc != 0) {
		seterr(err, "%s", c->why);
		return c->rc;
	}
	if (strcmp(e, "end-of-stream") == 0 ||
	    strcmp(e, "parent stream too short") == 0) {
		seterr(err, "truncated %s frame (%s)", what, e);
	} else if (strcmp(e, "array overflow") == 0) {
		// A repeated field past its max_count: say which limits, so
		// the sender learns what to split.
		seterr(err,
		    "malformed %s frame: too many items in a list (at most "
		    "%d branches, %d batched calls, %d list entries)",
		    what, DTX_BRANCHES_MAX, DTXI_BATCH_MAX, DTXI_LIST_MAX);
	} else {
		seterr(err, "malformed %s frame: %s", what, e);
	}
	return DTX_EPROTO;
}

// Converters from the generated structs. They run after pb_decode
// succeeded and check what nanopb does not: enum ranges and integers that
// do not fit our types. On failure they leave the reason in why.

int
dtxi_pb_ms_from(uint64_t v, int64_t *out, const char *name, char *why)
{
	if (v > (uint64_t)INT64_MAX) {
		snprintf(why, DTX_MESSAGE_MAX + 1, "%s out of range", name);
		return DTX_EPROTO;
	}
	*out = (int64_t)v;
	return 0;
}

static int
result_from_pb(const dtxp_BranchResult *in, const slot *s, const slot *fwd,
    dtxi_branch_result *out, unsigned i, char *why)
{
	if (!status_ok((int)in->status) || !phase_ok((int)in->phase) ||
	    !status_ok((int)in->forward_status)) {
		snprintf(why, DTX_MESSAGE_MAX + 1,
		    "branch result %u has status %d, phase %d", i,
		    (int)in->status, (int)in->phase);
		return DTX_EPROTO;
	}
	out->branch_id = in->branch_id;
	out->status    = (int)in->status;
	out->phase     = (int)in->phase;
	out->attempts  = in->attempts;
	COPY_STR(out->message, in->message);
	out->payload         = s->bytes;
	out->forward_status  = (int)in->forward_status;
	out->forward_payload = fwd->bytes;
	if (in->error > INT_MAX) {
		snprintf(why, DTX_MESSAGE_MAX + 1,
		    "branch result %u has error %u", i, (unsigned)in->error);
		return DTX_EPROTO;
	}
	out->error = (int)in->error;
	return dtxi_pb_ms_from(
	    in->settled_ms, &out->settled_ms, "settled_ms", why);
}

int
dtxi_pb_txinfo_from(
    const dtxp_TxInfo *in, const dctx *c, dtxi_txinfo *out, char *why)
{
	int rv;

	if (!mode_ok((int)in->mode) || !state_ok((int)in->state)) {
		snprintf(why, DTX_MESSAGE_MAX + 1,
		    "transaction has mode %d, state %d", (int)in->mode,
		    (int)in->state);
		return DTX_EPROTO;
	}
	COPY_STR(out->gid, in->gid);
	COPY_STR(out->traceparent, in->traceparent);
	out->mode  = (int)in->mode;
	out->state = (int)in->state;
	out->stuck = in->stuck;
	if ((rv = dtxi_pb_ms_from(
	         in->created_ms, &out->created_ms, "created_ms", why)) != 0 ||
	    (rv = dtxi_pb_ms_from(
	         in->updated_ms, &out->updated_ms, "updated_ms", why)) != 0) {
		return rv;
	}
	out->nbranches = in->branches_count;
	for (unsigned i = 0; i < in->branches_count; i++) {
		rv = result_from_pb(&in->branches[i], &c->slots[i],
		    &c->forward[i], &out->branches[i], i, why);
		if (rv != 0) {
			return rv;
		}
	}
	return 0;
}

static int
submit_from_pb(
    const dtxp_SubmitRequest *in, const dctx *c, dtxi_submit *out, char *why)
{
	if (!mode_ok((int)in->mode)) {
		snprintf(why, DTX_MESSAGE_MAX + 1, "submit has mode %d",
		    (int)in->mode);
		return DTX_EPROTO;
	}
	COPY_STR(out->gid, in->gid);
	out->mode            = (int)in->mode;
	out->timeout_ms      = in->timeout_ms;
	out->call_timeout_ms = in->call_timeout_ms;
	out->retries         = in->retries;
	out->wait            = in->wait;
	out->decided         = in->decided;
	COPY_STR(out->traceparent, in->traceparent);
	out->nbranches = in->branches_count;
	for (unsigned i = 0; i < in->branches_count; i++) {
		COPY_STR(out->branches[i].endpoint, in->branches[i].endpoint);
		COPY_STR(out->branches[i].method, in->branches[i].method);
		out->branches[i].payload    = c->slots[i].bytes;
		out->branches[i].same_group = in->branches[i].same_group;
	}
	return 0;
}

static int
call_from_pb(
    const dtxp_BranchCall *in, const slot *s, dtxi_call *out, char *why)
{
	if (!phase_ok((int)in->phase)) {
		snprintf(why, DTX_MESSAGE_MAX + 1, "branch call has phase %d",
		    (int)in->phase);
		return DTX_EPROTO;
	}
	COPY_STR(out->gid, in->gid);
	out->branch_id = in->branch_id;
	out->phase     = (int)in->phase;
	COPY_STR(out->method, in->method);
	out->payload    = s->bytes;
	out->attempt    = in->attempt;
	out->timeout_ms = in->timeout_ms;
	COPY_STR(out->traceparent, in->traceparent);
	return dtxi_pb_ms_from(
	    in->deadline_ms, &out->deadline_ms, "deadline_ms", why);
}

// A batch must carry at least one call: an empty one is a malformed frame,
// not a request to do nothing. The upper bound is nanopb's (max_count).
static int
batch_from_pb(const dtxp_BranchCallBatch *in, const dctx *c,
    dtxi_call_batch *out, char *why)
{
	int rv;

	if (in->calls_count == 0) {
		snprintf(
		    why, DTX_MESSAGE_MAX + 1, "branch call batch is empty");
		return DTX_EPROTO;
	}
	for (unsigned i = 0; i < in->calls_count; i++) {
		rv = call_from_pb(
		    &in->calls[i], &c->slots[i], &out->calls[i], why);
		if (rv != 0) {
			char inner[DTX_MESSAGE_MAX + 1];
			dtxi_pb_copy_str(inner, why, sizeof(inner));
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "batched call %u: %.200s", i, inner);
			return rv;
		}
	}
	out->n = in->calls_count;
	return 0;
}

static int
request_from_pb(
    const dtxp_Request *m, const dctx *c, dtxi_request *r, char *why)
{
	r->version = m->version;
	switch (m->which_body) {
	case 0:
		r->kind = DTXI_REQ_NONE;
		return 0;
	case dtxp_Request_submit_tag:
		r->kind = DTXI_REQ_SUBMIT;
		return submit_from_pb(&m->body.submit, c, &r->u.submit, why);
	case dtxp_Request_status_tag:
		r->kind = DTXI_REQ_STATUS;
		COPY_STR(r->u.status.gid, m->body.status.gid);
		r->u.status.wait_ms = m->body.status.wait_ms;
		return 0;
	case dtxp_Request_list_tag:
		if (!state_ok((int)m->body.list.state)) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "list request has state %d",
			    (int)m->body.list.state);
			return DTX_EPROTO;
		}
		r->kind         = DTXI_REQ_LIST;
		r->u.list.state = (int)m->body.list.state;
		COPY_STR(r->u.list.cursor, m->body.list.cursor);
		r->u.list.limit = m->body.list.limit;
		r->u.list.stuck = m->body.list.stuck;
		return 0;
	case dtxp_Request_abort_tag:
		r->kind = DTXI_REQ_ABORT;
		COPY_STR(r->u.abort.gid, m->body.abort.gid);
		return 0;
	case dtxp_Request_resolve_tag:
		r->kind = DTXI_REQ_RESOLVE;
		COPY_STR(r->u.resolve.gid, m->body.resolve.gid);
		return 0;
	case dtxp_Request_call_tag:
		r->kind = DTXI_REQ_CALL;
		return call_from_pb(
		    &m->body.call, &c->slots[0], &r->u.call, why);
	case dtxp_Request_stats_tag:
		r->kind = DTXI_REQ_STATS;
		return 0;
	case dtxp_Request_call_batch_tag:
		r->kind = DTXI_REQ_CALL_BATCH;
		return batch_from_pb(&m->body.call_batch, c, &r->u.batch, why);
	case dtxp_Request_retry_tag:
		r->kind = DTXI_REQ_RETRY;
		COPY_STR(r->u.retry.gid, m->body.retry.gid);
		return 0;
	case dtxp_Request_settle_tag:
		r->kind = DTXI_REQ_SETTLE;
		COPY_STR(r->u.settle.gid, m->body.settle.gid);
		r->u.settle.branch = m->body.settle.branch;
		COPY_STR(r->u.settle.note, m->body.settle.note);
		return 0;
	default:
		// nanopb only sets which_body to a member's tag.
		snprintf(why, DTX_MESSAGE_MAX + 1, "request body %u unknown",
		    (unsigned)m->which_body);
		return DTX_EPROTO;
	}
}

static int
list_from_pb(const dtxp_ListReply *in, dtxi_reply *r, char *why)
{
	int rv;

	for (unsigned i = 0; i < in->txs_count; i++) {
		const dtxp_TxSummary *s = &in->txs[i];
		dtxi_txsummary       *o = &r->u.list.items[i];

		if (!mode_ok((int)s->mode) || !state_ok((int)s->state)) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "list entry %u has mode %d, state %d", i,
			    (int)s->mode, (int)s->state);
			return DTX_EPROTO;
		}
		COPY_STR(o->gid, s->gid);
		o->mode  = (int)s->mode;
		o->state = (int)s->state;
		o->stuck = s->stuck;
		if ((rv = dtxi_pb_ms_from(s->created_ms, &o->created_ms,
		         "created_ms", why)) != 0 ||
		    (rv = dtxi_pb_ms_from(s->updated_ms, &o->updated_ms,
		         "updated_ms", why)) != 0) {
			return rv;
		}
		o->nbranches = s->branch_count;
	}
	r->u.list.n = in->txs_count;
	COPY_STR(r->u.list.next_cursor, in->next_cursor);
	return 0;
}

static int
reply_batch_from_pb(
    const dtxp_BranchReplyBatch *in, const dctx *c, dtxi_reply *r, char *why)
{
	if (in->replies_count == 0) {
		snprintf(
		    why, DTX_MESSAGE_MAX + 1, "branch reply batch is empty");
		return DTX_EPROTO;
	}
	for (unsigned i = 0; i < in->replies_count; i++) {
		const dtxp_BranchReply *b = &in->replies[i];
		dtxi_branch_reply      *o = &r->u.batch.replies[i];

		if (!status_ok((int)b->status)) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "batched reply %u has status %d", i,
			    (int)b->status);
			return DTX_EPROTO;
		}
		o->status = (int)b->status;
		COPY_STR(o->message, b->message);
		o->payload = c->slots[i].bytes;
	}
	r->kind      = DTXI_REP_BRANCH_BATCH;
	r->u.batch.n = in->replies_count;
	return 0;
}

static int
reply_from_pb(const dtxp_Reply *m, const dctx *c, dtxi_reply *r, char *why)
{
	if (m->code > INT_MAX) {
		snprintf(why, DTX_MESSAGE_MAX + 1,
		    "reply code %u out of range", (unsigned)m->code);
		return DTX_EPROTO;
	}
	r->version = m->version;
	r->code    = (int)m->code;
	COPY_STR(r->message, m->message);
	switch (m->which_body) {
	case 0:
		r->kind = DTXI_REP_NONE;
		return 0;
	case dtxp_Reply_tx_tag:
		r->kind = DTXI_REP_TX;
		return dtxi_pb_txinfo_from(&m->body.tx, c, &r->u.tx, why);
	case dtxp_Reply_list_tag:
		r->kind = DTXI_REP_LIST;
		return list_from_pb(&m->body.list, r, why);
	case dtxp_Reply_stats_tag:
		r->kind                  = DTXI_REP_STATS;
		r->u.stats.active        = m->body.stats.active;
		r->u.stats.started       = m->body.stats.started;
		r->u.stats.finished      = m->body.stats.finished;
		r->u.stats.recovered     = m->body.stats.recovered;
		r->u.stats.store_writes  = m->body.stats.store_writes;
		r->u.stats.store_batches = m->body.stats.store_batches;
		r->u.stats.store_syncs   = m->body.stats.store_syncs;
		r->u.stats.store_errors  = m->body.stats.store_errors;
		r->u.stats.uptime_ms     = m->body.stats.uptime_ms;
		r->u.stats.branch_calls  = m->body.stats.branch_calls;
		r->u.stats.call_messages = m->body.stats.call_messages;
		return 0;
	case dtxp_Reply_resolve_tag:
		if (!state_ok((int)m->body.resolve.state)) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "resolve reply has state %d",
			    (int)m->body.resolve.state);
			return DTX_EPROTO;
		}
		r->kind            = DTXI_REP_RESOLVE;
		r->u.resolve.state = (int)m->body.resolve.state;
		return 0;
	case dtxp_Reply_branch_tag:
		if (!status_ok((int)m->body.branch.status)) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "branch reply has status %d",
			    (int)m->body.branch.status);
			return DTX_EPROTO;
		}
		r->kind            = DTXI_REP_BRANCH;
		r->u.branch.status = (int)m->body.branch.status;
		COPY_STR(r->u.branch.message, m->body.branch.message);
		r->u.branch.payload = c->slots[0].bytes;
		return 0;
	case dtxp_Reply_branch_batch_tag:
		return reply_batch_from_pb(&m->body.branch_batch, c, r, why);
	default:
		snprintf(why, DTX_MESSAGE_MAX + 1, "reply body %u unknown",
		    (unsigned)m->which_body);
		return DTX_EPROTO;
	}
}

// What tells a Request envelope from a Reply one to the decoder: the
// generated message, its body callback and converter, and its name.
typedef struct envelope {
	const char         *what; // "request", "reply"
	const pb_msgdesc_t *desc;
	void               *m;       // the generated message
	pb_callback_t      *body;    // its body callback
	const uint32_t     *version; // its version field
	bool (*body_decode)(pb_istream_t *, const pb_field_t *, void **);
	int (*from_pb)(const void *m, const dctx *c, void *out, char *why);
} envelope;

// The order of the checks matters. The frame size comes first so that an
// oversized frame costs nothing. The version is checked after parsing (it
// is a field like any other) but before enum ranges: a newer peer may use
// enum values we do not know, and "unsupported protocol version" is the
// true reason then, not "malformed message".
static int
decode_envelope(const envelope *e, void *out, const uint8_t *buf, size_t len,
    size_t max_frame, size_t max_payload, char *err)
{
	dctx         c;
	pb_istream_t s;
	int          rv;

	if (out == NULL || (buf == NULL && len > 0)) {
		seterr(err, "invalid arguments");
		return DTX_EINVAL;
	}
	if (len > max_frame) {
		seterr(err, "%s frame is %zu bytes, limit %zu", e->what, len,
		    max_frame);
		return DTX_ETOOBIG;
	}
	dtxi_pb_dctx_init(&c, buf, len, max_payload);
	e->body->funcs.decode = e->body_decode;
	e->body->arg          = &c;
	s                     = pb_istream_from_buffer(buf, len);
	if (!pb_decode(&s, e->desc, e->m)) {
		return dtxi_pb_decode_failed(&c, &s, e->what, err);
	}
	if (*e->version != DTX_PROTOCOL_VERSION) {
		seterr(err, "%s has protocol version %u, expected %d", e->what,
		    (unsigned)*e->version, DTX_PROTOCOL_VERSION);
		return DTX_EVERSION;
	}
	if ((rv = e->from_pb(e->m, &c, out, c.why)) != 0) {
		seterr(err, "%s", c.why);
		return rv;
	}
	return 0;
}

static int
request_from_env(const void *m, const dctx *c, void *out, char *why)
{
	return request_from_pb(m, c, out, why);
}

static int
reply_from_env(const void *m, const dctx *c, void *out, char *why)
{
	return reply_from_pb(m, c, out, why);
}

int
dtxi_request_decode(dtxi_request *r, const uint8_t *buf, size_t len,
    size_t max_frame, size_t max_payload, char *err)
{
	dtxp_Request   m; // tens of KB: the only big object in this frame
	const envelope e = {"request", &dtxp_Request_msg, &m, &m.cb_body,
	    &m.version, req_body_decode, request_from_env};

	return decode_envelope(&e, r, buf, len, max_frame, max_payload, err);
}

int
dtxi_reply_decode(dtxi_reply *r, const uint8_t *buf, size_t len,
    size_t max_frame, size_t max_payload, char *err)
{
	dtxp_Reply     m;
	const envelope e = {"reply", &dtxp_Reply_msg, &m, &m.cb_body,
	    &m.version, rep_body_decode, reply_from_env};

	return decode_envelope(&e, r, buf, len, max_frame, max_payload, err);
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

// Writes a payload from the caller's memory. An empty payload is the proto3
// default and is not written at all.
static bool
payload_encode(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
	const dtxi_bytes *b = *arg;

	if (b->len == 0) {
		return true;
	}
	return pb_encode_tag_for_field(stream, field) &&
	    pb_encode_string(stream, b->ptr, b->len);
}

// The callback only reads the payload; pb_callback_t's arg is not const,
// hence the cast.
static int
set_payload(pb_callback_t *cb, const dtxi_bytes *b)
{
	if (b->ptr == NULL && b->len > 0) {
		return DTX_EINVAL;
	}
	cb->funcs.encode = payload_encode;
	cb->arg          = (void *)b;
	return 0;
}

// Converters to the generated structs. Each one checks every value it
// copies, so that a bad struct is DTX_EINVAL here rather than a frame the
// peer refuses. The destination member was zeroed by the caller, so a field
// added to the proto later goes out as its default until the codec learns
// it.

static int
result_to_pb(const dtxi_branch_result *in, dtxp_BranchResult *out)
{
	int rv;

	if (!status_ok(in->status) || !phase_ok(in->phase) ||
	    !status_ok(in->forward_status) || !STR_FITS(in->message) ||
	    in->settled_ms < 0 || in->error < 0) {
		return DTX_EINVAL;
	}
	out->branch_id      = in->branch_id;
	out->status         = (dtxp_BranchStatus)in->status;
	out->phase          = (dtxp_Phase)in->phase;
	out->attempts       = in->attempts;
	out->forward_status = (dtxp_BranchStatus)in->forward_status;
	out->settled_ms     = (uint64_t)in->settled_ms;
	out->error          = (uint32_t)in->error;
	COPY_STR(out->message, in->message);
	if ((rv = set_payload(&out->payload, &in->payload)) != 0) {
		return rv;
	}
	return set_payload(&out->forward_payload, &in->forward_payload);
}

int
dtxi_pb_txinfo_to(const dtxi_txinfo *in, dtxp_TxInfo *out)
{
	int rv;

	if (!STR_FITS(in->gid) || !mode_ok(in->mode) || !state_ok(in->state) ||
	    in->created_ms < 0 || in->updated_ms < 0 ||
	    in->nbranches > DTX_BRANCHES_MAX || !STR_FITS(in->traceparent)) {
		return DTX_EINVAL;
	}
	COPY_STR(out->gid, in->gid);
	COPY_STR(out->traceparent, in->traceparent);
	out->mode           = (dtxp_Mode)in->mode;
	out->state          = (dtxp_TxState)in->state;
	out->stuck          = in->stuck;
	out->created_ms     = (uint64_t)in->created_ms;
	out->updated_ms     = (uint64_t)in->updated_ms;
	out->branches_count = (pb_size_t)in->nbranches;
	for (unsigned i = 0; i < in->nbranches; i++) {
		if ((rv = result_to_pb(&in->branches[i], &out->branches[i])) !=
		    0) {
			return rv;
		}
	}
	return 0;
}

int
dtxi_pb_spec_to(const dtxi_branch_spec *in, dtxp_BranchSpec *out)
{
	if (!STR_FITS(in->endpoint) || !STR_FITS(in->method)) {
		return DTX_EINVAL;
	}
	COPY_STR(out->endpoint, in->endpoint);
	COPY_STR(out->method, in->method);
	out->same_group = in->same_group;
	return set_payload(&out->payload, &in->payload);
}

static int
submit_to_pb(const dtxi_submit *in, dtxp_SubmitRequest *out)
{
	int rv;

	if (!STR_FITS(in->gid) || !mode_ok(in->mode) ||
	    in->nbranches > DTX_BRANCHES_MAX || !STR_FITS(in->traceparent)) {
		return DTX_EINVAL;
	}
	COPY_STR(out->gid, in->gid);
	out->mode            = (dtxp_Mode)in->mode;
	out->timeout_ms      = in->timeout_ms;
	out->call_timeout_ms = in->call_timeout_ms;
	out->retries         = in->retries;
	out->wait            = in->wait;
	out->decided         = in->decided;
	COPY_STR(out->traceparent, in->traceparent);
	out->branches_count = (pb_size_t)in->nbranches;
	for (unsigned i = 0; i < in->nbranches; i++) {
		if ((rv = dtxi_pb_spec_to(
		         &in->branches[i], &out->branches[i])) != 0) {
			return rv;
		}
	}
	return 0;
}

static int
call_to_pb(const dtxi_call *in, dtxp_BranchCall *out)
{
	if (!STR_FITS(in->gid) || !STR_FITS(in->method) ||
	    !phase_ok(in->phase) || in->deadline_ms < 0 ||
	    !STR_FITS(in->traceparent)) {
		return DTX_EINVAL;
	}
	COPY_STR(out->gid, in->gid);
	COPY_STR(out->traceparent, in->traceparent);
	out->branch_id = in->branch_id;
	out->phase     = (dtxp_Phase)in->phase;
	COPY_STR(out->method, in->method);
	out->attempt     = in->attempt;
	out->deadline_ms = (uint64_t)in->deadline_ms;
	out->timeout_ms  = in->timeout_ms;
	return set_payload(&out->payload, &in->payload);
}

static int
request_to_pb(const dtxi_request *r, dtxp_Request *m)
{
	// Only the fixed part and the chosen member are zeroed: the union is
	// as big as its largest member, and a branch call, the most frequent
	// request, is a small one.
	memset(m, 0, offsetof(dtxp_Request, body));
	m->version = r->version;
	switch (r->kind) {
	case DTXI_REQ_NONE:
		m->which_body = 0;
		return 0;
	case DTXI_REQ_SUBMIT:
		m->which_body = dtxp_Request_submit_tag;
		memset(&m->body.submit, 0, sizeof(m->body.submit));
		return submit_to_pb(&r->u.submit, &m->body.submit);
	case DTXI_REQ_STATUS:
		if (!STR_FITS(r->u.status.gid)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Request_status_tag;
		memset(&m->body.status, 0, sizeof(m->body.status));
		COPY_STR(m->body.status.gid, r->u.status.gid);
		m->body.status.wait_ms = r->u.status.wait_ms;
		return 0;
	case DTXI_REQ_LIST:
		if (!state_ok(r->u.list.state) ||
		    !STR_FITS(r->u.list.cursor)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Request_list_tag;
		memset(&m->body.list, 0, sizeof(m->body.list));
		m->body.list.state = (dtxp_TxState)r->u.list.state;
		COPY_STR(m->body.list.cursor, r->u.list.cursor);
		m->body.list.limit = r->u.list.limit;
		m->body.list.stuck = r->u.list.stuck;
		return 0;
	case DTXI_REQ_ABORT:
		if (!STR_FITS(r->u.abort.gid)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Request_abort_tag;
		memset(&m->body.abort, 0, sizeof(m->body.abort));
		COPY_STR(m->body.abort.gid, r->u.abort.gid);
		return 0;
	case DTXI_REQ_RESOLVE:
		if (!STR_FITS(r->u.resolve.gid)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Request_resolve_tag;
		memset(&m->body.resolve, 0, sizeof(m->body.resolve));
		COPY_STR(m->body.resolve.gid, r->u.resolve.gid);
		return 0;
	case DTXI_REQ_RETRY:
		if (!STR_FITS(r->u.retry.gid)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Request_retry_tag;
		memset(&m->body.retry, 0, sizeof(m->body.retry));
		COPY_STR(m->body.retry.gid, r->u.retry.gid);
		return 0;
	case DTXI_REQ_SETTLE:
		if (!STR_FITS(r->u.settle.gid) ||
		    !STR_FITS(r->u.settle.note)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Request_settle_tag;
		memset(&m->body.settle, 0, sizeof(m->body.settle));
		COPY_STR(m->body.settle.gid, r->u.settle.gid);
		m->body.settle.branch = r->u.settle.branch;
		COPY_STR(m->body.settle.note, r->u.settle.note);
		return 0;
	case DTXI_REQ_CALL:
		m->which_body = dtxp_Request_call_tag;
		memset(&m->body.call, 0, sizeof(m->body.call));
		return call_to_pb(&r->u.call, &m->body.call);
	case DTXI_REQ_STATS:
		m->which_body = dtxp_Request_stats_tag;
		memset(&m->body.stats, 0, sizeof(m->body.stats));
		return 0;
	case DTXI_REQ_CALL_BATCH:
		if (r->u.batch.n == 0 || r->u.batch.n > DTXI_BATCH_MAX) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Request_call_batch_tag;
		// Only the calls in use are zeroed (see above).
		m->body.call_batch.calls_count = (pb_size_t)r->u.batch.n;
		for (unsigned i = 0; i < r->u.batch.n; i++) {
			dtxp_BranchCall *o = &m->body.call_batch.calls[i];
			int              rv;

			memset(o, 0, sizeof(*o));
			if ((rv = call_to_pb(&r->u.batch.calls[i], o)) != 0) {
				return rv;
			}
		}
		return 0;
	default:
		return DTX_EINVAL;
	}
}

static int
list_to_pb(const dtxi_reply *r, dtxp_ListReply *out)
{
	if (r->u.list.n > DTXI_LIST_MAX || !STR_FITS(r->u.list.next_cursor)) {
		return DTX_EINVAL;
	}
	for (unsigned i = 0; i < r->u.list.n; i++) {
		const dtxi_txsummary *s = &r->u.list.items[i];
		dtxp_TxSummary       *o = &out->txs[i];

		if (!STR_FITS(s->gid) || !mode_ok(s->mode) ||
		    !state_ok(s->state) || s->created_ms < 0 ||
		    s->updated_ms < 0) {
			return DTX_EINVAL;
		}
		COPY_STR(o->gid, s->gid);
		o->mode         = (dtxp_Mode)s->mode;
		o->state        = (dtxp_TxState)s->state;
		o->stuck        = s->stuck;
		o->created_ms   = (uint64_t)s->created_ms;
		o->updated_ms   = (uint64_t)s->updated_ms;
		o->branch_count = s->nbranches;
	}
	out->txs_count = (pb_size_t)r->u.list.n;
	COPY_STR(out->next_cursor, r->u.list.next_cursor);
	return 0;
}

static int
reply_to_pb(const dtxi_reply *r, dtxp_Reply *m)
{
	if (r->code < 0 || !STR_FITS(r->message)) {
		return DTX_EINVAL;
	}
	memset(m, 0, offsetof(dtxp_Reply, body));
	m->version = r->version;
	m->code    = (uint32_t)r->code;
	COPY_STR(m->message, r->message);
	switch (r->kind) {
	case DTXI_REP_NONE:
		m->which_body = 0;
		return 0;
	case DTXI_REP_TX:
		m->which_body = dtxp_Reply_tx_tag;
		memset(&m->body.tx, 0, sizeof(m->body.tx));
		return dtxi_pb_txinfo_to(&r->u.tx, &m->body.tx);
	case DTXI_REP_LIST:
		m->which_body = dtxp_Reply_list_tag;
		memset(&m->body.list, 0, sizeof(m->body.list));
		return list_to_pb(r, &m->body.list);
	case DTXI_REP_STATS:
		m->which_body = dtxp_Reply_stats_tag;
		memset(&m->body.stats, 0, sizeof(m->body.stats));
		m->body.stats.active        = r->u.stats.active;
		m->body.stats.started       = r->u.stats.started;
		m->body.stats.finished      = r->u.stats.finished;
		m->body.stats.recovered     = r->u.stats.recovered;
		m->body.stats.store_writes  = r->u.stats.store_writes;
		m->body.stats.store_batches = r->u.stats.store_batches;
		m->body.stats.store_syncs   = r->u.stats.store_syncs;
		m->body.stats.store_errors  = r->u.stats.store_errors;
		m->body.stats.uptime_ms     = r->u.stats.uptime_ms;
		m->body.stats.branch_calls  = r->u.stats.branch_calls;
		m->body.stats.call_messages = r->u.stats.call_messages;
		return 0;
	case DTXI_REP_RESOLVE:
		if (!state_ok(r->u.resolve.state)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Reply_resolve_tag;
		memset(&m->body.resolve, 0, sizeof(m->body.resolve));
		m->body.resolve.state = (dtxp_TxState)r->u.resolve.state;
		return 0;
	case DTXI_REP_BRANCH:
		if (!status_ok(r->u.branch.status) ||
		    !STR_FITS(r->u.branch.message)) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Reply_branch_tag;
		memset(&m->body.branch, 0, sizeof(m->body.branch));
		m->body.branch.status = (dtxp_BranchStatus)r->u.branch.status;
		COPY_STR(m->body.branch.message, r->u.branch.message);
		return set_payload(
		    &m->body.branch.payload, &r->u.branch.payload);
	case DTXI_REP_BRANCH_BATCH:
		if (r->u.batch.n == 0 || r->u.batch.n > DTXI_BATCH_MAX) {
			return DTX_EINVAL;
		}
		m->which_body = dtxp_Reply_branch_batch_tag;
		m->body.branch_batch.replies_count = (pb_size_t)r->u.batch.n;
		for (unsigned i = 0; i < r->u.batch.n; i++) {
			const dtxi_branch_reply *b = &r->u.batch.replies[i];
			dtxp_BranchReply *o = &m->body.branch_batch.replies[i];
			int               rv;

			if (!status_ok(b->status) || !STR_FITS(b->message)) {
				return DTX_EINVAL;
			}
			memset(o, 0, sizeof(*o));
			o->status = (dtxp_BranchStatus)b->status;
			COPY_STR(o->message, b->message);
			if ((rv = set_payload(&o->payload, &b->payload)) !=
			    0) {
				return rv;
			}
		}
		return 0;
	default:
		return DTX_EINVAL;
	}
}

// Runs nanopb over a filled message. Every field was checked while the
// message was filled, so once the size is known to fit, pb_encode cannot
// fail for a reason of ours; a failure is still reported, never ignored.
int
dtxi_pb_encode(const pb_msgdesc_t *desc, const void *m, uint8_t *buf,
    size_t cap, size_t *len)
{
	pb_ostream_t s;
	size_t       size;

	if (buf == NULL) {
		if (cap != 0 || !pb_get_encoded_size(&size, desc, m)) {
			return DTX_EINVAL;
		}
		*len = size;
		return 0;
	}
	s = pb_ostream_from_buffer(buf, cap);
	if (!pb_encode(&s, desc, m)) {
		if (pb_get_encoded_size(&size, desc, m) && size > cap) {
			return DTX_ETOOBIG;
		}
		return DTX_EINVAL;
	}
	*len = s.bytes_written;
	return 0;
}

int
dtxi_request_encode(
    const dtxi_request *r, uint8_t *buf, size_t cap, size_t *len)
{
	dtxp_Request m;
	int          rv;

	if (r == NULL || len == NULL) {
		return DTX_EINVAL;
	}
	if ((rv = request_to_pb(r, &m)) != 0) {
		return rv;
	}
	return dtxi_pb_encode(&dtxp_Request_msg, &m, buf, cap, len);
}

int
dtxi_reply_encode(const dtxi_reply *r, uint8_t *buf, size_t cap, size_t *len)
{
	dtxp_Reply m;
	int        rv;

	if (r == NULL || len == NULL) {
		return DTX_EINVAL;
	}
	if ((rv = reply_to_pb(r, &m)) != 0) {
		return rv;
	}
	return dtxi_pb_encode(&dtxp_Reply_msg, &m, buf, cap, len);
}

// ---------------------------------------------------------------------------
// Content hash
// ---------------------------------------------------------------------------

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME  1099511628211ull

static uint64_t
fnv(uint64_t h, const void *data, size_t n)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

// Integers are hashed little-endian byte by byte, so the hash, which is
// stored on disk, is the same on every host.
static uint64_t
fnv_le(uint64_t h, uint64_t v, unsigned nbytes)
{
	uint8_t b[8];

	for (unsigned i = 0; i < nbytes; i++) {
		b[i] = (uint8_t)(v >> (8 * i));
	}
	return fnv(h, b, nbytes);
}

// The zero bytes after endpoint and method keep ("ab", "c") and ("a", "bc")
// apart; the payload length does the same for the payload.
uint64_t
dtxi_submit_hash(const dtxi_submit *s)
{
	uint64_t h    = FNV_OFFSET;
	uint32_t n    = s->nbranches;
	uint8_t  zero = 0;

	h = fnv_le(h, (uint32_t)s->mode, 4);
	h = fnv_le(h, n, 4);
	if (n > DTX_BRANCHES_MAX) {
		n = DTX_BRANCHES_MAX;
	}
	for (uint32_t i = 0; i < n; i++) {
		const dtxi_branch_spec *b = &s->branches[i];

		h = fnv(
		    h, b->endpoint, strnlen(b->endpoint, sizeof(b->endpoint)));
		h = fnv(h, &zero, 1);
		h = fnv(h, b->method, strnlen(b->method, sizeof(b->method)));
		h = fnv(h, &zero, 1);
		h = fnv_le(h, b->payload.len, 8);
		if (b->payload.ptr != NULL) {
			h = fnv(h, b->payload.ptr, b->payload.len);
		}
		// Only when set, so a transaction without groups keeps the
		// hash its record was stored with.
		if (b->same_group) {
			h = fnv_le(h, 0x67u, 1);
		}
	}
	return h;
}
