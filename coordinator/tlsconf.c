// SPDX-License-Identifier: MIT
//
// tlsconf: dtxd's TLS flags (see tlsconf.h).

#include "tlsconf.h"

#include <stdio.h>

// Loads one door's settings into *out, prefixing a failure with the flag
// that named the culprit.
static int
load(dtxi_tls **out, const char *cert, const char *key, const char *ca,
    dtxi_tls_role role, const char *flags, char *why, size_t cap)
{
	dtx_tls_opts o = {
	    .cert_file = cert,
	    .key_file  = key,
	    .ca_file   = ca,
	};
	char reason[DTX_MESSAGE_MAX + 1];
	int  rv;

	if ((rv = dtxi_tls_load(out, &o, role, reason, sizeof(reason))) != 0) {
		snprintf(why, cap, "%s: %s", flags, reason);
	}
	return rv;
}

int
dtxd_tlsconf_load(dtxd_tlsconf *c, const char *listen_url, const char *op_url,
    char *why, size_t cap)
{
	bool listen_tls = dtxi_tls_url(listen_url);
	bool op_tls     = op_url != NULL && dtxi_tls_url(op_url);
	int  rv;

	if (!listen_tls && c->ca != NULL) {
		snprintf(why, cap, "--tls-ca is for a tls+tcp:// --listen");
		return DTX_EINVAL;
	}
	if (!op_tls && c->op_ca != NULL) {
		snprintf(why, cap,
		    "--operator-tls-ca is for a tls+tcp:// --operator-listen");
		return DTX_EINVAL;
	}
	if ((c->cert != NULL || c->key != NULL) && !listen_tls && !op_tls &&
	    c->part_ca == NULL) {
		snprintf(why, cap,
		    "--tls-cert and --tls-key are for a tls+tcp:// --listen "
		    "or "
		    "--operator-listen, or toward participants "
		    "(--participant-tls-ca)");
		return DTX_EINVAL;
	}
	if ((c->part_cert != NULL || c->part_key != NULL) &&
	    c->part_ca == NULL) {
		snprintf(why, cap,
		    "--participant-tls-cert and -key need "
		    "--participant-tls-ca");
		return DTX_EINVAL;
	}
	if (listen_tls &&
	    (rv = load(&c->listen, c->cert, c->key, c->ca, DTXI_TLS_LISTEN,
	         "--tls-cert, --tls-key, --tls-ca", why, cap)) != 0) {
		goto fail;
	}
	if (op_tls &&
	    (rv = load(&c->op, c->cert, c->key, c->op_ca, DTXI_TLS_LISTEN,
	         "--tls-cert, --tls-key, --operator-tls-ca", why, cap)) != 0) {
		goto fail;
	}
	if (c->part_ca != NULL &&
	    (rv = load(&c->part, c->part_cert != NULL ? c->part_cert : c->cert,
	         c->part_key != NULL ? c->part_key : c->key, c->part_ca,
	         DTXI_TLS_DIAL,
	         "--participant-tls-cert, --participant-tls-key (default "
	         "--tls-cert, --tls-key), --participant-tls-ca",
	         why, cap)) != 0) {
		goto fail;
	}
	return 0;
fail:
	dtxd_tlsconf_fini(c);
	return rv;
}

void
dtxd_tlsconf_fini(dtxd_tlsconf *c)
{
	dtxi_tls_rele(c->listen);
	dtxi_tls_rele(c->op);
	dtxi_tls_rele(c->part);
	c->listen = c->op = c->part = NULL;
}
