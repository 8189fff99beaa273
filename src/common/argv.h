/* SPDX-License-Identifier: MIT */
/*
 * argv: NUL-separated lists as /proc/PID/cmdline and /proc/PID/environ
 * hold them, split into NULL-terminated vectors (restart mode).
 *
 * nul_split() splits @len bytes of @buf (a last element without its NUL
 * counts too) into at most @max elements, each at most @elem_max bytes;
 * -E2BIG beyond that. The vector and its strings are one allocation:
 * free(*ret) releases everything.
 */
#ifndef PHAUL_ARGV_H
#define PHAUL_ARGV_H

#include <stddef.h>

int nul_split(const char *buf, size_t len, size_t max, size_t elem_max, char ***ret, size_t *ret_n);

#endif
