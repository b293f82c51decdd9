// SPDX-License-Identifier: MIT
//
// dtx.integration.storage: dtxd and a data directory it cannot use. A data
// directory that is a file, lies under a file, or is read-only makes dtxd
// exit at once with status 1 and a message naming the directory, rather
// than start and fail every request. A disk that fills up while dtxd runs
// (a small tmpfs mounted by the test; that needs root, and the test is
// skipped with the reason otherwise): submits are refused with DTX_ENOSPC or
// DTX_ESTORAGE and a message, Status and List keep working, and after space
// is freed and dtxd restarted every transaction accepted before is there
// and finishes, in agreement with the participant's call log. And without
// a restart: once space is back dtxd reopens its store by itself, takes
// new work and finishes what it had accepted, /readyz saying "store
// failing" (503) meanwhile.

#include <criterion/criterion.h>

#include <dtx/dtx.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "harness.h"
#include "httpc.h"
#include "logparse.h"
#include "strs.h"
#include "world_suite.h"

static char mnt[DTXT_PATH_MAX]; // a tmpfs mounted by the test, or ""

static void
setup(void)
{
	cr_assert_eq(dtxt_world_init(&w), 0, "cannot make the test directory");
	mnt[0] = '\0';
}

static void
teardown(void)
{
	dtxt_world_fini(&w);
	if (mnt[0] != '\0') {
		// Lazy: a process killed a moment ago may still hold a file.
		umount2(mnt, MNT_DETACH);
		mnt[0] = '\0';
	}
	dtxt_cleanup();
}

TestSuite(storage, .init = setup, .fini = teardown, .timeout = 180);

// Mounts a tmpfs of size_mb (read-only when ro) on dir, made here.
// Returns 0 or an errno (EPERM when not allowed: not root, or a container
// without CAP_SYS_ADMIN).
static int
mount_tmpfs(const char *dir, unsigned size_mb, bool ro)
{
	char opts[32];

	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		return errno;
	}
	snprintf(opts, sizeof(opts), "size=%um", size_mb);
	if (mount("tmpfs", dir, "tmpfs", ro ? MS_RDONLY : 0, opts) != 0) {
		return errno;
	}
	dtxi_strlcpy(mnt, dir, sizeof(mnt));
	return 0;
}

// Starts dtxd on data_dir and expects it to give up: exit status 1 within
// 15 s, with a message naming the directory in its output.
static void
expect_refused(const char *data_dir, const char *why)
{
	char       log[DTXT_PATH_MAX + 32];
	char      *argv[] = {(char *)dtxt_dtxd_bin(), "--listen", w.url,
	         "--data-dir", (char *)data_dir, NULL};
	dtxt_proc *p;
	dtxt_exit  how;
	char      *out;

	snprintf(log, sizeof(log), "%s/refused.log", w.dir);
	unlink(log);
	p = dtxt_spawn("dtxd", argv, NULL, log);
	cr_assert(p != NULL);
	cr_assert_eq(dtxt_wait(p, 15000, &how), 0,
	    "dtxd kept running on a data dir that %s", why);
	out = dtxt_read_file(log);
	cr_assert(how.exited && how.code == 1,
	    "dtxd on a data dir that %s: exit %d signal %d\n%s", why, how.code,
	    how.signo, out);
	cr_assert(strstr(out, "cannot open data directory") != NULL &&
	        strstr(out, data_dir) != NULL,
	    "no clear message for a data dir that %s:\n%s", why, out);
	free(out);
}

Test(storage, dtxd_exits_with_a_message_when_it_cannot_use_its_data_dir)
{
	char file[DTXT_PATH_MAX], under[DTXT_PATH_MAX + 8];
	char ro[DTXT_PATH_MAX];
	int  fd, rv;

	snprintf(file, sizeof(file), "%s/a-file", w.dir);
	cr_assert((fd = open(file, O_CREAT | O_WRONLY, 0644)) >= 0);
	close(fd);
	expect_refused(file, "is a file");
	snprintf(under, sizeof(under), "%s/data", file);
	expect_refused(under, "lies under a file");

	// Read-only: a read-only mount, which binds root too; without the
	// right to mount, a directory without write permission, which binds
	// everyone else.
	snprintf(ro, sizeof(ro), "%s/ro", w.dir);
	if ((rv = mount_tmpfs(ro, 1, true)) != 0) {
		cr_log_info(
		    "no read-only tmpfs (%s): using mode 0555", strerror(rv));
		cr_assert(mkdir(ro, 0555) == 0 || errno == EEXIST);
		cr_assert(chmod(ro, 0555) == 0);
		if (geteuid() == 0) {
			cr_log_warn("root ignores mode 0555: the read-only "
			            "case is not tested");
			return;
		}
	}
	expect_refused(ro, "is read-only");
}

// Fills the file system of dir, leaving about keep_kb, with a file at
// path. Returns 0 or an errno.
static int
fill(const char *path, const char *dir, size_t keep_kb)
{
	static char    chunk[64 * 1024];
	struct statvfs vfs;
	size_t         left;
	int            fd, rv = 0;

	if (statvfs(dir, &vfs) != 0) {
		return errno;
	}
	left = (size_t)vfs.f_bavail * vfs.f_frsize;
	left = left > keep_kb * 1024 ? left - keep_kb * 1024 : 0;
	if ((fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644)) < 0) {
		return errno;
	}
	memset(chunk, 'f', sizeof(chunk));
	while (left > 0) {
		size_t  n = left < sizeof(chunk) ? left : sizeof(chunk);
		ssize_t k = write(fd, chunk, n);
		if (k <= 0) {
			rv = k < 0 ? errno : ENOSPC;
			break;
		}
		left -= (size_t)k;
	}
	close(fd);
	return rv == ENOSPC ? 0 : rv;
}

#define FULL_MAX   200          // transactions tried before the disk fills
#define FULL_BYTES (256 * 1024) // payload of each: a few fill the slack

Test(storage, a_full_disk_refuses_new_work_and_loses_nothing_accepted)
{
	static char    payload[FULL_BYTES];
	static char    gids[FULL_MAX][DTX_GID_MAX + 1];
	char           disk[1024], filler[1024 + 16];
	char           refused_gid[DTX_GID_MAX + 1] = "";
	char           why[DTX_MESSAGE_MAX + 1]     = "";
	dtxt_dtxd_opts o                            = {0};
	dtxt_part     *part;
	dtx_tx_info    info[8];
	char           next[DTX_GID_MAX + 1];
	unsigned       accepted = 0, n;
	dtxt_exit      how;
	dtxt_log       log;
	dtx_tx        *tx;
	dtx_state      st;
	int            rv = 0;

	snprintf(disk, sizeof(disk), "%s/disk", w.dir);
	if (geteuid() != 0) {
		cr_skip_test("needs root to mount a small tmpfs for dtxd");
	}
	if ((rv = mount_tmpfs(disk, 16, false)) != 0) {
		cr_skip_test(
		    "cannot mount a tmpfs on %s: %s", disk, strerror(rv));
	}
	snprintf(w.data, sizeof(w.data), "%s/data", disk);
	snprintf(filler, sizeof(filler), "%s/filler", disk);
	memset(payload, 'x', sizeof(payload));

	part = dtxt_world_part(&w, "p");
	CHECK(part != NULL && dtxt_part_start(part) == 0, "no participant");
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
	// dtxd is up (its WAL preallocated); leave it about 3 MiB, room for
	// a few transactions of FULL_BYTES.
	CHECK(fill(filler, disk, 3072) == 0, "cannot fill %s", disk);

	for (accepted = 0; accepted < FULL_MAX; accepted++) {
		char *gid = gids[accepted];

		snprintf(gid, DTX_GID_MAX + 1, "full-%03u", accepted);
		CHECK(dtx_tx_begin(&tx, w.client, DTX_SAGA) == 0, "begin");
		CHECK(dtx_tx_set_gid(tx, gid) == 0, "gid");
		CHECK(dtx_tx_add(
		          tx, part->url, "op", payload, sizeof(payload)) == 0,
		    "add");
		rv = dtx_tx_submit(tx);
		if (rv != 0) {
			dtxi_strlcpy(why, dtx_tx_message(tx), sizeof(why));
			dtxi_strlcpy(refused_gid, gid, sizeof(refused_gid));
			dtx_tx_free(tx);
			break;
		}
		dtx_tx_free(tx);
	}
	cr_log_info("disk full after %u transactions: %s (%s)", accepted,
	    dtx_strerror(rv), why);
	CHECK(rv == DTX_ENOSPC || rv == DTX_ESTORAGE,
	    "submit on a full disk: %s (%s) after %u accepted",
	    dtx_strerror(rv), why, accepted);
	CHECK(why[0] != '\0', "no message with %s", dtx_strerror(rv));
	CHECK(accepted > 0, "nothing was accepted before the disk filled");

	// Full, dtxd still answers what it can answer without writing.
	CHECK(dtx_tx_attach(&tx, w.client, gids[0]) == 0, "attach");
	rv = dtx_tx_status(tx, &st);
	dtx_tx_free(tx);
	CHECK(rv == 0, "status on a full disk: %s", dtx_strerror(rv));
	rv = dtx_client_list(w.client, 0, "", info, 8, &n, next);
	CHECK(rv == 0 && n > 0, "list on a full disk: %s, %u entries",
	    dtx_strerror(rv), n);
	CHECK(dtxt_alive(w.dtxd), "dtxd died on a full disk");

	// Space back, and a restart: everything accepted is there.
	CHECK(unlink(filler) == 0, "cannot remove the filler");
	if (dtxt_term(w.dtxd, 20000, &how) != 0) {
		cr_log_warn("dtxd did not stop within 20 s of SIGTERM on a "
		            "full disk; killed");
	}
	w.dtxd = NULL;
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not restart");
	for (unsigned i = 0; i < accepted; i++) {
		CHECK(dtx_tx_attach(&tx, w.client, gids[i]) == 0,
		    "accepted %s is lost", gids[i]);
		rv = dtx_tx_wait(tx, 60000, &st);
		dtx_tx_free(tx);
		CHECK(rv == 0 && st == DTX_STATE_COMMITTED, "%s: %s, %s",
		    gids[i], dtx_strerror(rv), dtx_state_name(st));
	}
	// What was refused was not half-stored.
	rv = dtx_tx_attach(&tx, w.client, refused_gid);
	if (rv == 0) {
		rv = dtx_tx_status(tx, &st);
		dtx_tx_free(tx);
	}
	CHECK(rv == DTX_ENOTFOUND, "refused %s: %s", refused_gid,
	    dtx_strerror(rv));
	// And new work is taken again.
	CHECK(dtx_tx_begin(&tx, w.client, DTX_2PC) == 0, "begin");
	CHECK(dtx_tx_add(tx, part->url, "op", "", 0) == 0, "add");
	rv = dtx_tx_commit(tx, &st);
	dtx_tx_free(tx);
	CHECK(rv == 0 && st == DTX_STATE_COMMITTED,
	    "after space came back: %s", dtx_strerror(rv));

	dtxt_log_load(&log, part->calllog);
	for (unsigned i = 0; i < accepted; i++) {
		CHECK(dtxt_log_effect(&log, gids[i], 0) == 1,
		    "%s committed without its effect", gids[i]);
	}
	CHECK(
	    dtxt_log_count(&log, DTXT_CALL, refused_gid, -1, NULL, NULL) == 0,
	    "refused %s reached the participant", refused_gid);
	dtxt_log_fini(&log);
}

static int
ready_again(void *arg)
{
	dtxt_http_res r;
	int           ok =
	    dtxt_http_get(arg, "/readyz", 2000, &r) == 0 && r.status == 200;

	dtxt_http_res_fini(&r);
	return ok;
}

typedef struct commit_cond {
	const char *endpoint;
	dtx_state   st;
	int         rv;
} commit_cond;

static int
commits_again(void *arg)
{
	commit_cond *c = arg;
	dtx_tx      *tx;

	if (dtx_tx_begin(&tx, w.client, DTX_2PC) != 0) {
		return 0;
	}
	dtx_tx_add(tx, c->endpoint, "op", "", 0);
	c->rv = dtx_tx_commit(tx, &c->st);
	dtx_tx_free(tx);
	return c->rv == 0 && c->st == DTX_STATE_COMMITTED;
}

// The same full disk, but nobody restarts dtxd: once space is back it
// reopens its store by itself, takes new work again and finishes what it
// had accepted; /readyz says 503 "store failing" meanwhile and 200 after.
Test(storage, a_full_disk_heals_by_itself_when_space_returns)
{
	static char    payload[FULL_BYTES];
	static char    gids[FULL_MAX][DTX_GID_MAX + 1];
	char           disk[1024], filler[1024 + 16], http[64];
	dtxt_dtxd_opts o = {0};
	dtxt_part     *part;
	dtxt_http_res  r;
	unsigned       accepted = 0;
	commit_cond    cc;
	dtxt_log       log;
	dtx_tx        *tx;
	dtx_state      st;
	int            rv = 0;

	snprintf(disk, sizeof(disk), "%s/disk", w.dir);
	if (geteuid() != 0) {
		cr_skip_test("needs root to mount a small tmpfs for dtxd");
	}
	// Room for RocksDB to reopen once the filler is gone.
	if ((rv = mount_tmpfs(disk, 64, false)) != 0) {
		cr_skip_test(
		    "cannot mount a tmpfs on %s: %s", disk, strerror(rv));
	}
	snprintf(w.data, sizeof(w.data), "%s/data", disk);
	snprintf(filler, sizeof(filler), "%s/filler", disk);
	memset(payload, 'x', sizeof(payload));
	CHECK(dtxt_free_http_url(http, sizeof(http)) == 0, "no port");
	o.extra[0] = "--http-listen";
	o.extra[1] = http;

	part = dtxt_world_part(&w, "p");
	CHECK(part != NULL && dtxt_part_start(part) == 0, "no participant");
	CHECK(dtxt_world_start_dtxd(&w, &o) == 0, "dtxd did not start");
	CHECK(
	    dtxt_wait_until(ready_again, http, 20, 10000) == 0, "never ready");
	CHECK(fill(filler, disk, 3072) == 0, "cannot fill %s", disk);

	for (accepted = 0; accepted < FULL_MAX; accepted++) {
		snprintf(
		    gids[accepted], DTX_GID_MAX + 1, "heal-%03u", accepted);
		CHECK_RV(dtx_tx_begin(&tx, w.client, DTX_SAGA));
		CHECK_RV(dtx_tx_set_gid(tx, gids[accepted]));
		CHECK_RV(
		    dtx_tx_add(tx, part->url, "op", payload, sizeof(payload)));
		rv = dtx_tx_submit(tx);
		dtx_tx_free(tx);
		if (rv != 0) {
			break;
		}
	}
	CHECK(rv == DTX_ENOSPC || rv == DTX_ESTORAGE,
	    "submit on a full disk: %s after %u", dtx_strerror(rv), accepted);
	CHECK(dtxt_http_get(http, "/readyz", 5000, &r) == 0, "no /readyz");
	CHECK(r.status == 503 && strstr(r.body, "store failing"),
	    "/readyz on a full disk: %d %s", r.status, r.body);
	dtxt_http_res_fini(&r);

	// Space comes back; dtxd is left alone.
	CHECK(unlink(filler) == 0, "cannot remove the filler");
	cc.endpoint = part->url;
	CHECK(dtxt_wait_until(commits_again, &cc, 200, 30000) == 0,
	    "no commit after space came back: %s %s", dtx_strerror(cc.rv),
	    dtx_state_name(cc.st));
	CHECK(dtxt_wait_until(ready_again, http, 20, 10000) == 0,
	    "/readyz still not ready");
	CHECK(dtxt_alive(w.dtxd), "dtxd died");
	for (unsigned i = 0; i < accepted; i++) {
		CHECK_RV(dtx_tx_attach(&tx, w.client, gids[i]));
		rv = dtx_tx_wait(tx, 30000, &st);
		dtx_tx_free(tx);
		CHECK(rv == 0 && st == DTX_STATE_COMMITTED, "%s: %s %s",
		    gids[i], dtx_strerror(rv), dtx_state_name(st));
	}
	dtxt_log_load(&log, part->calllog);
	for (unsigned i = 0; i < accepted; i++) {
		CHECK(dtxt_log_effect(&log, gids[i], 0) == 1,
		    "%s committed without its effect", gids[i]);
	}
	dtxt_log_fini(&log);
	const char *warn[] = {"level", "warn", NULL};
	const char *info[] = {"level", "info", NULL};
	CHECK(dtxt_log_events(w.log, "store_failing", warn, NULL, NULL) >= 1,
	    "no store_failing warning");
	CHECK(dtxt_log_events(w.log, "store_reopened", info, NULL, NULL) >= 1,
	    "no store_reopened line");
}
