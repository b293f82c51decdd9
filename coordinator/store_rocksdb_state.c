// SPDX-License-Identifier: MIT
//
// store_rocksdb_state: what the RocksDB backend's files share at run time
// (see store_rocksdb_state.h): its error mapping, the names of its column
// families, the hold on the database handles, its counters.

#include "store_rocksdb_state.h"

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "log.h"

int
dtxd_rdb_error(char *err, const char *what, bool at_open)
{
	int rv = DTX_ESTORAGE;

	if (strstr(err, "No space left on device") != NULL) {
		rv = DTX_ENOSPC;
	} else if (at_open) {
		// RocksDB reports the LOCK file held by another process as an
		// IO error whose text names the lock ("While lock file"); the
		// wording has changed across versions, so match loosely.
		// "block" (as in a corrupt block) must not count, so the
		// word has to start there.
		for (const char *p = err; *p != '\0'; p++) {
			if (strncasecmp(p, "lock", 4) == 0 &&
			    (p == err || !isalpha((unsigned char)p[-1]))) {
				rv = DTX_ELOCKED;
				break;
			}
		}
	}
	DTXI_ERROR("store: %s: %s", what, err);
	rocksdb_free(err);
	return rv;
}

static const char *const cf_names[CF_COUNT] = {
    [CF_DEFAULT]    = "default",
    [CF_UNFINISHED] = "unfinished",
    [CF_FINISHED]   = "finished",
    [CF_GIDS]       = "gids",
};

bool
dtxd_rdb_enter(rdb_store *s)
{
	pthread_rwlock_rdlock(&s->dblock);
	if (s->db == NULL) {
		pthread_rwlock_unlock(&s->dblock);
		return false;
	}
	return true;
}

void
dtxd_rdb_leave(rdb_store *s)
{
	pthread_rwlock_unlock(&s->dblock);
}

const char *
dtxd_rdb_cf_name(int cf)
{
	return cf_names[cf];
}

void
dtxd_rdb_get_stats(dtxd_store *base, dtxd_store_stats *st)
{
	rdb_store *s = (rdb_store *)base;

	dtxd_store_queue_get_stats(s->queue, st);
	st->purged += atomic_load(&s->filtered);
}
