// SPDX-License-Identifier: MIT
//
// gid: time-ordered random gids (see gid.h).

#include "gid.h"

#include <stdint.h>

#include "clock.h"
#include "random.h"

void
dtxi_gid_new(char *out)
{
	static const char hex[] = "0123456789abcdef";
	uint8_t           raw[16];
	uint64_t          ms = (uint64_t)dtxi_now_ms();

	// 48 bits of wall-clock milliseconds first, then 80 random bits: gids
	// made close in time sort close together. dtxd's store keys records by
	// gid, and RocksDB inserts a key into its memtable far more cheaply
	// near the keys it just touched than at a random place (a fifth of
	// the store's CPU per transaction); listings come out in time order
	// too. 80 random bits per millisecond keep gids unique.
	for (int i = 0; i < 6; i++) {
		raw[i] = (uint8_t)(ms >> (8 * (5 - i)));
	}
	dtxi_random(raw + 6, sizeof(raw) - 6);
	for (int i = 0; i < 16; i++) {
		out[2 * i]     = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 0xf];
	}
	out[32] = '\0';
}
