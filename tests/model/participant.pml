/* SPDX-License-Identifier: MIT */
/*
 * participant.pml: the participants of the model (dtx.pml): the barrier of
 * sdk/src/barrier.c, which turns every delivery of a call into at most one
 * effect, and the barrier's resolver, which settles an in-doubt 2PC branch
 * by asking Resolve.
 *
 * A delivery is one atomic step, as in the code: the barrier holds the
 * (gid, branch) stripe from its first read to the end of the one write
 * that carries the business change and the record of the call, and the
 * reply leaves only once a sync covers that write and everything the
 * delivery read (group commit, sdk/src/barrier.c). The write is unsynced
 * until then, but the WAL is recovered as a prefix, so a crash (even a
 * power loss) loses a suffix of the writes, none of them answered, each
 * depending only on writes before it: as if those deliveries never
 * happened. A crash of the participant therefore loses either the whole
 * delivery (the call is gone) or only its reply: the participant's crash
 * fault drops its queued calls, its replies and the resolver's pending
 * answer, and nothing that was answered.
 *
 * The barrier's per-phase table. A phase with a record of its own replays
 * it, except a forward OK once the branch has a back record: REFUSED, not
 * recorded (finding 3). These are the rows for a phase without one:
 *   FWD (PREPARE, EXECUTE)  back record here -> REFUSED, recorded (no
 *                           hanging); else the callback runs: OK or
 *                           REFUSED (the business decides), recorded
 *   COM (COMMIT)            back record, or no OK forward record -> REFUSED,
 *                           not recorded (dtxd retries); else commit
 *   BAK (ABORT, COMPENSATE) commit record (2PC) -> REFUSED, not recorded;
 *                           no OK forward record -> null operation: OK,
 *                           recorded; else the undo runs
 * The prepared key of the code (what the resolver scans) is derived: a
 * forward OK record with neither a commit nor a back record.
 */

#define PREPARED(b) (rf[b] == R_OK && !rc[b] && rb[b] == R_NONE)

/* The undo of branch b answers OK: a null one when nothing ran here. */
inline close_branch(b)
{
	closed[b] = 1;
}

/* Runs one call (b, ph) through the barrier; res gets OK or REF. */
inline barrier(b, ph, res)
{
	if
	:: ph == FWD ->
		if
		:: rf[b] != R_NONE ->
#ifndef MUT_REPLAY_AFTER_UNDO
			/* Its OK no longer holds once the branch was undone
			 * here. */
			res = (rf[b] == R_OK && rb[b] == R_NONE -> OK : REF)
#else
			res = (rf[b] == R_OK -> OK : REF)
#endif
#ifndef MUT_NO_HANGING_CHECK
		:: rf[b] == R_NONE && rb[b] != R_NONE ->
			/* Too late: refused, and recorded (R_LATE is a
			 * REFUSED record the model tells apart). */
			rf[b] = R_LATE;
			res = REF
#endif
		:: else ->
			/* The callback: the business says yes or no. */
			if
			:: res = OK;
				/* P3 no hanging: nothing reserved or executed
				 * once its undo was answered OK. */
				assert(!closed[b]);
				/* P2 exactly once. */
				assert(ef[b] == 0);
				ef[b]++;
				rf[b] = R_OK
			:: res = REF;
				rf[b] = R_REF
			fi
		fi
	:: ph == COM ->
		if
		:: rc[b] ->
			res = OK
		:: !rc[b] && (rb[b] != R_NONE || rf[b] != R_OK) ->
			res = REF
		:: else ->
			/* P2: a commit follows its prepare's effect, once. */
			assert(ef[b] == 1 && ec[b] == 0);
			ec[b]++;
			rc[b] = 1;
			res = OK
		fi
	:: else -> /* BAK */
		if
		:: rb[b] != R_NONE ->
			res = OK
		:: rb[b] == R_NONE && rc[b] ->
			res = REF
		:: rb[b] == R_NONE && !rc[b] && rf[b] != R_OK ->
#ifndef MUT_NO_NULL_RECORD
			rb[b] = R_NULL;
#endif
			close_branch(b);
			res = OK
		:: else ->
			/* P2: an undo follows its forward effect, once. */
			assert(ef[b] == 1 && eb[b] == 0);
			eb[b]++;
			rb[b] = R_OK;
			close_branch(b);
			res = OK
		fi
	fi
}

/* Delivery of a call from node N in phase PH to participant B. The copy
 * stays in the network when the delivery is a duplicate (a fault). The reply
 * goes back to the node only while it still holds the transaction (an nng
 * reply to a dead process or a dropped transaction is discarded). */
#define DELIVER(N, B, PH) \
	:: atomic { \
		call[I(N, B)] & PBIT(PH) -> \
		if \
		:: call[I(N, B)] = call[I(N, B)] & ~PBIT(PH) \
		:: faults < MAXF -> faults++; \
			printf("duplicate call %d phase %d\n", I(N, B), PH) \
		fi; \
		barrier(B, PH, res); \
		printf("branch %d: phase %d from node %d: %d\n", B, PH, N, res); \
		/* P3: no forward OK once the branch's undo answered OK. */ \
		assert(PH != FWD || res != OK || !closed[B]); \
		if \
		:: alive[N] && has[N] -> \
			rep[I(N, B)] = rep[I(N, B)] | RBIT(PH, res) \
		:: else -> skip \
		fi; \
		res = 0 \
	}

/* A participant crashes and restarts: everything volatile is lost (calls
 * queued, replies not sent, the resolver's answer), its records are not. */
#if NN > 1
#define CRASH_MORE(B) call[I(1, B)] = 0; rep[I(1, B)] = 0;
#else
#define CRASH_MORE(B)
#endif
#define CRASH(B) \
	:: atomic { \
		faults < MAXF -> \
		faults++; \
		printf("branch %d: crash\n", B); \
		call[I(0, B)] = 0; \
		rep[I(0, B)] = 0; \
		CRASH_MORE(B) \
		ans[B] = S_NONE \
	}

#ifdef SAGA
#define DELIVER_N(N, B) DELIVER(N, B, FWD) DELIVER(N, B, BAK)
#else
#define DELIVER_N(N, B) DELIVER(N, B, FWD) DELIVER(N, B, COM) DELIVER(N, B, BAK)
#endif
#if NN > 1
#define DELIVER_B(B) DELIVER_N(0, B) DELIVER_N(1, B)
#else
#define DELIVER_B(B) DELIVER_N(0, B)
#endif

/* Both participants, as one process: fewer processes keep the fairness
 * check of the liveness property small, and each delivery is atomic
 * anyway. */
proctype Participants()
{
	byte res;
end:
	do
	DELIVER_B(0)
	DELIVER_B(1)
	CRASH(0)
	CRASH(1)
	od
}

/* What node N answers to Resolve (dtxd's on_resolve): its memory when it
 * holds the transaction, with COMMITTING reported as PREPARING until the
 * decision is written; else the store; no record is ABORTED (presumed
 * abort). */
#ifndef MUT_RESOLVE_UNSYNCED
#define RESOLVE(N) \
	(has[N] -> (ms[N] == S_COMMITTING && mpers[N] -> S_PREPARING : ms[N]) \
	        : (st_state == S_NONE -> S_ABORTED : st_state))
#else
#define RESOLVE(N) \
	(has[N] -> ms[N] : (st_state == S_NONE -> S_ABORTED : st_state))
#endif

/* The resolver acts only on answers that cannot change: COMMITTED,
 * COMMITTING (reported only once synced), ABORTING and ABORTED. */
#define ACTIONABLE(a) ((a) != S_NONE && (a) != S_PREPARING)

/* Asks node N about the in-doubt branch B and keeps the answer, to act on
 * it in a later step (so it can be stale by then). Only an answer it acts
 * on is a step: asking again and again about an undecided branch changes
 * nothing. */
#define ASK(N, B) \
	:: atomic { \
		PREPARED(B) && ans[B] == S_NONE && alive[N] && \
		    ACTIONABLE(RESOLVE(N)) -> \
		ans[B] = RESOLVE(N); \
		printf("resolver %d: node %d says %d\n", B, N, ans[B]) \
	}

/* Runs the decided phase through the barrier, as a delivery from dtxd
 * would; dtxd's own call is then a duplicate. */
#define ACT(B) \
	:: atomic { \
		ans[B] != S_NONE -> \
		if \
		:: ans[B] == S_COMMITTED || ans[B] == S_COMMITTING -> \
			barrier(B, COM, res); \
			printf("resolver %d: commit: %d\n", B, res) \
		:: else -> \
			barrier(B, BAK, res); \
			printf("resolver %d: abort: %d\n", B, res) \
		fi; \
		ans[B] = S_NONE; \
		res = 0 \
	}

#if NN > 1
#define ASK_B(B) ASK(0, B) ASK(1, B)
#else
#define ASK_B(B) ASK(0, B)
#endif

/* The resolvers of both participants (a background thread of each). */
proctype Resolvers()
{
	byte res;
end:
	do
	ASK_B(0)
	ASK_B(1)
	ACT(0)
	ACT(1)
	od
}
