// SPDX-License-Identifier: MIT
//
// preload: finished transactions written straight into the store (see
// preload.h), 100,000 per bulk load: each piece becomes one table file per
// column family, handed to RocksDB whole.

#include "preload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_util.h"
#include "record_codec.h"
#include "strs.h"

#define PRELOAD_PIECE 100000
// A record of a committed 2PC is about 60 bytes plus 20 a branch (gid
// included): generous room, per branch.
#define PRELOAD_REC_BASE   256
#define PRELOAD_REC_BRANCH 64

typedef struct piece {
	dtxd_store_finished *f;
	char (*gids)[DTX_GID_MAX + 1];
	uint8_t *recs;
} piece;

// The record dtxd writes when a 2PC of o->branches commits: every branch
// committed at its first attempt, no result payload. The record is large
// (room for every branch's message), so it is cleared once and only the
// fields that differ are set for each transaction.
static void
record_init(const dtxd_preload_opts *o, dtxd_record *r)
{
	memset(r, 0, sizeof(*r));
	r->info.mode      = DTX_2PC;
	r->info.state     = DTX_STATE_COMMITTED;
	r->info.nbranches = o->branches;
	for (uint32_t b = 0; b < o->branches; b++) {
		r->info.branches[b].branch_id = b;
		r->info.branches[b].status    = DTX_BRANCH_OK;
		r->info.branches[b].phase     = DTX_PHASE_COMMIT;
		r->info.branches[b].attempts  = 1;
		r->done[b] = DTXD_DONE_SENT | DTXD_DONE_FWD | DTXD_DONE_FINAL;
	}
	r->timeout_ms      = 30000;
	r->call_timeout_ms = 5000;
	r->retries         = 5;
	r->cursor          = o->branches;
	r->wait            = true;
}

static void
record_of(const dtxd_preload_opts *o, uint64_t i, dtxd_record *r)
{
	int64_t off = (int64_t)(i * o->spacing_us / 1000);

	r->info.created_ms = o->created_ms + off;
	r->info.updated_ms = o->created_ms + off + 5;
	r->deadline_ms     = r->info.created_ms + 30000;
	r->content_hash    = i * 0x9e3779b97f4a7c15ull;
}

// Gids as dtxi_gid_new() makes them: 12 hex digits of the creation time
// in ms, then 20 more. Here the first 6 of those count (so that gids are
// unique and in order within one millisecond) and the other 14 are a hash
// of the number, as random as a real gid's (a store of sequential digits
// compresses to a tenth of a real one's size).
int
dtxd_preload_gid(const dtxd_preload_opts *o, uint64_t i, char *gid)
{
	uint64_t x       = i + 0x9e3779b97f4a7c15ull;
	int64_t  created = o->created_ms + (int64_t)(i * o->spacing_us / 1000);

	if (i >= o->n) {
		return DTX_EINVAL;
	}
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	snprintf(gid, DTX_GID_MAX + 1, "%012llx%06llx%014llx",
	    (unsigned long long)created & 0xffffffffffffull,
	    (unsigned long long)(i & 0xffffff),
	    (unsigned long long)(x & 0xffffffffffffffull));
	return 0;
}

int
dtxd_preload(dtxd_store *s, const dtxd_preload_opts *o)
{
	piece        p;
	dtxd_record *r;
	size_t       cap;
	int          rv = 0;

	if (s == NULL || o == NULL || o->branches == 0 ||
	    o->branches > DTX_BRANCHES_MAX || o->created_ms < 0 ||
	    o->expire_ms < 0) {
		return DTX_EINVAL;
	}
	cap    = PRELOAD_REC_BASE + PRELOAD_REC_BRANCH * (size_t)o->branches;
	p.f    = calloc(PRELOAD_PIECE, sizeof(*p.f));
	p.gids = calloc(PRELOAD_PIECE, sizeof(*p.gids));
	p.recs = malloc((size_t)PRELOAD_PIECE * cap);
	r      = malloc(sizeof(*r));
	if (p.f == NULL || p.gids == NULL || p.recs == NULL || r == NULL) {
		rv = DTX_ENOMEM;
		goto out;
	}
	record_init(o, r);
	for (uint64_t base = 0; rv == 0 && base < o->n;
	     base += PRELOAD_PIECE) {
		size_t k = o->n - base < PRELOAD_PIECE ? (size_t)(o->n - base)
		                                       : PRELOAD_PIECE;

		for (size_t j = 0; j < k && rv == 0; j++) {
			uint64_t i   = base + j;
			uint8_t *buf = p.recs + j * cap;
			size_t   len;

			record_of(o, i, r);
			dtxd_preload_gid(o, i, p.gids[j]);
			dtxi_strlcpy(
			    r->info.gid, p.gids[j], sizeof(r->info.gid));
			rv            = dtxd_record_encode(r, buf, cap, &len);
			p.f[j].gid    = p.gids[j];
			p.f[j].record = buf;
			p.f[j].record_len = len;
			p.f[j].expire_ms =
			    o->expire_ms + (int64_t)(i * o->spacing_us / 1000);
		}
		if (rv == 0) {
			rv = dtxd_store_ingest_finished(s, p.f, k);
		}
	}
out:
	free(r);
	free(p.recs);
	free(p.gids);
	free(p.f);
	return rv;
}
