// SPDX-License-Identifier: MIT
//
// http: dtxd's operations listener (--http-listen), on nng's HTTP server,
// read-only:
//
//   GET /metrics   the Prometheus text (metrics.h)
//   GET /healthz   200 "ok": the process is alive and serving HTTP
//   GET /readyz    200 "ready", or 503 with why: waiting for the store
//                  (its database out of reach), recovering, shutting
//                  down, the store failing, the lease not renewed
//   GET /          the status page (status_page.html, served as is)
//   GET /api/txs   the live transactions as JSON, for the page
//                  (?state=NAME, ?stuck=1, ?limit=N; see snapshot.h)
//
// Handlers run on nng's threads and never block: the metrics and the
// readiness are atomics, and /api/txs is answered by the loop (its JSON
// is built there from the transactions it owns) and completed from the
// loop's thread, so a scrape neither waits for the loop nor holds it up.
//
// nng_fini() must not be called in a process that used an HTTP server
// (nng#918): main skips it when this was opened.

#ifndef DTXD_HTTP_H
#define DTXD_HTTP_H

#include <stdint.h>

#include "dispatcher.h"
#include "metrics.h"
#include "server.h"
#include "txmgr.h"

typedef struct dtxd_http dtxd_http;

typedef struct dtxd_http_opts {
	const char      *url;      // http://HOST:PORT
	dtxd_metrics    *metrics;  // not owned
	dtxd_txmgr      *mgr;      // not owned; may be NULL (set later)
	dtxd_dispatcher *disp;     // not owned
	int64_t          start_ms; // monotonic, for the uptime
} dtxd_http_opts;

// Starts serving. Errors: DTX_EINVAL (not an http:// URL with a port,
// named in the log), DTX_ETRANSPORT (cannot listen: address in use, ...),
// DTX_ENOMEM.
int dtxd_http_open(dtxd_http **hp, const dtxd_http_opts *o);

// The listeners whose refused TLS handshakes /metrics reports (either may
// be NULL). They open after the HTTP listener (which reports recovery) and
// must stay open until dtxd_http_close. Thread-safe.
void dtxd_http_set_servers(
    dtxd_http *h, dtxd_server *clients, dtxd_server *operators);

// The manager whose transactions the page shows, once it exists (the
// listener opens before it while dtxd waits for its store; until then
// /api/txs answers 503). Must stay open until dtxd_http_close.
// Thread-safe.
void dtxd_http_set_mgr(dtxd_http *h, dtxd_txmgr *mgr);

// Stops serving. The manager must have stopped first (it answers the
// page's requests still queued). Accepts NULL.
void dtxd_http_close(dtxd_http *h);

#endif // DTXD_HTTP_H
