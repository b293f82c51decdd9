// SPDX-License-Identifier: MIT
//
// evqueue: a mutex, a condition variable and a singly linked list (see
// evqueue.h).

#include "evqueue.h"

#include <time.h>

void
dtxd_evq_init(dtxd_evq *q)
{
	pthread_mutex_init(&q->mtx, NULL);
	pthread_cond_init(&q->cv, NULL);
	q->head     = NULL;
	q->tail     = NULL;
	q->stopping = false;
	q->stopped  = false;
}

void
dtxd_evq_fini(dtxd_evq *q)
{
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mtx);
}

static void
append(dtxd_evq *q, dtxd_ev *ev)
{
	ev->next = NULL;
	if (q->tail != NULL) {
		q->tail->next = ev;
	} else {
		q->head = ev;
	}
	q->tail = ev;
}

bool
dtxd_evq_post(dtxd_evq *q, dtxd_ev *ev)
{
	pthread_mutex_lock(&q->mtx);
	if (q->stopped) {
		pthread_mutex_unlock(&q->mtx);
		return false;
	}
	append(q, ev);
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mtx);
	return true;
}

void
dtxd_evq_post_late(dtxd_evq *q, dtxd_ev *ev)
{
	pthread_mutex_lock(&q->mtx);
	append(q, ev);
	pthread_mutex_unlock(&q->mtx);
}

dtxd_ev *
dtxd_evq_take(dtxd_evq *q, int64_t wait_ms)
{
	dtxd_ev *batch;

	pthread_mutex_lock(&q->mtx);
	if (q->head == NULL && !q->stopping && wait_ms > 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (wait_ms % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&q->cv, &q->mtx, &ts);
	}
	batch   = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mtx);
	return batch;
}

bool
dtxd_evq_stopping(dtxd_evq *q)
{
	bool s;

	pthread_mutex_lock(&q->mtx);
	s = q->stopping;
	pthread_mutex_unlock(&q->mtx);
	return s;
}

void
dtxd_evq_stop(dtxd_evq *q)
{
	pthread_mutex_lock(&q->mtx);
	q->stopping = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mtx);
}

dtxd_ev *
dtxd_evq_close(dtxd_evq *q)
{
	dtxd_ev *all;

	pthread_mutex_lock(&q->mtx);
	q->stopped = true;
	all        = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->mtx);
	return all;
}
