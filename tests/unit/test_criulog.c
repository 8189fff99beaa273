/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for criu_log_cause/criu_log_error (criu/criu.c), which say
 * why CRIU failed from its log, criu_log_failed_pid (which process a
 * failed dump was at), and session_keep_log (engine/session.c),
 * which keeps that log after the session's directory goes. The logs are
 * captured from CRIU 4.1.1 on this machine (no CAP_SYS_RESOURCE: every
 * run says "rlimit: Can't setup RLIMIT_NOFILE for self"), trimmed.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "criu/criu.h"
#include "engine/session.h"

/* a restore of a FIFO whose data did not fit (tests/e2e/13-fifo.bats) */
static const char restore_fifo[] =
	"(00.000011) Version: 4.1.1 (gitid 0)\n"
	"(00.030456) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
	"Operation not permitted\n"
	"(00.031300)  10002: Restoring size 0x10000 for 0xa78393\n"
	"(00.031345)  10002: Error (criu/pipes.c:184): 0xa78393: Error splicing data: "
	"Resource temporarily unavailable\n"
	"(00.031347)  10002: Error (criu/files-reg.c:2267): Can't open file "
	"tmp/scratch/fifo/fifo: Resource temporarily unavailable\n"
	"(00.031348)  10002: Error (criu/files.c:1221): Unable to open fd=3 id=0x6\n"
	"(00.031802) Error (criu/cr-restore.c:1258): 10002 exited, status=1\n"
	"(00.031884) Error (criu/cr-restore.c:2326): Restoring FAILED.\n"
	"(00.031900) Error (criu/cr-restore.c:999): cleanup after the failure\n";

/* a dump of a process holding /dev/loop-control */
static const char dump_chr[] =
	"Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
	"Operation not permitted\n"
	"Warn  (compel/arch/x86/src/lib/infect.c:418): Will restore 9657 with interrupted "
	"system call\n"
	"Error (criu/files-ext.c:94): Can't dump file 3 of that type [20600] (chr 10:237)\n"
	"Error (criu/cr-dump.c:1681): Dump files (pid: 9657) failed with -1\n"
	"Error (criu/cr-dump.c:2115): Dumping FAILED.\n";

static void cause_is(const char *log, size_t len, const char *want)
{
	char buf[256];

	criu_log_cause(log, strlen(log), buf, len ? len : sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_cause(void **state)
{
	(void)state;
	/* the harmless rlimit line is not the cause; the first real error is,
	 * then the two before "Restoring FAILED."; nothing after it */
	cause_is(restore_fifo, 0,
		 "0xa78393: Error splicing data: Resource temporarily unavailable; ...; "
		 "Unable to open fd=3 id=0x6; 10002 exited, status=1");
	cause_is(dump_chr, 0,
		 "Can't dump file 3 of that type [20600] (chr 10:237); "
		 "Dump files (pid: 9657) failed with -1");
	/* one real error, three */
	cause_is("(0.1) Error (a.c:1): x\n(0.2) Error (b.c:2): Restoring FAILED.\n", 0, "x");
	cause_is("Error (a.c:1): x\nError (a.c:2): y\nError (a.c:3): z\n"
		 "Error (b.c:2): Dumping FAILED.\n",
		 0, "x; y; z");
	/* no FAILED line (CRIU killed): every error counts */
	cause_is("Error (a.c:1): x\ninfo\nError (a.c:2): y\n", 0, "x; y");
	/* only the harmless line: it is all there is, so it is said */
	cause_is("Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: EPERM\n"
		 "Error (b.c:2): Restoring FAILED.\n",
		 0, "rlimit: Can't setup RLIMIT_NOFILE for self: EPERM");
	/* nothing but the FAILED line */
	cause_is("(0.1) ok\n(0.2) Error (b.c:2): Restoring FAILED.\n", 0, "Restoring FAILED.");
	/* no error line: the last line, trailing newlines dropped */
	cause_is("(00.001) x\nThe sock diag infrastructure is incomplete.\n\n", 0,
		 "The sock diag infrastructure is incomplete.");
	cause_is("one line, no newline", 0, "one line, no newline");
	cause_is("", 0, "");
	/* cut to the buffer */
	cause_is(dump_chr, 20, "Can't dump file 3 o");
	/* an error whose cause CRIU does not name gets a hint */
	cause_is("Error (criu/cr-dump.c:371): Can't get rlimit 0: Operation not permitted\n"
		 "Error (b.c:2): Dumping FAILED.\n",
		 0,
		 "Can't get rlimit 0: Operation not permitted (the limits of another uid's process "
		 "need CAP_SYS_RESOURCE, or a CRIU with phaul's patch 0012)");
}

static char dir[] = "/tmp/phaul-criulog.XXXXXX";

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_log_error(void **state)
{
	char path[4200], why[128];
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/restore.log", dir);
	write_text(path, restore_fifo);
	criu_log_error(path, why, sizeof(why));
	assert_string_equal(why,
			    "0xa78393: Error splicing data: Resource temporarily "
			    "unavailable; ...; Unable to open fd=3 id=0x6; 10002 exited, status=1");
	/* a log larger than what is scanned: its end is read */
	f = fopen(path, "w");
	assert_non_null(f);
	for (unsigned int i = 0; i < CRIU_LOG_SCAN_MAX / 32 + 10; i++)
		fprintf(f, "Error (x.c:1): early %020u\n", i);
	fputs(dump_chr, f);
	fclose(f);
	criu_log_error(path, why, sizeof(why));
	assert_null(strstr(why, "early 00000000000000000000;"));
	assert_non_null(strstr(why, "; ...; Can't dump file 3 of that type [20600] (chr 10:237); "
				    "Dump files (pid: 9657) failed with -1"));
	/* no log, an empty one: it names the file */
	unlink(path);
	criu_log_error(path, why, sizeof(why));
	assert_int_equal(strncmp(why, "see ", 4), 0);
	write_text(path, "");
	criu_log_error(path, why, sizeof(why));
	assert_int_equal(strncmp(why, "see ", 4), 0);
}

static int count_logs(const char *d)
{
	char cmd[4300];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '\\.log$'", d);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static void test_keep_log(void **state)
{
	char src[4200], logs[4200], name[64], path[4300];
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	_cleanup_free_ char *text = NULL;

	(void)state;
	snprintf(src, sizeof(src), "%s/dump.log", dir);
	snprintf(logs, sizeof(logs), "%s/logs/sub", dir);
	write_text(src, dump_chr);
	/* the directory is made; the copy is the log */
	assert_int_equal(session_keep_log(src, logs, "a-dump.log", 3), 0);
	snprintf(path, sizeof(path), "%s/a-dump.log", logs);
	assert_int_equal(read_file(path, 1 << 20, &text, NULL), 0);
	assert_string_equal(text, dump_chr);
	/* bounded: the oldest go, the newest stay, other files are not counted */
	utimensat(AT_FDCWD, path, old, 0);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "s%d-restore.log", i);
		assert_int_equal(session_keep_log(src, logs, name, 3), 0);
		snprintf(path, sizeof(path), "%s/%s", logs, name);
		old[0].tv_sec = old[1].tv_sec = 2000 + i;
		utimensat(AT_FDCWD, path, old, 0);
	}
	snprintf(path, sizeof(path), "%s/notes.txt", logs);
	write_text(path, "x");
	assert_int_equal(session_keep_log(src, logs, "t-restore.log", 3), 0);
	assert_int_equal(count_logs(logs), 3);
	snprintf(path, sizeof(path), "%s/a-dump.log", logs);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/s1-restore.log", logs);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/s3-restore.log", logs);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/notes.txt", logs);
	assert_int_equal(access(path, F_OK), 0);
	/* no source log: an error, nothing made */
	snprintf(src, sizeof(src), "%s/none.log", dir);
	assert_int_equal(session_keep_log(src, logs, "u-restore.log", 3), -ENOENT);
}

static void test_failed_pid_text(void **state)
{
	(void)state;
	/* CRIU 4.1.1 dumping redis-server with a client connected */
	assert_int_equal(
		criu_log_text_failed_pid(
			"(00.016546) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: "
			"Operation not permitted\n"
			"(00.020000) Dumping mm (pid: 7)\n"
			"(00.041202) Error (criu/sk-inet.c:191): inet: Connected TCP socket, consider "
			"using --tcp-established option.\n"
			"(00.041208) Error (criu/cr-dump.c:1681): Dump files (pid: 10002) failed with -1\n"
			"(00.041552) Error (criu/cr-dump.c:2115): Dumping FAILED.\n"),
		10002);
	/* an error naming none, or a malformed number: 0 */
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): Dumping FAILED.\n"), 0);
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): x (pid: 12x)\n"), 0);
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): x (pid: -3)\n"), 0);
	assert_int_equal(criu_log_text_failed_pid("(0.1) Error (a.c:1): x (pid: 99999999999)\n"),
			 0);
	assert_int_equal(criu_log_text_failed_pid(""), 0);
	/* the first error that names one */
	assert_int_equal(criu_log_text_failed_pid(
				 "Error (a.c:1): (pid: 5) x\nError (b.c:2): (pid: 6)\n"),
			 5);
}

static void test_failed_pid_file(void **state)
{
	char path[] = "/tmp/phaul-criulog.XXXXXX";
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "Error (c.c:9): Can't infect (pid: 42) with parasite\n", 52),
			 52);
	close(fd);
	assert_int_equal(criu_log_failed_pid(path), 42);
	unlink(path);
	/* no log: 0 */
	assert_int_equal(criu_log_failed_pid(path), 0);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rm_rf(dir) < 0 ? -1 : 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cause),		cmocka_unit_test(test_log_error),
		cmocka_unit_test(test_keep_log),	cmocka_unit_test(test_failed_pid_text),
		cmocka_unit_test(test_failed_pid_file),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
