// SPDX-License-Identifier: MIT
//
// dispatcher: dtxd's outbound calls to participants. One nng REQ socket per
// participant endpoint (dialled in the background, so a participant that is
// down is simply not answering yet), one context + aio per message, each
// with its own timeout; calls queued during one pass of dtxd's loop go to
// each participant as one batch. Completion callbacks run on nng threads.
// Retries are not the dispatcher's business: the engines decide them.

#ifndef DTXD_DISPATCHER_H
#define DTXD_DISPATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "tls.h"

typedef struct dtxd_dispatcher dtxd_dispatcher;
typedef struct dtxd_peer       dtxd_peer; // one participant endpoint

int dtxd_dispatcher_open(dtxd_dispatcher **dp, size_t max_payload);

// dtxd's TLS identity toward participants and the CA their certificates
// must be signed by, for tls+tcp:// endpoints (held). Without it such
// endpoints are refused. Before the first peer only.
void dtxd_dispatcher_set_tls(dtxd_dispatcher *d, dtxi_tls *t);
// Aborts calls in flight (their callbacks run with DTX_ECLOSED), waits for
// every callback to return, closes all sockets. Accepts NULL.
void dtxd_dispatcher_close(dtxd_dispatcher *d);

// Finds or creates the peer for endpoint. Peers live until close. Errors:
// DTX_EINVAL (not a URL nng can dial, or a tls+tcp:// one without
// dtxd_dispatcher_set_tls), DTX_ETRANSPORT, DTX_ENOMEM; why (cap bytes;
// may be NULL) says what is wrong. Thread-safe.
int dtxd_dispatcher_peer(dtxd_dispatcher *d, const char *endpoint,
    dtxd_peer **pp, char *why, size_t cap);

// Called once per call on an nng thread (or the flushing thread). rv 0: rep
// is the participant's answer (a participant's error reply arrives as
// status BAD_REQUEST with its message). No answer: rv DTX_EUNREACHABLE (no
// connection to the participant when the call ended), DTX_ETIMEDOUT
// (connected, no answer in time), DTX_ETRANSPORT, DTX_EAUTH (the TLS
// handshake with the participant fails: rep->message says why, status
// NONE), DTX_EPROTO (undecodable answer) or DTX_ECLOSED; rep NULL unless
// it carries such a message. rep and its payload are valid only during
// the callback.
typedef void (*dtxd_call_fn)(void *arg, int rv, const dtxi_branch_reply *rep);

// Sets after to run on the nng thread that reported the end of a frame's
// calls, once their callbacks have all run: the replies of a batch reach
// their callbacks one after the other, and after lets their owner handle
// them together (dtxd's loop takes them in one pass). Set it before the
// first call. Not thread-safe.
void dtxd_dispatcher_set_after(
    dtxd_dispatcher *d, void (*after)(void *arg), void *arg);

// Sends call to peer; fn runs exactly once unless an error is returned.
// The call (and its payload) is encoded before this returns. Errors:
// DTX_EINVAL, DTX_ENOMEM, DTX_ECLOSED.
int dtxd_dispatcher_call(dtxd_dispatcher *d, dtxd_peer *peer,
    const dtxi_call *call, uint32_t timeout_ms, dtxd_call_fn fn, void *arg);

// Queues call for peer; it goes out at the next dtxd_dispatcher_flush,
// batched with the other calls queued for that peer (see dispatcher.c).
// Same contract as dtxd_dispatcher_call, except that the call is copied
// (its payload is not: it must stay valid until fn runs), and that a call
// that cannot be sent at flush time gets fn with the error (DTX_ENOMEM,
// DTX_ECLOSED) on the flushing thread. Errors: DTX_EINVAL, DTX_ENOMEM.
// Queue and flush belong to one thread at a time (whichever runs dtxd's
// loop).
int dtxd_dispatcher_queue(dtxd_dispatcher *d, dtxd_peer *peer,
    const dtxi_call *call, uint32_t timeout_ms, dtxd_call_fn fn, void *arg);

// Why peer cannot be reached, for a message: nng's reason from the last
// connection attempt ("Connection refused"), "no connection" when none is
// known yet, "connected" once it is. Thread-safe.
void dtxd_dispatcher_peer_reason(dtxd_peer *peer, char *why, size_t cap);

// Branch calls sent so far, and the frames that carried them (a batch is one
// frame). Thread-safe.
void dtxd_dispatcher_get_counts(
    dtxd_dispatcher *d, uint64_t *calls, uint64_t *messages);

// Sends every queued call. The queueing thread calls it at the end of each
// pass of its loop.
void dtxd_dispatcher_flush(dtxd_dispatcher *d);

#endif // DTXD_DISPATCHER_H
