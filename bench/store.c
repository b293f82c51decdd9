// SPDX-License-Identifier: MIT
//
// store: the RocksDB limit (see limits.h). dtxd's store collects the
// writes that arrive while an fsync is running into the next WriteBatch; at
// best, with conc transactions in flight, all conc of them wait for the same
// fsync. So the limit is batches of conc puts written with sync on, back to
// back, in a fresh database on the same file system as dtxd's data.

#include "limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include <dtx/dtx.h>

#include "proc.h"

// Batches larger than this gain nothing more from group commit.
#define BATCH_MAX 1024

int
bench_limit_store(const char *dir, unsigned conc, size_t value_size,
    double seconds, bench_limit *out)
{
	rocksdb_options_t      *opts = rocksdb_options_create();
	rocksdb_writeoptions_t *wo   = rocksdb_writeoptions_create();
	rocksdb_t              *db   = NULL;
	rocksdb_writebatch_t   *wb   = rocksdb_writebatch_create();
	char                   *err  = NULL;
	char                   *val  = NULL;
	unsigned                batch;
	uint64_t                key = 0, writes = 0, syncs = 0;
	int64_t                 t0, t1, end;
	double                  cpu0, cpu1;
	int                     rv = DTX_ESTORAGE;

	memset(out, 0, sizeof(*out));
	batch = conc == 0 ? 1 : (conc > BATCH_MAX ? BATCH_MAX : conc);
	if ((val = malloc(value_size > 0 ? value_size : 1)) == NULL) {
		rv = DTX_ENOMEM;
		goto done;
	}
	memset(val, 'v', value_size);
	rocksdb_options_set_create_if_missing(opts, 1);
	rocksdb_writeoptions_set_sync(wo, 1);
	db = rocksdb_open(opts, dir, &err);
	if (err != NULL) {
		fprintf(stderr, "dtx-bench: rocksdb open %s: %s\n", dir, err);
		rocksdb_free(err);
		db = NULL;
		goto done;
	}
	t0   = bench_now_us();
	end  = t0 + (int64_t)(seconds * 1e6);
	cpu0 = bench_self_cpu_s();
	do {
		rocksdb_writebatch_clear(wb);
		for (unsigned i = 0; i < batch; i++) {
			char k[32];
			int  kl = snprintf(k, sizeof(k), "tx/%020llu",
			     (unsigned long long)key++);
			rocksdb_writebatch_put(
			    wb, k, (size_t)kl, val, value_size);
		}
		rocksdb_write(db, wo, wb, &err);
		if (err != NULL) {
			fprintf(stderr, "dtx-bench: rocksdb write: %s\n", err);
			rocksdb_free(err);
			goto done;
		}
		writes += batch;
		syncs++;
		t1 = bench_now_us();
	} while (t1 < end);
	cpu1               = bench_self_cpu_s();
	out->ok            = true;
	out->seconds       = (double)(t1 - t0) / 1e6;
	out->ops           = (double)writes;
	out->ops_per_s     = (double)writes / out->seconds;
	out->cpu_us_per_op = (cpu1 - cpu0) * 1e6 / (double)writes;
	out->ops_per_batch = (double)writes / (double)syncs;
	rv                 = 0;

done:
	if (db != NULL) {
		rocksdb_close(db);
	}
	rocksdb_writebatch_destroy(wb);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(opts);
	free(val);
	return rv;
}
