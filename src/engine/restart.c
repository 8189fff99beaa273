/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "restart: "
#include "engine/restart.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "common/argv.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "engine/session.h"

static int proc_list(pid_t pid, const char *what, size_t max, char ***ret, size_t *n)
{
	_cleanup_free_ char *buf = NULL;
	char path[64];
	size_t len = 0;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
	r = read_file(path, 48 * 1024, &buf, &len);
	if (r < 0)
		return r;
	return nul_split(buf, len, max, MSG_PATH_MAX, ret, n);
}

int restart_capture(pid_t pid, struct restart_spec *rs)
{
	char path[64];
	struct stat st;
	ssize_t n;
	int r;

	r = proc_list(pid, "cmdline", MSG_ARGV_MAX, &rs->argv, &rs->argc);
	if (r == 0)
		r = proc_list(pid, "environ", MSG_ENV_MAX, &rs->env, &rs->nenv);
	if (r == 0 && rs->argc == 0)
		r = -ENOEXEC; /* a kernel thread, or a zombie */
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
	n = readlink(path, rs->cwd, sizeof(rs->cwd) - 1);
	if (n < 0)
		return -errno;
	rs->cwd[n] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/fd/1", pid);
	n = readlink(path, rs->out, sizeof(rs->out) - 1);
	rs->out[n > 0 ? n : 0] = '\0';
	if (rs->out[0] != '/' || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		rs->out[0] = '\0';
	return 0;
}

void restart_spec_free(struct restart_spec *rs)
{
	free(rs->argv);
	free(rs->env);
	rs->argv = rs->env = NULL;
}

static void child(const struct restart_spec *rs, int errfd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int out = rs->out[0] ?
			  open(rs->out, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC) :
			  -1;
	int err;

	if (out < 0)
		out = null;
	setsid();
	signal(SIGPIPE, SIG_DFL);
	if (chdir(rs->cwd) < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		goto fail;
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	execvpe(rs->argv[0], rs->argv, rs->env);
fail:
	err = errno;
	if (write(errfd, &err, sizeof(err)) < 0)
		_exit(126);
	_exit(127);
}

int restart_spawn(const struct restart_spec *rs, pid_t *ret)
{
	int p[2], err = 0;
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0)
		child(rs, p[1]);
	close(p[1]);
	/* end of file: exec succeeded (the pipe was close-on-exec) */
	while ((n = read(p[0], &err, sizeof(err))) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (n > 0) {
		pr_err("cannot start %s in %s: %s", rs->argv[0], rs->cwd, strerror(err));
		return -err;
	}
	pr_info("started %s (PID %d) in %s", rs->argv[0], pid, rs->cwd);
	*ret = pid;
	return 0;
}
