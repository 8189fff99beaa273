/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "reaper: "
#include "common/reaper.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

static __attribute__((noreturn)) void reaper_main(int fd, const int32_t *pids, size_t nr)
{
	char c;
	ssize_t n;

	/* a ^C or a kill of the parent's process group must not take us too */
	setsid();
	if (fd > 0)
		close_range(0, fd - 1, 0);
	close_range(fd + 1, ~0U, 0);
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n == 0) /* the parent is gone without a word */
		for (size_t i = 0; i < nr; i++)
			kill(pids[i], SIGKILL);
	_exit(0);
}

int reaper_arm(struct reaper *rp, const int32_t *pids, size_t nr)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int r = -errno;
		close(p[0]);
		close(p[1]);
		pr_err("cannot fork: %s", strerror(-r));
		return r;
	}
	if (pid == 0)
		reaper_main(p[0], pids, nr);
	close(p[0]);
	rp->pid = pid;
	rp->fd = p[1];
	pr_debug("armed for %zu processes (reaper %d)", nr, pid);
	return 0;
}

void reaper_disarm(struct reaper *rp)
{
	if (rp->pid <= 0)
		return;
	if (write(rp->fd, "x", 1) != 1)
		kill(rp->pid, SIGKILL); /* must not take anybody with it */
	close(rp->fd);
	while (waitpid(rp->pid, NULL, 0) < 0 && errno == EINTR)
		;
	rp->pid = 0;
	rp->fd = -1;
}
