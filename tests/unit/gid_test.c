// SPDX-License-Identifier: MIT
//
// dtx.unit.gid: gids made by libdtx and dtxd: their form, their
// uniqueness, and their time order (dtxd's store relies on gids made close
// in time sorting close together).

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "gid.h"

#define MANY 20000

static int
cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

Test(gid, is_32_lowercase_hex_digits_and_never_repeats)
{
	char(*g)[DTX_GID_MAX + 1] = calloc(MANY, sizeof(*g));

	cr_assert_not_null(g);
	for (int i = 0; i < MANY; i++) {
		dtxi_gid_new(g[i]);
		cr_assert_eq(strlen(g[i]), 32, "gid %s", g[i]);
		cr_assert_eq(
		    strspn(g[i], "0123456789abcdef"), 32, "gid %s", g[i]);
	}
	qsort(g, MANY, sizeof(*g), cmp);
	for (int i = 1; i < MANY; i++) {
		cr_assert_str_neq(g[i - 1], g[i]);
	}
	free(g);
}

Test(gid, starts_with_the_time_and_sorts_by_it)
{
	char            a[DTX_GID_MAX + 1];
	char            b[DTX_GID_MAX + 1];
	char            head[13];
	struct timespec pause  = {0, 3 * 1000000L};
	int64_t         before = dtxi_now_ms();
	int64_t         at;

	dtxi_gid_new(a);
	nanosleep(&pause, NULL);
	dtxi_gid_new(b);
	memcpy(head, a, 12);
	head[12] = '\0';
	at       = (int64_t)strtoull(head, NULL, 16);
	cr_assert(at >= before && at <= dtxi_now_ms(), "gid %s, time %lld", a,
	    (long long)before);
	cr_assert_lt(strcmp(a, b), 0, "%s made before %s", a, b);
}
