// SPDX-License-Identifier: MIT
//
// install_test: the SDK as a C project outside this tree gets it. The build
// tree under test is installed into a fresh prefix; the greeter
// (tests/consumer/greeter) is built from it twice, with find_package(dtx) +
// dtx_add_service() and with pkg-config + make; each build's participant and
// client then run typed 2PC and saga transactions through the installed
// dtxd, which (like the greeter) must run from the prefix with no
// LD_LIBRARY_PATH. Every C block of README.md is compiled against the same
// prefix with -std=c11 -Wall -Werror (the tutorial's against the greeter's
// generated header), so the README cannot show code that does not build.
// CTest passes the trees in DTX_BUILD_DIR and
// DTX_SOURCE_DIR, the programs in DTX_CMAKE and DTX_MAKE, and compiler
// flags (the sanitizers) in DTX_CONSUMER_CFLAGS.

#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#define STEP_MS (5 * 60 * 1000)

static char dir[512];
static char prefix[DTXT_PATH_MAX];

// snprintf that fails the test instead of truncating.
static void __attribute__((format(printf, 3, 4)))
fmt(char *buf, size_t cap, const char *f, ...)
{
	va_list ap;
	int     n;

	va_start(ap, f);
	n = vsnprintf(buf, cap, f, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < cap, "path too long: %s", buf);
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	cr_assert(v != NULL, "%s is not set (run under CTest)", name);
	return v;
}

// Runs argv with extra environment to completion; fails the test with the
// output when it does not exit 0.
static void
run(const char *what, char *const argv[], char *const envp[])
{
	char       log[DTXT_PATH_MAX];
	dtxt_proc *p;
	dtxt_exit  how;

	fmt(log, sizeof(log), "%s/%s.log", dir, what);
	p = dtxt_spawn(what, argv, envp, log);
	cr_assert(p != NULL, "%s: cannot start", what);
	cr_assert_eq(
	    dtxt_wait(p, STEP_MS, &how), 0, "%s: still running", what);
	if (!how.exited || how.code != 0) {
		char *out = dtxt_read_file(log);
		cr_assert_fail("%s failed (exit %d, signal %d):\n%s", what,
		    how.code, how.signo, out);
	}
}

// Runs a greeter client and returns its output (free() it).
static char *
call(const char *greeter, const char *coord, const char *part,
    const char *mode, const char *name1, const char *name2)
{
	static int  n;
	char        what[32];
	char        log[DTXT_PATH_MAX];
	char *const argv[] = {(char *)greeter, "call", (char *)coord,
	    (char *)part, (char *)mode, (char *)name1, (char *)name2, NULL};

	fmt(what, sizeof(what), "call-%d", ++n);
	run(what, argv, NULL);
	fmt(log, sizeof(log), "%s/%s.log", dir, what);
	return dtxt_read_file(log);
}

static void
expect(const char *out, const char *line)
{
	cr_expect(strstr(out, line) != NULL, "no \"%s\" in:\n%s", line, out);
}

// Runs the greeter built in bindir against the installed dtxd: a 2PC that
// commits, a 2PC that aborts, a saga that commits and one that is
// compensated, with the typed replies decoded by the client.
static void
exercise(const char *greeter)
{
	char       data[DTXT_PATH_MAX], log[DTXT_PATH_MAX];
	char       dtxd[DTXT_PATH_MAX], coord[DTXT_URL_MAX];
	char       url[DTXT_URL_MAX];
	dtxt_proc *d, *g;
	char      *out;

	fmt(dtxd, sizeof(dtxd), "%s/bin/dtxd", prefix);
	fmt(data, sizeof(data), "%s/dtxd-%d", dir, rand());
	fmt(log, sizeof(log), "%s/dtxd.log", dir);
	cr_assert_eq(dtxt_free_url(coord, sizeof(coord)), 0);
	cr_assert_eq(dtxt_free_url(url, sizeof(url)), 0);
	{
		char *const argv[] = {
		    dtxd, "--listen", coord, "--data-dir", data, NULL};
		d = dtxt_spawn("dtxd", argv, NULL, log);
	}
	cr_assert(d != NULL);
	cr_assert_eq(dtxt_wait_dtxd(d, coord, 10000), 0,
	    "the installed dtxd did not start:\n%s", dtxt_read_file(log));
	fmt(log, sizeof(log), "%s/greeter-serve.log", dir);
	{
		char *const argv[] = {(char *)greeter, "serve", url, NULL};
		g                  = dtxt_spawn("greeter", argv, NULL, log);
	}
	cr_assert(g != NULL);
	cr_assert_eq(dtxt_wait_tcp(g, url, 10000), 0,
	    "the greeter did not start:\n%s", dtxt_read_file(log));

	out = call(greeter, coord, url, "2pc", "alice", "bob");
	expect(out, "outcome COMMITTED");
	expect(out, "branch 0: hello, alice");
	expect(out, "branch 1: hello, bob");
	free(out);
	out = call(greeter, coord, url, "2pc", "carol", "nobody");
	expect(out, "outcome ABORTED");
	free(out);
	out = call(greeter, coord, url, "saga", "dave", "erin");
	expect(out, "outcome COMMITTED");
	expect(out, "branch 0: hello, dave");
	expect(out, "branch 1: hello, erin");
	free(out);
	out = call(greeter, coord, url, "saga", "frank", "nobody");
	expect(out, "outcome COMPENSATED");
	free(out);

	cr_expect_eq(dtxt_term(g, 10000, NULL), 0);
	cr_expect_eq(dtxt_term(d, 10000, NULL), 0);
	out = dtxt_read_file(log);
	expect(out, "greeter: PREPARE alice");
	expect(out, "greeter: COMMIT bob");
	expect(out, "greeter: ABORT carol");
	expect(out, "greeter: EXECUTE erin");
	expect(out, "greeter: COMPENSATE frank");
	free(out);
}

static void
setup(void)
{
	const char *build = env("DTX_BUILD_DIR");

	cr_assert_eq(dtxt_tmpdir(dir, sizeof(dir)), 0);
	fmt(prefix, sizeof(prefix), "%s/prefix", dir);
	{
		char *const argv[] = {(char *)env("DTX_CMAKE"), "--install",
		    (char *)build, "--prefix", prefix, NULL};
		run("install", argv, NULL);
	}
}

TestSuite(install, .init = setup, .fini = dtxt_cleanup, .timeout = 900);

Test(install, find_package_and_dtx_add_service_build_a_working_service)
{
	char src[DTXT_PATH_MAX], bin[DTXT_PATH_MAX], pp[DTXT_PATH_MAX];
	char cflags[DTXT_PATH_MAX], ldflags[DTXT_PATH_MAX];
	char greeter[DTXT_PATH_MAX];

	fmt(src, sizeof(src), "%s/tests/consumer/greeter",
	    env("DTX_SOURCE_DIR"));
	fmt(bin, sizeof(bin), "%s/cmake", dir);
	fmt(pp, sizeof(pp), "-DCMAKE_PREFIX_PATH=%s", prefix);
	fmt(cflags, sizeof(cflags), "-DCMAKE_C_FLAGS=%s",
	    env("DTX_CONSUMER_CFLAGS"));
	fmt(ldflags, sizeof(ldflags), "-DCMAKE_EXE_LINKER_FLAGS=%s",
	    env("DTX_CONSUMER_CFLAGS"));
	{
		char *const argv[] = {(char *)env("DTX_CMAKE"), "-S", src,
		    "-B", bin, pp, cflags, ldflags, NULL};
		run("configure", argv, NULL);
	}
	{
		char *const argv[] = {
		    (char *)env("DTX_CMAKE"), "--build", bin, NULL};
		run("build", argv, NULL);
	}
	fmt(greeter, sizeof(greeter), "%s/greeter", bin);
	exercise(greeter);
}

Test(install, pkg_config_and_make_build_a_working_service)
{
	char src[DTXT_PATH_MAX], bin[DTXT_PATH_MAX], mk[DTXT_PATH_MAX];
	char srcvar[DTXT_PATH_MAX], pcp[DTXT_PATH_MAX];
	char cflags[DTXT_PATH_MAX], ldflags[DTXT_PATH_MAX];
	char greeter[DTXT_PATH_MAX];

	fmt(src, sizeof(src), "%s/tests/consumer/greeter",
	    env("DTX_SOURCE_DIR"));
	fmt(mk, sizeof(mk), "%s/Makefile", src);
	fmt(srcvar, sizeof(srcvar), "SRC=%s", src);
	fmt(bin, sizeof(bin), "%s/make", dir);
	fmt(pcp, sizeof(pcp), "PKG_CONFIG_PATH=%s/lib/pkgconfig", prefix);
	fmt(cflags, sizeof(cflags), "CFLAGS=%s", env("DTX_CONSUMER_CFLAGS"));
	fmt(ldflags, sizeof(ldflags), "LDFLAGS=%s",
	    env("DTX_CONSUMER_CFLAGS"));
	cr_assert_eq(mkdir(bin, 0700), 0, "mkdir %s", bin);
	{
		char *const argv[] = {(char *)env("DTX_MAKE"), "-C", bin, "-f",
		    mk, srcvar, NULL};
		char *const envp[] = {pcp, cflags, ldflags, NULL};
		run("make", argv, envp);
	}
	fmt(greeter, sizeof(greeter), "%s/greeter", bin);
	exercise(greeter);
}

// Writes the C blocks of the README (```c ... ```) to dir/readme-N.c, and
// their first README line numbers to lines. Returns how many.
static int
readme_blocks(int *lines, int cap)
{
	char  path[DTXT_PATH_MAX];
	char *text, *line, *save = NULL;
	FILE *out = NULL;
	int   n = 0, no = 0;

	fmt(path, sizeof(path), "%s/README.md", env("DTX_SOURCE_DIR"));
	text = dtxt_read_file(path);
	cr_assert(text[0] != '\0', "cannot read %s", path);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		no++;
		if (out == NULL && strcmp(line, "```c") == 0) {
			char c[DTXT_PATH_MAX];
			cr_assert(n < cap, "more than %d C blocks", cap);
			fmt(c, sizeof(c), "%s/readme-%d.c", dir, n);
			out = fopen(c, "w");
			cr_assert(out != NULL, "cannot write %s", c);
			lines[n++] = no + 1;
		} else if (out != NULL && strncmp(line, "```", 3) == 0) {
			fclose(out);
			out = NULL;
		} else if (out != NULL) {
			fprintf(out, "%s\n", line);
		}
	}
	cr_assert(out == NULL, "a C block of README.md is not closed");
	free(text);
	return n;
}

Test(install, every_c_block_of_the_readme_compiles_against_the_install)
{
	char src[DTXT_PATH_MAX], gen[DTXT_PATH_MAX], mk[DTXT_PATH_MAX];
	char srcvar[DTXT_PATH_MAX], pcp[DTXT_PATH_MAX];
	char inc[DTXT_PATH_MAX], geninc[DTXT_PATH_MAX];
	int  lines[32];
	int  n;

	// The tutorial's blocks include the greeter's generated header.
	fmt(src, sizeof(src), "%s/tests/consumer/greeter",
	    env("DTX_SOURCE_DIR"));
	fmt(mk, sizeof(mk), "%s/Makefile", src);
	fmt(srcvar, sizeof(srcvar), "SRC=%s", src);
	fmt(gen, sizeof(gen), "%s/gen", dir);
	fmt(pcp, sizeof(pcp), "PKG_CONFIG_PATH=%s/lib/pkgconfig", prefix);
	cr_assert_eq(mkdir(gen, 0700), 0, "mkdir %s", gen);
	{
		char *const argv[] = {(char *)env("DTX_MAKE"), "-C", gen, "-f",
		    mk, srcvar, "hello.dtx.h", NULL};
		char *const envp[] = {pcp, NULL};
		run("generate", argv, envp);
	}
	fmt(inc, sizeof(inc), "-I%s/include", prefix);
	fmt(geninc, sizeof(geninc), "-I%s", gen);
	n = readme_blocks(lines, 32);
	cr_assert(n >= 5, "only %d C blocks in README.md", n);
	for (int i = 0; i < n; i++) {
		char c[DTXT_PATH_MAX], o[DTXT_PATH_MAX], what[32];

		fmt(c, sizeof(c), "%s/readme-%d.c", dir, i);
		fmt(o, sizeof(o), "%s/readme-%d.o", dir, i);
		fmt(what, sizeof(what), "README-line-%d", lines[i]);
		{
			char *const argv[] = {(char *)env("DTX_CC"),
			    "-std=c11", "-Wall", "-Werror",
			    "-DPB_ENABLE_MALLOC", inc, geninc, "-c", "-o", o,
			    c, NULL};
			run(what, argv, NULL);
		}
	}
}
