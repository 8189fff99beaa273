/* SPDX-License-Identifier: MIT */
/*
 * `phaul __podman-runtime RUNC ARGS...`: the runtime podman runs for phaul
 * (drivers/htype/podman.h; PODMAN_RUN_DIR/runc execs it with the real
 * runc's path). ARGS are runc's (global options, a command, its options):
 *   checkpoint  writes an empty checkpoint (inventory.img) at --image-path:
 *               podman exports the container, which runs on untouched
 *               (phaul dumps it itself);
 *   restore     when a migration waits on PODMAN_RUN_DIR/ID.sock: says the
 *               bundle and pid file there, receives the fds CRIU inherits
 *               and its RPC socket, and becomes `criu swrk`, which the
 *               migration drives; conmon's stdio stay CRIU's fd 0-2;
 *   anything else (and a restore no migration waits for): runc itself.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "cli/cli.h"
#include "common/util.h"
#include "criu/criu.h"
#include "drivers/htype/podman.h"

/* runc's global options that take a value in the next argument */
static bool takes_value(const char *opt)
{
	static const char *const with[] = { "--log", "--log-format", "--root", "--criu",
					    "--rootless" };

	for (size_t i = 0; i < ARRAY_SIZE(with); i++)
		if (!strcmp(opt, with[i]))
			return true;
	return false;
}

/* The value of option @name among @argv's (none: NULL). */
static const char *opt_value(int argc, char **argv, const char *name)
{
	size_t n = strlen(name);

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], name) && i + 1 < argc)
			return argv[i + 1];
		if (!strncmp(argv[i], name, n) && argv[i][n] == '=')
			return argv[i] + n + 1;
	}
	return NULL;
}

/* An empty file @name in @dir (none: nothing to do). */
static int touch(const char *dir, const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (!dir)
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(path);
		return -1;
	}
	close(fd);
	return 0;
}

/* What podman looks for after a checkpoint: CRIU's inventory, and the
 * statistics file it exports. */
static int fake_checkpoint(int argc, char **argv)
{
	const char *dir = opt_value(argc, argv, "--image-path");

	if (mkdir_p(dir, 0700) < 0) {
		perror(dir);
		return 1;
	}
	if (touch(dir, "inventory.img") < 0 ||
	    touch(opt_value(argc, argv, "--work-path"), "stats-dump") < 0)
		return 1;
	return 0;
}

/* Move the received fds to the numbers asked (the first: anywhere above
 * them, kept across exec): that one's number. */
static int place_fds(const int32_t *num, int *fds, size_t nr)
{
	int top = 2, rpc;

	for (size_t i = 1; i < nr; i++)
		if (num[i] < 3 || num[i] > 65535)
			return -EINVAL;
		else if (num[i] > top)
			top = num[i];
	for (size_t i = 0; i < nr; i++) {
		int hi = fcntl(fds[i], F_DUPFD_CLOEXEC, top + 1 + (int)nr);
		if (hi < 0)
			return -errno;
		close(fds[i]);
		fds[i] = hi;
	}
	for (size_t i = 1; i < nr; i++) {
		if (dup2(fds[i], num[i]) < 0)
			return -errno;
		close(fds[i]);
	}
	rpc = fcntl(fds[0], F_DUPFD, top + 1);
	close(fds[0]);
	return rpc < 0 ? -errno : rpc;
}

/* 0: the migration's fds received and placed, *rpc CRIU's socket;
 * -ENOENT: no migration waits for this container. */
static int hand_over(const char *id, const char *bundle, const char *pidfile, int *rpc)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char hello[PODMAN_HELLO_MAX];
	int32_t num[PODMAN_FDS_MAX];
	int fds[PODMAN_FDS_MAX];
	char cbuf[CMSG_SPACE(sizeof(fds))];
	struct iovec iov = { .iov_base = num, .iov_len = sizeof(num) };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	size_t nr = 0, len = strlen(bundle) + strlen(pidfile) + 2;
	_cleanup_close_ int sk = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), PODMAN_RUN_DIR "/%.64s.sock", id);
	if (sk < 0 || len > sizeof(hello))
		return -EINVAL;
	if (connect(sk, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return errno == ECONNREFUSED ? -ENOENT : -errno;
	memcpy(hello, bundle, strlen(bundle) + 1);
	memcpy(hello + strlen(bundle) + 1, pidfile, strlen(pidfile) + 1);
	if (send(sk, hello, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -EPIPE;
	n = recvmsg(sk, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return -EPIPE; /* the migration gave up */
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			nr = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			memcpy(fds, CMSG_DATA(cm), nr * sizeof(int));
		}
	if (nr == 0 || (size_t)n != nr * sizeof(int32_t))
		return -EPROTO;
	*rpc = place_fds(num, fds, nr);
	return *rpc < 0 ? *rpc : 0;
}

static int restore(const char *runc, int argc, char **argv)
{
	const char *bundle = opt_value(argc, argv, "--bundle");
	const char *pidfile = opt_value(argc, argv, "--pid-file");
	const char *id = argv[argc - 1];
	char fd[16];
	int rpc = -1, r;

	if (!bundle || !pidfile || !name_is_safe(id) || bundle[0] != '/' || pidfile[0] != '/')
		goto runc;
	r = hand_over(id, bundle, pidfile, &rpc);
	if (r == -ENOENT)
		goto runc;
	if (r < 0) {
		fprintf(stderr, "phaul runtime: the migration of %s: %s\n", id, strerror(-r));
		return 1;
	}
	snprintf(fd, sizeof(fd), "%d", rpc);
	putenv((char *)CRIU_ENV_NO_BREAKPOINTS);
	putenv((char *)CRIU_ENV_FIFO_SHARED_CHECK);
	execl(criu_binary(), "criu", "swrk", fd, (char *)NULL);
	perror(criu_binary());
	return 1;
runc:
	argv[-1] = (char *)runc;
	execv(runc, argv - 1);
	perror(runc);
	return 1;
}

int cmd_podman_runtime(int argc, char **argv)
{
	const char *runc = argc > 1 ? argv[1] : NULL;
	int i;

	if (!runc || runc[0] != '/')
		return 2;
	for (i = 2; i < argc && argv[i][0] == '-'; i++)
		if (!strchr(argv[i], '=') && takes_value(argv[i]))
			i++;
	/* podman asks `checkpoint --help` to see that it can */
	if (i < argc && !strcmp(argv[i], "checkpoint") &&
	    opt_value(argc - i, argv + i, "--image-path"))
		return fake_checkpoint(argc - i, argv + i);
	if (i < argc && !strcmp(argv[i], "restore"))
		return restore(runc, argc - 2, argv + 2);
	argv[1] = (char *)runc;
	execv(runc, argv + 1);
	perror(runc);
	return 1;
}
