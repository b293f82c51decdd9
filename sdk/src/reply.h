// SPDX-License-Identifier: MIT
//
// reply: the participant's per-call reply object, shared by participant.c
// (which owns it, one per worker) and barrier.c (which records and replays
// it, and hangs the call's write batch on it).

#ifndef DTX_REPLY_H
#define DTX_REPLY_H

#include <dtx/dtx.h>

#include <stddef.h>

struct dtx_reply {
	size_t max_payload;
	void  *payload; // malloc'd copy, or NULL
	size_t len;
	char   message[DTX_MESSAGE_MAX + 1];
	// The barrier's batch for the running callback, NULL without one.
	rocksdb_writebatch_t *wb;
};

#endif // DTX_REPLY_H
