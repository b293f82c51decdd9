// SPDX-License-Identifier: MIT
//
// txtable: the loop's transactions in memory. The gid table finds what was
// inserted and not what was removed, also past its first growth; a
// transaction lives exactly as long as its references (the table's, the
// timer heap's, the caller's), and the live list holds it for that long;
// the timer heap hands out due transactions earliest first, follows a
// changed wake-up time either way, and forgets a transaction whose time
// is set to 0. ASan (tests/run.sh) proves that every path frees what it
// should, once.

#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "txtable.h"

static dtxd_txtable t;

static void
setup(void)
{
	cr_assert_eq(dtxd_txtable_init(&t), 0);
}

static void
teardown(void)
{
	dtxd_txtable_fini(&t);
}

TestSuite(txtable, .init = setup, .fini = teardown);

static txn *
new_tx(const char *gid)
{
	txn *tx = dtxd_txn_alloc(&t, 2);

	cr_assert_not_null(tx);
	snprintf(tx->gid, sizeof(tx->gid), "%s", gid);
	return tx;
}

static bool
live(const txn *tx)
{
	for (const txn *x = t.all; x != NULL; x = x->anext) {
		if (x == tx) {
			return true;
		}
	}
	return false;
}

Test(txtable, finds_what_was_inserted_also_past_growth_and_not_what_left)
{
	enum { N = 5000 }; // more than the first 1024 buckets
	static txn *v[N];
	char        gid[DTX_GID_MAX + 1];

	for (int i = 0; i < N; i++) {
		snprintf(gid, sizeof(gid), "g%05d", i);
		v[i] = new_tx(gid);
		dtxd_txtable_insert(&t, v[i]);
		dtxd_txn_release(v[i]); // the table's reference remains
		cr_assert(v[i]->in_table);
	}
	cr_assert_eq(atomic_load(&t.active), N);
	cr_assert_gt(t.tsize, 1024, "the table did not grow");
	for (int i = 0; i < N; i++) {
		snprintf(gid, sizeof(gid), "g%05d", i);
		cr_assert_eq(dtxd_txtable_find(&t, gid), v[i], "%s", gid);
	}
	cr_assert_null(dtxd_txtable_find(&t, "g99999"));
	cr_assert_null(dtxd_txtable_find(&t, "g0000"));
	for (int i = 0; i < N; i += 2) {
		dtxd_txtable_remove(&t, v[i]); // frees it: last reference
	}
	cr_assert_eq(atomic_load(&t.active), N / 2);
	for (int i = 0; i < N; i++) {
		snprintf(gid, sizeof(gid), "g%05d", i);
		if (i % 2 == 0) {
			cr_assert_null(dtxd_txtable_find(&t, gid), "%s", gid);
		} else {
			cr_assert_eq(dtxd_txtable_find(&t, gid), v[i]);
		}
	}
}

Test(txtable, a_transaction_lives_as_long_as_its_references)
{
	txn *tx = new_tx("a"); // the caller's reference

	cr_assert_eq(tx->refs, 1);
	cr_assert(live(tx));
	dtxd_txtable_insert(&t, tx);
	dtxd_txtable_timer_set(&t, tx, 500);
	cr_assert_eq(tx->refs, 3);
	dtxd_txtable_timer_set(&t, tx, 700); // a move takes no second one
	cr_assert_eq(tx->refs, 3);
	dtxd_txtable_remove(&t, tx); // out of the table and the heap
	cr_assert_eq(tx->refs, 1);
	cr_assert_eq(tx->hidx, NO_HEAP);
	cr_assert(!tx->in_table);
	cr_assert_null(dtxd_txtable_find(&t, "a"));
	cr_assert(live(tx), "freed while the caller holds it");
	dtxd_txn_release(tx);
	cr_assert_null(t.all, "the last reference did not free it");
}

Test(txtable, hands_out_due_transactions_earliest_first)
{
	static const int64_t when[] = {50, 10, 40, 30, 20, 60, 15, 45};
	enum { N = sizeof(when) / sizeof(when[0]) };
	txn *v[N];
	char gid[8];

	for (int i = 0; i < N; i++) {
		snprintf(gid, sizeof(gid), "t%d", i);
		v[i] = new_tx(gid);
		dtxd_txtable_timer_set(&t, v[i], when[i]);
		dtxd_txn_release(v[i]); // the heap's reference remains
	}
	cr_assert_eq(dtxd_txtable_next_wake(&t), 10);
	cr_assert_null(dtxd_txtable_pop_due(&t, 9));
	// t0 moves from 50 to 5 (up), t1 from 10 to 55 (down), t5 leaves.
	dtxd_txtable_timer_set(&t, v[0], 5);
	dtxd_txtable_timer_set(&t, v[1], 55);
	txn *gone = v[5];
	gone->refs++;
	dtxd_txtable_timer_set(&t, gone, 0);
	cr_assert_eq(gone->hidx, NO_HEAP);
	dtxd_txn_release(gone); // freed: the heap held its last reference

	static const int64_t order[] = {5, 15, 20, 30, 40, 45, 55};
	int64_t              last    = 0;
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		cr_assert_eq(dtxd_txtable_next_wake(&t), order[k]);
		txn *tx = dtxd_txtable_pop_due(&t, 1000);
		cr_assert_not_null(tx);
		cr_assert_eq(tx->twhen, order[k]);
		cr_assert_geq(tx->twhen, last);
		cr_assert_eq(tx->hidx, NO_HEAP);
		last = tx->twhen;
		dtxd_txn_release(tx);
	}
	cr_assert_null(dtxd_txtable_pop_due(&t, 1000));
	cr_assert_eq(dtxd_txtable_next_wake(&t), 0);
	cr_assert_null(t.all, "popped transactions were not freed");
}

Test(txtable, keeps_heap_order_through_many_random_moves)
{
	enum { N = 3000 };
	static txn *v[N];
	uint64_t    s = 88172645463325252ull;
	char        gid[16];

	for (int i = 0; i < N; i++) {
		snprintf(gid, sizeof(gid), "r%d", i);
		v[i] = new_tx(gid);
		dtxd_txtable_insert(&t, v[i]);
		dtxd_txn_release(v[i]);
	}
	for (int round = 0; round < 20000; round++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		txn    *tx   = v[s % N];
		int64_t when = (int64_t)((s >> 20) % 100000);
		dtxd_txtable_timer_set(&t, tx, when); // 0 now and then too
	}
	int64_t last = 0;
	txn    *tx;
	while ((tx = dtxd_txtable_pop_due(&t, INT64_MAX)) != NULL) {
		cr_assert_geq(tx->twhen, last);
		last = tx->twhen;
		dtxd_txn_release(tx);
	}
	cr_assert_eq(t.hlen, 0);
	cr_assert_eq(atomic_load(&t.active), N, "timers took table entries");
}

Test(txtable, fini_frees_everything_whatever_its_counts)
{
	txn    *a = new_tx("a");
	txn    *b = new_tx("b");
	waiter *w = calloc(1, sizeof(*w));

	cr_assert_not_null(w);
	dtxd_txtable_insert(&t, a);
	dtxd_txtable_timer_set(&t, a, 10);
	b->waiters = w; // a parked request's node goes with it
	b->refs += 5;   // references that will never be released
	// teardown's fini frees a, b and w: ASan would report a leak.
}
