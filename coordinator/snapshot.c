// SPDX-License-Identifier: MIT
//
// snapshot: the live transactions as the status page's JSON (see
// snapshot.h). Selecting STUCK first and the oldest next sorts the
// matching transactions: a few thousand pointers at most, a fraction of a
// millisecond of the loop, and only when someone looks at the page.

#include "snapshot.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"

static int
order(const void *a, const void *b)
{
	const txn *x = *(const txn *const *)a;
	const txn *y = *(const txn *const *)b;

	if (x->core.stuck != y->core.stuck) {
		return x->core.stuck ? -1 : 1;
	}
	if (x->created_ms != y->created_ms) {
		return x->created_ms < y->created_ms ? -1 : 1;
	}
	return strcmp(x->gid, y->gid);
}

static void
branch_json(dtxd_textbuf *t, const txn *tx, uint32_t i)
{
	const dtxd_branch *br = &tx->core.br[i];
	const txn_branch  *mb = &tx->mb[i];

	dtxd_textbuf_printf(
	    t, "%s{\"id\":%u,\"endpoint\":", i > 0 ? "," : "", (unsigned)i);
	dtxd_textbuf_json_str(t, mb->endpoint);
	dtxd_textbuf_puts(t, ",\"method\":");
	dtxd_textbuf_json_str(t, mb->method);
	dtxd_textbuf_puts(t, ",\"phase\":");
	dtxd_textbuf_json_str(
	    t, br->phase != 0 ? dtx_phase_name(br->phase) : "");
	dtxd_textbuf_puts(t, ",\"status\":");
	dtxd_textbuf_json_str(t, dtx_branch_status_name(mb->last_status));
	dtxd_textbuf_printf(
	    t, ",\"attempts\":%u,\"error\":", (unsigned)br->attempts);
	dtxd_textbuf_json_str(
	    t, mb->error != 0 ? dtx_strerror(mb->error) : "");
	dtxd_textbuf_puts(t, ",\"message\":");
	dtxd_textbuf_json_str(t, mb->message != NULL ? mb->message : "");
	dtxd_textbuf_printf(
	    t, ",\"settled_ms\":%lld}", (long long)mb->settled_ms);
}

static void
tx_json(dtxd_textbuf *t, const txn *tx, bool first)
{
	dtxd_textbuf_puts(t, first ? "{\"gid\":" : ",{\"gid\":");
	dtxd_textbuf_json_str(t, tx->gid);
	dtxd_textbuf_printf(t,
	    ",\"mode\":\"%s\",\"state\":\"%s\",\"stuck\":%s,"
	    "\"created_ms\":%lld,\"updated_ms\":%lld,"
	    "\"traceparent\":",
	    dtx_mode_name(tx->core.mode), dtx_state_name(tx->core.state),
	    tx->core.stuck ? "true" : "false", (long long)tx->created_ms,
	    (long long)tx->updated_ms);
	dtxd_textbuf_json_str(t, tx->traceparent);
	dtxd_textbuf_puts(t, ",\"branches\":[");
	for (uint32_t i = 0; i < tx->core.nbranches; i++) {
		branch_json(t, tx, i);
	}
	dtxd_textbuf_puts(t, "]}");
}

void
dtxd_snapshot_build(
    dtxd_txmgr *m, const dtxd_snapshot_query *q, dtxd_textbuf *t)
{
	size_t   n = 0, cap = 0, live = 0, stuck = 0, shown;
	txn    **v     = NULL;
	uint32_t limit = q->limit == 0 ? 200 : q->limit;

	for (txn *tx = m->tab.all; tx != NULL; tx = tx->anext) {
		if (!tx->in_table || !tx->created || tx->loading) {
			continue;
		}
		live++;
		stuck += tx->core.stuck ? 1 : 0;
		if ((q->state != 0 && tx->core.state != q->state) ||
		    (q->stuck && !tx->core.stuck)) {
			continue;
		}
		if (n == cap) {
			size_t nc = cap == 0 ? 256 : cap * 2;
			txn  **nv = realloc(v, nc * sizeof(*nv));
			if (nv == NULL) {
				t->failed = true;
				break;
			}
			v   = nv;
			cap = nc;
		}
		v[n++] = tx;
	}
	if (n > 0) {
		qsort(v, n, sizeof(*v), order);
	}
	shown = n < limit ? n : limit;
	dtxd_textbuf_printf(t,
	    "{\"now_ms\":%lld,\"live\":%zu,\"stuck\":%zu,\"shown\":%zu,"
	    "\"txs\":[",
	    (long long)dtxi_now_ms(), live, stuck, shown);
	for (size_t i = 0; i < shown; i++) {
		tx_json(t, v[i], i == 0);
	}
	dtxd_textbuf_puts(t, "]}");
	free(v);
}

void
dtxd_snapshot_answer(dtxd_txmgr *m, const dtxd_snapshot_query *q,
    dtxd_snapshot_fn fn, void *arg)
{
	dtxd_textbuf t;

	dtxd_textbuf_init(&t);
	dtxd_snapshot_build(m, q, &t);
	if (t.failed) {
		fn(arg, NULL, 0);
	} else {
		fn(arg, t.buf, t.len);
	}
	dtxd_textbuf_fini(&t);
}
