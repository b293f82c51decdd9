// SPDX-License-Identifier: MIT
//
// agency: one service of the trip sample (trip.proto): a flight, hotel or
// car provider serving <Service>.Book through the typed callbacks
// protoc-gen-dtx generated. Book is of kind BOTH, so one set of callbacks
// serves sagas (execute books, compensate cancels) and 2PC transactions
// (prepare holds, commit confirms, abort releases). The car provider has
// no convertibles: booking one is refused, which is what turns the demo's
// saga back.
//
// The bookings are kept in memory, one per (gid, branch), so that every
// phase is idempotent (a redelivered call finds its booking and answers as
// before) and an abort or compensate of a booking never made does nothing.
// A real provider would keep them in its database, behind the barrier, as
// samples/orders does.
//
// Each callback prints one line, and appends it to --log when given: the
// three providers share that file, so it shows the order of the calls
// across processes (a saga's compensations in reverse).
//
// Usage: agency --service flight|hotel|car --listen URL [--log FILE]
//               [--tls DIR]
// With --tls, URL is tls+tcp:// and DIR holds samples/tls/make-certs.sh's
// certificates: the agency serves with service.crt and takes calls only
// from certificates of coordinator-ca.crt (dtxd's).

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dtx/dtx.h>

#include "trip.dtx.h"

typedef enum state {
	NONE = 0,
	HELD,      // prepared
	BOOKED,    // committed or executed
	RELEASED,  // aborted
	CANCELLED, // compensated
} state;

typedef struct booking {
	struct booking *next;
	char            gid[DTX_GID_MAX + 1];
	uint32_t        branch;
	state           st;
	trip_Booking    b;
} booking;

typedef struct agency {
	const char     *name;   // "flight", "hotel", "car"
	const char     *prefix; // of booking references: "FL"
	uint32_t        price;  // per seat, night or day
	int             logfd;  // -1: none
	pthread_mutex_t mu;     // guards bookings
	booking        *bookings;
} agency;

static void __attribute__((format(printf, 3, 4)))
story(agency *a, const dtx_call *call, const char *fmt, ...)
{
	char    what[256], line[400];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	n = snprintf(line, sizeof(line), "%s: [%.8s/%u] %s %s\n", a->name,
	    call->gid, (unsigned)call->branch_id, dtx_phase_name(call->phase),
	    what);
	fputs(line, stdout);
	if (a->logfd >= 0 && write(a->logfd, line, (size_t)n) != n) {
		perror("agency: log");
	}
}

// The booking of (gid, branch), made when create and absent. Called with
// a->mu held.
static booking *
find(agency *a, const dtx_call *call, bool create)
{
	booking *b;

	for (b = a->bookings; b != NULL; b = b->next) {
		if (b->branch == call->branch_id &&
		    strcmp(b->gid, call->gid) == 0) {
			return b;
		}
	}
	if (!create || (b = calloc(1, sizeof(*b))) == NULL) {
		return NULL;
	}
	snprintf(b->gid, sizeof(b->gid), "%s", call->gid);
	b->branch   = call->branch_id;
	b->next     = a->bookings;
	a->bookings = b;
	return b;
}

// prepare (holds) and execute (books): the same, but for the state.
static dtx_result
book(const dtx_call *call, const trip_BookRequest *req, trip_Booking *out,
    dtx_reply *reply, void *arg)
{
	agency    *a    = arg;
	state      want = call->phase == DTX_PHASE_PREPARE ? HELD : BOOKED;
	booking   *b;
	dtx_result res = DTX_OK;

	if (req->count == 0 || req->traveller[0] == '\0') {
		dtx_reply_set_message(reply, "no traveller, or a count of 0");
		return DTX_BAD_REQUEST;
	}
	if (strcmp(a->name, "car") == 0 &&
	    strcmp(req->what, "convertible") == 0) {
		story(a, call, "%s x%" PRIu32 " for %s -> refused: sold out",
		    req->what, req->count, req->traveller);
		dtx_reply_set_message(reply, "no convertible left");
		return DTX_REFUSED;
	}
	pthread_mutex_lock(&a->mu);
	if ((b = find(a, call, true)) == NULL) {
		res = DTX_RETRY;
	} else if (b->st == NONE) {
		b->st    = want;
		size_t g = strlen(call->gid);
		snprintf(b->b.ref, sizeof(b->b.ref), "%s-%s-%u", a->prefix,
		    call->gid + (g > 6 ? g - 6 : 0),
		    (unsigned)call->branch_id);
		b->b.price = a->price * req->count;
	} else if (b->st == RELEASED || b->st == CANCELLED) {
		// Its abort or compensation came first: too late to book.
		res = DTX_REFUSED;
	}
	if (res == DTX_OK) {
		*out = b->b;
	}
	pthread_mutex_unlock(&a->mu);
	if (res == DTX_OK) {
		story(a, call,
		    "%s x%" PRIu32 " for %s -> %s %s (%" PRIu32 " EUR)",
		    req->what, req->count, req->traveller,
		    want == HELD ? "held" : "booked", out->ref, out->price);
	} else {
		dtx_reply_set_message(reply,
		    res == DTX_RETRY ? "out of memory" : "cancelled already");
	}
	return res;
}

// commit, abort and compensate: moves a booking from from to to; a booking
// that is not there (never made) is left alone, and answered OK.
static dtx_result
settle(agency *a, const dtx_call *call, state from, state to, const char *did)
{
	booking *b;
	char     ref[sizeof(b->b.ref)] = "";
	bool     moved                 = false;

	pthread_mutex_lock(&a->mu);
	if ((b = find(a, call, to != BOOKED)) != NULL) {
		if (b->st == from) {
			b->st = to;
			moved = true;
		} else if (b->st == NONE) {
			b->st = to; // a late prepare or execute is refused
		}
		snprintf(ref, sizeof(ref), "%s", b->b.ref);
	}
	pthread_mutex_unlock(&a->mu);
	if (moved) {
		story(a, call, "%s -> %s", ref, did);
	} else {
		story(a, call, "nothing to do");
	}
	return DTX_OK;
}

static dtx_result
commit(const dtx_call *call, const trip_BookRequest *req, dtx_reply *reply,
    void *arg)
{
	(void)req;
	(void)reply;
	return settle(arg, call, HELD, BOOKED, "confirmed");
}

static dtx_result
abort_(const dtx_call *call, const trip_BookRequest *req, dtx_reply *reply,
    void *arg)
{
	(void)req;
	(void)reply;
	return settle(arg, call, HELD, RELEASED, "released");
}

static dtx_result
compensate(const dtx_call *call, const trip_BookRequest *req, dtx_reply *reply,
    void *arg)
{
	(void)req;
	(void)reply;
	return settle(arg, call, BOOKED, CANCELLED, "cancelled");
}

// Registers the provider's one service. The three Book methods have the
// same messages, so the same callbacks serve all of them.
static int
register_service(dtx_participant *p, agency *a)
{
	if (strcmp(a->name, "flight") == 0) {
		static const trip_Flights_service svc = {
		    .book = {.prepare = book,
		        .commit       = commit,
		        .abort        = abort_,
		        .execute      = book,
		        .compensate   = compensate}};
		return trip_Flights_register(p, &svc, a);
	}
	if (strcmp(a->name, "hotel") == 0) {
		static const trip_Hotels_service svc = {
		    .book = {.prepare = book,
		        .commit       = commit,
		        .abort        = abort_,
		        .execute      = book,
		        .compensate   = compensate}};
		return trip_Hotels_register(p, &svc, a);
	}
	static const trip_Cars_service svc = {.book = {.prepare = book,
	                                          .commit       = commit,
	                                          .abort        = abort_,
	                                          .execute      = book,
	                                          .compensate   = compensate}};
	return trip_Cars_register(p, &svc, a);
}

int
main(int argc, char **argv)
{
	agency       a   = {.logfd = -1};
	const char  *url = NULL, *log = NULL, *tls = NULL;
	char         cert[4096], key[4096], ca[4096];
	dtx_tls_opts topts = {
	    .cert_file = cert, .key_file = key, .ca_file = ca};
	dtx_participant *p = NULL;
	sigset_t         stop;
	int              rv, sig;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--service") == 0) {
			a.name = argv[i + 1];
		} else if (strcmp(argv[i], "--listen") == 0) {
			url = argv[i + 1];
		} else if (strcmp(argv[i], "--log") == 0) {
			log = argv[i + 1];
		} else if (strcmp(argv[i], "--tls") == 0) {
			tls = argv[i + 1];
		}
	}
	if (a.name != NULL && strcmp(a.name, "flight") == 0) {
		a.prefix = "FL";
		a.price  = 120;
	} else if (a.name != NULL && strcmp(a.name, "hotel") == 0) {
		a.prefix = "HT";
		a.price  = 90;
	} else if (a.name != NULL && strcmp(a.name, "car") == 0) {
		a.prefix = "CR";
		a.price  = 40;
	}
	if (a.prefix == NULL || url == NULL || (argc - 1) % 2 != 0) {
		fprintf(stderr,
		    "usage: agency --service flight|hotel|car "
		    "--listen URL [--log FILE] [--tls DIR]\n");
		return 2;
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (log != NULL &&
	    (a.logfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0) {
		perror(log);
		return 1;
	}
	pthread_mutex_init(&a.mu, NULL);
	if (tls != NULL) {
		snprintf(cert, sizeof(cert), "%s/service.crt", tls);
		snprintf(key, sizeof(key), "%s/service.key", tls);
		snprintf(ca, sizeof(ca), "%s/coordinator-ca.crt", tls);
	}
	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (rv = register_service(p, &a)) != 0 ||
	    (tls != NULL && (rv = dtx_participant_set_tls(p, &topts)) != 0) ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(stderr, "%s: %s %s\n", a.name, dtx_strerror(rv),
		    dtx_participant_message(p));
		rv = 1;
	} else {
		printf("%s: serving Book on %s\n", a.name, url);
		sigwait(&stop, &sig);
		rv = 0;
	}
	dtx_participant_close(p);
	while (a.bookings != NULL) {
		booking *b = a.bookings;
		a.bookings = b->next;
		free(b);
	}
	pthread_mutex_destroy(&a.mu);
	if (a.logfd >= 0) {
		close(a.logfd);
	}
	return rv;
}
