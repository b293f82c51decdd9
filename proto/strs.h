// SPDX-License-Identifier: MIT
//
// strs: string helpers C11 lacks. (Not "strings.h": that is a system
// header.)

#ifndef DTX_STRS_H
#define DTX_STRS_H

#include <stddef.h>

// Copies src into dst of size cap, always NUL-terminating; returns the
// length of src (a result >= cap means it was truncated).
size_t dtxi_strlcpy(char *dst, const char *src, size_t cap);

#endif // DTX_STRS_H
