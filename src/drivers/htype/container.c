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
#include "engine/migration.h"

int htype_container_tree(struct migration *m, pid_t init, const char *name)
{
	int r = proctree_tasks(init, &m->pids, &m->nr_pids, &m->nr_procs);

	if (r < 0)
		return mig_fail(m, r, "cannot list the processes of container %s: %s", name,
				strerror(-r));
	m->img_pids = calloc(m->nr_pids, sizeof(int32_t));
	if (!m->img_pids)
		return -ENOMEM;
	for (size_t i = 0; i < m->nr_pids; i++) {
		pid_t v;
		r = proc_nspid(m->pids[i], &v);
		if (r < 0)
			return mig_fail(m, r, "task %d of container %s: no NSpid", m->pids[i],
					name);
		m->img_pids[i] = v;
	}
	m->root_pid = init;
	m->est_bytes = proctree_rss(m->pids, m->nr_procs);
	return 0;
}
