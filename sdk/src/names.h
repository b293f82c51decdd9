// SPDX-License-Identifier: MIT
//
// names: what libdtx accepts as a gid, a method name or an endpoint, the
// rule stated once for the client (tx.c, admin.c) and the participant's
// method registry. dtxd checks the same limits on its side (the codec).

#ifndef DTX_NAMES_H
#define DTX_NAMES_H

#include <stdbool.h>

// 1..DTX_GID_MAX printable ASCII bytes other than space (0x21..0x7e).
bool dtxi_gid_ok(const char *gid);

// 1..DTX_METHOD_MAX printable ASCII bytes other than space (0x21..0x7e), as
// dtxd checks them (a space would split a log line's method= field).
bool dtxi_method_ok(const char *method);

// 1..DTX_ENDPOINT_MAX bytes of 0x21..0x7e with a "scheme://".
bool dtxi_endpoint_ok(const char *endpoint);

#endif // DTX_NAMES_H
