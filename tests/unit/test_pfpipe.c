/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/pfpipe: chunks encoded on the worker arrive in the
 * order they were submitted, byte for byte, whatever each one holds
 * (compressible, random, zero pages) and however many more than the ring
 * has slots; what the codec counts is what went; chunks dropped after a
 * failure are never sent, and the pipe works on after.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
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
#include "common/page.h"
#include "proto/conn.h"
#include "proto/pageframe.h"
#include "proto/pfpipe.h"
#include "proto/wire.h"

#define CHUNKS (3 * PF_PIPE_SLOTS + 5)

/* Chunk @i (1..64 pages): zero, random and text pages by turns. */
static size_t chunk(unsigned int i, uint8_t *buf)
{
	static const char w[] = "pages go in order, encoded beside the sending; ";
	size_t pages = 1 + (i * 37) % PF_PAGES_MAX;

	for (size_t j = 0; j < pages; j++) {
		uint8_t *p = buf + j * PAGE;
		uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull + j;
		if ((i + j) % 5 == 0) {
			memset(p, 0, PAGE);
		} else if (i % 3 == 0) {
			for (size_t b = 0; b < PAGE; b++) {
				x ^= x << 13, x ^= x >> 7, x ^= x << 17;
				p[b] = (uint8_t)x;
			}
		} else {
			for (size_t b = 0; b < PAGE; b++)
				p[b] = w[(b + i + j) % (sizeof(w) - 1)];
		}
	}
	return pages * PAGE;
}

struct rx {
	struct conn *c;
	unsigned int first, n; /* the chunks it expects */
	int fails;
};

static void *receiver(void *arg)
{
	struct rx *rx = arg;
	uint8_t *got = malloc(FRAME_DATA_MAX), *want = malloc(FRAME_DATA_MAX);

	for (unsigned int i = rx->first; got && want && i < rx->first + rx->n; i++) {
		uint32_t len;
		uint64_t z;
		size_t wl = chunk(i, want);
		if (pages_recv(rx->c, got, FRAME_DATA_MAX, &len, &z) < 0 || len != wl ||
		    memcmp(got, want, wl))
			rx->fails++;
	}
	free(got);
	free(want);
	return NULL;
}

static void pair(struct conn **a, struct conn **b, struct pf_stats *st)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], a), 0);
	assert_int_equal(conn_from_fd(sv[1], b), 0);
	assert_int_equal(pf_attach(*a, st), 0);
	assert_int_equal(pf_attach(*b, NULL), 0);
	(*a)->pf->compress = PF_COMPRESS_ZSTD;
	(*b)->pf->zstd_ok = true;
}

/* Send the oldest chunk; its tag must be @want. */
static void send_oldest(struct pf_pipe *pp, struct conn *a, uint64_t want)
{
	uint64_t tag;
	size_t len;

	pf_pipe_wait(pp, &tag, &len);
	assert_int_equal(tag, want);
	assert_int_equal(pf_pipe_send(pp, a), 0);
}

static void test_in_order(void **state)
{
	struct pf_stats st = { 0 };
	struct conn *a, *b;
	struct rx rx = { .first = 0, .n = CHUNKS };
	struct pf_pipe *pp;
	pthread_t t;
	uint64_t next = 0, raw = 0;

	(void)state;
	pair(&a, &b, &st);
	rx.c = b;
	pp = pf_pipe_new(a);
	assert_non_null(pp);
	assert_ptr_equal(pf_pipe_codec(pp), a->pf);
	assert_int_equal(pthread_create(&t, NULL, receiver, &rx), 0);
	for (unsigned int i = 0; i < CHUNKS; i++) {
		uint8_t *buf = pf_pipe_slot(pp);
		if (!buf) {
			assert_int_equal(pf_pipe_queued(pp), PF_PIPE_SLOTS);
			send_oldest(pp, a, next++);
			buf = pf_pipe_slot(pp);
		}
		assert_non_null(buf);
		size_t len = chunk(i, buf);
		raw += len;
		pf_pipe_submit(pp, i, len);
		while (pf_pipe_queued(pp) && pf_pipe_oldest_done(pp))
			send_oldest(pp, a, next++);
	}
	/* a frame not waited for is not sent */
	if (pf_pipe_queued(pp))
		assert_int_equal(pf_pipe_send(pp, a), -EINVAL);
	while (pf_pipe_queued(pp))
		send_oldest(pp, a, next++);
	assert_int_equal(next, CHUNKS);
	pthread_join(t, NULL);
	assert_int_equal(rx.fails, 0);
	assert_int_equal(st.raw_bytes, raw);
	assert_true(st.zstd_frames > 0 && st.zstd_frames < CHUNKS);
	assert_true(st.zero_pages > 0);
	assert_int_equal(b->bytes_in, a->bytes_out);
	pf_pipe_free(pp);
	conn_free(a);
	conn_free(b);
}

static void test_drop(void **state)
{
	struct pf_stats st = { 0 };
	struct conn *a, *b;
	struct rx rx = { .first = 7, .n = 1 };
	struct pf_pipe *pp;
	pthread_t t;

	(void)state;
	pair(&a, &b, &st);
	rx.c = b;
	pp = pf_pipe_new(a);
	assert_non_null(pp);
	for (unsigned int i = 0; i < 5; i++)
		pf_pipe_submit(pp, i, chunk(i, pf_pipe_slot(pp)));
	a->pf->a.probing = true; /* as if one of them were auto's probe */
	pf_pipe_drop(pp);
	assert_int_equal(pf_pipe_queued(pp), 0);
	assert_false(a->pf->a.probing);
	/* nothing in it: nothing to wait for, nothing to send */
	{
		uint64_t tag = 1;
		size_t len = 1;
		pf_pipe_wait(pp, &tag, &len);
		assert_int_equal(len, 0);
		assert_int_equal(pf_pipe_send(pp, a), -EINVAL);
	}
	assert_int_equal(a->bytes_out, 0);
	/* it goes on: the next chunk is the only one on the wire */
	assert_int_equal(pthread_create(&t, NULL, receiver, &rx), 0);
	pf_pipe_submit(pp, 7, chunk(7, pf_pipe_slot(pp)));
	send_oldest(pp, a, 7);
	pthread_join(t, NULL);
	assert_int_equal(rx.fails, 0);
	assert_int_equal(b->bytes_in, a->bytes_out);
	/* freed with chunks still in the ring: the worker is waited for */
	pf_pipe_submit(pp, 8, chunk(8, pf_pipe_slot(pp)));
	pf_pipe_free(pp);
	conn_free(a);
	conn_free(b);
}

static void test_wanted(void **state)
{
	struct pf_stats st = { 0 };
	struct conn *a, *b;

	(void)state;
	pair(&a, &b, &st);
	a->pf->compress = PF_COMPRESS_OFF;
	assert_false(pf_pipe_wanted(a));
	a->pf->compress = PF_COMPRESS_AUTO;
	setenv("PHAUL_COMPRESS_THREAD", "0", 1);
	assert_false(pf_pipe_wanted(a));
	unsetenv("PHAUL_COMPRESS_THREAD");
	assert_int_equal(pf_pipe_wanted(a), sysconf(_SC_NPROCESSORS_ONLN) >= 2);
	conn_free(a);
	conn_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_wanted),
	};

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
