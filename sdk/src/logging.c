// SPDX-License-Identifier: MIT
//
// logging: libdtx's public face of the shared logger (proto/log.h): where
// an application routes the SDK's lines, and their level.

#include <dtx/dtx.h>

#include "log.h"

_Static_assert((int)DTX_LOG_ERROR == (int)DTXI_LOG_ERROR &&
        (int)DTX_LOG_WARN == (int)DTXI_LOG_WARN &&
        (int)DTX_LOG_INFO == (int)DTXI_LOG_INFO &&
        (int)DTX_LOG_DEBUG == (int)DTXI_LOG_DEBUG,
    "dtx_log_level and the logger's levels are the same numbers");

void
dtx_set_log_handler(dtx_log_fn fn, void *arg)
{
	dtxi_log_set_handler(fn, arg);
}

void
dtx_set_log_level(int level)
{
	dtxi_log_set_level(level);
}
