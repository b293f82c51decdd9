// SPDX-License-Identifier: MIT
//
// cluster: the node's session, lease and takeovers (see cluster.h).
//
// Timing. The lease is renewed every third of its length, on the
// database's clock, so two renewals may fail before it runs out. A renewal
// that finds the lease had run out (the node was paused, or cut off from
// the database, past it) means others may have taken some of its
// transactions meanwhile: this node is a zombie for those until a write of
// each comes back fenced and drops it (actions.c); since no phase-two call
// leaves before its decision's write succeeded, a zombie can only repeat
// what the new owner would do. Takeovers run after each renewal, and again
// at once while a batch came back full and the loop has room, so a dead
// node's backlog moves at the loop's pace (recovery.c's bound), spread
// over the survivors (each takes what the others have not locked).
//
// After a renewal fails, this node takes nothing over until a lease after
// its next success: the database was unreachable, maybe for everyone, and
// the others need that long to renew before their leases count as run out
// (the store adds the same grace after a database restart).
//
// Lock order: dtxd_cluster.mtx is a leaf.

#include "cluster.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "recovery.h"
#include "requests.h"

#define TAKEOVER_BATCH 256
// How soon to look again after a full batch.
#define TAKEOVER_AGAIN_MS 20

struct dtxd_cluster {
	dtxd_store *st;
	dtxd_txmgr *m;
	char       *name;
	uint32_t    lease_ms;
	uint64_t    session;

	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	bool            stop;
	bool            started;
	pthread_t       thread;

	dtxd_metrics      *metrics; // /readyz: whether the lease holds
	dtxd_cluster_stats stats;   // under mtx
};

int
dtxd_cluster_open(dtxd_cluster **cp, dtxd_store *st,
    const dtxd_cluster_opts *o, uint64_t *session)
{
	dtxd_cluster *c;
	int           rv;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->name = strdup(o->name)) == NULL) {
		free(c);
		return DTX_ENOMEM;
	}
	c->st       = st;
	c->lease_ms = o->lease_ms;
	pthread_mutex_init(&c->mtx, NULL);
	pthread_cond_init(&c->cv, NULL);
	if ((rv = dtxd_store_session_open(
	         st, o->name, o->url, o->lease_ms, &c->session)) != 0) {
		dtxd_cluster_close(c);
		return rv;
	}
	c->metrics       = o->metrics;
	c->stats.session = c->session;
	*session         = c->session;
	*cp              = c;
	DTXI_INFO("cluster: node %s has session %llu (lease %u ms)", o->name,
	    (unsigned long long)c->session, o->lease_ms);
	return 0;
}

// Adds what the store hands over to the batch.
static int
take_one(void *arg, const dtxd_store_unfinished *u)
{
	return dtxd_adopt_batch_add(arg, u);
}

// One takeover round: at most what the loop has room for. Returns how
// many were taken.
static uint32_t
take_over(dtxd_cluster *c)
{
	uint32_t          room = dtxd_recovery_room(c->m);
	uint32_t          n    = 0;
	dtxd_adopt_batch *b;
	int               rv;

	if (room == 0 || (b = dtxd_adopt_batch_alloc()) == NULL) {
		return 0;
	}
	rv = dtxd_store_takeover(c->st, c->session, c->lease_ms,
	    room < TAKEOVER_BATCH ? room : TAKEOVER_BATCH, take_one, b, &n);
	if (n > 0) {
		// Taken in the store is taken: the batch goes to the loop
		// even if copying one of them failed.
		DTXI_INFO("cluster: took over %u transactions of dead "
		          "sessions",
		    n);
		pthread_mutex_lock(&c->mtx);
		c->stats.takeovers += n;
		pthread_mutex_unlock(&c->mtx);
		dtxd_recovery_post(c->m, b);
	} else {
		dtxd_adopt_batch_free(b);
	}
	if (rv != 0 && rv != DTX_ESTORAGE) {
		DTXI_ERROR("cluster: takeover: %s", dtx_strerror(rv));
	}
	return n == TAKEOVER_BATCH ? n : 0;
}

// Posts an abort asked through the store to the loop.
static int
post_abort(void *arg, const char *gid)
{
	dtxd_requests_post_abort(arg, gid);
	return 0;
}

// The aborts other nodes were asked of this node's transactions
// (requests.c, on_abort): each goes to the loop, which aborts it as if
// asked here. Looked for after each renewal, so an abort asked of another
// node takes at most a third of a lease to reach its owner.
static void
aborts_asked(dtxd_cluster *c)
{
	int rv = dtxd_store_aborts_asked(c->st, c->session, post_abort, c->m);

	if (rv != 0 && rv != DTX_ESTORAGE) {
		DTXI_ERROR("cluster: aborts asked: %s", dtx_strerror(rv));
	}
}

// Sleeps up to ms or until stopped; returns false once stopped.
static bool
nap(dtxd_cluster *c, uint32_t ms)
{
	struct timespec ts = dtxi_realtime_in(ms);
	bool            go;

	pthread_mutex_lock(&c->mtx);
	while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mtx, &ts) == 0) {
	}
	go = !c->stop;
	pthread_mutex_unlock(&c->mtx);
	return go;
}

static void *
cluster_main(void *arg)
{
	dtxd_cluster *c          = arg;
	int64_t       every      = c->lease_ms / 3 > 0 ? c->lease_ms / 3 : 1;
	int64_t       next_renew = 0;
	int64_t       take_after = 0; // mono ms; no takeover before
	bool          warned     = false;

	for (;;) {
		int64_t now = dtxi_mono_ms();
		int64_t wait;

		if (now >= next_renew) {
			bool    lapsed = false;
			int64_t sent   = now;
			int     rv     = dtxd_store_session_renew(
			            c->st, c->session, c->lease_ms, &lapsed);

			next_renew = sent + every;
			pthread_mutex_lock(&c->mtx);
			if (rv == 0) {
				c->stats.renewals++;
				c->stats.lapses += lapsed;
			} else {
				c->stats.failures++;
			}
			pthread_mutex_unlock(&c->mtx);
			if (rv == DTX_ECLOSED) {
				DTXI_ERROR("cluster: session %llu was ended: "
				           "another dtxd named %s started; "
				           "this one stops",
				    (unsigned long long)c->session, c->name);
				kill(getpid(), SIGTERM);
				break;
			}
			if (rv == 0) {
				aborts_asked(c);
				dtxd_metrics_set_lease_lost(c->metrics, false);
				if (warned) {
					take_after = sent + c->lease_ms;
				}
				warned = false;
				if (lapsed) {
					DTXI_WARN(
					    "cluster: the lease of "
					    "session %llu had run out "
					    "(paused, or cut off); what "
					    "others took over meanwhile is "
					    "dropped at its next write",
					    (unsigned long long)c->session);
				}
			} else if (!warned) {
				dtxd_metrics_set_lease_lost(c->metrics, true);
				DTXI_WARN("cluster: cannot renew the lease: "
				          "%s; others may take over if this "
				          "lasts %u ms",
				    dtx_strerror(rv), c->lease_ms);
				warned = true;
			}
		}
		wait = next_renew - dtxi_mono_ms();
		if (!warned && dtxi_mono_ms() >= take_after &&
		    take_over(c) > 0) {
			wait = wait < TAKEOVER_AGAIN_MS ? wait
			                                : TAKEOVER_AGAIN_MS;
		}
		if (!nap(c, wait > 0 ? (uint32_t)wait : 0)) {
			break;
		}
	}
	return NULL;
}

int
dtxd_cluster_start(dtxd_cluster *c, dtxd_txmgr *m)
{
	c->m = m;
	if (pthread_create(&c->thread, NULL, cluster_main, c) != 0) {
		return DTX_ENOMEM;
	}
	c->started = true;
	return 0;
}

void
dtxd_cluster_get_stats(dtxd_cluster *c, dtxd_cluster_stats *st)
{
	pthread_mutex_lock(&c->mtx);
	*st = c->stats;
	pthread_mutex_unlock(&c->mtx);
}

void
dtxd_cluster_close(dtxd_cluster *c)
{
	if (c == NULL) {
		return;
	}
	pthread_mutex_lock(&c->mtx);
	c->stop = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mtx);
	if (c->started) {
		pthread_join(c->thread, NULL);
	}
	if (c->session != 0) {
		int rv = dtxd_store_session_end(c->st, c->session);
		if (rv != 0) {
			DTXI_WARN("cluster: cannot end session %llu (%s): "
			          "others take over once its lease runs out",
			    (unsigned long long)c->session, dtx_strerror(rv));
		}
		DTXI_INFO("cluster: node %s: %llu renewals (%llu failed, "
		          "%llu found the lease run out), %llu transactions "
		          "taken over",
		    c->name, (unsigned long long)c->stats.renewals,
		    (unsigned long long)c->stats.failures,
		    (unsigned long long)c->stats.lapses,
		    (unsigned long long)c->stats.takeovers);
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mtx);
	free(c->name);
	free(c);
}
