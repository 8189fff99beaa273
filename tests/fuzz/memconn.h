/* SPDX-License-Identifier: MIT */
/*
 * memconn: a conn whose reads come from a fuzzer's input and whose writes
 * go nowhere, for fuzz targets (header-only: each target is one file).
 */
#ifndef PHAUL_FUZZ_MEMCONN_H
#define PHAUL_FUZZ_MEMCONN_H

#include <string.h>
#include <sys/types.h>

#include "proto/conn.h"

struct memconn {
	const uint8_t *p;
	size_t len, pos;
};

static ssize_t memconn_read(void *priv, void *buf, size_t len)
{
	struct memconn *m = priv;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return n;
}

static ssize_t memconn_write(void *priv, const void *buf, size_t len)
{
	return len;
}

static void memconn_close(void *priv)
{
}

static const struct conn_ops memconn_ops = {
	.read = memconn_read,
	.write = memconn_write,
	.close = memconn_close,
};

#endif
