// SPDX-License-Identifier: MIT
//
// sdk: libdtx over real nng sockets, with no coordinator. A raw REQ socket
// that speaks the wire protocol through the codec plays dtxd against the
// participant; for the client side, a raw REP socket on a thread plays the
// coordinator, and an address where nothing listens proves the timeouts.

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "codec.h"
#include "harness.h"
#include "strs.h"

// A loopback TCP address that was free a moment ago.
static void
free_tcp_url(char *url, size_t cap)
{
	cr_assert(dtxt_free_url(url, cap) == 0);
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

// ---------------------------------------------------------------------------
// Participant side: the test participant and its recorded calls.
// ---------------------------------------------------------------------------

typedef struct seen {
	pthread_mutex_t mtx;
	int             calls;
	char            gid[DTX_GID_MAX + 1];
	uint32_t        branch_id;
	dtx_phase       phase;
	char            method[DTX_METHOD_MAX + 1];
	uint8_t         payload[64];
	size_t          payload_len;
	uint32_t        attempt;
	int64_t         deadline_ms;
	int             set_big_rv; // dtx_reply_set_payload over the limit
	atomic_int      slow_started;
} seen;

static seen S = {.mtx = PTHREAD_MUTEX_INITIALIZER};

// Behaviour is chosen by the payload: "ok", "refused", "retry", "bogus",
// "slow" (blocks one second), anything else: OK with an echo.
static dtx_result
cb_any(const dtx_call *call, dtx_reply *reply, void *arg)
{
	char        cmd[16] = {0};
	static char big[2048];

	cr_assert_eq(arg, &S);
	if (call->payload_len > 0 && call->payload_len < sizeof(cmd)) {
		memcpy(cmd, call->payload, call->payload_len);
	}
	pthread_mutex_lock(&S.mtx);
	S.calls++;
	dtxi_strlcpy(S.gid, call->gid, sizeof(S.gid));
	S.branch_id = call->branch_id;
	S.phase     = call->phase;
	dtxi_strlcpy(S.method, call->method, sizeof(S.method));
	S.payload_len = call->payload_len;
	if (call->payload_len <= sizeof(S.payload) && call->payload_len > 0) {
		memcpy(S.payload, call->payload, call->payload_len);
	}
	S.attempt     = call->attempt;
	S.deadline_ms = call->deadline_ms;
	S.set_big_rv  = dtx_reply_set_payload(reply, big, sizeof(big));
	cr_assert_eq(dtx_reply_set_payload(reply, NULL, 0), 0);
	cr_assert_eq(dtx_reply_set_payload(reply, NULL, 1), DTX_EINVAL);
	pthread_mutex_unlock(&S.mtx);

	if (strcmp(cmd, "slow") == 0) {
		atomic_store(&S.slow_started, 1);
		sleep_ms(1000);
	}
	if (strcmp(cmd, "refused") == 0) {
		dtx_reply_set_message(reply, "no stock");
		cr_assert_eq(dtx_reply_set_payload(reply, "R", 1), 0);
		return DTX_REFUSED;
	}
	if (strcmp(cmd, "retry") == 0) {
		dtx_reply_set_message(reply, "busy");
		return DTX_RETRY;
	}
	if (strcmp(cmd, "bogus") == 0) {
		return (dtx_result)42;
	}
	if (strcmp(cmd, "badreq") == 0) {
		dtx_reply_set_message(reply, "malformed");
		return DTX_BAD_REQUEST;
	}
	if (strcmp(cmd, "alloc") == 0) {
		void *buf = NULL;
		cr_assert_eq(dtx_reply_alloc_payload(reply, sizeof(big), &buf),
		    S.set_big_rv);
		cr_assert_eq(
		    dtx_reply_alloc_payload(reply, 3, NULL), DTX_EINVAL);
		cr_assert_eq(dtx_reply_alloc_payload(reply, 3, &buf), 0);
		memcpy(buf, "abc", 3);
		dtx_reply_set_message(reply, "in place");
		return DTX_OK;
	}
	dtx_reply_set_message(reply, "first");
	dtx_reply_set_message(reply, "done");
	cr_assert_eq(dtx_reply_set_payload(reply, "xx", 2), 0);
	cr_assert_eq(dtx_reply_set_payload(reply, "pong", 4), 0);
	return DTX_OK;
}

static dtx_participant *
start_participant(const char *url, size_t max_payload)
{
	dtx_participant *p;
	dtx_method_ops   full = {cb_any, cb_any, cb_any, cb_any, cb_any};
	dtx_method_ops   saga = {.execute = cb_any};

	cr_assert_eq(dtx_participant_open(&p), 0);
	if (max_payload > 0) {
		cr_assert_eq(
		    dtx_participant_set_max_payload(p, max_payload), 0);
	}
	cr_assert_eq(dtx_participant_register(p, "transfer", &full, &S), 0);
	cr_assert_eq(dtx_participant_register(p, "reserve", &saga, &S), 0);
	cr_assert_eq(dtx_participant_listen(p, url), 0);
	return p;
}

// A raw REQ client standing in for dtxd.
static nng_socket
raw_open(const char *url)
{
	nng_socket s;

	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000), 0);
	cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
	return s;
}

// Sends bytes, receives the reply and decodes it into *rep (heap).
static dtxi_reply *
raw_send(nng_socket s, const void *buf, size_t len)
{
	nng_msg    *m;
	dtxi_reply *rep = malloc(sizeof(*rep));
	char        why[DTX_MESSAGE_MAX + 1];
	int         rv;

	cr_assert_not_null(rep);
	cr_assert_eq(nng_msg_alloc(&m, len), 0);
	memcpy(nng_msg_body(m), buf, len);
	cr_assert_eq(nng_sendmsg(s, m, 0), 0);
	cr_assert_eq(nng_recvmsg(s, &m, 0), 0);
	rv = dtxi_reply_decode(
	    rep, nng_msg_body(m), nng_msg_len(m), SIZE_MAX, SIZE_MAX, why);
	cr_assert_eq(rv, 0, "reply decode: %s", why);
	// Payload slices point into the message: copy what the tests read.
	if (rep->kind == DTXI_REP_BRANCH && rep->u.branch.payload.len > 0) {
		uint8_t *copy = malloc(rep->u.branch.payload.len);
		memcpy(copy, rep->u.branch.payload.ptr,
		    rep->u.branch.payload.len);
		rep->u.branch.payload.ptr = copy;
	} else if (rep->kind == DTXI_REP_BRANCH) {
		rep->u.branch.payload.ptr = NULL;
	}
	nng_msg_free(m);
	return rep;
}

static void
rep_free(dtxi_reply *rep)
{
	if (rep->kind == DTXI_REP_BRANCH) {
		free((void *)rep->u.branch.payload.ptr);
	}
	free(rep);
}

static dtxi_reply *
raw_request(nng_socket s, const dtxi_request *req)
{
	size_t      len;
	uint8_t    *buf;
	dtxi_reply *rep;

	cr_assert_eq(dtxi_request_encode(req, NULL, 0, &len), 0);
	buf = malloc(len + 1);
	cr_assert_eq(dtxi_request_encode(req, buf, len, &len), 0);
	rep = raw_send(s, buf, len);
	free(buf);
	return rep;
}

static dtxi_request *
make_call(const char *method, dtx_phase phase, const void *payload, size_t len)
{
	dtxi_request *r = calloc(1, sizeof(*r));

	r->version = DTX_PROTOCOL_VERSION;
	r->kind    = DTXI_REQ_CALL;
	dtxi_strlcpy(r->u.call.gid, "gid-42", sizeof(r->u.call.gid));
	r->u.call.branch_id = 7;
	r->u.call.phase     = phase;
	dtxi_strlcpy(r->u.call.method, method, sizeof(r->u.call.method));
	r->u.call.payload.ptr = payload;
	r->u.call.payload.len = len;
	r->u.call.attempt     = 3;
	r->u.call.deadline_ms = 1700000000123;
	return r;
}

// One call; returns the reply.
static dtxi_reply *
call(nng_socket s, const char *method, dtx_phase phase, const char *payload)
{
	dtxi_request *r =
	    make_call(method, phase, payload, payload ? strlen(payload) : 0);
	dtxi_reply *rep = raw_request(s, r);
	free(r);
	return rep;
}

static void
assert_branch(
    dtxi_reply *rep, int status, const char *message, const char *payload)
{
	cr_assert_eq(rep->code, 0, "code %d: %s", rep->code, rep->message);
	cr_assert_eq(rep->kind, DTXI_REP_BRANCH);
	cr_assert_eq(rep->u.branch.status, status, "status %d: %s",
	    rep->u.branch.status, rep->u.branch.message);
	if (message != NULL) {
		cr_assert_str_eq(rep->u.branch.message, message);
	}
	if (payload != NULL) {
		cr_assert_eq(rep->u.branch.payload.len, strlen(payload));
		cr_assert(strlen(payload) == 0 ||
		    memcmp(rep->u.branch.payload.ptr, payload,
		        strlen(payload)) == 0);
	}
	rep_free(rep);
}

static void
assert_still_serving(nng_socket s)
{
	assert_branch(call(s, "transfer", DTX_PHASE_PREPARE, "ok"),
	    DTX_BRANCH_OK, "done", "pong");
}

Test(participant, callback_receives_the_call_exactly_as_sent)
{
	char             url[64];
	dtx_participant *p;
	nng_socket       s;
	uint8_t          payload[5] = {'a', 0, 'b', 0xff, 'c'};
	dtxi_request    *r;

	free_tcp_url(url, sizeof(url));
	p = start_participant(url, 1024);
	s = raw_open(url);
	r = make_call("transfer", DTX_PHASE_COMMIT, payload, sizeof(payload));
	assert_branch(raw_request(s, r), DTX_BRANCH_OK, "done", "pong");
	free(r);

	cr_assert_eq(S.calls, 1);
	cr_assert_str_eq(S.gid, "gid-42");
	cr_assert_eq(S.branch_id, 7);
	cr_assert_eq(S.phase, DTX_PHASE_COMMIT);
	cr_assert_str_eq(S.method, "transfer");
	cr_assert_eq(S.payload_len, sizeof(payload));
	cr_assert_eq(memcmp(S.payload, payload, sizeof(payload)), 0);
	cr_assert_eq(S.attempt, 3);
	cr_assert_eq(S.deadline_ms, 1700000000123);
	// A reply payload over the participant's limit is refused.
	cr_assert_eq(S.set_big_rv, DTX_ETOOBIG);

	nng_close(s);
	dtx_participant_close(p);
}

Test(participant, serves_over_inproc_with_empty_payload)
{
	dtx_participant *p = start_participant("inproc://sdk-test-part", 0);
	nng_socket       s = raw_open("inproc://sdk-test-part");

	assert_branch(call(s, "reserve", DTX_PHASE_EXECUTE, NULL),
	    DTX_BRANCH_OK, "done", "pong");
	cr_assert_eq(S.payload_len, 0);
	cr_assert_eq(S.phase, DTX_PHASE_EXECUTE);
	nng_close(s);
	dtx_participant_close(p);
}

Test(participant, each_callback_result_maps_to_its_status)
{
	char             url[64];
	dtx_participant *p;
	nng_socket       s;

	free_tcp_url(url, sizeof(url));
	p = start_participant(url, 0);
	s = raw_open(url);
	assert_branch(call(s, "transfer", DTX_PHASE_PREPARE, "ok"),
	    DTX_BRANCH_OK, "done", "pong");
	assert_branch(call(s, "transfer", DTX_PHASE_PREPARE, "refused"),
	    DTX_BRANCH_REFUSED, "no stock", "R");
	assert_branch(call(s, "transfer", DTX_PHASE_ABORT, "retry"),
	    DTX_BRANCH_RETRY, "busy", "");
	assert_branch(call(s, "transfer", DTX_PHASE_PREPARE, "badreq"),
	    DTX_BRANCH_BAD_REQUEST, "malformed", "");
	assert_branch(call(s, "transfer", DTX_PHASE_PREPARE, "alloc"),
	    DTX_BRANCH_OK, "in place", "abc");
	{
		dtxi_reply *rep =
		    call(s, "transfer", DTX_PHASE_ABORT, "bogus");
		cr_assert_eq(rep->u.branch.status, DTX_BRANCH_RETRY);
		cr_assert(strstr(rep->u.branch.message, "42") != NULL,
		    "message: %s", rep->u.branch.message);
		rep_free(rep);
	}
	nng_close(s);
	dtx_participant_close(p);
}

Test(participant, unknown_method_and_missing_callback_are_no_such_method)
{
	char             url[64];
	dtx_participant *p;
	nng_socket       s;
	dtxi_reply      *rep;

	free_tcp_url(url, sizeof(url));
	p   = start_participant(url, 0);
	s   = raw_open(url);
	rep = call(s, "nosuch", DTX_PHASE_PREPARE, "ok");
	cr_assert_eq(rep->kind, DTXI_REP_BRANCH);
	cr_assert_eq(rep->u.branch.status, DTX_BRANCH_NO_SUCH_METHOD);
	cr_assert(strstr(rep->u.branch.message, "nosuch") != NULL);
	rep_free(rep);

	rep = call(s, "reserve", DTX_PHASE_COMPENSATE, "ok");
	cr_assert_eq(rep->u.branch.status, DTX_BRANCH_NO_SUCH_METHOD);
	cr_assert_str_eq(rep->u.branch.message,
	    "method reserve has no compensate callback");
	rep_free(rep);
	cr_assert_eq(S.calls, 0);
	assert_still_serving(s);
	nng_close(s);
	dtx_participant_close(p);
}

Test(participant, bad_frames_get_error_replies_and_serving_goes_on)
{
	char             url[64];
	dtx_participant *p;
	nng_socket       s;
	dtxi_reply      *rep;
	dtxi_request    *r;
	static uint8_t   big[4096];
	const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02};

	free_tcp_url(url, sizeof(url));
	p = start_participant(url, 1024);
	s = raw_open(url);

	rep = raw_send(s, garbage, sizeof(garbage));
	cr_assert_eq(rep->code, DTX_EPROTO, "code %d", rep->code);
	cr_assert_eq(rep->kind, DTXI_REP_NONE);
	cr_assert_neq(rep->message[0], '\0');
	rep_free(rep);
	assert_still_serving(s);

	r          = make_call("transfer", DTX_PHASE_PREPARE, "ok", 2);
	r->version = DTX_PROTOCOL_VERSION + 1;
	rep        = raw_request(s, r);
	cr_assert_eq(rep->code, DTX_EVERSION, "code %d", rep->code);
	rep_free(rep);
	free(r);
	assert_still_serving(s);

	r   = make_call("transfer", DTX_PHASE_PREPARE, big, sizeof(big));
	rep = raw_request(s, r);
	cr_assert_eq(rep->code, DTX_ETOOBIG, "code %d", rep->code);
	cr_assert_eq(rep->kind, DTXI_REP_NONE);
	rep_free(rep);
	free(r);
	assert_still_serving(s);

	cr_assert_eq(S.calls, 3); // only the good calls reached the callback
	nng_close(s);
	dtx_participant_close(p);
}

Test(participant, request_that_is_not_a_call_is_unsupported)
{
	char             url[64];
	dtx_participant *p;
	nng_socket       s;
	dtxi_reply      *rep;
	dtxi_request    *r = calloc(1, sizeof(*r));

	free_tcp_url(url, sizeof(url));
	p          = start_participant(url, 0);
	s          = raw_open(url);
	r->version = DTX_PROTOCOL_VERSION;
	r->kind    = DTXI_REQ_STATUS;
	dtxi_strlcpy(r->u.status.gid, "g", sizeof(r->u.status.gid));
	rep = raw_request(s, r);
	cr_assert_eq(rep->code, DTX_EUNSUPPORTED);
	cr_assert_str_eq(rep->message, "not a participant request");
	rep_free(rep);
	free(r);
	assert_still_serving(s);
	nng_close(s);
	dtx_participant_close(p);
}

typedef struct caller {
	const char *url;
	const char *payload;
	int64_t     done_ms;
	int         status;
} caller;

static void *
caller_main(void *arg)
{
	caller     *c = arg;
	nng_socket  s = raw_open(c->url);
	dtxi_reply *rep;

	rep        = call(s, "transfer", DTX_PHASE_PREPARE, c->payload);
	c->done_ms = dtxi_mono_ms();
	c->status  = rep->u.branch.status;
	rep_free(rep);
	nng_close(s);
	return NULL;
}

Test(participant, slow_callback_does_not_stall_other_calls)
{
	char             url[64];
	dtx_participant *p;
	pthread_t        slow_t;
	pthread_t        fast_t[20];
	caller           slow = {0};
	caller           fast[20];

	free_tcp_url(url, sizeof(url));
	p = start_participant(url, 0);

	slow.url     = url;
	slow.payload = "slow";
	cr_assert_eq(pthread_create(&slow_t, NULL, caller_main, &slow), 0);
	while (!atomic_load(&S.slow_started)) {
		sleep_ms(5);
	}
	for (int i = 0; i < 20; i++) {
		fast[i] = (caller) {.url = url, .payload = "ok"};
		cr_assert_eq(
		    pthread_create(&fast_t[i], NULL, caller_main, &fast[i]),
		    0);
	}
	for (int i = 0; i < 20; i++) {
		pthread_join(fast_t[i], NULL);
	}
	pthread_join(slow_t, NULL);
	for (int i = 0; i < 20; i++) {
		cr_assert_eq(fast[i].status, DTX_BRANCH_OK);
		cr_assert_lt(fast[i].done_ms, slow.done_ms,
		    "fast call %d ended after the slow one", i);
	}
	cr_assert_eq(slow.status, DTX_BRANCH_OK);
	dtx_participant_close(p);
}

Test(participant, register_and_setters_check_their_arguments_and_state)
{
	dtx_participant *p;
	dtx_method_ops   ops  = {.prepare = cb_any};
	dtx_method_ops   none = {0};
	char             long_name[DTX_METHOD_MAX + 2];

	memset(long_name, 'm', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';

	cr_assert_eq(dtx_participant_open(NULL), DTX_EINVAL);
	cr_assert_eq(dtx_participant_open(&p), 0);
	cr_assert_eq(dtx_participant_register(p, "a", &ops, NULL), 0);
	cr_assert_eq(dtx_participant_register(p, "a", &ops, NULL), DTX_EEXIST);
	cr_assert_eq(dtx_participant_register(p, "", &ops, NULL), DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_register(p, "a\nb", &ops, NULL), DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_register(p, long_name, &ops, NULL), DTX_EINVAL);
	long_name[DTX_METHOD_MAX] = '\0';
	cr_assert_eq(dtx_participant_register(p, long_name, &ops, NULL), 0);
	cr_assert_eq(
	    dtx_participant_register(p, NULL, &ops, NULL), DTX_EINVAL);
	cr_assert_eq(dtx_participant_register(p, "b", NULL, NULL), DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_register(p, "b", &none, NULL), DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_register(NULL, "b", &ops, NULL), DTX_EINVAL);

	cr_assert_eq(dtx_participant_set_workers(p, 0), DTX_EINVAL);
	cr_assert_eq(dtx_participant_set_workers(p, 257), DTX_EINVAL);
	cr_assert_eq(dtx_participant_set_workers(p, 2), 0);
	cr_assert_eq(dtx_participant_set_contexts(p, 0), DTX_EINVAL);
	cr_assert_eq(dtx_participant_set_contexts(p, 4097), DTX_EINVAL);
	cr_assert_eq(dtx_participant_set_contexts(p, 8), 0);
	cr_assert_eq(dtx_participant_set_max_payload(p, 0), DTX_EINVAL);
	cr_assert_eq(dtx_participant_set_max_payload(p, 4096), 0);

	cr_assert_eq(dtx_participant_listen(p, ""), DTX_EINVAL);
	cr_assert_eq(dtx_participant_listen(p, "nosuch://x"), DTX_EINVAL);
	cr_assert_eq(dtx_participant_listen(p, "inproc://sdk-test-reg"), 0);
	cr_assert_eq(
	    dtx_participant_listen(p, "inproc://sdk-test-reg2"), DTX_ESTATE);
	cr_assert_eq(dtx_participant_register(p, "b", &ops, NULL), DTX_ESTATE);
	cr_assert_eq(dtx_participant_set_workers(p, 3), DTX_ESTATE);
	cr_assert_eq(dtx_participant_set_contexts(p, 3), DTX_ESTATE);
	cr_assert_eq(dtx_participant_set_max_payload(p, 3), DTX_ESTATE);
	dtx_participant_close(p);
	dtx_participant_close(NULL);
}

// Records the bytes its arg points at (a copy the participant keeps).
static char  ctx_seen[16];
static void *ctx_arg;

static dtx_result
cb_ctx(const dtx_call *call, dtx_reply *reply, void *arg)
{
	(void)call;
	(void)reply;
	ctx_arg = arg;
	memcpy(ctx_seen, arg, sizeof(ctx_seen));
	return DTX_OK;
}

Test(participant, register_method_checks_its_callbacks_against_its_modes)
{
	static const dtx_method_desc tpc  = {"svc/Tpc", DTX_2PC};
	static const dtx_method_desc saga = {"svc/Saga", DTX_SAGA};
	static const dtx_method_desc both = {"svc/Both", DTX_2PC | DTX_SAGA};
	static const dtx_method_desc bad  = {"svc/Bad", 4};
	dtx_method_ops               ops2 = {cb_ctx, cb_ctx, cb_ctx, 0, 0};
	dtx_method_ops   opss     = {.execute = cb_ctx, .compensate = cb_ctx};
	dtx_method_ops   all      = {cb_ctx, cb_ctx, cb_ctx, cb_ctx, cb_ctx};
	dtx_method_ops   no_abort = {cb_ctx, cb_ctx, 0, 0, 0};
	char             ctx[16]  = "context bytes";
	dtx_participant *p;
	nng_socket       s;

	cr_assert_eq(dtx_participant_open(&p), 0);
	cr_assert_str_eq(dtx_participant_message(p), "");
	cr_assert_eq(
	    dtx_participant_register_method(p, &tpc, &no_abort, NULL, 0),
	    DTX_EINVAL);
	cr_assert_str_eq(dtx_participant_message(p),
	    "method svc/Tpc (2pc) has no abort callback");
	cr_assert_eq(dtx_participant_register_method(p, &saga, &ops2, NULL, 0),
	    DTX_EINVAL);
	cr_assert_str_eq(dtx_participant_message(p),
	    "method svc/Saga (saga) has no execute callback");
	cr_assert_eq(dtx_participant_register_method(p, &tpc, &all, NULL, 0),
	    DTX_EINVAL);
	cr_assert_str_eq(dtx_participant_message(p),
	    "method svc/Tpc is not a saga method but has a execute callback");
	cr_assert_eq(dtx_participant_register_method(p, &both, &opss, NULL, 0),
	    DTX_EINVAL);
	cr_assert(strstr(dtx_participant_message(p), "has no prepare") != NULL,
	    "%s", dtx_participant_message(p));
	cr_assert_eq(dtx_participant_register_method(p, &bad, &all, NULL, 0),
	    DTX_EINVAL);
	cr_assert_eq(dtx_participant_register_method(p, &tpc, &ops2, NULL, 4),
	    DTX_EINVAL);
	cr_assert_eq(dtx_participant_register_method(p, NULL, &ops2, NULL, 0),
	    DTX_EINVAL);
	cr_assert_eq(
	    dtx_participant_register_method(p, &tpc, &ops2, ctx, sizeof(ctx)),
	    0);
	cr_assert_str_eq(dtx_participant_message(p), "");
	cr_assert_eq(
	    dtx_participant_register_method(p, &tpc, &ops2, ctx, sizeof(ctx)),
	    DTX_EEXIST);
	cr_assert_str_eq(dtx_participant_message(p),
	    "method svc/Tpc is already registered");
	cr_assert_eq(
	    dtx_participant_register_method(p, &saga, &opss, NULL, 0), 0);
	cr_assert_eq(
	    dtx_participant_register_method(p, &both, &all, NULL, 0), 0);
	memset(ctx, 0, sizeof(ctx)); // the participant kept its own copy
	cr_assert_eq(dtx_participant_listen(p, "inproc://sdk-test-regm"), 0);
	s = raw_open("inproc://sdk-test-regm");
	{
		dtxi_reply *rep = call(s, "svc/Tpc", DTX_PHASE_PREPARE, "x");
		cr_assert_eq(rep->u.branch.status, DTX_BRANCH_OK);
		rep_free(rep);
	}
	cr_assert_str_eq(ctx_seen, "context bytes");
	cr_assert_neq(ctx_arg, (void *)ctx);
	{
		dtxi_reply *rep = call(s, "svc/Saga", DTX_PHASE_PREPARE, "x");
		cr_assert_eq(rep->u.branch.status, DTX_BRANCH_NO_SUCH_METHOD);
		rep_free(rep);
	}
	nng_close(s);
	cr_assert_eq(dtx_participant_listen(p, "inproc://x"), DTX_ESTATE);
	cr_assert_str_eq(
	    dtx_participant_message(p), "the participant is listening");
	dtx_participant_close(p);
	cr_assert_str_eq(dtx_participant_message(NULL), "");
}

Test(participant, listen_on_a_busy_address_fails_and_can_be_retried)
{
	char             url[64];
	char             url2[64];
	dtx_participant *a = start_participant("inproc://sdk-test-busy", 0);
	dtx_participant *b;
	dtx_method_ops   ops = {.prepare = cb_any};
	nng_socket       s;

	cr_assert_eq(dtx_participant_open(&b), 0);
	cr_assert_eq(dtx_participant_register(b, "transfer", &ops, &S), 0);
	cr_assert_eq(dtx_participant_listen(b, "inproc://sdk-test-busy"),
	    DTX_ETRANSPORT);
	free_tcp_url(url, sizeof(url));
	cr_assert_eq(dtx_participant_listen(b, url), 0);
	s = raw_open(url);
	assert_still_serving(s);
	nng_close(s);
	(void)url2;
	dtx_participant_close(b);
	dtx_participant_close(a);
}

// A slow call whose reply may never come: no assertion on the answer.
static void *
doomed_main(void *arg)
{
	caller       *c = arg;
	nng_socket    s;
	nng_msg      *m;
	size_t        len;
	dtxi_request *r = make_call("transfer", DTX_PHASE_PREPARE, "slow", 4);

	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1500), 0);
	cr_assert_eq(nng_dial(s, c->url, NULL, 0), 0);
	cr_assert_eq(dtxi_request_encode(r, NULL, 0, &len), 0);
	cr_assert_eq(nng_msg_alloc(&m, len), 0);
	cr_assert_eq(dtxi_request_encode(r, nng_msg_body(m), len, &len), 0);
	free(r);
	cr_assert_eq(nng_sendmsg(s, m, 0), 0);
	if (nng_recvmsg(s, &m, 0) == 0) {
		c->status = 1;
		nng_msg_free(m);
	} else {
		c->status = -1;
	}
	nng_close(s);
	return NULL;
}

Test(participant, close_with_a_call_in_flight_waits_for_it_and_is_clean)
{
	char             url[64];
	dtx_participant *p;
	pthread_t        t;
	caller           slow = {0};
	int64_t          t0;

	free_tcp_url(url, sizeof(url));
	p        = start_participant(url, 0);
	slow.url = url;
	cr_assert_eq(pthread_create(&t, NULL, doomed_main, &slow), 0);
	while (!atomic_load(&S.slow_started)) {
		sleep_ms(5);
	}
	// Close waits for the running callback (about a second) and drops
	// its reply: the caller times out.
	t0 = dtxi_mono_ms();
	dtx_participant_close(p);
	cr_assert_geq(dtxi_mono_ms() - t0, 500);
	cr_assert_eq(S.calls, 1);
	pthread_join(t, NULL);
	cr_assert_eq(slow.status, -1);
}

// ---------------------------------------------------------------------------
// Client side.
// ---------------------------------------------------------------------------

Test(client, argument_errors)
{
	dtx_client *c;
	dtx_tx     *tx;
	dtx_tx     *att;
	char        gid[DTX_GID_MAX + 2];
	char        ep[DTX_ENDPOINT_MAX + 2];
	static char big[DTX_PAYLOAD_MAX_DEFAULT + 1];
	dtx_state   st;
	char        url[64];

	cr_assert_eq(dtx_client_open(&c, ""), DTX_EINVAL);
	cr_assert_eq(dtx_client_open(NULL, "tcp://127.0.0.1:1"), DTX_EINVAL);
	cr_assert_eq(dtx_client_open(&c, "nosuch://x"), DTX_EINVAL);
	free_tcp_url(url, sizeof(url));
	cr_assert_eq(dtx_client_open(&c, url), 0);
	cr_assert_eq(dtx_client_set_timeout_ms(c, 0), DTX_EINVAL);
	cr_assert_eq(dtx_client_set_timeout_ms(c, 300), 0);

	cr_assert_eq(dtx_tx_begin(&tx, c, (dtx_mode)3), DTX_EINVAL);
	cr_assert_eq(dtx_tx_begin(&tx, NULL, DTX_2PC), DTX_EINVAL);
	cr_assert_eq(dtx_tx_begin(&tx, c, DTX_SAGA), 0);
	cr_assert_eq(strlen(dtx_tx_gid(tx)), 32);
	cr_assert_str_eq(dtx_tx_message(tx), "");

	// gids: 1..DTX_GID_MAX bytes of 0x21..0x7e.
	cr_assert_eq(dtx_tx_set_gid(tx, ""), DTX_EINVAL);
	cr_assert_eq(dtx_tx_set_gid(tx, "a b"), DTX_EINVAL);
	cr_assert_eq(dtx_tx_set_gid(tx, "a\x7f"), DTX_EINVAL);
	cr_assert_eq(dtx_tx_set_gid(tx, NULL), DTX_EINVAL);
	memset(gid, 'g', sizeof(gid) - 1);
	gid[sizeof(gid) - 1] = '\0';
	cr_assert_eq(dtx_tx_set_gid(tx, gid), DTX_EINVAL);
	gid[DTX_GID_MAX] = '\0';
	cr_assert_eq(dtx_tx_set_gid(tx, gid), 0);
	cr_assert_str_eq(dtx_tx_gid(tx), gid);
	cr_assert_eq(dtx_tx_attach(&att, c, "bad gid"), DTX_EINVAL);

	// Endpoints and methods.
	cr_assert_eq(dtx_tx_add(tx, "", "m", "x", 1), DTX_EINVAL);
	cr_assert_eq(dtx_tx_add(tx, "127.0.0.1:5", "m", "x", 1), DTX_EINVAL);
	memcpy(ep, "tcp://", 6);
	memset(ep + 6, 'h', sizeof(ep) - 7);
	ep[sizeof(ep) - 1] = '\0';
	cr_assert_eq(dtx_tx_add(tx, ep, "m", "x", 1), DTX_EINVAL);
	cr_assert_eq(dtx_tx_add(tx, "tcp://h:1", "", "x", 1), DTX_EINVAL);
	cr_assert_eq(dtx_tx_add(tx, "tcp://h:1", "a\tb", "x", 1), DTX_EINVAL);
	cr_assert_eq(dtx_tx_add(tx, "tcp://h:1", "m", NULL, 1), DTX_EINVAL);
	cr_assert_eq(
	    dtx_tx_add(tx, "tcp://h:1", "m", big, sizeof(big)), DTX_ETOOBIG);
	cr_assert_eq(dtx_tx_branch_count(tx), 0);

	// Methods described by generated code: the mode must match.
	{
		static const dtx_method_desc tpc  = {"svc/Tpc", DTX_2PC};
		static const dtx_method_desc saga = {"svc/Saga", DTX_SAGA};
		static const dtx_method_desc both = {
		    "svc/Both", DTX_2PC | DTX_SAGA};
		static const dtx_method_desc noname = {"", DTX_SAGA};

		cr_assert_eq(dtx_tx_add_method(tx, "tcp://h:1", &tpc, "x", 1),
		    DTX_EINVAL);
		cr_assert_str_eq(dtx_tx_message(tx),
		    "method svc/Tpc does not take part in a saga transaction "
		    "(its modes: 2pc)");
		cr_assert_eq(dtx_tx_add_method(tx, "tcp://h:1", NULL, "x", 1),
		    DTX_EINVAL);
		cr_assert_eq(
		    dtx_tx_add_method(tx, "tcp://h:1", &noname, "x", 1),
		    DTX_EINVAL);
		cr_assert_eq(
		    dtx_tx_add_method(NULL, "tcp://h:1", &saga, "x", 1),
		    DTX_EINVAL);
		cr_assert_eq(dtx_tx_branch_count(tx), 0);
		cr_assert_null(dtx_tx_branch_method(tx, 0));
		cr_assert_eq(
		    dtx_tx_add_method(tx, "tcp://h:1", &saga, "x", 1), 0);
		cr_assert_str_eq(dtx_tx_message(tx), "");
		cr_assert_eq(
		    dtx_tx_add_method(tx, "tcp://h:1", &both, "x", 1), 0);
		cr_assert_str_eq(dtx_tx_branch_method(tx, 0), "svc/Saga");
		cr_assert_str_eq(dtx_tx_branch_method(tx, 1), "svc/Both");
		cr_assert_null(dtx_tx_branch_method(tx, 2));
		cr_assert_null(dtx_tx_branch_method(NULL, 0));
		dtx_tx_free(tx);
		cr_assert_eq(dtx_tx_begin(&tx, c, DTX_SAGA), 0);
	}

	// Nothing to commit yet.
	cr_assert_eq(dtx_tx_commit(tx, &st), DTX_EINVAL);

	cr_assert_eq(
	    dtx_tx_add(tx, "tcp://h:1", "m", big, sizeof(big) - 1), 0);
	for (int i = 1; i < DTX_BRANCHES_MAX; i++) {
		cr_assert_eq(dtx_tx_add(tx, "tcp://h:1", "m", "p", 1), 0);
	}
	cr_assert_eq(dtx_tx_add(tx, "tcp://h:1", "m", "p", 1), DTX_ETOOBIG);
	cr_assert_eq(dtx_tx_branch_count(tx), DTX_BRANCHES_MAX);
	{
		dtx_branch_result r;
		cr_assert_eq(dtx_tx_branch_result(tx, 0, NULL), DTX_EINVAL);
		cr_assert_eq(dtx_tx_branch_result(tx, 64, &r), DTX_EINVAL);
		cr_assert_eq(dtx_tx_branch_result(tx, 0, &r), 0);
		cr_assert_eq(r.status, DTX_BRANCH_NONE);
	}

	// Past dtxd's limits (dtx.h): refused at once, naming the setter.
	cr_assert_eq(
	    dtx_tx_set_timeout_ms(tx, DTX_TIMEOUT_MS_MAX + 1), DTX_EINVAL);
	cr_assert(strstr(dtx_tx_message(tx), "dtx_tx_set_timeout_ms") != NULL,
	    "%s", dtx_tx_message(tx));
	cr_assert_eq(
	    dtx_tx_set_call_timeout_ms(tx, DTX_CALL_TIMEOUT_MS_MAX + 1),
	    DTX_EINVAL);
	cr_assert(
	    strstr(dtx_tx_message(tx), "dtx_tx_set_call_timeout_ms") != NULL,
	    "%s", dtx_tx_message(tx));
	cr_assert_eq(dtx_tx_set_retries(tx, DTX_RETRIES_MAX + 1), DTX_EINVAL);
	cr_assert(strstr(dtx_tx_message(tx), "dtx_tx_set_retries") != NULL &&
	        strstr(dtx_tx_message(tx), "1..1000") != NULL,
	    "%s", dtx_tx_message(tx));
	cr_assert_eq(dtx_tx_set_retries(NULL, 1), DTX_EINVAL);
	// The limits themselves, and 0 (dtxd's default), are taken.
	cr_assert_eq(dtx_tx_set_timeout_ms(tx, DTX_TIMEOUT_MS_MAX), 0);
	cr_assert_eq(
	    dtx_tx_set_call_timeout_ms(tx, DTX_CALL_TIMEOUT_MS_MAX), 0);
	cr_assert_eq(dtx_tx_set_retries(tx, DTX_RETRIES_MAX), 0);
	cr_assert_eq(dtx_tx_set_retries(tx, 0), 0);
	cr_assert_eq(dtx_tx_set_timeout_ms(tx, 100), 0);
	cr_assert_eq(dtx_tx_set_call_timeout_ms(tx, 100), 0);
	cr_assert_eq(dtx_tx_set_retries(tx, 1), 0);

	// Nobody listens: the submit finds no coordinator, and the tx is
	// then sent.
	cr_assert_eq(dtx_tx_submit(tx), DTX_EUNREACHABLE);
	cr_assert_neq(dtx_tx_message(tx)[0], '\0');
	cr_assert_eq(dtx_tx_set_gid(tx, "other"), DTX_ESTATE);
	cr_assert_eq(dtx_tx_set_timeout_ms(tx, 1), DTX_ESTATE);
	cr_assert_eq(dtx_tx_set_call_timeout_ms(tx, 1), DTX_ESTATE);
	cr_assert_eq(dtx_tx_set_retries(tx, 1), DTX_ESTATE);
	cr_assert_eq(dtx_tx_add(tx, "tcp://h:1", "m", "p", 1), DTX_ESTATE);

	cr_assert_eq(
	    dtx_client_list(c, 0, NULL, NULL, 10, NULL, NULL), DTX_EINVAL);
	cr_assert_eq(dtx_client_abort(c, "", &st), DTX_EINVAL);
	cr_assert_eq(dtx_client_resolve(c, "g", NULL), DTX_EINVAL);

	dtx_tx_free(tx);
	dtx_tx_free(NULL);
	dtx_client_close(c);
	dtx_client_close(NULL);
}

// Nothing listens: every request says the coordinator is unreachable
// once the request timeout (here below the connect timeout) is over.
Test(client, unreachable_when_nothing_listens)
{
	char        url[64];
	dtx_client *c;
	dtx_tx     *tx;
	dtx_state   st = 0;
	int64_t     t0;
	int64_t     el;

	free_tcp_url(url, sizeof(url));
	cr_assert_eq(dtx_client_open(&c, url), 0);
	cr_assert_eq(dtx_client_set_timeout_ms(c, 300), 0);
	cr_assert_eq(dtx_tx_attach(&tx, c, "some-gid"), 0);

	t0 = dtxi_mono_ms();
	cr_assert_eq(dtx_tx_status(tx, &st), DTX_EUNREACHABLE);
	el = dtxi_mono_ms() - t0;
	cr_assert_geq(el, 250);
	cr_assert_lt(el, 3000);
	cr_assert_eq(st, 0); // not written on error
	cr_assert(
	    strstr(dtx_tx_message(tx), url) != NULL, "%s", dtx_tx_message(tx));

	t0 = dtxi_mono_ms();
	cr_assert_eq(dtx_client_resolve(c, "some-gid", &st), DTX_EUNREACHABLE);
	cr_assert_lt(dtxi_mono_ms() - t0, 3000);
	cr_assert_eq(dtx_tx_wait(tx, 200, &st), DTX_EUNREACHABLE);
	dtx_tx_free(tx);
	dtx_client_close(c);
}

// A fake coordinator: answers every request on a REP socket with fake_reply.
typedef struct fake {
	nng_socket  sock;
	pthread_t   thread;
	atomic_int  status_calls;
	uint32_t    last_wait_ms;
	int         last_kind;
	bool        last_submit_wait;
	uint32_t    last_nbranches;
	char        last_gid[DTX_GID_MAX + 1];
	bool        last_groups[DTX_BRANCHES_MAX]; // each branch's same_group
	atomic_bool done;
} fake;

static void
fake_reply(fake *f, const dtxi_request *req, dtxi_reply *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->version = DTX_PROTOCOL_VERSION;
	switch (req->kind) {
	case DTXI_REQ_SUBMIT:
	case DTXI_REQ_STATUS: {
		dtxi_txinfo *t   = &rep->u.tx;
		const char  *gid = req->kind == DTXI_REQ_SUBMIT
		     ? req->u.submit.gid
		     : req->u.status.gid;
		if (strcmp(gid, "unknown") == 0) {
			rep->code = DTX_ENOTFOUND;
			dtxi_strlcpy(rep->message, "no transaction unknown",
			    sizeof(rep->message));
			return;
		}
		rep->kind = DTXI_REP_TX;
		dtxi_strlcpy(t->gid, gid, sizeof(t->gid));
		t->mode = DTX_2PC;
		// Status polls see PREPARING twice, then COMMITTED.
		t->state = DTX_STATE_COMMITTED;
		if (req->kind == DTXI_REQ_STATUS &&
		    atomic_fetch_add(&f->status_calls, 1) < 2) {
			t->state = DTX_STATE_PREPARING;
		}
		t->stuck     = true;
		t->nbranches = 2;
		for (unsigned i = 0; i < 2; i++) {
			t->branches[i].branch_id = i;
			t->branches[i].status    = DTX_BRANCH_OK;
			t->branches[i].phase     = DTX_PHASE_COMMIT;
			t->branches[i].attempts  = i + 1;
			snprintf(t->branches[i].message,
			    sizeof(t->branches[i].message), "branch %u", i);
		}
		t->branches[1].payload.ptr = (const uint8_t *)"result";
		t->branches[1].payload.len = 6;
		break;
	}
	case DTXI_REQ_ABORT:
		rep->code = DTX_ESTATE;
		dtxi_strlcpy(
		    rep->message, "already decided", sizeof(rep->message));
		break;
	case DTXI_REQ_RESOLVE:
		rep->kind            = DTXI_REP_RESOLVE;
		rep->u.resolve.state = DTX_STATE_ABORTED;
		break;
	case DTXI_REQ_LIST:
		rep->kind     = DTXI_REP_LIST;
		rep->u.list.n = 2;
		for (unsigned i = 0; i < 2; i++) {
			snprintf(rep->u.list.items[i].gid,
			    sizeof(rep->u.list.items[i].gid), "tx-%u", i);
			rep->u.list.items[i].mode       = DTX_SAGA;
			rep->u.list.items[i].state      = DTX_STATE_RUNNING;
			rep->u.list.items[i].nbranches  = 3;
			rep->u.list.items[i].created_ms = 10;
		}
		dtxi_strlcpy(rep->u.list.next_cursor, "tx-1",
		    sizeof(rep->u.list.next_cursor));
		break;
	default:
		rep->code = DTX_EUNSUPPORTED;
		break;
	}
}

static void *
fake_main(void *arg)
{
	fake         *f   = arg;
	dtxi_request *req = malloc(sizeof(*req));
	dtxi_reply   *rep = malloc(sizeof(*rep));

	while (!atomic_load(&f->done)) {
		nng_msg *m;
		size_t   len;
		char     why[DTX_MESSAGE_MAX + 1];

		if (nng_recvmsg(f->sock, &m, 0) != 0) {
			continue;
		}
		cr_assert_eq(dtxi_request_decode(req, nng_msg_body(m),
		                 nng_msg_len(m), SIZE_MAX, SIZE_MAX, why),
		    0);
		f->last_kind = req->kind;
		if (req->kind == DTXI_REQ_STATUS) {
			f->last_wait_ms = req->u.status.wait_ms;
		}
		if (req->kind == DTXI_REQ_SUBMIT) {
			f->last_submit_wait = req->u.submit.wait;
			f->last_nbranches   = req->u.submit.nbranches;
			for (uint32_t i = 0; i < req->u.submit.nbranches;
			     i++) {
				f->last_groups[i] =
				    req->u.submit.branches[i].same_group;
			}
			dtxi_strlcpy(f->last_gid, req->u.submit.gid,
			    sizeof(f->last_gid));
		}
		fake_reply(f, req, rep);
		nng_msg_free(m);
		cr_assert_eq(dtxi_reply_encode(rep, NULL, 0, &len), 0);
		cr_assert_eq(nng_msg_alloc(&m, len), 0);
		cr_assert_eq(
		    dtxi_reply_encode(rep, nng_msg_body(m), len, &len), 0);
		cr_assert_eq(nng_sendmsg(f->sock, m, 0), 0);
	}
	free(req);
	free(rep);
	return NULL;
}

static void
fake_start(fake *f, const char *url)
{
	memset(f, 0, sizeof(*f));
	cr_assert_eq(nng_rep0_open(&f->sock), 0);
	cr_assert_eq(nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 50), 0);
	cr_assert_eq(nng_listen(f->sock, url, NULL, 0), 0);
	cr_assert_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void
fake_stop(fake *f)
{
	atomic_store(&f->done, true);
	pthread_join(f->thread, NULL);
	nng_close(f->sock);
}

Test(client, commit_copies_the_outcome_and_branch_results)
{
	fake              f;
	dtx_client       *c;
	dtx_tx           *tx;
	dtx_state         st;
	dtx_branch_result r;

	fake_start(&f, "inproc://sdk-test-coord");
	cr_assert_eq(dtx_client_open(&c, "inproc://sdk-test-coord"), 0);
	cr_assert_eq(dtx_tx_begin(&tx, c, DTX_2PC), 0);
	cr_assert_eq(dtx_tx_set_gid(tx, "tx-commit"), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://a:1", "debit", "1", 1), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://b:1", "credit", NULL, 0), 0);
	cr_assert_eq(dtx_tx_commit(tx, &st), 0);
	cr_assert_eq(st, DTX_STATE_COMMITTED);
	cr_assert(f.last_submit_wait);
	cr_assert_eq(f.last_nbranches, 2);
	cr_assert_str_eq(f.last_gid, "tx-commit");
	cr_assert(dtx_tx_stuck(tx));
	cr_assert_eq(dtx_tx_branch_count(tx), 2);
	cr_assert_eq(dtx_tx_branch_result(tx, 1, &r), 0);
	cr_assert_eq(r.status, DTX_BRANCH_OK);
	cr_assert_eq(r.phase, DTX_PHASE_COMMIT);
	cr_assert_eq(r.attempts, 2);
	cr_assert_str_eq(r.message, "branch 1");
	cr_assert_eq(r.payload_len, 6);
	cr_assert_eq(memcmp(r.payload, "result", 6), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://b:1", "x", NULL, 0), DTX_ESTATE);
	// Resubmission is allowed (idempotent on the gid).
	cr_assert_eq(dtx_tx_submit(tx), 0);
	cr_assert(!f.last_submit_wait);
	dtx_tx_free(tx);
	dtx_client_close(c);
	fake_stop(&f);
}

// Saga groups: the steps added between begin and end are marked as in the
// group of the step before them (the first of a group is not); misuse is
// refused at once, saying why, and a commit with a group open sends
// nothing.
Test(client, saga_groups_are_marked_on_the_wire_and_misuse_is_refused)
{
	static const bool want[] = {false, false, true, true, false, false};
	fake              f;
	dtx_client       *c;
	dtx_tx           *tx, *two;
	dtx_state         st;

	fake_start(&f, "inproc://sdk-test-coord-groups");
	cr_assert_eq(dtx_client_open(&c, "inproc://sdk-test-coord-groups"), 0);
	cr_assert_eq(dtx_tx_begin(&two, c, DTX_2PC), 0);
	cr_assert_eq(dtx_tx_saga_group_begin(two), DTX_EINVAL);
	cr_assert(strstr(dtx_tx_message(two), "groups are for sagas") != NULL,
	    "%s", dtx_tx_message(two));
	cr_assert_eq(dtx_tx_saga_group_begin(NULL), DTX_EINVAL);
	cr_assert_eq(dtx_tx_saga_group_end(NULL), DTX_EINVAL);
	dtx_tx_free(two);

	cr_assert_eq(dtx_tx_begin(&tx, c, DTX_SAGA), 0);
	cr_assert_eq(dtx_tx_saga_group_end(tx), DTX_ESTATE);
	cr_assert(strstr(dtx_tx_message(tx), "no group is open") != NULL);
	cr_assert_eq(dtx_tx_add(tx, "tcp://a:1", "m", NULL, 0), 0);
	cr_assert_eq(dtx_tx_saga_group_begin(tx), 0);
	cr_assert_eq(dtx_tx_saga_group_begin(tx), DTX_ESTATE, "nested");
	cr_assert_eq(dtx_tx_add(tx, "tcp://b:1", "m", NULL, 0), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://c:1", "m", NULL, 0), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://d:1", "m", NULL, 0), 0);
	cr_assert_eq(dtx_tx_saga_group_end(tx), 0);
	cr_assert_eq(dtx_tx_saga_group_begin(tx), 0); // empty: no change
	cr_assert_eq(dtx_tx_saga_group_end(tx), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://e:1", "m", NULL, 0), 0);
	cr_assert_eq(dtx_tx_saga_group_begin(tx), 0); // a group of one
	cr_assert_eq(dtx_tx_add(tx, "tcp://f:1", "m", NULL, 0), 0);
	cr_assert_eq(dtx_tx_commit(tx, &st), DTX_EINVAL, "a group is open");
	cr_assert(strstr(dtx_tx_message(tx), "dtx_tx_saga_group_end") != NULL,
	    "%s", dtx_tx_message(tx));
	cr_assert_eq(f.last_kind, 0, "something was sent");
	cr_assert_eq(dtx_tx_saga_group_end(tx), 0);
	cr_assert_eq(dtx_tx_commit(tx, &st), 0);
	cr_assert_eq(f.last_nbranches, 6);
	for (unsigned i = 0; i < 6; i++) {
		cr_assert_eq(f.last_groups[i], want[i], "branch %u", i);
	}
	cr_assert_eq(dtx_tx_saga_group_begin(tx), DTX_ESTATE, "sent");
	dtx_tx_free(tx);
	dtx_client_close(c);
	fake_stop(&f);
}

Test(client, wait_polls_until_terminal_and_errors_carry_messages)
{
	fake        f;
	dtx_client *c;
	dtx_tx     *tx;
	dtx_state   st = 0;
	dtx_tx_info info[3];
	unsigned    n;
	char        next[DTX_GID_MAX + 1];

	fake_start(&f, "inproc://sdk-test-coord2");
	cr_assert_eq(dtx_client_open(&c, "inproc://sdk-test-coord2"), 0);
	cr_assert_eq(dtx_tx_attach(&tx, c, "tx-wait"), 0);
	cr_assert_eq(dtx_tx_commit(tx, &st), DTX_EINVAL); // no branches
	cr_assert_eq(dtx_tx_status(tx, &st), 0);
	cr_assert_eq(st, DTX_STATE_PREPARING);
	cr_assert_eq(f.last_wait_ms, 0);
	cr_assert_eq(dtx_tx_wait(tx, -1, &st), 0);
	cr_assert_eq(st, DTX_STATE_COMMITTED);
	cr_assert_eq(f.last_wait_ms, 5000);
	cr_assert_eq(dtx_tx_branch_count(tx), 2);
	dtx_tx_free(tx);

	cr_assert_eq(dtx_tx_attach(&tx, c, "unknown"), 0);
	cr_assert_eq(dtx_tx_status(tx, &st), DTX_ENOTFOUND);
	cr_assert_str_eq(dtx_tx_message(tx), "no transaction unknown");
	dtx_tx_free(tx);

	cr_assert_eq(dtx_client_abort(c, "tx-wait", &st), DTX_ESTATE);
	cr_assert_eq(dtx_client_resolve(c, "tx-wait", &st), 0);
	cr_assert_eq(st, DTX_STATE_ABORTED);
	cr_assert_eq(dtx_client_list(c, 0, NULL, info, 3, &n, next), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(info[1].gid, "tx-1");
	cr_assert_eq(info[1].mode, DTX_SAGA);
	cr_assert_eq(info[1].state, DTX_STATE_RUNNING);
	cr_assert_eq(info[1].branch_count, 3);
	cr_assert_str_eq(next, "tx-1");
	cr_assert_eq(
	    dtx_client_list(c, 0, NULL, info, 1, &n, next), DTX_EPROTO);
	dtx_client_close(c);
	fake_stop(&f);
}

// What the asynchronous commit tests see in their callbacks.
typedef struct async_seen {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	dtx_client     *c;
	unsigned        done;
	unsigned        committed;
	unsigned        notfound;
	unsigned        payload_ok;
	unsigned        chain_left; // commits still to start from callbacks
	int             other_rv;
} async_seen;

static void
async_seen_init(async_seen *a, dtx_client *c)
{
	memset(a, 0, sizeof(*a));
	pthread_mutex_init(&a->mtx, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->c = c;
}

static void
async_seen_fini(async_seen *a)
{
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mtx);
}

// Waits until n callbacks ran, for up to a minute (a loaded machine).
static void
async_wait(async_seen *a, unsigned n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 60;
	pthread_mutex_lock(&a->mtx);
	while (a->done < n) {
		if (pthread_cond_timedwait(&a->cv, &a->mtx, &ts) != 0) {
			break;
		}
	}
	pthread_mutex_unlock(&a->mtx);
}

static void start_async(async_seen *a, const char *gid);

// Checks what the callback may read, frees tx (allowed in the callback) and,
// for a chain, starts the next commit from here.
static void
on_async(dtx_tx *tx, int rv, dtx_state outcome, void *arg)
{
	async_seen       *a = arg;
	dtx_branch_result r;
	bool              chain;

	pthread_mutex_lock(&a->mtx);
	if (rv == 0 && outcome == DTX_STATE_COMMITTED) {
		a->committed++;
		if (dtx_tx_branch_result(tx, 1, &r) == 0 &&
		    r.payload_len == 6 &&
		    memcmp(r.payload, "result", 6) == 0) {
			a->payload_ok++;
		}
	} else if (rv == DTX_ENOTFOUND &&
	    strcmp(dtx_tx_message(tx), "no transaction unknown") == 0) {
		a->notfound++;
	} else {
		a->other_rv = rv != 0 ? rv : -1;
	}
	chain = a->chain_left > 0;
	if (chain) {
		a->chain_left--;
	}
	pthread_mutex_unlock(&a->mtx);
	dtx_tx_free(tx);
	if (chain) {
		start_async(a, "chained");
	}
	pthread_mutex_lock(&a->mtx);
	a->done++;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mtx);
}

static void
start_async(async_seen *a, const char *gid)
{
	dtx_tx *tx;

	cr_assert_eq(dtx_tx_begin(&tx, a->c, DTX_2PC), 0);
	cr_assert_eq(dtx_tx_set_gid(tx, gid), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://a:1", "debit", "1", 1), 0);
	cr_assert_eq(dtx_tx_add(tx, "tcp://b:1", "credit", NULL, 0), 0);
	cr_assert_eq(dtx_tx_commit_async(tx, on_async, a), 0);
}

Test(client, commit_async_calls_back_once_with_the_outcome_or_error)
{
	fake        f;
	dtx_client *c;
	dtx_tx     *tx;
	async_seen  a;

	fake_start(&f, "inproc://sdk-test-coord3");
	cr_assert_eq(dtx_client_open(&c, "inproc://sdk-test-coord3"), 0);
	async_seen_init(&a, c);

	// Refused at once: then the callback never runs.
	cr_assert_eq(dtx_tx_begin(&tx, c, DTX_SAGA), 0);
	cr_assert_eq(dtx_tx_commit_async(tx, on_async, &a), DTX_EINVAL);
	cr_assert_eq(dtx_tx_add(tx, "tcp://a:1", "m", NULL, 0), 0);
	cr_assert_eq(dtx_tx_commit_async(tx, NULL, &a), DTX_EINVAL);
	cr_assert_eq(dtx_tx_commit_async(NULL, on_async, &a), DTX_EINVAL);
	dtx_tx_free(tx);

	// Many in flight at once, one of them an error from the coordinator.
	for (unsigned i = 0; i < 40; i++) {
		char gid[32];
		snprintf(gid, sizeof(gid), "async-%u", i);
		start_async(&a, i == 7 ? "unknown" : gid);
	}
	async_wait(&a, 40);
	pthread_mutex_lock(&a.mtx);
	cr_assert_eq(a.done, 40);
	cr_assert_eq(a.other_rv, 0, "unexpected result %d", a.other_rv);
	cr_assert_eq(a.committed, 39);
	cr_assert_eq(a.payload_ok, 39);
	cr_assert_eq(a.notfound, 1);
	cr_assert_eq(f.last_nbranches, 2);
	cr_assert(f.last_submit_wait);
	// A closed loop: each callback starts the next commit.
	a.chain_left = 10;
	pthread_mutex_unlock(&a.mtx);
	start_async(&a, "chain-0");
	async_wait(&a, 51);
	pthread_mutex_lock(&a.mtx);
	cr_assert_eq(a.done, 51);
	cr_assert_eq(a.committed, 50);
	cr_assert_eq(a.other_rv, 0);
	pthread_mutex_unlock(&a.mtx);

	dtx_client_close(c);
	async_seen_fini(&a);
	fake_stop(&f);
}
