// SPDX-License-Identifier: MIT
//
// greeter: a program built outside the dtx tree against the installed SDK,
// once with find_package(dtx) + dtx_add_service() (CMakeLists.txt) and once
// with pkg-config (Makefile); tests/consumer runs both against a real dtxd.
//
//   greeter serve URL                        a participant of hello.Greeter
//   greeter call COORDINATOR URL MODE NAME... greets every NAME in one
//                                            transaction (MODE 2pc or saga)
//
// "call" prints the outcome and, for each branch, the greeting it got back.

#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <dtx/dtx.h>

#include "hello.dtx.h"

static dtx_result
hello_forward(const dtx_call *call, const hello_Greet *req,
    hello_Greeting *out, dtx_reply *reply, void *arg)
{
	(void)arg;
	printf("greeter: %s %s\n", dtx_phase_name(call->phase), req->name);
	if (strcmp(req->name, "nobody") == 0) {
		dtx_reply_set_message(reply, "nobody is not greeted");
		return DTX_REFUSED;
	}
	snprintf(out->text, sizeof(out->text), "hello, %s", req->name);
	return DTX_OK;
}

static dtx_result
hello_settle(
    const dtx_call *call, const hello_Greet *req, dtx_reply *reply, void *arg)
{
	(void)reply;
	(void)arg;
	printf("greeter: %s %s\n", dtx_phase_name(call->phase), req->name);
	return DTX_OK;
}

static int
serve(const char *url)
{
	static const hello_Greeter_service svc = {
	    .hello =
	        {
	            .prepare    = hello_forward,
	            .commit     = hello_settle,
	            .abort      = hello_settle,
	            .execute    = hello_forward,
	            .compensate = hello_settle,
	        },
	};
	dtx_participant *p = NULL;
	sigset_t         stop;
	int              rv, sig;

	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (rv = hello_Greeter_register(p, &svc, NULL)) != 0 ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(stderr, "greeter: %s (%s)\n", dtx_strerror(rv),
		    dtx_participant_message(p));
		dtx_participant_close(p);
		return 1;
	}
	printf("greeter: serving %s\n", url);
	sigwait(&stop, &sig);
	dtx_participant_close(p);
	return 0;
}

static int
call(const char *coord, const char *url, const char *mode, int n, char **names)
{
	dtx_client *c  = NULL;
	dtx_tx     *tx = NULL;
	dtx_state   outcome;
	int         rv;

	if ((rv = dtx_client_open(&c, coord)) != 0 ||
	    (rv = dtx_tx_begin(&tx, c,
	         strcmp(mode, "saga") == 0 ? DTX_SAGA : DTX_2PC)) != 0) {
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		hello_Greet req = hello_Greet_init_zero;

		snprintf(req.name, sizeof(req.name), "%s", names[i]);
		if ((rv = hello_Greeter_Hello_add(tx, url, &req)) != 0) {
			goto fail;
		}
	}
	if ((rv = dtx_tx_commit(tx, &outcome)) != 0) {
		goto fail;
	}
	printf("outcome %s\n", dtx_state_name(outcome));
	for (int i = 0; i < n; i++) {
		hello_Greeting g;

		if ((rv = hello_Greeter_Hello_reply(tx, (unsigned)i, &g)) ==
		    0) {
			printf("branch %d: %s\n", i, g.text);
		} else {
			printf("branch %d: no greeting (%s)\n", i,
			    dtx_strerror(rv));
		}
	}
	dtx_tx_free(tx);
	dtx_client_close(c);
	return 0;

fail:
	fprintf(stderr, "greeter: %s (%s)\n", dtx_strerror(rv),
	    tx != NULL ? dtx_tx_message(tx) : "");
	dtx_tx_free(tx);
	dtx_client_close(c);
	return 1;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "serve") == 0) {
		return serve(argv[2]);
	}
	if (argc >= 6 && strcmp(argv[1], "call") == 0) {
		return call(argv[2], argv[3], argv[4], argc - 5, argv + 5);
	}
	fprintf(stderr,
	    "usage: greeter serve URL | greeter call COORDINATOR "
	    "URL 2pc|saga NAME...\n");
	return 2;
}
