/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "xfer: "
#include "proto/xfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/wire.h"

static void xxh_freep(XXH64_state_t **s)
{
	if (*s)
		XXH64_freeState(*s);
}
#define _cleanup_xxh_ __attribute__((cleanup(xxh_freep)))

static int send_begin(struct conn *c, const char *name, uint64_t size, uint32_t mode)
{
	Phaul__FileBegin fb = PHAUL__FILE_BEGIN__INIT;

	fb.name = (char *)name;
	fb.size = size;
	fb.has_mode = true;
	fb.mode = mode & 07777;
	return msg_send_file_begin(c, &fb);
}

static int send_end(struct conn *c, uint64_t hash)
{
	Phaul__FileEnd fe = PHAUL__FILE_END__INIT;

	fe.xxh64 = hash;
	return msg_send_file_end(c, &fe);
}

int xfer_send_file(struct conn *c, int dirfd, const char *name, const struct xfer_progress *p)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ uint8_t *buf = malloc(FRAME_DATA_MAX);
	_cleanup_xxh_ XXH64_state_t *h = XXH64_createState();
	struct stat st;
	uint64_t left;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		pr_perror("cannot open image %s", name);
		return -errno;
	}
	if (!buf || !h)
		return -ENOMEM;
	XXH64_reset(h, 0);
	r = send_begin(c, name, st.st_size, st.st_mode);
	for (left = st.st_size; r == 0 && left > 0;) {
		size_t n = MIN(left, (uint64_t)FRAME_DATA_MAX);
		r = read_full(fd, buf, n);
		if (r < 0) {
			errno = -r;
			pr_perror("cannot read image %s", name);
			break;
		}
		XXH64_update(h, buf, n);
		r = frame_send(c, FRAME_DATA, buf, n);
		left -= n;
		if (r == 0 && p && p->cb)
			p->cb(p->arg, n);
	}
	if (r == 0)
		r = send_end(c, XXH64_digest(h));
	return r;
}

static int recv_data(struct conn *c, int fd, uint64_t size, XXH64_state_t *h)
{
	_cleanup_free_ uint8_t *buf = malloc(FRAME_DATA_MAX);
	enum frame_type type;
	uint32_t len;
	int r;

	if (!buf)
		return -ENOMEM;
	while (size > 0) {
		r = frame_recv(c, &type, buf, FRAME_DATA_MAX, &len);
		if (r < 0)
			return r;
		if (type != FRAME_DATA || len == 0 || len > size) {
			pr_err("file stream broken: %s frame of %u bytes with %llu left",
			       type == FRAME_DATA ? "data" : "message", len,
			       (unsigned long long)size);
			return -EPROTO;
		}
		XXH64_update(h, buf, len);
		r = write_full(fd, buf, len);
		if (r < 0) {
			errno = -r;
			pr_perror("cannot write received image");
			return r;
		}
		size -= len;
	}
	return 0;
}

static int recv_end(struct conn *c, const char *name, uint64_t want)
{
	_cleanup_msg_ Msg *m = NULL;
	int r = msg_recv(c, &m);

	if (r < 0)
		return r;
	if (m->body_case != PHAUL__MSG__BODY_FILE_END) {
		pr_err("expected FileEnd for %s, got %s", name, msg_name(m->body_case));
		return -EPROTO;
	}
	if (m->file_end->xxh64 != want) {
		pr_err("checksum mismatch on %s: the stream was corrupted", name);
		return -EBADMSG;
	}
	return 0;
}

int xfer_recv_file(struct conn *c, int dirfd, const Phaul__FileBegin *fb, uint64_t *budget)
{
	_cleanup_close_ int fd = -1;
	_cleanup_xxh_ XXH64_state_t *h = XXH64_createState();
	mode_t mode = fb->has_mode ? (fb->mode & 0600) | 0600 : 0600;
	int r;

	if (!name_is_safe(fb->name))
		return -EPROTO;
	if (fb->size > *budget) {
		pr_err("image %s (%llu bytes) exceeds the space left (%llu bytes)", fb->name,
		       (unsigned long long)fb->size, (unsigned long long)*budget);
		return -ENOSPC;
	}
	if (!h)
		return -ENOMEM;
	XXH64_reset(h, 0);
	fd = openat(dirfd, fb->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		pr_perror("cannot create image %s", fb->name);
		return -errno;
	}
	r = recv_data(c, fd, fb->size, h);
	if (r == 0)
		r = recv_end(c, fb->name, XXH64_digest(h));
	if (r < 0) {
		unlinkat(dirfd, fb->name, 0);
		return r;
	}
	*budget -= fb->size;
	return 0;
}
