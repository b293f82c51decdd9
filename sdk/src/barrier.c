// SPDX-License-Identifier: MIT
//
// barrier: exactly-once callbacks for a participant, backed by its own
// RocksDB (the purge of old records and the settling of in-doubt branches
// run on resolver.c's thread). Each call that runs its callback ends in one
// atomic write that holds the business batch the callback staged and the
// barrier's record of the call; a later delivery of the same (gid, branch,
// phase) finds the record and replays it. Three kinds of key live under the
// user's prefix:
//
//   <prefix>r<gid>\0<branch:be32><phase:u8>  the record of one call:
//       version, result, flags (null operation), time written (be64),
//       message, reply payload
//   <prefix>p<gid>\0<branch:be32>            a branch prepared here and not
//       committed or aborted yet: time prepared, method, call payload (all
//       the resolver needs to run commit or abort itself)
//   <prefix>t<time:be64><gid>\0<branch:be32><phase:u8>  time index of the
//       records, oldest first, so that the purge reads only what expires
//
// Deliveries of one (gid, branch) are serialised by a striped mutex held
// from the first read to the end of the write: two concurrent duplicates
// cannot both miss the record and both run the callback, and a prepare
// racing its own abort sees either nothing or the whole abort.
//
// Group commit. The write is not synced: under the stripe (and the user's
// lock) it goes to the WAL's page cache and the memtable, where every later
// read sees it, and the locks are released. The call's reply then waits,
// off the worker, for a sync that covers it (gcommit.c: one sync for all
// the writes made since the previous one). This is early lock release, and
// it is safe for the reason it is in databases: RocksDB's WAL is one
// sequential log, recovered after a crash as a prefix, so a write made
// after reading another call's effect comes later in the log and is
// durable only together with it. A crash loses a suffix of the writes, and
// none of those was answered: to dtxd it is as if those calls never
// arrived. So every answer the barrier gives, not only those that wrote,
// carries a ticket, the store's sequence number after its reads and its
// write (dtx_reply.durable, reply.h): a replay, a refusal or a null
// operation decided on a record that is not durable yet leaves only once
// that record is. The one sync per call this replaces cost 3-5 times the
// throughput of a participant (issue 13). It relies on the store being
// recovered as a prefix of its WAL (RocksDB's default recovery mode, and
// writes through the WAL: dtx.h says what the user's options must keep).
//
// What each phase does with a record of its own: it replays it, except an
// OK of a prepare or execute whose branch was aborted or compensated here
// since. That one is answered REFUSED, not recorded (the OK record stays
// for the commit check): a stale duplicate must not tell a coordinator, or
// a node that took the transaction over, that the branch holds what its
// undo already released.
//
// What each phase does when it finds no record of its own:
//
//   PREPARE     aborted here -> REFUSED, recorded (no hanging reservation)
//               else run; OK also writes the prepared key
//   EXECUTE     compensated here -> REFUSED, recorded; else run
//   COMMIT      aborted here, or not prepared OK here -> REFUSED, not
//               recorded, callback not run (the protocol was broken: dtxd
//               retries, the transaction shows STUCK, an operator looks)
//               else run; deletes the prepared key
//   ABORT       committed here -> REFUSED, not recorded, not run (as above)
//               not prepared OK here -> null abort: OK, recorded, not run
//               else run; deletes the prepared key
//   COMPENSATE  not executed OK here -> null compensation: OK, recorded
//               else run
//
// Only OK and REFUSED are recorded, and REFUSED only from prepare and
// execute: dtxd treats a REFUSED commit, abort or compensate as transient
// and calls again, so replaying it would make the refusal permanent.
//
// Lock order: stripe mutex, then the user's lock (dtx_barrier_opts.lock);
// the group commit's lock is a leaf, never taken with either held but by
// the after-business-write crash point (tests).

#include "barrier_impl.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "clock.h"
#include "gcommit.h"
#include "log.h"
#include "reply.h"
#include "strs.h"

#define DEFAULT_PREFIX    "dtx/"
#define DEFAULT_RETENTION (7LL * 24 * 3600 * 1000)
#define REC_VERSION       1
#define FLAG_NULL         1u

// A decoded call record.
typedef struct record {
	bool        found;
	int         result; // DTX_OK or DTX_REFUSED
	unsigned    flags;
	int64_t     at_ms;
	const char *msg;
	size_t      msg_len;
	const void *payload;
	size_t      payload_len;
	char       *raw; // rocksdb_get's buffer, or NULL
} record;

void
dtxi_barrier_put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

uint32_t
dtxi_barrier_get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void
dtxi_barrier_put_be64(unsigned char *p, uint64_t v)
{
	dtxi_barrier_put_be32(p, (uint32_t)(v >> 32));
	dtxi_barrier_put_be32(p + 4, (uint32_t)v);
}

uint64_t
dtxi_barrier_get_be64(const unsigned char *p)
{
	return (uint64_t)dtxi_barrier_get_be32(p) << 32 |
	    dtxi_barrier_get_be32(p + 4);
}

// Key builders; each returns the key's length. buf has DTXI_BARRIER_KEY_MAX
// bytes and gid is at most DTX_GID_MAX bytes (the codec enforces it).
static size_t
key_tail(unsigned char *k, const char *gid, uint32_t branch)
{
	size_t g = strnlen(gid, DTX_GID_MAX);

	memcpy(k, gid, g);
	k[g] = '\0';
	dtxi_barrier_put_be32(k + g + 1, branch);
	return g + 5;
}

size_t
dtxi_barrier_key_record(const dtxi_barrier *b, unsigned char *k,
    const char *gid, uint32_t branch, int phase)
{
	size_t n = b->plen;

	memcpy(k, b->prefix, n);
	k[n++] = 'r';
	n += key_tail(k + n, gid, branch);
	k[n++] = (unsigned char)phase;
	return n;
}

size_t
dtxi_barrier_key_prepared(
    const dtxi_barrier *b, unsigned char *k, const char *gid, uint32_t branch)
{
	size_t n = b->plen;

	memcpy(k, b->prefix, n);
	k[n++] = 'p';
	return n + key_tail(k + n, gid, branch);
}

size_t
dtxi_barrier_key_time(const dtxi_barrier *b, unsigned char *k, int64_t at,
    const char *gid, uint32_t branch, int phase)
{
	size_t n = b->plen;

	memcpy(k, b->prefix, n);
	k[n++] = 't';
	dtxi_barrier_put_be64(k + n, (uint64_t)at);
	n += 8;
	n += key_tail(k + n, gid, branch);
	k[n++] = (unsigned char)phase;
	return n;
}

static pthread_mutex_t *
stripe(dtxi_barrier *b, const char *gid, uint32_t branch)
{
	uint32_t h = 2166136261u; // FNV-1a

	for (const char *s = gid; *s != '\0'; s++) {
		h = (h ^ (unsigned char)*s) * 16777619u;
	}
	h = (h ^ branch) * 16777619u;
	return &b->stripes[h % DTXI_BARRIER_STRIPES];
}

// Reads a key; *val is rocksdb's buffer (rocksdb_free it) or NULL when the
// key is absent. Errors: DTX_ESTORAGE.
int
dtxi_barrier_db_get(dtxi_barrier *b, const unsigned char *k, size_t klen,
    char **val, size_t *vlen)
{
	char *err = NULL;

	*val = rocksdb_get(b->db, b->ro, (const char *)k, klen, vlen, &err);
	if (err != NULL) {
		DTXI_ERROR("barrier: read: %s", err);
		rocksdb_free(err);
		*val = NULL;
		return DTX_ESTORAGE;
	}
	return 0;
}

static void
record_fini(record *r)
{
	if (r->raw != NULL) {
		rocksdb_free(r->raw);
	}
	memset(r, 0, sizeof(*r));
}

// Reads the record of (gid, branch, phase) into *r (r->found false when
// there is none). A record that does not decode is a storage error: it was
// written by us, so the disk or another writer broke it.
static int
record_get(
    dtxi_barrier *b, const char *gid, uint32_t branch, int phase, record *r)
{
	unsigned char k[DTXI_BARRIER_KEY_MAX];
	size_t        klen = dtxi_barrier_key_record(b, k, gid, branch, phase);
	size_t        vlen = 0;
	const unsigned char *v;
	int                  rv;

	memset(r, 0, sizeof(*r));
	if ((rv = dtxi_barrier_db_get(b, k, klen, &r->raw, &vlen)) != 0) {
		return rv;
	}
	if (r->raw == NULL) {
		return 0;
	}
	v = (const unsigned char *)r->raw;
	if (vlen < 13 || v[0] != REC_VERSION) {
		goto bad;
	}
	r->result  = v[1];
	r->flags   = v[2];
	r->at_ms   = (int64_t)dtxi_barrier_get_be64(v + 3);
	r->msg_len = (size_t)v[11] << 8 | v[12];
	if (r->msg_len > DTX_MESSAGE_MAX || 13 + r->msg_len + 4 > vlen) {
		goto bad;
	}
	r->msg         = (const char *)v + 13;
	r->payload_len = dtxi_barrier_get_be32(v + 13 + r->msg_len);
	if (r->payload_len != vlen - 13 - r->msg_len - 4) {
		goto bad;
	}
	r->payload = v + 13 + r->msg_len + 4;
	if (r->result != DTX_OK && r->result != DTX_REFUSED) {
		goto bad;
	}
	r->found = true;
	return 0;

bad:
	DTXI_ERROR("barrier: record of %s/%u phase %s is corrupt", gid,
	    (unsigned)branch, dtx_phase_name(phase));
	record_fini(r);
	return DTX_ESTORAGE;
}

// Stages the record of a call (and its time index entry) in wb.
static int
record_put(dtxi_barrier *b, rocksdb_writebatch_t *wb, const dtx_call *call,
    int result, unsigned flags, const char *msg, const void *payload,
    size_t payload_len, int64_t now)
{
	unsigned char  k[DTXI_BARRIER_KEY_MAX];
	size_t         klen;
	size_t         mlen = strnlen(msg, DTX_MESSAGE_MAX);
	size_t         vlen = 13 + mlen + 4 + payload_len;
	unsigned char *v;

	if ((v = malloc(vlen)) == NULL) {
		return DTX_ENOMEM;
	}
	v[0] = REC_VERSION;
	v[1] = (unsigned char)result;
	v[2] = (unsigned char)flags;
	dtxi_barrier_put_be64(v + 3, (uint64_t)now);
	v[11] = (unsigned char)(mlen >> 8);
	v[12] = (unsigned char)mlen;
	memcpy(v + 13, msg, mlen);
	dtxi_barrier_put_be32(v + 13 + mlen, (uint32_t)payload_len);
	if (payload_len > 0) {
		memcpy(v + 13 + mlen + 4, payload, payload_len);
	}
	klen = dtxi_barrier_key_record(
	    b, k, call->gid, call->branch_id, call->phase);
	rocksdb_writebatch_put(
	    wb, (const char *)k, klen, (const char *)v, vlen);
	free(v);
	klen = dtxi_barrier_key_time(
	    b, k, now, call->gid, call->branch_id, call->phase);
	rocksdb_writebatch_put(wb, (const char *)k, klen, "", 0);
	return 0;
}

// Stages the prepared key of a branch that answered OK to prepare.
static int
prepared_put(dtxi_barrier *b, rocksdb_writebatch_t *wb, const dtx_call *call,
    int64_t now)
{
	unsigned char  k[DTXI_BARRIER_KEY_MAX];
	size_t         klen;
	size_t         mlen = strnlen(call->method, DTX_METHOD_MAX);
	size_t         vlen = 8 + 1 + mlen + 4 + call->payload_len;
	unsigned char *v;

	if ((v = malloc(vlen)) == NULL) {
		return DTX_ENOMEM;
	}
	dtxi_barrier_put_be64(v, (uint64_t)now);
	v[8] = (unsigned char)mlen;
	memcpy(v + 9, call->method, mlen);
	dtxi_barrier_put_be32(v + 9 + mlen, (uint32_t)call->payload_len);
	if (call->payload_len > 0) {
		memcpy(v + 9 + mlen + 4, call->payload, call->payload_len);
	}
	klen = dtxi_barrier_key_prepared(b, k, call->gid, call->branch_id);
	rocksdb_writebatch_put(
	    wb, (const char *)k, klen, (const char *)v, vlen);
	free(v);
	return 0;
}

// Whether the prepared key of the call's branch is there (read pinned: its
// value holds the call's payload, which is not needed here).
static int
prepared_held(dtxi_barrier *b, const dtx_call *call, bool *held)
{
	unsigned char            k[DTXI_BARRIER_KEY_MAX];
	size_t                   klen;
	char                    *err = NULL;
	rocksdb_pinnableslice_t *v;

	klen = dtxi_barrier_key_prepared(b, k, call->gid, call->branch_id);
	v    = rocksdb_get_pinned(b->db, b->ro, (const char *)k, klen, &err);
	if (err != NULL) {
		DTXI_ERROR("barrier: read: %s", err);
		rocksdb_free(err);
		return DTX_ESTORAGE;
	}
	*held = v != NULL;
	rocksdb_pinnableslice_destroy(v);
	return 0;
}

static void
prepared_del(dtxi_barrier *b, rocksdb_writebatch_t *wb, const dtx_call *call)
{
	unsigned char k[DTXI_BARRIER_KEY_MAX];
	size_t        klen =
	    dtxi_barrier_key_prepared(b, k, call->gid, call->branch_id);

	rocksdb_writebatch_delete(wb, (const char *)k, klen);
}

int
dtxi_barrier_db_write(dtxi_barrier *b, rocksdb_writebatch_t *wb,
    const rocksdb_writeoptions_t *wo)
{
	char *err = NULL;

	rocksdb_write(b->db, wo, wb, &err);
	if (err != NULL) {
		DTXI_ERROR("barrier: write: %s", err);
		rocksdb_free(err);
		return DTX_ESTORAGE;
	}
	return 0;
}

// The store's position now: every write made (or read) so far is at or
// below it. Our tickets.
static uint64_t
ticket(dtxi_barrier *b)
{
	return rocksdb_get_latest_sequence_number(b->db);
}

// The group commit's sync (gcommit.h): one fsync of the WAL covers every
// write made before it started. The position is read first, so that what
// it reports as covered surely is.
static int
barrier_sync(void *arg, uint64_t *upto)
{
	dtxi_barrier *b   = arg;
	uint64_t      at  = ticket(b);
	char         *err = NULL;

	rocksdb_flush_wal(b->db, 1, &err);
	if (err != NULL) {
		DTXI_ERROR("barrier: syncing the store failed, every call is "
		           "answered RETRY until the participant restarts: %s",
		    err);
		rocksdb_free(err);
		return DTX_ESTORAGE;
	}
	*upto = at;
	return 0;
}

static dtx_result
answer(dtx_reply *reply, dtx_result res, const char *msg)
{
	dtx_reply_set_payload(reply, NULL, 0);
	dtx_reply_set_message(reply, msg);
	return res;
}

static dtx_result
storage_failed(dtx_reply *reply, int rv)
{
	char why[DTX_MESSAGE_MAX + 1];

	snprintf(
	    why, sizeof(why), "participant barrier: %s", dtx_strerror(rv));
	return answer(reply, DTX_RETRY, why);
}

// Writes a record with no callback behind it (a null operation or a
// refusal) on its own, and answers it.
static dtx_result
record_only(dtxi_barrier *b, const dtx_call *call, dtx_reply *reply,
    dtx_result res, unsigned flags, const char *msg)
{
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	int                   rv;

	rv = record_put(b, wb, call, res, flags, msg, NULL, 0, dtxi_now_ms());
	if (rv == 0 && call->phase == DTX_PHASE_ABORT) {
		prepared_del(b, wb, call);
	}
	if (rv == 0) {
		rv = dtxi_barrier_db_write(b, wb, b->wo);
	}
	rocksdb_writebatch_destroy(wb);
	if (rv != 0) {
		return storage_failed(reply, rv);
	}
	return answer(reply, res, msg);
}

// Runs the callback with a fresh batch, then writes that batch with the
// call's record in one write. Called with the stripe held.
static dtx_result
run_callback(dtxi_barrier *b, const dtx_call *call, dtx_phase_fn fn, void *arg,
    dtx_reply *reply)
{
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	dtx_result            res;
	bool                  keep;
	int                   rv = 0;
	int64_t               now;

	if (b->lock != NULL) {
		b->lock(b->lock_arg);
	}
	reply->wb = wb;
	res       = fn(call, reply, arg);
	reply->wb = NULL;
	keep      = res == DTX_OK ||
	    (res == DTX_REFUSED &&
	        (call->phase == DTX_PHASE_PREPARE ||
	            call->phase == DTX_PHASE_EXECUTE));
	if (keep) {
		now = dtxi_now_ms();
		rv  = record_put(b, wb, call, res, 0, reply->message,
		     reply->payload, reply->len, now);
		if (rv == 0 && call->phase == DTX_PHASE_PREPARE &&
		    res == DTX_OK) {
			rv = prepared_put(b, wb, call, now);
		}
		if (call->phase == DTX_PHASE_COMMIT ||
		    call->phase == DTX_PHASE_ABORT) {
			prepared_del(b, wb, call);
		}
		if (rv == 0) {
			dtxi_crash_point(
			    b->crash, DTXI_CRASH_BEFORE_BUSINESS_WRITE);
			rv = dtxi_barrier_db_write(b, wb, b->wo);
		}
	}
	// A retried or invalid result stores nothing: its batch is dropped,
	// and the next delivery runs the callback again.
	if (b->unlock != NULL) {
		b->unlock(b->lock_arg);
	}
	rocksdb_writebatch_destroy(wb);
	if (rv != 0) {
		return storage_failed(reply, rv);
	}
	if (keep) {
		// The point promises a synced write; the sync comes later
		// now, so a test that armed it waits for it here.
		if (b->gc != NULL &&
		    dtxi_crash_armed(
		        b->crash, DTXI_CRASH_AFTER_BUSINESS_WRITE)) {
			(void)dtxi_gcommit_wait(b->gc, ticket(b));
		}
		dtxi_crash_point(b->crash, DTXI_CRASH_AFTER_BUSINESS_WRITE);
	}
	return res;
}

static void
replay(const record *r, dtx_reply *reply)
{
	char msg[DTX_MESSAGE_MAX + 1];

	memcpy(msg, r->msg, r->msg_len);
	msg[r->msg_len] = '\0';
	dtx_reply_set_message(reply, msg);
	if (dtx_reply_set_payload(reply, r->payload, r->payload_len) != 0) {
		// Only a smaller payload limit than when it was recorded, or
		// no memory: answer without the payload rather than not at
		// all.
		dtx_reply_set_payload(reply, NULL, 0);
	}
}

// Decides a call that has no record of its own from the records of the
// branch's other phases, with the stripe held.
static dtx_result
decide(dtxi_barrier *b, const dtx_call *call, dtx_phase_fn fn, void *arg,
    dtx_reply *reply)
{
	record     other = {0};
	char       why[DTX_MESSAGE_MAX + 1];
	dtx_result res;
	int        rv;

	switch (call->phase) {
	case DTX_PHASE_PREPARE:
	case DTX_PHASE_EXECUTE: {
		bool prep = call->phase == DTX_PHASE_PREPARE;
		rv        = record_get(b, call->gid, call->branch_id,
                    prep ? DTX_PHASE_ABORT : DTX_PHASE_COMPENSATE, &other);
		if (rv != 0) {
			return storage_failed(reply, rv);
		}
		if (other.found) {
			record_fini(&other);
			dtxi_pstats_inc(DTXI_BSTAT(b, hanging));
			snprintf(why, sizeof(why),
			    "branch %s/%u was %s before this %s arrived: "
			    "refused",
			    call->gid, (unsigned)call->branch_id,
			    prep ? "aborted" : "compensated",
			    prep ? "prepare" : "execute");
			return record_only(
			    b, call, reply, DTX_REFUSED, 0, why);
		}
		return run_callback(b, call, fn, arg, reply);
	}
	case DTX_PHASE_COMMIT:
		if ((rv = record_get(b, call->gid, call->branch_id,
		         DTX_PHASE_ABORT, &other)) != 0) {
			return storage_failed(reply, rv);
		}
		if (other.found) {
			record_fini(&other);
			snprintf(why, sizeof(why),
			    "branch %s/%u was aborted here: commit refused",
			    call->gid, (unsigned)call->branch_id);
			DTXI_ERROR("barrier: %s", why);
			return answer(reply, DTX_REFUSED, why);
		}
		if ((rv = record_get(b, call->gid, call->branch_id,
		         DTX_PHASE_PREPARE, &other)) != 0) {
			return storage_failed(reply, rv);
		}
		if (!other.found || other.result != DTX_OK) {
			record_fini(&other);
			snprintf(why, sizeof(why),
			    "branch %s/%u is not prepared here: commit "
			    "refused",
			    call->gid, (unsigned)call->branch_id);
			DTXI_ERROR("barrier: %s", why);
			return answer(reply, DTX_REFUSED, why);
		}
		record_fini(&other);
		return run_callback(b, call, fn, arg, reply);
	case DTX_PHASE_ABORT:
	case DTX_PHASE_COMPENSATE: {
		bool abrt = call->phase == DTX_PHASE_ABORT;
		if (abrt) {
			if ((rv = record_get(b, call->gid, call->branch_id,
			         DTX_PHASE_COMMIT, &other)) != 0) {
				return storage_failed(reply, rv);
			}
			if (other.found) {
				record_fini(&other);
				snprintf(why, sizeof(why),
				    "branch %s/%u was committed here: abort "
				    "refused",
				    call->gid, (unsigned)call->branch_id);
				DTXI_ERROR("barrier: %s", why);
				return answer(reply, DTX_REFUSED, why);
			}
		}
		if ((rv = record_get(b, call->gid, call->branch_id,
		         abrt ? DTX_PHASE_PREPARE : DTX_PHASE_EXECUTE,
		         &other)) != 0) {
			return storage_failed(reply, rv);
		}
		if (!other.found || other.result != DTX_OK) {
			record_fini(&other);
			dtxi_pstats_inc(DTXI_BSTAT(b, null_ops));
			snprintf(why, sizeof(why),
			    "null %s: branch %s/%u never %s here",
			    abrt ? "abort" : "compensation", call->gid,
			    (unsigned)call->branch_id,
			    abrt ? "prepared" : "executed");
			return record_only(
			    b, call, reply, DTX_OK, FLAG_NULL, why);
		}
		record_fini(&other);
		return run_callback(b, call, fn, arg, reply);
	}
	default:
		snprintf(why, sizeof(why), "phase %d unknown to the barrier",
		    (int)call->phase);
		res = answer(reply, DTX_REFUSED, why);
		return res;
	}
}

// A prepare's or execute's own record is OK, but its branch may have been
// aborted or compensated here since: then the OK no longer holds, and the
// call is refused (not recorded). Returns true with reply filled in that
// case, false to replay, and an error as a storage failure.
static bool
undone_since(
    dtxi_barrier *b, const dtx_call *call, dtx_reply *reply, dtx_result *res)
{
	bool   prep = call->phase == DTX_PHASE_PREPARE;
	record back;
	char   why[DTX_MESSAGE_MAX + 1];
	int    rv;

	if ((rv = record_get(b, call->gid, call->branch_id,
	         prep ? DTX_PHASE_ABORT : DTX_PHASE_COMPENSATE, &back)) != 0) {
		*res = storage_failed(reply, rv);
		return true;
	}
	if (!back.found) {
		return false;
	}
	record_fini(&back);
	snprintf(why, sizeof(why),
	    "branch %s/%u was %s here after this %s answered OK: refused",
	    call->gid, (unsigned)call->branch_id,
	    prep ? "aborted" : "compensated", prep ? "prepare" : "execute");
	*res = answer(reply, DTX_REFUSED, why);
	return true;
}

dtx_result
dtxi_barrier_call(dtxi_barrier *b, const dtx_call *call, dtx_phase_fn fn,
    void *arg, dtx_reply *reply)
{
	pthread_mutex_t *mu   = stripe(b, call->gid, call->branch_id);
	bool             held = false;
	record           own;
	dtx_result       res;
	int              rv;

	atomic_fetch_add_explicit(&b->calls, 1, memory_order_relaxed);
	reply->durable = 0;
	// RocksDB counts every key comparison in a thread-local perf
	// context unless told not to, each count reached through the
	// shared library's TLS: 5 % of a barrier participant's profile
	// under dtx-bench --barrier, 2 % with the counters off. The level
	// is per thread, so this covers the callback's own reads too; a
	// callback that wants the counters sets its level itself (dtx.h).
	rocksdb_set_perf_level(rocksdb_disable);
	if (b->gc != NULL && (rv = dtxi_gcommit_error(b->gc)) != 0) {
		// Nothing is known to be durable since the sync failed.
		return answer(reply, DTX_RETRY,
		    "participant barrier: syncing its store failed; restart "
		    "the participant");
	}
	pthread_mutex_lock(mu);
	if ((call->phase == DTX_PHASE_COMMIT ||
	        call->phase == DTX_PHASE_ABORT) &&
	    (rv = prepared_held(b, call, &held)) != 0) {
		res = storage_failed(reply, rv);
	} else if (held) {
		// The prepared key is written with a prepare's OK record and
		// deleted with its branch's commit or abort record: while it
		// is there, this phase has no record, nor has the other, and
		// the prepare answered OK. One read instead of three for
		// every first commit or abort.
		res = run_callback(b, call, fn, arg, reply);
	} else if ((rv = record_get(b, call->gid, call->branch_id, call->phase,
	                &own)) != 0) {
		res = storage_failed(reply, rv);
	} else if (own.found &&
	    (call->phase == DTX_PHASE_PREPARE ||
	        call->phase == DTX_PHASE_EXECUTE) &&
	    own.result == DTX_OK && undone_since(b, call, reply, &res)) {
		record_fini(&own);
	} else if (own.found) {
		dtxi_pstats_inc(DTXI_BSTAT(b, replays));
		replay(&own, reply);
		res = (dtx_result)own.result;
		record_fini(&own);
		DTXI_DEBUG("barrier: %s %s/%u again: replayed %s",
		    dtx_phase_name(call->phase), call->gid,
		    (unsigned)call->branch_id,
		    res == DTX_OK ? "OK" : "REFUSED");
	} else {
		res = decide(b, call, fn, arg, reply);
	}
	pthread_mutex_unlock(mu);
	// Whatever this answer read or wrote is at or below the store's
	// position now: the reply leaves once that is synced. A RETRY
	// (stored nothing, promises nothing) need not wait.
	if (b->gc != NULL && res != DTX_RETRY) {
		reply->durable = ticket(b);
	}
	return res;
}

dtxi_gcommit *
dtxi_barrier_gcommit(dtxi_barrier *b)
{
	return b != NULL ? b->gc : NULL;
}

int
dtxi_barrier_wait(dtxi_barrier *b, uint64_t durable)
{
	return b->gc != NULL ? dtxi_gcommit_wait(b->gc, durable) : 0;
}

void
dtxi_barrier_counts(dtxi_barrier *b, uint64_t *calls, uint64_t *syncs)
{
	*calls = atomic_load_explicit(&b->calls, memory_order_relaxed);
	*syncs = b->gc != NULL ? dtxi_gcommit_syncs(b->gc) : 0;
}

// ---------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------

int
dtxi_barrier_alloc(dtxi_barrier **bp, rocksdb_t *db, const dtx_barrier_opts *o,
    dtxi_crash *crash, dtxi_pstats *stats)
{
	dtxi_barrier *b;
	const char   *prefix = DEFAULT_PREFIX;
	unsigned      i;

	if (bp == NULL || db == NULL) {
		return DTX_EINVAL;
	}
	if (o != NULL && o->prefix != NULL) {
		prefix = o->prefix;
	}
	if (prefix[0] == '\0' || strlen(prefix) > DTXI_BARRIER_PREFIX_MAX ||
	    (o != NULL && o->retention_ms < 0) ||
	    (o != NULL && (o->lock == NULL) != (o->unlock == NULL))) {
		return DTX_EINVAL;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		return DTX_ENOMEM;
	}
	b->db           = db;
	b->plen         = dtxi_strlcpy(b->prefix, prefix, sizeof(b->prefix));
	b->retention_ms = o != NULL && o->retention_ms > 0 ? o->retention_ms
	                                                   : DEFAULT_RETENTION;
	if (o != NULL) {
		b->lock     = o->lock;
		b->unlock   = o->unlock;
		b->lock_arg = o->lock_arg;
	}
	b->crash    = crash;
	b->stats    = stats;
	b->ro       = rocksdb_readoptions_create();
	b->wo       = rocksdb_writeoptions_create();
	b->wo_purge = rocksdb_writeoptions_create();
	if (b->ro == NULL || b->wo == NULL || b->wo_purge == NULL) {
		goto fail;
	}
	// Never synced here: the group commit syncs (see the top), unless
	// the user asked for no syncs at all.
	rocksdb_writeoptions_set_sync(b->wo, 0);
	atomic_init(&b->calls, 0);
	for (i = 0; i < DTXI_BARRIER_STRIPES; i++) {
		if (pthread_mutex_init(&b->stripes[i], NULL) != 0) {
			break;
		}
	}
	if (i < DTXI_BARRIER_STRIPES) {
		while (i-- > 0) {
			pthread_mutex_destroy(&b->stripes[i]);
		}
		goto fail;
	}
	if ((o == NULL || !o->no_sync) &&
	    dtxi_gcommit_start(&b->gc, barrier_sync, b) != 0) {
		for (i = 0; i < DTXI_BARRIER_STRIPES; i++) {
			pthread_mutex_destroy(&b->stripes[i]);
		}
		goto fail;
	}
	*bp = b;
	return 0;

fail:
	if (b->ro != NULL) {
		rocksdb_readoptions_destroy(b->ro);
	}
	if (b->wo != NULL) {
		rocksdb_writeoptions_destroy(b->wo);
	}
	if (b->wo_purge != NULL) {
		rocksdb_writeoptions_destroy(b->wo_purge);
	}
	free(b);
	return DTX_ENOMEM;
}

void
dtxi_barrier_free(dtxi_barrier *b)
{
	if (b == NULL) {
		return;
	}
	dtxi_gcommit_stop(b->gc);
	for (unsigned i = 0; i < DTXI_BARRIER_STRIPES; i++) {
		pthread_mutex_destroy(&b->stripes[i]);
	}
	rocksdb_readoptions_destroy(b->ro);
	rocksdb_writeoptions_destroy(b->wo);
	rocksdb_writeoptions_destroy(b->wo_purge);
	free(b);
}
