/* SPDX-License-Identifier: MIT */
/*
 * admit: the destination's policy, what `phaul serve` accepts from a
 * source that holds the key. The daemon decides, not the source: every
 * path a Preflight (and the OCI or LXC description before it) names is
 * resolved here (symlinks and "..", realpath of the part that exists)
 * and must fall under a root the policy allows for its use; modes, shell
 * jobs, stdio reopened by path and LXC hooks need the policy's leave.
 * A refusal says which rule refused and which setting would allow it.
 *
 * The file (`phaul serve --policy FILE`, root's, not writable by group or
 * others, opened without following a symlink) holds "key = value" lines,
 * '#' comments, blank lines; a root key may repeat (each adds a root):
 *
 *   mode            = stop live lazy hybrid [restart]
 *   sync_root       = DIR   --fs sync:DIR
 *   disk_image_root = DIR   --fs disk:IMAGE:MNT, the IMAGE
 *   disk_mount_root = DIR   --fs disk:IMAGE:MNT, the MNT
 *   oci_root        = DIR   OCI bundle, rootfs and runtime state root
 *   lxc_root        = DIR   LXC lxcpath and rootfs
 *   bind_root       = DIR   sources of host bind mounts (OCI, LXC; the OCI
 *                           default devices /dev/null, zero, full, random,
 *                           urandom, tty always)
 *   stdio_root      = DIR   files reopened by path for a workload's stdio
 *   shell_job       = no | yes
 *   lxc_hooks       = no | yes   lxc.hook.* and lxc.mount.fstab
 *   podman          = no | yes   Podman containers (podman's restore runs
 *                           them as the source's podman describes them)
 *
 * Without a file (the defaults): modes stop, live, lazy and hybrid; no
 * root of any kind (so no sync:, disk:, OCI or LXC), no shell job, no
 * stdio by path, no LXC hooks, no Podman. contrib/policy.example explains each key.
 */
#ifndef PHAUL_ADMIT_H
#define PHAUL_ADMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/msg.h"

enum admit_root {
	ROOT_SYNC,
	ROOT_DISK_IMAGE,
	ROOT_DISK_MOUNT,
	ROOT_OCI,
	ROOT_LXC,
	ROOT_BIND,
	ROOT_STDIO,
	ROOT__MAX,
};

#define ADMIT_ROOTS_MAX 16

struct admit {
	const char *file;			 /* the policy file, NULL for the defaults */
	unsigned int modes;			 /* bit i: admit_modes[i] */
	char *roots[ROOT__MAX][ADMIT_ROOTS_MAX]; /* resolved, no trailing '/' */
	size_t nr_roots[ROOT__MAX];
	bool shell_job;
	bool lxc_hooks;
	bool podman;
};

/* The defaults (no file). */
void admit_defaults(struct admit *a);
/* Parse @text (the file's contents; @file names it in messages). */
int admit_parse(struct admit *a, const char *file, const char *text, char *why, size_t len);
/* Load @file (checked as described above) over the defaults. A root is
 * resolved once, at load: its existing part with realpath, the rest kept. */
int admit_load(struct admit *a, const char *file);
void admit_free(struct admit *a);
/* The settings in one line per key, for logs and `phaul serve --policy`. */
void admit_describe(const struct admit *a, char *buf, size_t len);

/*
 * @path resolved: realpath of its longest existing prefix, then the rest,
 * which may hold no ".", ".." or empty component. -EINVAL for a relative
 * or malformed path.
 */
int admit_resolve(const char *path, char *out, size_t len);
/* 0 when @path resolves under a root of @kind; else -EPERM and @why. */
int admit_path(const struct admit *a, enum admit_root kind, const char *what, const char *path,
	       char *why, size_t len);

/*
 * Everything a Preflight asks (with @info, the driver message before it,
 * or NULL): 0, or -EPERM with the first refusal in @why.
 */
int admit_preflight(const struct admit *a, const Phaul__Preflight *p, const Msg *info, char *why,
		    size_t len);

#endif
