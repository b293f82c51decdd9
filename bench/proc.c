// SPDX-License-Identifier: MIT
//
// proc: see proc.h. Between fork() and exec() the child only makes
// async-signal-safe calls, since dtx-bench has nng's threads running.

#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pid_t
bench_spawn(char *const argv[], const char *log)
{
	pid_t parent = getpid();
	pid_t pid;
	int   fd;

	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (pid == 0) {
		sigset_t none;

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
		    getppid() != parent) {
			_exit(127);
		}
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
			_exit(127);
		}
		execv(argv[0], argv);
		(void)!write(2, "dtx-bench: cannot execute ", 26);
		(void)!write(2, argv[0], strlen(argv[0]));
		(void)!write(2, "\n", 1);
		_exit(127);
	}
	close(fd);
	return pid;
}

bool
bench_alive(pid_t pid)
{
	int st;

	if (pid <= 0) {
		return false;
	}
	return waitpid(pid, &st, WNOHANG) == 0;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int
bench_stop(pid_t pid, int timeout_ms)
{
	int st;

	if (pid <= 0 || !bench_alive(pid)) {
		return -1;
	}
	kill(pid, SIGTERM);
	for (int waited = 0; waited < timeout_ms; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD)) {
			return 0;
		}
		sleep_ms(10);
	}
	bench_kill(pid);
	return -1;
}

void
bench_kill(pid_t pid)
{
	int st;

	if (pid <= 0) {
		return;
	}
	kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
}

double
bench_proc_cpu_s(pid_t pid)
{
	char               path[64];
	char               buf[1024];
	FILE              *f;
	size_t             n;
	char              *p;
	unsigned long long ut, st;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	// The command name may hold spaces and parentheses: fields count
	// from the last ')'. utime and stime are fields 14 and 15.
	if ((p = strrchr(buf, ')')) == NULL) {
		return -1;
	}
	if (sscanf(p + 2,
	        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
	        &st) != 2) {
		return -1;
	}
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

uint64_t
bench_proc_status_kib(pid_t pid, const char *field)
{
	char               path[64];
	char               line[256];
	size_t             fl = strlen(field);
	unsigned long long v  = 0;
	FILE              *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL) {
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
			sscanf(line + fl + 1, "%llu", &v);
			break;
		}
	}
	fclose(f);
	return v;
}

double
bench_self_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

int64_t
bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
bench_mkdtemp(char *out, size_t cap)
{
	const char *t = getenv("TMPDIR");

	if (t == NULL || t[0] == '\0') {
		t = "/tmp";
	}
	if ((size_t)snprintf(out, cap, "%s/dtx-bench.XXXXXX", t) >= cap) {
		return ENAMETOOLONG;
	}
	return mkdtemp(out) != NULL ? 0 : errno;
}

// Calls fn on every entry below path and then on path itself (links not
// followed), with its lstat; what bench_rmtree and bench_dir_bytes share.
static void
walk(const char *path, void (*fn)(const char *, const struct stat *, void *),
    void        *arg)
{
	struct stat    st;
	DIR           *d;
	struct dirent *e;

	if (lstat(path, &st) != 0) {
		return;
	}
	if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			char sub[4096];
			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0) {
				continue;
			}
			if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path,
			        e->d_name) < sizeof(sub)) {
				walk(sub, fn, arg);
			}
		}
		closedir(d);
	}
	fn(path, &st, arg);
}

static void
remove_one(const char *path, const struct stat *st, void *arg)
{
	(void)arg;
	if (S_ISDIR(st->st_mode)) {
		rmdir(path);
	} else {
		unlink(path);
	}
}

void
bench_rmtree(const char *path)
{
	walk(path, remove_one, NULL);
}

bool
bench_proc_reset_hwm(pid_t pid)
{
	char  path[64];
	FILE *f;
	bool  ok;

	snprintf(path, sizeof(path), "/proc/%ld/clear_refs", (long)pid);
	if ((f = fopen(path, "w")) == NULL) {
		return false;
	}
	ok = fputs("5", f) >= 0;
	return fclose(f) == 0 && ok;
}

static void
add_size(const char *path, const struct stat *st, void *arg)
{
	(void)path;
	if (S_ISREG(st->st_mode)) {
		*(uint64_t *)arg += (uint64_t)st->st_size;
	}
}

uint64_t
bench_dir_bytes(const char *path)
{
	uint64_t sum = 0;

	walk(path, add_size, &sum);
	return sum;
}

double
bench_loadavg(void)
{
	FILE  *f = fopen("/proc/loadavg", "r");
	double l = -1;

	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1) {
			l = -1;
		}
		fclose(f);
	}
	return l;
}

void
bench_self_dir(char *out, size_t cap)
{
	ssize_t n = readlink("/proc/self/exe", out, cap - 1);
	char   *slash;

	if (n <= 0) {
		snprintf(out, cap, ".");
		return;
	}
	out[n] = '\0';
	if ((slash = strrchr(out, '/')) != NULL) {
		*slash = '\0';
	}
}

bool
bench_find_program(
    const char *name, const char *const candidates[], char *out, size_t cap)
{
	const char *path = getenv("PATH");

	for (size_t i = 0; candidates != NULL && candidates[i] != NULL; i++) {
		if (access(candidates[i], X_OK) == 0) {
			snprintf(out, cap, "%s", candidates[i]);
			return true;
		}
	}
	while (path != NULL && path[0] != '\0') {
		const char *colon = strchr(path, ':');
		size_t len = colon ? (size_t)(colon - path) : strlen(path);

		if ((size_t)snprintf(
		        out, cap, "%.*s/%s", (int)len, path, name) < cap &&
		    access(out, X_OK) == 0) {
			return true;
		}
		path = colon ? colon + 1 : NULL;
	}
	return false;
}
