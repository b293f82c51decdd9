// SPDX-License-Identifier: MIT
//
// fuzz: what the libFuzzer targets, the seed generator and the replay driver
// share. Every target is one file defining LLVMFuzzerTestOneInput over one
// decoder of network (or disk) input; it is linked either with libFuzzer
// (clang, -DDTX_FUZZ=ON) or with replay.c (any compiler, registered in
// CTest), so an input that once crashed a target stays a regression test.
// A target checks more than "no crash": whatever a decoder accepts must
// hold its documented invariants and survive an encode/decode round trip
// unchanged, and a violation aborts like a sanitizer report would.

#ifndef DTX_FUZZ_H
#define DTX_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "record_codec.h"

// The libFuzzer entry point every target defines.
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

// Limits the targets decode with. Small on purpose: the checks are the
// same at any size, and small limits let the fuzzer reach the "too big"
// paths with inputs of a few KiB.
#define DTXF_MAX_FRAME   (16u * 1024u)
#define DTXF_MAX_PAYLOAD 1024u

// Names of the targets, as the seed generator and the replay driver know
// them: coord_request, part_request, reply, record, spec, cert.
typedef void (*dtxf_emit)(void *arg, const uint8_t *buf, size_t len);

// Calls emit once for each seed input of target (valid messages of every
// kind that decoder sees, encoded by the codec). Returns the number of
// seeds, or -1 for an unknown target.
int dtxf_seeds(const char *target, dtxf_emit emit, void *arg);

// Aborts with a message naming what broke when cond is false. A fuzzer
// treats the abort as a crash and keeps the input.
#define DTXF_CHECK(cond) dtxf_check((cond), #cond, __FILE__, __LINE__)
void dtxf_check(int cond, const char *what, const char *file, int line);

// Invariants of a decoded struct: strings terminated, counts in range,
// enums in range, payload slices inside buf[0..len) and not over
// max_payload.
void dtxf_check_request(
    const dtxi_request *r, const uint8_t *buf, size_t len, size_t max_payload);
void dtxf_check_reply(
    const dtxi_reply *r, const uint8_t *buf, size_t len, size_t max_payload);
void dtxf_check_record(const dtxd_record *r, const uint8_t *buf, size_t len);
void dtxf_check_spec(
    const dtxi_branch_spec *s, const uint8_t *buf, size_t len);

// Field-by-field equality (payloads by content), for round trips.
void dtxf_same_request(const dtxi_request *a, const dtxi_request *b);
void dtxf_same_reply(const dtxi_reply *a, const dtxi_reply *b);
void dtxf_same_record(const dtxd_record *a, const dtxd_record *b);
void dtxf_same_spec(const dtxi_branch_spec *a, const dtxi_branch_spec *b);

#endif // DTX_FUZZ_H
