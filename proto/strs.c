// SPDX-License-Identifier: MIT
//
// strs: bounded string copying (see strs.h).

#include "strs.h"

#include <string.h>

size_t
dtxi_strlcpy(char *dst, const char *src, size_t cap)
{
	size_t len = strlen(src);
	if (cap > 0) {
		size_t n = len < cap - 1 ? len : cap - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}
