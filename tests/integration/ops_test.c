// SPDX-License-Identifier: MIT
//
// dtx.integration.ops: running dtxd as an operator does, with real
// processes. /metrics, /healthz, /readyz and /api/txs are scraped over real
// HTTP and the Prometheus text is parsed and checked; a STUCK saga is
// found with dtxctl (list --stuck, --json), re-driven (retry) and settled by
// hand (settle --note), each step checked in dtxctl's exit status and JSON,
// in the status, in the metrics and in dtxd's log lines, which are parsed
// (logfmt, and JSON with --log-format json) for each event's level and
// fields; a traceparent set by the client reaches every branch call and
// every log line about its transaction; recovery logs its start and end
// with counts.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "harness.h"
#include "httpc.h"
#include "logparse.h"
#include "prom.h"
#include "world_suite.h"

TestSuite(ops, .init = world_setup, .fini = world_teardown, .timeout = 90);

#define TRACEPARENT "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TRACE_ID    "4bf92f3577b34da6a3ce929d0e0e4736"

static char http_url[64];

static void
start_dtxd(const char *stuck_after, const char *log_format)
{
	dtxt_dtxd_opts o = {0};
	size_t         n = 0;

	CHECK(dtxt_free_http_url(http_url, sizeof(http_url)) == 0, "no port");
	// Short enough that a stuck saga's commit comes back decided soon.
	o.timeout_ms = 2000;
	o.extra[n++] = "--http-listen";
	o.extra[n++] = http_url;
	if (stuck_after != NULL) {
		o.extra[n++] = "--stuck-after";
		o.extra[n++] = stuck_after;
	}
	if (log_format != NULL) {
		o.extra[n++] = "--log-format";
		o.extra[n++] = log_format;
	}
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
}

static dtxt_part *
part(const char *name)
{
	dtxt_part *p = dtxt_world_part(&w, name);

	CHECK(p != NULL && dtxt_part_start(p) == 0, "%s did not start", name);
	return p;
}

static dtxt_http_res
get(const char *path)
{
	dtxt_http_res r;
	int           rv = dtxt_http_get(http_url, path, 5000, &r);

	CHECK(rv == 0, "GET %s%s: %s", http_url, path, strerror(rv));
	return r;
}

// Parses /metrics (which must be well-formed Prometheus text).
static void
scrape(dtxt_prom *p)
{
	dtxt_http_res r = get("/metrics");
	char          why[256];

	CHECK(r.status == 200, "/metrics: %d", r.status);
	CHECK(strstr(r.ctype, "text/plain") != NULL &&
	        strstr(r.ctype, "version=0.0.4") != NULL,
	    "/metrics Content-Type %s", r.ctype);
	CHECK(dtxt_prom_parse(r.body, p, why, sizeof(why)) == 0,
	    "/metrics is not valid Prometheus text: %s\n%s", why, r.body);
	dtxt_http_res_fini(&r);
}

// Runs dtxctl with args (NULL-terminated) against w's dtxd; returns its exit
// status and its output (stdout and stderr) in out (free() it).
static int
ctl(char **out, const char *const *args)
{
	const char *bin = getenv("DTXCTL_BIN");
	char       *argv[16];
	char        log[DTXT_PATH_MAX + 32];
	static int  seq;
	size_t      n = 0;
	dtxt_proc  *p;
	dtxt_exit   how;

	CHECK(bin != NULL, "DTXCTL_BIN is not set (run the suite via ctest)");
	argv[n++] = (char *)bin;
	argv[n++] = "--coordinator";
	argv[n++] = w.url;
	for (size_t i = 0; args[i] != NULL && n < 15; i++) {
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	snprintf(log, sizeof(log), "%s/dtxctl-%d.out", w.dir, seq++);
	p = dtxt_spawn("dtxctl", argv, NULL, log);
	CHECK(p != NULL && dtxt_wait(p, 20000, &how) == 0, "dtxctl hung");
	*out = dtxt_read_file(log);
	CHECK(how.exited, "dtxctl died of signal %d:\n%s", how.signo, *out);
	return how.code;
}

// Runs dtxctl and checks its exit status; returns its output.
static char *
ctl_expect(int want, const char *const *args)
{
	char *out;
	int   code = ctl(&out, args);

	CHECK(code == want, "dtxctl %s %s: exit %d, expected %d:\n%s", args[0],
	    args[1] != NULL ? args[1] : "", code, want, out);
	return out;
}

// How many lines of dtxd's log have event and the given fields.
static size_t
events(const char *event, const char *const *match, dtxt_logline *first)
{
	return dtxt_log_events(w.log, event, match, first, NULL);
}

typedef struct ev_cond {
	const char        *event;
	const char *const *match;
} ev_cond;

static int
has_event(void *arg)
{
	ev_cond *c = arg;
	return events(c->event, c->match, NULL) > 0;
}

static void
wait_event(const char *event, const char *const *match)
{
	ev_cond c = {event, match};
	CHECK(dtxt_wait_until(has_event, &c, 20, 15000) == 0,
	    "no %s line in dtxd's log", event);
}

Test(ops, http_serves_metrics_health_and_readiness)
{
	dtxt_prom     p;
	dtxt_http_res r;
	dtx_tx       *tx;
	dtx_state     st;

	start_dtxd(NULL, NULL);
	dtxt_part *a = part("a");

	r = get("/healthz");
	CHECK(r.status == 200 && strcmp(r.body, "ok\n") == 0, "/healthz %d %s",
	    r.status, r.body);
	dtxt_http_res_fini(&r);
	r = get("/readyz");
	CHECK(r.status == 200 && strcmp(r.body, "ready\n") == 0,
	    "/readyz %d %s", r.status, r.body);
	dtxt_http_res_fini(&r);
	r = get("/no-such-page");
	CHECK(r.status == 404, "unknown path answered %d", r.status);
	dtxt_http_res_fini(&r);

	// One of each: a committed 2PC, an aborted one, a committed saga.
	const char *payloads[] = {"", "prepare=refuse", ""};
	dtx_mode    modes[]    = {DTX_2PC, DTX_2PC, DTX_SAGA};
	for (int i = 0; i < 3; i++) {
		CHECK_RV(dtx_tx_begin(&tx, w.client, modes[i]));
		CHECK_RV(dtx_tx_add(
		    tx, a->url, "op", payloads[i], strlen(payloads[i])));
		CHECK_RV(dtx_tx_commit(tx, &st));
		dtx_tx_free(tx);
	}

	scrape(&p);
	CHECK(dtxt_prom_get(
	          &p, "dtxd_transactions_started_total", "mode=\"2pc\"") == 2,
	    "2pc started");
	CHECK(dtxt_prom_get(
	          &p, "dtxd_transactions_started_total", "mode=\"saga\"") == 1,
	    "saga started");
	CHECK(dtxt_prom_get(&p, "dtxd_transactions_finished_total",
	          "mode=\"2pc\",outcome=\"committed\"") == 1,
	    "2pc committed");
	CHECK(dtxt_prom_get(&p, "dtxd_transactions_finished_total",
	          "mode=\"2pc\",outcome=\"aborted\"") == 1,
	    "2pc aborted");
	CHECK(dtxt_prom_get(&p, "dtxd_transactions_finished_total",
	          "mode=\"saga\",outcome=\"committed\"") == 1,
	    "saga committed");
	CHECK(dtxt_prom_get(&p, "dtxd_transaction_duration_seconds_count",
	          "mode=\"2pc\"") == 2,
	    "2pc durations");
	CHECK(dtxt_prom_get(&p, "dtxd_branch_calls_total",
	          "phase=\"prepare\",result=\"refused\"") == 1,
	    "refused prepare");
	CHECK(dtxt_prom_get(&p, "dtxd_branch_calls_total",
	          "phase=\"execute\",result=\"ok\"") == 1,
	    "saga step");
	CHECK(dtxt_prom_sum(&p, "dtxd_branch_calls_total") == 5,
	    "branch calls %g", dtxt_prom_sum(&p, "dtxd_branch_calls_total"));
	CHECK(dtxt_prom_get(&p, "dtxd_requests_total", "kind=\"submit\"") == 3,
	    "submits");
	CHECK(dtxt_prom_get(&p, "dtxd_store_syncs_total", "") >= 2 &&
	        dtxt_prom_get(&p, "dtxd_store_sync_seconds_count", "") ==
	            dtxt_prom_get(&p, "dtxd_store_syncs_total", ""),
	    "fsyncs and their latencies");
	CHECK(dtxt_prom_get(&p, "dtxd_ready", "") == 1, "ready");
	CHECK(dtxt_prom_get(&p, "dtxd_transactions_stuck", "") == 0, "stuck");
	CHECK(dtxt_prom_get(&p, "dtxd_recovering", "") == 0, "recovering");
	CHECK(!dtxt_prom_has_label(&p, "gid"), "a label per gid");
	dtxt_prom_fini(&p);
}

// The STUCK saga of the next tests: step a's compensation keeps failing
// (RETRY, always), step b refuses, so the saga turns back and is stuck
// compensating a.
static void
stuck_saga(char *gid, dtxt_part *a, dtxt_part *b)
{
	dtx_tx   *tx;
	dtx_state st;
	int       rv;

	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
	CHECK_RV(dtx_tx_set_traceparent(tx, TRACEPARENT));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "compensate=retry:1000000", 24));
	CHECK_RV(dtx_tx_add(tx, b->url, "op", "execute=refuse", 14));
	snprintf(gid, DTX_GID_MAX + 1, "%s", dtx_tx_gid(tx));
	// Decided (turned back) and held up: the commit comes back once the
	// time budget (timeout and call timeout) is over, COMPENSATING.
	rv = dtx_tx_commit(tx, &st);
	CHECK(rv == 0 && st == DTX_STATE_COMPENSATING, "%s %s (%s)",
	    dtx_strerror(rv), dtx_state_name(st), dtx_tx_message(tx));
	dtx_tx_free(tx);
}

static int
listed_stuck(void *arg)
{
	const char *gid    = arg;
	const char *args[] = {"--json", "list", "--stuck", NULL};
	char       *out;
	int         found = ctl(&out, args) == 0 && strstr(out, gid) != NULL;

	free(out);
	return found;
}

Test(ops, a_stuck_saga_is_listed_retried_and_settled_by_an_operator)
{
	char          gid[DTX_GID_MAX + 1];
	char         *out;
	dtxt_prom     p;
	dtxt_http_res r;
	dtxt_logline  l;

	start_dtxd("3", NULL);
	dtxt_part *a = part("a");
	dtxt_part *b = part("b");
	stuck_saga(gid, a, b);

	// Found as STUCK, by dtxctl and on every channel.
	CHECK(dtxt_wait_until(listed_stuck, gid, 100, 15000) == 0,
	    "%s never listed as STUCK", gid);
	const char *by_gid[] = {"gid", gid, NULL};
	wait_event("tx_stuck", by_gid);
	CHECK(events("tx_stuck", by_gid, &l) == 1,
	    "tx_stuck logged more than once");
	CHECK(strcmp(dtxt_logline_get(&l, "level"), "warn") == 0 &&
	        strcmp(dtxt_logline_get(&l, "trace_id"), TRACE_ID) == 0 &&
	        strcmp(dtxt_logline_get(&l, "state"), "COMPENSATING") == 0,
	    "tx_stuck line: level %s trace_id %s",
	    dtxt_logline_get(&l, "level"), dtxt_logline_get(&l, "trace_id"));
	scrape(&p);
	CHECK(dtxt_prom_get(&p, "dtxd_transactions_stuck", "") == 1,
	    "stuck gauge %g",
	    dtxt_prom_get(&p, "dtxd_transactions_stuck", ""));
	CHECK(dtxt_prom_get(&p, "dtxd_branch_calls_total",
	          "phase=\"compensate\",result=\"retry\"") >= 3,
	    "compensate retries");
	CHECK(dtxt_prom_get(&p, "dtxd_branch_retries_total",
	          "phase=\"compensate\"") >= 2,
	    "retries counted");
	dtxt_prom_fini(&p);
	r = get("/api/txs?stuck=1");
	CHECK(r.status == 200 && strstr(r.ctype, "application/json") &&
	        strstr(r.body, gid) != NULL &&
	        strstr(r.body, "\"stuck\":true") != NULL,
	    "/api/txs?stuck=1: %d %s", r.status, r.body);
	dtxt_http_res_fini(&r);

	const char *status[] = {"--json", "status", gid, NULL};
	out                  = ctl_expect(0, status);
	CHECK(strstr(out, "\"state\":\"COMPENSATING\"") &&
	        strstr(out, "\"stuck\":true") &&
	        strstr(out, "\"created\":\"") &&
	        strstr(out, "\"updated\":\"") &&
	        strstr(out, "\"traceparent\":\"" TRACEPARENT "\"") &&
	        strstr(out, "\"status\":\"RETRY\""),
	    "status --json:\n%s", out);
	free(out);

	// Retry: re-driven at once, and logged.
	const char *retry[] = {"--json", "retry", gid, NULL};
	out                 = ctl_expect(0, retry);
	CHECK(strstr(out, "\"state\":\"COMPENSATING\""), "retry:\n%s", out);
	free(out);
	wait_event("tx_redriven", by_gid);

	// Settle: refused for the step already compensated, needs a note,
	// then finishes the saga.
	const char *settle_done[] = {"settle", gid, "1", "--note", "x", NULL};
	out                       = ctl_expect(5, settle_done);
	CHECK(strstr(out, "done already"), "settle of a done step:\n%s", out);
	free(out);
	const char *settle_nonote[] = {"settle", gid, "0", NULL};
	out                         = ctl_expect(2, settle_nonote);
	CHECK(strstr(out, "--note"), "settle without a note:\n%s", out);
	free(out);
	const char *settle_bad[] = {"settle", gid, "9", "--note", "x", NULL};
	out = ctl_expect(2, settle_bad); // EINVAL from dtxd
	CHECK(strstr(out, "no branch 9 (it has 2)"), "settle 9:\n%s", out);
	free(out);
	const char *settle[] = {"--json", "settle", gid, "0", "--note",
	    "refunded by hand, ticket 42", NULL};
	out                  = ctl_expect(0, settle);
	CHECK(strstr(out, "\"state\":\"COMPENSATED\""), "settle:\n%s", out);
	free(out);
	out = ctl_expect(0, status);
	CHECK(strstr(out, "\"state\":\"COMPENSATED\"") &&
	        strstr(out, "refunded by hand, ticket 42") &&
	        strstr(out, "\"settled\":\"20"),
	    "status after the settlement:\n%s", out);
	free(out);
	// Settled again: a no-op for an unfinished one, but this one is
	// finished now.
	out = ctl_expect(5, settle);
	CHECK(strstr(out, "has finished"), "settle after finishing:\n%s", out);
	free(out);

	const char *settled[] = {"gid", gid, "branch", "0", NULL};
	CHECK(events("branch_settled", settled, &l) == 1, "no branch_settled");
	CHECK(strcmp(dtxt_logline_get(&l, "level"), "warn") == 0 &&
	        strstr(dtxt_logline_get(&l, "msg"), "ticket 42") != NULL,
	    "branch_settled line");
	const char *finished[] = {"gid", gid, "level", "info", NULL};
	CHECK(events("tx_finished", finished, NULL) == 1, "no tx_finished");
	scrape(&p);
	CHECK(dtxt_prom_get(&p, "dtxd_transactions_stuck", "") == 0,
	    "stuck gauge after the settlement");
	CHECK(dtxt_prom_get(&p, "dtxd_requests_total", "kind=\"settle\"") >= 3,
	    "settles counted");
	dtxt_prom_fini(&p);

	// The participant saw the client's traceparent on every call.
	char  *calls = dtxt_read_file(a->calllog);
	size_t n     = 0;
	for (const char *c = strstr(calls, "TRACE "); c != NULL;
	     c             = strstr(c + 1, "TRACE ")) {
		CHECK(strncmp(strchr(c, '\n') - strlen(TRACEPARENT),
		          TRACEPARENT, strlen(TRACEPARENT)) == 0,
		    "a call with another traceparent: %.100s", c);
		n++;
	}
	CHECK(n >= 4, "%zu calls carried the traceparent:\n%s", n, calls);
	free(calls);
	// And every line about the transaction has its trace id.
	const char *no_trace[] = {"gid", gid, NULL};
	size_t      all        = events(NULL, no_trace, NULL);
	const char *traced[]   = {"gid", gid, "trace_id", TRACE_ID, NULL};
	CHECK(all > 0 && events(NULL, traced, NULL) == all,
	    "%zu of %zu lines about %s carry its trace id",
	    events(NULL, traced, NULL), all, gid);
}

Test(ops, operator_commands_say_why_they_are_refused_with_exit_codes)
{
	char      gid[DTX_GID_MAX + 1];
	char     *out;
	dtx_tx   *tx;
	dtx_state st;
	int       code;

	start_dtxd(NULL, NULL);
	dtxt_part *a    = part("a");
	dtxt_part *gone = dtxt_world_part(&w, "gone"); // never started
	// A 2PC still preparing (its second participant does not exist):
	// its outcome is undecided, so nothing can be settled.
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, gone->url, "op", "", 0));
	CHECK_RV(dtx_tx_submit(tx));
	snprintf(gid, sizeof(gid), "%s", dtx_tx_gid(tx));
	dtx_tx_free(tx);

	const char *settle[] = {"settle", gid, "1", "--note", "x", NULL};
	out                  = ctl_expect(5, settle);
	CHECK(strstr(out, "not decided"), "settle while preparing:\n%s", out);
	free(out);
	const char *retry_unknown[] = {"retry", "no-such-gid", NULL};
	out                         = ctl_expect(4, retry_unknown);
	CHECK(strstr(out, "no-such-gid"), "retry of an unknown gid:\n%s", out);
	free(out);
	const char *abort[] = {"--json", "abort", gid, NULL};
	out                 = ctl_expect(0, abort);
	CHECK(strstr(out, "\"state\":\"ABORTING\""), "abort:\n%s", out);
	free(out);
	const char *by_gid[] = {"gid", gid, "level", "info", NULL};
	CHECK(events("tx_abort_requested", by_gid, NULL) == 1, "abort logged");

	// Bad command lines name the flag and what it takes.
	const char *bad_timeout[] = {"--timeout-ms", "soon", "stats", NULL};
	out                       = ctl_expect(2, bad_timeout);
	CHECK(strstr(out, "--timeout-ms") && strstr(out, "from 1 to"), "%s",
	    out);
	free(out);
	const char *bad_state[] = {"list", "STUCK", NULL};
	out                     = ctl_expect(2, bad_state);
	CHECK(strstr(out, "--stuck"), "list STUCK:\n%s", out);
	free(out);
	const char *bad_cmd[] = {"frobnicate", NULL};
	free(ctl_expect(2, bad_cmd));

	// A dtxd that is not there: exit 3, the reason said.
	CHECK(dtxt_kill(w.dtxd) == 0, "kill dtxd");
	w.dtxd              = NULL;
	const char *stats[] = {"--json", "stats", NULL};
	int64_t     t0      = dtxi_mono_ms();
	code                = ctl(&out, stats);
	CHECK(code == 3 && strstr(out, "Connection refused"),
	    "stats without dtxd: exit %d:\n%s", code, out);
	CHECK(dtxi_mono_ms() - t0 < 3000, "took %lld ms",
	    (long long)(dtxi_mono_ms() - t0));
	free(out);
	(void)st;
}

Test(ops, every_event_has_its_log_line_with_its_fields)
{
	char         gid[DTX_GID_MAX + 1];
	dtx_tx      *tx;
	dtx_state    st;
	dtxt_logline l;
	size_t       bad = 0;

	start_dtxd(NULL, NULL);
	dtxt_part *a    = part("a");
	dtxt_part *gone = dtxt_world_part(&w, "gone");
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_set_traceparent(tx, TRACEPARENT));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, gone->url, "op", "", 0));
	CHECK_RV(dtx_tx_submit(tx));
	snprintf(gid, sizeof(gid), "%s", dtx_tx_gid(tx));

	// The first failed call of the branch: a WARN with every field.
	const char *fail1[] = {
	    "gid", gid, "branch", "1", "attempt", "1", NULL};
	wait_event("branch_call_failed", fail1);
	CHECK(events("branch_call_failed", fail1, &l) == 1, "first failure");
	CHECK(strcmp(dtxt_logline_get(&l, "level"), "warn") == 0 &&
	        strcmp(dtxt_logline_get(&l, "phase"), "PREPARE") == 0 &&
	        strcmp(dtxt_logline_get(&l, "endpoint"), gone->url) == 0 &&
	        strcmp(dtxt_logline_get(&l, "trace_id"), TRACE_ID) == 0 &&
	        strstr(dtxt_logline_get(&l, "msg"), "unreachable") != NULL,
	    "branch_call_failed: level %s phase %s msg %s",
	    dtxt_logline_get(&l, "level"), dtxt_logline_get(&l, "phase"),
	    dtxt_logline_get(&l, "msg"));
	// Repeats are not WARNs.
	const char *fail2[] = {
	    "gid", gid, "branch", "1", "attempt", "2", NULL};
	wait_event("branch_call_failed", fail2);
	CHECK(events("branch_call_failed", fail2, &l) == 1 &&
	        strcmp(dtxt_logline_get(&l, "level"), "warn") != 0,
	    "the second failure is a %s", dtxt_logline_get(&l, "level"));

	// dtxd dies with the transaction unfinished; it comes back and says
	// how recovery went.
	dtxt_kill(w.dtxd);
	w.dtxd = NULL;
	start_dtxd(NULL, NULL);
	const char *loaded[] = {
	    "loaded", "1", "skipped", "0", "level", "info", NULL};
	wait_event("recovery_loaded", loaded);
	const char *ended[] = {"resumed", "1", "level", "info", NULL};
	wait_event("recovery_end", ended);
	CHECK(events("recovery_start", NULL, NULL) == 2, "recovery_start");
	// Recovery aborts it (presumed abort), which fails too; then the
	// participant comes back, and the branch's answer is logged.
	const char *abort_failed[] = {"gid", gid, "phase", "ABORT", NULL};
	wait_event("branch_call_failed", abort_failed);
	CHECK(dtxt_part_start(gone) == 0, "the participant did not start");
	CHECK_RV(dtx_tx_wait(tx, 20000, &st));
	CHECK(st == DTX_STATE_ABORTED, "%s", dtx_state_name(st));
	dtx_tx_free(tx);
	const char *recovered[] = {"gid", gid, "branch", "1", NULL};
	wait_event("branch_call_recovered", recovered);

	// Every line dtxd wrote is one well-formed logfmt line.
	dtxt_log_events(w.log, NULL, NULL, NULL, &bad);
	CHECK(bad == 0, "%zu lines of dtxd's log do not parse", bad);
}

Test(ops, json_logs_are_one_object_per_line)
{
	dtxt_logline l;
	size_t       bad = 0;

	start_dtxd(NULL, "json");
	CHECK(events("dtxd_started", NULL, &l) == 1, "no dtxd_started");
	CHECK(strcmp(dtxt_logline_get(&l, "level"), "info") == 0 &&
	        dtxt_logline_get(&l, "ts") != NULL &&
	        strcmp(dtxt_logline_get(&l, "listen"), w.url) == 0,
	    "dtxd_started");
	char *text = dtxt_read_file(w.log);
	CHECK(text[0] == '{', "not JSON:\n%s", text);
	free(text);
	dtxt_log_events(w.log, NULL, NULL, NULL, &bad);
	CHECK(bad == 0, "%zu lines do not parse as JSON", bad);
}
