/* SPDX-License-Identifier: MIT */
/*
 * conn: one byte stream between the two hosts, with byte counters, an
 * optional rate cap and per-call timeouts. The stream is TLS over TCP in
 * production (tls.c); tests and fuzzers plug in plain fds or memory.
 *
 * conn_read() returns exactly the bytes asked or fails: -EPIPE when the
 * peer closed, -ETIMEDOUT after the read timeout or on a dead link, the
 * socket's errno (-ECONNRESET, ...) on a broken one, -EBADMSG on a forged
 * or corrupted stream. conn_write() writes all bytes or fails.
 */
#ifndef PHAUL_CONN_H
#define PHAUL_CONN_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conn_ops {
	/* Like read(2)/write(2); a negative errno on failure, 0 on EOF. */
	ssize_t (*read)(void *priv, void *buf, size_t len);
	ssize_t (*write)(void *priv, const void *buf, size_t len);
	int (*set_timeout)(void *priv, int timeout_ms);
	void (*close)(void *priv);
	/* Optional: the fd to poll, and whether bytes already wait in a buffer. */
	int (*poll_fd)(void *priv, bool *buffered);
	/* Optional: how long unacknowledged data may wait before the link is
	 * declared dead (TCP_USER_TIMEOUT). */
	int (*set_link_timeout)(void *priv, int timeout_ms);
	/* Optional: break the link now (both directions), for fault tests. */
	void (*abort)(void *priv);
};

struct conn {
	const struct conn_ops *ops;
	void *priv;
	uint64_t bytes_in;
	uint64_t bytes_out;
	/* token bucket for --bandwidth; rate 0 = no cap */
	uint64_t rate_Bps;
	uint64_t bucket_ts_us;
	double bucket;
	/* page data as FRAME_PAGES (pageframe.h, negotiated); NULL: FRAME_DATA.
	 * Set with pf_attach(), freed with the conn. */
	struct pf_ctx *pf;
	void (*pf_free)(struct pf_ctx *pf);
	/* image chunks with a header, maybe compressed (xfer.h, negotiated);
	 * NULL: raw. Set with xfer_attach(), freed with the conn. */
	struct xfer_codec *xf;
	void (*xf_free)(struct xfer_codec *xf);
	/* one thread may read while others send: each frame goes out whole */
	pthread_mutex_t send_lock;
	/* CONN_SENDBUF bytes under send_lock: a frame's header and the start
	 * of its payload in one write (NULL: two writes) */
	uint8_t *sendbuf;
};

/* The plaintext of one TLS record. */
#define CONN_SENDBUF (16u * 1024)

/* Wrap @ops/@priv (taken over: closed by conn_free). */
int conn_new(const struct conn_ops *ops, void *priv, struct conn **ret);
/* A conn over a plain socket or pipe fd (taken over), for tests. */
int conn_from_fd(int fd, struct conn **ret);
/* A conn reading @rfd and writing @wfd (both taken over; may be equal):
 * the two pipes of `phaul serve --stdio` under sshd. */
int conn_from_fds(int rfd, int wfd, struct conn **ret);
void conn_free(struct conn *c);
static inline void conn_freep(struct conn **c)
{
	if (*c)
		conn_free(*c);
}
#define _cleanup_conn_ __attribute__((cleanup(conn_freep)))

int conn_read(struct conn *c, void *buf, size_t len);
/* Whatever is there, 1..@len bytes (a relay's read); -EPIPE at the end. */
ssize_t conn_read_some(struct conn *c, void *buf, size_t len);
/* Break the link (both directions); the peer sees it reset or closed. */
void conn_abort(struct conn *c);
int conn_write(struct conn *c, const void *buf, size_t len);
/* 0 = wait forever (the TCP user timeout still ends a dead link). */
int conn_set_timeout(struct conn *c, int timeout_ms);
/* The fd to poll for input (-ENOTSUP if none); *buffered: already readable. */
int conn_poll_fd(struct conn *c, bool *buffered);
/* A dead link is declared after @timeout_ms of silence under load. */
int conn_set_link_timeout(struct conn *c, int timeout_ms);
/* Cap the sending rate at @mbit megabits per second (0: no cap). */
void conn_set_rate(struct conn *c, uint64_t mbit);

#endif
