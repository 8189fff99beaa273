/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pidlock: "
#include "pidlock.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "log.h"
#include "util.h"

const char *pidlock_dir(void)
{
	const char *d = getenv("PHAUL_RUNDIR");

	return d && *d ? d : PIDLOCK_DEFAULT_DIR;
}

static int lock_path(const char *dir, pid_t pid, char *buf, size_t len)
{
	struct stat st;
	int n;

	if (stat("/proc/self/ns/pid", &st) < 0)
		st.st_ino = 0;
	n = snprintf(buf, len, "%s/pid-%llu-%d.lock", dir, (unsigned long long)st.st_ino, pid);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static pid_t read_holder(int fd)
{
	char text[24] = "";

	if (pread(fd, text, sizeof(text) - 1, 0) <= 0)
		return 0;
	return atoi(text);
}

/* Locked @fd is still the file at @path (not unlinked by a releaser). */
static bool still_linked(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

int pidlock_take(const char *dir, pid_t pid, pid_t *holder)
{
	char path[4096], text[24];
	int r, n;

	*holder = 0;
	r = mkdir_p(dir, 0700);
	if (r == 0)
		r = lock_path(dir, pid, path, sizeof(path));
	if (r < 0) {
		pr_err("cannot use lock directory %s: %s", dir, strerror(-r));
		return r;
	}
	for (int tries = 0; tries < 100; tries++) {
		_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
					      0600);
		if (fd < 0) {
			r = -errno;
			pr_perror("cannot open %s", path);
			return r;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK) {
				r = -errno;
				pr_perror("flock %s", path);
				return r;
			}
			*holder = read_holder(fd);
			return -EBUSY;
		}
		if (!still_linked(fd, path))
			continue; /* the holder before us removed it: lock the new one */
		n = snprintf(text, sizeof(text), "%d\n", (int)getpid());
		if (ftruncate(fd, 0) < 0 || pwrite(fd, text, n, 0) != n)
			pr_warn("cannot write the holder into %s: %m", path);
		return TAKE_FD(fd);
	}
	pr_err("%s keeps changing under us", path);
	return -EAGAIN;
}

void pidlock_release(const char *dir, pid_t pid, int fd)
{
	char path[4096];

	if (fd < 0)
		return;
	/* unlink while holding the lock: a waiter that opened the old file
	 * sees it unlinked (still_linked) and starts over */
	if (lock_path(dir, pid, path, sizeof(path)) == 0)
		unlink(path);
	close(fd);
}
