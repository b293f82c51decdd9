// SPDX-License-Identifier: MIT
//
// commit_wait: see commit_wait.h.

#include "commit_wait.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"

void
dtxt_commit_wait_init(dtxt_commit_wait *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mtx, NULL);
	pthread_cond_init(&w->cv, NULL);
}

void
dtxt_commit_wait_fini(dtxt_commit_wait *w)
{
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mtx);
}

void
dtxt_commit_done(dtx_tx *tx, int rv, dtx_state st, void *arg)
{
	dtxt_commit_wait *w = arg;

	pthread_mutex_lock(&w->mtx);
	w->rv = rv;
	w->st = st;
	snprintf(w->msg, sizeof(w->msg), "%s", dtx_tx_message(tx));
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mtx);
	dtx_tx_free(tx);
}

bool
dtxt_commit_wait_for(dtxt_commit_wait *w, unsigned timeout_ms)
{
	struct timespec ts = dtxi_realtime_in((uint32_t)timeout_ms);
	bool            done;

	pthread_mutex_lock(&w->mtx);
	while (!w->done && pthread_cond_timedwait(&w->cv, &w->mtx, &ts) == 0) {
	}
	done = w->done;
	pthread_mutex_unlock(&w->mtx);
	return done;
}
