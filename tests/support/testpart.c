// SPDX-License-Identifier: MIT
//
// dtx-testpart: a participant process whose behaviour the test chooses per
// branch, and which writes down everything it is asked. It registers method
// "op" with all five callbacks. The branch payload is a text such as
// "prepare=refuse;commit=retry:2;execute=sleep:300" that says, per phase,
// ok | refuse | retry:N (RETRY for the first N calls of that gid, branch and
// phase, counted here) | sleep:MS (then ok); a phase not named is ok. Every
// callback appends "CALL <phase> <gid> <branch> <attempt> <result>" to the
// call log (one write() per line on an O_APPEND file, so lines never mix).
// An in-memory effect set keyed by (gid, branch) stands for the business
// data: COMMIT or EXECUTE answering OK applies the effect once ("APPLY <gid>
// <branch>" when newly applied), ABORT or COMPENSATE takes it back once
// ("UNDO <gid> <branch>" when it was in place). The tests then read the log
// to prove exactly-once effects and call order. The reply payload is
// "<name>:<PHASE>". SIGTERM or SIGINT closes the participant and exits 0.
//
// Usage: dtx-testpart --listen URL --log FILE [--name NAME] [--workers N]

#include <dtx/dtx.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"

// What one phase does.
typedef enum act {
	ACT_OK,
	ACT_REFUSE,
	ACT_RETRY,
	ACT_SLEEP,
} act;

typedef struct behaviour {
	act      what;
	unsigned arg; // retry count or sleep ms
} behaviour;

// One remembered (gid, branch): calls counted per phase, and the effect.
typedef struct entry {
	struct entry *next;
	char          gid[DTX_GID_MAX + 1];
	uint32_t      branch;
	unsigned      calls[6]; // indexed by dtx_phase
	bool          applied;
	bool          undone;
} entry;

// The process state, passed to every callback. The lock guards the entry
// list and orders the log lines of one branch with its effect changes.
typedef struct testpart {
	pthread_mutex_t lock;
	entry          *entries;
	int             logfd;
	const char     *name;
} testpart;

static const char *const phase_keys[] = {
    [DTX_PHASE_PREPARE]    = "prepare",
    [DTX_PHASE_COMMIT]     = "commit",
    [DTX_PHASE_ABORT]      = "abort",
    [DTX_PHASE_EXECUTE]    = "execute",
    [DTX_PHASE_COMPENSATE] = "compensate",
};

// Reads the behaviour of phase from the payload "k=v;k=v". Anything it does
// not understand is ok: the tests write the payloads.
static behaviour
parse_behaviour(const dtx_call *call)
{
	behaviour   b = {ACT_OK, 0};
	char        text[512];
	size_t      n = call->payload_len;
	const char *key;
	char       *save = NULL;

	if (call->phase < DTX_PHASE_PREPARE ||
	    call->phase > DTX_PHASE_COMPENSATE) {
		return b;
	}
	key = phase_keys[call->phase];
	if (n >= sizeof(text)) {
		n = sizeof(text) - 1;
	}
	if (n > 0) {
		memcpy(text, call->payload, n);
	}
	text[n] = '\0';
	for (char *item = strtok_r(text, ";", &save); item != NULL;
	     item       = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(item, '=');
		char *v;

		if (eq == NULL) {
			continue;
		}
		*eq = '\0';
		v   = eq + 1;
		if (strcmp(item, key) != 0) {
			continue;
		}
		if (strcmp(v, "refuse") == 0) {
			b.what = ACT_REFUSE;
		} else if (strncmp(v, "retry:", 6) == 0) {
			b.what = ACT_RETRY;
			b.arg  = (unsigned)strtoul(v + 6, NULL, 10);
		} else if (strncmp(v, "sleep:", 6) == 0) {
			b.what = ACT_SLEEP;
			b.arg  = (unsigned)strtoul(v + 6, NULL, 10);
		} else {
			b.what = ACT_OK;
		}
	}
	return b;
}

// Finds or adds the entry of (gid, branch). Called with the lock held.
static entry *
find_entry(testpart *tp, const char *gid, uint32_t branch)
{
	entry *e;

	for (e = tp->entries; e != NULL; e = e->next) {
		if (e->branch == branch && strcmp(e->gid, gid) == 0) {
			return e;
		}
	}
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		abort();
	}
	dtxi_strlcpy(e->gid, gid, sizeof(e->gid));
	e->branch   = branch;
	e->next     = tp->entries;
	tp->entries = e;
	return e;
}

static void log_line(testpart *tp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
log_line(testpart *tp, const char *fmt, ...)
{
	char    line[512];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0) {
		return;
	}
	if ((size_t)n > sizeof(line) - 2) {
		n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	if (write(tp->logfd, line, (size_t)n) != n) {
		DTXI_ERROR("testpart: log write: %s", strerror(errno));
	}
}

static const char *
result_name(dtx_result r)
{
	switch (r) {
	case DTX_OK:
		return "OK";
	case DTX_REFUSED:
		return "REFUSED";
	case DTX_RETRY:
		return "RETRY";
	}
	return "?";
}

// The one callback behind all five phases.
static dtx_result
on_call(const dtx_call *call, dtx_reply *reply, void *arg)
{
	testpart  *tp = arg;
	behaviour  b  = parse_behaviour(call);
	dtx_result r  = DTX_OK;
	char       out[128];
	entry     *e;

	if (b.what == ACT_SLEEP) {
		struct timespec ts = {
		    (time_t)(b.arg / 1000), (long)(b.arg % 1000) * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		}
	}
	pthread_mutex_lock(&tp->lock);
	e = find_entry(tp, call->gid, call->branch_id);
	e->calls[call->phase]++;
	if (b.what == ACT_REFUSE) {
		r = DTX_REFUSED;
	} else if (b.what == ACT_RETRY && e->calls[call->phase] <= b.arg) {
		r = DTX_RETRY;
	}
	log_line(tp, "CALL %s %s %u %u %s", dtx_phase_name(call->phase),
	    call->gid, (unsigned)call->branch_id, (unsigned)call->attempt,
	    result_name(r));
	if (r == DTX_OK) {
		switch (call->phase) {
		case DTX_PHASE_COMMIT:
		case DTX_PHASE_EXECUTE:
			if (!e->applied) {
				e->applied = true;
				log_line(tp, "APPLY %s %u", call->gid,
				    (unsigned)call->branch_id);
			}
			break;
		case DTX_PHASE_ABORT:
		case DTX_PHASE_COMPENSATE:
			if (e->applied && !e->undone) {
				e->undone = true;
				log_line(tp, "UNDO %s %u", call->gid,
				    (unsigned)call->branch_id);
			}
			break;
		default:
			break;
		}
	}
	pthread_mutex_unlock(&tp->lock);
	snprintf(
	    out, sizeof(out), "%s:%s", tp->name, dtx_phase_name(call->phase));
	dtx_reply_set_payload(reply, out, strlen(out));
	dtx_reply_set_message(reply, result_name(r));
	return r;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: dtx-testpart --listen URL --log FILE [--name NAME] "
	    "[--workers N]\n");
}

int
main(int argc, char **argv)
{
	static const dtx_method_ops ops = {
	    .prepare    = on_call,
	    .commit     = on_call,
	    .abort      = on_call,
	    .execute    = on_call,
	    .compensate = on_call,
	};
	testpart         tp      = {.logfd = -1, .name = "p"};
	const char      *url     = NULL;
	const char      *logpath = NULL;
	unsigned         workers = 0;
	dtx_participant *p       = NULL;
	sigset_t         sigs;
	int              sig;
	int              rv;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (v == NULL) {
			usage();
			return 1;
		}
		if (strcmp(argv[i], "--listen") == 0) {
			url = v;
		} else if (strcmp(argv[i], "--log") == 0) {
			logpath = v;
		} else if (strcmp(argv[i], "--name") == 0) {
			tp.name = v;
		} else if (strcmp(argv[i], "--workers") == 0) {
			workers = (unsigned)strtoul(v, NULL, 10);
		} else {
			usage();
			return 1;
		}
		i++;
	}
	if (url == NULL || logpath == NULL) {
		usage();
		return 1;
	}
	tp.logfd =
	    open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (tp.logfd < 0) {
		fprintf(stderr, "dtx-testpart: %s: %s\n", logpath,
		    strerror(errno));
		return 1;
	}
	pthread_mutex_init(&tp.lock, NULL);

	// Block the signals before libdtx starts threads, so that only main
	// takes them, with sigwait().
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if ((rv = dtx_participant_open(&p)) != 0 ||
	    (workers > 0 &&
	        (rv = dtx_participant_set_workers(p, workers)) != 0) ||
	    (rv = dtx_participant_register(p, "op", &ops, &tp)) != 0 ||
	    (rv = dtx_participant_listen(p, url)) != 0) {
		fprintf(
		    stderr, "dtx-testpart: %s: %s\n", url, dtx_strerror(rv));
		dtx_participant_close(p);
		close(tp.logfd);
		return 1;
	}
	fprintf(stderr, "dtx-testpart %s listening on %s\n", tp.name, url);

	do {
		rv = sigwait(&sigs, &sig);
	} while (rv != 0);

	dtx_participant_close(p);
	pthread_mutex_destroy(&tp.lock);
	while (tp.entries != NULL) {
		entry *e   = tp.entries;
		tp.entries = e->next;
		free(e);
	}
	close(tp.logfd);
	fprintf(stderr, "dtx-testpart %s: signal %d, closed\n", tp.name, sig);
	return 0;
}
