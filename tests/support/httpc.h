// SPDX-License-Identifier: MIT
//
// httpc: a tiny HTTP/1.1 client over a plain TCP socket, for the tests that
// scrape dtxd's /metrics, /healthz, /readyz and /api/txs the way Prometheus
// or a load balancer would. GET only, "Connection: close", the body read
// to the end (Content-Length is checked when given). Test code only.

#ifndef DTX_TESTS_HTTPC_H
#define DTX_TESTS_HTTPC_H

#include <stddef.h>

typedef struct dtxt_http_res {
	int    status;     // e.g. 200, 503; 0 if none was read
	char   ctype[128]; // Content-Type, or ""
	char  *body;       // NUL-terminated, malloc'd (free() it)
	size_t len;
} dtxt_http_res;

// GETs path from base ("http://127.0.0.1:PORT") within timeout_ms.
// Returns 0 and fills *res, or an errno (ECONNREFUSED, ETIMEDOUT, EPROTO
// for a response that is not HTTP).
int dtxt_http_get(
    const char *base, const char *path, int timeout_ms, dtxt_http_res *res);

void dtxt_http_res_fini(dtxt_http_res *res);

// Writes "http://127.0.0.1:PORT" with a port that was free a moment ago.
// Returns 0 or -1.
int dtxt_free_http_url(char *out, size_t cap);

#endif // DTX_TESTS_HTTPC_H
