// SPDX-License-Identifier: MIT
//
// requests: the Coordinator API handlers, driven through dtxd's own modules
// assembled in this process (store in a fresh directory, dispatcher, loop,
// server, as main.c assembles them), with libdtx's client and an in-process
// participant. Each request kind is checked against memory (a live
// transaction) and against the store (a finished one, or none):
// idempotent resubmission and EEXIST, presumed abort for an unknown gid,
// Abort of a committed transaction refused, a finished transaction answered
// from its record without running again, concurrent Submits of one fresh
// gid making one transaction, clients waiting at a stop told
// DTX_ESHUTDOWN, and reads off the loop that come back after the
// transaction moved on (a reader hook holds a read's result back while the
// test moves the transaction).

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "dispatcher.h"
#include "harness.h"
#include "loopstate.h"
#include "recovery.h"
#include "server.h"
#include "store.h"
#include "strs.h"
#include "transport.h"
#include "txmgr.h"

static char             dir[] = "/tmp/dtx-requests-XXXXXX"; // store, sockets
static char             url[DTXT_URL_MAX];                  // dtxd
static char             purl[DTXT_URL_MAX];                 // the participant
static char             down[DTXT_URL_MAX]; // nobody listens there
static dtxd_store      *st;
static dtxd_dispatcher *disp;
static dtxd_txmgr      *mgr;
static dtxd_server     *srv;
static dtx_participant *part;
static dtx_client      *cli;
static atomic_int       prepares;

// A gate: a thread waits at it until the test opens it. "hold" (a method)
// waits at commit_gate in its COMMIT; the reader hook waits at read_gate
// after a List scan.
typedef struct gate {
	pthread_mutex_t mu;
	pthread_cond_t  cv;
	bool            reached;
	bool            open;
} gate;

static gate commit_gate = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
static gate read_gate = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
static gate exec_gate = {
    PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
static atomic_int executes;
static atomic_int compensates;

static void
gate_pass(gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->reached = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->open) {
		pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
}

static void
gate_open(gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

static int
gate_reached(void *arg)
{
	gate *g = arg;
	pthread_mutex_lock(&g->mu);
	bool r = g->reached;
	pthread_mutex_unlock(&g->mu);
	return r;
}

static dtx_result
cb_hold(const dtx_call *call, dtx_reply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	if (call->phase == DTX_PHASE_COMMIT) {
		gate_pass(&commit_gate);
	}
	return DTX_OK;
}

// "slow": its EXECUTE waits at exec_gate; EXECUTE and COMPENSATE are
// counted as they come.
static dtx_result
cb_slow(const dtx_call *call, dtx_reply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	if (call->phase == DTX_PHASE_EXECUTE) {
		atomic_fetch_add(&executes, 1);
		gate_pass(&exec_gate);
	} else if (call->phase == DTX_PHASE_COMPENSATE) {
		atomic_fetch_add(&compensates, 1);
	}
	return DTX_OK;
}

// The reader hook: a List scan's result waits at read_gate.
static void
hold_list(void *arg, const dtxd_read *rd)
{
	(void)arg;
	if (rd->kind == DTXD_READ_LIST) {
		gate_pass(&read_gate);
	}
}

static dtx_result
cb_ok(const dtx_call *call, dtx_reply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	if (call->phase == DTX_PHASE_PREPARE) {
		atomic_fetch_add(&prepares, 1);
	}
	return DTX_OK;
}

static void
setup(void)
{
	dtxd_store_opts  so;
	dtxd_config      cfg;
	uint64_t         n;
	dtx_method_ops   ops  = {cb_ok, cb_ok, cb_ok, cb_ok, cb_ok};
	dtx_method_ops   hold = {cb_ok, cb_hold, cb_ok, cb_ok, cb_ok};
	dtx_method_ops   slow = {cb_ok, cb_ok, cb_ok, cb_slow, cb_slow};
	dtxd_server_opts o    = {.contexts = 64,
	       .max_frame                  = 4 * 1024 * 1024,
	       .max_payload                = DTX_PAYLOAD_MAX_DEFAULT,
	       .operator_cmds              = true}; // List and Abort too

	// ipc addresses in the test's own directory: no other test can take
	// them between choosing and listening, as a free TCP port can be.
	cr_assert_not_null(mkdtemp(dir));
	snprintf(url, sizeof(url), "ipc://%s/dtxd", dir);
	snprintf(purl, sizeof(purl), "ipc://%s/part", dir);
	snprintf(down, sizeof(down), "ipc://%s/down", dir);
	dtxd_store_opts_init(&so);
	cr_assert_eq(dtxd_store_open(&st, dir, &so), 0);
	dtxd_config_init(&cfg);
	cfg.call_timeout_ms        = 300;
	cfg.policy.backoff_base_ms = 20;
	cfg.policy.backoff_max_ms  = 200;
	cr_assert_eq(dtxd_dispatcher_open(&disp, cfg.max_payload), 0);
	cr_assert_eq(dtxd_txmgr_open(&mgr, &cfg, st, disp), 0);
	cr_assert_eq(dtxd_recover(st, mgr, &n), 0);
	cr_assert_eq(dtxd_txmgr_start(mgr), 0);
	o.url = url;
	cr_assert_eq(
	    dtxd_server_open(&srv, &o, dtxd_txmgr_on_request, mgr), 0);
	cr_assert_eq(dtx_participant_open(&part), 0);
	cr_assert_eq(dtx_participant_register(part, "op", &ops, NULL), 0);
	cr_assert_eq(dtx_participant_register(part, "hold", &hold, NULL), 0);
	cr_assert_eq(dtx_participant_register(part, "slow", &slow, NULL), 0);
	cr_assert_eq(dtx_participant_listen(part, purl), 0);
	cr_assert_eq(dtx_client_open(&cli, url), 0);
	dtx_client_set_timeout_ms(cli, 10000);
}

static void
teardown(void)
{
	// Nothing may stay held at a gate.
	gate_open(&commit_gate);
	gate_open(&read_gate);
	gate_open(&exec_gate);
	dtx_client_close(cli);
	dtxd_txmgr_stop(mgr);
	dtxd_server_close(srv);
	dtxd_dispatcher_close(disp);
	dtxd_store_close(st);
	dtxd_txmgr_close(mgr);
	dtx_participant_close(part);
	dtxt_rmtree(dir);
}

TestSuite(requests, .init = setup, .fini = teardown, .timeout = 60);

static dtx_tx *
tx_to(const char *gid, const char *endpoint, const char *payload)
{
	dtx_tx *tx = NULL;

	cr_assert_eq(dtx_tx_begin(&tx, cli, DTX_2PC), 0);
	if (gid != NULL) {
		cr_assert_eq(dtx_tx_set_gid(tx, gid), 0);
	}
	cr_assert_eq(dtx_tx_set_timeout_ms(tx, 60000), 0);
	cr_assert_eq(dtx_tx_set_retries(tx, 1000), 0);
	cr_assert_eq(
	    dtx_tx_add(tx, endpoint, "op", payload, strlen(payload)), 0);
	return tx;
}

Test(requests, an_unknown_gid_is_not_found_and_presumed_aborted)
{
	dtx_state s  = 0;
	dtx_tx   *tx = NULL;

	cr_assert_eq(dtx_client_abort(cli, "nope", &s), DTX_ENOTFOUND);
	cr_assert_eq(dtx_client_resolve(cli, "nope", &s), 0);
	cr_assert_eq(s, DTX_STATE_ABORTED);
	cr_assert_eq(dtx_tx_attach(&tx, cli, "nope"), 0);
	cr_assert_eq(dtx_tx_status(tx, &s), DTX_ENOTFOUND);
	dtx_tx_free(tx);
}

Test(requests, a_live_transaction_is_answered_from_memory)
{
	dtx_tx   *tx = tx_to("live-1", down, "p");
	dtx_tx   *same, *other;
	dtx_state s = 0;

	// Its participant is down: it stays PREPARING, retrying.
	cr_assert_eq(dtx_tx_submit(tx), 0);
	cr_assert_eq(dtx_tx_status(tx, &s), 0);
	cr_assert_eq(s, DTX_STATE_PREPARING);
	cr_assert_eq(dtx_client_resolve(cli, "live-1", &s), 0);
	cr_assert_eq(s, DTX_STATE_PREPARING);
	// The same content again is the same transaction; other content
	// under its gid is refused.
	same = tx_to("live-1", down, "p");
	cr_assert_eq(dtx_tx_submit(same), 0);
	other = tx_to("live-1", down, "q");
	cr_assert_eq(dtx_tx_submit(other), DTX_EEXIST);
	// An operator abort ends it.
	cr_assert_eq(dtx_client_abort(cli, "live-1", &s), 0);
	cr_assert(s == DTX_STATE_ABORTING || s == DTX_STATE_ABORTED, "%s",
	    dtx_state_name(s));
	// (Its ABORT cannot reach the participant: it stays ABORTING, and
	// says so to a resolver.)
	cr_assert_eq(dtx_client_resolve(cli, "live-1", &s), 0);
	cr_assert_eq(s, DTX_STATE_ABORTING, "%s", dtx_state_name(s));
	cr_assert_eq(dtx_tx_submit(same), 0, "a resubmission while aborting");
	dtx_tx_free(tx);
	dtx_tx_free(same);
	dtx_tx_free(other);
}

static int
none_active(void *arg)
{
	dtx_coordinator_stats cs;

	(void)arg;
	return dtx_client_stats(cli, &cs) == 0 && cs.active == 0;
}

Test(requests, a_finished_transaction_is_answered_from_its_record)
{
	dtx_tx     *tx = tx_to("fin-1", purl, "p");
	dtx_tx     *again, *other;
	dtx_state   s = 0;
	dtx_tx_info info[4];
	unsigned    n = 0;
	char        next[DTX_GID_MAX + 1];

	cr_assert_eq(dtx_tx_commit(tx, &s), 0);
	cr_assert_eq(s, DTX_STATE_COMMITTED);
	cr_assert_eq(atomic_load(&prepares), 1);
	// Its final record is written once it left memory.
	cr_assert_eq(dtxt_wait_until(none_active, NULL, 5, 10000), 0,
	    "still in memory");

	cr_assert_eq(dtx_tx_status(tx, &s), 0);
	cr_assert_eq(s, DTX_STATE_COMMITTED);
	cr_assert_eq(dtx_client_resolve(cli, "fin-1", &s), 0);
	cr_assert_eq(s, DTX_STATE_COMMITTED);
	cr_assert_eq(dtx_client_abort(cli, "fin-1", &s), DTX_ESTATE);
	// Resubmitted, it is answered, not run again.
	again = tx_to("fin-1", purl, "p");
	cr_assert_eq(dtx_tx_commit(again, &s), 0);
	cr_assert_eq(s, DTX_STATE_COMMITTED);
	cr_assert_eq(atomic_load(&prepares), 1, "it ran again");
	other = tx_to("fin-1", purl, "q");
	cr_assert_eq(dtx_tx_commit(other, &s), DTX_EEXIST);
	cr_assert_eq(dtx_client_list(cli, 0, "", info, 4, &n, next), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(info[0].gid, "fin-1");
	cr_assert_eq(info[0].state, DTX_STATE_COMMITTED);
	cr_assert_eq(
	    dtx_client_list(cli, DTX_STATE_ABORTED, "", info, 4, &n, next), 0);
	cr_assert_eq(n, 0);
	dtx_tx_free(tx);
	dtx_tx_free(again);
	dtx_tx_free(other);
}

typedef struct racer {
	dtx_tx     *tx;
	atomic_int *ended;
	int         rv;
	dtx_state   st;
} racer;

static void
raced(dtx_tx *tx, int rv, dtx_state outcome, void *arg)
{
	racer *r = arg;

	(void)tx;
	r->rv = rv;
	r->st = outcome;
	atomic_fetch_add(r->ended, 1);
}

static int
all_ended(void *arg)
{
	return atomic_load((atomic_int *)arg) == 8;
}

Test(requests, concurrent_submits_of_one_fresh_gid_make_one_transaction)
{
	static racer r[8];
	atomic_int   ended;

	atomic_init(&ended, 0);
	for (int i = 0; i < 8; i++) {
		r[i].tx    = tx_to("race-1", purl, "p");
		r[i].ended = &ended;
	}
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(dtx_tx_commit_async(r[i].tx, raced, &r[i]), 0);
	}
	cr_assert_eq(dtxt_wait_until(all_ended, &ended, 5, 20000), 0);
	for (int i = 0; i < 8; i++) {
		cr_assert_eq(r[i].rv, 0, "%d: %s", i, dtx_strerror(r[i].rv));
		cr_assert_eq(r[i].st, DTX_STATE_COMMITTED);
		dtx_tx_free(r[i].tx);
	}
	cr_assert_eq(atomic_load(&prepares), 1, "%d transactions ran",
	    atomic_load(&prepares));
}

typedef struct waiter_arg {
	dtx_tx   *tx;
	int       rv;
	dtx_state st;
} waiter_arg;

static void *
commit_main(void *arg)
{
	waiter_arg *w = arg;
	w->rv         = dtx_tx_commit(w->tx, &w->st);
	return NULL;
}

static int
one_active(void *arg)
{
	dtx_coordinator_stats cs;

	(void)arg;
	return dtx_client_stats(cli, &cs) == 0 && cs.active == 1;
}

Test(requests, a_stop_tells_waiting_clients_the_coordinator_is_going)
{
	waiter_arg w = {.tx = tx_to("stop-1", down, "p")};
	pthread_t  th;

	cr_assert_eq(pthread_create(&th, NULL, commit_main, &w), 0);
	cr_assert_eq(dtxt_wait_until(one_active, NULL, 5, 10000), 0);
	dtxd_txmgr_stop(mgr);
	pthread_join(th, NULL);
	cr_assert_eq(w.rv, DTX_ESHUTDOWN, "%s", dtx_strerror(w.rv));
	dtx_tx_free(w.tx);
}

Test(requests, a_submit_without_gid_gets_one_made_here)
{
	static dtxi_request req;
	static dtxi_reply   rep;
	nng_socket          s;
	nng_msg            *m;
	char                why[DTX_MESSAGE_MAX + 1];

	memset(&req, 0, sizeof(req));
	req.version            = DTX_PROTOCOL_VERSION;
	req.kind               = DTXI_REQ_SUBMIT;
	req.u.submit.mode      = DTX_2PC;
	req.u.submit.wait      = true;
	req.u.submit.nbranches = 1;
	dtxi_branch_spec *b    = &req.u.submit.branches[0];
	dtxi_strlcpy(b->endpoint, purl, sizeof(b->endpoint));
	dtxi_strlcpy(b->method, "op", sizeof(b->method));
	cr_assert_eq(nng_req0_open(&s), 0);
	cr_assert_eq(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000), 0);
	cr_assert_eq(nng_dial(s, url, NULL, 0), 0);
	cr_assert_eq(dtxi_transport_encode_request(&req, &m), 0);
	cr_assert_eq(nng_sendmsg(s, m, 0), 0);
	cr_assert_eq(nng_recvmsg(s, &m, 0), 0);
	cr_assert_eq(dtxi_reply_decode(&rep, nng_msg_body(m), nng_msg_len(m),
	                 SIZE_MAX, SIZE_MAX, why),
	    0, "%s", why);
	nng_msg_free(m);
	nng_close(s);
	cr_assert_eq(rep.code, 0, "%s", rep.message);
	cr_assert_eq(rep.kind, DTXI_REP_TX);
	cr_assert_eq(strlen(rep.u.tx.gid), 32, "gid '%s'", rep.u.tx.gid);
	cr_assert_eq(rep.u.tx.state, DTX_STATE_COMMITTED);
	cr_assert_eq(atomic_load(&prepares), 1);
}

typedef struct lister {
	int         rv;
	unsigned    n;
	dtx_tx_info info[4];
} lister;

static void *
list_main(void *arg)
{
	lister *l = arg;
	char    next[DTX_GID_MAX + 1];

	l->rv = dtx_client_list(cli, 0, "", l->info, 4, &l->n, next);
	return NULL;
}

// The race of a List scanned off the loop: the scan reads a 2PC's record
// while it is COMMITTING (its client already told COMMITTED); before the
// loop looks at the page, the transaction finishes and leaves memory. The
// page must not show it COMMITTING: that is older than what the loop knew
// when the scan began.
Test(requests, a_list_never_shows_a_transaction_older_than_when_it_began)
{
	dtx_tx   *tx = NULL;
	lister    l  = {0};
	pthread_t th;

	cr_assert_eq(dtx_tx_begin(&tx, cli, DTX_2PC), 0);
	cr_assert_eq(dtx_tx_set_gid(tx, "list-race"), 0);
	cr_assert_eq(dtx_tx_add(tx, purl, "hold", "p", 1), 0);
	cr_assert_eq(dtx_tx_submit(tx), 0);
	// Its COMMIT is held at the participant: the decision is synced, the
	// record says COMMITTING.
	cr_assert_eq(dtxt_wait_until(gate_reached, &commit_gate, 2, 10000), 0,
	    "no COMMIT came");
	dtxd_reader_set_hook(mgr->reader, hold_list, NULL);
	cr_assert_eq(pthread_create(&th, NULL, list_main, &l), 0);
	cr_assert_eq(dtxt_wait_until(gate_reached, &read_gate, 2, 10000), 0,
	    "the List did not scan");
	// The scan has read COMMITTING. Now the transaction finishes and
	// leaves memory (its final record written) before the loop sees the
	// page.
	gate_open(&commit_gate);
	cr_assert_eq(dtxt_wait_until(none_active, NULL, 2, 10000), 0,
	    "still in memory");
	gate_open(&read_gate);
	pthread_join(th, NULL);
	dtxd_reader_set_hook(mgr->reader, NULL, NULL);
	cr_assert_eq(l.rv, 0, "%s", dtx_strerror(l.rv));
	cr_assert_eq(l.n, 1);
	cr_assert_str_eq(l.info[0].gid, "list-race");
	cr_assert_eq(l.info[0].state, DTX_STATE_COMMITTED, "listed %s",
	    dtx_state_name(l.info[0].state));
	dtx_tx_free(tx);
}

// An operator Abort of a saga whose step is running. Only a transaction
// recovered at start-up and not yet resumed is resumed (RECOVER) before the
// abort; a running one must keep its call in flight: the step's
// compensation waits for that EXECUTE to end, and no second EXECUTE is
// sent over it.
Test(requests, an_abort_of_a_running_saga_keeps_its_call_in_flight)
{
	dtx_tx   *tx = NULL;
	dtx_state s  = 0;

	cr_assert_eq(dtx_tx_begin(&tx, cli, DTX_SAGA), 0);
	cr_assert_eq(dtx_tx_set_gid(tx, "abort-running"), 0);
	cr_assert_eq(dtx_tx_set_timeout_ms(tx, 60000), 0);
	cr_assert_eq(dtx_tx_add(tx, purl, "slow", "p", 1), 0);
	cr_assert_eq(dtx_tx_submit(tx), 0);
	cr_assert_eq(dtxt_wait_until(gate_reached, &exec_gate, 2, 10000), 0,
	    "no EXECUTE came");
	cr_assert_eq(dtx_client_abort(cli, "abort-running", &s), 0);
	cr_assert_eq(s, DTX_STATE_COMPENSATING, "%s", dtx_state_name(s));
	gate_open(&exec_gate);
	cr_assert_eq(dtx_tx_wait(tx, 10000, &s), 0);
	cr_assert_eq(s, DTX_STATE_COMPENSATED, "%s", dtx_state_name(s));
	cr_assert_eq(atomic_load(&executes), 1, "%d EXECUTE calls",
	    atomic_load(&executes));
	cr_assert_eq(atomic_load(&compensates), 1, "%d COMPENSATE calls",
	    atomic_load(&compensates));
	dtx_tx_free(tx);
}
