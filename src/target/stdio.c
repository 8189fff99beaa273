/* SPDX-License-Identifier: MIT */
/*
 * target/stdio: `phaul serve --stdio`, one migration on stdin and stdout,
 * started by sshd for `phaul migrate --to ssh://...` (proto/sshchan.h).
 *
 * The stream is the framed protocol without TLS: sshd authenticated the
 * caller and encrypts the channel. So --stdio serves nothing else: its
 * stdin and stdout must be pipes or sockets (what sshd gives a command)
 * and SSH_CONNECTION must be set (sshd sets it); a terminal or a file is
 * refused. The session runs in this process, as a daemon's child would:
 * before its commit a broken channel rolls it back; after it, in
 * post-copy, it waits for the source to dial again, and the new
 * `serve --stdio` relays to it through its resume socket
 * (pages/reconnect.h).
 */
#define LOG_PREFIX "serve: "
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "target/serve.h"
#include "target/target.h"

static bool is_channel(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
}

/* Take stdin and stdout for the stream; CRIU and helpers get /dev/null. */
static int take_stdio(int *rfd, int *wfd)
{
	int null;

	*rfd = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	*wfd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (*rfd < 0 || *wfd < 0 || null < 0 || dup2(null, STDIN_FILENO) < 0 ||
	    dup2(null, STDOUT_FILENO) < 0) {
		int r = -errno;
		pr_perror("cannot take stdin and stdout");
		return r;
	}
	close(null);
	return 0;
}

int serve_stdio(const struct serve_opts *o)
{
	const char *ssh = getenv("SSH_CONNECTION");
	struct conn *c;
	int r, rfd, wfd;

	if (!ssh || !*ssh || !is_channel(STDIN_FILENO) || !is_channel(STDOUT_FILENO)) {
		pr_err("--stdio serves a channel from sshd only (stdin and stdout pipes or "
		       "sockets, SSH_CONNECTION set): the stream is not encrypted by phaul");
		return -EPERM;
	}
	r = mkdir_p(o->workdir, 0700);
	if (r < 0) {
		pr_err("cannot create work directory %s: %s", o->workdir, strerror(-r));
		return r;
	}
	session_sweep(o->workdir, "in-");
	r = take_stdio(&rfd, &wfd);
	if (r < 0)
		return r;
	/* the channel may break and the session (committed) go on */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	setsid();
	r = conn_from_fds(rfd, wfd, &c);
	if (r < 0)
		return r;
	pr_info("serving one migration over ssh from %s", ssh);
	return target_session_conn(c, o) ? -EIO : 0;
}
