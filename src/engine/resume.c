/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "resume: "
#include "engine/resume.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"

static socklen_t resume_addr(const uint8_t id[PHAUL_SESSION_ID_LEN], struct sockaddr_un *sa)
{
	char hex[2 * PHAUL_SESSION_ID_LEN + 1];
	int n;

	session_hex(id, hex);
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	/* abstract: nothing on disk to clean up, gone with the process */
	n = snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "phaul-pages-%s", hex);
	return offsetof(struct sockaddr_un, sun_path) + 1 + n;
}

int resume_listen(const uint8_t id[PHAUL_SESSION_ID_LEN], int *ret_fd)
{
	struct sockaddr_un sa;
	socklen_t len = resume_addr(id, &sa);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 4) < 0) {
		pr_perror("cannot listen for a resumed connection");
		return -errno;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static bool peer_is_root(int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == 0;
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
		if (!peer_is_root(fd)) {
			pr_warn("refused a resume connection from a process not run by root");
			close(fd);
			continue;
		}
		return conn_from_fd(fd, ret);
	}
}

int resume_connect(const uint8_t id[PHAUL_SESSION_ID_LEN], int *ret_fd)
{
	struct sockaddr_un sa;
	socklen_t len = resume_addr(id, &sa);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0)
		return errno == ECONNREFUSED ? -ENOENT : -errno;
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
