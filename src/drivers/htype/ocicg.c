/* SPDX-License-Identifier: MIT */
/*
 * ocicg: a container's cgroup directories on the host (contract in oci.h).
 *
 * A cgroup directory is removed like `runc delete` does: its child
 * cgroups first, then itself, each by rmdir (a cgroup file system has no
 * files to unlink). Only directories on a cgroup file system that are not
 * the root of a mount are touched.
 */
#define LOG_PREFIX "oci: "
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "common/log.h"
#include "common/util.h"
#include "drivers/htype/oci.h"

#define CGROUP_DEPTH_MAX 16

static bool is_cgroupfs(const char *path)
{
	struct statfs sf;

	return statfs(path, &sf) == 0 &&
	       (sf.f_type == CGROUP_SUPER_MAGIC || sf.f_type == CGROUP2_SUPER_MAGIC);
}

bool oci_in_cgroupfs(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return false;
	while (access(dir, F_OK) < 0) {
		slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			return false;
		*slash = '\0';
	}
	return is_cgroupfs(dir);
}

/* rmdir the child cgroups of @dfd, depth first. */
static int rmdir_children(int dfd, int depth)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > CGROUP_DEPTH_MAX)
		return -ELOOP;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while (r == 0 && (de = readdir(d))) {
		int sub;

		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		r = sub < 0 ? -errno : rmdir_children(sub, depth + 1);
		if (r == 0 && unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0)
			r = -errno;
	}
	closedir(d);
	return r;
}

static int remove_cgroup(const char *path)
{
	struct stat st, up;
	char parent[PATH_MAX];
	int fd, r;

	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode) || !is_cgroupfs(path) || stat(parent, &up) < 0 ||
	    up.st_dev != st.st_dev)
		return -EPERM; /* not a cgroup, or the root of a hierarchy */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	r = fd < 0 ? -errno : rmdir_children(fd, 0);
	if (r == 0 && rmdir(path) < 0)
		r = -errno;
	return r;
}

int oci_remove_cgroups(const struct oci_priv *p)
{
	int r = 0;

	for (size_t i = 0; i < p->st.nr_cgroups; i++) {
		int e = remove_cgroup(p->st.cgroups[i]);
		if (e < 0 && r == 0) {
			pr_err("cannot remove cgroup %s of container %s: %s", p->st.cgroups[i],
			       p->id, strerror(-e));
			r = e;
		}
	}
	return r;
}
