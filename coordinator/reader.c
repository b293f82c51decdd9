// SPDX-License-Identifier: MIT
//
// reader: the threads that run the loop's reads of the store (see
// reader.h). Two lanes, each one thread and one queue: point lookups of a
// record (a memtable or a bloom filter answers most of them in
// microseconds) and List scans (a page whose filter matches little may
// read the whole store). With one lane, every Submit queued behind a long
// List, which stalled new transactions just as the loop used to.

#include "reader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "record_codec.h"
#include "strs.h"

struct dtxd_reader;

// A lane: one thread taking reads off its own queue.
typedef struct lane {
	struct dtxd_reader *r;
	dtxd_store         *st;
	dtxd_evq            q;
	bool                started;
	pthread_t           thread;
	dtxd_record         rec; // the lane's thread only: scratch for List
} lane;

enum { LANE_POINT, LANE_SCAN, NLANES };

struct dtxd_reader {
	lane lanes[NLANES];
	// Tests only (dtxd_reader_set_hook): the arg is stored before the
	// hook, and read after it.
	_Atomic(dtxd_read_hook) hook;
	void *_Atomic           hook_arg;
};

// One record of a List scan: a candidate for the page or not (see
// reader.h). -1 stops the scan.
static int
list_one(void *arg, const char *gid, const uint8_t *buf, size_t len)
{
	lane              *r    = ((void **)arg)[0];
	dtxd_read         *rd   = ((void **)arg)[1];
	const dtxi_txinfo *info = &r->rec.info;

	if (dtxd_record_decode(&r->rec, buf, len) != 0) {
		return 0; // logged by recovery; not listable
	}
	if (rd->state != 0 && info->state != rd->state &&
	    dtx_state_is_terminal(info->state)) {
		return 0;
	}
	if (rd->n == rd->limit) {
		rd->more = true;
		return -1;
	}
	dtxi_txsummary *s = &rd->items[rd->n++];
	memset(s, 0, sizeof(*s));
	dtxi_strlcpy(s->gid, gid, sizeof(s->gid));
	s->mode       = info->mode;
	s->state      = info->state;
	s->stuck      = info->stuck;
	s->created_ms = info->created_ms;
	s->updated_ms = info->updated_ms;
	s->nbranches  = info->nbranches;
	return 0;
}

// A second look at the marked items of a List page: each one's record as
// it is now (a point read per item; they are few).
static int
recheck(lane *r, dtxd_read *rd)
{
	for (uint32_t i = 0; i < rd->n; i++) {
		dtxi_txsummary *s = &rd->items[i];
		uint8_t        *buf;
		size_t          len;
		int             rv;

		if (!rd->recheck[i]) {
			continue;
		}
		rv = dtxd_store_get_record(r->st, s->gid, &buf, &len);
		if (rv == DTX_ENOTFOUND) {
			s->state = 0;
			continue;
		}
		if (rv != 0) {
			return rv;
		}
		if (dtxd_record_decode(&r->rec, buf, len) == 0) {
			s->state      = r->rec.info.state;
			s->stuck      = r->rec.info.stuck;
			s->updated_ms = r->rec.info.updated_ms;
		}
		free(buf);
	}
	return 0;
}

static void
run(lane *r, dtxd_read *rd)
{
	rd->buf = NULL;
	rd->len = 0;
	if (rd->kind == DTXD_READ_ASK_ABORT &&
	    (rd->rv = dtxd_store_ask_abort(r->st, rd->gid)) != 0) {
		return;
	}
	if (rd->kind == DTXD_READ_RECORD || rd->kind == DTXD_READ_ASK_ABORT) {
		rd->rv =
		    dtxd_store_get_record(r->st, rd->gid, &rd->buf, &rd->len);
		return;
	}
	if (rd->kind == DTXD_READ_RECHECK) {
		rd->rv = recheck(r, rd);
		return;
	}
	void *arg[2] = {r, rd};
	rd->n        = 0;
	rd->more     = false;
	if (rd->limit == 0 || rd->limit > DTXI_LIST_MAX) {
		rd->limit = DTXI_LIST_MAX;
	}
	rd->rv = dtxd_store_scan_records(r->st, rd->gid, list_one, arg);
}

// Completes every read of the list: with the store's answer, or with
// DTX_ECLOSED once the lane is closing.
static void
complete(lane *l, dtxd_ev *ev, bool closing)
{
	while (ev != NULL) {
		dtxd_read *rd = (dtxd_read *)ev;
		ev            = ev->next;
		if (closing) {
			rd->rv  = DTX_ECLOSED;
			rd->buf = NULL;
		} else {
			run(l, rd);
			dtxd_read_hook hook = atomic_load(&l->r->hook);
			if (hook != NULL) {
				hook(atomic_load(&l->r->hook_arg), rd);
			}
		}
		rd->done(rd);
	}
}

static void *
lane_main(void *arg)
{
	lane *l = arg;

	for (;;) {
		dtxd_ev *batch   = dtxd_evq_take(&l->q, 1000);
		bool     closing = dtxd_evq_stopping(&l->q);

		complete(l, batch, closing);
		if (batch == NULL && closing) {
			return NULL;
		}
	}
}

static void
lane_close(lane *l)
{
	if (!l->started) {
		return;
	}
	dtxd_evq_stop(&l->q);
	pthread_join(l->thread, NULL);
	// Reads queued after the thread's last look.
	complete(l, dtxd_evq_close(&l->q), true);
	dtxd_evq_fini(&l->q);
	l->started = false;
}

void
dtxd_reader_close(dtxd_reader *r)
{
	if (r == NULL) {
		return;
	}
	for (int i = 0; i < NLANES; i++) {
		lane_close(&r->lanes[i]);
	}
	free(r);
}

int
dtxd_reader_open(dtxd_reader **rp, dtxd_store *st)
{
	dtxd_reader *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		return DTX_ENOMEM;
	}
	atomic_init(&r->hook, NULL);
	atomic_init(&r->hook_arg, NULL);
	for (int i = 0; i < NLANES; i++) {
		lane *l = &r->lanes[i];
		l->r    = r;
		l->st   = st;
		dtxd_evq_init(&l->q);
		if (pthread_create(&l->thread, NULL, lane_main, l) != 0) {
			dtxd_evq_fini(&l->q);
			dtxd_reader_close(r);
			return DTX_ENOMEM;
		}
		l->started = true;
	}
	*rp = r;
	return 0;
}

void
dtxd_reader_set_hook(dtxd_reader *r, dtxd_read_hook hook, void *arg)
{
	atomic_store(&r->hook_arg, arg);
	atomic_store(&r->hook, hook);
}

int
dtxd_reader_read(dtxd_reader *r, dtxd_read *rd)
{
	lane *l =
	    &r->lanes[rd->kind == DTXD_READ_LIST ? LANE_SCAN : LANE_POINT];

	return dtxd_evq_post(&l->q, &rd->ev) ? 0 : DTX_ECLOSED;
}
