/* SPDX-License-Identifier: MIT */
#include "engine/converge.h"

#include <stdio.h>

#include "common/page.h"
#include "common/util.h"

double policy_bandwidth(const struct round_stat *r, size_t n)
{
	/* bytes over time of the last three rounds: one short round (a burst
	 * into socket buffers) neither inflates nor deflates the estimate */
	uint64_t bytes = 0, ms = 0;

	for (size_t i = n > 3 ? n - 3 : 0; i < n; i++) {
		bytes += r[i].bytes_sent;
		ms += r[i].ms;
	}
	return ms ? (double)bytes / ms : 0;
}

double policy_wire_per_page(const struct round_stat *r, size_t n)
{
	/* the same rounds as the bandwidth: zero pages and compression make
	 * a page cost fewer bytes on the wire than PAGE */
	uint64_t bytes = 0, pages = 0;

	for (size_t i = n > 3 ? n - 3 : 0; i < n; i++) {
		bytes += r[i].bytes_sent;
		pages += r[i].pages_sent;
	}
	return pages ? MIN((double)bytes / pages, (double)PAGE) : (double)PAGE;
}

static uint64_t predict(const struct policy *p, const struct round_stat *r, size_t n, double bw)
{
	double bytes = (double)r[n - 1].pages_dirty * policy_wire_per_page(r, n);

	if (bw <= 0)
		return UINT64_MAX;
	return (uint64_t)(bytes / bw) + p->fixed_ms;
}

enum policy_verdict policy_decide(const struct policy *p, const struct round_stat *r, size_t n,
				  uint64_t elapsed_ms, uint64_t *predicted_ms)
{
	const struct round_stat *last;

	*predicted_ms = UINT64_MAX;
	if (n == 0)
		return POLICY_CONTINUE;
	last = &r[n - 1];
	*predicted_ms = predict(p, r, n, policy_bandwidth(r, n));
	if (last->pages_dirty <= POLICY_SMALL_PAGES)
		return POLICY_SMALL;
	if (*predicted_ms <= p->downtime_ms)
		return POLICY_CONVERGED;
	if (n >= 2 && last->pages_dirty * 10 > r[n - 2].pages_dirty * 11)
		return POLICY_NOT_SHRINKING;
	if (p->max_iters && n >= p->max_iters)
		return POLICY_MAX_ITERS;
	if (p->max_time_ms && elapsed_ms >= p->max_time_ms)
		return POLICY_MAX_TIME;
	return POLICY_CONTINUE;
}

const char *policy_verdict_name(enum policy_verdict v)
{
	switch (v) {
	case POLICY_CONTINUE: return "continue";
	case POLICY_CONVERGED: return "converged";
	case POLICY_SMALL: return "dirty set small";
	case POLICY_NOT_SHRINKING: return "dirty set not shrinking";
	case POLICY_MAX_ITERS: return "max iterations";
	case POLICY_MAX_TIME: return "max time";
	case POLICY_OUTPACED: return "writes outpace the link";
	}
	return "?";
}

enum policy_verdict policy_auto_verdict(enum policy_verdict v, const struct round_stat *r, size_t n)
{
	const struct round_stat *last;
	double dirtied;

	if (v != POLICY_CONTINUE || n == 0)
		return v;
	last = &r[n - 1];
	/* wire bytes the round's writes will cost against the bytes it sent
	 * in the same time: the rate of each, compared without dividing.
	 * Above 3/4, each round shaves less than a quarter off the dirty set:
	 * the downtime target is more than --max-iters rounds away. */
	dirtied = (double)last->pages_dirty * policy_wire_per_page(r, n);
	if (last->bytes_sent && dirtied * 4 >= (double)last->bytes_sent * 3)
		return POLICY_OUTPACED;
	return v;
}

enum mig_mode policy_pick_mode(const struct policy *p, enum policy_verdict v, uint64_t predicted_ms,
			       char *why, size_t len)
{
	if (v == POLICY_SMALL || v == POLICY_CONVERGED ||
	    (predicted_ms != UINT64_MAX && predicted_ms <= p->downtime_ms)) {
		snprintf(why, len, "%s: the last dirty pages move while frozen (~%llu ms)",
			 policy_verdict_name(v), (unsigned long long)predicted_ms);
		return MODE_LIVE;
	}
	if (predicted_ms == UINT64_MAX)
		snprintf(why, len, "%s, link rate unknown: the dirty pages follow after the commit",
			 policy_verdict_name(v));
	else
		snprintf(why, len,
			 "%s: the dirty pages would keep it frozen ~%llu ms (target %llu): "
			 "they follow after the commit",
			 policy_verdict_name(v), (unsigned long long)predicted_ms,
			 (unsigned long long)p->downtime_ms);
	return MODE_HYBRID;
}
