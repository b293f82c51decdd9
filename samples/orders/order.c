// SPDX-License-Identifier: MIT
//
// order: a participant that owns orders and serves orders.Orders/Create
// (orders.proto) both ways, through the typed callbacks protoc-gen-dtx
// generated. As a 2PC branch, prepare writes the order PENDING, commit marks
// it CONFIRMED and abort deletes it. As a saga step, execute writes it
// CONFIRMED and compensate marks it CANCELLED (a cancelled order stays
// visible, as it would for a customer).
//
// As in inventory.c, libdtx's durable barrier makes every callback run at
// most once per (gid, branch, phase), answers an abort or compensate that
// overtakes its prepare or execute without calling us, and refuses the late
// prepare or execute. Each branch that created an order has a record
// "branch/<gid>/<id>" (an orders.OrderBranch) naming it, staged in the
// barrier's batch with the order itself ("order/<id>", an orders.Order):
//
//   prepare ok --> PREPARED --commit--> COMMITTED
//                      `------abort---> ABORTED (order deleted)
//   execute ok --> EXECUTED --compensate--> COMPENSATED (order CANCELLED)
//
// Order ids are chosen by the client, so a second transaction creating an
// existing order is refused: an order id is created once.

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dtx/dtx.h>

#include "kv.h"
#include "orders.dtx.h"
#include "records.h"
#include "service.h"

#define NAME          "order"
#define ORDER_KEY_MAX (sizeof("order/") + ORDERS_NAME_MAX)

typedef struct order_svc {
	orders_kv      *kv;
	pthread_mutex_t mu; // guards every read-modify-write of the database
} order_svc;

static const char *
status_name(orders_OrderStatus s)
{
	switch (s) {
	case orders_OrderStatus_PENDING:
		return "PENDING";
	case orders_OrderStatus_CONFIRMED:
		return "CONFIRMED";
	case orders_OrderStatus_CANCELLED:
		return "CANCELLED";
	default:
		return "NONE";
	}
}

static const char *
state_name(orders_BranchState s)
{
	switch (s) {
	case orders_BranchState_PREPARED:
		return "prepared";
	case orders_BranchState_EXECUTED:
		return "executed";
	case orders_BranchState_COMMITTED:
		return "committed";
	case orders_BranchState_ABORTED:
		return "aborted";
	case orders_BranchState_COMPENSATED:
		return "compensated";
	default:
		return "unknown";
	}
}

// Loads order id. Returns 1 found, 0 absent, -1 storage error.
static int
order_load(order_svc *svc, const char *id, orders_Order *o)
{
	char key[ORDER_KEY_MAX];

	snprintf(key, sizeof(key), "order/%s", id);
	return orders_record_get(svc->kv, key, orders_Order_fields, o);
}

// Stages the branch record and, when o is not NULL, order id: written
// with o's status, or deleted when that status is NONE. The barrier writes
// them with its record of the call in one synced batch.
static int
save(dtx_reply *reply, const char *bkey, const orders_OrderBranch *rec,
    const char *id, const orders_Order *o)
{
	char key[ORDER_KEY_MAX];

	if (orders_record_stage(reply, bkey, orders_OrderBranch_fields, rec) !=
	    0) {
		return -1;
	}
	if (o == NULL) {
		return 0;
	}
	snprintf(key, sizeof(key), "order/%s", id);
	if (o->status == orders_OrderStatus_ORDER_STATUS_NONE) {
		orders_stage_del(reply, key);
		return 0;
	}
	return orders_record_stage(reply, key, orders_Order_fields, o);
}

static dtx_result
storage_failed(const dtx_call *call, dtx_reply *reply)
{
	orders_story(NAME, call, "-> storage error, asking for a retry");
	dtx_reply_set_message(reply, "order storage error, retry");
	return DTX_RETRY;
}

// Creates the order with status (PENDING for prepare, CONFIRMED for
// execute) and records the branch as state; or refuses (the barrier
// records the refusal).
static dtx_result
create(order_svc *svc, const dtx_call *call, const orders_CreateRequest *req,
    orders_CreateReply *out, dtx_reply *reply, orders_OrderStatus status,
    orders_BranchState state)
{
	orders_Order       o   = orders_Order_init_zero;
	orders_OrderBranch rec = orders_OrderBranch_init_zero;
	char               bkey[ORDERS_BRANCH_KEY_MAX];
	char               why[256];
	int                rv;

	if (!orders_name_ok(req->order) || !orders_name_ok(req->sku) ||
	    req->qty == 0) {
		snprintf(why, sizeof(why),
		    "bad request: order and sku must be 1-%d of "
		    "[A-Za-z0-9._-] and qty at least 1",
		    ORDERS_NAME_MAX);
		orders_story(NAME, call, "-> %s", why);
		dtx_reply_set_message(reply, why);
		return DTX_BAD_REQUEST;
	}
	if ((rv = order_load(svc, req->order, &o)) < 0) {
		return storage_failed(call, reply);
	}
	if (rv == 1) {
		snprintf(why, sizeof(why), "order %s already exists (%s)",
		    req->order, status_name(o.status));
		orders_story(NAME, call, "%s -> refused: %s", req->order, why);
		dtx_reply_set_message(reply, why);
		return DTX_REFUSED;
	}
	o.status = status;
	snprintf(o.sku, sizeof(o.sku), "%s", req->sku);
	o.qty     = req->qty;
	rec.state = state;
	snprintf(rec.order, sizeof(rec.order), "%s", req->order);
	orders_branch_key(bkey, call);
	if (save(reply, bkey, &rec, req->order, &o) != 0) {
		return storage_failed(call, reply);
	}
	orders_story(NAME, call, "%s %s x%" PRIu32 " -> %s", req->order,
	    req->sku, req->qty, status_name(status));
	snprintf(out->order, sizeof(out->order), "%s", req->order);
	out->status = status;
	snprintf(
	    why, sizeof(why), "order %s %s", req->order, status_name(status));
	dtx_reply_set_message(reply, why);
	return DTX_OK;
}

static dtx_result
create_prepare(const dtx_call *call, const orders_CreateRequest *req,
    orders_CreateReply *out, dtx_reply *reply, void *arg)
{
	return create(arg, call, req, out, reply, orders_OrderStatus_PENDING,
	    orders_BranchState_PREPARED);
}

static dtx_result
create_execute(const dtx_call *call, const orders_CreateRequest *req,
    orders_CreateReply *out, dtx_reply *reply, void *arg)
{
	return create(arg, call, req, out, reply, orders_OrderStatus_CONFIRMED,
	    orders_BranchState_EXECUTED);
}

// The barrier only lets a commit, abort or compensate through for a branch
// whose prepare or execute answered OK here, so its record must say so.
// When it does not, the data was damaged; phase two and compensation cannot
// be refused, so the call is acknowledged loudly rather than retried
// forever.
static dtx_result
odd_call(const dtx_call *call, dtx_reply *reply, const orders_OrderBranch *rec,
    bool found)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "nothing to do: branch is %s",
	    found ? state_name(rec->state) : "unknown");
	fprintf(stderr, NAME ": warning: %s %s/%u: %s\n",
	    dtx_phase_name(call->phase), call->gid, (unsigned)call->branch_id,
	    msg);
	orders_story(NAME, call, "-> %s", msg);
	dtx_reply_set_message(reply, msg);
	return DTX_OK;
}

// Moves the order of a branch found in state want from status from
// (PENDING for commit and abort; CONFIRMED for compensate) to status to
// (NONE deletes it), and the branch record to new_state.
static dtx_result
settle(order_svc *svc, const dtx_call *call, dtx_reply *reply,
    orders_BranchState want, orders_OrderStatus from, orders_OrderStatus to,
    orders_BranchState new_state)
{
	orders_OrderBranch rec = orders_OrderBranch_init_zero;
	orders_Order       o   = orders_Order_init_zero;
	char               bkey[ORDERS_BRANCH_KEY_MAX];
	char               buf[256];
	int                rv;

	orders_branch_key(bkey, call);
	rv = orders_record_get(svc->kv, bkey, orders_OrderBranch_fields, &rec);
	if (rv < 0) {
		return storage_failed(call, reply);
	}
	if (rv == 0 || rec.state != want) {
		return odd_call(call, reply, &rec, rv == 1);
	}
	if ((rv = order_load(svc, rec.order, &o)) < 0) {
		return storage_failed(call, reply);
	}
	rec.state = new_state;
	// The order may have moved on by other means (an operator, say);
	// then only the branch record changes.
	if (rv == 0 || o.status != from) {
		if (save(reply, bkey, &rec, NULL, NULL) != 0) {
			return storage_failed(call, reply);
		}
		snprintf(buf, sizeof(buf), "order %s is %s, left alone",
		    rec.order, rv == 0 ? "gone" : status_name(o.status));
		orders_story(NAME, call, "-> %s", buf);
		dtx_reply_set_message(reply, buf);
		return DTX_OK;
	}
	o.status = to;
	if (save(reply, bkey, &rec, rec.order, &o) != 0) {
		return storage_failed(call, reply);
	}
	if (to == orders_OrderStatus_ORDER_STATUS_NONE) {
		snprintf(buf, sizeof(buf), "order %s deleted", rec.order);
		orders_story(NAME, call, "%s -> deleted", rec.order);
	} else {
		snprintf(buf, sizeof(buf), "order %s %s", rec.order,
		    status_name(to));
		orders_story(
		    NAME, call, "%s -> %s", rec.order, status_name(to));
	}
	dtx_reply_set_message(reply, buf);
	return DTX_OK;
}

static dtx_result
create_commit(const dtx_call *call, const orders_CreateRequest *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	return settle(arg, call, reply, orders_BranchState_PREPARED,
	    orders_OrderStatus_PENDING, orders_OrderStatus_CONFIRMED,
	    orders_BranchState_COMMITTED);
}

static dtx_result
create_abort(const dtx_call *call, const orders_CreateRequest *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	return settle(arg, call, reply, orders_BranchState_PREPARED,
	    orders_OrderStatus_PENDING, orders_OrderStatus_ORDER_STATUS_NONE,
	    orders_BranchState_ABORTED);
}

static dtx_result
create_compensate(const dtx_call *call, const orders_CreateRequest *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	return settle(arg, call, reply, orders_BranchState_EXECUTED,
	    orders_OrderStatus_CONFIRMED, orders_OrderStatus_CANCELLED,
	    orders_BranchState_COMPENSATED);
}

static int
register_orders(dtx_participant *p, void *arg)
{
	static const orders_Orders_service svc = {
	    .create =
	        {
	            .prepare    = create_prepare,
	            .commit     = create_commit,
	            .abort      = create_abort,
	            .execute    = create_execute,
	            .compensate = create_compensate,
	        },
	};

	return orders_Orders_register(p, &svc, arg);
}

// --dump: "order <id> status=<STATUS>;sku=<sku>;qty=<n>" for every order.
static void
dump_one(const char *key, const void *val, size_t len, void *arg)
{
	int         *failed = arg;
	orders_Order o      = orders_Order_init_zero;

	if (orders_record_decode(key, val, len, orders_Order_fields, &o) !=
	    0) {
		*failed = 1;
		return;
	}
	printf("order %s status=%s;sku=%s;qty=%" PRIu32 "\n", key + 6,
	    status_name(o.status), o.sku, o.qty);
}

static int
dump(const char *dir)
{
	orders_kv *kv;
	int        failed = 0;

	if (orders_kv_open(&kv, dir, true) != 0) {
		return 1;
	}
	if (orders_kv_scan(kv, "order/", dump_one, &failed) != 0) {
		failed = 1;
	}
	orders_kv_close(kv);
	return failed;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: " NAME " --listen URL --data-dir DIR [--tls DIR]\n"
	    "       " NAME " --data-dir DIR --dump\n");
}

int
main(int argc, char **argv)
{
	const char *url = NULL, *dir = NULL, *tls = NULL;
	bool        dump_only = false;
	sigset_t    stop;
	order_svc   svc;
	int         rv;

	orders_process_init(&stop);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--data-dir") == 0 &&
		    i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
			tls = argv[++i];
		} else if (strcmp(argv[i], "--dump") == 0) {
			dump_only = true;
		} else {
			usage();
			return 2;
		}
	}
	if (dir == NULL || (url == NULL && !dump_only)) {
		usage();
		return 2;
	}
	if (dump_only) {
		return dump(dir);
	}
	if (orders_kv_open(&svc.kv, dir, false) != 0) {
		return 1;
	}
	pthread_mutex_init(&svc.mu, NULL);
	rv = orders_service_run(NAME, url, tls, "Create", register_orders,
	    &svc, svc.kv, &svc.mu, &stop);
	pthread_mutex_destroy(&svc.mu);
	orders_kv_close(svc.kv);
	return rv;
}
