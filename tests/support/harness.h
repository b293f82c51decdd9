// SPDX-License-Identifier: MIT
//
// harness: what the integration and fault suites need to run real
// processes. Fresh temporary directories (removed recursively at the end),
// free loopback TCP addresses, spawning a program with extra environment and
// its output in a log file, waiting for it to be ready (dtxd answers a
// Resolve; a participant accepts a TCP connection), stopping it (SIGKILL,
// SIGTERM with a timeout) and learning how it ended. Every process and
// directory made here is recorded in a per-process registry, and
// dtxt_cleanup() (run as the Criterion .fini fixture and at exit) kills and
// reaps every process still running and removes every directory, so nothing
// outlives a test even when an assertion fails; children also get SIGKILL
// if the test process dies. Set DTXT_KEEP=1 to keep the directories (their
// paths are printed) for a post-mortem. The last part reads the log that
// dtx-testpart writes ("CALL <phase> <gid> <branch> <attempt> <result>",
// "APPLY <gid> <branch>", "UNDO <gid> <branch>") so that tests can prove
// what each participant saw. Test code only: not thread-safe, and it may
// abort on impossible conditions (out of memory).

#ifndef DTX_TESTS_HARNESS_H
#define DTX_TESTS_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <dtx/dtx.h>

#define DTXT_URL_MAX  64
#define DTXT_PATH_MAX 4096

// How a process ended.
typedef struct dtxt_exit {
	bool exited;   // it called exit(): code is valid
	int  code;     // exit status
	bool signaled; // it was killed: signo is valid
	int  signo;    // the signal
} dtxt_exit;

// A spawned process. Owned by the registry; valid until dtxt_cleanup().
typedef struct dtxt_proc {
	pid_t     pid;
	char      name[32];
	char      log[DTXT_PATH_MAX]; // its stdout and stderr
	bool      reaped;             // waited for: how is valid
	dtxt_exit how;
} dtxt_proc;

// Kills (SIGKILL) and reaps every registered process still running, then
// removes every registered directory (unless DTXT_KEEP is set). Idempotent.
// Use as a Criterion fixture: TestSuite(x, .fini = dtxt_cleanup).
void dtxt_cleanup(void);

// Makes a fresh directory under $TMPDIR (or /tmp) into out, registered for
// removal. Returns 0 or errno.
int dtxt_tmpdir(char *out, size_t cap);

// Removes path and everything under it (symbolic links are not followed).
// Returns 0 or errno; a missing path is not an error.
int dtxt_rmtree(const char *path);

// Writes "tcp://127.0.0.1:PORT" with a free port to out (cap >=
// DTXT_URL_MAX). Returns 0, or -1 when no port could be had.
int dtxt_free_url(char *out, size_t cap);

// Starts argv[0] with argv (NULL-terminated) and the current environment
// plus env ("NAME=VALUE" strings, NULL-terminated, may be NULL; they
// replace variables of the same name). stdout and stderr go to log
// (created or appended to). The process is registered; it gets SIGKILL
// when the test process dies. Returns NULL when fork fails; a program that
// cannot be executed exits with code 127 and says why in its log.
dtxt_proc *dtxt_spawn(
    const char *name, char *const argv[], char *const env[], const char *log);

// Waits up to timeout_ms (negative: forever) for p to end. Returns 0 and
// fills p->how (and *how when not NULL), or ETIMEDOUT. An already reaped
// process returns at once.
int dtxt_wait(dtxt_proc *p, int timeout_ms, dtxt_exit *how);

// True while p has not ended (reaps it if it just has).
bool dtxt_alive(dtxt_proc *p);

// Sends sig to p when it still runs. Returns 0 or errno.
int dtxt_signal(dtxt_proc *p, int sig);

// SIGKILL, then reaps. Returns 0 or errno. Idempotent.
int dtxt_kill(dtxt_proc *p);

// SIGTERM, then waits up to timeout_ms. When p has not ended by then, it is
// killed with SIGKILL and ETIMEDOUT is returned; otherwise 0 and *how.
int dtxt_term(dtxt_proc *p, int timeout_ms, dtxt_exit *how);

// Polls a TCP connect to the port of url ("tcp://HOST:PORT") every few ms
// until it succeeds, up to timeout_ms. Fails early when p (may be NULL) has
// ended. Returns 0, ETIMEDOUT, ECHILD (p ended) or EINVAL.
int dtxt_wait_tcp(dtxt_proc *p, const char *url, int timeout_ms);

// Polls dtx_client_resolve(c, "probe") against the dtxd at url until it
// answers, up to timeout_ms. Fails early when p (may be NULL) has ended.
// Returns 0, ETIMEDOUT, ECHILD, or a DTX_E* code from dtx_client_open.
int dtxt_wait_dtxd(dtxt_proc *p, const char *url, int timeout_ms);

// Sleeps ms milliseconds. For pacing only: a test that waits for something
// polls for it with dtxt_wait_until.
void dtxt_sleep_ms(int ms);

// A condition for dtxt_wait_until: non-zero once it holds.
typedef int (*dtxt_cond)(void *arg);

// Polls cond(arg) every poll_ms until it holds, up to timeout_ms. Returns
// 0, or ETIMEDOUT (the condition is then checked one last time).
int dtxt_wait_until(dtxt_cond cond, void *arg, int poll_ms, int timeout_ms);

// Waits up to timeout_ms until the file at path contains text at least
// times times. Returns 0 or ETIMEDOUT.
int dtxt_wait_text(
    const char *path, const char *text, int times, int timeout_ms);

// Waits up to timeout_ms until a call to branch of tx (or of any branch,
// when branch < 0) has failed at the coordinator (no answer: its result
// carries the transport's message), refreshing tx's status as it polls.
// Returns 0 or ETIMEDOUT.
int dtxt_wait_failed_call(dtx_tx *tx, int branch, int timeout_ms);

// Reads a whole file into a NUL-terminated heap buffer (free() it). A file
// that does not exist gives "". Never returns NULL.
char *dtxt_read_file(const char *path);

// Paths of the programs under test: $DTXD_BIN and $DTX_TESTPART_BIN (set by
// CTest). Abort with a message when unset.
const char *dtxt_dtxd_bin(void);
const char *dtxt_testpart_bin(void);

// ---------------------------------------------------------------------------
// dtxd and dtx-testpart with the settings tests want
// ---------------------------------------------------------------------------

// Options for dtxt_start_dtxd. Zero fields take the fast test defaults:
// backoff 20..200 ms, call timeout 500 ms, log level debug.
typedef struct dtxt_dtxd_opts {
	const char *crash_at;        // DTXD_CRASH_AT, or NULL
	unsigned    timeout_ms;      // --timeout-ms (0: dtxd's default)
	unsigned    call_timeout_ms; // --call-timeout-ms (0: 500)
	unsigned    retries;         // --retries (0: dtxd's default)
	const char *extra[12];       // more arguments, NULL-terminated
	// --store postgres --store-conn this, instead of --data-dir (NULL:
	// RocksDB, unless DTXT_STORE=postgres; see pg.h).
	const char *store_conn;
	unsigned start_timeout_ms; // wait this long for it to answer (0: 5 s)
} dtxt_dtxd_opts;

// Starts dtxd listening on url with its data in data_dir, its output
// appended to log, and waits (o->start_timeout_ms, default 5 s) until it
// answers. Returns the process,
// or NULL when it could not be started or did not become ready (then it is
// killed; see log).
dtxt_proc *dtxt_start_dtxd(const char *url, const char *data_dir,
    const char *log, const dtxt_dtxd_opts *o);

// Starts dtx-testpart named name on url, writing its call log to calllog
// and its output to outlog, and waits (5 s) until it accepts connections.
// Returns NULL on failure (the process is killed).
dtxt_proc *dtxt_start_testpart(const char *url, const char *name,
    const char *calllog, const char *outlog);

// Like dtxt_start_testpart but returns at once, without waiting.
dtxt_proc *dtxt_spawn_testpart(const char *url, const char *name,
    const char *calllog, const char *outlog);

// ---------------------------------------------------------------------------
// dtx-testpart's call log
// ---------------------------------------------------------------------------

typedef enum dtxt_kind {
	DTXT_CALL  = 1,
	DTXT_APPLY = 2,
	DTXT_UNDO  = 3,
} dtxt_kind;

// One line of the log.
typedef struct dtxt_line {
	dtxt_kind kind;
	char      phase[16]; // CALL only: "PREPARE", ...
	char      gid[DTX_GID_MAX + 1];
	unsigned  branch;
	unsigned  attempt;    // CALL only
	char      result[16]; // CALL only: "OK", "REFUSED", "RETRY"
} dtxt_line;

// A parsed log.
typedef struct dtxt_log {
	dtxt_line *lines;
	size_t     n;
} dtxt_log;

// Parses the log at path (missing: empty). Lines that do not parse are
// skipped. Release with dtxt_log_fini().
void dtxt_log_load(dtxt_log *l, const char *path);
void dtxt_log_fini(dtxt_log *l);

// Counts lines of kind for gid (NULL: any) and branch (negative: any); for
// CALL lines also phase and result (NULL: any).
size_t dtxt_log_count(const dtxt_log *l, dtxt_kind kind, const char *gid,
    int branch, const char *phase, const char *result);

// Waits up to timeout_ms until the call log at path has a line that
// dtxt_log_count would count. Returns 0 or ETIMEDOUT.
int dtxt_wait_log(const char *path, dtxt_kind kind, const char *gid,
    int branch, const char *phase, const char *result, int timeout_ms);

// Index of the next line at or after from that matches as dtxt_log_count
// does, or -1.
long dtxt_log_find(const dtxt_log *l, size_t from, dtxt_kind kind,
    const char *gid, int branch, const char *phase, const char *result);

// APPLY minus UNDO lines for (gid, branch): 1 when the effect is in place.
long dtxt_log_effect(const dtxt_log *l, const char *gid, int branch);

// ---------------------------------------------------------------------------
// A test's world: one temporary directory, one dtxd, its participants
// ---------------------------------------------------------------------------

// One dtx-testpart: its address, call log and output, in the world's
// directory.
typedef struct dtxt_part {
	char       name[16];
	char       url[DTXT_URL_MAX];
	char       calllog[DTXT_PATH_MAX];
	char       outlog[DTXT_PATH_MAX];
	dtxt_proc *proc;
} dtxt_part;

#define DTXT_PARTS_MAX 8

typedef struct dtxt_world {
	char        dir[512];            // fresh, removed at clean-up
	char        data[DTXT_PATH_MAX]; // dtxd's --data-dir
	char        url[DTXT_URL_MAX];   // dtxd's --listen
	char        log[DTXT_PATH_MAX];  // dtxd's output (every run appends)
	dtxt_proc  *dtxd;                // the running dtxd, or NULL
	dtx_client *client;              // a client of it, or NULL
	dtxt_part   parts[DTXT_PARTS_MAX];
	unsigned    nparts;
} dtxt_world;

// Makes the directory and picks dtxd's address; starts nothing. Returns 0
// or an errno.
int dtxt_world_init(dtxt_world *w);

// Starts dtxd with o (may be NULL) and, when there is none, opens w->client
// (request timeout 5 s). Returns 0, or -1 (see w->log).
int dtxt_world_start_dtxd(dtxt_world *w, const dtxt_dtxd_opts *o);

// Closes the client and kills every process (the directory is removed by
// dtxt_cleanup()). Idempotent.
void dtxt_world_fini(dtxt_world *w);

// Adds a participant named name with a fresh address; does not start it.
dtxt_part *dtxt_world_part(dtxt_world *w, const char *name);

// Starts p (again, after a stop) and waits until it listens. 0 or -1.
int dtxt_part_start(dtxt_part *p);

// Writes dtxd's output and every participant's logs to stderr, to explain
// a failure.
void dtxt_world_dump(const dtxt_world *w);

#endif // DTX_TESTS_HARNESS_H
