// SPDX-License-Identifier: MIT
//
// dtx.unit.metrics: dtxd's registry (coordinator/metrics.c) alone. What is
// recorded shows up in the right series of a Prometheus text that a
// scraper accepts (checked by the same parser as the HTTP tests), the
// histograms put observations in the right buckets, no series carries a
// gid, and readiness follows recovery, shutdown and the store's health.

#include <criterion/criterion.h>

#include <string.h>

#include <dtx/dtx.h>

#include "codec.h"
#include "metrics.h"
#include "prom.h"

static void
render(dtxd_metrics *m, dtxt_prom *p)
{
	dtxd_metrics_gauges g = {
	    .in_flight = 7, .call_messages = 11, .uptime_ms = 1500};
	dtxd_textbuf t;
	char         why[256];

	dtxd_textbuf_init(&t);
	dtxd_metrics_render(m, &g, &t);
	cr_assert(!t.failed);
	cr_assert_eq(dtxt_prom_parse(t.buf, p, why, sizeof(why)), 0, "%s\n%s",
	    why, t.buf);
	dtxd_textbuf_fini(&t);
}

Test(metrics, what_is_recorded_is_in_its_series)
{
	dtxd_metrics *m;
	dtxt_prom     p;

	cr_assert_eq(dtxd_metrics_alloc(&m), 0);
	dtxd_metrics_tx_started(m, DTX_2PC);
	dtxd_metrics_tx_started(m, DTX_SAGA);
	dtxd_metrics_tx_finished(m, DTX_2PC, DTX_STATE_ABORTED, 3);
	dtxd_metrics_tx_finished(m, DTX_SAGA, DTX_STATE_COMPENSATED, 40000);
	dtxd_metrics_call(m, DTX_PHASE_COMMIT, DTXD_CALL_UNREACHABLE);
	dtxd_metrics_call(m, DTX_PHASE_COMMIT, DTXD_CALL_UNREACHABLE);
	dtxd_metrics_call(m, 0, DTXD_CALL_OK); // no phase: not counted
	dtxd_metrics_retry(m, DTX_PHASE_COMMIT);
	dtxd_metrics_stuck_add(m, 2);
	dtxd_metrics_stuck_add(m, -1);
	dtxd_metrics_store_batch(m, 5, true, 700, 0);
	dtxd_metrics_store_batch(m, 3, false, 10, 0);
	dtxd_metrics_request(m, DTXI_REQ_SETTLE);
	dtxd_metrics_resolve(m, DTX_STATE_ABORTED);
	dtxd_metrics_recovery_loaded(m, 12, 1, 250);
	render(m, &p);

	cr_assert_eq(dtxt_prom_get(&p, "dtxd_transactions_started_total",
	                 "mode=\"saga\""),
	    1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_transactions_finished_total",
	                 "mode=\"2pc\",outcome=\"aborted\""),
	    1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_transactions_finished_total",
	                 "mode=\"saga\",outcome=\"compensated\""),
	    1);
	// 3 ms is in the 5 ms bucket, not the 2.5 ms one; 40 s in the 60 s.
	cr_assert_eq(
	    dtxt_prom_get(&p, "dtxd_transaction_duration_seconds_bucket",
	        "mode=\"2pc\",le=\"0.0025\""),
	    0);
	cr_assert_eq(
	    dtxt_prom_get(&p, "dtxd_transaction_duration_seconds_bucket",
	        "mode=\"2pc\",le=\"0.005\""),
	    1);
	cr_assert_eq(
	    dtxt_prom_get(&p, "dtxd_transaction_duration_seconds_bucket",
	        "mode=\"saga\",le=\"30\""),
	    0);
	cr_assert_eq(
	    dtxt_prom_get(&p, "dtxd_transaction_duration_seconds_bucket",
	        "mode=\"saga\",le=\"60\""),
	    1);
	cr_assert_float_eq(
	    dtxt_prom_get(
	        &p, "dtxd_transaction_duration_seconds_sum", "mode=\"saga\""),
	    40.0, 1e-9);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_branch_calls_total",
	                 "phase=\"commit\",result=\"unreachable\""),
	    2);
	cr_assert_eq(dtxt_prom_sum(&p, "dtxd_branch_calls_total"), 2);
	cr_assert_eq(
	    dtxt_prom_get(&p, "dtxd_branch_retries_total", "phase=\"commit\""),
	    1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_transactions_stuck", ""), 1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_transactions_in_flight", ""), 7);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_call_messages_total", ""), 11);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_store_records_total", ""), 8);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_store_batches_total", ""), 2);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_store_syncs_total", ""), 1);
	cr_assert_eq(dtxt_prom_get(
	                 &p, "dtxd_store_sync_seconds_bucket", "le=\"0.001\""),
	    1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_store_sync_seconds_bucket",
	                 "le=\"0.0005\""),
	    0);
	cr_assert_eq(
	    dtxt_prom_get(&p, "dtxd_requests_total", "kind=\"settle\""), 1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_resolve_requests_total",
	                 "answer=\"aborted\""),
	    1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_recovery_transactions",
	                 "result=\"loaded\""),
	    12);
	cr_assert_float_eq(
	    dtxt_prom_get(&p, "dtxd_recovery_load_seconds", ""), 0.25, 1e-9);
	cr_assert_float_eq(
	    dtxt_prom_get(&p, "dtxd_uptime_seconds", ""), 1.5, 1e-9);
	cr_assert(!dtxt_prom_has_label(&p, "gid"));
	dtxt_prom_fini(&p);
	dtxd_metrics_free(m);
}

Test(metrics, readiness_follows_recovery_shutdown_and_the_store)
{
	dtxd_metrics *m;
	char          why[64];
	dtxt_prom     p;

	cr_assert_eq(dtxd_metrics_alloc(&m), 0);
	cr_assert(!dtxd_metrics_ready(m, why, sizeof(why)));
	cr_assert_str_eq(why, "recovering");
	dtxd_metrics_recovery_resumed(m, 10);
	cr_assert(dtxd_metrics_ready(m, why, sizeof(why)));

	dtxd_metrics_store_batch(m, 1, true, 100, DTX_ENOSPC);
	cr_assert(!dtxd_metrics_ready(m, why, sizeof(why)));
	cr_assert(strstr(why, "store failing") && strstr(why, "no space"),
	    "%s", why);
	render(m, &p);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_ready", ""), 0);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_store_failing", ""), 1);
	cr_assert_eq(dtxt_prom_get(&p, "dtxd_store_errors_total", ""), 1);
	dtxt_prom_fini(&p);
	dtxd_metrics_store_batch(m, 1, true, 100, 0);
	cr_assert(dtxd_metrics_ready(m, why, sizeof(why)));

	dtxd_metrics_set_stopping(m);
	cr_assert(!dtxd_metrics_ready(m, why, sizeof(why)));
	cr_assert_str_eq(why, "shutting down");
	dtxd_metrics_free(m);
	// Recorders take NULL (modules built without a registry).
	dtxd_metrics_tx_started(NULL, DTX_2PC);
	dtxd_metrics_store_batch(NULL, 1, true, 1, 0);
}
