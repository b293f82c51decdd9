// SPDX-License-Identifier: MIT
//
// dispatcher: dtxd's outbound calls alone, without a dtxd process. A raw
// REP socket on a thread plays the participant and records every frame.
// Calls queued in one pass to one participant travel as one batch and each
// gets its own answer, in order; a lone call travels plain; a participant
// that does not know batches (EUNSUPPORTED) gets the calls again one by
// one, and plain calls from then on; a call nobody answers ends with
// DTX_ETIMEDOUT; an endpoint nng cannot dial is DTX_EINVAL; closing ends
// the calls in flight with DTX_ECLOSED. Every callback runs exactly once.

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "dispatcher.h"
#include "harness.h"
#include "strs.h"
#include "transport.h"

enum { MODE_ANSWER, MODE_NO_BATCH, MODE_SILENT };

// The participant: answers each call with status OK (or REFUSED for a
// payload "no") and a payload naming the call's gid and branch.
typedef struct part {
	char        url[DTXT_URL_MAX];
	nng_socket  sock;
	pthread_t   thread;
	atomic_int  mode;
	atomic_int  frames;  // frames received
	atomic_int  batches; // of which batches
	atomic_int  singles; // of which single calls
	atomic_bool stop;
} part;

static part             P;
static dtxd_dispatcher *D;

static void
answer(const dtxi_call *c, dtxi_branch_reply *r, char *buf, size_t cap)
{
	memset(r, 0, sizeof(*r));
	snprintf(buf, cap, "%.32s/%u", c->gid, (unsigned)c->branch_id);
	r->status = c->payload.len == 2 && memcmp(c->payload.ptr, "no", 2) == 0
	    ? DTX_BRANCH_REFUSED
	    : DTX_BRANCH_OK;
	r->payload.ptr = (const uint8_t *)buf;
	r->payload.len = strlen(buf);
}

static void *
part_main(void *arg)
{
	static dtxi_request req;
	static dtxi_reply   rep;
	static char         bufs[DTXI_BATCH_MAX][64];
	part               *p = arg;

	while (!atomic_load(&p->stop)) {
		nng_msg *m;
		char     why[DTX_MESSAGE_MAX + 1];

		if (nng_recvmsg(p->sock, &m, 0) != 0) {
			continue; // the receive timeout: look at stop
		}
		atomic_fetch_add(&p->frames, 1);
		cr_assert_eq(dtxi_request_decode(&req, nng_msg_body(m),
		                 nng_msg_len(m), SIZE_MAX, SIZE_MAX, why),
		    0, "%s", why);
		memset(&rep, 0, sizeof(rep));
		rep.version = DTX_PROTOCOL_VERSION;
		if (atomic_load(&p->mode) == MODE_SILENT) {
			nng_msg_free(m);
			continue; // never answers
		}
		if (req.kind == DTXI_REQ_CALL_BATCH) {
			atomic_fetch_add(&p->batches, 1);
			if (atomic_load(&p->mode) == MODE_NO_BATCH) {
				rep.code = DTX_EUNSUPPORTED;
				dtxi_strlcpy(rep.message, "no batches",
				    sizeof(rep.message));
			} else {
				rep.kind      = DTXI_REP_BRANCH_BATCH;
				rep.u.batch.n = req.u.batch.n;
				for (uint32_t i = 0; i < req.u.batch.n; i++) {
					answer(&req.u.batch.calls[i],
					    &rep.u.batch.replies[i], bufs[i],
					    sizeof(bufs[i]));
				}
			}
		} else {
			atomic_fetch_add(&p->singles, 1);
			rep.kind = DTXI_REP_BRANCH;
			answer(&req.u.call, &rep.u.branch, bufs[0],
			    sizeof(bufs[0]));
		}
		nng_msg_free(m);
		cr_assert_eq(dtxi_transport_encode_reply(&rep, &m), 0);
		cr_assert_eq(nng_sendmsg(p->sock, m, 0), 0);
	}
	return NULL;
}

static void
setup(void)
{
	cr_assert_eq(dtxt_free_url(P.url, sizeof(P.url)), 0);
	cr_assert_eq(nng_rep0_open(&P.sock), 0);
	cr_assert_eq(nng_socket_set_ms(P.sock, NNG_OPT_RECVTIMEO, 50), 0);
	cr_assert_eq(nng_listen(P.sock, P.url, NULL, 0), 0);
	cr_assert_eq(pthread_create(&P.thread, NULL, part_main, &P), 0);
	cr_assert_eq(dtxd_dispatcher_open(&D, 1024 * 1024), 0);
}

static void
teardown(void)
{
	dtxd_dispatcher_close(D);
	atomic_store(&P.stop, true);
	pthread_join(P.thread, NULL);
	nng_close(P.sock);
}

TestSuite(dispatcher, .init = setup, .fini = teardown, .timeout = 60);

// One call's outcome, as its callback reported it.
typedef struct outcome {
	atomic_int runs;
	int        rv;
	int        status;
	char       payload[64];
} outcome;

static void
done(void *arg, int rv, const dtxi_branch_reply *rep)
{
	outcome *o = arg;

	o->rv = rv;
	if (rv == 0) {
		o->status = rep->status;
		snprintf(o->payload, sizeof(o->payload), "%.*s",
		    (int)rep->payload.len, (const char *)rep->payload.ptr);
	}
	atomic_fetch_add(&o->runs, 1);
}

typedef struct all_done {
	outcome *o;
	int      n;
} all_done;

static int
ran_once_each(void *arg)
{
	all_done *a = arg;

	for (int i = 0; i < a->n; i++) {
		if (atomic_load(&a->o[i].runs) == 0) {
			return 0;
		}
	}
	return 1;
}

static void
wait_all(outcome *o, int n)
{
	all_done a = {o, n};

	cr_assert_eq(dtxt_wait_until(ran_once_each, &a, 5, 10000), 0,
	    "a callback never ran");
	for (int i = 0; i < n; i++) {
		cr_assert_eq(atomic_load(&o[i].runs), 1, "call %d", i);
	}
}

static void
queue(dtxd_peer *peer, const char *gid, uint32_t branch, const char *pl,
    uint32_t timeout_ms, outcome *o)
{
	dtxi_call c;

	memset(&c, 0, sizeof(c));
	dtxi_strlcpy(c.gid, gid, sizeof(c.gid));
	dtxi_strlcpy(c.method, "op", sizeof(c.method));
	c.branch_id   = branch;
	c.phase       = DTX_PHASE_PREPARE;
	c.attempt     = 1;
	c.payload.ptr = (const uint8_t *)pl;
	c.payload.len = strlen(pl);
	cr_assert_eq(
	    dtxd_dispatcher_queue(D, peer, &c, timeout_ms, done, o), 0);
}

Test(dispatcher, sends_one_pass_of_calls_to_a_peer_as_one_batch)
{
	static outcome o[5];
	dtxd_peer     *peer;
	uint64_t       calls, msgs;

	cr_assert_eq(dtxd_dispatcher_peer(D, P.url, &peer, NULL, 0), 0);
	for (uint32_t i = 0; i < 5; i++) {
		queue(peer, "g1", i, i == 3 ? "no" : "ok", 5000, &o[i]);
	}
	cr_assert_eq(atomic_load(&P.frames), 0, "sent before the flush");
	dtxd_dispatcher_flush(D);
	wait_all(o, 5);
	for (uint32_t i = 0; i < 5; i++) {
		char want[16];

		snprintf(want, sizeof(want), "g1/%u", i);
		cr_assert_eq(o[i].rv, 0);
		cr_assert_str_eq(o[i].payload, want, "answers out of order");
		cr_assert_eq(
		    o[i].status, i == 3 ? DTX_BRANCH_REFUSED : DTX_BRANCH_OK);
	}
	cr_assert_eq(atomic_load(&P.batches), 1);
	cr_assert_eq(atomic_load(&P.singles), 0);
	dtxd_dispatcher_get_counts(D, &calls, &msgs);
	cr_assert_eq(calls, 5);
	cr_assert_eq(msgs, 1);
}

Test(dispatcher, sends_a_lone_call_plain)
{
	static outcome o;
	dtxd_peer     *peer;

	cr_assert_eq(dtxd_dispatcher_peer(D, P.url, &peer, NULL, 0), 0);
	queue(peer, "g2", 7, "ok", 5000, &o);
	dtxd_dispatcher_flush(D);
	wait_all(&o, 1);
	cr_assert_eq(o.rv, 0);
	cr_assert_str_eq(o.payload, "g2/7");
	cr_assert_eq(atomic_load(&P.singles), 1);
	cr_assert_eq(atomic_load(&P.batches), 0);
}

Test(dispatcher, falls_back_to_single_calls_for_a_peer_without_batches)
{
	static outcome o[3], again[2];
	dtxd_peer     *peer;

	atomic_store(&P.mode, MODE_NO_BATCH);
	cr_assert_eq(dtxd_dispatcher_peer(D, P.url, &peer, NULL, 0), 0);
	for (uint32_t i = 0; i < 3; i++) {
		queue(peer, "g3", i, "ok", 5000, &o[i]);
	}
	dtxd_dispatcher_flush(D);
	wait_all(o, 3);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_eq(
		    o[i].rv, 0, "call %u: %s", i, dtx_strerror(o[i].rv));
		cr_assert_eq(o[i].status, DTX_BRANCH_OK);
	}
	cr_assert_eq(atomic_load(&P.batches), 1);
	cr_assert_eq(atomic_load(&P.singles), 3);
	// From now on, that peer gets plain calls only.
	for (uint32_t i = 0; i < 2; i++) {
		queue(peer, "g4", i, "ok", 5000, &again[i]);
	}
	dtxd_dispatcher_flush(D);
	wait_all(again, 2);
	cr_assert_eq(atomic_load(&P.batches), 1);
	cr_assert_eq(atomic_load(&P.singles), 5);
}

Test(dispatcher, ends_an_unanswered_call_at_its_timeout)
{
	static outcome o[2];
	dtxd_peer     *peer;

	atomic_store(&P.mode, MODE_SILENT);
	cr_assert_eq(dtxd_dispatcher_peer(D, P.url, &peer, NULL, 0), 0);
	queue(peer, "g5", 0, "ok", 200, &o[0]);
	queue(peer, "g5", 1, "ok", 200, &o[1]);
	dtxd_dispatcher_flush(D);
	wait_all(o, 2);
	cr_assert_eq(o[0].rv, DTX_ETIMEDOUT, "%s", dtx_strerror(o[0].rv));
	cr_assert_eq(o[1].rv, DTX_ETIMEDOUT, "%s", dtx_strerror(o[1].rv));
}

Test(dispatcher, refuses_an_endpoint_it_cannot_dial)
{
	dtxd_peer *peer = NULL;

	cr_assert_eq(
	    dtxd_dispatcher_peer(D, "nosuch://x", &peer, NULL, 0), DTX_EINVAL);
	cr_assert_eq(
	    dtxd_dispatcher_peer(D, "tcp://", &peer, NULL, 0), DTX_EINVAL);
	cr_assert_null(peer);
}

static int
frames_seen(void *arg)
{
	(void)arg;
	return atomic_load(&P.frames) > 0;
}

Test(dispatcher, close_ends_the_calls_in_flight)
{
	static outcome o;
	dtxd_peer     *peer;

	atomic_store(&P.mode, MODE_SILENT);
	cr_assert_eq(dtxd_dispatcher_peer(D, P.url, &peer, NULL, 0), 0);
	queue(peer, "g6", 0, "ok", 60000, &o);
	dtxd_dispatcher_flush(D);
	// Once the participant holds the call, the dispatcher closes.
	cr_assert_eq(dtxt_wait_until(frames_seen, NULL, 5, 10000), 0);
	dtxd_dispatcher_close(D);
	D = NULL;
	cr_assert_eq(
	    atomic_load(&o.runs), 1, "close returned before the callback");
	cr_assert_eq(o.rv, DTX_ECLOSED, "%s", dtx_strerror(o.rv));
}
