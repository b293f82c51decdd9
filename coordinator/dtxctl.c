// SPDX-License-Identifier: MIT
//
// dtxctl: the operator's view of a running dtxd, built on the public client
// API like any other user of libdtx. It shows one transaction (with every
// branch's last answer), lists transactions by state, and asks for an abort
// or an outcome the way a participant would.

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <dtx/dtx.h>

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: dtxctl [--coordinator URL] [--timeout-ms N]\n"
	    "              [--tls-cert FILE --tls-key FILE --tls-ca FILE\n"
	    "               [--tls-server-name NAME]] COMMAND\n"
	    "  status GID [--wait-ms N]   show a transaction and its "
	    "branches\n"
	    "  list [STATE]               list transactions (STATE e.g. "
	    "COMMITTING)\n"
	    "  abort GID                  abort a 2PC still preparing / "
	    "compensate a saga\n"
	    "  resolve GID                the outcome a participant would be "
	    "told\n"
	    "  stats                      the coordinator's counters\n"
	    "The coordinator defaults to $DTX_COORDINATOR or "
	    "tcp://127.0.0.1:7800.\n"
	    "list and abort are operator commands: a dtxd with TLS or with "
	    "--operator-listen\n"
	    "takes them only there (a tls+tcp:// one needs an operator "
	    "certificate: --tls-*).\n");
}

static int
state_by_name(const char *name)
{
	for (int s = DTX_STATE_PREPARING; s <= DTX_STATE_COMPENSATED; s++) {
		if (strcasecmp(name, dtx_state_name(s)) == 0) {
			return s;
		}
	}
	return -1;
}

static void
print_tx(dtx_tx *tx, dtx_state st)
{
	printf("%s %s%s\n", dtx_tx_gid(tx), dtx_state_name(st),
	    dtx_tx_stuck(tx) ? " STUCK" : "");
	for (unsigned i = 0; i < dtx_tx_branch_count(tx); i++) {
		dtx_branch_result r;
		if (dtx_tx_branch_result(tx, i, &r) != 0) {
			continue;
		}
		printf("  branch %u: %s %s attempts=%u", i,
		    dtx_phase_name(r.phase), dtx_branch_status_name(r.status),
		    r.attempts);
		if (r.message != NULL && r.message[0] != '\0') {
			printf(" \"%s\"", r.message);
		}
		if (r.payload_len > 0) {
			printf(" payload=%zu bytes", r.payload_len);
		}
		printf("\n");
	}
}

static int
cmd_status(dtx_client *c, const char *gid, int32_t wait_ms)
{
	dtx_tx   *tx;
	dtx_state st;
	int       rv;

	if ((rv = dtx_tx_attach(&tx, c, gid)) != 0) {
		return rv;
	}
	rv = wait_ms > 0 ? dtx_tx_wait(tx, wait_ms, &st)
	                 : dtx_tx_status(tx, &st);
	if (rv == DTX_ETIMEDOUT && wait_ms > 0) {
		rv = dtx_tx_status(tx, &st);
	}
	if (rv == 0) {
		print_tx(tx, st);
	} else if (dtx_tx_message(tx)[0] != '\0') {
		fprintf(stderr, "dtxctl: %s\n", dtx_tx_message(tx));
	}
	dtx_tx_free(tx);
	return rv;
}

static int
cmd_list(dtx_client *c, int filter)
{
	static dtx_tx_info items[100];
	char               cursor[DTX_GID_MAX + 1] = "";
	char               next[DTX_GID_MAX + 1];
	unsigned           n;
	unsigned long      total = 0;
	int                rv;

	do {
		rv = dtx_client_list(c, filter, cursor, items, 100, &n, next);
		if (rv != 0) {
			return rv;
		}
		for (unsigned i = 0; i < n; i++) {
			printf("%-40s %-4s %-12s%s branches=%u\n",
			    items[i].gid, dtx_mode_name(items[i].mode),
			    dtx_state_name(items[i].state),
			    items[i].stuck ? " STUCK" : "",
			    items[i].branch_count);
		}
		total += n;
		memcpy(cursor, next, sizeof(cursor));
	} while (cursor[0] != '\0');
	printf("%lu transactions\n", total);
	return 0;
}

int
main(int argc, char **argv)
{
	const char  *url     = getenv("DTX_COORDINATOR");
	dtx_tls_opts tls     = {0};
	long         timeout = 5000;
	int32_t      wait_ms = 0;
	dtx_client  *c;
	dtx_state    st;
	int          i = 1;
	int          rv;

	if (url == NULL) {
		url = "tcp://127.0.0.1:7800";
	}
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--coordinator") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (strcmp(argv[i], "--timeout-ms") == 0 &&
		    i + 1 < argc) {
			timeout = strtol(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--tls-cert") == 0 &&
		    i + 1 < argc) {
			tls.cert_file = argv[++i];
		} else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
			tls.key_file = argv[++i];
		} else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc) {
			tls.ca_file = argv[++i];
		} else if (strcmp(argv[i], "--tls-server-name") == 0 &&
		    i + 1 < argc) {
			tls.server_name = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc || timeout <= 0) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[i++];
	const char *arg = i < argc ? argv[i++] : NULL;
	if (i + 1 < argc && strcmp(argv[i], "--wait-ms") == 0) {
		wait_ms = (int32_t)strtol(argv[i + 1], NULL, 10);
		i += 2;
	}
	if (i < argc) {
		usage(stderr);
		return 2;
	}
	rv = tls.ca_file != NULL || tls.cert_file != NULL ||
	        tls.key_file != NULL || tls.server_name != NULL
	    ? dtx_client_open_tls(&c, url, &tls)
	    : dtx_client_open(&c, url);
	if (rv != 0) {
		fprintf(stderr, "dtxctl: %s: %s\n", url, dtx_strerror(rv));
		return 1;
	}
	dtx_client_set_timeout_ms(c, (int32_t)timeout);
	if (strcmp(cmd, "status") == 0 && arg != NULL) {
		rv = cmd_status(c, arg, wait_ms);
	} else if (strcmp(cmd, "list") == 0) {
		int filter = arg != NULL ? state_by_name(arg) : 0;
		if (filter < 0) {
			fprintf(stderr, "dtxctl: unknown state '%s'\n", arg);
			dtx_client_close(c);
			return 2;
		}
		rv = cmd_list(c, filter);
	} else if (strcmp(cmd, "abort") == 0 && arg != NULL) {
		if ((rv = dtx_client_abort(c, arg, &st)) == 0) {
			printf("%s %s\n", arg, dtx_state_name(st));
		}
	} else if (strcmp(cmd, "stats") == 0 && arg == NULL) {
		dtx_coordinator_stats s;
		if ((rv = dtx_client_stats(c, &s)) == 0) {
			printf("active %llu\nstarted %llu\nfinished %llu\n"
			       "recovered %llu\nstore_writes %llu\n"
			       "store_batches %llu\nstore_syncs %llu\n"
			       "store_errors %llu\nuptime_ms %llu\n"
			       "branch_calls %llu\ncall_messages %llu\n",
			    (unsigned long long)s.active,
			    (unsigned long long)s.started,
			    (unsigned long long)s.finished,
			    (unsigned long long)s.recovered,
			    (unsigned long long)s.store_writes,
			    (unsigned long long)s.store_batches,
			    (unsigned long long)s.store_syncs,
			    (unsigned long long)s.store_errors,
			    (unsigned long long)s.uptime_ms,
			    (unsigned long long)s.branch_calls,
			    (unsigned long long)s.call_messages);
		}
	} else if (strcmp(cmd, "resolve") == 0 && arg != NULL) {
		if ((rv = dtx_client_resolve(c, arg, &st)) == 0) {
			printf("%s %s\n", arg, dtx_state_name(st));
		}
	} else {
		usage(stderr);
		dtx_client_close(c);
		return 2;
	}
	if (rv != 0) {
		fprintf(stderr, "dtxctl: %s: %s\n", cmd, dtx_strerror(rv));
	}
	if (rv == DTX_EPERM) {
		fprintf(stderr,
		    "dtxctl: %s is an operator command: send it to dtxd's "
		    "operator listener (--operator-listen)\n",
		    cmd);
	}
	dtx_client_close(c);
	return rv == 0 ? 0 : 1;
}
