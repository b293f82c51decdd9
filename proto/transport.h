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

#include "codec.h"

struct nng_msg;

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

// Releases nng's global resources at process exit (LeakSanitizer reports
// them otherwise). Nothing of nng may be used afterwards.
void dtxi_transport_fini(void);

#endif // DTX_TRANSPORT_H
