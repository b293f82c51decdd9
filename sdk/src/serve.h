// SPDX-License-Identifier: MIT
//
// serve: the participant's transport and threads. One REP socket with many
// nng contexts receives BranchCalls (single or batched) from dtxd; a pool
// of worker threads decodes each frame, runs its calls through the
// participant's run function and sends the encoded replies back on the
// context the frame came from. It knows nothing of methods or callbacks:
// participant.c gives it the function that runs one call.

#ifndef DTX_SERVE_H
#define DTX_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "gcommit.h"
#include "tls.h"

typedef struct dtxi_serve dtxi_serve;

// Runs one branch call on a worker thread and fills out: its status and
// message, and a payload that may point into reply (the worker's reply
// object, whose payload and message the previous call left empty, and
// which lives until out is encoded; a ticket it leaves in reply->durable
// holds the reply back until the group commit has synced it). recv_ms is
// the monotonic time the call's frame arrived.
typedef void (*dtxi_serve_fn)(void *arg, const dtxi_call *call,
    int64_t recv_ms, dtx_reply *reply, dtxi_branch_reply *out);

typedef struct dtxi_serve_opts {
	unsigned        workers;     // threads that run calls
	unsigned        contexts;    // frames received concurrently
	size_t          max_payload; // of a call, and of a reply
	const dtxi_tls *tls; // for a tls+tcp:// url (required), else NULL
	// Where a reply whose run left a ticket in dtx_reply.durable waits
	// to be durable before it is sent (the barrier's); NULL: none do.
	// Must outlive the serving.
	dtxi_gcommit *gc;
} dtxi_serve_opts;

// Listens on url and serves calls through run(arg, ...) until
// dtxi_serve_stop(). Only peers with a certificate signed by o->tls's CA
// get through a TLS listener; refused handshakes are logged. Errors:
// DTX_EINVAL (an address nng cannot use, TLS settings missing or given for
// a plain URL), DTX_ETRANSPORT, DTX_ENOMEM; for a listen that failed, why
// (room for DTX_MESSAGE_MAX + 1 bytes) says the reason.
int dtxi_serve_start(dtxi_serve **sp, const char *url,
    const dtxi_serve_opts *o, dtxi_serve_fn run, void *arg, char *why);

// Stops serving: closes the socket, waits for the calls that are running,
// drops those still queued (dtxd calls again), and frees everything.
// Accepts NULL. Not from a call.
void dtxi_serve_stop(dtxi_serve *s);

#endif // DTX_SERVE_H
