// SPDX-License-Identifier: MIT
//
// pg: a private PostgreSQL server for tests (see pg.h).

#include "pg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include "clock.h"
#include "loopback_port.h"
#include "strs.h"

#define PG_ENV_PORT "DTXT_PG_PORT"
#define PG_ENV_DIR  "DTXT_PG_DIR"

static dtxt_pg suite_pg;

static const char *
bindir(void)
{
	const char *d = getenv("DTXT_PG_BINDIR");

	return d != NULL && *d != '\0' ? d : "/usr/lib/postgresql/15/bin";
}

// The postgres user's ids when we are root (PostgreSQL refuses to run as
// root), else false.
static bool
pg_user(uid_t *uid, gid_t *gid)
{
	struct passwd *pw;

	if (geteuid() != 0) {
		return false;
	}
	if ((pw = getpwnam("postgres")) == NULL) {
		fprintf(stderr,
		    "pg: running as root and there is no postgres "
		    "user to run PostgreSQL as\n");
		return false;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return true;
}

// Starts prog (a PostgreSQL program, or psql) with args, as the postgres
// user when we are root and as_pg is set, with its output appended to log
// (NULL: /dev/null). The child gets SIGKILL when the test process dies.
// Returns its pid, or -1.
static pid_t
spawn(const char *prog, const char *const *args, bool as_pg, const char *log)
{
	char        path[DTXT_PATH_MAX];
	const char *argv[40];
	size_t      n = 0;
	uid_t       uid;
	gid_t       gid;
	bool        drop = as_pg && pg_user(&uid, &gid);
	char        ru[32], rg[32];
	pid_t       pid;

	snprintf(path, sizeof(path), "%s/%s", bindir(), prog);
	if (drop) {
		// setpriv sets the parent-death signal after it changes
		// the ids (a change of ids clears one set before).
		snprintf(ru, sizeof(ru), "--reuid=%u", (unsigned)uid);
		snprintf(rg, sizeof(rg), "--regid=%u", (unsigned)gid);
		argv[n++] = "/usr/bin/setpriv";
		argv[n++] = ru;
		argv[n++] = rg;
		argv[n++] = "--init-groups";
		argv[n++] = "--pdeathsig=KILL";
	}
	argv[n++] = path;
	for (size_t i = 0; args[i] != NULL && n < 39; i++) {
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	fflush(NULL);
	if ((pid = fork()) < 0) {
		return -1;
	}
	if (pid == 0) {
		int fd = open(log != NULL ? log : "/dev/null",
		    O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (!drop) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
		}
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		// The server must not live in the test's session: a ^C at
		// the terminal is for the test.
		setpgid(0, 0);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

// Runs prog to its end; 0 when it exited 0.
static int
run(const char *prog, const char *const *args, bool as_pg, const char *log)
{
	pid_t pid = spawn(prog, args, as_pg, log);
	int   st;

	if (pid < 0) {
		return -1;
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			return -1;
		}
	}
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int
append(const char *path, const char *text)
{
	FILE *f = fopen(path, "a");

	if (f == NULL) {
		return -1;
	}
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

// A fresh directory for a server, owned by the user it runs as.
static int
make_dir(dtxt_pg *pg)
{
	const char *tmp = getenv("TMPDIR");
	uid_t       uid;
	gid_t       gid;

	memset(pg, 0, sizeof(*pg));
	snprintf(pg->dir, sizeof(pg->dir), "%s/dtxt-pg.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(pg->dir) == NULL) {
		fprintf(stderr, "pg: mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	if (pg_user(&uid, &gid) && chown(pg->dir, uid, gid) != 0) {
		fprintf(stderr, "pg: chown: %s\n", strerror(errno));
		return -1;
	}
	snprintf(pg->data, sizeof(pg->data), "%s/data", pg->dir);
	snprintf(pg->log, sizeof(pg->log), "%s/server.log", pg->dir);
	if ((pg->port = dtxi_loopback_port()) < 0) {
		return -1;
	}
	return 0;
}

// The settings every test server gets: loopback only, its socket in its
// own directory, small, its log on stderr (our log file).
static int
base_conf(const dtxt_pg *pg, const char *extra)
{
	char conf[DTXT_PATH_MAX + 64], text[DTXT_PATH_MAX + 512];

	snprintf(conf, sizeof(conf), "%s/postgresql.conf", pg->data);
	snprintf(text, sizeof(text),
	    "\n# dtx tests\nlisten_addresses = '127.0.0.1'\nport = %d\n"
	    "unix_socket_directories = '%s'\nshared_buffers = 32MB\n"
	    "max_connections = 60\nlogging_collector = off\n"
	    "log_min_messages = warning\n",
	    pg->port, pg->dir);
	if (append(conf, text) != 0 ||
	    (extra != NULL && append(conf, extra) != 0)) {
		fprintf(stderr, "pg: cannot write %s\n", conf);
		return -1;
	}
	return 0;
}

int
dtxt_pg_init(dtxt_pg *pg, const char *extra_conf)
{
	const char *args[] = {"-D", pg->data, "-A", "trust", "-U", "postgres",
	    "--no-sync", "-E", "UTF8", "--locale=C", NULL};

	if (make_dir(pg) != 0) {
		return -1;
	}
	args[1] = pg->data;
	if (run("initdb", args, true, pg->log) != 0) {
		fprintf(stderr,
		    "pg: initdb failed (is postgresql-15 "
		    "installed?); see %s\n",
		    pg->log);
		return -1;
	}
	return base_conf(pg, extra_conf);
}

int
dtxt_pg_init_standby(dtxt_pg *pg, const dtxt_pg *primary, const char *name,
    const char *extra_conf)
{
	char port[16], conf[256];
	// -c fast: the backup's checkpoint at once, not spread over minutes
	// (checkpoint_completion_target of checkpoint_timeout).
	const char *args[] = {"-h", "127.0.0.1", "-p", port, "-U", "postgres",
	    "-D", NULL, "-R", "-X", "stream", "-c", "fast", "--no-sync", NULL};

	if (make_dir(pg) != 0) {
		return -1;
	}
	snprintf(port, sizeof(port), "%d", primary->port);
	args[7] = pg->data;
	if (run("pg_basebackup", args, true, pg->log) != 0) {
		fprintf(stderr, "pg: pg_basebackup failed; see %s\n", pg->log);
		return -1;
	}
	// The walreceiver names itself by cluster_name: what the primary's
	// synchronous_standby_names lists.
	snprintf(conf, sizeof(conf), "cluster_name = '%s'\n%s", name,
	    extra_conf != NULL ? extra_conf : "");
	return base_conf(pg, conf);
}

void
dtxt_pg_conninfo(const dtxt_pg *pg, const char *db, char *out, size_t cap)
{
	snprintf(out, cap, "host=127.0.0.1 port=%d user=postgres dbname=%s",
	    pg->port, db);
}

static int
ready(const dtxt_pg *pg)
{
	char        port[16];
	const char *args[] = {"-q", "-h", "127.0.0.1", "-p", port, "-U",
	    "postgres", "-d", "postgres", NULL};

	snprintf(port, sizeof(port), "%d", pg->port);
	return run("pg_isready", args, false, NULL) == 0;
}

int
dtxt_pg_start(dtxt_pg *pg)
{
	const char *args[] = {"-D", pg->data, NULL};

	if (pg->pid > 0) {
		return 0;
	}
	if ((pg->pid = spawn("postgres", args, true, pg->log)) < 0) {
		pg->pid = 0;
		return -1;
	}
	for (int i = 0; i < 400; i++) {
		int st;
		if (waitpid(pg->pid, &st, WNOHANG) == pg->pid) {
			pg->pid = 0;
			fprintf(stderr, "pg: the server exited; see %s\n",
			    pg->log);
			return -1;
		}
		if (ready(pg)) {
			return 0;
		}
		dtxt_sleep_ms(50);
	}
	fprintf(stderr, "pg: the server did not get ready; see %s\n", pg->log);
	dtxt_pg_stop(pg, true);
	return -1;
}

// Reads a process's parent and start time from /proc; false when it is
// gone. ("pid (comm) state ppid ... starttime" with starttime the 22nd
// field; comm may hold spaces.)
static bool
proc_stat(pid_t pid, long *ppid, unsigned long long *start)
{
	char  path[64], buf[1024], *rp;
	FILE *f;
	bool  ok = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL) {
		return false;
	}
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    (rp = strrchr(buf, ')')) != NULL) {
		ok =
		    sscanf(rp + 1,
		        " %*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u "
		        "%*d %*d %*d %*d %*d %*d %llu",
		        ppid, start) == 2;
	}
	fclose(f);
	return ok;
}

// Notes pg's postmaster's children (its backends) in pg->orphans.
static void
note_backends(dtxt_pg *pg)
{
	DIR *d   = opendir("/proc");
	int  cap = (int)(sizeof(pg->orphans) / sizeof(pg->orphans[0]));
	struct dirent *e;

	while (d != NULL && (e = readdir(d)) != NULL && pg->norphans < cap) {
		pid_t              pid = (pid_t)atol(e->d_name);
		long               ppid;
		unsigned long long start;

		if (pid > 0 && proc_stat(pid, &ppid, &start) &&
		    ppid == pg->pid) {
			pg->orphan_start[pg->norphans] = start;
			pg->orphans[pg->norphans++]    = pid;
		}
	}
	if (d != NULL) {
		closedir(d);
	}
}

// Kills the backends a crash left behind that still run (same pid, same
// start time: not a later process that reused the pid).
static void
kill_orphans(dtxt_pg *pg)
{
	for (int i = 0; i < pg->norphans; i++) {
		long               ppid;
		unsigned long long start;

		if (proc_stat(pg->orphans[i], &ppid, &start) &&
		    start == pg->orphan_start[i]) {
			kill(pg->orphans[i], SIGKILL);
		}
	}
	pg->norphans = 0;
}

void
dtxt_pg_stop(dtxt_pg *pg, bool crash)
{
	int st;

	if (pg->pid <= 0) {
		return;
	}
	if (crash) {
		note_backends(pg);
	}
	kill(pg->pid, crash ? SIGKILL : SIGINT);
	while (waitpid(pg->pid, &st, 0) < 0 && errno == EINTR) {
	}
	pg->pid = 0;
	if (crash) {
		// Its backends notice their postmaster is gone within a
		// moment; a new one may start right away regardless (they
		// no longer hold the port, and it checks for them).
		dtxt_sleep_ms(100);
	}
}

int
dtxt_pg_sql(const dtxt_pg *pg, const char *db, const char *sql)
{
	char        port[16];
	const char *args[] = {"-X", "-q", "-v", "ON_ERROR_STOP=1", "-h",
	    "127.0.0.1", "-p", port, "-U", "postgres", "-d", db, "-c", sql,
	    NULL};

	snprintf(port, sizeof(port), "%d", pg->port);
	return run("psql", args, false, pg->log);
}

int
dtxt_pg_query(
    const dtxt_pg *pg, const char *db, const char *sql, char *out, size_t cap)
{
	char        port[16], path[sizeof(pg->dir) + 16];
	const char *args[] = {"-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h",
	    "127.0.0.1", "-p", port, "-U", "postgres", "-d", db, "-c", sql,
	    NULL};
	char       *text;
	size_t      n;
	int         rv;

	snprintf(port, sizeof(port), "%d", pg->port);
	snprintf(path, sizeof(path), "%s/query.out", pg->dir);
	unlink(path);
	rv   = run("psql", args, false, path);
	text = dtxt_read_file(path);
	n    = strlen(text);
	while (n > 0 && text[n - 1] == '\n') {
		text[--n] = '\0';
	}
	dtxi_strlcpy(out, text, cap);
	free(text);
	return rv;
}

int
dtxt_pg_promote(dtxt_pg *pg)
{
	if (dtxt_pg_sql(pg, "postgres", "SELECT pg_promote(true, 20)") != 0) {
		fprintf(stderr, "pg: promotion failed; see %s\n", pg->log);
		return -1;
	}
	return 0;
}

int
dtxt_pg_wait_sync(const dtxt_pg *primary, const char *name, int timeout_ms)
{
	char    sql[256], out[64];
	int64_t until = dtxi_mono_ms() + timeout_ms;

	snprintf(sql, sizeof(sql),
	    "SELECT count(*) FROM pg_stat_replication WHERE application_name "
	    "= '%s' AND state = 'streaming' AND sync_state = 'sync'",
	    name);
	do {
		if (dtxt_pg_query(
		        primary, "postgres", sql, out, sizeof(out)) == 0 &&
		    strcmp(out, "1") == 0) {
			return 0;
		}
		dtxt_sleep_ms(100);
	} while (dtxi_mono_ms() < until);
	fprintf(stderr, "pg: standby %s is not synchronous after %d ms\n",
	    name, timeout_ms);
	return -1;
}

int
dtxt_pg_createdb(const dtxt_pg *pg, const char *name, char *out, size_t cap)
{
	char sql[256];

	snprintf(sql, sizeof(sql), "CREATE DATABASE \"%s\"", name);
	if (dtxt_pg_sql(pg, "postgres", sql) != 0) {
		fprintf(stderr, "pg: cannot create database %s\n", name);
		return -1;
	}
	dtxt_pg_conninfo(pg, name, out, cap);
	return 0;
}

void
dtxt_pg_fini(dtxt_pg *pg)
{
	dtxt_pg_stop(pg, false);
	kill_orphans(pg);
	if (pg->dir[0] == '\0') {
		return;
	}
	if (getenv("DTXT_KEEP") != NULL) {
		fprintf(stderr, "pg: kept %s\n", pg->dir);
	} else {
		dtxt_rmtree(pg->dir);
	}
	pg->dir[0] = '\0';
}

void
dtxt_pg_suite_start(void)
{
	char port[16];

	// The suite's tests check what dtxd asks of the database, not the
	// disk under it: a process crash keeps what reached the OS anyway.
	if (dtxt_pg_init(&suite_pg, "fsync = off\nfull_page_writes = off\n") !=
	        0 ||
	    dtxt_pg_start(&suite_pg) != 0) {
		dtxt_pg_fini(&suite_pg);
		return;
	}
	snprintf(port, sizeof(port), "%d", suite_pg.port);
	setenv(PG_ENV_PORT, port, 1);
	setenv(PG_ENV_DIR, suite_pg.dir, 1);
}

void
dtxt_pg_suite_stop(void)
{
	dtxt_pg_fini(&suite_pg);
}

int
dtxt_pg_suite_db(const char *name, char *conninfo, size_t cap)
{
	const char *port = getenv(PG_ENV_PORT);
	dtxt_pg     pg;

	if (port == NULL) {
		fprintf(stderr, "pg: the suite's PostgreSQL did not start\n");
		return -1;
	}
	memset(&pg, 0, sizeof(pg));
	pg.port = atoi(port);
	dtxi_strlcpy(pg.dir, getenv(PG_ENV_DIR), sizeof(pg.dir));
	snprintf(pg.log, sizeof(pg.log), "%s/psql.log", pg.dir);
	return dtxt_pg_createdb(&pg, name, conninfo, cap);
}

bool
dtxt_pg_store_wanted(void)
{
	const char *s = getenv("DTXT_STORE");

	return s != NULL && strcmp(s, "postgres") == 0;
}

// Only in the runner of a suite that asked for PostgreSQL (the store_pg
// suite starts its own).
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	if (dtxt_pg_store_wanted()) {
		dtxt_pg_suite_start();
	}
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	if (dtxt_pg_store_wanted()) {
		dtxt_pg_suite_stop();
	}
}

int
dtxt_pg_store_conn(const char *data_dir, char *conninfo, size_t cap)
{
	char     marker[DTXT_PATH_MAX + 8], name[32];
	char    *old;
	uint64_t h = 1469598103934665603ull; // FNV-1a of the path
	FILE    *f;

	snprintf(marker, sizeof(marker), "%s.pgdb", data_dir);
	old = dtxt_read_file(marker);
	if (old[0] != '\0') {
		dtxi_strlcpy(conninfo, old, cap);
		free(old);
		return 0;
	}
	free(old);
	for (const char *p = data_dir; *p != '\0'; p++) {
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	}
	snprintf(name, sizeof(name), "d%016llx", (unsigned long long)h);
	if (dtxt_pg_suite_db(name, conninfo, cap) != 0 ||
	    (f = fopen(marker, "w")) == NULL) {
		return -1;
	}
	fputs(conninfo, f);
	return fclose(f) == 0 ? 0 : -1;
}
