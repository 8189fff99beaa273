/* SPDX-License-Identifier: MIT */
/*
 * source internals: the steps of `phaul migrate` split across files.
 */
#ifndef PHAUL_SOURCE_H
#define PHAUL_SOURCE_H

#include "engine/migration.h"

/*
 * TLS connection plus Hello (with @resume: an outcome query, or with
 * PHAUL_FEAT_PAGES_RESUME in @features, reattaching a post-copy session).
 * The connection it replaces is closed and its bytes counted.
 */
int source_connect(struct migration *m, const uint8_t *resume, uint64_t features);
/* Freeze, dump, move the images, restore there, commit or roll back. */
int source_final_dump(struct migration *m);
struct criu;
/* After post-dump: images out, restore there, commit. 0 = committed. */
int source_switch_over(struct migration *m, struct criu *c);
/* The link broke after Commit was sent: ask the destination's decision. */
enum mig_outcome source_resolve(struct migration *m);
/* After sending Commit (or Restart) with result @r: wait for Committed,
 * resolve a broken link; sets m->outcome. 0 = committed. */
int source_await_committed(struct migration *m, int r);

#endif
