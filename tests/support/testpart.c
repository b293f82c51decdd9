// SPDX-License-Identifier: MIT
//
// dtx-testpart: a participant process whose behaviour the test chooses per
// branch, and which writes down everything it is asked. It registers method
// "op" with all five callbacks. The branch payload is a text such as
// "prepare=refuse;commit=retry:2;execute=sleep:300" that says, per phase,
// ok | refuse | retry:N (RETRY for the first N calls of that gid, branch and
// phase, counted here) | sleep:MS (then ok); a phase not named is ok. Every
// callback appends "CALL <phase> <gid> <branch> <attempt> <result>" to the
// call log (one write() per line on an O_APPEND file, so lines never mix),
// and "TRACE <phase> <gid> <branch> <traceparent>" when the call carries one.
// An in-memory effect set keyed by (gid, branch) stands for the business
// data: COMMIT or EXECUTE answering OK applies the effect once ("APPLY <gid>
// <branch>" when newly applied), ABORT or COMPENSATE takes it back once
// ("UNDO <gid> <branch>" when it was in place). The tests then read the log
// to prove exactly-once effects and call order. The reply payload is
// "<name>:<PHASE>". SIGTERM or SIGINT closes the participant and exits 0.
//
// With --store DIR --barrier the participant runs behind libdtx's durable
// barrier over its own RocksDB in DIR: each callback that really runs also
// stages, in the barrier's batch, its run count ("n/<gid>/<branch>/<PHASE>")
// and the effect ("e/<gid>/<branch>" = 1 applied, 0 undone), so that the
// store, which commits atomically with the barrier's record, tells how
// often each callback took effect, across crashes and restarts. The call
// log still has a line per run, including runs lost in a crash before their
// write. --retention-ms sets the barrier's retention; --coordinator URL
// --resolve-after MS starts the in-doubt resolver. --dump --store DIR
// prints the store (read-only, also while the participant runs): "RAN
// <PHASE> <gid> <branch> <count>", "EFFECT <gid> <branch> <0|1>" and
// "BARRIER <number of barrier keys>". DTX_PARTICIPANT_CRASH_AT works as for
// any participant.
//
// Rate faults make a participant unreliable at random, but reproducibly:
// --refuse-rate, --retry-rate, --delay-rate (sleep --delay-ms, default 100,
// then answer) and --timeout-rate (sleep --timeout-ms, default 2000, past
// dtxd's call timeout, then answer: the work is done but dtxd does not hear
// it) each take a probability, either RATE for the phases where the fault
// makes sense (refuse: PREPARE and EXECUTE, the business answers; the others:
// every phase) or PHASE=RATE[,PHASE=RATE...] (e.g. "commit=0.3"). Whether a
// call is hit depends only on --seed, the gid, the branch, the phase and how
// many calls of that phase this process has seen for the branch, never on
// timing, so a failing run can be replayed. A fault applies only where the
// payload asked for ok. A faulted call is logged like any other, with the
// result it returned.
//
// Usage: dtx-testpart --listen URL --log FILE [--name NAME] [--workers N]
//            [--store DIR --barrier [--retention-ms MS]
//             [--coordinator URL --resolve-after MS]]
//            [--seed N] [--refuse-rate R] [--retry-rate R]
//            [--delay-rate R] [--delay-ms MS] [--timeout-rate R]
//            [--timeout-ms MS]
//            [--tls-cert FILE --tls-key FILE --tls-ca FILE]
//        dtx-testpart --dump --store DIR
//
// The TLS settings serve a tls+tcp:// --listen (callers must have a
// certificate of the CA: the coordinator CA) and, when --coordinator is
// tls+tcp://, the resolver's connection to it.

#include <dtx/dtx.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "log.h"
#include "strs.h"

// What one phase does.
typedef enum act {
	ACT_OK,
	ACT_REFUSE,
	ACT_RETRY,
	ACT_SLEEP,
} act;

typedef struct behaviour {
	act      what;
	unsigned arg; // retry count or sleep ms
} behaviour;

// Rate faults, by kind and phase (see the top of the file).
enum fault_kind {
	FAULT_REFUSE,
	FAULT_RETRY,
	FAULT_DELAY,
	FAULT_TIMEOUT,
	FAULT_KINDS,
};

typedef struct faults {
	uint64_t seed;
	double   rate[FAULT_KINDS][DTX_PHASE_COMPENSATE + 1];
	unsigned delay_ms;
	unsigned timeout_ms;
} faults;

// One remembered (gid, branch): calls counted per phase, and the effect.
typedef struct entry {
	struct entry *next;
	char          gid[DTX_GID_MAX + 1];
	uint32_t      branch;
	unsigned      calls[6]; // indexed by dtx_phase
	bool          applied;
	bool          undone;
} entry;

// The process state, passed to every callback. The lock guards the entry
// list and orders the log lines of one branch with its effect changes.
typedef struct testpart {
	faults          faults; // read-only once the participant listens
	pthread_mutex_t lock;
	entry          *entries;
	int             logfd;
	const char     *name;
	rocksdb_t      *db; // --store: the barrier's store, or NULL
} testpart;

static const char *const phase_keys[] = {
    [DTX_PHASE_PREPARE]    = "prepare",
    [DTX_PHASE_COMMIT]     = "commit",
    [DTX_PHASE_ABORT]      = "abort",
    [DTX_PHASE_EXECUTE]    = "execute",
    [DTX_PHASE_COMPENSATE] = "compensate",
};

// Reads the behaviour of phase from the payload "k=v;k=v". Anything it does
// not understand is ok: the tests write the payloads.
static behaviour
parse_behaviour(const dtx_call *call)
{
	behaviour   b = {ACT_OK, 0};
	char        text[512];
	size_t      n = call->payload_len;
	const char *key;
	char       *save = NULL;

	if (call->phase < DTX_PHASE_PREPARE ||
	    call->phase > DTX_PHASE_COMPENSATE) {
		return b;
	}
	key = phase_keys[call->phase];
	if (n >= sizeof(text)) {
		n = sizeof(text) - 1;
	}
	if (n > 0) {
		memcpy(text, call->payload, n);
	}
	text[n] = '\0';
	for (char *item = strtok_r(text, ";", &save); item != NULL;
	     item       = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(item, '=');
		char *v;

		if (eq == NULL) {
			continue;
		}
		*eq = '\0';
		v   = eq + 1;
		if (strcmp(item, key) != 0) {
			continue;
		}
		if (strcmp(v, "refuse") == 0) {
			b.what = ACT_REFUSE;
		} else if (strncmp(v, "retry:", 6) == 0) {
			b.what = ACT_RETRY;
			b.arg  = (unsigned)strtoul(v + 6, NULL, 10);
		} else if (strncmp(v, "sleep:", 6) == 0) {
			b.what = ACT_SLEEP;
			b.arg  = (unsigned)strtoul(v + 6, NULL, 10);
		} else {
			b.what = ACT_OK;
		}
	}
	return b;
}

// Takes argv[*i] and its value when it is a rate-fault option. Returns 1
// when it was one, 0 when it is another option, -1 when its value is bad.
static int
fault_arg(faults *f, int argc, char **argv, int *i)
{
	static const char *const kinds[FAULT_KINDS] = {
	    "--refuse-rate", "--retry-rate", "--delay-rate", "--timeout-rate"};
	const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
	char       *end;
	int         k;

	for (k = 0; k < FAULT_KINDS && strcmp(argv[*i], kinds[k]) != 0; k++) {
	}
	if (k == FAULT_KINDS) {
		if (strcmp(argv[*i], "--seed") != 0 &&
		    strcmp(argv[*i], "--delay-ms") != 0 &&
		    strcmp(argv[*i], "--timeout-ms") != 0) {
			return 0;
		}
		if (v == NULL) {
			return -1;
		}
		unsigned long long n = strtoull(v, &end, 10);
		if (*end != '\0' || end == v) {
			return -1;
		}
		if (strcmp(argv[*i], "--seed") == 0) {
			f->seed = n;
		} else if (strcmp(argv[*i], "--delay-ms") == 0) {
			f->delay_ms = (unsigned)n;
		} else {
			f->timeout_ms = (unsigned)n;
		}
		(*i)++;
		return 1;
	}
	if (v == NULL) {
		return -1;
	}
	if (strchr(v, '=') == NULL) {
		// One rate for the phases where this fault makes sense.
		double r = strtod(v, &end);
		if (*end != '\0' || end == v || r < 0 || r > 1) {
			return -1;
		}
		for (int ph = DTX_PHASE_PREPARE; ph <= DTX_PHASE_COMPENSATE;
		     ph++) {
			if (k != FAULT_REFUSE || ph == DTX_PHASE_PREPARE ||
			    ph == DTX_PHASE_EXECUTE) {
				f->rate[k][ph] = r;
			}
		}
		(*i)++;
		return 1;
	}
	// PHASE=RATE[,PHASE=RATE...]
	for (const char *p = v; *p != '\0';) {
		const char *eq = strchr(p, '=');
		int         ph;
		double      r;

		if (eq == NULL) {
			return -1;
		}
		for (ph = DTX_PHASE_PREPARE; ph <= DTX_PHASE_COMPENSATE;
		     ph++) {
			size_t n = strlen(phase_keys[ph]);
			if ((size_t)(eq - p) == n &&
			    strncmp(p, phase_keys[ph], n) == 0) {
				break;
			}
		}
		r = strtod(eq + 1, &end);
		if (ph > DTX_PHASE_COMPENSATE || end == eq + 1 || r < 0 ||
		    r > 1 || (*end != '\0' && *end != ',')) {
			return -1;
		}
		f->rate[k][ph] = r;
		p              = *end == ',' ? end + 1 : end;
	}
	(*i)++;
	return 1;
}

// splitmix64's finaliser: a well-mixed 64-bit hash of x.
static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

// Whether fault kind hits this call: a draw in [0, 1) made from the seed
// and the call's identity only, so the same run of calls is faulted the
// same way whatever the thread timing.
static bool
fault_hits(const faults *f, int kind, const dtx_call *call, unsigned nth)
{
	double   rate = f->rate[kind][call->phase];
	uint64_t h    = mix64(f->seed ^ 0x5851f42d4c957f2dull);

	if (rate <= 0) {
		return false;
	}
	for (const char *c = call->gid; *c != '\0'; c++) {
		h = mix64(h ^ (uint8_t)*c);
	}
	h = mix64(h ^ ((uint64_t)call->branch_id << 16) ^
	    ((uint64_t)call->phase << 8) ^ (uint64_t)kind);
	h = mix64(h ^ nth);
	return (double)(h >> 11) * 0x1.0p-53 < rate;
}

// The rate faults of one call, the nth of its phase for its branch: the
// result to give (refuse or retry win over ok) and how long to sleep first.
static dtx_result
fault_pick(
    const faults *f, const dtx_call *call, unsigned nth, unsigned *sleep_ms)
{
	*sleep_ms = 0;
	if (fault_hits(f, FAULT_TIMEOUT, call, nth)) {
		*sleep_ms = f->timeout_ms;
	} else if (fault_hits(f, FAULT_DELAY, call, nth)) {
		*sleep_ms = f->delay_ms;
	}
	if (fault_hits(f, FAULT_REFUSE, call, nth)) {
		return DTX_REFUSED;
	}
	if (fault_hits(f, FAULT_RETRY, call, nth)) {
		return DTX_RETRY;
	}
	return DTX_OK;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {
	    (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

// Finds or adds the entry of (gid, branch). Called with the lock held.
static entry *
find_entry(testpart *tp, const char *gid, uint32_t branch)
{
	entry *e;

	for (e = tp->entries; e != NULL; e = e->next) {
		if (e->branch == branch && strcmp(e->gid, gid) == 0) {
			return e;
		}
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		abort();
	}
	dtxi_strlcpy(e->gid, gid, sizeof(e->gid));
	e->branch   = branch;
	e->next     = tp->entries;
	tp->entries = e;
	return e;
}

static void log_line(testpart *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
log_line(testpart *tp, const char *fmt, ...)
{
	char    line[512];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0) {
		return;
	}
	if ((size_t)n > sizeof(line) - 2) {
		n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	if (write(tp->logfd, line, (size_t)n) != n) {
		DTXI_ERROR("testpart: log write: %s", strerror(errno));
	}
}

static const char *
result_name(dtx_result r)
{
	switch (r) {
	case DTX_OK:
		return "OK";
	case DTX_REFUSED:
		return "REFUSED";
	case DTX_RETRY:
		return "RETRY";
	case DTX_BAD_REQUEST:
		return "BAD_REQUEST";
	}
	return "?";
}

// --store: stages the run count and the effect of this run in the
// barrier's batch. The barrier serialises the calls of one (gid, branch),
// so reading the count first is safe.
static void
stage_run(
    testpart *tp, const dtx_call *call, dtx_result r, rocksdb_writebatch_t *wb)
{
	rocksdb_readoptions_t *ro  = rocksdb_readoptions_create();
	char                  *err = NULL;
	char                   key[300], val[32];
	size_t                 len = 0;
	unsigned long          n   = 0;
	char                  *v;

	snprintf(key, sizeof(key), "n/%s/%u/%s", call->gid,
	    (unsigned)call->branch_id, dtx_phase_name(call->phase));
	v = rocksdb_get(tp->db, ro, key, strlen(key), &len, &err);
	rocksdb_readoptions_destroy(ro);
	if (err != NULL) {
		DTXI_ERROR("testpart: read %s: %s", key, err);
		rocksdb_free(err);
		abort();
	}
	if (v != NULL) {
		snprintf(val, sizeof(val), "%.*s", (int)len, v);
		n = strtoul(val, NULL, 10);
		rocksdb_free(v);
	}
	snprintf(val, sizeof(val), "%lu", n + 1);
	rocksdb_writebatch_put(wb, key, strlen(key), val, strlen(val));
	if (r != DTX_OK) {
		return;
	}
	snprintf(
	    key, sizeof(key), "e/%s/%u", call->gid, (unsigned)call->branch_id);
	if (call->phase == DTX_PHASE_COMMIT ||
	    call->phase == DTX_PHASE_EXECUTE) {
		rocksdb_writebatch_put(wb, key, strlen(key), "1", 1);
	} else if (call->phase == DTX_PHASE_ABORT ||
	    call->phase == DTX_PHASE_COMPENSATE) {
		rocksdb_writebatch_put(wb, key, strlen(key), "0", 1);
	}
}

// The one callback behind all five phases.
static dtx_result
on_call(const dtx_call *call, dtx_reply *reply, void *arg)
{
	testpart  *tp = arg;
	behaviour  b  = parse_behaviour(call);
	dtx_result r  = DTX_OK;
	unsigned   nap;
	char       out[128];
	entry     *e;

	if (b.what == ACT_SLEEP) {
		sleep_ms(b.arg);
	}
	pthread_mutex_lock(&tp->lock);
	e = find_entry(tp, call->gid, call->branch_id);
	e->calls[call->phase]++;
	if (b.what == ACT_REFUSE) {
		r = DTX_REFUSED;
	} else if (b.what == ACT_RETRY && e->calls[call->phase] <= b.arg) {
		r = DTX_RETRY;
	} else {
		r = fault_pick(&tp->faults, call, e->calls[call->phase], &nap);
		if (nap > 0) {
			// Entries live until exit, so e survives the nap; the
			// effect is decided after it, as a slow call would.
			pthread_mutex_unlock(&tp->lock);
			sleep_ms(nap);
			pthread_mutex_lock(&tp->lock);
		}
	}
	log_line(tp, "CALL %s %s %u %u %s", dtx_phase_name(call->phase),
	    call->gid, (unsigned)call->branch_id, (unsigned)call->attempt,
	    result_name(r));
	if (call->traceparent != NULL && call->traceparent[0] != '\0') {
		log_line(tp, "TRACE %s %s %u %s", dtx_phase_name(call->phase),
		    call->gid, (unsigned)call->branch_id, call->traceparent);
	}
	if (r == DTX_OK) {
		switch (call->phase) {
		case DTX_PHASE_COMMIT:
		case DTX_PHASE_EXECUTE:
			if (!e->applied) {
				e->applied = true;
				log_line(tp, "APPLY %s %u", call->gid,
				    (unsigned)call->branch_id);
			}
			break;
		case DTX_PHASE_ABORT:
		case DTX_PHASE_COMPENSATE:
			if (e->applied && !e->undone) {
				e->undone = true;
				log_line(tp, "UNDO %s %u", call->gid,
				    (unsigned)call->branch_id);
			}
			break;
		default:
			break;
		}
	}
	pthread_mutex_unlock(&tp->lock);
	if (tp->db != NULL && dtx_reply_writebatch(reply) != NULL) {
		stage_run(tp, call, r, dtx_reply_writebatch(reply));
	}
	snprintf(
	    out, sizeof(out), "%s:%s", tp->name, dtx_phase_name(call->phase));
	dtx_reply_set_payload(reply, out, strlen(out));
	dtx_reply_set_message(reply, result_name(r));
	return r;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: dtx-testpart --listen URL --log FILE [--name NAME] "
	    "[--workers N] [--max-payload BYTES]\n"
	    "           [--store DIR --barrier [--retention-ms MS]\n"
	    "            [--coordinator URL --resolve-after MS]]\n"
	    "           [--seed N] [--refuse-rate R] [--retry-rate R]\n"
	    "           [--delay-rate R] [--delay-ms MS] [--timeout-rate R]\n"
	    "           [--timeout-ms MS]   (R: RATE or PHASE=RATE,...)\n"
	    "           [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n"
	    "       dtx-testpart --dump --store DIR\n");
}

// --store, --barrier and friends, kept apart from the other options.
typedef struct store_opts {
	const char *dir;
	bool        barrier;
	bool        dump;
	int64_t     retention_ms;
	const char *coordinator;
	uint32_t    resolve_after_ms;
} store_opts;

// Takes argv[*i] (and its value) when it is a store option.
static bool
store_arg(store_opts *so, int argc, char **argv, int *i)
{
	const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;

	if (strcmp(argv[*i], "--barrier") == 0) {
		so->barrier = true;
		return true;
	}
	if (strcmp(argv[*i], "--dump") == 0) {
		so->dump = true;
		return true;
	}
	if (v == NULL) {
		return false;
	}
	if (strcmp(argv[*i], "--store") == 0) {
		so->dir = v;
	} else if (strcmp(argv[*i], "--retention-ms") == 0) {
		so->retention_ms = strtoll(v, NULL, 10);
	} else if (strcmp(argv[*i], "--coordinator") == 0) {
		so->coordinator = v;
	} else if (strcmp(argv[*i], "--resolve-after") == 0) {
		so->resolve_after_ms = (uint32_t)strtoul(v, NULL, 10);
	} else {
		return false;
	}
	(*i)++;
	return true;
}

static rocksdb_t *
store_open(const char *dir, bool read_only)
{
	rocksdb_options_t *o   = rocksdb_options_create();
	char              *err = NULL;
	rocksdb_t         *db;

	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_info_log_level(o, 2); // WARN
	db = read_only ? rocksdb_open_for_read_only(o, dir, 0, &err)
	               : rocksdb_open(o, dir, &err);
	rocksdb_options_destroy(o);
	if (err != NULL) {
		fprintf(stderr, "dtx-testpart: %s: %s\n", dir, err);
		rocksdb_free(err);
		return NULL;
	}
	return db;
}

// --dump: what the store says ran, took effect and is still recorded.
static int
store_dump(const char *dir)
{
	rocksdb_t             *db = store_open(dir, true);
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t    *it;
	unsigned long          barrier = 0;

	if (db == NULL) {
		return 1;
	}
	ro = rocksdb_readoptions_create();
	it = rocksdb_create_iterator(db, ro);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t      klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);
		char        key[400];
		char       *a, *b;

		if (klen >= 4 && memcmp(k, "dtx/", 4) == 0) {
			barrier++;
			continue;
		}
		if (klen < 2 || klen >= sizeof(key)) {
			continue;
		}
		memcpy(key, k, klen);
		key[klen] = '\0';
		if (key[0] == 'n' && (a = strrchr(key, '/')) != NULL) {
			*a = '\0'; // key + 2: "<gid>/<branch>", a + 1: phase
			if ((b = strrchr(key, '/')) == NULL || b == key + 1) {
				continue;
			}
			*b = '\0';
			printf("RAN %s %s %s %.*s\n", a + 1, key + 2, b + 1,
			    (int)vlen, v);
		} else if (key[0] == 'e' && (a = strrchr(key, '/')) != NULL &&
		    a > key + 1) {
			*a = '\0';
			printf("EFFECT %s %s %.*s\n", key + 2, a + 1,
			    (int)vlen, v);
		}
	}
	printf("BARRIER %lu\n", barrier);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	rocksdb_close(db);
	return 0;
}

static int
use_barrier(dtx_participant *p, testpart *tp, const store_opts *so)
{
	dtx_barrier_opts o = {.retention_ms = so->retention_ms};
	int              rv;

	if ((rv = dtx_participant_use_barrier(p, tp->db, &o)) != 0) {
		return rv;
	}
	if (so->coordinator != NULL) {
		rv = dtx_participant_set_resolver(p, so->coordinator,
		    so->resolve_after_ms > 0 ? so->resolve_after_ms : 1000);
	}
	return rv;
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
	testpart         tp          = {.logfd = -1,
	                     .name             = "p",
	                     .faults = {.seed = 1, .delay_ms = 100, .timeout_ms = 2000}};
	store_opts       so          = {0};
	const char      *url         = NULL;
	const char      *logpath     = NULL;
	unsigned         workers     = 0;
	size_t           max_payload = 0;
	dtx_tls_opts     tls         = {0};
	dtx_participant *p           = NULL;
	sigset_t         sigs;
	int              sig;
	int              rv;

	for (int i = 1; i < argc; i++) {
		const char *v  = i + 1 < argc ? argv[i + 1] : NULL;
		int         fa = fault_arg(&tp.faults, argc, argv, &i);
		if (fa < 0) {
			usage();
			return 1;
		}
		if (fa > 0 || store_arg(&so, argc, argv, &i)) {
			continue;
		}
		if (v == NULL) {
			usage();
			return 1;
		}
		if (strcmp(argv[i], "--listen") == 0) {
			url = v;
		} else if (strcmp(argv[i], "--log") == 0) {
			logpath = v;
		} else if (strcmp(argv[i], "--name") == 0) {
			tp.name = v;
		} else if (strcmp(argv[i], "--workers") == 0) {
			workers = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(argv[i], "--max-payload") == 0) {
			max_payload = (size_t)strtoull(v, NULL, 10);
		} else if (strcmp(argv[i], "--tls-cert") == 0) {
			tls.cert_file = v;
		} else if (strcmp(argv[i], "--tls-key") == 0) {
			tls.key_file = v;
		} else if (strcmp(argv[i], "--tls-ca") == 0) {
			tls.ca_file = v;
		} else {
			usage();
			return 1;
		}
		i++;
	}
	if (so.dump && so.dir != NULL) {
		return store_dump(so.dir);
	}
	if (url == NULL || logpath == NULL || (so.barrier && so.dir == NULL) ||
	    (so.coordinator != NULL && !so.barrier)) {
		usage();
		return 1;
	}
	if (so.dir != NULL && (tp.db = store_open(so.dir, false)) == NULL) {
		return 1;
	}
	tp.logfd =
	    open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (tp.logfd < 0) {
		fprintf(stderr, "dtx-testpart: %s: %s\n", logpath,
		    strerror(errno));
		return 1;
	}
	pthread_mutex_init(&tp.lock, NULL);

	// Block the signals before libdtx starts threads, so that only main
	// takes them, with sigwait().
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (workers > 0 &&
	        (rv = dtx_participant_set_workers(p, workers)) != 0) ||
	    (max_payload > 0 &&
	        (rv = dtx_participant_set_max_payload(p, max_payload)) != 0) ||
	    (rv = dtx_participant_register(p, "op", &ops, &tp)) != 0 ||
	    (so.barrier && (rv = use_barrier(p, &tp, &so)) != 0) ||
	    (tls.ca_file != NULL &&
	        ((rv = dtx_participant_set_tls(p, &tls)) != 0 ||
	            (so.coordinator != NULL &&
	                strncmp(so.coordinator, "tls+", 4) == 0 &&
	                (rv = dtx_participant_set_resolver_tls(p, &tls)) !=
	                    0))) ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(stderr, "dtx-testpart: %s: %s: %s\n", url,
		    dtx_strerror(rv), dtx_participant_message(p));
		dtx_participant_close(p);
		if (tp.db != NULL) {
			rocksdb_close(tp.db);
		}
		close(tp.logfd);
		return 1;
	}
	fprintf(stderr, "dtx-testpart %s listening on %s\n", tp.name, url);

	do {
		rv = sigwait(&sigs, &sig);
	} while (rv != 0);

	dtx_participant_close(p);
	if (tp.db != NULL) {
		rocksdb_close(tp.db);
	}
	pthread_mutex_destroy(&tp.lock);
	while (tp.entries != NULL) {
		entry *e   = tp.entries;
		tp.entries = e->next;
		free(e);
	}
	close(tp.logfd);
	fprintf(stderr, "dtx-testpart %s: signal %d, closed\n", tp.name, sig);
	return 0;
}
