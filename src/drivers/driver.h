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
 *   target_committed   the source committed: the tree runs here next. CRIU
 *                      unlocks the network (its network-unlock moment),
 *                      then takes the sockets out of repair mode, whose
 *                      first packets (window probes, ARP) go out before
 *                      post-resume: a driver's own network fence is
 *                      lifted here; a failure is only reported
 *   target_resumed     committed, the tree runs and its network is unlocked
 *                      (CRIU's post-resume); a failure is only reported
 *   target_cleanup     committed: drop what only served the migration
 *   target_abort       failed: kill, unmount, delete what was restored
 *   restore_exec       (htype only, optional) the restore is run by the
 *                      workload's manager, which execs CRIU itself
 *   restore_criu       (htype only, optional) the manager starts the CRIU
 *                      the engine drives (its RPC socket comes from the driver)
 *
 * Each kind's contract is in its own header: htype/htype.h, fs/fs.h.
 *
 * A hook gets its struct driver and a struct drv_ctx, nothing else of the
 * engine: what it may read (side, mode, scratch and images directories,
 * the options drivers use, the tree once known), and the engine's
 * services through drv_*(): drv_fail() reports a failure (the first is
 * the migration's), drv_send()/drv_recv()/drv_expect() are the driver's
 * channel to its peer driver on the other host, and a few more (a file
 * descriptor for CRIU's restore, files used in place, what storage
 * brings, a CRIU log to keep). prepare returns the tree (struct drv_tree)
 * instead of storing it anywhere. So a driver builds and is tested with
 * no engine at all (tests/unit/test_driver_*.c): nothing under drivers/
 * includes engine/, source/, target/ or pages/.
 *
 * Every hook returns 0 or a negative errno and logs why it failed (or
 * says it with drv_fail()); after the commit point (migration_complete,
 * target_committed, target_resumed, target_cleanup) a failure is reported
 * but never undoes
 * the migration.
 */
#ifndef PHAUL_DRIVER_H
#define PHAUL_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "criu-rpc.pb-c.h"
#include "proto/mode.h"
#include "proto/msg.h"

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
	HOOK_TARGET_COMMITTED,
	HOOK_TARGET_RESUMED,
	HOOK_TARGET_CLEANUP,
	HOOK_TARGET_ABORT,
	HOOK__MAX,
};

/* The tree a workload driver's prepare finds; the engine owns it after. */
struct drv_tree {
	pid_t root;	   /* on the destination: once restored */
	int32_t *pids;	   /* processes first, then threads */
	int32_t *img_pids; /* the same tasks as CRIU's images number
					 * them (inside the workload's PID
					 * namespace), or NULL: the same as pids */
	size_t nr_pids;
	size_t nr_procs;
	uint64_t est_bytes; /* resident memory, an estimate */
	bool shell_job;	    /* it has a controlling terminal */
};

/* What drivers read of the user's options (source only; else NULL). */
struct drv_opts {
	const char *oci_runtime; /* runc (default) or crun */
	const char *oci_root;	 /* the runtime's --root, or its default */
	const char *lxc_path;	 /* LXC's lxcpath, or its default */
};

/*
 * The engine's side of struct drv_ctx, each called with ctx->arg; use the
 * drv_*() functions below. A NULL member: the service is not offered
 * (-ENOTSUP, false).
 */
struct drv_host {
	/* Record the migration's first failure (later ones are logged). */
	int (*fail)(void *arg, int err, const char *text);
	/* The driver's channel: messages on the migration's connection;
	 * send may run on another thread while recv waits (the tunnel). */
	int (*send)(void *arg, Msg *msg);
	int (*recv)(void *arg, Msg **msg);
	int (*expect)(void *arg, int want, Msg **msg);
	/* Destination: @fd goes to CRIU's restore (inherit_fd) and is closed
	 * with the migration; refused (-E2BIG), drv_add_criu_fd closes it. */
	int (*add_criu_fd)(void *arg, int fd);
	/* Files the destination uses where they are (PreflightReply.in_place). */
	int (*add_in_place)(void *arg, const char *path);
	bool (*in_place)(void *arg, const char *path);
	/* Destination: whether a storage driver copies @path here. */
	bool (*storage_brings)(void *arg, const char *path);
	/* CRIU failed at @what: fail with the cause its log @log (under dir)
	 * gives, and keep that log. */
	int (*criu_failed)(void *arg, const char *log, const char *what);
};

/*
 * All a hook gets besides its struct driver: facts to read, and the
 * engine's services. The engine builds it for each call; a driver keeps
 * no pointer into it past the call.
 */
struct drv_ctx {
	bool source; /* the source side (else the destination) */
	enum mig_mode mode;
	const char *dir;	     /* this migration's scratch directory */
	int imgfd;		     /* its images directory */
	int fs_index;		     /* a storage driver's index among them
					 * (the Preflight's fs list), else -1 */
	const struct drv_opts *opts; /* source only, else NULL */
	const struct drv_tree *tree; /* the tree, all zero until known */
	const struct drv_host *host;
	void *arg;
};

typedef int (*driver_hook_fn)(struct driver *d, const struct drv_ctx *ctx);
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
	/*
	 * Source, before connecting. A workload driver fills @tree (its
	 * arrays malloc'ed; the engine owns them afterwards, failure or not);
	 * a storage driver gets @tree NULL and reads ctx->tree.
	 */
	int (*prepare)(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree);
	driver_hook_fn hooks[HOOK__MAX]; /* all but HOOK_PREPARE */
	/*
	 * What the destination's driver needs beyond its name (a container's
	 * ID, paths, ...): the source's send_info sends one message of its
	 * own before the Preflight; the destination's recv_info gets it (or
	 * NULL when none came) right after the driver is created.
	 */
	int (*send_info)(struct driver *d, const struct drv_ctx *ctx);
	int (*recv_info)(struct driver *d, const struct drv_ctx *ctx, const Msg *msg);
	int (*dump_opts)(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o);
	int (*restore_opts)(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o);
	/*
	 * Destination, htype: restore through the workload's manager (LXC's
	 * lxc-checkpoint execs `criu restore`) instead of CRIU's RPC, with the
	 * options @o the engine and drivers chose. The driver calls @held once
	 * the tree is restored and held, lets it run only when @held returned
	 * 0, and returns 0 when the tree runs, its root in *root; on failure
	 * nothing it restored runs. NULL: the engine restores through CRIU.
	 */
	int (*restore_exec)(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o,
			    driver_held_fn held, void *arg, pid_t *root);
	/*
	 * Destination, htype, optional: the CRIU that restores is started by
	 * the workload's manager (podman's conmon runs it as its runtime), not
	 * by us: hand it @fds (for it to inherit under the same numbers) and
	 * return our end of its RPC socket in *sk; the engine then drives the
	 * restore as with a CRIU of its own. NULL: the engine starts CRIU.
	 */
	int (*restore_criu)(struct driver *d, const struct drv_ctx *ctx, const int *fds, size_t nr,
			    int *sk);
	/* Destination: a storage message addressed to this driver. */
	int (*target_msg)(struct driver *d, const struct drv_ctx *ctx, Phaul__Msg *msg);
};

struct driver {
	const struct driver_ops *ops;
	void *priv;
	char *arg;
};

/* Every driver, NULL-terminated (registry.c). */
extern const struct driver_ops *const driver_registry[];

/* "name" or "name:arg"; -ENOENT for an unknown driver (driver_registry). */
int driver_new(enum driver_kind kind, const char *spec, struct driver **ret);
void driver_free(struct driver *d);
/*
 * Run @hook (not HOOK_PREPARE) of @d; a failure before the commit is
 * reported through drv_fail() (the first one is the migration's).
 */
int driver_call(struct driver *d, enum driver_hook hook, const struct drv_ctx *ctx);
/* prepare, the same way; @tree as in struct driver_ops. */
int driver_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree);
const char *driver_hook_name(enum driver_hook hook);
/* migration_complete, target_committed, target_resumed, target_cleanup:
 * past the commit, a failure is reported but undoes nothing. */
bool driver_hook_after_commit(enum driver_hook hook);
/*
 * Whether a storage driver among @drv copies @path here (its argument is
 * a directory above it, as sync:DIR's): on the destination @path may
 * then only exist once the storage is through, before the restore.
 */
bool driver_storage_brings(struct driver *const *drv, size_t nr, const char *path);
/* Whether @path is @dir or below it. */
bool driver_path_under(const char *path, const char *dir);

/* A driver's use of its context (struct drv_host). */
int drv_fail(const struct drv_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int drv_send(const struct drv_ctx *ctx, Msg *msg);
int drv_recv(const struct drv_ctx *ctx, Msg **msg);
/* Receive the next message and require @want (a Phaul__Msg__BodyCase);
 * anything else fails the migration with the reason. */
int drv_expect(const struct drv_ctx *ctx, int want, Msg **msg);
int drv_add_criu_fd(const struct drv_ctx *ctx, int fd);
int drv_add_in_place(const struct drv_ctx *ctx, const char *path);
bool drv_in_place(const struct drv_ctx *ctx, const char *path);
bool drv_storage_brings(const struct drv_ctx *ctx, const char *path);
int drv_criu_failed(const struct drv_ctx *ctx, const char *log, const char *what);

#endif
