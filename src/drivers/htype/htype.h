/* SPDX-License-Identifier: MIT */
/*
 * htype: drivers for *what* is migrated (DRV_HTYPE in driver.h). One per
 * migration, always m->drv[0]. A workload driver:
 *
 *   prepare          finds the tree: fills m->root_pid, m->pids (processes
 *                    first, then threads), m->nr_procs, m->est_bytes
 *   dump_opts        names the tree to CRIU (pid, namespaces, externals)
 *   target_check     on the destination: can the tree be restored here
 *                    (PIDs free, namespaces, devices)
 *   restore_opts     CRIU's restore options for the tree
 *   target_restored  the tree exists, held before it runs
 *   migration_complete / migration_failed / target_cleanup / target_abort
 *                    registration with a manager (runc, lxc) moves or stays
 *
 * Drivers: pid (a process tree, pid.c), oci (a runc or crun container,
 * oci.h), lxc (an LXC container, lxc.h).
 *
 * htype_container_tree() is the prepare step the container drivers share:
 * the tree under the container's init @init (m->pids, m->img_pids as the
 * container's PID namespace numbers them, m->root_pid, m->est_bytes).
 */
#ifndef PHAUL_HTYPE_H
#define PHAUL_HTYPE_H

#include <sys/types.h>

#include "drivers/driver.h"

extern const struct driver_ops htype_pid_ops;
extern const struct driver_ops htype_oci_ops;
extern const struct driver_ops htype_lxc_ops;

int htype_container_tree(struct migration *m, pid_t init, const char *name);

#endif
