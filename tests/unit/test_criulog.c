/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for criu_log_text_failed_pid and criu_log_failed_pid
 * (criu/criu.c): which process a failed dump was at, from CRIU's log.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "criu/criu.h"

static void test_text(void **state)
{
	(void)state;
	/* CRIU 4.1.1 dumping redis-server with a client connected */
	assert_int_equal(criu_log_text_failed_pid(
		"(00.016546) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
		"Operation not permitted\n"
		"(00.020000) Dumping mm (pid: 7)\n"
		"(00.041202) Error (criu/sk-inet.c:191): inet: Connected TCP socket, consider "
		"using --tcp-established option.\n"
		"(00.041208) Error (criu/cr-dump.c:1681): Dump files (pid: 10002) failed with -1\n"
		"(00.041552) Error (criu/cr-dump.c:2115): Dumping FAILED.\n"), 10002);
	/* an error naming none, or a malformed number: 0 */
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): Dumping FAILED.\n"), 0);
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): x (pid: 12x)\n"), 0);
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): x (pid: -3)\n"), 0);
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): x (pid: 99999999999)\n"), 0);
	assert_int_equal(criu_log_text_failed_pid(""), 0);
	/* the first error that names one */
	assert_int_equal(criu_log_text_failed_pid("Error (a.c:1): (pid: 5) x\nError (b.c:2): (pid: 6)\n"),
			 5);
}

static void test_file(void **state)
{
	char path[] = "/tmp/phaul-criulog.XXXXXX";
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Error (c.c:9): Can't infect (pid: 42) with parasite\n", 52), 52);
	close(fd);
	assert_int_equal(criu_log_failed_pid(path), 42);
	unlink(path);
	/* no log: 0 */
	assert_int_equal(criu_log_failed_pid(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
