/* SPDX-License-Identifier: MIT */
/*
 * drvctx: the engine's side of the driver interface (drivers/driver.h).
 * A driver sees a migration only through the struct drv_ctx built here
 * for each call: facts copied out of struct migration, and the engine's
 * services (failure, the driver's message channel, CRIU fds, in-place
 * files, ...) as callbacks on it. mig_hook() (declared in migration.h)
 * runs the hooks here; what prepare returns (the tree) is taken into
 * struct migration (m->root_pid, m->pids, ...).
 */
#ifndef PHAUL_DRVCTX_H
#define PHAUL_DRVCTX_H

#include <stddef.h>

#include "drivers/driver.h"

struct migration;

/* A context and what it points to, for one call. */
struct mig_drvctx {
	struct drv_ctx ctx;
	struct drv_tree tree;
	struct drv_opts opts;
};

/* The context of m->drv[@i]. */
void mig_drvctx_init(struct migration *m, size_t i, struct mig_drvctx *b);

#endif
