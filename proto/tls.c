// SPDX-License-Identifier: MIT
//
// tls: TLS configurations and handshake diagnosis (see tls.h). A dtxi_tls
// keeps its items as PEM text: nng parses them again for each
// configuration made from it, which happens once per listener or dialer.
//
// Diagnosis. nng 1.5.2 with mbed TLS 2.28 reports a failed handshake as
// NNG_ECRYPTO (or NNG_ECONNSHUT, when the server hangs up on a client that
// sent no certificate) whatever the reason, and has no way to show the
// peer's certificate. So dtxi_tls_diagnose() repeats the handshake on
// throwaway stream connections (never SP sockets, so no pipe is made and
// nothing waits on a close), each a TCP connect, the handshake, and an
// exchange of SP headers, changing one thing at a time:
//
//   1. plain tcp:// to the same address   answers -> not a TLS listener
//   2. TLS, the server not checked        fails   -> it refused us
//   3. TLS, the server checked, no name   works   -> wrong name
//                                         fails   -> unknown CA or expired
//
// Our own certificate's dates are known (certinfo), so "it refused us"
// says when ours has expired; "unknown CA or expired" for the server's
// cannot be split without its certificate. A plain URL whose peer hangs up
// at once is most likely a TLS listener. The probes run only after a
// failure, off nng's threads (they block), a few milliseconds each on a
// reachable server.

#include "tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/supplemental/tls/tls.h>

#include "certinfo.h"
#include "clock.h"
#include "strs.h"

// Largest PEM file read: a long chain is a few tens of KiB.
#define PEM_FILE_MAX (1024 * 1024)
// How long one diagnosis probe may take.
#define PROBE_TIMEOUT_MS 2000
// Where an item came from, for messages: "file /path" or "PEM in memory".
#define SRC_MAX 160

struct dtxi_tls {
	atomic_int refs;
	char      *cert; // PEM, NUL-terminated, or NULL
	char      *key;
	char      *pass;
	char      *ca;
	char      *server_name;
	char       cert_src[SRC_MAX];
	char       ca_src[SRC_MAX];
};

static void
wipe_free(char *s)
{
	if (s != NULL) {
		volatile char *v = s;
		while (*v != '\0') {
			*v++ = '\0';
		}
		free(s);
	}
}

static char *
dup_or_null(const char *s)
{
	char *d;
	if (s == NULL) {
		return NULL;
	}
	if ((d = malloc(strlen(s) + 1)) != NULL) {
		memcpy(d, s, strlen(s) + 1);
	}
	return d;
}

static int
read_file(const char *path, char **out, char *why, size_t cap)
{
	FILE  *f = fopen(path, "rb");
	char  *buf;
	size_t n;

	if (f == NULL) {
		snprintf(
		    why, cap, "cannot read %s: %s", path, strerror(errno));
		return DTX_EINVAL;
	}
	if ((buf = malloc(PEM_FILE_MAX + 1)) == NULL) {
		fclose(f);
		return DTX_ENOMEM;
	}
	n = fread(buf, 1, PEM_FILE_MAX + 1, f);
	if (ferror(f) || n > PEM_FILE_MAX) {
		snprintf(why, cap, "cannot read %s: %s", path,
		    ferror(f) ? strerror(errno) : "larger than 1 MiB");
		fclose(f);
		free(buf);
		return DTX_EINVAL;
	}
	fclose(f);
	buf[n] = '\0';
	*out   = buf;
	return 0;
}

// Takes one item given as a file or as PEM (not both) into *out (NULL
// when neither), and says where it came from in src.
static int
take_item(const char *what, const char *file, const char *pem, char **out,
    char *src, char *why, size_t cap)
{
	if (file != NULL && pem != NULL) {
		snprintf(why, cap, "%s given both as a file and as PEM", what);
		return DTX_EINVAL;
	}
	if (file != NULL) {
		snprintf(src, SRC_MAX, "%s", file);
		return read_file(file, out, why, cap);
	}
	if (pem != NULL) {
		snprintf(src, SRC_MAX, "the %s PEM in memory", what);
		if ((*out = dup_or_null(pem)) == NULL) {
			return DTX_ENOMEM;
		}
	}
	return 0;
}

// Refuses a certificate (the first in pem) outside its validity dates.
// One that certinfo cannot read is left to nng, which parsed it.
static int
check_dates(
    const char *what, const char *src, const char *pem, char *why, size_t cap)
{
	int64_t nb, na, now = dtxi_now_ms() / 1000;
	char    when[32];

	if (dtxi_cert_validity(pem, strlen(pem), &nb, &na) != 0) {
		return 0;
	}
	if (now > na) {
		dtxi_cert_time_str(na, when, sizeof(when));
		snprintf(why, cap, "%s %s expired on %s", what, src, when);
		return DTX_EINVAL;
	}
	if (now < nb) {
		dtxi_cert_time_str(nb, when, sizeof(when));
		snprintf(why, cap,
		    "%s %s is not valid before %s (check the clock)", what,
		    src, when);
		return DTX_EINVAL;
	}
	return 0;
}

// A new nng configuration from t's items. auth: whether the peer's
// certificate is checked; server_name: NULL for none.
static int
make_config(const dtxi_tls *t, nng_tls_mode mode, bool auth,
    const char *server_name, nng_tls_config **cp, char *why, size_t cap)
{
	nng_tls_config *c;
	int             rv;

	if ((rv = nng_tls_config_alloc(&c, mode)) != 0) {
		snprintf(why, cap, "cannot make a TLS configuration: %s",
		    nng_strerror(rv));
		return rv == NNG_ENOMEM ? DTX_ENOMEM : DTX_ETRANSPORT;
	}
	// mbed TLS 2.28 speaks TLS 1.2 only; nng would also take 1.0 and 1.1.
	if ((rv = nng_tls_config_version(c, NNG_TLS_1_2, NNG_TLS_1_2)) != 0) {
		snprintf(
		    why, cap, "cannot require TLS 1.2: %s", nng_strerror(rv));
		goto fail;
	}
	if (t->cert != NULL &&
	    (rv = nng_tls_config_own_cert(c, t->cert, t->key, t->pass)) != 0) {
		snprintf(why, cap,
		    "certificate %s and its key: %s (not PEM, a wrong "
		    "password, or a key of another certificate?)",
		    t->cert_src, nng_strerror(rv));
		goto fail;
	}
	if (auth && (rv = nng_tls_config_ca_chain(c, t->ca, NULL)) != 0) {
		snprintf(why, cap, "CA %s: %s (not PEM certificates?)",
		    t->ca_src, nng_strerror(rv));
		goto fail;
	}
	if (server_name != NULL &&
	    (rv = nng_tls_config_server_name(c, server_name)) != 0) {
		snprintf(why, cap, "server name '%s': %s", server_name,
		    nng_strerror(rv));
		goto fail;
	}
	rv = nng_tls_config_auth_mode(
	    c, auth ? NNG_TLS_AUTH_MODE_REQUIRED : NNG_TLS_AUTH_MODE_NONE);
	if (rv != 0) {
		snprintf(why, cap,
		    "cannot set the TLS authentication mode: %s",
		    nng_strerror(rv));
		goto fail;
	}
	*cp = c;
	return 0;
fail:
	nng_tls_config_free(c);
	return rv == NNG_ENOMEM ? DTX_ENOMEM : DTX_EINVAL;
}

int
dtxi_tls_load(dtxi_tls **tp, const dtx_tls_opts *o, dtxi_tls_role role,
    char *why, size_t cap)
{
	dtxi_tls       *t;
	nng_tls_config *c;
	char            keysrc[SRC_MAX];
	int             rv;

	if (tp == NULL || o == NULL) {
		snprintf(why, cap, "no TLS settings");
		return DTX_EINVAL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		return DTX_ENOMEM;
	}
	atomic_init(&t->refs, 1);
	if ((rv = take_item("certificate", o->cert_file, o->cert_pem, &t->cert,
	         t->cert_src, why, cap)) != 0 ||
	    (rv = take_item("key", o->key_file, o->key_pem, &t->key, keysrc,
	         why, cap)) != 0 ||
	    (rv = take_item("CA", o->ca_file, o->ca_pem, &t->ca, t->ca_src,
	         why, cap)) != 0) {
		goto fail;
	}
	rv = DTX_EINVAL;
	if ((t->cert == NULL) != (t->key == NULL)) {
		snprintf(why, cap,
		    "a certificate needs its key, and a key "
		    "its certificate");
		goto fail;
	}
	if (role == DTXI_TLS_LISTEN && t->cert == NULL) {
		snprintf(
		    why, cap, "a TLS listener needs a certificate and key");
		goto fail;
	}
	if (t->ca == NULL) {
		snprintf(why, cap,
		    role == DTXI_TLS_LISTEN
		        ? "a TLS listener needs the CA its peers' "
		          "certificates are signed by (TLS in dtx is mutual)"
		        : "TLS needs the CA the server's certificate is "
		          "signed by");
		goto fail;
	}
	if (o->server_name != NULL &&
	    (role != DTXI_TLS_DIAL || o->server_name[0] == '\0')) {
		snprintf(
		    why, cap, "a server name is for dialing, and not empty");
		goto fail;
	}
	rv = DTX_ENOMEM;
	if ((o->key_password != NULL &&
	        (t->pass = dup_or_null(o->key_password)) == NULL) ||
	    (o->server_name != NULL &&
	        (t->server_name = dup_or_null(o->server_name)) == NULL)) {
		goto fail;
	}
	// nng parses everything now, so that a bad file is named here and
	// not at the first connection.
	if ((rv = make_config(t,
	         t->cert != NULL ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT,
	         true, NULL, &c, why, cap)) != 0) {
		goto fail;
	}
	nng_tls_config_free(c);
	if ((t->cert != NULL &&
	        (rv = check_dates(
	             "certificate", t->cert_src, t->cert, why, cap)) != 0) ||
	    (rv = check_dates("CA", t->ca_src, t->ca, why, cap)) != 0) {
		goto fail;
	}
	*tp = t;
	return 0;
fail:
	dtxi_tls_rele(t);
	return rv;
}

void
dtxi_tls_hold(dtxi_tls *t)
{
	atomic_fetch_add(&t->refs, 1);
}

void
dtxi_tls_rele(dtxi_tls *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1) {
		return;
	}
	free(t->cert);
	wipe_free(t->key);
	wipe_free(t->pass);
	free(t->ca);
	free(t->server_name);
	free(t);
}

const char *
dtxi_tls_ca_source(const dtxi_tls *t)
{
	return t->ca_src;
}

static const char *const tls_schemes[] = {
    "tls+tcp://", "tls+tcp4://", "tls+tcp6://"};

bool
dtxi_tls_url(const char *url)
{
	for (size_t i = 0; i < sizeof(tls_schemes) / sizeof(tls_schemes[0]);
	     i++) {
		if (strncmp(url, tls_schemes[i], strlen(tls_schemes[i])) ==
		    0) {
			return true;
		}
	}
	return false;
}

// The host of a TCP-like URL ("scheme://host:port", "scheme://[v6]:port")
// into host (cap bytes); the port's position in *port when not NULL.
static int
url_host(const char *url, char *host, size_t cap, const char **port)
{
	const char *h = strstr(url, "://"), *e;

	if (h == NULL) {
		return -1;
	}
	h += 3;
	if (*h == '[') {
		if ((e = strchr(++h, ']')) == NULL || e[1] != ':') {
			return -1;
		}
	} else if ((e = strrchr(h, ':')) == NULL) {
		return -1;
	}
	if (e == h || (size_t)(e - h) >= cap) {
		return -1;
	}
	memcpy(host, h, (size_t)(e - h));
	host[e - h] = '\0';
	if (port != NULL) {
		*port = strrchr(url, ':') + 1;
	}
	return 0;
}

int
dtxi_tls_listener_setup(
    const dtxi_tls *t, nng_listener l, char *why, size_t cap)
{
	nng_tls_config *c;
	int             rv;

	if (t->cert == NULL) {
		snprintf(why, cap, "a TLS listener needs a certificate");
		return DTX_EINVAL;
	}
	if ((rv = make_config(
	         t, NNG_TLS_MODE_SERVER, true, NULL, &c, why, cap)) != 0) {
		return rv;
	}
	rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, c);
	nng_tls_config_free(c); // the listener holds its own reference
	if (rv != 0) {
		snprintf(why, cap,
		    "cannot give the listener its TLS "
		    "configuration: %s",
		    nng_strerror(rv));
		return DTX_ETRANSPORT;
	}
	return 0;
}

int
dtxi_tls_dialer_setup(
    const dtxi_tls *t, nng_dialer d, const char *url, char *why, size_t cap)
{
	nng_tls_config *c;
	char            host[256];
	int             rv;

	if (url_host(url, host, sizeof(host), NULL) != 0) {
		snprintf(why, cap, "no host in '%s'", url);
		return DTX_EINVAL;
	}
	if ((rv = make_config(t, NNG_TLS_MODE_CLIENT, true,
	         t->server_name != NULL ? t->server_name : host, &c, why,
	         cap)) != 0) {
		return rv;
	}
	rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c);
	nng_tls_config_free(c); // the dialer holds its own reference
	if (rv != 0) {
		snprintf(why, cap,
		    "cannot give the dialer its TLS configuration: %s",
		    nng_strerror(rv));
		return DTX_ETRANSPORT;
	}
	return 0;
}

// ---------------------------------------------------------------------
// Diagnosis
// ---------------------------------------------------------------------

// One probe: connect to url (with c for TLS, else plain), send a REQ
// peer's SP header and read the server's. Returns 0 when a server
// answered with an SP header, else nng's error (NNG_EPROTO for bytes that
// are not one).
static int
probe(const char *url, nng_tls_config *c)
{
	static const unsigned char hdr[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
	nng_stream_dialer         *d      = NULL;
	nng_stream                *s      = NULL;
	nng_aio                   *aio    = NULL;
	unsigned char              in[8];
	size_t                     got = 0;
	nng_iov                    iov;
	int                        rv;

	if ((rv = nng_stream_dialer_alloc(&d, url)) != 0 ||
	    (c != NULL &&
	        (rv = nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c)) !=
	            0) ||
	    (rv = nng_aio_alloc(&aio, NULL, NULL)) != 0) {
		goto out;
	}
	nng_aio_set_timeout(aio, PROBE_TIMEOUT_MS);
	nng_stream_dialer_dial(d, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		goto out;
	}
	s           = nng_aio_get_output(aio, 0);
	iov.iov_buf = (void *)hdr;
	iov.iov_len = sizeof(hdr);
	nng_aio_set_iov(aio, 1, &iov);
	nng_stream_send(s, aio);
	nng_aio_wait(aio);
	rv = nng_aio_result(aio);
	while (rv == 0 && got < sizeof(in)) {
		iov.iov_buf = in + got;
		iov.iov_len = sizeof(in) - got;
		nng_aio_set_iov(aio, 1, &iov);
		nng_stream_recv(s, aio);
		nng_aio_wait(aio);
		if ((rv = nng_aio_result(aio)) == 0) {
			got += nng_aio_count(aio);
		}
	}
	if (rv == 0 && memcmp(in, hdr, 4) != 0) {
		rv = NNG_EPROTO;
	}
out:
	if (s != NULL) {
		nng_stream_free(s);
	}
	if (aio != NULL) {
		nng_aio_free(aio);
	}
	if (d != NULL) {
		nng_stream_dialer_free(d);
	}
	return rv;
}

// A probe with a configuration made from t; NNG_EINVAL if none can be made.
static int
probe_tls(const dtxi_tls *t, const char *url, bool auth, const char *name)
{
	nng_tls_config *c;
	char            why[DTX_MESSAGE_MAX + 1];
	int             rv;

	if (make_config(t, NNG_TLS_MODE_CLIENT, auth, name, &c, why,
	        sizeof(why)) != 0) {
		return NNG_EINVAL;
	}
	rv = probe(url, c);
	nng_tls_config_free(c);
	return rv;
}

// A failure that is about reaching the server, not about what it said.
static bool
unreachable(int rv)
{
	return rv == NNG_ECONNREFUSED || rv == NNG_EADDRINVAL ||
	    rv == NNG_EUNREACHABLE || rv == NNG_ETIMEDOUT;
}

// Why a server refused our certificate, as far as we can tell.
static void
refused_us(const dtxi_tls *t, const char *hint, char *out, size_t cap)
{
	int64_t nb, na, now = dtxi_now_ms() / 1000;
	char    when[32];

	if (t->cert == NULL) {
		snprintf(out, cap,
		    "it requires a certificate and none was "
		    "given");
		return;
	}
	if (dtxi_cert_validity(t->cert, strlen(t->cert), &nb, &na) == 0 &&
	    now > na) {
		dtxi_cert_time_str(na, when, sizeof(when));
		snprintf(out, cap,
		    "it refused our certificate %s, which "
		    "expired on %s",
		    t->cert_src, when);
		return;
	}
	snprintf(out, cap,
	    "it refused our certificate %s (%s; or expired "
	    "by its clock)",
	    t->cert_src,
	    hint != NULL ? hint : "not signed by a CA it accepts");
}

int
dtxi_tls_diagnose(const dtxi_tls *t, const char *url, const char *peer,
    const char *hint, char *why, size_t cap)
{
	char        host[256], plain[300], tls[300], what[DTX_MESSAGE_MAX + 1];
	const char *port;
	int         rv;

	if (url_host(url, host, sizeof(host), &port) != 0) {
		snprintf(why, cap, "%s at %s: not a TCP address", peer, url);
		return DTX_ETRANSPORT;
	}
	// Bracket an IPv6 host again for the probe URLs.
	snprintf(plain, sizeof(plain),
	    strchr(host, ':') ? "tcp://[%s]:%s" : "tcp://%s:%s", host, port);
	snprintf(tls, sizeof(tls),
	    strchr(host, ':') ? "tls+tcp://[%s]:%s" : "tls+tcp://%s:%s", host,
	    port);
	if (t == NULL) {
		rv = probe(plain, NULL);
		if (rv == 0) {
			return 0;
		}
		if (unreachable(rv)) {
			snprintf(why, cap, "%s at %s: %s", peer, url,
			    nng_strerror(rv));
			return DTX_ETRANSPORT;
		}
		snprintf(why, cap,
		    "%s at %s hung up at once (%s): it is most likely a TLS "
		    "listener; dial tls+tcp:// with certificates",
		    peer, url, nng_strerror(rv));
		return DTX_EAUTH;
	}
	const char *name = t->server_name != NULL ? t->server_name : host;
	if ((rv = probe_tls(t, tls, true, name)) == 0) {
		return 0;
	}
	if (unreachable(rv)) {
		snprintf(
		    why, cap, "%s at %s: %s", peer, url, nng_strerror(rv));
		return DTX_ETRANSPORT;
	}
	if (probe(plain, NULL) == 0) {
		snprintf(what, sizeof(what),
		    "it is a plain tcp:// listener, not TLS");
	} else if (probe_tls(t, tls, false, NULL) != 0) {
		refused_us(t, hint, what, sizeof(what));
	} else if (probe_tls(t, tls, true, NULL) == 0) {
		snprintf(what, sizeof(what),
		    "its certificate is not issued for the name '%.100s'",
		    name);
	} else {
		snprintf(what, sizeof(what),
		    "its certificate is not signed by the CA %s, or has "
		    "expired (nng 1.5.2 does not say which)",
		    t->ca_src);
	}
	snprintf(why, cap, "TLS handshake with %s at %s failed: %s", peer, url,
	    what);
	return DTX_EAUTH;
}
