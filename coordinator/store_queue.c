// SPDX-License-Identifier: MIT
//
// store_queue: the write queue, the group-committing writer thread, the
// close that drains, the counters and the purge thread that both store
// backends share (see store_queue.h); the backend's write, repair and
// purge are its callbacks. Lock order: q->mtx is a leaf (store_queue.h).

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "log.h"
#include "store_queue.h"

struct dtxd_store_queue {
	const dtxd_store_queue_ops *ops;
	void                       *arg;
	dtxd_store_opts o; // sync_delay_ms, purge_every_ms, on_batch

	pthread_mutex_t  mtx;
	pthread_cond_t   cv;  // the writer's queue
	pthread_cond_t   pcv; // the purge thread's sleep
	dtxd_wop        *head;
	dtxd_wop        *tail;
	bool             closing;
	bool             purge_stop;
	dtxd_store_stats stats;
	pthread_t        writer;
	pthread_t        purger;
	bool             writer_started;
	bool             purger_started;
};

static bool
is_broken(dtxd_store_queue *q)
{
	return q->ops->broken != NULL && q->ops->broken(q->arg);
}

// Counts a batch's outcome and tells each of its operations, in queue
// order. The caller may reuse or free op as soon as done runs, so the
// link is read first.
static void
batch_done(dtxd_store_queue *q, dtxd_wop *list, uint32_t n, bool sync, int rv,
    const int *res)
{
	dtxd_wop *op, *next;
	uint64_t  fenced = 0;
	uint32_t  i      = 0;

	pthread_mutex_lock(&q->mtx);
	if (rv == 0) {
		for (i = 0; i < n; i++) {
			fenced += res[i] != 0;
		}
		q->stats.ops += n - fenced;
		q->stats.fenced += fenced;
		q->stats.batches++;
		if (sync) {
			q->stats.syncs++;
		}
	} else {
		q->stats.errors++;
	}
	pthread_mutex_unlock(&q->mtx);
	for (op = list, i = 0; op != NULL; op = next, i++) {
		next     = op->next;
		op->next = NULL;
		op->done(op->arg, rv == 0 ? res[i] : rv);
	}
}

// The writer thread. Each round takes the whole queue at once, so the
// operations that arrived while the previous batch was being written (and
// fsynced) all ride on the next single write: that is the group commit.
// Callbacks run after the write and outside the lock, in queue order, so
// a caller that queues A before B sees A's done before B's. On close the
// loop keeps going until the queue is empty, so no accepted operation is
// dropped. A broken backend is mended before a batch, and now and then
// while the queue is idle (RocksDB reopens itself once the disk has room).
static void *
writer_main(void *arg)
{
	dtxd_store_queue *q   = arg;
	int              *res = NULL;
	uint32_t          cap = 0;

	for (;;) {
		dtxd_wop *list, *op;
		bool      sync = false;
		uint32_t  n    = 0;
		bool      closing;
		bool      broken = is_broken(q); // not under the lock
		int       rv;

		pthread_mutex_lock(&q->mtx);
		while (q->head == NULL && !q->closing) {
			if (!broken) {
				pthread_cond_wait(&q->cv, &q->mtx);
				continue;
			}
			// Broken and idle: try the repair now and then.
			struct timespec ts =
			    dtxi_realtime_in(q->ops->mend_every_ms);
			if (pthread_cond_timedwait(&q->cv, &q->mtx, &ts) ==
			    ETIMEDOUT) {
				break;
			}
		}
		list    = q->head;
		q->head = NULL;
		q->tail = NULL;
		closing = q->closing;
		pthread_mutex_unlock(&q->mtx);
		if (list == NULL && closing) {
			break; // closing and drained
		}
		if (!closing && is_broken(q)) {
			q->ops->mend(q->arg);
		}
		if (list == NULL) {
			continue; // a repair attempt while idle
		}

		for (op = list; op != NULL; op = op->next) {
			sync = sync || op->sync;
			n++;
		}
		if (n > cap) {
			int *nr = realloc(res, n * sizeof(*res));
			if (nr == NULL) {
				batch_done(q, list, n, sync, DTX_ENOMEM, res);
				continue;
			}
			res = nr;
			cap = n;
		}
		memset(res, 0, n * sizeof(*res));
		if (sync && q->o.sync_delay_ms > 0) {
			dtxi_sleep_ms(q->o.sync_delay_ms);
		}
		int64_t t0 = dtxi_mono_us();
		rv         = q->ops->write(q->arg, list, n, sync, res);
		if (q->o.on_batch != NULL) {
			q->o.on_batch(q->o.on_batch_arg, n, sync,
			    dtxi_mono_us() - t0, rv);
		}
		batch_done(q, list, n, sync, rv, res);
	}
	free(res);
	return NULL;
}

// The purge thread: a round of the backend's purge at once and then every
// purge_every_ms, until the free stops it.
static void *
purger_main(void *arg)
{
	dtxd_store_queue *q = arg;

	pthread_mutex_lock(&q->mtx);
	while (!q->purge_stop) {
		struct timespec ts;

		pthread_mutex_unlock(&q->mtx);
		q->ops->purge(q->arg);
		ts = dtxi_realtime_in(q->o.purge_every_ms);
		pthread_mutex_lock(&q->mtx);
		while (!q->purge_stop &&
		    pthread_cond_timedwait(&q->pcv, &q->mtx, &ts) == 0) {
		}
	}
	pthread_mutex_unlock(&q->mtx);
	return NULL;
}

int
dtxd_store_queue_alloc(dtxd_store_queue **qp, const dtxd_store_queue_ops *ops,
    void *arg, const dtxd_store_opts *o)
{
	dtxd_store_queue *q;

	if ((q = calloc(1, sizeof(*q))) == NULL) {
		return DTX_ENOMEM;
	}
	q->ops = ops;
	q->arg = arg;
	q->o   = *o;
	if (pthread_mutex_init(&q->mtx, NULL) != 0) {
		free(q);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&q->cv, NULL) != 0) {
		pthread_mutex_destroy(&q->mtx);
		free(q);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&q->pcv, NULL) != 0) {
		pthread_cond_destroy(&q->cv);
		pthread_mutex_destroy(&q->mtx);
		free(q);
		return DTX_ENOMEM;
	}
	*qp = q;
	return 0;
}

int
dtxd_store_queue_start(dtxd_store_queue *q)
{
	if (pthread_create(&q->writer, NULL, writer_main, q) != 0) {
		return DTX_ENOMEM;
	}
	q->writer_started = true;
	if (q->ops->purge == NULL || q->o.purge_every_ms == 0) {
		return 0;
	}
	if (pthread_create(&q->purger, NULL, purger_main, q) == 0) {
		q->purger_started = true;
	} else {
		DTXI_WARN("store: no purge thread; expired transactions stay");
	}
	return 0;
}

int
dtxd_store_queue_push(dtxd_store_queue *q, dtxd_wop *op)
{
	op->next = NULL;
	pthread_mutex_lock(&q->mtx);
	if (q->closing) {
		pthread_mutex_unlock(&q->mtx);
		return DTX_ECLOSED;
	}
	if (q->tail == NULL) {
		q->head = op;
	} else {
		q->tail->next = op;
	}
	q->tail = op;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mtx);
	return 0;
}

bool
dtxd_store_queue_closing(dtxd_store_queue *q)
{
	bool closing;

	pthread_mutex_lock(&q->mtx);
	closing = q->closing;
	pthread_mutex_unlock(&q->mtx);
	return closing;
}

void
dtxd_store_queue_add_purged(dtxd_store_queue *q, uint64_t n)
{
	pthread_mutex_lock(&q->mtx);
	q->stats.purged += n;
	pthread_mutex_unlock(&q->mtx);
}

void
dtxd_store_queue_get_stats(dtxd_store_queue *q, dtxd_store_stats *st)
{
	pthread_mutex_lock(&q->mtx);
	*st = q->stats;
	pthread_mutex_unlock(&q->mtx);
}

// Raises *flag under the lock, wakes the thread that waits for it on cv
// and, if it was started, waits for it to end.
static void
thread_stop(dtxd_store_queue *q, bool *flag, pthread_cond_t *cv, bool started,
    pthread_t t)
{
	pthread_mutex_lock(&q->mtx);
	*flag = true;
	pthread_cond_signal(cv);
	pthread_mutex_unlock(&q->mtx);
	if (started) {
		pthread_join(t, NULL);
	}
}

void
dtxd_store_queue_free(dtxd_store_queue *q)
{
	if (q == NULL) {
		return;
	}
	// The purge thread first: it may be inside the backend. From then on
	// new writes are refused, but the writer still drains everything
	// already accepted (each accepted op's done must run exactly once)
	// before it sees the empty queue and exits.
	thread_stop(q, &q->purge_stop, &q->pcv, q->purger_started, q->purger);
	thread_stop(q, &q->closing, &q->cv, q->writer_started, q->writer);
	pthread_cond_destroy(&q->pcv);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mtx);
	free(q);
}
