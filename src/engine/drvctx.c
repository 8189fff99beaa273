/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "engine: "
#include "engine/drvctx.h"

#include <errno.h>
#include <stdlib.h>

#include "engine/migration.h"
#include "engine/session.h"

static int host_fail(void *arg, int err, const char *text)
{
	return mig_fail(arg, err, "%s", text);
}

static int host_send(void *arg, Msg *msg)
{
	struct migration *m = arg;

	return msg_send(m->conn, msg);
}

static int host_recv(void *arg, Msg **msg)
{
	struct migration *m = arg;

	return msg_recv(m->conn, msg);
}

static int host_expect(void *arg, int want, Msg **msg)
{
	return expect_msg(arg, want, msg);
}

static int host_add_criu_fd(void *arg, int fd)
{
	struct migration *m = arg;

	if (m->nr_criu_fds >= MIG_CRIU_FDS_MAX)
		return -E2BIG;
	m->criu_fds[m->nr_criu_fds++] = fd;
	return 0;
}

static int host_add_in_place(void *arg, const char *path)
{
	return mig_add_in_place(arg, path);
}

static bool host_in_place(void *arg, const char *path)
{
	return mig_in_place(arg, path);
}

static bool host_storage_brings(void *arg, const char *path)
{
	struct migration *m = arg;

	return driver_storage_brings(m->drv, m->nr_drv, path);
}

static int host_criu_failed(void *arg, const char *log, const char *what)
{
	return session_criu_failed(arg, log, what);
}

static const struct drv_host mig_host = {
	.fail = host_fail,
	.send = host_send,
	.recv = host_recv,
	.expect = host_expect,
	.add_criu_fd = host_add_criu_fd,
	.add_in_place = host_add_in_place,
	.in_place = host_in_place,
	.storage_brings = host_storage_brings,
	.criu_failed = host_criu_failed,
};

void mig_drvctx_init(struct migration *m, size_t i, struct mig_drvctx *b)
{
	*b = (struct mig_drvctx){
		.ctx = {
			.source = m->source,
			.mode = m->mode,
			.dir = m->dir,
			.imgfd = m->imgfd,
			.fs_index = m->drv[i]->ops->kind == DRV_FS ? (int)i - 1 : -1,
			.opts = m->opts ? &b->opts : NULL,
			.tree = &b->tree,
			.host = &mig_host,
			.arg = m,
		},
		.tree = {
			.root = m->root_pid,
			.pids = m->pids,
			.img_pids = m->img_pids,
			.nr_pids = m->nr_pids,
			.nr_procs = m->nr_procs,
			.est_bytes = m->est_bytes,
			.shell_job = m->shell_job,
		},
	};
	if (m->opts)
		b->opts = (struct drv_opts){
			.oci_runtime = m->opts->oci_runtime,
			.oci_root = m->opts->oci_root,
			.lxc_path = m->opts->lxc_path,
		};
}

/* The engine owns the tree a workload driver's prepare returns, whether
 * it succeeded or not (its arrays are freed with the migration). */
static void take_tree(struct migration *m, struct drv_tree *t)
{
	free(m->pids);
	free(m->img_pids);
	m->root_pid = t->root;
	m->pids = t->pids;
	m->img_pids = t->img_pids;
	m->nr_pids = t->nr_pids;
	m->nr_procs = t->nr_procs;
	m->est_bytes = t->est_bytes;
	m->shell_job = m->shell_job || t->shell_job;
}

static int hook_one(struct migration *m, size_t i, enum driver_hook hook)
{
	struct drv_tree tree = { 0 };
	struct mig_drvctx b;
	bool htype = m->drv[i]->ops->kind == DRV_HTYPE;
	int r;

	mig_drvctx_init(m, i, &b);
	if (hook != HOOK_PREPARE)
		return driver_call(m->drv[i], hook, &b.ctx);
	r = driver_prepare(m->drv[i], &b.ctx, htype ? &tree : NULL);
	if (htype && m->drv[i]->ops->prepare)
		take_tree(m, &tree);
	return r;
}

static bool hook_is_rollback(enum driver_hook hook)
{
	return hook == HOOK_MIGRATION_FAILED || hook == HOOK_TARGET_ABORT;
}

int mig_hook(struct migration *m, enum driver_hook hook)
{
	return mig_hook_kind(m, hook, -1);
}

int mig_hook_kind(struct migration *m, enum driver_hook hook, int kind)
{
	int ret = 0;

	for (size_t i = 0; i < m->nr_drv; i++) {
		size_t k = hook_is_rollback(hook) ? m->nr_drv - 1 - i : i;
		int r;

		if (kind >= 0 && m->drv[k]->ops->kind != (enum driver_kind)kind)
			continue;
		r = hook_one(m, k, hook);
		if (r < 0 && ret == 0)
			ret = r;
		/* rollback and cleanup hooks all run, whatever one of them says */
		if (r < 0 && !hook_is_rollback(hook) && !driver_hook_after_commit(hook))
			break;
	}
	return ret;
}
