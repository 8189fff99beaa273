/* SPDX-License-Identifier: MIT */
/*
 * rangeset: a sorted set of disjoint, non-adjacent [start, end) ranges of
 * page-aligned addresses, kept merged. Memory is O(runs), not O(pages).
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

/* Add [start, end); fastest when ranges come in increasing order. */
int rangeset_add(struct rangeset *s, uint64_t start, uint64_t end);
/* Add every range of @b to @a. */
int rangeset_union(struct rangeset *a, const struct rangeset *b);
/* Whether [start, end) is wholly inside the set. */
bool rangeset_covers(const struct rangeset *s, uint64_t start, uint64_t end);
/* Put into @out the parts of [start, end) that are NOT in @s (appended). */
int rangeset_missing(const struct rangeset *s, uint64_t start, uint64_t end,
		     struct rangeset *out);
uint64_t rangeset_bytes(const struct rangeset *s);
void rangeset_clear(struct rangeset *s);
void rangeset_free(struct rangeset *s);

#endif
