/* SPDX-License-Identifier: MIT */
/*
 * resume: the socket a post-copy session waits on for its reconnecting
 * source. A listener that is not root's is never connected to (a local
 * user squatting on the name would otherwise receive the source's
 * stream: the frozen workload's pages).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "pages/reconnect.h"

static char dir[] = "/tmp/test_resume.XXXXXX";

static int make_dir(void **s)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **s)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/" RESUME_SOCK, dir);
	unlink(p);
	return rmdir(dir);
}

/* A child that listens on dir/resume.sock as @uid, until killed. */
static pid_t squatter(uid_t uid)
{
	int ready[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(ready), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" RESUME_SOCK, dir);
		if (uid && (setgid(uid) < 0 || setuid(uid) < 0))
			_exit(1);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
			_exit(2);
		if (write(ready[1], "x", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	return pid;
}

static void end(pid_t pid)
{
	char p[128];

	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	snprintf(p, sizeof(p), "%s/" RESUME_SOCK, dir);
	unlink(p);
}

static void squatter_not_root_is_refused(void **s)
{
	int fd = -1;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	chmod(dir, 0777); /* let "nobody" bind there: the test's own doing */
	pid = squatter(65534);
	assert_int_equal(resume_connect(dir, &fd), -EPERM);
	assert_int_equal(fd, -1);
	end(pid);
	chmod(dir, 0700);
}

static void root_listener_is_reached(void **s)
{
	int lfd = -1, fd = -1;

	assert_int_equal(resume_listen(dir, &lfd), 0);
	assert_int_equal(resume_connect(dir, &fd), 0);
	assert_true(fd >= 0);
	close(fd);
	close(lfd);
	end(0); /* unlink the socket */
}

static void none_waiting(void **s)
{
	int fd = -1;

	assert_int_equal(resume_connect(dir, &fd), -ENOENT);
	assert_int_equal(resume_connect("/nonexistent/phaul-resume", &fd), -ENOENT);
}

static void long_dir(void **s)
{
	/* sun_path holds 108 bytes; the directory is reached through its fd */
	char deep[512];
	int lfd = -1, fd = -1;

	snprintf(deep, sizeof(deep), "%s/%0200d", dir, 7);
	assert_int_equal(mkdir(deep, 0700), 0);
	assert_int_equal(resume_listen(deep, &lfd), 0);
	assert_int_equal(resume_connect(deep, &fd), 0);
	close(fd);
	close(lfd);
	strcat(deep, "/" RESUME_SOCK);
	unlink(deep);
	*strrchr(deep, '/') = '\0';
	rmdir(deep);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(squatter_not_root_is_refused),
		cmocka_unit_test(root_listener_is_reached),
		cmocka_unit_test(none_waiting),
		cmocka_unit_test(long_dir),
	};
	return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
