// SPDX-License-Identifier: MIT
//
// resolver: the barrier's background thread. It purges the records older
// than the retention, a bounded number per pass, and, when the participant
// asked for it (dtx_participant_set_resolver), settles its in-doubt
// branches: a branch prepared longer than after_ms ago is looked up with
// dtx_client_resolve() at the coordinator, and its commit or abort is run
// through the barrier as if dtxd had called. The only barrier code that
// needs a dtx_client; it reads the keys barrier.c writes (barrier_impl.h).
//
// Every decision is logged (event resolver_decision, INFO when it acts,
// DEBUG when it waits) with the gid, the branch, the coordinator's answer
// and what was done, and counted in the participant's stats.
//
// Lock order: dtxi_resolver.mtx guards only the stop flag and is never
// held with another lock; the callbacks it runs take the barrier's.

#include "resolver.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rocksdb/c.h>

#include "barrier_impl.h"
#include "client.h"
#include "clock.h"
#include "log.h"
#include "reply.h"

// Bounded work per pass, so that a backlog never stalls the resolver nor
// holds a stripe for long.
#define PURGE_PER_PASS   1000
#define RESOLVE_PER_PASS 64
#define RESOLVE_TIMEOUT  2000

struct dtxi_resolver {
	dtxi_barrier        *b;
	char                *url; // NULL: purge only
	dtxi_tls            *tls; // held for a tls+tcp:// url, or NULL
	uint32_t             after_ms;
	dtxi_resolver_runner run;
	void                *run_arg;
	size_t               max_payload;
	pthread_t            thread;
	pthread_mutex_t      mtx;
	pthread_cond_t       cv;
	bool                 stop;   // guarded by mtx
	uint64_t             purged; // the thread's own
};

// One purge pass: deletes up to PURGE_PER_PASS records written before the
// retention cutoff, oldest first. The record of a prepare whose branch is
// still undecided is kept (its time entry moves to now), since a late
// commit needs it. Returns true when it stopped at its bound with more to
// do. Deletes are not synced: a purge lost in a crash is redone.
static bool
purge_pass(dtxi_resolver *r)
{
	dtxi_barrier         *b      = r->b;
	int64_t               cutoff = dtxi_now_ms() - b->retention_ms;
	unsigned char         seek[DTXI_BARRIER_PREFIX_MAX + 1];
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
		unsigned char        rk[DTXI_BARRIER_KEY_MAX];
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
		if ((int64_t)dtxi_barrier_get_be64(t) > cutoff) {
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
		branch    = dtxi_barrier_get_be32(t + 8 + glen + 1);
		phase     = t[8 + glen + 5];
		if (phase == DTX_PHASE_PREPARE) {
			size_t plen =
			    dtxi_barrier_key_prepared(b, rk, gid, branch);
			if (dtxi_barrier_db_get(b, rk, plen, &pv, &pvlen) !=
			    0) {
				break; // logged; the next pass tries again
			}
			if (pv != NULL) {
				rocksdb_free(pv);
				rocksdb_writebatch_delete(
				    wb, (const char *)k, klen);
				plen = dtxi_barrier_key_time(
				    b, rk, dtxi_now_ms(), gid, branch, phase);
				rocksdb_writebatch_put(
				    wb, (const char *)rk, plen, "", 0);
				continue;
			}
		}
		rocksdb_writebatch_delete(wb, (const char *)k, klen);
		rocksdb_writebatch_delete(wb, (const char *)rk,
		    dtxi_barrier_key_record(b, rk, gid, branch, phase));
		deleted++;
	}
	rocksdb_iter_destroy(it);
	if (rocksdb_writebatch_count(wb) > 0 &&
	    dtxi_barrier_db_write(b, wb, b->wo_purge) == 0 && deleted > 0) {
		r->purged += deleted;
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
	unsigned char       seek[DTXI_BARRIER_PREFIX_MAX + 1];
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
		if ((int64_t)dtxi_barrier_get_be64(v) > cutoff) {
			continue;
		}
		mlen = v[8];
		if (mlen > DTX_METHOD_MAX || 9 + mlen + 4 > vlen) {
			continue;
		}
		plen = dtxi_barrier_get_be32(v + 9 + mlen);
		if (plen != vlen - 9 - mlen - 4) {
			continue;
		}
		doubt *d = &out[n];
		memcpy(d->gid, k + b->plen + 1, glen);
		d->gid[glen] = '\0';
		d->branch = dtxi_barrier_get_be32(k + b->plen + 1 + glen + 1);
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
stopping(dtxi_resolver *r)
{
	bool s;

	pthread_mutex_lock(&r->mtx);
	s = r->stop;
	pthread_mutex_unlock(&r->mtx);
	return s;
}

// One resolver pass: asks the coordinator about every branch prepared
// longer than resolve_after_ms ago and runs the decided phase through the
// barrier, exactly as a delivery from dtxd would run. A branch still
// undecided at the coordinator, or a coordinator that does not answer,
// is tried again on the next pass.
static void
resolve_pass(dtxi_resolver *r, dtx_client **cp)
{
	doubt     d[RESOLVE_PER_PASS];
	size_t    n;
	dtx_reply reply;

	n = find_doubts(
	    r->b, dtxi_now_ms() - (int64_t)r->after_ms, d, RESOLVE_PER_PASS);
	if (n > 0 && *cp == NULL) {
		if (dtxi_client_open(cp, r->url, r->tls) != 0) {
			*cp = NULL;
		} else {
			dtx_client_set_timeout_ms(*cp, RESOLVE_TIMEOUT);
		}
	}
	memset(&reply, 0, sizeof(reply));
	reply.max_payload = r->max_payload;
	for (size_t i = 0; i < n; i++) {
		dtx_state  st = 0;
		dtx_phase  phase;
		dtx_result res;
		int        rv;

		if (*cp == NULL || stopping(r)) {
			break;
		}
		dtxi_pstats_inc(DTXI_BSTAT(r->b, resolve_asks));
		if ((rv = dtx_client_resolve(*cp, d[i].gid, &st)) != 0) {
			char why[DTX_MESSAGE_MAX + 1];
			dtx_client_message(*cp, why, sizeof(why));
			dtxi_pstats_inc(DTXI_BSTAT(r->b, resolve_failures));
			dtxi_log_event(DTXI_LOG_WARN, "resolver_ask_failed",
			    DTXI_FIELDS(DTXI_F_STR("gid", d[i].gid),
			        DTXI_F_NUM("branch", d[i].branch),
			        DTXI_F_STR("coordinator", r->url)),
			    "cannot ask the coordinator about an in-doubt "
			    "branch: %s (%s); next pass",
			    dtx_strerror(rv), why);
			break; // the coordinator is down: next pass
		}
		// The Resolve rule, stated once in dtxd's
		// coordinator/requests.c (on_resolve): act on COMMITTING
		// (answered only once the commit decision is synced) and
		// COMMITTED as commit, on ABORTING and ABORTED as abort;
		// anything else is undecided. The spin model (tests/model)
		// checks that acting on COMMITTING is safe.
		if (st == DTX_STATE_COMMITTING || st == DTX_STATE_COMMITTED) {
			phase = DTX_PHASE_COMMIT;
		} else if (st == DTX_STATE_ABORTING ||
		    st == DTX_STATE_ABORTED) {
			phase = DTX_PHASE_ABORT;
		} else {
			// Undecided, or decided but not durably yet.
			dtxi_log_event(DTXI_LOG_DEBUG, "resolver_decision",
			    DTXI_FIELDS(DTXI_F_STR("gid", d[i].gid),
			        DTXI_F_NUM("branch", d[i].branch),
			        DTXI_F_STR("answer", dtx_state_name(st)),
			        DTXI_F_STR("action", "wait")),
			    "in-doubt branch is %s at the coordinator: left "
			    "for now",
			    dtx_state_name(st));
			continue;
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
		    .traceparent = "",
		};
		reply.message[0] = '\0';
		res              = r->run(r->run_arg, &call, &reply);
		// Done only once durable, as a reply to dtxd would be.
		if (res == DTX_OK &&
		    dtxi_barrier_wait(r->b, reply.durable) != 0) {
			res = DTX_RETRY;
		}
		if (res == DTX_OK) {
			dtxi_pstats_inc(phase == DTX_PHASE_COMMIT
			        ? DTXI_BSTAT(r->b, resolve_commits)
			        : DTXI_BSTAT(r->b, resolve_aborts));
		} else {
			dtxi_pstats_inc(DTXI_BSTAT(r->b, resolve_failures));
		}
		dtxi_log_event(res == DTX_OK ? DTXI_LOG_INFO : DTXI_LOG_WARN,
		    "resolver_decision",
		    DTXI_FIELDS(DTXI_F_STR("gid", d[i].gid),
		        DTXI_F_NUM("branch", d[i].branch),
		        DTXI_F_STR("phase", dtx_phase_name(phase)),
		        DTXI_F_STR("answer", dtx_state_name(st)),
		        DTXI_F_STR("action", dtx_phase_name(phase)),
		        DTXI_F_STR(
		            "result", res == DTX_OK ? "done" : "failed")),
		    "in-doubt branch is %s at the coordinator: ran its %s "
		    "here: %s",
		    dtx_state_name(st), dtx_phase_name(phase),
		    res == DTX_OK ? "done" : "failed, will retry");
		dtx_reply_set_payload(&reply, NULL, 0);
	}
	for (size_t i = 0; i < n; i++) {
		free(d[i].payload);
	}
}

static void *
resolver_main(void *arg)
{
	dtxi_resolver *r          = arg;
	dtx_client    *c          = NULL;
	int64_t        next_purge = 0;
	int64_t        period;

	// The purge runs a few times per retention period (at most every
	// minute); the resolver a few times per after_ms (at least every
	// second), so an in-doubt branch waits at most about half as long
	// again as configured.
	period = r->b->retention_ms / 4;
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
			next_purge = now + (purge_pass(r) ? 0 : period);
		}
		if (r->url != NULL) {
			resolve_pass(r, &c);
			wait = r->after_ms / 4;
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
		pthread_mutex_lock(&r->mtx);
		while (!r->stop &&
		    pthread_cond_timedwait(&r->cv, &r->mtx, &ts) !=
		        ETIMEDOUT) {
		}
		if (r->stop) {
			pthread_mutex_unlock(&r->mtx);
			break;
		}
		pthread_mutex_unlock(&r->mtx);
	}
	dtx_client_close(c);
	return NULL;
}

int
dtxi_resolver_start(dtxi_resolver **rp, dtxi_barrier *b, const char *url,
    dtxi_tls *tls, uint32_t after_ms, dtxi_resolver_runner run, void *arg,
    size_t max_payload)
{
	dtxi_resolver *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return DTX_ENOMEM;
	}
	if (url != NULL && (r->url = strdup(url)) == NULL) {
		free(r);
		return DTX_ENOMEM;
	}
	if (pthread_mutex_init(&r->mtx, NULL) != 0) {
		free(r->url);
		free(r);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&r->cv, NULL) != 0) {
		pthread_mutex_destroy(&r->mtx);
		free(r->url);
		free(r);
		return DTX_ENOMEM;
	}
	r->b           = b;
	r->tls         = tls;
	r->after_ms    = after_ms;
	r->run         = run;
	r->run_arg     = arg;
	r->max_payload = max_payload;
	if (pthread_create(&r->thread, NULL, resolver_main, r) != 0) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mtx);
		free(r->url);
		free(r);
		return DTX_ENOMEM;
	}
	if (tls != NULL) {
		dtxi_tls_hold(tls);
	}
	*rp = r;
	return 0;
}

void
dtxi_resolver_stop(dtxi_resolver *r)
{
	if (r == NULL) {
		return;
	}
	pthread_mutex_lock(&r->mtx);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mtx);
	pthread_join(r->thread, NULL);
	if (r->purged > 0) {
		DTXI_DEBUG("barrier: purged %llu records in all",
		    (unsigned long long)r->purged);
	}
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mtx);
	dtxi_tls_rele(r->tls);
	free(r->url);
	free(r);
}
