/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: xfer_recv_file reading a forged stream from memory
 * into a temporary directory (created once, emptied after each input).
 *
 * Input: an 8-byte header that builds the (already validated) FileBegin,
 * then the frames that follow it on the wire (DATA..., FileEnd).
 *
 *   [0]     bits 0-1: name (img, pages-1.img, core-1.img, x)
 *           bit 2: a file of that name exists already
 *           bit 3: has_mode (0644)
 *           bit 4: PHAUL_FEAT_IMG_ZSTD agreed (chunks with a header)
 *   [1..4]  size, bits 0-31, little-endian
 *   [5]     size, bits 32-39
 *   [6]     budget: 0 unlimited, 1 = size, 2 = size - 1, n: n * 64 KiB
 *   [7]     bytes per read() call (0: as many as asked)
 *
 * Whatever the stream, the receiver must leave either the whole file
 * (exactly `size` bytes, budget charged) or nothing, never touch a file
 * that was there, and never create anything else.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/xfer.h"
#include "fuzz.h"

#define HDR 8

static const char *const names[] = { "img", "pages-1.img", "core-1.img", "x" };
static const char precious[] = "precious contents";

static char dir[4096];
static int dirfd_ = -1;

struct mem {
	const uint8_t *p;
	size_t len, pos, chunk;
};

static ssize_t mem_read(void *priv, void *buf, size_t len)
{
	struct mem *m = priv;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return n;
}

static ssize_t mem_write(void *priv, const void *buf, size_t len)
{
	return len;
}

static void mem_close(void *priv)
{
}

static const struct conn_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.close = mem_close,
};

static void cleanup(void)
{
	if (dirfd_ >= 0) {
		close(dirfd_);
		dirfd_ = -1;
		rm_rf(dir);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	log_init("fuzz", LOG_QUIET);
	snprintf(dir, sizeof(dir), "%s/phaul-fuzz-xfer.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static int count_entries(void)
{
	int fd = dup(dirfd_), n = 0;
	DIR *d;
	struct dirent *de;

	CHECK(fd >= 0);
	d = fdopendir(fd);
	CHECK(d);
	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Phaul__FileBegin fb = PHAUL__FILE_BEGIN__INIT;
	struct mem m = { 0 };
	struct conn *c;
	uint64_t budget, before;
	bool existed;
	struct stat st;
	int r;

	if (size < HDR)
		return 0;
	fb.name = (char *)names[data[0] & 3];
	existed = data[0] & 4;
	fb.has_mode = data[0] & 8;
	fb.mode = 0644;
	fb.size = (uint64_t)data[1] | (uint64_t)data[2] << 8 | (uint64_t)data[3] << 16 |
		  (uint64_t)data[4] << 24 | (uint64_t)data[5] << 32;
	switch (data[6]) {
	case 0: budget = UINT64_MAX; break;
	case 1: budget = fb.size; break;
	case 2: budget = fb.size ? fb.size - 1 : 0; break;
	default: budget = (uint64_t)data[6] << 16; break;
	}
	m.chunk = data[7];
	m.p = data + HDR;
	m.len = size - HDR;

	if (existed) {
		int fd = openat(dirfd_, fb.name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		CHECK(fd >= 0);
		CHECK(write_full(fd, precious, sizeof(precious)) == 0);
		close(fd);
	}
	before = budget;
	CHECK(conn_new(&mem_ops, &m, &c) == 0);
	if (data[0] & 16)
		CHECK(xfer_attach(c, PF_COMPRESS_OFF, NULL) == 0);
	r = xfer_recv_file(c, dirfd_, &fb, &budget);
	conn_free(c);

	if (r == 0) {
		CHECK(!existed);
		CHECK(fstatat(dirfd_, fb.name, &st, AT_SYMLINK_NOFOLLOW) == 0);
		CHECK(S_ISREG(st.st_mode));
		CHECK((uint64_t)st.st_size == fb.size);
		CHECK((st.st_mode & 077) == 0);
		CHECK(before - budget == fb.size);
		CHECK(count_entries() == 1);
	} else {
		CHECK(budget == before);
		if (existed) {
			char buf[sizeof(precious)];
			int fd = openat(dirfd_, fb.name, O_RDONLY | O_CLOEXEC);
			CHECK(fd >= 0);
			CHECK(fstat(fd, &st) == 0 && st.st_size == sizeof(precious));
			CHECK(read_full(fd, buf, sizeof(buf)) == 0);
			CHECK(memcmp(buf, precious, sizeof(buf)) == 0);
			close(fd);
			CHECK(count_entries() == 1);
		} else {
			CHECK(count_entries() == 0);
		}
	}
	CHECK(rm_rf_at(dirfd_) == 0);
	return 0;
}
