// SPDX-License-Identifier: MIT
//
// transport: dtx's nng glue (see transport.h).

#include "transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>

#include "log.h"

int
dtxi_transport_err(int rv, const char *what)
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
	case NNG_ECRYPTO:
	case NNG_EPEERAUTH:
		// A TLS handshake failed; link.c says why, when it can.
		if (what != NULL) {
			DTXI_ERROR("%s: %s (%s)", what, nng_strerror(rv),
			    dtx_strerror(DTX_EAUTH));
		}
		return DTX_EAUTH;
	default:
		if (what != NULL) {
			DTXI_ERROR("%s: %s (%s)", what, nng_strerror(rv),
			    dtx_strerror(DTX_ETRANSPORT));
		}
		return DTX_ETRANSPORT;
	}
}

int
dtxi_transport_addr_err(int rv, const char *what, const char *url)
{
	if (rv == NNG_EINVAL || rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP) {
		DTXI_WARN("%s: invalid address '%s': %s", what, url,
		    nng_strerror(rv));
		return DTX_EINVAL;
	}
	if (rv != 0) {
		DTXI_WARN("%s: %s: %s", what, url, nng_strerror(rv));
	}
	return dtxi_transport_err(rv, NULL);
}

const char *
dtxi_transport_strerror(int rv)
{
	return nng_strerror(rv);
}

// Upper bounds of encoded sizes. Protobuf spends at most a few bytes of
// tag and length on each field; 16 bytes per item and 64 per message cover
// every fixed field with room to spare, so only strings and payloads need
// counting.
static size_t
call_bound(const dtxi_call *c)
{
	return c->payload.len + strlen(c->gid) + strlen(c->method) + 64;
}

static size_t
request_bound(const dtxi_request *r)
{
	size_t b = 64;

	switch (r->kind) {
	case DTXI_REQ_SUBMIT:
		for (uint32_t i = 0;
		     i < r->u.submit.nbranches && i < DTX_BRANCHES_MAX; i++) {
			const dtxi_branch_spec *s = &r->u.submit.branches[i];
			b += strlen(s->endpoint) + strlen(s->method) +
			    s->payload.len + 16;
		}
		return b + DTX_GID_MAX;
	case DTXI_REQ_CALL:
		return b + call_bound(&r->u.call);
	case DTXI_REQ_CALL_BATCH:
		for (uint32_t i = 0; i < r->u.batch.n && i < DTXI_BATCH_MAX;
		     i++) {
			b += call_bound(&r->u.batch.calls[i]) + 8;
		}
		return b;
	default:
		return b + 2 * DTX_GID_MAX;
	}
}

static size_t
reply_bound(const dtxi_reply *r)
{
	size_t b = 64 + strlen(r->message);

	switch (r->kind) {
	case DTXI_REP_TX:
		b += DTX_GID_MAX + 64;
		for (uint32_t i = 0;
		     i < r->u.tx.nbranches && i < DTX_BRANCHES_MAX; i++) {
			const dtxi_branch_result *br = &r->u.tx.branches[i];
			b += strlen(br->message) + br->payload.len + 32;
		}
		return b;
	case DTXI_REP_LIST:
		return b + (size_t)r->u.list.n * (DTX_GID_MAX + 64) +
		    DTX_GID_MAX;
	case DTXI_REP_BRANCH:
		return b + strlen(r->u.branch.message) +
		    r->u.branch.payload.len + 16;
	case DTXI_REP_BRANCH_BATCH:
		for (uint32_t i = 0; i < r->u.batch.n && i < DTXI_BATCH_MAX;
		     i++) {
			const dtxi_branch_reply *br = &r->u.batch.replies[i];
			b += strlen(br->message) + br->payload.len + 24;
		}
		return b;
	default:
		return b + 256; // resolve, stats: a few integers
	}
}

typedef int (*encode_fn)(const void *, uint8_t *, size_t, size_t *);

static int
request_enc(const void *r, uint8_t *buf, size_t cap, size_t *len)
{
	return dtxi_request_encode(r, buf, cap, len);
}

static int
reply_enc(const void *r, uint8_t *buf, size_t cap, size_t *len)
{
	return dtxi_reply_encode(r, buf, cap, len);
}

static int
encode_msg(encode_fn enc, const void *obj, size_t bound, nng_msg **mp)
{
	nng_msg *msg = NULL;
	size_t   len = 0;
	int      rv;

	if ((rv = dtxi_transport_err(nng_msg_alloc(&msg, bound), NULL)) != 0) {
		return rv;
	}
	rv = enc(obj, nng_msg_body(msg), bound, &len);
	if (rv == 0) {
		nng_msg_chop(msg, bound - len);
		*mp = msg;
		return 0;
	}
	nng_msg_free(msg);
	msg = NULL;
	if (rv != DTX_ETOOBIG) {
		return rv;
	}
	rv = enc(obj, NULL, 0, &len);
	if (rv == 0 &&
	    (rv = dtxi_transport_err(nng_msg_alloc(&msg, len), NULL)) == 0) {
		rv = enc(obj, nng_msg_body(msg), len, &len);
	}
	if (rv != 0) {
		if (msg != NULL) {
			nng_msg_free(msg);
		}
		return rv;
	}
	*mp = msg;
	return 0;
}

int
dtxi_transport_encode_request(const dtxi_request *r, nng_msg **mp)
{
	if (r == NULL || mp == NULL) {
		return DTX_EINVAL;
	}
	return encode_msg(request_enc, r, request_bound(r), mp);
}

int
dtxi_transport_encode_reply(const dtxi_reply *r, nng_msg **mp)
{
	if (r == NULL || mp == NULL) {
		return DTX_EINVAL;
	}
	return encode_msg(reply_enc, r, reply_bound(r), mp);
}

// The 8-byte SP header nng peers swap before a pipe starts: "\0SP\0",
// the protocol number big-endian (REQ v0 = 0x30, as both dialers that
// probe are REQ sockets), two reserved bytes.
static const uint8_t probe_hdr[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};

enum { PROBE_DIAL, PROBE_SEND, PROBE_RECV };

// How long a connected probe waits for the peer's half of the handshake.
// Not the dial's limit (a client's connect timeout, 200 ms in tests): a
// peer slow to answer (a dtxd busy recovering, under ASan) would see the
// probe leave mid-handshake and stop accepting (below).
#define PROBE_HANDSHAKE_MS 10000

struct dtxi_probe {
	nng_stream_dialer *dialer;
	nng_aio           *aio;
	nng_stream        *stream; // the last dial's, closed, to free
	int                stage;
	size_t             done; // header bytes sent or received
	uint8_t            peer_hdr[8];
	atomic_bool        running;
	atomic_int         result; // -1 until a dial ended
};

// Moves the header exchange on by one send or receive of what is left.
static void
probe_io(dtxi_probe *p)
{
	nng_iov iov;

	if (p->stage == PROBE_SEND) {
		iov.iov_buf = (void *)(probe_hdr + p->done);
		iov.iov_len = sizeof(probe_hdr) - p->done;
		nng_aio_set_iov(p->aio, 1, &iov);
		nng_stream_send(p->stream, p->aio);
	} else {
		iov.iov_buf = p->peer_hdr + p->done;
		iov.iov_len = sizeof(p->peer_hdr) - p->done;
		nng_aio_set_iov(p->aio, 1, &iov);
		nng_stream_recv(p->stream, p->aio);
	}
}

// A connection that was made finishes the SP handshake before it closes:
// nng 1.5.2's listeners stop accepting when a peer goes away during the
// handshake (nng#1518, fixed after 1.5.2), so a probe that closed at once
// could break the very listener it found alive. The dial's result is what
// the probe reports; the handshake's only job is to leave the peer as it
// was. The stream is closed here but freed only by the next start or the
// close: nng_stream_free() waits for the stream's work and must not run in
// an aio callback.
static void
probe_cb(void *arg)
{
	dtxi_probe *p  = arg;
	int         rv = nng_aio_result(p->aio);

	switch (p->stage) {
	case PROBE_DIAL:
		if (rv != 0) {
			break;
		}
		p->stream = nng_aio_get_output(p->aio, 0);
		atomic_store(&p->result, 0);
		p->stage = PROBE_SEND;
		p->done  = 0;
		nng_aio_set_timeout(p->aio, PROBE_HANDSHAKE_MS);
		probe_io(p);
		return;
	case PROBE_SEND:
	case PROBE_RECV:
		if (rv != 0) {
			break;
		}
		p->done += nng_aio_count(p->aio);
		if (p->done < sizeof(probe_hdr)) {
			probe_io(p);
			return;
		}
		if (p->stage == PROBE_SEND) {
			p->stage = PROBE_RECV;
			p->done  = 0;
			probe_io(p);
			return;
		}
		break;
	}
	if (p->stream != NULL) {
		nng_stream_close(p->stream);
	}
	if (p->stage == PROBE_DIAL) {
		atomic_store(&p->result, rv);
	}
	atomic_store(&p->running, false);
}

int
dtxi_probe_open(dtxi_probe **pp, const char *url)
{
	dtxi_probe *p = calloc(1, sizeof(*p));
	int         rv;

	if (p == NULL) {
		return DTX_ENOMEM;
	}
	atomic_init(&p->running, false);
	atomic_init(&p->result, -1);
	// Not a TLS address: SP headers where a handshake is due would be
	// logged there as a refused handshake (link.h diagnoses TLS).
	if (strncmp(url, "tls+", 4) == 0) {
		free(p);
		return DTX_EINVAL;
	}
	if ((rv = nng_stream_dialer_alloc(&p->dialer, url)) != 0) {
		free(p);
		return rv == NNG_ENOMEM ? DTX_ENOMEM : DTX_EINVAL;
	}
	if ((rv = nng_aio_alloc(&p->aio, probe_cb, p)) != 0) {
		nng_stream_dialer_free(p->dialer);
		free(p);
		return DTX_ENOMEM;
	}
	*pp = p;
	return 0;
}

void
dtxi_probe_start(dtxi_probe *p, int32_t timeout_ms)
{
	if (p == NULL || atomic_exchange(&p->running, true)) {
		return;
	}
	if (p->stream != NULL) {
		nng_stream_free(p->stream);
		p->stream = NULL;
	}
	p->stage = PROBE_DIAL;
	nng_aio_set_timeout(p->aio, timeout_ms > 0 ? timeout_ms : 1);
	nng_stream_dialer_dial(p->dialer, p->aio);
}

int
dtxi_probe_result(dtxi_probe *p, char *why, size_t cap)
{
	int rv = p != NULL ? atomic_load(&p->result) : -1;

	if (why != NULL && cap > 0) {
		snprintf(why, cap, "%s",
		    rv < 0        ? "not tried yet"
		        : rv == 0 ? "it accepts connections"
		                  : nng_strerror(rv));
	}
	return rv;
}

void
dtxi_probe_close(dtxi_probe *p)
{
	if (p == NULL) {
		return;
	}
	nng_stream_dialer_close(p->dialer);
	nng_aio_stop(p->aio);
	if (p->stream != NULL) {
		nng_stream_free(p->stream);
	}
	nng_aio_free(p->aio);
	nng_stream_dialer_free(p->dialer);
	free(p);
}

void
dtxi_transport_fini(void)
{
	nng_fini();
}
