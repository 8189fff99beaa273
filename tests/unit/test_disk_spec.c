/* SPDX-License-Identifier: MIT */
/* disk driver logic: the IMAGE:MOUNTPOINT spec and mountinfo lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <cmocka.h>

#include "drivers/fs/disk_spec.h"

static void spec_splits(void **s)
{
	char img[256], mnt[256];

	assert_int_equal(disk_parse_spec("/shared/vm1.img:/srv/vm1", img, mnt, sizeof(img)), 0);
	assert_string_equal(img, "/shared/vm1.img");
	assert_string_equal(mnt, "/srv/vm1");
}

static void spec_rejects(void **s)
{
	char img[256], mnt[256];

	assert_int_equal(disk_parse_spec("/shared/vm1.img", img, mnt, sizeof(img)), -EINVAL);
	assert_int_equal(disk_parse_spec("vm1.img:/srv", img, mnt, sizeof(img)), -EINVAL);
	assert_int_equal(disk_parse_spec("/a.img:/srv:/x", img, mnt, sizeof(img)), -EINVAL);
	assert_int_equal(disk_parse_spec("/a.img:/srv/../etc", img, mnt, sizeof(img)), -EINVAL);
	assert_int_equal(disk_parse_spec("/a:/a", img, mnt, sizeof(img)), -EINVAL);
	assert_int_equal(disk_parse_spec("/a.img:/b", img, mnt, 4), -EINVAL);
}

static const char INFO[] = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
			   "40 22 7:3 / /srv/vm1 rw,relatime shared:20 - ext4 /dev/loop3 rw\n"
			   "41 22 7:4 / /srv/with\\040space rw - xfs /dev/loop4 rw\n"
			   "42 40 0:50 / /srv/vm1 rw - tmpfs tmpfs rw\n";

static void finds_top_mount(void **s)
{
	char src[64], fs[64];

	assert_int_equal(disk_mountinfo_find(INFO, "/srv/vm1", src, sizeof(src), fs, sizeof(fs)),
			 0);
	assert_string_equal(src, "tmpfs"); /* the last one is on top */
	assert_string_equal(fs, "tmpfs");
	assert_int_equal(
		disk_mountinfo_find(INFO, "/srv/with space", src, sizeof(src), fs, sizeof(fs)), 0);
	assert_string_equal(src, "/dev/loop4");
	assert_string_equal(fs, "xfs");
}

static void absent_or_truncated(void **s)
{
	char src[64], fs[64];

	assert_int_equal(disk_mountinfo_find(INFO, "/srv", src, sizeof(src), fs, sizeof(fs)),
			 -ENOENT);
	assert_int_equal(disk_mountinfo_find("40 22 7:3 / /srv/vm1 rw", "/srv/vm1", src,
					     sizeof(src), fs, sizeof(fs)),
			 -ENOENT);
	assert_int_equal(disk_mountinfo_find("", "/", src, sizeof(src), fs, sizeof(fs)), -ENOENT);
	assert_int_equal(disk_mountinfo_find(INFO, "/srv/with space", src, 4, fs, sizeof(fs)),
			 -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spec_splits),
		cmocka_unit_test(spec_rejects),
		cmocka_unit_test(finds_top_mount),
		cmocka_unit_test(absent_or_truncated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
