// SPDX-License-Identifier: MIT
//
// dtx.samples.orders: runs samples/orders/demo.sh against the build tree and
// checks that it succeeds with the four expected outcomes, and that no
// process it started survives it. The demo is the end-to-end test a user
// runs first, so it must keep working.
//
// Where things are: CTest gives DTXD_BIN (build/coordinator/dtxd), so the
// build directory is two levels up from it. The source tree (for demo.sh)
// is found, in order, from DTX_ORDERS_DEMO (a path to demo.sh), from the
// build's CMakeCache.txt (dtx_SOURCE_DIR, right for any out-of-tree build),
// or by walking up from the current directory and from the build directory.
// tests/CMakeLists.txt passes no source path, and this way needs none.

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pg.h"

// Less than CTest's 300 s so that we, not CTest, kill a hung demo and
// report what it printed.
#define DEMO_DEADLINE_MS 240000
#define DEMO_PATH        "samples/orders/demo.sh"

static int64_t
mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// Removes the last path component in place ("/a/b/c" -> "/a/b").
static void
path_up(char *path)
{
	char *slash = strrchr(path, '/');

	if (slash == NULL) {
		path[0] = '\0';
	} else if (slash == path) {
		path[1] = '\0';
	} else {
		*slash = '\0';
	}
}

static bool
is_readable(const char *path)
{
	return access(path, R_OK) == 0;
}

// Makes path absolute (relative to the current directory) into out.
static bool
absolute(const char *path, char *out, size_t cap)
{
	char cwd[PATH_MAX];

	if (path[0] == '/') {
		return (size_t)snprintf(out, cap, "%s", path) < cap;
	}
	if (getcwd(cwd, sizeof(cwd)) == NULL) {
		return false;
	}
	return (size_t)snprintf(out, cap, "%s/%s", cwd, path) < cap;
}

// The build directory: dirname(dirname($DTXD_BIN)). CTest passes an
// absolute path; a relative one is taken from the current directory.
static bool
find_build_dir(char *out, size_t cap)
{
	const char *bin = getenv("DTXD_BIN");

	if (bin == NULL || bin[0] == '\0' || access(bin, X_OK) != 0 ||
	    !absolute(bin, out, cap)) {
		return false;
	}
	path_up(out);
	path_up(out);
	return out[0] != '\0';
}

// Reads dtx_SOURCE_DIR from build/CMakeCache.txt into src.
static bool
source_from_cache(const char *build, char *src, size_t cap)
{
	static const char key[] = "dtx_SOURCE_DIR:STATIC=";
	char              path[PATH_MAX + 32];
	char              line[PATH_MAX + 64];
	FILE             *f;
	bool              found = false;

	snprintf(path, sizeof(path), "%s/CMakeCache.txt", build);
	if ((f = fopen(path, "r")) == NULL) {
		return false;
	}
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, key, sizeof(key) - 1) == 0) {
			const char *v = line + sizeof(key) - 1;
			size_t      n = strcspn(v, "\r\n");
			if (n < cap) {
				memcpy(src, v, n);
				src[n] = '\0';
				found  = true;
			}
		}
	}
	fclose(f);
	return found;
}

// Looks for DEMO_PATH in start and each of its ancestors.
static bool
walk_up(const char *start, char *demo, size_t cap)
{
	char dir[PATH_MAX];

	if (!absolute(start, dir, sizeof(dir))) {
		return false;
	}
	for (;;) {
		snprintf(demo, cap, "%s/%s", strcmp(dir, "/") == 0 ? "" : dir,
		    DEMO_PATH);
		if (is_readable(demo)) {
			return true;
		}
		if (strcmp(dir, "/") == 0 || dir[0] == '\0') {
			return false;
		}
		path_up(dir);
	}
}

static bool
find_demo(const char *build, char *demo, size_t cap)
{
	const char *env = getenv("DTX_ORDERS_DEMO");
	char        src[PATH_MAX];

	if (env != NULL && env[0] != '\0') {
		snprintf(demo, cap, "%s", env);
		return is_readable(demo);
	}
	if (source_from_cache(build, src, sizeof(src))) {
		snprintf(demo, cap, "%s/%s", src, DEMO_PATH);
		if (is_readable(demo)) {
			return true;
		}
	}
	return walk_up(".", demo, cap) || walk_up(build, demo, cap);
}

typedef struct output {
	char  *buf;
	size_t len;
	size_t cap;
} output;

static void
output_add(output *o, const char *data, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap == 0 ? 65536 : o->cap;
		while (o->len + n + 1 > cap) {
			cap *= 2;
		}
		char *nb = realloc(o->buf, cap);
		cr_assert_not_null(nb, "out of memory");
		o->buf = nb;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, data, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

// True while a live process of group pgid exists. A zombie does not count:
// it has exited, and whether it is reaped soon depends on the container's
// init, not on the demo.
static bool
group_alive(pid_t pgid)
{
	DIR           *d;
	struct dirent *e;
	bool           alive = false;

	if (kill(-pgid, 0) != 0 && errno == ESRCH) {
		return false;
	}
	if ((d = opendir("/proc")) == NULL) {
		return true;
	}
	while (!alive && (e = readdir(d)) != NULL) {
		char  path[300], stat[1024], state;
		FILE *f;
		char *rp;
		long  ppid, pgrp;

		if (e->d_name[0] < '1' || e->d_name[0] > '9') {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if ((f = fopen(path, "r")) == NULL) {
			continue;
		}
		// "pid (comm) state ppid pgrp ...": comm may hold anything,
		// so parse from its closing parenthesis.
		if (fgets(stat, sizeof(stat), f) != NULL &&
		    (rp = strrchr(stat, ')')) != NULL &&
		    sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 &&
		    pgrp == (long)pgid && state != 'Z') {
			alive = true;
		}
		fclose(f);
	}
	closedir(d);
	return alive;
}

// Runs "bash demo build [flag]" in its own process group, whose id goes to
// *pgid, collecting stdout and stderr. Returns the wait status, or -1 on
// timeout (the group is then killed).
static int
run_demo(const char *demo, const char *build, const char *flag, output *out,
    pid_t *pgid)
{
	int     fds[2];
	pid_t   pid;
	int     status      = 0;
	bool    exited      = false;
	int64_t deadline    = mono_ms() + DEMO_DEADLINE_MS;
	int64_t drain_until = 0;

	cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
	fflush(NULL);
	if ((pid = fork()) == 0) {
		// A group of its own: on timeout, or if something survives,
		// the whole tree is found and killed in one kill(-pgid).
		setpgid(0, 0);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		close(fds[1]);
		execlp("bash", "bash", demo, build, flag, (char *)NULL);
		_exit(127);
	}
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	setpgid(pid, pid); // also here: no race with the child's own call
	*pgid = pid;
	close(fds[1]);

	// Read until EOF. A leftover process holding the pipe would keep it
	// open forever, so once bash is gone we read only what is buffered.
	for (;;) {
		struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
		char          chunk[4096];
		ssize_t       n;
		int64_t       now = mono_ms();

		if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
			exited      = true;
			drain_until = now + 2000;
		}
		if (now >= deadline || (exited && now >= drain_until)) {
			break;
		}
		if (poll(&pfd, 1, 100) <= 0) {
			continue;
		}
		if ((n = read(fds[0], chunk, sizeof(chunk))) <= 0) {
			break;
		}
		output_add(out, chunk, (size_t)n);
	}
	close(fds[0]);
	// EOF can come just before bash is gone: wait for it, within the
	// same deadline.
	while (!exited && mono_ms() < deadline) {
		struct timespec ts = {0, 20 * 1000000L};

		if (waitpid(pid, &status, WNOHANG) == pid) {
			exited = true;
		} else {
			nanosleep(&ts, NULL);
		}
	}
	if (!exited) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		return -1;
	}
	return status;
}

// Runs the demo with flag (NULL: none) and checks its outcomes.
static void
check_demo(const char *flag)
{
	static const char *const expected[] = {
	    "RESULT 2pc success: COMMITTED (as expected)",
	    "RESULT 2pc refused: ABORTED (as expected)",
	    "RESULT saga success: COMMITTED (as expected)",
	    "RESULT saga refused: COMPENSATED (as expected)",
	    "all four outcomes as expected",
	};
	char     build[PATH_MAX], demo[PATH_MAX + 32], exe[PATH_MAX + 64];
	output   out = {0};
	int      status;
	pid_t    pgid = 0;
	bool     survivors;
	unsigned missing = 0;

	cr_assert(find_build_dir(build, sizeof(build)),
	    "DTXD_BIN is not set or not a file; run this test through ctest");
	snprintf(exe, sizeof(exe), "%s/samples/orders/order-client", build);
	if (access(exe, X_OK) != 0) {
		cr_skip_test(
		    "samples not built (DTX_BUILD_SAMPLES=OFF?): %s", exe);
	}
	cr_assert(find_demo(build, demo, sizeof(demo)),
	    "cannot find %s (set DTX_ORDERS_DEMO to its path)", DEMO_PATH);

	// The same demo with dtxd on the suite's PostgreSQL (dtx.samples.
	// orders.pg): demo.sh passes the connection string on to dtxd.
	if (dtxt_pg_store_wanted()) {
		char dir[DTXT_PATH_MAX], data[DTXT_PATH_MAX + 8], conn[512];
		cr_assert_eq(dtxt_tmpdir(dir, sizeof(dir)), 0);
		snprintf(data, sizeof(data), "%s/dtxd", dir);
		cr_assert_eq(dtxt_pg_store_conn(data, conn, sizeof(conn)), 0,
		    "no database for dtxd in the suite's PostgreSQL");
		setenv("DTX_DEMO_STORE_CONN", conn, 1);
	}
	status = run_demo(demo, build, flag, &out, &pgid);
	dtxt_cleanup();

	// Everything the demo started must be gone shortly after it exits.
	// Orphans are reaped by init, not at once, so allow a few seconds.
	survivors = group_alive(pgid);
	for (int i = 0; i < 50 && survivors; i++) {
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
		survivors = group_alive(pgid);
	}
	if (survivors) {
		kill(-pgid, SIGKILL);
	}

	// The output is the best diagnosis on failure; CTest shows it with
	// --output-on-failure.
	fprintf(stderr, "---- %s %s\n%s---- end of demo output\n", demo, build,
	    out.buf != NULL ? out.buf : "");
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		if (out.buf == NULL || strstr(out.buf, expected[i]) == NULL) {
			cr_log_error("demo output lacks \"%s\"", expected[i]);
			missing++;
		}
	}
	free(out.buf);
	cr_assert_neq(status, -1, "demo.sh still running after %d s: killed",
	    DEMO_DEADLINE_MS / 1000);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "demo.sh failed (wait status 0x%x)", (unsigned)status);
	cr_assert_eq(missing, 0, "%u expected lines missing", missing);
	cr_assert_not(survivors, "processes started by demo.sh survived it");
}

Test(orders, demo_runs_the_four_orders_with_the_expected_outcomes,
    .timeout = 280)
{
	check_demo(NULL);
}

// The same over mutual TLS on every connection (certificates made by the
// demo with samples/tls/make-certs.sh).
Test(orders, demo_runs_the_four_orders_over_mutual_tls, .timeout = 280)
{
	check_demo("--tls");
}
