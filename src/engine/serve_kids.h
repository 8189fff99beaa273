/* SPDX-License-Identifier: MIT */
/*
 * serve_kids: the children of `phaul serve`. A migration session per
 * accepted connection (at most --max-parallel), one short-lived "busy"
 * answer per connection beyond that (at most BUSY_MAX at once, more are
 * closed unread). Every child leads its own process group, ignores
 * SIGTERM/SIGINT, dies with the daemon (PDEATHSIG) until its commit, and
 * has the read end of the shutdown pipe as its TLS cancel fd.
 *
 * When a session process is reaped after a signal, its directory is
 * removed only once its process group (its CRIU, rolling back) is gone:
 * waited for 5 s, then killed unless it had committed (BUG-6 in
 * docs/RELIABILITY.md).
 */
#ifndef PHAUL_SERVE_KIDS_H
#define PHAUL_SERVE_KIDS_H

#include <sys/types.h>

#include "engine/migration.h"

#define BUSY_MAX 4

/* The daemon's children: migration sessions, and "busy" answers. */
struct kids {
	unsigned int nr;		/* sessions */
	pid_t busy[BUSY_MAX];		/* processes answering EBUSY, or 0 */
	int stop_rd, stop_wr;		/* shutdown pipe */
};

/* Run a session for accepted @fd (closed here) in a new child. */
void kids_spawn(int fd, const struct serve_opts *o, int lfd, struct kids *k);
/* Answer accepted @fd "busy" from a new child, or close it. */
void kids_refuse(int fd, const struct serve_opts *o, int lfd, struct kids *k);
/* Reap ended children without waiting; clean up after killed sessions. */
void kids_reap(const char *workdir, struct kids *k);
unsigned int kids_nr_busy(const struct kids *k);

#endif
