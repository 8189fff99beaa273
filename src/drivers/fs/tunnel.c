/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "tunnel: "
#include "drivers/fs/tunnel.h"

#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/msg.h"

struct pump {
	const struct drv_ctx *ctx;
	int fd;
	uint64_t bytes;
	int err;
};

static int send_data(const struct drv_ctx *ctx, const uint8_t *buf, size_t len, bool eof)
{
	Phaul__FsData d = PHAUL__FS_DATA__INIT;
	Msg msg = PHAUL__MSG__INIT;

	d.has_data = len > 0;
	d.data.data = (uint8_t *)buf;
	d.data.len = len;
	d.has_eof = eof;
	d.eof = eof;
	msg.body_case = PHAUL__MSG__BODY_FS_DATA;
	msg.fs_data = &d;
	return drv_send(ctx, &msg);
}

/* fd -> channel, until end of file (or a read error: then eof too). */
static void *pump_out(void *arg)
{
	struct pump *p = arg;
	uint8_t *buf = malloc(MSG_FSDATA_MAX);
	ssize_t n;
	int r = buf ? 0 : -ENOMEM;

	while (r == 0) {
		n = read(p->fd, buf, MSG_FSDATA_MAX);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0)
				p->err = -errno;
			break;
		}
		r = send_data(p->ctx, buf, n, false);
		p->bytes += n;
	}
	if (r == 0)
		r = send_data(p->ctx, NULL, 0, true);
	if (r < 0 && !p->err)
		p->err = r;
	free(buf);
	return NULL;
}

/* channel -> fd, until the peer's eof. */
static int pump_in(const struct drv_ctx *ctx, int fd, uint64_t *bytes)
{
	for (;;) {
		_cleanup_msg_ Msg *msg = NULL;
		int r = drv_recv(ctx, &msg);

		if (r < 0)
			return r;
		if (msg->body_case == PHAUL__MSG__BODY_ERROR) {
			pr_err("the peer failed: %s", msg->error->message);
			return -EPROTO;
		}
		if (msg->body_case != PHAUL__MSG__BODY_FS_DATA) {
			pr_err("%s in the middle of a storage copy", msg_name(msg->body_case));
			return -EPROTO;
		}
		/* a local end gone early: keep draining so the peer can finish */
		if (msg->fs_data->has_data && fd >= 0 &&
		    write_full(fd, msg->fs_data->data.data, msg->fs_data->data.len) < 0) {
			pr_perror("local end of the tunnel");
			shutdown(fd, SHUT_RDWR);
			fd = -1;
		}
		*bytes += msg->fs_data->has_data ? msg->fs_data->data.len : 0;
		if (msg->fs_data->has_eof && msg->fs_data->eof) {
			if (fd >= 0)
				shutdown(fd, SHUT_WR);
			return 0;
		}
	}
}

int tunnel_run(const struct drv_ctx *ctx, int fd, struct tunnel_stats *st)
{
	struct pump out = { .ctx = ctx, .fd = fd };
	pthread_t th;
	int r;

	r = -pthread_create(&th, NULL, pump_out, &out);
	if (r < 0) {
		pr_err("cannot start the sending thread: %s", strerror(-r));
		return r;
	}
	r = pump_in(ctx, fd, &st->bytes_in);
	if (r < 0)
		shutdown(fd, SHUT_RDWR); /* the local end ends: so does the thread */
	pthread_join(th, NULL);
	st->bytes_out = out.bytes;
	if (r == 0 && out.err < 0) {
		pr_err("sending: %s", strerror(-out.err));
		r = out.err;
	}
	return r;
}
