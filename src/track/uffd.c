/* SPDX-License-Identifier: MIT */
/*
 * uffd: exact write tracking with userfaultfd write-protection (WP_ASYNC)
 * and the PAGEMAP_SCAN ioctl (Linux >= 6.7). The process's own userfaultfd
 * is created inside it (inject.c), copied out with pidfd_getfd() and closed
 * there; phaul then registers and scans the process's mappings from outside.
 * A written page loses its write-protection in the kernel's fault path
 * without involving phaul; PAGEMAP_SCAN returns the written pages and
 * protects them again, atomically.
 */
#define LOG_PREFIX "track: "
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

struct uffd {
	int fd;		 /* our copy of the process's userfaultfd */
	int pagemap;	 /* /proc/PID/pagemap, bound to the armed address space */
	struct range *r; /* the tracked mappings as of the last collect */
	bool *armed;	 /* r[i] registered and write-protected by us */
	size_t nr;
};

static int add_range(void *set, uint64_t start, uint64_t end)
{
	return rangeset_add(set, start, end);
}

static int scan(struct uffd *u, const struct track_vma *v, enum pm_want want,
		struct rangeset *dirty)
{
	return pm_scan(u->pagemap, v, want, add_range, dirty);
}

static int uffd_register(struct uffd *u, const struct track_vma *v)
{
	struct uffdio_register reg = {
		.range = { .start = v->start, .len = v->end - v->start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(u->fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/* Is [v->start, v->end) covered by ranges armed at the previous collect? */
static bool covered(const struct uffd *u, const struct track_vma *v, bool *was_unarmed)
{
	uint64_t at = v->start;

	*was_unarmed = false;
	for (size_t i = range_after(u->r, u->nr, at); i < u->nr && at < v->end; i++) {
		if (u->r[i].start > at || !u->armed[i]) {
			*was_unarmed = !u->armed[i] && u->r[i].start == v->start;
			return false;
		}
		at = u->r[i].end;
	}
	return at >= v->end;
}

/* A new or replaced mapping: register it, then protect and report it. */
static int collect_new(struct uffd *u, const struct track_vma *v, bool was_unarmed,
		       struct rangeset *dirty, bool *armed)
{
	int r = uffd_register(u, v);

	*armed = r == 0;
	if (r == -ESRCH || r == -ENOMEM)
		return r;
	if (r == 0)
		return scan(u, v, PM_ARM, dirty);
	if (!was_unarmed)
		pr_warn("cannot write-protect %#llx-%#llx (%s): reporting it whole every round",
			(unsigned long long)v->start, (unsigned long long)v->end, strerror(-r));
	return scan(u, v, PM_POPULATED, dirty);
}

static int collect_vma(struct uffd *u, const struct track_vma *v, struct rangeset *dirty,
		       bool *armed)
{
	bool was_unarmed;
	int r;

	if (covered(u, v, &was_unarmed)) {
		r = scan(u, v, PM_WRITTEN, dirty);
		*armed = true;
		/* -EPERM: a new mapping took (part of) its place since. */
		if (r != -EPERM)
			return r;
	}
	return collect_new(u, v, was_unarmed, dirty, armed);
}

/* Copy the process's fd @tfd (in thread @tid's table) into ours. */
static int take_fd(pid_t pid, pid_t tid, long tfd, int *ret)
{
	_cleanup_close_ int pidfd = syscall(SYS_pidfd_open, tid, tid == pid ? 0 : PIDFD_THREAD);
	int fd;

	if (pidfd < 0)
		return -errno;
	if ((fd = syscall(SYS_pidfd_getfd, pidfd, (int)tfd, 0)) < 0)
		return -errno;
	*ret = fd;
	return 0;
}

/* Close fd @tfd inside the process; one retry, then say what is left. */
static int close_in(struct inject *in, pid_t pid, long tfd)
{
	const uint64_t args[6] = { (uint64_t)tfd };
	long rv = 0;
	int r;

	for (int i = 0; i < 2; i++)
		if ((r = inject_syscall(in, SYS_close, args, &rv)) == 0 && rv == 0)
			return 0;
	r = r < 0 ? r : (int)rv;
	if (r != -ESRCH)
		pr_err("process %d keeps a userfaultfd as fd %ld: close failed: %s", (int)pid, tfd,
		       strerror(-r));
	return r;
}

/* userfaultfd() inside the process, all its threads stopped meanwhile. */
static int create_uffd(pid_t pid, int *ret)
{
	const uint64_t args[6] = { O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY };
	struct inject *in;
	long tfd = -1;
	int r, rc;

	if ((r = inject_begin(pid, &in)) < 0)
		return r;
	r = inject_syscall(in, SYS_userfaultfd, args, &tfd);
	if (r == 0 && tfd < 0)
		r = (int)tfd;
	if (r == 0)
		r = take_fd(pid, inject_tid(in), tfd, ret);
	if (tfd >= 0 && (rc = close_in(in, pid, tfd)) < 0 && r == 0) {
		close(*ret);
		r = rc;
	}
	inject_end(in);
	return r;
}

static int uffd_api(int fd)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
	};

	if (ioctl(fd, UFFDIO_API, &api) == 0)
		return 0;
	return errno == EINVAL ? -EOPNOTSUPP : -errno;
}

static void disarm(struct uffd *u)
{
	/* Closing the last reference unregisters every range and drops
	 * every write-protection the ranges had (userfaultfd_release). */
	if (u->fd >= 0)
		close(u->fd);
	if (u->pagemap >= 0)
		close(u->pagemap);
	u->fd = u->pagemap = -1;
	u->nr = 0;
}

static int arm(struct tracker *t, struct uffd *u)
{
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)t->pid);
	if ((u->pagemap = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	if ((r = pm_scan_probe(u->pagemap)) < 0) {
		pr_info("uffd-wp: no PAGEMAP_SCAN in this kernel (%s)", strerror(-r));
		return r;
	}
	if ((r = create_uffd(t->pid, &u->fd)) < 0) {
		pr_info("uffd-wp: cannot create a userfaultfd in process %d: %s", (int)t->pid,
			strerror(-r));
		return r;
	}
	if ((r = uffd_api(u->fd)) < 0)
		pr_info("uffd-wp: kernel lacks userfaultfd WP_ASYNC (%s)", strerror(-r));
	return r;
}

static int uffd_open(struct tracker *t)
{
	struct uffd *u = calloc(1, sizeof(*u));
	int r = -EBUSY;

	if (!u)
		return -ENOMEM;
	u->fd = u->pagemap = -1;
	if (track_uses_uffd(t->pid))
		pr_info("uffd-wp: process %d uses userfaultfd itself", (int)t->pid);
	else if ((r = arm(t, u)) == 0) {
		t->priv = u;
		return 0;
	}
	disarm(u);
	free(u);
	return r;
}

/*
 * The address space we armed is gone when its pagemap reads nothing: the
 * process exited, or exec'd a new one (then arm again: everything is new).
 */
static int check_mm(struct tracker *t, struct uffd *u)
{
	uint64_t e;
	int r;

	if (pread(u->pagemap, &e, sizeof(e), 0) == sizeof(e))
		return 0;
	if (!track_alive(t->pid, t->pidfd))
		return -ESRCH;
	pr_info("process %d replaced its address space (exec): arming again", (int)t->pid);
	disarm(u);
	if ((r = arm(t, u)) < 0)
		disarm(u);
	return r;
}

/* The tracked mappings of this round become the reference for the next. */
static int save_ranges(struct uffd *u, const struct track_vmas *vmas, bool **armed)
{
	struct range *n = realloc(u->r, (vmas->nr + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < vmas->nr; i++)
		n[i] = (struct range){ vmas->v[i].start, vmas->v[i].end };
	u->r = n;
	free(u->armed);
	u->armed = TAKE_PTR(*armed);
	u->nr = vmas->nr;
	return 0;
}

static int collect_all(struct tracker *t, struct uffd *u, struct track_vmas *vmas,
		       struct rangeset *dirty, uint64_t *scanned)
{
	_cleanup_free_ bool *armed = NULL;
	int r;

	if ((r = track_vmas_read(t->pid, vmas)) < 0)
		return r;
	if (!(armed = calloc(vmas->nr + 1, sizeof(*armed))))
		return -ENOMEM;
	for (size_t i = 0; i < vmas->nr; i++) {
		if ((r = collect_vma(u, &vmas->v[i], dirty, &armed[i])) < 0)
			return r;
		*scanned += (vmas->v[i].end - vmas->v[i].start) / PAGE;
	}
	if (!track_alive(t->pid, t->pidfd))
		return -ESRCH;
	return save_ranges(u, vmas, &armed);
}

static int uffd_collect(struct tracker *t, struct rangeset *dirty, uint64_t *scanned)
{
	struct uffd *u = t->priv;
	struct track_vmas vmas = { 0 };
	int r = 0;

	if (u->fd < 0 && (r = arm(t, u)) < 0) /* a failed re-arm, retried */
		return r;
	/* Twice: an exec between check_mm() and the scans shows as -ESRCH. */
	for (int i = 0; i < 2; i++) {
		rangeset_clear(dirty);
		*scanned = 0;
		if ((r = check_mm(t, u)) == 0)
			r = collect_all(t, u, &vmas, dirty, scanned);
		if (r != -ESRCH || !track_alive(t->pid, t->pidfd))
			break;
		u->nr = 0; /* the retry reports everything */
	}
	track_vmas_free(&vmas);
	/* Pages already re-protected were not handed over: next time, all. */
	if (r < 0)
		u->nr = 0;
	return r;
}

static void uffd_close(struct tracker *t)
{
	struct uffd *u = t->priv;

	if (!u)
		return;
	disarm(u);
	free(u->r);
	free(u->armed);
	free(u);
	t->priv = NULL;
}

const struct track_ops track_uffd_ops = {
	.method = TRACK_UFFD_WP,
	.open = uffd_open,
	.collect = uffd_collect,
	.close = uffd_close,
};
