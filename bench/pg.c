// SPDX-License-Identifier: MIT
//
// pg: dtx-bench's PostgreSQL (see pg.h).

#include "pg.h"

#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loopback_port.h"
#include "proc.h"

#define BINDIR "/usr/lib/postgresql/15/bin"

static const char *
bindir(void)
{
	const char *d = getenv("DTX_PG_BINDIR");

	return d != NULL && *d != '\0' ? d : BINDIR;
}

// Runs prog of PostgreSQL's bindir with args (NULL-terminated), as the
// postgres user when we are root, its output appended to log. Waits when
// wait is set: returns its exit status (0 ok). Else returns its pid.
static int
pg_run(const char *prog, const char *const *args, const char *log, bool wait)
{
	char           path[512], ru[32], rg[32];
	char          *argv[40];
	int            n = 0, st;
	pid_t          pid;
	struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;

	snprintf(path, sizeof(path), "%s/%s", bindir(), prog);
	if (pw != NULL) {
		// setpriv sets the death signal after it changes the ids (a
		// change of ids clears one set before).
		snprintf(ru, sizeof(ru), "--reuid=%u", (unsigned)pw->pw_uid);
		snprintf(rg, sizeof(rg), "--regid=%u", (unsigned)pw->pw_gid);
		argv[n++] = "/usr/bin/setpriv";
		argv[n++] = ru;
		argv[n++] = rg;
		argv[n++] = "--init-groups";
		argv[n++] = "--pdeathsig=KILL";
	}
	argv[n++] = path;
	for (int i = 0; args[i] != NULL && n < 39; i++) {
		argv[n++] = (char *)args[i];
	}
	argv[n] = NULL;
	if ((pid = bench_spawn(argv, log)) < 0) {
		return -1;
	}
	if (!wait) {
		return (int)pid;
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			return -1;
		}
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int
bench_pg_start(bench_pg *pg, const char *dir)
{
	char           data[400], log[400], port[16], sock[320], opts[1024];
	struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;

	int rv;

	// A directory of its own, not under the run's (private to us: the
	// postgres user could not enter it). Its log goes in the run's.
	memset(pg, 0, sizeof(*pg));
	if ((rv = bench_mkdtemp(pg->dir, sizeof(pg->dir))) != 0 ||
	    (pw != NULL && chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0)) {
		fprintf(stderr, "dtx-bench: PostgreSQL's directory: %s\n",
		    strerror(rv != 0 ? rv : errno));
		return -1;
	}
	snprintf(data, sizeof(data), "%s/data", pg->dir);
	snprintf(log, sizeof(log), "%s/pg.log", dir);
	const char *initdb[] = {"-D", data, "-A", "trust", "-U", "postgres",
	    "-E", "UTF8", "--locale=C", NULL};
	if (pg_run("initdb", initdb, log, true) != 0) {
		fprintf(stderr,
		    "dtx-bench: initdb failed (is postgresql-15 installed?); "
		    "see %s\n",
		    log);
		return -1;
	}
	if ((pg->port = dtxi_loopback_port()) < 0) {
		return -1;
	}
	snprintf(port, sizeof(port), "%d", pg->port);
	snprintf(sock, sizeof(sock), "%s", pg->dir);
	// Durable as in production (fsync on); room for every dtxd node's
	// connections; nothing else changed.
	snprintf(opts, sizeof(opts), "%s", "max_connections=100");
	const char *server[] = {"-D", data, "-p", port, "-k", sock, "-c",
	    "listen_addresses=127.0.0.1", "-c", opts, NULL};
	if ((pg->pid = pg_run("postgres", server, log, false)) <= 0) {
		pg->pid = 0;
		fprintf(stderr, "dtx-bench: cannot start postgres\n");
		return -1;
	}
	const char *ready[] = {"-q", "-h", "127.0.0.1", "-p", port, "-U",
	    "postgres", "-d", "postgres", NULL};
	for (int i = 0;; i++) {
		if (!bench_alive(pg->pid)) {
			pg->pid = 0;
			fprintf(stderr, "dtx-bench: postgres ended; see %s\n",
			    log);
			return -1;
		}
		if (pg_run("pg_isready", ready, "/dev/null", true) == 0) {
			break;
		}
		if (i == 400) {
			fprintf(stderr,
			    "dtx-bench: postgres not ready in 20 s; see %s\n",
			    log);
			return -1;
		}
		nanosleep(&(struct timespec) {.tv_nsec = 50000000}, NULL);
	}
	const char *create[] = {
	    "-h", "127.0.0.1", "-p", port, "-U", "postgres", "dtx", NULL};
	if (pg_run("createdb", create, log, true) != 0) {
		fprintf(stderr, "dtx-bench: createdb failed; see %s\n", log);
		return -1;
	}
	snprintf(pg->conninfo, sizeof(pg->conninfo),
	    "host=127.0.0.1 port=%d user=postgres dbname=dtx", pg->port);
	return 0;
}

void
bench_pg_use(bench_pg *pg, const char *conninfo)
{
	memset(pg, 0, sizeof(*pg));
	snprintf(pg->conninfo, sizeof(pg->conninfo), "%s", conninfo);
}

void
bench_pg_stop(bench_pg *pg)
{
	if (pg->pid > 0) {
		bench_stop(pg->pid, 30000); // SIGTERM: a smart shutdown
		pg->pid = 0;
	}
	if (pg->dir[0] != '\0') {
		bench_rmtree(pg->dir);
		pg->dir[0] = '\0';
	}
}

int64_t
bench_pg_commits(const bench_pg *pg)
{
	char        out[400];
	long long   v      = -1;
	const char *args[] = {"-X", "-q", "-At", "-d", pg->conninfo, "-c",
	    "SELECT xact_commit FROM pg_stat_database WHERE datname = "
	    "current_database()",
	    NULL};

	snprintf(out, sizeof(out), "%s/dtx-bench-psql.%ld",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp",
	    (long)getpid());
	unlink(out);
	if (pg_run("psql", args, out, true) == 0) {
		FILE *f = fopen(out, "r");
		if (f != NULL) {
			if (fscanf(f, "%lld", &v) != 1) {
				v = -1;
			}
			fclose(f);
		}
	}
	unlink(out);
	return v;
}

// utime + stime (+ cutime + cstime when children) of pid, and its parent.
static double
stat_cpu(pid_t pid, bool children, pid_t *ppid)
{
	char               path[64], buf[1024], *p;
	FILE              *f;
	size_t             n;
	long long          pp;
	unsigned long long ut, st, cut, cst;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	// Fields count from the last ')': the command may hold spaces.
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2,
	        "%*c %lld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu "
	        "%llu",
	        &pp, &ut, &st, &cut, &cst) != 5) {
		return -1;
	}
	*ppid = (pid_t)pp;
	return (double)(ut + st + (children ? cut + cst : 0)) /
	    (double)sysconf(_SC_CLK_TCK);
}

double
bench_pg_cpu_s(const bench_pg *pg)
{
	DIR           *d;
	struct dirent *e;
	pid_t          ppid;
	double         sum;

	if (pg->pid <= 0) {
		return -1;
	}
	// The postmaster with its reaped children (backends that ended),
	// then every live child. Under setpriv the postmaster is the pid we
	// started (setpriv execs it).
	if ((sum = stat_cpu(pg->pid, true, &ppid)) < 0 ||
	    (d = opendir("/proc")) == NULL) {
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char  *end;
		long   v = strtol(e->d_name, &end, 10);
		double c;

		if (*end != '\0' || v <= 0 || v == pg->pid) {
			continue;
		}
		if ((c = stat_cpu((pid_t)v, false, &ppid)) >= 0 &&
		    ppid == pg->pid) {
			sum += c;
		}
	}
	closedir(d);
	return sum;
}
