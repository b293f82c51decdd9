// SPDX-License-Identifier: MIT
//
// dtx-bench-part: the participant dtx-bench starts, a plain libdtx
// participant with one method, "bench", whose callbacks do no work of their
// own: what is measured is dtx, not a service. Two knobs shape it:
// --refuse-rate makes prepare and execute refuse that fraction of calls (so
// 2PC aborts and sagas compensate), --delay-us makes prepare and execute
// take that long (a service that does real work). It runs until SIGTERM or
// SIGINT.

#include <dtx/dtx.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct part {
	double       refuse_rate;
	unsigned     delay_us;
	atomic_ulong seq;
} part;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: dtx-bench-part --listen URL [--refuse-rate F] "
	    "[--delay-us N] [--workers N] [--contexts N]\n"
	    "                      [--tls DIR]   (tls+tcp://: DIR made by "
	    "samples/tls/make-certs.sh)\n");
}

// A cheap, thread-safe pseudo-random draw: a hash of a shared counter, so
// refusals are spread evenly without a lock or per-thread state.
static double
draw(part *p)
{
	uint64_t x = atomic_fetch_add(&p->seq, 1) + 0x9e3779b97f4a7c15ull;

	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	return (double)(x >> 11) / 9007199254740992.0;
}

static dtx_result
forward(const dtx_call *call, dtx_reply *reply, void *arg)
{
	part *p = arg;

	(void)call;
	(void)reply;
	if (p->delay_us > 0) {
		struct timespec ts = {(time_t)(p->delay_us / 1000000),
		    (long)(p->delay_us % 1000000) * 1000L};
		nanosleep(&ts, NULL);
	}
	if (p->refuse_rate > 0 && draw(p) < p->refuse_rate) {
		return DTX_REFUSED;
	}
	return DTX_OK;
}

static dtx_result
backward(const dtx_call *call, dtx_reply *reply, void *arg)
{
	(void)call;
	(void)reply;
	(void)arg;
	return DTX_OK;
}

int
main(int argc, char **argv)
{
	static const dtx_method_ops ops = {
	    .prepare    = forward,
	    .commit     = backward,
	    .abort      = backward,
	    .execute    = forward,
	    .compensate = backward,
	};
	part         pt;
	const char  *url      = NULL;
	unsigned     workers  = 4;
	unsigned     contexts = 256;
	const char  *tls_dir  = NULL;
	char         cert[4096], key[4096], ca[4096];
	dtx_tls_opts tls = {.cert_file = cert, .key_file = key, .ca_file = ca};
	dtx_participant *p = NULL;
	sigset_t         stop;
	int              rv, sig;

	memset(&pt, 0, sizeof(pt));
	atomic_init(&pt.seq, 0);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		}
		if (v == NULL) {
			usage(stderr);
			return 2;
		}
		if (strcmp(a, "--listen") == 0) {
			url = v;
		} else if (strcmp(a, "--refuse-rate") == 0) {
			pt.refuse_rate = atof(v);
		} else if (strcmp(a, "--delay-us") == 0) {
			pt.delay_us = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--workers") == 0) {
			workers = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--contexts") == 0) {
			contexts = (unsigned)strtoul(v, NULL, 10);
		} else if (strcmp(a, "--tls") == 0) {
			tls_dir = v;
		} else {
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (url == NULL) {
		usage(stderr);
		return 2;
	}

	// Block the stop signals before any thread starts; wait for them
	// below.
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	if (tls_dir != NULL) {
		snprintf(cert, sizeof(cert), "%s/service.crt", tls_dir);
		snprintf(key, sizeof(key), "%s/service.key", tls_dir);
		snprintf(ca, sizeof(ca), "%s/coordinator-ca.crt", tls_dir);
	}
	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (tls_dir != NULL &&
	        (rv = dtx_participant_set_tls(p, &tls)) != 0) ||
	    (rv = dtx_participant_set_workers(p, workers)) != 0 ||
	    (rv = dtx_participant_set_contexts(p, contexts)) != 0 ||
	    (rv = dtx_participant_register(p, "bench", &ops, &pt)) != 0 ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(
		    stderr, "dtx-bench-part: %s: %s\n", url, dtx_strerror(rv));
		dtx_participant_close(p);
		return 1;
	}
	sigwait(&stop, &sig);
	dtx_participant_close(p);
	return 0;
}
