/* SPDX-License-Identifier: MIT */
/*
 * cow: the pages a forked tree shares copy-on-write, found on the frozen
 * source so that the destination can share them again.
 *
 * After a fork, parent and child map the same physical page at the same
 * address until one of them writes it. CRIU's restore keeps such a page
 * shared only if it writes it before it forks the child (the child then
 * compares its copy with what it inherited and keeps the inherited page
 * when they are equal: criu/mem.c, restore_priv_vma_content). A lazy
 * restore writes lazy pages after the forks, one process at a time, so
 * each process gets a copy of its own: more memory on the destination,
 * and zdtm's cow00/cow01 fail. The live, lazy and hybrid modes therefore
 * name these pages (PageShared), send those the destination lacks while
 * frozen, and the destination has CRIU restore them with the tree.
 *
 * A page counts as shared when a process and its parent in the tree map
 * it at the same address, within CRIU's lazy runs of both, and their
 * /proc/PID/pagemap entries name the same page frame (or swap slot);
 * reading frame numbers needs CAP_SYS_ADMIN (without it they read 0 and
 * nothing is found). Pages a process shares only with a sibling are not
 * kept shared by CRIU (nor by a restore without phaul), so not sought.
 */
#ifndef PHAUL_COW_H
#define PHAUL_COW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/rangeset.h"
#include "engine/migration.h"

struct cow_proc {
	int32_t ipid;		/* as CRIU's images number it */
	pid_t pid;		/* on this host */
	pid_t ppid;		/* its parent on this host */
	struct rangeset lazy;	/* CRIU's lazy runs */
	struct rangeset shared; /* the pages it shares with a parent or child */
	/* of those, the ones it shares with its parent: cs->p[parent] */
	struct rangeset with_parent;
	ssize_t parent;	    /* -1: none in the tree */
	unsigned int depth; /* below the first ancestor with none */
};

struct cow_set {
	struct cow_proc *p;
	size_t nr;
	uint64_t pages;	    /* in all the shared sets */
	unsigned int depth; /* the deepest process's */
};

/* The shared pages of every dumped process of @m (CRIU's images). */
int cow_find(struct migration *m, struct cow_set *cs);
void cow_free(struct cow_set *cs);

/*
 * Pure: add to @out the pages of [vaddr, vaddr + @n pages) whose pagemap
 * entries @a[i] and @b[i] (/proc/PID/pagemap) map one page: both present
 * with the same non-zero frame number, or both swapped to the same slot.
 */
int cow_match(uint64_t vaddr, const uint64_t *a, const uint64_t *b, size_t n, struct rangeset *out);

#endif
