// SPDX-License-Identifier: MIT
//
// names: the checks of names.h.

#include "names.h"

#include <stddef.h>
#include <string.h>

#include <dtx/dtx.h>

// 1..max bytes of lo..0x7e.
static bool
printable(const char *s, size_t max, unsigned char lo)
{
	size_t n;

	if (s == NULL) {
		return false;
	}
	n = strnlen(s, max + 1);
	if (n == 0 || n > max) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < lo || ch > 0x7e) {
			return false;
		}
	}
	return true;
}

bool
dtxi_gid_ok(const char *gid)
{
	return printable(gid, DTX_GID_MAX, 0x21);
}

bool
dtxi_method_ok(const char *method)
{
	return printable(method, DTX_METHOD_MAX, 0x21);
}

bool
dtxi_endpoint_ok(const char *endpoint)
{
	return printable(endpoint, DTX_ENDPOINT_MAX, 0x21) &&
	    strstr(endpoint, "://") != NULL;
}
