/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/key.h"

int cmd_keygen(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: phaul keygen FILE\n");
		return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	if (key_generate(argv[1]) < 0)
		return 1;
	fprintf(stderr,
		"wrote a new key to %s; copy it to the other host over a "
		"trusted channel\n",
		argv[1]);
	return 0;
}
