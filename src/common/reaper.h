/* SPDX-License-Identifier: MIT */
/*
 * reaper: a small watchdog process that SIGKILLs a list of processes if
 * the process that armed it dies before disarming it.
 *
 * After the commit of a migration, one copy of the workload may still
 * depend on the phaul process that finishes the job: post-copy's frozen
 * source tree holds the pages the destination has not fetched yet, and a
 * restored tree whose memory is still being filled runs with holes if
 * its page server dies. A stopped source tree nobody will ever resume, or
 * a destination tree with zero-filled pages, is worse than none: the
 * reaper removes it and the failure is reported as a lost workload.
 *
 * The reaper waits on a pipe only its parent can write: end of file (the
 * parent died, however) kills; a byte (disarm) does not. It keeps no
 * other fd of its parent, so it never holds a connection open.
 */
#ifndef PHAUL_REAPER_H
#define PHAUL_REAPER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct reaper {
	pid_t pid; /* 0: not armed */
	int fd;	   /* our end of its pipe */
};

#define REAPER_INIT                \
	{                          \
		.pid = 0, .fd = -1 \
	}

int reaper_arm(struct reaper *rp, const int32_t *pids, size_t nr);
/* Let the processes live on; waits for the reaper. Safe to call twice. */
void reaper_disarm(struct reaper *rp);

#endif
