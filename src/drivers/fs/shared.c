/* SPDX-License-Identifier: MIT */
/*
 * shared: the workload's files are on storage both hosts see at the same
 * paths (NFS, a cluster file system, or one machine's file system for two
 * test hosts). Nothing to copy, nothing to roll back.
 */
#include "drivers/fs/fs.h"

const struct driver_ops fs_shared_ops = {
	.name = "shared",
	.kind = DRV_FS,
};
