/* SPDX-License-Identifier: MIT */
/*
 * source/indoubt: the link broke after the source sent Commit, so the
 * source does not know what the destination did. It keeps the tree
 * frozen and asks the destination's daemon, on new connections, for the
 * session's record (target/outcome.c) until --recover-timeout runs out.
 */
#ifndef PHAUL_SOURCE_INDOUBT_H
#define PHAUL_SOURCE_INDOUBT_H

#include "engine/migration.h"

/* The link broke after Commit was sent: ask the destination's decision. */
enum mig_outcome source_resolve(struct migration *m);
/*
 * The link broke during the memory fill after the commit (live mode, a
 * streamed stop), which needs nothing from the source: 0 the destination
 * filled the memory, -ENOENT it lost it, -EINPROGRESS not known (no
 * answer in time, or a daemon that does not record the fill).
 */
int source_await_fill(struct migration *m);

#endif
