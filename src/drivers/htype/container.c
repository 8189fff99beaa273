/* SPDX-License-Identifier: MIT */
/*
 * container: the process tree of a container, as the container drivers'
 * prepare steps find it (htype.h).
 */
#define LOG_PREFIX "htype: "
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/proc.h"
#include "drivers/htype/htype.h"

int htype_container_tree(const struct drv_ctx *ctx, struct drv_tree *tree, pid_t init,
			 const char *name)
{
	int r = proctree_tasks(init, &tree->pids, &tree->nr_pids, &tree->nr_procs);

	if (r < 0)
		return drv_fail(ctx, r, "cannot list the processes of container %s: %s", name,
				strerror(-r));
	tree->img_pids = calloc(tree->nr_pids, sizeof(int32_t));
	if (!tree->img_pids)
		return -ENOMEM;
	for (size_t i = 0; i < tree->nr_pids; i++) {
		pid_t v;
		r = proc_nspid(tree->pids[i], &v);
		if (r < 0)
			return drv_fail(ctx, r, "task %d of container %s: no NSpid", tree->pids[i],
					name);
		tree->img_pids[i] = v;
	}
	tree->root = init;
	tree->est_bytes = proctree_rss(tree->pids, tree->nr_procs);
	return 0;
}
