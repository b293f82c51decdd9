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
#include <stdlib.h>
#include <string.h>

#include "record_codec.h"
#include "strs.h"

typedef struct lane {
	dtxd_store     *st;
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	dtxd_read      *head;
	dtxd_read      *tail;
	bool            closing;
	bool            started;
	pthread_t       thread;
	dtxd_record     rec; // the lane's thread only: scratch for List
} lane;

enum { LANE_POINT, LANE_SCAN, NLANES };

struct dtxd_reader {
	lane lanes[NLANES];
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

static void
run(lane *r, dtxd_read *rd)
{
	rd->buf = NULL;
	rd->len = 0;
	if (rd->kind == DTXD_READ_RECORD) {
		rd->rv =
		    dtxd_store_get_record(r->st, rd->gid, &rd->buf, &rd->len);
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

static void *
lane_main(void *arg)
{
	lane *r = arg;

	pthread_mutex_lock(&r->mtx);
	for (;;) {
		while (r->head == NULL && !r->closing) {
			pthread_cond_wait(&r->cv, &r->mtx);
		}
		dtxd_read *rd = r->head;
		if (rd == NULL) {
			break; // closing, nothing left
		}
		r->head = rd->next;
		if (r->head == NULL) {
			r->tail = NULL;
		}
		bool closing = r->closing;
		pthread_mutex_unlock(&r->mtx);
		if (closing) {
			rd->rv  = DTX_ECLOSED;
			rd->buf = NULL;
		} else {
			run(r, rd);
		}
		rd->done(rd);
		pthread_mutex_lock(&r->mtx);
	}
	pthread_mutex_unlock(&r->mtx);
	return NULL;
}

static void
lane_close(lane *r)
{
	if (!r->started) {
		return;
	}
	pthread_mutex_lock(&r->mtx);
	r->closing = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mtx);
	r->started = false;
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
	for (int i = 0; i < NLANES; i++) {
		lane *l = &r->lanes[i];
		l->st   = st;
		pthread_mutex_init(&l->mtx, NULL);
		pthread_cond_init(&l->cv, NULL);
		if (pthread_create(&l->thread, NULL, lane_main, l) != 0) {
			pthread_cond_destroy(&l->cv);
			pthread_mutex_destroy(&l->mtx);
			dtxd_reader_close(r);
			return DTX_ENOMEM;
		}
		l->started = true;
	}
	*rp = r;
	return 0;
}

int
dtxd_reader_read(dtxd_reader *rr, dtxd_read *rd)
{
	lane *r =
	    &rr->lanes[rd->kind == DTXD_READ_LIST ? LANE_SCAN : LANE_POINT];

	pthread_mutex_lock(&r->mtx);
	if (r->closing) {
		pthread_mutex_unlock(&r->mtx);
		return DTX_ECLOSED;
	}
	rd->next = NULL;
	if (r->tail != NULL) {
		r->tail->next = rd;
	} else {
		r->head = rd;
	}
	r->tail = rd;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	return 0;
}
