/* SPDX-License-Identifier: MIT */
/*
 * disk: --fs disk:IMAGE:MOUNTPOINT, a file-system image on storage both
 * hosts see (same path), loop-mounted at MOUNTPOINT on the host that runs
 * the workload. The image is never copied over the network.
 *
 * Switch-over, source, at `frozen` (CRIU has dumped the frozen tree, whose
 * files on the mount stay open):
 *   1. syncfs + FIFREEZE the mounted file system: the image file is now
 *      consistent and the source's kernel writes nothing more to it;
 *   2. copy the image to IMAGE.phaul-snap (FICLONE reflink where the file
 *      system has it, else a sparse copy: the cost of a plain copy is the
 *      image's allocated size read and written while frozen);
 *   3. exchange the two names (renameat2 RENAME_EXCHANGE): IMAGE is now
 *      the copy, for the destination; IMAGE.phaul-snap is the original
 *      file, which the source's loop device and frozen file system still
 *      hold, untouched since the freeze;
 *   4. detach the mount from MOUNTPOINT, keeping a clone of it (open_tree).
 * Destination: target_restore loop-mounts IMAGE at MOUNTPOINT, then CRIU
 * restores the tree with its files there. Only the destination has IMAGE
 * mounted; the source's frozen file system lives on another inode.
 * Failure (migration_failed, before CRIU resumes the tree): names
 * exchanged back, so IMAGE is the original, byte for byte as at the
 * freeze; the copy's name removed; the mount clone put back at MOUNTPOINT;
 * the file system thawed: the workload goes on writing where it was.
 * Success (migration_complete, the source tree is gone): the source's file
 * system is thawed and released (it may write its last metadata into the
 * original, which is no longer the image), the loop device cleared, the
 * original (the snapshot of the freeze) deleted. The snapshot is dropped
 * on the source because the source holds it (the seed's
 * migration_complete); target_cleanup has nothing to do.
 * Destination failure (target_abort): unmount.
 */
#define LOG_PREFIX "disk: "
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "drivers/fs/disk_spec.h"
#include "drivers/fs/fs.h"

struct disk_priv {
	char image[1100];
	char mnt[1100];
	char snap[1200];
	char loopdev[64];
	int rootfd; /* the source's mounted file system */
	int treefd; /* a clone of its mount, once detached */
	bool frozen, exchanged, detached;
	bool mounted; /* destination */
};

static int disk_init(struct driver *d, const char *arg)
{
	struct disk_priv *p = d->priv;

	p->rootfd = p->treefd = -1;
	if (disk_parse_spec(arg, p->image, p->mnt, sizeof(p->image)) < 0) {
		pr_err("'%s': want disk:IMAGE:MOUNTPOINT, absolute paths of [A-Za-z0-9/._+-]", arg);
		return -EINVAL;
	}
	snprintf(p->snap, sizeof(p->snap), "%s.phaul-snap", p->image);
	return 0;
}

static void disk_fini(struct driver *d)
{
	struct disk_priv *p = d->priv;

	if (p->treefd >= 0)
		close(p->treefd);
	if (p->rootfd >= 0)
		close(p->rootfd);
}

/* The loop device mounted at MOUNTPOINT must have IMAGE behind it. */
static int check_loop(const struct drv_ctx *ctx, struct disk_priv *p)
{
	_cleanup_free_ char *info = NULL;
	_cleanup_close_ int fd = -1;
	struct loop_info64 li;
	char fstype[64];
	struct stat st;
	int r = read_file("/proc/self/mountinfo", 4 << 20, &info, NULL);

	if (r < 0)
		return drv_fail(ctx, r, "cannot read mountinfo");
	if (disk_mountinfo_find(info, p->mnt, p->loopdev, sizeof(p->loopdev), fstype,
				sizeof(fstype)) < 0)
		return drv_fail(ctx, -ENOENT, "nothing is mounted at %s", p->mnt);
	fd = open(p->loopdev, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, LOOP_GET_STATUS64, &li) < 0)
		return drv_fail(ctx, -ENODEV, "%s at %s is not a loop device", p->loopdev, p->mnt);
	if (stat(p->image, &st) < 0 || st.st_ino != li.lo_inode || st.st_dev != li.lo_device)
		return drv_fail(ctx, -ENODEV, "%s is not the image behind %s", p->image, p->mnt);
	return 0;
}

static int disk_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	struct disk_priv *p = d->priv;
	struct stat st;

	if (lstat(p->snap, &st) == 0)
		return drv_fail(ctx, -EEXIST, "%s exists: a migration left it? Remove it first",
				p->snap);
	return check_loop(ctx, p);
}

/* A sparse copy of @in into @out: data extents only. */
static int copy_sparse(int in, int out)
{
	struct stat st;
	off_t pos = 0, end;

	if (fstat(in, &st) < 0 || ftruncate(out, st.st_size) < 0)
		return -errno;
	while ((pos = lseek(in, pos, SEEK_DATA)) >= 0) {
		end = lseek(in, pos, SEEK_HOLE);
		if (end < 0)
			return -errno;
		while (pos < end) {
			loff_t ip = pos, op = pos;
			ssize_t n = copy_file_range(in, &ip, out, &op, end - pos, 0);
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			pos += n;
		}
	}
	return errno == ENXIO ? 0 : -errno;
}

/* IMAGE copied to the snapshot's name: a reflink if possible. */
static int snapshot(const struct drv_ctx *ctx, struct disk_priv *p, bool *reflinked)
{
	_cleanup_close_ int in = open(p->image, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int out = -1;
	int r;

	if (in < 0)
		return drv_fail(ctx, -errno, "cannot open %s: %m", p->image);
	out = open(p->snap, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return drv_fail(ctx, -errno, "cannot create %s: %m", p->snap);
	*reflinked = ioctl(out, FICLONE, in) == 0;
	r = *reflinked ? 0 : copy_sparse(in, out);
	if (r == 0 && fchmod(out, 0600) < 0)
		r = -errno;
	if (r < 0) {
		unlink(p->snap);
		return drv_fail(ctx, r, "cannot copy %s: %s", p->image, strerror(-r));
	}
	return 0;
}

static int disk_frozen(struct driver *d, const struct drv_ctx *ctx)
{
	struct disk_priv *p = d->priv;
	uint64_t t0 = now_ms();
	bool reflinked = false;
	int r;

	p->rootfd = open(p->mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->rootfd < 0)
		return drv_fail(ctx, -errno, "cannot open %s: %m", p->mnt);
	if (syncfs(p->rootfd) < 0 || ioctl(p->rootfd, FIFREEZE, 0) < 0)
		return drv_fail(ctx, -errno, "cannot freeze the file system at %s: %m", p->mnt);
	p->frozen = true;
	r = snapshot(ctx, p, &reflinked);
	if (r < 0)
		return r;
	if (renameat2(AT_FDCWD, p->snap, AT_FDCWD, p->image, RENAME_EXCHANGE) < 0) {
		r = drv_fail(ctx, -errno, "cannot exchange %s and its copy: %m", p->image);
		unlink(p->snap);
		return r;
	}
	p->exchanged = true;
	p->treefd = syscall(SYS_open_tree, AT_FDCWD, p->mnt, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (p->treefd < 0 || umount2(p->mnt, MNT_DETACH) < 0)
		return drv_fail(ctx, -errno, "cannot detach %s: %m", p->mnt);
	p->detached = true;
	pr_info("%s: frozen, %s copy, handed over in %llu ms", p->image,
		reflinked ? "reflink" : "full", (unsigned long long)(now_ms() - t0));
	return 0;
}

/* Put everything back as it was at the freeze; the workload resumes next. */
static int disk_failed(struct driver *d, const struct drv_ctx *ctx)
{
	struct disk_priv *p = d->priv;
	int r = 0;

	if (p->exchanged) {
		if (renameat2(AT_FDCWD, p->snap, AT_FDCWD, p->image, RENAME_EXCHANGE) < 0 ||
		    unlink(p->snap) < 0)
			r = drv_fail(ctx, -errno, "cannot put %s back: %m", p->image);
		else
			p->exchanged = false;
	}
	if (p->detached) {
		if (syscall(SYS_move_mount, p->treefd, "", AT_FDCWD, p->mnt,
			    MOVE_MOUNT_F_EMPTY_PATH) < 0)
			r = drv_fail(ctx, -errno, "cannot mount %s again: %m", p->mnt);
		else
			p->detached = false;
	}
	if (p->frozen) {
		if (ioctl(p->rootfd, FITHAW, 0) < 0)
			r = drv_fail(ctx, -errno, "cannot thaw %s: %m", p->mnt);
		else
			p->frozen = false;
	}
	if (r == 0 && (p->rootfd >= 0))
		pr_info("%s: rolled back, mounted at %s again", p->image, p->mnt);
	return r;
}

/* Committed: release the source's file system, drop the snapshot. */
static int disk_complete(struct driver *d, const struct drv_ctx *ctx)
{
	struct disk_priv *p = d->priv;
	_cleanup_close_ int loop = -1;

	if (p->frozen && ioctl(p->rootfd, FITHAW, 0) < 0)
		pr_perror("cannot thaw the old mount of %s", p->image);
	p->frozen = false;
	close(p->treefd);
	close(p->rootfd);
	p->treefd = p->rootfd = -1;
	/* the tree is gone and so are our references: the old mount is too */
	loop = open(p->loopdev, O_RDONLY | O_CLOEXEC);
	if (loop >= 0 && ioctl(loop, LOOP_CLR_FD, 0) < 0 && errno != ENXIO)
		pr_debug("%s: %m (cleared when its last user goes)", p->loopdev);
	if (p->exchanged && unlink(p->snap) < 0)
		return drv_fail(ctx, -errno, "cannot remove %s: %m", p->snap);
	return 0;
}

static int disk_target_check(struct driver *d, const struct drv_ctx *ctx)
{
	struct disk_priv *p = d->priv;
	_cleanup_free_ char *info = NULL;
	char src[64], fstype[64];
	struct stat st;

	if (stat(p->image, &st) < 0 || !S_ISREG(st.st_mode))
		return drv_fail(ctx, -ENOENT, "image %s is not visible here", p->image);
	if (stat(p->mnt, &st) < 0 || !S_ISDIR(st.st_mode))
		return drv_fail(ctx, -ENOTDIR, "mount point %s is not a directory here", p->mnt);
	if (read_file("/proc/self/mountinfo", 4 << 20, &info, NULL) == 0 &&
	    disk_mountinfo_find(info, p->mnt, src, sizeof(src), fstype, sizeof(fstype)) == 0)
		return drv_fail(ctx, -EBUSY, "%s is already a mount point here", p->mnt);
	return 0;
}

static int disk_target_restore(struct driver *d, const struct drv_ctx *ctx)
{
	struct disk_priv *p = d->priv;
	char *const argv[] = { "mount", "-o", "loop", p->image, p->mnt, NULL };
	int r = run_cmd(argv);

	if (r < 0)
		return drv_fail(ctx, r, "cannot mount %s at %s", p->image, p->mnt);
	p->mounted = true;
	pr_info("%s mounted at %s", p->image, p->mnt);
	return 0;
}

static int disk_target_abort(struct driver *d, const struct drv_ctx *ctx)
{
	struct disk_priv *p = d->priv;

	if (!p->mounted)
		return 0;
	if (umount2(p->mnt, 0) < 0 && umount2(p->mnt, MNT_DETACH) < 0)
		return drv_fail(ctx, -errno, "cannot unmount %s: %m", p->mnt);
	p->mounted = false;
	return 0;
}

const struct driver_ops fs_disk_ops = {
	.name = "disk",
	.kind = DRV_FS,
	.priv_size = sizeof(struct disk_priv),
	.init = disk_init,
	.fini = disk_fini,
	.prepare = disk_prepare,
	.hooks = {
		[HOOK_FROZEN] = disk_frozen,
		[HOOK_MIGRATION_COMPLETE] = disk_complete,
		[HOOK_MIGRATION_FAILED] = disk_failed,
		[HOOK_TARGET_CHECK] = disk_target_check,
		[HOOK_TARGET_RESTORE] = disk_target_restore,
		[HOOK_TARGET_ABORT] = disk_target_abort,
	},
};
