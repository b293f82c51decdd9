// SPDX-License-Identifier: MIT
//
// http: the operations listener on nng's HTTP server (see http.h), the
// only file that touches nng's HTTP supplement.
//
// Lifetime. nng may still be running a handler when nng_http_server_stop()
// returns (a request read just before), and it frees the handlers later,
// on its reaper. So the object is shared: each handler holds a reference
// (dropped by the handler's destructor) and so does the owner (dropped by
// close). Handlers use the manager and the registry only under the read
// side of the lock, after checking that close has not begun; close takes
// the write side once, to say so. The lock is a leaf; a handler holds it
// for a few microseconds, and waits for it only at that one moment of
// shutdown.

#include "http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "clock.h"
#include "log.h"
#include "status_page.h"
#include "textbuf.h"

struct dtxd_http {
	nng_http_server *server;
	dtxd_http_opts   o;
	pthread_rwlock_t lock;
	bool             closing;    // under lock
	dtxd_server     *servers[2]; // clients, operators; under lock
	atomic_int       refs;
};

static void
unref(void *arg)
{
	dtxd_http *h = arg;

	if (atomic_fetch_sub(&h->refs, 1) == 1) {
		pthread_rwlock_destroy(&h->lock);
		free(h);
	}
}

// Answers aio with status and body (copied).
static void
respond(nng_aio *aio, uint16_t status, const char *ctype, const void *body,
    size_t len)
{
	nng_http_res *res;

	if (nng_http_res_alloc(&res) != 0) {
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	if (nng_http_res_set_status(res, status) != 0 ||
	    nng_http_res_set_header(res, "Content-Type", ctype) != 0 ||
	    nng_http_res_set_header(res, "Cache-Control", "no-store") != 0 ||
	    nng_http_res_copy_data(res, body, len) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, NNG_ENOMEM);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void
respond_text(nng_aio *aio, uint16_t status, const char *text)
{
	respond(aio, status, "text/plain; charset=utf-8", text, strlen(text));
}

// The server of a handler's request, read-locked, or NULL (aio answered)
// once close has begun.
static dtxd_http *
enter(nng_aio *aio)
{
	dtxd_http *h = nng_http_handler_get_data(nng_aio_get_input(aio, 1));

	pthread_rwlock_rdlock(&h->lock);
	if (h->closing) {
		pthread_rwlock_unlock(&h->lock);
		respond_text(aio, 503, "dtxd is shutting down\n");
		return NULL;
	}
	return h;
}

static void
leave(dtxd_http *h)
{
	pthread_rwlock_unlock(&h->lock);
}

static void
on_metrics(nng_aio *aio)
{
	dtxd_http          *h = enter(aio);
	dtxd_textbuf        t;
	dtxd_txmgr_stats    st;
	dtxd_metrics_gauges g;
	uint64_t            calls = 0;

	if (h == NULL) {
		return;
	}
	memset(&g, 0, sizeof(g));
	if (h->o.mgr != NULL) {
		dtxd_txmgr_get_stats(h->o.mgr, &st);
		g.in_flight = st.active;
	}
	if (h->o.disp != NULL) {
		dtxd_dispatcher_get_counts(
		    h->o.disp, &calls, &g.call_messages);
	}
	g.uptime_ms = dtxi_mono_ms() - h->o.start_ms;
	for (int i = 0; i < 2; i++) {
		g.tls_refused[i] =
		    dtxd_server_refused_handshakes(h->servers[i]);
	}
	dtxd_textbuf_init(&t);
	dtxd_metrics_render(h->o.metrics, &g, &t);
	if (t.failed) {
		respond_text(aio, 500, "out of memory\n");
	} else {
		respond(aio, 200, "text/plain; version=0.0.4; charset=utf-8",
		    t.buf, t.len);
	}
	dtxd_textbuf_fini(&t);
	leave(h);
}

static void
on_healthz(nng_aio *aio)
{
	respond_text(aio, 200, "ok\n");
}

static void
on_readyz(nng_aio *aio)
{
	dtxd_http *h = enter(aio);
	char       why[DTXD_METRICS_WHY_MAX + 32];
	char       body[DTXD_METRICS_WHY_MAX + 64];

	if (h == NULL) {
		return;
	}
	if (dtxd_metrics_ready(h->o.metrics, why, sizeof(why))) {
		respond_text(aio, 200, "ready\n");
	} else {
		snprintf(body, sizeof(body), "not ready: %s\n", why);
		respond_text(aio, 503, body);
	}
	leave(h);
}

static void
on_page(nng_aio *aio)
{
	respond(aio, 200, "text/html; charset=utf-8", dtxd_status_page,
	    dtxd_status_page_len);
}

// The loop's answer to /api/txs, on its thread (or NULL when it stopped).
static void
on_snapshot(void *arg, const char *json, size_t len)
{
	nng_aio *aio = arg;

	if (json == NULL) {
		respond_text(aio, 503, "dtxd is shutting down\n");
		return;
	}
	respond(aio, 200, "application/json", json, len);
}

// The value of key in the query string of uri, into out; false if absent.
static bool
query_get(const char *uri, const char *key, char *out, size_t cap)
{
	const char *q    = strchr(uri, '?');
	size_t      klen = strlen(key);

	while (q != NULL) {
		q++;
		if (strncmp(q, key, klen) == 0 && q[klen] == '=') {
			size_t n = strcspn(q + klen + 1, "&#");
			if (n >= cap) {
				n = cap - 1;
			}
			memcpy(out, q + klen + 1, n);
			out[n] = '\0';
			return true;
		}
		q = strchr(q, '&');
	}
	return false;
}

static void
on_api_txs(nng_aio *aio)
{
	const char *uri = nng_http_req_get_uri(nng_aio_get_input(aio, 0));
	dtxd_snapshot_query q = {0, false, 200};
	char                v[32];
	dtxd_http          *h;

	if (query_get(uri, "state", v, sizeof(v)) && v[0] != '\0') {
		for (int s = DTX_STATE_PREPARING; s <= DTX_STATE_COMPENSATED;
		     s++) {
			if (strcasecmp(v, dtx_state_name(s)) == 0) {
				q.state = s;
			}
		}
		if (q.state == 0) {
			respond_text(aio, 400, "unknown state\n");
			return;
		}
	}
	if (query_get(uri, "stuck", v, sizeof(v))) {
		q.stuck = strcmp(v, "0") != 0;
	}
	if (query_get(uri, "limit", v, sizeof(v))) {
		long n  = strtol(v, NULL, 10);
		q.limit = n < 1 ? 1 : n > 1000 ? 1000 : (uint32_t)n;
	}
	if ((h = enter(aio)) == NULL) {
		return;
	}
	if (h->o.mgr == NULL) {
		respond_text(aio, 503, "dtxd is not serving yet\n");
	} else if (dtxd_txmgr_snapshot(h->o.mgr, &q, on_snapshot, aio) != 0) {
		respond_text(aio, 503, "dtxd is shutting down\n");
	}
	leave(h);
}

static int
add(dtxd_http *h, const char *path, void (*cb)(nng_aio *))
{
	nng_http_handler *hd;
	int               rv;

	if ((rv = nng_http_handler_alloc(&hd, path, cb)) != 0) {
		return rv;
	}
	atomic_fetch_add(&h->refs, 1);
	if ((rv = nng_http_handler_set_data(hd, h, unref)) != 0) {
		atomic_fetch_sub(&h->refs, 1);
		nng_http_handler_free(hd);
		return rv;
	}
	if ((rv = nng_http_server_add_handler(h->server, hd)) != 0) {
		nng_http_handler_free(hd); // drops its reference
		return rv;
	}
	return 0;
}

int
dtxd_http_open(dtxd_http **hp, const dtxd_http_opts *o)
{
	dtxd_http *h;
	nng_url   *url = NULL;
	int        rv;

	if (o->url == NULL || strncmp(o->url, "http://", 7) != 0) {
		DTXI_ERROR("http: --http-listen takes http://HOST:PORT, not "
		           "'%s'",
		    o->url != NULL ? o->url : "");
		return DTX_EINVAL;
	}
	if ((rv = nng_url_parse(&url, o->url)) != 0 || url->u_port == NULL ||
	    url->u_port[0] == '\0' || strtol(url->u_port, NULL, 10) <= 0 ||
	    strtol(url->u_port, NULL, 10) > 65535) {
		DTXI_ERROR("http: invalid address '%s' (http://HOST:PORT, "
		           "port 1..65535)",
		    o->url);
		nng_url_free(url);
		return rv == NNG_ENOMEM ? DTX_ENOMEM : DTX_EINVAL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		nng_url_free(url);
		return DTX_ENOMEM;
	}
	h->o = *o;
	atomic_init(&h->refs, 1); // the owner's
	if (pthread_rwlock_init(&h->lock, NULL) != 0) {
		nng_url_free(url);
		free(h);
		return DTX_ENOMEM;
	}
	rv = nng_http_server_hold(&h->server, url);
	nng_url_free(url);
	if (rv != 0) {
		unref(h);
		return rv == NNG_ENOMEM ? DTX_ENOMEM : DTX_EINVAL;
	}
	if ((rv = add(h, "/metrics", on_metrics)) != 0 ||
	    (rv = add(h, "/healthz", on_healthz)) != 0 ||
	    (rv = add(h, "/readyz", on_readyz)) != 0 ||
	    (rv = add(h, "/api/txs", on_api_txs)) != 0 ||
	    (rv = add(h, "/", on_page)) != 0 ||
	    (rv = nng_http_server_start(h->server)) != 0) {
		DTXI_ERROR(
		    "http: cannot listen on %s: %s", o->url, nng_strerror(rv));
		nng_http_server_release(h->server);
		unref(h);
		return rv == NNG_ENOMEM ? DTX_ENOMEM : DTX_ETRANSPORT;
	}
	dtxi_log_event(DTXI_LOG_INFO, "http_listening",
	    DTXI_FIELDS(DTXI_F_STR("url", o->url)),
	    "metrics, health and the status page on %s", o->url);
	*hp = h;
	return 0;
}

void
dtxd_http_set_servers(
    dtxd_http *h, dtxd_server *clients, dtxd_server *operators)
{
	if (h == NULL) {
		return;
	}
	pthread_rwlock_wrlock(&h->lock);
	h->servers[0] = clients;
	h->servers[1] = operators;
	pthread_rwlock_unlock(&h->lock);
}

void
dtxd_http_set_mgr(dtxd_http *h, dtxd_txmgr *mgr)
{
	if (h == NULL) {
		return;
	}
	pthread_rwlock_wrlock(&h->lock);
	h->o.mgr = mgr;
	pthread_rwlock_unlock(&h->lock);
}

void
dtxd_http_close(dtxd_http *h)
{
	if (h == NULL) {
		return;
	}
	pthread_rwlock_wrlock(&h->lock);
	h->closing = true;
	pthread_rwlock_unlock(&h->lock);
	nng_http_server_stop(h->server);
	nng_http_server_release(h->server);
	unref(h);
}
