/* SPDX-License-Identifier: MIT */
/* nul_split: /proc's NUL-separated lists into vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/argv.h"

static void splits_cmdline(void **s)
{
	static const char cmd[] = "bash\0-c\0echo hi\0";
	char **v;
	size_t n;

	assert_int_equal(nul_split(cmd, sizeof(cmd) - 1, 8, 64, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "bash");
	assert_string_equal(v[1], "-c");
	assert_string_equal(v[2], "echo hi");
	assert_null(v[3]);
	free(v);
}

static void last_without_nul_and_empty_elements(void **s)
{
	static const char env[] = "A=1\0\0B=2";
	char **v;
	size_t n;

	assert_int_equal(nul_split(env, sizeof(env) - 1, 8, 64, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "A=1");
	assert_string_equal(v[1], "");
	assert_string_equal(v[2], "B=2");
	free(v);
	assert_int_equal(nul_split("", 0, 8, 64, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v[0]);
	free(v);
}

static void limits(void **s)
{
	static const char cmd[] = "a\0bb\0ccc\0";
	char **v;
	size_t n;

	assert_int_equal(nul_split(cmd, sizeof(cmd) - 1, 2, 64, &v, &n), -E2BIG);
	assert_int_equal(nul_split(cmd, sizeof(cmd) - 1, 3, 2, &v, &n), -E2BIG);
	assert_int_equal(nul_split(cmd, sizeof(cmd) - 1, 3, 3, &v, &n), 0);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(splits_cmdline),
		cmocka_unit_test(last_without_nul_and_empty_elements),
		cmocka_unit_test(limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
