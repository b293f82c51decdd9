// SPDX-License-Identifier: MIT
//
// participant: dtx_participant, the server side of libdtx as its user sees
// it: options, the method registry, and the run of one branch call (find
// the method and the phase's callback, shed a call that waited too long,
// run the callback, through the barrier when there is one, and turn its
// result into a wire reply). The socket, the contexts and the worker
// threads are serve.c's; the reply object is reply.c's; exactly-once runs
// are barrier.c's and their background work resolver.c's.
//
// The method table needs no lock: it is written before listen only and is
// immutable afterwards.

#include <dtx/dtx.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barrier.h"
#include "clock.h"
#include "codec.h"
#include "crashpoint.h"
#include "log.h"
#include "names.h"
#include "pstats.h"
#include "reply.h"
#include "resolver.h"
#include "serve.h"
#include "strs.h"
#include "tls.h"
#include "trace.h"

#define DEFAULT_WORKERS  4
#define MAX_WORKERS      256
#define DEFAULT_CONTEXTS 64
#define MAX_CONTEXTS     4096
// Largest payload limit we accept: twice (limit + overhead) must stay far
// from SIZE_MAX and be something nng can buffer.
#define MAX_PAYLOAD_LIMIT (1024u * 1024u * 1024u)

typedef struct method {
	char           name[DTX_METHOD_MAX + 1];
	dtx_method_ops ops;
	void          *arg;
	void          *owned; // arg, when the participant made it (freed)
} method;

struct dtx_participant {
	unsigned nworkers;
	unsigned ncontexts;
	size_t   max_payload;

	method  *methods; // sorted by name, immutable once listening
	unsigned nmethods;
	unsigned capmethods;

	bool           listening;
	dtxi_serve    *serve;    // the transport, while listening
	dtxi_barrier  *barrier;  // NULL: callbacks run unguarded
	dtxi_resolver *resolver; // the barrier's background work, listening
	char          *resolver_url; // NULL: no in-doubt resolution
	uint32_t       resolve_after_ms;
	dtxi_tls      *tls;          // the listener's, or NULL
	dtxi_tls      *resolver_tls; // the resolver's client's, or NULL
	dtxi_crash     crash; // DTX_PARTICIPANT_CRASH_AT, read at listen
	char        message[DTX_MESSAGE_MAX + 1]; // why the last call failed
	dtxi_pstats stats;
};

// Binary search; *at receives the insertion point when not found.
static method *
method_find(const dtx_participant *p, const char *name, unsigned *at)
{
	unsigned lo = 0;
	unsigned hi = p->nmethods;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int      c   = strcmp(name, p->methods[mid].name);
		if (c == 0) {
			return &p->methods[mid];
		}
		if (c < 0) {
			hi = mid;
		} else {
			lo = mid + 1;
		}
	}
	if (at != NULL) {
		*at = lo;
	}
	return NULL;
}

int
dtx_participant_open(dtx_participant **pp)
{
	dtx_participant *p;

	if (pp == NULL) {
		return DTX_EINVAL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return DTX_ENOMEM;
	}
	p->nworkers    = DEFAULT_WORKERS;
	p->ncontexts   = DEFAULT_CONTEXTS;
	p->max_payload = DTX_PAYLOAD_MAX_DEFAULT;
	*pp            = p;
	return 0;
}

int
dtx_participant_set_workers(dtx_participant *p, unsigned n)
{
	if (p == NULL || n == 0 || n > MAX_WORKERS) {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return DTX_ESTATE;
	}
	p->nworkers = n;
	return 0;
}

int
dtx_participant_set_contexts(dtx_participant *p, unsigned n)
{
	if (p == NULL || n == 0 || n > MAX_CONTEXTS) {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return DTX_ESTATE;
	}
	p->ncontexts = n;
	return 0;
}

int
dtx_participant_set_max_payload(dtx_participant *p, size_t n)
{
	if (p == NULL || n == 0 || n > MAX_PAYLOAD_LIMIT) {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return DTX_ESTATE;
	}
	p->max_payload = n;
	return 0;
}

// Refuses a call on p with rv, keeping the reason for
// dtx_participant_message().
static int
refuse(dtx_participant *p, int rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->message, sizeof(p->message), fmt, ap);
	va_end(ap);
	DTXI_WARN("participant: %s", p->message);
	return rv;
}

// Adds a method to the table; on success it owns owned (may be NULL).
static int
method_add(dtx_participant *p, const char *name, const dtx_method_ops *ops,
    void *arg, void *owned)
{
	method  *m;
	unsigned at = 0;

	if (p->listening) {
		return refuse(p, DTX_ESTATE,
		    "method %s: the participant is already listening", name);
	}
	if (method_find(p, name, &at) != NULL) {
		return refuse(
		    p, DTX_EEXIST, "method %s is already registered", name);
	}
	if (p->nmethods == p->capmethods) {
		unsigned cap = p->capmethods == 0 ? 8 : p->capmethods * 2;
		method  *nm  = realloc(p->methods, cap * sizeof(*nm));
		if (nm == NULL) {
			return DTX_ENOMEM;
		}
		p->methods    = nm;
		p->capmethods = cap;
	}
	memmove(&p->methods[at + 1], &p->methods[at],
	    (p->nmethods - at) * sizeof(p->methods[0]));
	m = &p->methods[at];
	dtxi_strlcpy(m->name, name, sizeof(m->name));
	m->ops   = *ops;
	m->arg   = arg;
	m->owned = owned;
	p->nmethods++;
	return 0;
}

int
dtx_participant_register(
    dtx_participant *p, const char *name, const dtx_method_ops *ops, void *arg)
{
	if (p == NULL) {
		return DTX_EINVAL;
	}
	p->message[0] = '\0';
	if (ops == NULL || !dtxi_method_ok(name)) {
		return refuse(p, DTX_EINVAL,
		    "no callbacks, or a method name that is not 1-%d "
		    "printable "
		    "ASCII bytes",
		    DTX_METHOD_MAX);
	}
	if (ops->prepare == NULL && ops->commit == NULL &&
	    ops->abort == NULL && ops->execute == NULL &&
	    ops->compensate == NULL) {
		return refuse(
		    p, DTX_EINVAL, "method %s has no callback", name);
	}
	return method_add(p, name, ops, arg, NULL);
}

int
dtx_participant_register_method(dtx_participant *p, const dtx_method_desc *m,
    const dtx_method_ops *ops, const void *ctx, size_t len)
{
	static const struct {
		unsigned    mode;
		const char *phase;
		size_t      off;
	} need[] = {
	    {DTX_2PC, "prepare", offsetof(dtx_method_ops, prepare)},
	    {DTX_2PC, "commit", offsetof(dtx_method_ops, commit)},
	    {DTX_2PC, "abort", offsetof(dtx_method_ops, abort)},
	    {DTX_SAGA, "execute", offsetof(dtx_method_ops, execute)},
	    {DTX_SAGA, "compensate", offsetof(dtx_method_ops, compensate)},
	};
	void *copy = NULL;
	int   rv;

	if (p == NULL) {
		return DTX_EINVAL;
	}
	p->message[0] = '\0';
	if (m == NULL || ops == NULL || !dtxi_method_ok(m->name) ||
	    (ctx == NULL && len > 0)) {
		return refuse(p, DTX_EINVAL,
		    "no method, no callbacks, or a method name that is not "
		    "1-%d printable ASCII bytes",
		    DTX_METHOD_MAX);
	}
	if (m->modes == 0 || (m->modes & ~(unsigned)(DTX_2PC | DTX_SAGA))) {
		return refuse(p, DTX_EINVAL,
		    "method %s: modes %u are not DTX_2PC, DTX_SAGA or both",
		    m->name, m->modes);
	}
	// Missing callbacks first (the likelier mistake), then extra ones.
	for (int extra = 0; extra < 2; extra++) {
		for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
			dtx_phase_fn fn;
			bool         want = (m->modes & need[i].mode) != 0;

			memcpy(
			    &fn, (const char *)ops + need[i].off, sizeof(fn));
			if (!extra && want && fn == NULL) {
				return refuse(p, DTX_EINVAL,
				    "method %s (%s) has no %s callback",
				    m->name,
				    m->modes == (DTX_2PC | DTX_SAGA)
				        ? "2pc and saga"
				        : dtx_mode_name((int)m->modes),
				    need[i].phase);
			}
			if (extra && !want && fn != NULL) {
				return refuse(p, DTX_EINVAL,
				    "method %s is not a %s method but has a "
				    "%s callback",
				    m->name, dtx_mode_name((int)need[i].mode),
				    need[i].phase);
			}
		}
	}
	if (len > 0) {
		if ((copy = malloc(len)) == NULL) {
			return DTX_ENOMEM;
		}
		memcpy(copy, ctx, len);
	}
	if ((rv = method_add(p, m->name, ops, copy, copy)) != 0) {
		free(copy);
	}
	return rv;
}

const char *
dtx_participant_message(const dtx_participant *p)
{
	return p != NULL ? p->message : "";
}

int
dtx_participant_stats_get(dtx_participant *p, dtx_participant_stats *out)
{
	if (p == NULL || out == NULL) {
		return DTX_EINVAL;
	}
	for (int ph = 0; ph <= DTX_PHASE_COMPENSATE; ph++) {
		for (int st = 0; st <= DTX_BRANCH_BAD_REQUEST; st++) {
			out->calls[ph][st] = atomic_load_explicit(
			    &p->stats.calls[ph][st], memory_order_relaxed);
		}
	}
	out->shed             = atomic_load(&p->stats.shed);
	out->replays          = atomic_load(&p->stats.replays);
	out->null_ops         = atomic_load(&p->stats.null_ops);
	out->hanging          = atomic_load(&p->stats.hanging);
	out->resolve_asks     = atomic_load(&p->stats.resolve_asks);
	out->resolve_commits  = atomic_load(&p->stats.resolve_commits);
	out->resolve_aborts   = atomic_load(&p->stats.resolve_aborts);
	out->resolve_failures = atomic_load(&p->stats.resolve_failures);
	return 0;
}

int
dtx_participant_use_barrier(
    dtx_participant *p, rocksdb_t *db, const dtx_barrier_opts *o)
{
	if (p == NULL || db == NULL) {
		return DTX_EINVAL;
	}
	if (p->listening || p->barrier != NULL) {
		return DTX_ESTATE;
	}
	return dtxi_barrier_alloc(&p->barrier, db, o, &p->crash, &p->stats);
}

int
dtx_participant_barrier_stats(dtx_participant *p, dtx_barrier_stats *out)
{
	if (p == NULL || out == NULL) {
		return DTX_EINVAL;
	}
	if (p->barrier == NULL) {
		return DTX_ESTATE;
	}
	dtxi_barrier_counts(p->barrier, &out->calls, &out->syncs);
	return 0;
}

int
dtx_participant_set_resolver(
    dtx_participant *p, const char *url, uint32_t after_ms)
{
	char *copy;

	if (p == NULL || url == NULL || url[0] == '\0' || after_ms == 0) {
		return DTX_EINVAL;
	}
	if (p->listening || p->barrier == NULL) {
		return DTX_ESTATE;
	}
	if ((copy = strdup(url)) == NULL) {
		return DTX_ENOMEM;
	}
	free(p->resolver_url);
	p->resolver_url     = copy;
	p->resolve_after_ms = after_ms;
	return 0;
}

// Loads o into *slot (replacing what was there) for dtx_participant_set_tls
// and dtx_participant_set_resolver_tls.
static int
set_tls(dtx_participant *p, const dtx_tls_opts *o, dtxi_tls_role role,
    dtxi_tls **slot)
{
	dtxi_tls *t;
	char      why[DTX_MESSAGE_MAX + 1];
	int       rv;

	if (p == NULL || o == NULL) {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return refuse(p, DTX_ESTATE, "the participant is listening");
	}
	if ((rv = dtxi_tls_load(&t, o, role, why, sizeof(why))) != 0) {
		return refuse(p, rv, "%s", why);
	}
	dtxi_tls_rele(*slot);
	*slot = t;
	return 0;
}

int
dtx_participant_set_tls(dtx_participant *p, const dtx_tls_opts *o)
{
	return set_tls(p, o, DTXI_TLS_LISTEN, p != NULL ? &p->tls : NULL);
}

int
dtx_participant_set_resolver_tls(dtx_participant *p, const dtx_tls_opts *o)
{
	return set_tls(
	    p, o, DTXI_TLS_DIAL, p != NULL ? &p->resolver_tls : NULL);
}

static dtx_phase_fn
phase_fn(const dtx_method_ops *ops, int phase)
{
	switch (phase) {
	case DTX_PHASE_PREPARE:
		return ops->prepare;
	case DTX_PHASE_COMMIT:
		return ops->commit;
	case DTX_PHASE_ABORT:
		return ops->abort;
	case DTX_PHASE_EXECUTE:
		return ops->execute;
	case DTX_PHASE_COMPENSATE:
		return ops->compensate;
	default:
		return NULL;
	}
}

// Runs one callback: through the barrier when there is one (which also
// passes the crash points around its write), else directly, with the crash
// points around the callback itself.
static dtx_result
run_guarded(dtx_participant *p, const dtx_call *dc, dtx_phase_fn fn, void *arg,
    dtx_reply *reply)
{
	dtx_result res;

	if (p->barrier != NULL) {
		return dtxi_barrier_call(p->barrier, dc, fn, arg, reply);
	}
	dtxi_crash_point(&p->crash, DTXI_CRASH_BEFORE_BUSINESS_WRITE);
	res = fn(dc, reply, arg);
	dtxi_crash_point(&p->crash, DTXI_CRASH_AFTER_BUSINESS_WRITE);
	return res;
}

// The resolver's way to run a phase as if dtxd had called: the same method
// lookup as a delivery, then the barrier.
static dtx_result
run_resolved(void *arg, const dtx_call *dc, dtx_reply *reply)
{
	dtx_participant *p = arg;
	const method    *m = method_find(p, dc->method, NULL);
	dtx_phase_fn     fn;

	if (m == NULL || (fn = phase_fn(&m->ops, dc->phase)) == NULL) {
		DTXI_ERROR("participant: cannot settle %s/%u: method %s has "
		           "no %s callback",
		    dc->gid, (unsigned)dc->branch_id, dc->method,
		    dtx_phase_name(dc->phase));
		return DTX_RETRY;
	}
	return dtxi_barrier_call(p->barrier, dc, fn, m->arg, reply);
}

// Logs event about call with its gid, branch, phase, attempt and trace id.
static void call_log(int level, const char *event, const dtxi_call *call,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
call_log(
    int level, const char *event, const dtxi_call *call, const char *fmt, ...)
{
	char    msg[DTX_MESSAGE_MAX + 1];
	char    trace_id[33];
	va_list ap;

	if (level > dtxi_log_get_level()) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dtxi_traceparent_trace_id(call->traceparent, trace_id);
	dtxi_log_event(level, event,
	    DTXI_FIELDS(DTXI_F_STR("gid", call->gid),
	        DTXI_F_NUM("branch", call->branch_id),
	        DTXI_F_STR("phase", dtx_phase_name(call->phase)),
	        DTXI_F_NUM("attempt", call->attempt),
	        DTXI_F_STR("method", call->method),
	        DTXI_F_STR("trace_id", trace_id)),
	    "%s", msg);
}

// Load shedding: a call that waited for a worker longer than dtxd waits
// for its reply is answered RETRY without running (true, with out filled).
// Running it would only occupy a worker with an answer nobody reads while
// dtxd's retry queues up behind it: under overload every call would then
// time out. The wait is measured from receipt, so clocks do not matter.
static bool
shed_if_late(const dtxi_call *call, int64_t recv_ms, dtxi_branch_reply *out)
{
	char    why[DTX_MESSAGE_MAX + 1];
	int64_t waited;

	if (call->timeout_ms == 0) {
		return false;
	}
	waited = dtxi_mono_ms() - recv_ms;
	if (waited < (int64_t)call->timeout_ms) {
		return false;
	}
	snprintf(why, sizeof(why),
	    "not run: waited %lld ms for a worker, past the coordinator's %u "
	    "ms call timeout",
	    (long long)waited, (unsigned)call->timeout_ms);
	call_log(DTXI_LOG_WARN, "call_shed", call, "%s", why);
	dtxi_reply_answer(out, DTX_BRANCH_RETRY, why, NULL, 0);
	return true;
}

// Runs one decoded BranchCall (serve.h's run function) and fills out. The
// reply's payload points into reply, which serve keeps alive until the
// reply is encoded. Single and batched calls both come through here.
static void run_call_counted(void *arg, const dtxi_call *call, int64_t recv_ms,
    dtx_reply *reply, dtxi_branch_reply *out);

static void
run_call(void *arg, const dtxi_call *call, int64_t recv_ms, dtx_reply *reply,
    dtxi_branch_reply *out)
{
	dtx_participant *p = arg;

	run_call_counted(arg, call, recv_ms, reply, out);
	if (call->phase >= DTX_PHASE_PREPARE &&
	    call->phase <= DTX_PHASE_COMPENSATE && out->status >= 0 &&
	    out->status <= DTX_BRANCH_BAD_REQUEST) {
		dtxi_pstats_inc(&p->stats.calls[call->phase][out->status]);
	}
}

static void
run_call_counted(void *arg, const dtxi_call *call, int64_t recv_ms,
    dtx_reply *reply, dtxi_branch_reply *out)
{
	dtx_participant *p = arg;
	const method    *m;
	dtx_phase_fn     fn;
	dtx_call         dc;
	dtx_result       res;
	char             why[DTX_MESSAGE_MAX + 1];

	if (call->phase < DTX_PHASE_PREPARE ||
	    call->phase > DTX_PHASE_COMPENSATE) {
		snprintf(why, sizeof(why), "call for method %s has no phase",
		    call->method);
		dtxi_reply_answer(out, DTX_BRANCH_BAD_REQUEST, why, NULL, 0);
		return;
	}
	if ((m = method_find(p, call->method, NULL)) == NULL) {
		snprintf(why, sizeof(why), "no method %s", call->method);
		dtxi_reply_answer(
		    out, DTX_BRANCH_NO_SUCH_METHOD, why, NULL, 0);
		return;
	}
	if ((fn = phase_fn(&m->ops, call->phase)) == NULL) {
		char lower[32];
		dtxi_strlcpy(
		    lower, dtx_phase_name(call->phase), sizeof(lower));
		for (char *s = lower; *s != '\0'; s++) {
			if (*s >= 'A' && *s <= 'Z') {
				*s = (char)(*s - 'A' + 'a');
			}
		}
		snprintf(why, sizeof(why), "method %s has no %s callback",
		    call->method, lower);
		dtxi_reply_answer(
		    out, DTX_BRANCH_NO_SUCH_METHOD, why, NULL, 0);
		return;
	}
	if (shed_if_late(call, recv_ms, out)) {
		dtxi_pstats_inc(&p->stats.shed);
		return;
	}

	dc.gid         = call->gid;
	dc.branch_id   = call->branch_id;
	dc.phase       = (dtx_phase)call->phase;
	dc.method      = call->method;
	dc.payload     = call->payload.len > 0 ? call->payload.ptr : NULL;
	dc.payload_len = call->payload.len;
	dc.attempt     = call->attempt;
	dc.deadline_ms = call->deadline_ms;
	dc.traceparent = call->traceparent;

	res = run_guarded(p, &dc, fn, m->arg, reply);
	switch ((int)res) {
	case DTX_OK:
		dtxi_reply_answer(out, DTX_BRANCH_OK, reply->message,
		    reply->payload, reply->len);
		break;
	case DTX_REFUSED:
		dtxi_reply_answer(out, DTX_BRANCH_REFUSED, reply->message,
		    reply->payload, reply->len);
		break;
	case DTX_RETRY:
		dtxi_reply_answer(out, DTX_BRANCH_RETRY, reply->message,
		    reply->payload, reply->len);
		break;
	case DTX_BAD_REQUEST:
		dtxi_reply_answer(out, DTX_BRANCH_BAD_REQUEST, reply->message,
		    reply->payload, reply->len);
		break;
	default:
		snprintf(why, sizeof(why),
		    "%s callback of %s returned %d, not a dtx_result",
		    dtx_phase_name(call->phase), call->method, (int)res);
		call_log(
		    DTXI_LOG_WARN, "callback_invalid_result", call, "%s", why);
		dtxi_reply_answer(
		    out, DTX_BRANCH_RETRY, why, reply->payload, reply->len);
		break;
	}
}

int
dtx_participant_listen(dtx_participant *p, const char *url)
{
	dtxi_serve_opts o;
	int             rv;

	if (p == NULL || url == NULL || url[0] == '\0') {
		return DTX_EINVAL;
	}
	if (p->listening) {
		return refuse(p, DTX_ESTATE, "the participant is listening");
	}
	p->message[0] = '\0';
	if (p->resolver_url != NULL &&
	    dtxi_tls_url(p->resolver_url) != (p->resolver_tls != NULL)) {
		return refuse(p, DTX_EINVAL,
		    p->resolver_tls == NULL
		        ? "the resolver's coordinator %s needs "
		          "dtx_participant_set_resolver_tls()"
		        : "resolver TLS settings given but %s is not "
		          "tls+tcp://",
		    p->resolver_url);
	}
	dtxi_crash_init(&p->crash, DTXI_CRASH_PARTICIPANT,
	    getenv(DTXI_CRASH_ENV_PARTICIPANT));
	// The barrier's background work starts first, so that no call is
	// served while its purge or resolver could still fail to start.
	if (p->barrier != NULL &&
	    (rv = dtxi_resolver_start(&p->resolver, p->barrier,
	         p->resolver_url, p->resolver_tls, p->resolve_after_ms,
	         run_resolved, p, p->max_payload)) != 0) {
		return rv;
	}
	o.workers     = p->nworkers;
	o.contexts    = p->ncontexts;
	o.max_payload = p->max_payload;
	o.tls         = p->tls;
	o.gc          = dtxi_barrier_gcommit(p->barrier);
	if ((rv = dtxi_serve_start(
	         &p->serve, url, &o, run_call, p, p->message)) != 0) {
		dtxi_resolver_stop(p->resolver);
		p->resolver = NULL;
		return rv;
	}
	p->listening = true;
	return 0;
}

void
dtx_participant_close(dtx_participant *p)
{
	if (p == NULL) {
		return;
	}
	// The background work first: it may be running a callback through
	// the barrier; then the transport, which waits for running calls.
	dtxi_resolver_stop(p->resolver);
	dtxi_serve_stop(p->serve);
	dtxi_barrier_free(p->barrier);
	for (unsigned i = 0; i < p->nmethods; i++) {
		free(p->methods[i].owned);
	}
	free(p->methods);
	free(p->resolver_url);
	dtxi_tls_rele(p->tls);
	dtxi_tls_rele(p->resolver_tls);
	free(p);
}
