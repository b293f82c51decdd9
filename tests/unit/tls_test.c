// SPDX-License-Identifier: MIT
//
// tls: loading TLS settings (proto/tls.c) and the public functions that
// take them, against the certificates testcerts.sh makes. Files and PEM in
// memory load alike; every item missing, given twice, unreadable,
// malformed or out of date is refused with a message naming
// the item and the file; a URL and its TLS settings must go together; and
// the diagnosis of a server that cannot be reached says so rather than
// blaming TLS.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include "harness.h"
#include "loopback_port.h"
#include "tls.h"

static const char *
cert(const char *file)
{
	static char ring[16][DTXT_PATH_MAX];
	static int  next;
	const char *dir = getenv("DTX_TEST_CERTS");
	char       *out = ring[next++ % 16];

	cr_assert_not_null(dir, "DTX_TEST_CERTS is not set (run under ctest)");
	snprintf(out, DTXT_PATH_MAX, "%s/%s", dir, file);
	return out;
}

static dtx_tls_opts
service(void)
{
	dtx_tls_opts o = {.cert_file = cert("service.crt"),
	    .key_file                = cert("service.key"),
	    .ca_file                 = cert("coordinator-ca.crt")};
	return o;
}

// Loads o for role and expects rv, and (when rv != 0) want in the message.
static void
load(const dtx_tls_opts *o, dtxi_tls_role role, int rv, const char *want)
{
	dtxi_tls *t                        = NULL;
	char      why[DTX_MESSAGE_MAX + 1] = "";

	cr_assert_eq(
	    dtxi_tls_load(&t, o, role, why, sizeof(why)), rv, "%s", why);
	if (rv == 0) {
		cr_assert_not_null(t);
		dtxi_tls_rele(t);
	} else {
		cr_assert_null(t);
		cr_assert(
		    strstr(why, want) != NULL, "'%s' lacks '%s'", why, want);
	}
}

Test(tls, loads_files_and_pem_in_memory_alike)
{
	dtx_tls_opts o = service();
	char        *c = dtxt_read_file(o.cert_file);
	char        *k = dtxt_read_file(o.key_file);
	char        *a = dtxt_read_file(o.ca_file);

	load(&o, DTXI_TLS_DIAL, 0, NULL);
	load(&o, DTXI_TLS_LISTEN, 0, NULL);
	dtx_tls_opts m = {.cert_pem = c, .key_pem = k, .ca_pem = a};
	load(&m, DTXI_TLS_LISTEN, 0, NULL);
	// A dialer may go without a certificate, and name its server.
	dtx_tls_opts d = {.ca_pem = a, .server_name = "dtxd.example"};
	load(&d, DTXI_TLS_DIAL, 0, NULL);
	free(c);
	free(k);
	free(a);
}

Test(tls, refuses_missing_doubled_and_unpaired_items)
{
	dtx_tls_opts o = service();

	o.ca_file = cert("no-such-ca.crt");
	load(&o, DTXI_TLS_DIAL, DTX_EINVAL, "no-such-ca.crt: No such file");
	o        = service();
	o.ca_pem = "-----BEGIN CERTIFICATE-----\n";
	load(&o, DTXI_TLS_DIAL, DTX_EINVAL, "CA given both as a file and");
	o          = service();
	o.key_file = NULL;
	load(&o, DTXI_TLS_DIAL, DTX_EINVAL, "a certificate needs its key");
	o           = service();
	o.cert_file = NULL;
	o.key_file  = NULL;
	load(&o, DTXI_TLS_LISTEN, DTX_EINVAL, "needs a certificate and key");
	o         = service();
	o.ca_file = NULL;
	load(&o, DTXI_TLS_LISTEN, DTX_EINVAL, "TLS in dtx is mutual");
	load(&o, DTXI_TLS_DIAL, DTX_EINVAL, "needs the CA");
	o             = service();
	o.server_name = "x";
	load(&o, DTXI_TLS_LISTEN, DTX_EINVAL, "a server name is for dialing");
	load(NULL, DTXI_TLS_DIAL, DTX_EINVAL, "no TLS settings");
}

Test(tls, refuses_malformed_and_expired_items)
{
	dtx_tls_opts o = service();

	o.cert_file = cert("services-ca.srl"); // not PEM at all
	load(&o, DTXI_TLS_DIAL, DTX_EINVAL, "services-ca.srl and its key");
	o         = service();
	o.ca_file = cert("service.key"); // a key where the CA goes
	load(&o, DTXI_TLS_DIAL, DTX_EINVAL, "CA ");
	o           = service();
	o.cert_file = cert("expired.crt");
	o.key_file  = cert("expired.key");
	load(&o, DTXI_TLS_DIAL, DTX_EINVAL,
	    "expired.crt expired on 2020-01-31 00:00:00 UTC");
}

Test(tls, tells_tls_urls)
{
	cr_assert(dtxi_tls_url("tls+tcp://127.0.0.1:1"));
	cr_assert(dtxi_tls_url("tls+tcp6://[::1]:1"));
	cr_assert_not(dtxi_tls_url("tcp://127.0.0.1:1"));
	cr_assert_not(dtxi_tls_url("ipc:///tmp/x"));
}

Test(tls, diagnoses_an_unreachable_server_as_such)
{
	dtx_tls_opts o = service();
	dtxi_tls    *t;
	char         why[DTX_MESSAGE_MAX + 1];
	int          port = dtxi_loopback_port();
	char         url[64];

	cr_assert_eq(
	    dtxi_tls_load(&t, &o, DTXI_TLS_DIAL, why, sizeof(why)), 0);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", port);
	cr_assert_eq(dtxi_tls_diagnose(t, url, "peer", NULL, why, sizeof(why)),
	    DTX_ETRANSPORT);
	cr_assert(
	    strstr(why, "peer at tls+tcp://127.0.0.1:") != NULL, "%s", why);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	cr_assert_eq(
	    dtxi_tls_diagnose(NULL, url, "peer", NULL, why, sizeof(why)),
	    DTX_ETRANSPORT);
	cr_assert_eq(dtxi_tls_diagnose(
	                 NULL, "ipc:///x", "peer", NULL, why, sizeof(why)),
	    DTX_ETRANSPORT);
	dtxi_tls_rele(t);
}

Test(tls, public_functions_check_urls_against_tls_settings)
{
	dtx_tls_opts     o = service();
	dtx_client      *c = NULL;
	dtx_participant *p;

	cr_assert_eq(dtx_client_open(&c, "tls+tcp://127.0.0.1:1"), DTX_EINVAL);
	cr_assert_eq(
	    dtx_client_open_tls(&c, "tcp://127.0.0.1:1", &o), DTX_EINVAL);
	cr_assert_eq(dtx_client_open_tls(&c, "tls+tcp://127.0.0.1:1", NULL),
	    DTX_EINVAL);
	cr_assert_null(c);
	cr_assert_eq(dtx_client_open_tls(&c, "tls+tcp://127.0.0.1:1", &o), 0);
	dtx_client_close(c);

	cr_assert_eq(dtx_participant_open(&p), 0);
	o.ca_file = NULL;
	cr_assert_eq(dtx_participant_set_tls(p, &o), DTX_EINVAL);
	cr_assert(strstr(dtx_participant_message(p), "mutual") != NULL, "%s",
	    dtx_participant_message(p));
	cr_assert_eq(
	    dtx_participant_listen(p, "tls+tcp://127.0.0.1:0"), DTX_EINVAL);
	cr_assert(
	    strstr(dtx_participant_message(p), "no TLS settings") != NULL,
	    "%s", dtx_participant_message(p));
	o = service();
	cr_assert_eq(dtx_participant_set_tls(p, &o), 0);
	cr_assert_eq(
	    dtx_participant_listen(p, "tcp://127.0.0.1:0"), DTX_EINVAL);
	cr_assert(
	    strstr(dtx_participant_message(p), "not a tls+tcp://") != NULL,
	    "%s", dtx_participant_message(p));
	cr_assert_eq(dtx_participant_listen(p, "tls+tcp://127.0.0.1:0"), 0);
	cr_assert_eq(dtx_participant_set_tls(p, &o), DTX_ESTATE);
	dtx_participant_close(p);
}
