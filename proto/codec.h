// SPDX-License-Identifier: MIT
//
// codec: the wire codec. It converts between the protobuf messages of
// proto/dtx.proto that travel over nng and the plain C structs below, which
// the rest of dtx uses. (dtxd's on-disk record has its own codec,
// coordinator/record_codec.c; the two share codec_pb.h.) Decoding is zero-copy
// for payloads: a decoded dtxi_bytes points into the buffer that was decoded,
// so that buffer must outlive the struct. Encoding reads payloads straight
// from the caller's memory. Strings are copied into fixed arrays (sizes from
// proto/dtx.options).

#ifndef DTX_CODEC_H
#define DTX_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dtx/dtx.h>

// Room for a W3C traceparent (trace.h): 55 characters and the NUL.
#define DTXI_TRACEPARENT_MAX 55

// Longest operator note of a Settle request.
#define DTXI_NOTE_MAX 200

// Bytes that live elsewhere: in a received frame, or the caller's memory.
typedef struct dtxi_bytes {
	const uint8_t *ptr;
	size_t         len;
} dtxi_bytes;

typedef struct dtxi_branch_spec {
	char       endpoint[DTX_ENDPOINT_MAX + 1];
	char       method[DTX_METHOD_MAX + 1];
	dtxi_bytes payload;
	bool       same_group; // saga: in the group of the step before it
} dtxi_branch_spec;

typedef struct dtxi_branch_result {
	uint32_t   branch_id;
	int        status;   // dtx_branch_status
	int        phase;    // dtx_phase of that reply, 0 if none
	uint32_t   attempts; // calls in the current phase
	char       message[DTX_MESSAGE_MAX + 1];
	dtxi_bytes payload;
	// The forward phase's (prepare or execute) reply, which later phases
	// do not replace: its status (0: none yet) and payload.
	int        forward_status;
	dtxi_bytes forward_payload;
	int64_t    settled_ms; // settled by an operator then; 0: not
	int        error;      // DTX_E* of a call without answer; 0: answered
} dtxi_branch_result;

typedef struct dtxi_txinfo {
	char               gid[DTX_GID_MAX + 1];
	int                mode;  // dtx_mode
	int                state; // dtx_state
	bool               stuck;
	int64_t            created_ms;
	int64_t            updated_ms;
	uint32_t           nbranches;
	dtxi_branch_result branches[DTX_BRANCHES_MAX];
	char               traceparent[DTXI_TRACEPARENT_MAX + 1]; // or ""
} dtxi_txinfo;

typedef struct dtxi_txsummary {
	char     gid[DTX_GID_MAX + 1];
	int      mode;
	int      state;
	bool     stuck;
	int64_t  created_ms;
	int64_t  updated_ms;
	uint32_t nbranches;
} dtxi_txsummary;

#define DTXI_LIST_MAX 100

typedef struct dtxi_submit {
	char             gid[DTX_GID_MAX + 1]; // "" : coordinator picks one
	int              mode;
	uint32_t         timeout_ms;      // 0: default
	uint32_t         call_timeout_ms; // 0: default
	uint32_t         retries;         // 0: default
	bool             wait;
	bool             decided; // with wait: reply once decided (dtx.proto)
	char             traceparent[DTXI_TRACEPARENT_MAX + 1]; // or ""
	uint32_t         nbranches;
	dtxi_branch_spec branches[DTX_BRANCHES_MAX];
} dtxi_submit;

typedef struct dtxi_call {
	char       gid[DTX_GID_MAX + 1];
	uint32_t   branch_id;
	int        phase; // dtx_phase
	char       method[DTX_METHOD_MAX + 1];
	dtxi_bytes payload;
	uint32_t   attempt;
	int64_t    deadline_ms;
	uint32_t   timeout_ms; // the coordinator's wait for the reply; 0: none
	char       traceparent[DTXI_TRACEPARENT_MAX + 1]; // or ""
} dtxi_call;

typedef struct dtxi_branch_reply {
	int        status; // dtx_branch_status
	char       message[DTX_MESSAGE_MAX + 1];
	dtxi_bytes payload;
} dtxi_branch_reply;

// Branch calls to one participant sent in one frame (BranchCallBatch), and
// the replies in call order. 1..DTXI_BATCH_MAX of them; the frame limit
// bounds their total size.
#define DTXI_BATCH_MAX 64

typedef struct dtxi_call_batch {
	uint32_t  n;
	dtxi_call calls[DTXI_BATCH_MAX];
} dtxi_call_batch;

typedef struct dtxi_reply_batch {
	uint32_t          n;
	dtxi_branch_reply replies[DTXI_BATCH_MAX];
} dtxi_reply_batch;

typedef enum dtxi_req_kind {
	DTXI_REQ_NONE = 0, // decoded request without a body
	DTXI_REQ_SUBMIT,
	DTXI_REQ_STATUS,
	DTXI_REQ_LIST,
	DTXI_REQ_ABORT,
	DTXI_REQ_RESOLVE,
	DTXI_REQ_CALL,
	DTXI_REQ_STATS,
	DTXI_REQ_CALL_BATCH,
	DTXI_REQ_RETRY,
	DTXI_REQ_SETTLE,
} dtxi_req_kind;

typedef struct dtxi_request {
	uint32_t      version; // DTX_PROTOCOL_VERSION when encoding
	dtxi_req_kind kind;
	union {
		dtxi_submit submit;
		struct {
			char     gid[DTX_GID_MAX + 1];
			uint32_t wait_ms;
		} status;
		struct {
			int      state; // 0: any
			char     cursor[DTX_GID_MAX + 1];
			uint32_t limit;
			bool     stuck; // only those flagged STUCK
		} list;
		struct {
			char gid[DTX_GID_MAX + 1];
		} abort;
		struct {
			char gid[DTX_GID_MAX + 1];
		} resolve;
		struct {
			char gid[DTX_GID_MAX + 1];
		} retry;
		struct {
			char     gid[DTX_GID_MAX + 1];
			uint32_t branch;
			char     note[DTXI_NOTE_MAX + 1];
		} settle;
		dtxi_call       call;
		dtxi_call_batch batch;
	} u;
} dtxi_request;

typedef enum dtxi_rep_kind {
	DTXI_REP_NONE = 0, // error replies carry no body
	DTXI_REP_TX,       // Submit, Status, Abort, Retry, Settle
	DTXI_REP_LIST,
	DTXI_REP_RESOLVE,
	DTXI_REP_BRANCH, // participant's answer to a BranchCall
	DTXI_REP_STATS,
	DTXI_REP_BRANCH_BATCH, // answer to a BranchCallBatch
} dtxi_rep_kind;

typedef struct dtxi_reply {
	uint32_t      version;
	int           code; // 0 or DTX_E*
	char          message[DTX_MESSAGE_MAX + 1];
	dtxi_rep_kind kind;
	union {
		dtxi_txinfo tx;
		struct {
			uint32_t       n;
			dtxi_txsummary items[DTXI_LIST_MAX];
			char           next_cursor[DTX_GID_MAX + 1];
		} list;
		struct {
			int state;
		} resolve;
		dtxi_branch_reply     branch;
		dtx_coordinator_stats stats;
		dtxi_reply_batch      batch;
	} u;
} dtxi_reply;

// Every encoder returns 0, DTX_EINVAL (a field out of range: bad enum,
// too many branches, an empty or oversized batch, a string too long), or
// DTX_ETOOBIG (does not fit in cap). *len receives the encoded size. Passing
// buf == NULL and cap == 0 computes the size only (then DTX_ETOOBIG is never
// returned).
int dtxi_request_encode(
    const dtxi_request *r, uint8_t *buf, size_t cap, size_t *len);
int dtxi_reply_encode(
    const dtxi_reply *r, uint8_t *buf, size_t cap, size_t *len);

// Every decoder fills *r from buf[0..len) and returns 0, or:
// - DTX_ETOOBIG: len > max_frame (checked first, nothing is parsed), or a
//   payload longer than max_payload;
// - DTX_EPROTO: truncated, garbage, a string or array over its limit, or an
//   enum value out of range;
// - DTX_EPROTO also: a batch with no item or more than DTXI_BATCH_MAX;
// - DTX_EVERSION: version is not DTX_PROTOCOL_VERSION (for requests and
//   replies; a request with version 0 is also rejected).
// On error *r is unspecified and err (if not NULL, DTX_MESSAGE_MAX + 1
// bytes) receives a readable reason, e.g. "truncated frame" or
// "payload of branch 3 is 2000000 bytes, limit 1048576". Payload slices
// point into buf.
int dtxi_request_decode(dtxi_request *r, const uint8_t *buf, size_t len,
    size_t max_frame, size_t max_payload, char *err);
int dtxi_reply_decode(dtxi_reply *r, const uint8_t *buf, size_t len,
    size_t max_frame, size_t max_payload, char *err);

// Hash of a submission's content (mode and branches, not gid or timeouts),
// used to tell an idempotent resubmission from a conflicting one. FNV-1a 64.
uint64_t dtxi_submit_hash(const dtxi_submit *s);

#endif // DTX_CODEC_H
