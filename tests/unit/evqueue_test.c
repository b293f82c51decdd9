// SPDX-License-Identifier: MIT
//
// evqueue: the loop's queue and who consumes it. A push with run makes its
// caller the consumer only when nobody is; events pushed meanwhile are
// seen by that consumer before it lets go (its release says "not yet");
// a hand-off or an earlier wake-up wakes the consumer thread, which then
// takes over; a stop waits for an inline consumer to finish and refuses
// nothing that is queued, and a closed queue refuses new events. Threads
// here wait for each other with deadlines, never fixed sleeps.

#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "clock.h"
#include "evqueue.h"

static dtxd_evq q;

static void
setup(void)
{
	dtxd_evq_init(&q);
}

static void
teardown(void)
{
	dtxd_evq_fini(&q);
}

TestSuite(evqueue, .init = setup, .fini = teardown);

static int
count(dtxd_ev *ev)
{
	int n = 0;

	for (; ev != NULL; ev = ev->next) {
		n++;
	}
	return n;
}

Test(evqueue, makes_the_first_pusher_the_consumer_and_queues_for_it)
{
	dtxd_ev a = {0}, b = {0}, c = {0};

	cr_assert_eq(dtxd_evq_push(&q, &a, true), DTXD_EVQ_RUN);
	// Someone consumes: the others only queue, with or without run.
	cr_assert_eq(dtxd_evq_push(&q, &b, true), DTXD_EVQ_QUEUED);
	cr_assert_eq(dtxd_evq_push(&q, &c, false), DTXD_EVQ_QUEUED);
	dtxd_ev *batch = dtxd_evq_take(&q, 0);
	cr_assert_eq(batch, &a);
	cr_assert_eq(count(batch), 3, "in push order, all of them");
	cr_assert(dtxd_evq_release(&q, false, 0));
	// Free again: the next pusher consumes.
	cr_assert_eq(dtxd_evq_push(&q, &a, true), DTXD_EVQ_RUN);
	cr_assert_eq(count(dtxd_evq_take(&q, 0)), 1);
	cr_assert(dtxd_evq_release(&q, false, 0));
}

Test(evqueue, keeps_the_consumer_while_events_came_during_its_pass)
{
	dtxd_ev a = {0}, b = {0};

	cr_assert_eq(dtxd_evq_push(&q, &a, true), DTXD_EVQ_RUN);
	cr_assert_eq(count(dtxd_evq_take(&q, 0)), 1);
	cr_assert_eq(dtxd_evq_push(&q, &b, true), DTXD_EVQ_QUEUED);
	cr_assert_not(dtxd_evq_release(&q, false, 0),
	    "an event came during the pass: take it first");
	cr_assert_eq(dtxd_evq_take(&q, 0), &b);
	cr_assert(dtxd_evq_release(&q, false, 0));
}

Test(evqueue, runs_nothing_for_a_push_without_run_or_without_events)
{
	dtxd_ev a = {0};

	cr_assert_eq(dtxd_evq_push(&q, NULL, true), DTXD_EVQ_QUEUED,
	    "nothing queued, nothing to run");
	cr_assert_eq(dtxd_evq_push(&q, &a, false), DTXD_EVQ_QUEUED);
	cr_assert_eq(dtxd_evq_push(&q, NULL, true), DTXD_EVQ_RUN,
	    "the kick after pushes without run consumes them");
	cr_assert_eq(dtxd_evq_take(&q, 0), &a);
	cr_assert(dtxd_evq_release(&q, false, 0));
}

// A consumer thread as the loop's: counts the events it took.
typedef struct {
	atomic_int taken;
	atomic_int passes;
} thr_state;

static void *
consumer_main(void *arg)
{
	thr_state *t = arg;

	while (dtxd_evq_acquire(&q)) {
		atomic_fetch_add(&t->taken, count(dtxd_evq_take(&q, 0)));
		atomic_fetch_add(&t->passes, 1);
		while (!dtxd_evq_release(&q, false, 0)) {
			atomic_fetch_add(
			    &t->taken, count(dtxd_evq_take(&q, 0)));
		}
	}
	return NULL;
}

static bool
wait_for(atomic_int *v, int want)
{
	int64_t deadline = dtxi_mono_ms() + 5000;

	while (atomic_load(v) < want) {
		if (dtxi_mono_ms() > deadline) {
			return false;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return true;
}

Test(evqueue, hands_what_is_left_to_the_consumer_thread)
{
	thr_state t = {0};
	pthread_t th;
	dtxd_ev   a = {0}, b = {0};

	cr_assert_eq(pthread_create(&th, NULL, consumer_main, &t), 0);
	cr_assert_eq(dtxd_evq_push(&q, &a, true), DTXD_EVQ_RUN);
	cr_assert_eq(count(dtxd_evq_take(&q, 0)), 1);
	cr_assert_eq(dtxd_evq_push(&q, &b, false), DTXD_EVQ_QUEUED);
	cr_assert(dtxd_evq_release(&q, true, 0), "a hand-off lets go");
	cr_assert(wait_for(&t.taken, 1), "the thread took what was left");
	dtxd_evq_stop(&q);
	pthread_join(th, NULL);
}

// Becomes the consumer by pushing events (each one new: one pushed while
// the thread still consumes stays queued for it) until a push returns RUN.
static void
become_consumer(dtxd_ev *evs, int n)
{
	for (int i = 0; i < n; i++) {
		if (dtxd_evq_push(&q, &evs[i], true) == DTXD_EVQ_RUN) {
			dtxd_evq_take(&q, 0);
			return;
		}
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	cr_assert_fail("never became the consumer");
}

Test(evqueue, wakes_the_consumer_thread_for_a_post_and_a_due_wake_up)
{
	thr_state t = {0};
	pthread_t th;
	dtxd_ev   a = {0};
	dtxd_ev   evs[1000];

	memset(evs, 0, sizeof(evs));
	cr_assert_eq(pthread_create(&th, NULL, consumer_main, &t), 0);
	cr_assert(dtxd_evq_post(&q, &a));
	cr_assert(wait_for(&t.taken, 1), "a post wakes the thread");
	// A pass by another consumer leaves a wake-up 50 ms from now: the
	// thread runs a pass of its own then, with nothing queued.
	become_consumer(evs, 1000);
	int passes = atomic_load(&t.passes);
	cr_assert(dtxd_evq_release(&q, false, dtxi_now_ms() + 50));
	cr_assert(wait_for(&t.passes, passes + 1),
	    "the thread ran at its wake-up time");
	dtxd_evq_stop(&q);
	pthread_join(th, NULL);
}

// An inline consumer still in its pass: the stop waits for its release.
static void *
stopper_main(void *arg)
{
	atomic_int *stopped = arg;

	dtxd_evq_stop(&q);
	atomic_store(stopped, 1);
	return NULL;
}

Test(evqueue, stops_after_the_consumer_lets_go_and_refuses_once_closed)
{
	atomic_int stopped = 0;
	pthread_t  th;
	dtxd_ev    a = {0}, b = {0};

	cr_assert_eq(dtxd_evq_push(&q, &a, true), DTXD_EVQ_RUN);
	cr_assert_eq(pthread_create(&th, NULL, stopper_main, &stopped), 0);
	// Wait until the stop is asked, then see that it waits for us.
	int64_t deadline = dtxi_mono_ms() + 5000;
	while (!dtxd_evq_stopping(&q)) {
		cr_assert(dtxi_mono_ms() < deadline);
	}
	cr_assert_eq(atomic_load(&stopped), 0, "the stop waits");
	cr_assert_eq(dtxd_evq_push(&q, &b, true), DTXD_EVQ_QUEUED,
	    "stopping: queued for the close, never run");
	cr_assert(dtxd_evq_release(&q, false, 0),
	    "stopping: let go even with events queued");
	cr_assert(wait_for(&stopped, 1));
	pthread_join(th, NULL);
	cr_assert_eq(count(dtxd_evq_close(&q)), 2, "nothing was dropped");
	cr_assert_eq(dtxd_evq_push(&q, &b, true), DTXD_EVQ_CLOSED);
	cr_assert_not(dtxd_evq_post(&q, &b));
}
