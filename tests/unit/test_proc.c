/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/proc's tree walk: proctree_tasks() on a real
 * tree of forked processes (children, grandchildren and a thread), which
 * must come back whole, root first, each process once, and nothing of
 * the test's own or another tree.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/proc.h"

#define FANOUT 5 /* children of the root, each with one child */

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* Fork a process that runs @fn after telling the test (@fd) it started. */
static pid_t spawn(int fd, void (*fn)(int fd))
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fn(fd);
		_exit(0);
	}
	return pid;
}

static void ready(int fd)
{
	char c = 1;

	if (write(fd, &c, 1) != 1)
		_exit(1);
}

static void leaf(int fd)
{
	ready(fd);
	for (;;)
		pause();
}

static void middle(int fd)
{
	spawn(fd, leaf);
	ready(fd);
	for (;;)
		pause();
}

/* The root: FANOUT children with a child each, and a second thread. */
static void root(int fd)
{
	pthread_t t;

	if (pthread_create(&t, NULL, idle, NULL))
		_exit(1);
	for (int i = 0; i < FANOUT; i++)
		spawn(fd, middle);
	ready(fd);
	for (;;)
		pause();
}

static bool has(const int32_t *v, size_t nr, int32_t pid)
{
	for (size_t i = 0; i < nr; i++)
		if (v[i] == pid)
			return true;
	return false;
}

static void test_tree(void **state)
{
	int fds[2];
	char c;
	pid_t r, other;
	int32_t *tasks = NULL;
	size_t nr = 0, nr_procs = 0;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	r = spawn(fds[1], root);
	other = spawn(fds[1], leaf);
	/* the root, its children and grandchildren, and the other tree */
	for (int i = 0; i < 1 + 2 * FANOUT + 1; i++)
		assert_int_equal(read(fds[0], &c, 1), 1);
	assert_int_equal(proctree_tasks(r, &tasks, &nr, &nr_procs), 0);
	assert_int_equal(nr_procs, 1 + 2 * FANOUT);
	assert_int_equal(nr, nr_procs + 1); /* and the root's thread */
	assert_int_equal(tasks[0], r);
	for (size_t i = 0; i < nr_procs; i++) {
		assert_int_not_equal(tasks[i], getpid());
		assert_int_not_equal(tasks[i], other);
		/* each once, and every process's parent came before it */
		for (size_t j = i + 1; j < nr; j++)
			assert_int_not_equal(tasks[i], tasks[j]);
		if (i > 0)
			assert_true(has(tasks, i, proc_ppid(tasks[i])));
	}
	free(tasks);
	kill(r, SIGKILL);
	kill(other, SIGKILL);
	waitpid(r, NULL, 0);
	waitpid(other, NULL, 0);
	close(fds[0]);
	close(fds[1]);
}

static void test_gone(void **state)
{
	int32_t *tasks = NULL;
	size_t nr = 0, nr_procs = 0;
	pid_t pid = fork();

	(void)state;
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	assert_int_equal(proctree_tasks(pid, &tasks, &nr, &nr_procs), -ESRCH);
	assert_null(tasks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
