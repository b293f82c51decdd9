// SPDX-License-Identifier: MIT
//
// txtable: gid hash table, live list, reference counts and the timer
// min-heap of the loop's transactions (see txtable.h).
//
// The timer heap holds each transaction at most once, at the earliest of
// the times it needs the loop: its engine's wake-up, a write to redo, a
// long-polling status request's deadline. A transaction leaves the heap
// when it finishes, so no finished transaction lingers until some old
// deadline.

#include "txtable.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "random.h"

static uint64_t
gid_hash(const char *gid)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)gid; *p; p++) {
		h = (h ^ *p) * 1099511628211ULL;
	}
	return h;
}

int
dtxd_txtable_init(dtxd_txtable *t)
{
	memset(t, 0, sizeof(*t));
	t->tsize = 1024;
	t->table = calloc(t->tsize, sizeof(*t->table));
	if (t->table == NULL) {
		return DTX_ENOMEM;
	}
	atomic_init(&t->active, 0);
	return 0;
}

static void
waiters_free(waiter *w)
{
	while (w != NULL) {
		waiter *next = w->next;
		free(w);
		w = next;
	}
}

static void
txn_free(txn *tx)
{
	if (tx->mb != NULL) {
		for (uint32_t i = 0; i < tx->core.nbranches; i++) {
			free(tx->mb[i].endpoint);
			free(tx->mb[i].method);
			free(tx->mb[i].payload);
			free(tx->mb[i].rpayload);
			free(tx->mb[i].fpayload);
			free(tx->mb[i].message);
		}
	}
	waiters_free(tx->waiters);
	waiters_free(tx->deferred);
	free(tx->mb);
	free(tx->core.br);
	free(tx);
}

void
dtxd_txtable_fini(dtxd_txtable *t)
{
	while (t->all != NULL) {
		txn *tx = t->all;
		t->all  = tx->anext;
		txn_free(tx);
	}
	free(t->heap);
	free(t->table);
	t->heap  = NULL;
	t->table = NULL;
}

txn *
dtxd_txn_alloc(dtxd_txtable *t, uint32_t nbranches)
{
	txn *tx = calloc(1, sizeof(*tx));
	if (tx == NULL) {
		return NULL;
	}
	tx->core.br = calloc(nbranches, sizeof(*tx->core.br));
	tx->mb      = calloc(nbranches, sizeof(*tx->mb));
	if (tx->core.br == NULL || tx->mb == NULL) {
		free(tx->core.br);
		free(tx->mb);
		free(tx);
		return NULL;
	}
	tx->core.nbranches = nbranches;
	tx->hidx           = NO_HEAP;
	tx->refs           = 1;
	do {
		dtxi_random(&tx->core.rng, sizeof(tx->core.rng));
	} while (tx->core.rng == 0);
	// Linked into the list of live transactions; the list itself holds
	// no reference.
	tx->anext = t->all;
	tx->aprev = &t->all;
	if (t->all != NULL) {
		t->all->aprev = &tx->anext;
	}
	t->all = tx;
	return tx;
}

void
dtxd_txn_release(txn *tx)
{
	if (--tx->refs == 0) {
		*tx->aprev = tx->anext;
		if (tx->anext != NULL) {
			tx->anext->aprev = tx->aprev;
		}
		txn_free(tx);
	}
}

txn *
dtxd_txtable_find(dtxd_txtable *t, const char *gid)
{
	txn *tx = t->table[gid_hash(gid) & (t->tsize - 1)];
	while (tx != NULL && strcmp(tx->gid, gid) != 0) {
		tx = tx->hnext;
	}
	return tx;
}

static void
table_grow(dtxd_txtable *t)
{
	size_t nsize = t->tsize * 2;
	txn  **nt    = calloc(nsize, sizeof(*nt));
	if (nt == NULL) {
		return; // longer chains, still correct
	}
	for (size_t i = 0; i < t->tsize; i++) {
		txn *tx = t->table[i];
		while (tx != NULL) {
			txn   *next = tx->hnext;
			size_t b    = gid_hash(tx->gid) & (nsize - 1);
			tx->hnext   = nt[b];
			nt[b]       = tx;
			tx          = next;
		}
	}
	free(t->table);
	t->table = nt;
	t->tsize = nsize;
}

void
dtxd_txtable_insert(dtxd_txtable *t, txn *tx)
{
	if (t->tcount >= t->tsize) {
		table_grow(t);
	}
	size_t b     = gid_hash(tx->gid) & (t->tsize - 1);
	tx->hnext    = t->table[b];
	t->table[b]  = tx;
	tx->in_table = true;
	tx->refs++;
	t->tcount++;
	atomic_fetch_add(&t->active, 1);
}

void
dtxd_txtable_remove(dtxd_txtable *t, txn *tx)
{
	dtxd_txtable_timer_set(t, tx, 0);
	txn **pp = &t->table[gid_hash(tx->gid) & (t->tsize - 1)];
	while (*pp != tx) {
		pp = &(*pp)->hnext;
	}
	*pp          = tx->hnext;
	tx->in_table = false;
	t->tcount--;
	atomic_fetch_sub(&t->active, 1);
	dtxd_txn_release(tx);
}

static void
heap_place(dtxd_txtable *t, size_t i, txn *tx)
{
	t->heap[i] = tx;
	tx->hidx   = i;
}

static void
heap_up(dtxd_txtable *t, size_t i)
{
	txn *tx = t->heap[i];
	while (i > 0 && t->heap[(i - 1) / 2]->twhen > tx->twhen) {
		heap_place(t, i, t->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_place(t, i, tx);
}

static void
heap_down(dtxd_txtable *t, size_t i)
{
	txn *tx = t->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, c = l;
		if (l >= t->hlen) {
			break;
		}
		if (r < t->hlen && t->heap[r]->twhen < t->heap[l]->twhen) {
			c = r;
		}
		if (t->heap[c]->twhen >= tx->twhen) {
			break;
		}
		heap_place(t, i, t->heap[c]);
		i = c;
	}
	heap_place(t, i, tx);
}

void
dtxd_txtable_timer_set(dtxd_txtable *t, txn *tx, int64_t when)
{
	if (when == 0) {
		if (tx->hidx == NO_HEAP) {
			return;
		}
		size_t i    = tx->hidx;
		txn   *last = t->heap[--t->hlen];
		tx->hidx    = NO_HEAP;
		if (last != tx) {
			heap_place(t, i, last);
			heap_up(t, i);
			heap_down(t, last->hidx);
		}
		dtxd_txn_release(tx);
		return;
	}
	if (tx->hidx != NO_HEAP) {
		int64_t old = tx->twhen;
		tx->twhen   = when;
		if (when < old) {
			heap_up(t, tx->hidx);
		} else if (when > old) {
			heap_down(t, tx->hidx);
		}
		return;
	}
	if (t->hlen == t->hcap) {
		size_t ncap = t->hcap == 0 ? 1024 : t->hcap * 2;
		txn  **nh   = realloc(t->heap, ncap * sizeof(*nh));
		if (nh == NULL) {
			// Without a timer the transaction would stall:
			// there is no safe way on, so say it loudly.
			DTXI_ERROR("txtable: out of memory for a timer of %s",
			    tx->gid);
			return;
		}
		t->heap = nh;
		t->hcap = ncap;
	}
	tx->refs++;
	tx->twhen = when;
	heap_place(t, t->hlen++, tx);
	heap_up(t, tx->hidx);
}

int64_t
dtxd_txtable_next_wake(const dtxd_txtable *t)
{
	return t->hlen > 0 ? t->heap[0]->twhen : 0;
}

txn *
dtxd_txtable_pop_due(dtxd_txtable *t, int64_t now)
{
	txn *tx;

	if (t->hlen == 0 || t->heap[0]->twhen > now) {
		return NULL;
	}
	tx = t->heap[0];
	tx->refs++; // the caller's, in place of the heap's
	dtxd_txtable_timer_set(t, tx, 0);
	return tx;
}
