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
// Fail-over, with several URLs. Every request may go to any dtxd of a
// cluster (Submit is idempotent by gid; the rest only read), so a request
// starts at the next URL in turn that has a connection (spreading the load)
// and, when it cannot be delivered or its answer cannot come, is sent again
// to the next URL, until one answers or the request's time is up:
// - a send waits for a connection at most the connect timeout (as above),
//   then the next URL is tried;
// - a connection that breaks while requests wait on it (the node died)
//   aborts them at once (NNG_ECONNRESET), and they go to the next URL: nng
//   would otherwise resend them to the same URL once it is back, and a
//   client waiting for an outcome would wait for the dead node;
// - a node whose link fails (TLS) is passed over like a dead one.
// A request whose answer is merely slow is not resent: the node may be
// working on it (a Submit that waits for its outcome), and the deadline of
// the whole exchange still holds. With one URL nothing of this runs: the
// request fails fast as above. The error of a request that no URL
// answered is the last URL's, and its message names each URL and what
// happened there.
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

typedef struct op   op;
typedef struct node node;

// One coordinator URL: its socket, dialed in the background by its link.
struct node {
	dtx_client *c;
	unsigned    index;
	nng_socket  sock;
	dtxi_link  *link;
	dtxi_probe *probe;  // why it cannot be reached, or NULL
	atomic_uint losses; // connections lost so far
	char        url[DTX_ENDPOINT_MAX + 1];
};

// One request in flight, or a spare on a free list.
struct op {
	op              *next;          // on the free list
	op              *bnext, *bprev; // among the ops in use
	dtx_client      *c;
	nng_aio         *aio;
	unsigned         node;   // where the request is now
	unsigned         tries;  // sends made (or refused by a failing link)
	unsigned         losses; // the node's losses when it was sent
	nng_msg         *req;    // a copy to send again (several URLs)
	char             tried[DTX_MESSAGE_MAX + 1]; // url: why, per node
	bool             blocking; // its aio has no callback: waited for
	bool             sending;
	bool             unconnected; // started without a connection
	bool             probed;      // a probe was started for it
	int64_t          start_ms;    // dtxi_mono_ms() when it started
	int64_t          deadline;    // dtxi_mono_ms() of the whole exchange
	int32_t          send_ms;     // the send's own time limit
	dtxi_client_done done;
	void            *arg;
	nng_ctx          ctx[]; // per node, or id 0
};

struct dtx_client {
	dtxi_watch     *watch; // of every node's link
	atomic_int      timeout_ms;
	atomic_int      connect_ms;
	atomic_uint     turn; // the next request's first node
	pthread_mutex_t mtx;
	pthread_cond_t  idle_cv;     // signalled when busy drops to 0
	op             *free_ops[2]; // [blocking]
	op             *busy_ops;    // in use
	unsigned        busy;        // ops taken and not yet back
	bool            closing;
	char            message[DTX_MESSAGE_MAX + 1]; // the last failure's
	unsigned        n;                            // nodes
	node            nodes[];
};

static int32_t
clamp_ms(int64_t ms)
{
	if (ms > INT32_MAX) {
		return INT32_MAX;
	}
	return ms < 1 ? 1 : (int32_t)ms;
}

// Every request in use on nd ends its wait now with nng_rv: its link
// fails (NNG_EPEERAUTH) or, with several URLs, its connection broke
// (NNG_ECONNRESET; op_advance then sends it to the next node). An op not
// in nng (being started or finished) is not affected by the abort; one
// between two steps sees a lost connection in op_advance.
static void
node_abort(node *nd, int nng_rv)
{
	dtx_client *c = nd->c;

	pthread_mutex_lock(&c->mtx);
	for (op *o = c->busy_ops; o != NULL; o = o->bnext) {
		if (o->node == nd->index) {
			nng_aio_abort(o->aio, nng_rv);
		}
	}
	pthread_mutex_unlock(&c->mtx);
}

// On the link's watch thread: the node's link fails (link.h), so its
// requests end (or move on) instead of waiting for a connection that will
// not come.
static void
node_failed(void *arg)
{
	node_abort(arg, NNG_EPEERAUTH);
}

// On an nng thread, as a connection of the node comes or goes (link.h).
static void
node_pipe(void *arg, bool up)
{
	node *nd = arg;

	if (!up) {
		atomic_fetch_add(&nd->losses, 1);
		if (nd->c->n > 1) {
			node_abort(nd, NNG_ECONNRESET);
		}
	}
}

// After the sockets are closed (their pipe notifications name the links).
static void
client_free(dtx_client *c)
{
	for (unsigned k = 0; k < c->n; k++) {
		dtxi_link_close(c->nodes[k].link);
		dtxi_probe_close(c->nodes[k].probe);
	}
	dtxi_watch_close(c->watch);
	pthread_cond_destroy(&c->idle_cv);
	pthread_mutex_destroy(&c->mtx);
	free(c);
}

// Splits the comma-separated list urls into at most DTX_COORDINATORS_MAX
// URLs of at most DTX_ENDPOINT_MAX bytes each, into out[]; their number to
// *n. DTX_EINVAL, logged naming the culprit, for an empty one, too many or
// one too long.
static int
urls_split(const char *urls, char out[][DTX_ENDPOINT_MAX + 1], unsigned *n)
{
	const char *p = urls;
	unsigned    k = 0;

	for (;;) {
		const char *end = strchr(p, ',');
		size_t      len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len == 0) {
			DTXI_ERROR(
			    "client: an empty URL in the list \"%s\"", urls);
			return DTX_EINVAL;
		}
		if (len > DTX_ENDPOINT_MAX) {
			DTXI_ERROR("client: URL %u of \"%.64s...\" is longer "
			           "than %d bytes",
			    k + 1, urls, DTX_ENDPOINT_MAX);
			return DTX_EINVAL;
		}
		if (k == DTX_COORDINATORS_MAX) {
			DTXI_ERROR("client: more than %d URLs in \"%.64s...\"",
			    DTX_COORDINATORS_MAX, urls);
			return DTX_EINVAL;
		}
		memcpy(out[k], p, len);
		out[k++][len] = '\0';
		if (end == NULL) {
			break;
		}
		p = end + 1;
	}
	*n = k;
	return 0;
}

// Opens nd's socket and its link. On error the socket may be open.
static int
node_open(node *nd, dtxi_tls *t)
{
	char why[DTX_MESSAGE_MAX + 1];
	int  rv;

	if ((rv = nng_req0_open(&nd->sock)) != 0) {
		return dtxi_transport_err(rv, "client: opening the socket");
	}
	// No resend timer: a Submit that waits for its outcome may take
	// minutes, and dtxd answers every request it accepts. With one URL,
	// nng still resends at once when the connection a request went out
	// on breaks (with several, the fail-over above does instead).
	if ((rv = nng_socket_set_ms(nd->sock, NNG_OPT_REQ_RESENDTIME,
	         NNG_DURATION_INFINITE)) != 0 ||
	    (rv = nng_socket_set_size(
	         nd->sock, NNG_OPT_RECVMAXSZ, RECV_MAX)) != 0) {
		return dtxi_transport_err(
		    rv, "client: setting socket options");
	}
	dtxi_link_opts lo = {
	    .url  = nd->url,
	    .tls  = t,
	    .peer = "the coordinator",
	    .hint = "dtxd's --listen takes --tls-ca's, its operator listener "
	            "--operator-tls-ca's",
	    .fail = node_failed,
	    .pipe = node_pipe,
	    .arg  = nd,
	};
	if ((rv = dtxi_link_open(&nd->link, nd->c->watch, nd->sock, &lo, why,
	         sizeof(why))) != 0) {
		DTXI_WARN("client: cannot dial: %s", why);
		return rv;
	}
	// Without a probe (an address a stream cannot dial, inproc://) an
	// unreachable coordinator is reported without a reason.
	if (dtxi_probe_open(&nd->probe, nd->url) != 0) {
		nd->probe = NULL;
	}
	return 0;
}

int
dtxi_client_open(dtx_client **cp, const char *url, dtxi_tls *t)
{
	char        urls[DTX_COORDINATORS_MAX][DTX_ENDPOINT_MAX + 1];
	dtx_client *c;
	unsigned    n, k;
	int         rv;

	if (cp == NULL || url == NULL || url[0] == '\0') {
		return DTX_EINVAL;
	}
	if ((rv = urls_split(url, urls, &n)) != 0) {
		return rv;
	}
	if ((c = calloc(1, sizeof(*c) + n * sizeof(c->nodes[0]))) == NULL) {
		return DTX_ENOMEM;
	}
	atomic_init(&c->timeout_ms, DEFAULT_TIMEOUT_MS);
	atomic_init(&c->connect_ms, DEFAULT_CONNECT_TIMEOUT_MS);
	atomic_init(&c->turn, 0);
	if (pthread_mutex_init(&c->mtx, NULL) != 0) {
		free(c);
		return DTX_ENOMEM;
	}
	if (pthread_cond_init(&c->idle_cv, NULL) != 0) {
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return DTX_ENOMEM;
	}
	if ((rv = dtxi_watch_open(&c->watch, 0)) != 0) {
		pthread_cond_destroy(&c->idle_cv);
		pthread_mutex_destroy(&c->mtx);
		free(c);
		return rv;
	}
	for (k = 0; k < n; k++) {
		node *nd = &c->nodes[k];

		nd->c     = c;
		nd->index = k;
		atomic_init(&nd->losses, 0);
		dtxi_strlcpy(nd->url, urls[k], sizeof(nd->url));
		c->n = k + 1; // its socket may be open from here
		if ((rv = node_open(nd, t)) != 0) {
			goto fail;
		}
	}
	*cp = c;
	return 0;

fail:
	for (k = 0; k < c->n; k++) {
		nng_close(c->nodes[k].sock);
	}
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
	dtxi_tls_rele(t); // each link holds its own reference
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
			for (unsigned j = 0; j < c->n; j++) {
				if (nng_ctx_id(o->ctx[j]) > 0) {
					nng_ctx_close(o->ctx[j]);
				}
			}
			free(o);
		}
	}
	for (unsigned j = 0; j < c->n; j++) {
		nng_close(c->nodes[j].sock);
	}
	client_free(c);
}

static void op_cb(void *arg);

static void
op_release(op *o)
{
	dtx_client *c = o->c;

	o->done = NULL;
	o->arg  = NULL;
	nng_msg_free(o->req); // accepts NULL
	o->req = NULL;
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
	if ((o = calloc(1, sizeof(*o) + c->n * sizeof(o->ctx[0]))) == NULL) {
		return DTX_ENOMEM;
	}
	o->c        = c;
	o->blocking = blocking;
	if ((rv = nng_aio_alloc(&o->aio, blocking ? NULL : op_cb, o)) != 0) {
		free(o);
		return dtxi_transport_err(rv, "client: allocating an aio");
	}
	// Contexts are opened on first use of their node (op_send).
	pthread_mutex_lock(&c->mtx);
	if (!op_hold(c, o)) {
		pthread_mutex_unlock(&c->mtx);
		nng_aio_free(o->aio);
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

// The node a request goes to first (from = n) or next after from: the
// next in turn with a connection, else simply the next in turn.
static unsigned
node_pick(dtx_client *c, unsigned from)
{
	unsigned start;

	if (c->n == 1) {
		return 0;
	}
	start = from == c->n ? atomic_fetch_add(&c->turn, 1) % c->n
	                     : (from + 1) % c->n;
	for (unsigned i = 0; i < c->n; i++) {
		unsigned k = (start + i) % c->n;

		if (dtxi_link_up(c->nodes[k].link)) {
			return k;
		}
	}
	return start;
}

// Adds why the request failed at its node to its message: one
// "url: why" per node (the first failure at each), cut short when the
// message is full. Only with several URLs.
static void
op_note(op *o, const char *why)
{
	size_t len = strlen(o->tried);
	char  *p   = o->tried + len;
	size_t cap = sizeof(o->tried) - len;

	if (o->c->n == 1 || o->tries > o->c->n || cap < 8) {
		return;
	}
	if (len > 0) {
		p += dtxi_strlcpy(p, "; ", cap);
		cap = sizeof(o->tried) - (size_t)(p - o->tried);
	}
	snprintf(p, cap, "%s: %s", o->c->nodes[o->node].url, why);
}

// Ends the request with code; with several URLs its message names every
// node tried and what happened there.
static int
op_fail(op *o, int code, const char *why)
{
	char all[DTX_MESSAGE_MAX + 1];

	if (o->c->n == 1) {
		return op_finish(o, code, NULL, why);
	}
	op_note(o, why);
	dtxi_strlcpy(all, "no coordinator answered: ", sizeof(all));
	dtxi_strlcpy(all + strlen(all), o->tried, sizeof(all) - strlen(all));
	return op_finish(o, code, NULL, all);
}

// Sends m (consumed on success) to node o->node or, with several URLs,
// to the next whose link is not known to fail. Without a connection the
// send waits for one only the connect timeout (with one URL in two halves:
// resend_once). Errors: DTX_EAUTH when every link tried is known to fail
// (why, cap bytes, says why), the context's. On error nothing was sent.
static int
op_send(op *o, nng_msg *m, char *why, size_t cap)
{
	dtx_client *c   = o->c;
	int32_t     cto = atomic_load(&c->connect_ms);
	char        reason[DTX_MESSAGE_MAX + 1];
	node       *nd;
	int64_t     left;
	int         rv;

	for (unsigned i = 0;; i++) {
		nd = &c->nodes[o->node];
		if ((rv = dtxi_link_check(nd->link, reason, sizeof(reason))) ==
		    0) {
			break;
		}
		o->tries++;
		op_note(o, reason);
		if (i + 1 >= c->n) {
			dtxi_strlcpy(why, c->n == 1 ? reason : o->tried, cap);
			return rv;
		}
		o->node = node_pick(c, o->node);
	}
	if (nng_ctx_id(o->ctx[o->node]) <= 0 &&
	    (rv = nng_ctx_open(&o->ctx[o->node], nd->sock)) != 0) {
		dtxi_strlcpy(why, "cannot open an nng context", cap);
		return dtxi_transport_err(rv, "client: opening a context");
	}
	left = o->deadline - dtxi_mono_ms();
	left = left < 1 ? 1 : left;
	o->tries++;
	o->sending     = true;
	o->start_ms    = dtxi_mono_ms();
	o->unconnected = !dtxi_link_up(nd->link);
	o->probed      = false;
	o->losses      = atomic_load(&nd->losses);
	o->send_ms     = clamp_ms(o->unconnected && cto < left ? cto : left);
	nng_aio_set_timeout(o->aio,
	    o->unconnected && c->n == 1 ? clamp_ms(o->send_ms / 2)
	                                : o->send_ms);
	nng_aio_set_msg(o->aio, m);
	nng_ctx_send(o->ctx[o->node], o->aio);
	// Failed since the check above: the watch's abort may have missed
	// this request.
	if (dtxi_link_failing(nd->link)) {
		nng_aio_abort(o->aio, NNG_EPEERAUTH);
	}
	return 0;
}

// A send that started without a connection waits for one half of its
// time first; if there is still none then, a probe starts learning why
// and the send goes on for the other half (true: it was posted again with
// its message). A coordinator that is merely slow to connect is never
// probed: a connection closed before nng's handshake was seen to stall an
// nng 1.5.2 listener. One URL only: with several the next is tried.
static bool
resend_once(op *o, int rv)
{
	node   *nd   = &o->c->nodes[o->node];
	int64_t left = o->start_ms + o->send_ms - dtxi_mono_ms();

	if (o->c->n > 1 || rv != NNG_ETIMEDOUT || !o->unconnected ||
	    o->probed || left < 1) {
		return false;
	}
	o->probed = true;
	if (!dtxi_link_up(nd->link)) {
		dtxi_probe_start(nd->probe, o->send_ms);
	}
	nng_aio_set_timeout(o->aio, clamp_ms(left));
	nng_ctx_send(o->ctx[o->node], o->aio);
	return true;
}

// Whether the request, which failed at its node with nng result rv while
// sending or not, goes to another one: only when there are others, its
// time is not up, and it failed for want of a connection.
static bool
op_may_move(op *o, int rv, bool sending)
{
	if (o->c->n == 1 || o->req == NULL || o->c->closing ||
	    dtxi_mono_ms() >= o->deadline) {
		return false;
	}
	switch (rv) {
	case NNG_ECONNRESET: // the connection broke (node_pipe)
	case NNG_ECONNSHUT:
	case NNG_ECONNREFUSED:
	case NNG_ECONNABORTED:
	case NNG_EPEERAUTH: // the link fails (node_failed)
		return true;
	case NNG_ETIMEDOUT: // no connection within the connect timeout
		return sending && o->unconnected;
	default:
		return false;
	}
}

// Sends the request again, to the next node. Returns 0, or an error with
// why (cap bytes) when it cannot.
static int
op_move(op *o, char *why, size_t cap)
{
	nng_msg *m;
	int      rv;

	if (nng_msg_dup(&m, o->req) != 0) {
		dtxi_strlcpy(why, "out of memory", cap);
		return DTX_ENOMEM;
	}
	o->node = node_pick(o->c, o->node);
	if ((rv = op_send(o, m, why, cap)) != 0) {
		nng_msg_free(m);
	}
	return rv;
}

// A request aborted by the link's watch, or timed out while the link is
// known to fail: DTX_EAUTH with the link's reason in why, else 0.
static int
link_failure(op *o, int rv, const char *what, char *why, size_t cap)
{
	dtxi_link *l = o->c->nodes[o->node].link;

	if (rv != NNG_EPEERAUTH && !dtxi_link_failing(l)) {
		return 0;
	}
	rv = dtxi_link_err(l, rv, what, why, cap);
	return rv == DTX_EAUTH ? rv : 0;
}

// Why a send failed (rv from nng), in words, and its code: a failing link
// is DTX_EAUTH with its reason; no connection within the connect timeout
// is DTX_EUNREACHABLE with the probe's reason; a close is DTX_ECLOSED.
static int
send_why(op *o, int rv, char *why, size_t cap)
{
	node *nd = &o->c->nodes[o->node];
	char  reason[64];
	int   code;

	if ((code = link_failure(
	         o, rv, "sending to the coordinator", why, cap)) != 0) {
		return code;
	}
	if (rv == NNG_ETIMEDOUT && o->unconnected && !dtxi_link_up(nd->link)) {
		if (nd->probe == NULL ||
		    dtxi_probe_result(nd->probe, reason, sizeof(reason)) <=
		        0) {
			snprintf(reason, sizeof(reason), "no connection");
		}
		snprintf(why, cap,
		    "coordinator %.120s unreachable: %s (no connection "
		    "within %d ms)",
		    nd->url, reason, (int)o->send_ms);
		DTXI_INFO("client: %s", why);
		return DTX_EUNREACHABLE;
	}
	code = dtxi_transport_err(rv, "client: sending a request");
	if (code == DTX_ECLOSED) {
		snprintf(why, cap, "the client was closed");
	} else if (code == DTX_ETIMEDOUT) {
		snprintf(why, cap,
		    "coordinator %.150s did not take the request within %d ms",
		    nd->url, (int)o->send_ms);
	} else {
		snprintf(why, cap, "sending to coordinator %.150s: %s",
		    nd->url, nng_strerror(rv));
	}
	return code;
}

// Why a receive failed, in words, and its code.
static int
recv_why(op *o, int rv, int64_t waited_ms, char *why, size_t cap)
{
	node *nd = &o->c->nodes[o->node];
	int   code;

	if ((code = link_failure(
	         o, rv, "waiting for the coordinator", why, cap)) != 0) {
		return code;
	}
	code = dtxi_transport_err(rv, "client: receiving a reply");
	if (code == DTX_ECLOSED) {
		snprintf(why, cap, "the client was closed");
	} else if (code == DTX_ETIMEDOUT) {
		snprintf(why, cap,
		    "coordinator %.150s did not answer within %lld ms",
		    nd->url, (long long)waited_ms);
	} else {
		snprintf(why, cap, "waiting for coordinator %.150s: %s",
		    nd->url, nng_strerror(rv));
	}
	return code;
}

// One step of the exchange after o's aio finished: a finished send posts
// the receive, a finished receive ends the request, a failure sends it to
// the next node (several URLs) or ends it. Returns true when the request
// ended (done ran; what it returned is in *rvp), false while a step is
// under way.
static bool
op_advance(op *o, int *rvp)
{
	int   rv = nng_aio_result(o->aio);
	node *nd = &o->c->nodes[o->node];
	char  why[DTX_MESSAGE_MAX + 1];
	int   code;

	if (o->sending) {
		if (rv == 0) {
			o->sending = false;
			nng_aio_set_timeout(
			    o->aio, clamp_ms(o->deadline - dtxi_mono_ms()));
			nng_ctx_recv(o->ctx[o->node], o->aio);
			// A connection lost after the send, before the
			// receive was posted, found nothing to abort.
			if (o->c->n > 1 &&
			    atomic_load(&nd->losses) != o->losses) {
				nng_aio_abort(o->aio, NNG_ECONNRESET);
			}
			return false;
		}
		if (resend_once(o, rv)) {
			return false;
		}
		// A failed send leaves the message with us.
		nng_msg_free(nng_aio_get_msg(o->aio));
		nng_aio_set_msg(o->aio, NULL);
		code = send_why(o, rv, why, sizeof(why));
		if (op_may_move(o, rv, true)) {
			op_note(o, why);
			if (op_move(o, why, sizeof(why)) == 0) {
				return false;
			}
		}
		*rvp = op_fail(o, code, why);
		return true;
	}
	if (rv != 0) {
		code = recv_why(
		    o, rv, dtxi_mono_ms() - o->start_ms, why, sizeof(why));
		if (op_may_move(o, rv, false)) {
			op_note(o, why);
			if (op_move(o, why, sizeof(why)) == 0) {
				return false;
			}
		}
		*rvp = op_fail(o, code, why);
		return true;
	}
	*rvp = op_reply(o, nng_aio_get_msg(o->aio));
	return true;
}

// The op's aio callback, on an nng thread.
static void
op_cb(void *arg)
{
	int rv;

	op_advance(arg, &rv);
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
	nng_msg *m = NULL;
	op      *o = NULL;
	int      rv;
	char     reason[DTX_MESSAGE_MAX + 1];

	if ((rv = dtxi_transport_encode_request(req, &m)) != 0) {
		if (why != NULL) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "cannot encode the request: %s", dtx_strerror(rv));
		}
		return rv;
	}
	if (nng_msg_len(m) > DTXI_FRAME_MAX_DEFAULT) {
		if (why != NULL) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "the request is %zu bytes, over the %u-byte frame "
			    "limit",
			    nng_msg_len(m), DTXI_FRAME_MAX_DEFAULT);
		}
		nng_msg_free(m);
		return DTX_ETOOBIG;
	}
	if ((rv = op_get(c, blocking, &o)) != 0) {
		nng_msg_free(m);
		if (why != NULL && rv == DTX_ECLOSED) {
			snprintf(why, DTX_MESSAGE_MAX + 1,
			    "the client is being closed");
		}
		return rv;
	}
	if (c->n > 1 && nng_msg_dup(&o->req, m) != 0) {
		nng_msg_free(m);
		op_release(o);
		return DTX_ENOMEM;
	}
	o->done     = done;
	o->arg      = arg;
	o->tries    = 0;
	o->tried[0] = '\0';
	o->deadline = dtxi_mono_ms() + clamp_ms(timeout_ms);
	o->node     = node_pick(c, c->n);
	// A request on links known to fail would only wait: it fails now.
	if ((rv = op_send(o, m, reason, sizeof(reason))) != 0) {
		dtxi_client_set_message(c, reason);
		if (why != NULL) {
			dtxi_strlcpy(why, reason, DTX_MESSAGE_MAX + 1);
		}
		nng_msg_free(m);
		op_release(o);
		return rv;
	}
	*op_p = o;
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
	// op_cb's steps, with a wait before each. Once done ran the op is
	// back on its free list (another thread may have it): not touched.
	do {
		nng_aio_wait(o->aio);
	} while (!op_advance(o, &rv));
	return rv;
}
