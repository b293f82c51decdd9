// SPDX-License-Identifier: MIT
//
// replay: a main() for a fuzz target built without libFuzzer (any
// compiler, the plain and the ASan builds). It runs the target over its
// generated seeds and then over every file named on the command line, or
// in a directory named there (tests/fuzz/regressions/<target>/ in CTest),
// so every input that once broke a decoder is checked on every build. A
// crash or a failed check aborts; a missing path fails the run.

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef DTXF_TARGET
#error "DTXF_TARGET names the target this replay driver is linked with"
#endif

static void
run_seed(void *arg, const uint8_t *buf, size_t len)
{
	// A private copy, as libFuzzer gives, so that a read past the end
	// is caught by ASan rather than landing in the generator's buffer.
	uint8_t *copy = malloc(len > 0 ? len : 1);

	(void)arg;
	DTXF_CHECK(copy != NULL);
	memcpy(copy, buf, len);
	LLVMFuzzerTestOneInput(copy, len);
	free(copy);
}

static int
run_file(const char *path)
{
	FILE    *f = fopen(path, "rb");
	uint8_t *buf;
	long     n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (f != NULL) {
			fclose(f);
		}
		return -1;
	}
	buf = malloc(n > 0 ? (size_t)n : 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "replay: cannot read %s\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	free(buf);
	return 0;
}

// Runs every regular file of a directory, skipping dot files (README).
static int
run_dir(const char *dir, int *count)
{
	DIR           *d = opendir(dir);
	struct dirent *e;
	char           path[4096];
	struct stat    st;
	int            rv = 0;

	if (d == NULL) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			continue;
		}
		if (run_file(path) != 0) {
			rv = -1;
		}
		(*count)++;
	}
	closedir(d);
	return rv;
}

int
main(int argc, char **argv)
{
	struct stat st;
	int         seeds, files = 0, rv = 0;

	seeds = dtxf_seeds(DTXF_TARGET, run_seed, NULL);
	if (seeds <= 0) {
		fprintf(
		    stderr, "replay: no seeds for target %s\n", DTXF_TARGET);
		return 1;
	}
	for (int i = 1; i < argc; i++) {
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			rv = 1;
		} else if (S_ISDIR(st.st_mode)) {
			if (run_dir(argv[i], &files) != 0) {
				rv = 1;
			}
		} else {
			if (run_file(argv[i]) != 0) {
				rv = 1;
			}
			files++;
		}
	}
	printf("replay %s: %d seeds, %d files: %s\n", DTXF_TARGET, seeds,
	    files, rv == 0 ? "ok" : "FAILED");
	return rv;
}
