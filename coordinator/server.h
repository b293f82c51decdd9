// SPDX-License-Identifier: MIT
//
// server: dtxd's front door. One nng REP socket served by many contexts, each
// with its own aio: no thread per request. A context receives a frame,
// decodes it on the nng thread and, if it is well formed, hands it to the
// request handler as a dtxd_sreq; the context then waits, holding the frame
// (whose payload slices the decoded request points into), until someone
// answers with dtxd_server_reply(). Malformed, oversized and wrong-version
// frames are answered here with an error reply and never reach the handler.

#ifndef DTXD_SERVER_H
#define DTXD_SERVER_H

#include <stddef.h>

#include "codec.h"
#include "tls.h"

typedef struct dtxd_server dtxd_server;
typedef struct dtxd_sreq   dtxd_sreq; // one received request

// Called on an nng thread for each well-formed request; must not block. The
// handler owns r until it calls dtxd_server_reply() exactly once.
typedef void (*dtxd_server_fn)(void *arg, dtxd_sreq *r);

typedef struct dtxd_server_opts {
	const char *url;
	unsigned    contexts;     // requests received concurrently
	size_t      max_frame;    // larger frames are answered DTX_ETOOBIG
	size_t      max_payload;  // larger payloads are answered DTX_ETOOBIG
	const dtxi_tls *tls;      // for a tls+tcp:// url (required), or NULL
	int             ipc_mode; // an ipc:// url's file permissions, or 0
	bool            operator_cmds; // serves operator commands (server.c)
	const char     *name;          // in logs; NULL: "dtxd listener"
} dtxd_server_opts;

// Opens the socket, listens on o->url and starts receiving. Errors:
// DTX_EINVAL (also TLS settings missing for a tls+tcp:// url, or given for
// another), DTX_ETRANSPORT (e.g. address in use), DTX_ENOMEM; logged.
int dtxd_server_open(
    dtxd_server **sp, const dtxd_server_opts *o, dtxd_server_fn fn, void *arg);

// The decoded request; valid until the reply.
const dtxi_request *dtxd_sreq_request(const dtxd_sreq *r);

// Frees the decoded request and its frame before the reply, for a handler
// that keeps r unanswered for long (a client waiting for an outcome) and has
// copied what it needs: a held request is a 26 KiB decoded struct (sized for
// the largest submit) plus its frame, and 10,000 of them were most of dtxd's
// memory. dtxd_sreq_request(r) must not be called afterwards. Idempotent.
void dtxd_sreq_drop_request(dtxd_sreq *r);

// Answers r and releases it. Thread-safe; r must not be used afterwards.
void dtxd_server_reply(dtxd_sreq *r, const dtxi_reply *rep);

// Answers r with an error code and message and releases it.
void dtxd_server_reply_error(dtxd_sreq *r, int code, const char *msg);

// TLS handshakes the listener refused so far (link.h). Accepts NULL (0).
// Thread-safe.
uint64_t dtxd_server_refused_handshakes(dtxd_server *s);

// Stops receiving, waits (briefly) for replies being sent, closes. Every
// request handed out must have been answered first. Accepts NULL.
void dtxd_server_close(dtxd_server *s);

#endif // DTXD_SERVER_H
