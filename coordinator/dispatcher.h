// SPDX-License-Identifier: MIT
//
// dispatcher: dtxd's outbound calls to participants. One nng REQ socket per
// participant endpoint (dialled in the background, so a participant that is
// down is simply not answering yet), one context + aio per call, each with
// its own timeout. Completion callbacks run on nng threads. Retries are not
// the dispatcher's business: the engines decide them.

#ifndef DTXD_DISPATCHER_H
#define DTXD_DISPATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

typedef struct dtxd_dispatcher dtxd_dispatcher;
typedef struct dtxd_peer       dtxd_peer; // one participant endpoint

int dtxd_dispatcher_open(dtxd_dispatcher **dp, size_t max_payload);
// Aborts calls in flight (their callbacks run with DTX_ECLOSED), waits for
// every callback to return, closes all sockets. Accepts NULL.
void dtxd_dispatcher_close(dtxd_dispatcher *d);

// Finds or creates the peer for endpoint. Peers live until close. Errors:
// DTX_EINVAL (not a URL nng can dial), DTX_ETRANSPORT, DTX_ENOMEM.
// Thread-safe.
int dtxd_dispatcher_peer(
    dtxd_dispatcher *d, const char *endpoint, dtxd_peer **pp);

// Called once per call on an nng thread. rv 0: rep is the participant's
// answer (a participant's error reply arrives as status BAD_REQUEST with
// its message). rv DTX_ETIMEDOUT, DTX_ETRANSPORT, DTX_EPROTO (undecodable
// answer) or DTX_ECLOSED: no answer, rep NULL. rep and its payload are
// valid only during the callback.
typedef void (*dtxd_call_fn)(void *arg, int rv, const dtxi_branch_reply *rep);

// Sends call to peer; fn runs exactly once unless an error is returned.
// The call (and its payload) is encoded before this returns. Errors:
// DTX_EINVAL, DTX_ENOMEM, DTX_ECLOSED.
int dtxd_dispatcher_call(dtxd_dispatcher *d, dtxd_peer *peer,
    const dtxi_call *call, uint32_t timeout_ms, dtxd_call_fn fn, void *arg);

#endif // DTXD_DISPATCHER_H
