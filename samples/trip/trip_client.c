// SPDX-License-Identifier: MIT
//
// trip-client: books a trip, a flight then a hotel then a car, as one
// distributed transaction, with the typed client calls protoc-gen-dtx
// generated from trip.proto. As a saga (the default) each booking is made
// in turn, and a refused one cancels the ones before it, in reverse. As a
// 2PC transaction every booking is held, then all are confirmed together
// (or all released). The same Book methods (of kind BOTH) serve both.
// It prints the outcome and each booking the providers made, and exits 0
// when the transaction ran, whatever its outcome.
//
// Usage: trip-client --coordinator URL --flight URL --hotel URL --car URL
//            [--mode saga|2pc] [--traveller NAME] [--car-class CLASS]
//            [--tls DIR]   (tls+tcp:// URLs: samples/tls/make-certs.sh's
//                          certificates, service.crt and coordinator-ca.crt)

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <dtx/dtx.h>

#include "trip.dtx.h"

typedef struct args {
	const char *coordinator, *flight, *hotel, *car;
	dtx_mode    mode;
	const char *traveller;
	const char *car_class;
	const char *tls;
} args;

static int
parse_args(int argc, char **argv, args *a)
{
	*a = (args) {
	    .mode = DTX_SAGA, .traveller = "ada", .car_class = "compact"};
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *o = argv[i], *v = argv[i + 1];

		if (strcmp(o, "--coordinator") == 0) {
			a->coordinator = v;
		} else if (strcmp(o, "--flight") == 0) {
			a->flight = v;
		} else if (strcmp(o, "--hotel") == 0) {
			a->hotel = v;
		} else if (strcmp(o, "--car") == 0) {
			a->car = v;
		} else if (strcmp(o, "--mode") == 0) {
			a->mode = strcmp(v, "2pc") == 0 ? DTX_2PC : DTX_SAGA;
		} else if (strcmp(o, "--traveller") == 0) {
			a->traveller = v;
		} else if (strcmp(o, "--car-class") == 0) {
			a->car_class = v;
		} else if (strcmp(o, "--tls") == 0) {
			a->tls = v;
		} else {
			return -1;
		}
	}
	return (argc - 1) % 2 == 0 && a->coordinator != NULL &&
	        a->flight != NULL && a->hotel != NULL && a->car != NULL
	    ? 0
	    : -1;
}

static trip_BookRequest
request(const args *a, const char *what, uint32_t count)
{
	trip_BookRequest r = trip_BookRequest_init_zero;

	snprintf(r.traveller, sizeof(r.traveller), "%s", a->traveller);
	snprintf(r.what, sizeof(r.what), "%s", what);
	r.count = count;
	return r;
}

int
main(int argc, char **argv)
{
	static const char *const names[] = {"flight", "hotel", "car"};
	args                     a;
	dtx_client              *c  = NULL;
	dtx_tx                  *tx = NULL;
	trip_BookRequest         flight, hotel, car;
	dtx_state                outcome;
	uint32_t                 total = 0;
	char                     cert[4096], key[4096], ca[4096];
	dtx_tls_opts             topts = {
	                .cert_file = cert, .key_file = key, .ca_file = ca};
	int rv;

	if (parse_args(argc, argv, &a) != 0) {
		fprintf(stderr,
		    "usage: trip-client --coordinator URL --flight URL "
		    "--hotel "
		    "URL --car URL\n"
		    "           [--mode saga|2pc] [--traveller NAME] "
		    "[--car-class CLASS] [--tls DIR]\n");
		return 2;
	}
	flight = request(&a, "LIS-OSL", 1);
	hotel  = request(&a, "Hotel Bristol", 3);
	car    = request(&a, a.car_class, 3);
	if (a.tls != NULL) {
		snprintf(cert, sizeof(cert), "%s/service.crt", a.tls);
		snprintf(key, sizeof(key), "%s/service.key", a.tls);
		snprintf(ca, sizeof(ca), "%s/coordinator-ca.crt", a.tls);
	}
	if ((rv = a.tls != NULL
	            ? dtx_client_open_tls(&c, a.coordinator, &topts)
	            : dtx_client_open(&c, a.coordinator)) != 0 ||
	    (rv = dtx_tx_begin(&tx, c, a.mode)) != 0 ||
	    (rv = trip_Flights_Book_add(tx, a.flight, &flight)) != 0 ||
	    (rv = trip_Hotels_Book_add(tx, a.hotel, &hotel)) != 0 ||
	    (rv = trip_Cars_Book_add(tx, a.car, &car)) != 0 ||
	    (rv = dtx_tx_commit(tx, &outcome)) != 0) {
		fprintf(stderr, "trip-client: %s %s\n", dtx_strerror(rv),
		    tx != NULL ? dtx_tx_message(tx) : "");
		dtx_tx_free(tx);
		dtx_client_close(c);
		return 1;
	}
	printf("trip-client: %s trip for %s (%s car): %s\n",
	    dtx_mode_name(a.mode), a.traveller, a.car_class,
	    dtx_state_name(outcome));
	for (unsigned i = 0; i < 3; i++) {
		dtx_branch_result br;
		trip_Booking      b;
		bool              booked;

		if (dtx_tx_branch_result(tx, i, &br) != 0) {
			continue;
		}
		// The reply of the forward phase (prepare or execute), decoded
		// by the branch's own method.
		booked = (i == 0 && trip_Flights_Book_reply(tx, i, &b) == 0) ||
		    (i == 1 && trip_Hotels_Book_reply(tx, i, &b) == 0) ||
		    (i == 2 && trip_Cars_Book_reply(tx, i, &b) == 0);
		if (booked && outcome == DTX_STATE_COMMITTED) {
			printf("  %-6s booked %s, %" PRIu32 " EUR\n", names[i],
			    b.ref, b.price);
			total += b.price;
		} else if (booked) {
			printf("  %-6s booked %s, then %s: %s\n", names[i],
			    b.ref, dtx_phase_name(br.phase), br.message);
		} else {
			printf("  %-6s %s to %s%s%s\n", names[i],
			    dtx_branch_status_name(br.status),
			    dtx_phase_name(br.phase),
			    br.message[0] != '\0' ? ": " : "", br.message);
		}
	}
	if (outcome == DTX_STATE_COMMITTED) {
		printf("  total  %" PRIu32 " EUR\n", total);
	}
	dtx_tx_free(tx);
	dtx_client_close(c);
	return 0;
}
