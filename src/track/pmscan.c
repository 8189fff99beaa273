/* SPDX-License-Identifier: MIT */
/*
 * pmscan: the PAGEMAP_SCAN ioctl of /proc/PID/pagemap (Linux >= 6.7),
 * which walks page tables in the kernel, skips what is not populated at
 * page-table granularity, and can write-protect what it reports in the
 * same walk (uffd-wp async mappings).
 */
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/util.h"

#include <errno.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

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

/* What one PAGEMAP_SCAN asks for, and which returned categories to drop. */
struct scan {
	uint64_t flags, mask, anyof, ret, skip;
};
#define WP (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC)
#define POPULATED (PAGE_IS_PRESENT | PAGE_IS_SWAPPED)

/*
 * Zero pages mapped by a read, and page-cache pages of a file mapping,
 * are matched (protected) but not reported: CRIU does not dump them.
 * PAGE_IS_FILE is asked for only in file mappings: it costs a page lookup
 * per pte (5x the walk).
 *
 * PM_WRITTEN matches only populated pages: this kernel's walk counts an
 * unpopulated page (pte_none, no page table) as written (never protected),
 * which would report every page never populated, and protecting those
 * would allocate page tables for the whole mapping. A write that
 * populates one is seen next time: its new pte has no uffd-wp bit.
 */
static struct scan scan_for(enum pm_want w, const struct track_vma *v)
{
	uint64_t skip = PAGE_IS_PFNZERO | (v->flags & TV_FILE ? PAGE_IS_FILE : 0);

	switch (w) {
	case PM_WRITTEN:
		return (struct scan){ WP, PAGE_IS_WRITTEN, POPULATED, PAGE_IS_WRITTEN | skip,
				      skip };
	case PM_ARM: return (struct scan){ WP, 0, POPULATED, POPULATED | skip, skip };
	default: return (struct scan){ 0, 0, POPULATED, POPULATED | skip, skip };
	}
}

int pm_scan(int pagemap, const struct track_vma *v, enum pm_want want, pm_range_fn fn, void *arg)
{
	const struct scan s = scan_for(want, v);
	struct page_region vec[256];
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = s.flags,
		.start = v->start,
		.end = v->end,
		.vec = (uintptr_t)vec,
		.vec_len = ARRAY_SIZE(vec),
		.category_mask = s.mask,
		.category_anyof_mask = s.anyof,
		.return_mask = s.ret,
	};
	int r;

	while (a.start < a.end) {
		long n = ioctl(pagemap, PAGEMAP_SCAN, &a);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			if (!(vec[i].categories & s.skip) &&
			    (r = fn(arg, vec[i].start, vec[i].end)) < 0)
				return r;
		if (a.walk_end <= a.start)
			return -EIO;
		a.start = a.walk_end;
	}
	return 0;
}

static int ignore(void *arg, uint64_t start, uint64_t end)
{
	(void)arg, (void)start, (void)end;
	return 0;
}

int pm_scan_probe(int pagemap)
{
	const struct track_vma none = { 0, PAGE, 0 };
	int r = pm_scan(pagemap, &none, PM_POPULATED, ignore, NULL);

	return r == -ENOTTY || r == -EINVAL ? -EOPNOTSUPP : r;
}
