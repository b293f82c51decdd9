// SPDX-License-Identifier: MIT
//
// commit_wait: the end of an asynchronous commit, kept for a test to wait
// on. Pass dtxt_commit_done and the record to dtx_tx_commit_async; the
// callback frees the transaction.

#ifndef DTXT_COMMIT_WAIT_H
#define DTXT_COMMIT_WAIT_H

#include <dtx/dtx.h>
#include <pthread.h>
#include <stdbool.h>

typedef struct dtxt_commit_wait {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	bool            done;
	int             rv;                       // as dtx_tx_commit returns
	dtx_state       st;                       // valid when rv == 0
	char            msg[DTX_MESSAGE_MAX + 1]; // dtx_tx_message()
} dtxt_commit_wait;

void dtxt_commit_wait_init(dtxt_commit_wait *w);
void dtxt_commit_wait_fini(dtxt_commit_wait *w);

// The dtx_commit_fn to give dtx_tx_commit_async with arg a
// dtxt_commit_wait.
void dtxt_commit_done(dtx_tx *tx, int rv, dtx_state st, void *arg);

// Waits up to timeout_ms for the commit to end; false if it did not.
bool dtxt_commit_wait_for(dtxt_commit_wait *w, unsigned timeout_ms);

#endif
