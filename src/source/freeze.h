/* SPDX-License-Identifier: MIT */
/*
 * freeze: when the frozen time really starts. The final dump starts CRIU,
 * which first starts up (exec, its own checks) and only then seizes the
 * tree: until then the workload runs. A thread watches the tree's threads
 * and notes when all of them are in a tracing stop; that is the start of
 * the frozen time phaul reports. From then on nothing in the tree writes,
 * so in live mode the same thread sends the final pages (in stop mode
 * that streams, all of them) while CRIU is still dumping
 * (precopy_send_frozen), off the rest of the frozen path.
 */
#ifndef PHAUL_FREEZE_H
#define PHAUL_FREEZE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct migration;

struct freeze_watch {
	pthread_t thread;
	bool running;
	atomic_bool stop;
	struct migration *m;
	int (*then)(struct migration *m); /* run once seized, or NULL */
	_Atomic uint64_t seized_ms;	  /* 0: not seen (yet) */
	int err;			  /* @then's */
};

int freeze_watch_start(struct freeze_watch *w, struct migration *m,
		       int (*then)(struct migration *m));
/* Stop watching and wait; @then's error. Safe to call twice, or unstarted. */
int freeze_watch_wait(struct freeze_watch *w);

#endif
