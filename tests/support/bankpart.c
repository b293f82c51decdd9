// SPDX-License-Identifier: MIT
//
// dtx-bankpart: a bank branch for the chaos bank test (tests/fault/
// bank_test.c). It owns a few accounts in its own RocksDB directory and
// serves one method, "xfer", whose payload is "<account> <amount>": a
// negative amount takes money out of the account, a positive one puts it in.
//
//   2PC    prepare  debit: reserve the amount (refused when the account's
//                   balance minus its reservations is short); credit:
//                   remember the pending credit.
//          commit   apply the reservation or the pending credit.
//          abort    drop it.
//   saga   execute  debit: take the money (refused when short); credit:
//                   add it.
//          compensate  put back what execute did, if it did anything.
//
// Every applied effect is written to a ledger ("L/<gid>/<branch>" -> account
// and delta) in the same synced WriteBatch as the balance change, so the
// test can prove exactly-once from the store alone: each balance must equal
// its opening balance plus the sum of its ledger entries.
//
// Exactly-once delivery comes from libdtx's durable barrier
// (dtx_participant_use_barrier): the callback stages its business writes in
// the barrier's batch (dtx_reply_writebatch), and a redelivered, late or
// out-of-order call never runs a callback twice; an abort or compensation
// that comes first is a recorded no-op, and the late prepare or execute is
// refused. The bank's lock is the barrier's user lock, so the balance read
// in a callback and the SDK's write of its batch happen under it. With
// --coordinator, the SDK's in-doubt resolver (dtx_participant_set_resolver)
// asks the coordinator about reservations held longer than --resolve-after
// and commits or aborts them itself, through the same barrier.
//
// A balance can never go negative: every change that would make it so is
// refused (debits) or retried (the compensation of a credit whose money has
// been spent since) and recorded as an anomaly ("X/<n>") that fails the
// test.
//
// Faults for the nemesis: --delay-rate P --delay-ms MS makes a fraction P of
// the calls that run a callback sleep MS first (past the coordinator's call
// timeout, say); replays answered by the barrier are not delayed.
//
// Usage: dtx-bankpart --listen URL --store DIR --accounts a,b,c
//            [--initial N] [--coordinator URL --resolve-after MS]
//            [--delay-rate P --delay-ms MS] [--seed S] [--workers N]
//        dtx-bankpart --dump --store DIR
//
// --dump prints the store and exits: "BAL <account> <balance>",
// "LEDGER <gid> <branch> <account> <delta>", "HOLD <gid> <branch> <account>
// <amount>", "PEND ...", "ANOMALY <text>".

#include <dtx/dtx.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define MAX_ACCOUNTS 32
#define NAME_MAX_    32

typedef struct account {
	char    name[NAME_MAX_];
	int64_t held; // sum of this account's 2PC reservations (in memory)
} account;

typedef struct bank {
	pthread_mutex_t lock; // serialises every read-modify-write
	rocksdb_t      *db;
	account         accts[MAX_ACCOUNTS];
	unsigned        naccts;
	double          delay_rate;
	unsigned        delay_ms;
	uint64_t        rng;
	uint64_t        anomalies;
} bank;

static void
die(const char *what, char *err)
{
	fprintf(stderr, "dtx-bankpart: %s: %s\n", what, err ? err : "failed");
	free(err);
	exit(1);
}

// xorshift64*, under b->lock.
static double
rnd01(bank *b)
{
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return (double)((b->rng * 2685821657736338717ull) >> 11) /
	    (double)(1ull << 53);
}

static account *
find_account(bank *b, const char *name)
{
	for (unsigned i = 0; i < b->naccts; i++) {
		if (strcmp(b->accts[i].name, name) == 0) {
			return &b->accts[i];
		}
	}
	return NULL;
}

// Reads key into buf (NUL-terminated). Returns true when it exists.
static bool
db_get(bank *b, const char *key, char *buf, size_t cap)
{
	rocksdb_readoptions_t *ro  = rocksdb_readoptions_create();
	char                  *err = NULL;
	size_t                 len = 0;
	char *v = rocksdb_get(b->db, ro, key, strlen(key), &len, &err);
	rocksdb_readoptions_destroy(ro);
	if (err != NULL) {
		die("read", err);
	}
	if (v == NULL) {
		return false;
	}
	if (buf != NULL) {
		size_t n = len < cap - 1 ? len : cap - 1;
		memcpy(buf, v, n);
		buf[n] = '\0';
	}
	rocksdb_free(v);
	return true;
}

static int64_t
balance(bank *b, const account *a)
{
	char key[64], val[64];
	snprintf(key, sizeof(key), "A/%s", a->name);
	if (!db_get(b, key, val, sizeof(val))) {
		return 0;
	}
	return strtoll(val, NULL, 10);
}

static void
batch_put(rocksdb_writebatch_t *wb, const char *key, const char *val)
{
	rocksdb_writebatch_put(wb, key, strlen(key), val, strlen(val));
}

static void
batch_balance(rocksdb_writebatch_t *wb, const account *a, int64_t v)
{
	char key[64], val[32];
	snprintf(key, sizeof(key), "A/%s", a->name);
	snprintf(val, sizeof(val), "%" PRId64, v);
	batch_put(wb, key, val);
}

// Records an anomaly in the batch (it fails the test) and logs it.
static void anomaly(bank *b, rocksdb_writebatch_t *wb, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
anomaly(bank *b, rocksdb_writebatch_t *wb, const char *fmt, ...)
{
	char    key[64], text[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(key, sizeof(key), "X/%" PRId64 "/%" PRIu64, dtxi_now_ms(),
	    b->anomalies++);
	batch_put(wb, key, text);
	fprintf(stderr, "dtx-bankpart: ANOMALY %s\n", text);
}

static void
db_write(bank *b, rocksdb_writebatch_t *wb)
{
	rocksdb_writeoptions_t *wo  = rocksdb_writeoptions_create();
	char                   *err = NULL;
	rocksdb_writeoptions_set_sync(wo, 1);
	rocksdb_write(b->db, wo, wb, &err);
	rocksdb_writeoptions_destroy(wo);
	if (err != NULL) {
		die("write", err);
	}
}

// Parses "<account> <amount>".
static bool
parse_xfer(const dtx_call *call, char *acct, int64_t *amount)
{
	char   text[96];
	size_t n = call->payload_len < sizeof(text) - 1 ? call->payload_len
	                                                : sizeof(text) - 1;
	memcpy(text, call->payload, n);
	text[n] = '\0';
	return sscanf(text, "%31s %" SCNd64, acct, amount) == 2 &&
	    *amount != 0;
}

// The business logic of one call, staged into wb (written by the caller
// together with the barrier record). Runs under b->lock.
static dtx_result
xfer(bank *b, const dtx_call *call, rocksdb_writebatch_t *wb, dtx_reply *r)
{
	char     acct_name[NAME_MAX_], key[256], val[128];
	int64_t  amount;
	account *a;

	if (!parse_xfer(call, acct_name, &amount) ||
	    (a = find_account(b, acct_name)) == NULL) {
		dtx_reply_set_message(r, "bad transfer payload");
		return DTX_REFUSED;
	}
	int64_t bal = balance(b, a);

	switch (call->phase) {
	case DTX_PHASE_PREPARE:
		if (amount < 0) {
			if (bal - a->held < -amount) {
				dtx_reply_set_message(r, "insufficient funds");
				return DTX_REFUSED;
			}
			snprintf(key, sizeof(key), "H/%s/%u", call->gid,
			    call->branch_id);
		} else {
			snprintf(key, sizeof(key), "P/%s/%u", call->gid,
			    call->branch_id);
		}
		snprintf(val, sizeof(val), "%s %" PRId64 " %" PRId64, a->name,
		    amount, dtxi_now_ms());
		batch_put(wb, key, val);
		if (amount < 0) {
			a->held += -amount; // undone by the caller on failure
		}
		return DTX_OK;
	case DTX_PHASE_COMMIT:
	case DTX_PHASE_ABORT: {
		bool commit = call->phase == DTX_PHASE_COMMIT;
		snprintf(key, sizeof(key), "%c/%s/%u", amount < 0 ? 'H' : 'P',
		    call->gid, call->branch_id);
		if (!db_get(b, key, NULL, 0)) {
			if (commit) {
				anomaly(b, wb,
				    "commit of %s/%u without prepare",
				    call->gid, call->branch_id);
			}
			return DTX_OK; // abort without prepare: nothing held
		}
		rocksdb_writebatch_delete(wb, key, strlen(key));
		if (amount < 0) {
			a->held -= -amount;
		}
		if (commit) {
			batch_balance(wb, a, bal + amount);
			snprintf(key, sizeof(key), "L/%s/%u", call->gid,
			    call->branch_id);
			snprintf(
			    val, sizeof(val), "%s %" PRId64, a->name, amount);
			batch_put(wb, key, val);
		}
		return DTX_OK;
	}
	case DTX_PHASE_EXECUTE:
		if (amount < 0 && bal - a->held < -amount) {
			dtx_reply_set_message(r, "insufficient funds");
			return DTX_REFUSED;
		}
		batch_balance(wb, a, bal + amount);
		snprintf(
		    key, sizeof(key), "L/%s/%u", call->gid, call->branch_id);
		snprintf(val, sizeof(val), "%s %" PRId64, a->name, amount);
		batch_put(wb, key, val);
		return DTX_OK;
	case DTX_PHASE_COMPENSATE:
		snprintf(
		    key, sizeof(key), "L/%s/%u", call->gid, call->branch_id);
		if (!db_get(b, key, NULL, 0)) {
			return DTX_OK; // never executed: nothing to put back
		}
		if (bal - amount < 0) {
			// A RETRY's batch is dropped by the barrier: the
			// anomaly is written on its own, now.
			rocksdb_writebatch_t *xb = rocksdb_writebatch_create();
			anomaly(b, xb,
			    "compensating %s/%u would leave %s at %" PRId64,
			    call->gid, call->branch_id, a->name, bal - amount);
			db_write(b, xb);
			rocksdb_writebatch_destroy(xb);
			return DTX_RETRY;
		}
		batch_balance(wb, a, bal - amount);
		rocksdb_writebatch_delete(wb, key, strlen(key));
		return DTX_OK;
	}
	return DTX_REFUSED;
}

// The barrier's user lock: taken before a callback runs, released once the
// barrier wrote its batch. The nemesis's delay comes first, outside the
// bank's lock, so that a delayed call does not stall the others.
static void
bank_lock(void *arg)
{
	bank *b = arg;
	bool  delay;

	pthread_mutex_lock(&b->lock);
	delay = b->delay_rate > 0 && rnd01(b) < b->delay_rate;
	pthread_mutex_unlock(&b->lock);
	if (delay) {
		struct timespec ts = {(time_t)(b->delay_ms / 1000),
		    (long)(b->delay_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&b->lock);
}

static void
bank_unlock(void *arg)
{
	bank *b = arg;

	pthread_mutex_unlock(&b->lock);
}

// Every phase, under the bank's lock (see bank_lock).
static dtx_result
on_xfer(const dtx_call *call, dtx_reply *reply, void *arg)
{
	bank                 *b  = arg;
	rocksdb_writebatch_t *wb = dtx_reply_writebatch(reply);

	if (wb == NULL) {
		dtx_reply_set_message(reply, "no barrier batch");
		return DTX_RETRY;
	}
	return xfer(b, call, wb, reply);
}

// ---------------------------------------------------------------------------
// Start, dump, main
// ---------------------------------------------------------------------------

static rocksdb_t *
open_db(const char *dir, bool create)
{
	rocksdb_options_t *o   = rocksdb_options_create();
	char              *err = NULL;
	rocksdb_options_set_create_if_missing(o, create ? 1 : 0);
	rocksdb_options_set_info_log_level(o, 2); // WARN
	rocksdb_options_set_keep_log_file_num(o, 2);
	rocksdb_t *db = rocksdb_open(o, dir, &err);
	rocksdb_options_destroy(o);
	if (err != NULL) {
		die(dir, err);
	}
	return db;
}

// Opening balances for accounts not in the store yet, and the in-memory
// reservation sums from the reservations that are.
static void
load_accounts(bank *b, int64_t initial)
{
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	char                  key[64];

	for (unsigned i = 0; i < b->naccts; i++) {
		snprintf(key, sizeof(key), "A/%s", b->accts[i].name);
		if (!db_get(b, key, NULL, 0)) {
			batch_balance(wb, &b->accts[i], initial);
		}
	}
	db_write(b, wb);
	rocksdb_writebatch_destroy(wb);

	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t    *it = rocksdb_create_iterator(b->db, ro);
	for (rocksdb_iter_seek(it, "H/", 2); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t      klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);
		char        val[128], acct[NAME_MAX_];
		int64_t     amount;
		if (klen < 2 || k[0] != 'H') {
			break;
		}
		if (vlen >= sizeof(val)) {
			continue;
		}
		memcpy(val, v, vlen);
		val[vlen] = '\0';
		account *a;
		if (sscanf(val, "%31s %" SCNd64, acct, &amount) == 2 &&
		    (a = find_account(b, acct)) != NULL) {
			a->held += -amount;
		}
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
}

static int
dump(const char *dir)
{
	rocksdb_t             *db = open_db(dir, false);
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t    *it = rocksdb_create_iterator(db, ro);

	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t      klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);
		char        key[256], val[256];
		if (klen >= sizeof(key) || vlen >= sizeof(val) || klen < 2) {
			continue;
		}
		memcpy(key, k, klen);
		key[klen] = '\0';
		memcpy(val, v, vlen);
		val[vlen]  = '\0';
		char *rest = key + 2;
		switch (key[0]) {
		case 'A':
			printf("BAL %s %s\n", rest, val);
			break;
		case 'L':
		case 'H':
		case 'P': {
			char *slash = strrchr(rest, '/');
			if (slash == NULL) {
				break;
			}
			*slash = '\0';
			char    acct[NAME_MAX_];
			int64_t amount;
			if (sscanf(val, "%31s %" SCNd64, acct, &amount) != 2) {
				break;
			}
			printf("%s %s %s %s %" PRId64 "\n",
			    key[0] == 'L'       ? "LEDGER"
			        : key[0] == 'H' ? "HOLD"
			                        : "PEND",
			    rest, slash + 1, acct, amount);
			break;
		}
		case 'X':
			printf("ANOMALY %s\n", val);
			break;
		}
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	rocksdb_close(db);
	return 0;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: dtx-bankpart --listen URL --store DIR --accounts a,b,c\n"
	    "           [--initial N] [--coordinator URL --resolve-after MS]\n"
	    "           [--delay-rate P --delay-ms MS] [--seed S] "
	    "[--workers N]\n"
	    "       dtx-bankpart --dump --store DIR\n");
}

int
main(int argc, char **argv)
{
	static bank                 b;
	static const dtx_method_ops ops = {
	    .prepare    = on_xfer,
	    .commit     = on_xfer,
	    .abort      = on_xfer,
	    .execute    = on_xfer,
	    .compensate = on_xfer,
	};
	const char      *url = NULL, *store = NULL, *accounts = NULL;
	const char      *coord         = NULL;
	uint32_t         resolve_after = 2000;
	int64_t          initial       = 1000;
	unsigned         workers       = 8;
	bool             dumping       = false;
	dtx_participant *p             = NULL;
	sigset_t         sigs;
	int              sig, rv;

	b.rng = 88172645463325252ull;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--dump") == 0) {
			dumping = true;
			continue;
		}
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL) {
			usage();
			return 1;
		}
		if (strcmp(argv[i], "--listen") == 0) {
			url = v;
		} else if (strcmp(argv[i], "--store") == 0) {
			store = v;
		} else if (strcmp(argv[i], "--accounts") == 0) {
			accounts = v;
		} else if (strcmp(argv[i], "--initial") == 0) {
			initial = strtoll(v, NULL, 10);
		} else if (strcmp(argv[i], "--coordinator") == 0) {
			coord = v;
		} else if (strcmp(argv[i], "--resolve-after") == 0) {
			resolve_after = (uint32_t)strtoul(v, NULL, 10);
		} else if (strcmp(argv[i], "--delay-rate") == 0) {
			b.delay_rate = strtod(v, NULL);
		} else if (strcmp(argv[i], "--delay-ms") == 0) {
			b.delay_ms = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(argv[i], "--seed") == 0) {
			b.rng ^= strtoull(v, NULL, 10) * 0x9E3779B97F4A7C15ull;
			if (b.rng == 0) {
				b.rng = 1;
			}
		} else if (strcmp(argv[i], "--workers") == 0) {
			workers = (unsigned)strtoul(v, NULL, 10);
		} else {
			usage();
			return 1;
		}
		i++;
	}
	if (dumping && store != NULL) {
		return dump(store);
	}
	if (url == NULL || store == NULL || accounts == NULL) {
		usage();
		return 1;
	}
	for (const char *s = accounts;
	     *s != '\0' && b.naccts < MAX_ACCOUNTS;) {
		size_t n = strcspn(s, ",");
		if (n > 0 && n < NAME_MAX_) {
			memcpy(b.accts[b.naccts].name, s, n);
			b.accts[b.naccts++].name[n] = '\0';
		}
		s += n;
		if (*s == ',') {
			s++;
		}
	}
	pthread_mutex_init(&b.lock, NULL);
	b.db = open_db(store, true);
	load_accounts(&b, initial);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	dtx_barrier_opts bo = {
	    .lock = bank_lock, .unlock = bank_unlock, .lock_arg = &b};
	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (rv = dtx_participant_set_workers(p, workers)) != 0 ||
	    (rv = dtx_participant_register(p, "xfer", &ops, &b)) != 0 ||
	    (rv = dtx_participant_use_barrier(p, b.db, &bo)) != 0 ||
	    (coord != NULL &&
	        (rv = dtx_participant_set_resolver(
	             p, coord, resolve_after > 0 ? resolve_after : 1)) != 0) ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(
		    stderr, "dtx-bankpart: %s: %s\n", url, dtx_strerror(rv));
		dtx_participant_close(p);
		rocksdb_close(b.db);
		return 1;
	}
	fprintf(stderr, "dtx-bankpart: serving %u accounts on %s\n", b.naccts,
	    url);
	sigwait(&sigs, &sig);
	dtx_participant_close(p);
	rocksdb_close(b.db);
	return 0;
}
