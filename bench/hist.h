// SPDX-License-Identifier: MIT
//
// hist: a log-linear latency histogram in microseconds, safe to fill from
// many threads at once (one relaxed atomic add per value). Values below 128
// are exact; above, every power of two is cut into 64 buckets, so a
// quantile is within 1.6 % of the true value. The maximum is kept exactly.

#ifndef DTX_BENCH_HIST_H
#define DTX_BENCH_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define BENCH_HIST_BUCKETS (128 + 57 * 64)

typedef struct bench_hist {
	atomic_uint_fast64_t counts[BENCH_HIST_BUCKETS];
	atomic_uint_fast64_t n;
	atomic_uint_fast64_t sum;
	atomic_uint_fast64_t max;
} bench_hist;

// Empties h. Not thread-safe.
void bench_hist_init(bench_hist *h);

// Adds one value. Thread-safe.
void bench_hist_add(bench_hist *h, uint64_t us);

// The smallest value v such that a fraction q (0..1) of the values are <= v
// (to the bucket's precision; q = 1 gives the exact maximum). 0 when empty.
// Thread-safe, though a reading while values are added is approximate.
uint64_t bench_hist_quantile(bench_hist *h, double q);

// A copy of h's counts at one moment, to take quantiles of what was added
// after it (bench_hist_quantile_since).
typedef struct bench_hist_mark {
	uint64_t counts[BENCH_HIST_BUCKETS];
	uint64_t n;
} bench_hist_mark;

// Records h's counts now into m. Thread-safe (approximate while values are
// added, as a quantile is).
void bench_hist_mark_take(bench_hist *h, bench_hist_mark *m);

// The quantile q of the values added to h since m was taken (to the
// bucket's precision); 0 when none were.
uint64_t bench_hist_quantile_since(
    bench_hist *h, const bench_hist_mark *m, double q);

// Number of values and their mean (0 when empty).
uint64_t bench_hist_count(bench_hist *h);
double   bench_hist_mean(bench_hist *h);

#endif // DTX_BENCH_HIST_H
