/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "spawn: "
#include "common/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/util.h"

static void child(char *const argv[], int in, int out, const int *fds, size_t nr)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), tmp[SPAWN_FDS_MAX];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* through copies above the targets: a target may be another's source */
	for (size_t i = 0; i < nr; i++)
		if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + (int)nr)) < 0)
			_exit(127);
	for (size_t i = 0; i < nr; i++)
		if (dup2(tmp[i], 3 + (int)i) < 0)
			_exit(127);
	if (dup2(in >= 0 ? in : null, 0) < 0 || dup2(out >= 0 ? out : null, 1) < 0)
		_exit(127);
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	_exit(127);
}

int spawn_fds(char *const argv[], int in, int out, const int *fds, size_t nr, pid_t *ret)
{
	pid_t pid;

	if (nr > SPAWN_FDS_MAX)
		return -EMFILE;
	pid = fork();
	if (pid < 0) {
		pr_perror("fork for %s", argv[0]);
		return -errno;
	}
	if (pid == 0)
		child(argv, in, out, fds, nr);
	*ret = pid;
	return 0;
}

int spawn(char *const argv[], int in, int out, int fd3, pid_t *ret)
{
	return spawn_fds(argv, in, out, &fd3, fd3 >= 0, ret);
}

int spawn_wait(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

int run_cmd(char *const argv[])
{
	pid_t pid = -1;
	int r = spawn(argv, -1, -1, -1, &pid);

	if (r < 0)
		return r;
	r = spawn_wait(pid);
	if (r != 0) {
		pr_err("%s exited with status %d", argv[0], r);
		return -EIO;
	}
	return 0;
}

int run_output(char *const argv[], size_t max, char **out)
{
	_cleanup_free_ char *buf = malloc(max + 1);
	int fds[2], r;
	size_t n = 0;
	pid_t pid = -1;

	if (!buf)
		return -ENOMEM;
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	r = spawn(argv, -1, fds[1], -1, &pid);
	close(fds[1]);
	while (r == 0) {
		char sink[4096];
		ssize_t k = n < max ? read(fds[0], buf + n, max - n) :
				      read(fds[0], sink, sizeof(sink));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += n < max ? (size_t)k : 0;
	}
	if (r == 0)
		r = spawn_wait(pid);
	close(fds[0]);
	buf[n] = '\0';
	if (r >= 0 && out)
		*out = TAKE_PTR(buf);
	return r;
}
