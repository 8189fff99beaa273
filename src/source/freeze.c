/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "engine: "
#include "source/freeze.h"

#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "engine/migration.h"

static void *watch(void *arg)
{
	struct freeze_watch *w = arg;
	struct migration *m = w->m;
	uint64_t t0 = now_ms();

	while (!atomic_load(&w->stop) && !proctree_seized(m->pids, m->nr_procs))
		usleep(500);
	if (atomic_load(&w->stop))
		return NULL;
	atomic_store(&w->seized_ms, now_ms());
	pr_info("the tree is frozen (seized by CRIU %llu ms after it started)",
		(unsigned long long)(atomic_load(&w->seized_ms) - t0));
	if (w->then)
		w->err = w->then(m);
	return NULL;
}

int freeze_watch_start(struct freeze_watch *w, struct migration *m,
		       int (*then)(struct migration *m))
{
	int r;

	memset(w, 0, sizeof(*w));
	w->m = m;
	w->then = then;
	atomic_store(&w->stop, false);
	r = -pthread_create(&w->thread, NULL, watch, w);
	w->running = r == 0;
	return r;
}

int freeze_watch_wait(struct freeze_watch *w)
{
	if (!w->running)
		return w->err;
	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	w->running = false;
	return w->err;
}
