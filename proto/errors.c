// SPDX-License-Identifier: MIT
//
// errors: dtx_strerror() and the constant names of the public enums. The
// error table comes from DTX_ERR_MAP, the single source of the codes.

#include <dtx/dtx.h>

const char *
dtx_strerror(int err)
{
	switch (err) {
	case 0:
		return "no error";
#define DTX_ERR_CASE_(name, num, text)                                        \
	case num:                                                             \
		return text;
		DTX_ERR_MAP(DTX_ERR_CASE_)
#undef DTX_ERR_CASE_
	default:
		return "unknown error";
	}
}

const char *
dtx_state_name(int state)
{
	static const char *const names[] = {"?", "PREPARING", "COMMITTING",
	    "COMMITTED", "ABORTING", "ABORTED", "RUNNING", "COMPENSATING",
	    "COMPENSATED"};
	return state >= 1 && state <= 8 ? names[state] : "?";
}

const char *
dtx_phase_name(int phase)
{
	static const char *const names[] = {
	    "?", "PREPARE", "COMMIT", "ABORT", "EXECUTE", "COMPENSATE"};
	return phase >= 1 && phase <= 5 ? names[phase] : "?";
}

const char *
dtx_branch_status_name(int status)
{
	static const char *const names[] = {
	    "NONE", "OK", "REFUSED", "RETRY", "NO_SUCH_METHOD", "BAD_REQUEST"};
	return status >= 0 && status <= 5 ? names[status] : "?";
}

const char *
dtx_mode_name(int mode)
{
	return mode == DTX_2PC ? "2pc" : mode == DTX_SAGA ? "saga" : "?";
}

bool
dtx_state_is_terminal(int state)
{
	return state == DTX_STATE_COMMITTED || state == DTX_STATE_ABORTED ||
	    state == DTX_STATE_COMPENSATED;
}
