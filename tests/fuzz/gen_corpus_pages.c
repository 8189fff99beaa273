/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of fuzz_pagemap and fuzz_pages: valid inputs
 * (and a few that must be refused), built with the library's own encoders
 * (protobuf-c packers, frame_hdr_encode) so they stay in step with the
 * formats. Built and run like gen_corpus.c:
 *
 *   cc -std=gnu11 -D_GNU_SOURCE -I src -I build/gen -o build/gen_corpus_pages \
 *      tests/fuzz/gen_corpus_pages.c build/libphaul.a \
 *      $(pkg-config --libs gnutls libprotobuf-c json-c libxxhash) -lpthread
 *   build/gen_corpus_pages tests/fuzz/corpus
 *
 * Input layouts are described at the top of tests/fuzz/fuzz_pagemap.c and
 * tests/fuzz/fuzz_pages.c. Seeds of the same name are overwritten, others
 * (regression inputs added by hand) are left alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/page.h"
#include "common/util.h"
#include "criu-image.pb-c.h"
#include "criu/pagemap.h"
#include "proto/msg.h"
#include "proto/wire.h"

#define P PAGE

struct buf {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct buf *s, const void *p, size_t len)
{
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2 + 64;
		s->b = realloc(s->b, s->cap);
		if (!s->b)
			abort();
	}
	if (len)
		memcpy(s->b + s->len, p, len);
	s->len += len;
}

static void put_byte(struct buf *s, uint8_t v)
{
	put(s, &v, 1);
}

static void put_u32(struct buf *s, uint32_t v)
{
	put(s, &v, 4); /* CRIU images are host-endian */
}

static const char *outdir;

static void save(const char *target, const char *name, const struct buf *s)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir_p(path, 0755) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_full(fd, s->b, s->len) < 0) {
		perror(path);
		exit(1);
	}
	close(fd);
	printf("%s\n", path);
}

/* --- fuzz_pagemap: a pagemap-PID.img ------------------------------------- */

static void put_record(struct buf *s, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p = malloc(n + 1);

	if (!p)
		abort();
	protobuf_c_message_pack(m, p);
	put_u32(s, n);
	put(s, p, n);
	free(p);
}

static void pm_head(struct buf *s, uint32_t pages_id)
{
	Cimg__PagemapHead h = CIMG__PAGEMAP_HEAD__INIT;

	s->len = 0;
	put_u32(s, CRIU_IMG_COMMON_MAGIC);
	put_u32(s, CRIU_PAGEMAP_MAGIC);
	h.pages_id = pages_id;
	put_record(s, &h.base);
}

static void pm_entry(struct buf *s, uint64_t vaddr, uint32_t nr, uint32_t flags)
{
	Cimg__PagemapEntry e = CIMG__PAGEMAP_ENTRY__INIT;

	e.vaddr = vaddr;
	e.nr_pages = nr;
	e.has_flags = 1;
	e.flags = flags;
	put_record(s, &e.base);
}

static void pm_old_entry(struct buf *s, uint64_t vaddr, uint32_t nr, int in_parent)
{
	Cimg__PagemapEntry e = CIMG__PAGEMAP_ENTRY__INIT;

	e.vaddr = vaddr;
	e.nr_pages = nr;
	if (in_parent >= 0) {
		e.has_in_parent = 1;
		e.in_parent = in_parent;
	}
	put_record(s, &e.base);
}

static void gen_pagemaps(void)
{
	struct buf s = { 0 };

	pm_head(&s, 1);
	save("fuzz_pagemap", "head-only", &s);

	/* what CRIU writes for a lazy dump over a pre-dump */
	pm_head(&s, 7);
	pm_entry(&s, 0x400000, 3, PE_PRESENT);
	pm_entry(&s, 0x600000, 1, PE_PARENT);
	pm_entry(&s, 0x601000, 16, PE_LAZY);
	pm_entry(&s, 0x611000, 2, PE_LAZY | PE_PRESENT);
	pm_entry(&s, 0x7ffd12340000ull, 33, PE_LAZY);
	pm_entry(&s, 0x7ffd12361000ull, 1, PE_PRESENT);
	save("fuzz_pagemap", "criu-lazy", &s);

	/* every flag value, adjacent runs (merged when alike), the top of memory */
	pm_head(&s, 0xffffffff);
	for (uint32_t f = 0; f < 8; f++)
		pm_entry(&s, 0x10000 + f * 2 * P, 2, f);
	pm_entry(&s, 0x20000, 1, PE_PRESENT);
	pm_entry(&s, 0x21000, 1, PE_PRESENT);
	pm_entry(&s, 0x22000, UINT32_MAX, PE_PRESENT);
	pm_entry(&s, (1ull << 57) - 2 * P, 2, PE_PARENT);
	save("fuzz_pagemap", "flags-merge-top", &s);

	/* old images: in_parent, no flags */
	pm_head(&s, 2);
	pm_old_entry(&s, 0x1000, 1, 1);
	pm_old_entry(&s, 0x2000, 1, 1);
	pm_old_entry(&s, 0x3000, 4, 0);
	pm_old_entry(&s, 0x9000, 1, -1);
	save("fuzz_pagemap", "old-style", &s);

	pm_head(&s, 3);
	for (uint64_t i = 0; i < 200; i++)
		pm_entry(&s, 0x7f0000000000ull + i * 3 * P, 1 + i % 2,
			 i % 3 ? PE_LAZY : PE_PRESENT);
	save("fuzz_pagemap", "many", &s);

	/* refused: unsorted, unknown flag, unaligned, past 2^57 */
	pm_head(&s, 1);
	pm_entry(&s, 0x5000, 1, PE_PRESENT);
	pm_entry(&s, 0x4000, 1, PE_PRESENT);
	save("fuzz_pagemap", "bad-unsorted", &s);
	pm_head(&s, 1);
	pm_entry(&s, 0x5000, 1, 8 | PE_PRESENT);
	save("fuzz_pagemap", "bad-flag", &s);
	pm_head(&s, 1);
	pm_entry(&s, 0x5800, 1, PE_PRESENT);
	save("fuzz_pagemap", "bad-unaligned", &s);
	pm_head(&s, 1);
	pm_entry(&s, (1ull << 57) - P, 2, PE_PRESENT);
	save("fuzz_pagemap", "bad-past-limit", &s);
	pm_head(&s, 1);
	pm_entry(&s, 0x1000, 1, PE_PRESENT);
	pm_entry(&s, UINT64_MAX - P + 1, 2, PE_PRESENT); /* wraps to 0x1000 */
	save("fuzz_pagemap", "bad-wrap", &s);
	pm_head(&s, 1);
	pm_entry(&s, 0x10000, 4, PE_PRESENT);
	pm_entry(&s, 0x12000, 1, PE_PARENT); /* overlaps */
	save("fuzz_pagemap", "bad-overlap", &s);
	free(s.b);
}

/* --- fuzz_pages: [pids][budget][chunk] then frames ----------------------- */

static void put_frame(struct buf *s, enum frame_type type, const void *p, size_t len)
{
	uint8_t hdr[FRAME_HDR_LEN];

	frame_hdr_encode(hdr, type, len);
	put(s, hdr, sizeof(hdr));
	put(s, p, len);
}

static void put_msg(struct buf *s, const Msg *m)
{
	size_t len = phaul__msg__get_packed_size(m);
	uint8_t *p = malloc(len + 1);

	if (!p)
		abort();
	phaul__msg__pack(m, p);
	put_frame(s, FRAME_MSG, p, len);
	free(p);
}

static void put_run_msg(struct buf *s, int32_t pid, uint64_t vaddr, uint32_t nr)
{
	Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
	Msg m = PHAUL__MSG__INIT;

	pr.pid = pid;
	pr.vaddr = vaddr;
	pr.nr_pages = nr;
	msg_set_page_run(&m, &pr);
	put_msg(s, &m);
}

/* A PageRun and its pages, in data frames of @chunk bytes (0: one frame). */
static void put_run(struct buf *s, int32_t pid, uint64_t vaddr, uint32_t nr, uint8_t tag,
		    size_t chunk)
{
	size_t len = (size_t)nr * P;
	uint8_t *d = malloc(len);

	if (!d)
		abort();
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(i * 7 + (i >> 12) * 31 + tag);
	put_run_msg(s, pid, vaddr, nr);
	if (!chunk)
		chunk = FRAME_DATA_MAX;
	for (size_t off = 0; off < len; off += chunk)
		put_frame(s, FRAME_DATA, d + off, MIN(chunk, len - off));
	free(d);
}

static void put_round_end(struct buf *s, uint32_t round, uint64_t pages)
{
	Phaul__RoundEnd re = PHAUL__ROUND_END__INIT;
	Msg m = PHAUL__MSG__INIT;

	re.round = round;
	re.pages = pages;
	msg_set_round_end(&m, &re);
	put_msg(s, &m);
}

static void pages_hdr(struct buf *s, uint8_t pids, uint8_t budget, uint8_t chunk)
{
	s->len = 0;
	put_byte(s, pids);
	put_byte(s, budget);
	put_byte(s, chunk);
}

static void gen_pages(void)
{
	struct buf s = { 0 };
	uint8_t junk[P];

	memset(junk, 0x3c, sizeof(junk));

	/* three processes over four rounds, rewrites, an adjacent run, an empty round */
	pages_hdr(&s, 0xf, 0, 0);
	put_run(&s, 100, 0x400000, 2, 1, 0);
	put_run(&s, 200, 0x7ffd0000f000ull, 1, 2, 0);
	put_run(&s, 100, 0x402000, 1, 3, 0);
	put_round_end(&s, 1, 4);
	put_run(&s, 4194304, 0x1000, 1, 4, 0);
	put_run(&s, 100, 0x401000, 1, 5, 0);
	put_round_end(&s, 2, 2);
	put_run(&s, 200, 0x7ffd0000f000ull, 1, 6, 0);
	put_round_end(&s, 3, 1);
	put_round_end(&s, 4, 0);
	save("fuzz_pages", "rounds", &s);

	/* small frames, small reads */
	pages_hdr(&s, 0x2, 0, 5);
	put_run(&s, 100, 0x10000, 2, 7, 1000);
	put_round_end(&s, 1, 2);
	put_run(&s, 100, 0x11000, 1, 8, 3000);
	put_run(&s, 100, 0x13000, 1, 9, 4096);
	put_round_end(&s, 2, 2);
	save("fuzz_pages", "small-frames", &s);

	/* a run that ends at 2^57 exactly, pid 1 */
	pages_hdr(&s, 0x1, 0, 0);
	put_run(&s, 1, (1ull << 57) - 2 * P, 2, 10, 0);
	put_round_end(&s, 1, 2);
	save("fuzz_pages", "top", &s);

	/* the budget runs out on the third page */
	pages_hdr(&s, 0xf, 2, 0);
	put_run(&s, 100, 0x10000, 1, 11, 0);
	put_round_end(&s, 1, 1);
	put_run(&s, 100, 0x10000, 1, 12, 0);
	put_run(&s, 100, 0x20000, 1, 13, 0);
	put_round_end(&s, 2, 2);
	save("fuzz_pages", "budget", &s);

	/* a process the preflight did not name */
	pages_hdr(&s, 0x2, 0, 0);
	put_run(&s, 100, 0x10000, 1, 14, 0);
	put_run(&s, 200, 0x10000, 1, 15, 0);
	put_round_end(&s, 1, 2);
	save("fuzz_pages", "stranger", &s);

	/* runs out of order within a round */
	pages_hdr(&s, 0xf, 0, 0);
	put_run(&s, 100, 0x20000, 1, 16, 0);
	put_round_end(&s, 1, 1);
	put_run(&s, 100, 0x20000, 1, 17, 0);
	put_run(&s, 100, 0x10000, 1, 18, 0);
	put_round_end(&s, 2, 2);
	save("fuzz_pages", "backwards", &s);

	/* a run overlapping the one before it */
	pages_hdr(&s, 0xf, 0, 0);
	put_run(&s, 100, 0x20000, 2, 21, 0);
	put_run(&s, 200, 0x10000, 1, 22, 0);
	put_run(&s, 100, 0x21000, 1, 23, 0);
	put_round_end(&s, 1, 4);
	save("fuzz_pages", "overlap", &s);

	/* less data than announced, then a message */
	pages_hdr(&s, 0xf, 0, 0);
	put_run(&s, 100, 0x10000, 1, 19, 0);
	put_run_msg(&s, 100, 0x20000, 2);
	put_frame(&s, FRAME_DATA, junk, P);
	put_round_end(&s, 1, 3);
	save("fuzz_pages", "short-data", &s);

	/* more data than announced */
	pages_hdr(&s, 0xf, 0, 0);
	put_run_msg(&s, 100, 0x20000, 1);
	put_frame(&s, FRAME_DATA, junk, P);
	put_frame(&s, FRAME_DATA, junk, 1);
	put_round_end(&s, 1, 1);
	save("fuzz_pages", "long-data", &s);
	free(s.b);
}

/*
 * Regression inputs: they failed once; kept whatever the fix.
 *
 * regress-run-past-2p57: msg_validate lets a PageRun start below 2^57 and
 * end above it; the store wrote a round pagemap its own reader refuses.
 */
static void gen_regressions(void)
{
	struct buf s = { 0 };

	pages_hdr(&s, 0xf, 0, 0);
	put_run(&s, 100, (1ull << 57) - P, 2, 20, 0);
	put_round_end(&s, 1, 2);
	save("fuzz_pages", "regress-run-past-2p57", &s);
	free(s.b);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	gen_pagemaps();
	gen_pages();
	gen_regressions();
	return 0;
}
