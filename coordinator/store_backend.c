// SPDX-License-Identifier: MIT
//
// store_backend: what both store backends share (store_backend.h): the
// rule a gid must meet, the framing of a transaction's specs value, and the
// copy a read returns.
// Kept apart from store.c, which opens the backends, so that the backends
// depend on this file and store.c on them, never the other way round.

#include <dtx/dtx.h>

#include <stdlib.h>
#include <string.h>

#include "store_backend.h"

bool
dtxd_store_specs_parse(const uint8_t *p, size_t n, dtxd_store_unfinished *u)
{
	uint32_t k = 0;

	while (n > 0) {
		uint32_t len;

		if (n < 4 || k == DTX_BRANCHES_MAX) {
			u->nspecs = 0;
			return false;
		}
		len = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
		    ((uint32_t)p[2] << 8) | p[3];
		if (len > n - 4) {
			u->nspecs = 0;
			return false;
		}
		u->specs[k]     = p + 4;
		u->spec_lens[k] = len;
		k++;
		p += 4 + len;
		n -= 4 + len;
	}
	u->nspecs = k;
	return true;
}

bool
dtxd_store_gid_valid(const char *gid, size_t *lenp)
{
	size_t n;

	if (gid == NULL) {
		return false;
	}
	for (n = 0; gid[n] != '\0'; n++) {
		// Printable ASCII, spelled out so the locale cannot widen it.
		if (n >= DTX_GID_MAX || gid[n] < 0x20 || gid[n] > 0x7e) {
			return false;
		}
	}
	*lenp = n;
	return n > 0;
}

int
dtxd_store_dup_bytes(const void *data, size_t n, uint8_t **val, size_t *len)
{
	uint8_t *buf;

	if ((buf = malloc(n > 0 ? n : 1)) == NULL) {
		return DTX_ENOMEM;
	}
	if (n > 0) {
		memcpy(buf, data, n);
	}
	*val = buf;
	*len = n;
	return 0;
}
