// SPDX-License-Identifier: MIT
//
// txtable: the loop's memory of live transactions. It owns every txn: the
// gid table that finds one, the list of all of them (for shutdown), their
// reference counts, and the timer heap that wakes each one when it needs
// the loop. It is a pure data structure, used by the loop only; it
// knows nothing of engines, the store or the network.
//
// Lifetime. A txn is referenced by the gid table, by every branch call and
// store write in flight for it, by a read of the store for it, and by its
// timer entry; all are counted in refs. A finished transaction leaves the
// table once its final record is written and is freed when the last
// reference goes (dtxd_txn_release).

#ifndef DTXD_TXTABLE_H
#define DTXD_TXTABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "engine.h"

struct dtxd_peer;
struct dtxd_sreq;

// A request parked on a transaction until it can be answered: a Submit
// until the transaction is accepted, until its outcome, or until its
// outcome is decided (actions.h says when); a long-polling Status; a
// Settle until its record is synced.
enum { WAIT_ACCEPT = 1, WAIT_OUTCOME, WAIT_STATUS, WAIT_DECIDED, WAIT_SYNCED };

typedef struct waiter {
	struct waiter    *next;
	struct dtxd_sreq *r;
	int               kind;        // WAIT_*
	int64_t           deadline_ms; // WAIT_STATUS
	uint64_t          seq;         // WAIT_SYNCED: the write it waits for
} waiter;

// What the loop keeps of one branch beyond the engine's dtxd_branch.
typedef struct txn_branch {
	char             *endpoint;
	char             *method;
	uint8_t          *payload;
	size_t            payload_len;
	struct dtxd_peer *peer;
	int               last_status;
	int               last_phase;
	// The last reply's message, malloc'd, or NULL when it had none (most
	// replies): a fixed buffer here was a quarter of a transaction's
	// memory.
	char    *message;
	uint8_t *rpayload;
	size_t   rpayload_len;
	// The forward phase's (prepare or execute) last reply, which the
	// client reads next to the last phase's status (dtx_branch_result).
	// While that reply is also the last one, rpayload is NULL and
	// last_is_fwd says to send fpayload as both.
	int      fwd_status;
	uint8_t *fpayload;
	size_t   fpayload_len;
	bool     last_is_fwd;
	int      error;      // DTX_E* of the last call without answer, or 0
	uint32_t fails;      // failed calls in a row (for the log)
	int64_t  settled_ms; // settled by an operator then (note: message)
} txn_branch;

// One live transaction, as the loop sees it.
typedef struct txn txn;
struct txn {
	txn        *hnext;          // gid table chain
	txn        *anext, **aprev; // list of every live transaction
	char        gid[DTX_GID_MAX + 1];
	dtxd_txcore core;
	txn_branch *mb;
	uint64_t    content_hash;
	uint32_t    timeout_ms;
	bool        wait;
	int64_t     created_ms;
	int64_t     updated_ms;
	uint32_t    refs;
	bool        loading;     // a Submit's read of the store is in flight
	bool        created;     // create record written
	bool        in_table;    //
	bool        finishing;   // FINISH write issued
	bool        final;       // the final record is written
	bool        to_resume;   // adopted, its RECOVER not yet handled
	bool        recovering;  // resumed and counted as resuming
	bool        create_sync; // the create write is to be synced
	bool        adopted;     // taken over or recovered, not yet gone
	// The session that runs it and at which epoch (store.h): every
	// write names both. 0 with one dtxd on RocksDB.
	uint64_t owner;
	uint64_t epoch;
	txn     *rnext; // in the list of adopted, not yet resumed
	size_t   hidx;  // position in the timer heap, or NO_HEAP
	int64_t  twhen; // when the heap wakes it
	// A failed write to redo at redo_at: PERSIST (with these flags) or
	// FINISH.
	int     redo;
	int64_t redo_at;
	bool    redo_sync;
	bool    redo_wait;
	waiter *waiters;
	waiter *deferred; // requests held while loading, handled after
	// Writes issued for it, and the last one known synced (WAIT_SYNCED).
	uint64_t wseq;
	uint64_t synced_seq;
	bool delivery_failed; // a phase-two/compensation call got no answer
	bool stuck_counted;   // counted in the STUCK gauge
	char traceparent[DTXI_TRACEPARENT_MAX + 1]; // or ""
};

#define NO_HEAP SIZE_MAX

typedef struct dtxd_txtable {
	txn  **table;
	size_t tsize; // power of two
	size_t tcount;
	txn   *all;
	txn  **heap; // min-heap on twhen; each entry holds a reference
	size_t hlen;
	size_t hcap;
	// Transactions in the table; read by other threads (Stats).
	_Atomic uint64_t active;
} dtxd_txtable;

// Errors: DTX_ENOMEM.
int dtxd_txtable_init(dtxd_txtable *t);

// Frees every transaction whatever its count, with the waiters' nodes
// (their requests are the server's, already answered or dropped).
void dtxd_txtable_fini(dtxd_txtable *t);

// A new transaction of nbranches branches, with one reference (the
// caller's) and a fresh rng seed, on the list of all. NULL without memory.
txn *dtxd_txn_alloc(dtxd_txtable *t, uint32_t nbranches);

// Drops one reference; the last frees the transaction.
void dtxd_txn_release(txn *tx);

// The transaction of gid in the table, or NULL.
txn *dtxd_txtable_find(dtxd_txtable *t, const char *gid);

// Puts tx into the table (taking a reference). Its gid must not be there.
void dtxd_txtable_insert(dtxd_txtable *t, txn *tx);

// Takes tx out of the table and the timer heap, dropping their
// references.
void dtxd_txtable_remove(dtxd_txtable *t, txn *tx);

// Sets tx's wake-up time; 0 takes it out of the heap. The heap holds a
// transaction at most once, with one reference.
void dtxd_txtable_timer_set(dtxd_txtable *t, txn *tx, int64_t when);

// The earliest wake-up time in the heap, or 0 when it is empty.
int64_t dtxd_txtable_next_wake(const dtxd_txtable *t);

// Takes the earliest transaction due at now out of the heap and returns
// it with the heap's reference (the caller releases it), or NULL.
txn *dtxd_txtable_pop_due(dtxd_txtable *t, int64_t now);

#endif // DTXD_TXTABLE_H
