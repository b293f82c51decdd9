// SPDX-License-Identifier: MIT
//
// hist: see hist.h. The bucket of v >= 128 is found from its highest set
// bit e and the 6 bits below it, as in HdrHistogram; a bucket reports its
// upper edge, so quantiles never understate a latency.

#include "hist.h"

static unsigned
bucket_of(uint64_t v)
{
	unsigned e;

	if (v < 128) {
		return (unsigned)v;
	}
	if (v >= (UINT64_C(1) << 62)) {
		v = (UINT64_C(1) << 62) - 1;
	}
	e = 63u - (unsigned)__builtin_clzll(v); // 7..61
	return 128u + (e - 7u) * 64u + (unsigned)((v >> (e - 6u)) - 64u);
}

static uint64_t
bucket_top(unsigned b)
{
	unsigned e;
	uint64_t top;

	if (b < 128) {
		return b;
	}
	e   = (b - 128u) / 64u + 7u;
	top = (b - 128u) % 64u + 64u;
	return ((top + 1u) << (e - 6u)) - 1u;
}

// How many values are at or below the quantile q of n values (at least 1).
static uint64_t
rank_of(uint64_t n, double q)
{
	uint64_t want = (uint64_t)(q * (double)n);

	if ((double)want < q * (double)n) {
		want++;
	}
	return want == 0 ? 1 : want;
}

void
bench_hist_init(bench_hist *h)
{
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		atomic_init(&h->counts[i], 0);
	}
	atomic_init(&h->n, 0);
	atomic_init(&h->sum, 0);
	atomic_init(&h->max, 0);
}

void
bench_hist_add(bench_hist *h, uint64_t us)
{
	unsigned b = bucket_of(us);
	uint64_t m;

	if (b >= BENCH_HIST_BUCKETS) {
		b = BENCH_HIST_BUCKETS - 1;
	}
	atomic_fetch_add_explicit(&h->counts[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->n, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, us, memory_order_relaxed);
	m = atomic_load_explicit(&h->max, memory_order_relaxed);
	while (us > m &&
	    !atomic_compare_exchange_weak_explicit(
	        &h->max, &m, us, memory_order_relaxed, memory_order_relaxed)) {
	}
}

uint64_t
bench_hist_quantile(bench_hist *h, double q)
{
	uint64_t n    = atomic_load(&h->n);
	uint64_t max  = atomic_load(&h->max);
	uint64_t seen = 0;
	uint64_t want;

	if (n == 0) {
		return 0;
	}
	if (q >= 1.0) {
		return max;
	}
	want = rank_of(n, q);
	for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++) {
		seen +=
		    atomic_load_explicit(&h->counts[b], memory_order_relaxed);
		if (seen >= want) {
			uint64_t top = bucket_top(b);
			return top < max ? top : max;
		}
	}
	return max;
}

uint64_t
bench_hist_count(bench_hist *h)
{
	return atomic_load(&h->n);
}

double
bench_hist_mean(bench_hist *h)
{
	uint64_t n = atomic_load(&h->n);

	return n == 0 ? 0.0 : (double)atomic_load(&h->sum) / (double)n;
}

void
bench_hist_mark_take(bench_hist *h, bench_hist_mark *m)
{
	uint64_t n = 0;

	for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++) {
		m->counts[b] =
		    atomic_load_explicit(&h->counts[b], memory_order_relaxed);
		n += m->counts[b];
	}
	m->n = n;
}

// Counts are only ever added to, so the difference of two moments is what
// was added between them, bucket by bucket.
uint64_t
bench_hist_quantile_since(bench_hist *h, const bench_hist_mark *m, double q)
{
	bench_hist_mark now;
	uint64_t        n = 0, seen = 0, want, max;

	bench_hist_mark_take(h, &now);
	for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++) {
		now.counts[b] = now.counts[b] >= m->counts[b]
		    ? now.counts[b] - m->counts[b]
		    : 0;
		n += now.counts[b];
	}
	if (n == 0) {
		return 0;
	}
	// A bucket's top may lie above every value added; no quantile is
	// above the exact maximum (of all the values, so of these too).
	want = rank_of(n, q);
	max  = atomic_load(&h->max);
	for (unsigned b = 0; b < BENCH_HIST_BUCKETS; b++) {
		seen += now.counts[b];
		if (seen >= want) {
			return bucket_top(b) < max ? bucket_top(b) : max;
		}
	}
	return max;
}
