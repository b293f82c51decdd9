// SPDX-License-Identifier: MIT
//
// harness: real processes for the integration and fault suites (see
// harness.h). Everything started or made here goes into a small registry
// kept in this test process; dtxt_cleanup() empties it, and it is also
// registered with atexit() on first use. A child is told to die with the
// test process (PR_SET_PDEATHSIG), which covers the cases the registry
// cannot: the test process crashing or being killed by CTest's timeout.
// Between fork() and exec() the child calls only async-signal-safe
// functions, because the test process has libdtx's threads: the log file
// and the environment are prepared before the fork.

#include "harness.h"

#include <nng/nng.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "loopback_port.h"
#include "pg.h"
#include "strs.h"

extern char **environ;

#define MAX_DIRS 32

// The registry. A test is one process (Criterion forks one per test), so a
// file-scope table is per-test state here, not shared mutable state. It
// grows: a soak restarts processes for as long as it runs. Entries are
// pointers, so growing it leaves every dtxt_proc where the test has it.
static dtxt_proc **procs;
static size_t      nprocs;
static size_t      capprocs;
static char       *dirs[MAX_DIRS];
static size_t      ndirs;
static bool        atexit_done;

static void
cleanup_at_exit(void)
{
	dtxt_cleanup();
	// nng frees closed sockets' dialers and pipes on its own reaper
	// thread, after nng_close has returned: a test process that exits at
	// once can leave some unfreed, which LeakSanitizer (its check runs
	// after this handler) reports. nng_fini waits for the reaper.
	nng_fini();
}

static void
registry_init(void)
{
	if (!atexit_done) {
		atexit_done = true;
		atexit(cleanup_at_exit);
	}
}

void
dtxt_sleep_ms(int ms)
{
	struct timespec ts;

	if (ms <= 0) {
		return;
	}
	ts.tv_sec  = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

int
dtxt_wait_until(dtxt_cond cond, void *arg, int poll_ms, int timeout_ms)
{
	int64_t deadline = dtxi_mono_ms() + timeout_ms;

	while (!cond(arg)) {
		if (dtxi_mono_ms() >= deadline) {
			return cond(arg) ? 0 : ETIMEDOUT;
		}
		dtxt_sleep_ms(poll_ms);
	}
	return 0;
}

typedef struct text_in_file {
	const char *path;
	const char *text;
	int         times;
} text_in_file;

static int
has_text(void *arg)
{
	text_in_file *t   = arg;
	char         *all = dtxt_read_file(t->path);
	const char   *at  = all;
	int           n   = 0;

	while (n < t->times && (at = strstr(at, t->text)) != NULL) {
		n++;
		at++;
	}
	free(all);
	return n >= t->times;
}

int
dtxt_wait_text(const char *path, const char *text, int times, int timeout_ms)
{
	text_in_file t = {path, text, times};

	return dtxt_wait_until(has_text, &t, 20, timeout_ms);
}

typedef struct failed_call {
	dtx_tx *tx;
	int     branch;
} failed_call;

static int
has_failed_call(void *arg)
{
	failed_call      *f = arg;
	dtx_state         st;
	dtx_branch_result r;

	if (dtx_tx_status(f->tx, &st) != 0) {
		return 0;
	}
	for (unsigned i = 0; i < dtx_tx_branch_count(f->tx); i++) {
		if ((f->branch < 0 || (unsigned)f->branch == i) &&
		    dtx_tx_branch_result(f->tx, i, &r) == 0 &&
		    r.status == DTX_BRANCH_NONE && r.message != NULL &&
		    r.message[0] != '\0') {
			return 1;
		}
	}
	return 0;
}

int
dtxt_wait_failed_call(dtx_tx *tx, int branch, int timeout_ms)
{
	failed_call f = {tx, branch};

	return dtxt_wait_until(has_failed_call, &f, 20, timeout_ms);
}

void
dtxt_cleanup(void)
{
	bool keep = getenv("DTXT_KEEP") != NULL;

	for (size_t i = 0; i < nprocs; i++) {
		dtxt_kill(procs[i]);
		free(procs[i]);
		procs[i] = NULL;
	}
	nprocs = 0;
	free(procs);
	procs    = NULL;
	capprocs = 0;
	for (size_t i = 0; i < ndirs; i++) {
		if (keep) {
			fprintf(stderr, "dtxt: kept %s\n", dirs[i]);
		} else {
			dtxt_rmtree(dirs[i]);
		}
		free(dirs[i]);
		dirs[i] = NULL;
	}
	ndirs = 0;
}

int
dtxt_tmpdir(char *out, size_t cap)
{
	const char *tmp = getenv("TMPDIR");
	char        path[DTXT_PATH_MAX];

	registry_init();
	if (tmp == NULL || tmp[0] == '\0') {
		tmp = "/tmp";
	}
	snprintf(path, sizeof(path), "%s/dtxt.XXXXXX", tmp);
	if (mkdtemp(path) == NULL) {
		return errno;
	}
	if (ndirs == MAX_DIRS || strlen(path) >= cap) {
		dtxt_rmtree(path);
		return ENOSPC;
	}
	if ((dirs[ndirs] = strdup(path)) == NULL) {
		dtxt_rmtree(path);
		return ENOMEM;
	}
	ndirs++;
	dtxi_strlcpy(out, path, cap);
	return 0;
}

int
dtxt_rmtree(const char *path)
{
	struct stat    st;
	DIR           *d;
	struct dirent *e;
	int            rv = 0;

	if (lstat(path, &st) != 0) {
		return errno == ENOENT ? 0 : errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		return unlink(path) == 0 ? 0 : errno;
	}
	if ((d = opendir(path)) == NULL) {
		return errno;
	}
	while ((e = readdir(d)) != NULL) {
		char child[DTXT_PATH_MAX];
		int  r;

		if (strcmp(e->d_name, ".") == 0 ||
		    strcmp(e->d_name, "..") == 0) {
			continue;
		}
		snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
		if ((r = dtxt_rmtree(child)) != 0 && rv == 0) {
			rv = r;
		}
	}
	closedir(d);
	if (rmdir(path) != 0 && rv == 0) {
		rv = errno;
	}
	return rv;
}

int
dtxt_free_url(char *out, size_t cap)
{
	int port = dtxi_loopback_port();

	if (port <= 0) {
		return -1;
	}
	snprintf(out, cap, "tcp://127.0.0.1:%d", port);
	return 0;
}

// Builds the child's environment: environ with env's entries replacing or
// adding variables. The strings are shared, only the array is allocated.
static char **
build_env(char *const env[])
{
	size_t n = 0, m = 0, k = 0;
	char **out;

	while (environ != NULL && environ[n] != NULL) {
		n++;
	}
	while (env != NULL && env[m] != NULL) {
		m++;
	}
	if ((out = calloc(n + m + 1, sizeof(*out))) == NULL) {
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		const char *eq       = strchr(environ[i], '=');
		size_t      key      = eq ? (size_t)(eq - environ[i]) + 1 : 0;
		bool        replaced = false;

		for (size_t j = 0; key > 0 && j < m; j++) {
			if (strncmp(env[j], environ[i], key) == 0) {
				replaced = true;
			}
		}
		if (!replaced) {
			out[k++] = environ[i];
		}
	}
	for (size_t j = 0; j < m; j++) {
		out[k++] = env[j];
	}
	out[k] = NULL;
	return out;
}

static void
child_fail(const char *what, const char *prog)
{
	// Only write() here: we are between fork() and exec().
	const char *err = strerror(errno);
	(void)!write(2, "dtxt: ", 6);
	(void)!write(2, what, strlen(what));
	(void)!write(2, " ", 1);
	(void)!write(2, prog, strlen(prog));
	(void)!write(2, ": ", 2);
	(void)!write(2, err, strlen(err));
	(void)!write(2, "\n", 1);
	_exit(127);
}

dtxt_proc *
dtxt_spawn(
    const char *name, char *const argv[], char *const env[], const char *log)
{
	dtxt_proc *p;
	char     **envp;
	int        fd;
	pid_t      parent = getpid();
	pid_t      pid;

	registry_init();
	if (nprocs == capprocs) {
		size_t      cap = capprocs == 0 ? 64 : capprocs * 2;
		dtxt_proc **np  = realloc(procs, cap * sizeof(*np));
		if (np == NULL) {
			return NULL;
		}
		procs    = np;
		capprocs = cap;
	}
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		return NULL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		abort();
	}
	dtxi_strlcpy(p->name, name, sizeof(p->name));
	dtxi_strlcpy(p->log, log, sizeof(p->log));
	envp = build_env(env);
	fflush(NULL);
	if ((pid = fork()) < 0) {
		close(fd);
		free(envp);
		free(p);
		return NULL;
	}
	if (pid == 0) {
		sigset_t all;

		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
			child_fail("prctl for", argv[0]);
		}
		if (getppid() != parent) {
			_exit(127); // the test process is already gone
		}
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
			child_fail("dup2 for", argv[0]);
		}
		execve(argv[0], argv, envp);
		child_fail("cannot execute", argv[0]);
	}
	close(fd);
	free(envp);
	p->pid          = pid;
	procs[nprocs++] = p;
	return p;
}

static void
decode_status(int status, dtxt_exit *how)
{
	memset(how, 0, sizeof(*how));
	if (WIFEXITED(status)) {
		how->exited = true;
		how->code   = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		how->signaled = true;
		how->signo    = WTERMSIG(status);
	}
}

// One non-blocking reap attempt: true once p has ended.
static bool
try_reap(dtxt_proc *p)
{
	int   status;
	pid_t r;

	if (p->reaped) {
		return true;
	}
	r = waitpid(p->pid, &status, WNOHANG);
	if (r == p->pid) {
		decode_status(status, &p->how);
		p->reaped = true;
	} else if (r < 0 && errno == ECHILD) {
		// Not ours any more (reaped elsewhere): treat as ended.
		memset(&p->how, 0, sizeof(p->how));
		p->reaped = true;
	}
	return p->reaped;
}

int
dtxt_wait(dtxt_proc *p, int timeout_ms, dtxt_exit *how)
{
	int64_t end = dtxi_mono_ms() + timeout_ms;

	while (!try_reap(p)) {
		if (timeout_ms >= 0 && dtxi_mono_ms() >= end) {
			return ETIMEDOUT;
		}
		dtxt_sleep_ms(5);
	}
	if (how != NULL) {
		*how = p->how;
	}
	return 0;
}

bool
dtxt_alive(dtxt_proc *p)
{
	return !try_reap(p);
}

int
dtxt_signal(dtxt_proc *p, int sig)
{
	if (try_reap(p)) {
		return ESRCH;
	}
	return kill(p->pid, sig) == 0 ? 0 : errno;
}

int
dtxt_kill(dtxt_proc *p)
{
	if (p == NULL || try_reap(p)) {
		return 0;
	}
	if (kill(p->pid, SIGKILL) != 0 && errno != ESRCH) {
		return errno;
	}
	return dtxt_wait(p, -1, NULL);
}

int
dtxt_term(dtxt_proc *p, int timeout_ms, dtxt_exit *how)
{
	int rv;

	if (!try_reap(p)) {
		kill(p->pid, SIGTERM);
	}
	if ((rv = dtxt_wait(p, timeout_ms, how)) != 0) {
		dtxt_kill(p);
		return ETIMEDOUT;
	}
	return 0;
}

// Parses the port of "tcp://HOST:PORT"; -1 when there is none.
static int
url_port(const char *url)
{
	const char *colon = strrchr(url, ':');
	char       *end;
	long        port;

	if (strncmp(url, "tcp://", 6) != 0 || colon == NULL ||
	    colon < url + 6) {
		return -1;
	}
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port <= 0 || port > 65535) {
		return -1;
	}
	return (int)port;
}

static bool
tcp_connects(int port)
{
	struct sockaddr_in sa;
	int                fd;
	bool               ok;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		return false;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port        = htons((uint16_t)port);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

int
dtxt_wait_tcp(dtxt_proc *p, const char *url, int timeout_ms)
{
	int     port = url_port(url);
	int64_t end  = dtxi_mono_ms() + timeout_ms;

	if (port < 0) {
		return EINVAL;
	}
	for (;;) {
		if (tcp_connects(port)) {
			return 0;
		}
		if (p != NULL && !dtxt_alive(p)) {
			return ECHILD;
		}
		if (dtxi_mono_ms() >= end) {
			return ETIMEDOUT;
		}
		dtxt_sleep_ms(10);
	}
}

int
dtxt_wait_dtxd(dtxt_proc *p, const char *url, int timeout_ms)
{
	dtx_client *c;
	int64_t     end = dtxi_mono_ms() + timeout_ms;
	int         rv;

	if ((rv = dtx_client_open(&c, url)) != 0) {
		return rv;
	}
	dtx_client_set_timeout_ms(c, 200);
	for (;;) {
		dtx_state st;

		if (dtx_client_resolve(c, "probe", &st) == 0) {
			rv = 0;
			break;
		}
		if (p != NULL && !dtxt_alive(p)) {
			rv = ECHILD;
			break;
		}
		if (dtxi_mono_ms() >= end) {
			rv = ETIMEDOUT;
			break;
		}
		dtxt_sleep_ms(20);
	}
	dtx_client_close(c);
	return rv;
}

char *
dtxt_read_file(const char *path)
{
	size_t cap = 4096, n = 0;
	char  *buf = malloc(cap);
	int    fd;

	if (buf == NULL) {
		abort();
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		for (;;) {
			ssize_t r;
			if (n + 1 >= cap) {
				cap *= 2;
				if ((buf = realloc(buf, cap)) == NULL) {
					abort();
				}
			}
			r = read(fd, buf + n, cap - n - 1);
			if (r < 0 && errno == EINTR) {
				continue;
			}
			if (r <= 0) {
				break;
			}
			n += (size_t)r;
		}
		close(fd);
	}
	buf[n] = '\0';
	return buf;
}

static const char *
env_path(const char *var)
{
	const char *v = getenv(var);

	if (v == NULL || v[0] == '\0') {
		fprintf(stderr,
		    "dtxt: %s is not set (run the suite via ctest)\n", var);
		abort();
	}
	return v;
}

const char *
dtxt_dtxd_bin(void)
{
	return env_path("DTXD_BIN");
}

const char *
dtxt_testpart_bin(void)
{
	return env_path("DTX_TESTPART_BIN");
}

dtxt_proc *
dtxt_start_dtxd(const char *url, const char *data_dir, const char *log,
    const dtxt_dtxd_opts *o)
{
	static const dtxt_dtxd_opts none = {0};
	char                        timeout[24], call_timeout[24], retries[24];
	char                        crash[128];
	char                        conn[512];
	char                       *argv[40];
	char                       *env[2] = {NULL, NULL};
	size_t                      n      = 0;
	dtxt_proc                  *p;

	if (o == NULL) {
		o = &none;
	}
	argv[n++] = (char *)dtxt_dtxd_bin();
	argv[n++] = "--listen";
	argv[n++] = (char *)url;
	if (o->store_conn != NULL || dtxt_pg_store_wanted()) {
		if (o->store_conn != NULL) {
			dtxi_strlcpy(conn, o->store_conn, sizeof(conn));
		} else if (dtxt_pg_store_conn(data_dir, conn, sizeof(conn)) !=
		    0) {
			return NULL;
		}
		argv[n++] = "--store";
		argv[n++] = "postgres";
		argv[n++] = "--store-conn";
		argv[n++] = conn;
	} else {
		argv[n++] = "--data-dir";
		argv[n++] = (char *)data_dir;
	}
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	argv[n++] = "--backoff-base-ms";
	argv[n++] = "20";
	argv[n++] = "--backoff-max-ms";
	argv[n++] = "200";
	snprintf(call_timeout, sizeof(call_timeout), "%u",
	    o->call_timeout_ms ? o->call_timeout_ms : 500);
	argv[n++] = "--call-timeout-ms";
	argv[n++] = call_timeout;
	if (o->timeout_ms != 0) {
		snprintf(timeout, sizeof(timeout), "%u", o->timeout_ms);
		argv[n++] = "--timeout-ms";
		argv[n++] = timeout;
	}
	if (o->retries != 0) {
		snprintf(retries, sizeof(retries), "%u", o->retries);
		argv[n++] = "--retries";
		argv[n++] = retries;
	}
	for (size_t i = 0;
	     i < sizeof(o->extra) / sizeof(o->extra[0]) && o->extra[i] != NULL;
	     i++) {
		argv[n++] = (char *)o->extra[i];
	}
	argv[n] = NULL;
	if (o->crash_at != NULL) {
		snprintf(
		    crash, sizeof(crash), "DTXD_CRASH_AT=%s", o->crash_at);
		env[0] = crash;
	}
	if ((p = dtxt_spawn("dtxd", argv, env, log)) == NULL) {
		return NULL;
	}
	if (dtxt_wait_dtxd(p, url,
	        o != NULL && o->start_timeout_ms != 0
	            ? (int)o->start_timeout_ms
	            : 5000) != 0) {
		dtxt_kill(p);
		return NULL;
	}
	return p;
}

dtxt_proc *
dtxt_spawn_testpart(
    const char *url, const char *name, const char *calllog, const char *outlog)
{
	char *argv[] = {(char *)dtxt_testpart_bin(), "--listen", (char *)url,
	    "--log", (char *)calllog, "--name", (char *)name, NULL};

	return dtxt_spawn(name, argv, NULL, outlog);
}

dtxt_proc *
dtxt_start_testpart(
    const char *url, const char *name, const char *calllog, const char *outlog)
{
	dtxt_proc *p = dtxt_spawn_testpart(url, name, calllog, outlog);

	if (p == NULL) {
		return NULL;
	}
	if (dtxt_wait_tcp(p, url, 5000) != 0) {
		dtxt_kill(p);
		return NULL;
	}
	return p;
}

// ---------------------------------------------------------------------------
// The call log
// ---------------------------------------------------------------------------

static bool
parse_line(const char *s, dtxt_line *out)
{
	char     kind[16];
	unsigned branch, attempt;

	memset(out, 0, sizeof(*out));
	if (sscanf(s, "%15s", kind) != 1) {
		return false;
	}
	if (strcmp(kind, "CALL") == 0) {
		out->kind = DTXT_CALL;
		if (sscanf(s, "CALL %15s %128s %u %u %15s", out->phase,
		        out->gid, &branch, &attempt, out->result) != 5) {
			return false;
		}
		out->branch  = branch;
		out->attempt = attempt;
		return true;
	}
	if (strcmp(kind, "APPLY") == 0 || strcmp(kind, "UNDO") == 0) {
		out->kind = kind[0] == 'A' ? DTXT_APPLY : DTXT_UNDO;
		if (sscanf(s, "%*s %128s %u", out->gid, &branch) != 2) {
			return false;
		}
		out->branch = branch;
		return true;
	}
	return false;
}

void
dtxt_log_load(dtxt_log *l, const char *path)
{
	char  *text = dtxt_read_file(path);
	char  *save = NULL;
	size_t cap  = 16;

	l->n = 0;
	if ((l->lines = malloc(cap * sizeof(*l->lines))) == NULL) {
		abort();
	}
	for (char *s = strtok_r(text, "\n", &save); s != NULL;
	     s       = strtok_r(NULL, "\n", &save)) {
		if (l->n == cap) {
			cap *= 2;
			l->lines = realloc(l->lines, cap * sizeof(*l->lines));
			if (l->lines == NULL) {
				abort();
			}
		}
		if (parse_line(s, &l->lines[l->n])) {
			l->n++;
		}
	}
	free(text);
}

void
dtxt_log_fini(dtxt_log *l)
{
	free(l->lines);
	l->lines = NULL;
	l->n     = 0;
}

static bool
line_matches(const dtxt_line *x, dtxt_kind kind, const char *gid, int branch,
    const char *phase, const char *result)
{
	return x->kind == kind && (gid == NULL || strcmp(x->gid, gid) == 0) &&
	    (branch < 0 || x->branch == (unsigned)branch) &&
	    (phase == NULL || strcmp(x->phase, phase) == 0) &&
	    (result == NULL || strcmp(x->result, result) == 0);
}

size_t
dtxt_log_count(const dtxt_log *l, dtxt_kind kind, const char *gid, int branch,
    const char *phase, const char *result)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++) {
		if (line_matches(
		        &l->lines[i], kind, gid, branch, phase, result)) {
			n++;
		}
	}
	return n;
}

long
dtxt_log_find(const dtxt_log *l, size_t from, dtxt_kind kind, const char *gid,
    int branch, const char *phase, const char *result)
{
	for (size_t i = from; i < l->n; i++) {
		if (line_matches(
		        &l->lines[i], kind, gid, branch, phase, result)) {
			return (long)i;
		}
	}
	return -1;
}

long
dtxt_log_effect(const dtxt_log *l, const char *gid, int branch)
{
	return (long)dtxt_log_count(l, DTXT_APPLY, gid, branch, NULL, NULL) -
	    (long)dtxt_log_count(l, DTXT_UNDO, gid, branch, NULL, NULL);
}

// ---------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------

int
dtxt_world_init(dtxt_world *w)
{
	int rv;

	memset(w, 0, sizeof(*w));
	if ((rv = dtxt_tmpdir(w->dir, sizeof(w->dir))) != 0) {
		return rv;
	}
	snprintf(w->data, sizeof(w->data), "%s/data", w->dir);
	snprintf(w->log, sizeof(w->log), "%s/dtxd.log", w->dir);
	if (dtxt_free_url(w->url, sizeof(w->url)) != 0) {
		return EADDRNOTAVAIL;
	}
	return 0;
}

int
dtxt_world_start_dtxd(dtxt_world *w, const dtxt_dtxd_opts *o)
{
	if ((w->dtxd = dtxt_start_dtxd(w->url, w->data, w->log, o)) == NULL) {
		return -1;
	}
	if (w->client == NULL) {
		if (dtx_client_open(&w->client, w->url) != 0) {
			w->client = NULL;
			return -1;
		}
		dtx_client_set_timeout_ms(w->client, 5000);
	}
	return 0;
}

void
dtxt_world_fini(dtxt_world *w)
{
	dtx_client_close(w->client);
	w->client = NULL;
	for (unsigned i = 0; i < w->nparts; i++) {
		dtxt_kill(w->parts[i].proc);
	}
	dtxt_kill(w->dtxd);
}

dtxt_part *
dtxt_world_part(dtxt_world *w, const char *name)
{
	dtxt_part *p;
	char       dir[sizeof(w->dir)];
	char       pname[sizeof(p->name)];

	if (w->nparts == DTXT_PARTS_MAX) {
		return NULL;
	}
	p = &w->parts[w->nparts++];
	memset(p, 0, sizeof(*p));
	dtxi_strlcpy(p->name, name, sizeof(p->name));
	if (dtxt_free_url(p->url, sizeof(p->url)) != 0) {
		return NULL;
	}
	dtxi_strlcpy(dir, w->dir, sizeof(dir));
	dtxi_strlcpy(pname, name, sizeof(pname));
	snprintf(p->calllog, sizeof(p->calllog), "%s/%s.calls", dir, pname);
	snprintf(p->outlog, sizeof(p->outlog), "%s/%s.log", dir, pname);
	return p;
}

int
dtxt_part_start(dtxt_part *p)
{
	p->proc = dtxt_start_testpart(p->url, p->name, p->calllog, p->outlog);
	return p->proc == NULL ? -1 : 0;
}

static void
dump_file(const char *title, const char *path)
{
	char *text = dtxt_read_file(path);

	fprintf(stderr, "----- %s (%s)\n%s", title, path, text);
	free(text);
}

void
dtxt_world_dump(const dtxt_world *w)
{
	dump_file("dtxd output", w->log);
	for (unsigned i = 0; i < w->nparts; i++) {
		dump_file(w->parts[i].name, w->parts[i].calllog);
		dump_file(w->parts[i].name, w->parts[i].outlog);
	}
	fprintf(stderr, "-----\n");
}

typedef struct call_in_log {
	const char *path;
	dtxt_kind   kind;
	const char *gid;
	int         branch;
	const char *phase;
	const char *result;
} call_in_log;

static int
has_call(void *arg)
{
	call_in_log *c = arg;
	dtxt_log     l;
	size_t       n;

	dtxt_log_load(&l, c->path);
	n = dtxt_log_count(
	    &l, c->kind, c->gid, c->branch, c->phase, c->result);
	dtxt_log_fini(&l);
	return n > 0;
}

int
dtxt_wait_log(const char *path, dtxt_kind kind, const char *gid, int branch,
    const char *phase, const char *result, int timeout_ms)
{
	call_in_log c = {path, kind, gid, branch, phase, result};

	return dtxt_wait_until(has_call, &c, 20, timeout_ms);
}
