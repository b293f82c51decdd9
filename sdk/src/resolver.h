// SPDX-License-Identifier: MIT
//
// resolver: the barrier's background work (see resolver.c): the purge of
// old records and the settling of in-doubt prepared branches with the
// coordinator.

#ifndef DTX_RESOLVER_H
#define DTX_RESOLVER_H

#include <stddef.h>
#include <stdint.h>

#include <dtx/dtx.h>

#include "barrier.h"
#include "tls.h"

typedef struct dtxi_resolver dtxi_resolver;

// Runs one call as if it had been delivered: finds the method's callback
// for call->phase and calls dtxi_barrier_call() with it. The participant
// provides it, so that the resolver can run commit and abort callbacks.
typedef dtx_result (*dtxi_resolver_runner)(
    void *arg, const dtx_call *call, dtx_reply *reply);

// Starts the background thread over b: the purge always; with url (not
// NULL) the resolution of branches prepared longer than after_ms ago,
// asking the coordinator at url (with tls, held, for a tls+tcp:// url) and
// running the decided phase with run(arg, ...); max_payload bounds the
// replies it makes. Errors: DTX_ENOMEM.
int dtxi_resolver_start(dtxi_resolver **rp, dtxi_barrier *b, const char *url,
    dtxi_tls *tls, uint32_t after_ms, dtxi_resolver_runner run, void *arg,
    size_t max_payload);

// Stops and joins the thread (waits for a callback it runs), and frees r.
// Accepts NULL.
void dtxi_resolver_stop(dtxi_resolver *r);

#endif // DTX_RESOLVER_H
