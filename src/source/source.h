/* SPDX-License-Identifier: MIT */
/*
 * source internals: the steps of `phaul migrate` split across files.
 */
#ifndef PHAUL_SOURCE_H
#define PHAUL_SOURCE_H

#include "engine/migration.h"
#include "source/connect.h"

/* The workload and storage drivers of m->opts; HOOK_PREPARE if @prepare. */
int source_setup_drivers(struct migration *m, bool prepare);
/* One migration of a tree at a time (common/pidlock.h); the lock's fd in *@fd. */
int source_lock_tree(struct migration *m, int *fd);
/*
 * CRIU usable here and >= 4.0 (its version in *@ver); the tree's locks;
 * CRIU's cpuinfo.img of this host (under m->dir) in *@cpu, *@cpulen, for
 * the peer's CPU check.
 */
int source_local_checks(struct migration *m, uint32_t *ver, uint8_t **cpu, size_t *cpulen);
/*
 * With --file-locks, refuse a tree holding a lock on a file both hosts see
 * (not under a storage spec's `sync:DIR` or `disk:` mount point, which
 * storage_is_private() tells): the destination could not take it while
 * the source's frozen copy holds it (source/locks.c).
 */
int source_check_locks(struct migration *m);
bool storage_is_private(const char *const *fs, size_t nr_fs, const char *path);
/* Preflight (or, with @check, the same as Msg.check: `phaul check`). */
int source_send_preflight(struct migration *m, uint32_t ver, uint8_t *cpu, size_t cpulen,
			  bool check);
/* --mode restart (engine/restart.h), after start_migration; 0 only when
 * committed (source/restart.c). */
int source_restart(struct migration *m);
/* Freeze, dump, move the images, restore there, commit or roll back. */
int source_final_dump(struct migration *m);
struct criu;
/* After post-dump: images out, restore there, commit. 0 = committed. */
int source_switch_over(struct migration *m, struct criu *c);
/* After sending Commit (or Restart) with result @r: wait for Committed,
 * resolve a broken link; sets m->outcome. 0 = committed. */
int source_await_committed(struct migration *m, int r);

#endif
