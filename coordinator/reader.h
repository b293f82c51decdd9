// SPDX-License-Identifier: MIT
//
// reader: dtxd's reads of the store, on threads of their own, so that the
// loop never waits for the disk. A read is queued with a completion that
// runs on the reader thread when it is done (the loop's modules post it
// back to the loop as an event). Two kinds: the record of one gid (Submit
// of a gid not in memory, Status, Abort, Resolve), and one page of List
// (a scan of up to a page of records, decoded to summaries). A List under
// load used to scan up to 100 records on the loop thread while every
// transaction waited; now only the reader's scan thread waits, and point
// lookups have a thread of their own, so they never queue behind a scan.
//
// The reader knows nothing of the loop's memory: a transaction in memory
// is ahead of its record, and the loop overlays what it holds when the
// read comes back.
//
// Lock order: the reader's mutex is a leaf.

#ifndef DTXD_READER_H
#define DTXD_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "evqueue.h"
#include "store.h"

// ASK_ABORT: records that an abort of the gid was asked, for its owner
// (dtxd_store_ask_abort), then reads its record as RECORD does.
enum {
	DTXD_READ_RECORD = 1,
	DTXD_READ_LIST,
	DTXD_READ_RECHECK,
	DTXD_READ_ASK_ABORT
};

typedef struct dtxd_read {
	dtxd_ev ev;   // the reader's queue link
	int     kind; // DTXD_READ_*
	// RECORD, ASK_ABORT: the gid; LIST: the cursor (the page starts
	// after it).
	char gid[DTX_GID_MAX + 1];
	// LIST: the state filter (0: any) and the page size (1..LIST_MAX).
	int      state;
	uint32_t limit;
	// Results, set before done runs. rv: 0, DTX_ENOTFOUND (RECORD,
	// ASK_ABORT),
	// DTX_ESTORAGE, DTX_ENOMEM, DTX_ECLOSED (the reader was closing).
	int      rv;
	uint8_t *buf; // RECORD, ASK_ABORT: the record's bytes, malloc'd
	size_t   len;
	// LIST: the page's candidates in gid order: records whose stored
	// state matches the filter, and unfinished ones whatever their state
	// (in memory they may have moved on; the loop decides). more: the
	// scan stopped at a candidate past the page.
	// RECHECK: the n items of a LIST page, the caller's; each item with
	// recheck[i] set is read again (on the point lane) and its summary
	// replaced by the record's, or its state set to 0 when the record is
	// gone.
	uint32_t        n;
	bool            more;
	dtxi_txsummary *items; // LIST: room for limit, the caller's
	bool            recheck[DTXI_LIST_MAX];
	void (*done)(struct dtxd_read *rd);
} dtxd_read;

typedef struct dtxd_reader dtxd_reader;

// Starts the reader's threads over st (not owned). Errors: DTX_ENOMEM.
int dtxd_reader_open(dtxd_reader **rp, dtxd_store *st);

// Queues rd. Returns 0 (rd->done will run exactly once, on a reader
// thread, or with DTX_ECLOSED on the thread closing the reader) or
// DTX_ECLOSED (the reader is closed; done will not run).
int dtxd_reader_read(dtxd_reader *r, dtxd_read *rd);

// Completes the reads still queued with DTX_ECLOSED, stops the threads and
// frees the reader. Accepts NULL.
void dtxd_reader_close(dtxd_reader *r);

// For tests: hook runs on the reader thread after each read is done and
// before its completion, so a test can hold a read's result back while the
// loop moves on (the List race of requests.c). Set it before the reads it
// is for; NULL removes it.
typedef void (*dtxd_read_hook)(void *arg, const dtxd_read *rd);
void dtxd_reader_set_hook(dtxd_reader *r, dtxd_read_hook hook, void *arg);

#endif // DTXD_READER_H
