/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: tunnel_run (the sync driver's rsync tunnel) reading a
 * forged message stream from memory (the driver's channel, struct drv_ctx,
 * over a memconn, as the engine gives it); its local end is a socket whose
 * other end is drained by a thread (and sends nothing: end of file).
 *
 * Whatever the stream, tunnel_run must return (no hang, no crash), and
 * when it returns 0 the bytes it counted as received are exactly those
 * that came out of the local socket.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "drivers/fs/tunnel.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "memconn.h"
#include "fuzz.h"

struct drain {
	int fd;
	uint64_t bytes;
};

static void *drain(void *arg)
{
	struct drain *d = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(d->fd, buf, sizeof(buf))) > 0)
		d->bytes += n;
	return NULL;
}

static int chan_send(void *arg, Msg *msg)
{
	return msg_send(arg, msg);
}

static int chan_recv(void *arg, Msg **msg)
{
	return msg_recv(arg, msg);
}

static const struct drv_host chan = { .send = chan_send, .recv = chan_recv };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_QUIET);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct memconn m = { .p = data, .len = size };
	struct tunnel_stats ts = { 0 };
	struct drain d;
	struct conn *c;
	pthread_t th;
	int sp[2], r;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
	shutdown(sp[1], SHUT_WR); /* the local end has nothing to send */
	d.fd = sp[1];
	d.bytes = 0;
	CHECK(pthread_create(&th, NULL, drain, &d) == 0);
	CHECK(conn_new(&memconn_ops, &m, &c) == 0);
	r = tunnel_run(&(struct drv_ctx){ .host = &chan, .arg = c, .fs_index = 0 }, sp[0], &ts);
	close(sp[0]);
	pthread_join(th, NULL);
	close(sp[1]);
	if (r == 0)
		CHECK(ts.bytes_in == d.bytes);
	CHECK(ts.bytes_out == 0);
	conn_free(c);
	return 0;
}
