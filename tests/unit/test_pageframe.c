/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/pageframe: zero pages cost one bit, what is
 * decoded is what was encoded, every malformed frame is refused, and
 * pages_send/pages_recv agree over a socketpair, with and without the
 * negotiated codec.
 */
#include <errno.h>
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
#include <zstd.h>

#include "common/log.h"
#include "common/page.h"
#include "proto/conn.h"
#include "proto/pageframe.h"
#include "proto/wire.h"

#define NP PF_PAGES_MAX

static uint8_t raw[FRAME_DATA_MAX], back[FRAME_DATA_MAX];

/* Page i: zero when bit i of @zero is set, else a pattern of its own. */
static void fill(uint64_t zero, size_t pages)
{
	for (size_t i = 0; i < pages; i++)
		for (size_t b = 0; b < PAGE; b++)
			raw[i * PAGE + b] = zero & 1ULL << i ? 0 : (uint8_t)(i * 31 + b % 251 + 1);
}

static void roundtrip(uint64_t zero, size_t pages)
{
	struct pf_stats st = { 0 };
	struct pf_ctx *pf = pf_ctx_new(&st);
	size_t n, nz = __builtin_popcountll(zero);
	uint32_t len = 0;
	uint64_t z = 0;

	assert_non_null(pf);
	fill(zero, pages);
	memset(back, 0xee, sizeof(back));
	n = pf_encode(pf, raw, pages * PAGE);
	assert_int_equal(n, PF_HDR_LEN + (pages - nz) * PAGE);
	assert_int_equal(st.zero_pages, nz);
	assert_int_equal(st.raw_bytes, pages * PAGE);
	assert_int_equal(st.wire_bytes, n);
	assert_int_equal(pf_decode(pf, pf->out, n, back, sizeof(back), &len, &z), 0);
	assert_int_equal(len, pages * PAGE);
	assert_int_equal(z, zero);
	assert_memory_equal(back, raw, pages * PAGE);
	pf_ctx_free(pf);
}

static void test_roundtrip(void **state)
{
	(void)state;
	roundtrip(0, NP);
	roundtrip(~0ULL, NP); /* all zero: 16 bytes for 256 KiB */
	roundtrip(0x5555555555555555ULL, NP);
	roundtrip(1ULL << 63, NP); /* the last page only */
	roundtrip(1, 1);
	roundtrip(0, 1);
	roundtrip(0x6, 3);
}

static void test_is_zero(void **state)
{
	(void)state;
	memset(raw, 0, PAGE);
	assert_true(pf_is_zero(raw, PAGE));
	for (size_t b = 0; b < PAGE; b += 511) {
		raw[b] = 1;
		assert_false(pf_is_zero(raw, PAGE));
		raw[b] = 0;
	}
	raw[PAGE - 1] = 0x80;
	assert_false(pf_is_zero(raw, PAGE));
}

/* A valid frame of 3 pages (page 1 zero), to be broken by each test. */
static size_t good(struct pf_ctx *pf)
{
	fill(0x2, 3);
	return pf_encode(pf, raw, 3 * PAGE);
}

static void refused(struct pf_ctx *pf, size_t n, size_t cap)
{
	uint32_t len = 0;
	uint64_t z = 0;

	assert_int_equal(pf_decode(pf, pf->out, n, back, cap, &len, &z), -EPROTO);
}

static void test_malformed(void **state)
{
	struct pf_ctx *pf = pf_ctx_new(NULL);
	size_t n;

	(void)state;
	assert_non_null(pf);
	n = good(pf);
	refused(pf, PF_HDR_LEN - 1, sizeof(back)); /* short header */
	refused(pf, n - 1, sizeof(back));	   /* data short */
	refused(pf, n - PAGE, sizeof(back));	   /* a page short */
	refused(pf, 2 * PAGE, 2 * PAGE);	   /* over the receiver's room */
	pf->out[1] = 1;				   /* flags */
	refused(pf, n, sizeof(back));
	n = good(pf);
	pf->out[0] = 0x7f; /* unknown codec */
	refused(pf, n, sizeof(back));
	n = good(pf);
	pf->out[15] |= 0x8; /* a zero bit past the chunk's pages */
	refused(pf, n, sizeof(back));
	n = good(pf);
	pf->out[15] = 0x3; /* page 0 said zero too: one page too many */
	refused(pf, n, sizeof(back));
	n = good(pf);
	pf->out[7] = 1; /* not a multiple of PAGE */
	refused(pf, n, sizeof(back));
	n = good(pf);
	memset(pf->out + 4, 0, 4); /* empty */
	refused(pf, n, sizeof(back));
	n = good(pf);
	pf->out[5] = 0x10; /* over FRAME_DATA_MAX */
	refused(pf, n, sizeof(back));
	pf_ctx_free(pf);
}

/* Compressible pages: a few distinct words, like text. */
static void fill_text(size_t pages)
{
	static const char w[] = "every page verifies on the destination; ";

	for (size_t i = 0; i < pages * PAGE; i++)
		raw[i] = w[(i * 7 / 5 + i / 4096) % (sizeof(w) - 1)];
}

static void test_zstd_roundtrip(void **state)
{
	struct pf_stats st = { 0 };
	struct pf_ctx *tx = pf_ctx_new(&st), *rx = pf_ctx_new(NULL);
	uint32_t len;
	uint64_t z;
	size_t n;

	(void)state;
	assert_non_null(tx);
	assert_non_null(rx);
	tx->compress = PF_COMPRESS_ZSTD;
	rx->zstd_ok = true;
	fill_text(NP);
	memset(raw + 5 * PAGE, 0, PAGE); /* zero pages still go as a bit */
	n = pf_encode(tx, raw, NP * PAGE);
	assert_int_equal(tx->out[0], PF_ZSTD);
	assert_true(n < NP * PAGE / 8);
	assert_int_equal(st.zstd_frames, 1);
	assert_int_equal(st.zero_pages, 1);
	assert_int_equal(st.wire_bytes, n);
	assert_int_equal(pf_decode(rx, tx->out, n, back, sizeof(back), &len, &z), 0);
	assert_int_equal(len, NP * PAGE);
	assert_int_equal(z, 1ULL << 5);
	assert_memory_equal(back, raw, NP * PAGE);

	/* not negotiated: refused */
	rx->zstd_ok = false;
	assert_int_equal(pf_decode(rx, tx->out, n, back, sizeof(back), &len, &z), -EPROTO);
	rx->zstd_ok = true;
	/* every byte flipped in turn: an error, never wrong pages */
	for (size_t i = PF_HDR_LEN; i < n; i++) {
		tx->out[i] ^= 0x20;
		int r = pf_decode(rx, tx->out, n, back, sizeof(back), &len, &z);
		if (r == 0)
			assert_memory_equal(back, raw, NP * PAGE); /* (a flip zstd ignores) */
		else
			assert_true(r == -EBADMSG || r == -EPROTO);
		tx->out[i] ^= 0x20;
	}
	/* cut short, or with bytes after the frame */
	assert_int_equal(pf_decode(rx, tx->out, n - 1, back, sizeof(back), &len, &z), -EBADMSG);
	assert_int_equal(pf_decode(rx, tx->out, n + 1, back, sizeof(back), &len, &z), -EBADMSG);
	/* a valid zstd frame without its checksum */
	{
		ZSTD_CCtx *cc = ZSTD_createCCtx();
		uint8_t frame[PF_HDR_LEN + 4096];
		size_t zn;

		assert_non_null(cc);
		memcpy(frame, tx->out, PF_HDR_LEN);
		memset(frame + 12, 0, 4);
		frame[15] = 0xfe; /* page 0 only */
		memset(raw, 'a', PAGE);
		zn = ZSTD_compressCCtx(cc, frame + PF_HDR_LEN, 4096, raw, PAGE, 1);
		assert_false(ZSTD_isError(zn));
		frame[7] = 0; /* raw length: 8 pages */
		frame[6] = 0x80;
		frame[5] = 0;
		assert_int_equal(pf_decode(rx, frame, PF_HDR_LEN + zn, back, sizeof(back), &len,
					   &z),
				 -EBADMSG);
		ZSTD_freeCCtx(cc);
	}
	/* a frame declaring another size than the non-zero pages */
	tx->out[15] = 0x30; /* pages 4, 5 zero: one page fewer due */
	assert_int_equal(pf_decode(rx, tx->out, n, back, sizeof(back), &len, &z), -EBADMSG);

	/* incompressible pages go raw, zero pages still skipped */
	for (size_t i = 0; i < NP * PAGE; i++) {
		uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;
		x = (x ^ x >> 30) * 0xbf58476d1ce4e5b9ull;
		raw[i] = (uint8_t)((x ^ x >> 27) * 0x94d049bb133111ebull >> 56);
	}
	memset(raw, 0, PAGE);
	n = pf_encode(tx, raw, NP * PAGE);
	assert_int_equal(tx->out[0], PF_RAW);
	assert_int_equal(n, PF_HDR_LEN + (NP - 1) * PAGE);
	assert_int_equal(pf_decode(rx, tx->out, n, back, sizeof(back), &len, &z), 0);
	assert_memory_equal(back, raw, NP * PAGE);
	assert_true(st.cpu_ns > 0);
	pf_ctx_free(tx);
	pf_ctx_free(rx);
}

static void test_auto_decide(void **state)
{
	struct pf_auto a = { 0 };

	(void)state;
	/* nothing measured: try */
	assert_true(pf_auto_decide(&a));
	/* 1 GB/s compression to a tenth, 125 MB/s link (1 Gbit/s): pays */
	a = (struct pf_auto){ .ratio = 0.1, .comp_Bpns = 1.0, .link_Bpns = 0.125 };
	assert_true(pf_auto_decide(&a));
	/* the same on a 2 GB/s link (unshaped loopback): costs time */
	a.link_Bpns = 2.0;
	assert_false(pf_auto_decide(&a));
	/* incompressible on a slow link: nothing to gain */
	a = (struct pf_auto){ .ratio = 1.0, .comp_Bpns = 1.0, .link_Bpns = 0.01 };
	assert_false(pf_auto_decide(&a));
	/* a busy CPU: compression at 100 MB/s cannot beat a 125 MB/s link */
	a = (struct pf_auto){ .ratio = 0.1, .comp_Bpns = 0.1, .link_Bpns = 0.125 };
	assert_false(pf_auto_decide(&a));
	/* the margin: a gain under 10 % is not taken */
	a = (struct pf_auto){ .ratio = 0.5, .comp_Bpns = 0.21, .link_Bpns = 0.1 };
	assert_false(pf_auto_decide(&a));
	a.comp_Bpns = 0.23;
	assert_true(pf_auto_decide(&a));
}

/* TCP's acknowledged bytes over spans of raw frames: the link's rate */
static void test_link_acked(void **state)
{
	const uint64_t ms = 1000000;
	const uint32_t busy = 1 << 20;
	struct pf_auto a = { .tcp = true };

	(void)state;
	/* the first frame starts a span; 10 ms is too short for a sample */
	pf_link_acked(&a, true, 1000, busy, 1000 * ms, 0);
	pf_link_acked(&a, true, 1000 + 1250000, busy, 1010 * ms, 0);
	assert_int_equal(a.link_frames, 0);
	/* 20 ms, 2.5 MB: 125 MB/s, 1 Gbit/s */
	pf_link_acked(&a, true, 1000 + 2500000, busy, 1020 * ms, 0);
	assert_int_equal(a.link_frames, 1);
	assert_true(a.link_Bpns > 0.1249 && a.link_Bpns < 0.1251);
	/* compressed frames end the span: what they take says nothing */
	pf_link_acked(&a, false, 3000000, busy, 1030 * ms, 0);
	pf_link_acked(&a, false, 3100000, busy, 1090 * ms, 0);
	assert_int_equal(a.link_frames, 1);
	/* raw again: a new span from here, at 12.5 MB/s now */
	pf_link_acked(&a, true, 3100000, busy, 1100 * ms, 0);
	for (int i = 1; i <= 20; i++)
		pf_link_acked(&a, true, 3100000 + i * 250000, busy, (1100 + 20 * i) * ms, 0);
	assert_int_equal(a.link_frames, 21);
	assert_true(a.link_Bpns < 0.013);
	/* a --bandwidth cap bounds it */
	pf_link_acked(&a, true, 9000000, busy, 2000 * ms, 0.001);
	assert_true(a.link_Bpns <= 0.001);
	/* a counter going back (a new connection) starts over */
	pf_link_acked(&a, true, 10, busy, 2100 * ms, 0);
	assert_int_equal(a.link_frames, 22);
}

/* a socket that ran dry between frames: the span measured our pause */
static void test_link_acked_idle(void **state)
{
	const uint64_t ms = 1000000;
	struct pf_auto a = { .tcp = true };

	(void)state;
	/* a round's one frame, everything acknowledged by the next, 300 ms
	 * later (the freeze): no sample, the link stays unmeasured */
	pf_link_acked(&a, true, 0, 0, 1000 * ms, 0);
	pf_link_acked(&a, true, 94600, 0, 1300 * ms, 0);
	pf_link_acked(&a, true, 100000, 0, 1301 * ms, 0);
	assert_int_equal(a.link_frames, 0);
	assert_true(a.link_Bpns == 0);
	/* a frame that left the queue short ends a busy span too */
	pf_link_acked(&a, true, 200000, 1 << 20, 1400 * ms, 0);
	pf_link_acked(&a, true, 300000, 4096, 1415 * ms, 0);
	pf_link_acked(&a, true, 400000, 1 << 20, 1430 * ms, 0);
	assert_int_equal(a.link_frames, 0);
}

/* auto turns itself off on a fast link, and probes again later */
static void test_auto_probes(void **state)
{
	struct pf_ctx *tx = pf_ctx_new(NULL);
	unsigned int zstd = 0;

	(void)state;
	assert_non_null(tx);
	tx->compress = PF_COMPRESS_AUTO;
	fill_text(NP);
	/* the link is measured (on raw frames) before anything is compressed */
	pf_encode(tx, raw, NP * PAGE);
	assert_int_equal(tx->out[0], PF_RAW);
	for (unsigned int i = 0; i < 3 * PF_AUTO_PROBE_EVERY; i++) {
		tx->a.link_Bpns = 1e6; /* faster than any compressor */
		tx->a.link_frames = PF_AUTO_LINK_FRAMES;
		pf_encode(tx, raw, NP * PAGE);
		zstd += tx->out[0] == PF_ZSTD;
	}
	/* the first frame (nothing measured) and one probe every 64 */
	assert_in_range(zstd, 3, 4);
	/* a probe taken and not accounted yet (a pipe's ring): no second one */
	tx->a.off_frames = PF_AUTO_PROBE_EVERY;
	assert_true(pf_want_zstd(tx));
	assert_true(pf_choose_zstd(tx));
	assert_false(pf_want_zstd(tx));
	assert_false(pf_choose_zstd(tx));
	/* once accounted, auto decides from what it measured */
	tx->enc.zstd = true;
	tx->enc.tried = false;
	tx->enc.len = 0;
	tx->enc.kept = 0;
	tx->enc.n = 0;
	pf_account(tx, &tx->enc, tx->out);
	assert_false(tx->a.probing);
	/* forced zstd never counts as a probe */
	tx->compress = PF_COMPRESS_ZSTD;
	assert_true(pf_choose_zstd(tx));
	assert_false(tx->a.probing);
	pf_ctx_free(tx);
}

/* pages_send on one end of a socketpair, pages_recv on the other. */
static void over_conn(bool framed)
{
	struct conn *a, *b;
	size_t pages = 2 * NP + 3, got = 0;
	uint8_t *big = calloc(pages, PAGE);
	uint8_t *buf = malloc(FRAME_DATA_MAX);
	struct pf_stats st = { 0 };
	int sv[2];

	assert_non_null(big);
	assert_non_null(buf);
	for (size_t i = 0; i < pages; i += 3)
		memset(big + i * PAGE, (int)(i % 200) + 1, PAGE);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], &a), 0);
	assert_int_equal(conn_from_fd(sv[1], &b), 0);
	if (framed) {
		assert_int_equal(pf_attach(a, &st), 0);
		assert_int_equal(pf_attach(b, NULL), 0);
	}
	/* fits the socket buffers: no second thread needed */
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){ 4 << 20 }, sizeof(int)),
			 0);
	assert_int_equal(pages_send(a, big, pages * PAGE), 0);
	while (got < pages * PAGE) {
		uint32_t len;
		uint64_t z;
		assert_int_equal(pages_recv(b, buf, FRAME_DATA_MAX, &len, &z), 0);
		assert_memory_equal(buf, big + got, len);
		for (size_t i = 0; i < len / PAGE; i++)
			assert_int_equal(!!(z & 1ULL << i), framed && (got / PAGE + i) % 3 != 0);
		got += len;
	}
	assert_int_equal(got, pages * PAGE);
	if (framed) {
		assert_int_equal(st.zero_pages, pages - (pages + 2) / 3);
		/* the wire carries the non-zero pages and a header per chunk */
		assert_int_equal(b->bytes_in,
				 (pages + 2) / 3 * PAGE + 3 * (PF_HDR_LEN + FRAME_HDR_LEN));
	}
	/* a frame of the other kind is refused */
	if (framed)
		assert_int_equal(frame_send(a, FRAME_DATA, big, PAGE), 0);
	else
		assert_int_equal(frame_send(a, FRAME_MSG, big, 16), 0);
	{
		uint32_t len;
		uint64_t z;
		assert_int_equal(pages_recv(b, buf, FRAME_DATA_MAX, &len, &z), -EPROTO);
	}
	conn_free(a);
	conn_free(b);
	free(big);
	free(buf);
}

static void test_over_conn_framed(void **state)
{
	(void)state;
	over_conn(true);
}

static void test_over_conn_raw(void **state)
{
	(void)state;
	over_conn(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),	 cmocka_unit_test(test_is_zero),
		cmocka_unit_test(test_malformed),	 cmocka_unit_test(test_zstd_roundtrip),
		cmocka_unit_test(test_auto_decide),	 cmocka_unit_test(test_link_acked),
		cmocka_unit_test(test_link_acked_idle),	 cmocka_unit_test(test_auto_probes),
		cmocka_unit_test(test_over_conn_framed), cmocka_unit_test(test_over_conn_raw),
	};

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
