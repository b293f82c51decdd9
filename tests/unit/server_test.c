// SPDX-License-Identifier: MIT
//
// server: dtxd's REP side alone, over real nng sockets, with a handler the
// test writes and a raw REQ socket as the client. A well-formed request
// reaches the handler decoded, and its reply reaches the client, also when
// the handler answers later from another thread; a frame that does not
// decode, a wrong version and an oversized frame are answered with the
// right code and a reason and never reach the handler; requests are
// received concurrently up to the number of contexts; the server closes
// once every request handed out was answered.

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "harness.h"
#include "server.h"
#include "strs.h"
#include "transport.h"

#define FRAME_MAX 4096

static char         url[DTXT_URL_MAX];
static dtxd_server *srv;
static nng_socket   cli;

// What the handler saw, and how it answers.
static atomic_int  calls;
static atomic_bool park; // keep requests for park_reply()
static dtxd_sreq  *parked[8];
static atomic_int  nparked;

static void
handler(void *arg, dtxd_sreq *r)
{
	const dtxi_request *req = dtxd_sreq_request(r);

	(void)arg;
	atomic_fetch_add(&calls, 1);
	if (atomic_load(&park)) {
		parked[atomic_fetch_add(&nparked, 1)] = r;
		return;
	}
	if (req->kind != DTXI_REQ_STATUS) {
		dtxd_server_reply_error(r, DTX_EUNSUPPORTED, "status only");
		return;
	}
	// The handler runs on several nng threads: a reply of its own.
	dtxi_reply *own = calloc(1, sizeof(*own));
	cr_assert_not_null(own);
	own->version = DTX_PROTOCOL_VERSION;
	own->kind    = DTXI_REP_RESOLVE;
	// Echo the gid's length as a state, to tie the reply to its request.
	own->u.resolve.state = (int)strlen(req->u.status.gid);
	dtxd_server_reply(r, own);
	free(own);
}

static void
setup(void)
{
	dtxd_server_opts o = {.url = url,
	    .contexts              = 4,
	    .max_frame             = FRAME_MAX,
	    .max_payload           = 64};

	cr_assert_eq(dtxt_free_url(url, sizeof(url)), 0);
	cr_assert_eq(dtxd_server_open(&srv, &o, handler, NULL), 0);
	cr_assert_eq(nng_req0_open(&cli), 0);
	cr_assert_eq(nng_socket_set_ms(cli, NNG_OPT_RECVTIMEO, 10000), 0);
	cr_assert_eq(nng_socket_set_ms(
	                 cli, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE),
	    0);
	cr_assert_eq(nng_dial(cli, url, NULL, 0), 0);
}

static void
teardown(void)
{
	nng_close(cli);
	dtxd_server_close(srv);
}

TestSuite(server, .init = setup, .fini = teardown, .timeout = 60);

// Sends len bytes of frame and decodes the answer into *rep.
static void
exchange(nng_socket s, const void *frame, size_t len, dtxi_reply *rep)
{
	nng_msg *m;
	char     why[DTX_MESSAGE_MAX + 1];
	int      rv;

	cr_assert_eq(nng_msg_alloc(&m, len), 0);
	memcpy(nng_msg_body(m), frame, len);
	cr_assert_eq(nng_sendmsg(s, m, 0), 0);
	cr_assert_eq(rv = nng_recvmsg(s, &m, 0), 0, "%s", nng_strerror(rv));
	rv = dtxi_reply_decode(
	    rep, nng_msg_body(m), nng_msg_len(m), SIZE_MAX, SIZE_MAX, why);
	cr_assert_eq(rv, 0, "%s", why);
	nng_msg_free(m);
}

// A Status request for gid, encoded.
static size_t
status_frame(uint8_t *buf, size_t cap, const char *gid, uint32_t version)
{
	dtxi_request req;
	size_t       len = 0;

	memset(&req, 0, sizeof(req));
	req.version = version;
	req.kind    = DTXI_REQ_STATUS;
	dtxi_strlcpy(req.u.status.gid, gid, sizeof(req.u.status.gid));
	cr_assert_eq(dtxi_request_encode(&req, buf, cap, &len), 0);
	return len;
}

Test(server, hands_a_decoded_request_to_the_handler_and_sends_its_reply)
{
	static dtxi_reply rep;
	uint8_t           f[256];

	exchange(cli, f,
	    status_frame(f, sizeof(f), "abcde", DTX_PROTOCOL_VERSION), &rep);
	cr_assert_eq(rep.code, 0, "%s", rep.message);
	cr_assert_eq(rep.kind, DTXI_REP_RESOLVE);
	cr_assert_eq(rep.u.resolve.state, 5);
	cr_assert_eq(atomic_load(&calls), 1);
}

Test(server, answers_bad_frames_itself_with_a_reason)
{
	static dtxi_reply rep;
	uint8_t           f[FRAME_MAX + 16];
	size_t n = status_frame(f, sizeof(f), "g", DTX_PROTOCOL_VERSION);

	// Garbage.
	memset(f, 0xff, 40);
	exchange(cli, f, 40, &rep);
	cr_assert_eq(rep.code, DTX_EPROTO);
	cr_assert_gt(strlen(rep.message), 0);
	// A version this dtxd does not speak.
	n = status_frame(f, sizeof(f), "g", DTX_PROTOCOL_VERSION + 1);
	exchange(cli, f, n, &rep);
	cr_assert_eq(rep.code, DTX_EVERSION, "%d %s", rep.code, rep.message);
	// Over the frame limit.
	memset(f, 0, sizeof(f));
	exchange(cli, f, FRAME_MAX + 1, &rep);
	cr_assert_eq(rep.code, DTX_ETOOBIG, "%d %s", rep.code, rep.message);
	cr_assert_eq(
	    atomic_load(&calls), 0, "a bad frame reached the handler");
	// And the server goes on serving.
	n = status_frame(f, sizeof(f), "xy", DTX_PROTOCOL_VERSION);
	exchange(cli, f, n, &rep);
	cr_assert_eq(rep.code, 0);
	cr_assert_eq(rep.u.resolve.state, 2);
}

Test(server, answers_the_handlers_error_reply)
{
	static dtxi_reply rep;
	dtxi_request      req;
	uint8_t           f[256];
	size_t            n = 0;

	memset(&req, 0, sizeof(req));
	req.version = DTX_PROTOCOL_VERSION;
	req.kind    = DTXI_REQ_STATS;
	cr_assert_eq(dtxi_request_encode(&req, f, sizeof(f), &n), 0);
	exchange(cli, f, n, &rep);
	cr_assert_eq(rep.code, DTX_EUNSUPPORTED);
	cr_assert_str_eq(rep.message, "status only");
}

typedef struct client {
	char       gid[16];
	dtxi_reply rep;
} client;

static void *
client_main(void *arg)
{
	client    *c = arg;
	nng_socket s;
	uint8_t    f[256];

	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000), 0);
	cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
	exchange(s, f,
	    status_frame(f, sizeof(f), c->gid, DTX_PROTOCOL_VERSION), &c->rep);
	nng_close(s);
	return NULL;
}

static int
all_parked(void *arg)
{
	return atomic_load(&nparked) == *(int *)arg;
}

Test(server, holds_as_many_requests_as_contexts_and_answers_them_later)
{
	static client c[4];
	pthread_t     th[4];
	int           four = 4;

	atomic_store(&park, true);
	for (int i = 0; i < 4; i++) {
		memset(c[i].gid, 'a', (size_t)i + 1);
		cr_assert_eq(
		    pthread_create(&th[i], NULL, client_main, &c[i]), 0);
	}
	// All four reach the handler at once: four contexts.
	cr_assert_eq(dtxt_wait_until(all_parked, &four, 5, 10000), 0,
	    "only %d of 4 requests were received", atomic_load(&nparked));
	// Answered from this thread, in reverse order.
	for (int i = 3; i >= 0; i--) {
		const dtxi_request *req = dtxd_sreq_request(parked[i]);
		dtxi_reply          rep;

		memset(&rep, 0, sizeof(rep));
		rep.version         = DTX_PROTOCOL_VERSION;
		rep.kind            = DTXI_REP_RESOLVE;
		rep.u.resolve.state = (int)strlen(req->u.status.gid);
		dtxd_sreq_drop_request(parked[i]); // allowed before the reply
		dtxd_server_reply(parked[i], &rep);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(c[i].rep.code, 0);
		cr_assert_eq(c[i].rep.u.resolve.state, i + 1,
		    "client %d got another's answer", i);
	}
}

Test(server, refuses_an_address_it_cannot_listen_on)
{
	dtxd_server     *s2 = NULL;
	dtxd_server_opts o  = {.url = "nosuch://x",
	     .contexts              = 1,
	     .max_frame             = FRAME_MAX,
	     .max_payload           = 64};

	cr_assert_eq(dtxd_server_open(&s2, &o, handler, NULL), DTX_EINVAL);
	o.url = url; // in use by the suite's server
	cr_assert_eq(dtxd_server_open(&s2, &o, handler, NULL), DTX_ETRANSPORT);
	o.url      = "tcp://127.0.0.1:0";
	o.contexts = 0;
	cr_assert_eq(dtxd_server_open(&s2, &o, handler, NULL), DTX_EINVAL);
}

// A request of kind for gid, encoded.
static size_t
gid_frame(uint8_t *buf, size_t cap, dtxi_req_kind kind, const char *gid)
{
	dtxi_request req;
	size_t       len = 0;

	memset(&req, 0, sizeof(req));
	req.version = DTX_PROTOCOL_VERSION;
	req.kind    = kind;
	if (kind == DTXI_REQ_ABORT) {
		dtxi_strlcpy(req.u.abort.gid, gid, sizeof(req.u.abort.gid));
	} else if (kind == DTXI_REQ_RETRY) {
		dtxi_strlcpy(req.u.retry.gid, gid, sizeof(req.u.retry.gid));
	} else if (kind == DTXI_REQ_SETTLE) {
		dtxi_strlcpy(req.u.settle.gid, gid, sizeof(req.u.settle.gid));
		req.u.settle.branch = 1;
		dtxi_strlcpy(
		    req.u.settle.note, "by hand", sizeof(req.u.settle.note));
	}
	cr_assert_eq(dtxi_request_encode(&req, buf, cap, &len), 0);
	return len;
}

Test(server, refuses_operator_commands_unless_it_is_an_operator_listener)
{
	static dtxi_reply rep;
	uint8_t           f[256];
	dtxd_server      *op  = NULL;
	nng_socket        ocl = NNG_SOCKET_INITIALIZER;
	char              opurl[DTXT_URL_MAX];
	dtxd_server_opts  o = {.url = opurl,
	     .contexts              = 2,
	     .max_frame             = FRAME_MAX,
	     .max_payload           = 64,
	     .operator_cmds         = true};

	exchange(cli, f, gid_frame(f, sizeof(f), DTXI_REQ_LIST, ""), &rep);
	cr_assert_eq(rep.code, DTX_EPERM);
	cr_assert(strstr(rep.message, "List is an operator command") != NULL,
	    "%s", rep.message);
	cr_assert(strstr(rep.message, "--operator-listen") != NULL);
	exchange(cli, f, gid_frame(f, sizeof(f), DTXI_REQ_ABORT, "g"), &rep);
	cr_assert_eq(rep.code, DTX_EPERM);
	cr_assert(strstr(rep.message, "Abort") != NULL, "%s", rep.message);
	exchange(cli, f, gid_frame(f, sizeof(f), DTXI_REQ_RETRY, "g"), &rep);
	cr_assert_eq(rep.code, DTX_EPERM);
	cr_assert(strstr(rep.message, "Retry") != NULL, "%s", rep.message);
	exchange(cli, f, gid_frame(f, sizeof(f), DTXI_REQ_SETTLE, "g"), &rep);
	cr_assert_eq(rep.code, DTX_EPERM);
	cr_assert(strstr(rep.message, "Settle") != NULL, "%s", rep.message);
	cr_assert_eq(atomic_load(&calls), 0, "refused before the handler");

	// The operator listener hands all four to the handler (which answers
	// EUNSUPPORTED to anything but Status).
	cr_assert_eq(dtxt_free_url(opurl, sizeof(opurl)), 0);
	cr_assert_eq(dtxd_server_open(&op, &o, handler, NULL), 0);
	cr_assert_eq(nng_req0_open(&ocl), 0);
	cr_assert_eq(nng_socket_set_ms(ocl, NNG_OPT_RECVTIMEO, 10000), 0);
	cr_assert_eq(nng_dial(ocl, opurl, NULL, 0), 0);
	exchange(ocl, f, gid_frame(f, sizeof(f), DTXI_REQ_LIST, ""), &rep);
	cr_assert_eq(rep.code, DTX_EUNSUPPORTED, "%s", rep.message);
	exchange(ocl, f, gid_frame(f, sizeof(f), DTXI_REQ_ABORT, "g"), &rep);
	cr_assert_eq(rep.code, DTX_EUNSUPPORTED, "%s", rep.message);
	exchange(ocl, f, gid_frame(f, sizeof(f), DTXI_REQ_RETRY, "g"), &rep);
	cr_assert_eq(rep.code, DTX_EUNSUPPORTED, "%s", rep.message);
	exchange(ocl, f, gid_frame(f, sizeof(f), DTXI_REQ_SETTLE, "g"), &rep);
	cr_assert_eq(rep.code, DTX_EUNSUPPORTED, "%s", rep.message);
	cr_assert_eq(atomic_load(&calls), 4);
	nng_close(ocl);
	dtxd_server_close(op);
}
