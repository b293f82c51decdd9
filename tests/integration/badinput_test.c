// SPDX-License-Identifier: MIT
//
// dtx.integration.badinput: what a real dtxd does with frames no client
// library would send. Each test talks to a dtxd process through a raw nng
// REQ socket: garbage, a wrong protocol version, frames and payloads over
// the limits, a participant's call sent to the coordinator, a request with
// no body, and submits that decode but make no sense. Every one must get an
// error reply with the right code and a readable message, and dtxd must go
// on serving: each test ends with a good request on the same socket.

#include <criterion/criterion.h>

#include <dtx/dtx.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "codec.h"
#include "harness.h"

static dtxt_world    w;
static nng_socket    sock;
static dtxi_reply   *rep;
static dtxi_request *req;

static void
setup(void)
{
	cr_assert_eq(dtxt_world_init(&w), 0);
	dtxt_dtxd_opts o;
	memset(&o, 0, sizeof(o));
	o.extra[0] = "--max-frame";
	o.extra[1] = "65536";
	o.extra[2] = "--max-payload";
	o.extra[3] = "4096";
	cr_assert_eq(dtxt_world_start_dtxd(&w, &o), 0, "dtxd did not start");
	cr_assert_eq(nng_req0_open(&sock), 0);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, 5000);
	cr_assert_eq(nng_dial(sock, w.url, NULL, 0), 0);
	rep = calloc(1, sizeof(*rep));
	req = calloc(1, sizeof(*req));
	cr_assert(rep != NULL && req != NULL);
}

static void
teardown(void)
{
	nng_close(sock);
	free(rep);
	free(req);
	dtxt_world_fini(&w);
	dtxt_cleanup();
}

TestSuite(badinput, .init = setup, .fini = teardown, .timeout = 30);

// Sends len bytes as one frame and decodes the answer into rep. The reply
// buffer is kept (static) so that rep's slices stay valid.
static int
roundtrip(const void *buf, size_t len)
{
	static nng_msg *last;
	nng_msg        *m;
	int             rv;

	if (last != NULL) {
		nng_msg_free(last);
		last = NULL;
	}
	if ((rv = nng_msg_alloc(&m, len)) != 0) {
		return rv;
	}
	memcpy(nng_msg_body(m), buf, len);
	if ((rv = nng_sendmsg(sock, m, 0)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	if ((rv = nng_recvmsg(sock, &m, 0)) != 0) {
		return rv;
	}
	last = m;
	return dtxi_reply_decode(rep, nng_msg_body(m), nng_msg_len(m),
	    SIZE_MAX, DTX_PAYLOAD_MAX_DEFAULT, NULL);
}

static int
send_request(void)
{
	size_t   len = 0;
	uint8_t *buf;
	int      rv;

	cr_assert_eq(dtxi_request_encode(req, NULL, 0, &len), 0);
	cr_assert((buf = malloc(len)) != NULL);
	cr_assert_eq(dtxi_request_encode(req, buf, len, &len), 0);
	rv = roundtrip(buf, len);
	free(buf);
	return rv;
}

// The coordinator still answers a good request on the same socket.
static void
still_serving(void)
{
	memset(req, 0, sizeof(*req));
	req->version = DTX_PROTOCOL_VERSION;
	req->kind    = DTXI_REQ_RESOLVE;
	strcpy(req->u.resolve.gid, "never-seen");
	cr_assert_eq(send_request(), 0);
	cr_assert_eq(rep->code, 0, "code %d: %s", rep->code, rep->message);
	cr_assert_eq(rep->kind, DTXI_REP_RESOLVE);
	cr_assert_eq(rep->u.resolve.state, DTX_STATE_ABORTED);
	cr_assert(dtxt_alive(w.dtxd), "dtxd died");
}

static void
expect_error(int code)
{
	cr_assert_eq(rep->code, code, "code %d (%s), expected %d: %s",
	    rep->code, dtx_strerror(rep->code), code, rep->message);
	cr_assert(rep->message[0] != '\0', "an error reply without a message");
}

static void
submit_init(int mode, uint32_t n)
{
	memset(req, 0, sizeof(*req));
	req->version            = DTX_PROTOCOL_VERSION;
	req->kind               = DTXI_REQ_SUBMIT;
	req->u.submit.mode      = mode;
	req->u.submit.nbranches = n;
	for (uint32_t i = 0; i < n; i++) {
		strcpy(
		    req->u.submit.branches[i].endpoint, "tcp://127.0.0.1:1");
		strcpy(req->u.submit.branches[i].method, "op");
	}
}

Test(badinput, garbage_gets_a_malformed_message_reply)
{
	static const uint8_t junk[] = {
	    0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99, 0x01, 0x02, 0x03};
	cr_assert_eq(roundtrip(junk, sizeof(junk)), 0);
	expect_error(DTX_EPROTO);
	still_serving();
}

Test(badinput, an_empty_frame_is_a_request_without_body)
{
	cr_assert_eq(roundtrip("", 0), 0);
	// An empty frame decodes as version 0: wrong version.
	expect_error(DTX_EVERSION);
	still_serving();
}

Test(badinput, a_wrong_protocol_version_is_refused)
{
	memset(req, 0, sizeof(*req));
	req->version = DTX_PROTOCOL_VERSION + 1;
	req->kind    = DTXI_REQ_RESOLVE;
	strcpy(req->u.resolve.gid, "g");
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EVERSION);
	still_serving();
}

Test(badinput, a_request_without_body_is_unsupported)
{
	memset(req, 0, sizeof(*req));
	req->version = DTX_PROTOCOL_VERSION;
	req->kind    = DTXI_REQ_NONE;
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EUNSUPPORTED);
	still_serving();
}

Test(badinput, a_branch_call_sent_to_the_coordinator_is_unsupported)
{
	memset(req, 0, sizeof(*req));
	req->version = DTX_PROTOCOL_VERSION;
	req->kind    = DTXI_REQ_CALL;
	strcpy(req->u.call.gid, "g");
	strcpy(req->u.call.method, "op");
	req->u.call.phase = DTX_PHASE_PREPARE;
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EUNSUPPORTED);
	still_serving();
}

Test(badinput, a_frame_over_the_limit_is_too_big)
{
	// 100 KiB of garbage against --max-frame 65536: refused before it
	// is parsed.
	size_t   len = 100 * 1024;
	uint8_t *big = calloc(1, len);
	cr_assert(big != NULL);
	cr_assert_eq(roundtrip(big, len), 0);
	free(big);
	expect_error(DTX_ETOOBIG);
	still_serving();
}

Test(badinput, a_payload_over_the_limit_is_too_big)
{
	static uint8_t payload[5000];
	submit_init(DTX_SAGA, 1);
	req->u.submit.branches[0].payload.ptr = payload;
	req->u.submit.branches[0].payload.len = sizeof(payload);
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_ETOOBIG);
	cr_assert(
	    strstr(rep->message, "4096") != NULL, "message: %s", rep->message);
	still_serving();
}

Test(badinput, a_frame_far_over_the_limit_drops_only_that_connection)
{
	// Past twice the limit nng drops the frame and the connection
	// without reading it; the sender times out, dtxd serves on.
	size_t   len = 512 * 1024;
	uint8_t *big = calloc(1, len);
	nng_msg *m;
	cr_assert(big != NULL);
	cr_assert_eq(nng_msg_alloc(&m, len), 0);
	memcpy(nng_msg_body(m), big, len);
	free(big);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 500);
	cr_assert_eq(nng_sendmsg(sock, m, 0), 0);
	cr_assert_neq(nng_recvmsg(sock, &m, 0), 0);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 5000);
	still_serving();
}

Test(badinput, a_submit_without_branches_is_invalid)
{
	submit_init(DTX_2PC, 0);
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	still_serving();
}

Test(badinput, a_submit_without_mode_is_invalid)
{
	submit_init(0, 1);
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	still_serving();
}

Test(badinput, a_submit_with_an_invalid_endpoint_is_invalid)
{
	submit_init(DTX_SAGA, 2);
	strcpy(req->u.submit.branches[1].endpoint, "not a url");
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	cr_assert(strstr(rep->message, "branch 1") != NULL, "message: %s",
	    rep->message);
	strcpy(req->u.submit.branches[1].endpoint, "bogus://127.0.0.1:1");
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	still_serving();
}

Test(badinput, a_submit_with_an_empty_method_is_invalid)
{
	submit_init(DTX_2PC, 1);
	req->u.submit.branches[0].method[0] = '\0';
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	still_serving();
}

Test(badinput, a_submit_with_an_unprintable_gid_is_invalid)
{
	submit_init(DTX_2PC, 1);
	strcpy(req->u.submit.gid, "has space");
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	still_serving();
}

Test(badinput, a_submit_with_absurd_timeouts_is_invalid)
{
	submit_init(DTX_2PC, 1);
	req->u.submit.timeout_ms = 25u * 3600 * 1000;
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	submit_init(DTX_2PC, 1);
	req->u.submit.retries = 5000;
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_EINVAL);
	still_serving();
}

Test(badinput, a_list_with_an_unknown_state_is_invalid)
{
	// Hand-made: our encoder refuses the bad enum. Request{version 1,
	// list{state 42}}.
	static const uint8_t frame[] = {0x08, 0x01, 0x62, 0x02, 0x08, 0x2a};
	cr_assert_eq(roundtrip(frame, sizeof(frame)), 0);
	// The codec refuses an enum value out of range before dtxd sees it.
	expect_error(DTX_EPROTO);
	still_serving();
}

Test(badinput, status_and_abort_of_an_unknown_gid_are_not_found)
{
	memset(req, 0, sizeof(*req));
	req->version = DTX_PROTOCOL_VERSION;
	req->kind    = DTXI_REQ_STATUS;
	strcpy(req->u.status.gid, "nobody");
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_ENOTFOUND);
	req->kind = DTXI_REQ_ABORT;
	strcpy(req->u.abort.gid, "nobody");
	cr_assert_eq(send_request(), 0);
	expect_error(DTX_ENOTFOUND);
	still_serving();
}
