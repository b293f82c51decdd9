// SPDX-License-Identifier: MIT
//
// dtxd: the dtx coordinator. Parses flags, opens the store (one dtxd per
// data directory: RocksDB's lock says so), recovers every unfinished
// transaction, then serves until SIGTERM or SIGINT. Shutdown answers waiting
// clients, stops the loop, drains queued writes and closes the store, so
// nothing accepted is lost; an unfinished transaction resumes at the next
// start.
//
// A PostgreSQL store out of reach at start (down, not up yet, failing
// over) does not stop dtxd: the listeners open at once, /readyz and every
// request say why dtxd is not ready (DTX_ESTORAGE, which a client may
// retry, here or at another node), and the store is opened again with
// backoff (STORE_RETRY_MIN_MS doubling to STORE_RETRY_MAX_MS) until the
// database answers; then the node opens its session and serves as usual.
// What no retry mends (a malformed connection string, credentials the
// server refuses, a schema of another version) stops dtxd at once, saying
// why.

#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "cluster.h"
#include "crashpoint.h"
#include "dispatcher.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "recovery.h"
#include "server.h"
#include "store.h"
#include "tlsconf.h"
#include "transport.h"
#include "txmgr.h"

typedef struct opts {
	const char        *listen;
	const char        *op_listen;   // --operator-listen, or NULL
	int                op_ipc_mode; // --operator-ipc-mode
	const char        *http_listen; // NULL: no HTTP listener
	dtxd_tlsconf       tls;
	const char        *data_dir;
	bool               data_dir_set;
	dtxd_store_backend backend;
	const char        *store_conn;
	const char        *node;
	uint32_t           lease_ms;
	char               node_buf[320];
	unsigned           contexts;
	size_t             max_frame;
	dtxd_config        cfg;
} opts;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: dtxd [options]\n"
	    "  --listen URL            where clients connect "
	    "(default tcp://127.0.0.1:7800)\n"
	    "  --operator-listen URL   where operator commands (list, abort) "
	    "are taken:\n"
	    "                          tls+tcp:// or ipc://; without it only "
	    "a plain --listen\n"
	    "                          takes them (README: Securing dtx)\n"
	    "  --tls-cert FILE, --tls-key FILE\n"
	    "                          dtxd's certificate (coordinator CA) "
	    "for tls+tcp://\n"
	    "  --tls-ca FILE           CA of the clients --listen accepts\n"
	    "  --operator-tls-ca FILE  CA of the operators "
	    "--operator-listen accepts\n"
	    "  --operator-ipc-mode OCTAL  an ipc:// operator socket's mode "
	    "(0600)\n"
	    "  --participant-tls-ca FILE  CA of participants' certificates "
	    "(tls+tcp:// branches)\n"
	    "  --participant-tls-cert FILE, --participant-tls-key FILE\n"
	    "                          dtxd's certificate toward participants "
	    "(default --tls-cert)\n"
	    "  --data-dir DIR          RocksDB directory (default "
	    "./dtxd-data)\n"
	    "  --store rocksdb|postgres\n"
	    "                          where transactions are kept: an "
	    "embedded RocksDB\n"
	    "                          in --data-dir (default), or a "
	    "PostgreSQL shared by\n"
	    "                          several dtxd nodes\n"
	    "  --store-conn CONNINFO   libpq connection string (required "
	    "with postgres;\n"
	    "                          multi-host with "
	    "target_session_attrs=read-write\n"
	    "                          follows a fail-over). A database "
	    "out of reach at\n"
	    "                          start is waited for, not ready "
	    "meanwhile; one that\n"
	    "                          refuses dtxd (password, role, "
	    "schema) stops it\n"
	    "  --node NAME             this node's name, unique in the "
	    "cluster\n"
	    "                          (default HOSTNAME:PORT of --listen)\n"
	    "  --lease-ms N            the node's lease on the database's "
	    "clock, renewed\n"
	    "                          every third of it; its transactions "
	    "go to the\n"
	    "                          other nodes when it lapses (3000)\n"
	    "  --retention SECONDS     keep finished transactions "
	    "(default 86400)\n"
	    "  --log-level LEVEL       error, warn, info or debug "
	    "(default info)\n"
	    "  --log-format FORMAT     logfmt or json (default logfmt)\n"
	    "  --http-listen URL       serve /metrics, /healthz, /readyz and "
	    "the status page\n"
	    "                          (e.g. http://127.0.0.1:7880; default "
	    "off)\n"
	    "  --timeout-ms N          default 2PC prepare / saga forward "
	    "timeout (30000)\n"
	    "  --call-timeout-ms N     default timeout of one branch call "
	    "(5000)\n"
	    "  --retries N             default retries of a failing PREPARE "
	    "or "
	    "EXECUTE\n"
	    "                          after its first call: at most 1 + N "
	    "calls (5)\n"
	    "  --backoff-base-ms N     first retry delay (100)\n"
	    "  --backoff-max-ms N      longest retry delay (10000)\n"
	    "  --stuck-after N         calls before a branch is flagged "
	    "stuck (10)\n"
	    "  --contexts N            requests served concurrently (1024)\n"
	    "  --max-payload BYTES     largest branch payload (1048576)\n"
	    "  --max-frame BYTES       largest request frame (16777216)\n"
	    "  --version, --help\n");
}

// Parses s as an integer of [min, max] for flag; says what is wrong, with
// the flag and the range, and returns -1 otherwise.
static int
parse_u64(
    const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char              *end;
	unsigned long long v  = 0;
	bool               ok = s != NULL && *s != '\0' && *s != '-';

	if (ok) {
		errno = 0;
		v     = strtoull(s, &end, 10);
		ok    = errno == 0 && *end == '\0' && v >= min && v <= max;
	}
	if (!ok) {
		fprintf(stderr,
		    "dtxd: %s: invalid value '%s' (an integer from %llu to "
		    "%llu)\n",
		    flag, s != NULL ? s : "", (unsigned long long)min,
		    (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

// A node's name: what operators read in the database, 1..255 printable
// bytes.
static bool
node_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x21 || s[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

// The default node name: this host's name and the port of the listen URL
// (or the whole URL when it has no port, as ipc:// has not), so that two
// nodes on one machine differ by their ports.
static void
default_node(opts *o)
{
	char        host[256];
	const char *colon = strrchr(o->listen, ':');
	const char *port  = NULL;

	if (gethostname(host, sizeof(host)) != 0) {
		snprintf(host, sizeof(host), "localhost");
	}
	host[sizeof(host) - 1] = '\0';
	if (colon != NULL && colon[1] != '\0' &&
	    strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		port = colon + 1;
	}
	snprintf(o->node_buf, sizeof(o->node_buf), "%s:%s", host,
	    port != NULL ? port : o->listen);
	o->node = o->node_buf;
}

// The store flags agree with each other. Returns 0, or 1 after printing
// what is wrong.
static int
check_store(opts *o)
{
	if (o->backend == DTXD_STORE_ROCKSDB) {
		const char *which = o->store_conn != NULL ? "--store-conn"
		    : o->node != NULL                     ? "--node"
		    : o->lease_ms != 3000                 ? "--lease-ms"
		                                          : NULL;
		if (which != NULL) {
			fprintf(stderr,
			    "dtxd: %s needs --store postgres (RocksDB keeps "
			    "one node's transactions)\n",
			    which);
			return 1;
		}
		return 0;
	}
	if (o->store_conn == NULL || o->store_conn[0] == '\0') {
		fprintf(stderr,
		    "dtxd: --store postgres needs --store-conn CONNINFO (a "
		    "libpq connection string)\n");
		return 1;
	}
	if (o->data_dir_set) {
		fprintf(stderr,
		    "dtxd: --data-dir is for --store rocksdb; "
		    "PostgreSQL is reached by --store-conn\n");
		return 1;
	}
	if (o->node == NULL) {
		default_node(o);
	}
	return 0;
}

enum {
	OPT_LISTEN = 1,
	OPT_HTTP_LISTEN,
	OPT_LOG_FORMAT,
	OPT_DATA_DIR,
	OPT_STORE,
	OPT_STORE_CONN,
	OPT_NODE,
	OPT_LEASE,
	OPT_RETENTION,
	OPT_LOG_LEVEL,
	OPT_TIMEOUT,
	OPT_CALL_TIMEOUT,
	OPT_RETRIES,
	OPT_BACKOFF_BASE,
	OPT_BACKOFF_MAX,
	OPT_STUCK_AFTER,
	OPT_CONTEXTS,
	OPT_MAX_PAYLOAD,
	OPT_MAX_FRAME,
	OPT_OP_LISTEN,
	OPT_OP_IPC_MODE,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_OP_TLS_CA,
	OPT_PART_TLS_CERT,
	OPT_PART_TLS_KEY,
	OPT_PART_TLS_CA,
	OPT_VERSION,
	OPT_HELP,
};

// Returns 0, or 1 after printing what is wrong.
static int
parse_args(int argc, char **argv, opts *o)
{
	static const struct option longopts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"http-listen", required_argument, NULL, OPT_HTTP_LISTEN},
	    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
	    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
	    {"store", required_argument, NULL, OPT_STORE},
	    {"store-conn", required_argument, NULL, OPT_STORE_CONN},
	    {"node", required_argument, NULL, OPT_NODE},
	    {"lease-ms", required_argument, NULL, OPT_LEASE},
	    {"retention", required_argument, NULL, OPT_RETENTION},
	    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	    {"timeout-ms", required_argument, NULL, OPT_TIMEOUT},
	    {"call-timeout-ms", required_argument, NULL, OPT_CALL_TIMEOUT},
	    {"retries", required_argument, NULL, OPT_RETRIES},
	    {"backoff-base-ms", required_argument, NULL, OPT_BACKOFF_BASE},
	    {"backoff-max-ms", required_argument, NULL, OPT_BACKOFF_MAX},
	    {"stuck-after", required_argument, NULL, OPT_STUCK_AFTER},
	    {"contexts", required_argument, NULL, OPT_CONTEXTS},
	    {"max-payload", required_argument, NULL, OPT_MAX_PAYLOAD},
	    {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
	    {"operator-listen", required_argument, NULL, OPT_OP_LISTEN},
	    {"operator-ipc-mode", required_argument, NULL, OPT_OP_IPC_MODE},
	    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
	    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
	    {"operator-tls-ca", required_argument, NULL, OPT_OP_TLS_CA},
	    {"participant-tls-cert", required_argument, NULL,
	        OPT_PART_TLS_CERT},
	    {"participant-tls-key", required_argument, NULL, OPT_PART_TLS_KEY},
	    {"participant-tls-ca", required_argument, NULL, OPT_PART_TLS_CA},
	    {"version", no_argument, NULL, OPT_VERSION},
	    {"help", no_argument, NULL, OPT_HELP},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	int      c;
	int      idx    = -1;
	int      level  = DTXI_LOG_INFO;
	int      format = DTXI_LOG_LOGFMT;

	memset(o, 0, sizeof(*o));
	o->listen      = "tcp://127.0.0.1:7800";
	o->op_ipc_mode = 0600;
	o->http_listen = NULL;
	o->data_dir    = "dtxd-data";
	o->backend     = DTXD_STORE_ROCKSDB;
	o->lease_ms    = 3000;
	o->contexts    = 1024;
	o->max_frame   = DTXI_FRAME_MAX_DEFAULT;
	dtxd_config_init(&o->cfg);
	opterr = 0;
	// ":" first: a long option without its value is ':', not '?'.
	while ((c = getopt_long(argc, argv, ":", longopts, &idx)) != -1) {
		// What the user typed (for an unknown option), and the flag
		// it was: getopt names the option it matched, even when the
		// value came as the next argument or after "=".
		const char *name =
		    optind > 0 && optind <= argc ? argv[optind - 1] : "?";
		int  bad = 0;
		char flag[64];
		if (idx >= 0) {
			snprintf(
			    flag, sizeof(flag), "--%s", longopts[idx].name);
		} else {
			snprintf(flag, sizeof(flag), "%.*s",
			    (int)strcspn(name, "="), name);
		}
		idx = -1;
		switch (c) {
		case OPT_LISTEN:
			o->listen = optarg;
			break;
		case OPT_HTTP_LISTEN:
			o->http_listen = optarg;
			break;
		case OPT_LOG_FORMAT:
			if ((format = dtxi_log_format_parse(optarg)) < 0) {
				fprintf(stderr,
				    "dtxd: %s: unknown format '%s' (logfmt or "
				    "json)\n",
				    flag, optarg);
				bad = 1;
			}
			break;
		case OPT_DATA_DIR:
			o->data_dir     = optarg;
			o->data_dir_set = true;
			break;
		case OPT_STORE:
			if (strcmp(optarg, "rocksdb") == 0) {
				o->backend = DTXD_STORE_ROCKSDB;
			} else if (strcmp(optarg, "postgres") == 0) {
				o->backend = DTXD_STORE_POSTGRES;
			} else {
				fprintf(stderr,
				    "dtxd: %s: unknown store '%s' (rocksdb or "
				    "postgres)\n",
				    flag, optarg);
				bad = 1;
			}
			break;
		case OPT_STORE_CONN:
			o->store_conn = optarg;
			break;
		case OPT_NODE:
			o->node = optarg;
			if (!node_name_ok(optarg)) {
				fprintf(stderr,
				    "dtxd: %s: invalid name '%s' (1 to 255 "
				    "printable characters, no spaces)\n",
				    flag, optarg);
				bad = 1;
			}
			break;
		case OPT_LEASE:
			bad = parse_u64(flag, optarg, 100, 3600ULL * 1000, &v);
			o->lease_ms = (uint32_t)v;
			break;
		case OPT_RETENTION:
			bad = parse_u64(
			    flag, optarg, 0, 10ULL * 365 * 86400, &v);
			o->cfg.retention_ms = (int64_t)v * 1000;
			break;
		case OPT_LOG_LEVEL:
			if ((level = dtxi_log_level_parse(optarg)) < 0) {
				fprintf(stderr,
				    "dtxd: %s: unknown level '%s' (error, "
				    "warn, "
				    "info or debug)\n",
				    flag, optarg);
				bad = 1;
			}
			break;
		case OPT_TIMEOUT:
			bad =
			    parse_u64(flag, optarg, 1, DTX_TIMEOUT_MS_MAX, &v);
			o->cfg.timeout_ms = (uint32_t)v;
			break;
		case OPT_CALL_TIMEOUT:
			bad = parse_u64(
			    flag, optarg, 1, DTX_CALL_TIMEOUT_MS_MAX, &v);
			o->cfg.call_timeout_ms = (uint32_t)v;
			break;
		case OPT_RETRIES:
			bad = parse_u64(flag, optarg, 0, DTX_RETRIES_MAX, &v);
			o->cfg.retries = (uint32_t)v;
			break;
		case OPT_BACKOFF_BASE:
			bad = parse_u64(flag, optarg, 1, 3600ULL * 1000, &v);
			o->cfg.policy.backoff_base_ms = (uint32_t)v;
			break;
		case OPT_BACKOFF_MAX:
			bad = parse_u64(flag, optarg, 1, 3600ULL * 1000, &v);
			o->cfg.policy.backoff_max_ms = (uint32_t)v;
			break;
		case OPT_STUCK_AFTER:
			bad = parse_u64(flag, optarg, 1, 1000000, &v);
			o->cfg.policy.stuck_after = (uint32_t)v;
			break;
		case OPT_CONTEXTS:
			bad         = parse_u64(flag, optarg, 1, 65536, &v);
			o->contexts = (unsigned)v;
			break;
		case OPT_MAX_PAYLOAD:
			bad = parse_u64(
			    flag, optarg, 1, 256ULL * 1024 * 1024, &v);
			o->cfg.max_payload = (size_t)v;
			break;
		case OPT_MAX_FRAME:
			bad = parse_u64(
			    flag, optarg, 1024, 1024ULL * 1024 * 1024, &v);
			o->max_frame = (size_t)v;
			break;
		case OPT_OP_LISTEN:
			o->op_listen = optarg;
			break;
		case OPT_OP_IPC_MODE: {
			char *end;
			long  mode = strtol(optarg, &end, 8);
			bad = optarg[0] == '\0' || *end != '\0' || mode <= 0 ||
			    mode > 0777;
			if (bad) {
				fprintf(stderr,
				    "dtxd: %s: invalid value '%s' (an octal "
				    "file mode from 1 to 0777)\n",
				    flag, optarg);
			}
			o->op_ipc_mode = (int)mode;
			break;
		}
		case OPT_TLS_CERT:
			o->tls.cert = optarg;
			break;
		case OPT_TLS_KEY:
			o->tls.key = optarg;
			break;
		case OPT_TLS_CA:
			o->tls.ca = optarg;
			break;
		case OPT_OP_TLS_CA:
			o->tls.op_ca = optarg;
			break;
		case OPT_PART_TLS_CERT:
			o->tls.part_cert = optarg;
			break;
		case OPT_PART_TLS_KEY:
			o->tls.part_key = optarg;
			break;
		case OPT_PART_TLS_CA:
			o->tls.part_ca = optarg;
			break;
		case OPT_VERSION:
			printf("dtxd %d.%d.%d (protocol %d)\n",
			    DTX_VERSION_MAJOR, DTX_VERSION_MINOR,
			    DTX_VERSION_PATCH, DTX_PROTOCOL_VERSION);
			exit(0);
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case ':':
			fprintf(stderr, "dtxd: %s needs a value\n", flag);
			usage(stderr);
			return 1;
		default:
			fprintf(stderr, "dtxd: unknown option '%s'\n", name);
			usage(stderr);
			return 1;
		}
		if (bad) {
			fprintf(stderr, "(dtxd --help lists every option)\n");
			return 1;
		}
	}
	if (optind < argc) {
		fprintf(
		    stderr, "dtxd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 1;
	}
	if (o->cfg.policy.backoff_max_ms < o->cfg.policy.backoff_base_ms) {
		fprintf(stderr,
		    "dtxd: --backoff-max-ms (%u) is below --backoff-base-ms "
		    "(%u)\n",
		    (unsigned)o->cfg.policy.backoff_max_ms,
		    (unsigned)o->cfg.policy.backoff_base_ms);
		return 1;
	}
	if (check_store(o) != 0) {
		return 1;
	}
	if (o->max_frame < o->cfg.max_payload) {
		o->max_frame = o->cfg.max_payload + 64 * 1024;
	}
	dtxi_log_set_level(level);
	dtxi_log_set_format(format);
	o->cfg.crash_at = getenv(DTXI_CRASH_ENV_COORDINATOR);
	return 0;
}

// The store's report of each batch, on its writer thread.
static void
on_store_batch(void *arg, uint64_t n, bool sync, int64_t us, int rv)
{
	dtxd_metrics_store_batch(arg, n, sync, us, rv);
}

#define STORE_RETRY_MIN_MS 250
#define STORE_RETRY_MAX_MS 5000
// While the store is out of reach, the log says so again this often (and
// at once when the reason changes).
#define STORE_RETRY_LOG_MS 60000

// Between the listeners and the manager: requests go to the manager once
// it exists; before, while dtxd waits for its store, each is answered at
// once with why dtxd is not ready.
typedef struct gate {
	_Atomic(dtxd_txmgr *) mgr;
	dtxd_metrics         *metrics;
} gate;

static void
gate_on_request(void *arg, dtxd_sreq *r)
{
	gate       *g = arg;
	dtxd_txmgr *m = atomic_load(&g->mgr);
	char        why[DTXD_METRICS_WHY_MAX + 32];
	char        msg[DTX_MESSAGE_MAX + 1];

	if (m != NULL) {
		dtxd_txmgr_on_request(m, r);
		return;
	}
	if (dtxd_metrics_ready(g->metrics, why, sizeof(why))) {
		snprintf(why, sizeof(why), "starting");
	}
	// A reply message holds DTX_MESSAGE_MAX bytes: the cause comes cut.
	snprintf(msg, sizeof(msg), "dtxd is not ready: %.*s",
	    (int)(sizeof(msg) - 20), why);
	dtxd_server_reply_error(r, DTX_ESTORAGE, msg);
}

// Opens the client listener and, with --operator-listen, the operators'.
// Returns 0, or 1 after saying what is wrong.
static int
open_listeners(opts *o, gate *g, dtxd_server **server, dtxd_server **opsrv)
{
	// Roles: with an operator listener, operator commands go there
	// only; without one, a plain --listen still takes them (local use,
	// as before TLS), a TLS one does not (server.c refuses them).
	dtxd_server_opts so = {
	    .url           = o->listen,
	    .contexts      = o->contexts,
	    .max_frame     = o->max_frame,
	    .max_payload   = o->cfg.max_payload,
	    .tls           = o->tls.listen,
	    .operator_cmds = o->op_listen == NULL && o->tls.listen == NULL,
	};
	int rv;

	if ((rv = dtxd_server_open(server, &so, gate_on_request, g)) != 0) {
		fprintf(stderr, "dtxd: cannot listen on %s: %s\n", o->listen,
		    dtx_strerror(rv));
		return 1;
	}
	if (o->op_listen != NULL) {
		so.url           = o->op_listen;
		so.contexts      = 64;
		so.tls           = o->tls.op;
		so.ipc_mode      = o->op_ipc_mode;
		so.operator_cmds = true;
		so.name          = "dtxd operator listener";
		if ((rv = dtxd_server_open(opsrv, &so, gate_on_request, g)) !=
		    0) {
			fprintf(stderr, "dtxd: cannot listen on %s: %s\n",
			    o->op_listen, dtx_strerror(rv));
			return 1;
		}
	}
	return 0;
}

// Opens the store and, on PostgreSQL, the node's session (which sets
// o->cfg.session). Returns 0 or the error, why saying it (cap bytes);
// DTX_EUNREACHABLE when another try may do better.
static int
open_store(opts *o, dtxd_store_opts *sopts, dtxd_metrics *metrics,
    dtxd_store **store, dtxd_cluster **cluster, char *why, size_t cap)
{
	int rv;

	why[0]         = '\0';
	sopts->why     = why;
	sopts->why_cap = cap;
	rv             = dtxd_store_open(store,
            o->backend == DTXD_STORE_POSTGRES ? o->store_conn : o->data_dir,
	                sopts);
	sopts->why     = NULL;
	if (rv != 0) {
		if (why[0] != '\0') {
			return rv;
		}
		if (rv == DTX_ELOCKED) {
			snprintf(why, cap,
			    "data directory %s is in use by another process "
			    "(another dtxd?)",
			    o->data_dir);
		} else if (o->backend == DTXD_STORE_POSTGRES) {
			snprintf(why, cap,
			    "cannot open the PostgreSQL store: %s",
			    dtx_strerror(rv));
		} else {
			snprintf(why, cap, "cannot open data directory %s: %s",
			    o->data_dir, dtx_strerror(rv));
		}
		return rv;
	}
	if (o->backend != DTXD_STORE_POSTGRES) {
		return 0;
	}
	// Several nodes on one database: this node's session owns what it
	// creates, and its abort is written (still owned) before any ABORT
	// leaves, as its commit is.
	dtxd_cluster_opts co = {.name = o->node,
	    .url                      = o->listen,
	    .lease_ms                 = o->lease_ms,
	    .metrics                  = metrics};
	if ((rv = dtxd_cluster_open(cluster, *store, &co, &o->cfg.session)) !=
	    0) {
		snprintf(why, cap, "cannot open a session for node %s: %s",
		    o->node, dtx_strerror(rv));
		dtxd_store_close(*store);
		*store = NULL;
		// The database answered a moment ago: most likely it went
		// away again.
		return rv == DTX_ENOMEM ? rv : DTX_EUNREACHABLE;
	}
	o->cfg.policy.abort_waits = true;
	return 0;
}

// Opens the store again with backoff while it is out of reach (see the
// top of the file), /readyz saying why. Returns 0 once it is open, the
// error open_store gave when it is one no retry mends (why says it), or
// the number of the signal, negated, when SIGTERM or SIGINT came
// meanwhile.
static int
wait_for_store(opts *o, dtxd_store_opts *sopts, dtxd_metrics *metrics,
    const sigset_t *sigs, dtxd_store **store, dtxd_cluster **cluster,
    char *why, size_t cap)
{
	char     said[DTXD_METRICS_WHY_MAX];
	uint32_t backoff  = STORE_RETRY_MIN_MS;
	uint64_t attempts = 1;
	int64_t  t0       = dtxi_mono_ms();
	int64_t  said_at  = t0;
	int      rv       = DTX_EUNREACHABLE;

	snprintf(said, sizeof(said), "%s", why);
	dtxd_metrics_set_store_waiting(metrics, why);
	DTXI_WARN("store: %s; dtxd serves \"not ready\" and tries again "
	          "(every %u ms at most)",
	    why, STORE_RETRY_MAX_MS);
	while (rv == DTX_EUNREACHABLE) {
		struct timespec ts  = {.tv_sec = backoff / 1000,
		     .tv_nsec = (long)(backoff % 1000) * 1000000L};
		int             sig = sigtimedwait(sigs, NULL, &ts);
		if (sig > 0) {
			dtxd_metrics_set_store_waiting(metrics, NULL);
			return -sig;
		}
		backoff = backoff * 2 > STORE_RETRY_MAX_MS ? STORE_RETRY_MAX_MS
		                                           : backoff * 2;
		attempts++;
		rv = open_store(o, sopts, metrics, store, cluster, why, cap);
		if (rv != DTX_EUNREACHABLE) {
			break;
		}
		dtxd_metrics_set_store_waiting(metrics, why);
		if (strcmp(said, why) != 0 ||
		    dtxi_mono_ms() - said_at >= STORE_RETRY_LOG_MS) {
			DTXI_WARN("store: %s (still trying: %llu attempts in "
			          "%lld s)",
			    why, (unsigned long long)attempts,
			    (long long)((dtxi_mono_ms() - t0) / 1000));
			snprintf(said, sizeof(said), "%s", why);
			said_at = dtxi_mono_ms();
		}
	}
	dtxd_metrics_set_store_waiting(metrics, NULL);
	if (rv == 0) {
		DTXI_INFO("store: open after %llu attempts in %lld ms",
		    (unsigned long long)attempts,
		    (long long)(dtxi_mono_ms() - t0));
	}
	return rv;
}

int
main(int argc, char **argv)
{
	opts             o;
	sigset_t         sigs;
	dtxd_store      *store   = NULL;
	dtxd_dispatcher *disp    = NULL;
	dtxd_txmgr      *mgr     = NULL;
	dtxd_server     *server  = NULL;
	dtxd_server     *opsrv   = NULL;
	dtxd_http       *http    = NULL;
	dtxd_metrics    *metrics = NULL;
	dtxd_cluster    *cluster = NULL;
	dtxd_store_opts  sopts;
	char             why[DTX_MESSAGE_MAX + 1];
	char             why_store[DTXD_METRICS_WHY_MAX];
	gate             g;
	uint64_t         recovered = 0;
	int64_t          start_ms  = dtxi_mono_ms();
	int              status    = 1;
	int              rv;
	int              sig;

	memset(&o, 0, sizeof(o));
	if (parse_args(argc, argv, &o) != 0) {
		return 1;
	}
	// Before anything is opened: a bad or expired file stops dtxd here.
	if (dtxd_tlsconf_load(
	        &o.tls, o.listen, o.op_listen, why, sizeof(why)) != 0) {
		fprintf(stderr, "dtxd: %s\n", why);
		return 1;
	}
	if (dtxd_metrics_alloc(&metrics) != 0) {
		fprintf(stderr, "dtxd: out of memory\n");
		dtxd_tlsconf_fini(&o.tls);
		return 1;
	}
	o.cfg.metrics = metrics;
	// glibc gives each thread that allocates its own arena, up to eight
	// per core, and an arena keeps what was freed in it. dtxd allocates
	// on nng's dozen task threads, RocksDB's and its own: at 10,000
	// transactions in flight the arenas held some 10 MiB of free memory
	// that no other thread could reuse. Two arenas keep that down, and
	// with two cores, contention for them stays low.
	mallopt(M_ARENA_MAX, 2);
	// glibc serves a request above the mmap threshold (128 KiB) with its
	// own mapping, returned to the system when freed, but raises the
	// threshold to the size of each such block freed. RocksDB's memtables
	// come in 1 MiB arena blocks: after the first flush they were carved
	// from the heap instead, among small long-lived allocations, and
	// dtxd's RSS crept up by the fragments (42 -> 49 MiB in 4 minutes, 29
	// -> 119 MiB over 10 before the store's caches were bounded). A fixed
	// threshold keeps them mapped; RSS then follows the memtables' fill.
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	// Signals are taken synchronously by main alone: block them before
	// any thread exists so that every thread inherits the mask.
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	dtxd_store_opts_init(&sopts);
	sopts.retention_ms = o.cfg.retention_ms;
	sopts.on_batch     = on_store_batch;
	sopts.on_batch_arg = metrics;
	sopts.backend      = o.backend;
	atomic_init(&g.mgr, NULL);
	g.metrics = metrics;
	if ((rv = dtxd_dispatcher_open(&disp, o.cfg.max_payload)) != 0) {
		fprintf(stderr, "dtxd: %s\n", dtx_strerror(rv));
		goto out;
	}
	if (o.tls.part != NULL) {
		dtxd_dispatcher_set_tls(disp, o.tls.part);
	}
	// The HTTP listener comes up first, so /readyz says why dtxd is not
	// ready while it waits for its store or recovers (and /healthz that
	// the process lives).
	if (o.http_listen != NULL) {
		dtxd_http_opts ho = {
		    .url      = o.http_listen,
		    .metrics  = metrics,
		    .disp     = disp,
		    .start_ms = start_ms,
		};
		if ((rv = dtxd_http_open(&http, &ho)) != 0) {
			fprintf(stderr,
			    "dtxd: --http-listen: cannot serve on %s: %s\n",
			    o.http_listen, dtx_strerror(rv));
			goto out;
		}
	}
	rv = open_store(&o, &sopts, metrics, &store, &cluster, why_store,
	    sizeof(why_store));
	if (rv == DTX_EUNREACHABLE) {
		// Clients are told why until the store opens (the gate).
		if (open_listeners(&o, &g, &server, &opsrv) != 0) {
			goto out;
		}
		dtxd_http_set_servers(http, server, opsrv);
		rv = wait_for_store(&o, &sopts, metrics, &sigs, &store,
		    &cluster, why_store, sizeof(why_store));
		if (rv < 0) {
			dtxi_log_event(DTXI_LOG_INFO, "dtxd_stopping",
			    DTXI_FIELDS(DTXI_F_NUM("signal", -rv)),
			    "signal %d while waiting for the store, shutting "
			    "down",
			    -rv);
			status = 0; // stopped as asked
			goto out;
		}
	}
	if (rv != 0) {
		fprintf(stderr, "dtxd: %s\n", why_store);
		goto out;
	}
	if ((rv = dtxd_txmgr_open(&mgr, &o.cfg, store, disp)) != 0) {
		fprintf(stderr, "dtxd: %s\n", dtx_strerror(rv));
		goto out;
	}
	dtxd_http_set_mgr(http, mgr);
	// Alone on RocksDB, everything unfinished is this node's. On a
	// shared database the cluster's thread takes over what was this
	// node's (its earlier session ended just now) or a dead node's.
	if (cluster == NULL &&
	    (rv = dtxd_recover(store, mgr, &recovered)) != 0) {
		fprintf(
		    stderr, "dtxd: recovery failed: %s\n", dtx_strerror(rv));
		goto out;
	}
	if ((rv = dtxd_txmgr_start(mgr)) != 0 ||
	    (cluster != NULL &&
	        (rv = dtxd_cluster_start(cluster, mgr)) != 0)) {
		fprintf(stderr, "dtxd: %s\n", dtx_strerror(rv));
		goto out;
	}
	atomic_store(&g.mgr, mgr);
	if (server == NULL) {
		if (open_listeners(&o, &g, &server, &opsrv) != 0) {
			goto out;
		}
		dtxd_http_set_servers(http, server, opsrv);
	}
	dtxi_log_event(DTXI_LOG_INFO, "dtxd_started",
	    DTXI_FIELDS(DTXI_F_STR("listen", o.listen),
	        DTXI_F_STR(
	            "operator_listen", o.op_listen != NULL ? o.op_listen : ""),
	        DTXI_F_STR(
	            "http_listen", o.http_listen != NULL ? o.http_listen : ""),
	        DTXI_F_STR("data_dir", o.data_dir),
	        DTXI_F_NUM("recovered", recovered)),
	    "dtxd %d.%d.%d listening on %s%s%s%s, data in %s, %llu "
	    "transactions recovered",
	    DTX_VERSION_MAJOR, DTX_VERSION_MINOR, DTX_VERSION_PATCH, o.listen,
	    o.op_listen != NULL ? " (operators: " : "",
	    o.op_listen != NULL ? o.op_listen : "",
	    o.op_listen != NULL ? ")" : "",
	    o.backend == DTXD_STORE_POSTGRES ? "PostgreSQL" : o.data_dir,
	    (unsigned long long)recovered);

	do {
		rv = sigwait(&sigs, &sig);
	} while (rv != 0);
	dtxi_log_event(DTXI_LOG_INFO, "dtxd_stopping",
	    DTXI_FIELDS(DTXI_F_NUM("signal", sig)), "signal %d, shutting down",
	    sig);
	status = 0;

out:
	// Order matters: /readyz says so first; the loop stops (answering
	// waiting clients and the status page), then the HTTP listener and
	// the server, then outbound calls; the store drains its queue last,
	// and only then can the manager drop what completed late. The
	// session ends before that, once nothing more is sent: the other
	// nodes take over at once what this one leaves unfinished, and a
	// write of it still queued here is fenced if it comes too late.
	dtxd_metrics_set_stopping(metrics);
	dtxd_txmgr_stop(mgr);
	dtxd_http_close(http);
	dtxd_server_close(opsrv);
	dtxd_server_close(server);
	dtxd_dispatcher_close(disp);
	dtxd_tlsconf_fini(&o.tls);
	dtxd_cluster_close(cluster);
	dtxd_store_close(store);
	if (mgr != NULL) {
		dtxd_txmgr_stats st;
		dtxd_txmgr_get_stats(mgr, &st);
		dtxi_log_event(DTXI_LOG_INFO, "dtxd_stopped",
		    DTXI_FIELDS(DTXI_F_NUM("started", st.started),
		        DTXI_F_NUM("finished", st.finished),
		        DTXI_F_NUM("unfinished", st.active),
		        DTXI_F_NUM("taken_over", st.taken_over),
		        DTXI_F_NUM("fenced", st.fenced)),
		    "stopped (%llu started, %llu finished, %llu still "
		    "unfinished, %llu taken over, %llu dropped on a fenced "
		    "write)",
		    (unsigned long long)st.started,
		    (unsigned long long)st.finished,
		    (unsigned long long)st.active,
		    (unsigned long long)st.taken_over,
		    (unsigned long long)st.fenced);
	}
	dtxd_txmgr_close(mgr);
	dtxd_metrics_free(metrics);
	// nng_fini() after an HTTP server can hang or crash (nng#918).
	if (http == NULL) {
		dtxi_transport_fini();
	}
	return status;
}
