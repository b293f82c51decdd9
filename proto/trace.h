// SPDX-License-Identifier: MIT
//
// trace: W3C Trace Context's traceparent, checked in one place for the
// client (dtx_tx_set_traceparent) and dtxd (Submit). dtx exports no spans:
// it carries the client's traceparent unchanged with the transaction, to
// every branch call and into every log line about it, so that a
// participant's own spans join the client's trace.

#ifndef DTX_TRACE_H
#define DTX_TRACE_H

#include <stdbool.h>
#include <stddef.h>

// "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex.
#define DTXI_TRACEPARENT_LEN 55

// Checks s as a traceparent header value: version (two lowercase hex
// digits, not "ff"), trace id (32, not all zero), parent id (16, not all
// zero), flags (2), separated by '-'. Version 00 is exactly 55 characters;
// a later version may go on after a '-', and only its first 55 characters
// are kept, as the specification asks. On success writes those 55
// characters to norm (DTXI_TRACEPARENT_LEN + 1 bytes; may be NULL) and
// returns true; otherwise writes why (cap bytes; may be NULL), e.g.
// "trace id is all zero".
bool dtxi_traceparent_check(const char *s, char *norm, char *why, size_t cap);

// The trace id of a checked traceparent (32 hex digits) into out (33
// bytes), or "" for "".
void dtxi_traceparent_trace_id(const char *tp, char *out);

#endif // DTX_TRACE_H
