/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "resume: "
#include "pages/reconnect.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"

/*
 * The socket is "resume.sock" in the waiting session's directory (mode
 * 0700 under the root-only work dir): no other user can create, squat on
 * or reach that name, unlike an abstract name anyone may bind first. It
 * is reached through an O_PATH fd of the directory (/proc/self/fd/N/...),
 * so that a long work dir does not overflow sun_path.
 */
static int resume_addr(const char *dir, int *dfd, struct sockaddr_un *sa, socklen_t *len)
{
	int n;

	*dfd = open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*dfd < 0)
		return -errno;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/" RESUME_SOCK, *dfd);
	*len = offsetof(struct sockaddr_un, sun_path) + n + 1;
	return 0;
}

int resume_listen(const char *dir, int *ret_fd)
{
	struct sockaddr_un sa;
	socklen_t len;
	_cleanup_close_ int dfd = -1;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = fd < 0 ? -errno : resume_addr(dir, &dfd, &sa, &len);

	if (r == 0 && (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 4) < 0))
		r = -errno;
	if (r < 0) {
		pr_err("cannot listen for a resumed connection in %s: %s", dir, strerror(-r));
		return r;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int resume_accept(int lfd, int wake, int timeout_ms, struct conn **ret)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = lfd, .events = POLLIN },
					 { .fd = wake, .events = POLLIN } };
		uint64_t now = now_ms();
		int r, fd;
		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(pfd, 2, (int)(deadline - now));
		if (r < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		if (pfd[1].revents)
			return -ECANCELED;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (!sock_peer_is_root(fd)) {
			pr_warn("refused a resume connection from a process not run by root");
			close(fd);
			continue;
		}
		return conn_from_fd(fd, ret);
	}
}

int resume_connect(const char *dir, int *ret_fd)
{
	struct sockaddr_un sa;
	socklen_t len;
	_cleanup_close_ int dfd = -1;
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = fd < 0 ? -errno : resume_addr(dir, &dfd, &sa, &len);

	if (r < 0)
		return r == -ENOTDIR ? -ENOENT : r;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0)
		return errno == ECONNREFUSED ? -ENOENT : -errno;
	/* the listener's credentials, as of its listen(): never relay a
	 * source's pages to a process that is not root's */
	if (!sock_peer_is_root(fd)) {
		pr_err("the resume socket in %s is not a root process's: not relayed", dir);
		return -EPERM;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* One direction's available bytes; 1 while it goes on, 0 at its end. */
static int pass_from_conn(struct conn *c, int fd, uint8_t *buf, size_t len)
{
	ssize_t n = conn_read_some(c, buf, len);

	if (n < 0)
		return n == -EPIPE ? 0 : (int)n;
	return write_full(fd, buf, n) < 0 ? 0 : 1;
}

static int pass_to_conn(int fd, struct conn *c, uint8_t *buf, size_t len)
{
	ssize_t n = read(fd, buf, len);

	if (n < 0)
		return errno == EINTR ? 1 : -errno;
	if (n == 0)
		return 0;
	return conn_write(c, buf, n) < 0 ? 0 : 1;
}

int resume_relay(struct conn *c, int fd)
{
	uint8_t buf[65536];
	int r = 1;

	conn_set_timeout(c, 0);
	while (r > 0) {
		bool buffered;
		struct pollfd pfd[2] = { { .fd = conn_poll_fd(c, &buffered), .events = POLLIN },
					 { .fd = fd, .events = POLLIN } };
		if (!buffered && poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (buffered || pfd[0].revents)
			r = pass_from_conn(c, fd, buf, sizeof(buf));
		if (r > 0 && pfd[1].revents)
			r = pass_to_conn(fd, c, buf, sizeof(buf));
	}
	return r;
}
