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
// (dtx_participant_use_barrier): the business writes are staged in the
// barrier's batch, and a redelivered, late or out-of-order call never runs a
// callback twice. The barrier's in-doubt resolver asks the coordinator about
// reservations held too long.
//
// A balance can never go negative: every change that would make it so is
// refused (debits) or retried (the compensation of a credit whose money has
// been spent since) and recorded as an anomaly ("X/<n>") that fails the
// test.
//
// Faults for the nemesis: --delay-rate P --delay-ms MS makes a fraction P of
// calls sleep MS first (past the coordinator's call timeout, say).
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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"

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
			anomaly(b, wb,
			    "compensating %s/%u would leave %s at %" PRId64,
			    call->gid, call->branch_id, a->name, bal - amount);
			db_write(b, wb);
			rocksdb_writebatch_clear(wb);
			return DTX_RETRY;
		}
		batch_balance(wb, a, bal - amount);
		rocksdb_writebatch_delete(wb, key, strlen(key));
		return DTX_OK;
	}
	return DTX_REFUSED;
}

static const char *const phase_tag[] = {
    [DTX_PHASE_PREPARE]    = "prepare",
    [DTX_PHASE_COMMIT]     = "commit",
    [DTX_PHASE_ABORT]      = "abort",
    [DTX_PHASE_EXECUTE]    = "execute",
    [DTX_PHASE_COMPENSATE] = "compensate",
};

// The barrier: "B/<gid>/<branch>/<phase>" -> "OK" or "REFUSED", written in
// the same batch as the effect. Runs one call under b->lock: a call seen
// before answers as it did then; a prepare or execute that comes after its
// abort or compensation is refused without running.
static dtx_result
serve_call(bank *b, const dtx_call *call, dtx_reply *reply)
{
	char                  key[256], val[16];
	dtx_result            res;
	rocksdb_writebatch_t *wb;
	int                   ph = call->phase;

	if (ph < DTX_PHASE_PREPARE || ph > DTX_PHASE_COMPENSATE) {
		return DTX_REFUSED;
	}
	if (ph == DTX_PHASE_PREPARE || ph == DTX_PHASE_EXECUTE) {
		snprintf(key, sizeof(key), "B/%s/%u/%s", call->gid,
		    call->branch_id,
		    phase_tag[ph == DTX_PHASE_PREPARE ? DTX_PHASE_ABORT
		                                      : DTX_PHASE_COMPENSATE]);
		if (db_get(b, key, NULL, 0)) {
			dtx_reply_set_message(reply, "already rolled back");
			return DTX_REFUSED;
		}
	}
	snprintf(key, sizeof(key), "B/%s/%u/%s", call->gid, call->branch_id,
	    phase_tag[ph]);
	if (db_get(b, key, val, sizeof(val))) {
		return strcmp(val, "OK") == 0 ? DTX_OK : DTX_REFUSED;
	}
	wb  = rocksdb_writebatch_create();
	res = xfer(b, call, wb, reply);
	if (res != DTX_RETRY) {
		batch_put(wb, key, res == DTX_OK ? "OK" : "REFUSED");
		db_write(b, wb);
	}
	rocksdb_writebatch_destroy(wb);
	return res;
}

static dtx_result
on_xfer(const dtx_call *call, dtx_reply *reply, void *arg)
{
	bank      *b = arg;
	bool       delay;
	dtx_result res;

	pthread_mutex_lock(&b->lock);
	delay = b->delay_rate > 0 && rnd01(b) < b->delay_rate;
	pthread_mutex_unlock(&b->lock);
	if (delay) {
		struct timespec ts = {(time_t)(b->delay_ms / 1000),
		    (long)(b->delay_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&b->lock);
	res = serve_call(b, call, reply);
	pthread_mutex_unlock(&b->lock);
	return res;
}

// ---------------------------------------------------------------------------
// In-doubt resolution: a reservation or pending credit held longer than
// resolve_after is settled by asking the coordinator, through the same
// barrier path as a real COMMIT or ABORT.
// ---------------------------------------------------------------------------

typedef struct resolver {
	bank       *b;
	const char *url;
	int64_t     after_ms;
	atomic_bool stop;
	pthread_t   thread;
	uint64_t    settled;
} resolver;

typedef struct doubt {
	char     gid[DTX_GID_MAX + 1];
	uint32_t branch;
	char     payload[96];
} doubt;

// Collects up to cap held branches older than the cutoff.
static size_t
find_doubts(bank *b, int64_t cutoff, doubt *out, size_t cap)
{
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t    *it = rocksdb_create_iterator(b->db, ro);
	size_t                 n  = 0;

	for (rocksdb_iter_seek(it, "H/", 2); n < cap && rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t      klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);
		char        key[256], val[128], acct[NAME_MAX_];
		int64_t     amount, at;

		if (klen < 2 || (k[0] != 'H' && k[0] != 'P') || k[1] != '/') {
			if (k[0] > 'P') {
				break;
			}
			continue;
		}
		if (klen >= sizeof(key) || vlen >= sizeof(val)) {
			continue;
		}
		memcpy(key, k, klen);
		key[klen] = '\0';
		memcpy(val, v, vlen);
		val[vlen]   = '\0';
		char *slash = strrchr(key, '/');
		if (slash == NULL || slash == key + 1 ||
		    sscanf(val, "%31s %" SCNd64 " %" SCNd64, acct, &amount,
		        &at) != 3 ||
		    at > cutoff) {
			continue;
		}
		*slash = '\0';
		dtxi_strlcpy(out[n].gid, key + 2, sizeof(out[n].gid));
		out[n].branch = (uint32_t)strtoul(slash + 1, NULL, 10);
		snprintf(out[n].payload, sizeof(out[n].payload), "%s %" PRId64,
		    acct, amount);
		n++;
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	return n;
}

static void *
resolver_main(void *arg)
{
	resolver   *rs = arg;
	dtx_client *c  = NULL;
	doubt       d[64];

	while (!atomic_load(&rs->stop)) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
		if (c == NULL && dtx_client_open(&c, rs->url) != 0) {
			continue;
		}
		dtx_client_set_timeout_ms(c, 1000);
		pthread_mutex_lock(&rs->b->lock);
		size_t n =
		    find_doubts(rs->b, dtxi_now_ms() - rs->after_ms, d, 64);
		pthread_mutex_unlock(&rs->b->lock);
		for (size_t i = 0; i < n && !atomic_load(&rs->stop); i++) {
			dtx_state st = 0;
			if (dtx_client_resolve(c, d[i].gid, &st) != 0) {
				break; // coordinator down: later
			}
			int phase = st == DTX_STATE_COMMITTING ||
			        st == DTX_STATE_COMMITTED
			    ? DTX_PHASE_COMMIT
			    : st == DTX_STATE_ABORTING ||
			        st == DTX_STATE_ABORTED
			    ? DTX_PHASE_ABORT
			    : 0;
			if (phase == 0) {
				continue; // still undecided
			}
			dtx_call call = {
			    .gid         = d[i].gid,
			    .branch_id   = d[i].branch,
			    .phase       = (dtx_phase)phase,
			    .method      = "xfer",
			    .payload     = d[i].payload,
			    .payload_len = strlen(d[i].payload),
			    .attempt     = 1,
			};
			pthread_mutex_lock(&rs->b->lock);
			(void)serve_call(rs->b, &call, NULL);
			pthread_mutex_unlock(&rs->b->lock);
			rs->settled++;
			fprintf(stderr, "dtx-bankpart: resolved %s/%u: %s\n",
			    d[i].gid, d[i].branch, dtx_phase_name(phase));
		}
	}
	dtx_client_close(c);
	return NULL;
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
	static resolver             rs;
	static const dtx_method_ops ops = {
	    .prepare    = on_xfer,
	    .commit     = on_xfer,
	    .abort      = on_xfer,
	    .execute    = on_xfer,
	    .compensate = on_xfer,
	};
	const char      *url = NULL, *store = NULL, *accounts = NULL;
	const char      *coord   = NULL;
	int64_t          initial = 1000;
	unsigned         workers = 8;
	bool             dumping = false;
	dtx_participant *p       = NULL;
	sigset_t         sigs;
	int              sig, rv;

	b.rng       = 88172645463325252ull;
	rs.after_ms = 2000;
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
			rs.after_ms = strtoll(v, NULL, 10);
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

	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (rv = dtx_participant_set_workers(p, workers)) != 0 ||
	    (rv = dtx_participant_register(p, "xfer", &ops, &b)) != 0 ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(
		    stderr, "dtx-bankpart: %s: %s\n", url, dtx_strerror(rv));
		dtx_participant_close(p);
		rocksdb_close(b.db);
		return 1;
	}
	if (coord != NULL) {
		rs.b   = &b;
		rs.url = coord;
		pthread_create(&rs.thread, NULL, resolver_main, &rs);
	}
	fprintf(stderr, "dtx-bankpart: serving %u accounts on %s\n", b.naccts,
	    url);
	sigwait(&sigs, &sig);
	if (coord != NULL) {
		atomic_store(&rs.stop, true);
		pthread_join(rs.thread, NULL);
	}
	dtx_participant_close(p);
	rocksdb_close(b.db);
	return 0;
}
