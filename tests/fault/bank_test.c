// SPDX-License-Identifier: MIT
//
// dtx.fault.bank: Jepsen's bank test, adapted to dtx. Three bank branches
// (dtx-bankpart processes, each with four accounts in its own RocksDB) and
// one dtxd. Client threads move random amounts between accounts on
// different branches, half as 2PC and half as saga, while a nemesis kills
// (SIGKILL) and restarts dtxd and the branches at random moments, and the
// branches delay a few calls past dtxd's call timeout. Then everything is
// restarted and left to finish, and the stores are read back:
//
//   - every transfer dtxd knows is in a terminal state;
//   - the total of all balances is unchanged;
//   - no balance is negative, and no branch ever had to refuse a change
//     that would have made one negative (an "anomaly");
//   - every COMMITTED transfer is in both branches' ledgers exactly once
//     (each balance equals its opening balance plus its ledger), and every
//     ABORTED, COMPENSATED or unknown one left nothing: no ledger entry, no
//     reservation, no pending credit.
//
// The run is bounded (transfers and seconds) and reproducible from its seed:
// the transfers, their modes and amounts and the nemesis's schedule come
// from it (thread timing does not). Environment:
//   DTX_BANK_SEED=N       run the seeded tests with this seed instead
//   DTX_BANK_SOAK_SECONDS=S  enables the soak test: chaos for S seconds
//   DTXT_KEEP=1           keep the directories for a post-mortem
//
// dtx.fault.cluster is this file built with DTX_BANK_CLUSTER: the same bank
// on three dtxd nodes sharing one private PostgreSQL (--store postgres,
// leases of LEASE_MS). Its nemesis also pauses a node (SIGSTOP) past its
// lease, so that the others take its transactions over, and lets it run
// again (a zombie, whose writes must come back fenced and whose calls must
// not contradict its successor's), and restarts the database (a crash or
// a fast shutdown). Clients know every node's URL and move on to the next
// node when one does not answer (a resubmit is idempotent by gid); the
// branches' resolvers ask node 0 (any node answers Resolve for any
// transaction). On top of the bank's invariants the database must hold no
// unfinished transaction at the end. It reports transfers, kills, pauses,
// database restarts, takeovers (the epochs the database counted) and the
// transactions nodes dropped on a fenced write. DTX_CLUSTER_SOAK_SECONDS
// is its soak.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "httpc.h"
#include "pg.h"
#include "strs.h"

#define NBRANCHES 3
#define NACCOUNTS 4 // per branch
#define INITIAL   1000
#define MAX_XFERS 200000
#define NCLIENTS  8
#define NNODES    3 // dtxd nodes in the cluster run
#define LEASE_MS  1500

typedef struct xfer {
	char      gid[48];
	dtx_mode  mode;
	int       from_branch, from_acct;
	int       to_branch, to_acct;
	int64_t   amount;
	dtx_state outcome; // 0: unknown to the client
	bool      found;   // dtxd knows it (after the final check)
} xfer;

typedef struct bankworld {
	char dir[512];
	char data[DTXT_PATH_MAX];
	int  nnodes; // 1 on RocksDB, NNODES on PostgreSQL
	struct {
		char       url[DTXT_URL_MAX];
		char       log[DTXT_PATH_MAX];
		char       name[16];
		dtxt_proc *proc;
	} node[NNODES];
	bool     cluster;
	dtxt_pg  pg;
	char     conn[512];
	char     http[DTXT_URL_MAX]; // node 0's /readyz
	unsigned not_ready;          // times it said so with the database down
	struct {
		char       url[DTXT_URL_MAX];
		char       store[DTXT_PATH_MAX];
		char       log[DTXT_PATH_MAX];
		dtxt_proc *proc;
	} br[NBRANCHES];
	char     bankpart[DTXT_PATH_MAX];
	uint64_t seed;

	xfer       *xfers;
	unsigned    nxfers;
	atomic_uint next; // next transfer a client takes
	atomic_bool stop; // clients: submit no new transfers
	int64_t     chaos_end_ms;
	unsigned    kills_dtxd, kills_branch, restarts, delays;
	unsigned    pauses, db_restarts; // the cluster's nemesis
} bankworld;

static bankworld bw;

static void
teardown(void)
{
	dtxt_cleanup();
	dtxt_pg_fini(&bw.pg);
	free(bw.xfers);
	bw.xfers = NULL;
}

#ifdef DTX_BANK_CLUSTER
TestSuite(cluster, .fini = teardown, .timeout = 400);
#else
TestSuite(bank, .fini = teardown, .timeout = 400);
#endif

static uint64_t
mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

// A seeded stream (splitmix64): the nemesis's own.
static uint64_t
next_rand(uint64_t *s)
{
	*s += 0x9E3779B97F4A7C15ull;
	return mix(*s);
}

static void
dump_logs(void)
{
	char  *t;
	size_t n;
	for (int i = 0; i < bw.nnodes; i++) {
		t = dtxt_read_file(bw.node[i].log);
		n = strlen(t);
		fprintf(stderr, "----- dtxd %d (%s), last part\n%s\n", i,
		    bw.node[i].log, n > 20000 ? t + n - 20000 : t);
		free(t);
	}
	for (int i = 0; i < NBRANCHES; i++) {
		t = dtxt_read_file(bw.br[i].log);
		n = strlen(t);
		fprintf(stderr, "----- branch %d (%s), last part\n%s\n", i,
		    bw.br[i].log, n > 8000 ? t + n - 8000 : t);
		free(t);
	}
}

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			dump_logs();                                          \
			cr_assert_fail(__VA_ARGS__);                          \
		}                                                             \
	} while (0)

static const char *const branch_names[NBRANCHES] = {"a", "b", "c"};

static void
acct_name(char *out, size_t cap, int branch, int acct)
{
	snprintf(out, cap, "%s%d", branch_names[branch], acct);
}

static dtxt_proc *
start_dtxd(int i)
{
	char           lease[16];
	dtxt_dtxd_opts o = {
	    .call_timeout_ms = 400,
	    .timeout_ms      = 3000,
	    .extra           = {"--log-level", "info", NULL},
	};
	if (bw.cluster) {
		snprintf(lease, sizeof(lease), "%d", LEASE_MS);
		o.store_conn = bw.conn;
		o.extra[2]   = "--node";
		o.extra[3]   = bw.node[i].name;
		o.extra[4]   = "--lease-ms";
		o.extra[5]   = lease;
		o.extra[6]   = NULL;
		if (i == 0) {
			o.extra[6] = "--http-listen";
			o.extra[7] = bw.http;
			o.extra[8] = NULL;
		}
		// A start while the others' leases are being settled, or
		// right after a database restart, may take a while.
		o.start_timeout_ms = 15000;
	}
	return dtxt_start_dtxd(bw.node[i].url, bw.data, bw.node[i].log, &o);
}

static dtxt_proc *
start_branch(int i, double delay_rate)
{
	char accounts[64] = "", one[16], seed[32], rate[32];
	for (int a = 0; a < NACCOUNTS; a++) {
		acct_name(one, sizeof(one), i, a);
		if (a > 0) {
			strcat(accounts, ",");
		}
		strcat(accounts, one);
	}
	snprintf(seed, sizeof(seed), "%" PRIu64, mix(bw.seed + 100 + i));
	snprintf(rate, sizeof(rate), "%.3f", delay_rate);
	char      *argv[] = {bw.bankpart, "--listen", bw.br[i].url, "--store",
	         bw.br[i].store, "--accounts", accounts, "--initial", "1000",
	         "--coordinator", bw.node[0].url, "--resolve-after", "1500",
	         "--delay-rate", rate, "--delay-ms", "700", "--seed", seed, NULL};
	dtxt_proc *p = dtxt_spawn(branch_names[i], argv, NULL, bw.br[i].log);
	if (p != NULL && dtxt_wait_tcp(p, bw.br[i].url, 5000) != 0) {
		dtxt_kill(p);
		return NULL;
	}
	return p;
}

// Starts whatever is not running. Returns false if something would not.
static bool
start_missing(double delay_rate)
{
	for (int attempt = 0; attempt < 20; attempt++) {
		bool ok = true;
		for (int i = 0; i < bw.nnodes; i++) {
			if (bw.node[i].proc != NULL &&
			    dtxt_alive(bw.node[i].proc)) {
				continue;
			}
			if ((bw.node[i].proc = start_dtxd(i)) == NULL) {
				ok = false;
			} else {
				bw.restarts++;
			}
		}
		for (int i = 0; i < NBRANCHES; i++) {
			if (bw.br[i].proc == NULL ||
			    !dtxt_alive(bw.br[i].proc)) {
				bw.br[i].proc = start_branch(i, delay_rate);
				if (bw.br[i].proc == NULL) {
					ok = false;
				} else {
					bw.restarts++;
				}
			}
		}
		if (ok) {
			return true;
		}
		dtxt_sleep_ms(200);
	}
	return false;
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

static void
make_xfer(xfer *x, unsigned i)
{
	uint64_t r = mix(bw.seed * 1000003u + i);
	snprintf(x->gid, sizeof(x->gid), "bank-%" PRIu64 "-%u", bw.seed, i);
	x->mode        = (r & 1) ? DTX_SAGA : DTX_2PC;
	x->from_branch = (int)((r >> 1) % NBRANCHES);
	x->to_branch = (x->from_branch + 1 + (int)((r >> 3) & 1)) % NBRANCHES;
	x->from_acct = (int)((r >> 5) % NACCOUNTS);
	x->to_acct   = (int)((r >> 9) % NACCOUNTS);
	x->amount    = 1 + (int64_t)((r >> 13) % 300);
}

// Submits x (again: the same gid and content is idempotent) and waits for
// its outcome. Returns 0, or the last error.
static int
run_xfer(dtx_client *c, xfer *x)
{
	char    from[16], to[16], p0[64], p1[64];
	dtx_tx *tx = NULL;
	int     rv;

	acct_name(from, sizeof(from), x->from_branch, x->from_acct);
	acct_name(to, sizeof(to), x->to_branch, x->to_acct);
	snprintf(p0, sizeof(p0), "%s -%" PRId64, from, x->amount);
	snprintf(p1, sizeof(p1), "%s %" PRId64, to, x->amount);
	if ((rv = dtx_tx_begin(&tx, c, x->mode)) != 0 ||
	    (rv = dtx_tx_set_gid(tx, x->gid)) != 0 ||
	    (rv = dtx_tx_set_retries(tx, 40)) != 0 ||
	    (rv = dtx_tx_add(tx, bw.br[x->from_branch].url, "xfer", p0,
	         strlen(p0))) != 0 ||
	    (rv = dtx_tx_add(
	         tx, bw.br[x->to_branch].url, "xfer", p1, strlen(p1))) != 0) {
		dtx_tx_free(tx);
		return rv;
	}
	dtx_state st = 0;
	rv           = dtx_tx_commit(tx, &st);
	dtx_tx_free(tx);
	if (rv == 0 && dtx_state_is_terminal(st)) {
		x->outcome = st;
	}
	return rv;
}

// True once node 0's /readyz answers as *want says (ready: 200).
static int
ready_is(void *want)
{
	dtxt_http_res res;
	bool          ready;

	if (dtxt_http_get(bw.http, "/readyz", 1000, &res) != 0) {
		return 0;
	}
	ready = res.status == 200;
	dtxt_http_res_fini(&res);
	return ready == *(bool *)want;
}

// Each client knows every node. A transfer goes to the next node each time
// it is sent again: a node that died, or is paused, is left behind.
static void *
client_main(void *arg)
{
	dtx_client *c[NNODES] = {NULL};
	(void)arg;

	for (int n = 0; n < bw.nnodes; n++) {
		if (dtx_client_open(&c[n], bw.node[n].url) != 0) {
			while (n-- > 0) {
				dtx_client_close(c[n]);
			}
			return NULL;
		}
		dtx_client_set_timeout_ms(c[n], 3000);
	}
	while (!atomic_load(&bw.stop)) {
		unsigned i = atomic_fetch_add(&bw.next, 1);
		if (i >= bw.nxfers) {
			break;
		}
		xfer *x = &bw.xfers[i];
		make_xfer(x, i);
		// Keep at it while the nemesis is busy; what is still open
		// at the end is settled by the final check.
		for (int tries = 0; tries < 40 && x->outcome == 0; tries++) {
			int rv = run_xfer(
			    c[(i + (unsigned)tries) % (unsigned)bw.nnodes], x);
			if (rv == DTX_EEXIST || rv == DTX_EINVAL) {
				fprintf(stderr, "bank: %s: %s\n", x->gid,
				    dtx_strerror(rv));
				break;
			}
			if (x->outcome == 0) {
				dtxt_sleep_ms(100);
			}
		}
	}
	for (int n = 0; n < bw.nnodes; n++) {
		dtx_client_close(c[n]);
	}
	return NULL;
}

// ---------------------------------------------------------------------------
// Nemesis: runs on the test's main thread (the harness is not
// thread-safe, and only this thread touches processes).
// ---------------------------------------------------------------------------

static void
nemesis(uint64_t rng, int64_t end_ms, double delay_rate)
{
	while (dtxi_mono_ms() < end_ms && atomic_load(&bw.next) < bw.nxfers) {
		dtxt_sleep_ms(300 + (int)(next_rand(&rng) % 1200));
		uint64_t r    = next_rand(&rng);
		int      n    = (int)((r >> 16) % (uint64_t)bw.nnodes);
		int      pick = bw.cluster ? (int)(r % 10) : 3 + (int)(r % 3);
		// On a cluster: 0-2 kill a node, 3-6 a branch (alone: a
		// third of the kills go to dtxd), 7-8 pause a node, 9 restart
		// the database.
		if (pick == 7 || pick == 8) {
			// A node paused past its lease, then let run: the
			// others take its work over meanwhile.
			dtxt_signal(bw.node[n].proc, SIGSTOP);
			dtxt_sleep_ms(2 * LEASE_MS + 500);
			dtxt_signal(bw.node[n].proc, SIGCONT);
			bw.pauses++;
		} else if (pick == 9) {
			dtxt_pg_stop(&bw.pg, (r >> 24) & 1);
			// A node that cannot reach its database says so.
			if (dtxt_alive(bw.node[0].proc)) {
				CHECK(dtxt_wait_until(ready_is,
				          &(bool) {false}, 50, 10000) == 0,
				    "node 0's /readyz still said ready with "
				    "the database down");
				bw.not_ready++;
			}
			if (dtxt_pg_start(&bw.pg) != 0) {
				dump_logs();
				cr_assert_fail(
				    "the database would not restart");
			}
			bw.db_restarts++;
		} else if (pick <= 3 && (bw.cluster ? pick < 3 : pick == 3)) {
			dtxt_kill(bw.node[n].proc);
			bw.kills_dtxd++;
			// Half the time a killed node stays down past its
			// lease: the others take its work over (else it
			// takes it back itself when it restarts).
			if (bw.cluster && ((r >> 32) & 1)) {
				dtxt_sleep_ms(2 * LEASE_MS);
			}
		} else {
			int i = (int)((r >> 8) % NBRANCHES);
			dtxt_kill(bw.br[i].proc);
			bw.kills_branch++;
		}
		dtxt_sleep_ms(100 + (int)(next_rand(&rng) % 700));
		if (!start_missing(delay_rate)) {
			dump_logs();
			cr_assert_fail("nemesis: a process would not restart");
		}
	}
}

// ---------------------------------------------------------------------------
// The final check
// ---------------------------------------------------------------------------

typedef struct ledger_entry {
	char    gid[48];
	int     branch_id;
	char    acct[16];
	int64_t delta;
} ledger_entry;

typedef struct dumpinfo {
	int64_t       bal[NBRANCHES][NACCOUNTS];
	ledger_entry *ledger;
	size_t        nledger, capledger;
	unsigned      holds, pends, anomalies;
	char          first_problem[256];
} dumpinfo;

static void
read_dump(dumpinfo *d, int branch)
{
	char out[1024], cmd[3 * DTXT_PATH_MAX + 1024];
	snprintf(
	    out, sizeof(out), "%s/dump-%s.txt", bw.dir, branch_names[branch]);
	snprintf(cmd, sizeof(cmd), "'%s' --dump --store '%s' > '%s' 2>&1",
	    bw.bankpart, bw.br[branch].store, out);
	cr_assert_eq(system(cmd), 0, "dump of branch %d failed", branch);
	char *text = dtxt_read_file(out);
	for (char *line = strtok(text, "\n"); line != NULL;
	     line       = strtok(NULL, "\n")) {
		char         kind[16], gid[64], acct[16];
		unsigned     br;
		long long    v;
		ledger_entry e;
		if (sscanf(line, "BAL %15s %lld", acct, &v) == 2) {
			int a = atoi(acct + 1);
			if (acct[0] == branch_names[branch][0] && a >= 0 &&
			    a < NACCOUNTS) {
				d->bal[branch][a] = v;
			}
		} else if (sscanf(line, "%15s %63s %u %15s %lld", kind, gid,
		               &br, acct, &v) == 5) {
			if (strcmp(kind, "LEDGER") == 0) {
				if (d->nledger == d->capledger) {
					d->capledger = d->capledger * 2 + 64;
					d->ledger    = realloc(d->ledger,
					       d->capledger * sizeof(e));
					cr_assert_not_null(d->ledger);
				}
				dtxi_strlcpy(e.gid, gid, sizeof(e.gid));
				e.branch_id = (int)br;
				dtxi_strlcpy(e.acct, acct, sizeof(e.acct));
				e.delta                 = v;
				d->ledger[d->nledger++] = e;
			} else if (strcmp(kind, "HOLD") == 0) {
				d->holds++;
			} else if (strcmp(kind, "PEND") == 0) {
				d->pends++;
			}
		} else if (strncmp(line, "ANOMALY", 7) == 0) {
			d->anomalies++;
			if (d->first_problem[0] == '\0') {
				dtxi_strlcpy(d->first_problem, line,
				    sizeof(d->first_problem));
			}
		}
	}
	free(text);
}

// Stops the branches cleanly and reads their stores. Reservations still
// held are settled by the branches' resolvers: restart and look again.
static void
dump_all(dumpinfo *d)
{
	for (int round = 0; round < 30; round++) {
		for (int i = 0; i < NBRANCHES; i++) {
			dtxt_term(bw.br[i].proc, 5000, NULL);
			bw.br[i].proc = NULL;
		}
		free(d->ledger);
		memset(d, 0, sizeof(*d));
		for (int i = 0; i < NBRANCHES; i++) {
			read_dump(d, i);
		}
		if (d->holds == 0 && d->pends == 0) {
			return;
		}
		cr_assert(start_missing(0), "branches would not restart");
		dtxt_sleep_ms(2500);
	}
}

static int
ledger_count(const dumpinfo *d, const char *gid, int branch_id,
    const char *acct, int64_t delta, int *any)
{
	int n = 0;
	*any  = 0;
	for (size_t i = 0; i < d->nledger; i++) {
		const ledger_entry *e = &d->ledger[i];
		if (strcmp(e->gid, gid) != 0) {
			continue;
		}
		(*any)++;
		if (e->branch_id == branch_id && strcmp(e->acct, acct) == 0 &&
		    e->delta == delta) {
			n++;
		}
	}
	return n;
}

// How many times text occurs in the logs of every node.
static unsigned
count_in_logs(const char *text)
{
	unsigned n = 0;
	for (int i = 0; i < bw.nnodes; i++) {
		char *t = dtxt_read_file(bw.node[i].log);
		for (char *p = strstr(t, text); p != NULL;
		     p       = strstr(p + 1, text)) {
			n++;
		}
		free(t);
	}
	return n;
}

static int
unfinished_in_db(void *arg)
{
	char out[64] = "";
	(void)arg;
	return dtxt_pg_query(&bw.pg, "dtx",
	           "SELECT count(*) FROM dtxd_tx WHERE expire_ms IS NULL", out,
	           sizeof(out)) == 0 &&
	    strcmp(out, "0") == 0;
}

// The cluster's own checks and figures: nothing unfinished is left in the
// database (every node's FINISH landed, or was redone by a successor), and
// what the nemesis caused.
static void
cluster_check(void)
{
	char     takeovers[64] = "";
	unsigned fenced        = count_in_logs(": dropped here");
	unsigned lapses = count_in_logs("cluster: the lease of session");

	CHECK(dtxt_wait_until(unfinished_in_db, NULL, 200, 30000) == 0,
	    "the database still holds unfinished transactions");
	CHECK(dtxt_wait_until(ready_is, &(bool) {true}, 100, 10000) == 0,
	    "node 0's /readyz does not say ready again");
	// Each takeover moved a transaction to the next epoch.
	cr_assert_eq(dtxt_pg_query(&bw.pg, "dtx",
	                 "SELECT coalesce(sum(epoch - 1), 0) FROM dtxd_tx",
	                 takeovers, sizeof(takeovers)),
	    0);
	fprintf(stderr,
	    "cluster: seed %" PRIu64 ": %d nodes, lease %d ms: nodes killed "
	    "%u times, paused past their lease %u times (%u woke up to a "
	    "lapsed lease), database restarted %u times (node 0 not ready "
	    "meanwhile %u times); %s transactions taken over, %u dropped "
	    "on a fenced write\n",
	    bw.seed, bw.nnodes, LEASE_MS, bw.kills_dtxd, bw.pauses, lapses,
	    bw.db_restarts, bw.not_ready, takeovers, fenced);
	CHECK(bw.pauses > 0 && atoll(takeovers) > 0,
	    "no node was paused (%u) or nothing was taken over (%s)",
	    bw.pauses, takeovers);
}

static void
final_check(void)
{
	dtx_client *c;
	unsigned    committed = 0, aborted = 0, compensated = 0, unknown = 0;
	unsigned    modes_committed[3] = {0};

	cr_assert_eq(dtx_client_open(&c, bw.node[0].url), 0);
	dtx_client_set_timeout_ms(c, 5000);
	// Every transfer dtxd knows must end; wait for each.
	for (unsigned i = 0; i < bw.nxfers; i++) {
		xfer     *x  = &bw.xfers[i];
		dtx_tx   *tx = NULL;
		dtx_state st = 0;
		int       rv = DTX_ETIMEDOUT;
		if (x->gid[0] == '\0') {
			continue; // never taken by a client
		}
		for (int tries = 0; tries < 30 && rv != 0; tries++) {
			rv = dtx_tx_attach(&tx, c, x->gid);
			if (rv == 0) {
				rv = dtx_tx_wait(tx, 5000, &st);
				dtx_tx_free(tx);
				tx = NULL;
			}
			if (rv == DTX_ENOTFOUND) {
				break;
			}
			if (rv == 0 && !dtx_state_is_terminal(st)) {
				rv = DTX_ETIMEDOUT;
			}
		}
		if (rv == DTX_ENOTFOUND) {
			CHECK(x->outcome == 0,
			    "%s ended %s for the client but dtxd lost it",
			    x->gid, dtx_state_name(x->outcome));
			x->found = false;
			unknown++;
			continue;
		}
		CHECK(rv == 0, "%s did not end: %s (state %s)", x->gid,
		    dtx_strerror(rv), dtx_state_name(st));
		CHECK(x->outcome == 0 || x->outcome == st,
		    "%s: the client was told %s, dtxd now says %s", x->gid,
		    dtx_state_name(x->outcome), dtx_state_name(st));
		x->outcome = st;
		x->found   = true;
		if (st == DTX_STATE_COMMITTED) {
			committed++;
			modes_committed[x->mode]++;
		} else if (st == DTX_STATE_ABORTED) {
			aborted++;
		} else {
			compensated++;
		}
	}
	dtx_client_close(c);

	dumpinfo d;
	memset(&d, 0, sizeof(d));
	dump_all(&d);
	CHECK(d.holds == 0 && d.pends == 0,
	    "%u reservations and %u pending credits never settled", d.holds,
	    d.pends);
	CHECK(d.anomalies == 0, "%u anomalies, first: %s", d.anomalies,
	    d.first_problem);

	// Balances: conserved, never negative, and each one its opening
	// balance plus its ledger (every effect applied exactly once).
	int64_t total = 0;
	for (int b = 0; b < NBRANCHES; b++) {
		for (int a = 0; a < NACCOUNTS; a++) {
			char    name[16];
			int64_t sum = INITIAL;
			acct_name(name, sizeof(name), b, a);
			for (size_t i = 0; i < d.nledger; i++) {
				if (strcmp(d.ledger[i].acct, name) == 0) {
					sum += d.ledger[i].delta;
				}
			}
			CHECK(d.bal[b][a] >= 0, "%s is negative: %" PRId64,
			    name, d.bal[b][a]);
			CHECK(d.bal[b][a] == sum,
			    "%s holds %" PRId64
			    " but its ledger says %" PRId64,
			    name, d.bal[b][a], sum);
			total += d.bal[b][a];
		}
	}
	CHECK(total == (int64_t)INITIAL * NBRANCHES * NACCOUNTS,
	    "total %" PRId64 ", expected %d", total,
	    INITIAL * NBRANCHES * NACCOUNTS);

	// Each transfer: committed in both ledgers once, or in neither.
	for (unsigned i = 0; i < bw.nxfers; i++) {
		xfer *x = &bw.xfers[i];
		char  from[16], to[16];
		int   any0, any1;
		if (x->gid[0] == '\0') {
			continue;
		}
		acct_name(from, sizeof(from), x->from_branch, x->from_acct);
		acct_name(to, sizeof(to), x->to_branch, x->to_acct);
		int n0 = ledger_count(&d, x->gid, 0, from, -x->amount, &any0);
		int n1 = ledger_count(&d, x->gid, 1, to, x->amount, &any1);
		if (x->found && x->outcome == DTX_STATE_COMMITTED) {
			CHECK(n0 == 1 && n1 == 1 && any0 == 2,
			    "committed %s: debit in ledger %d times, credit "
			    "%d",
			    x->gid, n0, n1);
		} else {
			CHECK(any0 == 0, "%s (%s) left %d ledger entries",
			    x->gid,
			    x->found ? dtx_state_name(x->outcome) : "unknown",
			    any0);
		}
	}
	if (bw.cluster) {
		cluster_check();
	}
	CHECK(committed > 0 && modes_committed[DTX_2PC] > 0 &&
	        modes_committed[DTX_SAGA] > 0,
	    "nothing committed in one of the modes (2pc %u, saga %u)",
	    modes_committed[DTX_2PC], modes_committed[DTX_SAGA]);
	fprintf(stderr,
	    "bank: seed %" PRIu64 ": %u transfers: %u committed (2pc %u, "
	    "saga %u), %u aborted, %u compensated, %u never reached dtxd; "
	    "dtxd killed %u times, branches killed %u times, %u restarts; "
	    "%zu ledger entries; total balance %" PRId64 " unchanged; "
	    "no negative balance, no anomaly\n",
	    bw.seed, bw.nxfers, committed, modes_committed[DTX_2PC],
	    modes_committed[DTX_SAGA], aborted, compensated, unknown,
	    bw.kills_dtxd, bw.kills_branch, bw.restarts, d.nledger, total);
	free(d.ledger);
}

// ---------------------------------------------------------------------------
// The runs
// ---------------------------------------------------------------------------

static void
bank_run(uint64_t seed, unsigned nxfers, int chaos_seconds, bool cluster)
{
	const char *env        = getenv("DTX_BANK_SEED");
	double      delay_rate = 0.02;
	pthread_t   clients[NCLIENTS];
	char        tp[DTXT_PATH_MAX];

	if (env != NULL && *env != '\0') {
		seed = strtoull(env, NULL, 10);
	}
	memset(&bw, 0, sizeof(bw));
	bw.cluster = cluster;
	bw.nnodes  = cluster ? NNODES : 1;
	bw.seed    = seed;
	bw.nxfers  = nxfers;
	bw.xfers   = calloc(nxfers, sizeof(*bw.xfers));
	cr_assert_not_null(bw.xfers);
	dtxi_strlcpy(tp, dtxt_testpart_bin(), sizeof(tp));
	snprintf(
	    bw.bankpart, sizeof(bw.bankpart), "%s/dtx-bankpart", dirname(tp));
	cr_assert_eq(dtxt_tmpdir(bw.dir, sizeof(bw.dir)), 0);
	snprintf(bw.data, sizeof(bw.data), "%s/dtxd", bw.dir);
	for (int i = 0; i < bw.nnodes; i++) {
		snprintf(bw.node[i].log, sizeof(bw.node[i].log),
		    "%s/dtxd-%d.log", bw.dir, i);
		snprintf(
		    bw.node[i].name, sizeof(bw.node[i].name), "node%d", i);
		cr_assert_eq(
		    dtxt_free_url(bw.node[i].url, sizeof(bw.node[i].url)), 0);
	}
	if (cluster) {
		cr_assert_eq(dtxt_free_http_url(bw.http, sizeof(bw.http)), 0);
		// fsync off: a killed server loses nothing that reached the
		// OS, and this test kills processes, not the machine.
		cr_assert_eq(dtxt_pg_init(&bw.pg, "fsync = off\n"), 0);
		cr_assert_eq(dtxt_pg_start(&bw.pg), 0);
		cr_assert_eq(
		    dtxt_pg_createdb(&bw.pg, "dtx", bw.conn, sizeof(bw.conn)),
		    0);
	}
	for (int i = 0; i < NBRANCHES; i++) {
		cr_assert_eq(
		    dtxt_free_url(bw.br[i].url, sizeof(bw.br[i].url)), 0);
		snprintf(bw.br[i].store, sizeof(bw.br[i].store), "%s/bank-%s",
		    bw.dir, branch_names[i]);
		snprintf(bw.br[i].log, sizeof(bw.br[i].log), "%s/bank-%s.log",
		    bw.dir, branch_names[i]);
	}
	fprintf(stderr,
	    "bank: seed %" PRIu64 ", %u transfers, %d s of chaos%s "
	    "(rerun with DTX_BANK_SEED=%" PRIu64 ")\n",
	    seed, nxfers, chaos_seconds, cluster ? " on a cluster" : "", seed);
	CHECK(start_missing(delay_rate), "could not start the bank");
	bw.restarts = 0;

	for (int i = 0; i < NCLIENTS; i++) {
		cr_assert_eq(
		    pthread_create(&clients[i], NULL, client_main, NULL), 0);
	}
	nemesis(mix(seed ^ 0xBADC0FFEEull),
	    dtxi_mono_ms() + (int64_t)chaos_seconds * 1000, delay_rate);
	// Quiet from here on: no more kills. Make sure everything runs, let
	// the clients finish what they hold, then check.
	atomic_store(&bw.stop, true);
	CHECK(start_missing(delay_rate), "could not restart the bank");
	for (int i = 0; i < NCLIENTS; i++) {
		pthread_join(clients[i], NULL);
	}
	bw.nxfers =
	    atomic_load(&bw.next) < nxfers ? atomic_load(&bw.next) : nxfers;
	final_check();
	CHECK(bw.kills_dtxd + bw.kills_branch > 0, "the nemesis never struck");
}

#ifdef DTX_BANK_CLUSTER

Test(cluster, seed_1)
{
	bank_run(1, 3000, 45, true);
}

// The suite's 400 s timeout would cut a soak short: it ends by its own clock.
Test(cluster, soak, .timeout = 7 * 24 * 3600)
{
	const char *s = getenv("DTX_CLUSTER_SOAK_SECONDS");
	if (s == NULL || atoi(s) <= 0) {
		cr_skip_test("set DTX_CLUSTER_SOAK_SECONDS to soak");
	}
	bank_run(
	    mix((uint64_t)dtxi_now_ms()) % 1000000, MAX_XFERS, atoi(s), true);
}

#else

Test(bank, seed_1)
{
	bank_run(1, 3000, 30, false);
}

Test(bank, seed_2)
{
	bank_run(2, 3000, 30, false);
}

// The suite's 400 s timeout would cut a soak short: it ends by its own clock.
Test(bank, soak, .timeout = 7 * 24 * 3600)
{
	const char *s = getenv("DTX_BANK_SOAK_SECONDS");
	if (s == NULL || atoi(s) <= 0) {
		cr_skip_test("set DTX_BANK_SOAK_SECONDS to soak");
	}
	bank_run(
	    mix((uint64_t)dtxi_now_ms()) % 1000000, MAX_XFERS, atoi(s), false);
}

#endif
