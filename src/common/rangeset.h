/* SPDX-License-Identifier: MIT */
/*
 * rangeset: a set of pages, kept as sorted, disjoint, never adjacent
 * [start, end) ranges of page-aligned addresses (merged as they come).
 * Memory is O(runs), not O(pages). Adding in increasing address order, as
 * the trackers and the page stream do, is O(1); adding elsewhere is a
 * binary search and a move of the ranges after it. Iterate over r[0..nr).
 *
 * range_after() is the one lower-bound search over any sorted array of
 * disjoint ranges (a set's, a round's runs, a process's mappings).
 */
#ifndef PHAUL_RANGESET_H
#define PHAUL_RANGESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct range {
	uint64_t start;
	uint64_t end;
};

struct rangeset {
	struct range *r;
	size_t nr;
	size_t cap;
};

/* Index of the first of @r[0..nr) (sorted, disjoint) that ends after
 * @addr; @nr if none does. */
size_t range_after(const struct range *r, size_t nr, uint64_t addr);

/* Add [start, end), merging it with the ranges it overlaps or touches.
 * Empty is a no-op; -EINVAL if start > end or either is not page-aligned. */
int rangeset_add(struct rangeset *s, uint64_t start, uint64_t end);
/* Add every range of @b to @a. */
int rangeset_union(struct rangeset *a, const struct rangeset *b);
/* Whether the byte at @addr is in the set. */
bool rangeset_contains(const struct rangeset *s, uint64_t addr);
/* Whether [start, end) is wholly inside the set (true when empty). */
bool rangeset_covers(const struct rangeset *s, uint64_t start, uint64_t end);
/* Add to @out the parts of [start, end) that are NOT in @s. */
int rangeset_missing(const struct rangeset *s, uint64_t start, uint64_t end, struct rangeset *out);
/* Add to @out the parts of [start, end) that ARE in @s. */
int rangeset_intersect(const struct rangeset *s, uint64_t start, uint64_t end,
		       struct rangeset *out);
/* Bytes in the set: O(nr). */
uint64_t rangeset_bytes(const struct rangeset *s);
/* Empty the set, keep its memory. */
void rangeset_clear(struct rangeset *s);
void rangeset_free(struct rangeset *s);

#endif
