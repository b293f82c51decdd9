// SPDX-License-Identifier: MIT
//
// libdtx: distributed transactions for C services. A participant serves
// branch calls from the coordinator (dtxd) through a handful of callbacks; a
// client (the initiator) describes a transaction as a list of branches and
// asks dtxd to run it as a two-phase commit (DTX_2PC) or as a saga
// (DTX_SAGA). This header is the whole public API and its documentation.

#ifndef DTX_DTX_H
#define DTX_DTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dtx/version.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DTX_BUILDING)
#define DTX_API __attribute__((visibility("default")))
#else
#define DTX_API
#endif

// Limits. Strings are NUL-terminated and at most this many bytes long.
#define DTX_GID_MAX      128
#define DTX_ENDPOINT_MAX 256
#define DTX_METHOD_MAX   128
#define DTX_MESSAGE_MAX  256
#define DTX_BRANCHES_MAX 64
// Most coordinator URLs one client or resolver may be given.
#define DTX_COORDINATORS_MAX 16
// Default limit of one branch payload (and of one reply payload).
#define DTX_PAYLOAD_MAX_DEFAULT (1024u * 1024u)

// Limits dtxd enforces on every transaction; a Submit beyond one is
// refused with DTX_EINVAL and a message naming it, and the dtx_tx_set_*
// setters refuse such a value at once. Besides these: 1..DTX_BRANCHES_MAX
// branches, gid, endpoint and method lengths as above, a payload of at
// most dtxd's --max-payload (default DTX_PAYLOAD_MAX_DEFAULT).
#define DTX_TIMEOUT_MS_MAX      (24u * 3600u * 1000u) // timeout: 24 h
#define DTX_CALL_TIMEOUT_MS_MAX (3600u * 1000u)       // one call: 1 h
#define DTX_RETRIES_MAX         1000u                 // see set_retries

// Error codes: every fallible function returns 0 or one of these. The same
// numbers travel in the wire protocol's Reply.code, so a client sees the
// coordinator's error as the coordinator meant it.
#define DTX_ERR_MAP(XX)                                                       \
	XX(EINVAL, 1, "invalid argument")                                     \
	XX(ENOMEM, 2, "out of memory")                                        \
	XX(ETIMEDOUT, 3, "timed out")                                         \
	XX(ECLOSED, 4, "object closed")                                       \
	XX(ETRANSPORT, 5, "transport error")                                  \
	XX(EPROTO, 6, "malformed message")                                    \
	XX(ETOOBIG, 7, "message or payload too large")                        \
	XX(EVERSION, 8, "unsupported protocol version")                       \
	XX(ESTORAGE, 9, "storage error")                                      \
	XX(ENOTFOUND, 10, "no such transaction")                              \
	XX(EEXIST, 11, "already exists (a gid with other content, a name)")   \
	XX(ESTATE, 12, "not allowed in the current state")                    \
	XX(ELOCKED, 13, "data directory in use by another process")           \
	XX(EUNSUPPORTED, 14, "unsupported request")                           \
	XX(ESHUTDOWN, 15, "coordinator shutting down")                        \
	XX(ENOSPC, 16, "no space left on the storage device")                 \
	XX(EBUSY, 17, "too many requests in flight")                          \
	XX(EINTERNAL, 18, "internal error")                                   \
	XX(EUNREACHABLE, 19, "peer unreachable")                              \
	XX(EAUTH, 20, "TLS handshake failed: peer not authenticated")         \
	XX(EPERM, 21, "not permitted on this listener")

enum dtx_errno {
#define DTX_ERR_ENUM_(name, num, text) DTX_##name = num,
	DTX_ERR_MAP(DTX_ERR_ENUM_)
#undef DTX_ERR_ENUM_
};

// Returns a constant description of err (0 gives "no error"; an unknown code
// gives "unknown error"). Never allocates. Thread-safe. Where a code alone
// is ambiguous, the object the call was made on says more:
// dtx_tx_message(), dtx_participant_message(), dtx_client_message().
DTX_API const char *dtx_strerror(int err);

// ---------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------

// libdtx logs one line per event, logfmt by default:
//   ts=2026-12-01T02:06:18.123Z level=warn pid=4242 event=resolver_decision
//   gid=... branch=0 answer=ABORTED action=ABORT msg="..."
// (one line), or JSON ({"ts":...,"level":...}) when DTX_LOG_FORMAT=json.
// Lines go to stderr unless a handler is set. The level comes from
// DTX_LOG_LEVEL (error, warn, info or debug; default warn) unless
// dtx_set_log_level() sets it. A burst of one event is rate-limited (the
// next line that gets through says suppressed=N).
typedef enum dtx_log_level {
	DTX_LOG_ERROR = 0,
	DTX_LOG_WARN  = 1,
	DTX_LOG_INFO  = 2,
	DTX_LOG_DEBUG = 3,
} dtx_log_level;

// Receives each line (without its newline) with its level. It may run on
// any libdtx or nng thread, several at once; it must not block for long
// and must not call into libdtx.
typedef void (*dtx_log_fn)(void *arg, int level, const char *line);

// Routes libdtx's lines to fn(arg, ...) instead of stderr; NULL restores
// stderr. Once it returns, the previous handler is not running and will
// not be called again. Process-wide. Thread-safe.
DTX_API void dtx_set_log_handler(dtx_log_fn fn, void *arg);

// Sets the process-wide level (a dtx_log_level; out-of-range values are
// clamped). Thread-safe.
DTX_API void dtx_set_log_level(int level);

// How a transaction is run.
typedef enum dtx_mode {
	DTX_2PC  = 1, // prepare all, then commit all or abort all
	DTX_SAGA = 2, // execute in order; on failure compensate in reverse
} dtx_mode;

// The phase a branch call is for.
typedef enum dtx_phase {
	DTX_PHASE_PREPARE    = 1,
	DTX_PHASE_COMMIT     = 2,
	DTX_PHASE_ABORT      = 3,
	DTX_PHASE_EXECUTE    = 4,
	DTX_PHASE_COMPENSATE = 5,
} dtx_phase;

// A transaction's state. COMMITTED, ABORTED and COMPENSATED are terminal.
typedef enum dtx_state {
	DTX_STATE_PREPARING    = 1,
	DTX_STATE_COMMITTING   = 2,
	DTX_STATE_COMMITTED    = 3,
	DTX_STATE_ABORTING     = 4,
	DTX_STATE_ABORTED      = 5,
	DTX_STATE_RUNNING      = 6,
	DTX_STATE_COMPENSATING = 7,
	DTX_STATE_COMPENSATED  = 8,
} dtx_state;

// What a participant answered to one branch call.
typedef enum dtx_branch_status {
	DTX_BRANCH_NONE           = 0, // no answer yet
	DTX_BRANCH_OK             = 1,
	DTX_BRANCH_REFUSED        = 2, // the business said no
	DTX_BRANCH_RETRY          = 3, // transient failure, call again
	DTX_BRANCH_NO_SUCH_METHOD = 4,
	DTX_BRANCH_BAD_REQUEST    = 5,
} dtx_branch_status;

// What a participant callback returns.
typedef enum dtx_result {
	DTX_OK      = 0, // done (prepared, committed, executed, ...)
	DTX_REFUSED = 1, // business refusal: the transaction must not commit
	DTX_RETRY   = 2, // transient failure: the coordinator calls again
	// The call cannot be served as sent (its payload is malformed, say):
	// answered BAD_REQUEST. dtxd takes it as a refusal from prepare or
	// execute, and as done from an abort or compensate of a branch that
	// never answered OK to prepare or execute; from any other phase it
	// calls again. The barrier does not record it.
	DTX_BAD_REQUEST = 3,
} dtx_result;

// Constant names for logs ("COMMITTED", "PREPARE", "REFUSED", "2pc").
// Unknown values give "?". Thread-safe.
DTX_API const char *dtx_state_name(int state);
DTX_API const char *dtx_phase_name(int phase);
DTX_API const char *dtx_branch_status_name(int status);
DTX_API const char *dtx_mode_name(int mode);

// True for COMMITTED, ABORTED and COMPENSATED.
DTX_API bool dtx_state_is_terminal(int state);

// ---------------------------------------------------------------------------
// TLS (tls+tcp:// URLs)
// ---------------------------------------------------------------------------

// A TLS identity and the CA that the peer's certificate must be signed by,
// for dtx_client_open_tls(), dtx_participant_set_tls() and
// dtx_participant_set_resolver_tls(). TLS in dtx is mutual: a listener
// requires a certificate from every peer, and a dialer checks the
// server's certificate and its name. Each item is given once, as a PEM file
// or as PEM text in memory; the function it is passed to reads, checks and
// copies everything, so o and its strings may be freed afterwards (that
// the key is the certificate's is not checked there: a wrong key fails
// every handshake). Which CA signs what (roles): README, "Securing dtx".
typedef struct dtx_tls_opts {
	const char *cert_file; // own certificate (PEM; a chain, leaf first)
	const char *cert_pem;
	const char *key_file; // its private key (PEM)
	const char *key_pem;
	const char *key_password; // for an encrypted key, or NULL
	const char *ca_file;      // CA certificate(s) a peer must be signed by
	const char *ca_pem;
	// Dialing only: the name the server's certificate must carry (a DNS
	// name of its subjectAltName, or its CN). NULL: the URL's host.
	const char *server_name;
} dtx_tls_opts;

// ---------------------------------------------------------------------------
// Participant
// ---------------------------------------------------------------------------

typedef struct dtx_participant dtx_participant; // opaque
typedef struct dtx_reply       dtx_reply;       // opaque

// One branch call as a callback sees it. Every pointer is valid only for the
// duration of the callback.
typedef struct dtx_call {
	const char *gid;         // transaction id
	uint32_t    branch_id;   // index of the branch in its transaction
	dtx_phase   phase;       // what is asked
	const char *method;      // registered method name
	const void *payload;     // the branch's payload, as the client gave it
	size_t      payload_len; //
	uint32_t    attempt;     // 1 for the first call of this phase
	int64_t     deadline_ms; // wall clock (ms since epoch) or 0 for none
	// The W3C traceparent the client gave the transaction
	// (dtx_tx_set_traceparent), or "": pass it to your own tracing so
	// the participant's spans join the client's trace.
	const char *traceparent;
} dtx_call;

// A phase callback. It runs on one of the participant's worker threads and
// may block (on its own database, say). It may set a reply payload and
// message, and returns a dtx_result (DTX_OK, DTX_REFUSED, DTX_RETRY or
// DTX_BAD_REQUEST). Every call may be
// delivered more than once, so callbacks must be idempotent. A REFUSED from
// commit, abort or compensate is treated as a transient failure by dtxd: those
// phases must eventually succeed.
typedef dtx_result (*dtx_phase_fn)(
    const dtx_call *call, dtx_reply *reply, void *arg);

// The callbacks of one method. A 2PC method sets prepare, commit and abort;
// a saga method sets execute and compensate; a method may set both groups.
// A call for a phase whose callback is NULL is answered NO_SUCH_METHOD.
typedef struct dtx_method_ops {
	dtx_phase_fn prepare;
	dtx_phase_fn commit;
	dtx_phase_fn abort;
	dtx_phase_fn execute;
	dtx_phase_fn compensate;
} dtx_method_ops;

// Copies len bytes of data as the reply payload (replacing any earlier one).
// Errors: DTX_EINVAL (data NULL with len > 0), DTX_ETOOBIG (over the
// participant's payload limit), DTX_ENOMEM.
DTX_API int dtx_reply_set_payload(dtx_reply *r, const void *data, size_t len);

// Makes the reply payload len bytes long (replacing any earlier one) and
// points *bufp at them, for the callback to fill in place; their content is
// undefined until it does. *bufp is valid until the callback returns or the
// payload is replaced. Errors: DTX_EINVAL (r or bufp NULL), DTX_ETOOBIG (over
// the participant's payload limit), DTX_ENOMEM.
DTX_API int dtx_reply_alloc_payload(dtx_reply *r, size_t len, void **bufp);

// Copies msg, truncated to DTX_MESSAGE_MAX bytes, as the reply's readable
// message. NULL clears it.
DTX_API void dtx_reply_set_message(dtx_reply *r, const char *msg);

// Creates a participant. On success *pp must be released with
// dtx_participant_close(). Errors: DTX_EINVAL, DTX_ENOMEM.
DTX_API int dtx_participant_open(dtx_participant **pp);

// Number of worker threads that run callbacks (default 4, at most 256), and
// number of requests received concurrently (default 64, at most 4096). Must be
// called before dtx_participant_listen(). Errors: DTX_EINVAL, DTX_ESTATE.
DTX_API int dtx_participant_set_workers(dtx_participant *p, unsigned n);
DTX_API int dtx_participant_set_contexts(dtx_participant *p, unsigned n);

// Largest payload accepted in a call and allowed in a reply (default
// DTX_PAYLOAD_MAX_DEFAULT). Larger calls are answered BAD_REQUEST or
// DTX_ETOOBIG; a call up to the default limit is always read and answered,
// never dropped with its connection, even when n is smaller. Before
// listen only. Errors: DTX_EINVAL, DTX_ESTATE.
DTX_API int dtx_participant_set_max_payload(dtx_participant *p, size_t n);

// Registers method with its callbacks; arg is passed to each of them. ops is
// copied. Before listen only. Errors: DTX_EINVAL (bad name, no callback),
// DTX_EEXIST (name already registered), DTX_ESTATE, DTX_ENOMEM.
DTX_API int dtx_participant_register(dtx_participant *p, const char *method,
    const dtx_method_ops *ops, void *arg);

// A method as protoc-gen-dtx describes it (the generated code passes one to
// dtx_participant_register_method() and dtx_tx_add_method(); hand-written
// code may too): its name on the wire ("package.Service/Method") and the
// modes of transaction it serves, DTX_2PC, DTX_SAGA or DTX_2PC | DTX_SAGA
// (the mode values are bits).
typedef struct dtx_method_desc {
	const char *name;
	unsigned    modes;
} dtx_method_desc;

// Registers the method m->name as dtx_participant_register() does, after
// checking ops against m->modes: a 2PC method needs prepare, commit and
// abort, a saga method execute and compensate, and neither may have the
// callbacks of the other. Each callback gets as arg a copy of the len bytes
// at ctx, made here and kept (aligned for any type) until
// dtx_participant_close(); with len 0, arg is NULL. Before listen only.
// Errors: DTX_EINVAL (a bad name or modes, a missing or extra callback:
// dtx_participant_message() names the method and the phase), DTX_EEXIST,
// DTX_ESTATE, DTX_ENOMEM.
DTX_API int dtx_participant_register_method(dtx_participant *p,
    const dtx_method_desc *m, const dtx_method_ops *ops, const void *ctx,
    size_t len);

// Why the last registration or listen on p that failed was refused, or "".
// Valid until the next call on p.
DTX_API const char *dtx_participant_message(const dtx_participant *p);

// Serves branch calls on a tls+tcp:// URL with o's certificate and key,
// and takes calls only from peers whose certificate is signed by o's CA:
// give it the coordinator CA (README, "Securing dtx"), so that nobody but
// dtxd can make a branch call. Refused handshakes are logged. Before listen
// only. Errors: DTX_EINVAL (o NULL, an item missing, unreadable, malformed
// or outside its validity dates: dtx_participant_message() names the file
// and the reason), DTX_ESTATE, DTX_ENOMEM.
DTX_API int dtx_participant_set_tls(dtx_participant *p, const dtx_tls_opts *o);

// The TLS identity and CA of the resolver's connection to a tls+tcp://
// coordinator (dtx_participant_set_resolver), as for
// dtx_client_open_tls(). Before listen only. Errors as
// dtx_participant_set_tls.
DTX_API int dtx_participant_set_resolver_tls(
    dtx_participant *p, const dtx_tls_opts *o);

// What a participant has done since it was opened.
typedef struct dtx_participant_stats {
	// Calls answered, by phase and by the status answered:
	// calls[DTX_PHASE_COMMIT][DTX_BRANCH_OK], say. Index 0 of each is
	// unused (no phase 0; status NONE is never answered).
	uint64_t calls[DTX_PHASE_COMPENSATE + 1][DTX_BRANCH_BAD_REQUEST + 1];
	uint64_t shed;    // answered RETRY unrun: waited past the call timeout
	uint64_t replays; // barrier: duplicates answered from the record
	uint64_t null_ops; // barrier: aborts/compensations of nothing
	uint64_t hanging;  // barrier: prepares/executes refused as too late
	uint64_t resolve_asks;     // resolver: in-doubt branches asked about
	uint64_t resolve_commits;  // resolver: commits it ran
	uint64_t resolve_aborts;   // resolver: aborts it ran
	uint64_t resolve_failures; // resolver: questions or runs that failed
} dtx_participant_stats;

// Copies p's counters into *out. Errors: DTX_EINVAL. Thread-safe.
DTX_API int dtx_participant_stats_get(
    dtx_participant *p, dtx_participant_stats *out);

// Starts serving branch calls on url (tcp://, ipc://, inproc://, or
// tls+tcp:// after dtx_participant_set_tls). May be called once. Errors:
// DTX_EINVAL (also a tls+tcp:// URL without TLS settings, TLS settings
// with another URL, and a resolver coordinator URL that does not match its
// TLS settings: dtx_participant_message() says which), DTX_ESTATE,
// DTX_ETRANSPORT, DTX_ENOMEM.
DTX_API int dtx_participant_listen(dtx_participant *p, const char *url);

// Stops listening, waits for running callbacks to return, frees everything.
// Accepts NULL. Must not be called from a callback.
DTX_API void dtx_participant_close(dtx_participant *p);

// ---------------------------------------------------------------------------
// Barrier: exactly-once callbacks backed by the participant's own RocksDB
// ---------------------------------------------------------------------------

// The RocksDB C API's types (<rocksdb/c.h>), declared here so that this
// header does not need RocksDB's unless the barrier is used.
typedef struct rocksdb_t            rocksdb_t;
typedef struct rocksdb_writebatch_t rocksdb_writebatch_t;

// Settings of the barrier. Zero fields take the defaults.
typedef struct dtx_barrier_opts {
	// Prefix of every key the barrier writes (default "dtx/"). Pick one
	// that none of the service's own keys start with.
	const char *prefix;
	// How long the record of a call is kept after it was written (default
	// 7 days). A call delivered later than this is not recognised any
	// more: keep it well above the coordinator's longest retry horizon. A
	// prepared branch that is still undecided is never purged.
	int64_t retention_ms;
	// true: barrier writes are never synced (tests and benchmarks only:
	// a power loss may then lose a reply the coordinator already acted
	// on).
	bool no_sync;
	// Optional. When set, lock(lock_arg) is called before a callback runs
	// and unlock(lock_arg) once its batch is written to the store, not
	// yet synced (see "What a callback may assume" below). Use it when
	// callbacks read data that other branches change (an account balance):
	// the reads and the write then happen under one lock, as they must,
	// and the lock is not held while the write is synced.
	void (*lock)(void *lock_arg);
	void (*unlock)(void *lock_arg);
	void *lock_arg;
} dtx_barrier_opts;

// Makes every callback of p run at most once per (gid, branch, phase),
// durably, with db (opened by the caller, which closes it after
// dtx_participant_close()) as the store. In a callback,
// dtx_reply_writebatch() gives a batch where the callback stages its
// business writes instead of writing them itself; the SDK writes that batch
// and the barrier's record of the call in one atomic write, synced before
// the call's reply leaves. Then:
//
// - A repeated call answers the first call's reply (status, message,
//   payload) without running the callback. OK and REFUSED answers are
//   recorded; RETRY is not (its batch is dropped), nor is a REFUSED from
//   commit, abort or compensate, which dtxd retries.
// - An abort or compensate of a branch whose prepare or execute never
//   answered OK here is a null operation: it answers OK without running the
//   callback, and is recorded.
// - A prepare or execute that arrives after its branch was aborted or
//   compensated here is REFUSED without running the callback (no hanging
//   reservation), even a duplicate of one that answered OK: its OK is not
//   replayed once the branch was undone.
// - A commit of a branch that is not prepared here, a commit after an
//   abort, or an abort after a commit breaks the protocol: it is answered
//   REFUSED with a message saying why, the callback does not run, and dtxd
//   keeps retrying it (the transaction shows as STUCK for an operator).
// - Deliveries of the same (gid, branch) are serialised, so concurrent
//   duplicates run the callback at most once.
// - Records older than the retention are purged in the background, a
//   bounded number per pass.
//
// Group commit. The SDK writes each call's batch (with the barrier's
// record) unsynced, and sends the call's reply only once a sync covers it.
// One sync covers every batch written before it began, so concurrent calls
// share it. No callback waits for a sync, and the user's lock is not held
// during one.
//
// What a callback may assume:
// - Its reads see every batch this participant's calls wrote before it
//   ran, synced or not. With the lock hooks, no other callback of this
//   participant runs between lock and unlock, and its own batch is
//   written (visible to every later read) before unlock.
// - A batch it read from that is not synced yet becomes durable before,
//   or in the same sync as, its own batch, and before either reply is
//   sent. After a crash, even a power loss, the store holds a prefix of
//   the batches in the order they were written: a lost batch takes every
//   later one with it, none of them was answered, and dtxd calls again.
//   So what the store holds never rests on a lost batch.
// - It runs on a libdtx thread on which RocksDB's perf counters are off
//   (rocksdb_set_perf_level): a callback that wants them sets the level.
// - What it does outside its batch has no such guarantee. State it keeps
//   in memory must be rebuilt from the store at start (a crash may lose
//   the last batches), and an effect outside the store (a message sent)
//   decided on what it read may outlive a batch that a power loss takes
//   back. Likewise a reader outside the callbacks may see an effect up to
//   one sync before it is durable.
// This relies on RocksDB's defaults for db: the batches go through the
// WAL, which is recovered as a prefix (wal_recovery_mode point-in-time,
// the default, or absolute consistency; not skip-any-corrupted-records),
// and no unordered_write. If a sync fails, every later call is answered
// RETRY, with a message, until the participant restarts: after a failed
// fsync, nothing written since the last good one is known to be on disk.
//
// A REFUSED prepare or execute must leave nothing to undo (its batch is
// written, but no abort or compensate callback will run for it). Before
// listen only; o may be NULL. Errors: DTX_EINVAL, DTX_ESTATE (listening, or
// a barrier already set), DTX_ENOMEM.
DTX_API int dtx_participant_use_barrier(
    dtx_participant *p, rocksdb_t *db, const dtx_barrier_opts *o);

// The barrier's counters since it was set: calls it decided, and syncs of
// its store (fsyncs; each covers every batch written before it began).
// syncs / calls is what a call costs in fsyncs.
typedef struct dtx_barrier_stats {
	uint64_t calls;
	uint64_t syncs;
} dtx_barrier_stats;

// Reads p's barrier counters. Thread-safe. Errors: DTX_EINVAL, DTX_ESTATE
// (no barrier set).
DTX_API int dtx_participant_barrier_stats(
    dtx_participant *p, dtx_barrier_stats *out);

// Makes p settle its own in-doubt branches: a branch prepared here and not
// committed or aborted within after_ms is looked up with
// dtx_client_resolve() at the coordinator at url (a list of a cluster's
// nodes is taken as dtx_client_open() takes it), and its commit or abort
// callback is then run through the barrier, as if dtxd had called (with
// dtx_call.attempt 0); dtxd's own later call is then a duplicate. Answers
// as dtx_client_resolve() says: the resolver commits on COMMITTING and
// COMMITTED, aborts on ABORTING and ABORTED (an unknown gid is ABORTED:
// presumed abort), and asks again later on anything else. So a coordinator
// that lost its record cannot leave a reservation held forever.
// Needs the barrier, which knows the prepared branches. Before listen only.
// Errors: DTX_EINVAL, DTX_ESTATE (no barrier, or listening), DTX_ENOMEM.
DTX_API int dtx_participant_set_resolver(
    dtx_participant *p, const char *url, uint32_t after_ms);

// The batch where a callback stages its business writes when the barrier
// is on, or NULL without a barrier. Owned by the SDK; valid for the
// duration of the callback. Do not write it yourself.
DTX_API rocksdb_writebatch_t *dtx_reply_writebatch(dtx_reply *r);

// ---------------------------------------------------------------------------
// Client (initiator)
// ---------------------------------------------------------------------------

typedef struct dtx_client dtx_client; // opaque, thread-safe
typedef struct dtx_tx     dtx_tx;     // opaque, one thread at a time

// Opens a client of the coordinator at url (tcp:// or ipc://). On success
// *cp must be released with dtx_client_close(). The connection is made in
// the background, so a coordinator that is not up yet is not an error here.
// A connection that cannot work (a TLS listener at url, say) fails every
// request at once with DTX_EAUTH and a message saying why, never a timeout.
//
// url may list the nodes of a cluster (dtxd --store postgres), separated by
// commas and no spaces: "tcp://10.0.0.1:7300,tcp://10.0.0.2:7300" (at most
// DTX_COORDINATORS_MAX). Any node answers any request, so each request goes
// to the next node in turn that is connected, which spreads the load, and
// is sent again to the next node when it cannot be delivered (the node is
// down or refuses connections: after waiting the connect timeout for one;
// or its connection fails as above), or when the connection it went out
// on breaks before the answer came (the node died: a client waiting for an
// outcome then gets it from another node); until one answers or the
// request's time is up. This is
// safe: a Submit is idempotent by gid, the other requests only read, but
// for Abort (sent again after the first got through, it may find the
// transaction decided: DTX_ESTATE). A node that is merely slow to answer
// is not left. When no node answers, the error is the last node's and
// dtx_tx_message() names every node tried and what happened there. Never
// list nodes that do not share one store: each would run the transactions
// it receives on its own.
//
// Errors: DTX_EINVAL (a malformed URL, an empty one or too many, or a
// tls+tcp:// one: see dtx_client_open_tls; logged), DTX_ENOMEM,
// DTX_ETRANSPORT. Thread-safe.
DTX_API int dtx_client_open(dtx_client **cp, const char *url);

// Opens a client of the coordinator at a tls+tcp:// url (or a list of a
// cluster's tls+tcp:// URLs, as dtx_client_open takes it) with o's identity
// (the certificate dtxd's listener accepts: README, "Securing dtx") and
// CA (the one dtxd's certificate is signed by), as dtx_client_open() does.
// The server's certificate must carry o->server_name or url's host. When
// the TLS handshake fails, on either side, requests fail with DTX_EAUTH and
// a message that says what went wrong (unknown CA, no certificate, wrong
// name, expired, a plain listener), which is also logged. Errors:
// DTX_EINVAL (o NULL, a URL that is not tls+tcp://, an item missing,
// unreadable, malformed or outside its validity dates: logged with the file
// and the reason), DTX_ENOMEM, DTX_ETRANSPORT. Thread-safe.
DTX_API int dtx_client_open_tls(
    dtx_client **cp, const char *url, const dtx_tls_opts *o);

// Timeout of one request that does not wait for an outcome (default 10000
// ms): a coordinator that takes longer is reported as DTX_ETIMEDOUT, "did
// not answer in time". Errors: DTX_EINVAL.
DTX_API int dtx_client_set_timeout_ms(dtx_client *c, int32_t ms);

// How long a request waits for a connection to the coordinator before it
// fails with DTX_EUNREACHABLE (default 1000 ms); the message then names the
// URL and the reason ("Connection refused"). Errors: DTX_EINVAL.
DTX_API int dtx_client_set_connect_timeout_ms(dtx_client *c, int32_t ms);

// Copies the coordinator's (or the transport's) explanation of the last
// request on c that failed into buf (cap bytes; "" when none): for the
// calls without a dtx_tx (abort, resolve, list, stats, retry, settle).
// When several threads share c, it is one of theirs. Thread-safe.
DTX_API void dtx_client_message(dtx_client *c, char *buf, size_t cap);

// Closes the client. Accepts NULL. Transactions begun on it must be freed
// first (or from their callbacks): every asynchronous commit still in
// flight ends now, its callback getting DTX_ECLOSED (on an nng thread or
// this one), and a request started meanwhile fails with DTX_ECLOSED.
// Must not be called from a callback of the client.
DTX_API void dtx_client_close(dtx_client *c);

// Begins a transaction of the given mode with a fresh unique gid (its first
// 12 hex digits are the time in ms, so gids sort by creation). Nothing is
// sent until commit or submit. Errors: DTX_EINVAL, DTX_ENOMEM.
DTX_API int dtx_tx_begin(dtx_tx **txp, dtx_client *c, dtx_mode mode);

// Binds a handle to an existing transaction by gid, for status and wait.
// Errors: DTX_EINVAL, DTX_ENOMEM.
DTX_API int dtx_tx_attach(dtx_tx **txp, dtx_client *c, const char *gid);

// Replaces the generated gid (1..DTX_GID_MAX printable bytes). Submitting the
// same gid again is idempotent; the same gid with other branches is
// DTX_EEXIST. Before commit/submit only. Errors: DTX_EINVAL, DTX_ESTATE.
DTX_API int dtx_tx_set_gid(dtx_tx *tx, const char *gid);

// The transaction's gid; valid until dtx_tx_free().
DTX_API const char *dtx_tx_gid(const dtx_tx *tx);

// Per-transaction settings; 0 means the coordinator's default (dtxd's
// --timeout-ms, --call-timeout-ms, --retries).
// - timeout (1..DTX_TIMEOUT_MS_MAX): the 2PC prepare phase or the saga
//   forward phase; past it no PREPARE or EXECUTE is sent or retried.
// - call timeout (1..DTX_CALL_TIMEOUT_MS_MAX): one branch call.
// - retries (1..DTX_RETRIES_MAX): how many times a failing forward call
//   (PREPARE or EXECUTE answered RETRY, or not answered) is called again
//   after its first call, so a branch gets at most 1 + n calls before the
//   transaction gives up on it (aborts or turns back); fewer if the timeout
//   comes first. Phase two and COMPENSATE are retried until they succeed.
//   (The count is of retries, as the name says; a branch that must be
//   called once only cannot be asked per transaction, only with dtxd
//   --retries 0.)
// Before commit/submit only. Errors: DTX_EINVAL (out of range:
// dtx_tx_message() names the setter and the range), DTX_ESTATE.
// (dtx_tx_commit counts on dtxd's defaults being 30000 and 5000 ms for
// the timeouts left at 0.)
DTX_API int dtx_tx_set_timeout_ms(dtx_tx *tx, uint32_t ms);
DTX_API int dtx_tx_set_call_timeout_ms(dtx_tx *tx, uint32_t ms);
DTX_API int dtx_tx_set_retries(dtx_tx *tx, uint32_t n);

// Sets the W3C traceparent ("00-<32 hex trace id>-<16 hex parent id>-<2 hex
// flags>") the transaction carries: dtxd stores it, sends it with every
// branch call (dtx_call.traceparent) and writes its trace id in every log
// line about the transaction. dtx exports no spans itself. Before
// commit/submit only. Errors: DTX_EINVAL (not a valid traceparent:
// dtx_tx_message() says why), DTX_ESTATE.
DTX_API int dtx_tx_set_traceparent(dtx_tx *tx, const char *traceparent);

// The transaction's traceparent, or "" (for an attached handle: as the
// coordinator last reported it). Valid until dtx_tx_free().
DTX_API const char *dtx_tx_traceparent(const dtx_tx *tx);

// true: dtx_tx_commit (and _async) waits for every branch to acknowledge,
// as long as that takes (within the transaction's timeout plus a minute of
// phase two), instead of returning once the outcome is decided (the
// default). Before commit only. Errors: DTX_EINVAL, DTX_ESTATE.
DTX_API int dtx_tx_set_wait_all(dtx_tx *tx, bool wait_all);

// Adds a branch: call method on the participant at endpoint with payload
// (copied). Branches run in the order added (saga; the steps of a group in
// parallel, see dtx_tx_saga_group_begin) or all in parallel (2PC).
// Errors: DTX_EINVAL (bad endpoint or method), DTX_ETOOBIG (payload over
// DTX_PAYLOAD_MAX_DEFAULT or more than DTX_BRANCHES_MAX branches),
// DTX_ESTATE, DTX_ENOMEM.
DTX_API int dtx_tx_add(dtx_tx *tx, const char *endpoint, const char *method,
    const void *payload, size_t len);

// Saga steps in parallel (DTM's concurrent saga). The steps added between
// dtx_tx_saga_group_begin() and dtx_tx_saga_group_end() (with dtx_tx_add(),
// dtx_tx_add_method() or a generated <service>_<method>_add()) form one
// group: dtxd executes them in parallel, and starts the next step (or
// group) only once every step of the group executed OK. Put in one group
// only steps that do not depend on each other. If a step refuses, or fails
// past its retries or the saga's timeout, the saga turns back: every step
// of that group that ran or may have run is compensated (in parallel;
// a step still executing first finishes), then the groups before it, one
// group at a time in reverse order. A step outside a group is a group of
// its own; an empty group changes nothing. Groups do not nest.
//
//     dtx_tx_add(tx, flights, "book", ...);     // alone, first
//     dtx_tx_saga_group_begin(tx);
//     dtx_tx_add(tx, hotels, "book", ...);      // these two
//     dtx_tx_add(tx, cars, "rent", ...);        // in parallel
//     dtx_tx_saga_group_end(tx);
//     dtx_tx_add(tx, payments, "charge", ...);  // after both
//
// Before commit/submit only; committing with a group open is DTX_EINVAL.
// Errors: DTX_EINVAL (tx NULL, or not a saga: dtx_tx_message() says why),
// DTX_ESTATE (begin with a group open, end with none, or tx already sent).
DTX_API int dtx_tx_saga_group_begin(dtx_tx *tx);
DTX_API int dtx_tx_saga_group_end(dtx_tx *tx);

// Adds a branch calling method m (see dtx_method_desc) as dtx_tx_add() does,
// after checking that m serves the transaction's mode. Errors: those of
// dtx_tx_add(), and DTX_EINVAL with dtx_tx_message() saying why when m is
// NULL, has no valid name or does not serve the mode.
DTX_API int dtx_tx_add_method(dtx_tx *tx, const char *endpoint,
    const dtx_method_desc *m, const void *payload, size_t len);

// Runs the transaction and returns once its outcome is decided and durable,
// which is written to *outcome: DTX_STATE_COMMITTED, DTX_STATE_ABORTED or
// DTX_STATE_COMPENSATED when it is reached; DTX_STATE_COMMITTING,
// DTX_STATE_ABORTING or DTX_STATE_COMPENSATING when the outcome is decided
// (a 2PC commit decision synced, an abort, a saga turned back and synced)
// but its delivery is held up, because a participant cannot be reached or
// does not answer: dtxd goes on delivering it (follow it with dtx_tx_wait),
// and each branch's result says why (its error and message). So it returns
// within the transaction's timeout plus one call timeout even with a
// participant down (dtx_tx_set_wait_all() waits for every acknowledgement
// instead). A refused transaction is an outcome, not an error. Errors:
// DTX_EINVAL (no branches, or a saga group left open), DTX_EEXIST,
// DTX_ETOOBIG (the request would be over the 16 MiB frame a dtxd takes by
// default: refused before anything is sent), DTX_EUNREACHABLE (no connection
// to the coordinator within the connect timeout; dtx_tx_message() names its
// URL and the reason), DTX_ETIMEDOUT (the coordinator did not answer in time;
// the transaction may go on: use dtx_tx_wait), DTX_EAUTH (the TLS handshake
// with dtxd fails: dtx_tx_message() says why; so does every request on a
// client whose connection fails that way), DTX_ECLOSED (the client was
// closed), DTX_ETRANSPORT, DTX_ESHUTDOWN, DTX_ESTORAGE, DTX_ENOSPC and the
// coordinator's other errors.
DTX_API int dtx_tx_commit(dtx_tx *tx, dtx_state *outcome);

// Called exactly once when an asynchronous commit ends: rv is 0 or an error
// as dtx_tx_commit returns it (DTX_ECLOSED when the client is closed
// first), and outcome (as dtx_tx_commit writes it) is valid only when rv is
// 0; branch results and the message are then in tx. It runs on an nng thread
// with no libdtx lock held, must not block, and may free tx and begin and
// commit (also asynchronously) other transactions on the same client; it must
// not close the client.
typedef void (*dtx_commit_fn)(
    dtx_tx *tx, int rv, dtx_state outcome, void *arg);

// Runs the transaction as dtx_tx_commit does without waiting for it: returns
// once the request is on its way, and cb(tx, rv, outcome, arg) runs later.
// Until cb runs, tx must be neither used nor freed (closing the client ends
// it: see dtx_client_close). Any number of commits may be in flight on one
// client; no thread is used per commit. Errors (cb then never runs):
// DTX_EINVAL (tx or cb NULL, no branches, a saga group open), DTX_ENOMEM,
// DTX_ETRANSPORT, DTX_EAUTH (the connection is known to fail its TLS
// handshake). Thread-safe across transactions.
DTX_API int dtx_tx_commit_async(dtx_tx *tx, dtx_commit_fn cb, void *arg);

// Hands the transaction to the coordinator and returns once it is durably
// accepted; it then runs in the background. Errors as dtx_tx_commit.
DTX_API int dtx_tx_submit(dtx_tx *tx);

// Fetches the transaction's current state into *state and refreshes branch
// results. Errors: DTX_ENOTFOUND, DTX_ETIMEDOUT, DTX_ETRANSPORT.
DTX_API int dtx_tx_status(dtx_tx *tx, dtx_state *state);

// Waits up to timeout_ms (negative: forever) for a terminal state. Errors:
// DTX_ETIMEDOUT (not terminal yet), DTX_ENOTFOUND, DTX_ETRANSPORT.
DTX_API int dtx_tx_wait(dtx_tx *tx, int32_t timeout_ms, dtx_state *state);

// True when the coordinator flags the transaction STUCK: its compensation or
// phase two keeps failing (it is still retried).
DTX_API bool dtx_tx_stuck(const dtx_tx *tx);

// The transaction as the coordinator last reported it (after a commit,
// submit, status or wait): gid, mode, state, STUCK flag, creation and last
// update times (ms since the epoch) and branch count. Errors: DTX_EINVAL,
// DTX_ESTATE (nothing reported yet).
typedef struct dtx_tx_info dtx_tx_info;
DTX_API int                dtx_tx_info_get(const dtx_tx *tx, dtx_tx_info *out);

// The coordinator's readable message for the last failed call, or why
// dtx_tx_add_method() or a dtx_tx_set_* setter refused, or "".
DTX_API const char *dtx_tx_message(const dtx_tx *tx);

// What one branch answered. status, phase, attempts, message and payload
// are the last reply's (after a commit: the commit's). The forward_ fields
// are the reply of the forward phase, prepare (2PC) or execute (saga),
// which later phases do not replace: what the participant returned there
// (a reservation's number, say) stays readable after the commit, abort or
// compensation. Generated <method>_reply() functions decode
// forward_payload. Pointers stay valid until the next call on tx or
// dtx_tx_free().
typedef struct dtx_branch_result {
	dtx_branch_status status;   // DTX_BRANCH_NONE: no reply yet
	dtx_phase         phase;    // phase of that reply
	uint32_t          attempts; // calls made in that phase
	const char       *message;  // participant's or transport's message
	const void       *payload;  // reply payload
	size_t            payload_len;
	dtx_branch_status forward_status; // DTX_BRANCH_NONE: not answered yet
	const void       *forward_payload;
	size_t            forward_payload_len;
	// Why the last call got no answer: DTX_EUNREACHABLE (no connection
	// to the participant; message names it and the reason),
	// DTX_ETIMEDOUT (it did not answer within the call timeout), another
	// code; 0 when it answered.
	int error;
	// When an operator settled the branch by hand (dtxctl settle), ms
	// since the epoch, its note being the message; 0 otherwise.
	int64_t settled_ms;
} dtx_branch_result;

DTX_API unsigned dtx_tx_branch_count(const dtx_tx *tx);

// The method of branch i as it was added, or NULL (i out of range, or a
// handle from dtx_tx_attach(), which does not know its branches' methods).
// Valid until dtx_tx_free().
DTX_API const char *dtx_tx_branch_method(const dtx_tx *tx, unsigned i);

// Errors: DTX_EINVAL (i out of range or out NULL).
DTX_API int dtx_tx_branch_result(
    const dtx_tx *tx, unsigned i, dtx_branch_result *out);

// Frees the handle (not the transaction, which the coordinator owns). Accepts
// NULL.
DTX_API void dtx_tx_free(dtx_tx *tx);

// Asks the coordinator to abort gid: a 2PC transaction still preparing is
// aborted, a running saga is compensated. *state receives the state after the
// request. An operator command: a dtxd with TLS or an operator listener
// takes it only there (README, "Securing dtx"). Errors: DTX_ENOTFOUND,
// DTX_ESTATE (already decided), DTX_EPERM (not the operator listener),
// transport; dtx_client_message() says more.
DTX_API int dtx_client_abort(dtx_client *c, const char *gid, dtx_state *state);

// Re-drives gid now, as an operator does for a STUCK transaction: every
// branch call waiting for its retry is made at once and the backoff starts
// again from its base. *state receives the state after the request. An
// operator command, as dtx_client_abort. Errors: DTX_EINVAL,
// DTX_ENOTFOUND, DTX_ESTATE (finished), DTX_EPERM, transport;
// dtx_client_message() says more.
DTX_API int dtx_client_retry(dtx_client *c, const char *gid, dtx_state *state);

// Records that an operator did branch's phase two (commit, abort or
// compensation) by hand, for a participant that is gone for good: dtxd
// counts the branch done, keeps note (1..200 bytes, required) as its
// message with the time (dtx_branch_result.settled_ms), logs it, and the
// transaction can finish. Returns once the record is synced; *state
// receives the state after it. Settling a settled branch again is a no-op.
// An operator command, as dtx_client_abort. Errors: DTX_EINVAL (no such
// branch, no note), DTX_ENOTFOUND, DTX_ESTATE (the outcome is not decided
// yet, the branch is done, or the transaction finished), DTX_EPERM,
// transport; dtx_client_message() says why.
DTX_API int dtx_client_settle(dtx_client *c, const char *gid, unsigned branch,
    const char *note, dtx_state *state);

// Asks the outcome of gid as a participant holding an in-doubt branch does
// (the rule is stated once, in dtxd's coordinator/requests.c, on_resolve):
// an unknown gid is DTX_STATE_ABORTED (presumed abort). COMMITTING or
// COMMITTED: commit (dtxd reports COMMITTING only once the commit decision
// is synced); ABORTING or ABORTED: abort; PREPARING: undecided, ask again.
DTX_API int dtx_client_resolve(
    dtx_client *c, const char *gid, dtx_state *state);

// A summary of one transaction, as listed.
typedef struct dtx_tx_info {
	char      gid[DTX_GID_MAX + 1];
	dtx_mode  mode;
	dtx_state state;
	bool      stuck;
	int64_t   created_ms;
	int64_t   updated_ms;
	unsigned  branch_count;
} dtx_tx_info;

// Lists transactions in gid order after cursor ("" or NULL: from the start),
// only those in state filter (0: any), and, with DTX_LIST_STUCK or'ed into
// filter, only those flagged STUCK. Writes up to max (<= 100) entries to
// out, their number to *n, and the cursor of the next page to next ("" at the
// end; next has room for DTX_GID_MAX + 1 bytes). An operator command, as
// dtx_client_abort. Errors: DTX_EINVAL, DTX_EPERM, transport.
#define DTX_LIST_STUCK 0x100
DTX_API int dtx_client_list(dtx_client *c, int filter, const char *cursor,
    dtx_tx_info *out, unsigned max, unsigned *n, char *next);

// The coordinator's counters since it started.
typedef struct dtx_coordinator_stats {
	uint64_t active;        // transactions in memory (unfinished)
	uint64_t started;       // accepted since start
	uint64_t finished;      // reached a terminal state since start
	uint64_t recovered;     // resumed from the store at start
	uint64_t store_writes;  // records written
	uint64_t store_batches; // write batches (group commits)
	uint64_t store_syncs;   // synced batches (fsyncs)
	uint64_t store_errors;  // failed batches
	uint64_t uptime_ms;
	uint64_t branch_calls;  // branch calls sent to participants
	uint64_t call_messages; // frames that carried them (a batch is one)
} dtx_coordinator_stats;

// Fetches the coordinator's counters (with several URLs, those of the node
// that answered). Errors: DTX_EINVAL, DTX_ETIMEDOUT, DTX_ETRANSPORT.
// Thread-safe.
DTX_API int dtx_client_stats(dtx_client *c, dtx_coordinator_stats *out);

#ifdef __cplusplus
}
#endif

#endif // DTX_DTX_H
