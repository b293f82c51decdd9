// SPDX-License-Identifier: MIT
//
// dtx.fault.recovery: many unfinished transactions, all resumed, none lost.
// dtxd resumes what it recovers a few hundred per loop pass and at most a
// few thousand at a time (coordinator/recovery.c), so this test leaves more
// than that bound unfinished: it submits them while their participants are
// down (every call fails, and retries are an hour away), kills dtxd with
// SIGKILL, starts the participants, restarts dtxd on the same data and
// checks that every one was recovered and driven to the end its durable
// state calls for: a 2PC that never decided is aborted (presumed abort), and
// a saga goes forward and commits. The participants' call logs prove that
// each 2PC branch was aborted and never committed, and each saga step
// applied exactly once.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "strs.h"
#include "world_suite.h"

// Above RESUME_INFLIGHT_MAX (4,096), so that resuming has to wait for
// earlier transactions to finish before it can go on.
#define NTX      5000
#define NTHREADS 8

// Generous: under ASan on a loaded 2-core machine submitting and resuming
// 5,000 transactions takes far longer than on an idle one.
TestSuite(
    recovery, .init = world_setup, .fini = world_teardown, .timeout = 280);

typedef struct submitter {
	dtx_client *c;
	const char *url[2];
	char (*gids)[DTX_GID_MAX + 1];
	_Atomic unsigned next;
	_Atomic unsigned errors;
} submitter;

// Even-numbered transactions are 2PC, odd ones sagas, each with a branch
// on both participants.
static void *
submit_main(void *arg)
{
	submitter *s = arg;
	unsigned   i;

	while ((i = atomic_fetch_add(&s->next, 1)) < NTX) {
		dtx_tx *tx;
		int rv = dtx_tx_begin(&tx, s->c, i % 2 ? DTX_SAGA : DTX_2PC);
		if (rv == 0) {
			// The calls fail (no participant listens) and their
			// retry is ten minutes away (dtxd's backoff flags),
			// well inside the hour-long deadline: a retry that
			// would start past the deadline turns a saga back.
			// The transaction stays unfinished until dtxd is
			// killed.
			if ((rv = dtx_tx_set_timeout_ms(tx, 3600 * 1000)) ==
			        0 &&
			    (rv = dtx_tx_set_retries(tx, 1000)) == 0 &&
			    (rv = dtx_tx_add(tx, s->url[0], "op", "", 0)) ==
			        0 &&
			    (rv = dtx_tx_add(tx, s->url[1], "op", "", 0)) ==
			        0 &&
			    (rv = dtx_tx_submit(tx)) == 0) {
				dtxi_strlcpy(s->gids[i], dtx_tx_gid(tx),
				    DTX_GID_MAX + 1);
			}
			dtx_tx_free(tx);
		}
		if (rv != 0) {
			atomic_fetch_add(&s->errors, 1);
		}
	}
	return NULL;
}

// A transaction's gid and its number, sorted by gid to look up log lines.
typedef struct gidx {
	const char *gid;
	unsigned    i;
} gidx;

static int
gidx_cmp(const void *a, const void *b)
{
	return strcmp(((const gidx *)a)->gid, ((const gidx *)b)->gid);
}

// What the participants' logs say about one transaction, per branch.
typedef struct tally {
	unsigned applied[2];
	unsigned undone[2];
	unsigned aborted[2]; // ABORT calls answered OK
} tally;

Test(recovery, every_one_of_many_unfinished_transactions_is_resumed)
{
	dtxt_dtxd_opts        o = {.extra = {"--backoff-base-ms", "600000",
	                               "--backoff-max-ms", "600000", NULL}};
	dtxt_part            *parts[2];
	dtxt_exit             how;
	dtx_coordinator_stats st;
	pthread_t             th[NTHREADS];
	submitter             s;
	dtxt_log              logs[2];
	int64_t               deadline;
	gidx                 *idx;
	tally                *tl;

	memset(&s, 0, sizeof(s));
	s.gids = calloc(NTX, sizeof(*s.gids));
	cr_assert_not_null(s.gids);
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
	parts[0] = dtxt_world_part(&w, "a");
	parts[1] = dtxt_world_part(&w, "b");
	CHECK(parts[0] != NULL && parts[1] != NULL, "no participant slot");
	s.c      = w.client;
	s.url[0] = parts[0]->url;
	s.url[1] = parts[1]->url;
	CHECK(dtx_client_set_timeout_ms(w.client, 60000) == 0,
	    "cannot set the client's timeout");
	for (int i = 0; i < NTHREADS; i++) {
		CHECK(pthread_create(&th[i], NULL, submit_main, &s) == 0,
		    "cannot start a submitter");
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
	}
	CHECK(atomic_load(&s.errors) == 0, "%u submits failed",
	    atomic_load(&s.errors));
	CHECK(dtx_client_stats(w.client, &st) == 0 && st.active == NTX,
	    "%llu active before the kill, expected %d",
	    (unsigned long long)st.active, NTX);

	CHECK(dtxt_kill(w.dtxd) == 0, "cannot kill dtxd");
	CHECK(dtxt_wait(w.dtxd, 10000, &how) == 0 && how.signaled,
	    "dtxd did not die");
	dtx_client_close(w.client);
	w.client = NULL;
	for (int i = 0; i < 2; i++) {
		CHECK(dtxt_part_start(parts[i]) == 0,
		    "participant %d did not start", i);
	}
	CHECK(dtxt_world_start_dtxd(&w, NULL) == 0, "dtxd did not restart");
	CHECK(dtx_client_set_timeout_ms(w.client, 60000) == 0,
	    "cannot set the client's timeout");

	// Wait on the condition, not a fixed time: a loaded machine may
	// take much longer than the second or two an idle one needs.
	deadline = dtxi_mono_ms() + 240 * 1000;
	for (;;) {
		int rv = dtx_client_stats(w.client, &st);
		CHECK(rv == 0, "stats: %s", dtx_strerror(rv));
		// All resumed, and none left. (On PostgreSQL the restarted
		// node takes its work back in batches, and may run out of
		// work between two of them.)
		if ((st.recovered >= NTX && st.active == 0) ||
		    dtxi_mono_ms() > deadline) {
			break;
		}
		dtxt_sleep_ms(50);
	}
	CHECK(st.recovered == NTX && st.finished == NTX && st.active == 0,
	    "recovered %llu, finished %llu, still active %llu; expected %d "
	    "recovered and finished",
	    (unsigned long long)st.recovered, (unsigned long long)st.finished,
	    (unsigned long long)st.active, NTX);

	// The call logs hold tens of thousands of lines: tally them once,
	// finding each line's transaction by binary search, rather than
	// scanning them once per transaction.
	idx = calloc(NTX, sizeof(*idx));
	tl  = calloc(NTX, sizeof(*tl));
	cr_assert(idx != NULL && tl != NULL);
	for (unsigned i = 0; i < NTX; i++) {
		idx[i].gid = s.gids[i];
		idx[i].i   = i;
	}
	qsort(idx, NTX, sizeof(*idx), gidx_cmp);
	for (int b = 0; b < 2; b++) {
		dtxt_log_load(&logs[b], parts[b]->calllog);
		for (size_t k = 0; k < logs[b].n; k++) {
			const dtxt_line *ln  = &logs[b].lines[k];
			gidx             key = {ln->gid, 0};
			gidx            *hit =
			    bsearch(&key, idx, NTX, sizeof(*idx), gidx_cmp);
			if (hit == NULL || ln->branch != (unsigned)b) {
				continue;
			}
			tally *t = &tl[hit->i];
			if (ln->kind == DTXT_APPLY) {
				t->applied[b]++;
			} else if (ln->kind == DTXT_UNDO) {
				t->undone[b]++;
			} else if (strcmp(ln->phase, "ABORT") == 0 &&
			    strcmp(ln->result, "OK") == 0) {
				t->aborted[b]++;
			}
		}
		dtxt_log_fini(&logs[b]);
	}

	for (unsigned i = 0; i < NTX; i++) {
		dtx_tx   *tx;
		dtx_state state = 0;
		dtx_state want =
		    i % 2 ? DTX_STATE_COMMITTED : DTX_STATE_ABORTED;

		CHECK(dtx_tx_attach(&tx, w.client, s.gids[i]) == 0 &&
		        dtx_tx_status(tx, &state) == 0,
		    "no status for %s", s.gids[i]);
		dtx_tx_free(tx);
		CHECK(state == want, "%s is %s, expected %s", s.gids[i],
		    dtx_state_name(state), dtx_state_name(want));
		for (int b = 0; b < 2; b++) {
			const tally *t = &tl[i];
			if (want == DTX_STATE_ABORTED) {
				CHECK(t->applied[b] == 0 && t->aborted[b] >= 1,
				    "%s branch %d: applied %u, aborted %u",
				    s.gids[i], b, t->applied[b],
				    t->aborted[b]);
			} else {
				CHECK(t->applied[b] == 1 && t->undone[b] == 0,
				    "%s step %d: applied %u, undone %u",
				    s.gids[i], b, t->applied[b], t->undone[b]);
			}
		}
	}
	free(idx);
	free(tl);
	free(s.gids);
}
