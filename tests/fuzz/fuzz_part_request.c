// SPDX-License-Identifier: MIT
//
// fuzz_part_request: a request as a participant decodes it from dtxd's
// dispatcher: single branch calls and call batches, with the participant's
// frame limit (payload limit plus a fixed overhead). Accepted requests
// must keep the codec's promises and survive a round trip; a batch is
// never empty and never over DTXI_BATCH_MAX.

#include <string.h>

#include "fuzz.h"
#include "roundtrip.h"

// The participant's frame limit is its payload limit plus this (see
// FRAME_OVERHEAD in sdk/src/participant.c), scaled down like the limits.
#define PART_FRAME (DTXF_MAX_PAYLOAD + 4096u)

static dtxi_request req, again;

static int
redecode(dtxi_request *r, const uint8_t *buf, size_t len)
{
	return dtxi_request_decode(
	    r, buf, len, SIZE_MAX, DTXF_MAX_PAYLOAD, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[DTX_MESSAGE_MAX + 1];
	int  rv;

	err[0] = '\0';
	rv     = dtxi_request_decode(
	        &req, data, size, PART_FRAME, DTXF_MAX_PAYLOAD, err);
	if (rv != 0) {
		DTXF_CHECK(rv == DTX_EPROTO || rv == DTX_ETOOBIG ||
		    rv == DTX_EVERSION);
		DTXF_CHECK(memchr(err, 0, sizeof(err)) != NULL && err[0] != 0);
		return 0;
	}
	dtxf_check_request(&req, data, size, DTXF_MAX_PAYLOAD);
	DTXF_ROUNDTRIP(
	    dtxi_request_encode, redecode, dtxf_same_request, &req, &again);
	return 0;
}
