// SPDX-License-Identifier: MIT
//
// dtx.integration.pgstart: dtxd on PostgreSQL starts whether or not its
// database can be reached yet, and stops at once when the database can
// never be used. A real dtxd and a private PostgreSQL server started by
// the test (support/pg.h). What is checked: a node started while nothing
// listens at the database's address serves "not ready" (/readyz, and a
// Submit answered DTX_ESTORAGE at once, both naming the address and
// libpq's reason, never the password), and once the server is started
// there it becomes ready by itself and commits; a malformed connection
// string, a password the server refuses and a schema of a newer dtxd each
// stop dtxd within seconds with a message that names the cause.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "httpc.h"
#include "pg.h"
#include "world_suite.h"

TestSuite(
    pgstart, .init = world_setup, .fini = world_teardown, .timeout = 120);

// The password put in connection strings here: it must never be shown.
#define SECRET "s3cret-not-to-be-shown"

// Starts dtxd on w.url with its store at conninfo and, when http is not
// NULL, the operations listener there; returns at once.
static dtxt_proc *
spawn_dtxd(const char *conninfo, const char *http)
{
	char *argv[16];
	int   n = 0;

	argv[n++] = (char *)dtxt_dtxd_bin();
	argv[n++] = "--listen";
	argv[n++] = w.url;
	argv[n++] = "--store";
	argv[n++] = "postgres";
	argv[n++] = "--store-conn";
	argv[n++] = (char *)conninfo;
	argv[n++] = "--node";
	argv[n++] = "n1";
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	if (http != NULL) {
		argv[n++] = "--http-listen";
		argv[n++] = (char *)http;
	}
	argv[n] = NULL;
	return dtxt_spawn("dtxd", argv, NULL, w.log);
}

typedef struct readyz {
	const char *http;
	int         want; // the status awaited
	const char *text; // and this in the body (NULL: anything)
	char        body[512];
} readyz;

static int
readyz_is(void *arg)
{
	readyz       *z = arg;
	dtxt_http_res res;

	if (dtxt_http_get(z->http, "/readyz", 1000, &res) != 0) {
		return 0;
	}
	snprintf(z->body, sizeof(z->body), "%s", res.body);
	// Before its first try at the store, dtxd is "recovering".
	int ok = res.status == z->want &&
	    (z->text == NULL || strstr(res.body, z->text) != NULL);
	dtxt_http_res_fini(&res);
	return ok;
}

static int
commit_one(
    dtx_client *c, const char *part_url, dtx_state *st, char *msg, size_t cap)
{
	dtx_tx *tx;
	int     rv;

	CHECK_RV(dtx_tx_begin(&tx, c, DTX_2PC));
	CHECK_RV(dtx_tx_add(tx, part_url, "op", "x", 1));
	rv = dtx_tx_commit(tx, st);
	snprintf(msg, cap, "%s", dtx_tx_message(tx));
	dtx_tx_free(tx);
	return rv;
}

Test(pgstart, a_node_started_before_its_database_waits_then_serves)
{
	char        conninfo[256], http[64], msg[DTX_MESSAGE_MAX + 1];
	char        port[32];
	dtxt_pg     pg;
	dtxt_proc  *d;
	dtx_client *c;
	dtx_state   st = 0;
	dtxt_part  *p  = dtxt_world_part(&w, "p");
	readyz      z;
	int64_t     t0;
	int         rv;

	// A server made but not started: nothing listens at its port yet.
	cr_assert_eq(dtxt_pg_init(&pg, NULL), 0);
	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%d user=postgres password=" SECRET
	    " dbname=postgres",
	    pg.port);
	snprintf(port, sizeof(port), "port %d", pg.port);
	cr_assert_eq(dtxt_free_http_url(http, sizeof(http)), 0);
	CHECK_RV(dtxt_part_start(p));
	CHECK((d = spawn_dtxd(conninfo, http)) != NULL, "cannot start dtxd");
	w.dtxd = d;

	// It serves, not ready, and says why: the address and libpq's
	// reason.
	z.http = http;
	z.want = 503;
	z.text = "waiting for the store";
	CHECK(dtxt_wait_until(readyz_is, &z, 50, 10000) == 0,
	    "/readyz never said 503 (last: %s)", z.body);
	CHECK(strstr(z.body, "cannot reach PostgreSQL") != NULL &&
	        strstr(z.body, port) != NULL &&
	        strstr(z.body, "refused") != NULL,
	    "/readyz does not name the database and the reason: %s", z.body);
	// A Submit is answered at once, with the same reason.
	CHECK_RV(dtx_client_open(&c, w.url));
	dtx_client_set_timeout_ms(c, 5000);
	t0 = dtxi_mono_ms();
	rv = commit_one(c, p->url, &st, msg, sizeof(msg));
	CHECK(rv == DTX_ESTORAGE, "commit while waiting: %s (%s)",
	    dtx_strerror(rv), msg);
	CHECK(dtxi_mono_ms() - t0 < 2000, "the refusal took %lld ms",
	    (long long)(dtxi_mono_ms() - t0));
	CHECK(strstr(msg, "not ready") != NULL &&
	        strstr(msg, "cannot reach PostgreSQL") != NULL &&
	        strstr(msg, port) != NULL,
	    "the refusal does not say why: %s", msg);
	CHECK(dtxt_alive(d), "dtxd stopped while its database was down");

	// The database comes up: dtxd becomes ready by itself and commits.
	CHECK(dtxt_pg_start(&pg) == 0, "cannot start PostgreSQL");
	z.want = 200;
	z.text = NULL;
	CHECK(dtxt_wait_until(readyz_is, &z, 50, 20000) == 0,
	    "dtxd did not become ready once its database was up (last: %s)",
	    z.body);
	rv = commit_one(c, p->url, &st, msg, sizeof(msg));
	CHECK(rv == 0 && st == DTX_STATE_COMMITTED,
	    "commit: %s, state %d (%s)", dtx_strerror(rv), (int)st, msg);
	CHECK(dtxt_wait_log(
	          p->calllog, DTXT_APPLY, NULL, 0, NULL, NULL, 5000) == 0,
	    "the participant never applied the commit");
	dtx_client_close(c);

	// The log said where and why, and never the password.
	char *log = dtxt_read_file(w.log);
	CHECK(strstr(log, "cannot reach PostgreSQL") != NULL &&
	        strstr(log, port) != NULL,
	    "the log does not say the database is out of reach");
	CHECK(strstr(log, "store: open after") != NULL,
	    "the log does not say the store opened");
	CHECK(strstr(log, SECRET) == NULL, "the log shows the password");
	free(log);
	dtxt_exit how;
	CHECK(dtxt_term(d, 10000, &how) == 0 && how.exited && how.code == 0,
	    "dtxd did not stop cleanly");
	dtxt_pg_fini(&pg);
}

Test(pgstart, a_node_waiting_for_its_database_stops_when_asked)
{
	char       conninfo[256], http[64];
	dtxt_proc *d;
	dtxt_exit  how;
	readyz     z = {.want = 503, .text = "waiting for the store"};

	// A port that was free a moment ago: nothing listens there.
	cr_assert_eq(dtxt_free_http_url(http, sizeof(http)), 0);
	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%s user=postgres dbname=postgres",
	    strrchr(http, ':') + 1);
	cr_assert_eq(dtxt_free_http_url(http, sizeof(http)), 0);
	CHECK((d = spawn_dtxd(conninfo, http)) != NULL, "cannot start dtxd");
	z.http = http;
	CHECK(dtxt_wait_until(readyz_is, &z, 50, 10000) == 0,
	    "/readyz never said 503 (last: %s)", z.body);
	// Within the wait between two tries, not after it.
	int64_t t0 = dtxi_mono_ms();
	CHECK(dtxt_term(d, 3000, &how) == 0 && how.exited && how.code == 0,
	    "dtxd did not stop cleanly while waiting");
	CHECK(dtxi_mono_ms() - t0 < 1000, "stopping took %lld ms",
	    (long long)(dtxi_mono_ms() - t0));
}

// Starts dtxd at conninfo and expects it to stop within 15 s with status
// 1, its output naming each of the texts (NULL-terminated); the password
// SECRET must not appear.
static void
expect_stop(const char *conninfo, const char *const *texts)
{
	dtxt_proc *d;
	dtxt_exit  how;
	char      *log;

	CHECK((d = spawn_dtxd(conninfo, NULL)) != NULL, "cannot start dtxd");
	CHECK(dtxt_wait(d, 15000, &how) == 0, "dtxd did not stop");
	CHECK(how.exited && how.code == 1, "dtxd ended %s %d, not exit 1",
	    how.exited ? "with exit" : "by signal",
	    how.exited ? how.code : how.signo);
	log = dtxt_read_file(w.log);
	for (int i = 0; texts[i] != NULL; i++) {
		CHECK(strstr(log, texts[i]) != NULL,
		    "dtxd's output does not say '%s'", texts[i]);
	}
	CHECK(strstr(log, SECRET) == NULL, "dtxd's output shows the password");
	free(log);
}

Test(pgstart, a_malformed_connection_string_stops_dtxd_saying_why)
{
	static const char *const says[] = {
	    "connection string is malformed", "nosuchkey", NULL};

	// Nothing needs to listen: it is refused before any connection.
	expect_stop(
	    "host=127.0.0.1 port=1 nosuchkey=1 password=" SECRET, says);
}

// Prepends line to the server's pg_hba.conf and reloads it.
static void
hba_prepend(dtxt_pg *pg, const char *line)
{
	char  path[DTXT_PATH_MAX + 16];
	char *old;
	FILE *f;

	snprintf(path, sizeof(path), "%s/pg_hba.conf", pg->data);
	old = dtxt_read_file(path);
	cr_assert_neq(old[0], '\0', "no %s", path);
	cr_assert_not_null(f = fopen(path, "w"));
	fprintf(f, "%s\n%s", line, old);
	cr_assert_eq(fclose(f), 0);
	free(old);
	cr_assert_eq(
	    dtxt_pg_sql(pg, "postgres", "SELECT pg_reload_conf()"), 0);
}

Test(pgstart, credentials_the_server_refuses_stop_dtxd_saying_why)
{
	static const char *const says[] = {"28P01",
	    "password authentication failed", "PostgreSQL refuses", NULL};
	static const char *const nopw[] = {"asks for a password", NULL};
	char                     conninfo[1024];
	dtxt_pg                  pg;

	cr_assert_eq(dtxt_pg_init(&pg, NULL), 0);
	cr_assert_eq(dtxt_pg_start(&pg), 0);
	cr_assert_eq(dtxt_pg_sql(&pg, "postgres",
	                 "CREATE ROLE dtxpw LOGIN PASSWORD 'right'"),
	    0);
	hba_prepend(&pg, "host all dtxpw 127.0.0.1/32 scram-sha-256");
	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%d user=dtxpw password=" SECRET
	    " dbname=postgres",
	    pg.port);
	expect_stop(conninfo, says);
	// No password at all where one is asked (and no password file).
	snprintf(conninfo, sizeof(conninfo),
	    "host=127.0.0.1 port=%d user=dtxpw dbname=postgres "
	    "passfile=%s/none",
	    pg.port, w.dir);
	expect_stop(conninfo, nopw);
	dtxt_pg_fini(&pg);
}

Test(pgstart, a_schema_of_a_newer_dtxd_stops_dtxd_saying_why)
{
	static const char *const says[] = {
	    "dtxd-pg 99", "cannot use", "left untouched", NULL};
	char    conninfo[256];
	dtxt_pg pg;

	cr_assert_eq(dtxt_pg_init(&pg, NULL), 0);
	cr_assert_eq(dtxt_pg_start(&pg), 0);
	cr_assert_eq(dtxt_pg_sql(&pg, "postgres",
	                 "CREATE TABLE dtxd_meta (key text PRIMARY KEY, "
	                 "value text NOT NULL); INSERT INTO dtxd_meta "
	                 "VALUES ('schema', 'dtxd-pg 99')"),
	    0);
	dtxt_pg_conninfo(&pg, "postgres", conninfo, sizeof(conninfo));
	expect_stop(conninfo, says);
	dtxt_pg_fini(&pg);
}
