/* SPDX-License-Identifier: MIT */
/*
 * test_rangeset: the one set of page ranges (common/rangeset.h) used by the
 * trackers, the pre-copy sender, the page store and post-copy, every
 * operation at its edges, then against a bitmap model.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/page.h"
#include "common/rangeset.h"

#define P PAGE
/* The highest page-aligned address: [TOP, 2^64) cannot be a [start, end). */
#define TOP (UINT64_MAX - P + 1)

/* @s is exactly the ranges @want (in pages: start, end, start, end...). */
static void assert_ranges(const struct rangeset *s, const uint64_t *want, size_t n)
{
	assert_int_equal(s->nr, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->r[i].start, want[2 * i] * P);
		assert_int_equal(s->r[i].end, want[2 * i + 1] * P);
	}
}

/* Sorted, disjoint, never adjacent, never empty. */
static void assert_canonical(const struct rangeset *s)
{
	assert_true(s->nr <= s->cap);
	for (size_t i = 0; i < s->nr; i++) {
		assert_true(s->r[i].start < s->r[i].end);
		assert_true(i == 0 || s->r[i - 1].end < s->r[i].start);
	}
}

static void add_merges_and_sorts(void **st)
{
	struct rangeset s = { 0 };

	assert_int_equal(rangeset_add(&s, 10 * P, 12 * P), 0);
	assert_int_equal(rangeset_add(&s, 1 * P, 2 * P), 0);   /* before: sorted */
	assert_int_equal(rangeset_add(&s, 12 * P, 13 * P), 0); /* adjacent after: merged */
	assert_int_equal(rangeset_add(&s, 5 * P, 6 * P), 0);
	assert_int_equal(rangeset_add(&s, 4 * P, 5 * P), 0); /* adjacent before: merged */
	assert_ranges(&s, (uint64_t[]){ 1, 2, 4, 6, 10, 13 }, 3);
	assert_int_equal(rangeset_add(&s, 2 * P, 10 * P), 0); /* bridges everything */
	assert_ranges(&s, (uint64_t[]){ 1, 13 }, 1);
	assert_int_equal(rangeset_add(&s, 3 * P, 4 * P), 0);  /* inside */
	assert_int_equal(rangeset_add(&s, 1 * P, 13 * P), 0); /* equal */
	assert_ranges(&s, (uint64_t[]){ 1, 13 }, 1);
	assert_int_equal(rangeset_bytes(&s), 12 * P);
	rangeset_free(&s);
}

static void add_overlapping(void **st)
{
	struct rangeset s = { 0 };

	rangeset_add(&s, 10 * P, 20 * P);
	rangeset_add(&s, 30 * P, 40 * P);
	rangeset_add(&s, 50 * P, 60 * P);
	rangeset_add(&s, 8 * P, 12 * P);  /* over the left edge */
	rangeset_add(&s, 38 * P, 42 * P); /* over the right edge */
	assert_ranges(&s, (uint64_t[]){ 8, 20, 30, 42, 50, 60 }, 3);
	rangeset_add(&s, 20 * P, 30 * P); /* fills a gap exactly: two become one */
	assert_ranges(&s, (uint64_t[]){ 8, 42, 50, 60 }, 2);
	rangeset_add(&s, 0, 100 * P); /* a superset swallows them all */
	assert_ranges(&s, (uint64_t[]){ 0, 100 }, 1);
	rangeset_add(&s, 99 * P, 101 * P); /* overlaps the last: appends merge too */
	assert_ranges(&s, (uint64_t[]){ 0, 101 }, 1);
	rangeset_free(&s);
}

static void add_rejects_and_empty(void **st)
{
	struct rangeset s = { 0 };

	assert_int_equal(rangeset_add(&s, 7 * P, 7 * P), 0); /* empty, empty set */
	assert_int_equal(s.nr, 0);
	assert_int_equal(rangeset_add(&s, 2 * P, 4 * P), 0);
	assert_int_equal(rangeset_add(&s, 3 * P, 3 * P), 0);	       /* empty, inside */
	assert_int_equal(rangeset_add(&s, 9 * P, 9 * P), 0);	       /* empty, after */
	assert_int_equal(rangeset_add(&s, 4 * P, 2 * P), -EINVAL);     /* backwards */
	assert_int_equal(rangeset_add(&s, P + 1, 2 * P), -EINVAL);     /* unaligned start */
	assert_int_equal(rangeset_add(&s, 4 * P, 5 * P - 1), -EINVAL); /* unaligned end */
	assert_int_equal(rangeset_add(&s, 0x1001, 0x1001), -EINVAL);
	assert_ranges(&s, (uint64_t[]){ 2, 4 }, 1);
	rangeset_free(&s);
	assert_null(s.r);
	assert_int_equal(s.nr + s.cap, 0);
}

/* Many runs appended in order (the trackers' way), then collapsed. */
static void add_many(void **st)
{
	struct rangeset s = { 0 };

	for (uint64_t a = 0x100000; a < 0x100000 + 1000 * 2 * P; a += 2 * P)
		assert_int_equal(rangeset_add(&s, a, a + P), 0);
	assert_int_equal(s.nr, 1000);
	assert_int_equal(rangeset_bytes(&s), 1000 * P);
	assert_canonical(&s);
	/* out of order, one in each gap from the end: each an insert */
	for (uint64_t a = 0x100000 + 999 * 2 * P; a > 0x100000; a -= 2 * P)
		assert_int_equal(rangeset_add(&s, a - P, a), 0);
	assert_ranges(&s, (uint64_t[]){ 0x100, 0x100 + 1999 }, 1);
	rangeset_free(&s);
}

static void contains(void **st)
{
	struct rangeset s = { 0 };

	assert_false(rangeset_contains(&s, 0));
	rangeset_add(&s, 0, P);
	rangeset_add(&s, 5 * P, 6 * P);
	assert_true(rangeset_contains(&s, 0));
	assert_true(rangeset_contains(&s, P - 1));
	assert_false(rangeset_contains(&s, P)); /* end is outside */
	assert_false(rangeset_contains(&s, 5 * P - 1));
	assert_true(rangeset_contains(&s, 5 * P));
	assert_true(rangeset_contains(&s, 6 * P - 1));
	assert_false(rangeset_contains(&s, 6 * P));
	assert_false(rangeset_contains(&s, UINT64_MAX));
	rangeset_free(&s);
}

static void covers(void **st)
{
	struct rangeset s = { 0 };

	assert_true(rangeset_covers(&s, 3 * P, 3 * P)); /* empty: always */
	assert_false(rangeset_covers(&s, 0, P));
	rangeset_add(&s, 2 * P, 4 * P);
	rangeset_add(&s, 6 * P, 9 * P);
	assert_true(rangeset_covers(&s, 2 * P, 4 * P));	 /* exactly */
	assert_true(rangeset_covers(&s, 7 * P, 8 * P));	 /* inside */
	assert_true(rangeset_covers(&s, 5 * P, 5 * P));	 /* empty, in a gap */
	assert_false(rangeset_covers(&s, 3 * P, 7 * P)); /* across a gap */
	assert_false(rangeset_covers(&s, 2 * P, 5 * P)); /* past the end */
	assert_false(rangeset_covers(&s, P, 3 * P));	 /* before the start */
	assert_false(rangeset_covers(&s, 0, P));
	assert_false(rangeset_covers(&s, 9 * P, 10 * P)); /* adjacent after */
	rangeset_free(&s);
}

static void missing(void **st)
{
	struct rangeset s = { 0 }, miss = { 0 };

	assert_int_equal(rangeset_missing(&s, P, 3 * P, &miss), 0); /* empty set: all */
	assert_ranges(&miss, (uint64_t[]){ 1, 3 }, 1);
	rangeset_clear(&miss);
	rangeset_add(&s, 2 * P, 4 * P);
	rangeset_add(&s, 6 * P, 9 * P);
	assert_int_equal(rangeset_missing(&s, 0, 12 * P, &miss), 0);
	assert_ranges(&miss, (uint64_t[]){ 0, 2, 4, 6, 9, 12 }, 3);
	rangeset_clear(&miss);
	assert_int_equal(rangeset_missing(&s, 7 * P, 8 * P, &miss), 0); /* covered */
	assert_int_equal(rangeset_missing(&s, 5 * P, 5 * P, &miss), 0); /* empty */
	assert_int_equal(miss.nr, 0);
	/* from inside a range to inside the next; appended to what @out holds */
	rangeset_add(&miss, 20 * P, 21 * P);
	assert_int_equal(rangeset_missing(&s, 3 * P, 7 * P, &miss), 0);
	assert_ranges(&miss, (uint64_t[]){ 4, 6, 20, 21 }, 2);
	rangeset_clear(&miss);
	assert_int_equal(rangeset_missing(&s, 4 * P, 6 * P, &miss), 0); /* a gap exactly */
	assert_ranges(&miss, (uint64_t[]){ 4, 6 }, 1);
	rangeset_free(&s);
	rangeset_free(&miss);
}

static void intersect(void **st)
{
	struct rangeset s = { 0 }, out = { 0 };

	assert_int_equal(rangeset_intersect(&s, P, 3 * P, &out), 0); /* empty set: none */
	assert_int_equal(out.nr, 0);
	rangeset_add(&s, 2 * P, 4 * P);
	rangeset_add(&s, 6 * P, 9 * P);
	assert_int_equal(rangeset_intersect(&s, 0, 12 * P, &out), 0);
	assert_ranges(&out, (uint64_t[]){ 2, 4, 6, 9 }, 2);
	rangeset_clear(&out);
	/* from inside a range to inside the next */
	assert_int_equal(rangeset_intersect(&s, 3 * P, 7 * P, &out), 0);
	assert_ranges(&out, (uint64_t[]){ 3, 4, 6, 7 }, 2);
	rangeset_clear(&out);
	assert_int_equal(rangeset_intersect(&s, 4 * P, 6 * P, &out), 0); /* a gap exactly */
	assert_int_equal(rangeset_intersect(&s, 5 * P, 5 * P, &out), 0); /* empty */
	assert_int_equal(out.nr, 0);
	rangeset_free(&s);
	rangeset_free(&out);
}

static void union_(void **st)
{
	struct rangeset a = { 0 }, b = { 0 };

	assert_int_equal(rangeset_union(&a, &b), 0); /* empty with empty */
	assert_int_equal(a.nr, 0);
	rangeset_add(&a, 0, 2 * P);
	rangeset_add(&a, 10 * P, 12 * P);
	assert_int_equal(rangeset_union(&a, &b), 0); /* with empty */
	assert_ranges(&a, (uint64_t[]){ 0, 2, 10, 12 }, 2);
	rangeset_add(&b, 2 * P, 3 * P);	  /* adjacent */
	rangeset_add(&b, 5 * P, 6 * P);	  /* disjoint */
	rangeset_add(&b, 11 * P, 14 * P); /* overlapping */
	assert_int_equal(rangeset_union(&a, &b), 0);
	assert_ranges(&a, (uint64_t[]){ 0, 3, 5, 6, 10, 14 }, 3);
	assert_ranges(&b, (uint64_t[]){ 2, 3, 5, 6, 11, 14 }, 3); /* unchanged */
	rangeset_free(&a);
	rangeset_free(&b);
}

static void clear_keeps_memory(void **st)
{
	struct rangeset s = { 0 };
	const struct range *mem;
	size_t cap;

	assert_int_equal(rangeset_bytes(&s), 0);
	for (uint64_t i = 0; i < 100; i++)
		rangeset_add(&s, 2 * i * P, (2 * i + 1) * P);
	mem = s.r;
	cap = s.cap;
	rangeset_clear(&s);
	assert_int_equal(s.nr, 0);
	assert_int_equal(rangeset_bytes(&s), 0);
	assert_false(rangeset_contains(&s, 0));
	assert_ptr_equal(s.r, mem);
	assert_int_equal(s.cap, cap);
	rangeset_add(&s, 3 * P, 4 * P);
	assert_ranges(&s, (uint64_t[]){ 3, 4 }, 1);
	rangeset_free(&s);
}

static void range_after_(void **st)
{
	const struct range r[] = { { 2 * P, 4 * P }, { 6 * P, 9 * P } };

	assert_int_equal(range_after(r, 0, 0), 0); /* no ranges */
	assert_int_equal(range_after(r, 2, 0), 0);
	assert_int_equal(range_after(r, 2, 3 * P), 0);
	assert_int_equal(range_after(r, 2, 4 * P - 1), 0);
	assert_int_equal(range_after(r, 2, 4 * P), 1); /* ends at: not after */
	assert_int_equal(range_after(r, 2, 5 * P), 1); /* in the gap: the next */
	assert_int_equal(range_after(r, 2, 9 * P - 1), 1);
	assert_int_equal(range_after(r, 2, 9 * P), 2);
	assert_int_equal(range_after(r, 2, UINT64_MAX), 2);
}

/* Whole address space, and the top of it: nothing wraps around. */
static void huge_and_top(void **st)
{
	struct rangeset s = { 0 }, miss = { 0 };

	assert_int_equal(rangeset_add(&s, 0, TOP), 0);
	assert_int_equal(rangeset_bytes(&s), TOP);
	assert_true(rangeset_contains(&s, 0));
	assert_true(rangeset_contains(&s, TOP - 1));
	assert_false(rangeset_contains(&s, TOP));
	assert_false(rangeset_contains(&s, UINT64_MAX));
	assert_true(rangeset_covers(&s, 0, TOP));
	assert_true(rangeset_covers(&s, TOP - P, TOP));
	assert_int_equal(rangeset_missing(&s, 0, TOP, &miss), 0);
	assert_int_equal(miss.nr, 0);
	assert_int_equal(rangeset_add(&s, TOP, UINT64_MAX), -EINVAL);
	assert_int_equal(rangeset_add(&s, TOP - P, 0), -EINVAL); /* a wrapped end */
	assert_int_equal(rangeset_add(&s, P, 2 * P), 0);
	assert_ranges(&s, (uint64_t[]){ 0, TOP / P }, 1);
	rangeset_clear(&s);

	/* the last page, then the first: an insert before, from 0 */
	assert_int_equal(rangeset_add(&s, TOP - P, TOP), 0);
	assert_int_equal(rangeset_add(&s, 0, P), 0);
	assert_ranges(&s, (uint64_t[]){ 0, 1, TOP / P - 1, TOP / P }, 2);
	assert_false(rangeset_contains(&s, UINT64_MAX));
	assert_true(rangeset_contains(&s, TOP - 1));
	assert_false(rangeset_covers(&s, 0, TOP));
	assert_int_equal(rangeset_missing(&s, 0, TOP, &miss), 0);
	assert_ranges(&miss, (uint64_t[]){ 1, TOP / P - 1 }, 1);
	assert_int_equal(rangeset_bytes(&s) + rangeset_bytes(&miss), TOP);
	assert_int_equal(rangeset_add(&s, P, TOP - P), 0); /* bridges to the top */
	assert_ranges(&s, (uint64_t[]){ 0, TOP / P }, 1);
	rangeset_free(&s);
	rangeset_free(&miss);
}

/* Against a bitmap model, with random operations in random order. */
static void random_against_bitmap(void **st)
{
	enum { N = 512 };
	unsigned char bit[N] = { 0 }, other[N] = { 0 };
	struct rangeset s = { 0 }, o = { 0 }, miss = { 0 };

	srand(7);
	for (int k = 0; k < 2000; k++) {
		uint64_t a = rand() % N, b = a + rand() % 9;
		unsigned char *m = k % 3 ? bit : other;
		if (b > N)
			b = N;
		assert_int_equal(rangeset_add(k % 3 ? &s : &o, a * P, b * P), 0);
		for (uint64_t i = a; i < b; i++)
			m[i] = 1;
		if (k % 100)
			continue;
		/* now and then, every query against the model */
		assert_canonical(&s);
		for (int q = 0; q < 50; q++) {
			uint64_t x = rand() % N, y = x + rand() % 17, n = 0;
			bool all = true;
			if (y > N)
				y = N;
			for (uint64_t i = x; i < y; i++) {
				all = all && bit[i];
				n += !bit[i];
			}
			assert_int_equal(rangeset_covers(&s, x * P, y * P), all);
			rangeset_clear(&miss);
			assert_int_equal(rangeset_missing(&s, x * P, y * P, &miss), 0);
			assert_int_equal(rangeset_bytes(&miss), n * P);
			for (size_t i = 0; i < miss.nr; i++)
				for (uint64_t pg = miss.r[i].start / P; pg < miss.r[i].end / P;
				     pg++)
					assert_false(bit[pg]);
		}
	}
	uint64_t bytes = 0;
	for (uint64_t i = 0; i < N; i++) {
		assert_int_equal(rangeset_contains(&s, i * P + P / 2), bit[i]);
		bytes += bit[i] * P;
	}
	assert_int_equal(rangeset_bytes(&s), bytes);
	assert_int_equal(rangeset_union(&s, &o), 0);
	assert_canonical(&s);
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(rangeset_contains(&s, i * P), bit[i] || other[i]);
	rangeset_free(&s);
	rangeset_free(&o);
	rangeset_free(&miss);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_merges_and_sorts),
		cmocka_unit_test(add_overlapping),
		cmocka_unit_test(add_rejects_and_empty),
		cmocka_unit_test(add_many),
		cmocka_unit_test(contains),
		cmocka_unit_test(covers),
		cmocka_unit_test(missing),
		cmocka_unit_test(intersect),
		cmocka_unit_test(union_),
		cmocka_unit_test(clear_keeps_memory),
		cmocka_unit_test(range_after_),
		cmocka_unit_test(huge_and_top),
		cmocka_unit_test(random_against_bitmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
