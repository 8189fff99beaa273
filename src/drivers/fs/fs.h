/* SPDX-License-Identifier: MIT */
/*
 * fs: drivers for the workload's *storage* (DRV_FS in driver.h), chosen
 * with --fs NAME[:ARG], several per migration. A storage driver:
 *
 *   start_migration     first copy while the workload runs
 *   next_iteration      one more round of changes
 *   frozen              the workload is frozen (switch-over point)
 *   stop_migration      last iteration done: final pass, still frozen
 *   migration_complete  the destination committed: drop the source's copy
 *                       or snapshot (the seed's "migration complete")
 *   migration_failed    roll the source's storage back exactly
 *   target_cleanup      destination side of the commit (merge snapshots)
 *   target_abort        destination side of a rollback
 *
 * Destination side, before those two: target_check (preflight), target_msg
 * (a round of copying: FsSync), target_restore (before CRIU restores),
 * target_restored (held until the commit).
 *
 * Storage messages (FsSync, FsData, ...) go over the driver's channel
 * (drv_send(), drv_expect() of struct drv_ctx); ctx->fs_index is the
 * driver's index among the storage drivers, which the messages carry.
 *
 * Each hook has a fault point "fs.HOOK" (driver.c), for tests.
 *
 * Drivers: shared (shared.c: both hosts see the same paths), sync
 * (sync.c: a private directory copied in rounds with rsync tunnelled
 * through phaul's connection), disk (disk.c: a file-system image on
 * shared storage, loop-mounted where the workload runs).
 */
#ifndef PHAUL_FS_H
#define PHAUL_FS_H

#include "drivers/driver.h"

extern const struct driver_ops fs_shared_ops;
extern const struct driver_ops fs_sync_ops;
extern const struct driver_ops fs_disk_ops;

#endif
