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
// A record of a committed 2PC of a few branches is about 60 bytes plus 20
// a branch; generous room.
#define PRELOAD_REC_MAX (256 + 64 * DTX_BRANCHES_MAX)

typedef struct piece {
	dtxd_store_finished *f;
	char (*gids)[DTX_GID_MAX + 1];
	uint8_t *recs;
} piece;

// The record dtxd writes when a 2PC of o->branches commits: every branch
// committed at its first attempt, no result payload.
static void
record_of(const dtxd_preload_opts *o, uint64_t i, dtxd_record *r)
{
	int64_t off = (int64_t)(i * o->spacing_us / 1000);

	memset(r, 0, sizeof(*r));
	r->info.mode       = DTX_2PC;
	r->info.state      = DTX_STATE_COMMITTED;
	r->info.created_ms = o->created_ms + off;
	r->info.updated_ms = o->created_ms + off + 5;
	r->info.nbranches  = o->branches;
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
	r->deadline_ms     = r->info.created_ms + 30000;
	r->content_hash    = i * 0x9e3779b97f4a7c15ull;
	r->cursor          = o->branches;
	r->wait            = true;
}

// Gids as dtxi_gid_new() makes them: 12 hex digits of the creation time
// in ms, then 20 more (here the sequence number, so that they are unique
// and in order even within one millisecond).
static void
gid_of(const dtxd_record *r, uint64_t i, char *gid)
{
	snprintf(gid, DTX_GID_MAX + 1, "%012llx%020llx",
	    (unsigned long long)r->info.created_ms & 0xffffffffffffull,
	    (unsigned long long)i);
}

int
dtxd_preload(dtxd_store *s, const dtxd_preload_opts *o)
{
	piece        p;
	dtxd_record *r;
	int          rv = 0;

	if (s == NULL || o == NULL || o->branches == 0 ||
	    o->branches > DTX_BRANCHES_MAX || o->created_ms < 0 ||
	    o->expire_ms < 0) {
		return DTX_EINVAL;
	}
	p.f    = calloc(PRELOAD_PIECE, sizeof(*p.f));
	p.gids = calloc(PRELOAD_PIECE, sizeof(*p.gids));
	p.recs = malloc((size_t)PRELOAD_PIECE * PRELOAD_REC_MAX);
	r      = malloc(sizeof(*r));
	if (p.f == NULL || p.gids == NULL || p.recs == NULL || r == NULL) {
		rv = DTX_ENOMEM;
		goto out;
	}
	for (uint64_t base = 0; rv == 0 && base < o->n;
	     base += PRELOAD_PIECE) {
		size_t k = o->n - base < PRELOAD_PIECE ? (size_t)(o->n - base)
		                                       : PRELOAD_PIECE;

		for (size_t j = 0; j < k && rv == 0; j++) {
			uint64_t i   = base + j;
			uint8_t *buf = p.recs + j * PRELOAD_REC_MAX;
			size_t   len;

			record_of(o, i, r);
			gid_of(r, i, p.gids[j]);
			dtxi_strlcpy(
			    r->info.gid, p.gids[j], sizeof(r->info.gid));
			rv = dtxd_record_encode(r, buf, PRELOAD_REC_MAX, &len);
			p.f[j].gid        = p.gids[j];
			p.f[j].record     = buf;
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
