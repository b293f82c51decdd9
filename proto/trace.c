// SPDX-License-Identifier: MIT
//
// trace: the traceparent check (see trace.h).

#include "trace.h"

#include <stdio.h>
#include <string.h>

static bool
lower_hex(const char *s, size_t n, bool *all_zero)
{
	*all_zero = true;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
		if (c != '0') {
			*all_zero = false;
		}
	}
	return true;
}

static bool
fail(char *why, size_t cap, const char *msg)
{
	if (why != NULL && cap > 0) {
		snprintf(why, cap, "invalid traceparent: %s", msg);
	}
	return false;
}

bool
dtxi_traceparent_check(const char *s, char *norm, char *why, size_t cap)
{
	size_t n;
	bool   zero;

	if (s == NULL) {
		return fail(why, cap, "none given");
	}
	n = strlen(s);
	if (n < DTXI_TRACEPARENT_LEN) {
		return fail(why, cap,
		    "too short (version-traceid-parentid-flags, 55 "
		    "characters)");
	}
	if (!lower_hex(s, 2, &zero) || s[2] != '-') {
		return fail(
		    why, cap, "version is not two lowercase hex digits");
	}
	if (strncmp(s, "ff", 2) == 0) {
		return fail(why, cap, "version ff is forbidden");
	}
	if (zero && n != DTXI_TRACEPARENT_LEN) {
		return fail(why, cap, "version 00 is exactly 55 characters");
	}
	if (n > DTXI_TRACEPARENT_LEN && s[DTXI_TRACEPARENT_LEN] != '-') {
		return fail(why, cap, "a later version's fields follow a '-'");
	}
	if (!lower_hex(s + 3, 32, &zero) || s[35] != '-') {
		return fail(
		    why, cap, "trace id is not 32 lowercase hex digits");
	}
	if (zero) {
		return fail(why, cap, "trace id is all zero");
	}
	if (!lower_hex(s + 36, 16, &zero) || s[52] != '-') {
		return fail(
		    why, cap, "parent id is not 16 lowercase hex digits");
	}
	if (zero) {
		return fail(why, cap, "parent id is all zero");
	}
	if (!lower_hex(s + 53, 2, &zero)) {
		return fail(
		    why, cap, "flags are not two lowercase hex digits");
	}
	if (norm != NULL) {
		memcpy(norm, s, DTXI_TRACEPARENT_LEN);
		norm[DTXI_TRACEPARENT_LEN] = '\0';
	}
	return true;
}

void
dtxi_traceparent_trace_id(const char *tp, char *out)
{
	if (tp == NULL || strlen(tp) < DTXI_TRACEPARENT_LEN) {
		out[0] = '\0';
		return;
	}
	memcpy(out, tp + 3, 32);
	out[32] = '\0';
}
