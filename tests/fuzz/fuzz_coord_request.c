// SPDX-License-Identifier: MIT
//
// fuzz_coord_request: a request as dtxd's server decodes it from a client
// (Submit, Status, List, Abort, Resolve, Stats; anything else is refused
// after decoding). Whatever the decoder accepts must keep the codec's
// promises and survive a round trip.

#include <string.h>

#include "fuzz.h"
#include "roundtrip.h"

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
	        &req, data, size, DTXF_MAX_FRAME, DTXF_MAX_PAYLOAD, err);
	if (rv != 0) {
		// Every refusal is one of the documented codes, with a reason
		// the server can put in its error reply.
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
