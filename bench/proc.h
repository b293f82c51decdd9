// SPDX-License-Identifier: MIT
//
// proc: the processes dtx-bench starts (dtxd and its participants) and
// what it reads of them in /proc. A child gets SIGKILL when dtx-bench dies
// (PR_SET_PDEATHSIG), so an interrupted benchmark leaves nothing running.

#ifndef DTX_BENCH_PROC_H
#define DTX_BENCH_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// Starts argv[0] (a path) with argv, stdout and stderr appended to log.
// Must be called from the main thread (the death signal follows the thread
// that forked). Returns the pid, or -1 with errno set.
pid_t bench_spawn(char *const argv[], const char *log);

// True while pid runs (reaps it if it has just ended).
bool bench_alive(pid_t pid);

// SIGTERM, then SIGKILL after timeout_ms; reaps. Returns 0 when it ended by
// itself after SIGTERM, -1 when it had to be killed or was gone.
int bench_stop(pid_t pid, int timeout_ms);

// SIGKILL and reap.
void bench_kill(pid_t pid);

// CPU seconds (user + system) used so far by pid; negative when unknown.
double bench_proc_cpu_s(pid_t pid);

// A "VmHWM" / "VmRSS" line of /proc/pid/status in KiB; 0 when unknown.
uint64_t bench_proc_status_kib(pid_t pid, const char *field);

// Resets pid's peak RSS (VmHWM) to its current RSS (Linux >= 4.0, writing
// 5 to /proc/pid/clear_refs). False when that was not permitted.
bool bench_proc_reset_hwm(pid_t pid);

// CPU seconds used so far by this process (every thread).
double bench_self_cpu_s(void);

// Monotonic time in microseconds.
int64_t bench_now_us(void);

// Makes a fresh directory under $TMPDIR (or /tmp) into out. 0 or errno.
int bench_mkdtemp(char *out, size_t cap);

// Removes path and everything below it (links not followed). Best effort.
void bench_rmtree(const char *path);

// Bytes of the regular files under path (links not followed).
uint64_t bench_dir_bytes(const char *path);

// The machine's 1-minute load average (/proc/loadavg), or -1.
double bench_loadavg(void);

// The directory holding the running executable (from /proc/self/exe).
void bench_self_dir(char *out, size_t cap);

// Finds a program: each candidate path that is executable, else name in
// $PATH. Writes it to out and returns true when found.
bool bench_find_program(
    const char *name, const char *const candidates[], char *out, size_t cap);

#endif // DTX_BENCH_PROC_H
