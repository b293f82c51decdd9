// SPDX-License-Identifier: MIT
//
// evqueue: a mutex, two condition variables and a singly linked list (see
// evqueue.h).

#include "evqueue.h"

#include <time.h>

#include "clock.h"

void
dtxd_evq_init(dtxd_evq *q)
{
	pthread_mutex_init(&q->mtx, NULL);
	pthread_cond_init(&q->cv, NULL);
	pthread_cond_init(&q->idle_cv, NULL);
	q->head     = NULL;
	q->tail     = NULL;
	q->stopping = false;
	q->stopped  = false;
	q->busy     = false;
	q->waiting  = false;
	q->wake_ms  = 0;
}

void
dtxd_evq_fini(dtxd_evq *q)
{
	pthread_cond_destroy(&q->idle_cv);
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
	// A consumer at work sees the event before it releases the queue:
	// waking the thread then would only send it back to sleep.
	if (q->waiting && !q->busy) {
		pthread_cond_signal(&q->cv);
	}
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

enum dtxd_evq_push
dtxd_evq_push(dtxd_evq *q, dtxd_ev *ev, bool run)
{
	enum dtxd_evq_push r = DTXD_EVQ_QUEUED;

	pthread_mutex_lock(&q->mtx);
	if (q->stopped) {
		pthread_mutex_unlock(&q->mtx);
		return DTXD_EVQ_CLOSED;
	}
	if (ev != NULL) {
		append(q, ev);
	}
	if (run && !q->busy && !q->stopping && q->head != NULL) {
		q->busy = true;
		r       = DTXD_EVQ_RUN;
	}
	pthread_mutex_unlock(&q->mtx);
	return r;
}

// Waits on cv until the wall-clock deadline (ms; 0: a second from now at
// most, as every wait here is bounded so that a missed signal costs a
// second, not a hang). Called with the mutex held.
static void
wait_until(dtxd_evq *q, int64_t deadline_ms)
{
	int64_t         now = dtxi_now_ms();
	struct timespec ts;

	if (deadline_ms == 0 || deadline_ms > now + 1000) {
		deadline_ms = now + 1000;
	}
	ts.tv_sec  = deadline_ms / 1000;
	ts.tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
	q->waiting = true;
	pthread_cond_timedwait(&q->cv, &q->mtx, &ts);
	q->waiting = false;
}

bool
dtxd_evq_acquire(dtxd_evq *q)
{
	pthread_mutex_lock(&q->mtx);
	while (!q->stopping) {
		bool due = q->wake_ms != 0 && q->wake_ms <= dtxi_now_ms();
		if (!q->busy && (q->head != NULL || due)) {
			q->busy = true;
			pthread_mutex_unlock(&q->mtx);
			return true;
		}
		// Towards the wake-up time; past it, while someone else
		// consumes, until its release says the time is still due.
		wait_until(q, due ? 0 : q->wake_ms);
	}
	pthread_mutex_unlock(&q->mtx);
	return false;
}

bool
dtxd_evq_release(dtxd_evq *q, bool hand_off, int64_t wake_ms)
{
	int64_t was;

	pthread_mutex_lock(&q->mtx);
	if (q->head != NULL && !hand_off && !q->stopping) {
		pthread_mutex_unlock(&q->mtx);
		return false;
	}
	was        = q->wake_ms;
	q->wake_ms = wake_ms;
	q->busy    = false;
	// The consumer thread is woken only for what it alone will now see:
	// events left queued, a wake-up earlier than the one it sleeps
	// towards, or one already due. A later wake-up (the usual change:
	// the oldest transaction finished) waits for its old time to pass.
	if (q->waiting &&
	    (q->head != NULL ||
	        (wake_ms != 0 &&
	            (was == 0 || wake_ms < was ||
	                wake_ms <= dtxi_now_ms())))) {
		pthread_cond_signal(&q->cv);
	}
	if (q->stopping) {
		pthread_cond_broadcast(&q->idle_cv);
	}
	pthread_mutex_unlock(&q->mtx);
	return true;
}

dtxd_ev *
dtxd_evq_take(dtxd_evq *q, int64_t wait_ms)
{
	dtxd_ev *batch;

	pthread_mutex_lock(&q->mtx);
	if (q->head == NULL && !q->stopping && wait_ms > 0) {
		wait_until(q, dtxi_now_ms() + wait_ms);
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
	pthread_cond_broadcast(&q->cv);
	while (q->busy) {
		pthread_cond_wait(&q->idle_cv, &q->mtx);
	}
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
