// SPDX-License-Identifier: MIT
//
// tls: the one place that touches nng's TLS API. A dtxi_tls is a loaded
// and checked TLS identity (certificate and key) with the CA that peers'
// certificates must be signed by; from it, every listener and every dialer
// gets a TLS configuration of its own, made here with the two settings nng
// 1.5.2 gets wrong by default: a listener requires the peer's certificate
// (nng's default is not to ask for one), and a dialer checks the server's
// name, taken from its own URL (nng does not take it from the URL for a
// configuration given to it, and a configuration shared by several dialers
// would carry the name of whichever set it last). When a handshake fails,
// nng says little more than "cryptographic error";
// dtxi_tls_diagnose() finds out what went wrong by trying the handshake
// again in a few ways, and says it in words.

#ifndef DTX_TLS_H
#define DTX_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <nng/nng.h>

#include <dtx/dtx.h>

typedef struct dtxi_tls dtxi_tls; // immutable once loaded; reference-counted

// What a dtxi_tls is for: a listener needs a certificate, a key and a CA;
// a dialer needs a CA (its certificate is optional: a server that asks for
// one refuses it, and says so).
typedef enum dtxi_tls_role {
	DTXI_TLS_LISTEN = 1,
	DTXI_TLS_DIAL   = 2,
} dtxi_tls_role;

// Reads and checks o for role: each of certificate, key and CA given once
// (file or PEM), the files readable, the PEM parsed by nng, and the
// certificate and the first CA within their validity dates. nng 1.5.2
// does not check that the key is the certificate's: a wrong one fails
// every handshake (the peer refuses our certificate). On success *tp holds a
// reference (release it with dtxi_tls_rele). Errors: DTX_EINVAL with why (cap
// bytes) naming the item, the file and what is wrong; DTX_ENOMEM.
int dtxi_tls_load(dtxi_tls **tp, const dtx_tls_opts *o, dtxi_tls_role role,
    char *why, size_t cap);

void dtxi_tls_hold(dtxi_tls *t);
// Releases a reference; the last one frees t (and wipes the key). Accepts
// NULL.
void dtxi_tls_rele(dtxi_tls *t);

// Where t's CA came from, for messages: its file, or "the CA PEM in
// memory".
const char *dtxi_tls_ca_source(const dtxi_tls *t);

// True for a URL whose transport is TLS (tls+tcp://, tls+tcp4://,
// tls+tcp6://).
bool dtxi_tls_url(const char *url);

// Gives listener l (not started) a configuration of its own from t: t's
// certificate, and a peer certificate signed by t's CA required. Errors:
// DTX_EINVAL (t has no certificate), DTX_ENOMEM, DTX_ETRANSPORT, with why.
int dtxi_tls_listener_setup(
    const dtxi_tls *t, nng_listener l, char *why, size_t cap);

// Gives dialer d (not started) for url a configuration of its own from t:
// t's CA checks the server, whose certificate must carry t's server name
// or else url's host; t's certificate, if any, is offered. Errors as
// dtxi_tls_listener_setup, and DTX_EINVAL for a URL without a host.
int dtxi_tls_dialer_setup(
    const dtxi_tls *t, nng_dialer d, const char *url, char *why, size_t cap);

// After dial attempts to url failed: tries the handshake again in a few
// ways (plain tcp://; TLS without checking the server; TLS without
// checking its name) to tell what went wrong, and writes it to why (cap
// bytes), naming peer and url. t is NULL for a plain URL. hint (may be
// NULL) says, when the server refused our certificate, which CA that
// server accepts ("a participant takes calls only from the coordinator
// CA"). Blocks for up to a few seconds (one probe at a
// time, each bounded), so never on an nng thread. Returns DTX_EAUTH (a TLS
// or protocol mismatch: waiting will not help), DTX_ETRANSPORT (the
// server cannot be reached now: not a TLS matter), or 0 (the handshake
// works now).
int dtxi_tls_diagnose(const dtxi_tls *t, const char *url, const char *peer,
    const char *hint, char *why, size_t cap);

#endif // DTX_TLS_H
