/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the lxc driver's parser of the container config a
 * source sends (drivers/htype/lxcconf.h). The input, NUL-terminated, is
 * a config; what parses must hold the parser's promises: an absolute
 * rootfs, at most LXCCONF_NET_MAX typed devices, interface names that fit.
 * The same input as a tty's key from the images (lxcconf_tty_key): what
 * passes is "tty[" hex ":" hex "]", a value CRIU's config file can hold.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "drivers/htype/lxcconf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lxcconf c;
	char key[40], *s;

	if (size > 65536)
		return 0;
	log_init("fuzz", LOG_QUIET);
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (lxcconf_parse(s, &c) == 0) {
		CHECK(c.rootfs[0] == '/' && c.nr_net <= LXCCONF_NET_MAX);
		for (size_t i = 0; i < c.nr_net; i++) {
			CHECK(c.net[i].type != LXCNET_UNSET);
			CHECK(strlen(c.net[i].link) < 16 && strlen(c.net[i].pair) < 16);
		}
	}
	if (lxcconf_tty_key(s, key, sizeof(key)) == 0) {
		CHECK(!strncmp(key, "tty[", 4) && key[strlen(key) - 1] == ']');
		CHECK(strspn(key + 4, "0123456789abcdef:") == strlen(key) - 5);
		CHECK(!strncmp(s, key, strlen(key)));
	}
	free(s);
	return 0;
}
