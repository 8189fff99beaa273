/* SPDX-License-Identifier: MIT */
/*
 * source/shmem: live and hybrid mode's pre-copy of shared memory. The
 * write trackers (src/track) see private memory only; a shared anonymous
 * mapping (MAP_SHARED|MAP_ANONYMOUS) or a memfd is one object however
 * many processes map it, and CRIU dumps it from the object. Here each
 * such object the tree maps is found in /proc/PID/maps (once, by its
 * inode: CRIU's shmid) and read through /proc/PID/map_files; a round
 * compares every page that holds data (SEEK_DATA) with the hash of the
 * copy the destination holds, and sends the pages that differ as
 * PageRuns of the object (PageRun.shmid, the offset as vaddr).
 *
 * While frozen, one last pass sends what changed since, and CRIU is told
 * (shm_write_list(), CRIU_SHMEM_IN_PARENT: scripts/criu-patches/0016)
 * to record those objects' pages as in the parent images instead of
 * reading them: the destination's store is that parent. Objects that
 * appear after the last round, and System V segments, are left to CRIU,
 * as is everything with a CRIU that lacks the patch (it dumps the
 * objects itself: slower, never wrong).
 */
#ifndef PHAUL_SOURCE_SHMEM_H
#define PHAUL_SOURCE_SHMEM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/rangeset.h"

struct conn;

struct shm_obj {
	uint64_t ino;		 /* CRIU's shmid */
	int fd;			 /* the object, through map_files */
	char name[256];		 /* as CRIU names it ("/dev/zero", a memfd's) */
	uint32_t seals;		 /* F_GET_SEALS */
	bool announced;		 /* name and seals sent */
	uint64_t size;		 /* bytes, at the last pass */
	uint64_t pages;		 /* its size, in pages, at the last pass */
	uint64_t *hash;		 /* of each page as sent */
	uint8_t *sent;		 /* the destination holds that page */
	struct rangeset pending; /* differs from what was sent */
};

struct shm_set {
	struct shm_obj *o;
	size_t nr;
	uint64_t seen; /* pages hashed, all passes */
	/* shm_collect_start()'s thread */
	pthread_t thread;
	bool running;
	int result;
	uint64_t dirty;
};

/*
 * One line of /proc/PID/maps: whether it maps a shared memory object
 * this module moves (a shared anonymous mapping or a memfd, mapped
 * shared; not a System V segment, not a file), and if so its range and
 * inode, and the name CRIU gives the object (the path without
 * " (deleted)", a memfd's without "/memfd:"), in @name of @len bytes.
 * Pure, for the unit tests.
 */
bool shm_maps_line(const char *line, uint64_t *start, uint64_t *end, uint64_t *ino, char *name,
		   size_t len);
/* Add the objects @pids map that the set lacks; a process that exited,
 * or an object that cannot be opened, is skipped (CRIU dumps it). */
int shm_scan(struct shm_set *s, const pid_t *pids, size_t nr);
/* Every page with data that differs from what was sent, into each
 * object's pending set; *@dirty: how many. */
int shm_collect(struct shm_set *s, uint64_t *dirty);
/*
 * shm_collect() on a thread of its own (while frozen, beside the sending
 * of the processes' pages); shm_collect_wait() joins it and returns what
 * it returned, or 0 at once when none runs. Nothing else may touch @s
 * in between.
 */
int shm_collect_start(struct shm_set *s);
int shm_collect_wait(struct shm_set *s, uint64_t *dirty);
/* Send the pending pages (re-read: the hash kept is of what goes). */
int shm_send(struct shm_set *s, struct conn *c, uint8_t *buf, uint64_t *pages);
/* Every object's inode, one per line, for CRIU_SHMEM_IN_PARENT. */
int shm_write_list(const struct shm_set *s, const char *path);
/* Joins a collect still running first. */
void shm_free(struct shm_set *s);

#endif
