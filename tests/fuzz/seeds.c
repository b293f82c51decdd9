// SPDX-License-Identifier: MIT
//
// seeds: the starting corpus of every target, made by encoding valid
// messages with the codec itself, so the corpus follows the protocol when
// it changes and nothing binary is committed for it. Each seed is small:
// libFuzzer mutates from here, and the replay test runs them all.

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

// The messages are big structs (up to 64 branches); they are static so a
// seed run needs little stack, and the generator is not re-entrant.
static dtxi_request req;
static dtxi_reply   rep;
static dtxd_record  rec;
static uint8_t      pay[DTXI_BATCH_MAX][40];
static uint8_t      out[256 * 1024];

static dtxi_bytes
payload(unsigned i, size_t n)
{
	dtxi_bytes b;

	for (size_t k = 0; k < n && k < sizeof(pay[0]); k++) {
		pay[i][k] = (uint8_t)(k * 31 + i);
	}
	b.ptr = n > 0 ? pay[i] : NULL;
	b.len = n < sizeof(pay[0]) ? n : sizeof(pay[0]);
	return b;
}

// Encodes whatever is in req, rep or rec and hands it to emit. A seed
// that does not encode is a bug of this file, so it aborts.
static int
emit_req(dtxf_emit emit, void *arg)
{
	size_t n;

	req.version = DTX_PROTOCOL_VERSION;
	DTXF_CHECK(dtxi_request_encode(&req, out, sizeof(out), &n) == 0);
	emit(arg, out, n);
	return 1;
}

static int
emit_rep(dtxf_emit emit, void *arg)
{
	size_t n;

	rep.version = DTX_PROTOCOL_VERSION;
	DTXF_CHECK(dtxi_reply_encode(&rep, out, sizeof(out), &n) == 0);
	emit(arg, out, n);
	return 1;
}

static void
fill_txinfo(dtxi_txinfo *t, unsigned nbranches, int mode, int state)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->gid, "0123456789abcdef0123456789abcdef");
	t->mode       = mode;
	t->state      = state;
	t->created_ms = 1700000000000;
	t->updated_ms = 1700000000500;
	t->nbranches  = nbranches;
	for (unsigned i = 0; i < nbranches; i++) {
		t->branches[i].branch_id = i;
		t->branches[i].status    = DTX_BRANCH_OK;
		t->branches[i].phase     = DTX_PHASE_PREPARE + (int)(i % 5);
		t->branches[i].attempts  = 1 + i;
		strcpy(t->branches[i].message, i % 2 ? "" : "prepared");
		t->branches[i].payload    = payload(i, i * 3);
		t->branches[i].error      = i % 3 == 1 ? DTX_EUNREACHABLE : 0;
		t->branches[i].settled_ms = i % 4 == 3 ? 1700000000900 : 0;
	}
	if (nbranches > 1) {
		strcpy(t->traceparent,
		    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
	}
}

static void
fill_call(dtxi_call *c, unsigned i)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->gid, "g-42");
	c->branch_id   = i;
	c->phase       = DTX_PHASE_PREPARE + (int)(i % 5);
	c->attempt     = 1;
	c->deadline_ms = i % 2 ? 0 : 1700000003000;
	strcpy(c->method, i % 3 ? "inventory.reserve" : "pay");
	c->payload = payload(i, 5 + i);
	if (i % 2 == 1) {
		strcpy(c->traceparent,
		    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
	}
}

static int
seeds_coord_request(dtxf_emit emit, void *arg)
{
	int n = 0;

	memset(&req, 0, sizeof(req));
	req.kind = DTXI_REQ_STATS;
	n += emit_req(emit, arg);

	// Submits of both modes, with and without a gid and with 1 and
	// several branches.
	for (unsigned k = 0; k < 3; k++) {
		dtxi_submit *s = &req.u.submit;

		memset(&req, 0, sizeof(req));
		req.kind = DTXI_REQ_SUBMIT;
		s->mode  = k == 1 ? DTX_SAGA : DTX_2PC;
		if (k != 2) {
			strcpy(s->gid, "order-17");
		}
		s->timeout_ms      = k * 1000;
		s->call_timeout_ms = k * 100;
		s->retries         = k;
		s->wait            = k == 0;
		s->decided         = k == 0;
		s->nbranches       = k == 0 ? 1 : 4;
		if (k == 1) {
			strcpy(s->traceparent,
			    "00-4bf92f3577b34da6a3ce929d0e0e"
			    "4736-00f067aa0ba902b7-01");
		}
		for (unsigned i = 0; i < s->nbranches; i++) {
			strcpy(
			    s->branches[i].endpoint, "tcp://127.0.0.1:7001");
			strcpy(s->branches[i].method, "stock.reserve");
			s->branches[i].payload    = payload(i, 4 * i);
			s->branches[i].same_group = k == 1 && i % 2 == 1;
		}
		n += emit_req(emit, arg);
	}

	memset(&req, 0, sizeof(req));
	req.kind = DTXI_REQ_STATUS;
	strcpy(req.u.status.gid, "order-17");
	req.u.status.wait_ms = 500;
	n += emit_req(emit, arg);

	memset(&req, 0, sizeof(req));
	req.kind         = DTXI_REQ_LIST;
	req.u.list.state = DTX_STATE_COMMITTED;
	req.u.list.limit = 10;
	strcpy(req.u.list.cursor, "order-16");
	n += emit_req(emit, arg);

	memset(&req, 0, sizeof(req));
	req.kind = DTXI_REQ_ABORT;
	strcpy(req.u.abort.gid, "order-17");
	n += emit_req(emit, arg);

	memset(&req, 0, sizeof(req));
	req.kind = DTXI_REQ_RESOLVE;
	strcpy(req.u.resolve.gid, "order-17");
	n += emit_req(emit, arg);

	memset(&req, 0, sizeof(req));
	req.kind         = DTXI_REQ_LIST;
	req.u.list.stuck = true;
	n += emit_req(emit, arg);

	memset(&req, 0, sizeof(req));
	req.kind = DTXI_REQ_RETRY;
	strcpy(req.u.retry.gid, "order-17");
	n += emit_req(emit, arg);

	memset(&req, 0, sizeof(req));
	req.kind            = DTXI_REQ_SETTLE;
	req.u.settle.branch = 1;
	strcpy(req.u.settle.gid, "order-17");
	strcpy(req.u.settle.note, "refunded by hand, ticket 42");
	n += emit_req(emit, arg);

	// A request without a body: dtxd answers EUNSUPPORTED after decoding.
	memset(&req, 0, sizeof(req));
	req.kind = DTXI_REQ_NONE;
	n += emit_req(emit, arg);
	return n;
}

static int
seeds_part_request(dtxf_emit emit, void *arg)
{
	int n = 0;

	for (unsigned i = 0; i < 5; i++) {
		memset(&req, 0, sizeof(req));
		req.kind = DTXI_REQ_CALL;
		fill_call(&req.u.call, i);
		n += emit_req(emit, arg);
	}
	for (unsigned k = 1; k <= 8; k *= 2) {
		memset(&req, 0, sizeof(req));
		req.kind      = DTXI_REQ_CALL_BATCH;
		req.u.batch.n = k;
		for (unsigned i = 0; i < k; i++) {
			fill_call(&req.u.batch.calls[i], i);
		}
		n += emit_req(emit, arg);
	}
	return n;
}

static int
seeds_reply(dtxf_emit emit, void *arg)
{
	int n = 0;

	// An error reply, as every refusal is sent.
	memset(&rep, 0, sizeof(rep));
	rep.code = DTX_EPROTO;
	strcpy(rep.message, "truncated request frame (end-of-stream)");
	n += emit_rep(emit, arg);

	for (unsigned k = 0; k < 2; k++) {
		memset(&rep, 0, sizeof(rep));
		rep.kind = DTXI_REP_TX;
		fill_txinfo(&rep.u.tx, k == 0 ? 1 : 5,
		    k == 0 ? DTX_2PC : DTX_SAGA,
		    k == 0 ? DTX_STATE_COMMITTED : DTX_STATE_COMPENSATING);
		n += emit_rep(emit, arg);
	}

	memset(&rep, 0, sizeof(rep));
	rep.kind     = DTXI_REP_LIST;
	rep.u.list.n = 3;
	for (unsigned i = 0; i < 3; i++) {
		dtxi_txsummary *s = &rep.u.list.items[i];

		s->gid[0]     = (char)('a' + i);
		s->mode       = DTX_2PC;
		s->state      = DTX_STATE_PREPARING + (int)i;
		s->created_ms = 1700000000000 + i;
		s->updated_ms = 1700000000001 + i;
		s->nbranches  = i + 1;
	}
	strcpy(rep.u.list.next_cursor, "c");
	n += emit_rep(emit, arg);

	memset(&rep, 0, sizeof(rep));
	rep.kind            = DTXI_REP_RESOLVE;
	rep.u.resolve.state = DTX_STATE_ABORTED;
	n += emit_rep(emit, arg);

	memset(&rep, 0, sizeof(rep));
	rep.kind                = DTXI_REP_STATS;
	rep.u.stats.started     = 100;
	rep.u.stats.finished    = 98;
	rep.u.stats.store_syncs = 40;
	rep.u.stats.uptime_ms   = 123456;
	n += emit_rep(emit, arg);

	for (unsigned s = DTX_BRANCH_OK; s <= DTX_BRANCH_BAD_REQUEST; s++) {
		memset(&rep, 0, sizeof(rep));
		rep.kind            = DTXI_REP_BRANCH;
		rep.u.branch.status = (int)s;
		strcpy(rep.u.branch.message, s == DTX_BRANCH_OK ? "" : "no");
		rep.u.branch.payload = payload(s, 3 * s);
		n += emit_rep(emit, arg);
	}

	memset(&rep, 0, sizeof(rep));
	rep.kind      = DTXI_REP_BRANCH_BATCH;
	rep.u.batch.n = 4;
	for (unsigned i = 0; i < 4; i++) {
		rep.u.batch.replies[i].status  = DTX_BRANCH_OK + (int)(i % 3);
		rep.u.batch.replies[i].payload = payload(i, i * 2);
	}
	n += emit_rep(emit, arg);
	return n;
}

static int
seeds_record(dtxf_emit emit, void *arg)
{
	static const int states[] = {DTX_STATE_PREPARING, DTX_STATE_COMMITTING,
	    DTX_STATE_ABORTING, DTX_STATE_RUNNING, DTX_STATE_COMPENSATING,
	    DTX_STATE_COMPENSATED};
	int              n        = 0;
	size_t           len;

	for (unsigned k = 0; k < sizeof(states) / sizeof(states[0]); k++) {
		memset(&rec, 0, sizeof(rec));
		fill_txinfo(
		    &rec.info, 1 + k, k < 3 ? DTX_2PC : DTX_SAGA, states[k]);
		rec.timeout_ms      = 5000;
		rec.call_timeout_ms = 1000;
		rec.retries         = k;
		rec.deadline_ms     = 1700000005000;
		rec.content_hash    = 0x9e3779b97f4a7c15ull * (k + 1);
		rec.cursor          = k;
		rec.wait            = k % 2;
		for (unsigned i = 0; i < rec.info.nbranches; i++) {
			rec.done[i] = 1u << (i % 4);
		}
		DTXF_CHECK(
		    dtxd_record_encode(&rec, out, sizeof(out), &len) == 0);
		emit(arg, out, len);
		n++;
	}
	return n;
}

static int
seeds_spec(dtxf_emit emit, void *arg)
{
	dtxi_branch_spec s;
	size_t           len;
	int              n = 0;

	for (unsigned k = 0; k < 3; k++) {
		memset(&s, 0, sizeof(s));
		strcpy(s.endpoint,
		    k == 2 ? "ipc:///tmp/dtx-part.sock"
		           : "tcp://127.0.0.1:7001");
		strcpy(s.method, k == 0 ? "m" : "inventory.reserve");
		s.payload    = payload(k, k * 11);
		s.same_group = k == 1;
		DTXF_CHECK(dtxd_spec_encode(&s, out, sizeof(out), &len) == 0);
		emit(arg, out, len);
		n++;
	}
	return n;
}

// A PEM certificate reduced to what certinfo reads: Certificate {
// tbsCertificate { [0] version (when v3), serial, signature, issuer,
// validity { notBefore, notAfter } } }, its dates UTCTime before 2050 and
// GeneralizedTime after, base64 in 64-column lines.
static size_t
cert_pem(char *pem, size_t cap, bool v3, const char *nb, const char *na)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t tbs[128], der[160];
	size_t  t = 0, d = 0, p = 0;

	if (v3) {
		memcpy(tbs + t, "\xa0\x03\x02\x01\x02", 5); // [0] INTEGER 2
		t += 5;
	}
	memcpy(tbs + t, "\x02\x01\x05\x30\x00\x30\x00", 7);
	t += 7;
	tbs[t++] = 0x30;
	tbs[t++] = (uint8_t)(4 + strlen(nb) + strlen(na));
	for (const char *s = nb;; s = na) {
		tbs[t++] = strlen(s) == 13 ? 0x17 : 0x18;
		tbs[t++] = (uint8_t)strlen(s);
		memcpy(tbs + t, s, strlen(s));
		t += strlen(s);
		if (s == na) {
			break;
		}
	}
	der[d++] = 0x30;
	der[d++] = (uint8_t)(t + 2);
	der[d++] = 0x30;
	der[d++] = (uint8_t)t;
	memcpy(der + d, tbs, t);
	d += t;
	p += (size_t)snprintf(pem, cap, "-----BEGIN CERTIFICATE-----\n");
	for (size_t i = 0; i < d; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16;
		v |= i + 1 < d ? (uint32_t)der[i + 1] << 8 : 0;
		v |= i + 2 < d ? der[i + 2] : 0;
		pem[p++] = b64[v >> 18 & 63];
		pem[p++] = b64[v >> 12 & 63];
		pem[p++] = i + 1 < d ? b64[v >> 6 & 63] : '=';
		pem[p++] = i + 2 < d ? b64[v & 63] : '=';
		if ((i / 3 + 1) % 16 == 0) {
			pem[p++] = '\n';
		}
	}
	p += (size_t)snprintf(pem + p, cap - p,
	    "%s-----END CERTIFICATE-----\n", pem[p - 1] == '\n' ? "" : "\n");
	return p;
}

static int
seeds_cert(dtxf_emit emit, void *arg)
{
	char   pem[512];
	size_t len;

	len =
	    cert_pem(pem, sizeof(pem), true, "200101000000Z", "200131000000Z");
	emit(arg, (const uint8_t *)pem, len);
	len = cert_pem(
	    pem, sizeof(pem), false, "491231235959Z", "20600229120000Z");
	emit(arg, (const uint8_t *)pem, len);
	return 2;
}

int
dtxf_seeds(const char *target, dtxf_emit emit, void *arg)
{
	if (strcmp(target, "cert") == 0) {
		return seeds_cert(emit, arg);
	}
	if (strcmp(target, "coord_request") == 0) {
		return seeds_coord_request(emit, arg);
	}
	if (strcmp(target, "part_request") == 0) {
		return seeds_part_request(emit, arg);
	}
	if (strcmp(target, "reply") == 0) {
		return seeds_reply(emit, arg);
	}
	if (strcmp(target, "record") == 0) {
		return seeds_record(emit, arg);
	}
	if (strcmp(target, "spec") == 0) {
		return seeds_spec(emit, arg);
	}
	return -1;
}
