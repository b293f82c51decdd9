// SPDX-License-Identifier: MIT
//
// actions: engine actions carried out, their completions fed back, and the
// waiters answered (see actions.h for the durability rules).

#include "actions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "strs.h"
#include "txlog.h"

// ---------------------------------------------------------------------
// Waiters and replies
// ---------------------------------------------------------------------

dtxi_reply *
dtxd_act_reply_init(dtxd_txmgr *m, dtxi_rep_kind kind)
{
	dtxi_reply *rep = m->rep;
	rep->version    = DTX_PROTOCOL_VERSION;
	rep->code       = 0;
	rep->message[0] = '\0';
	rep->kind       = kind;
	return rep;
}

// True when tx's state cannot change any more, even if its final record
// is lost (see actions.h): always but for a saga's COMMITTED before that
// record is written.
static bool
outcome_settled(const txn *tx)
{
	return tx->final ||
	    !(tx->core.mode == DTX_SAGA &&
	        tx->core.state == DTX_STATE_COMMITTED);
}

int
dtxd_act_told_state(const txn *tx)
{
	return outcome_settled(tx) ? tx->core.state : DTX_STATE_RUNNING;
}

void
dtxd_act_reply_tx(dtxd_txmgr *m, dtxd_sreq *r, const txn *tx)
{
	dtxi_reply *rep = dtxd_act_reply_init(m, DTXI_REP_TX);
	dtxd_txrec_info(tx, &rep->u.tx);
	rep->u.tx.state = dtxd_act_told_state(tx);
	dtxd_server_reply(r, rep);
}

void
dtxd_waiters_reply(dtxd_txmgr *m, txn *tx, int kind)
{
	waiter **pp = &tx->waiters;
	while (*pp != NULL) {
		waiter *w = *pp;
		if (kind == 0 || w->kind == kind) {
			*pp = w->next;
			dtxd_act_reply_tx(m, w->r, tx);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

void
dtxd_waiters_reply_outcome(dtxd_txmgr *m, txn *tx)
{
	waiter **pp = &tx->waiters;
	while (*pp != NULL) {
		waiter *w = *pp;
		if (w->kind != WAIT_SYNCED) {
			*pp = w->next;
			dtxd_act_reply_tx(m, w->r, tx);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

// Settles waiting for their record to be synced, once it is.
static void
waiters_reply_synced(dtxd_txmgr *m, txn *tx)
{
	waiter **pp = &tx->waiters;
	while (*pp != NULL) {
		waiter *w = *pp;
		if (w->kind == WAIT_SYNCED && w->seq <= tx->synced_seq) {
			*pp = w->next;
			dtxd_act_reply_tx(m, w->r, tx);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

void
dtxd_waiters_fail(txn *tx, int code, const char *msg)
{
	while (tx->waiters != NULL) {
		waiter *w   = tx->waiters;
		tx->waiters = w->next;
		dtxd_server_reply_error(w->r, code, msg);
		free(w);
	}
}

int
dtxd_waiter_add(txn *tx, dtxd_sreq *r, int kind, int64_t deadline_ms)
{
	waiter *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		return DTX_ENOMEM;
	}
	dtxd_sreq_drop_request(r);
	w->r           = r;
	w->kind        = kind;
	w->deadline_ms = deadline_ms;
	w->next        = tx->waiters;
	tx->waiters    = w;
	return 0;
}

// ---------------------------------------------------------------------
// The decided reply (see actions.h)
// ---------------------------------------------------------------------

// True when tx's outcome is decided and nothing can undo it: a 2PC commit
// or a saga's turn-back once synced, a 2PC abort at once (presumed abort).
static bool
decided_durable(const txn *tx)
{
	switch (tx->core.state) {
	case DTX_STATE_COMMITTING:
		return !tx->core.persisting && tx->core.mode == DTX_2PC;
	case DTX_STATE_COMPENSATING:
		return !tx->core.persisting;
	case DTX_STATE_ABORTING:
		return true;
	default:
		return false;
	}
}

// When a client waiting for the decision is told at the latest: the
// deadline of the forward phase plus one call timeout (a call in flight
// at the deadline ends by then).
static int64_t
decided_budget(const txn *tx)
{
	return tx->core.deadline_ms + (int64_t)tx->core.call_timeout_ms;
}

static bool
has_waiter(const txn *tx, int kind)
{
	for (const waiter *w = tx->waiters; w != NULL; w = w->next) {
		if (w->kind == kind) {
			return true;
		}
	}
	return false;
}

// Tells the clients waiting with `decided` the state, once the outcome is
// decided and durable and its delivery is held up.
static void
tell_decided(dtxd_txmgr *m, txn *tx, int64_t now)
{
	if (tx->finishing || !has_waiter(tx, WAIT_DECIDED) ||
	    !decided_durable(tx)) {
		return;
	}
	if (tx->delivery_failed || now >= decided_budget(tx)) {
		dtxd_txlog(DTXI_LOG_DEBUG, "tx_decided_reply", tx, -1,
		    "the client is told %s while delivery goes on",
		    dtx_state_name(tx->core.state));
		dtxd_waiters_reply(m, tx, WAIT_DECIDED);
	}
}

void
dtxd_act_tell_decided(dtxd_txmgr *m, txn *tx)
{
	tell_decided(m, tx, dtxi_now_ms());
}

// ---------------------------------------------------------------------
// Timers
// ---------------------------------------------------------------------

static int64_t
earliest(int64_t a, int64_t b)
{
	return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

void
dtxd_act_wake(dtxd_txmgr *m, txn *tx)
{
	int64_t when = 0;
	if (tx->in_table) {
		if (tx->created && !tx->finishing) {
			when = tx->core.wake_ms;
		}
		if (tx->redo != 0) {
			when = earliest(when, tx->redo_at);
		}
		for (waiter *w = tx->waiters; w != NULL; w = w->next) {
			if (w->kind == WAIT_STATUS) {
				when = earliest(when, w->deadline_ms);
			}
		}
		// The decided reply's time limit, while it is ahead: once
		// past, the reply waits for the decision's own event.
		if (has_waiter(tx, WAIT_DECIDED) &&
		    decided_budget(tx) > dtxi_now_ms()) {
			when = earliest(when, decided_budget(tx));
		}
	}
	dtxd_txtable_timer_set(&m->tab, tx, when);
}

void
dtxd_act_forget(dtxd_txmgr *m, txn *tx)
{
	// Recovery paces its resumptions by this count (recovery.c), and
	// takeovers by the next.
	if (tx->recovering) {
		tx->recovering = false;
		m->resuming--;
	}
	if (tx->stuck_counted) {
		tx->stuck_counted = false;
		dtxd_metrics_stuck_add(m->cfg.metrics, -1);
	}
	if (tx->adopted) {
		tx->adopted = false;
		atomic_fetch_sub(&m->adopting, 1);
	}
	if (tx->in_table) {
		dtxd_txtable_remove(&m->tab, tx);
	}
}

// ---------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------

static void on_call_done(void *arg, int rv, const dtxi_branch_reply *rep);

static void
do_send(dtxd_txmgr *m, txn *tx, const dtxd_action *a)
{
	txn_branch *mb = &tx->mb[a->branch];
	mcall      *mc = calloc(1, sizeof(*mc));
	dtxi_call   call;
	int         rv = 0;

	if (mc == NULL) {
		// No memory even for the call record: leave the branch idle
		// with a retry due in a second; the engine's timer resends.
		DTXI_ERROR(
		    "actions: out of memory for a branch call of %s", tx->gid);
		tx->core.br[a->branch].inflight    = false;
		tx->core.br[a->branch].retry_at_ms = dtxi_now_ms() + 1000;
		dtxd_tx_update_wake(&tx->core);
		return;
	}
	mc->ev.kind = MEV_CALL;
	mc->m       = m;
	mc->tx      = tx;
	mc->branch  = a->branch;
	mc->phase   = a->phase;
	tx->refs++;

	memset(&call, 0, sizeof(call));
	dtxi_strlcpy(call.gid, tx->gid, sizeof(call.gid));
	call.branch_id = a->branch;
	call.phase     = a->phase;
	dtxi_strlcpy(call.method, mb->method, sizeof(call.method));
	call.payload.ptr = mb->payload;
	call.payload.len = mb->payload_len;
	call.attempt     = a->attempt;
	call.deadline_ms =
	    (a->phase == DTX_PHASE_PREPARE || a->phase == DTX_PHASE_EXECUTE)
	    ? tx->core.deadline_ms
	    : 0;
	call.timeout_ms = a->timeout_ms;
	dtxi_strlcpy(
	    call.traceparent, tx->traceparent, sizeof(call.traceparent));
	if (a->attempt > 1) {
		dtxd_metrics_retry(m->cfg.metrics, a->phase);
	}

	if (mb->peer == NULL) {
		rv = dtxd_dispatcher_peer(
		    m->disp, mb->endpoint, &mb->peer, NULL, 0);
	}
	if (rv == 0) {
		// Sent at the end of this pass of the loop, batched with the
		// other calls to the same participant.
		rv = dtxd_dispatcher_queue(
		    m->disp, mb->peer, &call, a->timeout_ms, on_call_done, mc);
	}
	if (rv != 0) {
		// The engine sees a call that could not even be started as a
		// call that got no answer, through the queue (it is not
		// re-entered).
		mc->rv = rv;
		txmgr_push(m, &mc->ev, false);
	}
}

// A malloc'd copy of a NUL-terminated string, or NULL without memory.
static char *
dup_str(const char *str)
{
	size_t n = strlen(str) + 1;
	char  *d = malloc(n);
	if (d != NULL) {
		memcpy(d, str, n);
	}
	return d;
}

// On a dispatcher thread: copies what the engine needs and queues it; the
// dispatcher's after-hook (dtxd_txmgr_open) then runs the loop once for
// all the replies of the frame.
static void
on_call_done(void *arg, int rv, const dtxi_branch_reply *rep)
{
	mcall *mc = arg;
	mc->rv    = rv;
	if (rv != 0 && rep != NULL && rep->message[0] != '\0') {
		mc->message = dup_str(rep->message); // why there is no answer
	}
	if (rv == 0) {
		mc->status = rep->status;
		// Without memory for it the message is dropped; the status
		// is what the engine needs.
		if (rep->message[0] != '\0') {
			mc->message = dup_str(rep->message);
		}
		if (rep->payload.len > 0 &&
		    (mc->payload = malloc(rep->payload.len)) != NULL) {
			memcpy(
			    mc->payload, rep->payload.ptr, rep->payload.len);
			mc->payload_len = rep->payload.len;
		}
	}
	txmgr_push(mc->m, &mc->ev, false);
}

void
dtxd_act_free_call(mcall *mc)
{
	free(mc->payload);
	free(mc->message);
	free(mc);
}

// ---------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------

void
dtxd_act_free_write(mwrite *w)
{
	if (w->specs != NULL) {
		for (uint32_t i = 0; i < w->nspecs; i++) {
			free(w->specs[i]);
		}
	}
	free(w->specs);
	free(w->spec_lens);
	free(w->rec);
	free(w);
}

// On the store's writer thread: the loop thread takes the ends of one
// batch's writes in one pass (see txmgr.c).
static void
on_write_done(void *arg, int rv)
{
	mwrite *w = arg;
	w->rv     = rv;
	txmgr_post(w->m, &w->ev);
}

int
dtxd_act_write(dtxd_txmgr *m, txn *tx, int purpose, bool sync, bool wait)
{
	mwrite *w = calloc(1, sizeof(*w));
	size_t  len;
	int     rv;

	if (w == NULL) {
		return DTX_ENOMEM;
	}
	w->ev.kind     = MEV_WRITE;
	w->m           = m;
	w->tx          = tx;
	w->purpose     = purpose;
	w->wait        = wait;
	w->seq         = tx->wseq + 1;
	tx->updated_ms = dtxi_now_ms();
	if ((rv = dtxd_txrec_encode(&m->rb, tx, -1, &w->rec, &len)) != 0) {
		dtxd_act_free_write(w);
		return rv;
	}
	w->op.record     = w->rec;
	w->op.record_len = len;
	if (purpose == W_CREATE) {
		uint32_t n   = tx->core.nbranches;
		w->nspecs    = n;
		w->specs     = calloc(n, sizeof(*w->specs));
		w->spec_lens = calloc(n, sizeof(*w->spec_lens));
		if (w->specs == NULL || w->spec_lens == NULL) {
			dtxd_act_free_write(w);
			return DTX_ENOMEM;
		}
		for (uint32_t i = 0; i < n; i++) {
			rv = dtxd_txrec_encode(
			    &m->rb, tx, (int)i, &w->specs[i], &len);
			if (rv != 0) {
				dtxd_act_free_write(w);
				return rv;
			}
			w->spec_lens[i] = len;
		}
		w->op.kind      = DTXD_WOP_CREATE;
		w->op.nspecs    = n;
		w->op.specs     = (const uint8_t *const *)w->specs;
		w->op.spec_lens = w->spec_lens;
	} else if (purpose == W_FINISH) {
		w->op.kind      = DTXD_WOP_FINISH;
		w->op.expire_ms = tx->updated_ms + m->cfg.retention_ms;
	} else {
		w->op.kind = DTXD_WOP_UPDATE;
	}
	w->op.gid   = tx->gid;
	w->op.owner = tx->owner;
	w->op.epoch = tx->epoch;
	w->op.sync  = sync;
	w->op.done  = on_write_done;
	w->op.arg   = w;
	tx->refs++;
	if ((rv = dtxd_store_write(m->store, &w->op)) != 0) {
		tx->refs--;
		dtxd_act_free_write(w);
		return rv;
	}
	tx->wseq = w->seq;
	return 0;
}

// A write that could not be queued or failed is redone a second later: a
// full disk must not lose a decision, and the transaction simply waits.
static void
schedule_redo(dtxd_txmgr *m, txn *tx, int purpose, bool sync, bool wait)
{
	if (purpose == W_FINISH || tx->redo == W_FINISH) {
		tx->redo = W_FINISH;
	} else {
		tx->redo = W_PERSIST;
	}
	tx->redo_at = dtxi_now_ms() + 1000;
	tx->redo_sync |= sync;
	tx->redo_wait |= wait;
	dtxd_act_wake(m, tx);
}

static void
write_or_redo(dtxd_txmgr *m, txn *tx, int purpose, bool sync, bool wait)
{
	int rv = dtxd_act_write(m, tx, purpose, sync, wait);
	if (rv != 0) {
		dtxd_txlog(DTXI_LOG_ERROR, "store_write_failed", tx, -1,
		    "cannot queue the record: %s; retrying in a second",
		    dtx_strerror(rv));
		schedule_redo(m, tx, purpose, sync, wait);
	}
}

// ---------------------------------------------------------------------
// Events into the engine, actions out
// ---------------------------------------------------------------------

// A transaction reached its outcome: counted, logged, and out of the
// STUCK gauge.
static void
finished(dtxd_txmgr *m, txn *tx)
{
	bool settled = false;

	for (uint32_t i = 0; i < tx->core.nbranches; i++) {
		settled = settled || tx->mb[i].settled_ms != 0;
	}
	dtxd_metrics_tx_finished(m->cfg.metrics, tx->core.mode, tx->core.state,
	    dtxi_now_ms() - tx->created_ms);
	dtxd_txlog(
	    tx->stuck_counted || settled ? DTXI_LOG_INFO : DTXI_LOG_DEBUG,
	    "tx_finished", tx, -1, "%s%s%s", dtx_state_name(tx->core.state),
	    tx->stuck_counted ? " after being stuck" : "",
	    settled ? " (a branch settled by an operator)" : "");
	if (tx->stuck_counted) {
		tx->stuck_counted = false;
		dtxd_metrics_stuck_add(m->cfg.metrics, -1);
	}
}

static void
run_actions(dtxd_txmgr *m, txn *tx, const dtxd_actions *acts)
{
	for (uint32_t i = 0; i < acts->n; i++) {
		const dtxd_action *a = &acts->v[i];
		switch (a->kind) {
		case DTXD_ACT_SEND:
			do_send(m, tx, a);
			break;
		case DTXD_ACT_PERSIST:
			write_or_redo(m, tx, W_PERSIST, a->sync, a->wait);
			break;
		case DTXD_ACT_FINISH:
			if (!tx->finishing) {
				tx->finishing = true;
				finished(m, tx);
				if (outcome_settled(tx)) {
					dtxd_waiters_reply_outcome(m, tx);
				}
				if (dtxi_crash_point(&m->crash,
				        DTXI_CRASH_BEFORE_FINAL_RECORD)) {
					break; // dies soon; never written
				}
				// A saga's COMMITTED is told once its final
				// record is written. On a shared database
				// that write is synced: a database crash loses
				// what committed unsynced (store_pg.c), which
				// a dtxd crash on RocksDB never does, and a
				// successor that found the saga RUNNING again
				// might compensate it past its deadline.
				write_or_redo(m, tx, W_FINISH,
				    m->cfg.session != 0 &&
				        !outcome_settled(tx),
				    false);
			}
			break;
		}
	}
}

// The before-*-decision crash points sit between the engine and the
// actions too: the engine has just turned to COMMITTING or COMPENSATING in
// memory, and the write that makes the decision durable has not even been
// queued, so recovery must act as if the decision had never been taken.
void
dtxd_act_event(
    dtxd_txmgr *m, txn *tx, const dtxd_event *ev, dtxi_crash_pt crash_after)
{
	dtxd_actions *acts = &m->acts;
	int           was  = tx->core.state;

	dtxd_engine_handle(&tx->core, &m->cfg.policy, ev, acts);
	dtxi_crash_point(&m->crash, crash_after);
	if (was != tx->core.state) {
		if (tx->core.state == DTX_STATE_COMMITTING) {
			dtxi_crash_point(
			    &m->crash, DTXI_CRASH_BEFORE_COMMIT_DECISION);
		} else if (tx->core.state == DTX_STATE_COMPENSATING) {
			dtxi_crash_point(
			    &m->crash, DTXI_CRASH_BEFORE_COMPENSATE_DECISION);
		}
	}
	if (tx->core.stuck && !tx->stuck_counted &&
	    !dtxd_tx_is_terminal(tx->core.state)) {
		tx->stuck_counted = true;
		dtxd_metrics_stuck_add(m->cfg.metrics, 1);
		dtxd_txlog(DTXI_LOG_WARN, "tx_stuck", tx,
		    ev->kind == DTXD_EV_REPLY || ev->kind == DTXD_EV_FAILED
		        ? (int)ev->branch
		        : -1,
		    "STUCK: %s keeps failing (still retried; dtxctl retry or "
		    "settle)",
		    tx->core.mode == DTX_SAGA ? "compensation" : "phase two");
	}
	// The actions buffer is reused by nested work only through the
	// queue, never re-entrantly, so it can be carried out in place.
	run_actions(m, tx, acts);
	tell_decided(m, tx, ev->now_ms);
	dtxd_act_wake(m, tx);
}

// ---------------------------------------------------------------------
// Completions
// ---------------------------------------------------------------------

// Keeps a branch's reply (taking over its payload): as the last reply, and,
// for prepare and execute, as the forward phase's too, which the later
// phases' replies do not replace.
static void
keep_reply(txn_branch *mb, mcall *mc)
{
	free(mb->rpayload);
	mb->rpayload     = NULL;
	mb->rpayload_len = 0;
	if (mc->phase == DTX_PHASE_PREPARE || mc->phase == DTX_PHASE_EXECUTE) {
		free(mb->fpayload);
		mb->fwd_status   = mc->status;
		mb->fpayload     = mc->payload;
		mb->fpayload_len = mc->payload_len;
		mb->last_is_fwd  = true;
	} else {
		mb->rpayload     = mc->payload;
		mb->rpayload_len = mc->payload_len;
		mb->last_is_fwd  = false;
	}
	mc->payload = NULL;
}

// How a call ended, for the metrics.
static dtxd_call_result
call_result(const mcall *mc)
{
	if (mc->rv == 0) {
		switch (mc->status) {
		case DTX_BRANCH_OK:
			return DTXD_CALL_OK;
		case DTX_BRANCH_REFUSED:
			return DTXD_CALL_REFUSED;
		case DTX_BRANCH_RETRY:
			return DTXD_CALL_RETRY;
		case DTX_BRANCH_NO_SUCH_METHOD:
			return DTXD_CALL_NO_SUCH_METHOD;
		default:
			return DTXD_CALL_BAD_REQUEST;
		}
	}
	return mc->rv == DTX_ETIMEDOUT   ? DTXD_CALL_TIMEOUT
	    : mc->rv == DTX_EUNREACHABLE ? DTXD_CALL_UNREACHABLE
	                                 : DTXD_CALL_ERROR;
}

static bool
phase_is_final(int phase)
{
	return phase == DTX_PHASE_COMMIT || phase == DTX_PHASE_ABORT ||
	    phase == DTX_PHASE_COMPENSATE;
}

// The message of a call that got no answer: it names the participant and
// says whether it could not be reached or did not answer in time.
static void
no_answer_message(dtxd_txmgr *m, const txn *tx, const txn_branch *mb,
    const mcall *mc, char *msg, size_t cap)
{
	char why[64];

	if (mc->rv == DTX_EUNREACHABLE && mb->peer != NULL) {
		dtxd_dispatcher_peer_reason(mb->peer, why, sizeof(why));
		snprintf(msg, cap, "participant %.160s unreachable: %s",
		    mb->endpoint, why);
	} else if (mc->rv == DTX_ETIMEDOUT) {
		snprintf(msg, cap,
		    "participant %.180s did not answer within %u ms",
		    mb->endpoint, (unsigned)tx->core.call_timeout_ms);
	} else {
		snprintf(msg, cap, "no answer from %.180s: %s", mb->endpoint,
		    dtx_strerror(mc->rv));
	}
	(void)m;
}

// Logs the end of branch b's call once the engine has taken it: a failure
// (no answer, RETRY, anything but OK from phase two or compensation) is a
// WARN the first time in a row, then INFO at the 2nd, 4th, 8th... failure
// and DEBUG in between, so a participant that is down for an hour costs a
// dozen lines per branch; an answer after failures is an INFO. A refused
// forward call is the business saying no, not a failure.
static void
log_call_end(txn *tx, uint32_t b, const mcall *mc)
{
	txn_branch *mb   = &tx->mb[b];
	bool        done = (tx->core.br[b].done & DTXD_DONE_FINAL) != 0;
	bool        ok;
	int         level;

	if (phase_is_final(mc->phase)) {
		ok = done;
	} else {
		ok = mc->rv == 0 &&
		    (mc->status == DTX_BRANCH_OK ||
		        mc->status == DTX_BRANCH_REFUSED);
	}
	if (ok) {
		if (mb->fails > 0) {
			dtxd_txlog(DTXI_LOG_INFO, "branch_call_recovered", tx,
			    (int)b, "answered after %u failed calls",
			    (unsigned)mb->fails);
		}
		mb->fails = 0;
		return;
	}
	mb->fails++;
	level = mb->fails == 1                   ? DTXI_LOG_WARN
	    : (mb->fails & (mb->fails - 1)) == 0 ? DTXI_LOG_INFO
	                                         : DTXI_LOG_DEBUG;
	if (mc->rv != 0) {
		dtxd_txlog(level, "branch_call_failed", tx, (int)b,
		    "%s (%u in a row)", mb->message != NULL ? mb->message : "",
		    (unsigned)mb->fails);
	} else {
		dtxd_txlog(level, "branch_call_failed", tx, (int)b,
		    "answered %s%s%s (%u in a row)",
		    dtx_branch_status_name(mc->status),
		    mb->message != NULL ? ": " : "",
		    mb->message != NULL ? mb->message : "",
		    (unsigned)mb->fails);
	}
}

void
dtxd_act_on_call(dtxd_txmgr *m, mcall *mc)
{
	txn          *tx    = mc->tx;
	txn_branch   *mb    = &tx->mb[mc->branch];
	dtxi_crash_pt crash = DTXI_CRASH_NONE;
	dtxd_event    ev;

	dtxd_metrics_call(m->cfg.metrics, mc->phase, call_result(mc));
	// A settled branch's call ending late is a stale result: the
	// branch's message stays the operator's note.
	if (tx->in_table && !tx->finishing &&
	    (tx->core.br[mc->branch].done & DTXD_DONE_SETTLED) == 0) {
		memset(&ev, 0, sizeof(ev));
		ev.now_ms = dtxi_now_ms();
		ev.branch = mc->branch;
		ev.phase  = mc->phase;
		if (mc->rv == 0) {
			ev.kind         = DTXD_EV_REPLY;
			ev.status       = mc->status;
			mb->last_status = mc->status;
			mb->last_phase  = mc->phase;
			mb->error       = 0;
			free(mb->message);
			mb->message = mc->message;
			mc->message = NULL;
			keep_reply(mb, mc);
			if (mc->status == DTX_BRANCH_OK) {
				crash = mc->phase == DTX_PHASE_COMMIT
				    ? DTXI_CRASH_AFTER_FIRST_COMMIT
				    : mc->phase == DTX_PHASE_EXECUTE
				    ? DTXI_CRASH_AFTER_FIRST_EXECUTE
				    : mc->phase == DTX_PHASE_COMPENSATE
				    ? DTXI_CRASH_AFTER_FIRST_COMPENSATE
				    : DTXI_CRASH_NONE;
			}
		} else {
			char msg[DTX_MESSAGE_MAX + 1];
			ev.kind         = DTXD_EV_FAILED;
			mb->last_status = DTX_BRANCH_NONE;
			mb->last_phase  = mc->phase;
			mb->error       = mc->rv;
			no_answer_message(m, tx, mb, mc, msg, sizeof(msg));
			free(mb->message);
			// The dispatcher's reason, when it has one, names the
			// endpoint itself.
			mb->message =
			    mc->message != NULL ? mc->message : dup_str(msg);
			mc->message = NULL;
		}
		dtxd_act_event(m, tx, &ev, crash);
		log_call_end(tx, mc->branch, mc);
		// A participant that answers (RETRY, say) is alive and is
		// given the time budget; one that does not is not waited for.
		if (phase_is_final(mc->phase) && mc->rv != 0 &&
		    (tx->core.br[mc->branch].done & DTXD_DONE_FINAL) == 0) {
			tx->delivery_failed = true;
			tell_decided(m, tx, ev.now_ms);
		}
	}
	dtxd_act_free_call(mc);
	dtxd_txn_release(tx);
}

void
dtxd_act_on_write(dtxd_txmgr *m, mwrite *w)
{
	txn *tx = w->tx;
	char msg[DTX_MESSAGE_MAX + 1];

	if (w->rv == 0 && w->op.sync && w->seq > tx->synced_seq) {
		tx->synced_seq = w->seq;
	}
	// A create whose transaction was replaced meanwhile (txmgr.c's
	// on_write) must not start.
	if (!tx->in_table && w->purpose == W_CREATE) {
		w->purpose = 0;
	}
	switch (w->purpose) {
	case W_CREATE:
		if (w->rv != 0) {
			// Never accepted: tell whoever waits, and forget it.
			snprintf(msg, sizeof(msg),
			    "cannot store the transaction: %s",
			    dtx_strerror(w->rv));
			dtxd_waiters_fail(tx, w->rv, msg);
			dtxd_act_forget(m, tx);
			break;
		}
		tx->created = true;
		atomic_fetch_add(&m->stats.started, 1);
		dtxd_metrics_tx_started(m->cfg.metrics, tx->core.mode);
		dtxd_txlog(DTXI_LOG_DEBUG, "tx_accepted", tx, -1,
		    "%u branches", (unsigned)tx->core.nbranches);
		dtxd_waiters_reply(m, tx, WAIT_ACCEPT);
		dtxd_event ev = {
		    .kind = DTXD_EV_START, .now_ms = dtxi_now_ms()};
		dtxd_act_event(m, tx, &ev, DTXI_CRASH_NONE);
		break;
	case W_PERSIST:
		if (w->rv != 0) {
			dtxd_txlog(DTXI_LOG_ERROR, "store_write_failed", tx,
			    -1,
			    "writing the record failed: %s; retrying in a "
			    "second",
			    dtx_strerror(w->rv));
			schedule_redo(m, tx, W_PERSIST, w->op.sync, w->wait);
			break;
		}
		waiters_reply_synced(m, tx);
		if (w->wait && tx->in_table && !tx->finishing) {
			if (tx->core.state == DTX_STATE_COMMITTING) {
				dtxi_crash_point(&m->crash,
				    DTXI_CRASH_AFTER_COMMIT_DECISION);
			} else if (tx->core.state == DTX_STATE_COMPENSATING) {
				dtxi_crash_point(&m->crash,
				    DTXI_CRASH_AFTER_COMPENSATE_DECISION);
			}
			dtxd_event pev = {.kind = DTXD_EV_PERSISTED,
			    .now_ms             = dtxi_now_ms()};
			dtxd_act_event(m, tx, &pev, DTXI_CRASH_NONE);
		}
		break;
	case W_FINISH:
		if (w->rv != 0) {
			dtxd_txlog(DTXI_LOG_ERROR, "store_write_failed", tx,
			    -1,
			    "writing the final record failed: %s; retrying in "
			    "a second",
			    dtx_strerror(w->rv));
			schedule_redo(m, tx, W_FINISH, w->op.sync, false);
			break;
		}
		atomic_fetch_add(&m->stats.finished, 1);
		tx->final = true;
		dtxd_waiters_reply(m, tx, 0);
		if (tx->in_table) {
			dtxd_act_forget(m, tx);
		}
		break;
	}
	dtxd_act_free_write(w);
	dtxd_txn_release(tx);
}

void
dtxd_act_on_timer(dtxd_txmgr *m, txn *tx, int64_t now)
{
	if (!tx->in_table) {
		return;
	}
	if (tx->redo != 0 && tx->redo_at <= now) {
		int  purpose  = tx->redo;
		bool sync     = tx->redo_sync;
		bool wait     = tx->redo_wait;
		tx->redo      = 0;
		tx->redo_sync = false;
		tx->redo_wait = false;
		write_or_redo(m, tx, purpose, sync, wait);
	}
	// Status requests that long-poll and ran out of time get the state
	// as it is.
	waiter **pp = &tx->waiters;
	while (*pp != NULL) {
		waiter *w = *pp;
		if (w->kind == WAIT_STATUS && w->deadline_ms <= now) {
			*pp = w->next;
			dtxd_act_reply_tx(m, w->r, tx);
			free(w);
		} else {
			pp = &w->next;
		}
	}
	if (tx->created && !tx->finishing && tx->core.wake_ms != 0 &&
	    tx->core.wake_ms <= now) {
		dtxd_event ev = {.kind = DTXD_EV_TIMER, .now_ms = now};
		dtxd_act_event(m, tx, &ev, DTXI_CRASH_NONE);
	}
	// The decided reply's time limit has its own timer, with nothing
	// for the engine to do then: a call to a participant that is down
	// may still be waiting for its connection.
	tell_decided(m, tx, now);
}
