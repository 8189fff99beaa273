/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: key_parse on a NUL-terminated copy of the input,
 * checked against an independent reading of the key file format
 * ("phaul-psk-v1 " + 64 hex digits + an optional newline, nothing else).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/key.h"
#include "fuzz.h"

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int oracle(const char *s, uint8_t out[PHAUL_KEY_LEN])
{
	static const char tag[] = "phaul-psk-v1 ";
	size_t n = strlen(s), t = sizeof(tag) - 1;

	if (n < t + 64 || memcmp(s, tag, t))
		return -1;
	for (size_t i = 0; i < 64; i++)
		if (hex(s[t + i]) < 0)
			return -1;
	if (!(n == t + 64 || (n == t + 65 && s[t + 64] == '\n')))
		return -1;
	for (size_t i = 0; i < PHAUL_KEY_LEN; i++)
		out[i] = hex(s[t + 2 * i]) << 4 | hex(s[t + 2 * i + 1]);
	return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_QUIET);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct psk_key k;
	uint8_t want[PHAUL_KEY_LEN];
	int r, o;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	r = key_parse(text, &k);
	o = oracle(text, want);
	CHECK(r == 0 || r == -EINVAL);
	CHECK((r == 0) == (o == 0));
	if (r == 0)
		CHECK(memcmp(k.bytes, want, PHAUL_KEY_LEN) == 0);
	free(text);
	return 0;
}
