// SPDX-License-Identifier: MIT
//
// transport: the one glue between dtx and nng, shared by every nng user on
// both sides (the client and the participant in libdtx; the server and the
// dispatcher in dtxd). It maps nng's errors to dtx's in one table, and
// encodes a request or a reply straight into an nng message in one pass.
// The sockets, contexts and aios stay with their owners: their lifetimes
// and lock protocols differ, and each owner's file explains its own.

#ifndef DTX_TRANSPORT_H
#define DTX_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

struct nng_msg;

// The largest request frame a dtxd takes by default (its --max-frame). It
// answers a frame up to twice that with DTX_ETOOBIG; nng drops a larger one
// unread, and in nng 1.5.2 the sender's socket can then stay stuck (sends
// time out, closing hangs), so a client never sends more than this.
#define DTXI_FRAME_MAX_DEFAULT (16u * 1024u * 1024u)

// Maps an nng result to dtx's: 0; NNG_ETIMEDOUT -> DTX_ETIMEDOUT;
// NNG_ECLOSED and NNG_ECANCELED (an operation stopped because its socket,
// context or aio is closing) -> DTX_ECLOSED; NNG_ENOMEM -> DTX_ENOMEM;
// NNG_ECRYPTO and NNG_EPEERAUTH (a TLS handshake failed) -> DTX_EAUTH;
// anything else -> DTX_ETRANSPORT. The last two are logged with what (e.g.
// "client: sending a request") unless what is NULL.
int dtxi_transport_err(int nng_rv, const char *what);

// Maps the result of nng_listen or nng_dial on url: an address nng cannot
// use (malformed, an unknown scheme, a bad option) is the caller's mistake,
// DTX_EINVAL; the rest as dtxi_transport_err. Logs either (a warning)
// with what and url.
int dtxi_transport_addr_err(int nng_rv, const char *what, const char *url);

// nng's text for an nng error, for a log line.
const char *dtxi_transport_strerror(int nng_rv);

// Encodes r into a new message *mp in one nanopb pass. The message is
// allocated at a cheap upper bound of the size and trimmed; a separate
// sizing pass cost as much as the encoding itself (measured in dtxd). Only
// if the bound was too small is the size computed and the encoding redone.
// Errors: those of the encoders (codec.h), DTX_ENOMEM. *mp is written
// only on success.
int dtxi_transport_encode_request(const dtxi_request *r, struct nng_msg **mp);
int dtxi_transport_encode_reply(const dtxi_reply *r, struct nng_msg **mp);

// A connection test of one address, for saying why a peer cannot be
// reached: nng's sockets redial in the background and report nothing but
// a timeout, so a probe dials the address once as a plain stream (the
// peer sees a REQ peer that swaps SP headers and leaves) and keeps what
// happened: "Connection refused", "No route to host", a timeout. Not for
// a tls+tcp:// address: the listener would log a refused handshake (link.h
// diagnoses TLS). One dial
// runs at a time; the result of the last one stays until the next ends.
// Thread-safe.
typedef struct dtxi_probe dtxi_probe;

// Errors: DTX_EINVAL (an address nng cannot dial), DTX_ENOMEM.
int dtxi_probe_open(dtxi_probe **pp, const char *url);

// Starts a dial bounded by timeout_ms unless one is running.
void dtxi_probe_start(dtxi_probe *p, int32_t timeout_ms);

// The last finished dial: 0 connected, -1 none yet, else nng's error, with
// its text in why (cap bytes): "Connection refused", or "not tried yet".
int dtxi_probe_result(dtxi_probe *p, char *why, size_t cap);

// Stops a running dial and frees the probe. Accepts NULL. Not from the
// probe's own completion.
void dtxi_probe_close(dtxi_probe *p);

// Releases nng's global resources at process exit (LeakSanitizer reports
// them otherwise). Nothing of nng may be used afterwards.
void dtxi_transport_fini(void);

#endif // DTX_TRANSPORT_H
