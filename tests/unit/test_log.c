/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/log: a time-stamped line normally; under systemd
 * (JOURNAL_STREAM naming stderr) a syslog priority instead of the time
 * stamp; PHAUL_LOG forcing either.
 */
#include <errno.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define LOG_PREFIX "mod: "
#include "common/log.h"

static FILE *tmp;

static int setup(void **state)
{
	tmp = tmpfile();
	if (!tmp)
		return -1;
	log_set_fd(fileno(tmp));
	unsetenv("PHAUL_LOG");
	unsetenv("JOURNAL_STREAM");
	return 0;
}

static int teardown(void **state)
{
	log_set_fd(STDERR_FILENO);
	fclose(tmp);
	return 0;
}

/* What was logged since the last call. */
static char *logged(void)
{
	static char buf[4096];
	size_t n;

	fflush(tmp);
	rewind(tmp);
	n = fread(buf, 1, sizeof(buf) - 1, tmp);
	buf[n] = '\0';
	assert_int_equal(ftruncate(fileno(tmp), 0), 0);
	rewind(tmp);
	return buf;
}

static void assert_matches(const char *text, const char *re)
{
	regex_t r;

	assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&r, text, 0, NULL, 0))
		fail_msg("'%s' does not match /%s/", text, re);
	regfree(&r);
}

/* Point JOURNAL_STREAM at whatever fd 2 is now (as systemd would). */
static void journal_stream_is_stderr(void)
{
	struct stat st;
	char v[64];

	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
}

static void test_plain_has_time_stamp(void **state)
{
	log_init("role", LOG_INFO);
	pr_info("hello %d", 42);
	assert_matches(logged(), "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z "
				 "role\\[[0-9]+\\] mod: hello 42\n$");
}

static void test_journal_gets_priorities_no_time_stamp(void **state)
{
	journal_stream_is_stderr();
	log_init("role", LOG_DEBUG);
	pr_err("e");
	pr_warn("w");
	pr_info("i");
	pr_debug("d");
	assert_matches(logged(), "^<3>role\\[[0-9]+\\] mod: error: e\n"
				 "<4>role\\[[0-9]+\\] mod: warning: w\n"
				 "<6>role\\[[0-9]+\\] mod: i\n"
				 "<7>role\\[[0-9]+\\] mod: d\n$");
	unsetenv("JOURNAL_STREAM");
}

static void test_journal_stream_of_another_file_is_ignored(void **state)
{
	setenv("JOURNAL_STREAM", "1:1", 1);
	log_init("role", LOG_INFO);
	pr_info("x");
	assert_matches(logged(), "^[0-9]{4}-.*Z role\\[[0-9]+\\] mod: x\n$");
	unsetenv("JOURNAL_STREAM");
}

static void test_phaul_log_forces(void **state)
{
	journal_stream_is_stderr();
	setenv("PHAUL_LOG", "plain", 1);
	log_init("role", LOG_INFO);
	pr_info("p");
	assert_matches(logged(), "^[0-9]{4}-.*Z role\\[[0-9]+\\] mod: p\n$");
	unsetenv("JOURNAL_STREAM");
	setenv("PHAUL_LOG", "journal", 1);
	log_init("role", LOG_INFO);
	pr_info("j");
	assert_matches(logged(), "^<6>role\\[[0-9]+\\] mod: j\n$");
	unsetenv("PHAUL_LOG");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_has_time_stamp),
		cmocka_unit_test(test_journal_gets_priorities_no_time_stamp),
		cmocka_unit_test(test_journal_stream_of_another_file_is_ignored),
		cmocka_unit_test(test_phaul_log_forces),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
