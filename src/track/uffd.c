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
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Linux 6.7 uapi (linux/fs.h), missing from older headers. */
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif

struct uffd_range {
	uint64_t start, end;
	bool armed; /* registered and write-protected by us */
};

struct uffd {
	int fd;	     /* our copy of the process's userfaultfd */
	int pagemap; /* /proc/PID/pagemap, bound to the armed address space */
	struct uffd_range *r; /* the tracked mappings as of the last collect */
	size_t nr;
	struct page_region vec[512];
};

/* What one PAGEMAP_SCAN asks for, and which returned categories to drop. */
struct scan {
	uint64_t flags, mask, anyof, ret, skip;
};
#define WP (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)
#define POPULATED (PAGE_IS_PRESENT | PAGE_IS_SWAPPED)

enum scan_kind {
	/*
	 * Populated and written since the last scan; re-protect them.
	 * Unpopulated pages (pte_none, no page table) are left alone: this
	 * kernel's scan counts them as written (never protected), which would
	 * report every page never populated, and protecting them would
	 * allocate page tables for the whole mapping. A write that populates
	 * one is seen next time (its new pte has no uffd-wp bit).
	 */
	SCAN_WRITTEN,
	/* A mapping just registered: protect every populated page, report. */
	SCAN_ARMED,
	/* A mapping we cannot arm: its populated pages, every round. */
	SCAN_UNARMED,
};

/*
 * Zero pages mapped by a read, and page-cache pages of a file mapping,
 * are protected but not reported: CRIU does not dump them. PAGE_IS_FILE is
 * asked for only in file mappings: it costs a page lookup per pte (5x).
 */
static struct scan scan_for(enum scan_kind k, const struct track_vma *v)
{
	uint64_t skip = PAGE_IS_PFNZERO | (v->flags & TV_FILE ? PAGE_IS_FILE : 0);

	switch (k) {
	case SCAN_WRITTEN:
		return (struct scan){ WP, PAGE_IS_WRITTEN, POPULATED, PAGE_IS_WRITTEN | skip, skip };
	case SCAN_ARMED:
		return (struct scan){ WP, 0, POPULATED, POPULATED | skip, skip };
	default:
		return (struct scan){ 0, 0, POPULATED, POPULATED | skip, skip };
	}
}

static int pm_scan(struct uffd *u, const struct track_vma *v, enum scan_kind kind,
		   struct track_set *dirty)
{
	const struct scan s = scan_for(kind, v);
	struct pm_scan_arg a = {
		.size = sizeof(a), .flags = s.flags, .start = v->start, .end = v->end,
		.vec = (uintptr_t)u->vec, .vec_len = ARRAY_SIZE(u->vec),
		.category_mask = s.mask, .category_anyof_mask = s.anyof,
		.return_mask = s.ret,
	};
	int r;

	while (a.start < a.end) {
		long n = ioctl(u->pagemap, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			if (!(u->vec[i].categories & s.skip) &&
			    (r = track_set_add(dirty, u->vec[i].start, u->vec[i].end)) < 0)
				return r;
		if (a.walk_end <= a.start)
			return -EIO;
		a.start = a.walk_end;
	}
	return 0;
}

static int uffd_register(struct uffd *u, const struct track_vma *v)
{
	struct uffdio_register reg = {
		.range = { .start = v->start, .len = v->end - v->start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(u->fd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/* First range of the last collect that ends after @addr. */
static size_t range_after(const struct uffd *u, uint64_t addr)
{
	size_t lo = 0, hi = u->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u->r[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Is [v->start, v->end) covered by ranges armed at the previous collect? */
static bool covered(const struct uffd *u, const struct track_vma *v, bool *was_unarmed)
{
	uint64_t at = v->start;

	*was_unarmed = false;
	for (size_t i = range_after(u, at); i < u->nr && at < v->end; i++) {
		if (u->r[i].start > at || !u->r[i].armed) {
			*was_unarmed = !u->r[i].armed && u->r[i].start == v->start;
			return false;
		}
		at = u->r[i].end;
	}
	return at >= v->end;
}

/* A new or replaced mapping: register it, then protect and report it. */
static int collect_new(struct uffd *u, const struct track_vma *v, bool was_unarmed,
		       struct track_set *dirty, bool *armed)
{
	int r = uffd_register(u, v);

	*armed = r == 0;
	if (r == -ESRCH || r == -ENOMEM)
		return r;
	if (r == 0)
		return pm_scan(u, v, SCAN_ARMED, dirty);
	if (!was_unarmed)
		pr_warn("cannot write-protect %#llx-%#llx (%s): reporting it whole every round",
			(unsigned long long)v->start, (unsigned long long)v->end, strerror(-r));
	return pm_scan(u, v, SCAN_UNARMED, dirty);
}

static int collect_vma(struct uffd *u, const struct track_vma *v, struct track_set *dirty,
		       bool *armed)
{
	bool was_unarmed;
	int r;

	if (covered(u, v, &was_unarmed)) {
		r = pm_scan(u, v, SCAN_WRITTEN, dirty);
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
		pr_err("process %d keeps a userfaultfd as fd %ld: close failed: %s", (int)pid,
		       tfd, strerror(-r));
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

/* PAGEMAP_SCAN exists (Linux >= 6.7)? */
static int pagemap_scan_probe(struct uffd *u)
{
	const struct track_vma none = { 0, TRACK_PAGE, 0 };
	struct track_set s = { 0 };
	int r = pm_scan(u, &none, SCAN_UNARMED, &s);

	track_set_free(&s);
	return r == -ENOTTY || r == -EINVAL ? -EOPNOTSUPP : r;
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
	if ((r = pagemap_scan_probe(u)) < 0) {
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
	int mode = track_seccomp_mode(t->pid), r = -EBUSY;

	if (!u)
		return -ENOMEM;
	u->fd = u->pagemap = -1;
	if (mode != 0)
		pr_info("uffd-wp: process %d runs under seccomp (mode %d): not injecting",
			(int)t->pid, mode);
	else if (track_uses_uffd(t->pid))
		pr_info("uffd-wp: process %d uses userfaultfd itself", (int)t->pid);
	else if ((r = arm(t, u)) == 0) {
		t->priv = u;
		return 0;
	}
	disarm(u);
	free(u);
	return mode > 0 ? -EPERM : mode < 0 ? mode : r;
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
static int save_ranges(struct uffd *u, const struct track_vmas *vmas, const bool *armed)
{
	struct uffd_range *n = realloc(u->r, (vmas->nr + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < vmas->nr; i++)
		n[i] = (struct uffd_range){ vmas->v[i].start, vmas->v[i].end, armed[i] };
	u->r = n;
	u->nr = vmas->nr;
	return 0;
}

static int collect_all(struct tracker *t, struct uffd *u, struct track_vmas *vmas,
		       struct track_set *dirty, uint64_t *scanned)
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
		*scanned += (vmas->v[i].end - vmas->v[i].start) / TRACK_PAGE;
	}
	if (!track_alive(t->pid, t->pidfd))
		return -ESRCH;
	return save_ranges(u, vmas, armed);
}

static int uffd_collect(struct tracker *t, struct track_set *dirty, uint64_t *scanned)
{
	struct uffd *u = t->priv;
	struct track_vmas vmas = { 0 };
	int r = 0;

	if (u->fd < 0 && (r = arm(t, u)) < 0) /* a failed re-arm, retried */
		return r;
	/* Twice: an exec between check_mm() and the scans shows as -ESRCH. */
	for (int i = 0; i < 2; i++) {
		track_set_reset(dirty);
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
	free(u);
	t->priv = NULL;
}

const struct track_ops track_uffd_ops = {
	.method = TRACK_UFFD_WP,
	.open = uffd_open,
	.collect = uffd_collect,
	.close = uffd_close,
};
