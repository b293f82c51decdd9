// SPDX-License-Identifier: MIT
//
// client: the dtx_client object and its one exchange engine (client.h). A
// dtx_client is one REQ socket dialed (in the background) to dtxd. Each
// request takes an op from one of the client's free lists (or makes one):
// an nng context and its aio, reused, so no request pays an nng_ctx_open
// and an nng_aio_alloc (the synchronous path used to, per call). The op's
// aio carries the encoded request out and the reply back; the reply is
// decoded and handed to the request's done function, then the op goes back
// to its free list. An asynchronous request completes in the aio's
// callback, on an nng thread: a finished send posts the receive there, and
// the op is reused only after done returned, so a done that starts the
// next request takes another op and never reuses the aio it is running on.
// A synchronous request waits on its aio instead (its ops have no
// callback), so nng wakes the caller directly. Having the callback signal
// a condition variable the caller waits on costs a second thread hand-off
// per step: measured on loopback, sequential Resolve requests, 9 runs of
// 4000 interleaved with the per-call context it replaced, the client spent
// 29% more system CPU and made 28% fewer requests per second (medians; the
// machine was shared and noisy).
//
// The connection is a watched link (proto/link.h): a request that finds
// the link failing (a TLS handshake refused by either side, a TLS
// coordinator dialed with tcp:// or the reverse) fails at once with the
// reason, and the link's watch aborts the requests already waiting when it
// finds such a failure, instead of letting them wait out their timeout.
//
// Lock order: dtx_client.mtx is a leaf (it guards the free lists, the list
// of all ops and the count of ops in use).

#include "client.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "clock.h"
#include "link.h"
#include "log.h"
#include "strs.h"
#include "tls.h"
#include "transport.h"

#define DEFAULT_TIMEOUT_MS 10000
#define RECV_MAX           (128u * 1024u * 1024u)

typedef struct op op;

// One request in flight, or a spare on a free list.
struct op {
	op              *next; // on the free list
	op              *all;  // on the client's list of every op
	dtx_client      *c;
	nng_ctx          ctx;
	nng_aio         *aio;
	bool             blocking; // its aio has no callback: waited for
	bool             busy;     // taken (guarded by the client's mtx)
	bool             sending;
	int64_t          deadline; // dtxi_mono_ms() of the whole exchange
	dtxi_client_done done;
	void            *arg;
};

struct dtx_client {
	nng_socket      sock;
	dtxi_watch     *watch;
	dtxi_link      *link;
	atomic_int      timeout_ms;
	pthread_mutex_t mtx;
	pthread_cond_t  idle_cv;     // signalled when busy drops to 0
	op             *free_ops[2]; // [blocking]
	op             *all_ops;     // every op, free or taken
	unsigned        busy;        // ops taken and not yet back
	bool            closing;     // ops being freed: the watch keeps off
};

static int32_t
clamp_ms(int64_t ms)
{
	if (ms > INT32_MAX) {
		return INT32_MAX;
	}
	return ms < 1 ? 1 : (int32_t)ms;
}

// On the link's watch thread: the link fails (link.h). Every request
// taken ends now with the link's reason instead of waiting for a
// connection that will not come; an op not in nng (being started or
// finished) is not affected by the abort.
static void
client_link_failed(void *arg)
{
	dtx_client *c = arg;

	pthread_mutex_lock(&c->mtx);
	for (op *o = c->all_ops; o != NULL && !c->closing; o = o->all) {
		if (o->busy) {
			nng_aio_abort(o->aio, NNG_EPEERAUTH);
		}
	}
	pthread_mutex_unlock(&c->mtx);
}

int
dtxi_client_open(dtx_client **cp, const char *url, dtxi_tls *t)
{
	dtx_client *c;
	char        why[DTX_MESSAGE_MAX + 1];
	int         rv;

	if (cp == NULL || url == NULL || url[0] == '\0') {
		return DTX_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return DTX_ENOMEM;
	}
	atomic_init(&c->timeout_ms, DEFAULT_TIMEOUT_MS);
	if (pthread_mutex_init(&c->mtx, NULL) != 0) {
		free(c);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&c->idle_cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return DTX_ENOMEM;
	}
	if ((rv = dtxi_watch_open(&c->watch, 0)) != 0 ||
	    (rv = nng_req0_open(&c->sock)) != 0) {
		rv = rv == DTX_ENOMEM
		    ? rv
		    : dtxi_transport_err(rv, "client: opening the socket");
		dtxi_watch_close(c->watch);
		pthread_cond_destroy(&c->idle_cv);
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return rv;
	}
	// No resend timer: a Submit that waits for its outcome may take
	// minutes, and dtxd answers every request it accepts. nng still
	// resends at once when the connection a request went out on breaks.
	if ((rv = nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME,
	         NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, RECV_MAX)) !=
	        0) {
		rv = dtxi_transport_err(rv, "client: setting socket options");
		goto fail;
	}
	dtxi_link_opts lo = {
	    .url  = url,
	    .tls  = t,
	    .peer = "the coordinator",
	    .hint = "dtxd's --listen takes --tls-ca's, its operator listener "
	            "--operator-tls-ca's",
	    .fail = client_link_failed,
	    .arg  = c,
	};
	if ((rv = dtxi_link_open(
	         &c->link, c->watch, c->sock, &lo, why, sizeof(why))) != 0) {
		DTXI_WARN("client: cannot dial: %s", why);
		goto fail;
	}
	*cp = c;
	return 0;

fail:
	nng_close(c->sock);
	dtxi_watch_close(c->watch);
	pthread_cond_destroy(&c->idle_cv);
	pthread_mutex_destroy(&c->mtx);
	free(c);
	return rv;
}

int
dtx_client_open(dtx_client **cp, const char *url)
{
	return dtxi_client_open(cp, url, NULL);
}

int
dtx_client_open_tls(dtx_client **cp, const char *url, const dtx_tls_opts *o)
{
	dtxi_tls *t;
	char      why[DTX_MESSAGE_MAX + 1];
	int       rv;

	if (cp == NULL || url == NULL || o == NULL) {
		return DTX_EINVAL;
	}
	if ((rv = dtxi_tls_load(&t, o, DTXI_TLS_DIAL, why, sizeof(why))) !=
	    0) {
		DTXI_ERROR("client: TLS settings for %s: %s", url, why);
		return rv;
	}
	rv = dtxi_client_open(cp, url, t);
	dtxi_tls_rele(t); // the link holds its own reference
	return rv;
}

int
dtx_client_set_timeout_ms(dtx_client *c, int32_t ms)
{
	if (c == NULL || ms <= 0) {
		return DTX_EINVAL;
	}
	atomic_store(&c->timeout_ms, ms);
	return 0;
}

int32_t
dtxi_client_timeout_ms(dtx_client *c)
{
	return atomic_load(&c->timeout_ms);
}

void
dtx_client_close(dtx_client *c)
{
	if (c == NULL) {
		return;
	}
	// Every request has ended (the header's rule for asynchronous
	// commits), but its op goes back on the free list only after its
	// done returned: a close right after the last callback must wait.
	pthread_mutex_lock(&c->mtx);
	while (c->busy > 0) {
		pthread_cond_wait(&c->idle_cv, &c->mtx);
	}
	// From here the link's watch leaves the ops alone
	// (client_link_failed), so they go first, as they always did: each
	// aio, then its context, then the socket. The link goes after the
	// socket, whose pipe notifications name it.
	c->closing = true;
	pthread_mutex_unlock(&c->mtx);
	while (c->all_ops != NULL) {
		op *o      = c->all_ops;
		c->all_ops = o->all;
		nng_aio_free(o->aio);
		nng_ctx_close(o->ctx);
		free(o);
	}
	nng_close(c->sock);
	dtxi_link_close(c->link);
	dtxi_watch_close(c->watch);
	pthread_cond_destroy(&c->idle_cv);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

static void op_cb(void *arg);

static void
op_release(op *o)
{
	dtx_client *c = o->c;

	o->done = NULL;
	o->arg  = NULL;
	pthread_mutex_lock(&c->mtx);
	o->busy                  = false;
	o->next                  = c->free_ops[o->blocking];
	c->free_ops[o->blocking] = o;
	if (--c->busy == 0) {
		pthread_cond_broadcast(&c->idle_cv);
	}
	pthread_mutex_unlock(&c->mtx);
}

static int
op_get(dtx_client *c, bool blocking, op **op_p)
{
	op *o;
	int rv;

	pthread_mutex_lock(&c->mtx);
	if ((o = c->free_ops[blocking]) != NULL) {
		c->free_ops[blocking] = o->next;
		o->busy               = true;
		c->busy++;
	}
	pthread_mutex_unlock(&c->mtx);
	if (o != NULL) {
		*op_p = o;
		return 0;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL) {
		return DTX_ENOMEM;
	}
	o->c        = c;
	o->blocking = blocking;
	if ((rv = nng_aio_alloc(&o->aio, blocking ? NULL : op_cb, o)) != 0) {
		free(o);
		return dtxi_transport_err(rv, "client: allocating an aio");
	}
	if ((rv = nng_ctx_open(&o->ctx, c->sock)) != 0) {
		nng_aio_free(o->aio);
		free(o);
		return dtxi_transport_err(rv, "client: opening a context");
	}
	pthread_mutex_lock(&c->mtx);
	o->busy    = true;
	o->all     = c->all_ops;
	c->all_ops = o;
	c->busy++;
	pthread_mutex_unlock(&c->mtx);
	*op_p = o;
	return 0;
}

// Ends the request: its done, then the op is reusable. Returns what done
// returned.
static int
op_finish(op *o, int rv, const dtxi_reply *rep, const char *why)
{
	rv = o->done(o->arg, rv, rep, why);
	op_release(o);
	return rv;
}

// Turns the received frame into done's arguments, and ends the request.
// Returns what done returned.
static int
op_reply(op *o, nng_msg *m)
{
	dtxi_reply *rep;
	char        why[DTX_MESSAGE_MAX + 1] = "";
	int         rv;

	if ((rep = malloc(sizeof(*rep))) == NULL) {
		nng_msg_free(m);
		return op_finish(o, DTX_ENOMEM, NULL, "out of memory");
	}
	rv = dtxi_reply_decode(rep, nng_msg_body(m), nng_msg_len(m), SIZE_MAX,
	    DTX_PAYLOAD_MAX_DEFAULT, why);
	if (rv != 0) {
		DTXI_WARN("client: undecodable reply from the coordinator "
		          "(%s): %s",
		    dtx_strerror(rv), why);
		rv = op_finish(o, rv, NULL, why);
	} else if (rep->code != 0) {
		rv = op_finish(o, rep->code, NULL, rep->message);
	} else {
		rv = op_finish(o, 0, rep, "");
	}
	free(rep);
	nng_msg_free(m);
	return rv;
}

// The op's aio callback, on an nng thread: a finished send posts the
// receive, a finished receive (or any failure) ends the request.
static void
op_cb(void *arg)
{
	op  *o  = arg;
	int  rv = nng_aio_result(o->aio);
	char why[DTX_MESSAGE_MAX + 1];

	if (o->sending) {
		o->sending = false;
		if (rv != 0) {
			// A failed send leaves the message with us.
			nng_msg_free(nng_aio_get_msg(o->aio));
			nng_aio_set_msg(o->aio, NULL);
			rv = dtxi_link_err(o->c->link, rv,
			    "sending to the coordinator", why, sizeof(why));
			op_finish(o, rv, NULL, why);
			return;
		}
		nng_aio_set_timeout(
		    o->aio, clamp_ms(o->deadline - dtxi_mono_ms()));
		nng_ctx_recv(o->ctx, o->aio);
		return;
	}
	if (rv != 0) {
		rv = dtxi_link_err(o->c->link, rv,
		    "waiting for the coordinator", why, sizeof(why));
		op_finish(o, rv, NULL, why);
		return;
	}
	op_reply(o, nng_aio_get_msg(o->aio));
}

dtxi_request *
dtxi_client_request(dtxi_req_kind kind)
{
	dtxi_request *r = malloc(sizeof(*r));

	if (r != NULL) {
		memset(r, 0, offsetof(dtxi_request, u));
		r->version = DTX_PROTOCOL_VERSION;
		r->kind    = kind;
	}
	return r;
}

// Encodes req, takes an op and starts sending; the rest is op_cb's (or,
// for a blocking op, the caller's). On error nothing was sent.
static int
op_start(dtx_client *c, const dtxi_request *req, int64_t timeout_ms,
    bool blocking, dtxi_client_done done, void *arg, char *why, op **op_p)
{
	nng_msg *m   = NULL;
	op      *o   = NULL;
	int32_t  tmo = clamp_ms(timeout_ms);
	int      rv;

	char reason[DTX_MESSAGE_MAX + 1];

	// A request on a link known to fail would only wait: it fails now.
	if ((rv = dtxi_link_check(c->link, reason, sizeof(reason))) != 0) {
		if (why != NULL) {
			dtxi_strlcpy(why, reason, DTX_MESSAGE_MAX + 1);
		}
		return rv;
	}
	if ((rv = dtxi_transport_encode_request(req, &m)) != 0) {
		if (why != NULL) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "cannot encode the request: %s", dtx_strerror(rv));
		}
		return rv;
	}
	if ((rv = op_get(c, blocking, &o)) != 0) {
		nng_msg_free(m);
		return rv;
	}
	o->done     = done;
	o->arg      = arg;
	o->sending  = true;
	o->deadline = dtxi_mono_ms() + tmo;
	*op_p       = o;
	nng_aio_set_timeout(o->aio, tmo);
	nng_aio_set_msg(o->aio, m);
	nng_ctx_send(o->ctx, o->aio);
	// Failed since the check above: the watch's abort may have missed
	// this request. (If it has ended already, it or its successor on
	// this op fails with the link anyway.)
	if (dtxi_link_failing(c->link)) {
		nng_aio_abort(o->aio, NNG_EPEERAUTH);
	}
	return 0;
}

int
dtxi_client_send(dtx_client *c, const dtxi_request *req, int64_t timeout_ms,
    dtxi_client_done done, void *arg, char *why)
{
	op *o;

	// Once sent, the op belongs to its callback: o is not touched here.
	return op_start(c, req, timeout_ms, false, done, arg, why, &o);
}

int
dtxi_client_call(dtx_client *c, const dtxi_request *req, int64_t timeout_ms,
    dtxi_client_done done, void *arg, char *why)
{
	op  *o;
	char reason[DTX_MESSAGE_MAX + 1];
	int  rv;

	if ((rv = op_start(c, req, timeout_ms, true, done, arg, why, &o)) !=
	    0) {
		return rv;
	}
	// op_cb's steps, with a wait before each.
	nng_aio_wait(o->aio);
	if ((rv = nng_aio_result(o->aio)) != 0) {
		// A failed send leaves the message with us.
		nng_msg_free(nng_aio_get_msg(o->aio));
		nng_aio_set_msg(o->aio, NULL);
		rv = dtxi_link_err(c->link, rv, "sending to the coordinator",
		    reason, sizeof(reason));
		return op_finish(o, rv, NULL, reason);
	}
	o->sending = false;
	nng_aio_set_timeout(o->aio, clamp_ms(o->deadline - dtxi_mono_ms()));
	nng_ctx_recv(o->ctx, o->aio);
	nng_aio_wait(o->aio);
	if ((rv = nng_aio_result(o->aio)) != 0) {
		rv = dtxi_link_err(c->link, rv, "waiting for the coordinator",
		    reason, sizeof(reason));
		return op_finish(o, rv, NULL, reason);
	}
	return op_reply(o, nng_aio_get_msg(o->aio));
}
