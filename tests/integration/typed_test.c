// SPDX-License-Identifier: MIT
//
// typed_test: generated code end to end. A real dtxd and dtx-typedpart (a
// participant built on the golden generated files of tests/generator)
// serve transactions that this client builds with the generated
// <method>_add() calls and whose replies it decodes with <method>_reply():
// typed 2PC commit and abort, typed saga commit and compensation, a method
// of kind BOTH in both modes, a malformed payload answered BAD_REQUEST, a
// mode mismatch refused when the branch is added, and the barrier under
// generated callbacks, across a crash of the participant.

#include "world_suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_decode.h>

#include "inventory.dtx.h"
#include "trip.dtx.h"

static char       purl[DTXT_URL_MAX];
static char       plog[DTXT_PATH_MAX];
static char       pout[DTXT_PATH_MAX];
static char       pstore[DTXT_PATH_MAX];
static dtxt_proc *part;

static const char *
typedpart_bin(void)
{
	const char *bin = getenv("DTX_TYPEDPART_BIN");

	cr_assert(
	    bin != NULL, "DTX_TYPEDPART_BIN is not set (run under CTest)");
	return bin;
}

// Starts dtx-typedpart (with the barrier when store) and waits until it
// listens; crash_at, when not NULL, becomes DTX_PARTICIPANT_CRASH_AT.
static dtxt_proc *
start_part(bool store, const char *crash_at)
{
	char        crash[64];
	char *const env[] = {crash, NULL};
	dtxt_proc  *p;

	snprintf(crash, sizeof(crash), "DTX_PARTICIPANT_CRASH_AT=%s",
	    crash_at != NULL ? crash_at : "");
	if (store) {
		char *const argv[] = {(char *)typedpart_bin(), "--listen",
		    purl, "--log", plog, "--store", pstore, NULL};
		p                  = dtxt_spawn("typedpart", argv, env, pout);
	} else {
		char *const argv[] = {(char *)typedpart_bin(), "--listen",
		    purl, "--log", plog, NULL};
		p                  = dtxt_spawn("typedpart", argv, env, pout);
	}
	CHECK(p != NULL, "cannot start dtx-typedpart");
	CHECK(dtxt_wait_tcp(p, purl, 5000) == 0,
	    "dtx-typedpart did not listen:\n%s", dtxt_read_file(pout));
	return p;
}

static void
setup(void)
{
	world_setup();
	cr_assert_eq(
	    dtxt_world_start_dtxd(&w, NULL), 0, "dtxd: see %s", w.log);
	cr_assert_eq(dtxt_free_url(purl, sizeof(purl)), 0);
	snprintf(plog, sizeof(plog), "%s/typed.calls", w.dir);
	snprintf(pout, sizeof(pout), "%s/typed.out", w.dir);
	snprintf(pstore, sizeof(pstore), "%s/typed.db", w.dir);
}

TestSuite(typed, .init = setup, .fini = world_teardown, .timeout = 120);

static void
reserve(dtx_tx *tx, const char *sku, uint32_t qty)
{
	shop_inventory_ReserveRequest r =
	    shop_inventory_ReserveRequest_init_zero;

	snprintf(r.sku, sizeof(r.sku), "%s", sku);
	r.qty = qty;
	CHECK_RV(shop_inventory_Inventory_Reserve_add(tx, purl, &r));
}

// A Booking for who with n legs, and a note (a pointer field) that the
// participant receives decoded and releases.
static void
booking(travel_Booking *b, const char *who, unsigned n)
{
	static const char note[] = "window";

	*b = (travel_Booking)travel_Booking_init_zero;
	snprintf(b->who, sizeof(b->who), "%s", who);
	b->legs_count = n;
	for (unsigned i = 0; i < n; i++) {
		snprintf(b->legs[i], sizeof(b->legs[i]), "leg-%u", i);
	}
	b->note = malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(sizeof(note)));
	cr_assert(b->note != NULL);
	b->note->size = sizeof(note);
	memcpy(b->note->bytes, note, sizeof(note));
}

static void
book(dtx_tx *tx, const char *who, unsigned legs)
{
	travel_Booking b;

	booking(&b, who, legs);
	CHECK_RV(travel_Flights_Book_add(tx, purl, &b));
	pb_release(travel_Booking_fields, &b);
}

static void
hold(dtx_tx *tx, const char *who)
{
	travel_Booking b;

	booking(&b, who, 1);
	CHECK_RV(travel_Flights_Hold_add(tx, purl, &b));
	pb_release(travel_Booking_fields, &b);
}

static dtx_state
commit(dtx_tx *tx)
{
	dtx_state st = 0;

	CHECK(dtx_tx_commit(tx, &st) == 0, "commit: %s", dtx_tx_message(tx));
	return st;
}

// Number of "CALL <phase> <gid> <branch>" lines (any attempt, result).
static size_t
calls(const char *phase, const dtx_tx *tx, int branch)
{
	dtxt_log l;
	size_t   n;

	dtxt_log_load(&l, plog);
	n = dtxt_log_count(&l, DTXT_CALL, dtx_tx_gid(tx), branch, phase, NULL);
	dtxt_log_fini(&l);
	return n;
}

Test(typed, a_2pc_commits_with_the_request_decoded_by_each_callback)
{
	dtx_tx *tx;

	part = start_part(false, NULL);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	reserve(tx, "widget", 3);
	reserve(tx, "gear", 5);
	CHECK(commit(tx) == DTX_STATE_COMMITTED, "not committed");
	CHECK(calls("PREPARE", tx, 0) == 1 && calls("PREPARE", tx, 1) == 1,
	    "prepares");
	CHECK(calls("COMMIT", tx, 0) == 1 && calls("COMMIT", tx, 1) == 1,
	    "commits");
	// The prepares' typed replies, kept by dtxd next to the commits'.
	{
		shop_inventory_ReserveReply r;
		dtx_branch_result           br;

		CHECK_RV(shop_inventory_Inventory_Reserve_reply(tx, 0, &r));
		CHECK(r.left == 97, "branch 0 left %u", (unsigned)r.left);
		CHECK_RV(shop_inventory_Inventory_Reserve_reply(tx, 1, &r));
		CHECK(r.left == 95, "branch 1 left %u", (unsigned)r.left);
		CHECK_RV(dtx_tx_branch_result(tx, 1, &br));
		CHECK(br.phase == DTX_PHASE_COMMIT &&
		        br.status == DTX_BRANCH_OK &&
		        br.forward_status == DTX_BRANCH_OK,
		    "branch 1: %s to %s, forward %s",
		    dtx_branch_status_name(br.status),
		    dtx_phase_name(br.phase),
		    dtx_branch_status_name(br.forward_status));
	}
	dtx_tx_free(tx);
}

Test(typed, a_2pc_aborts_when_a_typed_prepare_refuses)
{
	dtx_tx  *tx;
	dtxt_log l;

	part = start_part(false, NULL);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	reserve(tx, "widget", 3);
	reserve(tx, "none", 1);
	CHECK(commit(tx) == DTX_STATE_ABORTED, "not aborted");
	dtxt_log_load(&l, plog);
	CHECK(dtxt_log_count(
	          &l, DTXT_CALL, dtx_tx_gid(tx), 1, "PREPARE", "REFUSED") == 1,
	    "branch 1 did not refuse");
	dtxt_log_fini(&l);
	CHECK(calls("ABORT", tx, 0) == 1, "branch 0 was not aborted");
	{
		dtx_branch_result br;

		CHECK_RV(dtx_tx_branch_result(tx, 1, &br));
		CHECK(br.forward_status == DTX_BRANCH_REFUSED,
		    "branch 1's prepare: %s",
		    dtx_branch_status_name(br.forward_status));
	}
	dtx_tx_free(tx);
}

Test(typed, a_saga_commits_and_the_client_decodes_each_typed_reply)
{
	dtx_tx             *tx;
	travel_Confirmation c;

	part = start_part(false, NULL);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
	book(tx, "alice", 2);
	hold(tx, "bob");
	CHECK(commit(tx) == DTX_STATE_COMMITTED, "not committed");
	CHECK_RV(travel_Flights_Book_reply(tx, 0, &c));
	CHECK(strcmp(c.code, "BK-alice-2") == 0, "reply 0: %s", c.code);
	CHECK_RV(travel_Flights_Hold_reply(tx, 1, &c));
	CHECK(strcmp(c.code, "H-bob") == 0, "reply 1: %s", c.code);
	// A reply decoder refuses a branch of another method.
	CHECK(travel_Flights_Hold_reply(tx, 0, &c) == DTX_EINVAL,
	    "decoded a Book reply as a Hold reply");
	CHECK(travel_Flights_Hold_reply(tx, 2, &c) == DTX_EINVAL,
	    "decoded a branch that does not exist");
	dtx_tx_free(tx);
}

Test(typed, a_refused_saga_step_compensates_the_earlier_ones_in_reverse)
{
	dtx_tx  *tx;
	dtxt_log l;
	long     c0, c1;

	part = start_part(false, NULL);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
	hold(tx, "ann");
	book(tx, "carl", 1);
	book(tx, "nobody", 1);
	CHECK(commit(tx) == DTX_STATE_COMPENSATED, "not compensated");
	dtxt_log_load(&l, plog);
	c0 = dtxt_log_find(
	    &l, 0, DTXT_CALL, dtx_tx_gid(tx), 0, "COMPENSATE", NULL);
	c1 = dtxt_log_find(
	    &l, 0, DTXT_CALL, dtx_tx_gid(tx), 1, "COMPENSATE", NULL);
	dtxt_log_fini(&l);
	CHECK(c0 >= 0 && c1 >= 0 && c1 < c0,
	    "steps 0 and 1 not compensated in reverse (%ld, %ld)", c0, c1);
	dtx_tx_free(tx);
}

Test(typed, a_method_of_kind_both_serves_2pc_and_saga)
{
	dtx_tx             *tx2, *txs;
	travel_Confirmation c;

	part = start_part(false, NULL);
	CHECK_RV(dtx_tx_begin(&tx2, w.client, DTX_2PC));
	hold(tx2, "dora");
	CHECK(commit(tx2) == DTX_STATE_COMMITTED, "2PC not committed");
	CHECK(calls("PREPARE", tx2, 0) == 1 && calls("COMMIT", tx2, 0) == 1,
	    "2PC phases");
	CHECK_RV(dtx_tx_begin(&txs, w.client, DTX_SAGA));
	hold(txs, "eli");
	CHECK(commit(txs) == DTX_STATE_COMMITTED, "saga not committed");
	CHECK(calls("EXECUTE", txs, 0) == 1, "saga phase");
	CHECK_RV(travel_Flights_Hold_reply(txs, 0, &c));
	CHECK(strcmp(c.code, "H-eli") == 0, "reply: %s", c.code);
	dtx_tx_free(tx2);
	dtx_tx_free(txs);
}

Test(typed, a_malformed_payload_is_answered_bad_request_without_a_callback)
{
	static const unsigned char  garbage[] = {0xff, 0xff, 0xff, 0x07};
	dtx_tx                     *tx;
	dtx_branch_result           br;
	shop_inventory_ReserveReply r;

	part = start_part(false, NULL);
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, purl, shop_inventory_Inventory_Reserve_METHOD,
	    garbage, sizeof(garbage)));
	CHECK(commit(tx) == DTX_STATE_ABORTED, "not aborted");
	CHECK_RV(dtx_tx_branch_result(tx, 0, &br));
	CHECK(br.status == DTX_BRANCH_BAD_REQUEST, "status %s",
	    dtx_branch_status_name(br.status));
	CHECK(strstr(br.message, "is not a shop.inventory.ReserveRequest") !=
	        NULL,
	    "message: %s", br.message);
	CHECK(calls(NULL, tx, -1) == 0, "a callback ran");
	CHECK(shop_inventory_Inventory_Reserve_reply(tx, 0, &r) == DTX_ESTATE,
	    "decoded a reply that was never sent");
	dtx_tx_free(tx);
}

Test(typed, a_method_is_refused_when_added_to_a_transaction_of_another_mode)
{
	dtx_tx        *saga, *tpc;
	travel_Booking b;

	CHECK_RV(dtx_tx_begin(&saga, w.client, DTX_SAGA));
	{
		shop_inventory_ReserveRequest r =
		    shop_inventory_ReserveRequest_init_zero;
		CHECK(shop_inventory_Inventory_Reserve_add(saga, purl, &r) ==
		        DTX_EINVAL,
		    "a 2PC method was added to a saga");
	}
	CHECK(strstr(dtx_tx_message(saga),
	          "shop.inventory.Inventory/Reserve does not take part in a "
	          "saga") != NULL,
	    "message: %s", dtx_tx_message(saga));
	CHECK(dtx_tx_branch_count(saga) == 0, "a branch was added");
	CHECK_RV(dtx_tx_begin(&tpc, w.client, DTX_2PC));
	booking(&b, "fay", 1);
	CHECK(travel_Flights_Book_add(tpc, purl, &b) == DTX_EINVAL,
	    "a saga method was added to a 2PC transaction");
	CHECK(
	    strstr(dtx_tx_message(tpc), "does not take part in a 2pc") != NULL,
	    "message: %s", dtx_tx_message(tpc));
	CHECK(travel_Flights_Book_add(tpc, purl, NULL) == DTX_EINVAL,
	    "a NULL request was added");
	pb_release(travel_Booking_fields, &b);
	dtx_tx_free(saga);
	dtx_tx_free(tpc);
}

Test(typed, the_barrier_replays_a_typed_reply_after_the_participant_crashed)
{
	dtx_tx             *tx;
	dtx_state           st;
	travel_Confirmation c;
	dtxt_log            l;

	// The participant dies once its first callback's batch and the
	// barrier's record are on disk, before it replies; dtxd calls again
	// and the restarted participant answers from the record.
	part = start_part(true, "after-business-write");
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
	book(tx, "zoe", 3);
	CHECK_RV(dtx_tx_submit(tx));
	CHECK(
	    dtxt_wait(part, 10000, NULL) == 0, "the participant did not die");
	part = start_part(true, NULL);
	CHECK(dtx_tx_wait(tx, 20000, &st) == 0 && st == DTX_STATE_COMMITTED,
	    "not committed: %s", dtx_tx_message(tx));
	CHECK_RV(travel_Flights_Book_reply(tx, 0, &c));
	CHECK(strcmp(c.code, "BK-zoe-3") == 0, "replayed reply: %s", c.code);
	dtxt_log_load(&l, plog);
	CHECK(dtxt_log_count(
	          &l, DTXT_CALL, dtx_tx_gid(tx), 0, "EXECUTE", NULL) == 1,
	    "execute ran more than once");
	dtxt_log_fini(&l);
	{
		char *text  = dtxt_read_file(plog);
		bool  batch = strstr(text, "BATCH") != NULL;
		free(text);
		CHECK(batch,
		    "the typed callback did not get the barrier's "
		    "batch");
	}
	dtx_tx_free(tx);
}

static dtx_result
noop_forward(const dtx_call *call, const travel_Booking *req,
    travel_Confirmation *out, dtx_reply *reply, void *arg)
{
	(void)call;
	(void)req;
	(void)out;
	(void)reply;
	(void)arg;
	return DTX_OK;
}

static dtx_result
noop_settle(const dtx_call *call, const travel_Booking *req, dtx_reply *reply,
    void *arg)
{
	(void)call;
	(void)req;
	(void)reply;
	(void)arg;
	return DTX_OK;
}

Test(typed, register_refuses_a_missing_callback_naming_method_and_phase)
{
	travel_Flights_service svc = {
	    .book = {.execute = noop_forward, .compensate = noop_settle},
	    .hold = {.prepare = noop_forward,
	        .commit       = noop_settle,
	        .execute      = noop_forward,
	        .compensate   = noop_settle},
	};
	dtx_participant *p;

	CHECK_RV(dtx_participant_open(&p));
	CHECK(travel_Flights_register(p, NULL, NULL) == DTX_EINVAL,
	    "a NULL service was registered");
	CHECK(travel_Flights_register(p, &svc, NULL) == DTX_EINVAL,
	    "a method without its abort callback was registered");
	CHECK(strcmp(dtx_participant_message(p),
	          "method flights/hold (2pc and saga) has no abort "
	          "callback") == 0,
	    "message: %s", dtx_participant_message(p));
	svc.hold.abort = noop_settle;
	CHECK(travel_Flights_register(p, &svc, NULL) == DTX_EEXIST,
	    "Book, registered before the refusal, was registered again");
	dtx_participant_close(p);
}
