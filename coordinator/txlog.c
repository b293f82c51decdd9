// SPDX-License-Identifier: MIT
//
// txlog: a transaction's log lines (see txlog.h).

#include "txlog.h"

#include <stdarg.h>
#include <stdio.h>

#include "log.h"
#include "trace.h"

void
dtxd_txlog(int level, const char *event, const txn *tx, int branch,
    const char *fmt, ...)
{
	char    msg[512];
	char    trace_id[33];
	va_list ap;

	if (level > dtxi_log_get_level()) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dtxi_traceparent_trace_id(tx->traceparent, trace_id);
	if (branch < 0 || (uint32_t)branch >= tx->core.nbranches) {
		dtxi_log_event(level, event,
		    DTXI_FIELDS(DTXI_F_STR("gid", tx->gid),
		        DTXI_F_STR("mode", dtx_mode_name(tx->core.mode)),
		        DTXI_F_STR("state", dtx_state_name(tx->core.state)),
		        DTXI_F_STR("trace_id", trace_id)),
		    "%s", msg);
		return;
	}
	const dtxd_branch *br = &tx->core.br[branch];
	dtxi_log_event(level, event,
	    DTXI_FIELDS(DTXI_F_STR("gid", tx->gid),
	        DTXI_F_STR("mode", dtx_mode_name(tx->core.mode)),
	        DTXI_F_STR("state", dtx_state_name(tx->core.state)),
	        DTXI_F_NUM("branch", branch),
	        DTXI_F_STR("phase",
	            br->phase != 0 ? dtx_phase_name(br->phase) : NULL),
	        DTXI_F_NUM("attempt", br->attempts),
	        DTXI_F_STR("endpoint", tx->mb[branch].endpoint),
	        DTXI_F_STR("trace_id", trace_id)),
	    "%s", msg);
}
