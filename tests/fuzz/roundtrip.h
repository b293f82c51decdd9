// SPDX-License-Identifier: MIT
//
// roundtrip: the step every target ends with. What a decoder accepted must
// encode again (the encoders check exactly what the decoders check, so a
// refusal means the two disagree about what is valid), and the encoding
// must decode to the same struct: otherwise a message relayed or stored by
// dtx would change meaning on the way.

#ifndef DTX_FUZZ_ROUNDTRIP_H
#define DTX_FUZZ_ROUNDTRIP_H

#include <stdlib.h>

#include "fuzz.h"

// Encodes *a with enc into a fresh buffer, decodes that with dec into *b and
// compares with same. The encoded buffer is freed after the comparison,
// because b's payload slices point into it.
#define DTXF_ROUNDTRIP(enc, dec, same, a, b)                                  \
	do {                                                                  \
		size_t   n_ = 0, m_ = 0;                                      \
		uint8_t *p_;                                                  \
		DTXF_CHECK(enc((a), NULL, 0, &n_) == 0);                      \
		p_ = malloc(n_ > 0 ? n_ : 1);                                 \
		DTXF_CHECK(p_ != NULL);                                       \
		DTXF_CHECK(enc((a), p_, n_, &m_) == 0 && m_ == n_);           \
		DTXF_CHECK(dec((b), p_, n_) == 0);                            \
		same((a), (b));                                               \
		free(p_);                                                     \
	} while (0)

#endif // DTX_FUZZ_ROUNDTRIP_H
