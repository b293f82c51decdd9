// SPDX-License-Identifier: MIT
//
// transport: the one nng glue. Its error map gives every nng user the same
// answer (NNG_ECANCELED, an operation stopped by a close, is DTX_ECLOSED on
// both sides), listen/dial address errors are the caller's DTX_EINVAL, and
// a request or reply encoded into an nng message in one pass decodes to
// what was encoded, whether the size bound held or had to be redone.

#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>
#include <nng/nng.h>

#include <dtx/dtx.h>

#include "transport.h"

static dtxi_request req, req2;
static dtxi_reply   rep, rep2;
static uint8_t      big[200000];

Test(transport, maps_every_nng_error_the_same_way)
{
	cr_assert_eq(dtxi_transport_err(0, NULL), 0);
	cr_assert_eq(dtxi_transport_err(NNG_ETIMEDOUT, NULL), DTX_ETIMEDOUT);
	cr_assert_eq(dtxi_transport_err(NNG_ECLOSED, NULL), DTX_ECLOSED);
	cr_assert_eq(dtxi_transport_err(NNG_ECANCELED, NULL), DTX_ECLOSED);
	cr_assert_eq(dtxi_transport_err(NNG_ENOMEM, NULL), DTX_ENOMEM);
	cr_assert_eq(
	    dtxi_transport_err(NNG_ECONNREFUSED, "test"), DTX_ETRANSPORT);
	cr_assert_eq(dtxi_transport_err(NNG_EPROTO, NULL), DTX_ETRANSPORT);
}

Test(transport, calls_an_unusable_address_the_callers_mistake)
{
	cr_assert_eq(
	    dtxi_transport_addr_err(NNG_EADDRINVAL, "t", "x://"), DTX_EINVAL);
	cr_assert_eq(
	    dtxi_transport_addr_err(NNG_ENOTSUP, "t", "x://"), DTX_EINVAL);
	cr_assert_eq(
	    dtxi_transport_addr_err(NNG_EINVAL, "t", "x://"), DTX_EINVAL);
	cr_assert_eq(dtxi_transport_addr_err(NNG_EADDRINUSE, "t", "tcp://"),
	    DTX_ETRANSPORT);
	cr_assert_eq(dtxi_transport_addr_err(0, "t", "tcp://"), 0);
}

static void
decode_request(nng_msg *m)
{
	char err[DTX_MESSAGE_MAX + 1];

	cr_assert_eq(dtxi_request_decode(&req2, nng_msg_body(m),
	                 nng_msg_len(m), SIZE_MAX, SIZE_MAX, err),
	    0, "%s", err);
	nng_msg_free(m);
}

Test(transport, encodes_a_batch_of_calls_in_one_message)
{
	nng_msg *m = NULL;

	req.version   = DTX_PROTOCOL_VERSION;
	req.kind      = DTXI_REQ_CALL_BATCH;
	req.u.batch.n = 3;
	for (unsigned i = 0; i < 3; i++) {
		dtxi_call *c = &req.u.batch.calls[i];
		strcpy(c->gid, "g1");
		strcpy(c->method, "svc.M/Do");
		c->branch_id   = i;
		c->phase       = DTX_PHASE_PREPARE;
		c->attempt     = 1;
		c->payload.ptr = big;
		c->payload.len = 1000 * (i + 1);
	}
	cr_assert_eq(dtxi_transport_encode_request(&req, &m), 0);
	cr_assert_not_null(m);
	decode_request(m);
	cr_assert_eq(req2.kind, DTXI_REQ_CALL_BATCH);
	cr_assert_eq(req2.u.batch.n, 3);
	cr_assert_eq(req2.u.batch.calls[2].payload.len, 3000);
}

Test(transport, encodes_a_submit_whatever_its_size)
{
	nng_msg *m = NULL;

	req.version = DTX_PROTOCOL_VERSION;
	req.kind    = DTXI_REQ_SUBMIT;
	memset(&req.u.submit, 0, sizeof(req.u.submit));
	req.u.submit.mode      = DTX_2PC;
	req.u.submit.nbranches = DTX_BRANCHES_MAX;
	for (unsigned i = 0; i < DTX_BRANCHES_MAX; i++) {
		dtxi_branch_spec *b = &req.u.submit.branches[i];
		strcpy(b->endpoint, "tcp://127.0.0.1:5555");
		strcpy(b->method, "svc.M/Do");
		b->payload.ptr = big;
		b->payload.len = i * 97;
	}
	cr_assert_eq(dtxi_transport_encode_request(&req, &m), 0);
	decode_request(m);
	cr_assert_eq(req2.u.submit.nbranches, DTX_BRANCHES_MAX);
	cr_assert_eq(req2.u.submit.branches[63].payload.len, 63 * 97);
}

Test(transport, encodes_a_reply_and_refuses_a_bad_one)
{
	nng_msg *m = NULL;
	char     err[DTX_MESSAGE_MAX + 1];

	memset(&rep, 0, sizeof(rep));
	rep.version = DTX_PROTOCOL_VERSION;
	rep.kind    = DTXI_REP_TX;
	strcpy(rep.u.tx.gid, "g1");
	rep.u.tx.mode      = DTX_SAGA;
	rep.u.tx.state     = DTX_STATE_COMMITTED;
	rep.u.tx.nbranches = 2;
	for (unsigned i = 0; i < 2; i++) {
		rep.u.tx.branches[i].branch_id   = i;
		rep.u.tx.branches[i].status      = DTX_BRANCH_OK;
		rep.u.tx.branches[i].payload.ptr = big;
		rep.u.tx.branches[i].payload.len = sizeof(big) / 2;
		strcpy(rep.u.tx.branches[i].message, "done");
	}
	cr_assert_eq(dtxi_transport_encode_reply(&rep, &m), 0);
	cr_assert_eq(dtxi_reply_decode(&rep2, nng_msg_body(m), nng_msg_len(m),
	                 SIZE_MAX, SIZE_MAX, err),
	    0, "%s", err);
	cr_assert_eq(rep2.u.tx.branches[1].payload.len, sizeof(big) / 2);
	cr_assert_str_eq(rep2.u.tx.branches[1].message, "done");
	nng_msg_free(m);

	m              = NULL;
	rep.u.tx.state = 99;
	cr_assert_eq(dtxi_transport_encode_reply(&rep, &m), DTX_EINVAL);
	cr_assert_null(m);
	cr_assert_eq(dtxi_transport_encode_reply(NULL, &m), DTX_EINVAL);
}
