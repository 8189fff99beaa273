/* SPDX-License-Identifier: MIT */
/*
 * key: the pre-shared secret both hosts hold. A key file is one line,
 * "phaul-psk-v1 " followed by 64 hex digits (32 random bytes), mode 0600.
 * key_load() refuses files readable by group or others.
 */
#ifndef PHAUL_KEY_H
#define PHAUL_KEY_H

#include <stdint.h>

#define PHAUL_KEY_LEN 32

struct psk_key {
	uint8_t bytes[PHAUL_KEY_LEN];
};

/* Write a new random key to @path (must not exist yet). */
int key_generate(const char *path);
int key_load(const char *path, struct psk_key *ret);
/* Parse the text of a key file; -EINVAL if malformed. */
int key_parse(const char *text, struct psk_key *ret);

#endif
