// SPDX-License-Identifier: MIT
//
// loopback_port: a free port below the ephemeral range (see loopback_port.h).

#include "loopback_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "random.h"

// Ports 20000..32767: above the well-known and registered ports services
// commonly listen on, below Linux's default ephemeral range.
enum { PORT_LO = 20000, PORT_HI = 32767, TRIES = 256 };

static pthread_mutex_t given_mtx = PTHREAD_MUTEX_INITIALIZER;
static uint8_t         given[(PORT_HI - PORT_LO + 1 + 7) / 8];

static bool
bindable(int port)
{
	struct sockaddr_in sa;
	int                fd = socket(AF_INET, SOCK_STREAM, 0);
	bool               ok;

	if (fd < 0) {
		return false;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family      = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port        = htons((uint16_t)port);
	ok                 = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

int
dtxi_loopback_port(void)
{
	int port = -1;

	pthread_mutex_lock(&given_mtx);
	for (int i = 0; i < TRIES && port < 0; i++) {
		uint32_t r;
		dtxi_random(&r, sizeof(r));
		int      cand = PORT_LO + (int)(r % (PORT_HI - PORT_LO + 1));
		unsigned bit  = (unsigned)(cand - PORT_LO);
		if ((given[bit / 8] & (1u << (bit % 8))) != 0 ||
		    !bindable(cand)) {
			continue;
		}
		given[bit / 8] |= (uint8_t)(1u << (bit % 8));
		port = cand;
	}
	pthread_mutex_unlock(&given_mtx);
	return port;
}
