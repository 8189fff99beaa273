/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/util: parse_hostport, parse_u64, mkdir_p, rm_rf
 * (and the small file helpers they lean on); common/spawn's spawn_fds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/spawn.h"
#include "common/util.h"

struct fixture {
	char dir[1024];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/phaul-test-util.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[1100];
	int r = rm_rf(f->dir);

	if (r < 0) { /* do not leave litter behind even if rm_rf is broken */
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
		(void)!system(cmd);
	}
	free(f);
	return 0;
}

/* @path under the fixture's directory, in a static buffer. */
static const char *at(struct fixture *f, const char *rel)
{
	static char buf[4][2200];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", f->dir, rel);
	return buf[i];
}

static void touch(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, text, strlen(text)), 0);
	close(fd);
}

static bool is_dir(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* --- parse_hostport ------------------------------------------------------- */

static void test_hostport_v4(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	unsigned int len = 0;

	assert_int_equal(parse_hostport("192.168.1.20:8022", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(in4->sin_port), 8022);
	assert_int_equal(ntohl(in4->sin_addr.s_addr), 0xc0a80114);

	assert_int_equal(parse_hostport("0.0.0.0:1", &ss, &len), 0);
	assert_int_equal(ntohs(in4->sin_port), 1);
	assert_int_equal(in4->sin_addr.s_addr, 0);
	assert_int_equal(parse_hostport("127.0.0.1:65535", &ss, &len), 0);
	assert_int_equal(ntohs(in4->sin_port), 65535);
	assert_int_equal(ntohl(in4->sin_addr.s_addr), INADDR_LOOPBACK);
}

static void test_hostport_v6(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	unsigned int len = 0;
	struct in6_addr want;

	assert_int_equal(parse_hostport("[::1]:443", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(in6->sin6_port), 443);
	assert_memory_equal(&in6->sin6_addr, &in6addr_loopback, sizeof(want));

	assert_int_equal(parse_hostport("[fe80::1:2]:9", &ss, &len), 0);
	assert_int_equal(inet_pton(AF_INET6, "fe80::1:2", &want), 1);
	assert_memory_equal(&in6->sin6_addr, &want, sizeof(want));
	assert_int_equal(ntohs(in6->sin6_port), 9);

	assert_int_equal(parse_hostport("[::]:7000", &ss, &len), 0);
	assert_memory_equal(&in6->sin6_addr, &in6addr_any, sizeof(want));
	assert_int_equal(parse_hostport("[::ffff:10.0.0.1]:80", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
}

static void test_hostport_bad(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1", /* missing colon */
		"::1",	     /* bare v6: the port would be "1" of "::" */
		"[::1]",
		"127.0.0.1:", /* empty port */
		"127.0.0.1:0",
		"127.0.0.1:65536",
		"127.0.0.1:99999999999999999999",
		"127.0.0.1:x",
		"127.0.0.1:80x",
		"127.0.0.1:-1",
		"127.0.0.1:+80",
		":80",
		"[]:80",
		"[::1:80",
		"::1]:80",
		"localhost:80", /* addresses only, no name lookup */
		"256.0.0.1:80",
		"1.2.3:80",
		"[::g]:80",
		"",
		":",
	};
	struct sockaddr_storage ss;
	unsigned int len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_hostport(bad[i], &ss, &len) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void test_hostport_long_host(void **state)
{
	char s[600];
	struct sockaddr_storage ss;
	unsigned int len;

	memset(s, '1', sizeof(s));
	snprintf(s + 500, sizeof(s) - 500, ":80");
	assert_int_equal(parse_hostport(s, &ss, &len), -EINVAL);
	s[0] = '[';
	s[498] = ']';
	s[499] = ']';
	assert_int_equal(parse_hostport(s, &ss, &len), -EINVAL);
}

/* --- parse_u64 ----------------------------------------------------------- */

static void test_u64_ranges(void **state)
{
	uint64_t v;

	assert_int_equal(parse_u64("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_u64("10", 0, 10, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(parse_u64("11", 0, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("0", 1, 10, &v), -EINVAL);
	assert_int_equal(parse_u64("1", 1, 1, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(parse_u64("2", 1, 1, &v), -EINVAL);
	assert_int_equal(parse_u64("007", 0, 10, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(parse_u64("4194304", 1, 1 << 22, &v), 0);
	assert_int_equal(parse_u64("4194305", 1, 1 << 22, &v), -EINVAL);

	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -EINVAL);
	assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX - 1, &v), -EINVAL);
}

static void test_u64_untouched_on_error(void **state)
{
	uint64_t v = 12345;

	assert_int_equal(parse_u64("99", 0, 10, &v), -EINVAL);
	assert_int_equal(v, 12345);
	assert_int_equal(parse_u64("x", 0, 10, &v), -EINVAL);
	assert_int_equal(v, 12345);
}

static void test_u64_malformed(void **state)
{
	static const char *const bad[] = {
		"",    "-1",   "+1",  "-0",    "1x",
		"x1",  "0x10", "1.5", "1e3",   "1 ",
		"1\n", "--1",  "- 1", "1,000", "\xef\xbc\x91" /* fullwidth 1 */,
	};
	uint64_t v;

	assert_int_equal(parse_u64(NULL, 0, 10, &v), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_u64(bad[i], 0, UINT64_MAX, &v) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

/*
 * Only digits: strtoull() skips leading white space and then accepts a
 * sign, so " -1" would come back as 2^64 - 1.
 */
static void test_u64_leading_space_or_sign(void **state)
{
	static const char *const bad[] = { " 1", "\t1", "\n1", " -1", " +1", "  -5" };
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse_u64(bad[i], 0, UINT64_MAX, &v) != -EINVAL)
			fail_msg("accepted \"%s\" as %llu", bad[i], (unsigned long long)v);
}

/* --- mkdir_p ------------------------------------------------------------- */

static void test_mkdir_p(void **state)
{
	struct fixture *f = *state;
	char cwd[4096];
	struct stat st;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(mkdir_p(at(f, "a/b/c/d"), 0700), 0);
	assert_true(is_dir(at(f, "a")));
	assert_true(is_dir(at(f, "a/b")));
	assert_true(is_dir(at(f, "a/b/c/d")));
	assert_int_equal(stat(at(f, "a/b/c/d"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	/* again: already there is fine */
	assert_int_equal(mkdir_p(at(f, "a/b/c/d"), 0700), 0);
	assert_int_equal(mkdir_p(at(f, "a/b"), 0700), 0);
	/* trailing and doubled slashes */
	assert_int_equal(mkdir_p(at(f, "x//y/"), 0755), 0);
	assert_true(is_dir(at(f, "x/y")));
	assert_int_equal(mkdir_p(f->dir, 0700), 0);
	assert_int_equal(mkdir_p("/", 0700), 0);
	/* relative paths */
	assert_int_equal(chdir(f->dir), 0);
	assert_int_equal(mkdir_p("rel/one", 0700), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_true(is_dir(at(f, "rel/one")));
}

static void test_mkdir_p_errors(void **state)
{
	struct fixture *f = *state;
	char *path = malloc(5000);

	assert_int_equal(mkdir_p("", 0700), -ENAMETOOLONG);
	assert_non_null(path);
	memset(path, 'p', 4999);
	path[4999] = '\0';
	assert_int_equal(mkdir_p(path, 0700), -ENAMETOOLONG);
	free(path);

	/* a file in the way of a parent */
	touch(at(f, "file"), "x");
	assert_int_equal(mkdir_p(at(f, "file/sub"), 0700), -ENOTDIR);
	assert_int_equal(mkdir_p(at(f, "file/sub/deeper"), 0700), -ENOTDIR);
}

/* "0 if it exists already" means the directory: a file there is an error. */
static void test_mkdir_p_file_in_the_way(void **state)
{
	struct fixture *f = *state;

	touch(at(f, "file"), "x");
	assert_true(mkdir_p(at(f, "file"), 0700) < 0);
	assert_int_equal(symlink("/nonexistent", at(f, "dangling")), 0);
	assert_true(mkdir_p(at(f, "dangling"), 0700) < 0);
}

/* --- rm_rf --------------------------------------------------------------- */

static void test_rm_rf_tree(void **state)
{
	struct fixture *f = *state;
	char outside[1100];

	assert_int_equal(mkdir_p(at(f, "t/a/b/c"), 0700), 0);
	assert_int_equal(mkdir_p(at(f, "t/empty"), 0700), 0);
	touch(at(f, "t/f1"), "1");
	touch(at(f, "t/a/f2"), "2");
	touch(at(f, "t/a/b/c/f3"), "3");
	touch(at(f, "t/.hidden"), "h");
	assert_int_equal(mkfifo(at(f, "t/a/fifo"), 0600), 0);

	/* symlinks are removed, never followed */
	assert_int_equal(mkdir_p(at(f, "keep"), 0700), 0);
	touch(at(f, "keep/precious"), "p");
	snprintf(outside, sizeof(outside), "%s/keep", f->dir);
	assert_int_equal(symlink(outside, at(f, "t/a/link-to-dir")), 0);
	assert_int_equal(symlink("/nonexistent", at(f, "t/dangling")), 0);

	assert_int_equal(rm_rf(at(f, "t")), 0);
	assert_false(exists(at(f, "t")));
	assert_true(exists(at(f, "keep/precious")));
}

static void test_rm_rf_missing_and_empty(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(rm_rf(at(f, "does-not-exist")), 0);
	assert_int_equal(mkdir_p(at(f, "e"), 0700), 0);
	assert_int_equal(rm_rf(at(f, "e")), 0);
	assert_false(exists(at(f, "e")));
}

static void test_rm_rf_deep_and_wide(void **state)
{
	struct fixture *f = *state;
	char rel[1100] = "deep";
	char name[64];

	for (int i = 0; i < 40; i++)
		strcat(rel, "/d");
	assert_int_equal(mkdir_p(at(f, rel), 0700), 0);
	touch(at(f, strcat(rel, "/leaf")), "x");
	assert_int_equal(mkdir_p(at(f, "wide"), 0700), 0);
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "wide/file-%03d", i);
		touch(at(f, name), "w");
	}
	assert_int_equal(rm_rf(at(f, "deep")), 0);
	assert_int_equal(rm_rf(at(f, "wide")), 0);
	assert_false(exists(at(f, "deep")));
	assert_false(exists(at(f, "wide")));
}

static void test_rm_rf_at_keeps_dir(void **state)
{
	struct fixture *f = *state;
	int fd;

	assert_int_equal(mkdir_p(at(f, "k/sub/sub2"), 0700), 0);
	touch(at(f, "k/x"), "x");
	touch(at(f, "k/sub/sub2/y"), "y");
	fd = open(at(f, "k"), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(rm_rf_at(fd), 0);
	/* twice: nothing left to do */
	assert_int_equal(rm_rf_at(fd), 0);
	close(fd);
	assert_true(is_dir(at(f, "k")));
	assert_false(exists(at(f, "k/x")));
	assert_false(exists(at(f, "k/sub")));
}

/* --- small file helpers ------------------------------------------------- */

static void test_proc_start_time(void **state)
{
	uint64_t v = 0, again = 0;

	(void)state;
	/* a ')' in the command name: the last one ends it */
	assert_int_equal(proc_stat_start_time("13 (a) b) S 1 13 13 0 -1 4194560 1 0 0 0 0 0 0 0 "
					      "20 0 1 0 1094497 1000 100",
					      &v),
			 0);
	assert_int_equal(v, 1094497);
	assert_int_equal(proc_stat_start_time("13 (sh) S 1 2", &v), -EINVAL);
	assert_int_equal(proc_stat_start_time("no paren", &v), -EINVAL);
	/* this process: a start time, the same each time */
	assert_int_equal(proc_start_time(getpid(), &v), 0);
	assert_int_equal(proc_start_time(getpid(), &again), 0);
	assert_true(v > 0);
	assert_int_equal(v, again);
	assert_int_equal(proc_start_time(-1, &v), -ESRCH);
}

static void test_maps_sysv(void **state)
{
	unsigned long key = 0;

	(void)state;
	assert_int_equal(
		proc_maps_sysv(
			"55d0c1a00000-55d0c1a2b000 r--p 00000000 fe:01 123 /usr/bin/x\n"
			"7f6cc8b38000-7f6cc8b39000 rw-s 00000000 00:01 32768                      "
			"/SYSV0052e2c1 (deleted)\n"
			"7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n",
			&key),
		0);
	assert_int_equal(key, 0x0052e2c1);
	/* IPC_PRIVATE */
	assert_int_equal(proc_maps_sysv("1-2 rw-s 0 00:01 5 /SYSV00000000 (deleted)", &key), 0);
	assert_int_equal(key, 0);
	/* a file whose name starts so, anonymous maps, nothing */
	assert_int_equal(proc_maps_sysv("1-2 r--p 0 fe:01 9 /SYSVfoo\n1-2 rw-p 0 00:00 0\n", &key),
			 -ENOENT);
	assert_int_equal(proc_maps_sysv("1-2 r--p 0 fe:01 9 /dev/shm/SYSV0052e2c1\n", &key),
			 -ENOENT);
	assert_int_equal(proc_maps_sysv("", &key), -ENOENT);
	/* this process maps none */
	assert_int_equal(proc_host_sysv_shm(getpid(), &key), 0);
	assert_true(proc_host_sysv_shm(-1, &key) < 0);
}

static void test_read_file(void **state)
{
	struct fixture *f = *state;
	char *text = NULL;
	size_t len = 0;

	touch(at(f, "r"), "hello world");
	assert_int_equal(read_file(at(f, "r"), 100, &text, &len), 0);
	assert_int_equal(len, 11);
	assert_string_equal(text, "hello world");
	free(text);
	/* at most @max bytes, still NUL-terminated */
	assert_int_equal(read_file(at(f, "r"), 5, &text, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(text, "hello");
	free(text);
	assert_int_equal(read_file(at(f, "missing"), 5, &text, NULL), -ENOENT);
}

static void test_read_write_full(void **state)
{
	int p[2];
	char buf[8];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write_full(p[1], "abcdef", 6), 0);
	close(p[1]);
	assert_int_equal(read_full(p[0], buf, 4), 0);
	assert_memory_equal(buf, "abcd", 4);
	assert_int_equal(read_full(p[0], buf, 4), -EPIPE);
	close(p[0]);
}

/* spawn_fds: each fd at 3 + its index in the child, whatever its number
 * here (given in decreasing order) */
static void test_spawn_fds(void **state)
{
	char *argv[] = { "sh", "-c", "echo a >&3; echo b >&4", NULL };
	int a[2], b[2], fds[2];
	char buf[8] = "";
	pid_t pid;

	(void)state;
	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	fds[0] = fcntl(a[1], F_DUPFD_CLOEXEC, 40);
	fds[1] = fcntl(b[1], F_DUPFD_CLOEXEC, 41);
	assert_true(dup3(fds[0], 44, O_CLOEXEC) == 44 && dup3(fds[1], 43, O_CLOEXEC) == 43);
	close(fds[0]);
	close(fds[1]);
	fds[0] = 44;
	fds[1] = 43;
	assert_int_equal(spawn_fds(argv, -1, -1, fds, 2, &pid), 0);
	assert_int_equal(spawn_wait(pid), 0);
	close(a[1]);
	close(b[1]);
	close(43);
	close(44);
	assert_int_equal(read(a[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "a\n", 2);
	assert_int_equal(read(b[0], buf, sizeof(buf)), 2);
	assert_memory_equal(buf, "b\n", 2);
	close(a[0]);
	close(b[0]);
	assert_int_equal(spawn_fds(argv, -1, -1, fds, SPAWN_FDS_MAX + 1, &pid), -EMFILE);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proc_start_time),
		cmocka_unit_test(test_hostport_v4),
		cmocka_unit_test(test_hostport_v6),
		cmocka_unit_test(test_hostport_bad),
		cmocka_unit_test(test_hostport_long_host),
		cmocka_unit_test(test_u64_ranges),
		cmocka_unit_test(test_u64_untouched_on_error),
		cmocka_unit_test(test_u64_malformed),
		cmocka_unit_test(test_maps_sysv),
		cmocka_unit_test(test_u64_leading_space_or_sign),
		T(test_mkdir_p),
		T(test_mkdir_p_errors),
		T(test_mkdir_p_file_in_the_way),
		T(test_rm_rf_tree),
		T(test_rm_rf_missing_and_empty),
		T(test_rm_rf_deep_and_wide),
		T(test_rm_rf_at_keeps_dir),
		T(test_read_file),
		cmocka_unit_test(test_read_write_full),
		cmocka_unit_test(test_spawn_fds),
	};
#undef T

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
