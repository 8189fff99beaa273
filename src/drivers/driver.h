/* SPDX-License-Identifier: MIT */
/*
 * driver: what is migrated (DRV_HTYPE: a process tree, later containers)
 * and its storage (DRV_FS: shared, sync:DIR, disk:IMAGE) are drivers.
 * Each is one file with a const struct driver_ops; the engine calls the
 * lifecycle hooks below at the named moments, through the table, and
 * never asks which driver it holds. A NULL hook means "nothing to do".
 *
 * Source side, in the order a migration reaches them:
 *   prepare            before connecting: validate, gather what to move
 *   start_migration    after preflight: first copy (storage)
 *   next_iteration     each pre-copy round
 *   dump_opts          CRIU options for the final dump
 *   frozen             the workload is frozen and dumped (CRIU post-dump)
 *   stop_migration     last iteration done: final pass, still frozen
 *   migration_complete the destination committed: drop the source's copy
 *   migration_failed   roll back: the workload resumes on the source
 * Destination side:
 *   target_check       preflight on the destination
 *   target_msg         a message for this driver during the transfer
 *                      (FsSync: the driver runs the exchange it starts)
 *   target_restore     all images are here, CRIU restores next (mount)
 *   restore_opts       CRIU options for the restore
 *   target_restored    restored, held stopped until the commit
 *   target_resumed     committed, the tree runs and its network is unlocked
 *                      (CRIU's post-resume); a failure is only reported
 *   target_cleanup     committed: drop what only served the migration
 *   target_abort       failed: kill, unmount, delete what was restored
 *   restore_exec       (htype only, optional) the restore is run by the
 *                      workload's manager, which execs CRIU itself
 *
 * Each kind's contract is in its own header: htype/htype.h, fs/fs.h.
 *
 * Every hook returns 0 or a negative errno and logs why it failed; after
 * the commit point (migration_complete, target_resumed, target_cleanup) a failure is
 * reported but never undoes the migration.
 */
#ifndef PHAUL_DRIVER_H
#define PHAUL_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "criu-rpc.pb-c.h"
#include "proto/msg.h"

struct migration;
struct driver;

enum driver_kind { DRV_HTYPE, DRV_FS };

enum driver_hook {
	HOOK_PREPARE,
	HOOK_START_MIGRATION,
	HOOK_NEXT_ITERATION,
	HOOK_FROZEN,
	HOOK_STOP_MIGRATION,
	HOOK_MIGRATION_COMPLETE,
	HOOK_MIGRATION_FAILED,
	HOOK_TARGET_CHECK,
	HOOK_TARGET_RESTORE,
	HOOK_TARGET_RESTORED,
	HOOK_TARGET_RESUMED,
	HOOK_TARGET_CLEANUP,
	HOOK_TARGET_ABORT,
	HOOK__MAX,
};

typedef int (*driver_hook_fn)(struct driver *d, struct migration *m);
/* The engine's part of a restore someone else runs: @root is restored
 * and held; 0 lets it run, anything else has CRIU kill it. */
typedef int (*driver_held_fn)(void *arg, pid_t root);

struct driver_ops {
	const char *name;
	enum driver_kind kind;
	size_t priv_size;
	/* Parse the driver's argument ("PID", "/srv/app", ...). */
	int (*init)(struct driver *d, const char *arg);
	void (*fini)(struct driver *d);
	driver_hook_fn hooks[HOOK__MAX];
	/*
	 * What the destination's driver needs beyond its name (a container's
	 * ID, paths, ...): the source's send_info sends one message of its
	 * own before the Preflight; the destination's recv_info gets it (or
	 * NULL when none came) right after the driver is created.
	 */
	int (*send_info)(struct driver *d, struct migration *m);
	int (*recv_info)(struct driver *d, struct migration *m, const Msg *msg);
	int (*dump_opts)(struct driver *d, struct migration *m, CriuOpts *o);
	int (*restore_opts)(struct driver *d, struct migration *m, CriuOpts *o);
	/*
	 * Destination, htype: restore through the workload's manager (LXC's
	 * lxc-checkpoint execs `criu restore`) instead of CRIU's RPC, with the
	 * options @o the engine and drivers chose. The driver calls @held once
	 * the tree is restored and held, lets it run only when @held returned
	 * 0, and returns 0 when the tree runs, its root in *root; on failure
	 * nothing it restored runs. NULL: the engine restores through CRIU.
	 */
	int (*restore_exec)(struct driver *d, struct migration *m, CriuOpts *o, driver_held_fn held,
			    void *arg, pid_t *root);
	/* Destination: a storage message addressed to this driver. */
	int (*target_msg)(struct driver *d, struct migration *m, Phaul__Msg *msg);
};

struct driver {
	const struct driver_ops *ops;
	void *priv;
	char *arg;
};

/* "name" or "name:arg"; -ENOENT for an unknown driver. */
int driver_new(enum driver_kind kind, const char *spec, struct driver **ret);
void driver_free(struct driver *d);
int driver_call(struct driver *d, enum driver_hook hook, struct migration *m);
const char *driver_hook_name(enum driver_hook hook);
/* migration_complete, target_resumed, target_cleanup: past the commit, a
 * failure is reported but undoes nothing. */
bool driver_hook_after_commit(enum driver_hook hook);
/*
 * Destination: whether a storage driver of @m copies @path here (its
 * argument is a directory above it, as sync:DIR's): then @path may only
 * exist once the storage is through, before the restore.
 */
bool driver_storage_brings(const struct migration *m, const char *path);
/* The index of @d among m's storage drivers (the Preflight's fs list). */
int driver_fs_index(const struct migration *m, const struct driver *d);

#endif
