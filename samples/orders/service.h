// SPDX-License-Identifier: MIT
//
// service: what the inventory and order processes share around their
// business code: signal handling, serving one method until asked to stop,
// the one-line story each callback prints, and the TLS settings every
// process of the sample takes from --tls DIR. Kept apart so each service
// file reads as its business rules and nothing else.

#ifndef ORDERS_SERVICE_H
#define ORDERS_SERVICE_H

#include <pthread.h>
#include <signal.h>

#include <dtx/dtx.h>

#include "kv.h"

// Blocks SIGINT and SIGTERM in the calling thread and makes stdout line
// buffered. Call first in main, before any thread exists (RocksDB and libdtx
// start threads), so every thread inherits the mask and the signal is taken
// only by orders_service_run().
void orders_process_init(sigset_t *stop_signals);

// Registers the service's methods on p (a generated <service>_register()
// with the service's callbacks and arg). Returns 0 or a DTX_E* code.
typedef int (*orders_register_fn)(dtx_participant *p, void *arg);

// TLS settings from a directory made by samples/tls/make-certs.sh: the
// services-CA certificate "service" that every client and participant of
// the sample has, and the coordinator CA to check dtxd with (and, for a
// participant, to take calls only from dtxd). The paths live in t.
typedef struct orders_tls {
	char         cert[4096], key[4096], ca[4096];
	dtx_tls_opts opts;
} orders_tls;
void orders_tls_init(orders_tls *t, const char *dir);

// Serves what reg registers (arg passed to it) on url until SIGINT or
// SIGTERM arrives, then closes the participant, which waits for running
// callbacks. The callbacks run behind libdtx's durable barrier kept in kv:
// each runs at most once per (gid, branch, phase), stages its writes in the
// barrier's batch (records.h), and runs with mu held until its writes are
// on disk, so that callbacks reading shared data (a SKU's stock) never
// interleave. A tls+tcp:// url takes the TLS settings of tls_dir (see
// orders_tls_init; NULL for plain). what names the service in its first
// line. Returns 0, or 1 after printing the dtx error.
int orders_service_run(const char *name, const char *url, const char *tls_dir,
    const char *what, orders_register_fn reg, void *arg, orders_kv *kv,
    pthread_mutex_t *mu, const sigset_t *stop_signals);

// Prints "<name>: [<gid 8>/<branch>] <PHASE> <method> <what>" as one line, so
// the demo reads like a story even with several workers printing. The
// method is the last part of its wire name ("Reserve").
void orders_story(const char *name, const dtx_call *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Storage key of a branch's record: "branch/<gid>/<branch_id>". The branch
// id is the last, numeric segment, so keys are unambiguous whatever the gid
// holds.
#define ORDERS_BRANCH_KEY_MAX (sizeof("branch//4294967295") + DTX_GID_MAX)
void orders_branch_key(char *key, const dtx_call *call);

#endif // ORDERS_SERVICE_H
