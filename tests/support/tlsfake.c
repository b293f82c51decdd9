// SPDX-License-Identifier: MIT
//
// dtx-tlsfake: a TLS peer that dtx's own code would not be: it uses nng
// directly, so it takes certificates libdtx and dtxd refuse to load (an
// expired one), and it plays the roles the TLS tests need a stranger for.
//
//   dtx-tlsfake --listen URL [--cert F --key F] [--ca F]
//       A REP socket listening on URL (a TLS listener for tls+tcp://, which
//       requires a peer certificate signed by --ca when it is given) that
//       never answers. Runs until killed.
//   dtx-tlsfake --dial URL [--cert F --key F] [--ca F] [--call]
//       One synchronous dial (the server checked against --ca, by the
//       URL's host, when --ca is given); with --call, a BranchCall of method
//       "op" sent and its answer awaited for 2 s. Prints what happened and
//       exits 0 when the dial (and the call) worked, 1 otherwise.

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>

#include "codec.h"
#include "strs.h"
#include "transport.h"

static char *
slurp(const char *path)
{
	FILE  *f = fopen(path, "rb");
	char  *buf;
	size_t n;

	if (f == NULL || (buf = malloc(1 << 20)) == NULL) {
		fprintf(stderr, "dtx-tlsfake: cannot read %s\n", path);
		exit(2);
	}
	n      = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static nng_tls_config *
config(bool server, const char *cert, const char *key, const char *ca,
    const char *url)
{
	nng_tls_config *c;
	char            host[256] = "";
	const char     *h         = strstr(url, "://");
	int             rv;

	if (nng_tls_config_alloc(
	        &c, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT) != 0) {
		exit(2);
	}
	if (cert != NULL) {
		char *c_pem = slurp(cert), *k_pem = slurp(key);
		rv = nng_tls_config_own_cert(c, c_pem, k_pem, NULL);
		free(c_pem);
		free(k_pem);
		if (rv != 0) {
			fprintf(stderr, "dtx-tlsfake: %s: %s\n", cert,
			    nng_strerror(rv));
			exit(2);
		}
	}
	if (ca != NULL) {
		char *ca_pem = slurp(ca);
		nng_tls_config_ca_chain(c, ca_pem, NULL);
		free(ca_pem);
	}
	nng_tls_config_auth_mode(c,
	    ca != NULL ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE);
	if (!server && h != NULL) {
		dtxi_strlcpy(host, h + 3, sizeof(host));
		if (strrchr(host, ':') != NULL) {
			*strrchr(host, ':') = '\0';
		}
		nng_tls_config_server_name(c, host);
	}
	return c;
}

int
main(int argc, char **argv)
{
	const char *listen = NULL, *dial = NULL, *cert = NULL, *key = NULL;
	const char *ca   = NULL;
	bool        call = false;
	nng_socket  s;
	int         rv;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--call") == 0) {
			call = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "dtx-tlsfake: %s needs a value\n",
			    argv[i]);
			return 2;
		}
		if (strcmp(argv[i], "--listen") == 0) {
			listen = v;
		} else if (strcmp(argv[i], "--dial") == 0) {
			dial = v;
		} else if (strcmp(argv[i], "--cert") == 0) {
			cert = v;
		} else if (strcmp(argv[i], "--key") == 0) {
			key = v;
		} else if (strcmp(argv[i], "--ca") == 0) {
			ca = v;
		} else {
			fprintf(stderr, "dtx-tlsfake: unknown %s\n", argv[i]);
			return 2;
		}
		i++;
	}
	if ((listen == NULL) == (dial == NULL)) {
		fprintf(stderr, "dtx-tlsfake: --listen or --dial\n");
		return 2;
	}
	if (listen != NULL) {
		nng_listener l;
		if (nng_rep0_open(&s) != 0 ||
		    nng_listener_create(&l, s, listen) != 0) {
			return 2;
		}
		if (strncmp(listen, "tls+", 4) == 0) {
			nng_tls_config *c =
			    config(true, cert, key, ca, listen);
			nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, c);
			nng_tls_config_free(c);
		}
		if ((rv = nng_listener_start(l, 0)) != 0) {
			fprintf(stderr, "dtx-tlsfake: %s: %s\n", listen,
			    nng_strerror(rv));
			return 1;
		}
		fprintf(stderr, "dtx-tlsfake: listening on %s\n", listen);
		for (;;) {
			pause(); // killed by the test
		}
	}
	nng_dialer d;
	if (nng_req0_open(&s) != 0 || nng_dialer_create(&d, s, dial) != 0) {
		return 2;
	}
	if (strncmp(dial, "tls+", 4) == 0) {
		nng_tls_config *c = config(false, cert, key, ca, dial);
		nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c);
		nng_tls_config_free(c);
	}
	if ((rv = nng_dialer_start(d, 0)) != 0) {
		printf("dial: %s\n", nng_strerror(rv));
		return 1;
	}
	printf("dial: connected\n");
	if (call) {
		static dtxi_request req;
		nng_msg            *m;
		req.version = DTX_PROTOCOL_VERSION;
		req.kind    = DTXI_REQ_CALL;
		dtxi_strlcpy(req.u.call.gid, "fake-1", sizeof(req.u.call.gid));
		dtxi_strlcpy(
		    req.u.call.method, "op", sizeof(req.u.call.method));
		req.u.call.phase   = DTX_PHASE_PREPARE;
		req.u.call.attempt = 1;
		nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
		if (dtxi_transport_encode_request(&req, &m) != 0 ||
		    (rv = nng_sendmsg(s, m, 0)) != 0 ||
		    (rv = nng_recvmsg(s, &m, 0)) != 0) {
			printf("call: %s\n", nng_strerror(rv));
			return 1;
		}
		printf("call: answered\n");
		nng_msg_free(m);
	}
	return 0;
}
