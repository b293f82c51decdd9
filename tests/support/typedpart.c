// SPDX-License-Identifier: MIT
//
// dtx-typedpart: a participant built on generated code, the golden files of
// tests/generator (compiled into dtx_golden), for the typed integration
// suite. It serves shop.inventory.Inventory (Reserve: 2PC) and
// travel.Flights (Book: saga; Hold: 2PC or saga) through the generated
// <service>_register() and typed callbacks:
//
//   Reserve  prepare refuses sku "none" and qty over 100, else answers
//            left = 100 - qty; commit and abort only log
//   Book     execute refuses who "nobody", else answers code "BK-<who>-<n>"
//            where n is the number of legs; compensate only logs
//   Hold     prepare and execute answer code "H-<who>"; the others log
//
// Every callback appends "CALL <PHASE> <gid> <branch> <attempt> OK|REFUSED"
// to the call log (harness.h reads it), plus "BATCH <gid> <branch>" when it
// found the barrier's write batch. With --store DIR it runs behind the
// barrier over a RocksDB in DIR, and each forward callback stages
// "e/<gid>/<branch>" in that batch. DTX_PARTICIPANT_CRASH_AT works as for
// any participant. SIGTERM or SIGINT closes it and exits 0.
//
// Usage: dtx-typedpart --listen URL --log FILE [--store DIR]

#include <dtx/dtx.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "inventory.dtx.h"
#include "trip.dtx.h"

static int logfd = -1;

static dtx_result
logged(const dtx_call *call, dtx_reply *reply, dtx_result res)
{
	char                  line[512];
	int                   n;
	rocksdb_writebatch_t *wb = dtx_reply_writebatch(reply);

	n = snprintf(line, sizeof(line), "CALL %s %s %u %u %s\n",
	    dtx_phase_name(call->phase), call->gid, (unsigned)call->branch_id,
	    (unsigned)call->attempt, res == DTX_OK ? "OK" : "REFUSED");
	if (wb != NULL) {
		char key[256];
		int  k = snprintf(key, sizeof(key), "e/%s/%u", call->gid,
		     (unsigned)call->branch_id);
		if (call->phase == DTX_PHASE_PREPARE ||
		    call->phase == DTX_PHASE_EXECUTE) {
			rocksdb_writebatch_put(wb, key, (size_t)k, "1", 1);
		}
		n += snprintf(line + n, sizeof(line) - (size_t)n,
		    "BATCH %s %u\n", call->gid, (unsigned)call->branch_id);
	}
	if (write(logfd, line, (size_t)n) != n) {
		perror("dtx-typedpart: log");
	}
	return res;
}

static dtx_result
reserve_prepare(const dtx_call *call, const shop_inventory_ReserveRequest *req,
    shop_inventory_ReserveReply *out, dtx_reply *reply, void *arg)
{
	(void)arg;
	if (strcmp(req->sku, "none") == 0 || req->qty > 100) {
		dtx_reply_set_message(reply, "no such stock");
		return logged(call, reply, DTX_REFUSED);
	}
	out->left = 100 - req->qty;
	return logged(call, reply, DTX_OK);
}

static dtx_result
reserve_settle(const dtx_call *call, const shop_inventory_ReserveRequest *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	(void)arg;
	return logged(call, reply, DTX_OK);
}

static dtx_result
book_execute(const dtx_call *call, const travel_Booking *req,
    travel_Confirmation *out, dtx_reply *reply, void *arg)
{
	(void)arg;
	if (strcmp(req->who, "nobody") == 0) {
		dtx_reply_set_message(reply, "nobody flies");
		return logged(call, reply, DTX_REFUSED);
	}
	snprintf(out->code, sizeof(out->code), "BK-%s-%u", req->who,
	    (unsigned)req->legs_count);
	return logged(call, reply, DTX_OK);
}

static dtx_result
flight_settle(const dtx_call *call, const travel_Booking *req,
    dtx_reply *reply, void *arg)
{
	(void)req;
	(void)arg;
	return logged(call, reply, DTX_OK);
}

static dtx_result
hold_forward(const dtx_call *call, const travel_Booking *req,
    travel_Confirmation *out, dtx_reply *reply, void *arg)
{
	(void)arg;
	snprintf(out->code, sizeof(out->code), "H-%s", req->who);
	return logged(call, reply, DTX_OK);
}

int
main(int argc, char **argv)
{
	static const shop_inventory_Inventory_service inventory = {
	    .reserve = {.prepare = reserve_prepare,
	        .commit          = reserve_settle,
	        .abort           = reserve_settle},
	};
	static const travel_Flights_service flights = {
	    .book = {.execute = book_execute, .compensate = flight_settle},
	    .hold = {.prepare = hold_forward,
	        .commit       = flight_settle,
	        .abort        = flight_settle,
	        .execute      = hold_forward,
	        .compensate   = flight_settle},
	};
	const char      *url = NULL, *log = NULL, *store = NULL;
	dtx_participant *p  = NULL;
	rocksdb_t       *db = NULL;
	sigset_t         stop;
	int              rv = 0, sig;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--listen") == 0) {
			url = argv[i + 1];
		} else if (strcmp(argv[i], "--log") == 0) {
			log = argv[i + 1];
		} else if (strcmp(argv[i], "--store") == 0) {
			store = argv[i + 1];
		}
	}
	if (url == NULL || log == NULL) {
		fprintf(stderr,
		    "usage: dtx-typedpart --listen URL --log FILE "
		    "[--store DIR]\n");
		return 2;
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if ((logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0) {
		perror(log);
		return 1;
	}
	if (store != NULL) {
		rocksdb_options_t *o   = rocksdb_options_create();
		char              *err = NULL;

		rocksdb_options_set_create_if_missing(o, 1);
		db = rocksdb_open(o, store, &err);
		rocksdb_options_destroy(o);
		if (db == NULL) {
			fprintf(stderr, "dtx-typedpart: %s: %s\n", store, err);
			rocksdb_free(err);
			return 1;
		}
	}
	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (db != NULL &&
	        (rv = dtx_participant_use_barrier(p, db, NULL)) != 0) ||
	    (rv = shop_inventory_Inventory_register(p, &inventory, NULL)) !=
	        0 ||
	    (rv = travel_Flights_register(p, &flights, NULL)) != 0 ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(stderr, "dtx-typedpart: %s (%s)\n", dtx_strerror(rv),
		    dtx_participant_message(p));
		rv = 1;
	} else {
		sigwait(&stop, &sig);
	}
	dtx_participant_close(p);
	if (db != NULL) {
		rocksdb_close(db);
	}
	close(logfd);
	return rv;
}
