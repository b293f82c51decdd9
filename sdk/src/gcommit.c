// SPDX-License-Identifier: MIT
//
// gcommit: group commit for the barrier (gcommit.h). One thread waits for
// waits to be queued, takes all of them, syncs once, and completes those
// the sync covered; whatever was queued during the sync goes with the
// next one. So the syncs clock themselves: under load each one covers
// every write made while the previous one ran, and an idle store pays one
// sync per call, as a synced write would, plus a thread wake-up. Nothing
// waits to gather more: a sync that starts at once is never worse, since
// the writes that would have joined it join the next.
//
// A failed sync breaks the group commit for good: a failed fsync may have
// dropped the dirty pages it could not write, so a later "successful" sync
// proves nothing (PostgreSQL's lesson of 2018). Every wait then fails.
//
// Lock order: dtxi_gcommit.mu is a leaf; it is never held while syncing
// or while a done callback runs.

#include "gcommit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <dtx/dtx.h>

struct dtxi_gcommit {
	dtxi_gcommit_sync_fn sync;
	void                *arg;
	pthread_t            thread;
	pthread_mutex_t      mu;
	pthread_cond_t       work; // something queued, or stop
	pthread_cond_t       done; // a round completed
	dtxi_gwait          *head; // queued waits, guarded by mu
	dtxi_gwait          *tail;
	uint64_t             queued;    // waits ever queued, guarded by mu
	uint64_t             completed; // of those, completed, guarded by mu
	bool                 stop;      // guarded by mu
	atomic_uint_fast64_t durable;   // highest ticket synced
	atomic_int           err;       // the failed sync's error, or 0
	atomic_uint_fast64_t syncs;
};

static void
push(dtxi_gcommit *g, dtxi_gwait *w)
{
	w->next = NULL;
	if (g->tail != NULL) {
		g->tail->next = w;
	} else {
		g->head = w;
	}
	g->tail = w;
}

// Completes a round's waits: those the sync covered (or all, on error);
// any other goes back on the queue for the next sync. Returns how many
// completed. Called without the lock.
static uint64_t
complete(dtxi_gcommit *g, dtxi_gwait *w, uint64_t upto, int err)
{
	dtxi_gwait *again = NULL;
	uint64_t    n     = 0;

	while (w != NULL) {
		dtxi_gwait *next = w->next;

		if (err == 0 && w->ticket > upto) {
			// Its ticket was taken after the sync read the
			// store's position: cannot happen for a ticket
			// taken before queueing, but costs nothing to honour.
			w->next = again;
			again   = w;
		} else {
			w->done(w->arg, err);
			n++;
		}
		w = next;
	}
	if (again != NULL) {
		pthread_mutex_lock(&g->mu);
		while (again != NULL) {
			dtxi_gwait *next = again->next;
			push(g, again);
			again = next;
		}
		pthread_mutex_unlock(&g->mu);
	}
	return n;
}

static void *
gcommit_main(void *arg)
{
	dtxi_gcommit *g = arg;

	pthread_mutex_lock(&g->mu);
	for (;;) {
		dtxi_gwait *round;
		uint64_t    upto = 0;
		uint64_t    n;
		int         err;

		while (!g->stop && g->head == NULL) {
			pthread_cond_wait(&g->work, &g->mu);
		}
		if (g->head == NULL) {
			break; // stopping, nothing left
		}
		round   = g->head;
		g->head = NULL;
		g->tail = NULL;
		pthread_mutex_unlock(&g->mu);

		if ((err = atomic_load(&g->err)) == 0) {
			err = g->sync(g->arg, &upto);
			atomic_fetch_add(&g->syncs, 1);
			if (err != 0) {
				atomic_store(&g->err, err);
			} else if (upto > atomic_load(&g->durable)) {
				atomic_store(&g->durable, upto);
			}
		}
		n = complete(g, round, upto, err);

		pthread_mutex_lock(&g->mu);
		g->completed += n;
		pthread_cond_broadcast(&g->done);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int
dtxi_gcommit_start(dtxi_gcommit **gp, dtxi_gcommit_sync_fn sync, void *arg)
{
	dtxi_gcommit *g;

	if ((g = calloc(1, sizeof(*g))) == NULL) {
		return DTX_ENOMEM;
	}
	g->sync = sync;
	g->arg  = arg;
	atomic_init(&g->durable, 0);
	atomic_init(&g->err, 0);
	atomic_init(&g->syncs, 0);
	if (pthread_mutex_init(&g->mu, NULL) != 0) {
		free(g);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&g->work, NULL) != 0) {
		pthread_mutex_destroy(&g->mu);
		free(g);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&g->done, NULL) != 0) {
		pthread_cond_destroy(&g->work);
		pthread_mutex_destroy(&g->mu);
		free(g);
		return DTX_ENOMEM;
	}
	if (pthread_create(&g->thread, NULL, gcommit_main, g) != 0) {
		pthread_cond_destroy(&g->done);
		pthread_cond_destroy(&g->work);
		pthread_mutex_destroy(&g->mu);
		free(g);
		return DTX_ENOMEM;
	}
	*gp = g;
	return 0;
}

void
dtxi_gcommit_stop(dtxi_gcommit *g)
{
	if (g == NULL) {
		return;
	}
	pthread_mutex_lock(&g->mu);
	g->stop = true;
	pthread_cond_signal(&g->work);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->thread, NULL);
	pthread_cond_destroy(&g->done);
	pthread_cond_destroy(&g->work);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

bool
dtxi_gcommit_durable(dtxi_gcommit *g, uint64_t ticket)
{
	return ticket <= atomic_load(&g->durable);
}

bool
dtxi_gcommit_after(dtxi_gcommit *g, dtxi_gwait *w)
{
	if (dtxi_gcommit_durable(g, w->ticket)) {
		return false;
	}
	pthread_mutex_lock(&g->mu);
	push(g, w);
	g->queued++;
	pthread_cond_signal(&g->work);
	pthread_mutex_unlock(&g->mu);
	return true;
}

// A blocking wait: its done callback only says so, under the lock, and the
// round's broadcast wakes the waiter.
typedef struct blocked {
	dtxi_gwait    w;
	dtxi_gcommit *g;
	bool          done;
	int           err;
} blocked;

static void
blocked_done(void *arg, int err)
{
	blocked *b = arg;

	pthread_mutex_lock(&b->g->mu);
	b->err  = err;
	b->done = true;
	pthread_mutex_unlock(&b->g->mu);
}

int
dtxi_gcommit_wait(dtxi_gcommit *g, uint64_t ticket)
{
	blocked b = {.w = {.ticket = ticket, .done = blocked_done}, .g = g};
	int     err;

	b.w.arg = &b;
	if (!dtxi_gcommit_after(g, &b.w)) {
		return 0;
	}
	pthread_mutex_lock(&g->mu);
	while (!b.done) {
		pthread_cond_wait(&g->done, &g->mu);
	}
	err = b.err;
	pthread_mutex_unlock(&g->mu);
	return err;
}

void
dtxi_gcommit_flush(dtxi_gcommit *g)
{
	uint64_t target;

	pthread_mutex_lock(&g->mu);
	target = g->queued;
	while (g->completed < target) {
		pthread_cond_wait(&g->done, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
}

uint64_t
dtxi_gcommit_syncs(dtxi_gcommit *g)
{
	return atomic_load(&g->syncs);
}

int
dtxi_gcommit_error(dtxi_gcommit *g)
{
	return atomic_load(&g->err);
}
