// SPDX-License-Identifier: MIT
//
// order-client: places one order as a distributed transaction. In 2PC mode
// the inventory's Reserve and the order service's Create are prepared in
// parallel and committed together. In saga mode Create runs first and
// Reserve second, so a Reserve that is refused (out of stock) compensates
// the order that was already confirmed. It prints the outcome and what each
// branch answered last, and exits 0 when the transaction ran, whatever its
// outcome: a refused order is a correct answer, not an error.

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dtx/dtx.h>

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
	const char *qty;
	const char *order_id;
	long        wait_ms;
} args;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: order-client --coordinator URL --order URL --inventory "
	    "URL\n"
	    "           --mode 2pc|saga --sku SKU --qty N [--order-id ID]\n"
	    "           [--wait-ms N]   (wait for the coordinator, default "
	    "10000)\n");
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
			a->qty = val;
		} else if (strcmp(opt, "--order-id") == 0) {
			a->order_id = val;
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
	    a->qty == NULL) {
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

// Prints a reply payload as text when it is printable, else as its size:
// the samples' payloads are text, but a branch result may come from anyone.
static void
print_payload(const void *data, size_t len)
{
	const unsigned char *p = data;

	if (len == 0) {
		return;
	}
	for (size_t i = 0; i < len; i++) {
		if (p[i] < 0x20 || p[i] >= 0x7f) {
			printf("      payload: (%zu bytes of binary)\n", len);
			return;
		}
	}
	printf("      payload: %.*s\n", (int)len, (const char *)data);
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
		print_payload(br.payload, br.payload_len);
	}
}

int
main(int argc, char **argv)
{
	args        a;
	dtx_client *c  = NULL;
	dtx_tx     *tx = NULL;
	dtx_state   outcome;
	char        order_id[DTX_GID_MAX + 8];
	char        reserve[256], create[256 + sizeof(order_id)];
	const char *names[2];
	int         rv;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (parse_args(argc, argv, &a) != 0) {
		usage();
		return EXIT_USAGE;
	}
	if ((rv = dtx_client_open(&c, a.coordinator)) != 0) {
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
	// the two are easy to match in the services' output.
	if (a.order_id != NULL) {
		snprintf(order_id, sizeof(order_id), "%s", a.order_id);
	} else {
		snprintf(order_id, sizeof(order_id), "o-%.8s", dtx_tx_gid(tx));
	}
	// The services check these payloads strictly; they are not
	// validated here so that a bad --sku shows the participant's answer.
	snprintf(reserve, sizeof(reserve), "sku=%s;qty=%s", a.sku, a.qty);
	snprintf(create, sizeof(create), "order=%s;sku=%s;qty=%s", order_id,
	    a.sku, a.qty);
	if (a.mode == DTX_2PC) {
		names[0] = "inventory.Reserve";
		names[1] = "order.Create";
		if ((rv = dtx_tx_add(tx, a.inventory_url, "Reserve", reserve,
		         strlen(reserve))) != 0 ||
		    (rv = dtx_tx_add(tx, a.order_url, "Create", create,
		         strlen(create))) != 0) {
			goto fail;
		}
	} else {
		// The order first: if the stock is missing, the saga turns
		// back and cancels it, which is the case sagas are for.
		names[0] = "order.Create";
		names[1] = "inventory.Reserve";
		if ((rv = dtx_tx_add(tx, a.order_url, "Create", create,
		         strlen(create))) != 0 ||
		    (rv = dtx_tx_add(tx, a.inventory_url, "Reserve", reserve,
		         strlen(reserve))) != 0) {
			goto fail;
		}
	}
	printf("order-client: %s order %s: %s x%s (tx %s)\n",
	    dtx_mode_name(a.mode), order_id, a.sku, a.qty, dtx_tx_gid(tx));
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
