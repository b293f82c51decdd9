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
#include <string.h>

#include "actions.h"
#include "clock.h"
#include "log.h"
#include "loopstate.h"
#include "record.h"
#include "strs.h"
#include "watch.h"

#define RESUME_PER_PASS     256
#define RESUME_INFLIGHT_MAX 4096

typedef struct rctx {
	dtxd_txmgr  *m;
	dtxd_record *rec;
	uint64_t     count;
	uint64_t     skipped;
	bool         takeover;
} rctx;

// Builds the transaction of rec in memory and queues it for resumption.
// At start-up the table is empty; a takeover may find the gid there (see
// dtxd_recovery_on_adopt).
static int
adopt(dtxd_txmgr *m, const dtxd_record *rec, const dtxd_store_unfinished *u,
    bool takeover)
{
	const uint8_t *const *specs     = u->specs;
	const size_t         *spec_lens = u->spec_lens;
	txn                  *old;
	const dtxi_txinfo    *info = &rec->info;
	txn                  *tx;
	int                   rv;

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
	tx->owner   = u->owner;
	tx->epoch   = u->epoch;
	tx->adopted = true;
	atomic_fetch_add(&m->adopting, 1);
	if ((old = dtxd_txtable_find(&m->tab, tx->gid)) != NULL) {
		if (old->loading) {
			dtxd_txtable_remove(&m->tab, old);
		} else {
			dtxd_watch_drop(
			    m, old, "was taken back at a new epoch");
		}
	}
	// Into the table now (before the loop runs, this thread owns it),
	// and onto the list of those to resume.
	dtxd_txtable_insert(&m->tab, tx);
	dtxd_watch_claim(m, tx);
	tx->to_resume = true;
	if (m->adopted_tail != NULL) {
		m->adopted_tail->rnext = tx;
	} else {
		m->adopted = tx;
	}
	m->adopted_tail = tx;
	// Stats' "recovered" counts every transaction resumed from the
	// store; on a shared database a restarted node takes its own back
	// as a takeover too.
	atomic_fetch_add(&m->stats.recovered, 1);
	if (takeover) {
		atomic_fetch_add(&m->stats.taken_over, 1);
	}
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
	rv = adopt(rc->m, rc->rec, u, rc->takeover);
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
	rctx    rc = {m, NULL, 0, 0, false};
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

// ---------------------------------------------------------------------
// Takeover
// ---------------------------------------------------------------------

// One taken-over transaction, copied out of the store's result: its
// record and specs live in the same allocation, after the struct.
typedef struct adopt_item {
	dtxd_store_unfinished u;
	char                  gid[DTX_GID_MAX + 1];
} adopt_item;

struct dtxd_adopt_batch {
	dtxd_ev      ev;
	dtxd_txmgr  *m;
	uint32_t     n, cap;
	adopt_item **items;
};

dtxd_adopt_batch *
dtxd_adopt_batch_alloc(void)
{
	dtxd_adopt_batch *b = calloc(1, sizeof(*b));

	if (b != NULL) {
		b->ev.kind = MEV_ADOPT;
	}
	return b;
}

int
dtxd_adopt_batch_add(dtxd_adopt_batch *b, const dtxd_store_unfinished *u)
{
	size_t      total = sizeof(adopt_item) + u->record_len;
	adopt_item *it;
	uint8_t    *p;

	for (uint32_t i = 0; i < u->nspecs; i++) {
		total += u->spec_lens[i];
	}
	if (b->n == b->cap) {
		uint32_t     cap = b->cap == 0 ? 64 : b->cap * 2;
		adopt_item **ni  = realloc(b->items, cap * sizeof(*ni));
		if (ni == NULL) {
			return DTX_ENOMEM;
		}
		b->items = ni;
		b->cap   = cap;
	}
	if ((it = malloc(total)) == NULL) {
		return DTX_ENOMEM;
	}
	it->u = *u;
	dtxi_strlcpy(it->gid, u->gid, sizeof(it->gid));
	it->u.gid = it->gid;
	p         = (uint8_t *)(it + 1);
	memcpy(p, u->record, u->record_len);
	it->u.record = p;
	p += u->record_len;
	for (uint32_t i = 0; i < u->nspecs; i++) {
		memcpy(p, u->specs[i], u->spec_lens[i]);
		it->u.specs[i] = p;
		p += u->spec_lens[i];
	}
	b->items[b->n++] = it;
	return 0;
}

void
dtxd_adopt_batch_free(dtxd_adopt_batch *b)
{
	if (b == NULL) {
		return;
	}
	for (uint32_t i = 0; i < b->n; i++) {
		free(b->items[i]);
	}
	free(b->items);
	free(b);
}

void
dtxd_recovery_post(dtxd_txmgr *m, dtxd_adopt_batch *b)
{
	b->m = m;
	txmgr_post(m, &b->ev);
}

uint32_t
dtxd_recovery_room(dtxd_txmgr *m)
{
	uint32_t busy = atomic_load(&m->adopting);

	return busy >= RESUME_INFLIGHT_MAX ? 0 : RESUME_INFLIGHT_MAX - busy;
}

void
dtxd_recovery_on_adopt(dtxd_txmgr *m, dtxd_adopt_batch *b)
{
	rctx rc = {m, m->rb.rec, 0, 0, true};

	for (uint32_t i = 0; i < b->n; i++) {
		if (recover_one(&rc, &b->items[i]->u) != 0) {
			DTXI_ERROR("recovery: no memory to take %s over; it "
			           "stays in the store for another node",
			    b->items[i]->gid);
		}
	}
	if (rc.count > 0) {
		DTXI_INFO("recovery: took over %llu transactions",
		    (unsigned long long)rc.count);
	}
	dtxd_adopt_batch_free(b);
}
