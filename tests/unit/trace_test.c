// SPDX-License-Identifier: MIT
//
// dtx.unit.trace: the W3C traceparent check (proto/trace.c), shared by the
// client and dtxd: what it accepts, what it refuses and why, and the trace
// id it extracts.

#include <criterion/criterion.h>

#include <string.h>

#include "trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Test(trace, a_valid_traceparent_is_kept_as_is)
{
	char norm[DTXI_TRACEPARENT_LEN + 1];
	char id[33];

	cr_assert(dtxi_traceparent_check(TP, norm, NULL, 0));
	cr_assert_str_eq(norm, TP);
	dtxi_traceparent_trace_id(TP, id);
	cr_assert_str_eq(id, "4bf92f3577b34da6a3ce929d0e0e4736");
	dtxi_traceparent_trace_id("", id);
	cr_assert_str_eq(id, "");
}

Test(trace, a_later_version_keeps_its_first_55_characters)
{
	char norm[DTXI_TRACEPARENT_LEN + 1];

	cr_assert(dtxi_traceparent_check("01-4bf92f3577b34da6a3ce929d0e0e4736-"
	                                 "00f067aa0ba902b7-01-more",
	    norm, NULL, 0));
	cr_assert_eq(strlen(norm), DTXI_TRACEPARENT_LEN);
	cr_assert(strncmp(norm, "01-", 3) == 0);
}

Test(trace, invalid_ones_are_refused_with_the_reason)
{
	static const struct {
		const char *tp;
		const char *why;
	} bad[] = {
	    {"", "too short"},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "short"},
	    {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	        "version ff"},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
	        "exactly 55"},
	    {"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	        "trace id is all zero"},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	        "parent id is all zero"},
	    {"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
	        "lowercase"},
	    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz",
	        "flags"},
	    {"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	        "version"},
	};
	char why[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		cr_assert(
		    !dtxi_traceparent_check(bad[i].tp, NULL, why, sizeof(why)),
		    "accepted %s", bad[i].tp);
		cr_assert(
		    strstr(why, bad[i].why) != NULL, "%s: %s", bad[i].tp, why);
	}
	cr_assert(!dtxi_traceparent_check(NULL, NULL, why, sizeof(why)));
}
