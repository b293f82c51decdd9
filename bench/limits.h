// SPDX-License-Identifier: MIT
//
// limits: what this machine can do at best, measured by dtx-bench in the
// same run as the benchmark, so that the achieved throughput can be read
// as a fraction of it. net.c measures raw nng request/reply round trips
// (the only file of the bench besides the SDK that touches nng); store.c
// measures synced RocksDB write batches (the only one that touches RocksDB).

#ifndef DTX_BENCH_LIMITS_H
#define DTX_BENCH_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

// One measured limit: operations per second, and CPU seconds per operation
// of the whole process (both ends of a round trip; RocksDB's own threads).
typedef struct bench_limit {
	bool   ok;
	double ops_per_s;
	double cpu_us_per_op;
	double seconds;
	double ops;
	double ops_per_batch; // store only: writes per synced batch
} bench_limit;

// Echo round trips: a REP socket with conc contexts answering every request
// with its own message, and a REQ socket with conc contexts each keeping
// one request of msg_size bytes in flight, in two processes (as dtxd and
// its peers are), over url (tcp:// or ipc://), for seconds. CPU per round
// trip is both processes'. Runs in two child processes (see net.c).
// Returns 0 or a DTX_E* code.
int bench_limit_echo(const char *url, unsigned conc, size_t msg_size,
    double seconds, bench_limit *out);

// The children's side of bench_limit_echo: main() calls it when argv[1] is
// --limit-echo-server (argv: url conc msg_size) or --limit-echo-client
// (argv: url conc msg_size seconds server_pid). Does not return.
void bench_limit_echo_child(int argc, char **argv);

// Synced RocksDB writes with group commit at concurrency conc: in a fresh
// database in dir, batches of conc puts (value_size bytes, 24-byte keys)
// are written with sync on, one after the other, for seconds; what
// dtxd's store does at best when conc writes wait for the same fsync.
// Returns 0 or a DTX_E* code.
int bench_limit_store(const char *dir, unsigned conc, size_t value_size,
    double seconds, bench_limit *out);

// Polls until something listens on url (tcp:// or ipc://), up to
// timeout_ms, giving up early when alive is false (if alive_pid > 0 and
// that process ended). Returns 0 or DTX_ETIMEDOUT.
int bench_wait_listening(const char *url, int timeout_ms, int alive_pid);

// Releases what nng still holds (its threads, lingering pipes), so that a
// sanitizer build reports no leak at exit. Last call of the process.
void bench_net_fini(void);

#endif // DTX_BENCH_LIMITS_H
