// SPDX-License-Identifier: MIT
//
// evqueue: a queue of events from any thread to one thread that takes them
// in batches. The loop's is the one lock of dtxd's transaction handling:
// requests (from the server's nng threads), ends of branch calls (the
// dispatcher's nng threads), ends of store writes (the store's writer
// thread) and ends of store reads (the reader's threads) are posted to it.
// Each lane of the reader takes its reads from one too.
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
	pthread_cond_t  cv;
	dtxd_ev        *head;
	dtxd_ev        *tail;
	bool            stopping; // the loop is asked to end
	bool            stopped;  // the loop ended: posts are refused
} dtxd_evq;

void dtxd_evq_init(dtxd_evq *q);
void dtxd_evq_fini(dtxd_evq *q);

// Appends ev and wakes the loop. Returns false (and posts nothing) once
// the loop has stopped; then the poster still owns ev (see post_late).
bool dtxd_evq_post(dtxd_evq *q, dtxd_ev *ev);

// Appends ev without waking anyone: for completions that arrive after the
// loop stopped, which still hold buffers for dtxd_evq_close's caller to
// release.
void dtxd_evq_post_late(dtxd_evq *q, dtxd_ev *ev);

// Takes every queued event, in order. When there is none, waits first up
// to wait_ms (0: not at all) for one to be posted or the stop. Returns
// NULL when nothing came.
dtxd_ev *dtxd_evq_take(dtxd_evq *q, int64_t wait_ms);

// True once dtxd_evq_stop was called.
bool dtxd_evq_stopping(dtxd_evq *q);

// Asks the loop to end and wakes it.
void dtxd_evq_stop(dtxd_evq *q);

// After the loop ended: refuses posts from now on and returns what is
// queued (the caller owns it; later posts go to post_late).
dtxd_ev *dtxd_evq_close(dtxd_evq *q);

#endif // DTXD_EVQUEUE_H
