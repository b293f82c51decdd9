// SPDX-License-Identifier: MIT
//
// recovery: reads every unfinished transaction back from the store and
// hands it to the transaction manager (see recovery.h). The manager decides
// what each one does next, through its engine's RECOVER event: a 2PC that
// had not decided is aborted, one that had decided finishes phase two, a
// saga goes on forward or goes on compensating.

#include "recovery.h"

#include <stdlib.h>

#include "clock.h"
#include "codec.h"
#include "log.h"
#include "record_codec.h"

typedef struct rctx {
	dtxd_store  *st;
	dtxd_txmgr  *m;
	dtxd_record *rec;
	uint64_t     count;
	uint64_t     skipped;
} rctx;

static int
recover_one(void *arg, const char *gid, const uint8_t *buf, size_t len)
{
	rctx    *rc = arg;
	uint8_t *specs[DTX_BRANCHES_MAX];
	size_t   lens[DTX_BRANCHES_MAX];
	uint32_t n = 0;
	int      rv;

	if (dtxd_record_decode(rc->rec, buf, len) != 0 ||
	    rc->rec->info.nbranches == 0) {
		DTXI_ERROR("recovery: the record of %s does not decode; left "
		           "in the store",
		    gid);
		rc->skipped++;
		return 0;
	}
	for (n = 0; n < rc->rec->info.nbranches; n++) {
		rv = dtxd_store_get_spec(rc->st, gid, n, &specs[n], &lens[n]);
		if (rv != 0) {
			DTXI_ERROR("recovery: branch %u of %s is missing: %s",
			    n, gid, dtx_strerror(rv));
			break;
		}
	}
	rv = 0;
	if (n == rc->rec->info.nbranches) {
		rv = dtxd_txmgr_adopt(
		    rc->m, rc->rec, (const uint8_t *const *)specs, lens);
		if (rv == 0) {
			rc->count++;
		} else if (rv == DTX_EPROTO) {
			DTXI_ERROR(
			    "recovery: a branch of %s does not decode", gid);
			rc->skipped++;
			rv = 0;
		}
	} else {
		rc->skipped++;
	}
	for (uint32_t i = 0; i < n; i++) {
		free(specs[i]);
	}
	return rv;
}

int
dtxd_recover(dtxd_store *st, dtxd_txmgr *m, uint64_t *count)
{
	rctx    rc = {st, m, NULL, 0, 0};
	int64_t t0 = dtxi_mono_ms();
	int     rv;

	if ((rc.rec = malloc(sizeof(*rc.rec))) == NULL) {
		return DTX_ENOMEM;
	}
	rv = dtxd_store_scan_unfinished(st, recover_one, &rc);
	free(rc.rec);
	if (rv != 0) {
		return rv;
	}
	if (rc.count > 0 || rc.skipped > 0) {
		DTXI_INFO("recovery: %llu unfinished transactions loaded in "
		          "%lld ms (%llu skipped)",
		    (unsigned long long)rc.count,
		    (long long)(dtxi_mono_ms() - t0),
		    (unsigned long long)rc.skipped);
	}
	*count = rc.count;
	return 0;
}
