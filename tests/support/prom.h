// SPDX-License-Identifier: MIT
//
// prom: reads the Prometheus text exposition format (version 0.0.4) as a
// scraper does, and checks what a scraper relies on: every line a comment
// (# HELP, # TYPE) or a sample "name{label="value",...} number", every
// sample's family typed before it, histogram buckets in increasing le
// with non-decreasing counts and +Inf equal to _count. Test code only.

#ifndef DTX_TESTS_PROM_H
#define DTX_TESTS_PROM_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dtxt_prom_sample {
	char   name[128];   // metric name
	char   labels[256]; // what was between the braces, or ""
	double value;
} dtxt_prom_sample;

typedef struct dtxt_prom {
	dtxt_prom_sample *s;
	size_t            n;
} dtxt_prom;

// Parses and checks text. Returns 0, or -1 with the first problem in why
// (cap bytes). Release with dtxt_prom_fini() either way.
int  dtxt_prom_parse(const char *text, dtxt_prom *p, char *why, size_t cap);
void dtxt_prom_fini(dtxt_prom *p);

// The value of the sample name{labels} (labels as written, "" for none),
// or -1 when there is none.
double dtxt_prom_get(const dtxt_prom *p, const char *name, const char *labels);

// The sum of every sample of name whatever its labels (0 if none).
double dtxt_prom_sum(const dtxt_prom *p, const char *name);

// True when some sample has a label called label.
bool dtxt_prom_has_label(const dtxt_prom *p, const char *label);

#endif // DTX_TESTS_PROM_H
