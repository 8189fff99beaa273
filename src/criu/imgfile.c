/* SPDX-License-Identifier: MIT */
#include "criu/imgfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

uint32_t img_u32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

bool img_has_magic(const uint8_t *buf, size_t len, uint32_t magic)
{
	return len >= 8 && img_u32(buf) == CRIU_IMG_COMMON_MAGIC && img_u32(buf + 4) == magic;
}

int img_next_record(const uint8_t *buf, size_t len, size_t *off, const uint8_t **rec,
		    uint32_t *rlen, uint32_t max)
{
	if (*off == len)
		return 0;
	if (len - *off < 4)
		return -EINVAL;
	*rlen = img_u32(buf + *off);
	*off += 4;
	if (*rlen > max || *rlen > len - *off)
		return -EINVAL;
	*rec = buf + *off;
	*off += *rlen;
	return 1;
}

int img_read_file(int dirfd, const char *name, size_t max, uint8_t **buf, size_t *len)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ uint8_t *b = NULL;
	struct stat st;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > max)
		return -EFBIG;
	b = malloc(st.st_size ? st.st_size : 1);
	if (!b)
		return -ENOMEM;
	r = read_full(fd, b, st.st_size);
	if (r < 0)
		return r;
	*buf = b;
	b = NULL;
	*len = st.st_size;
	return 0;
}
