// SPDX-License-Identifier: MIT
//
// server: the REP socket and its contexts (see server.h). Each context is a
// small state machine driven by its aio callback:
//
//   RECV --frame--> decode --bad--> SEND (error reply) --> RECV
//                          --good-> HELD (handler owns it) --reply--> SEND
//
// A context is HELD while a transaction is being decided for a client that
// waits for the outcome, so the number of contexts bounds the number of
// such clients; everything else is answered within one loop turn.
//
// Roles. Operator commands (List, Abort) are served only by a server
// opened as an operator listener; any other refuses them, at decode, with
// DTX_EPERM. Who may connect at all is the listener's TLS CA (link.h).
//
// Lock order: server->mtx only (a leaf; held for counters, never across an
// nng call that may run a callback).

#include "server.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "link.h"
#include "log.h"
#include "strs.h"
#include "transport.h"

enum { SCTX_RECV, SCTX_HELD, SCTX_SEND };

struct dtxd_sreq {
	dtxd_server  *s;
	nng_ctx       ctx;
	nng_aio      *aio;
	int           state;
	nng_msg      *msg; // the request frame while HELD
	dtxi_request *req; // decoded, while HELD
};

struct dtxd_server {
	nng_socket      sock;
	dtxi_watch     *watch; // logs the listener's refused handshakes
	bool            operator_cmds;
	char            name[64]; // "dtxd operator listener", for logs
	dtxd_server_fn  fn;
	void           *arg;
	size_t          max_frame;
	size_t          max_payload;
	unsigned        nctx;
	dtxd_sreq      *ctxs;
	pthread_mutex_t mtx;
	unsigned        sending; // contexts in SEND
	bool            closing;
};

static void
sctx_recv(dtxd_sreq *c)
{
	c->state = SCTX_RECV;
	nng_ctx_recv(c->ctx, c->aio);
}

static void
sctx_send_msg(dtxd_sreq *c, nng_msg *msg)
{
	dtxd_server *s = c->s;
	pthread_mutex_lock(&s->mtx);
	s->sending++;
	pthread_mutex_unlock(&s->mtx);
	c->state = SCTX_SEND;
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
}

static void
sctx_release(dtxd_sreq *c)
{
	free(c->req);
	c->req = NULL;
	if (c->msg != NULL) {
		nng_msg_free(c->msg);
		c->msg = NULL;
	}
}

// Answers c with a bare error reply. If even that cannot be built (out of
// memory), the request is dropped and the client's timeout answers it.
static void
sctx_error(dtxd_sreq *c, int code, const char *msg)
{
	dtxi_reply *rep = calloc(1, sizeof(*rep));
	nng_msg    *m   = NULL;

	if (rep != NULL) {
		rep->version = DTX_PROTOCOL_VERSION;
		rep->code    = code;
		rep->kind    = DTXI_REP_NONE;
		dtxi_strlcpy(rep->message, msg, sizeof(rep->message));
		if (dtxi_transport_encode_reply(rep, &m) != 0) {
			m = NULL;
		}
		free(rep);
	}
	if (m == NULL) {
		sctx_recv(c);
		return;
	}
	sctx_send_msg(c, m);
}

// The bytes of a decoded request that its kind uses. dtxi_request is sized
// for its largest member, a submit of DTX_BRANCHES_MAX branches (26 KiB),
// but a submit uses only its first nbranches entries (branches is its last
// member) and the other kinds far less. Requests wait in the loop's queue
// and then, for a client waiting for an outcome, in its context: when
// 10,000 clients submit at once, full-size copies were 180 MiB of dtxd's
// heap; the used part of a 2-branch submit is under 1 KiB.
static size_t
request_used_size(const dtxi_request *req)
{
	switch (req->kind) {
	case DTXI_REQ_SUBMIT:
		return offsetof(dtxi_request, u.submit.branches) +
		    (size_t)req->u.submit.nbranches *
		    sizeof(req->u.submit.branches[0]);
	case DTXI_REQ_STATUS:
		return offsetof(dtxi_request, u) + sizeof(req->u.status);
	case DTXI_REQ_LIST:
		return offsetof(dtxi_request, u) + sizeof(req->u.list);
	case DTXI_REQ_ABORT:
		return offsetof(dtxi_request, u) + sizeof(req->u.abort);
	case DTXI_REQ_RESOLVE:
		return offsetof(dtxi_request, u) + sizeof(req->u.resolve);
	case DTXI_REQ_STATS:
		return offsetof(dtxi_request, u);
	default:
		return sizeof(*req);
	}
}

// The requests only an operator may make: they act on, or reveal, every
// client's transactions.
static bool
operator_only(dtxi_req_kind kind)
{
	return kind == DTXI_REQ_LIST || kind == DTXI_REQ_ABORT ||
	    kind == DTXI_REQ_RETRY || kind == DTXI_REQ_SETTLE;
}

static const char *
kind_name(dtxi_req_kind kind)
{
	switch (kind) {
	case DTXI_REQ_LIST:
		return "List";
	case DTXI_REQ_ABORT:
		return "Abort";
	case DTXI_REQ_RETRY:
		return "Retry";
	default:
		return "Settle";
	}
}

static void
sctx_on_recv(dtxd_sreq *c)
{
	dtxd_server *s = c->s;
	char         why[DTX_MESSAGE_MAX + 1];
	dtxi_request req; // decoded here, then only its used part is kept
	size_t       used;
	int          rv;

	c->msg = nng_aio_get_msg(c->aio);
	why[0] = '\0';
	rv     = dtxi_request_decode(&req, nng_msg_body(c->msg),
	        nng_msg_len(c->msg), s->max_frame, s->max_payload, why);
	if (rv == 0 && req.kind == DTXI_REQ_NONE) {
		rv = DTX_EUNSUPPORTED;
		dtxi_strlcpy(why, "request has no body", sizeof(why));
	} else if (rv == 0 && req.kind == DTXI_REQ_CALL) {
		rv = DTX_EUNSUPPORTED;
		dtxi_strlcpy(
		    why, "a branch call sent to the coordinator", sizeof(why));
	} else if (rv == 0 && !s->operator_cmds && operator_only(req.kind)) {
		rv = DTX_EPERM;
		snprintf(why, sizeof(why),
		    "%s is an operator command: dtxd accepts it only on its "
		    "operator listener (--operator-listen)",
		    kind_name(req.kind));
	}
	if (rv != 0) {
		dtxi_log_event(DTXI_LOG_INFO, "request_rejected",
		    DTXI_FIELDS(DTXI_F_STR("listener", s->name),
		        DTXI_F_STR("code", dtx_strerror(rv))),
		    "server: rejected a request: %s: %s", dtx_strerror(rv),
		    why);
		sctx_release(c);
		sctx_error(c, rv, why[0] != '\0' ? why : dtx_strerror(rv));
		return;
	}
	// The payload slices point into c->msg, which stays with the copy.
	used = request_used_size(&req);
	if ((c->req = malloc(used)) == NULL) {
		sctx_release(c);
		sctx_error(c, DTX_ENOMEM, "coordinator out of memory");
		return;
	}
	memcpy(c->req, &req, used);
	c->state = SCTX_HELD;
	s->fn(s->arg, c);
}

static void
sctx_cb(void *arg)
{
	dtxd_sreq   *c  = arg;
	dtxd_server *s  = c->s;
	int          rv = nng_aio_result(c->aio);

	switch (c->state) {
	case SCTX_RECV:
		if (rv != 0) {
			if (rv == NNG_ECLOSED) {
				return;
			}
			// A broken pipe or a frame nng refused: keep serving.
			DTXI_DEBUG("server: receive: %s", nng_strerror(rv));
			sctx_recv(c);
			return;
		}
		sctx_on_recv(c);
		return;
	case SCTX_SEND:
		if (rv != 0) {
			// The client went away; the reply has nowhere to go.
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
		}
		pthread_mutex_lock(&s->mtx);
		s->sending--;
		bool closing = s->closing;
		pthread_mutex_unlock(&s->mtx);
		if (rv == NNG_ECLOSED || closing) {
			return;
		}
		sctx_recv(c);
		return;
	default:
		return;
	}
}

const dtxi_request *
dtxd_sreq_request(const dtxd_sreq *r)
{
	return r->req;
}

void
dtxd_sreq_drop_request(dtxd_sreq *r)
{
	sctx_release(r);
}

void
dtxd_server_reply(dtxd_sreq *r, const dtxi_reply *rep)
{
	// Encode before releasing the frame: rep may point into it.
	nng_msg *msg = NULL;
	int      rv  = dtxi_transport_encode_reply(rep, &msg);

	sctx_release(r);
	if (rv != 0) {
		DTXI_ERROR(
		    "server: cannot encode a reply: %s", dtx_strerror(rv));
		sctx_error(r, DTX_EINTERNAL, "cannot encode the reply");
		return;
	}
	sctx_send_msg(r, msg);
}

void
dtxd_server_reply_error(dtxd_sreq *r, int code, const char *msg)
{
	sctx_release(r);
	sctx_error(r, code, msg != NULL ? msg : dtx_strerror(code));
}

int
dtxd_server_open(
    dtxd_server **sp, const dtxd_server_opts *o, dtxd_server_fn fn, void *arg)
{
	dtxd_server *s;
	int          rv;

	if (sp == NULL || o == NULL || o->url == NULL || fn == NULL ||
	    o->contexts == 0) {
		return DTX_EINVAL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return DTX_ENOMEM;
	}
	s->fn            = fn;
	s->arg           = arg;
	s->max_frame     = o->max_frame;
	s->max_payload   = o->max_payload;
	s->nctx          = o->contexts;
	s->operator_cmds = o->operator_cmds;
	pthread_mutex_init(&s->mtx, NULL);
	if ((s->ctxs = calloc(s->nctx, sizeof(*s->ctxs))) == NULL) {
		pthread_mutex_destroy(&s->mtx);
		free(s);
		return DTX_ENOMEM;
	}
	if (dtxi_watch_open(&s->watch, 0) != 0) {
		free(s->ctxs);
		pthread_mutex_destroy(&s->mtx);
		free(s);
		return DTX_ENOMEM;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		DTXI_ERROR("server: cannot open socket: %s", nng_strerror(rv));
		dtxi_watch_close(s->watch);
		free(s->ctxs);
		pthread_mutex_destroy(&s->mtx);
		free(s);
		return DTX_ETRANSPORT;
	}
	// Frames up to twice the limit reach the decoder and get a clear
	// DTX_ETOOBIG; nng drops anything larger without reading it.
	size_t nng_max =
	    o->max_frame > SIZE_MAX / 2 ? SIZE_MAX : 2 * o->max_frame;
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, nng_max);
	for (unsigned i = 0; i < s->nctx; i++) {
		dtxd_sreq *c = &s->ctxs[i];
		c->s         = s;
		if ((rv = nng_aio_alloc(&c->aio, sctx_cb, c)) != 0 ||
		    (rv = nng_ctx_open(&c->ctx, s->sock)) != 0) {
			DTXI_ERROR("server: cannot create context: %s",
			    nng_strerror(rv));
			s->nctx = i + 1;
			dtxd_server_close(s);
			return DTX_ENOMEM;
		}
	}
	char why[DTX_MESSAGE_MAX + 1];
	dtxi_strlcpy(s->name, o->name != NULL ? o->name : "dtxd listener",
	    sizeof(s->name));
	if ((rv = dtxi_listen(s->watch, s->sock, o->url, o->tls, o->ipc_mode,
	         s->name, why, sizeof(why))) != 0) {
		DTXI_ERROR("server: cannot listen: %s", why);
		dtxd_server_close(s);
		return rv;
	}
	dtxi_log_event(DTXI_LOG_INFO, "listening",
	    DTXI_FIELDS(DTXI_F_STR("listener", s->name),
	        DTXI_F_STR("url", o->url),
	        DTXI_F_STR(
	            "operator_commands", o->operator_cmds ? "yes" : "no")),
	    "%s %s", s->name, o->url);
	for (unsigned i = 0; i < s->nctx; i++) {
		sctx_recv(&s->ctxs[i]);
	}
	*sp = s;
	return 0;
}

uint64_t
dtxd_server_refused_handshakes(dtxd_server *s)
{
	return s != NULL ? dtxi_watch_refused(s->watch) : 0;
}

void
dtxd_server_close(dtxd_server *s)
{
	if (s == NULL) {
		return;
	}
	// Let replies already handed to nng reach their clients (the
	// shutdown replies, mostly) before the socket goes: up to 1 s.
	pthread_mutex_lock(&s->mtx);
	s->closing = true;
	pthread_mutex_unlock(&s->mtx);
	for (int i = 0; i < 100; i++) {
		pthread_mutex_lock(&s->mtx);
		unsigned sending = s->sending;
		pthread_mutex_unlock(&s->mtx);
		if (sending == 0) {
			break;
		}
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	nng_close(s->sock);
	dtxi_watch_close(s->watch);
	for (unsigned i = 0; i < s->nctx; i++) {
		dtxd_sreq *c = &s->ctxs[i];
		if (c->aio != NULL) {
			nng_aio_stop(c->aio);
		}
	}
	for (unsigned i = 0; i < s->nctx; i++) {
		dtxd_sreq *c = &s->ctxs[i];
		if (c->aio != NULL) {
			nng_aio_free(c->aio);
		}
		sctx_release(c);
	}
	free(s->ctxs);
	pthread_mutex_destroy(&s->mtx);
	free(s);
}
