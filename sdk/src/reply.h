// SPDX-License-Identifier: MIT
//
// reply: a branch call's reply as a callback builds it (dtx_reply: message,
// payload, the barrier's batch) and as it goes on the wire
// (dtxi_branch_reply). Shared by the participant (which runs callbacks),
// serve (which owns one dtx_reply per worker and sends the replies) and the
// barrier (which records and replays them, and hangs the call's write batch
// on them), so that none of those needs another for it.

#ifndef DTX_REPLY_H
#define DTX_REPLY_H

#include <dtx/dtx.h>

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

struct dtx_reply {
	size_t max_payload;
	void  *payload; // malloc'd, or NULL
	size_t len;
	char   message[DTX_MESSAGE_MAX + 1];
	// The barrier's batch for the running callback, NULL without one.
	rocksdb_writebatch_t *wb;
	// The group commit ticket the reply must wait for before it leaves
	// (barrier.c's top says why); 0: none.
	uint64_t durable;
};

// Forgets what the previous call left in r: frees its payload, empties its
// message.
void dtxi_reply_reset(dtx_reply *r);

// Takes r's payload over: returns it (free() it) with its length in *len,
// and leaves r without one.
void *dtxi_reply_take_payload(dtx_reply *r, size_t *len);

// Fills a wire reply: status, message (truncated to fit) and a payload
// borrowed from data, which must outlive out's encoding.
void dtxi_reply_answer(dtxi_branch_reply *out, int status, const char *msg,
    const void *data, size_t len);

#endif // DTX_REPLY_H
