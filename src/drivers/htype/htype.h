/* SPDX-License-Identifier: MIT */
/*
 * htype: drivers for *what* is migrated (DRV_HTYPE in driver.h). One per
 * migration, the engine's first driver. A workload driver:
 *
 *   prepare          finds the tree and returns it in its struct drv_tree:
 *                    root, pids (processes first, then threads), nr_procs,
 *                    est_bytes, img_pids for a PID namespace, shell_job;
 *                    the engine owns it afterwards and every later hook
 *                    reads it as ctx->tree
 *   dump_opts        names the tree to CRIU (pid, namespaces, externals)
 *   target_check     on the destination: can the tree be restored here
 *                    (PIDs free, namespaces, devices)
 *   restore_opts     CRIU's restore options for the tree
 *   target_restored  the tree exists, held before it runs (ctx->tree->root)
 *   migration_complete / migration_failed / target_cleanup / target_abort
 *                    registration with a manager (runc, lxc) moves or stays
 *
 * Drivers: pid (a process tree, pid.c), oci (a runc or crun container,
 * oci.h), lxc (an LXC container, lxc.h), podman (a Podman container, the
 * oci driver under podman, podman.h).
 *
 * htype_container_tree() is the prepare step the container drivers share:
 * fills @tree with the tree under the container's init @init (img_pids as
 * the container's PID namespace numbers them).
 */
#ifndef PHAUL_HTYPE_H
#define PHAUL_HTYPE_H

#include <sys/types.h>

#include "drivers/driver.h"

extern const struct driver_ops htype_pid_ops;
extern const struct driver_ops htype_oci_ops;
extern const struct driver_ops htype_lxc_ops;
extern const struct driver_ops htype_podman_ops;

int htype_container_tree(const struct drv_ctx *ctx, struct drv_tree *tree, pid_t init,
			 const char *name);

#endif
