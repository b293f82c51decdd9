// SPDX-License-Identifier: MIT
//
// dtx.integration.daemon: dtxd as a process. A SIGTERM shuts it down
// cleanly (exit 0) without losing what it accepted: a transaction
// submitted before the signal is finished by the next dtxd on the same data
// directory. One data directory serves one dtxd: a second one exits 1 and
// says the directory is in use. Bad flags exit 1 with the usage text. And
// the list request shows what was submitted, page by page. Every test has
// its own directory, ports and processes, all removed at its end.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "strs.h"
#include "world_suite.h"

TestSuite(daemon, .init = world_setup, .fini = world_teardown, .timeout = 30);

#define CHECK_STATE(got, want)                                                \
	CHECK((got) == (want), "state %s, expected %s", dtx_state_name(got),  \
	    dtx_state_name(want))

static void
start_dtxd(void)
{
	CHECK(dtxt_world_start_dtxd(&w, NULL) == 0, "dtxd did not start");
}

// Runs dtxd with args (after the program name, NULL-terminated), output
// to log, and waits for it to exit; returns how it ended.
static dtxt_exit
run_dtxd(char *const args[], const char *log)
{
	char      *argv[32];
	size_t     n = 0;
	dtxt_proc *p;
	dtxt_exit  how;

	argv[n++] = (char *)dtxt_dtxd_bin();
	for (size_t i = 0; args[i] != NULL && n < 31; i++) {
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	p       = dtxt_spawn("dtxd", argv, NULL, log);
	CHECK(p != NULL, "cannot spawn dtxd");
	CHECK(dtxt_wait(p, 5000, &how) == 0, "dtxd did not exit (%s)", log);
	return how;
}

static bool
file_mentions(const char *path, const char *word)
{
	char *text  = dtxt_read_file(path);
	bool  found = strstr(text, word) != NULL;

	free(text);
	return found;
}

Test(daemon, sigterm_shuts_down_cleanly_and_restart_finishes_accepted_work)
{
	dtxt_exit how;
	dtxt_log  la;
	dtx_tx   *tx;
	dtx_state st = 0;
	char      gid[DTX_GID_MAX + 1];

	start_dtxd();
	// The participant is not up: the saga cannot finish before the
	// SIGTERM, so the restarted dtxd has to resume it from the store.
	dtxt_part *a = dtxt_world_part(&w, "a");
	CHECK(a != NULL, "no address");
	CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
	CHECK_RV(dtx_tx_set_retries(tx, 200));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
	CHECK_RV(dtx_tx_submit(tx));
	dtxi_strlcpy(gid, dtx_tx_gid(tx), sizeof(gid));
	// Accepted means durable: nothing to wait for before the SIGTERM.
	dtx_tx_free(tx);

	CHECK(dtxt_term(w.dtxd, 5000, &how) == 0,
	    "dtxd did not stop within 5 s of SIGTERM");
	CHECK(how.exited && how.code == 0,
	    "dtxd ended with %s %d after SIGTERM",
	    how.exited ? "exit code" : "signal",
	    how.exited ? how.code : how.signo);

	CHECK(dtxt_part_start(a) == 0, "participant did not start");
	dtx_client_close(w.client);
	w.client = NULL;
	start_dtxd();
	CHECK_RV(dtx_tx_attach(&tx, w.client, gid));
	CHECK_RV(dtx_tx_wait(tx, 15000, &st));
	CHECK_STATE(st, DTX_STATE_COMMITTED);
	dtx_tx_free(tx);

	dtxt_log_load(&la, a->calllog);
	for (int i = 0; i < 2; i++) {
		CHECK(dtxt_log_count(&la, DTXT_APPLY, gid, i, NULL, NULL) == 1,
		    "step %d not applied exactly once", i);
	}
	dtxt_log_fini(&la);

	CHECK(
	    dtxt_term(w.dtxd, 5000, &how) == 0 && how.exited && how.code == 0,
	    "the restarted dtxd did not stop cleanly");
}

Test(daemon, second_dtxd_on_the_same_data_dir_exits_1_saying_it_is_in_use)
{
	char      url2[DTXT_URL_MAX];
	char      log2[DTXT_PATH_MAX];
	dtxt_exit how;

	start_dtxd();
	CHECK(dtxt_free_url(url2, sizeof(url2)) == 0, "no port");
	snprintf(log2, sizeof(log2), "%s/second.log", w.dir);
	char *args[] = {"--listen", url2, "--data-dir", w.data, NULL};
	how          = run_dtxd(args, log2);
	CHECK(how.exited && how.code == 1,
	    "second dtxd: %s %d, expected exit code 1",
	    how.exited ? "exit code" : "signal",
	    how.exited ? how.code : how.signo);
	CHECK(file_mentions(log2, "in use"),
	    "second dtxd does not say the directory is in use:\n%s",
	    dtxt_read_file(log2));
	CHECK(dtxt_alive(w.dtxd), "the first dtxd died");
	CHECK_RV(dtxt_wait_dtxd(w.dtxd, w.url, 2000));
}

// A bad flag stops dtxd at once with exit status 1 and a line that names
// the flag and says what it takes: the range of a number, the words a
// level or format may be.
Test(daemon, bad_flags_exit_1_naming_the_flag_and_what_it_takes)
{
	static const char *const bad[][4] = {
	    // argument, its value (or NULL), two texts the message must have
	    {"--no-such-flag", NULL, "unknown option", "--no-such-flag"},
	    {"--retries", "many", "--retries: invalid value 'many'",
	        "from 0 to 1000"},
	    {"--retries=-1", NULL, "--retries: invalid value '-1'",
	        "from 0 to 1000"},
	    {"--log-level", "loud", "--log-level: unknown level 'loud'",
	        "error, warn, info or debug"},
	    {"--log-format", "xml", "--log-format: unknown format 'xml'",
	        "logfmt or json"},
	    {"--timeout-ms", "-5", "--timeout-ms: invalid value '-5'",
	        "from 1 to 86400000"},
	    {"--listen", NULL, "--listen needs a value", "usage"},
	    {"stray-argument", NULL, "unexpected argument 'stray-argument'",
	        "usage"},
	    {"--http-listen", "tcp://127.0.0.1:1", "--http-listen",
	        "http://HOST:PORT"},
	    {"--operator-ipc-mode", "999",
	        "--operator-ipc-mode: invalid value '999'",
	        "octal file mode from 1 to 0777"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char      log[DTXT_PATH_MAX];
		char     *args[8];
		size_t    n = 0;
		dtxt_exit how;

		snprintf(log, sizeof(log), "%s/bad%zu.log", w.dir, i);
		args[n++] = "--data-dir";
		args[n++] = w.data;
		args[n++] = (char *)bad[i][0];
		if (bad[i][1] != NULL) {
			args[n++] = (char *)bad[i][1];
		}
		args[n] = NULL;
		how     = run_dtxd(args, log);
		CHECK(how.exited && how.code == 1,
		    "dtxd %s: %s %d, expected exit code 1", bad[i][0],
		    how.exited ? "exit code" : "signal",
		    how.exited ? how.code : how.signo);
		CHECK(file_mentions(log, bad[i][2]) &&
		        file_mentions(log, bad[i][3]),
		    "dtxd %s: expected \"%s\" and \"%s\" in:\n%s", bad[i][0],
		    bad[i][2], bad[i][3], dtxt_read_file(log));
	}
}

// Finds gid in the listing; returns its entry or NULL.
static const dtx_tx_info *
find_info(const dtx_tx_info *v, unsigned n, const char *gid)
{
	for (unsigned i = 0; i < n; i++) {
		if (strcmp(v[i].gid, gid) == 0) {
			return &v[i];
		}
	}
	return NULL;
}

Test(daemon, list_shows_submitted_transactions)
{
	dtx_tx_info all[100];
	dtx_tx_info page[2];
	unsigned    n = 0, total = 0, pages = 0;
	char        cursor[DTX_GID_MAX + 1] = "";
	char        next[DTX_GID_MAX + 1];
	char        gids[3][DTX_GID_MAX + 1];

	start_dtxd();
	dtxt_part *a = dtxt_world_part(&w, "a");
	CHECK(a != NULL && dtxt_part_start(a) == 0, "participant");
	for (int i = 0; i < 3; i++) {
		dtx_tx   *tx;
		dtx_state st;

		CHECK_RV(
		    dtx_tx_begin(&tx, w.client, i == 2 ? DTX_2PC : DTX_SAGA));
		CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
		CHECK_RV(dtx_tx_add(tx, a->url, "op", "", 0));
		CHECK_RV(dtx_tx_commit(tx, &st));
		CHECK_STATE(st, DTX_STATE_COMMITTED);
		dtxi_strlcpy(gids[i], dtx_tx_gid(tx), sizeof(gids[i]));
		dtx_tx_free(tx);
	}

	CHECK_RV(dtx_client_list(w.client, 0, "", all, 100, &n, next));
	CHECK(n == 3, "listed %u transactions, expected 3", n);
	CHECK(next[0] == '\0', "a cursor after the last page");
	for (int i = 0; i < 3; i++) {
		const dtx_tx_info *in = find_info(all, n, gids[i]);
		CHECK(in != NULL, "transaction %s not listed", gids[i]);
		CHECK_STATE(in->state, DTX_STATE_COMMITTED);
		CHECK(in->mode == (i == 2 ? DTX_2PC : DTX_SAGA), "mode %s",
		    dtx_mode_name(in->mode));
		CHECK(in->branch_count == 2, "branch count %u",
		    in->branch_count);
	}
	for (unsigned i = 1; i < n; i++) {
		CHECK(strcmp(all[i - 1].gid, all[i].gid) < 0,
		    "not in gid order");
	}

	// Two at a time: every transaction once, in order.
	do {
		CHECK_RV(
		    dtx_client_list(w.client, 0, cursor, page, 2, &n, next));
		CHECK(n <= 2, "page of %u", n);
		for (unsigned i = 0; i < n; i++, total++) {
			CHECK(total < 3 &&
			        strcmp(page[i].gid, all[total].gid) == 0,
			    "paging lost or repeated a transaction");
		}
		dtxi_strlcpy(cursor, next, sizeof(cursor));
		pages++;
	} while (cursor[0] != '\0' && pages < 10);
	CHECK(total == 3, "paging listed %u", total);

	// A filter on a state that none is in lists nothing.
	CHECK_RV(dtx_client_list(
	    w.client, DTX_STATE_ABORTED, NULL, all, 100, &n, next));
	CHECK(n == 0, "%u listed as ABORTED", n);
	CHECK_RV(dtx_client_list(
	    w.client, DTX_STATE_COMMITTED, NULL, all, 100, &n, next));
	CHECK(n == 3, "%u listed as COMMITTED", n);
}
