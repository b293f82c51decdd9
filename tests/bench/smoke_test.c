// SPDX-License-Identifier: MIT
//
// dtx.bench.smoke: runs dtx-bench ($DTX_BENCH_BIN) in tiny configurations
// (a few hundred transactions) and checks that it works end to end and that
// its report is well-formed: every key there, the counts adding up to the
// transactions run, quantiles in order, a bound and a ratio. Performance is
// never asserted here (it is what dtx-bench itself measures); each run may
// take as long as a loaded machine needs.

#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define RUN_DEADLINE_MS 240000

TestSuite(bench, .fini = dtxt_cleanup);

// Runs dtx-bench with args (NULL-terminated) and returns its output
// (stdout and stderr; free() it). Asserts it exited 0 without a sanitizer
// report.
static char *
run_bench(const char *const args[])
{
	const char *bin = getenv("DTX_BENCH_BIN");
	char        dir[DTXT_PATH_MAX];
	char        log[DTXT_PATH_MAX + 16];
	char       *argv[32];
	dtxt_exit   how;
	dtxt_proc  *p;
	char       *out;
	int         n = 0;

	if (bin == NULL || bin[0] == '\0') {
		cr_skip_test("DTX_BENCH_BIN is not set (bench not built)");
	}
	cr_assert_eq(dtxt_tmpdir(dir, sizeof(dir)), 0);
	snprintf(log, sizeof(log), "%s/bench.log", dir);
	argv[n++] = (char *)bin;
	for (size_t i = 0; args[i] != NULL && n < 31; i++) {
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	p       = dtxt_spawn("dtx-bench", argv, NULL, log);
	cr_assert_not_null(p);
	if (dtxt_wait(p, RUN_DEADLINE_MS, &how) != 0) {
		out = dtxt_read_file(log);
		cr_assert_fail("dtx-bench still running after %d ms:\n%s",
		    RUN_DEADLINE_MS, out);
	}
	out = dtxt_read_file(log);
	cr_assert(how.exited && how.code == 0,
	    "dtx-bench failed (exit %d, signal %d):\n%s", how.code, how.signo,
	    out);
	cr_assert_null(strstr(out, "ERROR: AddressSanitizer"), "%s", out);
	cr_assert_null(strstr(out, "ERROR: LeakSanitizer"), "%s", out);
	cr_assert_null(strstr(out, "runtime error:"), "%s", out);
	return out;
}

// The JSON object in out: from the first line that is "{" to the end. Checks
// its shape: braces balance and it ends with "}".
static const char *
json_of(const char *out)
{
	const char *j     = strstr(out, "{\n");
	long        depth = 0;
	const char *last  = NULL;

	cr_assert_not_null(j, "no JSON in:\n%s", out);
	for (const char *s = j; *s != '\0'; s++) {
		if (*s == '{') {
			depth++;
		} else if (*s == '}') {
			depth--;
			cr_assert_geq(depth, 0, "unbalanced JSON:\n%s", j);
			last = s;
		}
	}
	cr_assert_eq(depth, 0, "unbalanced JSON:\n%s", j);
	cr_assert_not_null(last);
	for (const char *s = last + 1; *s != '\0'; s++) {
		cr_assert(
		    *s == '\n' || *s == ' ', "text after the JSON:\n%s", j);
	}
	return j;
}

// The number after "key": in j (keys are unique in the report).
static double
num(const char *j, const char *key)
{
	char        pat[64];
	const char *at;
	char       *end;
	double      v;

	snprintf(pat, sizeof(pat), "\"%s\": ", key);
	at = strstr(j, pat);
	cr_assert_not_null(at, "no \"%s\" in:\n%s", key, j);
	v = strtod(at + strlen(pat), &end);
	cr_assert_neq(
	    end, at + strlen(pat), "\"%s\" is not a number:\n%s", key, j);
	return v;
}

// What every load report must satisfy whatever the workload.
static void
check_load_report(const char *j, double want)
{
	double tx = num(j, "transactions");

	cr_assert_eq(tx, want, "%s", j);
	cr_assert_eq(num(j, "committed") + num(j, "aborted") +
	        num(j, "compensated") + num(j, "errors"),
	    tx, "%s", j);
	cr_assert_eq(num(j, "errors"), 0, "%s", j);
	cr_assert_gt(num(j, "seconds"), 0, "%s", j);
	cr_assert_gt(num(j, "tx_per_s"), 0, "%s", j);
	cr_assert_gt(num(j, "p50"), 0, "%s", j);
	cr_assert_leq(num(j, "p50"), num(j, "p90"), "%s", j);
	cr_assert_leq(num(j, "p90"), num(j, "p99"), "%s", j);
	cr_assert_leq(num(j, "p99"), num(j, "p999"), "%s", j);
	cr_assert_leq(num(j, "p999"), num(j, "max"), "%s", j);
	cr_assert_gt(num(j, "cpu_s"), 0, "%s", j);
	cr_assert_gt(num(j, "peak_rss_kib"), 0, "%s", j);
	cr_assert_geq(num(j, "peak_rss_kib"), num(j, "rss_end_kib"), "%s", j);
	cr_assert_gt(num(j, "records_per_tx"), 0, "%s", j);
	cr_assert_gt(num(j, "syncs_per_tx"), 0, "%s", j);
	cr_assert_gt(num(j, "rt_per_s"), 0, "%s", j);
	cr_assert_gt(num(j, "cpu_us_per_rt"), 0, "%s", j);
	cr_assert_gt(num(j, "sync_writes_per_s"), 0, "%s", j);
	cr_assert_gt(num(j, "cpu_us_per_write"), 0, "%s", j);
	cr_assert_gt(num(j, "cpu_bound_tx_per_s"), 0, "%s", j);
	cr_assert_gt(num(j, "throughput_bound_tx_per_s"), 0, "%s", j);
	// A ratio, at most 1; or, when the achieved rate came out above a
	// bound (the limits measured low on a busy machine), none and the
	// error said.
	if (strstr(j, "\"ratio\": null") != NULL) {
		cr_assert_not_null(strstr(j, "\"ratio_error\": \""), "%s", j);
		cr_assert(num(j, "tx_per_s") > num(j, "cpu_bound_tx_per_s") ||
		        num(j, "tx_per_s") >
		            num(j, "throughput_bound_tx_per_s"),
		    "%s", j);
	} else {
		cr_assert_gt(num(j, "ratio"), 0, "%s", j);
		cr_assert_leq(num(j, "ratio"), 1, "%s", j);
	}
}

Test(bench, twopc_json_report_is_well_formed_and_counts_add_up)
{
	static const char *const args[] = {"--mode", "2pc", "--count", "300",
	    "--concurrency", "16", "--warmup", "0", "--limits-seconds", "0.3",
	    "--json", "--quiet", NULL};
	char                    *out    = run_bench(args);
	const char              *j      = json_of(out);

	check_load_report(j, 300);
	cr_assert_eq(num(j, "committed"), 300, "%s", j);
	cr_assert_eq(num(j, "branches"), 2, "%s", j);
	// 1 submit + 2 prepares + 2 commits; create, decision, finish.
	cr_assert_eq(num(j, "rt_per_tx"), 5, "%s", j);
	cr_assert_eq(num(j, "writes_per_tx"), 3, "%s", j);
	cr_assert_not_null(
	    strstr(j, "\"participant_barrier\": null"), "%s", j);
	free(out);
}

// --barrier-lock: participants on the barrier with its lock hooks, and
// their fsyncs per call in the report.
Test(bench, barrier_participants_report_their_fsyncs_per_call)
{
	static const char *const args[] = {"--mode", "saga", "--barrier-lock",
	    "--count", "200", "--concurrency", "8", "--warmup", "0",
	    "--limits-seconds", "0.3", "--json", "--quiet", NULL};
	char                    *out    = run_bench(args);
	const char              *j      = json_of(out);

	check_load_report(j, 200);
	cr_assert_eq(num(j, "committed"), 200, "%s", j);
	// Two executes per saga, each through a barrier.
	cr_assert_geq(num(j, "calls"), 400, "%s", j);
	cr_assert_geq(num(j, "fsyncs"), 1, "%s", j);
	cr_assert_gt(num(j, "fsyncs_per_call"), 0, "%s", j);
	cr_assert_leq(num(j, "fsyncs_per_call"), 1, "%s", j);
	free(out);
}

Test(bench, mix_over_ipc_with_refusals_aborts_and_compensates)
{
	static const char *const args[] = {"--mode", "mix", "--transport",
	    "ipc", "--count", "400", "--concurrency", "32", "--refuse-rate",
	    "0.3", "--warmup", "0", "--limits-seconds", "0.3", "--json",
	    "--quiet", NULL};
	char                    *out    = run_bench(args);
	const char              *j      = json_of(out);

	check_load_report(j, 400);
	// Half are 2PC and half sagas; with 30 % refusals of every
	// prepare/execute, some of each fail (the odds of none are ~1e-20).
	cr_assert_gt(num(j, "committed"), 0, "%s", j);
	cr_assert_gt(num(j, "aborted"), 0, "%s", j);
	cr_assert_gt(num(j, "compensated"), 0, "%s", j);
	free(out);
}

// --saga-group: steps in parallel groups; the store sees one progress
// record per group, as the model says.
Test(bench, saga_groups_write_one_progress_record_per_group)
{
	static const char *const args[] = {"--mode", "saga", "--branches", "4",
	    "--saga-group", "2", "--count", "200", "--concurrency", "8",
	    "--warmup", "0", "--limits-seconds", "0.3", "--json", "--quiet",
	    NULL};
	char                    *out    = run_bench(args);
	const char              *j      = json_of(out);

	check_load_report(j, 200);
	cr_assert_eq(num(j, "committed"), 200, "%s", j);
	cr_assert_eq(num(j, "saga_group"), 2, "%s", j);
	// create + 1 progress (between the two groups) + finish.
	cr_assert_eq(num(j, "writes_per_tx"), 3, "%s", j);
	cr_assert(
	    num(j, "records_per_tx") > 2.9 && num(j, "records_per_tx") < 3.1,
	    "measured: %s", j);
	free(out);
}

Test(bench, text_report_shows_latencies_bound_and_ratio)
{
	static const char *const args[] = {"--mode", "saga", "--count", "200",
	    "--concurrency", "8", "--warmup", "0", "--limits-seconds", "0.3",
	    NULL};
	char                    *out    = run_bench(args);

	cr_assert_not_null(strstr(out, "transactions  200 in"), "%s", out);
	cr_assert_not_null(strstr(out, "committed 200"), "%s", out);
	cr_assert_not_null(strstr(out, "p99.9"), "%s", out);
	cr_assert_not_null(strstr(out, "peak RSS"), "%s", out);
	cr_assert_not_null(
	    strstr(out, "synced writes (fsyncs)/tx"), "%s", out);
	cr_assert_not_null(strstr(out, "bound         CPU: "), "%s", out);
	cr_assert_not_null(strstr(out, "\nratio         "), "%s", out);
	free(out);
}

// The long-run report and the preload, in miniature: a store preloaded
// with 20,000 finished transactions, three one-second intervals.
Test(bench, preload_and_interval_report)
{
	static const char *const args[] = {"--preload", "20000", "--duration",
	    "3", "--interval", "1", "--concurrency", "8", "--warmup", "0",
	    "--limits-seconds", "0", "--json", "--quiet", NULL};
	char                    *out    = run_bench(args);
	const char              *j      = json_of(out);
	const char              *iv     = strstr(j, "\"intervals\": [");
	int                      n      = 0;

	cr_assert_eq(num(j, "errors"), 0, "%s", j);
	cr_assert_not_null(strstr(j, "\"preload\": {"), "%s", j);
	cr_assert_eq(
	    num(strstr(j, "\"preload\": {"), "transactions"), 20000, "%s", j);
	cr_assert_gt(num(j, "bytes"), 0, "%s", j);
	cr_assert_not_null(iv, "%s", j);
	for (const char *p = iv; (p = strstr(p, "{\"end_s\": ")) != NULL;
	     p++) {
		cr_assert_gt(num(p, "tx_per_s"), 0, "%s", j);
		cr_assert_gt(num(p, "dtxd_rss_kib"), 0, "%s", j);
		cr_assert_leq(num(p, "p99_us"), num(j, "max"), "%s", j);
		n++;
	}
	cr_assert_eq(n, 3, "%d intervals in:\n%s", n, j);
	free(out);
}

Test(bench, recovery_resumes_every_unfinished_transaction)
{
	static const char *const args[] = {
	    "--recovery", "--recovery-n", "200", "--json", "--quiet", NULL};
	char       *out = run_bench(args);
	const char *j   = json_of(out);

	cr_assert_eq(num(j, "n"), 200, "%s", j);
	cr_assert_eq(num(j, "submitted"), 200, "%s", j);
	cr_assert_eq(num(j, "submit_errors"), 0, "%s", j);
	cr_assert_eq(num(j, "unfinished"), 200, "%s", j);
	cr_assert_eq(num(j, "recovered"), 200, "%s", j);
	cr_assert_geq(num(j, "finished"), 200, "%s", j);
	cr_assert_gt(num(j, "total_s"), 0, "%s", j);
	cr_assert_geq(num(j, "total_s"), num(j, "ready_s"), "%s", j);
	cr_assert_gt(num(j, "rate_per_s"), 0, "%s", j);
	free(out);
}

Test(bench, targets_a_running_coordinator_and_participant)
{
	const char *bin = getenv("DTX_BENCH_BIN");
	char        dir[DTXT_PATH_MAX];
	char        data[DTXT_PATH_MAX + 16], dlog[DTXT_PATH_MAX + 16];
	char        plog[DTXT_PATH_MAX + 16], part[DTXT_PATH_MAX];
	char        curl[DTXT_URL_MAX], purl[DTXT_URL_MAX], pid[32];
	char       *slash;
	dtxt_proc  *d, *p;

	if (bin == NULL || bin[0] == '\0') {
		cr_skip_test("DTX_BENCH_BIN is not set (bench not built)");
	}
	// dtx-bench-part is built next to dtx-bench.
	snprintf(part, sizeof(part), "%s", bin);
	slash = strrchr(part, '/');
	cr_assert_not_null(slash);
	snprintf(slash + 1, sizeof(part) - (size_t)(slash + 1 - part), "%s",
	    "dtx-bench-part");
	cr_assert_eq(dtxt_tmpdir(dir, sizeof(dir)), 0);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(dlog, sizeof(dlog), "%s/dtxd.log", dir);
	snprintf(plog, sizeof(plog), "%s/part.log", dir);
	cr_assert_eq(dtxt_free_url(curl, sizeof(curl)), 0);
	cr_assert_eq(dtxt_free_url(purl, sizeof(purl)), 0);
	d = dtxt_start_dtxd(curl, data, dlog, NULL);
	cr_assert_not_null(d, "dtxd did not start:\n%s", dtxt_read_file(dlog));
	{
		char *argv[] = {part, "--listen", purl, NULL};
		p            = dtxt_spawn("dtx-bench-part", argv, NULL, plog);
	}
	cr_assert_not_null(p);
	cr_assert_eq(dtxt_wait_tcp(p, purl, 20000), 0);
	snprintf(pid, sizeof(pid), "%ld", (long)d->pid);

	// Both branches go to the one participant given: the model then
	// counts one prepare and one commit message per transaction.
	const char *const args[] = {"--coordinator", curl, "--participant-url",
	    purl, "--dtxd-pid", pid, "--count", "200", "--concurrency", "16",
	    "--warmup", "0", "--limits-seconds", "0.3", "--json", "--quiet",
	    NULL};
	char             *out    = run_bench(args);
	const char       *j      = json_of(out);

	check_load_report(j, 200);
	cr_assert_eq(num(j, "committed"), 200, "%s", j);
	cr_assert_eq(num(j, "rt_per_tx"), 3, "%s", j);
	cr_assert(dtxt_alive(d), "dtx-bench must leave a running dtxd alone");
	cr_assert(dtxt_alive(p));
	free(out);
}

// A bad command line stops dtx-bench at once with a line that names the
// flag and what its value must be.
Test(bench, bad_flags_name_the_flag_and_what_it_takes)
{
	static const char *const bad[][4] = {
	    {"--branches", "99", "--branches: invalid value '99'",
	        "from 1 to 64"},
	    {"--mode=xa", NULL, "--mode: invalid value 'xa'",
	        "2pc, saga or mix"},
	    {"--refuse-rate", "2", "--refuse-rate", "from 0 to 1"},
	    {"--no-such-flag", NULL, "unknown option '--no-such-flag'",
	        "usage"},
	    {"--concurrency", NULL, "no value for '--concurrency'", "usage"},
	};
	const char *bin = getenv("DTX_BENCH_BIN");
	char        dir[DTXT_PATH_MAX];

	if (bin == NULL || bin[0] == '\0') {
		cr_skip_test("DTX_BENCH_BIN is not set (bench not built)");
	}
	cr_assert_eq(dtxt_tmpdir(dir, sizeof(dir)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char  log[DTXT_PATH_MAX + 16];
		char *argv[] = {
		    (char *)bin, (char *)bad[i][0], (char *)bad[i][1], NULL};
		dtxt_exit  how;
		dtxt_proc *p;
		char      *out;

		snprintf(log, sizeof(log), "%s/bad%zu.log", dir, i);
		p = dtxt_spawn("dtx-bench", argv, NULL, log);
		cr_assert_not_null(p);
		cr_assert_eq(dtxt_wait(p, 10000, &how), 0, "dtx-bench hung");
		out = dtxt_read_file(log);
		cr_assert(how.exited && how.code != 0, "%s: exit %d",
		    bad[i][0], how.code);
		cr_assert(strstr(out, bad[i][2]) && strstr(out, bad[i][3]),
		    "%s: expected \"%s\" and \"%s\" in:\n%s", bad[i][0],
		    bad[i][2], bad[i][3], out);
		free(out);
	}
}
