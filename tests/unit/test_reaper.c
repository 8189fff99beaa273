/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/reaper: the watchdog that SIGKILLs a list of
 * processes when the process that armed it dies without disarming it.
 *
 * The "workload" is a forked child of the test that sleeps; the test is its
 * parent, so it can tell how it ended. To let the armer die, the test forks
 * an intermediate process that arms the reaper and then exits or is killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/reaper.h"
#include "common/util.h"

#define WAIT_MS 5000

/* A child that sleeps until it is killed. */
static pid_t spawn_sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait up to @ms for @pid to end; its status, or -1 if it still runs. */
static int wait_end(pid_t pid, long ms)
{
	int st;

	for (long t = 0; t <= ms; t += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		assert_true(r >= 0);
		if (r == pid)
			return st;
		sleep_ms(10);
	}
	return -1;
}

static void assert_killed(pid_t pid)
{
	int st = wait_end(pid, WAIT_MS);

	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("PID %d still runs %d ms after its armer died", pid, WAIT_MS);
	}
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
}

/* @pid still runs after a while; then it is ended by the test. */
static void assert_alive_then_kill(pid_t pid)
{
	assert_int_equal(wait_end(pid, 200), -1);
	assert_int_equal(kill(pid, 0), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
}

enum armer_end { ARMER_EXIT, ARMER_SIGKILL, ARMER_GROUP_KILL, ARMER_DISARM };

/* A process that arms a reaper for @pids, then ends as @how says. */
static pid_t spawn_armer(const int32_t *pids, size_t nr, enum armer_end how)
{
	struct reaper rp = REAPER_INIT;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid > 0)
		return pid;
	if (how == ARMER_GROUP_KILL)
		setpgid(0, 0);
	if (reaper_arm(&rp, pids, nr) < 0)
		_exit(2);
	if (how == ARMER_DISARM)
		reaper_disarm(&rp);
	if (how == ARMER_SIGKILL)
		raise(SIGKILL);
	if (how == ARMER_GROUP_KILL) {
		sleep_ms(200); /* the reaper has left the group by now */
		kill(0, SIGKILL);
	}
	_exit(0);
}

static void reap_armer(pid_t armer, int sig)
{
	int st;

	assert_int_equal(waitpid(armer, &st, 0), armer);
	if (sig) {
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), sig);
	} else {
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

/* --- tests -------------------------------------------------------------- */

static void test_disarm_spares(void **state)
{
	struct reaper rp = REAPER_INIT;
	int32_t pid = spawn_sleeper();

	assert_int_equal(reaper_arm(&rp, &pid, 1), 0);
	assert_true(rp.pid > 0);
	assert_true(rp.fd >= 0);
	reaper_disarm(&rp);
	assert_int_equal(rp.pid, 0);
	assert_int_equal(rp.fd, -1);
	reaper_disarm(&rp); /* twice is harmless */
	assert_alive_then_kill(pid);
}

static void test_disarm_never_armed(void **state)
{
	struct reaper rp = REAPER_INIT;

	reaper_disarm(&rp);
	assert_int_equal(rp.pid, 0);
}

static void test_armer_exits(void **state)
{
	int32_t pids[2] = { spawn_sleeper(), spawn_sleeper() };

	reap_armer(spawn_armer(pids, 2, ARMER_EXIT), 0);
	assert_killed(pids[0]);
	assert_killed(pids[1]);
}

static void test_armer_killed(void **state)
{
	int32_t pid = spawn_sleeper();

	reap_armer(spawn_armer(&pid, 1, ARMER_SIGKILL), SIGKILL);
	assert_killed(pid);
}

/* A kill of the armer's process group does not take the reaper with it. */
static void test_armer_group_killed(void **state)
{
	int32_t pid = spawn_sleeper();

	reap_armer(spawn_armer(&pid, 1, ARMER_GROUP_KILL), SIGKILL);
	assert_killed(pid);
}

static void test_armer_disarms_then_exits(void **state)
{
	int32_t pid = spawn_sleeper();

	reap_armer(spawn_armer(&pid, 1, ARMER_DISARM), 0);
	assert_alive_then_kill(pid);
}

/* The reaper holds no fd of its parent but its pipe: a pipe's peer sees EOF. */
static void test_no_inherited_fds(void **state)
{
	struct reaper rp = REAPER_INIT;
	int32_t pid = spawn_sleeper();
	struct pollfd pfd;
	int p[2], n;
	char c;

	assert_int_equal(pipe(p), 0); /* not O_CLOEXEC: fork keeps it anyway */
	assert_int_equal(reaper_arm(&rp, &pid, 1), 0);
	close(p[1]);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	n = poll(&pfd, 1, WAIT_MS);
	if (n == 0)
		fail_msg("the reaper kept the write end of its parent's pipe open");
	assert_int_equal(n, 1);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	reaper_disarm(&rp);
	assert_alive_then_kill(pid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disarm_spares),
		cmocka_unit_test(test_disarm_never_armed),
		cmocka_unit_test(test_armer_exits),
		cmocka_unit_test(test_armer_killed),
		cmocka_unit_test(test_armer_group_killed),
		cmocka_unit_test(test_armer_disarms_then_exits),
		cmocka_unit_test(test_no_inherited_fds),
	};

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("reaper", tests, NULL, NULL);
}
