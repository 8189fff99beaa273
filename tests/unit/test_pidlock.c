/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/pidlock: one holder per PID at a time, the
 * holder named to the refused, release and a dead holder free the lock,
 * other PIDs are independent.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/pidlock.h"
#include "common/util.h"

static char dir[1024];

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/phaul-test-pidlock.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	/* a subdirectory pidlock_take must create */
	strcat(dir, "/run");
	return 0;
}

static int teardown(void **state)
{
	char *slash = strrchr(dir, '/');

	*slash = '\0';
	return rm_rf(dir);
}

/* In a child: try to take @pid's lock; exit 0 taken, 1 busy with our
 * parent named as the holder, 2 anything else. */
static int child_try(pid_t pid, bool keep)
{
	pid_t parent = getpid(), child = fork();
	int status;

	assert_true(child >= 0);
	if (child == 0) {
		pid_t holder;
		int fd = pidlock_take(dir, pid, &holder);
		if (fd >= 0)
			_exit(keep ? 0 : (pidlock_release(dir, pid, fd), 0));
		_exit(fd == -EBUSY && holder == parent ? 1 : 2);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_second_taker_refused_and_told_holder(void **state)
{
	pid_t holder = 0;
	int fd = pidlock_take(dir, 4242, &holder);

	assert_true(fd >= 0);
	assert_int_equal(child_try(4242, false), 1);
	/* another PID is another lock */
	assert_int_equal(child_try(4243, false), 0);
	pidlock_release(dir, 4242, fd);
	assert_int_equal(child_try(4242, false), 0);
}

static int count_locks(const char *suffix)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strstr(de->d_name, suffix) != NULL;
	closedir(d);
	return n;
}

static void test_dead_holder_does_not_block(void **state)
{
	pid_t holder = 0;
	int fd;

	/* the child dies holding the lock, its file stays behind */
	assert_int_equal(child_try(777, true), 0);
	assert_int_equal(count_locks("-777.lock"), 1);
	fd = pidlock_take(dir, 777, &holder);
	assert_true(fd >= 0);
	assert_int_equal(holder, 0);
	pidlock_release(dir, 777, fd);
}

static void test_release_removes_the_file(void **state)
{
	pid_t holder;
	int fd = pidlock_take(dir, 99, &holder);

	assert_true(fd >= 0);
	assert_int_equal(count_locks("-99.lock"), 1);
	pidlock_release(dir, 99, fd);
	assert_int_equal(count_locks("-99.lock"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_taker_refused_and_told_holder),
		cmocka_unit_test(test_dead_holder_does_not_block),
		cmocka_unit_test(test_release_removes_the_file),
	};

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests(tests, setup, teardown);
}
