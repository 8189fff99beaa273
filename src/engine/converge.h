/* SPDX-License-Identifier: MIT */
/*
 * converge (the convergence policy): when live pre-copy stops copying and freezes the workload.
 * A pure function of the rounds measured so far (unit-tested with
 * synthetic traces). After each round it looks at the pages dirtied
 * during that round, which the next step would have to send:
 *
 *   converged      predicted frozen time = dirty bytes / bandwidth +
 *                  fixed costs <= the downtime target (QEMU's rule);
 *                  bytes on the wire: dirty pages x the wire bytes a page
 *                  cost in the last rounds (zero pages, compression)
 *   small          64 dirty pages or fewer (p.haul's rule)
 *   not shrinking  the dirty set grew by more than 10 % (p.haul's rule)
 *   max iters      --max-iters rounds done
 *   max time       --max-time spent in rounds
 *
 * `--mode auto` (hybrid on the wire) adds one rule and a choice:
 *
 *   outpaced       the last round dirtied at least 3/4 of the bytes it
 *                  sent: the workload writes nearly as fast as the link
 *                  carries, more rounds barely shrink the dirty set
 *   the choice     when the rounds stop, live if what is still dirty
 *                  moves within the downtime target while frozen, else
 *                  hybrid: those pages follow after the commit
 */
#ifndef PHAUL_CONVERGE_H
#define PHAUL_CONVERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/mode.h"

struct policy {
	uint64_t downtime_ms;	/* --downtime-ms, default 300 */
	unsigned int max_iters; /* --max-iters, default 8 */
	uint64_t max_time_ms;	/* --max-time, 0 = none */
	uint64_t fixed_ms;	/* measured or estimated fixed frozen cost */
};

struct round_stat {
	uint64_t pages_scanned;
	uint64_t pages_dirty; /* written during this round: next round's work */
	uint64_t pages_sent;
	uint64_t bytes_sent;
	uint64_t ms; /* duration of the round */
	bool frozen; /* sent while the workload was frozen */
};

enum policy_verdict {
	POLICY_CONTINUE,
	POLICY_CONVERGED,
	POLICY_SMALL,
	POLICY_NOT_SHRINKING,
	POLICY_MAX_ITERS,
	POLICY_MAX_TIME,
	POLICY_OUTPACED, /* --mode auto only */
};

#define POLICY_SMALL_PAGES 64
#define POLICY_DEFAULT_DOWNTIME_MS 300
#define POLICY_DEFAULT_MAX_ITERS 8

/*
 * Decide after @n rounds (@r[0..n-1]), @elapsed_ms into pre-copy.
 * *predicted_ms gets the predicted frozen time if we stopped now.
 */
enum policy_verdict policy_decide(const struct policy *p, const struct round_stat *r, size_t n,
				  uint64_t elapsed_ms, uint64_t *predicted_ms);
/* Bytes per millisecond the link showed in the last rounds (0: unknown). */
double policy_bandwidth(const struct round_stat *r, size_t n);
/* Wire bytes a sent page cost in the last rounds (PAGE at most; PAGE
 * when none was sent). */
double policy_wire_per_page(const struct round_stat *r, size_t n);
const char *policy_verdict_name(enum policy_verdict v);

/* --mode auto: whether the last of @n rounds dirtied at least 3/4 of the
 * wire bytes it sent (POLICY_OUTPACED), else @v unchanged. */
enum policy_verdict
policy_auto_verdict(enum policy_verdict v, const struct round_stat *r, size_t n);
/*
 * --mode auto, once the rounds stopped with @v and a predicted frozen time
 * of @predicted_ms: MODE_LIVE or MODE_HYBRID. @why (@len bytes) gets one
 * line saying why, for the summary.
 */
enum mig_mode policy_pick_mode(const struct policy *p, enum policy_verdict v, uint64_t predicted_ms,
			       char *why, size_t len);

#endif
