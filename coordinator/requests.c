// SPDX-License-Identifier: MIT
//
// requests: the Coordinator API handlers (see requests.h).
//
// Reads. A transaction in memory is answered from memory. Otherwise its
// record (or a page of List) is read on the reader thread, and the handler
// runs again with the read's result (rd != NULL): it looks at memory first
// once more, since the transaction may have come in meanwhile, and only
// then at the record. A Submit of a gid not in memory may still find it
// finished on disk; its transaction is put in memory at once, marked
// loading, with the client parked on it, while the record is looked for:
// so two Submits of one gid never both miss, and every other request for
// that gid waits (deferred) until the look is over, then runs again.
//
// A point read (Status, Abort, Resolve, a Submit's look) is never older
// than what the loop knew when it was issued: it is issued only for a gid
// not in memory, and a transaction leaves memory only once its final
// record is written, so the read finds that record or a later one; one
// that came into memory meanwhile is answered from memory. A List page is
// different (it holds gids that were in memory while it was scanned): see
// on_list.
//
// Operator requests. Abort, Retry and Settle change a live transaction;
// every unfinished one is in memory (recovery loads them all at start), so
// one that is not is finished or unknown, and is only looked up to say
// which. Each is logged at INFO (WARN for a settlement) with its gid.

#include "requests.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "clock.h"
#include "gid.h"
#include "log.h"
#include "recovery.h"
#include "strs.h"
#include "trace.h"
#include "txlog.h"
#include "watch.h"

static void handle(dtxd_txmgr *m, dtxd_sreq *r, const dtxd_read *rd);

static void
reply_code(dtxd_sreq *r, int code, const char *fmt, const char *arg)
{
	char msg[DTX_MESSAGE_MAX + 1];
	snprintf(msg, sizeof(msg), fmt, arg);
	dtxd_server_reply_error(r, code, msg);
}

// ---------------------------------------------------------------------
// Reads on the reader thread
// ---------------------------------------------------------------------

// On the reader thread: back to the loop, run here if it is free.
static void
read_done(dtxd_read *rd)
{
	mread *mr = (mread *)((char *)rd - offsetof(mread, rd));
	txmgr_push(mr->m, &mr->ev, true);
}

static void
mread_free(mread *mr)
{
	free(mr->rd.buf);
	free(mr->rd.items);
	free(mr);
}

// A read for request r, or for the loading transaction tx (which the read
// then holds a reference to: the caller's), not yet queued; NULL without
// memory.
static mread *
mread_new(dtxd_txmgr *m, dtxd_sreq *r, txn *tx, int kind, const char *gid)
{
	mread *mr = calloc(1, sizeof(*mr));

	if (mr == NULL) {
		return NULL;
	}
	mr->ev.kind = MEV_READ;
	mr->m       = m;
	mr->r       = r;
	mr->tx      = tx;
	mr->rd.kind = kind;
	dtxi_strlcpy(mr->rd.gid, gid, sizeof(mr->rd.gid));
	mr->rd.done = read_done;
	if (kind == DTXD_READ_LIST || kind == DTXD_READ_RECHECK) {
		const dtxi_request *req = dtxd_sreq_request(r);
		mr->rd.state            = req->u.list.state;
		mr->rd.limit            = req->u.list.limit;
		if (mr->rd.limit == 0 || mr->rd.limit > DTXI_LIST_MAX) {
			mr->rd.limit = DTXI_LIST_MAX;
		}
		mr->rd.items = calloc(mr->rd.limit, sizeof(*mr->rd.items));
		if (mr->rd.items == NULL) {
			free(mr);
			return NULL;
		}
	}
	return mr;
}

// Queues mr. Returns 0 or an error (then mr is freed).
static int
mread_queue(dtxd_txmgr *m, mread *mr)
{
	int rv = dtxd_reader_read(m->reader, &mr->rd);

	if (rv != 0) {
		mread_free(mr);
	}
	return rv;
}

// Queues a read (see mread_new). Returns 0 or an error (nothing queued).
static int
read_for(dtxd_txmgr *m, dtxd_sreq *r, txn *tx, int kind, const char *gid)
{
	mread *mr = mread_new(m, r, tx, kind, gid);

	return mr != NULL ? mread_queue(m, mr) : DTX_ENOMEM;
}

// The record a read found: 0 with it decoded in m->rb.rec (its payloads
// point into rd->buf), DTX_ENOTFOUND, or a read or decode error.
static int
read_record(dtxd_txmgr *m, const dtxd_read *rd)
{
	if (rd->rv != 0) {
		return rd->rv;
	}
	if (dtxd_record_decode(m->rb.rec, rd->buf, rd->len) != 0) {
		DTXI_ERROR(
		    "requests: the record of %s does not decode", rd->gid);
		return DTX_ESTORAGE;
	}
	return 0;
}

// Handles r now if it needs no read (rd) or has it; otherwise queues the
// read and returns false.
static bool
have_read(dtxd_txmgr *m, dtxd_sreq *r, const dtxd_read *rd, int kind,
    const char *gid)
{
	int rv;

	if (rd != NULL) {
		return true;
	}
	if ((rv = read_for(m, r, NULL, kind, gid)) != 0) {
		dtxd_server_reply_error(r, rv, "cannot read the store");
	}
	return false;
}

// For a request about one transaction that is not in memory: true once
// its record is read and decoded in m->rb.rec. Otherwise the read is
// queued, or r is answered (no such transaction, or the store failed).
static bool
have_stored(dtxd_txmgr *m, dtxd_sreq *r, const dtxd_read *rd, const char *gid)
{
	int rv;

	if (!have_read(m, r, rd, DTXD_READ_RECORD, gid)) {
		return false;
	}
	if ((rv = read_record(m, rd)) != 0) {
		reply_code(r, rv,
		    rv == DTX_ENOTFOUND ? "no transaction %s"
		                        : "cannot read %s",
		    gid);
		return false;
	}
	return true;
}

static void
reply_record(dtxd_txmgr *m, dtxd_sreq *r)
{
	dtxi_reply *rep = dtxd_act_reply_init(m, DTXI_REP_TX);
	rep->u.tx       = m->rb.rec->info;
	dtxd_server_reply(r, rep);
}

// Holds r until tx's look at the store is over (see the top of the file).
static void
defer(txn *tx, dtxd_sreq *r)
{
	waiter  *w  = calloc(1, sizeof(*w));
	waiter **pp = &tx->deferred;

	if (w == NULL) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		return;
	}
	w->r = r;
	while (*pp != NULL) {
		pp = &(*pp)->next;
	}
	*pp = w;
}

// ---------------------------------------------------------------------
// Submit
// ---------------------------------------------------------------------

// Gids and method names: 1..max printable characters, no space.
static bool
name_valid(const char *name, size_t max)
{
	size_t n = strlen(name);
	if (n == 0 || n > max) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (name[i] < 0x21 || name[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

static int
validate_submit(dtxd_txmgr *m, const dtxi_submit *s, char *why, size_t cap)
{
	if (s->mode != DTX_2PC && s->mode != DTX_SAGA) {
		snprintf(why, cap, "unknown mode %d", s->mode);
		return DTX_EINVAL;
	}
	if (s->nbranches == 0) {
		snprintf(why, cap, "a transaction needs at least one branch");
		return DTX_EINVAL;
	}
	if (s->gid[0] != '\0' && !name_valid(s->gid, DTX_GID_MAX)) {
		snprintf(why, cap, "gid must be 1..%d printable characters",
		    DTX_GID_MAX);
		return DTX_EINVAL;
	}
	if (s->traceparent[0] != '\0' &&
	    !dtxi_traceparent_check(s->traceparent, NULL, why, cap)) {
		return DTX_EINVAL;
	}
	// The limits are dtx.h's, so that the SDK's setters refuse the same.
	const struct {
		const char *name;
		uint32_t    v, max;
	} limits[] = {
	    {"timeout_ms", s->timeout_ms, DTX_TIMEOUT_MS_MAX},
	    {"call_timeout_ms", s->call_timeout_ms, DTX_CALL_TIMEOUT_MS_MAX},
	    {"retries", s->retries, DTX_RETRIES_MAX},
	};
	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		if (limits[i].v > limits[i].max) {
			snprintf(why, cap, "%s %lu out of range (max %lu)",
			    limits[i].name, (unsigned long)limits[i].v,
			    (unsigned long)limits[i].max);
			return DTX_EINVAL;
		}
	}
	for (uint32_t i = 0; i < s->nbranches; i++) {
		const dtxi_branch_spec *b = &s->branches[i];
		dtxd_peer              *peer;
		char                    reason[DTX_MESSAGE_MAX + 1] = "";
		if (b->method[0] == '\0') {
			snprintf(why, cap, "branch %u has no method", i);
			return DTX_EINVAL;
		}
		if (!name_valid(b->method, DTX_METHOD_MAX)) {
			snprintf(why, cap,
			    "branch %u: method '%.128s' has a space or a "
			    "control character",
			    i, b->method);
			return DTX_EINVAL;
		}
		if (b->same_group && (s->mode != DTX_SAGA || i == 0)) {
			snprintf(why, cap, "branch %u: same_group %s", i,
			    s->mode != DTX_SAGA
			        ? "is for sagas (a 2PC runs every branch in "
			          "parallel)"
			        : "on the first step (there is no step before "
			          "it)");
			return DTX_EINVAL;
		}
		if (strstr(b->endpoint, "://") == NULL ||
		    dtxd_dispatcher_peer(m->disp, b->endpoint, &peer, reason,
		        sizeof(reason)) != 0) {
			snprintf(why, cap,
			    "branch %u: invalid endpoint '%.100s'%s%.110s", i,
			    b->endpoint, reason[0] != '\0' ? ": " : "",
			    reason);
			return DTX_EINVAL;
		}
	}
	return 0;
}

// What a Submit waits for.
static int
wait_kind(const dtxi_submit *s)
{
	return !s->wait  ? WAIT_ACCEPT
	    : s->decided ? WAIT_DECIDED
	                 : WAIT_OUTCOME;
}

// A Submit of a transaction already in memory. Idempotency: the same gid
// with the same content is the same transaction.
static void
submit_again(
    dtxd_txmgr *m, dtxd_sreq *r, txn *tx, const dtxi_submit *s, uint64_t hash)
{
	if (tx->content_hash != hash) {
		reply_code(r, DTX_EEXIST,
		    "gid %s already used with different content", tx->gid);
	} else if (s->wait &&
	    !dtx_state_is_terminal(dtxd_act_told_state(tx))) {
		if (dtxd_waiter_add(tx, r, wait_kind(s), 0) != 0) {
			dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		}
		dtxd_act_tell_decided(m, tx);
	} else if (!tx->created) {
		if (dtxd_waiter_add(tx, r, WAIT_ACCEPT, 0) != 0) {
			dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		}
	} else {
		dtxd_act_reply_tx(m, r, tx);
	}
}

// Writes a new transaction's create record; it starts once written. It
// belongs to this node's session from its first epoch.
static void
create(dtxd_txmgr *m, txn *tx)
{
	int rv;

	tx->owner = m->cfg.session;
	tx->epoch = 1;
	rv        = dtxd_act_write(m, tx, W_CREATE, tx->create_sync, false);

	if (rv != 0) {
		dtxd_waiters_fail(tx, rv, "cannot store the transaction");
		dtxd_act_forget(m, tx);
	}
}

static void
on_submit(dtxd_txmgr *m, dtxd_sreq *r, const dtxi_submit *s)
{
	char why[DTX_MESSAGE_MAX + 1];
	char gid[DTX_GID_MAX + 1];
	txn *tx;
	int  rv;

	if ((rv = validate_submit(m, s, why, sizeof(why))) != 0) {
		dtxd_server_reply_error(r, rv, why);
		return;
	}
	if (s->gid[0] != '\0') {
		dtxi_strlcpy(gid, s->gid, sizeof(gid));
	} else {
		dtxi_gid_new(gid);
	}
	uint64_t hash = dtxi_submit_hash(s);

	if ((tx = dtxd_txtable_find(&m->tab, gid)) != NULL) {
		if (tx->loading) {
			defer(tx, r);
		} else {
			submit_again(m, r, tx, s, hash);
		}
		return;
	}
	// Not in memory: built now, marked loading while the store is asked
	// whether the gid finished long ago (see the top of the file).
	if ((tx = dtxd_txn_alloc(&m->tab, s->nbranches)) == NULL) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		return;
	}
	dtxi_strlcpy(tx->gid, gid, sizeof(tx->gid));
	for (uint32_t i = 0; i < s->nbranches; i++) {
		if (dtxd_txrec_branch(tx, i, &s->branches[i]) != 0) {
			dtxd_txn_release(tx);
			dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
			return;
		}
	}
	int64_t now      = dtxi_now_ms();
	tx->content_hash = hash;
	tx->wait         = s->wait;
	dtxi_strlcpy(tx->traceparent, s->traceparent, sizeof(tx->traceparent));
	tx->created_ms = now;
	tx->updated_ms = now;
	tx->timeout_ms = s->timeout_ms ? s->timeout_ms : m->cfg.timeout_ms;
	tx->core.mode  = s->mode;
	tx->core.state =
	    s->mode == DTX_2PC ? DTX_STATE_PREPARING : DTX_STATE_RUNNING;
	tx->core.deadline_ms = now + tx->timeout_ms;
	tx->core.call_timeout_ms =
	    s->call_timeout_ms ? s->call_timeout_ms : m->cfg.call_timeout_ms;
	tx->core.retries = s->retries ? s->retries : m->cfg.retries;
	// A saga must be durable before its first step; a client that does
	// not wait is told "accepted" only once it is durable. A waiting 2PC
	// client can skip the sync: presumed abort covers a lost record.
	// (Decided before dtxd_waiter_add, which frees the request s points
	// into.)
	// On a shared database every create is synced: a database crash
	// (or fail-over) loses what committed unsynced, and a waiting 2PC
	// client told ABORTED by presumed abort must still find its record
	// afterwards, as it does when only dtxd crashes.
	tx->create_sync =
	    s->mode == DTX_SAGA || !s->wait || m->cfg.session != 0;
	// A gid made here just now cannot be in the store: no need to look.
	bool fresh  = s->gid[0] == '\0';
	tx->loading = !fresh;
	dtxd_txtable_insert(&m->tab, tx);
	if (dtxd_waiter_add(tx, r, wait_kind(s), 0) != 0) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		dtxd_act_forget(m, tx);
		dtxd_txn_release(tx);
		return;
	}
	if (fresh) {
		create(m, tx);
		dtxd_txn_release(tx);
		return;
	}
	// The allocation's reference is the read's from here on.
	if ((rv = read_for(m, NULL, tx, DTXD_READ_RECORD, gid)) != 0) {
		dtxd_waiters_fail(tx, rv, "cannot read the store");
		dtxd_act_forget(m, tx);
		dtxd_txn_release(tx);
	}
}

// Answers a waiter of a Submit whose gid the store holds, from its record
// in m->rb.rec: a client waiting for the outcome of a transaction still
// running (on another node, with several on one store) waits on a watch.
static void
answer_stored(dtxd_txmgr *m, waiter *w)
{
	const dtxi_txinfo *info = &m->rb.rec->info;

	if (w->kind == WAIT_OUTCOME && !dtx_state_is_terminal(info->state) &&
	    dtxd_watch_add(m, info->gid, info->mode, w->r, WAIT_OUTCOME, 0) ==
	        0) {
		return;
	}
	reply_record(m, w->r);
}

// A takeover put another transaction of tx's gid in memory while tx was
// reading the store (recovery.c): tx's requests go to that one, whose
// content the Submits must match.
static void
submit_replaced(dtxd_txmgr *m, txn *tx, txn *cur)
{
	char msg[DTX_MESSAGE_MAX + 1];

	tx->loading = false;
	if (cur->content_hash != tx->content_hash) {
		snprintf(msg, sizeof(msg),
		    "gid %s already used with different content", tx->gid);
		dtxd_waiters_fail(tx, DTX_EEXIST, msg);
	} else {
		waiter *list = tx->waiters;
		tx->waiters  = NULL;
		dtxd_watch_hand(m, list, cur);
	}
	while (tx->deferred != NULL) {
		waiter *w    = tx->deferred;
		tx->deferred = w->next;
		handle(m, w->r, NULL);
		free(w);
	}
}

// The store answered a loading transaction's Submit: a new transaction is
// created (its create record written), one found on disk is answered from
// its record and leaves memory. Then the requests held meanwhile run.
static void
submit_loaded(dtxd_txmgr *m, txn *tx, const dtxd_read *rd)
{
	txn *cur = dtxd_txtable_find(&m->tab, tx->gid);
	int  rv;

	if (!tx->in_table && cur != NULL) {
		submit_replaced(m, tx, cur);
		return;
	}
	rv          = read_record(m, rd);
	tx->loading = false;
	if (!tx->in_table && rv == DTX_ENOTFOUND) {
		// Taken over and finished meanwhile, and its record gone
		// too: there is nothing to create any more.
		rv = DTX_ESTORAGE;
	}
	if (rv == DTX_ENOTFOUND) {
		create(m, tx);
	} else if (rv == 0) {
		if (m->rb.rec->content_hash != tx->content_hash) {
			char msg[DTX_MESSAGE_MAX + 1];
			snprintf(msg, sizeof(msg),
			    "gid %s already used with different content",
			    tx->gid);
			dtxd_waiters_fail(tx, DTX_EEXIST, msg);
		} else {
			while (tx->waiters != NULL) {
				waiter *w   = tx->waiters;
				tx->waiters = w->next;
				answer_stored(m, w);
				free(w);
			}
		}
		dtxd_act_forget(m, tx);
	} else {
		dtxd_waiters_fail(tx, rv, "cannot read the store");
		dtxd_act_forget(m, tx);
	}
	while (tx->deferred != NULL) {
		waiter *w    = tx->deferred;
		tx->deferred = w->next;
		handle(m, w->r, NULL);
		free(w);
	}
}

// ---------------------------------------------------------------------
// Status, List, Abort, Resolve, Stats
// ---------------------------------------------------------------------

static void
on_status(dtxd_txmgr *m, dtxd_sreq *r, const char *gid, uint32_t wait_ms,
    const dtxd_read *rd)
{
	txn *tx = dtxd_txtable_find(&m->tab, gid);

	if (tx != NULL) {
		if (wait_ms > 0 &&
		    !dtx_state_is_terminal(dtxd_act_told_state(tx))) {
			int64_t deadline = dtxi_now_ms() + wait_ms;
			if (dtxd_waiter_add(tx, r, WAIT_STATUS, deadline) !=
			    0) {
				dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
				return;
			}
			dtxd_act_wake(m, tx);
			return;
		}
		dtxd_act_reply_tx(m, r, tx);
		return;
	}
	if (!have_stored(m, r, rd, gid)) {
		return;
	}
	// Running, and not here: on another node (several on one store).
	if (wait_ms > 0 && !dtx_state_is_terminal(m->rb.rec->info.state) &&
	    dtxd_watch_add(m, gid, m->rb.rec->info.mode, r, WAIT_STATUS,
	        dtxi_now_ms() + wait_ms) == 0) {
		return;
	}
	reply_record(m, r);
}

// List. The page is scanned off the loop, so the loop sees it a while
// after the scan read it, and a transaction may have moved on meanwhile.
// One in memory is shown as memory holds it (ahead of its record). One
// whose record was unfinished but which is no longer in memory has
// finished and left since the scan read it (a transaction leaves memory
// only once its final record is written): its scanned record is older than
// what the loop knew when the scan began (a 2PC told COMMITTED would be
// listed COMMITTING). Those records are read again (a second look, on the
// point lane), issued after the loop saw them gone, so the second read
// finds the final record. So a List never shows a transaction older than
// the loop knew it when its scan began. The second look costs a point read
// per such item, only on the pages that have one; keeping the summaries of
// every transaction that left during a scan would cost the loop work at
// every finish instead.
// True when item's record was unfinished but its transaction is no longer
// in memory: it finished since the scan read it.
static bool
list_stale(dtxd_txmgr *m, const dtxi_txsummary *item)
{
	txn *tx = dtxd_txtable_find(&m->tab, item->gid);

	return (tx == NULL || tx->loading) &&
	    !dtx_state_is_terminal(item->state);
}

// Queues the second look at the stale items of rd's page, when there are
// any: true when it did (or answered r with an error).
static bool
list_recheck(dtxd_txmgr *m, dtxd_sreq *r, const dtxd_read *rd)
{
	uint32_t nstale = 0;
	mread   *mr;
	int      rv;

	for (uint32_t i = 0; i < rd->n; i++) {
		nstale += list_stale(m, &rd->items[i]);
	}
	if (nstale == 0) {
		return false;
	}
	mr = mread_new(m, r, NULL, DTXD_READ_RECHECK, rd->gid);
	if (mr == NULL) {
		dtxd_server_reply_error(
		    r, DTX_ENOMEM, "cannot read the store");
		return true;
	}
	mr->rd.n    = rd->n;
	mr->rd.more = rd->more;
	for (uint32_t i = 0; i < rd->n; i++) {
		mr->rd.items[i]   = rd->items[i];
		mr->rd.recheck[i] = list_stale(m, &rd->items[i]);
	}
	if ((rv = mread_queue(m, mr)) != 0) {
		dtxd_server_reply_error(r, rv, "cannot read the store");
	}
	return true;
}

static int
gid_cmp(const void *a, const void *b)
{
	return strcmp(
	    (*(const txn *const *)a)->gid, (*(const txn *const *)b)->gid);
}

// List of the STUCK transactions: all of them are unfinished, so in
// memory, and answered from there in gid order, a page after cursor.
static void
list_stuck(dtxd_txmgr *m, dtxd_sreq *r, int state)
{
	const dtxi_request *req   = dtxd_sreq_request(r);
	uint32_t            limit = req->u.list.limit;
	size_t              n = 0, cap = 64;
	txn               **v = malloc(cap * sizeof(*v));
	dtxi_reply         *rep;

	if (limit == 0 || limit > DTXI_LIST_MAX) {
		limit = DTXI_LIST_MAX;
	}
	for (txn *tx = m->tab.all; tx != NULL && v != NULL; tx = tx->anext) {
		if (!tx->core.stuck || !tx->created || tx->loading ||
		    !tx->in_table || (state != 0 && tx->core.state != state) ||
		    strcmp(tx->gid, req->u.list.cursor) <= 0) {
			continue;
		}
		if (n == cap) {
			txn **nv = realloc(v, 2 * cap * sizeof(*v));
			if (nv == NULL) {
				break;
			}
			v = nv;
			cap *= 2;
		}
		v[n++] = tx;
	}
	if (v == NULL) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		return;
	}
	qsort(v, n, sizeof(*v), gid_cmp);
	rep                        = dtxd_act_reply_init(m, DTXI_REP_LIST);
	rep->u.list.n              = 0;
	rep->u.list.next_cursor[0] = '\0';
	for (size_t i = 0; i < n && i < limit; i++) {
		dtxi_txsummary *sum = &rep->u.list.items[rep->u.list.n++];
		dtxi_strlcpy(sum->gid, v[i]->gid, sizeof(sum->gid));
		sum->mode       = v[i]->core.mode;
		sum->state      = v[i]->core.state;
		sum->stuck      = true;
		sum->created_ms = v[i]->created_ms;
		sum->updated_ms = v[i]->updated_ms;
		sum->nbranches  = v[i]->core.nbranches;
	}
	if (n > limit) {
		dtxi_strlcpy(rep->u.list.next_cursor, v[limit - 1]->gid,
		    sizeof(rep->u.list.next_cursor));
	}
	free(v);
	dtxd_server_reply(r, rep);
}

static void
on_list(dtxd_txmgr *m, dtxd_sreq *r, int state, const dtxd_read *rd)
{
	const dtxi_request *req = dtxd_sreq_request(r);
	dtxi_reply         *rep;

	if (state < 0 || state > DTX_STATE_COMPENSATED) {
		dtxd_server_reply_error(r, DTX_EINVAL, "unknown state filter");
		return;
	}
	if (req->u.list.stuck) {
		list_stuck(m, r, state);
		return;
	}
	if (!have_read(m, r, rd, DTXD_READ_LIST, req->u.list.cursor)) {
		return;
	}
	if (rd->rv != 0) {
		dtxd_server_reply_error(r, rd->rv, "cannot read the store");
		return;
	}
	if (rd->kind == DTXD_READ_LIST && list_recheck(m, r, rd)) {
		return; // called again with the second look
	}
	rep                        = dtxd_act_reply_init(m, DTXI_REP_LIST);
	rep->u.list.n              = 0;
	rep->u.list.next_cursor[0] = '\0';
	for (uint32_t i = 0; i < rd->n; i++) {
		dtxi_txsummary sum = rd->items[i];
		txn           *tx  = dtxd_txtable_find(&m->tab, sum.gid);

		if (tx != NULL && !tx->loading) {
			// Memory is ahead of the last write.
			sum.mode       = tx->core.mode;
			sum.state      = dtxd_act_told_state(tx);
			sum.stuck      = tx->core.stuck;
			sum.created_ms = tx->created_ms;
			sum.updated_ms = tx->updated_ms;
			sum.nbranches  = tx->core.nbranches;
		}
		if (sum.state == 0 || (state != 0 && sum.state != state)) {
			continue; // gone (purged) since the scan, or filtered
		}
		rep->u.list.items[rep->u.list.n++] = sum;
	}
	// The next page starts after the last record this one looked at.
	if (rd->more && rd->n > 0) {
		dtxi_strlcpy(rep->u.list.next_cursor, rd->items[rd->n - 1].gid,
		    sizeof(rep->u.list.next_cursor));
	}
	dtxd_server_reply(r, rep);
}

// Aborts tx, live here, as asked (by a client of this node, or of another
// through the store). Returns 0, or DTX_ESTATE when it has already decided
// to commit.
static int
abort_live(dtxd_txmgr *m, txn *tx, const char *how)
{
	if (tx->to_resume) {
		dtxd_recovery_resume(m, tx);
	}
	dtxd_event ev = {.kind = DTXD_EV_ABORT, .now_ms = dtxi_now_ms()};
	dtxd_act_event(m, tx, &ev, DTXI_CRASH_NONE);
	if (m->acts.rv != 0) {
		return m->acts.rv;
	}
	dtxd_txlog(DTXI_LOG_INFO, "tx_abort_requested", tx, -1,
	    "abort asked%s: now %s", how, dtx_state_name(tx->core.state));
	return 0;
}

// How long a node that asked the owner of a transaction to abort it (see
// on_abort) waits for the owner's decision before it answers with the
// state it last read.
#define ABORT_ASKED_WAIT_MS 10000

// Abort. A transaction another node runs (several nodes on one store) is
// not aborted here: only its owner may write the abort and send ABORT
// (no phase-two call leaves before its own fenced decision write), so the
// ask is recorded in the store, the owner acts on it when its cluster
// thread next looks (every third of a lease, cluster.c), and this node
// answers once the record shows the owner's decision (a watch), or
// ABORT_ASKED_WAIT_MS later with the state it last read.
static void
on_abort(dtxd_txmgr *m, dtxd_sreq *r, const char *gid, const dtxd_read *rd)
{
	txn *tx = dtxd_txtable_find(&m->tab, gid);
	int  rv;

	if (tx != NULL) {
		if (!tx->created) {
			reply_code(r, DTX_ESTATE,
			    "%s is still being accepted; ask again", gid);
			return;
		}
		if ((rv = abort_live(m, tx, "")) != 0) {
			reply_code(
			    r, rv, "%s has already decided to commit", gid);
			return;
		}
		dtxd_act_reply_tx(m, r, tx);
		return;
	}
	if (!have_stored(m, r, rd, gid)) {
		return;
	}
	const dtxi_txinfo *info = &m->rb.rec->info;
	if (info->state == DTX_STATE_COMMITTED) {
		reply_code(r, DTX_ESTATE, "%s is already committed", gid);
	} else if (m->cfg.session == 0 || dtx_state_is_terminal(info->state)) {
		reply_record(m, r);
	} else if (rd->kind != DTXD_READ_ASK_ABORT) {
		// Run by another node: ask its owner through the store.
		if ((rv = read_for(m, r, NULL, DTXD_READ_ASK_ABORT, gid)) !=
		    0) {
			reply_code(
			    r, rv, "cannot ask the owner of %s to abort", gid);
		}
	} else if (info->state != DTX_STATE_PREPARING &&
	    info->state != DTX_STATE_RUNNING) {
		reply_record(m, r); // decided already
	} else if (dtxd_watch_add(m, gid, info->mode, r, WAIT_DECIDED,
	               dtxi_now_ms() + ABORT_ASKED_WAIT_MS) != 0) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
	}
}

// The loop's side of dtxd_requests_post_abort.
typedef struct mabort {
	dtxd_ev ev;
	char    gid[DTX_GID_MAX + 1];
} mabort;

void
dtxd_requests_post_abort(dtxd_txmgr *m, const char *gid)
{
	mabort *ma = calloc(1, sizeof(*ma));

	if (ma == NULL) {
		DTXI_ERROR("requests: out of memory: the abort of %s asked "
		           "through the store is lost",
		    gid);
		return;
	}
	ma->ev.kind = MEV_ABORT_ASKED;
	dtxi_strlcpy(ma->gid, gid, sizeof(ma->gid));
	txmgr_post(m, &ma->ev);
}

void
dtxd_requests_on_abort_asked(dtxd_txmgr *m, dtxd_ev *ev)
{
	mabort *ma = (mabort *)ev;
	txn    *tx = dtxd_txtable_find(&m->tab, ma->gid);
	int     rv;

	if (tx == NULL || tx->loading || !tx->created) {
		DTXI_WARN("requests: an abort of %s was asked through the "
		          "store, and it is not live here: not aborted",
		    ma->gid);
	} else if ((rv = abort_live(m, tx, " of another node")) != 0) {
		DTXI_INFO("requests: an abort of %s was asked through the "
		          "store: it has already decided to commit",
		    ma->gid);
	}
	free(ma);
}

// The Resolve rule, stated here once (dtx.h's dtx_client_resolve and the
// SDK's resolver point to it). Resolve is a participant's question about a
// branch it prepared and whose outcome it never heard: what does the
// coordinator know?
// - A live transaction answers its state, with one exception: from the
//   moment a 2PC decides to commit until that decision is synced, it is
//   COMMITTING in memory but answers PREPARING. A crash before the sync
//   restarts it without the decision, and presumed abort aborts it; a
//   participant told COMMITTING in between could commit a transaction
//   that ends aborted. So COMMITTING is only ever answered once the
//   decision is durable, and a participant may act on it as on COMMITTED.
// - A finished transaction answers its final state from its record.
// - An unknown gid answers ABORTED: presumed abort, no record means no
//   commit was ever decided (a commit decision is synced before any COMMIT
//   is sent, and a 2PC is recorded before its first PREPARE).
// So COMMITTING and COMMITTED mean commit, ABORTING and ABORTED mean abort,
// PREPARING means not decided yet: ask again later. The SDK's resolver
// (sdk/src/resolver.c) acts exactly so; the spin model (tests/model)
// checks that it is safe, and that answering COMMITTING before the sync is
// not (its mutant MUT_RESOLVE_UNSYNCED).
static void
on_resolve(dtxd_txmgr *m, dtxd_sreq *r, const char *gid, const dtxd_read *rd)
{
	txn        *tx = dtxd_txtable_find(&m->tab, gid);
	dtxi_reply *rep;
	int         state;
	int         rv;

	if (tx != NULL) {
		state = dtxd_act_told_state(tx);
		if (state == DTX_STATE_COMMITTING && tx->core.persisting) {
			state = DTX_STATE_PREPARING;
		}
	} else if (!have_read(m, r, rd, DTXD_READ_RECORD, gid)) {
		return;
	} else if ((rv = read_record(m, rd)) == 0) {
		state = m->rb.rec->info.state;
	} else if (rv == DTX_ENOTFOUND) {
		state = DTX_STATE_ABORTED;
	} else {
		dtxd_server_reply_error(r, rv, "cannot read the store");
		return;
	}
	dtxd_metrics_resolve(m->cfg.metrics, state);
	dtxi_log_event(DTXI_LOG_DEBUG, "resolve",
	    DTXI_FIELDS(DTXI_F_STR("gid", gid),
	        DTXI_F_STR("answer", dtx_state_name(state))),
	    "resolve %s: %s", gid, dtx_state_name(state));
	rep                  = dtxd_act_reply_init(m, DTXI_REP_RESOLVE);
	rep->u.resolve.state = state;
	dtxd_server_reply(r, rep);
}

// For Retry and Settle of a transaction not in memory: it has finished
// (its record says how) or never was.
static void
not_live(dtxd_txmgr *m, dtxd_sreq *r, const dtxd_read *rd, const char *gid,
    const char *what)
{
	char msg[DTX_MESSAGE_MAX + 1];

	if (!have_stored(m, r, rd, gid)) {
		return;
	}
	snprintf(msg, sizeof(msg), "%.128s has finished (%s): nothing to %s",
	    gid, dtx_state_name(m->rb.rec->info.state), what);
	dtxd_server_reply_error(r, DTX_ESTATE, msg);
}

// A live transaction an operator request may change: false (r answered)
// while it is still being accepted. One not yet resumed after a restart is
// resumed now, so that no event reaches its engine before RECOVER.
static bool
operable(dtxd_txmgr *m, dtxd_sreq *r, txn *tx)
{
	if (!tx->created || tx->finishing) {
		reply_code(r, DTX_ESTATE,
		    tx->finishing ? "%s is finishing"
		                  : "%s is still being accepted; ask again",
		    tx->gid);
		return false;
	}
	if (tx->to_resume) {
		dtxd_recovery_resume(m, tx);
	}
	return true;
}

static void
on_retry(dtxd_txmgr *m, dtxd_sreq *r, const char *gid, const dtxd_read *rd)
{
	txn *tx = dtxd_txtable_find(&m->tab, gid);

	if (tx == NULL) {
		not_live(m, r, rd, gid, "retry");
		return;
	}
	if (!operable(m, r, tx)) {
		return;
	}
	dtxd_event ev = {.kind = DTXD_EV_REDRIVE, .now_ms = dtxi_now_ms()};
	dtxd_act_event(m, tx, &ev, DTXI_CRASH_NONE);
	dtxd_txlog(DTXI_LOG_INFO, "tx_redriven", tx, -1,
	    "an operator re-drove it: waiting calls sent now, backoff reset");
	dtxd_act_reply_tx(m, r, tx);
}

// Why SETTLE would be refused for branch b of tx, or NULL: said here in
// words, enforced by the engine.
static const char *
settle_refusal(const txn *tx, uint32_t b)
{
	const dtxd_txcore *c = &tx->core;

	if (c->state == DTX_STATE_PREPARING || c->state == DTX_STATE_RUNNING) {
		return "its outcome is not decided yet (the forward phase "
		       "runs): abort it first, or wait";
	}
	if (c->persisting) {
		return "its decision is being written; ask again";
	}
	if ((c->br[b].done & DTXD_DONE_FINAL) != 0 &&
	    (c->br[b].done & DTXD_DONE_SETTLED) == 0) {
		return "that branch is done already";
	}
	if (c->mode == DTX_SAGA && (c->br[b].done & DTXD_DONE_SENT) == 0) {
		return "that step never ran: there is nothing to undo";
	}
	return NULL;
}

static void
on_settle(dtxd_txmgr *m, dtxd_sreq *r, const dtxd_read *rd)
{
	const dtxi_request *req = dtxd_sreq_request(r);
	char                gid[DTX_GID_MAX + 1];
	char                msg[DTX_MESSAGE_MAX + 1];
	uint32_t            b = req->u.settle.branch;
	txn                *tx;
	txn_branch         *mb;
	char               *old_message;
	int64_t             old_settled;
	bool                again;
	const char         *why;

	dtxi_strlcpy(gid, req->u.settle.gid, sizeof(gid));
	if (req->u.settle.note[0] == '\0') {
		dtxd_server_reply_error(r, DTX_EINVAL,
		    "a settlement needs a note saying what was done by hand");
		return;
	}
	if ((tx = dtxd_txtable_find(&m->tab, gid)) == NULL) {
		not_live(m, r, rd, gid, "settle");
		return;
	}
	if (!operable(m, r, tx)) {
		return;
	}
	if (b >= tx->core.nbranches) {
		snprintf(msg, sizeof(msg),
		    "%.128s has no branch %u (it has %u)", gid, (unsigned)b,
		    (unsigned)tx->core.nbranches);
		dtxd_server_reply_error(r, DTX_EINVAL, msg);
		return;
	}
	if ((why = settle_refusal(tx, b)) != NULL) {
		snprintf(msg, sizeof(msg),
		    "cannot settle branch %u of %.128s: %s", (unsigned)b, gid,
		    why);
		dtxd_server_reply_error(r, DTX_ESTATE, msg);
		return;
	}
	// The note and time are in place before the engine's PERSIST
	// encodes the record; if the engine refuses after all, they go.
	mb          = &tx->mb[b];
	again       = (tx->core.br[b].done & DTXD_DONE_SETTLED) != 0;
	old_message = mb->message;
	old_settled = mb->settled_ms;
	if (!again) {
		char *note = malloc(strlen(req->u.settle.note) + 1);
		if (note == NULL) {
			dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
			return;
		}
		strcpy(note, req->u.settle.note);
		mb->message    = note;
		mb->settled_ms = dtxi_now_ms();
		mb->error      = 0;
	}
	uint64_t   need = tx->wseq + 1;
	dtxd_event ev   = {
	      .kind = DTXD_EV_SETTLE, .now_ms = dtxi_now_ms(), .branch = b};
	dtxd_act_event(m, tx, &ev, DTXI_CRASH_NONE);
	if (m->acts.rv != 0) {
		if (!again) {
			free(mb->message);
			mb->message    = old_message;
			mb->settled_ms = old_settled;
		}
		snprintf(msg, sizeof(msg),
		    "cannot settle branch %u of %.128s in state %s",
		    (unsigned)b, gid, dtx_state_name(tx->core.state));
		dtxd_server_reply_error(r, m->acts.rv, msg);
		return;
	}
	if (again) {
		dtxd_act_reply_tx(m, r, tx);
		return;
	}
	free(old_message);
	dtxd_txlog(DTXI_LOG_WARN, "branch_settled", tx, (int)b,
	    "an operator settled it by hand: %s", mb->message);
	if (dtxd_waiter_add(tx, r, WAIT_SYNCED, 0) != 0) {
		dtxd_server_reply_error(r, DTX_ENOMEM, NULL);
		return;
	}
	tx->waiters->seq = need;
}

static void
on_stats(dtxd_txmgr *m, dtxd_sreq *r)
{
	dtxi_reply      *rep = dtxd_act_reply_init(m, DTXI_REP_STATS);
	dtxd_store_stats ss;

	dtxd_store_get_stats(m->store, &ss);
	rep->u.stats.active        = atomic_load(&m->tab.active);
	rep->u.stats.started       = atomic_load(&m->stats.started);
	rep->u.stats.finished      = atomic_load(&m->stats.finished);
	rep->u.stats.recovered     = atomic_load(&m->stats.recovered);
	rep->u.stats.store_writes  = ss.ops;
	rep->u.stats.store_batches = ss.batches;
	rep->u.stats.store_syncs   = ss.syncs;
	rep->u.stats.store_errors  = ss.errors;
	rep->u.stats.uptime_ms     = (uint64_t)(dtxi_mono_ms() - m->start_ms);
	dtxd_dispatcher_get_counts(
	    m->disp, &rep->u.stats.branch_calls, &rep->u.stats.call_messages);
	dtxd_server_reply(r, rep);
}

// ---------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------

// The gid a request is about, or NULL.
static const char *
request_gid(const dtxi_request *req)
{
	switch (req->kind) {
	case DTXI_REQ_STATUS:
		return req->u.status.gid;
	case DTXI_REQ_ABORT:
		return req->u.abort.gid;
	case DTXI_REQ_RESOLVE:
		return req->u.resolve.gid;
	case DTXI_REQ_RETRY:
		return req->u.retry.gid;
	case DTXI_REQ_SETTLE:
		return req->u.settle.gid;
	default:
		return NULL; // Submit defers by itself, after validation
	}
}

static void
handle(dtxd_txmgr *m, dtxd_sreq *r, const dtxd_read *rd)
{
	const dtxi_request *req = dtxd_sreq_request(r);
	const char         *gid = request_gid(req);
	txn                *tx;

	if (gid != NULL && (tx = dtxd_txtable_find(&m->tab, gid)) != NULL &&
	    tx->loading) {
		defer(tx, r);
		return;
	}
	switch (req->kind) {
	case DTXI_REQ_SUBMIT:
		on_submit(m, r, &req->u.submit);
		break;
	case DTXI_REQ_STATUS:
		on_status(m, r, req->u.status.gid, req->u.status.wait_ms, rd);
		break;
	case DTXI_REQ_LIST:
		on_list(m, r, req->u.list.state, rd);
		break;
	case DTXI_REQ_ABORT:
		on_abort(m, r, req->u.abort.gid, rd);
		break;
	case DTXI_REQ_RESOLVE:
		on_resolve(m, r, req->u.resolve.gid, rd);
		break;
	case DTXI_REQ_STATS:
		on_stats(m, r);
		break;
	case DTXI_REQ_RETRY:
		on_retry(m, r, req->u.retry.gid, rd);
		break;
	case DTXI_REQ_SETTLE:
		on_settle(m, r, rd);
		break;
	default:
		dtxd_server_reply_error(
		    r, DTX_EUNSUPPORTED, "not a coordinator request");
		break;
	}
}

void
dtxd_requests_handle(dtxd_txmgr *m, dtxd_sreq *r)
{
	dtxd_metrics_request(m->cfg.metrics, dtxd_sreq_request(r)->kind);
	handle(m, r, NULL);
}

void
dtxd_requests_on_read(dtxd_txmgr *m, mread *mr)
{
	if (mr->tx != NULL) {
		submit_loaded(m, mr->tx, &mr->rd);
		dtxd_txn_release(mr->tx);
	} else {
		handle(m, mr->r, &mr->rd);
	}
	mread_free(mr);
}

void
dtxd_requests_drop_read(mread *mr)
{
	if (mr->tx != NULL) {
		dtxd_txn_release(mr->tx);
	} else {
		dtxd_server_reply_error(
		    mr->r, DTX_ESHUTDOWN, "coordinator shutting down");
	}
	mread_free(mr);
}

void
dtxd_requests_create_lost(dtxd_txmgr *m, txn *tx)
{
	int rv;

	DTXI_DEBUG("requests: %s was created by another node first", tx->gid);
	tx->loading = true;
	tx->refs++; // the read's
	if ((rv = read_for(m, NULL, tx, DTXD_READ_RECORD, tx->gid)) != 0) {
		tx->refs--;
		tx->loading = false;
		dtxd_waiters_fail(tx, rv, "cannot read the store");
		dtxd_act_forget(m, tx);
	}
}
