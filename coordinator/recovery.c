// SPDX-License-Identifier: MIT
//
// recovery: loading unfinished transactions and resuming them (see
// recovery.h). What each one does next is its engine's RECOVER event: a
// 2PC that had not decided is aborted, one that had decided finishes phase
// two, a saga goes on forward or goes on compensating.
//
// Pacing. All recovered transactions are in the gid table from the start,
// so a Status, Resolve or resubmit finds each one at once, and the server
// answers while they are being resumed. Their RECOVER events, which send
// the calls that drive them on, are spread over the loop's passes instead
// of being handled all in the first: at most RESUME_PER_PASS per pass, so
// requests and replies are served between them, and at most
// RESUME_INFLIGHT_MAX resumed but unfinished at a time, so the participants
// are not handed 100,000 calls at once (a herd whose calls would time out
// in their queues and be retried, costing more than they did) and dtxd
// holds calls and their buffers for a bounded number of transactions. They
// resume in gid order, which is creation order (gids lead with their
// creation time): the oldest first. A request that must change a
// transaction not yet resumed (an operator Abort) resumes it first, out of
// turn, so that no event reaches an engine before RECOVER.

#include "recovery.h"

#include <stdlib.h>

#include "actions.h"
#include "clock.h"
#include "log.h"
#include "loopstate.h"
#include "record.h"

#define RESUME_PER_PASS     256
#define RESUME_INFLIGHT_MAX 4096

typedef struct rctx {
	dtxd_txmgr  *m;
	dtxd_record *rec;
	uint64_t     count;
	uint64_t     skipped;
} rctx;

// Builds the transaction of rec in memory and queues it for resumption.
static int
adopt(dtxd_txmgr *m, const dtxd_record *rec, const uint8_t *const *specs,
    const size_t *spec_lens)
{
	const dtxi_txinfo *info = &rec->info;
	txn               *tx;
	int                rv;

	if (info->nbranches == 0 || info->nbranches > DTX_BRANCHES_MAX) {
		return DTX_EPROTO;
	}
	// The allocation's reference is the list of adopted's until the
	// transaction is resumed.
	if ((tx = dtxd_txn_alloc(&m->tab, info->nbranches)) == NULL) {
		return DTX_ENOMEM;
	}
	rv =
	    dtxd_txrec_load(tx, rec, specs, spec_lens, m->cfg.call_timeout_ms);
	if (rv != 0) {
		dtxd_txn_release(tx);
		return rv;
	}
	if (tx->core.stuck && !dtxd_tx_is_terminal(tx->core.state)) {
		tx->stuck_counted = true;
		dtxd_metrics_stuck_add(m->cfg.metrics, 1);
	}
	// Into the table now (the loop is not running yet, so this thread
	// owns it), and onto the list of those to resume.
	dtxd_txtable_insert(&m->tab, tx);
	tx->to_resume = true;
	if (m->adopted_tail != NULL) {
		m->adopted_tail->rnext = tx;
	} else {
		m->adopted = tx;
	}
	m->adopted_tail = tx;
	atomic_fetch_add(&m->stats.recovered, 1);
	return 0;
}

// The store hands each unfinished transaction over with its specs, read
// in the same pass as its record: one iterator step each instead of a
// lookup per branch.
static int
recover_one(void *arg, const dtxd_store_unfinished *u)
{
	rctx *rc = arg;
	int   rv;

	if (dtxd_record_decode(rc->rec, u->record, u->record_len) != 0 ||
	    rc->rec->info.nbranches == 0) {
		DTXI_ERROR("recovery: the record of %s does not decode; left "
		           "in the store",
		    u->gid);
		rc->skipped++;
		return 0;
	}
	if (u->nspecs != rc->rec->info.nbranches) {
		DTXI_ERROR("recovery: %s has %u branches but %u stored "
		           "specs; left in the store",
		    u->gid, rc->rec->info.nbranches, u->nspecs);
		rc->skipped++;
		return 0;
	}
	rv = adopt(rc->m, rc->rec, u->specs, u->spec_lens);
	if (rv == 0) {
		rc->count++;
	} else if (rv == DTX_EPROTO) {
		DTXI_ERROR("recovery: a branch of %s does not decode", u->gid);
		rc->skipped++;
		rv = 0;
	}
	return rv;
}

int
dtxd_recover(dtxd_store *st, dtxd_txmgr *m, uint64_t *count)
{
	rctx    rc = {m, NULL, 0, 0};
	int64_t t0 = dtxi_mono_ms();
	int     rv;

	if ((rc.rec = malloc(sizeof(*rc.rec))) == NULL) {
		return DTX_ENOMEM;
	}
	dtxi_log_event(DTXI_LOG_INFO, "recovery_start", NULL, 0,
	    "loading unfinished transactions");
	rv = dtxd_store_scan_unfinished(st, recover_one, &rc);
	free(rc.rec);
	if (rv != 0) {
		return rv;
	}
	int64_t ms = dtxi_mono_ms() - t0;
	dtxi_log_event(DTXI_LOG_INFO, "recovery_loaded",
	    DTXI_FIELDS(DTXI_F_NUM("loaded", rc.count),
	        DTXI_F_NUM("skipped", rc.skipped), DTXI_F_NUM("ms", ms)),
	    "%llu unfinished transactions loaded in %lld ms (%llu skipped)",
	    (unsigned long long)rc.count, (long long)ms,
	    (unsigned long long)rc.skipped);
	dtxd_metrics_recovery_loaded(m->cfg.metrics, rc.count, rc.skipped, ms);
	*count = rc.count;
	return 0;
}

bool
dtxd_recovery_ready(const dtxd_txmgr *m)
{
	return m->adopted != NULL && m->resuming < RESUME_INFLIGHT_MAX;
}

void
dtxd_recovery_resume(dtxd_txmgr *m, txn *tx)
{
	tx->to_resume  = false;
	tx->recovering = true;
	m->resuming++;
	m->resumed_total++;
	for (uint32_t i = 0; i < tx->core.nbranches; i++) {
		tx->core.br[i].inflight    = false;
		tx->core.br[i].retry_at_ms = 0;
	}
	dtxd_event ev = {.kind = DTXD_EV_RECOVER, .now_ms = dtxi_now_ms()};
	dtxd_act_event(m, tx, &ev, DTXI_CRASH_NONE);
}

void
dtxd_recovery_resume_some(dtxd_txmgr *m)
{
	uint32_t n = 0;

	while (dtxd_recovery_ready(m) && n < RESUME_PER_PASS) {
		txn *tx    = m->adopted;
		m->adopted = tx->rnext;
		if (m->adopted == NULL) {
			m->adopted_tail = NULL;
		}
		tx->rnext = NULL;
		// One resumed out of turn is still on the list; it is
		// simply dropped from it here.
		if (tx->to_resume && tx->in_table) {
			dtxd_recovery_resume(m, tx);
			n++;
		}
		dtxd_txn_release(tx); // the list's reference
	}
	if (m->adopted == NULL && !m->recovery_done) {
		// Every recovered transaction is back with its engine: the
		// end of recovery, as far as readiness is concerned (some
		// may still take long to finish).
		int64_t ms       = dtxi_mono_ms() - m->start_ms;
		m->recovery_done = true;
		dtxi_log_event(DTXI_LOG_INFO, "recovery_end",
		    DTXI_FIELDS(DTXI_F_NUM("resumed", m->resumed_total),
		        DTXI_F_NUM("ms", ms)),
		    "%llu recovered transactions resumed in %lld ms",
		    (unsigned long long)m->resumed_total, (long long)ms);
		dtxd_metrics_recovery_resumed(m->cfg.metrics, ms);
	}
}
