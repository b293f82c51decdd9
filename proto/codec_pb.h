// SPDX-License-Identifier: MIT
//
// codec_pb: the nanopb-level half of the codec, for the codecs only. The
// wire codec (codec.c) and dtxd's on-disk record codec
// (coordinator/record_codec.c) share the generated messages of dtx.proto:
// a stored record embeds a TxInfo, the stored branch spec is the wire's
// BranchSpec. This header lends the record codec what both need (payload
// slices, the TxInfo and BranchSpec converters, error reporting, one
// encoder) so that each message is mapped once. Nothing else includes it.

#ifndef DTX_CODEC_PB_H
#define DTX_CODEC_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <pb.h>

#include "codec.h"
#include "dtx.pb.h"

// Copies a string between a codec.h array and a generated one. The two must
// have the same size (dtx.options and codec.h are kept in step), which the
// static assertion proves at compile time for every field the codec copies.
#define COPY_STR(dst, src)                                                    \
	do {                                                                  \
		_Static_assert(sizeof(dst) == sizeof(src),                    \
		    "string size differs between codec.h and dtx.options");   \
		dtxi_pb_copy_str(dst, src, sizeof(dst));                      \
	} while (0)

// True when a string array holds its terminating NUL, i.e. when it fits in
// the generated field of the same size.
#define STR_FITS(s) (memchr((s), 0, sizeof(s)) != NULL)

static inline void
dtxi_pb_copy_str(char *dst, const char *src, size_t cap)
{
	size_t n = strnlen(src, cap - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

// Which payload a slot stands for, to name it in an error message.
enum dtxi_slot_kind {
	DTXI_SLOT_BRANCH,      // SubmitRequest.branches[i].payload
	DTXI_SLOT_RESULT,      // TxInfo.branches[i].payload
	DTXI_SLOT_FORWARD,     // TxInfo.branches[i].forward_payload
	DTXI_SLOT_CALL,        // BranchCall.payload
	DTXI_SLOT_REPLY,       // BranchReply.payload
	DTXI_SLOT_SPEC,        // a stored BranchSpec's payload
	DTXI_SLOT_BATCH_CALL,  // BranchCallBatch.calls[i].payload
	DTXI_SLOT_BATCH_REPLY, // BranchReplyBatch.replies[i].payload
};

_Static_assert(DTXI_BATCH_MAX <= DTX_BRANCHES_MAX,
    "a batch uses the decoder's payload slots");

struct dtxi_pb_dctx;

// Where one payload callback records its slice. The slice comes first so
// the callback's arg points at a dtxi_bytes, as the other fields are only
// there to check the slice and to explain a refusal.
typedef struct dtxi_pb_slot {
	dtxi_bytes           bytes;
	struct dtxi_pb_dctx *ctx;
	enum dtxi_slot_kind  kind;
	unsigned             index;
} dtxi_pb_slot;

// One decode call's state. It lives on the decoder's stack: nanopb gives
// callbacks no other place to keep it, and a global would not be
// thread-safe. rc and why hold the reason a callback refused a payload,
// because nanopb only passes back a fixed string.
typedef struct dtxi_pb_dctx {
	const uint8_t *buf;
	size_t         len;
	size_t         max_payload;
	pb_size_t      member; // oneof member whose payload slots are in use
	int            rc;
	char           why[DTX_MESSAGE_MAX + 1];
	dtxi_pb_slot   slots[DTX_BRANCHES_MAX];
	dtxi_pb_slot   forward[DTX_BRANCHES_MAX]; // TxInfo forward payloads
} dtxi_pb_dctx;

// Starts a decode of buf[0..len): every slot empty, payloads up to
// max_payload bytes.
void dtxi_pb_dctx_init(
    dtxi_pb_dctx *c, const uint8_t *buf, size_t len, size_t max_payload);

// Points the first n slots at kind and forgets what they held.
void dtxi_pb_reset_slots(
    dtxi_pb_dctx *c, enum dtxi_slot_kind kind, unsigned n);

// Makes a payload field record its bytes in slot s when decoded.
void dtxi_pb_install_payload(pb_callback_t *cb, dtxi_pb_slot *s);

// Installs the payload callbacks of every branch result of m (both
// payloads of each), after forgetting what the slots held.
void dtxi_pb_install_results(dtxi_pb_dctx *c, dtxp_TxInfo *m);

// Turns a failed pb_decode of a "what" into our code, and err (may be
// NULL) into its reason.
int dtxi_pb_decode_failed(
    const dtxi_pb_dctx *c, const pb_istream_t *s, const char *what, char *err);

// A wire integer of milliseconds into an int64_t; DTX_EPROTO (reason in
// why) when it does not fit.
int dtxi_pb_ms_from(uint64_t v, int64_t *out, const char *name, char *why);

// TxInfo to and from dtxi_txinfo, with every value checked (DTX_EPROTO
// with a reason from a frame, DTX_EINVAL for a bad struct). The branch
// results' payloads are the slots of c.
int dtxi_pb_txinfo_from(
    const dtxp_TxInfo *in, const dtxi_pb_dctx *c, dtxi_txinfo *out, char *why);
int dtxi_pb_txinfo_to(const dtxi_txinfo *in, dtxp_TxInfo *out);

// A branch spec into BranchSpec (the payload is read at encoding time).
int dtxi_pb_spec_to(const dtxi_branch_spec *in, dtxp_BranchSpec *out);

// Runs nanopb over a filled message desc/m into buf (or sizes it when buf
// is NULL and cap 0), as the public encoders promise (codec.h).
int dtxi_pb_encode(const pb_msgdesc_t *desc, const void *m, uint8_t *buf,
    size_t cap, size_t *len);

#endif // DTX_CODEC_PB_H
