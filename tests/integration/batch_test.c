// SPDX-License-Identifier: MIT
//
// dtx.integration.batch: branch calls batched into one frame, end to end.
// First a raw nng REQ socket plays dtxd against a real participant (libdtx
// over tcp) and sends BranchCallBatch frames: every call gets its own reply,
// in call order, with the same statuses single calls get; the calls of one
// batch run concurrently; a batch whose replies would not fit in a frame
// answers the calls that do not fit with RETRY; empty, oversized and
// malformed batches get clear errors and the participant keeps serving.
// Then real dtxd processes: several branches on one participant travel in
// one frame per phase (the Stats counters prove it), and a participant that
// does not know batches (a raw REP socket here, answering EUNSUPPORTED)
// still gets every call, one by one, and the transaction commits.

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "harness.h"
#include "strs.h"
#include "world_suite.h"

#define MAX_PAYLOAD 1024u
#define MEET        4 // calls that must run at the same time

// ---------------------------------------------------------------------------
// An in-process participant whose callbacks obey their payload
// ---------------------------------------------------------------------------

static atomic_int      runs;
static pthread_mutex_t meet_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  meet_cv  = PTHREAD_COND_INITIALIZER;
static int             meet_n;

// "ok:T" OK with message "done" and payload T; "refuse:T" REFUSED with
// "no stock" and T; "retry" RETRY; "bogus" an invalid result; "big" OK with
// a reply payload of MAX_PAYLOAD bytes; "sleep:MS" OK after MS ms; "meet"
// waits (10 s at most) until MEET such calls run at once, then OK, or RETRY
// "alone" if they never do.
static dtx_result
cb(const dtx_call *call, dtx_reply *reply, void *arg)
{
	char cmd[64] = {0};

	(void)arg;
	atomic_fetch_add(&runs, 1);
	if (call->payload_len < sizeof(cmd) && call->payload_len > 0) {
		memcpy(cmd, call->payload, call->payload_len);
	}
	if (strncmp(cmd, "ok:", 3) == 0) {
		dtx_reply_set_message(reply, "done");
		cr_assert_eq(
		    dtx_reply_set_payload(reply, cmd + 3, strlen(cmd + 3)), 0);
		return DTX_OK;
	}
	if (strncmp(cmd, "refuse:", 7) == 0) {
		dtx_reply_set_message(reply, "no stock");
		cr_assert_eq(
		    dtx_reply_set_payload(reply, cmd + 7, strlen(cmd + 7)), 0);
		return DTX_REFUSED;
	}
	if (strcmp(cmd, "retry") == 0) {
		dtx_reply_set_message(reply, "busy");
		return DTX_RETRY;
	}
	if (strncmp(cmd, "sleep:", 6) == 0) {
		dtxt_sleep_ms(atoi(cmd + 6));
		return DTX_OK;
	}
	if (strcmp(cmd, "bogus") == 0) {
		return (dtx_result)42;
	}
	if (strcmp(cmd, "big") == 0) {
		static uint8_t big[MAX_PAYLOAD];
		memset(big, 'b', sizeof(big));
		cr_assert_eq(
		    dtx_reply_set_payload(reply, big, sizeof(big)), 0);
		return DTX_OK;
	}
	if (strcmp(cmd, "meet") == 0) {
		struct timespec until;
		bool            met;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		pthread_mutex_lock(&meet_mtx);
		meet_n++;
		pthread_cond_broadcast(&meet_cv);
		while (meet_n < MEET &&
		    pthread_cond_timedwait(&meet_cv, &meet_mtx, &until) == 0) {
		}
		met = meet_n >= MEET;
		pthread_mutex_unlock(&meet_mtx);
		dtx_reply_set_message(reply, met ? "met" : "alone");
		return met ? DTX_OK : DTX_RETRY;
	}
	return DTX_OK;
}

static dtx_participant *
start_participant(const char *url)
{
	dtx_participant *p;
	dtx_method_ops   full = {cb, cb, cb, cb, cb};
	dtx_method_ops   saga = {.execute = cb};

	cr_assert_eq(dtx_participant_open(&p), 0);
	cr_assert_eq(dtx_participant_set_max_payload(p, MAX_PAYLOAD), 0);
	cr_assert_eq(dtx_participant_set_workers(p, MEET), 0);
	cr_assert_eq(dtx_participant_register(p, "transfer", &full, NULL), 0);
	cr_assert_eq(dtx_participant_register(p, "reserve", &saga, NULL), 0);
	cr_assert_eq(dtx_participant_listen(p, url), 0);
	return p;
}

// ---------------------------------------------------------------------------
// A raw REQ socket playing dtxd
// ---------------------------------------------------------------------------

static nng_socket
raw_open(const char *url)
{
	nng_socket s;

	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 20000), 0);
	cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
	return s;
}

// The decoded answer and the frame its payloads point into.
typedef struct answer {
	dtxi_reply rep;
	nng_msg   *msg;
} answer;

static answer *
exchange(nng_socket s, const void *buf, size_t len)
{
	answer  *a = calloc(1, sizeof(*a));
	nng_msg *m;
	char     why[DTX_MESSAGE_MAX + 1];
	int      rv;

	cr_assert_not_null(a);
	cr_assert_eq(nng_msg_alloc(&m, len), 0);
	memcpy(nng_msg_body(m), buf, len);
	cr_assert_eq(nng_sendmsg(s, m, 0), 0);
	cr_assert_eq(nng_recvmsg(s, &a->msg, 0), 0);
	rv = dtxi_reply_decode(&a->rep, nng_msg_body(a->msg),
	    nng_msg_len(a->msg), SIZE_MAX, SIZE_MAX, why);
	cr_assert_eq(rv, 0, "reply decode: %s", why);
	return a;
}

static void
answer_free(answer *a)
{
	nng_msg_free(a->msg);
	free(a);
}

static answer *
exchange_req(nng_socket s, const dtxi_request *req)
{
	size_t   len;
	uint8_t *buf;
	answer  *a;

	cr_assert_eq(dtxi_request_encode(req, NULL, 0, &len), 0);
	cr_assert_not_null(buf = malloc(len + 1));
	cr_assert_eq(dtxi_request_encode(req, buf, len, &len), 0);
	a = exchange(s, buf, len);
	free(buf);
	return a;
}

static dtxi_request *
new_batch(void)
{
	dtxi_request *r = calloc(1, sizeof(*r));

	cr_assert_not_null(r);
	r->version = DTX_PROTOCOL_VERSION;
	r->kind    = DTXI_REQ_CALL_BATCH;
	return r;
}

static void
add_call(dtxi_request *r, const char *method, dtx_phase phase,
    const void *payload, size_t len)
{
	dtxi_call *c = &r->u.batch.calls[r->u.batch.n];

	cr_assert_lt(r->u.batch.n, DTXI_BATCH_MAX);
	snprintf(c->gid, sizeof(c->gid), "gid-%u", (unsigned)r->u.batch.n);
	c->branch_id = r->u.batch.n + 1;
	c->phase     = phase;
	dtxi_strlcpy(c->method, method, sizeof(c->method));
	c->payload.ptr = payload;
	c->payload.len = len;
	c->attempt     = 1;
	c->deadline_ms = 1700000000000;
	r->u.batch.n++;
}

static void
add_text(dtxi_request *r, const char *method, dtx_phase phase, const char *t)
{
	add_call(r, method, phase, t, strlen(t));
}

static void
assert_item(const answer *a, uint32_t i, int status, const char *message,
    const char *payload)
{
	const dtxi_branch_reply *b = &a->rep.u.batch.replies[i];

	cr_assert_eq(b->status, status, "item %u: status %s (%s)", i,
	    dtx_branch_status_name(b->status), b->message);
	if (message != NULL) {
		cr_assert(strstr(b->message, message) != NULL,
		    "item %u: message '%s' lacks '%s'", i, b->message,
		    message);
	}
	if (payload != NULL) {
		cr_assert_eq(b->payload.len, strlen(payload),
		    "item %u: payload of %zu bytes", i, b->payload.len);
		cr_assert(b->payload.len == 0 ||
		    memcmp(b->payload.ptr, payload, b->payload.len) == 0);
	}
}

// The participant still answers a single call and a batch.
static void
assert_still_serving(nng_socket s)
{
	dtxi_request *r = new_batch();
	answer       *a;

	r->kind = DTXI_REQ_CALL;
	dtxi_strlcpy(r->u.call.gid, "g", sizeof(r->u.call.gid));
	r->u.call.phase = DTX_PHASE_PREPARE;
	dtxi_strlcpy(r->u.call.method, "transfer", sizeof(r->u.call.method));
	r->u.call.payload.ptr = (const uint8_t *)"ok:single";
	r->u.call.payload.len = 9;
	a                     = exchange_req(s, r);
	cr_assert_eq(a->rep.code, 0, "%s", a->rep.message);
	cr_assert_eq(a->rep.kind, DTXI_REP_BRANCH);
	cr_assert_eq(a->rep.u.branch.status, DTX_BRANCH_OK);
	answer_free(a);

	memset(r, 0, sizeof(*r));
	r->version = DTX_PROTOCOL_VERSION;
	r->kind    = DTXI_REQ_CALL_BATCH;
	add_text(r, "transfer", DTX_PHASE_COMMIT, "ok:one");
	add_text(r, "transfer", DTX_PHASE_COMMIT, "ok:two");
	a = exchange_req(s, r);
	cr_assert_eq(a->rep.code, 0, "%s", a->rep.message);
	cr_assert_eq(a->rep.kind, DTXI_REP_BRANCH_BATCH);
	cr_assert_eq(a->rep.u.batch.n, 2);
	assert_item(a, 0, DTX_BRANCH_OK, "done", "one");
	assert_item(a, 1, DTX_BRANCH_OK, "done", "two");
	answer_free(a);
	free(r);
}

// A hand-written protobuf writer, for frames our encoder refuses to make.
typedef struct pbw {
	uint8_t buf[16384];
	size_t  len;
} pbw;

static void
pb_varint(pbw *pw, uint64_t v)
{
	do {
		uint8_t b = v & 0x7f;
		v >>= 7;
		pw->buf[pw->len++] = (uint8_t)(b | (v != 0 ? 0x80 : 0));
	} while (v != 0);
}

static void
pb_bytes(pbw *pw, unsigned field, const void *p, size_t n)
{
	pb_varint(pw, (uint64_t)field << 3 | 2);
	pb_varint(pw, n);
	memcpy(pw->buf + pw->len, p, n);
	pw->len += n;
}

// Request{version, call_batch{calls x ncalls}} with a valid BranchCall.
static void
pb_batch(pbw *pw, unsigned ncalls)
{
	pbw call = {.len = 0};
	pbw body = {.len = 0};

	pb_bytes(&call, 1, "g", 1); // gid
	pb_varint(&call, 3 << 3);   // phase
	pb_varint(&call, DTX_PHASE_PREPARE);
	pb_bytes(&call, 4, "transfer", 8); // method
	pb_bytes(&call, 5, "ok:x", 4);     // payload
	for (unsigned i = 0; i < ncalls; i++) {
		pb_bytes(&body, 1, call.buf, call.len);
	}
	pw->len = 0;
	pb_varint(pw, 1 << 3); // version
	pb_varint(pw, DTX_PROTOCOL_VERSION);
	pb_bytes(pw, 17, body.buf, body.len);
}

static char url[DTXT_URL_MAX];

static void
part_setup(void)
{
	atomic_store(&runs, 0);
	meet_n = 0;
	cr_assert_eq(dtxt_free_url(url, sizeof(url)), 0);
}

TestSuite(participant_batch, .init = part_setup, .timeout = 60);

Test(participant_batch, answers_every_call_in_call_order_with_its_status)
{
	dtx_participant *p = start_participant(url);
	nng_socket       s = raw_open(url);
	dtxi_request    *r = new_batch();
	static uint8_t   over[MAX_PAYLOAD + 1];
	answer          *a;

	add_text(r, "transfer", DTX_PHASE_PREPARE, "ok:a");
	add_text(r, "transfer", DTX_PHASE_PREPARE, "refuse:b");
	add_text(r, "nosuch", DTX_PHASE_PREPARE, "ok:c");
	add_text(r, "transfer", DTX_PHASE_COMMIT, "retry");
	add_call(r, "transfer", DTX_PHASE_PREPARE, over, sizeof(over));
	add_text(r, "reserve", DTX_PHASE_COMPENSATE, "ok:d");
	add_text(r, "transfer", DTX_PHASE_ABORT, "bogus");
	add_text(r, "reserve", DTX_PHASE_EXECUTE, "ok:e");
	add_call(r, "transfer", DTX_PHASE_EXECUTE, NULL, 0);
	a = exchange_req(s, r);

	cr_assert_eq(
	    a->rep.code, 0, "code %d: %s", a->rep.code, a->rep.message);
	cr_assert_eq(a->rep.kind, DTXI_REP_BRANCH_BATCH);
	cr_assert_eq(a->rep.u.batch.n, 9);
	assert_item(a, 0, DTX_BRANCH_OK, "done", "a");
	assert_item(a, 1, DTX_BRANCH_REFUSED, "no stock", "b");
	assert_item(a, 2, DTX_BRANCH_NO_SUCH_METHOD, "no method nosuch", "");
	assert_item(a, 3, DTX_BRANCH_RETRY, "busy", "");
	assert_item(a, 4, DTX_BRANCH_BAD_REQUEST,
	    "payload of batched call 4 is 1025 bytes, limit 1024", "");
	assert_item(a, 5, DTX_BRANCH_NO_SUCH_METHOD,
	    "method reserve has no compensate callback", "");
	assert_item(a, 6, DTX_BRANCH_RETRY, "returned 42", "");
	assert_item(a, 7, DTX_BRANCH_OK, "done", "e");
	assert_item(a, 8, DTX_BRANCH_OK, "", "");
	// Only the calls that reach a callback ran, each once.
	cr_assert_eq(atomic_load(&runs), 6);
	answer_free(a);
	free(r);

	assert_still_serving(s);
	nng_close(s);
	dtx_participant_close(p);
}

Test(participant_batch, calls_of_one_batch_run_at_the_same_time)
{
	dtx_participant *p = start_participant(url);
	nng_socket       s = raw_open(url);
	dtxi_request    *r = new_batch();
	answer          *a;

	// Each "meet" call waits until all of them run: served one after
	// the other they would each give up and answer RETRY "alone".
	for (int i = 0; i < MEET; i++) {
		add_text(r, "transfer", DTX_PHASE_PREPARE, "meet");
	}
	a = exchange_req(s, r);
	cr_assert_eq(a->rep.code, 0, "%s", a->rep.message);
	cr_assert_eq(a->rep.u.batch.n, MEET);
	for (uint32_t i = 0; i < MEET; i++) {
		assert_item(a, i, DTX_BRANCH_OK, "met", "");
	}
	answer_free(a);
	free(r);
	nng_close(s);
	dtx_participant_close(p);
}

// A call that waits for a worker longer than dtxd waits for its reply is
// answered RETRY without running: MEET sleepers hold every worker for
// 400 ms, so the last call, with a 100 ms call timeout, waits at least that.
Test(participant_batch, calls_that_waited_past_their_timeout_are_not_run)
{
	dtx_participant *p = start_participant(url);
	nng_socket       s = raw_open(url);
	dtxi_request    *r = new_batch();
	answer          *a;

	for (int i = 0; i < MEET; i++) {
		add_text(r, "transfer", DTX_PHASE_PREPARE, "sleep:400");
		r->u.batch.calls[i].timeout_ms = 10000;
	}
	add_text(r, "transfer", DTX_PHASE_PREPARE, "ok:late");
	r->u.batch.calls[MEET].timeout_ms = 100;
	a                                 = exchange_req(s, r);
	cr_assert_eq(a->rep.code, 0, "%s", a->rep.message);
	cr_assert_eq(a->rep.u.batch.n, MEET + 1);
	for (uint32_t i = 0; i < MEET; i++) {
		assert_item(a, i, DTX_BRANCH_OK, NULL, "");
	}
	assert_item(a, MEET, DTX_BRANCH_RETRY, "not run", "");
	cr_assert_eq(
	    atomic_load(&runs), MEET, "%d callbacks ran", atomic_load(&runs));
	answer_free(a);

	// Without the queue, the same call runs.
	memset(r, 0, sizeof(*r));
	r->version = DTX_PROTOCOL_VERSION;
	r->kind    = DTXI_REQ_CALL_BATCH;
	add_text(r, "transfer", DTX_PHASE_PREPARE, "ok:late");
	r->u.batch.calls[0].timeout_ms = 100;
	a                              = exchange_req(s, r);
	assert_item(a, 0, DTX_BRANCH_OK, "done", "late");
	answer_free(a);
	free(r);
	nng_close(s);
	dtx_participant_close(p);
}

Test(participant_batch, replies_that_do_not_fit_the_frame_are_answered_retry)
{
	dtx_participant *p = start_participant(url);
	nng_socket       s = raw_open(url);
	dtxi_request    *r = new_batch();
	answer          *a;
	uint32_t         ok = 0;

	// 64 replies of MAX_PAYLOAD bytes are twice what a batch reply may
	// carry (MAX_PAYLOAD + 32 KiB).
	for (int i = 0; i < DTXI_BATCH_MAX; i++) {
		add_text(r, "transfer", DTX_PHASE_PREPARE, "big");
	}
	a = exchange_req(s, r);
	cr_assert_eq(a->rep.code, 0, "%s", a->rep.message);
	cr_assert_eq(a->rep.u.batch.n, DTXI_BATCH_MAX);
	cr_assert_leq(nng_msg_len(a->msg), MAX_PAYLOAD + 32u * 1024u,
	    "batch reply of %zu bytes", nng_msg_len(a->msg));
	while (ok < DTXI_BATCH_MAX &&
	    a->rep.u.batch.replies[ok].status == DTX_BRANCH_OK) {
		cr_assert_eq(
		    a->rep.u.batch.replies[ok].payload.len, MAX_PAYLOAD);
		ok++;
	}
	// The replies that fit come first, in order; the rest say why not.
	cr_assert_gt(ok, 16, "only %u replies fit", ok);
	cr_assert_lt(ok, DTXI_BATCH_MAX);
	for (uint32_t i = ok; i < DTXI_BATCH_MAX; i++) {
		assert_item(a, i, DTX_BRANCH_RETRY,
		    "did not fit in the batch reply", "");
	}
	cr_assert_eq(atomic_load(&runs), DTXI_BATCH_MAX);
	answer_free(a);
	free(r);
	assert_still_serving(s);
	nng_close(s);
	dtx_participant_close(p);
}

Test(participant_batch, empty_oversized_and_malformed_batches_get_errors)
{
	dtx_participant *p  = start_participant(url);
	nng_socket       s  = raw_open(url);
	pbw             *pw = calloc(1, sizeof(*pw));
	answer          *a;

	pb_batch(pw, 0);
	a = exchange(s, pw->buf, pw->len);
	cr_assert_eq(a->rep.code, DTX_EPROTO, "code %d", a->rep.code);
	cr_assert_eq(a->rep.kind, DTXI_REP_NONE);
	cr_assert_str_eq(a->rep.message, "branch call batch is empty");
	answer_free(a);
	assert_still_serving(s);

	pb_batch(pw, DTXI_BATCH_MAX + 1);
	a = exchange(s, pw->buf, pw->len);
	cr_assert_eq(a->rep.code, DTX_EPROTO, "code %d", a->rep.code);
	cr_assert_eq(a->rep.kind, DTXI_REP_NONE);
	cr_assert_neq(a->rep.message[0], '\0');
	answer_free(a);
	assert_still_serving(s);

	// A well-formed batch cut short.
	pb_batch(pw, 3);
	a = exchange(s, pw->buf, pw->len - 5);
	cr_assert_eq(a->rep.code, DTX_EPROTO, "code %d", a->rep.code);
	cr_assert_eq(a->rep.kind, DTXI_REP_NONE);
	cr_assert_neq(a->rep.message[0], '\0');
	answer_free(a);

	// The same three calls whole do run.
	atomic_store(&runs, 0);
	pb_batch(pw, 3);
	a = exchange(s, pw->buf, pw->len);
	cr_assert_eq(a->rep.code, 0, "%s", a->rep.message);
	cr_assert_eq(a->rep.u.batch.n, 3);
	for (uint32_t i = 0; i < 3; i++) {
		assert_item(a, i, DTX_BRANCH_OK, "done", "x");
	}
	cr_assert_eq(atomic_load(&runs), 3);
	answer_free(a);
	free(pw);
	nng_close(s);
	dtx_participant_close(p);
}

// ---------------------------------------------------------------------------
// Through dtxd
// ---------------------------------------------------------------------------

TestSuite(
    dtxd_batch, .init = world_setup, .fini = world_teardown, .timeout = 60);

// Generous call timeouts: a call that timed out on a loaded machine would be
// sent again and spoil the counts.
static const dtxt_dtxd_opts slow_calls = {.call_timeout_ms = 10000};

Test(dtxd_batch, branches_on_one_participant_travel_in_one_frame_per_phase)
{
	dtx_coordinator_stats st;
	dtx_state             state = 0;
	dtx_tx               *tx    = NULL;
	dtxt_log              log;
	dtxt_part            *a;

	CHECK(dtxt_world_start_dtxd(&w, &slow_calls) == 0, "dtxd");
	a = dtxt_world_part(&w, "a");
	CHECK(a != NULL && dtxt_part_start(a) == 0, "participant a");

	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	for (int i = 0; i < 4; i++) {
		CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	}
	CHECK_RV(dtx_tx_commit(tx, &state));
	CHECK(state == DTX_STATE_COMMITTED, "state %s", dtx_state_name(state));

	dtxt_log_load(&log, a->calllog);
	for (int b = 0; b < 4; b++) {
		CHECK(dtxt_log_count(&log, DTXT_CALL, dtx_tx_gid(tx), b,
		          "PREPARE", "OK") == 1,
		    "branch %d prepared once", b);
		CHECK(dtxt_log_count(&log, DTXT_CALL, dtx_tx_gid(tx), b,
		          "COMMIT", "OK") == 1,
		    "branch %d committed once", b);
	}
	dtxt_log_fini(&log);
	dtx_tx_free(tx);

	// Four PREPAREs in one frame, four COMMITs in another.
	CHECK_RV(dtx_client_stats(w.client, &st));
	CHECK(st.branch_calls == 8, "%llu branch calls",
	    (unsigned long long)st.branch_calls);
	CHECK(st.call_messages == 2, "%llu call messages",
	    (unsigned long long)st.call_messages);
}

// A participant from before batches: a raw REP socket that answers a batch
// EUNSUPPORTED, as such a participant does, and every single call OK.
typedef struct oldpart {
	nng_socket sock;
	pthread_t  thread;
	atomic_int batches;
	atomic_int singles[DTX_PHASE_COMPENSATE + 1];
} oldpart;

static void
oldpart_answer(nng_socket s, const dtxi_reply *rep)
{
	size_t   len;
	nng_msg *m;

	cr_assert_eq(dtxi_reply_encode(rep, NULL, 0, &len), 0);
	cr_assert_eq(nng_msg_alloc(&m, len), 0);
	cr_assert_eq(dtxi_reply_encode(rep, nng_msg_body(m), len, &len), 0);
	if (nng_sendmsg(s, m, 0) != 0) {
		nng_msg_free(m);
	}
}

static void *
oldpart_main(void *arg)
{
	oldpart      *o   = arg;
	dtxi_request *req = malloc(sizeof(*req));
	dtxi_reply   *rep = malloc(sizeof(*rep));
	nng_msg      *m;

	cr_assert(req != NULL && rep != NULL);
	while (nng_recvmsg(o->sock, &m, 0) == 0) {
		int rv = dtxi_request_decode(req, nng_msg_body(m),
		    nng_msg_len(m), SIZE_MAX, SIZE_MAX, NULL);

		memset(rep, 0, sizeof(*rep));
		rep->version = DTX_PROTOCOL_VERSION;
		if (rv == 0 && req->kind == DTXI_REQ_CALL) {
			atomic_fetch_add(&o->singles[req->u.call.phase], 1);
			rep->kind            = DTXI_REP_BRANCH;
			rep->u.branch.status = DTX_BRANCH_OK;
		} else {
			if (rv == 0 && req->kind == DTXI_REQ_CALL_BATCH) {
				atomic_fetch_add(&o->batches, 1);
			}
			rep->code = DTX_EUNSUPPORTED;
			dtxi_strlcpy(rep->message, "not a participant request",
			    sizeof(rep->message));
		}
		nng_msg_free(m);
		oldpart_answer(o->sock, rep);
	}
	free(req);
	free(rep);
	return NULL;
}

Test(dtxd_batch, participant_without_batches_gets_its_calls_one_by_one)
{
	static oldpart o;
	dtx_state      state = 0;
	dtx_tx        *tx    = NULL;
	char           purl[DTXT_URL_MAX];

	CHECK(dtxt_free_url(purl, sizeof(purl)) == 0, "address");
	cr_assert_eq(nng_rep0_open(&o.sock), 0);
	cr_assert_eq(nng_listen(o.sock, purl, NULL, 0), 0);
	cr_assert_eq(pthread_create(&o.thread, NULL, oldpart_main, &o), 0);
	CHECK(dtxt_world_start_dtxd(&w, &slow_calls) == 0, "dtxd");

	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	for (int i = 0; i < 3; i++) {
		CHECK_RV(dtx_tx_add(tx, purl, "op", "", 0));
	}
	CHECK_RV(dtx_tx_commit(tx, &state));
	CHECK(state == DTX_STATE_COMMITTED, "state %s", dtx_state_name(state));
	dtx_tx_free(tx);

	// One batch of PREPAREs was refused; they came again one by one,
	// and the COMMITs never came batched.
	CHECK(atomic_load(&o.batches) == 1, "%d batches",
	    atomic_load(&o.batches));
	CHECK(atomic_load(&o.singles[DTX_PHASE_PREPARE]) == 3, "%d prepares",
	    atomic_load(&o.singles[DTX_PHASE_PREPARE]));
	CHECK(atomic_load(&o.singles[DTX_PHASE_COMMIT]) == 3, "%d commits",
	    atomic_load(&o.singles[DTX_PHASE_COMMIT]));

	// The peer is known now: the next transaction's calls go single
	// from the start.
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	for (int i = 0; i < 3; i++) {
		CHECK_RV(dtx_tx_add(tx, purl, "op", "", 0));
	}
	CHECK_RV(dtx_tx_commit(tx, &state));
	CHECK(state == DTX_STATE_COMMITTED, "state %s", dtx_state_name(state));
	dtx_tx_free(tx);
	CHECK(atomic_load(&o.batches) == 1, "%d batches",
	    atomic_load(&o.batches));
	CHECK(atomic_load(&o.singles[DTX_PHASE_PREPARE]) == 6, "%d prepares",
	    atomic_load(&o.singles[DTX_PHASE_PREPARE]));
	CHECK(atomic_load(&o.singles[DTX_PHASE_COMMIT]) == 6, "%d commits",
	    atomic_load(&o.singles[DTX_PHASE_COMMIT]));

	nng_close(o.sock);
	pthread_join(o.thread, NULL);
}
