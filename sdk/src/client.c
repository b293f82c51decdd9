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
// Fail fast. The connection is a watched link (proto/link.h): a request
// that finds the link failing (a TLS handshake refused by either side, a
// TLS coordinator dialed with tcp:// or the reverse) fails at once with
// the reason, and the link's watch aborts the requests already waiting
// when it finds such a failure, instead of letting them wait out their
// timeout. A REQ socket dials in the background and queues a request
// until a connection is up, so a coordinator that is down used to cost the
// whole request timeout and a "Timed out" that blamed nobody. A request
// that starts without a connection (the link counts nng's connections)
// may wait for one only the connect timeout (default a second), and then
// fails with DTX_EUNREACHABLE, naming the URL and the reason a probe
// (transport.h) found, "Connection refused" say. A request that went out
// and got no answer in time is DTX_ETIMEDOUT, "did not answer within".
//
// Close. Requests still in flight when the client is closed are cancelled:
// each ends with DTX_ECLOSED (its done runs, so an asynchronous commit's
// callback does), and close waits for the last one.
//
// Lock order: dtx_client.mtx is a leaf (it guards the free lists, the ops
// in use, the closing flag and the last message).

#include "client.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "clock.h"
#include "link.h"
#include "log.h"
#include "strs.h"
#include "tls.h"
#include "transport.h"

#define DEFAULT_TIMEOUT_MS         10000
#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define RECV_MAX                   (128u * 1024u * 1024u)

typedef struct op op;

// One request in flight, or a spare on a free list.
struct op {
	op              *next;          // on the free list
	op              *bnext, *bprev; // among the ops in use
	dtx_client      *c;
	nng_ctx          ctx;
	nng_aio         *aio;
	bool             blocking; // its aio has no callback: waited for
	bool             sending;
	bool             unconnected; // started without a connection
	bool             probed;      // a probe was started for it
	int64_t          start_ms;    // dtxi_mono_ms() when it started
	int64_t          deadline;    // dtxi_mono_ms() of the whole exchange
	int32_t          send_ms;     // the send's own time limit
	dtxi_client_done done;
	void            *arg;
};

struct dtx_client {
	nng_socket      sock;
	dtxi_watch     *watch;
	dtxi_link      *link;
	char           *url;
	atomic_int      timeout_ms;
	atomic_int      connect_ms;
	dtxi_probe     *probe; // why the coordinator cannot be reached
	pthread_mutex_t mtx;
	pthread_cond_t  idle_cv;     // signalled when busy drops to 0
	op             *free_ops[2]; // [blocking]
	op             *busy_ops;    // in use
	unsigned        busy;        // ops taken and not yet back
	bool            closing;
	char            message[DTX_MESSAGE_MAX + 1]; // the last failure's
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
// in use ends now with the link's reason instead of waiting for a
// connection that will not come; an op not in nng (being started or
// finished) is not affected by the abort.
static void
client_link_failed(void *arg)
{
	dtx_client *c = arg;

	pthread_mutex_lock(&c->mtx);
	for (op *o = c->busy_ops; o != NULL; o = o->bnext) {
		nng_aio_abort(o->aio, NNG_EPEERAUTH);
	}
	pthread_mutex_unlock(&c->mtx);
}

// After the socket is closed (its pipe notifications name the link).
static void
client_free(dtx_client *c)
{
	dtxi_link_close(c->link);
	dtxi_watch_close(c->watch);
	dtxi_probe_close(c->probe);
	pthread_cond_destroy(&c->idle_cv);
	pthread_mutex_destroy(&c->mtx);
	free(c->url);
	free(c);
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
	atomic_init(&c->connect_ms, DEFAULT_CONNECT_TIMEOUT_MS);
	if ((c->url = strdup(url)) == NULL) {
		free(c);
		return DTX_ENOMEM;
	}
	if (pthread_mutex_init(&c->mtx, NULL) != 0) {
		free(c->url);
		free(c);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&c->idle_cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mtx);
		free(c->url);
		free(c);
		return DTX_ENOMEM;
	}
	if ((rv = dtxi_watch_open(&c->watch, 0)) != 0 ||
	    (rv = nng_req0_open(&c->sock)) != 0) {
		rv = rv == DTX_ENOMEM
		    ? rv
		    : dtxi_transport_err(rv, "client: opening the socket");
		client_free(c);
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
	// Without a probe (an address a stream cannot dial, inproc://) an
	// unreachable coordinator is reported without a reason.
	if (dtxi_probe_open(&c->probe, url) != 0) {
		c->probe = NULL;
	}
	*cp = c;
	return 0;

fail:
	nng_close(c->sock);
	client_free(c);
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

int
dtx_client_set_connect_timeout_ms(dtx_client *c, int32_t ms)
{
	if (c == NULL || ms <= 0) {
		return DTX_EINVAL;
	}
	atomic_store(&c->connect_ms, ms);
	return 0;
}

int32_t
dtxi_client_timeout_ms(dtx_client *c)
{
	return atomic_load(&c->timeout_ms);
}

void
dtxi_client_set_message(dtx_client *c, const char *why)
{
	pthread_mutex_lock(&c->mtx);
	dtxi_strlcpy(c->message, why, sizeof(c->message));
	pthread_mutex_unlock(&c->mtx);
}

void
dtx_client_message(dtx_client *c, char *buf, size_t cap)
{
	if (buf == NULL || cap == 0) {
		return;
	}
	if (c == NULL) {
		buf[0] = '\0';
		return;
	}
	pthread_mutex_lock(&c->mtx);
	dtxi_strlcpy(buf, c->message, cap);
	pthread_mutex_unlock(&c->mtx);
}

void
dtx_client_close(dtx_client *c)
{
	if (c == NULL) {
		return;
	}
	// Requests still in flight end now with DTX_ECLOSED: their aios are
	// cancelled, again every few milliseconds, since one may have been
	// taken just before closing was set and be started only after the
	// first round. An op goes back on the free list only after its done
	// returned, so the wait ends after the last callback.
	pthread_mutex_lock(&c->mtx);
	c->closing = true;
	while (c->busy > 0) {
		struct timespec ts;
		for (op *o = c->busy_ops; o != NULL; o = o->bnext) {
			nng_aio_cancel(o->aio);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->idle_cv, &c->mtx, &ts);
	}
	pthread_mutex_unlock(&c->mtx);
	// Each aio, then its context, then the socket; the link goes after
	// the socket (client_free).
	for (int k = 0; k < 2; k++) {
		while (c->free_ops[k] != NULL) {
			op *o          = c->free_ops[k];
			c->free_ops[k] = o->next;
			nng_aio_free(o->aio);
			nng_ctx_close(o->ctx);
			free(o);
		}
	}
	nng_close(c->sock);
	client_free(c);
}

static void op_cb(void *arg);

static void
op_release(op *o)
{
	dtx_client *c = o->c;

	o->done = NULL;
	o->arg  = NULL;
	pthread_mutex_lock(&c->mtx);
	if (o->bprev != NULL) {
		o->bprev->bnext = o->bnext;
	} else {
		c->busy_ops = o->bnext;
	}
	if (o->bnext != NULL) {
		o->bnext->bprev = o->bprev;
	}
	o->bnext                 = NULL;
	o->bprev                 = NULL;
	o->next                  = c->free_ops[o->blocking];
	c->free_ops[o->blocking] = o;
	if (--c->busy == 0) {
		pthread_cond_broadcast(&c->idle_cv);
	}
	pthread_mutex_unlock(&c->mtx);
}

// Counts o in use; false (nothing counted) once the client is closing.
static bool
op_hold(dtx_client *c, op *o)
{
	if (c->closing) {
		return false;
	}
	o->bprev = NULL;
	o->bnext = c->busy_ops;
	if (c->busy_ops != NULL) {
		c->busy_ops->bprev = o;
	}
	c->busy_ops = o;
	c->busy++;
	return true;
}

static int
op_get(dtx_client *c, bool blocking, op **op_p)
{
	op *o;
	int rv;

	pthread_mutex_lock(&c->mtx);
	if (c->closing) {
		pthread_mutex_unlock(&c->mtx);
		return DTX_ECLOSED;
	}
	if ((o = c->free_ops[blocking]) != NULL) {
		c->free_ops[blocking] = o->next;
		op_hold(c, o);
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
	if (!op_hold(c, o)) {
		pthread_mutex_unlock(&c->mtx);
		nng_aio_free(o->aio);
		nng_ctx_close(o->ctx);
		free(o);
		return DTX_ECLOSED;
	}
	pthread_mutex_unlock(&c->mtx);
	*op_p = o;
	return 0;
}

// Ends the request: its done, then the op is reusable. Returns what done
// returned. A failure's reason is kept as the client's last message.
static int
op_finish(op *o, int rv, const dtxi_reply *rep, const char *why)
{
	dtx_client *c = o->c;

	if (rv != 0 && why != NULL) {
		dtxi_client_set_message(c, why);
	}
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

// A send that started without a connection waits for one half of its
// time first; if there is still none then, a probe starts learning why
// and the send goes on for the other half (true: it was posted again with
// its message). A coordinator that is merely slow to connect is never
// probed: a connection closed before nng's handshake was seen to stall an
// nng 1.5.2 listener.
static bool
resend_once(op *o, int rv)
{
	int64_t left = o->start_ms + o->send_ms - dtxi_mono_ms();

	if (rv != NNG_ETIMEDOUT || !o->unconnected || o->probed || left < 1) {
		return false;
	}
	o->probed = true;
	if (!dtxi_link_up(o->c->link)) {
		dtxi_probe_start(o->c->probe, o->send_ms);
	}
	nng_aio_set_timeout(o->aio, clamp_ms(left));
	nng_ctx_send(o->ctx, o->aio);
	return true;
}

// A request aborted by the link's watch, or timed out while the link is
// known to fail: DTX_EAUTH with the link's reason in why, else 0.
static int
link_failure(op *o, int rv, const char *what, char *why, size_t cap)
{
	if (rv != NNG_EPEERAUTH && !dtxi_link_failing(o->c->link)) {
		return 0;
	}
	rv = dtxi_link_err(o->c->link, rv, what, why, cap);
	return rv == DTX_EAUTH ? rv : 0;
}

// The end of a send that failed (rv from nng): the message is still ours.
// Says why in words: a failing link is DTX_EAUTH with its reason; no
// connection within the connect timeout is DTX_EUNREACHABLE with the
// probe's reason; a close is DTX_ECLOSED.
static int
send_failed(op *o, int rv)
{
	dtx_client *c = o->c;
	char        why[DTX_MESSAGE_MAX + 1];
	char        reason[64];
	int         code;

	nng_msg_free(nng_aio_get_msg(o->aio));
	nng_aio_set_msg(o->aio, NULL);
	if ((code = link_failure(o, rv, "sending to the coordinator", why,
	         sizeof(why))) != 0) {
		return op_finish(o, code, NULL, why);
	}
	if (rv == NNG_ETIMEDOUT && o->unconnected && !dtxi_link_up(c->link)) {
		if (dtxi_probe_result(c->probe, reason, sizeof(reason)) <= 0) {
			snprintf(reason, sizeof(reason), "no connection");
		}
		snprintf(why, sizeof(why),
		    "coordinator %.120s unreachable: %s (no connection "
		    "within %d ms)",
		    c->url, reason, (int)o->send_ms);
		DTXI_INFO("client: %s", why);
		return op_finish(o, DTX_EUNREACHABLE, NULL, why);
	}
	code = dtxi_transport_err(rv, "client: sending a request");
	if (code == DTX_ECLOSED) {
		snprintf(why, sizeof(why), "the client was closed");
	} else if (code == DTX_ETIMEDOUT) {
		snprintf(why, sizeof(why),
		    "coordinator %.150s did not take the request within %d ms",
		    c->url, (int)o->send_ms);
	} else {
		snprintf(why, sizeof(why), "sending to coordinator %.150s: %s",
		    c->url, nng_strerror(rv));
	}
	return op_finish(o, code, NULL, why);
}

// The end of a receive that failed.
static int
recv_failed(op *o, int rv, int64_t waited_ms)
{
	char why[DTX_MESSAGE_MAX + 1];
	int  code;

	if ((code = link_failure(o, rv, "waiting for the coordinator", why,
	         sizeof(why))) != 0) {
		return op_finish(o, code, NULL, why);
	}
	code = dtxi_transport_err(rv, "client: receiving a reply");
	if (code == DTX_ECLOSED) {
		snprintf(why, sizeof(why), "the client was closed");
	} else if (code == DTX_ETIMEDOUT) {
		snprintf(why, sizeof(why),
		    "coordinator %.150s did not answer within %lld ms",
		    o->c->url, (long long)waited_ms);
	} else {
		snprintf(why, sizeof(why),
		    "waiting for coordinator %.150s: %s", o->c->url,
		    nng_strerror(rv));
	}
	return op_finish(o, code, NULL, why);
}

// Posts the receive of the reply, with what is left of the time.
static void
start_recv(op *o)
{
	o->sending = false;
	nng_aio_set_timeout(o->aio, clamp_ms(o->deadline - dtxi_mono_ms()));
	nng_ctx_recv(o->ctx, o->aio);
}

// The op's aio callback, on an nng thread: a finished send posts the
// receive, a finished receive (or any failure) ends the request.
static void
op_cb(void *arg)
{
	op *o  = arg;
	int rv = nng_aio_result(o->aio);

	if (o->sending) {
		if (rv != 0) {
			if (!resend_once(o, rv)) {
				send_failed(o, rv);
			}
			return;
		}
		start_recv(o);
		return;
	}
	if (rv != 0) {
		recv_failed(o, rv, dtxi_mono_ms() - o->start_ms);
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
	int32_t  cto = atomic_load(&c->connect_ms);
	int      rv;
	char     reason[DTX_MESSAGE_MAX + 1];

	// A request on a link known to fail would only wait: it fails now.
	if ((rv = dtxi_link_check(c->link, reason, sizeof(reason))) != 0) {
		dtxi_client_set_message(c, reason);
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
		if (why != NULL && rv == DTX_ECLOSED) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "the client is being closed");
		}
		return rv;
	}
	o->done        = done;
	o->arg         = arg;
	o->sending     = true;
	o->start_ms    = dtxi_mono_ms();
	o->deadline    = o->start_ms + tmo;
	o->unconnected = !dtxi_link_up(c->link);
	o->probed      = false;
	// Without a connection the send waits for one only the connect
	// timeout, in two halves (resend_once).
	o->send_ms = o->unconnected && cto < tmo ? cto : tmo;
	*op_p      = o;
	nng_aio_set_timeout(
	    o->aio, o->unconnected ? clamp_ms(o->send_ms / 2) : o->send_ms);
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
	op *o;
	int rv;

	if ((rv = op_start(c, req, timeout_ms, true, done, arg, why, &o)) !=
	    0) {
		return rv;
	}
	// op_cb's steps, with a wait before each.
	do {
		nng_aio_wait(o->aio);
		rv = nng_aio_result(o->aio);
	} while (rv != 0 && resend_once(o, rv));
	if (rv != 0) {
		return send_failed(o, rv);
	}
	start_recv(o);
	nng_aio_wait(o->aio);
	if ((rv = nng_aio_result(o->aio)) != 0) {
		return recv_failed(o, rv, dtxi_mono_ms() - o->start_ms);
	}
	return op_reply(o, nng_aio_get_msg(o->aio));
}
