/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "driver: "
#include "drivers/driver.h"

#include <stdio.h>
#include <string.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "drivers/fs/fs.h"
#include "drivers/htype/htype.h"
#include "engine/migration.h"

static const struct driver_ops *const registry[] = {
	&htype_pid_ops,
	&htype_oci_ops,
	&htype_lxc_ops,
	&fs_shared_ops,
	&fs_sync_ops,
	&fs_disk_ops,
};

static const char *const hook_names[HOOK__MAX] = {
	[HOOK_PREPARE] = "prepare",
	[HOOK_START_MIGRATION] = "start_migration",
	[HOOK_NEXT_ITERATION] = "next_iteration",
	[HOOK_FROZEN] = "frozen",
	[HOOK_STOP_MIGRATION] = "stop_migration",
	[HOOK_MIGRATION_COMPLETE] = "migration_complete",
	[HOOK_MIGRATION_FAILED] = "migration_failed",
	[HOOK_TARGET_CHECK] = "target_check",
	[HOOK_TARGET_RESTORE] = "target_restore",
	[HOOK_TARGET_RESTORED] = "target_restored",
	[HOOK_TARGET_RESUMED] = "target_resumed",
	[HOOK_TARGET_CLEANUP] = "target_cleanup",
	[HOOK_TARGET_ABORT] = "target_abort",
};

const char *driver_hook_name(enum driver_hook hook)
{
	return (unsigned)hook < HOOK__MAX ? hook_names[hook] : "?";
}

int driver_new(enum driver_kind kind, const char *spec, struct driver **ret)
{
	const char *colon = strchr(spec, ':');
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
	const struct driver_ops *ops = NULL;
	struct driver *d;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(registry); i++)
		if (registry[i]->kind == kind && strlen(registry[i]->name) == len &&
		    !strncmp(registry[i]->name, spec, len))
			ops = registry[i];
	if (!ops) {
		pr_err("unknown %s driver '%.*s'", kind == DRV_HTYPE ? "workload" : "storage",
		       (int)len, spec);
		return -ENOENT;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->ops = ops;
	d->arg = strdup(colon ? colon + 1 : "");
	d->priv = ops->priv_size ? calloc(1, ops->priv_size) : NULL;
	if (!d->arg || (ops->priv_size && !d->priv)) {
		driver_free(d);
		return -ENOMEM;
	}
	r = ops->init ? ops->init(d, d->arg) : 0;
	if (r < 0) {
		driver_free(d);
		return r;
	}
	*ret = d;
	return 0;
}

void driver_free(struct driver *d)
{
	if (!d)
		return;
	if (d->ops->fini)
		d->ops->fini(d);
	free(d->priv);
	free(d->arg);
	free(d);
}

int driver_fs_index(const struct migration *m, const struct driver *d)
{
	for (size_t i = 1; i < m->nr_drv; i++)
		if (m->drv[i] == d)
			return i - 1;
	return -ENOENT;
}

/* Whether @path is @dir or below it. */
static bool path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

bool driver_storage_brings(const struct migration *m, const char *path)
{
	for (size_t i = 0; i < m->nr_drv; i++)
		if (m->drv[i]->ops->kind == DRV_FS && m->drv[i]->arg &&
		    m->drv[i]->arg[0] == '/' && path_under(path, m->drv[i]->arg))
			return true;
	return false;
}

bool driver_hook_after_commit(enum driver_hook hook)
{
	return hook == HOOK_MIGRATION_COMPLETE || hook == HOOK_TARGET_RESUMED ||
	       hook == HOOK_TARGET_CLEANUP;
}

/* Every storage hook has its fault point, "fs.HOOK" (fault.c's table),
 * armed whether or not the driver implements the hook; target_resumed,
 * which no storage driver has, has none. */
static int fs_fault(enum driver_hook hook)
{
	char name[64];

	snprintf(name, sizeof(name), "fs.%s", hook_names[hook]);
	return fault_point(name);
}

int driver_call(struct driver *d, enum driver_hook hook, struct migration *m)
{
	driver_hook_fn fn = (unsigned)hook < HOOK__MAX ? d->ops->hooks[hook] : NULL;
	int r = d->ops->kind == DRV_FS ? fs_fault(hook) : 0;

	if (r == 0 && !fn)
		return 0;
	pr_debug("%s: %s", d->ops->name, hook_names[hook]);
	if (r == 0)
		r = fn(d, m);
	/* the first failure is the migration's, unless the commit is past */
	if (r < 0 && !m->error[0] && !driver_hook_after_commit(hook))
		mig_fail(m, r, "%s driver: %s failed", d->ops->name, hook_names[hook]);
	else if (r < 0)
		pr_err("%s driver: %s failed", d->ops->name, hook_names[hook]);
	return r;
}
