/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "key: "
#include "proto/key.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define KEY_TAG "phaul-psk-v1 "

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int key_parse(const char *text, struct psk_key *ret)
{
	const char *p;
	size_t i;

	if (strncmp(text, KEY_TAG, strlen(KEY_TAG)))
		return -EINVAL;
	p = text + strlen(KEY_TAG);
	for (i = 0; i < PHAUL_KEY_LEN; i++) {
		int hi = hexval(p[2 * i]), lo;
		if (hi < 0)
			return -EINVAL;
		lo = hexval(p[2 * i + 1]);
		if (lo < 0)
			return -EINVAL;
		ret->bytes[i] = hi << 4 | lo;
	}
	p += 2 * PHAUL_KEY_LEN;
	if (*p == '\n')
		p++;
	return *p ? -EINVAL : 0;
}

/*
 * Opened without following a symlink, then checked on the open file (no
 * window between the check and the read): a regular file, owned by root
 * or by us, no access for group or others.
 */
int key_load(const char *path, struct psk_key *ret)
{
	_cleanup_close_ int fd = open(path,
				      O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	char text[257];
	struct stat st;
	ssize_t n;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		pr_perror("cannot read key file %s%s", path,
			  errno == ELOOP ? " (a symlink: name the file itself)" : "");
		return -errno;
	}
	if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid())) {
		pr_err("key file %s must be a regular file owned by root", path);
		return -EPERM;
	}
	if (st.st_mode & 077) {
		pr_err("key file %s is accessible by group or others (mode %o); chmod 600 it", path,
		       st.st_mode & 0777);
		return -EPERM;
	}
	n = read(fd, text, sizeof(text) - 1);
	if (n < 0) {
		pr_perror("cannot read key file %s", path);
		return -errno;
	}
	text[n] = '\0';
	r = key_parse(text, ret);
	explicit_bzero(text, sizeof(text));
	if (r < 0)
		pr_err("%s is not a phaul key file (make one with 'phaul keygen')", path);
	return r;
}

int key_generate(const char *path)
{
	uint8_t raw[PHAUL_KEY_LEN];
	char text[sizeof(KEY_TAG) + 2 * PHAUL_KEY_LEN + 2];
	_cleanup_close_ int fd = -1;
	size_t n;
	int r;

	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw)) {
		pr_perror("getrandom");
		return -EIO;
	}
	n = snprintf(text, sizeof(text), "%s", KEY_TAG);
	for (size_t i = 0; i < sizeof(raw); i++)
		n += snprintf(text + n, sizeof(text) - n, "%02x", raw[i]);
	text[n++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		pr_perror("cannot create key file %s", path);
		return -errno;
	}
	r = write_full(fd, text, n);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(text, sizeof(text));
	if (r < 0) {
		errno = -r;
		pr_perror("cannot write key file %s", path);
		unlink(path);
	}
	return r;
}
