/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/wire: the 8-byte frame header and frame_send /
 * frame_recv over a socketpair wrapped with conn_from_fd().
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "proto/conn.h"
#include "proto/wire.h"

/* Every read in these tests gives up after this long instead of hanging. */
#define TIMEOUT_MS 5000

struct pair {
	struct conn *a; /* our end, as a conn */
	struct conn *b; /* the peer, as a conn (NULL when raw is used) */
	int raw;	/* the peer as a plain fd (-1 when b is used) */
};

static void pair_open(struct pair *p, bool raw_peer)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], &p->a), 0);
	assert_int_equal(conn_set_timeout(p->a, TIMEOUT_MS), 0);
	if (raw_peer) {
		p->b = NULL;
		p->raw = sv[1];
	} else {
		assert_int_equal(conn_from_fd(sv[1], &p->b), 0);
		assert_int_equal(conn_set_timeout(p->b, TIMEOUT_MS), 0);
		p->raw = -1;
	}
}

static void pair_close(struct pair *p)
{
	conn_free(p->a);
	conn_free(p->b);
	if (p->raw >= 0)
		close(p->raw);
	p->a = p->b = NULL;
	p->raw = -1;
}

static void raw_write(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void fill_pattern(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = seed >> 16;
	}
}

/* --- header ------------------------------------------------------------ */

static void check_roundtrip(enum frame_type type, uint32_t len)
{
	uint8_t hdr[FRAME_HDR_LEN];
	enum frame_type t = 0;
	uint32_t l = 0;

	memset(hdr, 0xaa, sizeof(hdr));
	frame_hdr_encode(hdr, type, len);
	assert_int_equal(hdr[0], 'P');
	assert_int_equal(hdr[1], 'H');
	assert_int_equal(hdr[2], type);
	assert_int_equal(hdr[3], 0);
	assert_int_equal(hdr[4], (len >> 24) & 0xff);
	assert_int_equal(hdr[5], (len >> 16) & 0xff);
	assert_int_equal(hdr[6], (len >> 8) & 0xff);
	assert_int_equal(hdr[7], len & 0xff);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), 0);
	assert_int_equal(t, type);
	assert_int_equal(l, len);
}

static void test_hdr_roundtrip(void **state)
{
	static const uint32_t lens[] = { 0, 1, 2, 255, 256, 0x1234, 65535, FRAME_MSG_MAX };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		check_roundtrip(FRAME_MSG, lens[i]);
		check_roundtrip(FRAME_DATA, lens[i]);
	}
	check_roundtrip(FRAME_DATA, 0x01f2e3);
	check_roundtrip(FRAME_DATA, FRAME_DATA_MAX - 1);
	check_roundtrip(FRAME_DATA, FRAME_DATA_MAX);
}

static void test_hdr_big_endian(void **state)
{
	const uint8_t hdr[FRAME_HDR_LEN] = { 'P', 'H', FRAME_DATA, 0, 0x00, 0x01, 0x02, 0x03 };
	enum frame_type t;
	uint32_t l;

	assert_int_equal(frame_hdr_decode(hdr, &t, &l), 0);
	assert_int_equal(t, FRAME_DATA);
	assert_int_equal(l, 0x010203);
}

static void test_hdr_bad_magic(void **state)
{
	uint8_t hdr[FRAME_HDR_LEN];
	enum frame_type t;
	uint32_t l;

	for (int byte = 0; byte < 2; byte++) {
		for (int v = 0; v < 256; v++) {
			frame_hdr_encode(hdr, FRAME_MSG, 16);
			if (hdr[byte] == v)
				continue;
			hdr[byte] = v;
			assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
		}
	}
	frame_hdr_encode(hdr, FRAME_MSG, 16);
	hdr[0] = 'H';
	hdr[1] = 'P';
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
	frame_hdr_encode(hdr, FRAME_MSG, 16);
	hdr[0] = 'p';
	hdr[1] = 'h';
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
}

static void test_hdr_nonzero_flags(void **state)
{
	uint8_t hdr[FRAME_HDR_LEN];
	enum frame_type t;
	uint32_t l;

	for (int v = 1; v < 256; v++) {
		frame_hdr_encode(hdr, FRAME_MSG, 1);
		hdr[3] = v;
		assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
		frame_hdr_encode(hdr, FRAME_DATA, 1);
		hdr[3] = v;
		assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
	}
}

static void test_hdr_unknown_type(void **state)
{
	uint8_t hdr[FRAME_HDR_LEN];
	enum frame_type t;
	uint32_t l;

	for (int v = 0; v < 256; v++) {
		if (v == FRAME_MSG || v == FRAME_DATA || v == FRAME_PAGES)
			continue;
		frame_hdr_encode(hdr, FRAME_MSG, 0);
		hdr[2] = v;
		assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
	}
}

static void test_hdr_length_limits(void **state)
{
	uint8_t hdr[FRAME_HDR_LEN];
	enum frame_type t;
	uint32_t l;

	frame_hdr_encode(hdr, FRAME_MSG, FRAME_MSG_MAX);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), 0);
	frame_hdr_encode(hdr, FRAME_MSG, FRAME_MSG_MAX + 1);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
	/* a message may not borrow the data frame's larger limit */
	frame_hdr_encode(hdr, FRAME_MSG, FRAME_DATA_MAX);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);

	frame_hdr_encode(hdr, FRAME_DATA, FRAME_DATA_MAX);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), 0);
	frame_hdr_encode(hdr, FRAME_DATA, FRAME_DATA_MAX + 1);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);

	frame_hdr_encode(hdr, FRAME_PAGES, FRAME_PAGES_MAX);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), 0);
	frame_hdr_encode(hdr, FRAME_PAGES, FRAME_PAGES_MAX + 1);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);

	frame_hdr_encode(hdr, FRAME_DATA, 0xffffffffu);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
	frame_hdr_encode(hdr, FRAME_MSG, 0x80000000u);
	assert_int_equal(frame_hdr_decode(hdr, &t, &l), -EPROTO);
}

/* --- frames over a socketpair ------------------------------------------ */

static void test_send_recv(void **state)
{
	struct pair p;
	uint8_t out[1000], in[1000];
	enum frame_type t;
	uint32_t l;

	pair_open(&p, false);
	fill_pattern(out, sizeof(out), 1);

	assert_int_equal(frame_send(p.a, FRAME_MSG, "hello", 5), 0);
	assert_int_equal(frame_send(p.a, FRAME_DATA, out, sizeof(out)), 0);
	assert_int_equal(frame_send(p.a, FRAME_DATA, NULL, 0), 0);
	assert_int_equal(frame_send(p.a, FRAME_MSG, "x", 1), 0);
	assert_int_equal(p.a->bytes_out, 4 * FRAME_HDR_LEN + 5 + sizeof(out) + 0 + 1);

	memset(in, 0, sizeof(in));
	assert_int_equal(frame_recv(p.b, &t, in, sizeof(in), &l), 0);
	assert_int_equal(t, FRAME_MSG);
	assert_int_equal(l, 5);
	assert_memory_equal(in, "hello", 5);

	assert_int_equal(frame_recv(p.b, &t, in, sizeof(in), &l), 0);
	assert_int_equal(t, FRAME_DATA);
	assert_int_equal(l, sizeof(out));
	assert_memory_equal(in, out, sizeof(out));

	l = 12345;
	assert_int_equal(frame_recv(p.b, &t, in, sizeof(in), &l), 0);
	assert_int_equal(t, FRAME_DATA);
	assert_int_equal(l, 0);

	/* a payload exactly the size of the buffer fits */
	assert_int_equal(frame_recv(p.b, &t, in, 1, &l), 0);
	assert_int_equal(t, FRAME_MSG);
	assert_int_equal(l, 1);
	assert_int_equal(in[0], 'x');
	assert_int_equal(p.b->bytes_in, p.a->bytes_out);

	pair_close(&p);
}

static void test_send_too_large(void **state)
{
	struct pair p;
	uint8_t *buf = calloc(1, FRAME_DATA_MAX + 1);

	assert_non_null(buf);
	pair_open(&p, false);
	assert_int_equal(frame_send(p.a, FRAME_MSG, buf, FRAME_MSG_MAX + 1), -EMSGSIZE);
	assert_int_equal(frame_send(p.a, FRAME_DATA, buf, FRAME_DATA_MAX + 1), -EMSGSIZE);
	/* nothing at all went out */
	assert_int_equal(p.a->bytes_out, 0);
	pair_close(&p);
	free(buf);
}

struct sender {
	struct conn *c;
	enum frame_type type;
	const void *buf;
	size_t len;
	int ret;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	s->ret = frame_send(s->c, s->type, s->buf, s->len);
	return NULL;
}

/* Largest frames of both types, bigger than the socket buffer: a thread sends. */
static void test_send_recv_max(void **state)
{
	struct pair p;
	uint8_t *out = malloc(FRAME_DATA_MAX), *in = malloc(FRAME_DATA_MAX);
	struct sender s;
	pthread_t th;
	enum frame_type t;
	uint32_t l;

	assert_non_null(out);
	assert_non_null(in);
	fill_pattern(out, FRAME_DATA_MAX, 7);
	pair_open(&p, false);

	s = (struct sender){ .c = p.a, .type = FRAME_DATA, .buf = out, .len = FRAME_DATA_MAX };
	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
	assert_int_equal(frame_recv(p.b, &t, in, FRAME_DATA_MAX, &l), 0);
	pthread_join(th, NULL);
	assert_int_equal(s.ret, 0);
	assert_int_equal(t, FRAME_DATA);
	assert_int_equal(l, FRAME_DATA_MAX);
	assert_memory_equal(in, out, FRAME_DATA_MAX);

	s = (struct sender){ .c = p.a, .type = FRAME_MSG, .buf = out, .len = FRAME_MSG_MAX };
	assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
	assert_int_equal(frame_recv(p.b, &t, in, FRAME_DATA_MAX, &l), 0);
	pthread_join(th, NULL);
	assert_int_equal(s.ret, 0);
	assert_int_equal(t, FRAME_MSG);
	assert_int_equal(l, FRAME_MSG_MAX);
	assert_memory_equal(in, out, FRAME_MSG_MAX);

	pair_close(&p);
	free(out);
	free(in);
}

static void test_recv_exceeds_cap(void **state)
{
	struct pair p;
	uint8_t buf[64];
	enum frame_type t;
	uint32_t l;

	pair_open(&p, false);
	memset(buf, 'z', sizeof(buf));
	assert_int_equal(frame_send(p.b, FRAME_DATA, buf, 33), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(frame_recv(p.a, &t, buf, 32, &l), -EMSGSIZE);
	/* the header was checked before any of the payload was read */
	assert_int_equal(p.a->bytes_in, FRAME_HDR_LEN);
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);

	/* and with a zero-sized buffer */
	pair_close(&p);
	pair_open(&p, false);
	assert_int_equal(frame_send(p.b, FRAME_MSG, "a", 1), 0);
	assert_int_equal(frame_recv(p.a, &t, buf, 0, &l), -EMSGSIZE);
	pair_close(&p);
}

static void test_recv_bad_header(void **state)
{
	struct pair p;
	uint8_t hdr[FRAME_HDR_LEN], buf[16];
	enum frame_type t;
	uint32_t l;

	pair_open(&p, true);
	frame_hdr_encode(hdr, FRAME_MSG, 4);
	hdr[3] = 1;
	raw_write(p.raw, hdr, sizeof(hdr));
	raw_write(p.raw, "abcd", 4);
	assert_int_equal(frame_recv(p.a, &t, buf, sizeof(buf), &l), -EPROTO);
	assert_int_equal(p.a->bytes_in, FRAME_HDR_LEN);
	pair_close(&p);

	/* an over-long length is refused from the header alone, whatever cap is */
	pair_open(&p, true);
	frame_hdr_encode(hdr, FRAME_DATA, FRAME_DATA_MAX + 1);
	raw_write(p.raw, hdr, sizeof(hdr));
	assert_int_equal(frame_recv(p.a, &t, buf, SIZE_MAX, &l), -EPROTO);
	pair_close(&p);
}

static void test_peer_closes_mid_header(void **state)
{
	struct pair p;
	uint8_t hdr[FRAME_HDR_LEN], buf[16];
	enum frame_type t;
	uint32_t l;

	pair_open(&p, true);
	frame_hdr_encode(hdr, FRAME_MSG, 4);
	raw_write(p.raw, hdr, 5);
	close(p.raw);
	p.raw = -1;
	assert_int_equal(frame_recv(p.a, &t, buf, sizeof(buf), &l), -EPIPE);
	pair_close(&p);
}

static void test_peer_closes_mid_payload(void **state)
{
	struct pair p;
	uint8_t hdr[FRAME_HDR_LEN], buf[4096];
	enum frame_type t;
	uint32_t l;

	pair_open(&p, true);
	frame_hdr_encode(hdr, FRAME_DATA, 4000);
	raw_write(p.raw, hdr, sizeof(hdr));
	raw_write(p.raw, buf, 1000);
	close(p.raw);
	p.raw = -1;
	assert_int_equal(frame_recv(p.a, &t, buf, sizeof(buf), &l), -EPIPE);
	pair_close(&p);
}

static void test_peer_closes_between_frames(void **state)
{
	struct pair p;
	uint8_t buf[16];
	enum frame_type t;
	uint32_t l;

	pair_open(&p, false);
	assert_int_equal(frame_send(p.b, FRAME_MSG, "ok", 2), 0);
	conn_free(p.b);
	p.b = NULL;
	assert_int_equal(frame_recv(p.a, &t, buf, sizeof(buf), &l), 0);
	assert_int_equal(l, 2);
	assert_int_equal(frame_recv(p.a, &t, buf, sizeof(buf), &l), -EPIPE);
	pair_close(&p);
}

static void test_silent_peer_times_out(void **state)
{
	struct pair p;
	uint8_t hdr[FRAME_HDR_LEN], buf[16];
	enum frame_type t;
	uint32_t l;

	pair_open(&p, true);
	assert_int_equal(conn_set_timeout(p.a, 100), 0);
	assert_int_equal(frame_recv(p.a, &t, buf, sizeof(buf), &l), -ETIMEDOUT);
	pair_close(&p);

	/* half a frame, and the peer stays connected but silent */
	pair_open(&p, true);
	assert_int_equal(conn_set_timeout(p.a, 100), 0);
	frame_hdr_encode(hdr, FRAME_MSG, 10);
	raw_write(p.raw, hdr, sizeof(hdr));
	raw_write(p.raw, "abc", 3);
	assert_int_equal(frame_recv(p.a, &t, buf, sizeof(buf), &l), -ETIMEDOUT);
	pair_close(&p);
}

static void test_send_to_closed_peer(void **state)
{
	struct pair p;
	uint8_t *buf = calloc(1, FRAME_DATA_MAX);
	int r = 0;

	assert_non_null(buf);
	pair_open(&p, true);
	close(p.raw);
	p.raw = -1;
	/* SIGPIPE is ignored (main); the write fails instead of blocking */
	for (int i = 0; i < 4 && r == 0; i++)
		r = frame_send(p.a, FRAME_DATA, buf, FRAME_DATA_MAX);
	assert_int_equal(r, -EPIPE);
	pair_close(&p);
	free(buf);
}

/* A conn that records its writes: how many, and the bytes in order. */
struct rec {
	uint8_t buf[FRAME_DATA_MAX + 64];
	size_t len;
	int writes;
};

static ssize_t rec_write(void *priv, const void *buf, size_t len)
{
	struct rec *r = priv;

	if (r->len + len > sizeof(r->buf))
		return -ENOSPC;
	memcpy(r->buf + r->len, buf, len);
	r->len += len;
	r->writes++;
	return len;
}

static ssize_t rec_read(void *priv, void *buf, size_t len)
{
	return 0;
}

static void rec_close(void *priv)
{
}

static const struct conn_ops rec_ops = {
	.read = rec_read,
	.write = rec_write,
	.close = rec_close,
};

/* A frame's header goes in the write (the TLS record) of its payload's
 * start: one write for a small frame, two for one past CONN_SENDBUF. */
static void test_send_header_with_payload(void **state)
{
	static struct rec r;
	static uint8_t big[FRAME_DATA_MAX];
	struct conn *c;
	enum frame_type type;
	uint32_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = i * 7;
	assert_int_equal(conn_new(&rec_ops, &r, &c), 0);
	assert_int_equal(frame_send(c, FRAME_MSG, "hello", 5), 0);
	assert_int_equal(r.writes, 1);
	assert_int_equal(r.len, FRAME_HDR_LEN + 5);
	assert_int_equal(frame_hdr_decode(r.buf, &type, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(r.buf + FRAME_HDR_LEN, "hello", 5);
	r.len = 0, r.writes = 0;
	assert_int_equal(frame_send(c, FRAME_DATA, NULL, 0), 0);
	assert_int_equal(r.writes, 1);
	assert_int_equal(r.len, FRAME_HDR_LEN);
	r.len = 0, r.writes = 0;
	assert_int_equal(frame_send(c, FRAME_DATA, big, CONN_SENDBUF - FRAME_HDR_LEN), 0);
	assert_int_equal(r.writes, 1);
	r.len = 0, r.writes = 0;
	assert_int_equal(frame_send(c, FRAME_DATA, big, sizeof(big)), 0);
	assert_int_equal(r.writes, 2);
	assert_int_equal(r.len, FRAME_HDR_LEN + sizeof(big));
	assert_int_equal(frame_hdr_decode(r.buf, &type, &len), 0);
	assert_int_equal(type, FRAME_DATA);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(r.buf + FRAME_HDR_LEN, big, sizeof(big));
	assert_int_equal(c->bytes_out,
			 2 * FRAME_HDR_LEN + 5 + FRAME_HDR_LEN + CONN_SENDBUF + sizeof(big));
	conn_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_roundtrip),
		cmocka_unit_test(test_hdr_big_endian),
		cmocka_unit_test(test_hdr_bad_magic),
		cmocka_unit_test(test_hdr_nonzero_flags),
		cmocka_unit_test(test_hdr_unknown_type),
		cmocka_unit_test(test_hdr_length_limits),
		cmocka_unit_test(test_send_recv),
		cmocka_unit_test(test_send_header_with_payload),
		cmocka_unit_test(test_send_too_large),
		cmocka_unit_test(test_send_recv_max),
		cmocka_unit_test(test_recv_exceeds_cap),
		cmocka_unit_test(test_recv_bad_header),
		cmocka_unit_test(test_peer_closes_mid_header),
		cmocka_unit_test(test_peer_closes_mid_payload),
		cmocka_unit_test(test_peer_closes_between_frames),
		cmocka_unit_test(test_silent_peer_times_out),
		cmocka_unit_test(test_send_to_closed_peer),
	};

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
