// SPDX-License-Identifier: MIT
//
// world_suite: the fixture most integration and fault suites share. One
// dtxt_world `w` per test, made by world_setup() and removed with every
// process and directory by world_teardown(), and CHECK/CHECK_RV, which
// show the logs of dtxd and the participants before failing. Include it
// once, from a test file: it defines file-scope objects.

#ifndef DTX_TEST_WORLD_SUITE_H
#define DTX_TEST_WORLD_SUITE_H

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include "harness.h"

static dtxt_world w;

static inline void
world_setup(void)
{
	cr_assert_eq(dtxt_world_init(&w), 0, "cannot make the test directory");
}

static inline void
world_teardown(void)
{
	dtxt_world_fini(&w);
	dtxt_cleanup();
}

// Like cr_assert, but shows the logs of dtxd and the participants first.
#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			dtxt_world_dump(&w);                                  \
			cr_assert_fail(__VA_ARGS__);                          \
		}                                                             \
	} while (0)

#define CHECK_RV(expr)                                                        \
	do {                                                                  \
		int rv_ = (expr);                                             \
		CHECK(rv_ == 0, "%s: %s", #expr, dtx_strerror(rv_));          \
	} while (0)

#endif // DTX_TEST_WORLD_SUITE_H
