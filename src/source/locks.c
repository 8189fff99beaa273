/* SPDX-License-Identifier: MIT */
/*
 * source/locks: a file lock the tree holds on storage both hosts see
 * cannot move. CRIU alone kills the dumped tree before it restores, so
 * its restore takes the lock again; a migration keeps the source's
 * frozen copy, and its locks, until the commit, so the destination's
 * restore would wait for the lock the source holds, for ever. Refused at
 * the preflight, before anything freezes. Locks on files under a
 * `sync:DIR` or a `disk:` mount point are not shared (the destination
 * has its own copy, its own mount) and move, and so do read leases
 * (the restore's open for reading leaves the source's lease alone; an
 * open of a file with a write lease would wait for lease-break-time,
 * then break the source's lease).
 */
#define LOG_PREFIX "locks: "
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "drivers/fs/disk_spec.h"
#include "source/source.h"

/* @path is @dir or below it. */
static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/' || n == 1);
}

bool storage_is_private(const char *const *fs, size_t nr_fs, const char *path)
{
	char image[PATH_MAX], mnt[PATH_MAX];

	for (size_t i = 0; i < nr_fs; i++) {
		if (!strncmp(fs[i], "sync:", 5) && path_under(path, fs[i] + 5))
			return true;
		if (!strncmp(fs[i], "disk:", 5) &&
		    disk_parse_spec(fs[i] + 5, image, mnt, sizeof(mnt)) == 0 &&
		    path_under(path, mnt))
			return true;
	}
	return false;
}

/* One fd of @pid: refused if it holds a lock on a shared file. */
static int check_fd(struct migration *m, pid_t pid, const char *fd)
{
	char path[64], target[PATH_MAX];
	_cleanup_free_ char *info = NULL;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", pid, fd);
	if (read_file(path, 65536, &info, NULL) < 0 || !fdinfo_lock_conflicts(info))
		return 0; /* gone meanwhile, or no lock */
	snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	if (storage_is_private(m->opts->fs, m->opts->nr_fs, target))
		return 0;
	return mig_fail(m, -EDEADLK,
			"PID %d holds a file lock on %s, which both hosts see: the "
			"destination could not take it while the source's frozen copy "
			"holds it until the commit",
			pid, target);
}

int source_check_locks(struct migration *m)
{
	if (!m->opts || !m->opts->file_locks || strcmp(m->drv[0]->ops->name, "pid"))
		return 0; /* without --file-locks CRIU refuses locks itself */
	for (size_t i = 0; i < m->nr_procs; i++) {
		char dir[64];
		DIR *d;
		struct dirent *e;
		int r = 0;

		snprintf(dir, sizeof(dir), "/proc/%d/fd", m->pids[i]);
		d = opendir(dir);
		if (!d)
			continue;
		while (r == 0 && (e = readdir(d)))
			if (e->d_name[0] != '.')
				r = check_fd(m, m->pids[i], e->d_name);
		closedir(d);
		if (r < 0)
			return r;
	}
	return 0;
}
