// SPDX-License-Identifier: MIT
//
// barrier: exactly-once callbacks for a participant, backed by its own
// RocksDB. Each call that runs its callback ends in one atomic write that
// holds the business batch the callback staged and the barrier's record of
// the call; a later delivery of the same (gid, branch, phase) finds the
// record and replays it. Three kinds of key live under the user's prefix:
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
// What each phase does when it finds no record of its own (the ones with a
// record replay it):
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
// Lock order: stripe mutex, then the user's lock (dtx_barrier_opts.lock).
// The background thread's mutex (b->mtx) guards only the stop flag and is
// never held with another.

#include "barrier.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

#include "clock.h"
#include "log.h"
#include "reply.h"
#include "strs.h"

#define NSTRIPES          64
#define PREFIX_MAX        64
#define DEFAULT_PREFIX    "dtx/"
#define DEFAULT_RETENTION (7LL * 24 * 3600 * 1000)
// Bounded work per background pass, so that a backlog never stalls the
// resolver nor holds a stripe for long.
#define PURGE_PER_PASS   1000
#define RESOLVE_PER_PASS 64
#define RESOLVE_TIMEOUT  2000
#define REC_VERSION      1
#define FLAG_NULL        1u
// prefix, kind, time, gid, NUL, branch, phase.
#define KEY_MAX (PREFIX_MAX + 1 + 8 + DTX_GID_MAX + 1 + 4 + 1)

struct dtxi_barrier {
	rocksdb_t              *db;
	rocksdb_readoptions_t  *ro;
	rocksdb_writeoptions_t *wo;       // synced unless no_sync
	rocksdb_writeoptions_t *wo_purge; // never synced: a lost purge redoes
	char                    prefix[PREFIX_MAX + 1];
	size_t                  plen;
	int64_t                 retention_ms;
	void (*lock)(void *);
	void (*unlock)(void *);
	void           *lock_arg;
	dtxi_crash     *crash;
	pthread_mutex_t stripes[NSTRIPES];

	char    *resolver_url; // NULL: no resolver
	uint32_t resolve_after_ms;

	dtxi_barrier_runner  run;
	void                *run_arg;
	size_t               max_payload;
	pthread_t            thread;
	bool                 started;
	pthread_mutex_t      mtx;
	pthread_cond_t       cv;
	bool                 stop; // guarded by mtx
	atomic_uint_fast64_t purged;
};

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

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint64_t
get_be64(const unsigned char *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

// Key builders; each returns the key's length. buf has KEY_MAX bytes and
// gid is at most DTX_GID_MAX bytes (the codec enforces it).
static size_t
key_tail(unsigned char *k, const char *gid, uint32_t branch)
{
	size_t g = strnlen(gid, DTX_GID_MAX);

	memcpy(k, gid, g);
	k[g] = '\0';
	put_be32(k + g + 1, branch);
	return g + 5;
}

static size_t
key_record(const dtxi_barrier *b, unsigned char *k, const char *gid,
    uint32_t branch, int phase)
{
	size_t n = b->plen;

	memcpy(k, b->prefix, n);
	k[n++] = 'r';
	n += key_tail(k + n, gid, branch);
	k[n++] = (unsigned char)phase;
	return n;
}

static size_t
key_prepared(
    const dtxi_barrier *b, unsigned char *k, const char *gid, uint32_t branch)
{
	size_t n = b->plen;

	memcpy(k, b->prefix, n);
	k[n++] = 'p';
	return n + key_tail(k + n, gid, branch);
}

static size_t
key_time(const dtxi_barrier *b, unsigned char *k, int64_t at, const char *gid,
    uint32_t branch, int phase)
{
	size_t n = b->plen;

	memcpy(k, b->prefix, n);
	k[n++] = 't';
	put_be64(k + n, (uint64_t)at);
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
	return &b->stripes[h % NSTRIPES];
}

// Reads a key; *val is rocksdb's buffer (rocksdb_free it) or NULL when the
// key is absent. Errors: DTX_ESTORAGE.
static int
db_get(dtxi_barrier *b, const unsigned char *k, size_t klen, char **val,
    size_t *vlen)
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
	unsigned char        k[KEY_MAX];
	size_t               klen = key_record(b, k, gid, branch, phase);
	size_t               vlen = 0;
	const unsigned char *v;
	int                  rv;

	memset(r, 0, sizeof(*r));
	if ((rv = db_get(b, k, klen, &r->raw, &vlen)) != 0) {
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
	r->at_ms   = (int64_t)get_be64(v + 3);
	r->msg_len = (size_t)v[11] << 8 | v[12];
	if (r->msg_len > DTX_MESSAGE_MAX || 13 + r->msg_len + 4 > vlen) {
		goto bad;
	}
	r->msg         = (const char *)v + 13;
	r->payload_len = get_be32(v + 13 + r->msg_len);
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
	unsigned char  k[KEY_MAX];
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
	put_be64(v + 3, (uint64_t)now);
	v[11] = (unsigned char)(mlen >> 8);
	v[12] = (unsigned char)mlen;
	memcpy(v + 13, msg, mlen);
	put_be32(v + 13 + mlen, (uint32_t)payload_len);
	if (payload_len > 0) {
		memcpy(v + 13 + mlen + 4, payload, payload_len);
	}
	klen = key_record(b, k, call->gid, call->branch_id, call->phase);
	rocksdb_writebatch_put(
	    wb, (const char *)k, klen, (const char *)v, vlen);
	free(v);
	klen = key_time(b, k, now, call->gid, call->branch_id, call->phase);
	rocksdb_writebatch_put(wb, (const char *)k, klen, "", 0);
	return 0;
}

// Stages the prepared key of a branch that answered OK to prepare.
static int
prepared_put(dtxi_barrier *b, rocksdb_writebatch_t *wb, const dtx_call *call,
    int64_t now)
{
	unsigned char  k[KEY_MAX];
	size_t         klen;
	size_t         mlen = strnlen(call->method, DTX_METHOD_MAX);
	size_t         vlen = 8 + 1 + mlen + 4 + call->payload_len;
	unsigned char *v;

	if ((v = malloc(vlen)) == NULL) {
		return DTX_ENOMEM;
	}
	put_be64(v, (uint64_t)now);
	v[8] = (unsigned char)mlen;
	memcpy(v + 9, call->method, mlen);
	put_be32(v + 9 + mlen, (uint32_t)call->payload_len);
	if (call->payload_len > 0) {
		memcpy(v + 9 + mlen + 4, call->payload, call->payload_len);
	}
	klen = key_prepared(b, k, call->gid, call->branch_id);
	rocksdb_writebatch_put(
	    wb, (const char *)k, klen, (const char *)v, vlen);
	free(v);
	return 0;
}

static void
prepared_del(dtxi_barrier *b, rocksdb_writebatch_t *wb, const dtx_call *call)
{
	unsigned char k[KEY_MAX];
	size_t        klen = key_prepared(b, k, call->gid, call->branch_id);

	rocksdb_writebatch_delete(wb, (const char *)k, klen);
}

static int
db_write(dtxi_barrier *b, rocksdb_writebatch_t *wb,
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
		rv = db_write(b, wb, b->wo);
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
			rv = db_write(b, wb, b->wo);
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

dtx_result
dtxi_barrier_call(dtxi_barrier *b, const dtx_call *call, dtx_phase_fn fn,
    void *arg, dtx_reply *reply)
{
	pthread_mutex_t *mu = stripe(b, call->gid, call->branch_id);
	record           own;
	dtx_result       res;
	int              rv;

	pthread_mutex_lock(mu);
	if ((rv = record_get(
	         b, call->gid, call->branch_id, call->phase, &own)) != 0) {
		res = storage_failed(reply, rv);
	} else if (own.found) {
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
	return res;
}

// ---------------------------------------------------------------------
// Background work: purge and in-doubt resolution
// ---------------------------------------------------------------------

// One purge pass: deletes up to PURGE_PER_PASS records written before the
// retention cutoff, oldest first. The record of a prepare whose branch is
// still undecided is kept (its time entry moves to now), since a late
// commit needs it. Returns true when it stopped at its bound with more to
// do. Deletes are not synced: a purge lost in a crash is redone.
static bool
purge_pass(dtxi_barrier *b)
{
	int64_t               cutoff = dtxi_now_ms() - b->retention_ms;
	unsigned char         seek[PREFIX_MAX + 1];
	rocksdb_iterator_t   *it      = rocksdb_create_iterator(b->db, b->ro);
	rocksdb_writebatch_t *wb      = rocksdb_writebatch_create();
	unsigned              n       = 0;
	uint64_t              deleted = 0;
	bool                  more    = false;

	memcpy(seek, b->prefix, b->plen);
	seek[b->plen] = 't';
	for (rocksdb_iter_seek(it, (const char *)seek, b->plen + 1);
	     rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t               klen;
		const unsigned char *k =
		    (const unsigned char *)rocksdb_iter_key(it, &klen);
		const unsigned char *t = k + b->plen + 1;
		unsigned char        rk[KEY_MAX];
		char                 gid[DTX_GID_MAX + 1];
		size_t               glen;
		uint32_t             branch;
		int                  phase;
		char                *pv = NULL;
		size_t               pvlen;

		if (klen < b->plen + 1 + 8 + 6 ||
		    memcmp(k, seek, b->plen + 1) != 0) {
			break;
		}
		if ((int64_t)get_be64(t) > cutoff) {
			break;
		}
		if (n++ == PURGE_PER_PASS) {
			more = true;
			break;
		}
		glen = klen - (b->plen + 1 + 8) - 6;
		if (glen > DTX_GID_MAX) {
			continue;
		}
		memcpy(gid, t + 8, glen);
		gid[glen] = '\0';
		branch    = get_be32(t + 8 + glen + 1);
		phase     = t[8 + glen + 5];
		if (phase == DTX_PHASE_PREPARE) {
			size_t plen = key_prepared(b, rk, gid, branch);
			if (db_get(b, rk, plen, &pv, &pvlen) != 0) {
				break; // logged; the next pass tries again
			}
			if (pv != NULL) {
				rocksdb_free(pv);
				rocksdb_writebatch_delete(
				    wb, (const char *)k, klen);
				plen = key_time(
				    b, rk, dtxi_now_ms(), gid, branch, phase);
				rocksdb_writebatch_put(
				    wb, (const char *)rk, plen, "", 0);
				continue;
			}
		}
		rocksdb_writebatch_delete(wb, (const char *)k, klen);
		rocksdb_writebatch_delete(wb, (const char *)rk,
		    key_record(b, rk, gid, branch, phase));
		deleted++;
	}
	rocksdb_iter_destroy(it);
	if (rocksdb_writebatch_count(wb) > 0 &&
	    db_write(b, wb, b->wo_purge) == 0 && deleted > 0) {
		atomic_fetch_add(&b->purged, deleted);
		DTXI_DEBUG("barrier: purged %llu records",
		    (unsigned long long)deleted);
	}
	rocksdb_writebatch_destroy(wb);
	return more;
}

// A prepared branch the resolver is settling.
typedef struct doubt {
	char     gid[DTX_GID_MAX + 1];
	uint32_t branch;
	char     method[DTX_METHOD_MAX + 1];
	void    *payload;
	size_t   payload_len;
} doubt;

// Collects up to cap branches prepared before cutoff.
static size_t
find_doubts(dtxi_barrier *b, int64_t cutoff, doubt *out, size_t cap)
{
	unsigned char       seek[PREFIX_MAX + 1];
	rocksdb_iterator_t *it = rocksdb_create_iterator(b->db, b->ro);
	size_t              n  = 0;

	memcpy(seek, b->prefix, b->plen);
	seek[b->plen] = 'p';
	for (rocksdb_iter_seek(it, (const char *)seek, b->plen + 1);
	     n < cap && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
		size_t               klen, vlen, glen, mlen, plen;
		const unsigned char *k =
		    (const unsigned char *)rocksdb_iter_key(it, &klen);
		const unsigned char *v =
		    (const unsigned char *)rocksdb_iter_value(it, &vlen);

		if (klen < b->plen + 1 + 5 ||
		    memcmp(k, seek, b->plen + 1) != 0) {
			break;
		}
		glen = klen - (b->plen + 1) - 5;
		if (glen > DTX_GID_MAX || vlen < 9) {
			continue;
		}
		if ((int64_t)get_be64(v) > cutoff) {
			continue;
		}
		mlen = v[8];
		if (mlen > DTX_METHOD_MAX || 9 + mlen + 4 > vlen) {
			continue;
		}
		plen = get_be32(v + 9 + mlen);
		if (plen != vlen - 9 - mlen - 4) {
			continue;
		}
		doubt *d = &out[n];
		memcpy(d->gid, k + b->plen + 1, glen);
		d->gid[glen] = '\0';
		d->branch    = get_be32(k + b->plen + 1 + glen + 1);
		memcpy(d->method, v + 9, mlen);
		d->method[mlen] = '\0';
		d->payload_len  = plen;
		d->payload      = NULL;
		if (plen > 0) {
			if ((d->payload = malloc(plen)) == NULL) {
				break;
			}
			memcpy(d->payload, v + 9 + mlen + 4, plen);
		}
		n++;
	}
	rocksdb_iter_destroy(it);
	return n;
}

static bool
stopping(dtxi_barrier *b)
{
	bool s;

	pthread_mutex_lock(&b->mtx);
	s = b->stop;
	pthread_mutex_unlock(&b->mtx);
	return s;
}

// One resolver pass: asks the coordinator about every branch prepared
// longer than resolve_after_ms ago and runs the decided phase through the
// barrier, exactly as a delivery from dtxd would run. A branch still
// undecided at the coordinator, or a coordinator that does not answer,
// is tried again on the next pass.
static void
resolve_pass(dtxi_barrier *b, dtx_client **cp)
{
	doubt     d[RESOLVE_PER_PASS];
	size_t    n;
	dtx_reply reply;

	n = find_doubts(b, dtxi_now_ms() - (int64_t)b->resolve_after_ms, d,
	    RESOLVE_PER_PASS);
	if (n > 0 && *cp == NULL) {
		if (dtx_client_open(cp, b->resolver_url) != 0) {
			*cp = NULL;
		} else {
			dtx_client_set_timeout_ms(*cp, RESOLVE_TIMEOUT);
		}
	}
	memset(&reply, 0, sizeof(reply));
	reply.max_payload = b->max_payload;
	for (size_t i = 0; i < n; i++) {
		dtx_state  st = 0;
		dtx_phase  phase;
		dtx_result res;
		int        rv;

		if (*cp == NULL || stopping(b)) {
			break;
		}
		if ((rv = dtx_client_resolve(*cp, d[i].gid, &st)) != 0) {
			DTXI_INFO("barrier: cannot resolve %s: %s", d[i].gid,
			    dtx_strerror(rv));
			break; // the coordinator is down: next pass
		}
		// The Resolve rule is dtxd's (coordinator/requests.c,
		// on_resolve; dtx_client_resolve in dtx.h): COMMITTING is
		// answered only once the commit decision is synced, so it is
		// as final as COMMITTED, and any abort, decided or presumed,
		// is final. COMMITTING is still left alone here: dtxd delivers
		// that COMMIT itself, and racing it gains nothing.
		if (st == DTX_STATE_COMMITTED) {
			phase = DTX_PHASE_COMMIT;
		} else if (st == DTX_STATE_ABORTING ||
		    st == DTX_STATE_ABORTED) {
			phase = DTX_PHASE_ABORT;
		} else {
			continue; // undecided, or decided but not durably yet
		}
		dtx_call call = {
		    .gid         = d[i].gid,
		    .branch_id   = d[i].branch,
		    .phase       = phase,
		    .method      = d[i].method,
		    .payload     = d[i].payload,
		    .payload_len = d[i].payload_len,
		    .attempt     = 0,
		    .deadline_ms = 0,
		};
		reply.message[0] = '\0';
		res              = b->run(b->run_arg, &call, &reply);
		DTXI_INFO("barrier: in-doubt branch %s/%u is %s at the "
		          "coordinator: %s %s",
		    d[i].gid, (unsigned)d[i].branch, dtx_state_name(st),
		    dtx_phase_name(phase),
		    res == DTX_OK ? "done" : "failed, will retry");
		dtx_reply_set_payload(&reply, NULL, 0);
	}
	for (size_t i = 0; i < n; i++) {
		free(d[i].payload);
	}
}

static void *
barrier_main(void *arg)
{
	dtxi_barrier *b          = arg;
	dtx_client   *c          = NULL;
	int64_t       next_purge = 0;
	int64_t       period;

	// The purge runs a few times per retention period (at most every
	// minute); the resolver a few times per resolve_after_ms (at least
	// every second), so an in-doubt branch waits at most about half as
	// long again as configured.
	period = b->retention_ms / 4;
	if (period > 60000) {
		period = 60000;
	}
	if (period < 50) {
		period = 50;
	}
	for (;;) {
		int64_t         now  = dtxi_mono_ms();
		int64_t         wait = period;
		struct timespec ts;

		if (now >= next_purge) {
			next_purge = now + (purge_pass(b) ? 0 : period);
		}
		if (b->resolver_url != NULL) {
			resolve_pass(b, &c);
			wait = b->resolve_after_ms / 4;
			wait = wait < 50 ? 50 : wait > 1000 ? 1000 : wait;
		}
		if (next_purge - dtxi_mono_ms() < wait) {
			wait = next_purge - dtxi_mono_ms();
		}
		if (wait < 0) {
			wait = 0;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(wait / 1000);
		ts.tv_nsec += (long)(wait % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&b->mtx);
		while (!b->stop &&
		    pthread_cond_timedwait(&b->cv, &b->mtx, &ts) !=
		        ETIMEDOUT) {
		}
		if (b->stop) {
			pthread_mutex_unlock(&b->mtx);
			break;
		}
		pthread_mutex_unlock(&b->mtx);
	}
	dtx_client_close(c);
	return NULL;
}

// ---------------------------------------------------------------------
// Lifecycle
// ---------------------------------------------------------------------

int
dtxi_barrier_alloc(dtxi_barrier **bp, rocksdb_t *db, const dtx_barrier_opts *o,
    dtxi_crash *crash)
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
	if (prefix[0] == '\0' || strlen(prefix) > PREFIX_MAX ||
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
	b->crash = crash;
	atomic_init(&b->purged, 0);
	b->ro       = rocksdb_readoptions_create();
	b->wo       = rocksdb_writeoptions_create();
	b->wo_purge = rocksdb_writeoptions_create();
	if (b->ro == NULL || b->wo == NULL || b->wo_purge == NULL) {
		goto fail;
	}
	rocksdb_writeoptions_set_sync(b->wo, o != NULL && o->no_sync ? 0 : 1);
	for (i = 0; i < NSTRIPES; i++) {
		if (pthread_mutex_init(&b->stripes[i], NULL) != 0) {
			break;
		}
	}
	if (i < NSTRIPES) {
		while (i-- > 0) {
			pthread_mutex_destroy(&b->stripes[i]);
		}
		goto fail;
	}
	if (pthread_mutex_init(&b->mtx, NULL) != 0) {
		goto fail_stripes;
	}
	if (pthread_cond_init(&b->cv, NULL) != 0) {
		pthread_mutex_destroy(&b->mtx);
		goto fail_stripes;
	}
	*bp = b;
	return 0;

fail_stripes:
	for (i = 0; i < NSTRIPES; i++) {
		pthread_mutex_destroy(&b->stripes[i]);
	}
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

int
dtxi_barrier_set_resolver(dtxi_barrier *b, const char *url, uint32_t after_ms)
{
	char *copy;

	if (b == NULL || url == NULL || url[0] == '\0' || after_ms == 0 ||
	    b->started) {
		return DTX_EINVAL;
	}
	if ((copy = strdup(url)) == NULL) {
		return DTX_ENOMEM;
	}
	free(b->resolver_url);
	b->resolver_url     = copy;
	b->resolve_after_ms = after_ms;
	return 0;
}

int
dtxi_barrier_start(
    dtxi_barrier *b, dtxi_barrier_runner run, void *arg, size_t max_payload)
{
	b->run         = run;
	b->run_arg     = arg;
	b->max_payload = max_payload;
	b->stop        = false;
	if (pthread_create(&b->thread, NULL, barrier_main, b) != 0) {
		return DTX_ENOMEM;
	}
	b->started = true;
	return 0;
}

void
dtxi_barrier_stop(dtxi_barrier *b)
{
	if (b == NULL || !b->started) {
		return;
	}
	pthread_mutex_lock(&b->mtx);
	b->stop = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mtx);
	pthread_join(b->thread, NULL);
	b->started = false;
}

void
dtxi_barrier_free(dtxi_barrier *b)
{
	if (b == NULL) {
		return;
	}
	dtxi_barrier_stop(b);
	for (unsigned i = 0; i < NSTRIPES; i++) {
		pthread_mutex_destroy(&b->stripes[i]);
	}
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mtx);
	rocksdb_readoptions_destroy(b->ro);
	rocksdb_writeoptions_destroy(b->wo);
	rocksdb_writeoptions_destroy(b->wo_purge);
	free(b->resolver_url);
	free(b);
}

uint64_t
dtxi_barrier_purged(dtxi_barrier *b)
{
	return atomic_load(&b->purged);
}

rocksdb_writebatch_t *
dtx_reply_writebatch(dtx_reply *r)
{
	return r != NULL ? r->wb : NULL;
}
