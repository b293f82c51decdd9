// SPDX-License-Identifier: MIT
//
// link: watched dialers and listeners (see link.h).
//
// The watch thread. It sleeps until something needs looking at: a link
// that is down while a request waits on it ("armed"), a link known to fail
// (to notice when that changes), or a listener. Each pass takes one
// snapshot of nng's statistics (nng_stats_get copies all of them; there is
// no cheaper way to read one counter) and compares each link's dialer
// counters of failed handshakes ("auth", "other", "proto", "disconnect":
// where nng 1.5.2 counts NNG_ECRYPTO, NNG_EPEERAUTH, NNG_ECONNSHUT,
// NNG_EPROTO and NNG_ECONNRESET) with what it saw last. A rise means an
// attempt failed after the TCP connection was made: the thread diagnoses
// it (tls.h; this blocks, which is why it has a thread of its own and is
// not an nng callback) and, if it is a mismatch that retrying will not
// fix, records the reason and calls the owner, which aborts what waits.
// The dialer keeps trying in the background; the first pipe that comes up
// clears the failure. A pass runs every period_ms (dtxi_watch_open) while
// a request was armed in the last few seconds, so a failure is reported
// within about that plus the diagnosis (a few ms on a reachable server);
// every 2 s otherwise: the snapshot grows with the number of pipes (a few
// thousand in a loaded dtxd), and listeners need no hurry.
//
// Lock order: watch->mtx only (a leaf). A link or listener record the
// thread is working on is marked busy; closing a link waits for that.

#include "link.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "strs.h"
#include "transport.h"

#define IDLE_PERIOD_MS 2000
// An armed link is looked at every period_ms for this long after the
// request that armed it.
#define HOT_FOR_MS 3000
#define URL_MAX    (DTX_ENDPOINT_MAX + 1)

typedef struct lwatch {
	struct lwatch *next;
	nng_listener   l;
	bool           tls;
	char           url[URL_MAX];
	char           what[64];
	char           ca[160];
	uint64_t       auth;  // refused handshakes counted so far
	uint64_t       proto; // connections that did not speak SP
	uint64_t       hung;  // connections that ended before the handshake
} lwatch;

struct dtxi_link {
	dtxi_link        *next;
	dtxi_watch       *w;
	nng_socket        sock;
	nng_dialer        dialer;
	dtxi_tls         *tls; // held, or NULL
	dtxi_link_fail_fn fail;
	dtxi_link_pipe_fn pipe;
	void             *arg;
	atomic_int        npipes;
	char              url[URL_MAX];
	char              peer[64];
	char              hint[160];
	// Under w->mtx.
	int64_t  armed_ms; // monotonic time of the last arming, or 0
	uint64_t seen;     // failed attempts counted so far
	int      fail_rv;  // DTX_EAUTH while the link is known to fail
	char     why[DTX_MESSAGE_MAX + 1];
	bool     busy;    // the watch thread is working on it
	bool     closing; // being closed: the thread leaves it alone
};

struct dtxi_watch {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;      // wakes the thread
	pthread_cond_t  idle_cv; // a busy link became idle
	pthread_t       thread;
	bool            started;
	bool            stop;
	int64_t         period_ms; // between passes while a link is armed
	dtxi_link      *links;
	lwatch         *listeners;
	atomic_uint_least64_t refused; // handshakes the listeners refused
};

static void *watch_main(void *arg);

int
dtxi_watch_open(dtxi_watch **wp, int period_ms)
{
	dtxi_watch        *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;

	if (w == NULL) {
		return DTX_ENOMEM;
	}
	pthread_mutex_init(&w->mtx, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&w->idle_cv, NULL);
	w->period_ms = period_ms > 0 ? period_ms : 50;
	*wp          = w;
	return 0;
}

// Starts the thread if it is not running. Called with w->mtx held.
static int
watch_start(dtxi_watch *w)
{
	if (w->started) {
		return 0;
	}
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
		return DTX_ENOMEM;
	}
	w->started = true;
	return 0;
}

void
dtxi_watch_close(dtxi_watch *w)
{
	if (w == NULL) {
		return;
	}
	pthread_mutex_lock(&w->mtx);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	if (w->started) {
		pthread_join(w->thread, NULL);
	}
	while (w->listeners != NULL) {
		lwatch *lw   = w->listeners;
		w->listeners = lw->next;
		free(lw);
	}
	pthread_cond_destroy(&w->idle_cv);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mtx);
	free(w);
}

// ---------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------

// On an nng thread, as a pipe of the link's socket comes or goes.
static void
link_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	dtxi_link *l = arg;

	(void)p;
	if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&l->npipes, 1);
		if (l->pipe != NULL) {
			l->pipe(l->arg, false);
		}
		return;
	}
	atomic_fetch_add(&l->npipes, 1);
	if (l->pipe != NULL) {
		l->pipe(l->arg, true);
	}
	pthread_mutex_lock(&l->w->mtx);
	if (l->fail_rv != 0) {
		dtxi_log_event(DTXI_LOG_INFO, "link_recovered",
		    DTXI_FIELDS(DTXI_F_STR("peer", l->peer),
		        DTXI_F_STR("url", l->url)),
		    "link: %s at %s is reachable again", l->peer, l->url);
	}
	l->fail_rv  = 0;
	l->armed_ms = 0;
	pthread_mutex_unlock(&l->w->mtx);
}

// Whether url and tls go together; why says how not.
static int
check_tls_url(const char *url, const dtxi_tls *tls, char *why, size_t cap)
{
	if (dtxi_tls_url(url) && tls == NULL) {
		snprintf(why, cap,
		    "%s is a TLS address and no TLS settings "
		    "(certificate, key, CA) were given",
		    url);
		return DTX_EINVAL;
	}
	if (!dtxi_tls_url(url) && tls != NULL) {
		snprintf(why, cap,
		    "TLS settings were given but %s is not a "
		    "tls+tcp:// address",
		    url);
		return DTX_EINVAL;
	}
	return 0;
}

// nng's error for an address, in dtx's terms, with why.
static int
addr_err(int rv, const char *url, char *why, size_t cap)
{
	snprintf(why, cap, "%s: %s", url, nng_strerror(rv));
	if (rv == NNG_EINVAL || rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP) {
		return DTX_EINVAL;
	}
	return dtxi_transport_err(rv, NULL);
}

int
dtxi_link_open(dtxi_link **lp, dtxi_watch *w, nng_socket s,
    const dtxi_link_opts *o, char *why, size_t cap)
{
	dtxi_link *l;
	nng_dialer d;
	int        rv;

	if (o == NULL || o->url == NULL || strlen(o->url) >= URL_MAX) {
		snprintf(why, cap, "no address, or one that is too long");
		return DTX_EINVAL;
	}
	if ((rv = check_tls_url(o->url, o->tls, why, cap)) != 0) {
		return rv;
	}
	if ((rv = nng_dialer_create(&d, s, o->url)) != 0) {
		return addr_err(rv, o->url, why, cap);
	}
	if (o->tls != NULL &&
	    (rv = dtxi_tls_dialer_setup(o->tls, d, o->url, why, cap)) != 0) {
		nng_dialer_close(d);
		return rv;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		nng_dialer_close(d);
		return DTX_ENOMEM;
	}
	l->w      = w;
	l->sock   = s;
	l->dialer = d;
	l->fail   = o->fail;
	l->pipe   = o->pipe;
	l->arg    = o->arg;
	atomic_init(&l->npipes, 0);
	dtxi_strlcpy(l->url, o->url, sizeof(l->url));
	dtxi_strlcpy(
	    l->peer, o->peer != NULL ? o->peer : "peer", sizeof(l->peer));
	if (o->hint != NULL) {
		dtxi_strlcpy(l->hint, o->hint, sizeof(l->hint));
	}
	if (o->tls != NULL) {
		l->tls = (dtxi_tls *)o->tls;
		dtxi_tls_hold(l->tls);
	}
	nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, link_pipe_cb, l);
	nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, link_pipe_cb, l);
	pthread_mutex_lock(&w->mtx);
	l->next  = w->links;
	w->links = l;
	pthread_mutex_unlock(&w->mtx);
	if ((rv = nng_dialer_start(d, NNG_FLAG_NONBLOCK)) != 0) {
		nng_pipe_notify(s, NNG_PIPE_EV_ADD_POST, NULL, NULL);
		nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, NULL, NULL);
		nng_dialer_close(d);
		dtxi_link_close(l);
		return addr_err(rv, o->url, why, cap);
	}
	*lp = l;
	return 0;
}

void
dtxi_link_close(dtxi_link *l)
{
	dtxi_watch *w;

	if (l == NULL) {
		return;
	}
	w = l->w;
	pthread_mutex_lock(&w->mtx);
	l->closing = true;
	while (l->busy) {
		pthread_cond_wait(&w->idle_cv, &w->mtx);
	}
	for (dtxi_link **pp = &w->links; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	pthread_mutex_unlock(&w->mtx);
	dtxi_tls_rele(l->tls);
	free(l);
}

int
dtxi_link_check(dtxi_link *l, char *why, size_t cap)
{
	dtxi_watch *w = l->w;
	int         rv;

	if (atomic_load(&l->npipes) > 0) {
		return 0;
	}
	pthread_mutex_lock(&w->mtx);
	if ((rv = l->fail_rv) != 0) {
		dtxi_strlcpy(why, l->why, cap);
	} else {
		l->armed_ms = dtxi_mono_ms();
		if (watch_start(w) == 0) {
			pthread_cond_signal(&w->cv);
		}
	}
	pthread_mutex_unlock(&w->mtx);
	return rv;
}

bool
dtxi_link_failing(dtxi_link *l)
{
	bool failing;

	if (atomic_load(&l->npipes) > 0) {
		return false;
	}
	pthread_mutex_lock(&l->w->mtx);
	failing = l->fail_rv != 0;
	pthread_mutex_unlock(&l->w->mtx);
	return failing;
}

uint64_t
dtxi_watch_refused(dtxi_watch *w)
{
	return atomic_load(&w->refused);
}

bool
dtxi_link_up(dtxi_link *l)
{
	return atomic_load(&l->npipes) > 0;
}

int
dtxi_link_err(dtxi_link *l, int rv, const char *what, char *why, size_t cap)
{
	int frv;

	if (rv == 0) {
		return 0;
	}
	pthread_mutex_lock(&l->w->mtx);
	frv = l->fail_rv;
	if (frv != 0 && (rv == NNG_EPEERAUTH || rv == NNG_ETIMEDOUT)) {
		dtxi_strlcpy(why, l->why, cap);
	}
	pthread_mutex_unlock(&l->w->mtx);
	if (frv != 0 && (rv == NNG_EPEERAUTH || rv == NNG_ETIMEDOUT)) {
		return frv;
	}
	snprintf(why, cap, "%s: %s", what, nng_strerror(rv));
	return dtxi_transport_err(rv, NULL);
}

// ---------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------

int
dtxi_listen(dtxi_watch *w, nng_socket s, const char *url, const dtxi_tls *tls,
    int ipc_mode, const char *what, char *why, size_t cap)
{
	nng_listener l;
	lwatch      *lw;
	int          rv;

	if ((rv = check_tls_url(url, tls, why, cap)) != 0) {
		return rv;
	}
	if ((lw = calloc(1, sizeof(*lw))) == NULL) {
		return DTX_ENOMEM;
	}
	if ((rv = nng_listener_create(&l, s, url)) != 0) {
		free(lw);
		return addr_err(rv, url, why, cap);
	}
	if (tls != NULL &&
	    (rv = dtxi_tls_listener_setup(tls, l, why, cap)) != 0) {
		goto fail;
	}
	if (ipc_mode != 0 && strncmp(url, "ipc://", 6) == 0 &&
	    (rv = nng_listener_set_int(
	         l, NNG_OPT_IPC_PERMISSIONS, ipc_mode)) != 0) {
		rv = addr_err(rv, url, why, cap);
		goto fail;
	}
	if ((rv = nng_listener_start(l, 0)) != 0) {
		rv = addr_err(rv, url, why, cap);
		goto fail;
	}
	lw->l   = l;
	lw->tls = tls != NULL;
	dtxi_strlcpy(lw->url, url, sizeof(lw->url));
	dtxi_strlcpy(lw->what, what, sizeof(lw->what));
	if (tls != NULL) {
		dtxi_strlcpy(lw->ca, dtxi_tls_ca_source(tls), sizeof(lw->ca));
	}
	pthread_mutex_lock(&w->mtx);
	lw->next     = w->listeners;
	w->listeners = lw;
	// Without its thread the watch cannot log; the listener still works.
	if (watch_start(w) != 0) {
		DTXI_WARN("%s %s: refused handshakes will not be logged "
		          "(no thread)",
		    what, url);
	}
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	return 0;
fail:
	nng_listener_close(l);
	free(lw);
	return rv;
}

// ---------------------------------------------------------------------
// The watch thread
// ---------------------------------------------------------------------

static uint64_t
counter(nng_stat *parent, const char *name)
{
	for (nng_stat *c = nng_stat_child(parent); c != NULL;
	     c           = nng_stat_next(c)) {
		if (strcmp(nng_stat_name(c), name) == 0) {
			return nng_stat_value(c);
		}
	}
	return 0;
}

// The statistics scope of the dialer or listener (kind) with id. nng
// 1.5.2's nng_stat_find_dialer and nng_stat_find_listener return the first
// scope of that kind whatever the id; a scope's value is its id.
static nng_stat *
find_scope(nng_stat *snap, const char *kind, int id)
{
	for (nng_stat *c = nng_stat_child(snap); c != NULL;
	     c           = nng_stat_next(c)) {
		if (strcmp(nng_stat_name(c), kind) == 0 &&
		    nng_stat_value(c) == (uint64_t)id) {
			return c;
		}
	}
	return NULL;
}

// Failed attempts of a dialer that got past the TCP connection.
static uint64_t
dialer_failures(nng_stat *snap, nng_dialer d)
{
	nng_stat *st = find_scope(snap, "dialer", nng_dialer_id(d));

	if (st == NULL) {
		return 0;
	}
	return counter(st, "auth") + counter(st, "other") +
	    counter(st, "proto") + counter(st, "disconnect");
}

// Looks at one link (busy, so it stays) with the watch unlocked.
static void
look_at_link(dtxi_watch *w, dtxi_link *l, nng_stat *snap)
{
	uint64_t n = dialer_failures(snap, l->dialer);
	char     why[DTX_MESSAGE_MAX + 1];
	int      rv;
	bool     news;

	pthread_mutex_lock(&w->mtx);
	news    = n > l->seen;
	l->seen = n;
	pthread_mutex_unlock(&w->mtx);
	if (!news || atomic_load(&l->npipes) > 0) {
		return;
	}
	rv = dtxi_tls_diagnose(l->tls, l->url, l->peer,
	    l->hint[0] != '\0' ? l->hint : NULL, why, sizeof(why));
	pthread_mutex_lock(&w->mtx);
	if (atomic_load(&l->npipes) > 0) {
		rv = 0; // it came up meanwhile
	}
	bool again = rv != 0 && l->fail_rv == rv && strcmp(l->why, why) == 0;
	if (rv == DTX_EAUTH) {
		l->fail_rv  = rv;
		l->armed_ms = 0;
		dtxi_strlcpy(l->why, why, sizeof(l->why));
	} else {
		l->fail_rv = 0;
	}
	pthread_mutex_unlock(&w->mtx);
	if (rv == DTX_EAUTH) {
		if (!again) {
			dtxi_log_event(DTXI_LOG_WARN, "link_failed",
			    DTXI_FIELDS(DTXI_F_STR("peer", l->peer),
			        DTXI_F_STR("url", l->url)),
			    "%s", why);
		}
		if (l->fail != NULL) {
			l->fail(l->arg);
		}
	}
}

// Logs what a listener's failed accepts (nng counts one for every
// connection that did not make it to an SP pipe) were since the last look.
// A refused TLS handshake or bytes that are not SP are worth a warning; a
// connection that hung up or broke off is what a TCP health check does,
// and only informs.
static void
look_at_listener(dtxi_watch *w, lwatch *lw, nng_stat *snap)
{
	nng_stat *st = find_scope(snap, "listener", nng_listener_id(lw->l));
	uint64_t  auth, proto, hung;

	if (st == NULL) {
		return;
	}
	auth  = counter(st, "auth");
	proto = counter(st, "proto");
	hung  = counter(st, "other") + counter(st, "disconnect") +
	    counter(st, "timeout");
	if (auth > lw->auth) {
		atomic_fetch_add(&w->refused, auth - lw->auth);
		dtxi_log_event(DTXI_LOG_WARN, "tls_handshake_refused",
		    DTXI_FIELDS(DTXI_F_STR("listener", lw->what),
		        DTXI_F_STR("url", lw->url),
		        DTXI_F_NUM("count", auth - lw->auth)),
		    "%s %s: refused %llu TLS handshake(s): a peer "
		    "without a certificate signed by the CA %s, with "
		    "an expired one, or dialing plain tcp:// (nng 1.5.2 "
		    "does not name the peer)",
		    lw->what, lw->url, (unsigned long long)(auth - lw->auth),
		    lw->ca);
	}
	if (proto > lw->proto) {
		dtxi_log_event(DTXI_LOG_WARN, "listener_not_sp",
		    DTXI_FIELDS(DTXI_F_STR("listener", lw->what),
		        DTXI_F_STR("url", lw->url),
		        DTXI_F_NUM("count", proto - lw->proto)),
		    "%s %s: %llu connection(s) did not speak nng's SP "
		    "protocol%s (nng 1.5.2 does not name the peer)",
		    lw->what, lw->url, (unsigned long long)(proto - lw->proto),
		    lw->tls ? ""
		            : ": a tls+tcp:// dialer at this plain port?");
	}
	if (hung > lw->hung) {
		dtxi_log_event(DTXI_LOG_INFO, "listener_hung_up",
		    DTXI_FIELDS(DTXI_F_STR("listener", lw->what),
		        DTXI_F_STR("url", lw->url),
		        DTXI_F_NUM("count", hung - lw->hung)),
		    "%s %s: %llu connection(s) hung up or broke off "
		    "before the handshake ended",
		    lw->what, lw->url, (unsigned long long)(hung - lw->hung));
	}
	lw->auth  = auth;
	lw->proto = proto;
	lw->hung  = hung;
}

// Marks the links due for a look busy and puts them in todo (room for
// cap); returns how many. The delay until the next pass goes to *wait_ms
// (-1: nothing to wait for). Called with w->mtx held.
static size_t
pick_links(
    dtxi_watch *w, int64_t now, dtxi_link **todo, size_t cap, int64_t *wait_ms)
{
	size_t n = 0;

	*wait_ms = w->listeners != NULL ? IDLE_PERIOD_MS : -1;
	for (dtxi_link *l = w->links; l != NULL && n < cap; l = l->next) {
		bool hot = l->armed_ms != 0 && now - l->armed_ms < HOT_FOR_MS;
		if (l->closing || atomic_load(&l->npipes) > 0 ||
		    (!hot && l->fail_rv == 0)) {
			continue;
		}
		l->busy   = true;
		todo[n++] = l;
		if (hot) {
			*wait_ms = w->period_ms;
		} else if (*wait_ms < 0) {
			*wait_ms = IDLE_PERIOD_MS;
		}
	}
	return n;
}

static void
wait_for(dtxi_watch *w, int64_t ms)
{
	struct timespec ts;

	if (ms < 0) {
		pthread_cond_wait(&w->cv, &w->mtx);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&w->cv, &w->mtx, &ts);
}

// Links looked at in one pass at most; the rest wait for the next.
#define PASS_MAX 64

static void *
watch_main(void *arg)
{
	dtxi_watch *w = arg;
	dtxi_link  *todo[PASS_MAX];
	int64_t     wait_ms;

	pthread_mutex_lock(&w->mtx);
	while (!w->stop) {
		size_t n =
		    pick_links(w, dtxi_mono_ms(), todo, PASS_MAX, &wait_ms);
		lwatch   *lws = w->listeners;
		nng_stat *snap;

		// Nothing is due: sleep until something is (an arming
		// signals the condition).
		if (n == 0 && lws == NULL) {
			wait_for(w, wait_ms);
			continue;
		}
		pthread_mutex_unlock(&w->mtx);
		if (nng_stats_get(&snap) == 0) {
			for (size_t i = 0; i < n; i++) {
				look_at_link(w, todo[i], snap);
			}
			// Listener records are only ever added, at the head,
			// and freed by dtxi_watch_close after this thread
			// has ended: the list from lws on is stable.
			for (lwatch *lw = lws; lw != NULL; lw = lw->next) {
				look_at_listener(w, lw, snap);
			}
			nng_stats_free(snap);
		}
		pthread_mutex_lock(&w->mtx);
		for (size_t i = 0; i < n; i++) {
			todo[i]->busy = false;
		}
		pthread_cond_broadcast(&w->idle_cv);
		if (!w->stop) {
			wait_for(w, wait_ms);
		}
	}
	pthread_mutex_unlock(&w->mtx);
	return NULL;
}
