/* SPDX-License-Identifier: MIT */
/*
 * softdirty: probe only. The kernel's soft-dirty bits (clear_refs "4",
 * pagemap bit 55) exist only with CONFIG_MEM_SOFT_DIRTY, which the kernels
 * phaul targets lack (and arm64 does not offer at all). A method would also
 * need the process frozen between reading the bits and clearing them, or
 * writes in between are lost. Where the bits work, uffd-wp works better:
 * so this method is reported unavailable either way (docs/TRACKING.md).
 */
#define LOG_PREFIX "track: "
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define PM_SOFT_DIRTY (1ULL << 55)

/* Does a page written after clear_refs "4" show its soft-dirty bit? */
static bool softdirty_works(void)
{
	_cleanup_close_ int cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	_cleanup_close_ int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	volatile char *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
				0);
	uint64_t e = 0;
	bool ok;

	if (p == MAP_FAILED)
		return false;
	p[0] = 1;
	ok = cr >= 0 && pm >= 0 && write(cr, "4", 1) == 1;
	p[0] = 2;
	ok = ok && pread(pm, &e, sizeof(e), (uintptr_t)p / PAGE * 8) == sizeof(e) &&
	     (e & PM_SOFT_DIRTY);
	munmap((void *)p, PAGE);
	return ok;
}

static int softdirty_open(struct tracker *t)
{
	(void)t;
	if (softdirty_works())
		pr_info("soft-dirty: the kernel has it, phaul does not use it (uffd-wp is exact)");
	else
		pr_info("soft-dirty: not in this kernel (CONFIG_MEM_SOFT_DIRTY is off)");
	return -EOPNOTSUPP;
}

static int softdirty_collect(struct tracker *t, struct rangeset *dirty, uint64_t *scanned)
{
	(void)t, (void)dirty, (void)scanned;
	return -EOPNOTSUPP;
}

static void softdirty_close(struct tracker *t)
{
	(void)t;
}

const struct track_ops track_softdirty_ops = {
	.method = TRACK_SOFT_DIRTY,
	.open = softdirty_open,
	.collect = softdirty_collect,
	.close = softdirty_close,
};
