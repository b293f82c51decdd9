// SPDX-License-Identifier: MIT
//
// order-client: places one order as a distributed transaction, with the
// typed client calls protoc-gen-dtx generated from orders.proto. In 2PC
// mode the inventory's Reserve and the order service's Create are prepared
// in parallel and committed together. In saga mode Create runs first and
// Reserve second, so a Reserve that is refused (out of stock) compensates
// the order that was already confirmed. It prints the outcome, what each
// branch answered last and the typed reply of its forward phase, and exits
// 0 when the transaction ran, whatever its outcome: a refused order is a
// correct answer, not an error.

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dtx/dtx.h>

#include "orders.dtx.h"
#include "service.h"

enum {
	EXIT_USAGE = 2,
	// How long to keep asking a coordinator that is not up yet, and how
	// long one probe may take: the demo starts dtxd and this client at
	// nearly the same moment.
	PROBE_MS = 1000,
	POLL_MS  = 100,
};

typedef struct args {
	const char *coordinator;
	const char *order_url;
	const char *inventory_url;
	dtx_mode    mode;
	const char *sku;
	uint32_t    qty;
	const char *order_id;
	long        wait_ms;
	const char *tls_dir;
} args;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: order-client --coordinator URL --order URL --inventory "
	    "URL\n"
	    "           --mode 2pc|saga --sku SKU --qty N [--order-id ID]\n"
	    "           [--wait-ms N]   (wait for the coordinator, default "
	    "10000)\n"
	    "           [--tls DIR]     (tls+tcp:// URLs: certificates made "
	    "by samples/tls/make-certs.sh)\n");
}

static int
parse_args(int argc, char **argv, args *a)
{
	memset(a, 0, sizeof(*a));
	a->wait_ms = 10000;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (val == NULL) {
			return -1;
		}
		i++;
		if (strcmp(opt, "--coordinator") == 0) {
			a->coordinator = val;
		} else if (strcmp(opt, "--order") == 0) {
			a->order_url = val;
		} else if (strcmp(opt, "--inventory") == 0) {
			a->inventory_url = val;
		} else if (strcmp(opt, "--mode") == 0) {
			if (strcmp(val, "2pc") == 0) {
				a->mode = DTX_2PC;
			} else if (strcmp(val, "saga") == 0) {
				a->mode = DTX_SAGA;
			} else {
				return -1;
			}
		} else if (strcmp(opt, "--sku") == 0) {
			a->sku = val;
		} else if (strcmp(opt, "--qty") == 0) {
			char         *end;
			unsigned long n = strtoul(val, &end, 10);
			if (*val < '0' || *val > '9' || *end != '\0' ||
			    n > UINT32_MAX) {
				return -1;
			}
			a->qty = (uint32_t)n;
		} else if (strcmp(opt, "--order-id") == 0) {
			a->order_id = val;
		} else if (strcmp(opt, "--tls") == 0) {
			a->tls_dir = val;
		} else if (strcmp(opt, "--wait-ms") == 0) {
			char *end;
			a->wait_ms = strtol(val, &end, 10);
			if (*end != '\0' || a->wait_ms < 0) {
				return -1;
			}
		} else {
			return -1;
		}
	}
	if (a->coordinator == NULL || a->order_url == NULL ||
	    a->inventory_url == NULL || a->mode == 0 || a->sku == NULL ||
	    a->qty == 0) {
		return -1;
	}
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

// Waits until the coordinator answers. Resolve of a gid nobody uses is the
// cheapest harmless question (the answer is "aborted": presumed abort).
static int
wait_coordinator(dtx_client *c, long wait_ms)
{
	struct timespec start, now;
	dtx_state       st;
	int             rv;

	clock_gettime(CLOCK_MONOTONIC, &start);
	dtx_client_set_timeout_ms(c, PROBE_MS);
	for (;;) {
		long waited;

		if ((rv = dtx_client_resolve(c, "order-client-probe", &st)) ==
		    0) {
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		waited = (now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= wait_ms) {
			break;
		}
		sleep_ms(POLL_MS);
	}
	dtx_client_set_timeout_ms(c, 10000);
	return rv;
}

// Prints the typed reply branch i sent from its forward phase (prepare or
// execute), when there is one to decode.
static void
print_reply(const dtx_tx *tx, unsigned i)
{
	const char *m = dtx_tx_branch_method(tx, i);

	if (m != NULL && strcmp(m, orders_Inventory_Reserve_METHOD) == 0) {
		orders_ReserveReply r;
		if (orders_Inventory_Reserve_reply(tx, i, &r) == 0) {
			printf("      reply: sku=%s qty=%" PRIu32
			       " stock=%" PRIu32 "\n",
			    r.sku, r.qty, r.stock);
		}
	} else if (m != NULL && strcmp(m, orders_Orders_Create_METHOD) == 0) {
		orders_CreateReply r;
		if (orders_Orders_Create_reply(tx, i, &r) == 0) {
			printf("      reply: order=%s status=%s\n", r.order,
			    r.status == orders_OrderStatus_PENDING ? "PENDING"
			        : r.status == orders_OrderStatus_CONFIRMED
			        ? "CONFIRMED"
			        : "CANCELLED");
		}
	}
}

static void
print_branches(const dtx_tx *tx, const char *const *names)
{
	unsigned n = dtx_tx_branch_count(tx);

	for (unsigned i = 0; i < n; i++) {
		dtx_branch_result br;

		if (dtx_tx_branch_result(tx, i, &br) != 0) {
			continue;
		}
		if (br.status == DTX_BRANCH_NONE) {
			printf("  [%u] %-17s no reply yet\n", i, names[i]);
			continue;
		}
		printf("  [%u] %-17s %s to %s (%u call%s)\n", i, names[i],
		    dtx_branch_status_name(br.status),
		    dtx_phase_name(br.phase), (unsigned)br.attempts,
		    br.attempts == 1 ? "" : "s");
		if (br.message != NULL && br.message[0] != '\0') {
			printf("      message: %s\n", br.message);
		}
		print_reply(tx, i);
	}
}

int
main(int argc, char **argv)
{
	args                  a;
	dtx_client           *c  = NULL;
	dtx_tx               *tx = NULL;
	dtx_state             outcome;
	orders_ReserveRequest reserve = orders_ReserveRequest_init_zero;
	orders_CreateRequest  create  = orders_CreateRequest_init_zero;
	const char           *names[2];
	orders_tls            tls;
	int                   rv;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_args(argc, argv, &a) != 0) {
		usage();
		return EXIT_USAGE;
	}
	if (a.tls_dir != NULL) {
		orders_tls_init(&tls, a.tls_dir);
	}
	rv = a.tls_dir != NULL
	    ? dtx_client_open_tls(&c, a.coordinator, &tls.opts)
	    : dtx_client_open(&c, a.coordinator);
	if (rv != 0) {
		fprintf(stderr, "order-client: cannot open client of %s: %s\n",
		    a.coordinator, dtx_strerror(rv));
		return 1;
	}
	if ((rv = wait_coordinator(c, a.wait_ms)) != 0) {
		fprintf(stderr,
		    "order-client: coordinator %s not answering: %s\n",
		    a.coordinator, dtx_strerror(rv));
		goto fail;
	}
	if ((rv = dtx_tx_begin(&tx, c, a.mode)) != 0) {
		goto fail;
	}
	// Without --order-id the order is named after the transaction, so
	// the two are easy to match in the services' output. The services
	// check the names; they are not checked here, so that a bad --sku
	// shows the participant's answer.
	if (a.order_id != NULL) {
		snprintf(create.order, sizeof(create.order), "%s", a.order_id);
	} else {
		snprintf(create.order, sizeof(create.order), "o-%.8s",
		    dtx_tx_gid(tx));
	}
	if (strlen(a.sku) >= sizeof(reserve.sku) ||
	    (a.order_id != NULL &&
	        strlen(a.order_id) >= sizeof(create.order))) {
		fprintf(stderr,
		    "order-client: --sku and --order-id are at most "
		    "%zu bytes\n",
		    sizeof(reserve.sku) - 1);
		rv = DTX_EINVAL;
		goto fail;
	}
	snprintf(reserve.sku, sizeof(reserve.sku), "%s", a.sku);
	reserve.qty = a.qty;
	snprintf(create.sku, sizeof(create.sku), "%s", a.sku);
	create.qty = a.qty;
	if (a.mode == DTX_2PC) {
		names[0] = "inventory.Reserve";
		names[1] = "order.Create";
		if ((rv = orders_Inventory_Reserve_add(
		         tx, a.inventory_url, &reserve)) != 0 ||
		    (rv = orders_Orders_Create_add(
		         tx, a.order_url, &create)) != 0) {
			goto fail;
		}
	} else {
		// The order first: if the stock is missing, the saga turns
		// back and cancels it, which is the case sagas are for.
		names[0] = "order.Create";
		names[1] = "inventory.Reserve";
		if ((rv = orders_Orders_Create_add(
		         tx, a.order_url, &create)) != 0 ||
		    (rv = orders_Inventory_Reserve_add(
		         tx, a.inventory_url, &reserve)) != 0) {
			goto fail;
		}
	}
	printf("order-client: %s order %s: %s x%" PRIu32 " (tx %s)\n",
	    dtx_mode_name(a.mode), create.order, a.sku, a.qty, dtx_tx_gid(tx));
	if ((rv = dtx_tx_commit(tx, &outcome)) != 0) {
		goto fail;
	}
	printf("order-client: outcome: %s%s\n", dtx_state_name(outcome),
	    dtx_tx_stuck(tx) ? " (STUCK)" : "");
	print_branches(tx, names);
	dtx_tx_free(tx);
	dtx_client_close(c);
	return 0;

fail:
	fprintf(stderr, "order-client: error: %s", dtx_strerror(rv));
	if (tx != NULL && dtx_tx_message(tx)[0] != '\0') {
		fprintf(stderr, " (%s)", dtx_tx_message(tx));
	}
	fprintf(stderr, "\n");
	dtx_tx_free(tx);
	dtx_client_close(c);
	return 1;
}
