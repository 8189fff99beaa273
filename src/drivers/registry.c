/* SPDX-License-Identifier: MIT */
/* registry: every driver driver_new() knows, by kind and name. */
#include "drivers/driver.h"
#include "drivers/fs/fs.h"
#include "drivers/htype/htype.h"

const struct driver_ops *const driver_registry[] = {
	&htype_pid_ops, &htype_oci_ops, &htype_lxc_ops, &htype_podman_ops,
	&fs_shared_ops, &fs_sync_ops,	&fs_disk_ops,	NULL,
};
