/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for source/cow's pure part: which pagemap entries of a child
 * and its parent name one shared page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/page.h"
#include "common/rangeset.h"
#include "source/cow.h"

#define PRESENT (UINT64_C(1) << 63)
#define SWAP (UINT64_C(1) << 62)
#define EXCL (UINT64_C(1) << 56)
#define UFFD_WP (UINT64_C(1) << 57)
#define BASE UINT64_C(0x7f0000000000)

static void test_match(void **state)
{
	/* child, parent: shared frames, flags aside; then what is not */
	/* clang-format off */
	const uint64_t a[] = {
		PRESENT | 10, PRESENT | 11 | UFFD_WP, PRESENT | 12,	/* shared */
		PRESENT | EXCL | 13, 0, PRESENT | 0,		/* copy, none, hidden */
		SWAP | 0x4a0, SWAP | 0x4a1, PRESENT | 0x4a2,	/* a slot; others, kinds */
		PRESENT | 20,
	};
	const uint64_t b[] = {
		PRESENT | 10, PRESENT | 11, PRESENT | 12 | UFFD_WP,
		PRESENT | EXCL | 14, 0, PRESENT | 0,
		SWAP | 0x4a0, SWAP | 0x4a2, SWAP | 0x4a2,
		PRESENT | 20,
	};
	/* clang-format on */
	struct rangeset out = { 0 };

	(void)state;
	assert_int_equal(cow_match(BASE, a, b, 10, &out), 0);
	assert_int_equal(out.nr, 3);
	assert_true(out.r[0].start == BASE && out.r[0].end == BASE + 3 * PAGE);
	assert_true(out.r[1].start == BASE + 6 * PAGE && out.r[1].end == BASE + 7 * PAGE);
	assert_true(out.r[2].start == BASE + 9 * PAGE && out.r[2].end == BASE + 10 * PAGE);
	rangeset_free(&out);
	/* nothing in, nothing out */
	assert_int_equal(cow_match(BASE, a, b, 0, &out), 0);
	assert_int_equal(out.nr, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
	};

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests_name("cow", tests, NULL, NULL);
}
