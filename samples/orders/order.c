// SPDX-License-Identifier: MIT
//
// order: a participant that owns orders and serves the method "Create"
// (payload "order=o-17;sku=widget;qty=2") both ways. As a 2PC branch,
// prepare writes the order PENDING, commit marks it CONFIRMED and abort
// deletes it. As a saga step, execute writes it CONFIRMED and compensate
// marks it CANCELLED (a cancelled order stays visible, as it would for a
// customer).
//
// As in inventory.c, libdtx's durable barrier makes every callback run at
// most once per (gid, branch, phase), answers an abort or compensate that
// overtakes its prepare or execute without calling us, and refuses the late
// prepare or execute. Each branch that created an order has a record
// "branch/<gid>/<id>" naming it, staged in the barrier's batch with the
// order itself:
//
//   prepare ok --> prepared --commit--> committed
//                      `------abort---> aborted (order deleted)
//   execute ok --> executed --compensate--> compensated (order CANCELLED)
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

#include "fields.h"
#include "kv.h"
#include "service.h"

#define NAME          "order"
#define ORDER_KEY_MAX (sizeof("order/") + ORDERS_NAME_MAX)

typedef struct order_svc {
	orders_kv      *kv;
	pthread_mutex_t mu; // guards every read-modify-write of the database
} order_svc;

// A branch record: "state=prepared;order=o-17" or "state=refused;why=...".
typedef struct branch_rec {
	char state[16];
	char order[ORDERS_NAME_MAX + 1];
	char why[ORDERS_VAL_MAX + 1];
} branch_rec;

// An order as stored under "order/<id>": "status=PENDING;sku=widget;qty=2".
typedef struct order_rec {
	char     id[ORDERS_NAME_MAX + 1];
	char     status[16];
	char     sku[ORDERS_NAME_MAX + 1];
	uint32_t qty;
} order_rec;

static int
parse_request(const dtx_call *call, order_rec *o, char *err, size_t cap)
{
	static const char *const want[] = {"order", "sku", "qty", NULL};
	orders_fields            f;
	char                     why[128];
	const char              *id, *sku, *qty;

	if (orders_fields_parse(
	        &f, call->payload, call->payload_len, why, sizeof(why)) != 0 ||
	    orders_fields_expect(&f, want, why, sizeof(why)) != 0) {
		snprintf(err, cap,
		    "bad payload (want order=ID;sku=SKU;qty=N): %s", why);
		return -1;
	}
	id  = orders_fields_get(&f, "order");
	sku = orders_fields_get(&f, "sku");
	qty = orders_fields_get(&f, "qty");
	if (!orders_name_ok(id) || !orders_name_ok(sku)) {
		snprintf(err, cap,
		    "bad payload: order and sku must be 1-%d of "
		    "[A-Za-z0-9._-]",
		    ORDERS_NAME_MAX);
		return -1;
	}
	if (orders_qty_parse(qty, &o->qty) != 0 || o->qty == 0) {
		snprintf(err, cap, "bad payload: qty must be 1-%u, got '%s'",
		    ORDERS_QTY_MAX, qty);
		return -1;
	}
	snprintf(o->id, sizeof(o->id), "%s", id);
	snprintf(o->sku, sizeof(o->sku), "%s", sku);
	return 0;
}

// Loads the branch's record. Returns 1 found, 0 absent, -1 storage error.
static int
rec_load(order_svc *svc, const char *key, branch_rec *rec)
{
	char          buf[512];
	char          err[160];
	orders_fields f;
	const char   *v;
	int           rv;

	memset(rec, 0, sizeof(*rec));
	if ((rv = orders_kv_get(svc->kv, key, buf, sizeof(buf))) != 1) {
		return rv;
	}
	if (orders_fields_parse(&f, buf, strlen(buf), err, sizeof(err)) != 0 ||
	    (v = orders_fields_get(&f, "state")) == NULL) {
		fprintf(stderr, NAME ": corrupt record %s: %s\n", key, buf);
		return -1;
	}
	snprintf(rec->state, sizeof(rec->state), "%s", v);
	if ((v = orders_fields_get(&f, "order")) != NULL) {
		snprintf(rec->order, sizeof(rec->order), "%s", v);
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

// Loads order id. Returns 1 found, 0 absent, -1 storage error.
static int
order_load(order_svc *svc, const char *id, order_rec *o)
{
	char          key[ORDER_KEY_MAX];
	char          buf[512];
	char          err[160];
	orders_fields f;
	const char   *v;
	int           rv;

	memset(o, 0, sizeof(*o));
	snprintf(key, sizeof(key), "order/%s", id);
	if ((rv = orders_kv_get(svc->kv, key, buf, sizeof(buf))) != 1) {
		return rv;
	}
	if (orders_fields_parse(&f, buf, strlen(buf), err, sizeof(err)) != 0 ||
	    (v = orders_fields_get(&f, "status")) == NULL) {
		fprintf(stderr, NAME ": corrupt order %s: %s\n", key, buf);
		return -1;
	}
	snprintf(o->id, sizeof(o->id), "%s", id);
	snprintf(o->status, sizeof(o->status), "%s", v);
	if ((v = orders_fields_get(&f, "sku")) != NULL) {
		snprintf(o->sku, sizeof(o->sku), "%s", v);
	}
	if ((v = orders_fields_get(&f, "qty")) != NULL) {
		(void)orders_qty_parse(v, &o->qty);
	}
	return 1;
}

// Stages the branch record and, when o is not NULL, the order: with status
// o->status, or deleted when that status is "". The barrier writes them with
// its record of the call in one synced batch.
static void
save(dtx_reply *reply, const char *bkey, const char *rec, const order_rec *o)
{
	char key[ORDER_KEY_MAX];
	char val[256];

	orders_stage_put(reply, bkey, rec);
	if (o != NULL) {
		snprintf(key, sizeof(key), "order/%s", o->id);
		if (o->status[0] == '\0') {
			orders_stage_del(reply, key);
		} else {
			snprintf(val, sizeof(val),
			    "status=%s;sku=%s;qty=%" PRIu32, o->status, o->sku,
			    o->qty);
			orders_stage_put(reply, key, val);
		}
	}
}

static dtx_result
storage_failed(const dtx_call *call, dtx_reply *reply)
{
	orders_story(NAME, call, "-> storage error, asking for a retry");
	orders_reply(reply, NULL, "order storage error, retry");
	return DTX_RETRY;
}

static void
reply_order(dtx_reply *reply, const order_rec *o, const char *msg)
{
	char out[256];

	snprintf(out, sizeof(out), "order=%s;status=%s", o->id, o->status);
	orders_reply(reply, out, msg);
}

// Creates the order with status (PENDING for prepare, CONFIRMED for
// execute) and records the branch as ok_state; or refuses (the barrier
// records the refusal).
static dtx_result
create(order_svc *svc, const dtx_call *call, dtx_reply *reply,
    const char *bkey, const char *status, const char *ok_state)
{
	order_rec o, old;
	char      why[ORDERS_VAL_MAX + 1];
	char      rec[512];
	int       rv;

	if (parse_request(call, &o, why, sizeof(why)) != 0) {
		orders_story(NAME, call, "-> refused: %s", why);
		orders_reply(reply, NULL, why);
		return DTX_REFUSED;
	}
	if ((rv = order_load(svc, o.id, &old)) < 0) {
		return storage_failed(call, reply);
	}
	if (rv == 1) {
		snprintf(why, sizeof(why), "order %s already exists (%s)",
		    o.id, old.status);
		orders_story(NAME, call, "%s -> refused: %s", o.id, why);
		orders_reply(reply, NULL, why);
		return DTX_REFUSED;
	}
	snprintf(o.status, sizeof(o.status), "%s", status);
	snprintf(rec, sizeof(rec), "state=%s;order=%s", ok_state, o.id);
	save(reply, bkey, rec, &o);
	orders_story(NAME, call, "%s %s x%" PRIu32 " -> %s", o.id, o.sku,
	    o.qty, status);
	snprintf(why, sizeof(why), "order %s %s", o.id, status);
	reply_order(reply, &o, why);
	return DTX_OK;
}

// Moves the branch's order from status from (PENDING for commit, abort;
// CONFIRMED for compensate) to status to ("" deletes it), and the branch
// record to new_state.
static dtx_result
settle(order_svc *svc, const dtx_call *call, dtx_reply *reply,
    const char *bkey, const branch_rec *rec, const char *from, const char *to,
    const char *new_state)
{
	order_rec o;
	char      buf[256];
	int       rv;

	if ((rv = order_load(svc, rec->order, &o)) < 0) {
		return storage_failed(call, reply);
	}
	snprintf(buf, sizeof(buf), "state=%s;order=%s", new_state, rec->order);
	// The order may have moved on by other means (an operator, say);
	// then only the branch record changes.
	if (rv == 0 || strcmp(o.status, from) != 0) {
		save(reply, bkey, buf, NULL);
		snprintf(buf, sizeof(buf), "order %s is %s, left alone",
		    rec->order, rv == 0 ? "gone" : o.status);
		orders_story(NAME, call, "-> %s", buf);
		orders_reply(reply, NULL, buf);
		return DTX_OK;
	}
	snprintf(o.status, sizeof(o.status), "%s", to);
	save(reply, bkey, buf, &o);
	if (to[0] == '\0') {
		snprintf(buf, sizeof(buf), "order %s deleted", rec->order);
		orders_story(NAME, call, "%s -> deleted", rec->order);
		orders_reply(reply, NULL, buf);
	} else {
		snprintf(buf, sizeof(buf), "order %s %s", rec->order, to);
		orders_story(NAME, call, "%s -> %s", rec->order, to);
		reply_order(reply, &o, buf);
	}
	return DTX_OK;
}

// The barrier only lets a commit, abort or compensate through for a branch
// whose prepare or execute answered OK here, so its record must say so.
// When it does not, the data was damaged; phase two and compensation cannot
// be refused, so the call is acknowledged loudly rather than retried
// forever.
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

// Runs with svc->mu held (the barrier's lock), once per (gid, branch,
// phase).
static dtx_result
on_call(const dtx_call *call, dtx_reply *reply, void *arg)
{
	order_svc *svc = arg;
	char       bkey[ORDERS_BRANCH_KEY_MAX];
	branch_rec rec;
	bool       found;
	int        rv;

	orders_branch_key(bkey, call);
	if ((rv = rec_load(svc, bkey, &rec)) < 0) {
		return storage_failed(call, reply);
	}
	found = rv == 1;
	switch (call->phase) {
	case DTX_PHASE_PREPARE:
		return create(svc, call, reply, bkey, "PENDING", "prepared");
	case DTX_PHASE_EXECUTE:
		return create(svc, call, reply, bkey, "CONFIRMED", "executed");
	case DTX_PHASE_COMMIT:
		if (found && rec_is(&rec, "prepared")) {
			return settle(svc, call, reply, bkey, &rec, "PENDING",
			    "CONFIRMED", "committed");
		}
		return odd_call(call, reply, &rec, found);
	case DTX_PHASE_ABORT:
		if (found && rec_is(&rec, "prepared")) {
			return settle(svc, call, reply, bkey, &rec, "PENDING",
			    "", "aborted");
		}
		return odd_call(call, reply, &rec, found);
	case DTX_PHASE_COMPENSATE:
		if (found && rec_is(&rec, "executed")) {
			return settle(svc, call, reply, bkey, &rec,
			    "CONFIRMED", "CANCELLED", "compensated");
		}
		return odd_call(call, reply, &rec, found);
	default:
		orders_reply(reply, NULL, "unknown phase");
		return DTX_REFUSED;
	}
}

static void
dump_one(const char *key, const char *val, void *arg)
{
	(void)arg;
	printf("order %s %s\n", key + 6, val);
}

static int
dump(const char *dir)
{
	orders_kv *kv;
	int        rv;

	if (orders_kv_open(&kv, dir, true) != 0) {
		return 1;
	}
	rv = orders_kv_scan(kv, "order/", dump_one, NULL) != 0;
	orders_kv_close(kv);
	return rv;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: " NAME " --listen URL --data-dir DIR\n"
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
	rv = orders_service_run(
	    NAME, url, "Create", &ops, &svc, svc.kv, &svc.mu, &stop);
	pthread_mutex_destroy(&svc.mu);
	orders_kv_close(svc.kv);
	return rv;
}
