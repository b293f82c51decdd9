// SPDX-License-Identifier: MIT
//
// seedgen: writes the generated seeds of one target as files of a
// directory, the starting corpus of a libFuzzer run
// (dtx-fuzz-seedgen TARGET DIR).

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

typedef struct writer {
	const char *dir;
	int         n;
	int         failed;
} writer;

static void
write_seed(void *arg, const uint8_t *buf, size_t len)
{
	writer *w = arg;
	char    path[4096];
	FILE   *f;

	snprintf(path, sizeof(path), "%s/seed-%03d", w->dir, w->n++);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(buf, 1, len, f) != len) {
		fprintf(stderr, "seedgen: %s: %s\n", path, strerror(errno));
		w->failed = 1;
	}
	if (f != NULL && fclose(f) != 0) {
		w->failed = 1;
	}
}

int
main(int argc, char **argv)
{
	writer w = {NULL, 0, 0};

	if (argc != 3) {
		fprintf(stderr, "usage: dtx-fuzz-seedgen TARGET DIR\n");
		return 2;
	}
	w.dir = argv[2];
	if (mkdir(w.dir, 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "seedgen: %s: %s\n", w.dir, strerror(errno));
		return 1;
	}
	if (dtxf_seeds(argv[1], write_seed, &w) < 0) {
		fprintf(stderr, "seedgen: unknown target %s\n", argv[1]);
		return 2;
	}
	return w.failed;
}
