/* SPDX-License-Identifier: MIT */
/*
 * migrate: the source side's entry points, `phaul migrate` and `phaul
 * check` (source/source.h has the source's internals).
 */
#ifndef PHAUL_MIGRATE_H
#define PHAUL_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/migration.h"

/* The source side: `phaul migrate`. 0 only when committed. */
int migrate_source(struct migration *m);

/* `phaul check`: what would block a migration, on each side. */
struct check_report {
	bool reached;		     /* connected and authenticated */
	uint32_t criu_src, criu_dst; /* CRIU versions, 0 if unknown */
	char src[1024], dst[1024];   /* problems, "; "-separated; "" none */
};
/*
 * The preflight of a migration of m->opts->htype ("pid" alone: no tree)
 * on both sides, every check run, nothing frozen, nothing left behind.
 * 0 nothing blocks, -EAGAIN something does (see @rep).
 */
int migrate_check(struct migration *m, struct check_report *rep);

/* Free a source's migration: its pre-copy and post-copy state, then
 * everything mig_free frees. */
void migrate_free(struct migration *m);

#endif
