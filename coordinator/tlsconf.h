// SPDX-License-Identifier: MIT
//
// tlsconf: dtxd's TLS flags, checked against its URLs and loaded once at
// start, before anything is opened, so that a missing or expired file
// stops dtxd with its name. dtxd has one identity (--tls-cert, --tls-key:
// a certificate of the coordinator CA) for its listeners and, unless
// --participant-tls-cert says otherwise, toward participants; each door
// has the CA whose certificates may come through it:
//
//   --listen           tls+tcp://  needs --tls-ca       (clients' CA)
//   --operator-listen  tls+tcp://  needs --operator-tls-ca (operators' CA)
//                      ipc://      file permissions (--operator-ipc-mode)
//   participants       tls+tcp://  needs --participant-tls-ca
//
// A flag given for a door that is not TLS (or a certificate no door uses)
// is an error, not ignored.

#ifndef DTXD_TLSCONF_H
#define DTXD_TLSCONF_H

#include <stddef.h>

#include "tls.h"

typedef struct dtxd_tlsconf {
	// The flags (argv strings), NULL when not given.
	const char *cert;
	const char *key;
	const char *ca;
	const char *op_ca;
	const char *part_cert;
	const char *part_key;
	const char *part_ca;
	// Loaded by dtxd_tlsconf_load: NULL where that door is not TLS.
	dtxi_tls *listen;
	dtxi_tls *op;
	dtxi_tls *part;
} dtxd_tlsconf;

// Checks the flags in c against listen_url and op_url (NULL: no operator
// listener) and loads what they name. Errors: DTX_EINVAL with why (cap
// bytes) naming the flag or file, DTX_ENOMEM.
int dtxd_tlsconf_load(dtxd_tlsconf *c, const char *listen_url,
    const char *op_url, char *why, size_t cap);

// Releases what dtxd_tlsconf_load loaded. Idempotent.
void dtxd_tlsconf_fini(dtxd_tlsconf *c);

#endif // DTXD_TLSCONF_H
