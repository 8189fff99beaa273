/* SPDX-License-Identifier: MIT */
/*
 * mode: how a migration moves memory, as both sides and the drivers see
 * it. On the wire (Preflight.mode) and on the command line a mode is its
 * name; everywhere else it is this enum.
 *
 *   stop     everything is dumped and moved while the tree is frozen
 *   live     pre-copy rounds while it runs, the rest while frozen
 *   lazy     nothing before the restore: memory follows (post-copy)
 *   hybrid   pre-copy rounds, then post-copy for what is still dirty
 *   restart  no CRIU: stop the workload, start it again over there
 */
#ifndef PHAUL_MODE_H
#define PHAUL_MODE_H

#include <stdbool.h>

enum mig_mode { MODE_STOP, MODE_LIVE, MODE_LAZY, MODE_HYBRID, MODE_RESTART, MODE__MAX };

/* The mode named @name (NULL: none), or -EINVAL. */
int mode_parse(const char *name);
const char *mode_name(enum mig_mode mode);

bool mode_has_rounds(enum mig_mode mode); /* live, hybrid */
bool mode_lazy_dump(enum mig_mode mode);  /* CRIU leaves memory to us */
bool mode_postcopy(enum mig_mode mode);	  /* pages move after the commit */

#endif
