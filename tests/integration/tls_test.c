// SPDX-License-Identifier: MIT
//
// dtx.integration.tls: mutual TLS on every socket, with real processes and
// the certificates of samples/tls/make-certs.sh made at test time (plus a
// rogue CA, an expired, and two wrong-name certificates: testcerts.sh).
// Both transaction modes run over TLS end to end, with the barrier and the
// resolver; roles hold (a participant takes calls only from the
// coordinator CA; operator commands only on the operator listener); and
// every way a handshake can go wrong (no certificate, an unknown CA, a
// wrong name, an expired certificate, plain tcp:// at a TLS port and the
// reverse) is refused on each kind of socket (client -> dtxd, dtxd ->
// participant, resolver -> dtxd, dtxctl -> dtxd) quickly, with a message
// that says what happened, and logged by the refusing server. A listener
// fed garbage keeps serving.

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include <dtx/dtx.h>

#include "clock.h"
#include "harness.h"
#include "httpc.h"
#include "prom.h"
#include "world_suite.h"

TestSuite(tls, .init = world_setup, .fini = world_teardown, .timeout = 180);

// A failure must be reported well before any request timeout (10 s).
#define FAIL_FAST_MS 4000

// ---------------------------------------------------------------------------
// Certificates, URLs and processes
// ---------------------------------------------------------------------------

// The path of a file in the certificate directory. A ring of buffers, so a
// few may be used at once.
static const char *
cert(const char *file)
{
	static char ring[48][DTXT_PATH_MAX];
	static int  next;
	const char *dir = getenv("DTX_TEST_CERTS");
	char       *out = ring[next++ % 48];

	cr_assert_not_null(dir, "DTX_TEST_CERTS is not set (run under ctest)");
	snprintf(out, DTXT_PATH_MAX, "%s/%s", dir, file);
	return out;
}

// TLS settings of a leaf ("service") checking its peer against ca.
static dtx_tls_opts
tls_of(const char *leaf, const char *ca)
{
	static char  c[8][DTXT_PATH_MAX], k[8][DTXT_PATH_MAX];
	static int   next;
	int          i = next++ % 8;
	dtx_tls_opts o = {.ca_file = cert(ca)};

	if (leaf != NULL) {
		snprintf(c[i], sizeof(c[i]), "%s.crt", leaf);
		snprintf(k[i], sizeof(k[i]), "%s.key", leaf);
		o.cert_file = cert(c[i]);
		o.key_file  = cert(k[i]);
	}
	return o;
}

// tls+tcp:// at the port of a tcp:// URL.
static void
tls_url(char *out, const char *tcp)
{
	snprintf(out, DTXT_URL_MAX, "tls+%.50s", tcp);
}

static const char *
env_bin(const char *name)
{
	const char *v = getenv(name);
	cr_assert_not_null(v, "%s is not set (run under ctest)", name);
	return v;
}

// Starts dtxd listening on listen with its data in w's directory, the test
// defaults, and args (NULL-terminated). Does not wait.
static dtxt_proc *
spawn_dtxd(const char *listen, const char *const args[])
{
	char *argv[48];
	int   n = 0;

	argv[n++] = (char *)dtxt_dtxd_bin();
	argv[n++] = "--listen";
	argv[n++] = (char *)listen;
	argv[n++] = "--data-dir";
	argv[n++] = w.data;
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	argv[n++] = "--backoff-base-ms";
	argv[n++] = "20";
	argv[n++] = "--backoff-max-ms";
	argv[n++] = "200";
	argv[n++] = "--call-timeout-ms";
	argv[n++] = "1000";
	for (int i = 0; args != NULL && args[i] != NULL && n < 47; i++) {
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	w.dtxd  = dtxt_spawn("dtxd", argv, NULL, w.log);
	CHECK(w.dtxd != NULL, "cannot start dtxd");
	return w.dtxd;
}

static int
open_client(dtx_client **cp, const char *url, const dtx_tls_opts *o)
{
	return o != NULL ? dtx_client_open_tls(cp, url, o)
	                 : dtx_client_open(cp, url);
}

// Waits until the dtxd at url answers a client with o (NULL: plain).
static void
wait_dtxd(const char *url, const dtx_tls_opts *o)
{
	int64_t     end = dtxi_mono_ms() + 10000;
	dtx_client *c;
	dtx_state   st;

	CHECK(open_client(&c, url, o) == 0, "cannot open a client of %s", url);
	dtx_client_set_timeout_ms(c, 300);
	while (dtx_client_resolve(c, "probe", &st) != 0) {
		CHECK(dtxt_alive(w.dtxd), "dtxd died (see its log)");
		CHECK(dtxi_mono_ms() < end, "dtxd at %s did not answer", url);
		dtxt_sleep_ms(50);
	}
	dtx_client_close(c);
}

// The usual secure dtxd: clients on a TLS --listen (services CA),
// operators on a TLS operator listener (operator CA), TLS toward
// participants (services CA). Its URLs go to url and opurl.
static void
start_secure_dtxd(char *url, char *opurl, const char *listen_cert)
{
	char certf[64], keyf[64];
	char op_tcp[DTXT_URL_MAX];

	snprintf(certf, sizeof(certf), "%s.crt", listen_cert);
	snprintf(keyf, sizeof(keyf), "%s.key", listen_cert);
	tls_url(url, w.url);
	CHECK(dtxt_free_url(op_tcp, sizeof(op_tcp)) == 0, "no port");
	tls_url(opurl, op_tcp);
	const char *args[] = {"--tls-cert", cert(certf), "--tls-key",
	    cert(keyf), "--tls-ca", cert("services-ca.crt"),
	    "--operator-listen", opurl, "--operator-tls-ca",
	    cert("operator-ca.crt"), "--participant-tls-ca",
	    cert("services-ca.crt"), "--participant-tls-cert",
	    cert("dtxd.crt"), "--participant-tls-key", cert("dtxd.key"), NULL};
	spawn_dtxd(url, args);
}

// Starts participant p with the certificate leaf (NULL: plain) on url,
// and extra arguments (NULL-terminated, may be NULL); waits until it
// accepts TCP connections.
static void
start_part(
    dtxt_part *p, const char *url, const char *leaf, const char *const extra[])
{
	char *argv[40];
	char  c[64], k[64];
	int   n = 0;

	argv[n++] = (char *)dtxt_testpart_bin();
	argv[n++] = "--listen";
	argv[n++] = (char *)url;
	argv[n++] = "--log";
	argv[n++] = p->calllog;
	argv[n++] = "--name";
	argv[n++] = p->name;
	if (leaf != NULL) {
		snprintf(c, sizeof(c), "%s.crt", leaf);
		snprintf(k, sizeof(k), "%s.key", leaf);
		argv[n++] = "--tls-cert";
		argv[n++] = (char *)cert(c);
		argv[n++] = "--tls-key";
		argv[n++] = (char *)cert(k);
		argv[n++] = "--tls-ca";
		argv[n++] = (char *)cert("coordinator-ca.crt");
	}
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 39; i++) {
		argv[n++] = (char *)extra[i];
	}
	argv[n] = NULL;
	p->proc = dtxt_spawn(p->name, argv, NULL, p->outlog);
	int rv  = p->proc != NULL ? dtxt_wait_tcp(p->proc, p->url, 10000) : -1;
	CHECK(rv == 0, "participant %s did not start", p->name);
}

// Runs dtx-tlsfake with args (NULL-terminated) to its end, its output in
// out (cap bytes); returns its exit status.
static int
run_tool(const char *bin, const char *const args[], char *out, size_t cap)
{
	char      *argv[32];
	char       log[DTXT_PATH_MAX];
	static int seq;
	dtxt_exit  how;
	int        n = 0;

	argv[n++] = (char *)bin;
	for (int i = 0; args[i] != NULL && n < 31; i++) {
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	snprintf(log, sizeof(log), "%s/tool-%d.log", w.dir, seq++);
	dtxt_proc *p = dtxt_spawn("tool", argv, NULL, log);
	CHECK(p != NULL && dtxt_wait(p, 20000, &how) == 0, "%s hung", bin);
	char *text = dtxt_read_file(log);
	snprintf(out, cap, "%s", text);
	free(text);
	return how.exited ? how.code : 128;
}

// Waits until the file at path contains text.
static void
expect_log(const char *path, const char *text)
{
	if (dtxt_wait_text(path, text, 1, 8000) != 0) {
		char *all = dtxt_read_file(path);
		dtxt_world_dump(&w);
		cr_assert_fail("%s does not say '%s':\n%s", path, text, all);
	}
}

// ---------------------------------------------------------------------------
// Transactions over mutual TLS
// ---------------------------------------------------------------------------

static void
commit_one(dtx_client *c, dtx_mode mode, const char *a, const char *pa,
    const char *b, const char *pb, dtx_state want)
{
	dtx_tx   *tx;
	dtx_state st;

	CHECK_RV(dtx_tx_begin(&tx, c, mode));
	CHECK_RV(dtx_tx_add(tx, a, "op", pa, strlen(pa)));
	CHECK_RV(dtx_tx_add(tx, b, "op", pb, strlen(pb)));
	int rv = dtx_tx_commit(tx, &st);
	CHECK(rv == 0 && st == want, "%s: %s %s (%s)", dtx_mode_name(mode),
	    dtx_strerror(rv), dtx_state_name(st), dtx_tx_message(tx));
	dtx_tx_free(tx);
}

Test(tls, two_phase_commit_and_saga_over_mutual_tls_with_roles)
{
	char         url[DTXT_URL_MAX], opurl[DTXT_URL_MAX];
	char         ua[DTXT_URL_MAX], ub[DTXT_URL_MAX];
	dtxt_part   *a   = dtxt_world_part(&w, "a");
	dtxt_part   *b   = dtxt_world_part(&w, "b");
	dtx_tls_opts svc = tls_of("service", "coordinator-ca.crt");
	dtx_tls_opts op  = tls_of("operator", "coordinator-ca.crt");
	dtx_client  *c, *oc;
	dtx_tx_info  items[10];
	unsigned     n;
	char         next[DTX_GID_MAX + 1];
	dtx_state    st;
	dtxt_log     l;

	start_secure_dtxd(url, opurl, "dtxd");
	tls_url(ua, a->url);
	tls_url(ub, b->url);
	start_part(a, ua, "service", NULL);
	start_part(b, ub, "service", NULL);
	wait_dtxd(url, &svc);

	CHECK_RV(dtx_client_open_tls(&c, url, &svc));
	commit_one(c, DTX_2PC, ua, "ok", ub, "ok", DTX_STATE_COMMITTED);
	commit_one(
	    c, DTX_2PC, ua, "ok", ub, "prepare=refuse", DTX_STATE_ABORTED);
	commit_one(c, DTX_SAGA, ua, "ok", ub, "ok", DTX_STATE_COMMITTED);
	commit_one(c, DTX_SAGA, ua, "ok", ub, "execute=refuse",
	    DTX_STATE_COMPENSATED);
	dtxt_log_load(&l, a->calllog);
	CHECK(dtxt_log_count(&l, DTXT_CALL, NULL, -1, "COMMIT", "OK") == 1 &&
	        dtxt_log_count(&l, DTXT_CALL, NULL, -1, "ABORT", "OK") == 1 &&
	        dtxt_log_count(&l, DTXT_CALL, NULL, -1, "EXECUTE", "OK") ==
	            2 &&
	        dtxt_log_count(&l, DTXT_CALL, NULL, -1, "COMPENSATE", "OK") ==
	            1,
	    "a did not see the four transactions over TLS");
	dtxt_log_fini(&l);

	// Clients may ask about anything but act on others' transactions
	// only through the operator listener.
	CHECK(dtx_client_list(c, 0, "", items, 10, &n, next) == DTX_EPERM,
	    "List was taken on the client listener");
	CHECK(dtx_client_abort(c, "some-gid", &st) == DTX_EPERM,
	    "Abort was taken on the client listener");
	CHECK(dtx_client_retry(c, "some-gid", &st) == DTX_EPERM,
	    "Retry was taken on the client listener");
	CHECK(dtx_client_settle(c, "some-gid", 1, "by hand", &st) == DTX_EPERM,
	    "Settle was taken on the client listener");
	expect_log(w.log, "List is an operator command");
	expect_log(w.log, "Settle is an operator command");
	CHECK_RV(dtx_client_open_tls(&oc, opurl, &op));
	CHECK_RV(dtx_client_list(oc, 0, "", items, 10, &n, next));
	CHECK(n == 4, "the operator listed %u transactions", n);
	CHECK(dtx_client_abort(oc, "unknown-gid", &st) == DTX_ENOTFOUND,
	    "the operator's Abort did not reach dtxd");
	CHECK(dtx_client_retry(oc, "unknown-gid", &st) == DTX_ENOTFOUND,
	    "the operator's Retry did not reach dtxd");
	CHECK(dtx_client_settle(oc, "unknown-gid", 1, "by hand", &st) ==
	        DTX_ENOTFOUND,
	    "the operator's Settle did not reach dtxd");
	dtx_client_close(oc);
	dtx_client_close(c);
}

Test(tls, the_barrier_and_the_resolver_work_over_tls)
{
	char         url[DTXT_URL_MAX], opurl[DTXT_URL_MAX];
	char         ua[DTXT_URL_MAX], ub[DTXT_URL_MAX];
	char         store[DTXT_PATH_MAX], asked[DTX_GID_MAX + 64];
	char         gid[DTX_GID_MAX + 1];
	dtxt_part   *a   = dtxt_world_part(&w, "a");
	dtxt_part   *b   = dtxt_world_part(&w, "b");
	dtx_tls_opts svc = tls_of("service", "coordinator-ca.crt");
	dtx_client  *c;
	dtx_tx      *tx;

	start_secure_dtxd(url, opurl, "dtxd");
	tls_url(ua, a->url);
	tls_url(ub, b->url);
	snprintf(store, sizeof(store), "%s/a.store", w.dir);
	const char *const extra[] = {"--store", store, "--barrier",
	    "--coordinator", url, "--resolve-after", "300", NULL};
	start_part(a, ua, "service", extra);
	start_part(b, ub, "service", NULL);
	wait_dtxd(url, &svc);
	CHECK_RV(dtx_client_open_tls(&c, url, &svc));

	// Through the barrier, over TLS.
	commit_one(c, DTX_2PC, ua, "ok", ub, "ok", DTX_STATE_COMMITTED);

	// b's prepare takes long: a's branch stays prepared and in doubt,
	// and a's resolver asks dtxd about it, over TLS, until it is
	// decided.
	CHECK_RV(dtx_tx_begin(&tx, c, DTX_2PC));
	CHECK_RV(dtx_tx_set_timeout_ms(tx, 60000));
	CHECK_RV(dtx_tx_set_call_timeout_ms(tx, 20000));
	CHECK_RV(dtx_tx_add(tx, ua, "op", "ok", 2));
	CHECK_RV(dtx_tx_add(tx, ub, "op", "prepare=sleep:8000", 18));
	CHECK_RV(dtx_tx_submit(tx));
	snprintf(gid, sizeof(gid), "%s", dtx_tx_gid(tx));
	dtx_tx_free(tx);
	snprintf(asked, sizeof(asked), "resolve %s: PREPARING", gid);
	CHECK(dtxt_wait_text(w.log, asked, 2, 15000) == 0,
	    "a's resolver did not ask dtxd over TLS");
	dtx_client_close(c);
}

// ---------------------------------------------------------------------------
// Client -> dtxd
// ---------------------------------------------------------------------------

// A client of url with o (NULL: plain) fails a request fast, with
// DTX_EAUTH and a message containing want.
static void
client_refused(const char *url, const dtx_tls_opts *o, const char *want)
{
	dtx_client *c;
	dtx_tx     *tx;
	dtx_state   st;
	int64_t     t0 = dtxi_mono_ms();

	CHECK_RV(open_client(&c, url, o));
	CHECK_RV(dtx_tx_attach(&tx, c, "g-1"));
	int     rv   = dtx_tx_status(tx, &st);
	int64_t took = dtxi_mono_ms() - t0;
	CHECK(rv == DTX_EAUTH, "status gave %s (%s), not DTX_EAUTH",
	    dtx_strerror(rv), dtx_tx_message(tx));
	CHECK(strstr(dtx_tx_message(tx), want) != NULL,
	    "message '%s' lacks '%s'", dtx_tx_message(tx), want);
	CHECK(took < FAIL_FAST_MS, "took %lld ms", (long long)took);
	// A second request fails at once, from what the link knows.
	t0 = dtxi_mono_ms();
	CHECK(dtx_tx_status(tx, &st) == DTX_EAUTH, "second request");
	CHECK(dtxi_mono_ms() - t0 < 500, "the second request waited");
	dtx_tx_free(tx);
	dtx_client_close(c);
}

// A client given a cluster's TLS URLs (dtx_client_open) passes over a
// node that is down and one whose handshake fails (here the operator
// listener, which takes only operator certificates), and when no node
// takes it, says what happened at each.
Test(tls, a_client_given_several_urls_passes_over_dead_and_refusing_nodes)
{
	char         url[DTXT_URL_MAX], opurl[DTXT_URL_MAX];
	char         dead[DTXT_URL_MAX], tcp[DTXT_URL_MAX];
	char         list[4 * DTXT_URL_MAX];
	char         ua[DTXT_URL_MAX], ub[DTXT_URL_MAX];
	dtxt_part   *a   = dtxt_world_part(&w, "a");
	dtxt_part   *b   = dtxt_world_part(&w, "b");
	dtx_tls_opts svc = tls_of("service", "coordinator-ca.crt");
	dtx_client  *c;
	dtx_tx      *tx;
	dtx_state    st;

	start_secure_dtxd(url, opurl, "dtxd");
	tls_url(ua, a->url);
	tls_url(ub, b->url);
	start_part(a, ua, "service", NULL);
	start_part(b, ub, "service", NULL);
	wait_dtxd(url, &svc);
	cr_assert_eq(dtxt_free_url(tcp, sizeof(tcp)), 0);
	tls_url(dead, tcp);

	snprintf(list, sizeof(list), "%s,%s,%s", dead, opurl, url);
	CHECK_RV(dtx_client_open_tls(&c, list, &svc));
	for (int i = 0; i < 3; i++) {
		commit_one(
		    c, DTX_2PC, ua, "ok", ub, "ok", DTX_STATE_COMMITTED);
	}
	dtx_client_close(c);

	snprintf(list, sizeof(list), "%s,%s", dead, opurl);
	CHECK_RV(dtx_client_open_tls(&c, list, &svc));
	CHECK_RV(dtx_client_set_timeout_ms(c, 3000));
	CHECK_RV(dtx_tx_attach(&tx, c, "some-gid"));
	int rv = dtx_tx_status(tx, &st);
	// The last node's error: the refusing one's or the dead one's.
	CHECK(rv == DTX_EAUTH || rv == DTX_EUNREACHABLE, "status: %s",
	    dtx_strerror(rv));
	CHECK(strstr(dtx_tx_message(tx), dead) != NULL &&
	        strstr(dtx_tx_message(tx), opurl) != NULL,
	    "the message does not name both nodes: %s", dtx_tx_message(tx));
	dtx_tx_free(tx);
	dtx_client_close(c);
}

Test(tls, a_client_is_told_why_dtxd_refuses_it_and_dtxd_logs_it)
{
	char url[DTXT_URL_MAX], opurl[DTXT_URL_MAX], plain[DTXT_URL_MAX];
	dtx_tls_opts svc     = tls_of("service", "coordinator-ca.crt");
	dtx_tls_opts nocert  = tls_of(NULL, "coordinator-ca.crt");
	dtx_tls_opts rogue   = tls_of("rogue", "coordinator-ca.crt");
	dtx_tls_opts expd    = tls_of("expired", "coordinator-ca.crt");
	dtx_tls_opts wrongca = tls_of("service", "services-ca.crt");
	dtx_client  *c;
	char         out[4096];

	start_secure_dtxd(url, opurl, "dtxd");
	wait_dtxd(url, &svc);

	client_refused(
	    url, &nocert, "it requires a certificate and none was given");
	client_refused(url, &rogue, "it refused our certificate");
	client_refused(
	    url, &wrongca, "its certificate is not signed by the CA");
	snprintf(plain, sizeof(plain), "%s", w.url); // tcp:// at the TLS port
	client_refused(plain, NULL, "most likely a TLS listener");
	// An expired certificate is refused where it is loaded, by name and
	// date; presented anyway (dtx-tlsfake uses nng alone), dtxd refuses
	// the handshake.
	CHECK(dtx_client_open_tls(&c, url, &expd) == DTX_EINVAL,
	    "an expired certificate was loaded");
	const char *const fake[] = {"--dial", url, "--cert", expd.cert_file,
	    "--key", expd.key_file, "--ca", svc.ca_file, NULL};
	CHECK(
	    run_tool(env_bin("DTX_TLSFAKE_BIN"), fake, out, sizeof(out)) == 1,
	    "dtxd took an expired certificate: %s", out);
	expect_log(w.log, "dtxd listener tls+tcp://");
	expect_log(w.log,
	    "TLS handshake(s): a peer without a certificate "
	    "signed by the CA");
}

Test(tls, a_client_is_told_of_a_wrong_name_an_expired_server_and_plain_ports)
{
	char         url[DTXT_URL_MAX], opurl[DTXT_URL_MAX];
	char         fake_tcp[DTXT_URL_MAX], fake[DTXT_URL_MAX];
	dtx_tls_opts svc         = tls_of("service", "coordinator-ca.crt");
	dtx_tls_opts by_services = tls_of("service", "services-ca.crt");

	// dtxd's certificate is for wrong.example, not 127.0.0.1.
	start_secure_dtxd(url, opurl, "dtxd-wrongname");
	CHECK(dtxt_wait_tcp(w.dtxd, w.url, 10000) == 0, "dtxd did not start");
	client_refused(url, &svc,
	    "its certificate is not issued for the name '127.0.0.1'");

	// A server whose certificate (of a CA the client trusts) expired.
	CHECK(dtxt_free_url(fake_tcp, sizeof(fake_tcp)) == 0, "no port");
	tls_url(fake, fake_tcp);
	char log[DTXT_PATH_MAX];
	snprintf(log, sizeof(log), "%s/fake.log", w.dir);
	const char *const args[] = {env_bin("DTX_TLSFAKE_BIN"), "--listen",
	    fake, "--cert", cert("expired.crt"), "--key", cert("expired.key"),
	    NULL};
	dtxt_proc *p = dtxt_spawn("fake", (char *const *)args, NULL, log);
	CHECK(p != NULL && dtxt_wait_tcp(p, fake_tcp, 5000) == 0,
	    "dtx-tlsfake did not start");
	client_refused(fake, &by_services, "or has expired");

	// TLS at a plain port (the fake speaks plain SP there).
	dtxt_kill(p);
	const char *const plainargs[] = {
	    env_bin("DTX_TLSFAKE_BIN"), "--listen", fake_tcp, NULL};
	p = dtxt_spawn("fake", (char *const *)plainargs, NULL, log);
	CHECK(p != NULL && dtxt_wait_tcp(p, fake_tcp, 5000) == 0,
	    "dtx-tlsfake did not start");
	client_refused(fake, &svc, "it is a plain tcp:// listener, not TLS");
}

// ---------------------------------------------------------------------------
// dtxd -> participant
// ---------------------------------------------------------------------------

// Submits a 2PC with one branch at endpoint over a client with o, and
// checks that the branch's call fails fast with a message containing want.
static void
branch_refused(
    const char *url, const dtx_tls_opts *o, const char *ep, const char *want)
{
	dtx_client       *c;
	dtx_tx           *tx;
	dtx_branch_result r;
	int64_t           t0 = dtxi_mono_ms();

	CHECK_RV(open_client(&c, url, o));
	CHECK_RV(dtx_tx_begin(&tx, c, DTX_2PC));
	CHECK_RV(dtx_tx_set_timeout_ms(tx, 60000));
	CHECK_RV(dtx_tx_set_call_timeout_ms(tx, 30000));
	CHECK_RV(dtx_tx_add(tx, ep, "op", "ok", 2));
	CHECK_RV(dtx_tx_submit(tx));
	CHECK(dtxt_wait_failed_call(tx, 0, 10000) == 0,
	    "the call to %s did not fail", ep);
	CHECK_RV(dtx_tx_branch_result(tx, 0, &r));
	CHECK(r.message != NULL && strstr(r.message, want) != NULL,
	    "branch message '%s' lacks '%s'", r.message ? r.message : "",
	    want);
	// The call timeout is 30 s: the failure did not wait for it.
	CHECK(dtxi_mono_ms() - t0 < FAIL_FAST_MS + 2000, "took %lld ms",
	    (long long)(dtxi_mono_ms() - t0));
	dtx_tx_free(tx);
	dtx_client_close(c);
}

Test(tls, dtxd_says_why_a_participant_handshake_fails)
{
	char         url[DTXT_URL_MAX], opurl[DTXT_URL_MAX], ep[DTXT_URL_MAX];
	dtx_tls_opts svc   = tls_of("service", "coordinator-ca.crt");
	dtxt_part   *rogue = dtxt_world_part(&w, "rogue");
	dtxt_part   *wrong = dtxt_world_part(&w, "wrong");
	dtxt_part   *tlsp  = dtxt_world_part(&w, "tlsp");
	dtxt_part   *plain = dtxt_world_part(&w, "plain");
	dtxt_part   *expd  = dtxt_world_part(&w, "expired");
	dtxt_exit    how;

	start_secure_dtxd(url, opurl, "dtxd");
	wait_dtxd(url, &svc);

	// Unknown CA: the participant's certificate is not the services CA's.
	tls_url(ep, rogue->url);
	start_part(rogue, ep, "rogue", NULL);
	branch_refused(
	    url, &svc, ep, "its certificate is not signed by the CA");
	// A certificate for another name.
	tls_url(ep, wrong->url);
	start_part(wrong, ep, "wrongname", NULL);
	branch_refused(url, &svc, ep,
	    "its certificate is not issued for the name '127.0.0.1'");
	// plain tcp:// at a TLS participant, and TLS at a plain one.
	tls_url(ep, tlsp->url);
	start_part(tlsp, ep, "service", NULL);
	branch_refused(url, &svc, tlsp->url, "most likely a TLS listener");
	start_part(plain, plain->url, NULL, NULL);
	tls_url(ep, plain->url);
	branch_refused(
	    url, &svc, ep, "it is a plain tcp:// listener, not TLS");
	// Expired: a participant refuses to start with it; one that serves it
	// anyway (nng alone) is refused by dtxd.
	tls_url(ep, expd->url);
	const char *const pargs[] = {dtxt_testpart_bin(), "--listen", ep,
	    "--log", expd->calllog, "--tls-cert", cert("expired.crt"),
	    "--tls-key", cert("expired.key"), "--tls-ca",
	    cert("coordinator-ca.crt"), NULL};
	expd->proc =
	    dtxt_spawn("expired", (char *const *)pargs, NULL, expd->outlog);
	CHECK(expd->proc != NULL && dtxt_wait(expd->proc, 10000, &how) == 0 &&
	        how.exited && how.code == 1,
	    "a participant started with an expired certificate");
	expect_log(expd->outlog, "expired on 2020-01-31");
	const char *const fargs[] = {env_bin("DTX_TLSFAKE_BIN"), "--listen",
	    ep, "--cert", cert("expired.crt"), "--key", cert("expired.key"),
	    NULL};
	expd->proc =
	    dtxt_spawn("fake", (char *const *)fargs, NULL, expd->outlog);
	CHECK(expd->proc != NULL &&
	        dtxt_wait_tcp(expd->proc, expd->url, 5000) == 0,
	    "dtx-tlsfake did not start");
	branch_refused(url, &svc, ep, "or has expired");
	// dtxd logs each, naming the participant.
	expect_log(w.log, "TLS handshake with participant at tls+tcp://");
}

Test(tls, a_participant_takes_calls_only_from_the_coordinator_ca)
{
	char         url[DTXT_URL_MAX], ep[DTXT_URL_MAX], out[4096];
	char         op_tcp[DTXT_URL_MAX], opurl[DTXT_URL_MAX];
	dtx_tls_opts svc = tls_of("service", "coordinator-ca.crt");
	dtxt_part   *a   = dtxt_world_part(&w, "a");
	dtxt_log     l;

	tls_url(ep, a->url);
	start_part(a, ep, "service", NULL);
	// A caller with a client (services CA) certificate is refused at the
	// handshake; the call never runs.
	const char *const as_client[] = {"--dial", ep, "--cert",
	    cert("service.crt"), "--key", cert("service.key"), "--ca",
	    cert("services-ca.crt"), "--call", NULL};
	// nng 1.5.2 counts a listener's failed handshakes only while its
	// listener waits for the next one, not in the 100 ms it pauses after
	// a connection that hung up (the readiness probe's): try again until
	// the participant has logged one.
	for (int i = 0;; i++) {
		CHECK(run_tool(env_bin("DTX_TLSFAKE_BIN"), as_client, out,
		          sizeof(out)) == 1 &&
		        strstr(out, "dial: ") != NULL,
		    "a services-CA caller got through: %s", out);
		if (dtxt_wait_text(a->outlog, "refused", 1, 2500) == 0) {
			break;
		}
		CHECK(i < 5, "the participant does not log refusals");
	}
	expect_log(a->outlog, "participant listener tls+tcp://");
	expect_log(a->outlog, "signed by the CA");
	// A caller with the coordinator's certificate gets its call run.
	const char *const as_dtxd[] = {"--dial", ep, "--cert",
	    cert("dtxd.crt"), "--key", cert("dtxd.key"), "--ca",
	    cert("services-ca.crt"), "--call", NULL};
	CHECK(run_tool(
	          env_bin("DTX_TLSFAKE_BIN"), as_dtxd, out, sizeof(out)) == 0,
	    "the coordinator's certificate was refused: %s", out);
	dtxt_log_load(&l, a->calllog);
	CHECK(
	    dtxt_log_count(&l, DTXT_CALL, "fake-1", -1, "PREPARE", NULL) == 1,
	    "the call did not run exactly once");
	dtxt_log_fini(&l);

	// A dtxd whose certificate toward participants is a services-CA one
	// is refused too, and says so.
	tls_url(url, w.url);
	CHECK(dtxt_free_url(op_tcp, sizeof(op_tcp)) == 0, "no port");
	tls_url(opurl, op_tcp);
	const char *const args[] = {"--tls-cert", cert("dtxd.crt"),
	    "--tls-key", cert("dtxd.key"), "--tls-ca", cert("services-ca.crt"),
	    "--participant-tls-ca", cert("services-ca.crt"),
	    "--participant-tls-cert", cert("service.crt"),
	    "--participant-tls-key", cert("service.key"), NULL};
	spawn_dtxd(url, args);
	wait_dtxd(url, &svc);
	branch_refused(
	    url, &svc, ep, "takes calls only from the coordinator CA");
	// dtxd without any certificate toward participants.
	dtxt_kill(w.dtxd);
	const char *const plainlisten[] = {
	    "--participant-tls-ca", cert("services-ca.crt"), NULL};
	spawn_dtxd(w.url, plainlisten);
	wait_dtxd(w.url, NULL);
	branch_refused(
	    w.url, NULL, ep, "it requires a certificate and none was given");
}

// ---------------------------------------------------------------------------
// Resolver -> dtxd
// ---------------------------------------------------------------------------

// dtxd (args) and participant a in doubt, whose resolver dials coord with
// the participant's usual settings; a's log must say want.
static void
resolver_refused(const char *listen, const char *const dtxd_args[],
    const char *coord, const dtx_tls_opts *o, const char *want)
{
	char        ua[DTXT_URL_MAX], ub[DTXT_URL_MAX], store[DTXT_PATH_MAX];
	dtxt_part  *a = dtxt_world_part(&w, "a");
	dtxt_part  *b = dtxt_world_part(&w, "b");
	dtx_client *c;
	dtx_tx     *tx;

	spawn_dtxd(listen, dtxd_args);
	wait_dtxd(listen, o);
	tls_url(ua, a->url);
	tls_url(ub, b->url);
	snprintf(store, sizeof(store), "%s/%s.store", w.dir, a->name);
	const char *const extra[] = {"--store", store, "--barrier",
	    "--coordinator", coord, "--resolve-after", "200", NULL};
	start_part(a, ua, "service", extra);
	start_part(b, ub, "service", NULL);
	CHECK_RV(open_client(&c, listen, o));
	CHECK_RV(dtx_tx_begin(&tx, c, DTX_2PC));
	CHECK_RV(dtx_tx_set_timeout_ms(tx, 60000));
	CHECK_RV(dtx_tx_set_call_timeout_ms(tx, 20000));
	CHECK_RV(dtx_tx_add(tx, ua, "op", "ok", 2));
	CHECK_RV(dtx_tx_add(tx, ub, "op", "prepare=sleep:6000", 18));
	CHECK_RV(dtx_tx_submit(tx));
	dtx_tx_free(tx);
	dtx_client_close(c);
	CHECK(dtxt_wait_log(
	          a->calllog, DTXT_CALL, NULL, 0, "PREPARE", "OK", 10000) == 0,
	    "a never prepared");
	expect_log(a->outlog, want);
	dtxt_kill(a->proc);
	dtxt_kill(b->proc);
	dtxt_kill(w.dtxd);
	w.nparts = 0;
	CHECK(dtxt_rmtree(w.data) == 0, "cannot empty the data directory");
}

Test(tls, a_resolver_is_told_why_dtxd_refuses_it)
{
	char         url[DTXT_URL_MAX], plain_at_tls[DTXT_URL_MAX];
	dtx_tls_opts svc = tls_of("service", "coordinator-ca.crt");
	const char  *dt = cert("dtxd.crt"), *dk = cert("dtxd.key");
	const char  *sca = cert("services-ca.crt");

	tls_url(url, w.url);
	// dtxd's client listener takes only the operator CA: the resolver's
	// services-CA certificate is refused.
	const char *const opca[] = {"--tls-cert", dt, "--tls-key", dk,
	    "--tls-ca", cert("operator-ca.crt"), "--participant-tls-ca", sca,
	    NULL};
	dtx_tls_opts      op     = tls_of("operator", "coordinator-ca.crt");
	resolver_refused(url, opca, url, &op, "it refused our certificate");
	// dtxd's certificate is for another name, or of an unknown CA.
	const char *const wrong[] = {"--tls-cert", cert("dtxd-wrongname.crt"),
	    "--tls-key", cert("dtxd-wrongname.key"), "--tls-ca", sca,
	    "--participant-tls-ca", sca, "--participant-tls-cert", dt,
	    "--participant-tls-key", dk, NULL};
	dtx_tls_opts      wn      = svc;
	wn.server_name            = "wrong.example";
	resolver_refused(url, wrong, url, &wn, "is not issued for the name");
	const char *const rogue[] = {"--tls-cert", cert("rogue.crt"),
	    "--tls-key", cert("rogue.key"), "--tls-ca", sca,
	    "--participant-tls-ca", sca, "--participant-tls-cert", dt,
	    "--participant-tls-key", dk, NULL};
	dtx_tls_opts      rg      = tls_of("service", "rogue-ca.crt");
	resolver_refused(url, rogue, url, &rg, "is not signed by the CA");
	// Plain tcp:// at dtxd's TLS port, and TLS at a plain one.
	const char *const secure[] = {"--tls-cert", dt, "--tls-key", dk,
	    "--tls-ca", sca, "--participant-tls-ca", sca, NULL};
	snprintf(plain_at_tls, sizeof(plain_at_tls), "%s", w.url);
	resolver_refused(
	    url, secure, plain_at_tls, &svc, "most likely a TLS listener");
	const char *const plain[] = {"--tls-cert", dt, "--tls-key", dk,
	    "--participant-tls-ca", sca, NULL};
	resolver_refused(
	    w.url, plain, url, NULL, "it is a plain tcp:// listener, not TLS");
}

// ---------------------------------------------------------------------------
// dtxctl -> dtxd
// ---------------------------------------------------------------------------

// Runs dtxctl with args; checks its status and that its output has want.
static void
dtxctl(int status, const char *want, const char *const args[])
{
	char out[8192];
	int  rv = run_tool(env_bin("DTXCTL_BIN"), args, out, sizeof(out));

	CHECK(rv == status && strstr(out, want) != NULL,
	    "dtxctl exited %d (want %d) without '%s':\n%s", rv, status, want,
	    out);
}

// The value of dtxd's metric name{labels} scraped from http, or -1.
static double
scrape(const char *http, const char *name, const char *labels)
{
	dtxt_http_res r;
	dtxt_prom     p = {0};
	char          why[256];
	double        v = -1;

	if (dtxt_http_get(http, "/metrics", 5000, &r) != 0) {
		return -1;
	}
	if (r.status == 200 &&
	    dtxt_prom_parse(r.body, &p, why, sizeof(why)) == 0) {
		v = dtxt_prom_get(&p, name, labels);
	}
	dtxt_prom_fini(&p);
	dtxt_http_res_fini(&r);
	return v;
}

Test(tls, dtxctl_works_on_the_operator_listener_and_is_told_why_otherwise)
{
	char        op_tcp[DTXT_URL_MAX], opurl[DTXT_URL_MAX];
	char        tls_at_plain[DTXT_URL_MAX], http[DTXT_URL_MAX];
	const char *oc = cert("operator.crt"), *ok = cert("operator.key");
	const char *cca = cert("coordinator-ca.crt");

	// Clients on plain tcp:// (local use), operators on TLS.
	CHECK(dtxt_free_url(op_tcp, sizeof(op_tcp)) == 0, "no port");
	CHECK(dtxt_free_http_url(http, sizeof(http)) == 0, "no port");
	tls_url(opurl, op_tcp);
	const char *const args[] = {"--tls-cert", cert("dtxd.crt"),
	    "--tls-key", cert("dtxd.key"), "--operator-listen", opurl,
	    "--operator-tls-ca", cert("operator-ca.crt"), "--http-listen",
	    http, NULL};
	spawn_dtxd(w.url, args);
	wait_dtxd(w.url, NULL);

	const char *const good[] = {"--coordinator", opurl, "--tls-cert", oc,
	    "--tls-key", ok, "--tls-ca", cca, "list", NULL};
	dtxctl(0, "0 transactions", good);
	// A service (not operator) certificate, no certificate, a CA that
	// did not sign dtxd, another name, an expired certificate.
	const char *const svc[] = {"--coordinator", opurl, "--tls-cert",
	    cert("service.crt"), "--tls-key", cert("service.key"), "--tls-ca",
	    cca, "list", NULL};
	dtxctl(1, "it refused our certificate", svc);
	const char *const none[] = {
	    "--coordinator", opurl, "--tls-ca", cca, "list", NULL};
	dtxctl(1, "it requires a certificate and none was given", none);
	const char *const ca[] = {"--coordinator", opurl, "--tls-cert", oc,
	    "--tls-key", ok, "--tls-ca", cert("operator-ca.crt"), "list",
	    NULL};
	dtxctl(1, "is not signed by the CA", ca);
	const char *const name[] = {"--coordinator", opurl, "--tls-cert", oc,
	    "--tls-key", ok, "--tls-ca", cca, "--tls-server-name",
	    "dtxd.example", "list", NULL};
	dtxctl(1, "is not issued for the name 'dtxd.example'", name);
	const char *const exp[] = {"--coordinator", opurl, "--tls-cert",
	    cert("expired.crt"), "--tls-key", cert("expired.key"), "--tls-ca",
	    cca, "list", NULL};
	dtxctl(1, "expired on 2020-01-31", exp);
	// plain at the TLS operator port; TLS at the plain client port.
	const char *const plain[] = {"--coordinator", op_tcp, "list", NULL};
	dtxctl(1, "most likely a TLS listener", plain);
	tls_url(tls_at_plain, w.url);
	const char *const tls[] = {"--coordinator", tls_at_plain, "--tls-cert",
	    oc, "--tls-key", ok, "--tls-ca", cca, "stats", NULL};
	dtxctl(1, "it is a plain tcp:// listener, not TLS", tls);
	// Operator commands on the client listener, once an operator
	// listener exists.
	const char *const wrongdoor[] = {"--coordinator", w.url, "list", NULL};
	dtxctl(1, "not permitted on this listener", wrongdoor);
	const char *const stats[] = {"--coordinator", w.url, "stats", NULL};
	dtxctl(0, "active 0", stats);
	expect_log(w.log, "dtxd operator listener tls+tcp://");
	// The operator listener's refusals are counted by role (the watch
	// looks every 2 s), the client listener (plain) refused none.
	const char *opl = "listener=\"operator\"";
	int64_t     end = dtxi_mono_ms() + 10000;
	while (scrape(http, "dtxd_tls_handshakes_refused_total", opl) < 1) {
		CHECK(dtxi_mono_ms() < end,
		    "no refused handshake counted on the operator listener");
		dtxt_sleep_ms(50);
	}
	CHECK(scrape(http, "dtxd_tls_handshakes_refused_total",
	          "listener=\"client\"") == 0,
	    "the plain client listener counted refused handshakes");
}

// ---------------------------------------------------------------------------
// Garbage at TLS listeners
// ---------------------------------------------------------------------------

// Connects to the TCP port of url and writes len bytes of buf (0: none).
static void
raw_send(const char *url, const void *buf, size_t len)
{
	struct sockaddr_in sa   = {.sin_family = AF_INET};
	int                fd   = socket(AF_INET, SOCK_STREAM, 0);
	const char        *port = strrchr(url, ':') + 1;

	cr_assert(fd >= 0);
	sa.sin_port        = htons((uint16_t)atoi(port));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		(void)n;
	}
	close(fd);
}

// Completes a TLS handshake with url using leaf's certificate, then sends
// an SP header and frames of garbage.
static void
tls_garbage(const char *url, const char *leaf, unsigned seed)
{
	nng_stream_dialer *d;
	nng_stream        *s;
	nng_aio           *aio;
	nng_tls_config    *c;
	char              *pem[3];
	const char        *files[3];
	char               cf[64], kf[64];
	unsigned char      buf[600];
	nng_iov            iov;

	snprintf(cf, sizeof(cf), "%s.crt", leaf);
	snprintf(kf, sizeof(kf), "%s.key", leaf);
	files[0] = cert(cf);
	files[1] = cert(kf);
	files[2] = cert("coordinator-ca.crt");
	for (int i = 0; i < 3; i++) {
		pem[i] = dtxt_read_file(files[i]);
	}
	cr_assert_eq(nng_tls_config_alloc(&c, NNG_TLS_MODE_CLIENT), 0);
	cr_assert_eq(nng_tls_config_own_cert(c, pem[0], pem[1], NULL), 0);
	nng_tls_config_auth_mode(c, NNG_TLS_AUTH_MODE_NONE);
	cr_assert_eq(nng_stream_dialer_alloc(&d, url), 0);
	cr_assert_eq(nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, c), 0);
	cr_assert_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_aio_set_timeout(aio, 3000);
	nng_stream_dialer_dial(d, aio);
	nng_aio_wait(aio);
	cr_assert_eq(
	    nng_aio_result(aio), 0, "%s", nng_strerror(nng_aio_result(aio)));
	s = nng_aio_get_output(aio, 0);
	srand(seed);
	for (int round = 0; round < 20; round++) {
		size_t n = 8 + (size_t)(rand() % (int)(sizeof(buf) - 8));
		for (size_t i = 0; i < n; i++) {
			buf[i] = (unsigned char)rand();
		}
		if (round == 0) { // a valid REQ header, then nonsense frames
			memcpy(buf, "\0SP\0\0\x30\0\0", 8);
		}
		iov.iov_buf = buf;
		iov.iov_len = n;
		nng_aio_set_iov(aio, 1, &iov);
		nng_stream_send(s, aio);
		nng_aio_wait(aio);
		if (nng_aio_result(aio) != 0) {
			break; // the server hung up on us, as it may
		}
	}
	nng_stream_free(s);
	nng_aio_free(aio);
	nng_stream_dialer_free(d);
	nng_tls_config_free(c);
	for (int i = 0; i < 3; i++) {
		free(pem[i]);
	}
}

Test(tls, garbage_at_tls_listeners_leaves_them_serving)
{
	char          url[DTXT_URL_MAX], opurl[DTXT_URL_MAX];
	char          ua[DTXT_URL_MAX], ub[DTXT_URL_MAX];
	dtxt_part    *a   = dtxt_world_part(&w, "a");
	dtxt_part    *b   = dtxt_world_part(&w, "b");
	dtx_tls_opts  svc = tls_of("service", "coordinator-ca.crt");
	unsigned char junk[4096];
	dtx_client   *c;
	// The start of a TLS 1.2 ClientHello, then whatever.
	static const unsigned char hello[] = {
	    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03};

	start_secure_dtxd(url, opurl, "dtxd");
	tls_url(ua, a->url);
	tls_url(ub, b->url);
	start_part(a, ua, "service", NULL);
	start_part(b, ub, "service", NULL);
	wait_dtxd(url, &svc);

	srand(7);
	const char *targets[] = {url, opurl, ua};
	for (int round = 0; round < 150; round++) {
		const char *t   = targets[round % 3];
		size_t      len = (size_t)(rand() % (int)sizeof(junk));
		for (size_t i = 0; i < len; i++) {
			junk[i] = (unsigned char)rand();
		}
		switch (round % 5) {
		case 0: // connect and hang up
			len = 0;
			break;
		case 1: // a ClientHello cut short, then noise
			memcpy(junk, hello, sizeof(hello));
			len = len < sizeof(hello) ? sizeof(hello) : len;
			break;
		case 2: // plaintext SP at a TLS port
			memcpy(junk, "\0SP\0\0\x30\0\0", 8);
			len = len < 8 ? 8 : len;
			break;
		default:
			break;
		}
		raw_send(t, junk, len);
	}
	// Past the handshake (with certificates each server accepts), frames
	// that do not decode.
	tls_garbage(url, "service", 1);
	tls_garbage(ua, "dtxd", 2);

	CHECK(dtxt_alive(w.dtxd) && dtxt_alive(a->proc), "a listener died");
	CHECK_RV(dtx_client_open_tls(&c, url, &svc));
	commit_one(c, DTX_2PC, ua, "ok", ub, "ok", DTX_STATE_COMMITTED);
	commit_one(c, DTX_SAGA, ua, "ok", ub, "ok", DTX_STATE_COMMITTED);
	dtx_client_close(c);
	expect_log(w.log, "before the handshake ended");
}

// ---------------------------------------------------------------------------
// dtxd's TLS flags
// ---------------------------------------------------------------------------

// dtxd with args stops at once, exit 1, saying want.
static void
dtxd_refuses(const char *want, const char *const args[])
{
	char        out[4096];
	const char *argv[24];
	int         n = 0;

	argv[n++] = "--data-dir";
	argv[n++] = w.data;
	for (int i = 0; args[i] != NULL && n < 23; i++) {
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	CHECK(run_tool(dtxt_dtxd_bin(), argv, out, sizeof(out)) == 1 &&
	        strstr(out, want) != NULL,
	    "dtxd did not refuse with '%s':\n%s", want, out);
}

Test(tls, dtxd_refuses_tls_flags_that_do_not_fit_and_files_that_do_not_do)
{
	char        url[DTXT_URL_MAX];
	const char *dc = cert("dtxd.crt"), *dk = cert("dtxd.key");
	const char *sca = cert("services-ca.crt");

	tls_url(url, w.url);
	const char *const ca_plain[] = {"--tls-ca", sca, NULL};
	dtxd_refuses("--tls-ca is for a tls+tcp:// --listen", ca_plain);
	const char *const unused[] = {"--tls-cert", dc, "--tls-key", dk, NULL};
	dtxd_refuses("--tls-cert and --tls-key are for", unused);
	const char *const opca[] = {"--operator-tls-ca", sca, NULL};
	dtxd_refuses("--operator-tls-ca is for a tls+tcp://", opca);
	const char *const nocert[] = {"--listen", url, "--tls-ca", sca, NULL};
	dtxd_refuses("a TLS listener needs a certificate", nocert);
	const char *const noca[] = {
	    "--listen", url, "--tls-cert", dc, "--tls-key", dk, NULL};
	dtxd_refuses("TLS in dtx is mutual", noca);
	const char *const expired[] = {"--listen", url, "--tls-cert",
	    cert("expired.crt"), "--tls-key", cert("expired.key"), "--tls-ca",
	    sca, NULL};
	dtxd_refuses("expired.crt expired on 2020-01-31", expired);
	const char *const missing[] = {"--listen", url, "--tls-cert",
	    cert("nothing.crt"), "--tls-key", dk, "--tls-ca", sca, NULL};
	dtxd_refuses("nothing.crt: No such file", missing);
	const char *const partkey[] = {
	    "--participant-tls-cert", dc, "--participant-tls-key", dk, NULL};
	dtxd_refuses("need --participant-tls-ca", partkey);
}
