// SPDX-License-Identifier: MIT
//
// evqueue: a queue of events from any thread to one consumer at a time. A
// reader lane's queue has a thread of its own that takes events in batches
// (dtxd_evq_take with a wait). The loop's queue is the one lock of dtxd's
// transaction handling: requests (from the server's nng threads), ends of
// branch calls (the dispatcher's nng threads), ends of store writes (the
// store's writer thread) and ends of store reads (the reader's threads) are
// queued to it, and whoever queues may become its consumer at once, on its
// own thread (dtxd_evq_push), when no one else is: the event is then
// handled where it arrived instead of waking the loop thread for it. The
// loop thread is the consumer of last resort: for timers, for events that
// were only posted (dtxd_evq_post), and for work an inline consumer handed
// over (dtxd_evq_release).
//
// Consuming is exclusive: between becoming the consumer (a push that
// returns DTXD_EVQ_RUN, or dtxd_evq_acquire) and the dtxd_evq_release that
// ends it, the caller alone may touch what the queue's consumer owns (for
// the loop: every transaction). The mutex hands that over between threads.
//
// Lock order: the queue's mutex is a leaf.

#ifndef DTXD_EVQUEUE_H
#define DTXD_EVQUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

// The head of every event; the rest of an event is its poster's.
typedef struct dtxd_ev {
	struct dtxd_ev *next;
	int             kind;
} dtxd_ev;

typedef struct dtxd_evq {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;      // the consumer thread's wait
	pthread_cond_t  idle_cv; // dtxd_evq_stop's wait for the consumer
	dtxd_ev        *head;
	dtxd_ev        *tail;
	bool            stopping; // the consumer is asked to end
	bool            stopped;  // the consumer ended: posts are refused
	bool            busy;     // someone is the consumer
	bool            waiting;  // the consumer thread waits on cv
	// The loop: the wall-clock ms at which its consumer thread wants to
	// run (its earliest timer; 0: none), as the last consumer left it.
	int64_t wake_ms;
} dtxd_evq;

void dtxd_evq_init(dtxd_evq *q);
void dtxd_evq_fini(dtxd_evq *q);

// Appends ev and wakes the consumer thread unless a consumer is at work
// (it sees ev before it stops). Returns false (and posts nothing) once the
// queue is closed; then the poster still owns ev (see post_late).
bool dtxd_evq_post(dtxd_evq *q, dtxd_ev *ev);

// Appends ev without waking anyone: for completions that arrive after the
// loop stopped, which still hold buffers for dtxd_evq_close's caller to
// release.
void dtxd_evq_post_late(dtxd_evq *q, dtxd_ev *ev);

enum dtxd_evq_push {
	DTXD_EVQ_CLOSED, // nothing was queued: the poster still owns ev
	DTXD_EVQ_QUEUED, // queued for the consumer at work (or the close)
	DTXD_EVQ_RUN,    // queued, and the caller is the consumer now
};

// Appends ev (NULL: nothing) and, if run and nobody consumes the queue and
// it is not stopping, makes the caller its consumer (DTXD_EVQ_RUN): it then
// takes events (dtxd_evq_take with no wait) until dtxd_evq_release lets it
// go. Without run, nobody is woken: the caller promises a push with run (or
// is the consumer) soon after.
enum dtxd_evq_push dtxd_evq_push(dtxd_evq *q, dtxd_ev *ev, bool run);

// The consumer thread's wait: until there are events or its wake-up time
// (wake_ms, as the last consumer left it) has come, and nobody else
// consumes; it is then the consumer (true). false: the queue is stopping.
bool dtxd_evq_acquire(dtxd_evq *q);

// The consumer's end of a pass; wake_ms is when the consumer thread is
// wanted next (0: not before an event). Returns true when the caller is no
// longer the consumer: the queue was empty, it is stopping, or hand_off
// asked to give what is queued to the consumer thread (which is woken).
// false: events came meanwhile; the caller takes them and releases again.
bool dtxd_evq_release(dtxd_evq *q, bool hand_off, int64_t wake_ms);

// Takes every queued event, in order. When there is none, waits first up
// to wait_ms (0: not at all) for one to be posted or the stop. Returns
// NULL when nothing came.
dtxd_ev *dtxd_evq_take(dtxd_evq *q, int64_t wait_ms);

// True once dtxd_evq_stop was called.
bool dtxd_evq_stopping(dtxd_evq *q);

// Asks the consumer to end, wakes its thread, and waits until nobody
// consumes the queue any more (an inline consumer ends its pass first).
void dtxd_evq_stop(dtxd_evq *q);

// After the consumer ended: refuses posts from now on and returns what is
// queued (the caller owns it; later posts go to post_late).
dtxd_ev *dtxd_evq_close(dtxd_evq *q);

#endif // DTXD_EVQUEUE_H
