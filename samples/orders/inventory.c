// SPDX-License-Identifier: MIT
//
// inventory: a participant that owns the stock of each SKU and serves
// orders.Inventory/Reserve (orders.proto) both ways, through the typed
// callbacks protoc-gen-dtx generated. As a 2PC branch, prepare moves qty
// from stock into a reservation, commit settles it and abort puts it back.
// As a saga step, execute takes stock and compensate gives it back.
//
// Every call may be delivered more than once, and an abort or compensate may
// arrive for a branch whose prepare or execute never arrived, or arrive
// before it. libdtx's durable barrier takes care of all of that (see
// orders_service_run): a callback runs at most once per (gid, branch,
// phase), an abort or compensate of a branch that never took stock is
// answered without calling us, and a late prepare or execute is refused for
// us. What is left here is the business: each branch that took stock has a
// record, "branch/<gid>/<id>" (an orders.InventoryBranch), saying how much
// of which SKU, staged in the barrier's batch with the stock change:
//
//   prepare ok --> RESERVED --commit--> COMMITTED
//                      `-----abort----> ABORTED (stock given back)
//   execute ok --> TAKEN --compensate--> COMPENSATED (stock given back)
//
// The service's mutex is the barrier's lock, held from before a callback
// reads the stock until its batch is on disk: callbacks run on several
// worker threads, and two branches may take the same SKU.

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

#define NAME          "inventory"
#define STOCK_KEY_MAX (sizeof("stock/") + ORDERS_NAME_MAX)
#define SEEDED_KEY    "meta/seeded"

typedef struct inventory {
	orders_kv      *kv;
	pthread_mutex_t mu; // guards every read-modify-write of the database
} inventory;

static const char *
state_name(orders_BranchState s)
{
	switch (s) {
	case orders_BranchState_RESERVED:
		return "reserved";
	case orders_BranchState_TAKEN:
		return "taken";
	case orders_BranchState_COMMITTED:
		return "committed";
	case orders_BranchState_ABORTED:
		return "aborted";
	case orders_BranchState_COMPENSATED:
		return "returned";
	default:
		return "unknown";
	}
}

// Reads the stock of sku. Returns 1 found, 0 unknown SKU, -1 error.
static int
stock_load(inventory *inv, const char *sku, uint32_t *count)
{
	char         key[STOCK_KEY_MAX];
	orders_Stock s = orders_Stock_init_zero;
	int          rv;

	snprintf(key, sizeof(key), "stock/%s", sku);
	rv     = orders_record_get(inv->kv, key, orders_Stock_fields, &s);
	*count = s.count;
	return rv;
}

// Stages the branch record, and the new stock of sku when sku is not NULL,
// in the barrier's batch: the business change, the record and the
// barrier's own record of the call are written in one synced write.
static int
save(dtx_reply *reply, const char *bkey, const orders_InventoryBranch *rec,
    const char *sku, uint32_t count)
{
	char         key[STOCK_KEY_MAX];
	orders_Stock s = orders_Stock_init_zero;

	if (orders_record_stage(
	        reply, bkey, orders_InventoryBranch_fields, rec) != 0) {
		return -1;
	}
	if (sku == NULL) {
		return 0;
	}
	snprintf(key, sizeof(key), "stock/%s", sku);
	s.count = count;
	return orders_record_stage(reply, key, orders_Stock_fields, &s);
}

// A storage failure is transient from the coordinator's point of view: it
// calls again later, and the barrier drops what was staged.
static dtx_result
storage_failed(const dtx_call *call, dtx_reply *reply)
{
	orders_story(NAME, call, "-> storage error, asking for a retry");
	dtx_reply_set_message(reply, "inventory storage error, retry");
	return DTX_RETRY;
}

// Takes req->qty of req->sku from stock and records the branch in state
// taken; or refuses. Shared by prepare and execute, which differ only in
// the state. The barrier records a refusal, so a redelivered call gets the
// same answer even if stock came back in between: the coordinator may
// already have acted on the first one.
static dtx_result
take_stock(inventory *inv, const dtx_call *call,
    const orders_ReserveRequest *req, orders_ReserveReply *out,
    dtx_reply *reply, orders_BranchState taken)
{
	orders_InventoryBranch rec = orders_InventoryBranch_init_zero;
	char                   bkey[ORDERS_BRANCH_KEY_MAX];
	char                   why[256];
	uint32_t               stock = 0;
	int                    rv;

	if (!orders_name_ok(req->sku) || req->qty == 0) {
		snprintf(why, sizeof(why),
		    "bad request: sku must be 1-%d of [A-Za-z0-9._-] and qty "
		    "at least 1",
		    ORDERS_NAME_MAX);
		orders_story(NAME, call, "-> %s", why);
		dtx_reply_set_message(reply, why);
		return DTX_BAD_REQUEST;
	}
	if ((rv = stock_load(inv, req->sku, &stock)) < 0) {
		return storage_failed(call, reply);
	}
	if (rv == 0 || stock < req->qty) {
		if (rv == 0) {
			snprintf(why, sizeof(why), "unknown sku %s", req->sku);
		} else {
			snprintf(why, sizeof(why),
			    "out of stock: %s has %" PRIu32 ", asked %" PRIu32,
			    req->sku, stock, req->qty);
		}
		orders_story(NAME, call, "%s x%" PRIu32 " -> refused: %s",
		    req->sku, req->qty, why);
		dtx_reply_set_message(reply, why);
		return DTX_REFUSED;
	}
	stock -= req->qty;
	rec.state = taken;
	snprintf(rec.sku, sizeof(rec.sku), "%s", req->sku);
	rec.qty = req->qty;
	orders_branch_key(bkey, call);
	if (save(reply, bkey, &rec, req->sku, stock) != 0) {
		return storage_failed(call, reply);
	}
	orders_story(NAME, call, "%s x%" PRIu32 " -> %s (stock %" PRIu32 ")",
	    req->sku, req->qty, state_name(taken), stock);
	snprintf(out->sku, sizeof(out->sku), "%s", req->sku);
	out->qty   = req->qty;
	out->stock = stock;
	snprintf(why, sizeof(why), "%s %" PRIu32 " %s, %" PRIu32 " left",
	    state_name(taken), req->qty, req->sku, stock);
	dtx_reply_set_message(reply, why);
	return DTX_OK;
}

static dtx_result
reserve_prepare(const dtx_call *call, const orders_ReserveRequest *req,
    orders_ReserveReply *out, dtx_reply *reply, void *arg)
{
	return take_stock(
	    arg, call, req, out, reply, orders_BranchState_RESERVED);
}

static dtx_result
reserve_execute(const dtx_call *call, const orders_ReserveRequest *req,
    orders_ReserveReply *out, dtx_reply *reply, void *arg)
{
	return take_stock(
	    arg, call, req, out, reply, orders_BranchState_TAKEN);
}

// The barrier only lets a commit, abort or compensate through for a branch
// whose prepare or execute answered OK here, so its record must say so.
// When it does not, the data was damaged; phase two cannot be refused, so
// the call is acknowledged loudly rather than retried forever.
static dtx_result
odd_call(const dtx_call *call, dtx_reply *reply,
    const orders_InventoryBranch *rec, bool found)
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

// Settles a branch found in state from: moves its record to to, and gives
// its quantity back to the stock when give_back.
static dtx_result
settle(inventory *inv, const dtx_call *call, dtx_reply *reply,
    orders_BranchState from, orders_BranchState to, bool give_back)
{
	orders_InventoryBranch rec = orders_InventoryBranch_init_zero;
	char                   bkey[ORDERS_BRANCH_KEY_MAX];
	char                   msg[160];
	uint32_t               stock = 0;
	int                    rv;

	orders_branch_key(bkey, call);
	rv = orders_record_get(
	    inv->kv, bkey, orders_InventoryBranch_fields, &rec);
	if (rv < 0) {
		return storage_failed(call, reply);
	}
	if (rv == 0 || rec.state != from) {
		return odd_call(call, reply, &rec, rv == 1);
	}
	rec.state = to;
	if (!give_back) {
		// The stock was taken at prepare; committing only settles
		// the reservation.
		if (save(reply, bkey, &rec, NULL, 0) != 0) {
			return storage_failed(call, reply);
		}
		orders_story(NAME, call,
		    "%s x%" PRIu32 " -> reservation settled", rec.sku,
		    rec.qty);
		snprintf(msg, sizeof(msg), "settled %" PRIu32 " %s", rec.qty,
		    rec.sku);
		dtx_reply_set_message(reply, msg);
		return DTX_OK;
	}
	if (stock_load(inv, rec.sku, &stock) < 0) {
		return storage_failed(call, reply);
	}
	stock += rec.qty;
	if (save(reply, bkey, &rec, rec.sku, stock) != 0) {
		return storage_failed(call, reply);
	}
	orders_story(NAME, call,
	    "%s x%" PRIu32 " -> given back (stock %" PRIu32 ")", rec.sku,
	    rec.qty, stock);
	snprintf(msg, sizeof(msg),
	    "gave back %" PRIu32 " %s, %" PRIu32 " left", rec.qty, rec.sku,
	    stock);
	dtx_reply_set_message(reply, msg);
	return DTX_OK;
}

static dtx_result
reserve_commit(const dtx_call *call, const orders_ReserveRequest *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	return settle(arg, call, reply, orders_BranchState_RESERVED,
	    orders_BranchState_COMMITTED, false);
}

static dtx_result
reserve_abort(const dtx_call *call, const orders_ReserveRequest *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	return settle(arg, call, reply, orders_BranchState_RESERVED,
	    orders_BranchState_ABORTED, true);
}

static dtx_result
reserve_compensate(const dtx_call *call, const orders_ReserveRequest *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	return settle(arg, call, reply, orders_BranchState_TAKEN,
	    orders_BranchState_COMPENSATED, true);
}

static int
register_inventory(dtx_participant *p, void *arg)
{
	static const orders_Inventory_service svc = {
	    .reserve =
	        {
	            .prepare    = reserve_prepare,
	            .commit     = reserve_commit,
	            .abort      = reserve_abort,
	            .execute    = reserve_execute,
	            .compensate = reserve_compensate,
	        },
	};

	return orders_Inventory_register(p, &svc, arg);
}

// Parses the N of a --stock SKU=N argument: decimal digits only.
static int
count_parse(const char *s, uint32_t *out)
{
	char         *end;
	unsigned long n;

	if (*s < '0' || *s > '9') {
		return -1;
	}
	n = strtoul(s, &end, 10);
	if (*end != '\0' || n > UINT32_MAX) {
		return -1;
	}
	*out = (uint32_t)n;
	return 0;
}

// Seeds stock from --stock SKU=N arguments, once: on later starts the
// database already holds the truth and the arguments are ignored.
static int
seed(inventory *inv, char **stock, int nstock)
{
	orders_batch *b;
	unsigned char buf[16];
	size_t        len;
	int           rv;

	rv = orders_kv_get(inv->kv, SEEDED_KEY, buf, sizeof(buf), &len);
	if (rv != 0) {
		if (rv == 1 && nstock > 0) {
			printf(NAME ": already seeded, ignoring --stock\n");
		}
		return rv < 0 ? -1 : 0;
	}
	if ((b = orders_batch_alloc()) == NULL) {
		return -1;
	}
	for (int i = 0; i < nstock; i++) {
		char        *eq = strchr(stock[i], '=');
		char         key[STOCK_KEY_MAX];
		orders_Stock s = orders_Stock_init_zero;

		if (eq == NULL) {
			goto bad;
		}
		*eq = '\0';
		if (!orders_name_ok(stock[i]) ||
		    count_parse(eq + 1, &s.count) != 0) {
			*eq = '=';
			goto bad;
		}
		snprintf(key, sizeof(key), "stock/%s", stock[i]);
		if (orders_record_put(b, key, orders_Stock_fields, &s) != 0) {
			*eq = '=';
			goto bad;
		}
		printf(
		    NAME ": seeded %s with %" PRIu32 "\n", stock[i], s.count);
		*eq = '=';
		continue;
	bad:
		fprintf(stderr, NAME ": bad --stock '%s' (want SKU=N)\n",
		    stock[i]);
		orders_batch_free(b);
		return -1;
	}
	orders_batch_put(b, SEEDED_KEY, "1", 1);
	rv = orders_kv_write(inv->kv, b);
	orders_batch_free(b);
	return rv;
}

// --dump: "stock <sku> <count>" for every SKU, and "reservation
// <gid>/<branch> state=reserved;sku=<sku>;qty=<n>" for every open 2PC
// reservation (prepared, no decision yet).
static void
dump_one(const char *key, const void *val, size_t len, void *arg)
{
	int *failed = arg;

	if (strncmp(key, "stock/", 6) == 0) {
		orders_Stock s = orders_Stock_init_zero;
		if (orders_record_decode(
		        key, val, len, orders_Stock_fields, &s) != 0) {
			*failed = 1;
			return;
		}
		printf("stock %s %" PRIu32 "\n", key + 6, s.count);
	} else {
		orders_InventoryBranch b = orders_InventoryBranch_init_zero;
		if (orders_record_decode(key, val, len,
		        orders_InventoryBranch_fields, &b) != 0) {
			*failed = 1;
			return;
		}
		if (b.state == orders_BranchState_RESERVED) {
			printf(
			    "reservation %s state=reserved;sku=%s;qty=%" PRIu32
			    "\n",
			    key + 7, b.sku, b.qty);
		}
	}
}

static int
dump(const char *dir)
{
	orders_kv *kv;
	int        failed = 0;

	if (orders_kv_open(&kv, dir, true) != 0) {
		return 1;
	}
	if (orders_kv_scan(kv, "stock/", dump_one, &failed) != 0 ||
	    orders_kv_scan(kv, "branch/", dump_one, &failed) != 0) {
		failed = 1;
	}
	orders_kv_close(kv);
	return failed;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: " NAME
	    " --listen URL --data-dir DIR [--tls DIR] [--stock SKU=N ...]\n"
	    "       " NAME " --data-dir DIR --dump\n");
}

int
main(int argc, char **argv)
{
	const char *url = NULL, *dir = NULL, *tls = NULL;
	char      **stock     = calloc((size_t)argc, sizeof(char *));
	int         nstock    = 0;
	bool        dump_only = false;
	sigset_t    stop;
	inventory   inv;
	int         rv;

	if (stock == NULL) {
		return 1;
	}
	orders_process_init(&stop);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--data-dir") == 0 &&
		    i + 1 < argc) {
			dir = argv[++i];
		} else if (strcmp(argv[i], "--tls") == 0 && i + 1 < argc) {
			tls = argv[++i];
		} else if (strcmp(argv[i], "--stock") == 0 && i + 1 < argc) {
			stock[nstock++] = argv[++i];
		} else if (strcmp(argv[i], "--dump") == 0) {
			dump_only = true;
		} else {
			usage();
			free(stock);
			return 2;
		}
	}
	if (dir == NULL || (url == NULL && !dump_only)) {
		usage();
		free(stock);
		return 2;
	}
	if (dump_only) {
		free(stock);
		return dump(dir);
	}
	if (orders_kv_open(&inv.kv, dir, false) != 0) {
		free(stock);
		return 1;
	}
	if (seed(&inv, stock, nstock) != 0) {
		orders_kv_close(inv.kv);
		free(stock);
		return 1;
	}
	free(stock);
	pthread_mutex_init(&inv.mu, NULL);
	rv = orders_service_run(NAME, url, tls, "Reserve", register_inventory,
	    &inv, inv.kv, &inv.mu, &stop);
	pthread_mutex_destroy(&inv.mu);
	orders_kv_close(inv.kv);
	return rv;
}
