/* SPDX-License-Identifier: MIT */
/*
 * precopy: live mode's rounds on the source. While the workload runs,
 * each round asks the dirty-page trackers (src/track) which pages every
 * process wrote since the last round and streams them (PageRun + data)
 * to the destination's page store, until the convergence policy says
 * stop. At CRIU's post-dump (frozen, dumped with lazy pages: CRIU wrote
 * no anonymous memory), precopy_final() sends what is still missing
 * there: pages written since the last round, and pages of CRIU's lazy
 * runs that never went out (new processes, new mappings).
 */
#ifndef PHAUL_PRECOPY_H
#define PHAUL_PRECOPY_H

#include "engine/migration.h"
#include "engine/converge.h"

struct precopy;
struct cow_set;

int precopy_start(struct migration *m, const struct policy *pol);
/*
 * Stop mode that streams (m->stream): no rounds and no trackers; the
 * frozen round (precopy_send_frozen) sends every populated page of the
 * tree, precopy_final() the rest of CRIU's lazy runs.
 */
int precopy_stream_start(struct migration *m);
/* Rounds until the policy stops them (or a failure). */
int precopy_rounds(struct migration *m);
/*
 * CRIU has seized the whole tree (freeze.h's thread calls this while CRIU
 * dumps): collect what was written since the last round. Live mode sends
 * it, as a frozen round of its own; precopy_final() adds the rest. Hybrid
 * mode sends nothing: it stays pending, for post-copy. Stop mode that
 * streams sends every populated page (track_populated()).
 */
int precopy_send_frozen(struct migration *m);
/* While frozen: the final pages, read from the frozen tree. */
int precopy_final(struct migration *m);
/*
 * Hybrid, while frozen: no pages; the destination learns which of those
 * it holds are stale (PageDrop) and fetches them, with the ones it never
 * got, after the restore (post-copy).
 */
int precopy_final_lazy(struct migration *m);
/*
 * Live, lazy, hybrid, while frozen: the pages of @cs (cow.h) are restored
 * with the tree. Sends those the destination lacks or holds stale, as a
 * frozen round (lazy mode: all of them), then PageShared for each run;
 * hybrid's pending sets lose them (sent, not dropped). Nothing without
 * a destination that takes PageShared.
 */
int precopy_send_shared(struct migration *m, const struct cow_set *cs);
/*
 * Lazy mode, before the freeze: the shared memory objects the tree maps
 * go ahead, once (CRIU restores shared memory with the tree, never
 * lazily): then only what changes since crosses while frozen. Nothing
 * if there are none, or the destination does not take them.
 */
int precopy_shm_ahead(struct migration *m);
/*
 * While frozen, after the dump: the shared memory's last pass, if the
 * freeze's thread did not make it (precopy_send_frozen()).
 */
int precopy_shm_final(struct migration *m);
/*
 * Before the final dump: the shared memory objects pre-copied so far, in
 * @path for CRIU_SHMEM_IN_PARENT (source/shmem.h). 1 if there are any
 * (CRIU must be told), 0 if none.
 */
int precopy_shmem_list(struct migration *m, const char *path);
/* Stop tracking; leaves nothing in the workload. Safe to call twice. */
void precopy_stop(struct migration *m);
void precopy_free(struct migration *m);

#endif
