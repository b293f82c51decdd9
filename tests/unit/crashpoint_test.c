// SPDX-License-Identifier: MIT
//
// crashpoint: a crash specification names a point of the process's own
// side, optionally with a pass count; anything else leaves the process
// unarmed (the fault suites then see the missing crash, and the log names
// the culprit). Reaching a point on the chosen pass kills the process:
// checked in a child, so the test itself lives on.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "crashpoint.h"

Test(crashpoint, arms_a_point_of_its_own_side_with_a_count)
{
	dtxi_crash c;

	dtxi_crash_init(&c, DTXI_CRASH_COORDINATOR, "before-final-record");
	cr_assert_eq(c.point, DTXI_CRASH_BEFORE_FINAL_RECORD);
	cr_assert_eq(c.nth, 1);
	dtxi_crash_init(&c, DTXI_CRASH_PARTICIPANT, "after-business-write:3");
	cr_assert_eq(c.point, DTXI_CRASH_AFTER_BUSINESS_WRITE);
	cr_assert_eq(c.nth, 3);
	// Armed at that point (on whatever pass), at no other.
	cr_assert(dtxi_crash_armed(&c, DTXI_CRASH_AFTER_BUSINESS_WRITE));
	cr_assert_not(dtxi_crash_armed(&c, DTXI_CRASH_BEFORE_BUSINESS_WRITE));
	cr_assert_not(dtxi_crash_armed(NULL, DTXI_CRASH_AFTER_BUSINESS_WRITE));
	dtxi_crash_init(&c, DTXI_CRASH_PARTICIPANT, NULL);
	cr_assert_not(dtxi_crash_armed(&c, DTXI_CRASH_NONE));
}

Test(crashpoint, refuses_unknown_points_other_sides_and_bad_counts)
{
	static const char *bad[] = {"after-first-commi", "after-first-commitx",
	    "before-business-write", "after-first-commit:0",
	    "after-first-commit:x", "after-first-commit:", ":2", "nothing"};
	dtxi_crash         c;

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dtxi_crash_init(&c, DTXI_CRASH_COORDINATOR, bad[i]);
		cr_assert_eq(c.point, DTXI_CRASH_NONE, "%s", bad[i]);
	}
	dtxi_crash_init(&c, DTXI_CRASH_COORDINATOR, NULL);
	cr_assert_eq(c.point, DTXI_CRASH_NONE);
	dtxi_crash_init(&c, DTXI_CRASH_COORDINATOR, "");
	cr_assert_eq(c.point, DTXI_CRASH_NONE);
	// Unarmed, no point kills.
	for (int p = 0; p <= DTXI_CRASH_NONE; p++) {
		dtxi_crash_point(&c, (dtxi_crash_pt)p);
	}
	dtxi_crash_point(NULL, DTXI_CRASH_AFTER_FIRST_COMMIT);
}

Test(crashpoint, kills_the_process_on_the_chosen_pass_only)
{
	pid_t pid = fork();
	int   st  = 0;

	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dtxi_crash c;
		dtxi_crash_init(
		    &c, DTXI_CRASH_COORDINATOR, "after-first-execute:2");
		dtxi_crash_point(&c, DTXI_CRASH_AFTER_FIRST_COMMIT);
		dtxi_crash_point(&c, DTXI_CRASH_AFTER_FIRST_EXECUTE);
		dtxi_crash_point(&c, DTXI_CRASH_AFTER_FIRST_COMMIT);
		dtxi_crash_point(&c, DTXI_CRASH_AFTER_FIRST_EXECUTE);
		_exit(0); // not reached
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

// A lingering point lets the process go on (the caller withholds what the
// point stands before) and kills it a moment later from another thread.
Test(crashpoint, a_lingering_point_lets_the_process_go_on_then_kills_it)
{
	int   fds[2];
	pid_t pid;
	int   st = 0;
	char  c  = 0;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dtxi_crash cp;
		close(fds[0]);
		dtxi_crash_init(
		    &cp, DTXI_CRASH_COORDINATOR, "before-final-record");
		if (!dtxi_crash_point(&cp, DTXI_CRASH_BEFORE_FINAL_RECORD)) {
			_exit(1);
		}
		// Goes on: says so, then waits for the end.
		if (write(fds[1], "y", 1) != 1) {
			_exit(2);
		}
		for (;;) {
			pause();
		}
	}
	close(fds[1]);
	cr_assert_eq(read(fds[0], &c, 1), 1, "the process did not go on");
	cr_assert_eq(c, 'y');
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}
