/* SPDX-License-Identifier: MIT */
/*
 * procmem: read another process's memory, whatever the protection of its
 * mappings.
 *
 * Everything is read with pread() on /proc/PID/mem, which the kernel
 * serves as a debugger's read (FOLL_FORCE): it also reads the pages of a
 * private mapping without PROT_READ (PROT_NONE guard or GC pages,
 * write-only, exec-only), which CRIU dumps like any other. Not
 * process_vm_readv(): it reads only what the process itself could, and
 * since Linux 5.19 its pinning of an anonymous page the process shares
 * copy-on-write with a parent or child (after a fork) makes the kernel
 * give the process a copy of its own first: every round of a live
 * migration would unshare a forked tree's memory on the source, which
 * then grows, and nothing would be left shared for the destination to
 * keep so (source/cow.h). Measured here, 1 GiB of pages already
 * touched: 3.8 GB/s through /proc/PID/mem, 4.3 GB/s with
 * process_vm_readv; shared pages: 1.9 GB/s and 1.4 GB/s (the copies).
 * The fd is opened on the first read and kept until procmem_close(); if
 * the process exec'd meanwhile (the fd reads nothing: its old address
 * space is gone) it is opened once more.
 *
 * Every function returns a count or a negative errno; -ESRCH: the
 * process is gone.
 */
#ifndef PHAUL_PROCMEM_H
#define PHAUL_PROCMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct procmem {
	pid_t pid;
	int memfd;	 /* /proc/PID/mem, or -1 until the first read */
	uint64_t forced; /* bytes read through it */
};

#define PROCMEM_INIT(p)                 \
	{                               \
		.pid = (p), .memfd = -1 \
	}

void procmem_init(struct procmem *pm, pid_t pid);
/*
 * Read @n remote ranges into the @n local buffers (pairwise, same
 * lengths), in order, until one byte cannot be read at all (unmapped):
 * returns the bytes read before it (@n ranges' total if none).
 */
ssize_t procmem_readv(struct procmem *pm, const struct iovec *local, const struct iovec *remote,
		      size_t n);
/* One range: [addr, addr + len) into @buf. */
ssize_t procmem_read(struct procmem *pm, uint64_t addr, void *buf, size_t len);
void procmem_close(struct procmem *pm);

/*
 * Whether /proc/PID/mem reads pages a process cannot read itself here
 * (a kernel booted with proc_mem.force_override=never, or =ptrace for a
 * reader that does not trace the process, refuses): tried once on a page
 * of our own, the answer kept.
 */
bool procmem_can_force(void);
/*
 * The first private mapping of @pid without read permission that holds
 * populated anonymous pages (what CRIU dumps and only a forced read
 * reads): 1 and its range in *@start, *@end; 0 if none.
 */
int procmem_find_unreadable(pid_t pid, uint64_t *start, uint64_t *end);

/*
 * Where @addr lies in @maps (the text of a /proc/PID/maps): "in A-B perms
 * name" for the mapping holding it, else "unmapped, between A-B ... and
 * C-D ..." (or "below"/"above" the only neighbour, or "no mapping at
 * all"), into @buf. Returns 1 if a mapping holds it, 0 if none does.
 */
int procmem_maps_where(const char *maps, uint64_t addr, char *buf, size_t len);
/*
 * Why [addr, ...) of @pid could not be read, for a log line: whether the
 * process is still there (and its state: a zombie has no memory left),
 * and procmem_maps_where() on its maps now.
 */
void procmem_explain(pid_t pid, uint64_t addr, char *buf, size_t len);

struct rangeset;
/* The address ranges of the mappings in @maps (a /proc/PID/maps text),
 * added to @out; 0 or -ENOMEM. */
int procmem_maps_ranges(const char *maps, struct rangeset *out);

#endif
