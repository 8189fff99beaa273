/* SPDX-License-Identifier: MIT */
/*
 * track: which pages of a running process did it write since last time?
 * Round after round, for iterative pre-copy live migration (docs/TRACKING.md).
 *
 * Contract
 * - One tracker per address space (a process and all its threads). It is
 *   used by one thread at a time. While tracker_open() (and a collect that
 *   re-arms after an exec) runs, the tracker ptrace-stops the workload's
 *   threads for a few hundred microseconds: the caller must not wait() for
 *   "any child" (waitpid(-1, ...)) concurrently in another thread.
 * - Memory covered ("tracked"): every private mapping of the process, anonymous
 *   or file-backed, whatever its current protection, except the kernel's
 *   special mappings ([vdso], [vvar*], [vsyscall], [uprobes]). Shared
 *   mappings (MAP_SHARED, shmem, SysV) are not tracked: CRIU dumps them
 *   from the mapping itself.
 * - Pages reported are what CRIU dumps as private memory: populated
 *   (present or swapped) anonymous pages; file pages of private file
 *   mappings that were never written (page cache, restored from the file)
 *   are not reported.
 * - First collect: every such page. Later collects: every page written (by
 *   the process, or by the kernel on its behalf: read(2), process_vm_writev)
 *   since the previous collect returned, and every populated page of a
 *   mapping that appeared or was replaced since then (mmap, mremap, exec).
 *   A page written after tracker_collect() returned is reported by the next
 *   one, so reading page contents after a collect never misses a write.
 * - Not reported: pages that stopped existing (munmap, MADV_DONTNEED). The
 *   final, frozen dump's page map (CRIU's) is the authority on which pages
 *   exist; the tracker only says which contents may have changed.
 *   A page may be reported that was not written (a page populated by a
 *   read, reported once: harmless). None is missed, except writes the
 *   kernel does through pages pinned before the round (io_uring fixed
 *   buffers, RDMA, vhost), which no method sees.
 * - uffd-wp side effects on the workload: its first write to each page
 *   after a collect takes a fault (1-2 us); if it starts using userfaultfd
 *   on a tracked range itself, UFFDIO_REGISTER fails with EBUSY for it.
 * - Every function returns 0 or a negative errno. -ESRCH: the process is
 *   gone (exited, or a zombie).
 */
#ifndef PHAUL_TRACK_H
#define PHAUL_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/rangeset.h"

enum track_method {
	TRACK_NONE = 0,
	TRACK_UFFD_WP = 1,    /* exact; needs Linux >= 6.7 (PAGEMAP_SCAN, WP_ASYNC) */
	TRACK_SOFT_DIRTY = 2, /* probed only: not implemented (docs/TRACKING.md) */
	TRACK_HASH = 4,	      /* portable: xxh3-64 of every populated page */
};
#define TRACK_ALL (TRACK_UFFD_WP | TRACK_SOFT_DIRTY | TRACK_HASH)

struct tracker;

/*
 * Track process @pid (a thread id stands for its process) with the best
 * method in @allowed, tried in this order: uffd-wp, soft-dirty, hash. Each
 * method that is refused logs one line saying why. uffd-wp is refused when
 * the process uses userfaultfd itself, runs under a seccomp filter (an
 * injected syscall could kill it), is traced by someone else, is not a
 * native 64-bit process, or the kernel lacks a feature. The process is
 * armed before this returns.
 * -EINVAL for an empty or unknown @allowed, -ESRCH, or the last method's
 * error (-EOPNOTSUPP when none applies).
 */
int tracker_open(pid_t pid, unsigned allowed, struct tracker **ret);
enum track_method tracker_method(const struct tracker *t);
/* "uffd-wp", "soft-dirty", "hash", "none". */
const char *track_method_name(enum track_method m);

/*
 * Replace @dirty's contents with the pages written since the previous
 * collect (see the contract above). @pages_scanned (may be NULL) gets the
 * work done: pages of the tracked mappings walked (uffd-wp), or pages read
 * and hashed (hash). On error @dirty is emptied; the next collect still
 * reports everything written since the last successful one.
 */
int tracker_collect(struct tracker *t, struct rangeset *dirty, uint64_t *pages_scanned);

/*
 * The caller read pages [@vaddr, @vaddr + @bytes) of the process after
 * the last collect, as @data (to send them): the next collect reports
 * each of them whose contents then differ from @data, even if it was
 * written and then written back to what it held at the last collect (the
 * hash method compares contents: without this it would miss that page,
 * and the copy sent would stay stale). uffd-wp sees every write: nothing
 * to do. @t NULL is fine.
 */
void tracker_sent(struct tracker *t, uint64_t vaddr, const void *data, size_t bytes);
/*
 * Stop tracking and free @t (NULL is fine). Leaves nothing in the workload:
 * no fd, no userfaultfd-registered range, no write-protected page. Safe
 * after the process died and after any failed collect.
 */
void tracker_close(struct tracker *t);

/*
 * Without a tracker: the pages of @pid the first collect would report
 * (populated private anonymous pages, as CRIU dumps them), but for those
 * of executable mappings, added to @out in address order. For a process
 * that does not run (frozen by CRIU): stop mode's pages while CRIU
 * dumps. Executable mappings are left out because CRIU's infection
 * writes a syscall instruction into one of them while it dumps.
 * -EOPNOTSUPP without PAGEMAP_SCAN (Linux < 6.7).
 */
int track_populated(pid_t pid, struct rangeset *out);

#ifdef TRACK_INTERNAL
/* ---- Internal to src/track/: not part of the contract. ---- */
#include <sys/uio.h>

#include "common/page.h"

/* A tracked mapping from /proc/PID/maps. */
enum { TV_READ = 1, TV_WRITE = 2, TV_FILE = 4, TV_EXEC = 8 };
struct track_vma {
	uint64_t start, end;
	unsigned flags;
};
struct track_vmas {
	struct track_vma *v;
	size_t nr, cap;
};

/* procfs.c */
int track_vmas_read(pid_t pid, struct track_vmas *out);
void track_vmas_free(struct track_vmas *v);
/* The process lives (not a zombie) and is still the one @pidfd names. */
bool track_alive(pid_t pid, int pidfd);
/* The process (VmFlags um/uw/ui, or an fd on a userfaultfd) uses uffd. */
bool track_uses_uffd(pid_t pid);
/* Seccomp mode from /proc/PID/status (0 none, 1 strict, 2 filter). */
int track_seccomp_mode(pid_t pid);
int track_tgid(pid_t pid);
/* State letter of thread @tid (R, S, D, T, t, Z...), 0 if it is gone. */
char track_task_state(pid_t pid, pid_t tid);

/* pmscan.c: PAGEMAP_SCAN over one mapping, ranges handed to @fn in order. */
enum pm_want {
	PM_WRITTEN,   /* written since protected; protect again (uffd-wp) */
	PM_ARM,	      /* populated; protect them (uffd-wp, a new mapping) */
	PM_POPULATED, /* populated; nothing changes */
};
typedef int (*pm_range_fn)(void *arg, uint64_t start, uint64_t end);
/* -EPERM for PM_WRITTEN/PM_ARM when a page is not uffd-wp armed. */
int pm_scan(int pagemap, const struct track_vma *v, enum pm_want want, pm_range_fn fn, void *arg);
/* 0 if the kernel has PAGEMAP_SCAN, else -EOPNOTSUPP. */
int pm_scan_probe(int pagemap);

/* inject.c: run syscalls inside the process, all its threads stopped. */
struct inject;
int inject_begin(pid_t pid, struct inject **ret);
/* Run syscall @nr; *ret_val gets its result (-errno on failure). */
int inject_syscall(struct inject *in, long nr, const uint64_t args[6], long *ret_val);
pid_t inject_tid(const struct inject *in);
void inject_end(struct inject *in);

/* inject-<arch>.c: registers of one stopped thread. */
struct arch_regs {
	uint64_t raw[64];
};
int arch_regs_get(pid_t tid, struct arch_regs *r);
int arch_regs_set(pid_t tid, const struct arch_regs *r);
/* Turn registers stopped inside an interrupted syscall into a restart. */
void arch_regs_restart(struct arch_regs *r);
/* Registers that run syscall @nr(@args) at @pc, from @saved. */
void arch_regs_syscall(struct arch_regs *r, const struct arch_regs *saved, uint64_t pc, long nr,
		       const uint64_t args[6]);
extern const uint8_t arch_syscall_insn[];
extern const size_t arch_syscall_insn_len;

/* One method. */
struct tracker {
	pid_t pid;
	int pidfd;
	const struct track_ops *ops;
	void *priv;
};
struct track_ops {
	enum track_method method;
	int (*open)(struct tracker *t);
	int (*collect)(struct tracker *t, struct rangeset *dirty, uint64_t *scanned);
	/* optional: tracker_sent() */
	void (*sent)(struct tracker *t, uint64_t vaddr, const uint8_t *data, size_t bytes);
	void (*close)(struct tracker *t);
};
extern const struct track_ops track_uffd_ops, track_softdirty_ops, track_hash_ops;
/* Tests: make the hash method read pagemap as on kernels before 6.7. */
extern bool track_hash_no_pmscan;
#endif

#endif
