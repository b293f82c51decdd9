// SPDX-License-Identifier: MIT
//
// random: random bytes for gids, jitter and the engines' seeds.

#ifndef DTX_RANDOM_H
#define DTX_RANDOM_H

#include <stddef.h>

// Fills buf with n random bytes (getrandom; falls back to a seeded xorshift
// only if the kernel refuses).
void dtxi_random(void *buf, size_t n);

#endif // DTX_RANDOM_H
