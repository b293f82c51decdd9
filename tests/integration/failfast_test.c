// SPDX-License-Identifier: MIT
//
// dtx.integration.failfast: a client is told what is wrong, quickly, with
// the right culprit. A coordinator that is down is DTX_EUNREACHABLE within
// about a second, naming its URL and "Connection refused"; one that takes
// requests and never answers is DTX_ETIMEDOUT, "did not answer"; closing a
// client ends its commits in flight with DTX_ECLOSED. Against a real dtxd,
// a commit whose participant is down or dies returns the decided state
// (ABORTING, COMMITTING, COMPENSATING) within the transaction's timeout
// plus one call timeout (asserted with 2 s to spare), with that branch's
// error (unreachable, or no answer in time) and a message naming the
// participant; dtxd goes on delivering, and dtx_tx_wait sees the outcome
// once the participant is back.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "world_suite.h"

TestSuite(
    failfast, .init = world_setup, .fini = world_teardown, .timeout = 60);

#define TIMEOUT_MS      2000
#define CALL_TIMEOUT_MS 500
// What a commit may take: the transaction's timeout, one call timeout,
// and the loose margin the issue allows.
#define BOUND_MS (TIMEOUT_MS + CALL_TIMEOUT_MS + 2000)

// ---------------------------------------------------------------------
// A coordinator that takes every request and never answers
// ---------------------------------------------------------------------

typedef struct silent {
	nng_socket  sock;
	pthread_t   thread;
	atomic_bool done;
	atomic_int  received;
} silent;

static void *
silent_main(void *arg)
{
	silent *s = arg;

	while (!atomic_load(&s->done)) {
		nng_ctx  ctx;
		nng_aio *aio;
		// Each request on its own context that is never answered, so
		// the next one can be received.
		if (nng_ctx_open(&ctx, s->sock) != 0) {
			break;
		}
		if (nng_aio_alloc(&aio, NULL, NULL) != 0) {
			nng_ctx_close(ctx);
			break;
		}
		nng_aio_set_timeout(aio, 50);
		nng_ctx_recv(ctx, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) == 0) {
			nng_msg_free(nng_aio_get_msg(aio));
			atomic_fetch_add(&s->received, 1);
			// Kept open, unanswered, until the end.
		} else {
			nng_ctx_close(ctx);
		}
		nng_aio_free(aio);
	}
	return NULL;
}

static void
silent_start(silent *s, const char *url)
{
	memset(s, 0, sizeof(*s));
	cr_assert_eq(nng_rep0_open(&s->sock), 0);
	cr_assert_eq(nng_listen(s->sock, url, NULL, 0), 0);
	cr_assert_eq(pthread_create(&s->thread, NULL, silent_main, s), 0);
}

static void
silent_stop(silent *s)
{
	atomic_store(&s->done, true);
	pthread_join(s->thread, NULL);
	nng_close(s->sock);
}

// ---------------------------------------------------------------------
// The client alone
// ---------------------------------------------------------------------

static dtx_tx *
one_branch_tx(dtx_client *c, const char *endpoint)
{
	dtx_tx *tx;

	cr_assert_eq(dtx_tx_begin(&tx, c, DTX_2PC), 0);
	cr_assert_eq(dtx_tx_add(tx, endpoint, "op", "", 0), 0);
	return tx;
}

Test(failfast, a_dead_coordinator_is_unreachable_within_a_second_with_why)
{
	char        url[DTXT_URL_MAX];
	char        msg[DTX_MESSAGE_MAX + 1];
	dtx_client *c;
	dtx_tx     *tx;
	dtx_state   st;
	int64_t     t0, el;
	int         rv;

	cr_assert_eq(dtxt_free_url(url, sizeof(url)), 0);
	cr_assert_eq(dtx_client_open(&c, url), 0);
	tx = one_branch_tx(c, "tcp://127.0.0.1:1");
	t0 = dtxi_mono_ms();
	rv = dtx_tx_commit(tx, &st);
	el = dtxi_mono_ms() - t0;
	cr_assert_eq(rv, DTX_EUNREACHABLE, "commit: %s (%s)", dtx_strerror(rv),
	    dtx_tx_message(tx));
	cr_assert_lt(el, 3000, "took %lld ms", (long long)el);
	cr_assert(strstr(dtx_tx_message(tx), url) != NULL &&
	        strstr(dtx_tx_message(tx), "Connection refused") != NULL,
	    "message does not name the URL and the reason: %s",
	    dtx_tx_message(tx));
	dtx_tx_free(tx);

	// The calls without a tx say it through the client.
	t0 = dtxi_mono_ms();
	cr_assert_eq(dtx_client_abort(c, "g", &st), DTX_EUNREACHABLE);
	cr_assert_lt(dtxi_mono_ms() - t0, 3000);
	dtx_client_message(c, msg, sizeof(msg));
	cr_assert(strstr(msg, "Connection refused") != NULL, "%s", msg);

	// The connect timeout is the client's to choose.
	cr_assert_eq(dtx_client_set_connect_timeout_ms(c, 0), DTX_EINVAL);
	cr_assert_eq(dtx_client_set_connect_timeout_ms(c, 200), 0);
	t0 = dtxi_mono_ms();
	cr_assert_eq(dtx_client_resolve(c, "g", &st), DTX_EUNREACHABLE);
	el = dtxi_mono_ms() - t0;
	cr_assert(el >= 150 && el < 1500, "took %lld ms", (long long)el);
	dtx_client_close(c);
}

Test(failfast, a_silent_coordinator_did_not_answer_in_time)
{
	char        url[DTXT_URL_MAX];
	char        msg[DTX_MESSAGE_MAX + 1];
	silent      s;
	dtx_client *c;
	dtx_tx     *tx;
	dtx_state   st;
	int64_t     t0, el;
	int         rv;

	cr_assert_eq(dtxt_free_url(url, sizeof(url)), 0);
	silent_start(&s, url);
	cr_assert_eq(dtx_client_open(&c, url), 0);
	cr_assert_eq(dtx_client_set_timeout_ms(c, 400), 0);

	cr_assert_eq(dtx_tx_attach(&tx, c, "g"), 0);
	t0 = dtxi_mono_ms();
	rv = dtx_tx_status(tx, &st);
	el = dtxi_mono_ms() - t0;
	cr_assert_eq(rv, DTX_ETIMEDOUT, "%s (%s)", dtx_strerror(rv),
	    dtx_tx_message(tx));
	cr_assert(el >= 350 && el < 3000, "took %lld ms", (long long)el);
	cr_assert(
	    strstr(dtx_tx_message(tx), "did not answer within") != NULL &&
	        strstr(dtx_tx_message(tx), url) != NULL,
	    "%s", dtx_tx_message(tx));
	dtx_tx_free(tx);

	dtx_coordinator_stats cs;
	cr_assert_eq(dtx_client_stats(c, &cs), DTX_ETIMEDOUT);
	dtx_client_message(c, msg, sizeof(msg));
	cr_assert(strstr(msg, "did not answer") != NULL, "%s", msg);
	dtx_client_close(c);
	silent_stop(&s);
}

typedef struct ended {
	atomic_int n;
	atomic_int closed;
} ended;

static void
on_end(dtx_tx *tx, int rv, dtx_state st, void *arg)
{
	ended *e = arg;

	(void)st;
	if (rv == DTX_ECLOSED) {
		atomic_fetch_add(&e->closed, 1);
	}
	dtx_tx_free(tx);
	atomic_fetch_add(&e->n, 1);
}

typedef struct recv_cond {
	silent *s;
	int     n;
} recv_cond;

static int
received(void *arg)
{
	recv_cond *rc = arg;
	return atomic_load(&rc->s->received) >= rc->n;
}

Test(failfast, close_ends_the_commits_in_flight_with_closed)
{
	enum { N = 20 };
	char        url[DTXT_URL_MAX];
	silent      s;
	dtx_client *c;
	ended       e = {0};
	int64_t     t0, el;

	cr_assert_eq(dtxt_free_url(url, sizeof(url)), 0);
	silent_start(&s, url);
	cr_assert_eq(dtx_client_open(&c, url), 0);
	for (int i = 0; i < N; i++) {
		dtx_tx *tx = one_branch_tx(c, "tcp://127.0.0.1:1");
		cr_assert_eq(dtx_tx_commit_async(tx, on_end, &e), 0);
	}
	recv_cond rc = {&s, N};
	cr_assert_eq(dtxt_wait_until(received, &rc, 10, 5000), 0,
	    "the coordinator got %d of %d requests", atomic_load(&s.received),
	    N);
	t0 = dtxi_mono_ms();
	dtx_client_close(c);
	el = dtxi_mono_ms() - t0;
	cr_assert_lt(el, 2000, "close took %lld ms", (long long)el);
	cr_assert_eq(atomic_load(&e.n), N, "%d callbacks", atomic_load(&e.n));
	cr_assert_eq(atomic_load(&e.closed), N, "%d with DTX_ECLOSED",
	    atomic_load(&e.closed));
	silent_stop(&s);
}

// ---------------------------------------------------------------------
// A real dtxd and participants that die
// ---------------------------------------------------------------------

static void
start_dtxd(void)
{
	dtxt_dtxd_opts o = {0};

	o.timeout_ms      = TIMEOUT_MS;
	o.call_timeout_ms = CALL_TIMEOUT_MS;
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
}

static dtxt_part *
part(const char *name, bool start)
{
	dtxt_part *p = dtxt_world_part(&w, name);

	CHECK(p != NULL, "no address for %s", name);
	if (start) {
		CHECK(dtxt_part_start(p) == 0, "%s did not start", name);
	}
	return p;
}

// The result of branch i, with its error and message as the client got
// them.
static dtx_branch_result
result(dtx_tx *tx, unsigned i)
{
	dtx_branch_result r;

	CHECK_RV(dtx_tx_branch_result(tx, i, &r));
	return r;
}

// Commits tx and checks it returned the decided state `want` within
// bound_ms, and that branch `bad` says err with its participant's URL.
static void
commit_decided_within(dtx_tx *tx, int64_t bound_ms, dtx_state want,
    unsigned bad, int err, const dtxt_part *p, const char *words)
{
	dtx_state         st = 0;
	int64_t           t0 = dtxi_mono_ms();
	int               rv = dtx_tx_commit(tx, &st);
	int64_t           el = dtxi_mono_ms() - t0;
	dtx_branch_result r;

	CHECK(
	    rv == 0, "commit: %s (%s)", dtx_strerror(rv), dtx_tx_message(tx));
	CHECK(st == want, "commit returned %s, expected %s (%s)",
	    dtx_state_name(st), dtx_state_name(want), dtx_tx_message(tx));
	CHECK(el < bound_ms, "commit took %lld ms, bound %lld", (long long)el,
	    (long long)bound_ms);
	r = result(tx, bad);
	CHECK(r.error == err, "branch %u error %s, expected %s", bad,
	    dtx_strerror(r.error), dtx_strerror(err));
	CHECK(strstr(r.message, p->url) != NULL &&
	        strstr(r.message, words) != NULL,
	    "branch %u message does not name %s and say \"%s\": %s", bad,
	    p->url, words, r.message);
	CHECK(strstr(dtx_tx_message(tx), "goes on") != NULL,
	    "the commit's message does not say delivery goes on: %s",
	    dtx_tx_message(tx));
	cr_log_info(
	    "%s in %lld ms: %s", dtx_state_name(st), (long long)el, r.message);
}

static void
commit_decided(dtx_tx *tx, dtx_state want, unsigned bad, int err,
    const dtxt_part *p, const char *words)
{
	commit_decided_within(tx, BOUND_MS, want, bad, err, p, words);
}

Test(failfast, a_2pc_with_a_dead_participant_returns_aborting_in_time)
{
	dtx_tx   *tx;
	dtx_state st;

	start_dtxd();
	dtxt_part *a = part("a", true);
	dtxt_part *b = part("b", false); // down from the start
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "", 0));
	commit_decided(tx, DTX_STATE_ABORTING, 1, DTX_EUNREACHABLE, b,
	    "Connection refused");
	// dtxd keeps delivering the abort; the participant comes back.
	CHECK(dtxt_part_start(b) == 0, "b did not start");
	CHECK_RV(dtx_tx_wait(tx, 20000, &st));
	CHECK(st == DTX_STATE_ABORTED, "then %s", dtx_state_name(st));
	CHECK(result(tx, 1).error == 0, "error kept after the answer");
	dtx_tx_free(tx);
}

// A call timeout longer than the transaction's: the prepare to the dead
// participant waits the whole call timeout for a connection, past the
// deadline, and so does the abort after it; the client is still told
// within the timeout plus one call timeout (the decided reply's own
// timer), not after both calls.
Test(failfast, a_call_timeout_past_the_deadline_still_bounds_the_commit)
{
	dtx_tx *tx;

	start_dtxd();
	dtxt_part *a = part("a", true);
	dtxt_part *b = part("b", false); // down from the start
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_set_timeout_ms(tx, 300));
	CHECK_RV(dtx_tx_set_call_timeout_ms(tx, 2500));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "", 0));
	// The reason ("Connection refused") is learnt by a probe after the
	// first call that found no connection, which is the one told here.
	commit_decided_within(tx, 300 + 2500 + 1000, DTX_STATE_ABORTING, 1,
	    DTX_EUNREACHABLE, b, "unreachable");
	dtx_tx_free(tx);
}

// True once dtxd holds branch 1's vote (OK) for the gid of the handle.
static int
voted_b(void *arg)
{
	dtx_tx           *h = arg;
	dtx_state         st;
	dtx_branch_result r;

	return dtx_tx_status(h, &st) == 0 &&
	    dtx_tx_branch_result(h, 1, &r) == 0 &&
	    r.forward_status == DTX_BRANCH_OK;
}

typedef struct outcome {
	atomic_int done;
	int        rv;
	dtx_state  st;
	int64_t    at;
} outcome;

static void
on_outcome(dtx_tx *tx, int rv, dtx_state st, void *arg)
{
	outcome *o = arg;

	(void)tx;
	o->rv = rv;
	o->st = st;
	o->at = dtxi_mono_ms();
	atomic_store(&o->done, 1);
}

static int
outcome_done(void *arg)
{
	return atomic_load(&((outcome *)arg)->done);
}

// Starts an asynchronous 2PC commit of a (which votes 400 ms late, within
// the call timeout) and b, and kills b once dtxd has its vote, so that b
// is gone when the commit is decided. Returns the time the commit
// started.
static int64_t
commit_and_lose_b(dtx_tx *tx, dtxt_part *a, dtxt_part *b, outcome *out)
{
	dtx_tx *h;
	int64_t t0;

	CHECK_RV(dtx_tx_add(tx, a->url, "op", "prepare=sleep:400", 17));
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "", 0));
	t0 = dtxi_mono_ms();
	CHECK_RV(dtx_tx_commit_async(tx, on_outcome, out));
	CHECK_RV(dtx_tx_attach(&h, w.client, dtx_tx_gid(tx)));
	CHECK(dtxt_wait_until(voted_b, h, 10, 5000) == 0,
	    "dtxd never had b's vote");
	dtx_tx_free(h);
	dtxt_kill(b->proc);
	return t0;
}

Test(failfast, a_2pc_whose_participant_dies_after_prepare_returns_committing)
{
	dtx_tx   *tx;
	dtx_state st;
	outcome   out = {0};
	int64_t   t0;

	start_dtxd();
	dtxt_part *a = part("a", true);
	dtxt_part *b = part("b", true);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	t0 = commit_and_lose_b(tx, a, b, &out);
	CHECK(dtxt_wait_until(outcome_done, &out, 10, BOUND_MS + 5000) == 0,
	    "no outcome");
	CHECK(out.rv == 0 && out.st == DTX_STATE_COMMITTING,
	    "commit: %s %s (%s)", dtx_strerror(out.rv), dtx_state_name(out.st),
	    dtx_tx_message(tx));
	CHECK(
	    out.at - t0 < BOUND_MS, "took %lld ms", (long long)(out.at - t0));
	dtx_branch_result r = result(tx, 1);
	CHECK(r.error == DTX_EUNREACHABLE && strstr(r.message, b->url) &&
	        strstr(r.message, "unreachable"),
	    "branch 1: %s: %s", dtx_strerror(r.error), r.message);
	// The decision stands; b comes back and commits.
	CHECK(dtxt_part_start(b) == 0, "b did not restart");
	CHECK_RV(dtx_tx_wait(tx, 20000, &st));
	CHECK(st == DTX_STATE_COMMITTED, "then %s", dtx_state_name(st));
	dtx_tx_free(tx);
}

Test(failfast, a_slow_participant_is_told_apart_from_an_unreachable_one)
{
	dtx_tx *tx;

	start_dtxd();
	dtxt_part *a = part("a", true);
	dtxt_part *b = part("b", true);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	// b answers every commit after three times the call timeout.
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "commit=sleep:1500", 17));
	commit_decided(tx, DTX_STATE_COMMITTING, 1, DTX_ETIMEDOUT, b,
	    "did not answer within 500 ms");
	dtx_tx_free(tx);
}

Test(failfast, a_saga_with_a_dead_step_returns_compensating_in_time)
{
	dtx_tx   *tx;
	dtx_state st;

	start_dtxd();
	dtxt_part *a = part("a", true);
	dtxt_part *b = part("b", false);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "", 0));
	commit_decided(tx, DTX_STATE_COMPENSATING, 1, DTX_EUNREACHABLE, b,
	    "Connection refused");
	CHECK(dtxt_part_start(b) == 0, "b did not start");
	CHECK_RV(dtx_tx_wait(tx, 20000, &st));
	CHECK(st == DTX_STATE_COMPENSATED, "then %s", dtx_state_name(st));
	dtx_tx_free(tx);
}

// With wait_all, the same commit does not come back decided: it waits
// until b is back and has committed.
Test(failfast, wait_all_still_waits_for_every_acknowledgement)
{
	dtx_tx *tx;
	outcome out = {0};

	start_dtxd();
	dtxt_part *a = part("a", true);
	dtxt_part *b = part("b", true);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_set_wait_all(tx, true));
	commit_and_lose_b(tx, a, b, &out);
	CHECK(dtxt_wait_until(outcome_done, &out, 50, BOUND_MS) == ETIMEDOUT,
	    "wait_all returned %s before b was back", dtx_state_name(out.st));
	CHECK(dtxt_part_start(b) == 0, "b did not restart");
	CHECK(dtxt_wait_until(outcome_done, &out, 10, 20000) == 0,
	    "no outcome once b was back");
	CHECK(out.rv == 0 && out.st == DTX_STATE_COMMITTED, "%s %s",
	    dtx_strerror(out.rv), dtx_state_name(out.st));
	CHECK(dtx_tx_set_wait_all(tx, false) == DTX_ESTATE, "after commit");
	dtx_tx_free(tx);
}
