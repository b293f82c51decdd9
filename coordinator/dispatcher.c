// SPDX-License-Identifier: MIT
//
// dispatcher: outbound branch calls (see dispatcher.h). A call is a small
// state machine on its own aio: SEND the encoded BranchCall on a fresh
// context of the peer's REQ socket, then RECV the answer, then decode it and
// report once. nng's own resend is switched off: the engines decide retries,
// with backoff, and a resent request would be a second delivery they did not
// ask for.
//
// Lock order: dispatcher->mtx only (a leaf, never held across an nng call
// that may complete an aio).

#include "dispatcher.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

struct dtxd_peer {
	struct dtxd_peer *next;
	nng_socket        sock;
	char              url[DTX_ENDPOINT_MAX + 1];
};

struct dtxd_dispatcher {
	pthread_mutex_t mtx;
	pthread_cond_t  cv;
	dtxd_peer      *peers;
	uint64_t        inflight;
	bool            closing;
	size_t          max_payload;
};

typedef struct dcall {
	dtxd_dispatcher *d;
	nng_ctx          ctx;
	nng_aio         *aio;
	bool             sent;
	int64_t          deadline; // monotonic ms: the call ends by then
	dtxd_call_fn     fn;
	void            *arg;
} dcall;

static int
map_nng(int rv)
{
	switch (rv) {
	case 0:
		return 0;
	case NNG_ETIMEDOUT:
		return DTX_ETIMEDOUT;
	case NNG_ECLOSED:
	case NNG_ECANCELED:
		return DTX_ECLOSED;
	case NNG_ENOMEM:
		return DTX_ENOMEM;
	default:
		return DTX_ETRANSPORT;
	}
}

int
dtxd_dispatcher_open(dtxd_dispatcher **dp, size_t max_payload)
{
	dtxd_dispatcher *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		return DTX_ENOMEM;
	}
	pthread_mutex_init(&d->mtx, NULL);
	pthread_cond_init(&d->cv, NULL);
	d->max_payload = max_payload;
	*dp            = d;
	return 0;
}

void
dtxd_dispatcher_close(dtxd_dispatcher *d)
{
	if (d == NULL) {
		return;
	}
	pthread_mutex_lock(&d->mtx);
	d->closing = true;
	pthread_mutex_unlock(&d->mtx);
	// Closing a socket completes every aio on its contexts with
	// NNG_ECLOSED, so each call reports and the count drains.
	for (dtxd_peer *p = d->peers; p != NULL; p = p->next) {
		nng_close(p->sock);
	}
	pthread_mutex_lock(&d->mtx);
	while (d->inflight > 0) {
		pthread_cond_wait(&d->cv, &d->mtx);
	}
	pthread_mutex_unlock(&d->mtx);
	while (d->peers != NULL) {
		dtxd_peer *p = d->peers;
		d->peers     = p->next;
		free(p);
	}
	pthread_cond_destroy(&d->cv);
	pthread_mutex_destroy(&d->mtx);
	free(d);
}

int
dtxd_dispatcher_peer(dtxd_dispatcher *d, const char *endpoint, dtxd_peer **pp)
{
	dtxd_peer *p;
	int        rv;

	if (endpoint == NULL || strlen(endpoint) > DTX_ENDPOINT_MAX) {
		return DTX_EINVAL;
	}
	pthread_mutex_lock(&d->mtx);
	for (p = d->peers; p != NULL; p = p->next) {
		if (strcmp(p->url, endpoint) == 0) {
			pthread_mutex_unlock(&d->mtx);
			*pp = p;
			return 0;
		}
	}
	if (d->closing) {
		pthread_mutex_unlock(&d->mtx);
		return DTX_ECLOSED;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		pthread_mutex_unlock(&d->mtx);
		return DTX_ENOMEM;
	}
	dtxi_strlcpy(p->url, endpoint, sizeof(p->url));
	if ((rv = nng_req0_open(&p->sock)) != 0) {
		pthread_mutex_unlock(&d->mtx);
		free(p);
		DTXI_ERROR(
		    "dispatcher: cannot open socket: %s", nng_strerror(rv));
		return DTX_ETRANSPORT;
	}
	nng_socket_set_ms(
	    p->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 1000);
	nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ,
	    d->max_payload + DTX_MESSAGE_MAX + 4096);
	// Non-blocking: the dialer keeps trying in the background, so a
	// participant that is down now is reached once it comes up.
	if ((rv = nng_dial(p->sock, endpoint, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		pthread_mutex_unlock(&d->mtx);
		nng_close(p->sock);
		free(p);
		DTXI_WARN("dispatcher: cannot dial '%s': %s", endpoint,
		    nng_strerror(rv));
		return rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ||
		        rv == NNG_EINVAL
		    ? DTX_EINVAL
		    : DTX_ETRANSPORT;
	}
	p->next  = d->peers;
	d->peers = p;
	pthread_mutex_unlock(&d->mtx);
	*pp = p;
	return 0;
}

// Reports the end of a call and releases it. The aio is reaped (freed by
// nng in the background) because this runs inside its own callback.
static void
dcall_end(dcall *c, int rv, const dtxi_branch_reply *rep)
{
	dtxd_dispatcher *d = c->d;
	c->fn(c->arg, rv, rep);
	nng_ctx_close(c->ctx);
	nng_aio_reap(c->aio);
	free(c);
	pthread_mutex_lock(&d->mtx);
	if (--d->inflight == 0) {
		pthread_cond_broadcast(&d->cv);
	}
	pthread_mutex_unlock(&d->mtx);
}

static void
dcall_on_reply(dcall *c, nng_msg *msg)
{
	// The reply is decoded into a heap struct: it is a few hundred bytes
	// but dtxi_reply's union is sized for the largest reply.
	dtxi_reply *rep = malloc(sizeof(*rep));
	char        why[DTX_MESSAGE_MAX + 1];
	int         rv;

	if (rep == NULL) {
		nng_msg_free(msg);
		dcall_end(c, DTX_ENOMEM, NULL);
		return;
	}
	why[0] = '\0';
	rv     = dtxi_reply_decode(rep, nng_msg_body(msg), nng_msg_len(msg),
	        c->d->max_payload + DTX_MESSAGE_MAX + 4096, c->d->max_payload,
	        why);
	if (rv != 0 || (rep->code == 0 && rep->kind != DTXI_REP_BRANCH)) {
		DTXI_WARN("dispatcher: undecodable answer from a participant: "
		          "%s %s",
		    dtx_strerror(rv != 0 ? rv : DTX_EPROTO), why);
		free(rep);
		nng_msg_free(msg);
		dcall_end(c, DTX_EPROTO, NULL);
		return;
	}
	if (rep->code != 0) {
		// The participant could not take the call at all (malformed,
		// too large, wrong version): report it as BAD_REQUEST with
		// the participant's words.
		dtxi_branch_reply br;
		memset(&br, 0, sizeof(br));
		br.status = DTX_BRANCH_BAD_REQUEST;
		snprintf(br.message, sizeof(br.message), "%s: %.200s",
		    dtx_strerror(rep->code), rep->message);
		dcall_end(c, 0, &br);
	} else {
		dcall_end(c, 0, &rep->u.branch);
	}
	free(rep);
	nng_msg_free(msg);
}

static void
dcall_cb(void *arg)
{
	dcall *c  = arg;
	int    rv = nng_aio_result(c->aio);

	if (!c->sent) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(c->aio));
			nng_aio_set_msg(c->aio, NULL);
			dcall_end(c, map_nng(rv), NULL);
			return;
		}
		// The answer gets what is left of the call's time.
		int64_t left = c->deadline - dtxi_mono_ms();
		c->sent      = true;
		nng_aio_set_timeout(
		    c->aio, (nng_duration)(left > 1 ? left : 1));
		nng_ctx_recv(c->ctx, c->aio);
		return;
	}
	if (rv != 0) {
		dcall_end(c, map_nng(rv), NULL);
		return;
	}
	dcall_on_reply(c, nng_aio_get_msg(c->aio));
}

int
dtxd_dispatcher_call(dtxd_dispatcher *d, dtxd_peer *peer,
    const dtxi_call *call, uint32_t timeout_ms, dtxd_call_fn fn, void *arg)
{
	dtxi_request *req;
	nng_msg      *msg = NULL;
	dcall        *c;
	size_t        len = 0;
	int           rv;

	if (d == NULL || peer == NULL || call == NULL || fn == NULL) {
		return DTX_EINVAL;
	}
	// Only the call member is used; the request is sized for a submit.
	if ((req = malloc(sizeof(*req))) == NULL) {
		return DTX_ENOMEM;
	}
	req->version = DTX_PROTOCOL_VERSION;
	req->kind    = DTXI_REQ_CALL;
	req->u.call  = *call;
	rv           = dtxi_request_encode(req, NULL, 0, &len);
	if (rv == 0 && (rv = map_nng(nng_msg_alloc(&msg, len))) == 0) {
		rv = dtxi_request_encode(req, nng_msg_body(msg), len, &len);
	}
	free(req);
	if (rv != 0) {
		if (msg != NULL) {
			nng_msg_free(msg);
		}
		return rv;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		nng_msg_free(msg);
		return DTX_ENOMEM;
	}
	c->d   = d;
	c->fn  = fn;
	c->arg = arg;
	if ((rv = nng_aio_alloc(&c->aio, dcall_cb, c)) != 0) {
		nng_msg_free(msg);
		free(c);
		return map_nng(rv);
	}
	if ((rv = nng_ctx_open(&c->ctx, peer->sock)) != 0) {
		nng_aio_free(c->aio);
		nng_msg_free(msg);
		free(c);
		return map_nng(rv);
	}
	pthread_mutex_lock(&d->mtx);
	if (d->closing) {
		pthread_mutex_unlock(&d->mtx);
		nng_ctx_close(c->ctx);
		nng_aio_free(c->aio);
		nng_msg_free(msg);
		free(c);
		return DTX_ECLOSED;
	}
	d->inflight++;
	pthread_mutex_unlock(&d->mtx);
	// One timeout covers send and receive: a call ends within it.
	c->deadline = dtxi_mono_ms() + timeout_ms;
	nng_aio_set_timeout(c->aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(c->aio, msg);
	nng_ctx_send(c->ctx, c->aio);
	return 0;
}
