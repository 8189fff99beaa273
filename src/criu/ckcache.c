/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "criu: "
#include "criu/ckcache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/log.h"
#include "common/pidlock.h"
#include "common/util.h"

#define CK_MAGIC "phaul-ckcache 1\n"
#define CK_MAX (64u << 10)

static const char *const ck_ns[] = { "mnt", "net", "pid", "user", "ipc", "uts", "cgroup" };

static bool cache_on(void)
{
	const char *env = getenv("PHAUL_CRIU_CACHE");

	return !env || strcmp(env, "0") != 0;
}

static bool read_boot_id(char *buf, size_t len)
{
	_cleanup_close_ int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

/* The key's text: everything an answer depends on (ckcache.h). */
static bool key_text(char *t, size_t len, const char *criu, const char *what, const void *about,
		     size_t alen)
{
	char boot[64], path[64];
	struct stat st;
	size_t n;

	if (criu[0] != '/' || stat(criu, &st) < 0 || !read_boot_id(boot, sizeof(boot)))
		return false;
	n = snprintf(t, len, "%s boot=%s criu=%s:%llu:%llu:%lld:%lld.%09ld uid=%u what=%s:%016llx",
		     CK_MAGIC, boot, criu, (unsigned long long)st.st_dev,
		     (unsigned long long)st.st_ino, (long long)st.st_size,
		     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (unsigned)geteuid(), what,
		     (unsigned long long)(alen ? XXH3_64bits(about, alen) : 0));
	for (size_t i = 0; i < ARRAY_SIZE(ck_ns) && n < len; i++) {
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ck_ns[i]);
		if (stat(path, &st) < 0)
			st.st_ino = 0;
		n += snprintf(t + n, len - n, " %s=%llu", ck_ns[i], (unsigned long long)st.st_ino);
	}
	return n < len;
}

bool ckcache_key(struct ckkey *k, const char *criu, const char *what, const void *about, size_t len)
{
	char text[1024];
	XXH128_hash_t h;

	if (!cache_on() || !key_text(text, sizeof(text), criu, what, about, len))
		return false;
	h = XXH3_128bits(text, strlen(text));
	snprintf(k->name, sizeof(k->name), "ck-%016llx%016llx", (unsigned long long)h.high64,
		 (unsigned long long)h.low64);
	return true;
}

/* Ours alone: owned by us, written by nobody else. */
static bool ours(const struct stat *st)
{
	return st->st_uid == geteuid() && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static bool dir_ours(const char *dir)
{
	struct stat st;

	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && ours(&st);
}

/* The entry's payload and age, when it is whole, ours and fresh. */
static bool read_entry(int fd, uint8_t **data, size_t *len, long *age_s)
{
	const size_t hl = sizeof(CK_MAGIC) - 1;
	struct stat st;
	uint8_t *buf;
	ssize_t n;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !ours(&st) || st.st_size < (off_t)hl ||
	    st.st_size > (off_t)CK_MAX)
		return false;
	*age_s = (long)(time(NULL) - st.st_mtim.tv_sec);
	if (*age_s < 0 || *age_s > CKCACHE_TTL_S)
		return false;
	buf = malloc(st.st_size + 1);
	n = buf ? pread(fd, buf, st.st_size, 0) : -1;
	if (n != st.st_size || memcmp(buf, CK_MAGIC, hl)) {
		free(buf);
		return false;
	}
	*len = n - hl;
	memmove(buf, buf + hl, *len);
	if (!*len) {
		free(buf);
		buf = NULL;
	}
	*data = buf;
	return true;
}

bool ckcache_get(const struct ckkey *k, uint8_t **data, size_t *len, long *age_s)
{
	const char *dir = pidlock_dir();
	char path[4200];
	_cleanup_close_ int fd = -1;

	*data = NULL;
	*len = 0;
	if (!dir_ours(dir))
		return false;
	snprintf(path, sizeof(path), "%s/%s", dir, k->name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd >= 0 && read_entry(fd, data, len, age_s);
}

void ckcache_put(const struct ckkey *k, const void *data, size_t len)
{
	const char *dir = pidlock_dir();
	char tmp[4200], path[4150];
	_cleanup_close_ int fd = -1;

	if (len > CK_MAX - sizeof(CK_MAGIC) || mkdir_p(dir, 0700) < 0 || !dir_ours(dir))
		return;
	if (snprintf(path, sizeof(path), "%s/%s", dir, k->name) >= (int)sizeof(path) ||
	    snprintf(tmp, sizeof(tmp), "%s/%s.%d.tmp", dir, k->name, (int)getpid()) >=
		    (int)sizeof(tmp))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write_full(fd, CK_MAGIC, sizeof(CK_MAGIC) - 1) < 0 ||
	    (len && write_full(fd, data, len) < 0) || rename(tmp, path) < 0) {
		pr_debug("cannot keep a CRIU answer in %s: %m", dir);
		unlink(tmp);
	}
}
