/* SPDX-License-Identifier: MIT */
/*
 * dtx.pml: a model of the dtx protocol for the spin model checker: 2PC with
 * presumed abort, the saga, the participants' barrier and resolver, and the
 * cluster's ownership of a transaction (owner and epoch, leases, takeover,
 * fenced writes), under message loss, duplication and reordering and
 * crashes of any process. tests/model/check.sh generates spin's verifier for
 * each configuration and runs the checks below (ctest: dtx.model.protocol).
 *
 * Processes (every step is one atomic action of one of them)
 *   Node(n)       a dtxd node (coordinator.pml): the engines of
 *                 coordinator/engine_2pc.c and engine_saga.c, the store
 *                 writer, crash and restart, recovery, takeover, its lease.
 *   Participants  both participants' barrier, sdk/src/barrier.c
 *                 (participant.pml).
 *   Resolvers     both participants' resolvers (2PC).
 *   init          the set-up (node 0 has accepted the client's Submit and
 *                 started it), then time, the network's faults, leases
 *                 running out, and the client learning the outcome.
 *
 * State. One transaction of two branches, each on its own participant;
 * one dtxd node, or two (-DCLUSTER) on one store. The store holds the
 * record (state, saga cursor, each branch's SENT, FWD and FINAL bits) with
 * its owner and epoch. A node holds the transaction in memory, the write it
 * queued for the store (the snapshot a crash loses) and the call in flight
 * to each branch. The network is a set of calls and replies per (node,
 * branch): any one may be delivered next (reordering), lost, or delivered
 * and kept (duplicated); at most one copy of a given (node, branch, phase)
 * is in flight at a time. Each participant's barrier records (OK, REFUSED,
 * null) are durable.
 *
 * Faults, each one unit of the budget MAXF (set per check in check.sh):
 * - one call lost, or the replies to one (node, branch) lost;
 * - a call delivered twice (a reply is never: nng matches it to its
 *   request);
 * - a dtxd node crashes (kill -9): its memory and its queued writes are
 *   lost, the calls it sent are still in the network; it restarts later
 *   (free) and recovers what it owns, at a new epoch;
 * - a participant crashes: its queued calls, unsent replies and resolver
 *   answer are lost; its barrier writes are atomic with the business
 *   change, so nothing else is;
 * - cluster: a live node's lease expires (a pause, SIGSTOP): the other node
 *   may take its transaction over while it acts on as a zombie, until a
 *   fenced write or its next lease renewal makes it drop the transaction.
 * Free, because they are timing and not faults: the deadline passes (once,
 * at any moment); a dead node's lease expires; a failed forward call is
 * retried or given up (its retries or the deadline ran out); a call fails
 * (times out) once nothing of it is left in the network; the business
 * answers a forward call OK or REFUSED.
 *
 * Properties
 * P1 atomicity: in 2PC never a branch committed while another is aborted
 *    (a null abort counts); a committed 2PC has every branch committed; a
 *    saga that ends COMMITTED has no compensated step. (ltl safe)
 * P2 exactly once: each effect (reserve or execute, commit, abort or
 *    compensate) runs at most once per branch, and a commit or an undo only
 *    after its forward effect; without one the undo is a null operation,
 *    recorded. (assertions in the barrier)
 * P3 no hanging: nothing is reserved or executed once its branch's undo was
 *    answered OK (the null record refuses the late call), no forward call
 *    is even answered OK then (a duplicate does not replay its OK), and an
 *    aborted or compensated outcome has every forward effect undone, for
 *    ever. (assertions in the barrier and the delivery, ltl safe)
 * P4 one outcome: dtxd never settles two outcomes (two nodes, or two lives
 *    of one), a client is never told two, and what it is told matches the
 *    effects. (assertions in settle and tell, ltl safe)
 * P5 fencing: a decided record is never overwritten by the other decision
 *    or by an earlier state. (assertion in the store writer)
 * P6 termination: every run reaches a terminal record with (2PC) no
 *    participant holding a prepared branch. (ltl terminates: <> DONE,
 *    pan -a) Every run has finitely many faults (the budget), so this is
 *    "every transaction ends once faults stop". It is checked over all
 *    runs, without fairness, which is stronger than under weak fairness and
 *    costs a fifth: no step of the model leaves the state unchanged (a
 *    Status or a Resolve that learns nothing is not a step), so a run that
 *    never ends is a cycle of the protocol (a livelock) or a stop (a
 *    deadlock), and spin reports both.
 * The reach_* claims are witnesses: spin must find a run to each (a commit,
 * a real undo, a late call refused, a recovered or taken-over transaction
 * that ended, a resolver committing, a zombie), so that no property holds
 * only because the model never gets there.
 *
 * Mutants (-D switches; check.sh expects each to fail the named property):
 * MUT_COMMIT_EARLY       COMMIT sent before the decision write (P1)
 * MUT_RESOLVE_UNSYNCED   Resolve reports COMMITTING while it is written (P1)
 * MUT_NO_FENCE           writes not conditional on owner and epoch (P1, P5)
 * MUT_NO_HANGING_CHECK   a prepare after its abort runs (P3)
 * MUT_NO_NULL_RECORD     a null undo is answered, not recorded (P3)
 * MUT_REPLAY_AFTER_UNDO  a forward call's OK record is replayed even after
 *                        its branch was undone (P3; finding 3, the code as
 *                        it was)
 * MUT_NO_RETRY           a failed phase-two or COMPENSATE call is not
 *                        retried (P6)
 * MUT_RECOVER_TRUSTS_SENT saga recovery trusts the recorded SENT bits (P1)
 * MUT_STATUS_UNSETTLED   Status reports a saga's COMMITTED before its final
 *                        record (P4)
 * MUT_GROUP_UNDO_DONE_ONLY  (-DGROUP) a turned-back group undoes only its
 *                        steps known to have executed, not one still
 *                        executing (P1)
 *
 * Found by the model and fixed in the code (the last two mutants are the
 * code as it was; tests/fault/crash_test.c has a regression test of each
 * with real processes):
 * - saga recovery (MUT_RECOVER_TRUSTS_SENT): a step's SENT bit reaches the
 *   record only with the next progress write (unsynced, queued), after its
 *   EXECUTE has left. A crash in between, then a restart past the deadline
 *   (or a takeover), turned the saga back from a cursor that misses that
 *   step: it ended COMPENSATED with the step executed and never
 *   compensated. Recovery now marks every step from the recovered cursor up
 *   as may-have-run and compensation starts from the last of them (null
 *   compensations where nothing ran): engine_saga.c's on_recover and
 *   turn_back.
 * - Status (MUT_STATUS_UNSETTLED): Status reported a saga's COMMITTED from
 *   memory before its final record was written, while the waiters were
 *   told only after it; a crash in between could end it COMPENSATED. dtxd
 *   now reports RUNNING until the final record, as the waiters see it
 *   (dtxd_act_told_state in coordinator/actions.c).
 * - the resolver (finding 5) acts on COMMITTING too, as ARCHITECTURE.md
 *   and dtx.h say (dtxd reports it only once synced); the SDK's resolver
 *   used to wait for COMMITTED. sdk/src/resolver.c now acts as the model
 *   does.
 * - the barrier (finding 3, MUT_REPLAY_AFTER_UNDO) replayed a prepare's or
 *   execute's OK to a duplicate that arrived after the branch's abort or
 *   compensation: a coordinator (or a node that took the transaction over)
 *   was told the branch held what its undo had released. It now answers
 *   REFUSED; tests/unit/barrier_test.c has the regression test.
 *
 * Not modelled: data values and payloads, business logic beyond OK or
 * REFUSED of a forward call; RETRY, NO_SUCH_METHOD and BAD_REQUEST replies
 * (a lost reply covers RETRY); durations (backoff, deadlines, lease length,
 * resolve_after_ms: all nondeterministic); more than one transaction, two
 * branches, two nodes; saga groups beyond one group of both steps
 * (-DGROUP: the two steps run and are undone in parallel; the order between
 * groups is checked after every event by the engine tests' driver
 * instead); the create write and a client's resubmission (the record
 * exists from the start; an idempotent Submit changes nothing); operator
 * Abort (it moves the engines as the deadline does) and hand settlement;
 * the stuck flag; the purge of old records (a Resolve for a purged
 * committed gid would say ABORTED); power loss, which also loses writes
 * that reached the store unsynced (dtxd's: then a lost 2PC record plus a
 * resubmitted gid re-runs PREPARE, which the barrier now refuses after
 * the branch's abort; a participant's: a suffix of its barrier writes,
 * none of them answered yet, as if those calls had not arrived: see
 * participant.pml); batching; PostgreSQL's own fail-over (a write, once
 * it succeeded, stays).
 *
 * Checks (check.sh; states stored, CPU seconds of the run on this 2-core
 * machine, verifier compiled at -O0; every check under 2 s but these):
 *   2pc           MAXF=3  safe 422k states 2.2 s, terminates 421k 4.0 s
 *   saga          MAXF=4  safe 103k 0.5 s, terminates 102k 0.9 s
 *   saga-group    MAXF=4  safe 293k 1.7 s, terminates 291k 3.7 s
 *   cluster-2pc   MAXF=2  safe 526k 3.4 s, terminates 522k 6.1 s
 *   cluster-saga  MAXF=2  safe 115k 0.6 s, terminates 114k 1.0 s
 *   every witness and mutant: found within 212k states, under 2 s.
 * The whole of check.sh: about 36 s of CPU (a third of it compiling the
 * verifiers). DTX_MODEL_DEEP=1 adds one fault to every budget and holds
 * too: 2pc 1.07M states, saga 218k, cluster-2pc 4.29M, cluster-saga 1.18M;
 * about six minutes and 1 GB here.
 *
 * By hand, in a scratch directory holding the .pml files:
 *   spin -DSAGA -DMAXF=2 -a dtx.pml && cc -O0 -w -o pan pan.c
 *   ./pan -N safe            (or -a -N terminates, -N reach_zombie)
 *   spin -DSAGA -DMAXF=2 -t dtx.pml     replays a counterexample: the
 *                                       model's printf lines tell the story
 */

#define NB 2 /* branches, one per participant (macros unroll NB == 2) */
#ifdef CLUSTER
#define NN 2 /* dtxd nodes on one store */
#ifndef ABORT_AT_ONCE
#define ABORT_WAITS /* no phase-two call before its decision write */
#endif
#else
#define NN 1
#endif
#ifndef MAXF
#define MAXF 2 /* the fault budget */
#endif
#ifdef SAGA
#define SAGA_MODE 1
#else
#define SAGA_MODE 0
#endif

#define I(n, b) ((n) * NB + (b))

/* Phases: forward (PREPARE, EXECUTE), commit (2PC), back (ABORT,
 * COMPENSATE). */
#define FWD 0
#define COM 1
#define BAK 2
#define PBIT(ph) (1 << (ph))
/* Branch reply statuses (RETRY and a transport failure are a lost reply). */
#define OK 0
#define REF 1
#define RBIT(ph, s) (1 << ((ph) * 2 + (s)))

/* Transaction states, shared by the two modes as dtx_state orders them. */
#define S_NONE 0
#define S_PREPARING 1
#define S_RUNNING 1
#define S_COMMITTING 2
#define S_ABORTING 3
#define S_COMPENSATING 3
#define S_COMMITTED 4
#define S_ABORTED 5
#define S_COMPENSATED 5
#define TERMINAL(s) ((s) >= S_COMMITTED)

/* Branch progress bits, as DTXD_DONE_* in coordinator/tx.h. */
#define D_FWD 1
#define D_FINAL 2
#define D_SENT 4

/* Store writes queued by a node. */
#define W_NONE 0
#define W_ASYNC 1
#define W_SYNC 2

/* Barrier records. */
#define R_NONE 0
#define R_OK 1
#define R_REF 2
#define R_NULL 3
#define R_LATE 4

/* ---------------------------------------------------------------- state */

byte faults; /* faults so far, up to MAXF */
bool late;   /* the transaction's deadline has passed */

/* The store: the one transaction's record and its ownership. */
byte st_state; /* S_NONE: no record */
byte st_cur;   /* saga cursor */
byte st_done[NB];
byte st_owner;
byte st_epoch;

/* The nodes. */
bool alive[NN];
bool lease[NN];
bool has[NN];     /* holds the transaction in memory */
byte ep[NN];      /* the epoch it owns it at */
byte ms[NN];      /* its state in memory */
byte mcur[NN];    /* saga cursor */
bool mpers[NN];   /* a decision is being written (persisting) */
byte mdone[NN * NB];
byte infl[NN * NB]; /* the phase + 1 of the call in flight, 0: none */
byte wq[NN];        /* W_*: the write queued for the store */
byte wq_state[NN];
byte wq_cur[NN];
byte wq_done[NN * NB];

/* The network: a set of messages per (node, branch), so that any message
 * may be delivered in any order, lost or delivered twice. */
byte call[NN * NB]; /* PBIT(phase) */
byte rep[NN * NB];  /* RBIT(phase, status) */

/* The participants' barrier records (durable). */
byte rf[NB]; /* forward: R_NONE, R_OK, R_REF, R_LATE */
bool rc[NB]; /* commit */
byte rb[NB]; /* back: R_NONE, R_OK, R_NULL */

/* The resolvers' pending answers (volatile). */
byte ans[NB];

/* Ghosts, for the properties only: effects that ran, branches whose undo
 * was answered OK, the outcome settled by dtxd and the one the client was
 * told. */
byte ef[NB];
byte ec[NB];
byte eb[NB];
bool closed[NB];
byte outcome;
byte told;

inline tell(st)
{
	/* A client is never told two outcomes. */
	printf("client: told %d\n", st);
	assert(told == S_NONE || told == st);
	told = st
}

#include "participant.pml"
#include "coordinator.pml"

/* ----------------------------------------------------------- properties */

#define ANY_EC (ec[0] != 0 || ec[1] != 0)
#define ANY_RB (rb[0] != R_NONE || rb[1] != R_NONE)
#define BALANCED (ef[0] == eb[0] && ef[1] == eb[1])

#ifndef SAGA
/* Atomicity: never a branch committed while another is aborted (a null
 * abort counts). A committed outcome has every branch committed; an aborted
 * one has every reservation released, and keeps it so (no hanging). */
#define INVARIANT \
	(!(ANY_EC && ANY_RB) && \
	    (outcome != S_COMMITTED || (ec[0] != 0 && ec[1] != 0)) && \
	    (outcome != S_ABORTED || (BALANCED && !ANY_EC)) && \
	    (told != S_COMMITTED || !ANY_RB) && \
	    (told != S_ABORTED || !ANY_EC))
#define DONE (TERMINAL(st_state) && !PREPARED(0) && !PREPARED(1))
#else
/* Never a committed saga with a compensated step; a compensated saga has
 * every step that ran undone, and keeps it so (no late EXECUTE runs). */
#define INVARIANT \
	((outcome != S_COMMITTED || (ef[0] != 0 && ef[1] != 0 && !ANY_RB)) && \
	    (outcome != S_COMPENSATED || BALANCED) && \
	    (told != S_COMMITTED || !ANY_RB) && \
	    (told != S_COMPENSATED || BALANCED))
#define DONE (TERMINAL(st_state))
#endif

/* The safety properties, checked in every state (pan -N safe). */
ltl safe { [] INVARIANT }

/* Every transaction ends: once faults stop, the record reaches a terminal
 * state and (2PC) no participant holds a prepared branch (pan -a -f -N
 * terminates: weak fairness, so no process that can move waits for ever). */
ltl terminates { <> DONE }

/* Reachability (pan -N reach_*; spin is to find each, as a violation):
 * the runs the properties are about do happen in the model, so that no
 * property holds only because the model cannot get there. */
#define REAL_UNDO (eb[0] != 0 || eb[1] != 0)
#define LATE_REFUSED (rf[0] == R_LATE || rf[1] == R_LATE)
ltl reach_commit { [] !(outcome == S_COMMITTED) }
ltl reach_undo { [] !(outcome == S_ABORTED && REAL_UNDO) }
ltl reach_late_refused { [] !LATE_REFUSED }
ltl reach_recovered { [] !(st_epoch > 1 && TERMINAL(st_state)) }
#ifndef SAGA
ltl reach_resolver_commit {
	[] !(ans[0] == S_COMMITTING || ans[0] == S_COMMITTED)
}
#endif
#ifdef CLUSTER
/* A zombie: node 0 still acts on the transaction node 1 took over. */
ltl reach_zombie { [] !(has[0] && st_owner == 1 && ep[0] < st_epoch) }
#endif

/* ------------------------------------------------------ the environment */

#define LOSE_CALL(K, PH) \
	:: atomic { \
		faults < MAXF && (call[K] & PBIT(PH)) -> \
		faults++; \
		printf("lose call %d phase %d\n", K, PH); \
		call[K] = call[K] & ~PBIT(PH) \
	}
#ifdef SAGA
#define LOSE_CALLS(K) LOSE_CALL(K, FWD) LOSE_CALL(K, BAK)
#else
#define LOSE_CALLS(K) LOSE_CALL(K, FWD) LOSE_CALL(K, COM) LOSE_CALL(K, BAK)
#endif
#define LOSE_REPLIES(K) \
	:: atomic { \
		faults < MAXF && rep[K] != 0 -> \
		faults++; \
		printf("lose replies %d\n", K); \
		rep[K] = 0 \
	}

#define EXPIRE(N) \
	:: atomic { \
		lease[N] && (!alive[N] || faults < MAXF) -> \
		if \
		:: alive[N] -> faults++ \
		:: else -> skip \
		fi; \
		printf("lease %d expires\n", N); \
		lease[N] = 0 \
	}

/* What Status tells from node N (dtxd's on_status): its memory when it
 * holds the transaction, else the store. A saga's COMMITTED is not settled
 * before its final record, so until then it is reported RUNNING, as its
 * waiters are not told either. */
#ifndef MUT_STATUS_UNSETTLED
#define STATUS(N) \
	(has[N] -> (SAGA_MODE && ms[N] == S_COMMITTED -> S_RUNNING : ms[N]) \
	        : st_state)
#else
#define STATUS(N) (has[N] -> ms[N] : st_state)
#endif

/* The client learns a final outcome from node N. (Only final answers are
 * steps: a poll that changes nothing would be a cycle of its own.) */
#define POLL(N) \
	:: atomic { \
		told == S_NONE && alive[N] && TERMINAL(STATUS(N)) -> \
		a = STATUS(N); \
		tell(a); \
		a = 0 \
	}

/* The environment: time, the faults that are nobody's step, and the
 * client. Its Submit was accepted by node 0 (the set-up below); it waits
 * there for the outcome (told by settle) and may ask any node's Status. */
init
{
	bool dirty;
	byte a;
	atomic {
		alive[0] = 1;
		st_state = S_PREPARING;
		st_owner = 0;
		st_epoch = 1;
		has[0] = 1;
		ep[0] = 1;
		ms[0] = S_PREPARING;
#ifdef CLUSTER
		lease[0] = 1;
		alive[1] = 1;
		lease[1] = 1;
#endif
		on_start(0);
		end_pass(0);
		run Node(0);
#if NN > 1
		run Node(1);
#endif
		run Participants();
#ifndef SAGA
		run Resolvers()
#endif
	}
end:
	do
	/* The deadline passes. */
	:: atomic { !late -> printf("deadline\n"); late = 1 }
	/* Faults stop. */
	:: atomic { faults < MAXF -> faults = MAXF }
	LOSE_CALLS(0)
	LOSE_CALLS(1)
	LOSE_REPLIES(0)
	LOSE_REPLIES(1)
#if NN > 1
	LOSE_CALLS(2)
	LOSE_CALLS(3)
	LOSE_REPLIES(2)
	LOSE_REPLIES(3)
	/* A lease expires: a dead node's, or a live node's that was paused
	 * (a fault: it wakes as a zombie). */
	EXPIRE(0)
	EXPIRE(1)
#endif
	POLL(0)
#if NN > 1
	POLL(1)
#endif
	od
}
