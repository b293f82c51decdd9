// SPDX-License-Identifier: MIT
//
// dtxctl: the operator's command line for a running dtxd, built on the
// public client API like any other user of libdtx. It shows one
// transaction (with every branch's last answer), lists transactions by
// state or the STUCK ones, aborts, re-drives (retry) and settles a branch
// by hand, asks for an outcome the way a participant would, and prints the
// coordinator's counters; as text for eyes or, with --json, one JSON
// object per command for scripts. The exit status says what happened (see
// usage() and the README): scripts can tell "no such transaction" from
// "not now" from "dtxd is down".

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <dtx/dtx.h>

// Exit statuses.
enum {
	EXIT_OK          = 0,
	EXIT_FAILED      = 1, // the coordinator refused or failed the request
	EXIT_USAGE       = 2, // bad command line
	EXIT_UNREACHABLE = 3, // no connection to dtxd, or no answer in time
	EXIT_NOTFOUND    = 4, // no such transaction
	EXIT_STATE       = 5, // not allowed in the transaction's state
};

typedef struct opts {
	const char  *url;
	int32_t      timeout_ms;
	int32_t      connect_ms;
	int32_t      wait_ms;
	bool         json;
	bool         stuck;
	const char  *note;
	dtx_tls_opts tls;
} opts;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: dtxctl [options] COMMAND [ARGS]\n"
	    "commands:\n"
	    "  status GID [--wait-ms N]  a transaction and its branches\n"
	    "  list [STATE] [--stuck]    transactions (STATE: PREPARING, "
	    "COMMITTING, ...)\n"
	    "  abort GID                 abort a 2PC still preparing / "
	    "compensate a saga\n"
	    "  retry GID                 re-drive now: waiting calls go out, "
	    "backoff resets\n"
	    "  settle GID BRANCH --note TEXT\n"
	    "                            record that BRANCH's phase two was "
	    "done by hand\n"
	    "  resolve GID               the outcome a participant would be "
	    "told\n"
	    "  stats                     the coordinator's counters\n"
	    "options:\n"
	    "  --coordinator URL         dtxd (default $DTX_COORDINATOR or "
	    "tcp://127.0.0.1:7800)\n"
	    "  --timeout-ms N            wait for an answer (1..3600000, "
	    "default 5000)\n"
	    "  --connect-timeout-ms N    wait for a connection (1..3600000, "
	    "default 1000)\n"
	    "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
	    "  [--tls-server-name NAME]  for a tls+tcp:// coordinator\n"
	    "  --json                    print JSON\n"
	    "  --help\n"
	    "list, abort, retry and settle are operator commands: a dtxd with "
	    "TLS or with\n"
	    "--operator-listen takes them only there (a tls+tcp:// one needs "
	    "an operator\n"
	    "certificate: --tls-*).\n"
	    "exit status: 0 done, 1 refused or failed (also a TLS handshake "
	    "refused, an\n"
	    "  operator command on the wrong listener), 2 usage, 3 dtxd "
	    "unreachable or silent,\n"
	    "  4 no such transaction, 5 not allowed in the transaction's "
	    "state\n");
}

static int
exit_for(int rv)
{
	switch (rv) {
	case 0:
		return EXIT_OK;
	case DTX_EUNREACHABLE:
	case DTX_ETIMEDOUT:
	case DTX_ETRANSPORT:
	case DTX_ESHUTDOWN:
		return EXIT_UNREACHABLE;
	case DTX_ENOTFOUND:
		return EXIT_NOTFOUND;
	case DTX_ESTATE:
		return EXIT_STATE;
	case DTX_EINVAL:
		return EXIT_USAGE;
	default:
		return EXIT_FAILED;
	}
}

// Parses a number of [min, max] for flag, or says so (naming the flag and
// the range) and returns false.
static bool
parse_num(const char *flag, const char *s, long min, long max, long *out)
{
	char *end;
	long  v;

	errno = 0;
	v     = strtol(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
		fprintf(stderr,
		    "dtxctl: %s: invalid value '%s' (an integer from %ld to "
		    "%ld)\n",
		    flag, s, min, max);
		return false;
	}
	*out = v;
	return true;
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

// ISO 8601 UTC with milliseconds, or "" for 0.
static const char *
iso(int64_t ms, char *buf, size_t cap)
{
	time_t    secs = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0) {
		buf[0] = '\0';
		return buf;
	}
	gmtime_r(&secs, &tm);
	snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return buf;
}

static void
json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	     p++) {
		if (*p == '"' || *p == '\\') {
			printf("\\%c", *p);
		} else if (*p < 0x20 || *p == 0x7f) {
			printf("\\u%04x", *p);
		} else {
			putchar(*p);
		}
	}
	putchar('"');
}

// The error of a failed command, as text on stderr or JSON on stdout.
static int
report_error(const opts *o, const char *cmd, int rv, const char *message)
{
	if (o->json) {
		printf("{\"error\":");
		json_str(dtx_strerror(rv));
		printf(",\"code\":%d,\"message\":", rv);
		json_str(message != NULL ? message : "");
		printf("}\n");
	} else if (message != NULL && message[0] != '\0') {
		fprintf(stderr, "dtxctl: %s: %s: %s\n", cmd, dtx_strerror(rv),
		    message);
	} else {
		fprintf(stderr, "dtxctl: %s: %s\n", cmd, dtx_strerror(rv));
	}
	if (rv == DTX_EPERM && !o->json) {
		fprintf(stderr,
		    "dtxctl: %s is an operator command: send it to dtxd's "
		    "operator listener (--operator-listen)\n",
		    cmd);
	}
	return exit_for(rv);
}

static void
print_info_json(const dtx_tx_info *in)
{
	char t1[64], t2[64];

	printf("\"gid\":");
	json_str(in->gid);
	printf(",\"mode\":\"%s\",\"state\":\"%s\",\"stuck\":%s,"
	       "\"created_ms\":%lld,\"updated_ms\":%lld,\"created\":\"%s\","
	       "\"updated\":\"%s\",\"branch_count\":%u",
	    dtx_mode_name(in->mode), dtx_state_name(in->state),
	    in->stuck ? "true" : "false", (long long)in->created_ms,
	    (long long)in->updated_ms, iso(in->created_ms, t1, sizeof(t1)),
	    iso(in->updated_ms, t2, sizeof(t2)), in->branch_count);
}

static void
print_tx(const opts *o, dtx_tx *tx, dtx_state st)
{
	dtx_tx_info in;
	char        t1[64], t2[64];

	memset(&in, 0, sizeof(in));
	if (dtx_tx_info_get(tx, &in) != 0) {
		snprintf(in.gid, sizeof(in.gid), "%s", dtx_tx_gid(tx));
		in.state = st;
	}
	if (o->json) {
		printf("{");
		print_info_json(&in);
		printf(",\"traceparent\":");
		json_str(dtx_tx_traceparent(tx));
		printf(",\"branches\":[");
	} else {
		printf("%s %s %s%s\n  created %s  updated %s\n", in.gid,
		    dtx_mode_name(in.mode), dtx_state_name(in.state),
		    in.stuck ? " STUCK" : "",
		    iso(in.created_ms, t1, sizeof(t1)),
		    iso(in.updated_ms, t2, sizeof(t2)));
		if (dtx_tx_traceparent(tx)[0] != '\0') {
			printf("  traceparent %s\n", dtx_tx_traceparent(tx));
		}
	}
	for (unsigned i = 0; i < dtx_tx_branch_count(tx); i++) {
		dtx_branch_result r;
		if (dtx_tx_branch_result(tx, i, &r) != 0) {
			continue;
		}
		if (o->json) {
			printf("%s{\"branch\":%u,\"phase\":\"%s\",\"status\":"
			       "\"%s\",\"attempts\":%u,\"error\":",
			    i > 0 ? "," : "", i,
			    r.phase != 0 ? dtx_phase_name(r.phase) : "",
			    dtx_branch_status_name(r.status), r.attempts);
			json_str(r.error != 0 ? dtx_strerror(r.error) : "");
			printf(",\"message\":");
			json_str(r.message != NULL ? r.message : "");
			printf(",\"payload_bytes\":%zu,\"settled_ms\":%lld,"
			       "\"settled\":\"%s\"}",
			    r.payload_len, (long long)r.settled_ms,
			    iso(r.settled_ms, t1, sizeof(t1)));
			continue;
		}
		printf("  branch %u: %s %s attempts=%u", i,
		    r.phase != 0 ? dtx_phase_name(r.phase) : "-",
		    dtx_branch_status_name(r.status), r.attempts);
		if (r.error != 0) {
			printf(" error=%s", dtx_strerror(r.error));
		}
		if (r.settled_ms != 0) {
			printf(" SETTLED-BY-HAND at %s",
			    iso(r.settled_ms, t1, sizeof(t1)));
		}
		if (r.message != NULL && r.message[0] != '\0') {
			printf(" \"%s\"", r.message);
		}
		if (r.payload_len > 0) {
			printf(" payload=%zu bytes", r.payload_len);
		}
		printf("\n");
	}
	if (o->json) {
		printf("]}\n");
	}
}

static int
cmd_status(dtx_client *c, const opts *o, const char *gid)
{
	dtx_tx   *tx;
	dtx_state st;
	int       rv;

	if ((rv = dtx_tx_attach(&tx, c, gid)) != 0) {
		return report_error(o, "status", rv, "invalid gid");
	}
	rv = o->wait_ms > 0 ? dtx_tx_wait(tx, o->wait_ms, &st)
	                    : dtx_tx_status(tx, &st);
	if (rv == DTX_ETIMEDOUT && o->wait_ms > 0) {
		rv = dtx_tx_status(tx, &st);
	}
	if (rv == 0) {
		print_tx(o, tx, st);
	} else {
		rv = report_error(o, "status", rv, dtx_tx_message(tx));
		dtx_tx_free(tx);
		return rv;
	}
	dtx_tx_free(tx);
	return EXIT_OK;
}

static int
cmd_list(dtx_client *c, const opts *o, int filter)
{
	static dtx_tx_info items[100];
	char               cursor[DTX_GID_MAX + 1] = "";
	char               next[DTX_GID_MAX + 1];
	char               why[DTX_MESSAGE_MAX + 1];
	char               t1[64], t2[64];
	unsigned           n;
	unsigned long      total = 0;
	int                rv;

	if (o->stuck) {
		filter |= DTX_LIST_STUCK;
	}
	do {
		rv = dtx_client_list(c, filter, cursor, items, 100, &n, next);
		if (rv != 0) {
			dtx_client_message(c, why, sizeof(why));
			if (o->json && cursor[0] != '\0') {
				// Pages already printed: the object ends
				// with what went wrong.
				printf("],\"count\":%lu,\"error\":", total);
				json_str(dtx_strerror(rv));
				printf(",\"message\":");
				json_str(why);
				printf("}\n");
				return exit_for(rv);
			}
			return report_error(o, "list", rv, why);
		}
		if (o->json && cursor[0] == '\0') {
			printf("{\"transactions\":[");
		}
		for (unsigned i = 0; i < n; i++) {
			if (o->json) {
				printf("%s{", total + i > 0 ? "," : "");
				print_info_json(&items[i]);
				printf("}");
				continue;
			}
			printf("%-40s %-4s %-12s%s branches=%u created=%s "
			       "updated=%s\n",
			    items[i].gid, dtx_mode_name(items[i].mode),
			    dtx_state_name(items[i].state),
			    items[i].stuck ? " STUCK" : "",
			    items[i].branch_count,
			    iso(items[i].created_ms, t1, sizeof(t1)),
			    iso(items[i].updated_ms, t2, sizeof(t2)));
		}
		total += n;
		memcpy(cursor, next, sizeof(cursor));
	} while (cursor[0] != '\0');
	if (o->json) {
		printf("],\"count\":%lu}\n", total);
	} else {
		printf("%lu transactions\n", total);
	}
	return EXIT_OK;
}

// Abort, retry, settle and resolve answer a state.
static int
print_state(const opts *o, const char *gid, dtx_state st)
{
	if (o->json) {
		printf("{\"gid\":");
		json_str(gid);
		printf(",\"state\":\"%s\"}\n", dtx_state_name(st));
	} else {
		printf("%s %s\n", gid, dtx_state_name(st));
	}
	return EXIT_OK;
}

static int
cmd_stats(dtx_client *c, const opts *o)
{
	dtx_coordinator_stats s;
	char                  why[DTX_MESSAGE_MAX + 1];
	int                   rv;

	if ((rv = dtx_client_stats(c, &s)) != 0) {
		dtx_client_message(c, why, sizeof(why));
		return report_error(o, "stats", rv, why);
	}
	const char *names[] = {"active", "started", "finished", "recovered",
	    "store_writes", "store_batches", "store_syncs", "store_errors",
	    "uptime_ms", "branch_calls", "call_messages"};
	uint64_t    vals[]  = {s.active, s.started, s.finished, s.recovered,
	        s.store_writes, s.store_batches, s.store_syncs, s.store_errors,
	        s.uptime_ms, s.branch_calls, s.call_messages};
	if (o->json) {
		printf("{");
	}
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		if (o->json) {
			printf("%s\"%s\":%llu", i > 0 ? "," : "", names[i],
			    (unsigned long long)vals[i]);
		} else {
			printf("%s %llu\n", names[i],
			    (unsigned long long)vals[i]);
		}
	}
	if (o->json) {
		printf("}\n");
	}
	return EXIT_OK;
}

enum {
	OPT_COORDINATOR = 1,
	OPT_TIMEOUT,
	OPT_CONNECT_TIMEOUT,
	OPT_WAIT,
	OPT_JSON,
	OPT_STUCK,
	OPT_NOTE,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_TLS_SERVER_NAME,
	OPT_HELP,
};

// Parses the options (anywhere on the line) into o and leaves the words
// in argv[optind..]. Returns EXIT_OK or EXIT_USAGE after saying why.
static int
parse(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
	    {"coordinator", required_argument, NULL, OPT_COORDINATOR},
	    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
	    {"connect-timeout-ms", required_argument, NULL,
	        OPT_CONNECT_TIMEOUT},
	    {"wait-ms", required_argument, NULL, OPT_WAIT},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"stuck", no_argument, NULL, OPT_STUCK},
	    {"note", required_argument, NULL, OPT_NOTE},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
	    {"tls-server-name", required_argument, NULL, OPT_TLS_SERVER_NAME},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	int  c;
	int  idx = -1;
	long v;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, &idx)) != -1) {
		char flag[64];
		if (idx >= 0) {
			snprintf(
			    flag, sizeof(flag), "--%s", longopts[idx].name);
		} else {
			snprintf(flag, sizeof(flag), "%s",
			    optind > 0 && optind <= argc ? argv[optind - 1]
			                                 : "?");
		}
		idx = -1;
		switch (c) {
		case OPT_COORDINATOR:
			o->url = optarg;
			break;
		case OPT_TIMEOUT:
			if (!parse_num(flag, optarg, 1, 3600000, &v)) {
				return EXIT_USAGE;
			}
			o->timeout_ms = (int32_t)v;
			break;
		case OPT_CONNECT_TIMEOUT:
			if (!parse_num(flag, optarg, 1, 3600000, &v)) {
				return EXIT_USAGE;
			}
			o->connect_ms = (int32_t)v;
			break;
		case OPT_WAIT:
			if (!parse_num(flag, optarg, 0, 86400000, &v)) {
				return EXIT_USAGE;
			}
			o->wait_ms = (int32_t)v;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_STUCK:
			o->stuck = true;
			break;
		case OPT_NOTE:
			o->note = optarg;
			break;
		case OPT_TLS_CERT:
			o->tls.cert_file = optarg;
			break;
		case OPT_TLS_KEY:
			o->tls.key_file = optarg;
			break;
		case OPT_TLS_CA:
			o->tls.ca_file = optarg;
			break;
		case OPT_TLS_SERVER_NAME:
			o->tls.server_name = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(EXIT_OK);
		case ':':
			fprintf(stderr, "dtxctl: %s needs a value\n", flag);
			usage(stderr);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "dtxctl: unknown option '%s'\n", flag);
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	return EXIT_OK;
}

// Checks that cmd got exactly nargs words after it; says what it takes
// otherwise.
static bool
words(const char *cmd, int have, int nargs, const char *takes)
{
	if (have == nargs) {
		return true;
	}
	fprintf(stderr, "dtxctl: %s takes %s\n", cmd, takes);
	return false;
}

static int
run(dtx_client *c, const opts *o, const char *cmd, int n, char **w)
{
	char      why[DTX_MESSAGE_MAX + 1];
	dtx_state st;
	long      branch;
	int       rv;

	if (strcmp(cmd, "status") == 0) {
		return words(cmd, n, 1, "GID") ? cmd_status(c, o, w[0])
		                               : EXIT_USAGE;
	}
	if (strcmp(cmd, "list") == 0) {
		int filter = 0;
		if (n > 1) {
			fprintf(
			    stderr, "dtxctl: list takes at most a STATE\n");
			return EXIT_USAGE;
		}
		if (n == 1 && (filter = state_by_name(w[0])) < 0) {
			fprintf(stderr,
			    "dtxctl: list: unknown state '%s' (PREPARING, "
			    "COMMITTING, COMMITTED, ABORTING, ABORTED, "
			    "RUNNING, COMPENSATING, COMPENSATED; --stuck for "
			    "STUCK)\n",
			    w[0]);
			return EXIT_USAGE;
		}
		return cmd_list(c, o, filter);
	}
	if (strcmp(cmd, "stats") == 0) {
		return words(cmd, n, 0, "no argument") ? cmd_stats(c, o)
		                                       : EXIT_USAGE;
	}
	if (strcmp(cmd, "settle") == 0) {
		if (!words(cmd, n, 2, "GID BRANCH --note TEXT") ||
		    !parse_num("settle BRANCH", w[1], 0, DTX_BRANCHES_MAX - 1,
		        &branch)) {
			return EXIT_USAGE;
		}
		if (o->note == NULL || o->note[0] == '\0') {
			fprintf(stderr,
			    "dtxctl: settle needs --note TEXT saying what was "
			    "done by hand\n");
			return EXIT_USAGE;
		}
		rv =
		    dtx_client_settle(c, w[0], (unsigned)branch, o->note, &st);
	} else if (strcmp(cmd, "abort") == 0 || strcmp(cmd, "retry") == 0 ||
	    strcmp(cmd, "resolve") == 0) {
		if (!words(cmd, n, 1, "GID")) {
			return EXIT_USAGE;
		}
		if (strcmp(cmd, "abort") == 0) {
			rv = dtx_client_abort(c, w[0], &st);
		} else if (strcmp(cmd, "retry") == 0) {
			rv = dtx_client_retry(c, w[0], &st);
		} else {
			rv = dtx_client_resolve(c, w[0], &st);
		}
	} else {
		fprintf(stderr, "dtxctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (rv != 0) {
		dtx_client_message(c, why, sizeof(why));
		return report_error(o, cmd, rv, why);
	}
	return print_state(o, w[0], st);
}

int
main(int argc, char **argv)
{
	opts o = {
	    getenv("DTX_COORDINATOR"), 5000, 1000, 0, false, false, NULL, {0}};
	dtx_client *c;
	int         rv;

	if (o.url == NULL) {
		o.url = "tcp://127.0.0.1:7800";
	}
	if ((rv = parse(argc, argv, &o)) != EXIT_OK) {
		return rv;
	}
	if (optind >= argc) {
		fprintf(stderr, "dtxctl: no command\n");
		usage(stderr);
		return EXIT_USAGE;
	}
	if (o.wait_ms > 0 && strcmp(argv[optind], "status") != 0) {
		fprintf(stderr, "dtxctl: --wait-ms is for status only\n");
		return EXIT_USAGE;
	}
	if ((o.stuck && strcmp(argv[optind], "list") != 0) ||
	    (o.note != NULL && strcmp(argv[optind], "settle") != 0)) {
		fprintf(stderr, "dtxctl: %s is for %s only\n",
		    o.stuck ? "--stuck" : "--note",
		    o.stuck ? "list" : "settle");
		return EXIT_USAGE;
	}
	if (o.tls.ca_file != NULL || o.tls.cert_file != NULL ||
	    o.tls.key_file != NULL || o.tls.server_name != NULL) {
		// The reason (a file, a date) is logged by libdtx.
		if ((rv = dtx_client_open_tls(&c, o.url, &o.tls)) != 0) {
			fprintf(stderr, "dtxctl: --coordinator %s: %s\n",
			    o.url, dtx_strerror(rv));
			return EXIT_FAILED;
		}
	} else if ((rv = dtx_client_open(&c, o.url)) != 0) {
		fprintf(stderr, "dtxctl: --coordinator %s: %s\n", o.url,
		    dtx_strerror(rv));
		return rv == DTX_EINVAL ? EXIT_USAGE : EXIT_UNREACHABLE;
	}
	dtx_client_set_timeout_ms(c, o.timeout_ms);
	dtx_client_set_connect_timeout_ms(c, o.connect_ms);
	rv = run(c, &o, argv[optind], argc - optind - 1, argv + optind + 1);
	dtx_client_close(c);
	return rv;
}
