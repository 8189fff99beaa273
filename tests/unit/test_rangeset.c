/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/rangeset.h"

#define P 4096ull

static void assert_ranges(const struct rangeset *s, const uint64_t *want, size_t n)
{
	assert_int_equal(s->nr, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->r[i].start, want[2 * i] * P);
		assert_int_equal(s->r[i].end, want[2 * i + 1] * P);
	}
}

static void add_merges_and_sorts(void **st)
{
	struct rangeset s = { 0 };

	rangeset_add(&s, 10 * P, 12 * P);
	rangeset_add(&s, 1 * P, 2 * P);
	rangeset_add(&s, 12 * P, 13 * P);	/* adjacent: merged */
	rangeset_add(&s, 5 * P, 6 * P);
	assert_ranges(&s, (uint64_t[]){ 1, 2, 5, 6, 10, 13 }, 3);
	rangeset_add(&s, 2 * P, 10 * P);	/* bridges everything */
	assert_ranges(&s, (uint64_t[]){ 1, 13 }, 1);
	rangeset_add(&s, 3 * P, 4 * P);		/* inside */
	rangeset_add(&s, 7 * P, 7 * P);		/* empty */
	assert_ranges(&s, (uint64_t[]){ 1, 13 }, 1);
	assert_int_equal(rangeset_bytes(&s), 12 * P);
	rangeset_free(&s);
}

static void covers_and_missing(void **st)
{
	struct rangeset s = { 0 }, miss = { 0 };

	rangeset_add(&s, 2 * P, 4 * P);
	rangeset_add(&s, 6 * P, 9 * P);
	assert_true(rangeset_covers(&s, 2 * P, 4 * P));
	assert_true(rangeset_covers(&s, 7 * P, 8 * P));
	assert_false(rangeset_covers(&s, 3 * P, 7 * P));
	assert_false(rangeset_covers(&s, 0, P));
	assert_false(rangeset_covers(&s, 9 * P, 10 * P));
	assert_int_equal(rangeset_missing(&s, 0, 12 * P, &miss), 0);
	assert_ranges(&miss, (uint64_t[]){ 0, 2, 4, 6, 9, 12 }, 3);
	rangeset_clear(&miss);
	rangeset_missing(&s, 7 * P, 8 * P, &miss);
	assert_int_equal(miss.nr, 0);
	rangeset_free(&s);
	rangeset_free(&miss);
}

/* Against a bitmap model, with random operations. */
static void random_against_bitmap(void **st)
{
	enum { N = 512 };
	unsigned char bit[N] = { 0 };
	struct rangeset s = { 0 };

	srand(7);
	for (int k = 0; k < 2000; k++) {
		uint64_t a = rand() % N, b = a + rand() % 9;
		if (b > N)
			b = N;
		rangeset_add(&s, a * P, b * P);
		for (uint64_t i = a; i < b; i++)
			bit[i] = 1;
	}
	for (size_t i = 1; i < s.nr; i++)
		assert_true(s.r[i - 1].end < s.r[i].start);
	for (uint64_t i = 0; i < N; i++)
		assert_int_equal(rangeset_covers(&s, i * P, (i + 1) * P), bit[i]);
	rangeset_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(add_merges_and_sorts),
		cmocka_unit_test(covers_and_missing),
		cmocka_unit_test(random_against_bitmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
