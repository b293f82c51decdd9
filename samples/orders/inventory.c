// SPDX-License-Identifier: MIT
//
// inventory: a participant that owns the stock of each SKU and serves the
// method "Reserve" (payload "sku=widget;qty=2") both ways. As a 2PC branch,
// prepare moves qty from stock into a reservation, commit settles it and
// abort puts it back. As a saga step, execute takes stock and compensate
// gives it back.
//
// Every call may be delivered more than once, and an abort or compensate may
// arrive for a branch whose prepare or execute never arrived, or arrive
// before it. libdtx's durable barrier takes care of all of that (see
// orders_service_run): a callback runs at most once per (gid, branch,
// phase), an abort or compensate of a branch that never took stock is
// answered without calling us, and a late prepare or execute is refused for
// us. What is left here is the business: each branch that took stock has a
// record, "branch/<gid>/<id>", saying how much of which SKU, staged in the
// barrier's batch with the stock change:
//
//   prepare ok --> reserved --commit--> committed
//                      `-----abort----> aborted (stock given back)
//   execute ok --> taken --compensate--> returned (stock given back)
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

#include "fields.h"
#include "kv.h"
#include "service.h"

#define NAME          "inventory"
#define STOCK_KEY_MAX (sizeof("stock/") + ORDERS_NAME_MAX)
#define SEEDED_KEY    "meta/seeded"

typedef struct inventory {
	orders_kv      *kv;
	pthread_mutex_t mu; // guards every read-modify-write of the database
} inventory;

// A branch record as stored: "state=reserved;sku=widget;qty=2", or
// "state=refused;why=...". Fields that do not apply are empty or 0.
typedef struct branch_rec {
	char     state[16];
	char     sku[ORDERS_NAME_MAX + 1];
	uint32_t qty;
	char     why[ORDERS_VAL_MAX + 1];
} branch_rec;

// The request of one branch, from its payload.
typedef struct reserve_req {
	char     sku[ORDERS_NAME_MAX + 1];
	uint32_t qty;
} reserve_req;

static int
parse_request(const dtx_call *call, reserve_req *rq, char *err, size_t cap)
{
	static const char *const want[] = {"sku", "qty", NULL};
	orders_fields            f;
	char                     why[128];
	const char              *sku, *qty;

	if (orders_fields_parse(
	        &f, call->payload, call->payload_len, why, sizeof(why)) != 0 ||
	    orders_fields_expect(&f, want, why, sizeof(why)) != 0) {
		snprintf(
		    err, cap, "bad payload (want sku=SKU;qty=N): %s", why);
		return -1;
	}
	sku = orders_fields_get(&f, "sku");
	qty = orders_fields_get(&f, "qty");
	if (!orders_name_ok(sku)) {
		snprintf(err, cap,
		    "bad payload: sku must be 1-%d of [A-Za-z0-9._-]",
		    ORDERS_NAME_MAX);
		return -1;
	}
	if (orders_qty_parse(qty, &rq->qty) != 0 || rq->qty == 0) {
		snprintf(err, cap, "bad payload: qty must be 1-%u, got '%s'",
		    ORDERS_QTY_MAX, qty);
		return -1;
	}
	snprintf(rq->sku, sizeof(rq->sku), "%s", sku);
	return 0;
}

// Loads the branch's record. Returns 1 found, 0 absent, -1 storage error.
static int
rec_load(inventory *inv, const char *key, branch_rec *rec)
{
	char          buf[512];
	char          err[160];
	orders_fields f;
	const char   *v;
	int           rv;

	memset(rec, 0, sizeof(*rec));
	if ((rv = orders_kv_get(inv->kv, key, buf, sizeof(buf))) != 1) {
		return rv;
	}
	// We wrote this record ourselves; a record we cannot read means the
	// database is damaged, which is a storage error, not a business one.
	if (orders_fields_parse(&f, buf, strlen(buf), err, sizeof(err)) != 0 ||
	    (v = orders_fields_get(&f, "state")) == NULL) {
		fprintf(stderr, NAME ": corrupt record %s: %s\n", key, buf);
		return -1;
	}
	snprintf(rec->state, sizeof(rec->state), "%s", v);
	if ((v = orders_fields_get(&f, "sku")) != NULL) {
		snprintf(rec->sku, sizeof(rec->sku), "%s", v);
	}
	if ((v = orders_fields_get(&f, "qty")) != NULL &&
	    orders_qty_parse(v, &rec->qty) != 0) {
		fprintf(stderr, NAME ": corrupt record %s: %s\n", key, buf);
		return -1;
	}
	if ((v = orders_fields_get(&f, "why")) != NULL) {
		snprintf(rec->why, sizeof(rec->why), "%s", v);
	}
	return 1;
}

static bool
rec_is(const branch_rec *rec, const char *state)
{
	return strcmp(rec->state, state) == 0;
}

// Reads the stock of sku. Returns 1 found, 0 unknown SKU, -1 error.
static int
stock_load(inventory *inv, const char *sku, uint32_t *stock)
{
	char key[STOCK_KEY_MAX];
	char buf[32];
	int  rv;

	snprintf(key, sizeof(key), "stock/%s", sku);
	if ((rv = orders_kv_get(inv->kv, key, buf, sizeof(buf))) != 1) {
		return rv;
	}
	if (orders_qty_parse(buf, stock) != 0) {
		fprintf(stderr, NAME ": corrupt stock %s: %s\n", key, buf);
		return -1;
	}
	return 1;
}

// Stages the branch record, and the new stock of sku when sku is not NULL,
// in the barrier's batch: the business change, the record and the
// barrier's own record of the call are written in one synced write.
static void
save(dtx_reply *reply, const char *bkey, const char *rec, const char *sku,
    uint32_t stock)
{
	char key[STOCK_KEY_MAX];
	char val[16];

	orders_stage_put(reply, bkey, rec);
	if (sku != NULL) {
		snprintf(key, sizeof(key), "stock/%s", sku);
		snprintf(val, sizeof(val), "%" PRIu32, stock);
		orders_stage_put(reply, key, val);
	}
}

// A storage failure is transient from the coordinator's point of view: it
// calls again later, and the record makes the retry safe.
static dtx_result
storage_failed(const dtx_call *call, dtx_reply *reply)
{
	orders_story(NAME, call, "-> storage error, asking for a retry");
	orders_reply(reply, NULL, "inventory storage error, retry");
	return DTX_RETRY;
}

// Takes rq->qty of rq->sku from stock and records the branch in state
// taken_state; or refuses. Shared by prepare and execute, which differ only
// in the name of the resulting state. The barrier records a refusal, so a
// redelivered call gets the same answer even if stock came back in
// between: the coordinator may already have acted on the first one.
static dtx_result
take_stock(inventory *inv, const dtx_call *call, dtx_reply *reply,
    const char *bkey, const char *taken_state)
{
	reserve_req rq;
	uint32_t    stock = 0;
	char        why[ORDERS_VAL_MAX + 1];
	char        rec[512];
	char        out[128];
	int         rv;

	if (parse_request(call, &rq, why, sizeof(why)) != 0) {
		orders_story(NAME, call, "-> refused: %s", why);
		orders_reply(reply, NULL, why);
		return DTX_REFUSED;
	}
	if ((rv = stock_load(inv, rq.sku, &stock)) < 0) {
		return storage_failed(call, reply);
	}
	if (rv == 0 || stock < rq.qty) {
		if (rv == 0) {
			snprintf(why, sizeof(why), "unknown sku %s", rq.sku);
		} else {
			snprintf(why, sizeof(why),
			    "out of stock: %s has %" PRIu32 ", asked %" PRIu32,
			    rq.sku, stock, rq.qty);
		}
		orders_story(NAME, call, "%s x%" PRIu32 " -> refused: %s",
		    rq.sku, rq.qty, why);
		orders_reply(reply, NULL, why);
		return DTX_REFUSED;
	}
	stock -= rq.qty;
	snprintf(rec, sizeof(rec), "state=%s;sku=%s;qty=%" PRIu32, taken_state,
	    rq.sku, rq.qty);
	save(reply, bkey, rec, rq.sku, stock);
	orders_story(NAME, call, "%s x%" PRIu32 " -> %s (stock %" PRIu32 ")",
	    rq.sku, rq.qty, taken_state, stock);
	snprintf(out, sizeof(out), "sku=%s;qty=%" PRIu32 ";stock=%" PRIu32,
	    rq.sku, rq.qty, stock);
	snprintf(why, sizeof(why), "%s %" PRIu32 " %s, %" PRIu32 " left",
	    taken_state, rq.qty, rq.sku, stock);
	orders_reply(reply, out, why);
	return DTX_OK;
}

// Puts a branch's quantity back into stock and moves its record to
// back_state.
static dtx_result
give_back(inventory *inv, const dtx_call *call, dtx_reply *reply,
    const char *bkey, const branch_rec *rec, const char *back_state)
{
	uint32_t stock = 0;
	char     buf[512];
	char     out[128];
	int      rv;

	if ((rv = stock_load(inv, rec->sku, &stock)) < 0) {
		return storage_failed(call, reply);
	}
	stock += rec->qty;
	snprintf(buf, sizeof(buf), "state=%s;sku=%s;qty=%" PRIu32, back_state,
	    rec->sku, rec->qty);
	save(reply, bkey, buf, rec->sku, stock);
	orders_story(NAME, call,
	    "%s x%" PRIu32 " -> given back (stock %" PRIu32 ")", rec->sku,
	    rec->qty, stock);
	snprintf(out, sizeof(out), "sku=%s;qty=%" PRIu32 ";stock=%" PRIu32,
	    rec->sku, rec->qty, stock);
	snprintf(buf, sizeof(buf),
	    "gave back %" PRIu32 " %s, %" PRIu32 " left", rec->qty, rec->sku,
	    stock);
	orders_reply(reply, out, buf);
	return DTX_OK;
}

// The barrier only lets a commit, abort or compensate through for a branch
// whose prepare or execute answered OK here, so its record must say so.
// When it does not, the data was damaged; phase two cannot be refused, so
// the call is acknowledged loudly rather than retried forever.
static dtx_result
odd_call(
    const dtx_call *call, dtx_reply *reply, const branch_rec *rec, bool found)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "nothing to do: branch is %s",
	    found ? rec->state : "unknown");
	fprintf(stderr, NAME ": warning: %s %s/%u: %s\n",
	    dtx_phase_name(call->phase), call->gid, (unsigned)call->branch_id,
	    msg);
	orders_story(NAME, call, "-> %s", msg);
	orders_reply(reply, NULL, msg);
	return DTX_OK;
}

// Runs with inv->mu held (the barrier's lock), once per (gid, branch,
// phase).
static dtx_result
on_call(const dtx_call *call, dtx_reply *reply, void *arg)
{
	inventory *inv = arg;
	char       bkey[ORDERS_BRANCH_KEY_MAX];
	branch_rec rec;
	bool       found;
	int        rv;

	orders_branch_key(bkey, call);
	if ((rv = rec_load(inv, bkey, &rec)) < 0) {
		return storage_failed(call, reply);
	}
	found = rv == 1;
	switch (call->phase) {
	case DTX_PHASE_PREPARE:
		return take_stock(inv, call, reply, bkey, "reserved");
	case DTX_PHASE_EXECUTE:
		return take_stock(inv, call, reply, bkey, "taken");
	case DTX_PHASE_COMMIT:
		if (found && rec_is(&rec, "reserved")) {
			// The stock was taken at prepare; committing only
			// settles the reservation.
			char buf[256];
			snprintf(buf, sizeof(buf),
			    "state=committed;sku=%s;qty=%" PRIu32, rec.sku,
			    rec.qty);
			save(reply, bkey, buf, NULL, 0);
			orders_story(NAME, call,
			    "%s x%" PRIu32 " -> reservation settled", rec.sku,
			    rec.qty);
			snprintf(buf, sizeof(buf), "settled %" PRIu32 " %s",
			    rec.qty, rec.sku);
			orders_reply(reply, NULL, buf);
			return DTX_OK;
		}
		return odd_call(call, reply, &rec, found);
	case DTX_PHASE_ABORT:
		if (found && rec_is(&rec, "reserved")) {
			return give_back(
			    inv, call, reply, bkey, &rec, "aborted");
		}
		return odd_call(call, reply, &rec, found);
	case DTX_PHASE_COMPENSATE:
		if (found && rec_is(&rec, "taken")) {
			return give_back(
			    inv, call, reply, bkey, &rec, "returned");
		}
		return odd_call(call, reply, &rec, found);
	default:
		orders_reply(reply, NULL, "unknown phase");
		return DTX_REFUSED;
	}
}

// Seeds stock from --stock SKU=N arguments, once: on later starts the
// database already holds the truth and the arguments are ignored.
static int
seed(inventory *inv, char **stock, int nstock)
{
	orders_batch *b;
	char          buf[16];
	int           rv;

	if ((rv = orders_kv_get(inv->kv, SEEDED_KEY, buf, sizeof(buf))) != 0) {
		if (rv == 1 && nstock > 0) {
			printf(NAME ": already seeded, ignoring --stock\n");
		}
		return rv < 0 ? -1 : 0;
	}
	if ((b = orders_batch_alloc()) == NULL) {
		return -1;
	}
	for (int i = 0; i < nstock; i++) {
		char    *eq = strchr(stock[i], '=');
		char     key[STOCK_KEY_MAX];
		uint32_t n;

		if (eq == NULL) {
			goto bad;
		}
		*eq = '\0';
		if (!orders_name_ok(stock[i]) ||
		    orders_qty_parse(eq + 1, &n) != 0) {
			*eq = '=';
			goto bad;
		}
		snprintf(key, sizeof(key), "stock/%s", stock[i]);
		orders_batch_put(b, key, eq + 1);
		printf(NAME ": seeded %s with %" PRIu32 "\n", stock[i], n);
		*eq = '=';
		continue;
	bad:
		fprintf(stderr, NAME ": bad --stock '%s' (want SKU=N)\n",
		    stock[i]);
		orders_batch_free(b);
		return -1;
	}
	orders_batch_put(b, SEEDED_KEY, "1");
	rv = orders_kv_write(inv->kv, b);
	orders_batch_free(b);
	return rv;
}

static void
dump_one(const char *key, const char *val, void *arg)
{
	(void)arg;
	if (strncmp(key, "stock/", 6) == 0) {
		printf("stock %s %s\n", key + 6, val);
	} else if (strstr(val, "state=reserved;") == val) {
		// An open 2PC reservation: prepared, no decision yet.
		printf("reservation %s %s\n", key + 7, val);
	}
}

static int
dump(const char *dir)
{
	orders_kv *kv;
	int        rv;

	if (orders_kv_open(&kv, dir, true) != 0) {
		return 1;
	}
	rv = orders_kv_scan(kv, "stock/", dump_one, NULL) != 0 ||
	    orders_kv_scan(kv, "branch/", dump_one, NULL) != 0;
	orders_kv_close(kv);
	return rv;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: " NAME " --listen URL --data-dir DIR [--stock SKU=N ...]\n"
	    "       " NAME " --data-dir DIR --dump\n");
}

int
main(int argc, char **argv)
{
	static const dtx_method_ops ops = {
	    .prepare    = on_call,
	    .commit     = on_call,
	    .abort      = on_call,
	    .execute    = on_call,
	    .compensate = on_call,
	};
	const char *url = NULL, *dir = NULL;
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
	rv = orders_service_run(
	    NAME, url, "Reserve", &ops, &inv, inv.kv, &inv.mu, &stop);
	pthread_mutex_destroy(&inv.mu);
	orders_kv_close(inv.kv);
	return rv;
}
