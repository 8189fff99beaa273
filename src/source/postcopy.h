/* SPDX-License-Identifier: MIT */
/*
 * postcopy: the source's half of lazy and hybrid migration. CRIU holds
 * the frozen tree at post-dump while the destination restores it with
 * its memory left out; from the moment the destination's restore starts,
 * every PageReq it sends is answered with the pages read from the frozen
 * tree (process_vm_readv), also while we wait for RestoreReady and
 * Committed. After the commit the frozen tree is the only home of the
 * pages not moved yet: we keep answering until PagesDone, then CRIU may
 * kill it. A reaper (common/reaper.h) kills it should we die first.
 *
 * Live mode uses the same wait (with no page requests): the destination
 * fills the restored tree's memory from its store after the commit, and
 * only PagesDone says the workload is whole there; without it the source
 * reports the workload lost rather than migrated.
 */
#ifndef PHAUL_POSTCOPY_H
#define PHAUL_POSTCOPY_H

#include "engine/migration.h"

/* Answer page requests from now on (sets m->on_page_req). */
int postcopy_begin(struct migration *m);
/* Committed: serve until the destination has every page. */
int postcopy_serve(struct migration *m);
void postcopy_end(struct migration *m);

#endif
