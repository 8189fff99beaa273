/* SPDX-License-Identifier: MIT */
/* sync driver logic: rsync --stats parsing, convergence, directory names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdint.h>
#include <cmocka.h>

#include "drivers/fs/sync_policy.h"

static const char STATS[] =
	"\nNumber of files: 8 (reg: 3, dir: 2, link: 1, dev: 1, special: 1)\n"
	"Number of created files: 7 (reg: 3, dir: 1, link: 1, dev: 1, special: 1)\n"
	"Number of deleted files: 2\n"
	"Number of regular files transferred: 3\n"
	"Total file size: 10,485,777 bytes\n"
	"Total transferred file size: 10,485,763 bytes\n"
	"Literal data: 10,485,763 bytes\n"
	"Total bytes sent: 10,488,627\n"
	"Total bytes received: 88\n";

static void parses_rsync_stats(void **s)
{
	struct sync_stats st;

	assert_int_equal(sync_parse_stats(STATS, &st), 0);
	assert_int_equal(st.files, 8);
	assert_int_equal(st.deleted, 2);
	assert_int_equal(st.transferred, 3);
	assert_int_equal(st.changed_bytes, 10485763);
	assert_int_equal(st.bytes_sent, 10488627);
}

static void rejects_text_without_stats(void **s)
{
	struct sync_stats st;

	assert_int_equal(sync_parse_stats("rsync error: some files vanished\n", &st), -EINVAL);
	assert_int_equal(sync_parse_stats("", &st), -EINVAL);
	/* a label in the middle of a line is not a stats line */
	assert_int_equal(sync_parse_stats("x Number of files: 5\n", &st), -EINVAL);
}

static void huge_number_is_refused(void **s)
{
	struct sync_stats st;

	assert_int_equal(sync_parse_stats("Number of files: 99999999999999999999999\n"
					  "Total bytes sent: 5\n",
					  &st),
			 0);
	assert_int_equal(st.files, 0);
	assert_int_equal(st.bytes_sent, 5);
}

static struct sync_stats round_of(uint64_t files, uint64_t bytes)
{
	return (struct sync_stats){ .transferred = files, .changed_bytes = bytes };
}

static void small_round_converges(void **s)
{
	struct sync_stats r[] = { round_of(1000, 200 << 20), round_of(3, 4096) };

	assert_int_equal(sync_decide(r, 1), SYNC_CONTINUE);
	assert_int_equal(sync_decide(r, 2), SYNC_CONVERGED);
}

static void many_small_files_do_not_converge(void **s)
{
	struct sync_stats r[] = { round_of(1000, 200 << 20), round_of(500, 100 << 10) };

	assert_int_equal(sync_decide(r, 2), SYNC_CONTINUE);
}

static void growing_round_stops(void **s)
{
	struct sync_stats r[] = { round_of(100, 50 << 20), round_of(120, 60 << 20) };

	assert_int_equal(sync_decide(r, 2), SYNC_NOT_SHRINKING);
}

static void max_rounds(void **s)
{
	struct sync_stats r[SYNC_MAX_ROUNDS];

	for (int i = 0; i < SYNC_MAX_ROUNDS; i++)
		r[i] = round_of(1000 - i, (100 - i) << 20);
	assert_int_equal(sync_decide(r, SYNC_MAX_ROUNDS - 1), SYNC_CONTINUE);
	assert_int_equal(sync_decide(r, SYNC_MAX_ROUNDS), SYNC_MAX);
}

static void dir_names(void **s)
{
	assert_true(sync_dir_ok("/srv/app"));
	assert_true(sync_dir_ok("/tmp/bats-run-x1/test/1/scratch/data"));
	assert_false(sync_dir_ok("/"));
	assert_false(sync_dir_ok("srv/app"));
	assert_false(sync_dir_ok("/srv/../etc"));
	assert_false(sync_dir_ok("/srv/./app"));
	assert_false(sync_dir_ok("/srv//app"));
	assert_false(sync_dir_ok("/srv/app/"));
	assert_false(sync_dir_ok("/srv/a\npath = /etc"));
	assert_false(sync_dir_ok("/srv/a b"));
	assert_false(sync_dir_ok(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_rsync_stats),
		cmocka_unit_test(rejects_text_without_stats),
		cmocka_unit_test(huge_number_is_refused),
		cmocka_unit_test(small_round_converges),
		cmocka_unit_test(many_small_files_do_not_converge),
		cmocka_unit_test(growing_round_stops),
		cmocka_unit_test(max_rounds),
		cmocka_unit_test(dir_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
