/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: frame headers and frame_recv over an in-memory conn.
 *
 * Input: [0] bytes per read() call (0: as many as asked), [1] receive
 * buffer size (0: FRAME_DATA_MAX, 1: FRAME_MSG_MAX, n: 16 * n), then the
 * byte stream. Every 8-byte window at the start is also checked against
 * an independent reading of the header format (PROTOCOL.txt), and every
 * FRAME_MSG payload received goes through msg_decode.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/log.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/wire.h"
#include "fuzz.h"

struct mem {
	const uint8_t *p;
	size_t len, pos, chunk;
};

static ssize_t mem_read(void *priv, void *buf, size_t len)
{
	struct mem *m = priv;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->chunk && n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return n;
}

static ssize_t mem_write(void *priv, const void *buf, size_t len)
{
	return len;
}

static int mem_set_timeout(void *priv, int timeout_ms)
{
	return 0;
}

static void mem_close(void *priv)
{
}

static const struct conn_ops mem_ops = {
	.read = mem_read,
	.write = mem_write,
	.set_timeout = mem_set_timeout,
	.close = mem_close,
};

/* The header rules, written again from PROTOCOL.txt. */
static int oracle(const uint8_t *h, uint32_t *len)
{
	uint32_t l = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7];

	*len = l;
	if (h[0] != 'P' || h[1] != 'H' || h[3] != 0)
		return -1;
	if (h[2] == 1)
		return l <= 65536 ? 1 : -1;
	if (h[2] == 2)
		return l <= 262144 ? 2 : -1;
	if (h[2] == 3)
		return l <= 262144 + 16 ? 3 : -1;
	return -1;
}

static void check_header(const uint8_t *h)
{
	enum frame_type type = 0;
	uint32_t len = 0, want_len;
	int want = oracle(h, &want_len);
	int r = frame_hdr_decode(h, &type, &len);

	if (want < 0) {
		CHECK(r == -EPROTO);
	} else {
		CHECK(r == 0);
		CHECK((int)type == want);
		CHECK(len == want_len);
	}
}

static uint8_t space[FRAME_DATA_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_QUIET);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { 0 };
	struct conn *c;
	uint8_t *buf;
	size_t cap;

	if (size < 2)
		return 0;
	m.chunk = data[0];
	cap = data[1] == 0 ? FRAME_DATA_MAX : data[1] == 1 ? FRAME_MSG_MAX : 16u * data[1];
	m.p = data + 2;
	m.len = size - 2;

	for (size_t i = 0; i + FRAME_HDR_LEN <= m.len && i < 4; i++)
		check_header(m.p + i);

	/* the last @cap bytes of a global: ASan sees any write past cap */
	buf = space + sizeof(space) - cap;
	if (conn_new(&mem_ops, &m, &c) < 0)
		return 0;
	for (;;) {
		enum frame_type type;
		uint32_t len;
		size_t start = m.pos;
		int r = frame_recv(c, &type, buf, cap, &len);

		if (r < 0) {
			CHECK(r == -EPROTO || r == -EMSGSIZE || r == -EPIPE);
			if (r == -EPROTO || r == -EMSGSIZE)
				/* decided from the header alone: no payload read */
				CHECK(m.pos == start + FRAME_HDR_LEN);
			break;
		}
		CHECK(type == FRAME_MSG || type == FRAME_DATA || type == FRAME_PAGES);
		CHECK(len <= cap);
		CHECK(len <= (type == FRAME_MSG	 ? FRAME_MSG_MAX :
			      type == FRAME_DATA ? FRAME_DATA_MAX :
						   FRAME_PAGES_MAX));
		CHECK(m.pos == start + FRAME_HDR_LEN + len);
		CHECK(c->bytes_in == m.pos);
		if (type == FRAME_MSG) {
			Msg *msg = NULL;
			if (msg_decode(buf, len, &msg) == 0) {
				CHECK(msg_validate(msg) == 0);
				msg_free(msg);
			}
		}
	}
	conn_free(c);
	return 0;
}
