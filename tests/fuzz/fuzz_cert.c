// SPDX-License-Identifier: MIT
//
// fuzz_cert: the validity dates of a PEM certificate (proto/certinfo.c), as
// dtx reads them from its own certificate files. Any text ends in dates or
// a refusal; accepted dates are within the years the two time forms can
// write (0000 to 9999) and print.

#include <string.h>

#include "certinfo.h"
#include "fuzz.h"

// 0000-01-01 and 9999-12-31 23:59:59 UTC, in seconds since the epoch.
#define YEAR_0    (-62167219200LL)
#define YEAR_9999 253402300799LL

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t nb, na;
	char    s[32];

	if (dtxi_cert_validity((const char *)data, size, &nb, &na) != 0) {
		return 0;
	}
	DTXF_CHECK(nb >= YEAR_0 && nb <= YEAR_9999);
	DTXF_CHECK(na >= YEAR_0 && na <= YEAR_9999);
	dtxi_cert_time_str(nb, s, sizeof(s));
	DTXF_CHECK(strlen(s) == 23 && strcmp(s + 19, " UTC") == 0);
	dtxi_cert_time_str(na, s, sizeof(s));
	DTXF_CHECK(strlen(s) == 23 && strcmp(s + 19, " UTC") == 0);
	return 0;
}
