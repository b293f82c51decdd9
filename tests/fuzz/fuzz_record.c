// SPDX-License-Identifier: MIT
//
// fuzz_record: a transaction record as recovery and Status/List read it
// back from the store. The store is dtxd's own writing, but a torn or
// foreign value must be refused, never misread or crash the daemon at
// start. Accepted records keep the codec's promises and survive a round
// trip.

#include "fuzz.h"
#include "roundtrip.h"

static dtxd_record rec, again;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rv = dtxd_record_decode(&rec, data, size);

	if (rv != 0) {
		DTXF_CHECK(rv == DTX_EPROTO || rv == DTX_EVERSION);
		return 0;
	}
	dtxf_check_record(&rec, data, size);
	DTXF_ROUNDTRIP(dtxd_record_encode, dtxd_record_decode,
	    dtxf_same_record, &rec, &again);
	return 0;
}
