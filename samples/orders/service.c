// SPDX-License-Identifier: MIT
//
// service: process scaffolding shared by the inventory and order samples
// (see service.h). Stopping is done with sigwait() on a thread that blocked
// the signals before anything else started: no handler runs in an arbitrary
// thread, and closing the participant happens in plain code.

#include "service.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
orders_process_init(sigset_t *stop_signals)
{
	sigemptyset(stop_signals);
	sigaddset(stop_signals, SIGINT);
	sigaddset(stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, stop_signals, NULL);
	// The demo interleaves several processes on one terminal or pipe;
	// whole lines keep the story readable.
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static void
lock_mu(void *mu)
{
	pthread_mutex_lock(mu);
}

static void
unlock_mu(void *mu)
{
	pthread_mutex_unlock(mu);
}

void
orders_tls_init(orders_tls *t, const char *dir)
{
	snprintf(t->cert, sizeof(t->cert), "%s/service.crt", dir);
	snprintf(t->key, sizeof(t->key), "%s/service.key", dir);
	snprintf(t->ca, sizeof(t->ca), "%s/coordinator-ca.crt", dir);
	memset(&t->opts, 0, sizeof(t->opts));
	t->opts.cert_file = t->cert;
	t->opts.key_file  = t->key;
	t->opts.ca_file   = t->ca;
}

int
orders_service_run(const char *name, const char *url, const char *tls_dir,
    const char *what, orders_register_fn reg, void *arg, orders_kv *kv,
    pthread_mutex_t *mu, const sigset_t *stop_signals)
{
	orders_tls       tls;
	dtx_barrier_opts bo = {
	    .lock = lock_mu, .unlock = unlock_mu, .lock_arg = mu};
	dtx_participant *p = NULL;
	int              rv;
	int              sig = 0;

	if (tls_dir != NULL) {
		orders_tls_init(&tls, tls_dir);
	}
	if ((rv = dtx_participant_open(&p)) != 0 || (rv = reg(p, arg)) != 0 ||
	    (tls_dir != NULL &&
	        (rv = dtx_participant_set_tls(p, &tls.opts)) != 0) ||
	    (rv = dtx_participant_use_barrier(
	         p, orders_kv_rocksdb(kv), &bo)) != 0 ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(stderr, "%s: cannot serve %s on %s: %s %s\n", name,
		    what, url, dtx_strerror(rv), dtx_participant_message(p));
		dtx_participant_close(p);
		return 1;
	}
	printf("%s: serving %s on %s\n", name, what, url);
	sigwait(stop_signals, &sig);
	printf(
	    "%s: %s, stopping\n", name, sig == SIGINT ? "SIGINT" : "SIGTERM");
	dtx_participant_close(p);
	return 0;
}

void
orders_story(const char *name, const dtx_call *call, const char *fmt, ...)
{
	char        what[512];
	char        again[32] = "";
	const char *method;
	va_list     ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	// Redeliveries are normal (every call may arrive more than once);
	// showing them makes the idempotency visible.
	if (call->attempt > 1) {
		snprintf(again, sizeof(again), " (attempt %u)",
		    (unsigned)call->attempt);
	}
	method = strrchr(call->method, '/');
	printf("%s: [%.8s/%u] %s %s %s%s\n", name, call->gid,
	    (unsigned)call->branch_id, dtx_phase_name(call->phase),
	    method != NULL ? method + 1 : call->method, what, again);
}

void
orders_branch_key(char *key, const dtx_call *call)
{
	snprintf(key, ORDERS_BRANCH_KEY_MAX, "branch/%s/%u", call->gid,
	    (unsigned)call->branch_id);
}
