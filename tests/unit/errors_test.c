// SPDX-License-Identifier: MIT
//
// errors: dtx_strerror() over the whole DTX_ERR_MAP, and the constant names
// of the public enums that logs and dtxctl print.

#include <string.h>

#include <criterion/criterion.h>

#include <dtx/dtx.h>

// Every code of the map, with the text the map gives it, so the tests follow
// the map when a code is added.
static const struct {
	int         code;
	const char *text;
} codes[] = {
#define ERR_ROW_(name, num, text) {DTX_##name, text},
    DTX_ERR_MAP(ERR_ROW_)
#undef ERR_ROW_
};

#define NCODES (sizeof(codes) / sizeof(codes[0]))

Test(errors, strerror_gives_the_map_text_for_every_code)
{
	for (size_t i = 0; i < NCODES; i++) {
		const char *s = dtx_strerror(codes[i].code);

		cr_assert_not_null(s);
		cr_assert_gt(
		    strlen(s), 0, "code %d has an empty text", codes[i].code);
		cr_assert_str_eq(s, codes[i].text);
		cr_assert_str_neq(s, "unknown error");
	}
}

Test(errors, strerror_gives_distinct_texts_to_distinct_codes)
{
	for (size_t i = 0; i < NCODES; i++) {
		for (size_t j = i + 1; j < NCODES; j++) {
			cr_assert_neq(codes[i].code, codes[j].code);
			cr_assert_str_neq(dtx_strerror(codes[i].code),
			    dtx_strerror(codes[j].code), "codes %d and %d",
			    codes[i].code, codes[j].code);
		}
	}
}

Test(errors, strerror_of_zero_is_no_error)
{
	cr_assert_str_eq(dtx_strerror(0), "no error");
}

Test(errors, strerror_of_an_unknown_code_is_unknown_error)
{
	const int unknown[] = {-1, -7, 22, 100, 1 << 30};

	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		cr_assert_str_eq(dtx_strerror(unknown[i]), "unknown error");
	}
}

Test(errors, state_names_cover_every_state_and_nothing_else)
{
	const char *want[] = {"PREPARING", "COMMITTING", "COMMITTED",
	    "ABORTING", "ABORTED", "RUNNING", "COMPENSATING", "COMPENSATED"};

	for (int s = DTX_STATE_PREPARING; s <= DTX_STATE_COMPENSATED; s++) {
		cr_assert_str_eq(dtx_state_name(s), want[s - 1]);
	}
	cr_assert_str_eq(dtx_state_name(0), "?");
	cr_assert_str_eq(dtx_state_name(9), "?");
	cr_assert_str_eq(dtx_state_name(-1), "?");
}

Test(errors, phase_names_cover_every_phase_and_nothing_else)
{
	const char *want[] = {
	    "PREPARE", "COMMIT", "ABORT", "EXECUTE", "COMPENSATE"};

	for (int p = DTX_PHASE_PREPARE; p <= DTX_PHASE_COMPENSATE; p++) {
		cr_assert_str_eq(dtx_phase_name(p), want[p - 1]);
	}
	cr_assert_str_eq(dtx_phase_name(0), "?");
	cr_assert_str_eq(dtx_phase_name(6), "?");
	cr_assert_str_eq(dtx_phase_name(-1), "?");
}

Test(errors, branch_status_names_cover_every_status_and_nothing_else)
{
	const char *want[] = {
	    "NONE", "OK", "REFUSED", "RETRY", "NO_SUCH_METHOD", "BAD_REQUEST"};

	for (int s = DTX_BRANCH_NONE; s <= DTX_BRANCH_BAD_REQUEST; s++) {
		cr_assert_str_eq(dtx_branch_status_name(s), want[s]);
	}
	cr_assert_str_eq(dtx_branch_status_name(6), "?");
	cr_assert_str_eq(dtx_branch_status_name(-1), "?");
}

Test(errors, mode_names_cover_both_modes_and_nothing_else)
{
	cr_assert_str_eq(dtx_mode_name(DTX_2PC), "2pc");
	cr_assert_str_eq(dtx_mode_name(DTX_SAGA), "saga");
	cr_assert_str_eq(dtx_mode_name(0), "?");
	cr_assert_str_eq(dtx_mode_name(3), "?");
}

Test(errors, only_committed_aborted_and_compensated_are_terminal)
{
	for (int s = -1; s <= 10; s++) {
		bool want = s == DTX_STATE_COMMITTED ||
		    s == DTX_STATE_ABORTED || s == DTX_STATE_COMPENSATED;

		cr_assert_eq(dtx_state_is_terminal(s), want, "state %d", s);
	}
}
