/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "driver: "
#include "drivers/driver.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fault.h"
#include "common/log.h"

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
	[HOOK_TARGET_COMMITTED] = "target_committed",
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

	for (size_t i = 0; driver_registry[i]; i++)
		if (driver_registry[i]->kind == kind && strlen(driver_registry[i]->name) == len &&
		    !strncmp(driver_registry[i]->name, spec, len))
			ops = driver_registry[i];
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

bool driver_path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

bool driver_storage_brings(struct driver *const *drv, size_t nr, const char *path)
{
	for (size_t i = 0; i < nr; i++)
		if (drv[i]->ops->kind == DRV_FS && drv[i]->arg && drv[i]->arg[0] == '/' &&
		    driver_path_under(path, drv[i]->arg))
			return true;
	return false;
}

bool driver_hook_after_commit(enum driver_hook hook)
{
	return hook == HOOK_MIGRATION_COMPLETE || hook == HOOK_TARGET_COMMITTED ||
	       hook == HOOK_TARGET_RESUMED || hook == HOOK_TARGET_CLEANUP;
}

/* Every storage hook has its fault point, "fs.HOOK" (fault.c's table),
 * armed whether or not the driver implements the hook; target_committed
 * and target_resumed, which no storage driver has, have none. */
static int fs_fault(enum driver_hook hook)
{
	char name[64];

	snprintf(name, sizeof(name), "fs.%s", hook_names[hook]);
	return fault_point(name);
}

/* The hook's outcome: the first failure is the migration's, unless the
 * commit is past. */
static int hook_result(struct driver *d, enum driver_hook hook, const struct drv_ctx *ctx, int r)
{
	if (r < 0 && !driver_hook_after_commit(hook))
		drv_fail(ctx, r, "%s driver: %s failed", d->ops->name, hook_names[hook]);
	else if (r < 0)
		pr_err("%s driver: %s failed", d->ops->name, hook_names[hook]);
	return r;
}

int driver_call(struct driver *d, enum driver_hook hook, const struct drv_ctx *ctx)
{
	driver_hook_fn fn =
		(unsigned)hook < HOOK__MAX && hook != HOOK_PREPARE ? d->ops->hooks[hook] : NULL;
	int r = d->ops->kind == DRV_FS ? fs_fault(hook) : 0;

	if (r == 0 && !fn)
		return 0;
	pr_debug("%s: %s", d->ops->name, hook_names[hook]);
	if (r == 0)
		r = fn(d, ctx);
	return hook_result(d, hook, ctx, r);
}

int driver_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	int r = d->ops->kind == DRV_FS ? fs_fault(HOOK_PREPARE) : 0;

	if (r == 0 && !d->ops->prepare)
		return 0;
	pr_debug("%s: %s", d->ops->name, hook_names[HOOK_PREPARE]);
	if (r == 0)
		r = d->ops->prepare(d, ctx, tree);
	return hook_result(d, HOOK_PREPARE, ctx, r);
}

int drv_fail(const struct drv_ctx *ctx, int err, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (ctx->host && ctx->host->fail)
		return ctx->host->fail(ctx->arg, err, text);
	pr_err("%s", text);
	return err < 0 ? err : -EIO;
}

#define HOST_CALL(ctx, fn, none, ...) \
	((ctx)->host && (ctx)->host->fn ? (ctx)->host->fn((ctx)->arg, __VA_ARGS__) : (none))

int drv_send(const struct drv_ctx *ctx, Msg *msg)
{
	return HOST_CALL(ctx, send, -ENOTSUP, msg);
}

int drv_recv(const struct drv_ctx *ctx, Msg **msg)
{
	return HOST_CALL(ctx, recv, -ENOTSUP, msg);
}

int drv_expect(const struct drv_ctx *ctx, int want, Msg **msg)
{
	return HOST_CALL(ctx, expect, -ENOTSUP, want, msg);
}

int drv_add_criu_fd(const struct drv_ctx *ctx, int fd)
{
	int r = HOST_CALL(ctx, add_criu_fd, -ENOTSUP, fd);

	if (r < 0)
		close(fd);
	return r;
}

int drv_add_in_place(const struct drv_ctx *ctx, const char *path)
{
	return HOST_CALL(ctx, add_in_place, -ENOTSUP, path);
}

bool drv_in_place(const struct drv_ctx *ctx, const char *path)
{
	return HOST_CALL(ctx, in_place, false, path);
}

bool drv_storage_brings(const struct drv_ctx *ctx, const char *path)
{
	return HOST_CALL(ctx, storage_brings, false, path);
}

int drv_criu_failed(const struct drv_ctx *ctx, const char *log, const char *what)
{
	return HOST_CALL(ctx, criu_failed, drv_fail(ctx, -EIO, "CRIU failed at %s", what), log,
			 what);
}
