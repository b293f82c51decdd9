// SPDX-License-Identifier: MIT
//
// store_queue: what every store backend does around its writes, written
// once: the queue of accepted write operations, the writer thread that
// group-commits it through the backend's "write this batch" function and
// then tells every operation its outcome, the close that drains the queue
// first, the counters, and the purge thread that calls the backend's purge
// every few seconds. A backend supplies only what differs, in
// dtxd_store_queue_ops. Only the backends include this file.
//
// Lock order: the queue's mutex is a leaf. It guards the queue, the closing
// flags and the counters; no callback runs under it.

#ifndef DTXD_STORE_QUEUE_H
#define DTXD_STORE_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

typedef struct dtxd_store_queue dtxd_store_queue;

typedef struct dtxd_store_queue_ops {
	// Required. Writes one batch: the n operations of list (linked by
	// next, in queue order), synced (durable before it returns) when sync,
	// which is true when any of them asked. Runs on the writer thread with
	// no lock held, one batch at a time. Returns 0 when the batch was
	// written, else the error every operation of the batch gets. On 0,
	// res[i] (all 0 on entry) may refuse operation i alone: a non-zero
	// value is its result, and it counts as fenced rather than written.
	int (*write)(
	    void *arg, dtxd_wop *list, uint32_t n, bool sync, int *res);
	// Optional, with broken: the writer's repair of a backend whose write
	// failed. While broken(arg) is true and the queue is not closing, the
	// writer calls mend(arg) before each batch and, while the queue is
	// empty, every mend_every_ms. Both run on the writer thread only.
	bool (*broken)(void *arg);
	void (*mend)(void *arg);
	uint32_t mend_every_ms;
	// Optional: the purge thread's round (the purge of what expired by the
	// wall clock, and whatever else the backend does now and then), run at
	// once and then every purge_every_ms of the store's options, and never
	// again once dtxd_store_queue_free has begun.
	void (*purge)(void *arg);
} dtxd_store_queue_ops;

// Makes a queue that will hand batches to ops with arg (ops and arg must
// outlive it). From o it takes sync_delay_ms, purge_every_ms and on_batch
// (see store.h): on_batch runs after each batch with its outcome and how
// long the write took. No thread runs until dtxd_store_queue_start, but
// writes are accepted. Errors: DTX_ENOMEM.
int dtxd_store_queue_alloc(dtxd_store_queue **qp,
    const dtxd_store_queue_ops *ops, void *arg, const dtxd_store_opts *o);

// Starts the writer thread and, when ops has a purge and purge_every_ms is
// not 0, the purge thread (a purge thread that cannot start is logged, and
// expired transactions stay). Call it once. Errors: DTX_ENOMEM (no
// writer: free the queue).
int dtxd_store_queue_start(dtxd_store_queue *q);

// Queues op (see dtxd_store_write): its done runs exactly once, on the
// writer thread, after its batch, and the dones of one caller run in the
// order it queued them. Errors: DTX_ECLOSED once the free has begun (done
// never runs). Thread-safe.
int dtxd_store_queue_push(dtxd_store_queue *q, dtxd_wop *op);

// True once dtxd_store_queue_free has begun: a write that retries until it
// lands gives up then. Thread-safe.
bool dtxd_store_queue_closing(dtxd_store_queue *q);

// Counts n purged records in the stats. Thread-safe.
void dtxd_store_queue_add_purged(dtxd_store_queue *q, uint64_t n);

// The counters (see dtxd_store_stats). Thread-safe.
void dtxd_store_queue_get_stats(dtxd_store_queue *q, dtxd_store_stats *st);

// Stops the purge thread (after its current round: it may be inside the
// backend), then refuses new writes, lets the writer drain everything
// already accepted (each accepted op's done runs exactly once), joins it
// and frees the queue. Accepts NULL. Not from a callback of q.
void dtxd_store_queue_free(dtxd_store_queue *q);

#endif // DTXD_STORE_QUEUE_H
