// SPDX-License-Identifier: MIT
//
// engine_drv: the engine suites' driver (see engine_drv.h).

#include "engine_drv.h"

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

static const char *
phase_short(int phase)
{
	switch (phase) {
	case DTX_PHASE_PREPARE:
		return "prepare";
	case DTX_PHASE_COMMIT:
		return "commit";
	case DTX_PHASE_ABORT:
		return "abort";
	case DTX_PHASE_EXECUTE:
		return "execute";
	case DTX_PHASE_COMPENSATE:
		return "compensate";
	}
	return "?";
}

static void
render(struct drv *d)
{
	size_t len = 0;

	d->text[0] = '\0';
	for (uint32_t i = 0; i < d->out.n; i++) {
		const dtxd_action *a   = &d->out.v[i];
		char              *p   = d->text + len;
		size_t             cap = sizeof(d->text) - len;
		const char        *sep = i == 0 ? "" : " ";
		int                k   = 0;

		switch (a->kind) {
		case DTXD_ACT_SEND:
			k = snprintf(p, cap, "%s%s(%u)", sep,
			    phase_short(a->phase), (unsigned)a->branch);
			if (a->attempt != 1 && k > 0 && (size_t)k < cap) {
				k += snprintf(p + k, cap - (size_t)k, "#%u",
				    (unsigned)a->attempt);
			}
			break;
		case DTXD_ACT_PERSIST:
			k = snprintf(p, cap, "%spersist%s", sep,
			    a->sync ? (a->wait ? "(sync,wait)" : "(sync)")
			            : (a->wait ? "(wait)" : ""));
			break;
		case DTXD_ACT_FINISH:
			k = snprintf(p, cap, "%sfinish", sep);
			break;
		}
		cr_assert(k > 0 && (size_t)k < cap, "action text too long");
		len += (size_t)k;
	}
}

// The wake time the engine must have left, computed independently.
static int64_t
expected_wake(const dtxd_txcore *tx)
{
	int64_t w = 0;

	if (tx->state == DTX_STATE_COMMITTED ||
	    tx->state == DTX_STATE_ABORTED ||
	    tx->state == DTX_STATE_COMPENSATED) {
		return 0;
	}
	for (uint32_t i = 0; i < tx->nbranches && !tx->persisting; i++) {
		const dtxd_branch *b = &tx->br[i];
		if (!b->inflight && b->retry_at_ms != 0 &&
		    (w == 0 || b->retry_at_ms < w)) {
			w = b->retry_at_ms;
		}
	}
	if ((tx->state == DTX_STATE_PREPARING ||
	        tx->state == DTX_STATE_RUNNING) &&
	    tx->deadline_ms != 0 && (w == 0 || tx->deadline_ms < w)) {
		w = tx->deadline_ms;
	}
	return w;
}

// Saga groups, computed here independently: the first step of the group
// after the one of step b.
static uint32_t
next_group(const dtxd_txcore *tx, uint32_t b)
{
	for (b++; b < tx->nbranches && tx->br[b].same_group; b++) {
	}
	return b;
}

// The order of a saga's groups: an EXECUTE only once every earlier step
// executed OK, a COMPENSATE only once no later group has a step that may
// have run left to undo.
static void
check_group_order(const dtxd_txcore *tx, const dtxd_action *a)
{
	uint32_t b = a->branch;

	if (tx->mode != DTX_SAGA) {
		return;
	}
	if (a->phase == DTX_PHASE_EXECUTE) {
		uint32_t first = b;
		while (first > 0 && tx->br[first].same_group) {
			first--;
		}
		for (uint32_t i = 0; i < first; i++) {
			cr_assert(tx->br[i].done & DTXD_DONE_FWD,
			    "EXECUTE(%u) before step %u of an earlier group "
			    "executed",
			    b, i);
		}
	} else if (a->phase == DTX_PHASE_COMPENSATE) {
		for (uint32_t i = next_group(tx, b); i < tx->nbranches; i++) {
			uint32_t done = tx->br[i].done;
			cr_assert(!(done & DTXD_DONE_SENT) ||
			        (done & DTXD_DONE_FINAL),
			    "COMPENSATE(%u) before step %u of a later group "
			    "was undone",
			    b, i);
		}
	}
}

static void
check_rules(struct drv *d, bool was_persisting)
{
	bool sent[NB] = {false};

	for (uint32_t i = 0; i < d->out.n; i++) {
		const dtxd_action *a = &d->out.v[i];
		if (a->kind == DTXD_ACT_FINISH) {
			cr_assert_eq(i, d->out.n - 1, "FINISH is not last");
		}
		if (a->kind != DTXD_ACT_SEND) {
			continue;
		}
		cr_assert(!was_persisting, "sent while persisting");
		cr_assert(a->branch < d->tx.nbranches);
		cr_assert(!sent[a->branch], "two calls to one branch");
		sent[a->branch] = true;
		cr_assert_eq(a->timeout_ms, d->tx.call_timeout_ms);
		cr_assert(d->tx.br[a->branch].inflight);
		cr_assert_eq(a->attempt, d->tx.br[a->branch].attempts);
		cr_assert_eq(a->phase, d->tx.br[a->branch].phase);
		check_group_order(&d->tx, a);
		for (uint32_t j = 0; j < i; j++) {
			const dtxd_action *b = &d->out.v[j];
			cr_assert(!(b->kind == DTXD_ACT_PERSIST && b->wait),
			    "sent after PERSIST{wait}");
		}
	}
	cr_assert_eq(d->tx.wake_ms, expected_wake(&d->tx),
	    "wake_ms %lld, expected %lld", (long long)d->tx.wake_ms,
	    (long long)expected_wake(&d->tx));
	cr_assert_eq(d->out.rv == 0 || d->out.rv == DTX_ESTATE, true);
}

void
drv_init(struct drv *d, int mode, uint32_t n)
{
	cr_assert(n <= NB);
	memset(d, 0, sizeof(*d));
	d->tx.mode = mode;
	d->tx.state =
	    mode == DTX_2PC ? DTX_STATE_PREPARING : DTX_STATE_RUNNING;
	d->tx.nbranches       = n;
	d->tx.br              = d->br;
	d->tx.call_timeout_ms = 500;
	d->tx.retries         = 2;
	d->tx.rng             = 0x2545f4914f6cdd1dull;
	d->now                = 1000;
	dtxd_policy_init(&d->p);
}

// Feeds one event at d->now and returns the rendered actions.
const char *
drv_ev(struct drv *d, dtxd_ev_kind kind, uint32_t b, int phase, int status)
{
	dtxd_event ev;
	bool       was_persisting = d->tx.persisting;

	memset(&ev, 0, sizeof(ev));
	ev.kind   = kind;
	ev.now_ms = d->now;
	ev.branch = b;
	ev.phase  = phase;
	ev.status = status;
	d->out.n  = 1234; // the engine must reset the buffer
	d->out.rv = -1;
	dtxd_engine_handle(&d->tx, &d->p, &ev, &d->out);
	check_rules(d,
	    was_persisting && kind != DTXD_EV_PERSISTED &&
	        kind != DTXD_EV_RECOVER);
	render(d);
	return d->text;
}

// What the transaction manager does when it loads a record at start-up.
const char *
drv_recover(struct drv *d)
{
	for (uint32_t i = 0; i < d->tx.nbranches; i++) {
		d->br[i].inflight    = false;
		d->br[i].retry_at_ms = 0;
	}
	d->tx.persisting = false;
	return drv_ev(d, DTXD_EV_RECOVER, 0, 0, 0);
}

// Moves the clock to the earliest wake time and fires the timer.
const char *
drv_wake(struct drv *d)
{
	cr_assert_neq(d->tx.wake_ms, 0, "no timer wanted");
	d->now = d->tx.wake_ms;
	return TIMER(d);
}
