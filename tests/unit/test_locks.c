/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the preflight's file-lock refusal: which fdinfo texts
 * show a lock the destination's restore would conflict with
 * (fdinfo_lock_conflicts, common/proc.c), and which paths are private to
 * each host under the storage specs (storage_is_private,
 * source/locks.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/proc.h"
#include "source/source.h"

#define FDINFO "pos:\t0\nflags:\t02100002\nmnt_id:\t27\nino:\t10952831\n"

static void test_fdinfo(void **state)
{
	(void)state;
	assert_false(fdinfo_lock_conflicts(FDINFO));
	assert_false(fdinfo_lock_conflicts(""));
	assert_true(fdinfo_lock_conflicts(
		FDINFO "lock:\t1: POSIX  ADVISORY  WRITE 23875 fe:00:10952831 0 EOF\n"));
	assert_true(fdinfo_lock_conflicts(
		FDINFO "lock:\t1: FLOCK  ADVISORY  WRITE 23692 fe:00:10953201 0 EOF\n"));
	assert_true(fdinfo_lock_conflicts(
		FDINFO "lock:\t1: OFDLCK ADVISORY  READ -1 fe:00:10953201 0 EOF\n"));
	/* a read lease stays when the file is opened again for reading */
	assert_false(fdinfo_lock_conflicts(
		FDINFO "lock:\t1: LEASE  ACTIVE    READ 11 fe:00:10953201 0 EOF\n"));
	/* a write lease does not; nor a lease being broken */
	assert_true(fdinfo_lock_conflicts(
		FDINFO "lock:\t1: LEASE  ACTIVE    WRITE 11 fe:00:10953201 0 EOF\n"));
	assert_true(fdinfo_lock_conflicts(
		FDINFO "lock:\t1: LEASE  ACTIVE    READ 11 fe:00:1 0 EOF\n"
		       "lock:\t2: POSIX  ADVISORY  READ 11 fe:00:1 0 EOF\n"));
	assert_true(fdinfo_lock_conflicts(
		FDINFO "lock:\t1: LEASE  BREAKING  UNLCK 11 fe:00:1 0 EOF\n"));
	/* a line it cannot read is a lock */
	assert_true(fdinfo_lock_conflicts("lock:\tgarbage\n"));
	/* "lock:" only at the start of a line */
	assert_false(fdinfo_lock_conflicts("pos:\t0 lock:\t1: POSIX ADVISORY WRITE\n"));
}

static void test_private(void **state)
{
	const char *fs[] = { "shared", "sync:/srv/app/", "disk:/shared/vm.img:/mnt/vm" };

	(void)state;
	assert_false(storage_is_private(fs, 1, "/srv/app/db"));
	assert_true(storage_is_private(fs, 3, "/srv/app/db"));
	assert_true(storage_is_private(fs, 3, "/srv/app"));
	assert_false(storage_is_private(fs, 3, "/srv/application/db"));
	assert_false(storage_is_private(fs, 3, "/srv"));
	assert_true(storage_is_private(fs, 3, "/mnt/vm/data/x"));
	/* the image file itself is on shared storage */
	assert_false(storage_is_private(fs, 3, "/shared/vm.img"));
	assert_false(storage_is_private(fs, 3, "/mnt/vmx"));
	assert_false(storage_is_private(NULL, 0, "/srv/app/db"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fdinfo),
		cmocka_unit_test(test_private),
	};

	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
