// SPDX-License-Identifier: MIT
//
// dtx.integration.page: dtxd's status page in a real browser. A 2PC whose
// second participant does not exist turns ABORTING and then STUCK; the page,
// loaded by headless Chromium (Debian's chromium, run with --dump-dom after
// its scripts ran), lists that transaction with its STUCK mark and shows
// its branch's error: the participant's URL, "peer unreachable" and
// "Connection refused". The DOM Chromium prints is what a user would see.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "httpc.h"
#include "world_suite.h"

TestSuite(page, .init = world_setup, .fini = world_teardown, .timeout = 120);

static int
is_stuck(void *arg)
{
	dtx_state st;
	return dtx_tx_status(arg, &st) == 0 && dtx_tx_stuck(arg);
}

// Runs Chromium on url and returns the DOM it dumps (free() it).
static char *
browse(const char *url)
{
	const char *bin = getenv("DTX_CHROMIUM_BIN");
	char        profile[DTXT_PATH_MAX + 16], flag[DTXT_PATH_MAX + 32];
	char        out[DTXT_PATH_MAX + 16];
	dtxt_proc  *p;
	dtxt_exit   how;

	CHECK(bin != NULL && bin[0] != '\0' && access(bin, X_OK) == 0,
	    "chromium is not installed (Debian's chromium package; "
	    ".ci/install-deps installs it): the page cannot be tested");
	snprintf(profile, sizeof(profile), "%s/chromium", w.dir);
	snprintf(flag, sizeof(flag), "--user-data-dir=%s", profile);
	snprintf(out, sizeof(out), "%s/dom.html", w.dir);
	char *argv[] = {(char *)bin, "--headless", "--no-sandbox",
	    "--disable-gpu", "--disable-quic", "--no-first-run",
	    "--disable-background-networking", "--disable-component-update",
	    "--disable-sync", flag, "--virtual-time-budget=5000", "--dump-dom",
	    (char *)url, NULL};
	char  home[DTXT_PATH_MAX + 8];
	snprintf(home, sizeof(home), "HOME=%s", w.dir);
	char *env[] = {home, NULL};
	p           = dtxt_spawn("chromium", argv, env, out);
	CHECK(p != NULL, "cannot start %s", bin);
	CHECK(dtxt_wait(p, 90000, &how) == 0, "chromium did not finish");
	CHECK(how.exited && how.code == 0, "chromium ended badly:\n%s",
	    dtxt_read_file(out));
	return dtxt_read_file(out);
}

Test(page, lists_a_stuck_transaction_and_shows_its_branch_error)
{
	dtxt_dtxd_opts o = {0};
	char           http[64], url[256], row[256], msg[256];
	dtx_tx        *tx;
	dtx_state      st;
	char          *dom;

	CHECK(dtxt_free_http_url(http, sizeof(http)) == 0, "no port");
	o.timeout_ms = 1000;
	o.extra[0]   = "--http-listen";
	o.extra[1]   = http;
	o.extra[2]   = "--stuck-after";
	o.extra[3]   = "2";
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
	dtxt_part *a    = dtxt_world_part(&w, "a");
	dtxt_part *gone = dtxt_world_part(&w, "gone"); // never started
	CHECK(a != NULL && dtxt_part_start(a) == 0, "a did not start");

	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, gone->url, "op", "", 0));
	CHECK_RV(dtx_tx_commit(tx, &st));
	CHECK(st == DTX_STATE_ABORTING, "commit: %s", dtx_state_name(st));
	CHECK(dtxt_wait_until(is_stuck, tx, 50, 20000) == 0, "never STUCK");

	snprintf(url, sizeof(url), "%s/#%s", http, dtx_tx_gid(tx));
	dom = browse(url);
	snprintf(row, sizeof(row), "<tr class=\"tx sel\" data-gid=\"%s\">",
	    dtx_tx_gid(tx));
	const char *r = strstr(dom, row);
	CHECK(
	    r != NULL, "the page does not list %s:\n%s", dtx_tx_gid(tx), dom);
	const char *end  = strstr(r, "</tr>");
	const char *mark = strstr(r, "<span class=\"stuck\">STUCK</span>");
	CHECK(end != NULL && mark != NULL && mark < end,
	    "%s is not marked STUCK:\n%.600s", dtx_tx_gid(tx), r);
	CHECK(strstr(dom, "<td class=\"err\">peer unreachable</td>") != NULL,
	    "the branch's error is not shown:\n%s", dom);
	snprintf(msg, sizeof(msg),
	    "<td class=\"err message\">participant %s unreachable: "
	    "Connection refused</td>",
	    gone->url);
	CHECK(strstr(dom, msg) != NULL,
	    "the branch's message is not shown:\n%s", dom);
	free(dom);
	dtx_tx_free(tx);
}
