/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/key: key files (generate, load, permissions) and
 * key_parse on well-formed and malformed text.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/key.h"

#define TAG "phaul-psk-v1 "
#define HEX64 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

struct fixture {
	char dir[1024];
	char path[1040];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/phaul-test-key.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/psk", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int r = rm_rf(f->dir);

	free(f);
	return r;
}

static void write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, text, strlen(text)), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *slurp(const char *path)
{
	char *text = NULL;

	assert_int_equal(read_file(path, 4096, &text, NULL), 0);
	return text;
}

/* --- key_generate / key_load --------------------------------------------- */

static void test_generate_mode_and_format(void **state)
{
	struct fixture *f = *state;
	struct psk_key k, parsed;
	struct stat st;
	char *text;

	assert_int_equal(key_generate(f->path), 0);
	assert_int_equal(lstat(f->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	text = slurp(f->path);
	assert_int_equal(strlen(text), strlen(TAG) + 64 + 1);
	assert_memory_equal(text, TAG, strlen(TAG));
	for (size_t i = strlen(TAG); i < strlen(TAG) + 64; i++)
		assert_non_null(strchr("0123456789abcdef", text[i]));
	assert_int_equal(text[strlen(TAG) + 64], '\n');

	assert_int_equal(key_load(f->path, &k), 0);
	assert_int_equal(key_parse(text, &parsed), 0);
	assert_memory_equal(k.bytes, parsed.bytes, PHAUL_KEY_LEN);
	free(text);
}

static void test_generate_even_with_lax_umask(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(0);
	struct stat st;
	int r = key_generate(f->path);

	umask(old);
	assert_int_equal(r, 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

static void test_generate_is_random(void **state)
{
	struct fixture *f = *state;
	char other[1100];
	struct psk_key a, b;
	static const uint8_t zero[PHAUL_KEY_LEN];

	snprintf(other, sizeof(other), "%s2", f->path);
	assert_int_equal(key_generate(f->path), 0);
	assert_int_equal(key_generate(other), 0);
	assert_int_equal(key_load(f->path, &a), 0);
	assert_int_equal(key_load(other, &b), 0);
	assert_memory_not_equal(a.bytes, b.bytes, PHAUL_KEY_LEN);
	assert_memory_not_equal(a.bytes, zero, PHAUL_KEY_LEN);
}

static void test_generate_refuses_overwrite(void **state)
{
	struct fixture *f = *state;
	char link[1100], target[1100];
	struct stat st;
	char *text;

	write_text(f->path, "precious\n", 0600);
	assert_int_equal(key_generate(f->path), -EEXIST);
	text = slurp(f->path);
	assert_string_equal(text, "precious\n");
	free(text);

	/* a dangling symlink is not followed to create its target */
	snprintf(link, sizeof(link), "%s/link", f->dir);
	snprintf(target, sizeof(target), "%s/target", f->dir);
	assert_int_equal(symlink(target, link), 0);
	assert_true(key_generate(link) < 0);
	assert_int_equal(lstat(target, &st), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_generate_bad_dir(void **state)
{
	struct fixture *f = *state;
	char path[1100];

	snprintf(path, sizeof(path), "%s/nope/psk", f->dir);
	assert_int_equal(key_generate(path), -ENOENT);
}

static void test_load_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct psk_key k;

	write_text(f->path, TAG HEX64 "\n", 0600);
	assert_int_equal(key_load(f->path, &k), 0);
	for (int i = 0; i < PHAUL_KEY_LEN; i++)
		assert_int_equal(k.bytes[i], i);

	/* read-only for the owner is fine too */
	write_text(f->path, TAG HEX64, 0400);
	memset(&k, 0xff, sizeof(k));
	assert_int_equal(key_load(f->path, &k), 0);
	assert_int_equal(k.bytes[31], 31);
}

static void test_load_refuses_open_modes(void **state)
{
	static const mode_t bad[] = { 0644, 0640, 0604, 0660, 0666, 0610, 0601, 0700 | 007 };
	struct fixture *f = *state;
	struct psk_key k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_text(f->path, TAG HEX64 "\n", bad[i]);
		assert_int_equal(key_load(f->path, &k), -EPERM);
	}
}

/* A symlink, a directory, a FIFO (no blocking on it) or a file another
 * user owns is refused before anything is read. */
static void test_load_refuses_what_is_not_roots_file(void **state)
{
	struct fixture *f = *state;
	struct psk_key k;
	char link[4200];

	write_text(f->path, TAG HEX64 "\n", 0600);
	snprintf(link, sizeof(link), "%s.link", f->path);
	assert_int_equal(symlink(f->path, link), 0);
	assert_int_equal(key_load(link, &k), -ELOOP);
	unlink(link);
	if (geteuid() == 0) {
		assert_int_equal(chown(f->path, 65534, 65534), 0);
		assert_int_equal(key_load(f->path, &k), -EPERM);
	}
	unlink(f->path);
	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(key_load(f->path, &k), -EPERM);
	unlink(f->path);
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_equal(key_load(f->path, &k), -EPERM);
	rmdir(f->path);
}

static void test_load_missing_or_malformed(void **state)
{
	struct fixture *f = *state;
	struct psk_key k;

	assert_int_equal(key_load(f->path, &k), -ENOENT);
	write_text(f->path, "hello\n", 0600);
	assert_int_equal(key_load(f->path, &k), -EINVAL);
	write_text(f->path, "", 0600);
	assert_int_equal(key_load(f->path, &k), -EINVAL);
	write_text(f->path, TAG HEX64 "\n" TAG HEX64 "\n", 0600);
	assert_int_equal(key_load(f->path, &k), -EINVAL);
}

/* --- key_parse ------------------------------------------------------------ */

static void test_parse_valid(void **state)
{
	struct psk_key k, upper;

	assert_int_equal(key_parse(TAG HEX64, &k), 0);
	for (int i = 0; i < PHAUL_KEY_LEN; i++)
		assert_int_equal(k.bytes[i], i);
	assert_int_equal(key_parse(TAG HEX64 "\n", &k), 0);
	assert_int_equal(
		key_parse(TAG "FFfe0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E",
			  &upper),
		0);
	assert_int_equal(upper.bytes[0], 0xff);
	assert_int_equal(upper.bytes[1], 0xfe);
	assert_int_equal(upper.bytes[31], 0x1e);
}

static void test_parse_wrong_tag(void **state)
{
	static const char *const bad[] = {
		"phaul-psk-v2 " HEX64,
		"PHAUL-PSK-V1 " HEX64,
		"phaul-psk-v1" HEX64,
		"phaul-psk-v1\t" HEX64,
		" phaul-psk-v1 " HEX64,
		"phaul-psk-v1  " HEX64,
		HEX64,
		"phaul-psk-v",
		"",
	};
	struct psk_key k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (key_parse(bad[i], &k) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
}

static void test_parse_short_hex(void **state)
{
	char text[sizeof(TAG HEX64)];
	struct psk_key k;

	for (size_t n = 0; n < 64; n++) {
		snprintf(text, sizeof(text), "%s%.*s", TAG, (int)n, HEX64);
		assert_int_equal(key_parse(text, &k), -EINVAL);
		/* and with the newline right after the short key */
		snprintf(text, sizeof(text), "%s%.*s\n", TAG, (int)n, HEX64);
		assert_int_equal(key_parse(text, &k), -EINVAL);
	}
}

static void test_parse_non_hex(void **state)
{
	static const char badc[] = { 'g', 'G', 'x', ' ',    '\n',      '-',
				     '+', ':', 'z', '\x7f', (char)0xc3 };
	char text[sizeof(TAG HEX64)];
	struct psk_key k;

	for (size_t c = 0; c < sizeof(badc); c++) {
		for (size_t pos = 0; pos < 64; pos++) {
			memcpy(text, TAG HEX64, sizeof(text));
			text[strlen(TAG) + pos] = badc[c];
			if (key_parse(text, &k) != -EINVAL)
				fail_msg("accepted 0x%02x at hex digit %zu", (unsigned char)badc[c],
					 pos);
		}
	}
	assert_int_equal(
		key_parse(TAG "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
			  &k),
		-EINVAL);
}

static void test_parse_trailing_garbage(void **state)
{
	static const char *const bad[] = {
		TAG HEX64 "0",
		TAG HEX64 "00",
		TAG HEX64 " ",
		TAG HEX64 "\n\n",
		TAG HEX64 "\r\n",
		TAG HEX64 "\nx",
		TAG HEX64 "\n" TAG HEX64,
		TAG HEX64 "x",
		TAG HEX64 "\t",
	};
	struct psk_key k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (key_parse(bad[i], &k) != -EINVAL)
			fail_msg("accepted trailing garbage in case %zu", i);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate_mode_and_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generate_even_with_lax_umask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generate_is_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generate_refuses_overwrite, setup, teardown),
		cmocka_unit_test_setup_teardown(test_generate_bad_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_refuses_open_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_refuses_what_is_not_roots_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_load_missing_or_malformed, setup, teardown),
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_wrong_tag),
		cmocka_unit_test(test_parse_short_hex),
		cmocka_unit_test(test_parse_non_hex),
		cmocka_unit_test(test_parse_trailing_garbage),
	};

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests_name("key", tests, NULL, NULL);
}
