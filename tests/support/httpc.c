// SPDX-License-Identifier: MIT
//
// httpc: a tiny HTTP/1.1 GET client (see httpc.h).

#include "httpc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "loopback_port.h"

static long long
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
dtxt_free_http_url(char *out, size_t cap)
{
	int port = dtxi_loopback_port();

	if (port <= 0) {
		return -1;
	}
	snprintf(out, cap, "http://127.0.0.1:%d", port);
	return 0;
}

// Waits for fd to be ready for events until deadline; 0, ETIMEDOUT or errno.
static int
wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	long long     left;
	int           rv;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0) {
			return ETIMEDOUT;
		}
		rv = poll(&p, 1, (int)left);
		if (rv > 0) {
			return 0;
		}
		if (rv < 0 && errno != EINTR) {
			return errno;
		}
	}
}

int
dtxt_http_get(
    const char *base, const char *path, int timeout_ms, dtxt_http_res *res)
{
	long long          deadline = now_ms() + timeout_ms;
	struct sockaddr_in sa;
	char               req[1024];
	char              *buf = NULL;
	size_t             len = 0, cap = 0;
	const char        *hdr_end;
	unsigned           port;
	int                fd, rv = 0;

	memset(res, 0, sizeof(*res));
	if (sscanf(base, "http://127.0.0.1:%u", &port) != 1) {
		return EINVAL;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) {
		return errno;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_port        = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		rv = errno;
		close(fd);
		return rv;
	}
	snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAccept: */*\r\n"
	    "Connection: close\r\n\r\n",
	    path, port);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		rv = errno != 0 ? errno : EIO;
		close(fd);
		return rv;
	}
	for (;;) {
		ssize_t n;
		if ((rv = wait_fd(fd, POLLIN, deadline)) != 0) {
			break;
		}
		if (len + 4096 + 1 > cap) {
			cap = cap == 0 ? 16384 : cap * 2;
			if ((buf = realloc(buf, cap)) == NULL) {
				rv = ENOMEM;
				break;
			}
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	if (rv != 0) {
		free(buf);
		return rv;
	}
	if (buf == NULL || len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) {
		free(buf);
		return EPROTO;
	}
	buf[len]    = '\0';
	res->status = atoi(buf + 9);
	if ((hdr_end = strstr(buf, "\r\n\r\n")) == NULL) {
		free(buf);
		return EPROTO;
	}
	for (const char *h = strstr(buf, "\r\n"); h != NULL && h < hdr_end;
	     h             = strstr(h + 2, "\r\n")) {
		if (strncasecmp(h + 2, "Content-Type:", 13) == 0) {
			const char *v = h + 15 + strspn(h + 15, " \t");
			size_t      n = strcspn(v, "\r");
			if (n >= sizeof(res->ctype)) {
				n = sizeof(res->ctype) - 1;
			}
			memcpy(res->ctype, v, n);
			res->ctype[n] = '\0';
		}
		if (strncasecmp(h + 2, "Content-Length:", 15) == 0 &&
		    (size_t)atol(h + 17) !=
		        len - (size_t)(hdr_end + 4 - buf)) {
			free(buf);
			return EPROTO;
		}
	}
	res->len  = len - (size_t)(hdr_end + 4 - buf);
	res->body = malloc(res->len + 1);
	if (res->body == NULL) {
		free(buf);
		return ENOMEM;
	}
	memcpy(res->body, hdr_end + 4, res->len);
	res->body[res->len] = '\0';
	free(buf);
	return 0;
}

void
dtxt_http_res_fini(dtxt_http_res *res)
{
	free(res->body);
	res->body = NULL;
}
