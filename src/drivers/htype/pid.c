/* SPDX-License-Identifier: MIT */
/*
 * pid: the workload is the process tree rooted at a PID, restored into
 * the destination host's namespaces with the same PIDs.
 */
#define LOG_PREFIX "pid: "
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "drivers/htype/htype.h"
#include "common/proc.h"

struct pid_priv {
	pid_t root;
};

static int pid_init(struct driver *d, const char *arg)
{
	struct pid_priv *p = d->priv;
	uint64_t v;

	if (!*arg)
		return 0; /* destination side: the tree comes from the peer */
	if (parse_u64(arg, 1, (1 << 22), &v) < 0) {
		pr_err("'%s' is not a PID", arg);
		return -EINVAL;
	}
	p->root = v;
	return 0;
}

/*
 * CRIU dumps a SysV shared memory segment only with the IPC namespace it
 * belongs to, and a tree in phaul's own namespace takes none along: its
 * dump would fail after the pre-copy ("SysVIPC shmem map ... doesn't live
 * in IPC ns").  PostgreSQL's postmaster always maps one.
 */
static int check_sysv_shm(const struct drv_ctx *ctx, const struct drv_tree *tree)
{
	if (ctx->mode == MODE_RESTART)
		return 0; /* no CRIU: a new process there */
	for (size_t i = 0; i < tree->nr_procs; i++) {
		unsigned long key;
		char comm[32];

		if (proc_host_sysv_shm(tree->pids[i], &key) != 1)
			continue;
		proc_comm(tree->pids[i], comm, sizeof(comm));
		return drv_fail(
			ctx, -ENOTSUP,
			"process %d (%s) maps SysV shared memory (key 0x%08lx) of the host's "
			"IPC namespace, which CRIU cannot take along: run the application in "
			"an IPC namespace of its own (unshare --ipc, systemd PrivateIPC=yes)",
			tree->pids[i], comm, key);
	}
	return 0;
}

static int pid_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	struct pid_priv *p = d->priv;
	int r;

	if (p->root == getpid() || p->root == 1)
		return drv_fail(ctx, -EINVAL, "refusing to migrate PID %d", p->root);
	r = proctree_tasks(p->root, &tree->pids, &tree->nr_pids, &tree->nr_procs);
	if (r == -ESRCH)
		return drv_fail(ctx, r, "no process with PID %d", p->root);
	if (r < 0)
		return drv_fail(ctx, r, "cannot list the tree of PID %d: %s", p->root,
				strerror(-r));
	for (size_t i = 0; i < tree->nr_pids; i++)
		if (tree->pids[i] == getpid())
			return drv_fail(ctx, -EINVAL, "PID %d is phaul's own ancestor", p->root);
	r = check_sysv_shm(ctx, tree);
	if (r < 0)
		return r;
	tree->root = p->root;
	tree->est_bytes = proctree_rss(tree->pids, tree->nr_procs);
	if (proc_has_tty(p->root)) {
		pr_info("PID %d has a controlling terminal: dumping as a shell job", p->root);
		tree->shell_job = true;
	}
	pr_info("tree of PID %d: %zu processes, %zu tasks, %llu MiB resident", p->root,
		tree->nr_procs, tree->nr_pids, (unsigned long long)(tree->est_bytes >> 20));
	return 0;
}

static int pid_dump_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o)
{
	struct pid_priv *p = d->priv;

	o->has_pid = true;
	o->pid = p->root;
	return 0;
}

/* Every PID of the tree must be free here, or CRIU's restore fails late. */
static int pid_target_check(struct driver *d, const struct drv_ctx *ctx)
{
	if (ctx->mode == MODE_RESTART)
		return 0; /* a new process, a new PID */
	for (size_t i = 0; i < ctx->tree->nr_pids; i++) {
		pid_t pid = ctx->tree->pids[i];
		char comm[32];

		if (kill(pid, 0) == 0 || errno != ESRCH) {
			proc_comm(pid, comm, sizeof(comm));
			return drv_fail(ctx, -EEXIST,
					"PID %d is taken on the destination (by '%s')", pid, comm);
		}
	}
	return 0;
}

static int pid_migration_complete(struct driver *d, const struct drv_ctx *ctx)
{
	struct pid_priv *p = d->priv;

	/* CRIU killed the frozen tree when we acknowledged post-dump. */
	if (proc_alive(p->root))
		pr_warn("PID %d still runs on the source after the commit", p->root);
	return 0;
}

const struct driver_ops htype_pid_ops = {
	.name = "pid",
	.kind = DRV_HTYPE,
	.priv_size = sizeof(struct pid_priv),
	.init = pid_init,
	.prepare = pid_prepare,
	.hooks = {
		[HOOK_TARGET_CHECK] = pid_target_check,
		[HOOK_MIGRATION_COMPLETE] = pid_migration_complete,
	},
	.dump_opts = pid_dump_opts,
};
