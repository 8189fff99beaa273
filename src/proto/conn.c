/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "conn: "
#include "proto/conn.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

int conn_new(const struct conn_ops *ops, void *priv, struct conn **ret)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		ops->close(priv);
		return -ENOMEM;
	}
	c->ops = ops;
	c->priv = priv;
	c->sendbuf = malloc(CONN_SENDBUF); /* without, frames cost a write more */
	pthread_mutex_init(&c->send_lock, NULL);
	*ret = c;
	return 0;
}

void conn_free(struct conn *c)
{
	if (!c)
		return;
	c->ops->close(c->priv);
	if (c->pf)
		c->pf_free(c->pf);
	if (c->xf)
		c->xf_free(c->xf);
	pthread_mutex_destroy(&c->send_lock);
	free(c->sendbuf);
	free(c);
}

int conn_read(struct conn *c, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = c->ops->read(c->priv, p, len);
		if (n < 0)
			return n;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= n;
		c->bytes_in += n;
	}
	return 0;
}

ssize_t conn_read_some(struct conn *c, void *buf, size_t len)
{
	ssize_t n = c->ops->read(c->priv, buf, len);

	if (n == 0)
		return -EPIPE;
	if (n > 0)
		c->bytes_in += n;
	return n;
}

void conn_abort(struct conn *c)
{
	if (c->ops->abort)
		c->ops->abort(c->priv);
}

static void rate_wait(struct conn *c, size_t len)
{
	uint64_t now = now_us();
	double burst = c->rate_Bps / 20.0 + 262144; /* 50 ms of traffic */

	if (c->bucket_ts_us)
		c->bucket += (now - c->bucket_ts_us) * (c->rate_Bps / 1e6);
	c->bucket_ts_us = now;
	if (c->bucket > burst)
		c->bucket = burst;
	c->bucket -= len;
	if (c->bucket < 0) {
		uint64_t us = -c->bucket * 1e6 / c->rate_Bps;
		struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
	}
}

int conn_write(struct conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	if (c->rate_Bps)
		rate_wait(c, len);
	while (len > 0) {
		ssize_t n = c->ops->write(c->priv, p, len);
		if (n < 0)
			return n;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= n;
		c->bytes_out += n;
	}
	return 0;
}

int conn_set_timeout(struct conn *c, int timeout_ms)
{
	if (!c->ops->set_timeout)
		return 0;
	return c->ops->set_timeout(c->priv, timeout_ms);
}

int conn_poll_fd(struct conn *c, bool *buffered)
{
	*buffered = false;
	return c->ops->poll_fd ? c->ops->poll_fd(c->priv, buffered) : -ENOTSUP;
}

int conn_set_link_timeout(struct conn *c, int timeout_ms)
{
	return c->ops->set_link_timeout ? c->ops->set_link_timeout(c->priv, timeout_ms) : 0;
}

void conn_set_rate(struct conn *c, uint64_t mbit)
{
	c->rate_Bps = mbit * 1000000 / 8;
	c->bucket = 0;
	c->bucket_ts_us = 0;
}

/* Plain fd transport: one socket, or a pipe each way (serve --stdio). */
struct fd_priv {
	int fd;	 /* read from */
	int wfd; /* written to: fd itself, or a pipe of its own */
	int timeout_ms;
};

static ssize_t fd_read(void *priv, void *buf, size_t len)
{
	struct fd_priv *f = priv;

	for (;;) {
		if (f->timeout_ms > 0) {
			struct pollfd pfd = { .fd = f->fd, .events = POLLIN };
			int r = poll(&pfd, 1, f->timeout_ms);
			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
		}
		ssize_t n = read(f->fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static ssize_t fd_write(void *priv, const void *buf, size_t len)
{
	struct fd_priv *f = priv;

	for (;;) {
		ssize_t n = write(f->wfd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

static int fd_set_timeout(void *priv, int timeout_ms)
{
	((struct fd_priv *)priv)->timeout_ms = timeout_ms;
	return 0;
}

static int fd_poll_fd(void *priv, bool *buffered)
{
	*buffered = false;
	return ((struct fd_priv *)priv)->fd;
}

static void fd_abort(void *priv)
{
	struct fd_priv *f = priv;

	shutdown(f->fd, SHUT_RDWR);
	if (f->wfd != f->fd)
		shutdown(f->wfd, SHUT_RDWR);
}

static void fd_close(void *priv)
{
	struct fd_priv *f = priv;

	close(f->fd);
	if (f->wfd != f->fd)
		close(f->wfd);
	free(f);
}

static const struct conn_ops fd_ops = {
	.read = fd_read,
	.write = fd_write,
	.set_timeout = fd_set_timeout,
	.close = fd_close,
	.poll_fd = fd_poll_fd,
	.abort = fd_abort,
};

int conn_from_fds(int rfd, int wfd, struct conn **ret)
{
	struct fd_priv *f = calloc(1, sizeof(*f));

	if (!f) {
		close(rfd);
		if (wfd != rfd)
			close(wfd);
		return -ENOMEM;
	}
	f->fd = rfd;
	f->wfd = wfd;
	return conn_new(&fd_ops, f, ret);
}

int conn_from_fd(int fd, struct conn **ret)
{
	return conn_from_fds(fd, fd, ret);
}
