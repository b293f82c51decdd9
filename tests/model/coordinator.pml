/* SPDX-License-Identifier: MIT */
/*
 * coordinator.pml: a dtxd node of the model (dtx.pml): the engines of
 * coordinator/engine_2pc.c and engine_saga.c (their headers hold the
 * transition tables this follows), the transaction manager's writes and
 * calls, and the cluster's ownership: every store write is conditional on
 * the node still owning the transaction (owner and epoch), a write that
 * finds ownership lost drops the transaction at once, and a node takes over
 * a transaction whose owner's lease has expired.
 *
 * One node step is one pass of dtxd's loop: an event in, the engine's
 * actions out. Calls leave at once (into the network); a record write is
 * queued to the store writer with a snapshot of the transaction taken at
 * the end of the pass, and the writer applies it in a later step of its
 * own, so a crash loses a queued write. A write with wait (a decision) ends
 * in PERSISTED, which is handled in the writer's step.
 *
 * Timing is abstract: a retry is sent in the pass that saw the call fail
 * (its backoff is the time the retry spends in the network); a forward call
 * may be retried or given up at any failure (its retry budget or the
 * deadline may have run out); the deadline passes once, at any moment
 * (the global late), and a call fails (times out) only when neither it nor
 * its reply is in the network any more: a lost message, or a crash.
 */

/* A record is decided once it left PREPARING (RUNNING); its side is the
 * commit or the undo. */
#define DECIDED(s) ((s) >= S_COMMITTING)
#define SIDE(s) ((s) == S_COMMITTING || (s) == S_COMMITTED)

#define ALLD(n, bit) \
	((mdone[I(n, 0)] & (bit)) != 0 && (mdone[I(n, 1)] & (bit)) != 0)

/* Queues a write of the record; kind W_SYNC also makes the engine wait
 * for it (persisting). The snapshot is taken at the end of the pass. */
inline queue_write(n, kind)
{
	if
	:: kind == W_SYNC || wq[n] == W_SYNC -> wq[n] = W_SYNC
	:: else -> wq[n] = W_ASYNC
	fi;
	if
	:: kind == W_SYNC -> mpers[n] = 1
	:: else -> skip
	fi;
	dirty = 1
}

/* The end of a pass: the queued write gets the transaction as it is now. */
inline end_pass(n)
{
	if
	:: dirty ->
		wq_state[n] = ms[n];
		wq_cur[n] = mcur[n];
		wq_done[I(n, 0)] = mdone[I(n, 0)];
		wq_done[I(n, 1)] = mdone[I(n, 1)];
		dirty = 0
	:: else -> skip
	fi
}

/* Calls branch b in phase ph (a branch has at most one call in flight). */
inline send(n, b, ph)
{
	printf("node %d: call branch %d phase %d\n", n, b, ph);
	call[I(n, b)] = call[I(n, b)] | PBIT(ph);
	infl[I(n, b)] = ph + 1;
	if
	:: ph == FWD -> mdone[I(n, b)] = mdone[I(n, b)] | D_SENT
	:: else -> skip
	fi
}

/* Calls a phase-two or COMPENSATE call again (after its backoff). */
inline retry(n, b, ph)
{
#ifndef MUT_NO_RETRY
	send(n, b, ph)
#else
	skip
#endif
}

/* Calls ph on every branch not done and not in flight (those in flight get
 * it when their call ends). */
inline send_all(n, ph)
{
	if
	:: infl[I(n, 0)] == 0 && (mdone[I(n, 0)] & D_FINAL) == 0 ->
		send(n, 0, ph)
	:: else -> skip
	fi;
	if
	:: infl[I(n, 1)] == 0 && (mdone[I(n, 1)] & D_FINAL) == 0 ->
		send(n, 1, ph)
	:: else -> skip
	fi
}

/* The outcome is settled (the client may be told it) by a synced decision
 * or by presumed abort; a saga's COMMITTED only by its final record. */
inline settle(st)
{
	/* Two nodes, or two lives of one, never settle different outcomes. */
	assert(outcome == S_NONE || outcome == st);
	outcome = st;
	tell(st)
}

inline finish(n, st)
{
	printf("node %d: finish %d\n", n, st);
	ms[n] = st;
	queue_write(n, W_ASYNC);
	if
	:: !(SAGA_MODE && st == S_COMMITTED) -> settle(st)
	:: else -> skip
	fi
}

/* Forgets the transaction: after its final record, or at once when a write
 * found that this node no longer owns it. Replies still on their way are
 * then discarded. */
inline drop(n)
{
	printf("node %d: drop\n", n);
	has[n] = 0;
	ms[n] = S_NONE;
	mcur[n] = 0;
	mpers[n] = 0;
	wq[n] = W_NONE;
	wq_state[n] = S_NONE;
	wq_cur[n] = 0;
	mdone[I(n, 0)] = 0;
	mdone[I(n, 1)] = 0;
	wq_done[I(n, 0)] = 0;
	wq_done[I(n, 1)] = 0;
	infl[I(n, 0)] = 0;
	infl[I(n, 1)] = 0;
	rep[I(n, 0)] = 0;
	rep[I(n, 1)] = 0
}

#ifndef SAGA
/* ------------------------------------------------------------------ 2PC */

inline decide_commit(n)
{
	printf("node %d: decide commit\n", n);
	ms[n] = S_COMMITTING;
	queue_write(n, W_SYNC);
#ifdef MUT_COMMIT_EARLY
	send_all(n, COM)
#endif
}

/* Presumed abort: the abort needs no synced write. Alone, dtxd sends ABORT
 * at once; in a cluster no phase-two call leaves before its decision write
 * succeeded, so the ABORTs wait for PERSISTED. (With -DABORT_AT_ONCE a
 * cluster node aborts as one node does, and spin finds no violation
 * either: a takeover aborts PREPARING, so no new owner ever commits what a
 * zombie aborts. The wait is defence in depth, for ABORT.) */
inline decide_abort(n)
{
	printf("node %d: decide abort\n", n);
	ms[n] = S_ABORTING;
#ifdef ABORT_WAITS
	queue_write(n, W_SYNC)
#else
	queue_write(n, W_ASYNC);
	send_all(n, BAK)
#endif
}

inline phase_two(n, ph, final)
{
	if
	:: ALLD(n, D_FINAL) -> finish(n, final)
	:: else -> send_all(n, ph)
	fi
}

inline on_reply(n, b, ph, s)
{
	if
	:: ph == FWD ->
		if
		:: s == OK -> mdone[I(n, b)] = mdone[I(n, b)] | D_FWD
		:: else -> skip
		fi;
		if
		:: ms[n] != S_PREPARING ->
			/* A late vote: the branch gets its ABORT now (or at
			 * PERSISTED, while the abort is being written). */
			if
			:: ms[n] == S_ABORTING && !mpers[n] -> send(n, b, BAK)
			:: else -> skip
			fi
		:: ms[n] == S_PREPARING && s == OK ->
			if
			:: ALLD(n, D_FWD) -> decide_commit(n)
			:: else -> skip
			fi
		:: ms[n] == S_PREPARING && s != OK -> decide_abort(n)
		fi
	:: else ->
		if
		:: s == OK ->
			mdone[I(n, b)] = mdone[I(n, b)] | D_FINAL;
			if
			:: ALLD(n, D_FINAL) ->
				finish(n, (ph == COM -> S_COMMITTED : S_ABORTED))
			:: else -> skip
			fi
		:: else ->
			/* Phase two is retried for ever. */
			retry(n, b, ph)
		fi
	fi
}

inline on_failed(n, b, ph)
{
	if
	:: ph == FWD ->
		if
		:: ms[n] != S_PREPARING ->
			if
			:: ms[n] == S_ABORTING && !mpers[n] -> send(n, b, BAK)
			:: else -> skip
			fi
		/* Retry, or give up: the retries or the deadline ran out. */
		:: ms[n] == S_PREPARING && !late -> send(n, b, FWD)
		:: ms[n] == S_PREPARING -> decide_abort(n)
		fi
	:: else -> retry(n, b, ph)
	fi
}

inline on_persisted(n)
{
	if
	:: ms[n] == S_COMMITTING -> phase_two(n, COM, S_COMMITTED)
	:: ms[n] == S_ABORTING -> phase_two(n, BAK, S_ABORTED)
	:: else -> skip
	fi
}

/* Recovery trusts only what was written: PREPARING may have lost votes and
 * aborts; a decided state calls phase two again. */
inline on_recover(n)
{
	if
	:: ms[n] == S_PREPARING -> decide_abort(n)
	:: ms[n] == S_COMMITTING -> phase_two(n, COM, S_COMMITTED)
	:: ms[n] == S_ABORTING -> phase_two(n, BAK, S_ABORTED)
	fi
}

inline on_start(n)
{
	send_all(n, FWD)
}

#define DEADLINE_GUARD(n) (ms[n] == S_PREPARING)
#define on_deadline(n) decide_abort(n)

#else
/* ----------------------------------------------------------------- saga */

inline turn_back(n)
{
	printf("node %d: turn back at %d\n", n, mcur[n]);
	ms[n] = S_COMPENSATING;
#ifndef MUT_RECOVER_TRUSTS_SENT
	/* Compensation starts from the last step that may have run: above
	 * the cursor only a recovered saga has any (see on_recover). */
	mcur[n] = NB - 1;
#endif
	queue_write(n, W_SYNC)
}

#ifndef GROUP
/* Compensates the cursor step, going down past steps never sent or already
 * compensated, or finishes below step 0. A step whose EXECUTE is in flight
 * waits for its call to end: COMPENSATE never overtakes it. */
inline compensate_next(n)
{
	if
	:: mpers[n] -> skip
	:: else ->
		if
		:: mcur[n] >= NB -> mcur[n] = NB - 1
		:: else -> skip
		fi;
		do
		:: (mdone[I(n, mcur[n])] & D_SENT) != 0 &&
		    (mdone[I(n, mcur[n])] & D_FINAL) == 0 ->
			if
			:: infl[I(n, mcur[n])] == 0 -> send(n, mcur[n], BAK)
			:: else -> skip
			fi;
			break
		:: else ->
			if
			:: mcur[n] == 0 ->
				finish(n, S_COMPENSATED);
				break
			:: else -> mcur[n]--
			fi
		od
	fi
}

inline execute_next(n)
{
	if
	:: mcur[n] >= NB -> finish(n, S_COMMITTED)
	:: mcur[n] < NB && late -> turn_back(n)
	:: else -> send(n, mcur[n], FWD)
	fi
}
#else
/* -DGROUP: both steps are one group (engine_saga.c's groups): executed in
 * parallel, the saga done once both executed OK; compensated in parallel,
 * each step that may have run (SENT) once its own EXECUTE has ended. */
#ifndef MUT_GROUP_UNDO_DONE_ONLY
#define UNDO(n, b) \
	((mdone[I(n, b)] & D_SENT) != 0 && (mdone[I(n, b)] & D_FINAL) == 0)
#else
/* Mutant: only steps known to have executed OK are undone, not those
 * still executing when the saga turned back. */
#define UNDO(n, b) \
	((mdone[I(n, b)] & D_FWD) != 0 && (mdone[I(n, b)] & D_FINAL) == 0)
#endif

inline compensate_b(n, b)
{
	if
	:: UNDO(n, b) && infl[I(n, b)] == 0 -> send(n, b, BAK)
	:: else -> skip
	fi
}

inline compensate_next(n)
{
	if
	:: mpers[n] -> skip
	:: else ->
		compensate_b(n, 0);
		compensate_b(n, 1);
		if
		:: !UNDO(n, 0) && !UNDO(n, 1) -> finish(n, S_COMPENSATED)
		:: else -> skip
		fi
	fi
}

inline execute_b(n, b)
{
	if
	:: (mdone[I(n, b)] & D_FWD) == 0 && infl[I(n, b)] == 0 ->
		send(n, b, FWD)
	:: else -> skip
	fi
}

inline execute_next(n)
{
	if
	:: ALLD(n, D_FWD) -> mcur[n] = NB; finish(n, S_COMMITTED)
	:: !ALLD(n, D_FWD) && late -> turn_back(n)
	:: else -> execute_b(n, 0); execute_b(n, 1)
	fi
}
#endif

inline on_reply(n, b, ph, s)
{
	if
	:: ph == FWD ->
		if
		:: s == OK -> mdone[I(n, b)] = mdone[I(n, b)] | D_FWD
		:: else -> skip
		fi;
		if
		:: ms[n] != S_RUNNING ->
			/* Turned back while this step ran: now it can be
			 * compensated. */
			if
			:: ms[n] == S_COMPENSATING -> compensate_next(n)
			:: else -> skip
			fi
#ifndef GROUP
		:: ms[n] == S_RUNNING && s == OK ->
			mcur[n]++;
			if
			:: mcur[n] < NB && !late -> queue_write(n, W_ASYNC)
			:: else -> skip
			fi;
			execute_next(n)
#else
		:: ms[n] == S_RUNNING && s == OK ->
			/* The group is done once both executed OK. */
			if
			:: ALLD(n, D_FWD) -> execute_next(n)
			:: else -> skip
			fi
#endif
		:: ms[n] == S_RUNNING && s != OK -> turn_back(n)
		fi
	:: else ->
		if
		:: ms[n] != S_COMPENSATING -> skip
		:: ms[n] == S_COMPENSATING && s != OK ->
			/* Compensation is retried for ever. */
			retry(n, b, BAK)
		:: ms[n] == S_COMPENSATING && s == OK ->
			mdone[I(n, b)] = mdone[I(n, b)] | D_FINAL;
#ifndef GROUP
			if
			:: mcur[n] == 0 -> finish(n, S_COMPENSATED)
			:: else ->
				mcur[n]--;
				queue_write(n, W_ASYNC);
				compensate_next(n)
			fi
#else
			compensate_next(n)
#endif
		fi
	fi
}

inline on_failed(n, b, ph)
{
	if
	:: ph == FWD ->
		if
		:: ms[n] != S_RUNNING ->
			if
			:: ms[n] == S_COMPENSATING -> compensate_next(n)
			:: else -> skip
			fi
		/* Retry, or give up: the retries or the deadline ran out. */
		:: ms[n] == S_RUNNING && !late -> send(n, b, FWD)
		:: ms[n] == S_RUNNING -> turn_back(n)
		fi
	:: else ->
		if
		:: ms[n] == S_COMPENSATING -> retry(n, b, BAK)
		:: else -> skip
		fi
	fi
}

inline on_persisted(n)
{
	if
	:: ms[n] == S_COMPENSATING -> compensate_next(n)
	:: else -> skip
	fi
}

/* Recovery resumes from the written cursor. The record may be older than
 * the calls that left before the crash: a progress write lost with its
 * process, or, after a takeover, fenced, while the next EXECUTE had already
 * gone out. So every step from the cursor up may have run, and is marked so
 * that turning back compensates it (a null compensation where it never
 * ran, which the barrier records so that a late EXECUTE is refused). */
inline on_recover(n)
{
	if
	:: ms[n] == S_RUNNING ->
#ifndef MUT_RECOVER_TRUSTS_SENT
		mdone[I(n, 1)] = mdone[I(n, 1)] | D_SENT;
		if
		:: mcur[n] == 0 -> mdone[I(n, 0)] = mdone[I(n, 0)] | D_SENT
		:: else -> skip
		fi;
#endif
		execute_next(n)
	:: ms[n] == S_COMPENSATING -> compensate_next(n)
	fi
}

inline on_start(n)
{
	execute_next(n)
}

#define DEADLINE_GUARD(n) (ms[n] == S_RUNNING)
#define on_deadline(n) turn_back(n)

#endif

/* ------------------------------------------------------------ the node */

/* The reply (PH, S) to this node's in-flight call of branch B arrives.
 * (A duplicated reply is not modelled: nng matches a reply to its request
 * and drops any other copy.) */
#define RECV(B, PH, S) \
	:: atomic { \
		has[n] && infl[I(n, B)] == PH + 1 && \
		    (rep[I(n, B)] & RBIT(PH, S)) -> \
		rep[I(n, B)] = rep[I(n, B)] & ~RBIT(PH, S); \
		printf("node %d: reply branch %d phase %d: %d\n", n, B, PH, S); \
		infl[I(n, B)] = 0; \
		on_reply(n, B, PH, S); \
		end_pass(n) \
	}

/* The call in flight to branch B got no answer: nothing of it is left in
 * the network. */
#define TIMEOUT(B) \
	:: atomic { \
		has[n] && infl[I(n, B)] != 0 && \
		    (call[I(n, B)] & PBIT(infl[I(n, B)] - 1)) == 0 && \
		    (rep[I(n, B)] & (RBIT(infl[I(n, B)] - 1, OK) | \
		        RBIT(infl[I(n, B)] - 1, REF))) == 0 -> \
		t = infl[I(n, B)] - 1; \
		printf("node %d: no answer branch %d phase %d\n", n, B, t); \
		infl[I(n, B)] = 0; \
		on_failed(n, B, t); \
		end_pass(n); \
		t = 0 \
	}

#ifdef SAGA
#define RECV_B(B) \
	RECV(B, FWD, OK) RECV(B, FWD, REF) RECV(B, BAK, OK) RECV(B, BAK, REF)
#else
#define RECV_B(B) \
	RECV(B, FWD, OK) RECV(B, FWD, REF) RECV(B, COM, OK) \
	RECV(B, COM, REF) RECV(B, BAK, OK) RECV(B, BAK, REF)
#endif

/* A write lands only while the node still owns the transaction at the
 * epoch it holds: the fencing of every store write. */
#ifdef MUT_NO_FENCE
#define OWNS(n) (1)
#else
#define OWNS(n) (st_owner == n && st_epoch == ep[n])
#endif

/* A node may recover a transaction it owns and has not loaded, or take
 * over one whose owner's lease expired; either needs its own lease. */
#ifdef CLUSTER
#define MAY_ACQUIRE(n) \
	(lease[n] && (st_owner == n || !lease[st_owner]))
#else
#define MAY_ACQUIRE(n) (st_owner == n)
#endif

proctype Node(byte n)
{
	byte t;
	bool dirty;
end:
	do
	RECV_B(0)
	RECV_B(1)
	TIMEOUT(0)
	TIMEOUT(1)
	/* The deadline's timer. */
	:: atomic {
		has[n] && late && !mpers[n] && DEADLINE_GUARD(n) ->
		on_deadline(n);
		end_pass(n)
	}
	/* The store writer applies the queued write, conditional on
	 * ownership; a decision's write ends in PERSISTED. */
	:: atomic {
		alive[n] && wq[n] != W_NONE ->
		if
		:: OWNS(n) ->
			printf("node %d: write state %d cursor %d\n", n,
			    wq_state[n], wq_cur[n]);
			/* P5: a decided record never goes back on its
			 * decision. */
			assert(!DECIDED(st_state) ||
			    (SIDE(wq_state[n]) == SIDE(st_state) &&
			        wq_state[n] >= st_state));
			st_state = wq_state[n];
			st_cur = wq_cur[n];
			st_done[0] = wq_done[I(n, 0)];
			st_done[1] = wq_done[I(n, 1)];
			if
			:: TERMINAL(wq_state[n]) && wq_state[n] == ms[n] ->
				/* The final record: the transaction
				 * leaves memory. */
				if
				:: SAGA_MODE && ms[n] == S_COMMITTED ->
					settle(S_COMMITTED)
				:: else -> skip
				fi;
				drop(n)
			:: else ->
				t = wq[n];
				wq[n] = W_NONE;
				if
				:: t == W_SYNC ->
					mpers[n] = 0;
					on_persisted(n)
				:: else -> skip
				fi;
				t = 0;
				end_pass(n)
			fi
		:: else ->
			/* Ownership lost: drop it at once, send nothing. */
			printf("node %d: write fenced\n", n);
			drop(n)
		fi
	}
	/* Recovery (at start-up, of its own transactions) or takeover (of an
	 * expired node's): one conditional write takes ownership at a new
	 * epoch, then the engine resumes from the record. */
	:: atomic {
		alive[n] && !has[n] && st_state != S_NONE &&
		    !TERMINAL(st_state) && MAY_ACQUIRE(n) ->
		printf("node %d: acquire state %d cursor %d\n", n, st_state,
		    st_cur);
		st_owner = n;
		st_epoch++;
		ep[n] = st_epoch;
		has[n] = 1;
		ms[n] = st_state;
		mcur[n] = st_cur;
		mdone[I(n, 0)] = st_done[0];
		mdone[I(n, 1)] = st_done[1];
		on_recover(n);
		end_pass(n)
	}
	/* Crash (kill -9, power loss of the process): memory and the write
	 * queue are lost; calls already sent are in the network. */
	:: atomic {
		alive[n] && faults < MAXF ->
		faults++;
		printf("node %d: crash\n", n);
		drop(n);
		alive[n] = 0
	}
	:: atomic {
		!alive[n] ->
		alive[n] = 1;
#ifdef CLUSTER
		lease[n] = 1
#endif
	}
#ifdef CLUSTER
	/* A node that finds its lease expired (it was paused, or the database
	 * clock moved on) takes a new one and drops what it held: a survivor
	 * may own it by now. Until then it is a zombie, acting on memory. */
	:: atomic {
		alive[n] && !lease[n] ->
		lease[n] = 1;
		drop(n)
	}
#endif
	od
}
