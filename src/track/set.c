/* SPDX-License-Identifier: MIT */
/* track_set: a sorted, merged, growable set of page ranges. */
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int set_grow(struct track_set *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct track_range *r;

	r = realloc(s->r, cap * sizeof(*r));
	if (!r)
		return -ENOMEM;
	s->r = r;
	s->cap = cap;
	return 0;
}

/* First range whose end is >= @addr (so it touches or follows @addr). */
static size_t set_lower(const struct track_set *s, uint64_t addr)
{
	size_t lo = 0, hi = s->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->r[mid].end < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void set_recount(struct track_set *s)
{
	s->pages = 0;
	for (size_t i = 0; i < s->nr; i++)
		s->pages += (s->r[i].end - s->r[i].start) / TRACK_PAGE;
}

/* General case: merge [start, end) with every range it touches. */
static int set_insert(struct track_set *s, uint64_t start, uint64_t end)
{
	size_t i = set_lower(s, start), j = i;
	int r;

	while (j < s->nr && s->r[j].start <= end) {
		start = MIN(start, s->r[j].start);
		end = MAX(end, s->r[j].end);
		j++;
	}
	if (i == j && s->nr == s->cap && (r = set_grow(s)) < 0)
		return r;
	if (i == j)
		memmove(&s->r[i + 1], &s->r[i], (s->nr++ - i) * sizeof(s->r[0]));
	else if (j > i + 1) {
		memmove(&s->r[i + 1], &s->r[j], (s->nr - j) * sizeof(s->r[0]));
		s->nr -= j - i - 1;
	}
	s->r[i] = (struct track_range){ start, end };
	set_recount(s);
	return 0;
}

int track_set_add(struct track_set *s, uint64_t start, uint64_t end)
{
	struct track_range *last = s->nr ? &s->r[s->nr - 1] : NULL;
	int r;

	if (start >= end || (start | end) % TRACK_PAGE)
		return -EINVAL;
	if (last && start < last->end)
		return set_insert(s, start, end); /* overlaps or out of order */
	if (last && start == last->end) {
		last->end = end;
	} else {
		if (s->nr == s->cap && (r = set_grow(s)) < 0)
			return r;
		s->r[s->nr++] = (struct track_range){ start, end };
	}
	s->pages += (end - start) / TRACK_PAGE;
	return 0;
}

bool track_set_contains(const struct track_set *s, uint64_t addr)
{
	size_t i = set_lower(s, addr + 1);

	return i < s->nr && s->r[i].start <= addr && addr < s->r[i].end;
}

void track_set_reset(struct track_set *s)
{
	s->nr = 0;
	s->pages = 0;
}

void track_set_free(struct track_set *s)
{
	if (!s)
		return;
	free(s->r);
	*s = (struct track_set){ 0 };
}
