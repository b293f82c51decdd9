// SPDX-License-Identifier: MIT
//
// dtx.samples.trip: the trip sample (samples/trip) against a real dtxd: three
// agency processes (flight, hotel, car) and trip-client. A saga books all
// three; a saga whose car is refused cancels the hotel and then the flight,
// in that order (the agencies append to one call log); and the same Book
// methods, of kind BOTH, serve a 2PC trip whose typed bookings the client
// decodes after the commit. CTest gives the programs in DTX_TRIP_AGENCY_BIN
// and DTX_TRIP_CLIENT_BIN.

#include "world_suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char calls[DTXT_PATH_MAX];
static char urls[3][DTXT_URL_MAX];

static const char *
bin(const char *name)
{
	const char *v = getenv(name);

	cr_assert(v != NULL, "%s is not set (run under CTest)", name);
	return v;
}

static void
setup(void)
{
	static const char *const services[] = {"flight", "hotel", "car"};

	world_setup();
	cr_assert_eq(
	    dtxt_world_start_dtxd(&w, NULL), 0, "dtxd: see %s", w.log);
	snprintf(calls, sizeof(calls), "%s/agencies.calls", w.dir);
	for (int i = 0; i < 3; i++) {
		char       out[DTXT_PATH_MAX];
		dtxt_proc *p;

		cr_assert_eq(dtxt_free_url(urls[i], sizeof(urls[i])), 0);
		snprintf(out, sizeof(out), "%s/%s.out", w.dir, services[i]);
		{
			char *const argv[] = {
			    (char *)bin("DTX_TRIP_AGENCY_BIN"), "--service",
			    (char *)services[i], "--listen", urls[i], "--log",
			    calls, NULL};
			p = dtxt_spawn(services[i], argv, NULL, out);
		}
		cr_assert(p != NULL);
		cr_assert_eq(dtxt_wait_tcp(p, urls[i], 5000), 0,
		    "%s did not start:\n%s", services[i], dtxt_read_file(out));
	}
}

TestSuite(trip, .init = setup, .fini = world_teardown, .timeout = 120);

// Runs trip-client with mode and car class; returns its output.
static char *
trip(const char *mode, const char *traveller, const char *car)
{
	static int n;
	char       out[DTXT_PATH_MAX];
	dtxt_proc *p;
	dtxt_exit  how;

	snprintf(out, sizeof(out), "%s/client-%d.out", w.dir, ++n);
	{
		char *const argv[] = {(char *)bin("DTX_TRIP_CLIENT_BIN"),
		    "--coordinator", w.url, "--flight", urls[0], "--hotel",
		    urls[1], "--car", urls[2], "--mode", (char *)mode,
		    "--traveller", (char *)traveller, "--car-class",
		    (char *)car, NULL};
		p = dtxt_spawn("trip-client", argv, NULL, out);
	}
	CHECK(p != NULL, "cannot start trip-client");
	CHECK(dtxt_wait(p, 30000, &how) == 0 && how.exited && how.code == 0,
	    "trip-client failed:\n%s", dtxt_read_file(out));
	return dtxt_read_file(out);
}

static void
has(const char *text, const char *want)
{
	CHECK(strstr(text, want) != NULL, "no \"%s\" in:\n%s", want, text);
}

Test(trip, a_saga_books_the_flight_the_hotel_and_the_car)
{
	char *out = trip("saga", "ada", "compact");

	has(out, "saga trip for ada (compact car): COMMITTED");
	has(out, "flight booked FL-");
	has(out, "hotel  booked HT-");
	has(out, "car    booked CR-");
	has(out, "total  510 EUR");
	free(out);
}

Test(trip, a_refused_car_cancels_the_hotel_then_the_flight)
{
	char *out = trip("saga", "bob", "convertible");
	char *log;
	char *car, *hotel, *flight;

	has(out, "saga trip for bob (convertible car): COMPENSATED");
	// The typed bookings made before the refusal are still readable.
	has(out, "flight booked FL-");
	has(out, "then COMPENSATE");
	free(out);
	log    = dtxt_read_file(calls);
	car    = strstr(log, "refused: sold out");
	hotel  = strstr(log, "COMPENSATE HT-");
	flight = strstr(log, "COMPENSATE FL-");
	CHECK(car != NULL && hotel != NULL && flight != NULL && car < hotel &&
	        hotel < flight,
	    "not refused, then hotel, then flight cancelled:\n%s", log);
	free(log);
}

Test(trip, the_same_book_methods_serve_a_2pc_trip)
{
	char *out = trip("2pc", "cy", "compact");
	char *log;

	has(out, "2pc trip for cy (compact car): COMMITTED");
	// Read after the commit: the holds' typed replies, kept by dtxd.
	has(out, "flight booked FL-");
	has(out, "car    booked CR-");
	has(out, "total  510 EUR");
	free(out);
	log = dtxt_read_file(calls);
	has(log, "PREPARE LIS-OSL x1 for cy -> held");
	has(log, "COMMIT FL-");
	free(log);
}
