// SPDX-License-Identifier: MIT
//
// client: dtx_client, libdtx's connection to dtxd, and the one way a
// request travels on it. Every request rides on an op: an nng context and
// its aio, kept on the client's free lists and reused, so that neither a
// closed loop of thousands of asynchronous commits nor a thread calling
// dtx_tx_status in a loop pays an nng_ctx_open and nng_aio_alloc per
// request. tx.c and admin.c build the requests and read the replies.

#ifndef DTX_CLIENT_H
#define DTX_CLIENT_H

#include <stdint.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "tls.h"

// Called exactly once when a request ends. rv 0: rep is the decoded reply
// (its code is 0; its payloads are slices of the received frame, valid only
// during the call). Otherwise rep is NULL and why says what happened: the
// coordinator's error code and message, DTX_ETIMEDOUT when no reply came in
// time, DTX_EPROTO for a reply that does not decode, a transport error. For
// dtxi_client_send() it runs on an nng thread with no libdtx lock held,
// must not block, and may start other requests on the client. Its return value
// is what dtxi_client_call() returns.
typedef int (*dtxi_client_done)(
    void *arg, int rv, const dtxi_reply *rep, const char *why);

// A request of kind on the heap (free() it), its header set and the rest
// of its fixed part zeroed, or NULL. Requests are tens of KB (their union
// is sized for the largest message): too big for a user thread's stack of
// unknown size. They are encoded when sent and may be freed right after.
dtxi_request *dtxi_client_request(dtxi_req_kind kind);

// Sends req (encoded before this returns: the caller may free it) and
// calls done(arg, ...) when its reply arrives or timeout_ms (clamped to
// 1..INT32_MAX) has passed. Errors (done then never runs): DTX_ENOMEM, the
// encoder's (with a reason in why, which has room for DTX_MESSAGE_MAX + 1
// bytes and may be NULL), DTX_ETRANSPORT. Thread-safe.
int dtxi_client_send(dtx_client *c, const dtxi_request *req,
    int64_t timeout_ms, dtxi_client_done done, void *arg, char *why);

// The same, synchronous: the calling thread waits for the reply (on the
// op's aio, so nng wakes it directly), done runs on it, and this returns
// what done returned (or the send's error). Thread-safe; not from an
// asynchronous request's done, which must not block.
int dtxi_client_call(dtx_client *c, const dtxi_request *req,
    int64_t timeout_ms, dtxi_client_done done, void *arg, char *why);

// dtx_client_open, or dtx_client_open_tls with a loaded t (held by the
// client; NULL for a plain URL).
int dtxi_client_open(dtx_client **cp, const char *url, dtxi_tls *t);
// Keeps why (a request refused before it was sent) as c's last message,
// as dtx_client_message() reports it.
void dtxi_client_set_message(dtx_client *c, const char *why);

// The timeout of one request that does not wait for an outcome
// (dtx_client_set_timeout_ms).
int32_t dtxi_client_timeout_ms(dtx_client *c);

#endif // DTX_CLIENT_H
