/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for criu/ckcache: an answer kept is found again under the
 * same key and under no other (another question, another image, another
 * CRIU binary); a stale entry, one in a directory others may write, one
 * that is not whole, and everything with PHAUL_CRIU_CACHE=0 miss.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "criu/ckcache.h"

static char dir[] = "/tmp/phaul-ckcache.XXXXXX";
static char criu[4200];

static int setup(void **state)
{
	int fd;

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(criu, sizeof(criu), "%s/criu", dir);
	fd = open(criu, O_WRONLY | O_CREAT, 0700);
	if (fd < 0)
		return -1;
	close(fd);
	setenv("PHAUL_RUNDIR", dir, 1);
	setenv("PHAUL_CRIU", criu, 1);
	unsetenv("PHAUL_CRIU_CACHE");
	return 0;
}

static int teardown(void **state)
{
	char cmd[4300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static bool get(const struct ckkey *k, const char *want)
{
	uint8_t *data;
	size_t len;
	long age;
	bool hit = ckcache_get(k, &data, &len, &age);

	if (hit) {
		assert_int_equal(len, want ? strlen(want) : 0);
		if (want)
			assert_memory_equal(data, want, len);
		else
			assert_null(data);
		assert_in_range(age, 0, 5);
	}
	free(data);
	return hit;
}

static void entry_path(const struct ckkey *k, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, k->name);
}

static void test_kept(void **state)
{
	struct ckkey k, other, img1, img2;

	(void)state;
	assert_true(ckcache_key(&k, getenv("PHAUL_CRIU"), "check", NULL, 0));
	assert_true(ckcache_key(&other, getenv("PHAUL_CRIU"), "version", NULL, 0));
	assert_true(ckcache_key(&img1, getenv("PHAUL_CRIU"), "cpuinfo-check", "image one", 9));
	assert_true(ckcache_key(&img2, getenv("PHAUL_CRIU"), "cpuinfo-check", "image two", 9));
	assert_string_not_equal(k.name, other.name);
	assert_string_not_equal(img1.name, img2.name);
	assert_false(get(&k, NULL));
	ckcache_put(&k, NULL, 0);
	ckcache_put(&img1, "yes", 3);
	assert_true(get(&k, NULL));
	assert_true(get(&img1, "yes"));
	assert_false(get(&other, NULL));
	assert_false(get(&img2, NULL));
	/* the same key again: the same entry */
	assert_true(ckcache_key(&other, getenv("PHAUL_CRIU"), "check", NULL, 0));
	assert_string_equal(k.name, other.name);
}

static void test_misses(void **state)
{
	struct ckkey k, k2;
	struct timespec old[2] = { { .tv_sec = time(NULL) - CKCACHE_TTL_S - 5 },
				   { .tv_sec = time(NULL) - CKCACHE_TTL_S - 5 } };
	char path[4300];
	int fd;

	(void)state;
	assert_true(ckcache_key(&k, getenv("PHAUL_CRIU"), "stale", NULL, 0));
	ckcache_put(&k, "v", 1);
	assert_true(get(&k, "v"));
	entry_path(&k, path, sizeof(path));
	/* stale */
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	assert_false(get(&k, NULL));
	ckcache_put(&k, "v", 1);
	assert_true(get(&k, "v"));
	/* writable by others: the file, then the directory */
	assert_int_equal(chmod(path, 0622), 0);
	assert_false(get(&k, NULL));
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_false(get(&k, NULL));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_true(get(&k, "v"));
	/* not whole: no magic */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "phaul", 5), 5);
	close(fd);
	assert_false(get(&k, NULL));
	/* a new CRIU binary: another key */
	assert_true(ckcache_key(&k, getenv("PHAUL_CRIU"), "check", NULL, 0));
	ckcache_put(&k, NULL, 0);
	fd = open(criu, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "#", 1), 1);
	close(fd);
	assert_true(ckcache_key(&k2, getenv("PHAUL_CRIU"), "check", NULL, 0));
	assert_string_not_equal(k.name, k2.name);
	/* off */
	setenv("PHAUL_CRIU_CACHE", "0", 1);
	assert_false(ckcache_key(&k2, getenv("PHAUL_CRIU"), "check", NULL, 0));
	unsetenv("PHAUL_CRIU_CACHE");
	/* no CRIU binary at that path: no key */
	setenv("PHAUL_CRIU", "criu-by-name", 1);
	assert_false(ckcache_key(&k2, getenv("PHAUL_CRIU"), "check", NULL, 0));
	setenv("PHAUL_CRIU", criu, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kept),
		cmocka_unit_test(test_misses),
	};

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests(tests, setup, teardown);
}
