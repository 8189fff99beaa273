/* SPDX-License-Identifier: MIT */
/*
 * pages/store: the destination's copy of the pages live pre-copy sent, kept
 * on disk as a chain of CRIU image sets, one per round:
 *
 *   SESSION/rounds/K/pagemap-PID.img   every page known so far: PE_PRESENT
 *                                      if it came in round K, else PE_PARENT
 *   SESSION/rounds/K/pages-PID.img     round K's pages, in address order
 *   SESSION/rounds/K/parent -> ../K-1
 *
 * Pages arrive straight into round K's file while the workload runs, so
 * the frozen path writes only the last round's pages. A page that comes
 * again releases its older copy (a hole punched in the older round's
 * file), so the store holds each page once and stays within the space
 * the preflight asked for. At the end, either
 * pagestore_assemble() points the lazy runs of CRIU's final pagemaps at
 * the chain (PE_PARENT, `parent` -> the last round) and CRIU's restore
 * reads them from there, or (lazy restore) they stay lazy and the page
 * server answers for them from pagestore_lookup(). In post-copy modes
 * (ps->remote) pages that never arrived, or were dropped as stale, are
 * the page server's to fetch from the source. Memory: O(runs) per
 * process and round.
 */
#ifndef PHAUL_PAGES_STORE_H
#define PHAUL_PAGES_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/rangeset.h"
#include "proto/conn.h"
#include "proto/msg.h"

/* One process's pages of one finished round: runs and where they are. */
struct ps_round {
	struct range *r;
	uint64_t *first; /* page index in the file of r[i].start */
	size_t nr;
	int fd; /* the round's pages file, kept open */
};

/*
 * One process's pages, or one shared memory object's (shmid != 0: pages
 * at their offset in the object, in SESSION/rounds/K/pagemap-shmem-
 * SHMID.img, CRIU's name for them; pid is then the id of their pages
 * files, PS_SHM_PAGES_ID and up, which no PID reaches).
 */
#define PS_SHM_PAGES_ID 0x40000000

struct ps_proc {
	pid_t pid;
	uint64_t shmid;
	int memfd;		 /* shmem prepared for CRIU (0017), or -1 */
	uint64_t shm_size;	 /* its size, bytes */
	struct rangeset known;	 /* pages received in any round */
	struct rangeset round;	 /* pages received in this round */
	struct rangeset stale;	 /* hybrid: written after they were sent */
	struct rangeset shared;	 /* restored with the tree (PageShared) */
	int pages_fd;		 /* this round's pages file, or -1 */
	struct ps_round *rounds; /* finished rounds, oldest first */
	size_t nr_rounds;
};

struct pagestore {
	int dirfd;	    /* SESSION/rounds */
	unsigned int round; /* the round being received, from 1 */
	int round_fd;	    /* its directory, or -1 */
	struct ps_proc *p;
	size_t nr;
	const int32_t *pids; /* the processes the preflight named */
	size_t nr_pids;
	int32_t *more; /* and those NewPids named since */
	size_t nr_more;
	uint64_t pages; /* received, all rounds */
	uint64_t freed; /* bytes older copies gave back, not yet credited */
	bool remote;	/* post-copy: what is missing is at the source */
	bool shmem;	/* shared memory objects' pages are taken */
	/* and goes straight into memfds that CRIU's restore takes
	 * (CRIU_SHMEM_PREPARED), not into the rounds */
	bool prepared;
	size_t nr_shm; /* of them in @p */
	uint8_t *buf;
};

int pagestore_init(struct pagestore *ps, int sessfd, const int32_t *pids, size_t nr_pids);
/* Accept pages of these processes too (forked since the preflight); at
 * most MSG_PIDS_MAX processes in all, else -E2BIG. */
int pagestore_add_pids(struct pagestore *ps, const int32_t *pids, size_t nr);
/* Store the run @pr announced; its data frames are read from @c. A run
 * of a shared memory object (pr->has_shmid) is taken once @ps->shmem is
 * set (PHAUL_FEAT_SHMEM_PAGES agreed), MSG_SHMEM_MAX objects at most. */
int pagestore_recv_run(struct pagestore *ps, struct conn *c, const Phaul__PageRun *pr,
		       uint64_t *budget);
/*
 * Hybrid: the copy held of @pid's [vaddr, end) is stale; lookups miss
 * there from now on (the page server fetches them from the source).
 */
int pagestore_drop(struct pagestore *ps, pid_t pid, uint64_t vaddr, uint64_t end);
/*
 * @pid's [vaddr, end) is shared copy-on-write with its parent on the
 * source: pagestore_assemble() has CRIU restore it from the chain, with
 * the tree, instead of lazily.
 */
int pagestore_share(struct pagestore *ps, pid_t pid, uint64_t vaddr, uint64_t end);
/*
 * @pid's [vaddr, end) is @from's, one page on the source (PageShared with
 * from_pid): copied from the store's newest copy of @from's, which must
 * be in a finished round and not stale (-ENODATA), into this round for
 * @pid, as pagestore_recv_run() would store it (same order rule, same
 * budget).
 */
int pagestore_copy(struct pagestore *ps, pid_t pid, pid_t from, uint64_t vaddr, uint64_t end,
		   uint64_t *budget);
/* Write the round's pagemaps and open the next round. */
int pagestore_end_round(struct pagestore *ps);
/*
 * Rewrite the lazy runs of the pagemaps in @imgfd to the chain and link
 * it; the pages CRIU left in the parent for a shared memory object
 * (CRIU_SHMEM_IN_PARENT) must all be in the store, but none of a
 * prepared object that CRIU dumped in part (-ENODATA); with @lazy they
 * stay lazy (criu lazy-pages serves them from there),
 * but for the shared ones (pagestore_share), which must be in the store
 * and not stale (-ENODATA otherwise): those come from the chain.
 */
int pagestore_assemble(struct pagestore *ps, int imgfd, bool lazy);
/*
 * After pagestore_assemble(): the prepared objects, as CRIU_SHMEM_PREPARED
 * wants them ("shmid pid fd" lines, this process's fds), in @path
 * (written even when there are none). The number of objects.
 */
int pagestore_write_prepared(const struct pagestore *ps, const char *path);
/*
 * Where the newest copy of @pid's page at @vaddr is: its file and offset,
 * and how many of the following pages (at most @max) are contiguous there.
 * -ENOENT if the page never arrived or is stale. Thread-safe once the
 * rounds are over.
 */
int pagestore_lookup(const struct pagestore *ps, pid_t pid, uint64_t vaddr, uint32_t max, int *fd,
		     uint64_t *off, uint32_t *nr);
void pagestore_fini(struct pagestore *ps);

#endif
