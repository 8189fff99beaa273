/* SPDX-License-Identifier: MIT */
#include "common/rangeset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/page.h"

static int grow(struct rangeset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 16;
	struct range *r = realloc(s->r, cap * sizeof(*r));

	if (!r)
		return -ENOMEM;
	s->r = r;
	s->cap = cap;
	return 0;
}

size_t range_after(const struct range *r, size_t nr, uint64_t addr)
{
	size_t lo = 0, hi = nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The general case: merge [start, end) with every range it touches. */
static int insert(struct rangeset *s, uint64_t start, uint64_t end)
{
	/* the first range that ends at or after start: it may touch */
	size_t i = start ? range_after(s->r, s->nr, start - 1) : 0, j;

	for (j = i; j < s->nr && s->r[j].start <= end; j++) {
		if (s->r[j].start < start)
			start = s->r[j].start;
		if (s->r[j].end > end)
			end = s->r[j].end;
	}
	if (j == i) { /* insert */
		if (s->nr == s->cap && grow(s) < 0)
			return -ENOMEM;
		memmove(&s->r[i + 1], &s->r[i], (s->nr - i) * sizeof(*s->r));
		s->nr++;
	} else if (j > i + 1) { /* ranges i..j-1 collapse into i */
		memmove(&s->r[i + 1], &s->r[j], (s->nr - j) * sizeof(*s->r));
		s->nr -= j - i - 1;
	}
	s->r[i] = (struct range){ start, end };
	return 0;
}

int rangeset_add(struct rangeset *s, uint64_t start, uint64_t end)
{
	struct range *last = s->nr ? &s->r[s->nr - 1] : NULL;

	if (start > end || (start | end) % PAGE)
		return -EINVAL;
	if (start == end)
		return 0;
	if (last && start < last->end)
		return insert(s, start, end); /* overlaps or out of order */
	if (last && start == last->end) {     /* the common append */
		last->end = end;
		return 0;
	}
	if (s->nr == s->cap && grow(s) < 0)
		return -ENOMEM;
	s->r[s->nr++] = (struct range){ start, end };
	return 0;
}

int rangeset_union(struct rangeset *a, const struct rangeset *b)
{
	for (size_t i = 0; i < b->nr; i++) {
		int r = rangeset_add(a, b->r[i].start, b->r[i].end);
		if (r < 0)
			return r;
	}
	return 0;
}

bool rangeset_contains(const struct rangeset *s, uint64_t addr)
{
	size_t i = range_after(s->r, s->nr, addr);

	return i < s->nr && s->r[i].start <= addr;
}

bool rangeset_covers(const struct rangeset *s, uint64_t start, uint64_t end)
{
	size_t i = range_after(s->r, s->nr, start);

	if (start >= end)
		return true;
	return i < s->nr && s->r[i].start <= start && s->r[i].end >= end;
}

int rangeset_missing(const struct rangeset *s, uint64_t start, uint64_t end, struct rangeset *out)
{
	uint64_t pos = start;
	int r = 0;

	for (size_t i = range_after(s->r, s->nr, start); r == 0 && i < s->nr && s->r[i].start < end;
	     i++) {
		if (s->r[i].start > pos)
			r = rangeset_add(out, pos, s->r[i].start);
		if (s->r[i].end > pos)
			pos = s->r[i].end;
	}
	if (r == 0 && pos < end)
		r = rangeset_add(out, pos, end);
	return r;
}

int rangeset_intersect(const struct rangeset *s, uint64_t start, uint64_t end, struct rangeset *out)
{
	int r = 0;

	for (size_t i = range_after(s->r, s->nr, start); r == 0 && i < s->nr && s->r[i].start < end;
	     i++)
		r = rangeset_add(out, s->r[i].start > start ? s->r[i].start : start,
				 s->r[i].end < end ? s->r[i].end : end);
	return r;
}

uint64_t rangeset_bytes(const struct rangeset *s)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->nr; i++)
		n += s->r[i].end - s->r[i].start;
	return n;
}

void rangeset_clear(struct rangeset *s)
{
	s->nr = 0;
}

void rangeset_free(struct rangeset *s)
{
	free(s->r);
	memset(s, 0, sizeof(*s));
}
