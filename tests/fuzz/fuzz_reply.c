// SPDX-License-Identifier: MIT
//
// fuzz_reply: a reply as the client decodes it from dtxd (no frame limit,
// the default payload limit) and as dtxd's dispatcher decodes it from a
// participant (a frame limit of payload limit plus message and overhead).
// Both must agree on every frame within the smaller limit, keep the
// codec's promises and survive a round trip.

#include <string.h>

#include "fuzz.h"
#include "roundtrip.h"

// dispatcher.c: max_payload + DTX_MESSAGE_MAX + 4096.
#define DISP_FRAME (DTXF_MAX_PAYLOAD + DTX_MESSAGE_MAX + 4096u)

static dtxi_reply client, disp, again;

static int
redecode(dtxi_reply *r, const uint8_t *buf, size_t len)
{
	return dtxi_reply_decode(
	    r, buf, len, SIZE_MAX, DTXF_MAX_PAYLOAD, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[DTX_MESSAGE_MAX + 1];
	int  rc, rd;

	err[0] = '\0';
	rc     = dtxi_reply_decode(
	        &client, data, size, SIZE_MAX, DTXF_MAX_PAYLOAD, err);
	rd = dtxi_reply_decode(
	    &disp, data, size, DISP_FRAME, DTXF_MAX_PAYLOAD, NULL);
	if (size <= DISP_FRAME) {
		DTXF_CHECK(rc == rd);
	} else {
		DTXF_CHECK(rd == DTX_ETOOBIG);
	}
	if (rc != 0) {
		DTXF_CHECK(rc == DTX_EPROTO || rc == DTX_ETOOBIG ||
		    rc == DTX_EVERSION);
		DTXF_CHECK(memchr(err, 0, sizeof(err)) != NULL && err[0] != 0);
		return 0;
	}
	dtxf_check_reply(&client, data, size, DTXF_MAX_PAYLOAD);
	if (rd == 0) {
		dtxf_same_reply(&client, &disp);
	}
	DTXF_ROUNDTRIP(
	    dtxi_reply_encode, redecode, dtxf_same_reply, &client, &again);
	return 0;
}
