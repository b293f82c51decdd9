// SPDX-License-Identifier: MIT
//
// rawcall: a raw nng REQ socket playing dtxd against a participant, for
// tests that must send exactly the calls they mean (duplicates, late or
// out-of-order phases) and read each reply. Header-only (static inline),
// because it asserts with Criterion and only test executables include it.

#ifndef DTX_TEST_RAWCALL_H
#define DTX_TEST_RAWCALL_H

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "strs.h"

// One branch reply, copied out of the message.
typedef struct dtxt_answer {
	int  status;
	char message[DTX_MESSAGE_MAX + 1];
	char payload[64];
} dtxt_answer;

// A REQ socket dialed to url that never resends by itself: duplicates are
// sent on purpose, never behind the test's back.
static inline nng_socket
dtxt_raw_open(const char *url)
{
	nng_socket s;

	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 30000), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 30000), 0);
	cr_assert_eq(nng_socket_set_ms(
	                 s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE),
	    0);
	cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
	return s;
}

// Sends one BranchCall of method "op" (attempt 1) and returns its reply;
// any transport or decoding failure fails the test.
static inline dtxt_answer
dtxt_raw_call(nng_socket s, const char *gid, uint32_t branch, dtx_phase phase,
    const char *payload)
{
	dtxi_request *req = calloc(1, sizeof(*req));
	dtxi_reply   *rep = calloc(1, sizeof(*rep));
	dtxt_answer   a   = {0};
	nng_msg      *m;
	size_t        len;
	char          why[DTX_MESSAGE_MAX + 1];
	int           rv;

	cr_assert(req != NULL && rep != NULL);
	req->version = DTX_PROTOCOL_VERSION;
	req->kind    = DTXI_REQ_CALL;
	dtxi_strlcpy(req->u.call.gid, gid, sizeof(req->u.call.gid));
	req->u.call.branch_id = branch;
	req->u.call.phase     = phase;
	dtxi_strlcpy(req->u.call.method, "op", sizeof(req->u.call.method));
	req->u.call.payload.ptr = (const uint8_t *)payload;
	req->u.call.payload.len = strlen(payload);
	req->u.call.attempt     = 1;
	cr_assert_eq(dtxi_request_encode(req, NULL, 0, &len), 0);
	cr_assert_eq(nng_msg_alloc(&m, len), 0);
	cr_assert_eq(dtxi_request_encode(req, nng_msg_body(m), len, &len), 0);
	cr_assert_eq(nng_sendmsg(s, m, 0), 0);
	cr_assert_eq(
	    rv = nng_recvmsg(s, &m, 0), 0, "recv: %s", nng_strerror(rv));
	rv = dtxi_reply_decode(
	    rep, nng_msg_body(m), nng_msg_len(m), SIZE_MAX, SIZE_MAX, why);
	cr_assert_eq(rv, 0, "reply decode: %s", why);
	cr_assert_eq(
	    rep->code, 0, "error reply %d: %s", rep->code, rep->message);
	cr_assert_eq(rep->kind, DTXI_REP_BRANCH);
	a.status = rep->u.branch.status;
	dtxi_strlcpy(a.message, rep->u.branch.message, sizeof(a.message));
	len = rep->u.branch.payload.len < sizeof(a.payload) - 1
	    ? rep->u.branch.payload.len
	    : sizeof(a.payload) - 1;
	if (len > 0) {
		memcpy(a.payload, rep->u.branch.payload.ptr, len);
	}
	a.payload[len] = '\0';
	nng_msg_free(m);
	free(req);
	free(rep);
	return a;
}

#endif // DTX_TEST_RAWCALL_H
