// SPDX-License-Identifier: MIT
//
// fuzz_spec: a stored branch spec (endpoint, method, payload) as recovery
// reads it back from the store. A torn value must be refused, never
// misread; accepted specs keep the codec's promises and survive a round
// trip.

#include "fuzz.h"
#include "roundtrip.h"

static dtxi_branch_spec spec, again;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rv = dtxd_spec_decode(&spec, data, size);

	if (rv != 0) {
		DTXF_CHECK(rv == DTX_EPROTO);
		return 0;
	}
	dtxf_check_spec(&spec, data, size);
	DTXF_ROUNDTRIP(
	    dtxd_spec_encode, dtxd_spec_decode, dtxf_same_spec, &spec, &again);
	return 0;
}
