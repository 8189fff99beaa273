/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for criu/pagemap: CRIU's pagemap-PID.img, written by
 * pagemap_write and read back by pagemap_read; pagemap_add's merging; and
 * pagemap_parse on hand-built images (the bytes come from the network), which
 * must refuse anything malformed and leave *ret alone when it does.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "criu-image.pb-c.h"
#include "criu/pagemap.h"

#define P PAGE
#define ALL_FLAGS (PE_PARENT | PE_LAZY | PE_PRESENT)

/* --- an image built by hand -------------------------------------------- */

struct img {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct img *s, const void *p, size_t len)
{
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2 + 64;
		s->b = realloc(s->b, s->cap);
		assert_non_null(s->b);
	}
	if (len)
		memcpy(s->b + s->len, p, len);
	s->len += len;
}

static void put_u32(struct img *s, uint32_t v)
{
	put(s, &v, 4); /* host-endian, as CRIU writes it */
}

static void put_record(struct img *s, const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p = malloc(n + 1);

	assert_non_null(p);
	protobuf_c_message_pack(m, p);
	put_u32(s, n);
	put(s, p, n);
	free(p);
}

/* The magics and a head naming pages-@pages_id.img. */
static void put_head(struct img *s, uint32_t pages_id)
{
	Cimg__PagemapHead h = CIMG__PAGEMAP_HEAD__INIT;

	put_u32(s, CRIU_IMG_COMMON_MAGIC);
	put_u32(s, CRIU_PAGEMAP_MAGIC);
	h.pages_id = pages_id;
	put_record(s, &h.base);
}

/* A current-style entry (flags set). */
static void put_entry(struct img *s, uint64_t vaddr, uint32_t nr_pages, uint32_t flags)
{
	Cimg__PagemapEntry e = CIMG__PAGEMAP_ENTRY__INIT;

	e.vaddr = vaddr;
	e.nr_pages = nr_pages;
	e.has_flags = true;
	e.flags = flags;
	put_record(s, &e.base);
}

/* An old-style entry: no flags, in_parent maybe. */
static void put_old_entry(struct img *s, uint64_t vaddr, uint32_t nr_pages, int in_parent)
{
	Cimg__PagemapEntry e = CIMG__PAGEMAP_ENTRY__INIT;

	e.vaddr = vaddr;
	e.nr_pages = nr_pages;
	if (in_parent >= 0) {
		e.has_in_parent = true;
		e.in_parent = in_parent;
	}
	put_record(s, &e.base);
}

static const struct pm_entry sentinel_entry = { 0xdead000, 7, 0x77 };

/* pagemap_parse must fail with @err and leave *ret untouched. */
static void assert_rejected(const struct img *s, int err)
{
	struct pm_entry e = sentinel_entry;
	struct pagemap pm = { .pages_id = 4242, .e = &e, .nr = 1, .cap = 1 };

	assert_int_equal(pagemap_parse(s->b, s->len, &pm), err);
	assert_int_equal(pm.pages_id, 4242);
	assert_ptr_equal(pm.e, &e);
	assert_int_equal(pm.nr, 1);
	assert_memory_equal(&e, &sentinel_entry, sizeof(e));
}

static void assert_entries(const struct pagemap *pm, const struct pm_entry *want, size_t n)
{
	assert_int_equal(pm->nr, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(pm->e[i].vaddr, want[i].vaddr);
		assert_int_equal(pm->e[i].nr_pages, want[i].nr_pages);
		assert_int_equal(pm->e[i].flags, want[i].flags);
	}
}

/* --- a temporary directory ---------------------------------------------- */

struct fixture {
	char dir[1024];
	int dirfd;
	struct img s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/phaul-test-pagemap.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dirfd < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int r;

	close(f->dirfd);
	free(f->s.b);
	r = rm_rf(f->dir);
	free(f);
	return r;
}

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* --- round trips -------------------------------------------------------- */

/* Many runs with every flag combination, written and read back. */
static void test_round_trip_many(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { .pages_id = 0xfeedbeef }, back = { 0 };
	uint64_t vaddr = 0x400000, present = 0;

	for (int i = 0; i < 5000; i++) {
		uint32_t flags = i % 8; /* 0 ... PE_PARENT | PE_LAZY | PE_PRESENT */
		uint32_t nr = 1 + rnd() % 300;
		if (i % 97 == 0)
			nr = UINT32_MAX - rnd() % 3; /* huge runs too */
		vaddr += (rnd() % 4) * P;	     /* adjacent sometimes, with gaps */
		assert_int_equal(pagemap_add(&pm, vaddr, nr, flags), 0);
		if (flags & PE_PRESENT)
			present += nr;
		vaddr += nr * P;
	}
	assert_true(vaddr < (1ull << 57));
	assert_int_equal(pm.nr, 5000); /* no neighbours alike: nothing merged */
	assert_int_equal(pagemap_present_pages(&pm), present);

	assert_int_equal(pagemap_write(f->dirfd, "pagemap-1.img", &pm), 0);
	assert_int_equal(pagemap_read(f->dirfd, "pagemap-1.img", &back), 0);
	assert_int_equal(back.pages_id, 0xfeedbeef);
	assert_entries(&back, pm.e, pm.nr);
	assert_int_equal(pagemap_present_pages(&back), present);

	/* writing again over the file replaces it */
	pm.nr = 3;
	assert_int_equal(pagemap_write(f->dirfd, "pagemap-1.img", &pm), 0);
	pagemap_free(&back);
	assert_int_equal(pagemap_read(f->dirfd, "pagemap-1.img", &back), 0);
	assert_entries(&back, pm.e, 3);

	pagemap_free(&pm);
	pagemap_free(&back);
	assert_null(pm.e);
	assert_int_equal(pm.nr, 0);
}

/* Every one of the 8 flag values alone, at the top of the address space. */
static void test_round_trip_each_flag(void **state)
{
	struct fixture *f = *state;

	for (uint32_t flags = 0; flags <= ALL_FLAGS; flags++) {
		struct pagemap pm = { .pages_id = flags }, back = { 0 };
		uint64_t top = (1ull << 57) - 5 * P;

		assert_int_equal(pagemap_add(&pm, 0, 1, flags), 0);
		assert_int_equal(pagemap_add(&pm, top, 5, flags), 0); /* ends at 2^57 exactly */
		assert_int_equal(pagemap_write(f->dirfd, "pm.img", &pm), 0);
		assert_int_equal(pagemap_read(f->dirfd, "pm.img", &back), 0);
		assert_int_equal(back.pages_id, flags);
		assert_entries(&back, pm.e, 2);
		assert_int_equal(pagemap_present_pages(&back), flags & PE_PRESENT ? 6 : 0);
		pagemap_free(&pm);
		pagemap_free(&back);
	}
}

static void test_round_trip_empty(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { .pages_id = 3 }, back = { 0 };

	assert_int_equal(pagemap_write(f->dirfd, "empty.img", &pm), 0);
	assert_int_equal(pagemap_read(f->dirfd, "empty.img", &back), 0);
	assert_int_equal(back.pages_id, 3);
	assert_int_equal(back.nr, 0);
	assert_int_equal(pagemap_present_pages(&back), 0);
	pagemap_free(&back);
}

/* The file written is exactly what CRIU writes: magics, head, entries. */
static void test_write_layout(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { .pages_id = 9 };
	struct img want = { 0 };
	uint8_t buf[256];
	int fd;
	struct stat st;

	assert_int_equal(pagemap_add(&pm, 0x1000, 2, PE_PRESENT), 0);
	assert_int_equal(pagemap_add(&pm, 0x10000, 1, PE_LAZY), 0);
	assert_int_equal(pagemap_write(f->dirfd, "layout.img", &pm), 0);
	put_head(&want, 9);
	put_entry(&want, 0x1000, 2, PE_PRESENT);
	put_entry(&want, 0x10000, 1, PE_LAZY);

	fd = openat(f->dirfd, "layout.img", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true((st.st_mode & 077) == 0);
	assert_int_equal(st.st_size, want.len);
	assert_int_equal(read_full(fd, buf, want.len), 0);
	assert_memory_equal(buf, want.b, want.len);
	close(fd);
	free(want.b);
	pagemap_free(&pm);
}

static void test_read_errors(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 };
	int fd;

	assert_int_equal(pagemap_read(f->dirfd, "missing.img", &pm), -ENOENT);
	/* a symlink is not followed */
	assert_int_equal(symlinkat("/etc/passwd", f->dirfd, "link.img"), 0);
	assert_int_equal(pagemap_read(f->dirfd, "link.img", &pm), -ELOOP);
	/* an empty file is no pagemap */
	fd = openat(f->dirfd, "zero.img", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(pagemap_read(f->dirfd, "zero.img", &pm), -EINVAL);
	assert_null(pm.e);
	/* nor is a writer following a symlink */
	assert_int_equal(pagemap_write(f->dirfd, "link.img", &pm), -ELOOP);
}

/* --- pagemap_add --------------------------------------------------------- */

static void test_add_merges(void **state)
{
	struct pagemap pm = { 0 };

	assert_int_equal(pagemap_add(&pm, 10 * P, 2, PE_PRESENT), 0);
	assert_int_equal(pagemap_add(&pm, 12 * P, 3, PE_PRESENT), 0); /* adjacent, alike */
	assert_entries(&pm, (struct pm_entry[]){ { 10 * P, 5, PE_PRESENT } }, 1);
	assert_int_equal(pagemap_add(&pm, 15 * P, 1, PE_PARENT), 0); /* adjacent, not alike */
	assert_int_equal(pagemap_add(&pm, 17 * P, 1, PE_PARENT), 0); /* alike, a gap */
	assert_int_equal(pagemap_add(&pm, 18 * P, 4, PE_PARENT | PE_LAZY), 0);
	assert_int_equal(pagemap_add(&pm, 22 * P, 4, PE_PARENT | PE_LAZY), 0);
	assert_int_equal(pagemap_add(&pm, 26 * P, 1, 0), 0);
	assert_int_equal(pagemap_add(&pm, 27 * P, 1, 0), 0);
	assert_entries(&pm,
		       (struct pm_entry[]){ { 10 * P, 5, PE_PRESENT },
					    { 15 * P, 1, PE_PARENT },
					    { 17 * P, 1, PE_PARENT },
					    { 18 * P, 8, PE_PARENT | PE_LAZY },
					    { 26 * P, 2, 0 } },
		       5);
	assert_int_equal(pagemap_present_pages(&pm), 5);
	pagemap_free(&pm);
}

/* --- pagemap_split_lazy -------------------------------------------------- */

/* Only lazy runs (not present) longer than the bound are cut, in order. */
static void test_split_lazy(void **state)
{
	struct pagemap pm = { 0 };

	assert_int_equal(pagemap_add(&pm, 0x1000 * P, 10, PE_PRESENT), 0);
	assert_int_equal(pagemap_add(&pm, 0x2000 * P, 10, PE_LAZY), 0);
	assert_int_equal(pagemap_add(&pm, 0x3000 * P, 4, PE_LAZY), 0);
	assert_int_equal(pagemap_add(&pm, 0x4000 * P, 9, PE_LAZY | PE_PRESENT), 0);
	assert_int_equal(pagemap_add(&pm, 0x5000 * P, 5, PE_PARENT), 0);
	assert_int_equal(pagemap_add(&pm, 0x6000 * P, 8, PE_LAZY), 0);
	assert_int_equal(pagemap_split_lazy(&pm, 4), 3);
	assert_entries(&pm,
		       (struct pm_entry[]){ { 0x1000 * P, 10, PE_PRESENT },
					    { 0x2000 * P, 4, PE_LAZY },
					    { 0x2004 * P, 4, PE_LAZY },
					    { 0x2008 * P, 2, PE_LAZY },
					    { 0x3000 * P, 4, PE_LAZY },
					    { 0x4000 * P, 9, PE_LAZY | PE_PRESENT },
					    { 0x5000 * P, 5, PE_PARENT },
					    { 0x6000 * P, 4, PE_LAZY },
					    { 0x6004 * P, 4, PE_LAZY } },
		       9);
	/* nothing left to cut */
	assert_int_equal(pagemap_split_lazy(&pm, 4), 0);
	assert_int_equal(pm.nr, 9);
	assert_int_equal(pagemap_split_lazy(&pm, 0), -EINVAL);
	pagemap_free(&pm);
}

/* A run over 2 GiB and one of UINT32_MAX pages, written and read back. */
static void test_split_lazy_huge(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 }, back = { 0 };
	const uint32_t max = 16384; /* 64 MiB */
	uint64_t v = 1ull << 40, pages = 0;

	assert_int_equal(pagemap_add(&pm, v, (uint32_t)((5ull << 30) / P), PE_LAZY), 0);
	assert_int_equal(pagemap_add(&pm, v + (6ull << 30), UINT32_MAX, PE_LAZY), 0);
	assert_int_equal(pagemap_split_lazy(&pm, max), 80 - 1 + (UINT32_MAX / max + 1) - 1);
	for (size_t i = 0; i < pm.nr; i++) {
		assert_true(pm.e[i].nr_pages <= max && pm.e[i].nr_pages > 0);
		assert_int_equal(pm.e[i].flags, PE_LAZY);
		if (i && pm.e[i].vaddr != v + (6ull << 30))
			assert_int_equal(pm.e[i].vaddr,
					 pm.e[i - 1].vaddr + (uint64_t)pm.e[i - 1].nr_pages * P);
		pages += pm.e[i].nr_pages;
	}
	assert_int_equal(pages, (5ull << 30) / P + UINT32_MAX);
	assert_int_equal(pm.e[pm.nr - 1].nr_pages, UINT32_MAX % max);
	/* adjacent alike runs stay apart in the file (the reader merges them) */
	assert_int_equal(pagemap_write(f->dirfd, "pagemap-2.img", &pm), 0);
	assert_int_equal(pagemap_read(f->dirfd, "pagemap-2.img", &back), 0);
	assert_int_equal(back.nr, 2);
	assert_int_equal(back.e[0].nr_pages, (5ull << 30) / P);
	pagemap_free(&back);
	pagemap_free(&pm);
}

/* A merged run never exceeds UINT32_MAX pages. */
static void test_add_count_limit(void **state)
{
	struct pagemap pm = { 0 };
	uint64_t v = 0;

	assert_int_equal(pagemap_add(&pm, v, UINT32_MAX - 1, PE_PRESENT), 0);
	v += (uint64_t)(UINT32_MAX - 1) * P;
	assert_int_equal(pagemap_add(&pm, v, 1, PE_PRESENT), 0); /* exactly UINT32_MAX */
	v += P;
	assert_entries(&pm, (struct pm_entry[]){ { 0, UINT32_MAX, PE_PRESENT } }, 1);
	assert_int_equal(pagemap_add(&pm, v, 1, PE_PRESENT), 0); /* would overflow */
	assert_entries(&pm,
		       (struct pm_entry[]){ { 0, UINT32_MAX, PE_PRESENT }, { v, 1, PE_PRESENT } },
		       2);
	assert_int_equal(pagemap_present_pages(&pm), (uint64_t)UINT32_MAX + 1);
	pagemap_free(&pm);
}

/* Growth past the first allocation keeps every entry. */
static void test_add_grows(void **state)
{
	struct pagemap pm = { 0 };

	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(pagemap_add(&pm, 2 * i * P, 1, PE_PRESENT), 0);
	assert_int_equal(pm.nr, 1000);
	assert_true(pm.cap >= 1000);
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(pm.e[i].vaddr, 2 * i * P);
	pagemap_free(&pm);
}

/* --- pagemap_parse: what it accepts -------------------------------------- */

static void test_parse_valid(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 };

	put_head(&f->s, 77);
	put_entry(&f->s, 0, 1, PE_PRESENT);
	put_entry(&f->s, 1 * P, 2, PE_PRESENT); /* merged with the previous */
	put_entry(&f->s, 3 * P, 1, PE_LAZY);
	put_entry(&f->s, 10 * P, 1, PE_LAZY | PE_PRESENT);
	put_entry(&f->s, (1ull << 57) - P, 1, PE_PARENT);
	assert_int_equal(pagemap_parse(f->s.b, f->s.len, &pm), 0);
	assert_int_equal(pm.pages_id, 77);
	assert_entries(&pm,
		       (struct pm_entry[]){ { 0, 3, PE_PRESENT },
					    { 3 * P, 1, PE_LAZY },
					    { 10 * P, 1, PE_LAZY | PE_PRESENT },
					    { (1ull << 57) - P, 1, PE_PARENT } },
		       4);
	assert_int_equal(pagemap_present_pages(&pm), 4);
	pagemap_free(&pm);
}

static void test_parse_head_only(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 };

	put_head(&f->s, 0);
	assert_int_equal(pagemap_parse(f->s.b, f->s.len, &pm), 0);
	assert_int_equal(pm.pages_id, 0);
	assert_int_equal(pm.nr, 0);
	pagemap_free(&pm);
}

/* Old images: no flags; in_parent says PE_PARENT, otherwise PE_PRESENT. */
static void test_parse_old_style(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 };

	put_head(&f->s, 1);
	put_old_entry(&f->s, 0x1000, 2, 1);  /* in_parent = true */
	put_old_entry(&f->s, 0x5000, 1, 0);  /* in_parent = false */
	put_old_entry(&f->s, 0x8000, 3, -1); /* no in_parent at all */
	put_old_entry(&f->s, 0xb000, 1, 1);
	assert_int_equal(pagemap_parse(f->s.b, f->s.len, &pm), 0);
	assert_entries(&pm,
		       (struct pm_entry[]){ { 0x1000, 2, PE_PARENT },
					    { 0x5000, 1, PE_PRESENT },
					    { 0x8000, 3, PE_PRESENT },
					    { 0xb000, 1, PE_PARENT } },
		       4);
	pagemap_free(&pm);
}

/* Unknown protobuf fields are skipped, as protobuf says. */
static void test_parse_unknown_field(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 };
	/* vaddr 0x1000, nr_pages 1, flags 4, then field 9 (varint 5) */
	static const uint8_t rec[] = { 0x08, 0x80, 0x20, 0x10, 0x01, 0x20, 0x04, 0x48, 0x05 };

	put_head(&f->s, 1);
	put_u32(&f->s, sizeof(rec));
	put(&f->s, rec, sizeof(rec));
	assert_int_equal(pagemap_parse(f->s.b, f->s.len, &pm), 0);
	assert_entries(&pm, (struct pm_entry[]){ { 0x1000, 1, PE_PRESENT } }, 1);
	pagemap_free(&pm);
}

/* --- pagemap_parse: what it refuses -------------------------------------- */

static void test_reject_bad_magics(void **state)
{
	struct fixture *f = *state;

	put_head(&f->s, 1);
	put_entry(&f->s, 0, 1, PE_PRESENT);
	f->s.b[0] ^= 1;
	assert_rejected(&f->s, -EINVAL);
	f->s.b[0] ^= 1;
	f->s.b[5] ^= 0x80;
	assert_rejected(&f->s, -EINVAL);
	f->s.b[5] ^= 0x80;
	/* the two magics swapped */
	uint32_t a, b;
	memcpy(&a, f->s.b, 4);
	memcpy(&b, f->s.b + 4, 4);
	memcpy(f->s.b, &b, 4);
	memcpy(f->s.b + 4, &a, 4);
	assert_rejected(&f->s, -EINVAL);
	memcpy(f->s.b, &a, 4);
	memcpy(f->s.b + 4, &b, 4);
	/* short of the magics */
	for (size_t n = 0; n < 8; n++) {
		struct img cut = { f->s.b, n, 0 };
		assert_rejected(&cut, -EINVAL);
	}
	/* only the magics: no head */
	struct img magics = { f->s.b, 8, 0 };
	assert_rejected(&magics, -EINVAL);
}

/* Every strict prefix that does not end on a record boundary is refused. */
static void test_reject_truncated(void **state)
{
	struct fixture *f = *state;
	size_t bounds[8], nb = 0;

	put_head(&f->s, 1);
	bounds[nb++] = f->s.len;
	put_entry(&f->s, 0x1000, 1, PE_PRESENT);
	bounds[nb++] = f->s.len;
	put_entry(&f->s, 0x10000, 3, PE_PARENT);
	bounds[nb++] = f->s.len;

	for (size_t n = 0; n < f->s.len; n++) {
		struct img cut = { f->s.b, n, 0 };
		struct pagemap pm = { 0 };
		bool boundary = false;
		for (size_t i = 0; i < nb; i++)
			boundary |= bounds[i] == n;
		if (boundary) {
			assert_int_equal(pagemap_parse(cut.b, cut.len, &pm), 0);
			pagemap_free(&pm);
		} else {
			assert_rejected(&cut, -EINVAL);
		}
	}
}

/* A record length of 1..3 bytes at the end, or one beyond what is left. */
static void test_reject_bad_lengths(void **state)
{
	struct fixture *f = *state;
	struct img s = { 0 };
	uint8_t zeros[2048] = { 0 };

	put_head(&f->s, 1);
	put_entry(&f->s, 0x1000, 1, PE_PRESENT);
	for (int n = 1; n <= 3; n++) { /* a truncated length prefix */
		s.len = 0;
		put(&s, f->s.b, f->s.len);
		put(&s, zeros, n);
		assert_rejected(&s, -EINVAL);
	}
	s.len = 0; /* longer than the rest */
	put(&s, f->s.b, f->s.len);
	put_u32(&s, 20);
	put(&s, zeros, 19);
	assert_rejected(&s, -EINVAL);
	s.len = 0; /* a head longer than the rest */
	put_u32(&s, CRIU_IMG_COMMON_MAGIC);
	put_u32(&s, CRIU_PAGEMAP_MAGIC);
	put_u32(&s, 100);
	put(&s, zeros, 50);
	assert_rejected(&s, -EINVAL);
	s.len = 0; /* length UINT32_MAX */
	put(&s, f->s.b, f->s.len);
	put_u32(&s, UINT32_MAX);
	put(&s, zeros, 8);
	assert_rejected(&s, -EINVAL);
	s.len = 0; /* an over-long record, all there */
	put(&s, f->s.b, f->s.len);
	put_u32(&s, 1025);
	put(&s, zeros, 1025);
	assert_rejected(&s, -EINVAL);
	s.len = 0; /* an empty entry record: required fields missing */
	put(&s, f->s.b, f->s.len);
	put_u32(&s, 0);
	assert_rejected(&s, -EINVAL);
	free(s.b);
}

static void test_reject_unaligned(void **state)
{
	struct fixture *f = *state;

	put_head(&f->s, 1);
	put_entry(&f->s, 0x1000, 1, PE_PRESENT);
	put_entry(&f->s, 0x3001, 1, PE_PRESENT);
	assert_rejected(&f->s, -EINVAL);
	f->s.len = 0;
	put_head(&f->s, 1);
	put_entry(&f->s, 0x800, 1, PE_LAZY);
	assert_rejected(&f->s, -EINVAL);
	f->s.len = 0;
	put_head(&f->s, 1);
	put_old_entry(&f->s, 0xfff, 1, 1);
	assert_rejected(&f->s, -EINVAL);
}

static void test_reject_empty_run(void **state)
{
	struct fixture *f = *state;

	put_head(&f->s, 1);
	put_entry(&f->s, 0x1000, 0, PE_PRESENT);
	assert_rejected(&f->s, -EINVAL);
	f->s.len = 0;
	put_head(&f->s, 1);
	put_entry(&f->s, 0x1000, 1, PE_PRESENT);
	put_old_entry(&f->s, 0x4000, 0, 0);
	assert_rejected(&f->s, -EINVAL);
}

static void test_reject_unsorted_overlapping(void **state)
{
	struct fixture *f = *state;
	static const struct {
		uint64_t a;
		uint32_t an;
		uint64_t b;
		uint32_t bn;
	} cases[] = {
		{ 0x10000, 1, 0x5000, 1 },  /* before */
		{ 0x10000, 4, 0x10000, 1 }, /* same start */
		{ 0x10000, 4, 0x13000, 2 }, /* overlaps the last page */
		{ 0x10000, 4, 0x11000, 1 }, /* inside */
		{ 0x10000, 1, 0xf000, 3 },  /* starts before, covers */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		f->s.len = 0;
		put_head(&f->s, 1);
		put_entry(&f->s, cases[i].a, cases[i].an, PE_PRESENT);
		put_entry(&f->s, cases[i].b, cases[i].bn, PE_PARENT);
		assert_rejected(&f->s, -EINVAL);
	}
	/* the overlap is with a run merged from two entries */
	f->s.len = 0;
	put_head(&f->s, 1);
	put_entry(&f->s, 0x10000, 1, PE_PRESENT);
	put_entry(&f->s, 0x11000, 1, PE_PRESENT);
	put_entry(&f->s, 0x11000, 1, PE_PRESENT);
	assert_rejected(&f->s, -EINVAL);
	/* adjacent is fine */
	f->s.len = 0;
	put_head(&f->s, 1);
	put_entry(&f->s, 0x10000, 4, PE_PRESENT);
	put_entry(&f->s, 0x14000, 1, PE_PARENT);
	struct pagemap pm = { 0 };
	assert_int_equal(pagemap_parse(f->s.b, f->s.len, &pm), 0);
	assert_int_equal(pm.nr, 2);
	pagemap_free(&pm);
}

static void test_reject_vaddr_overflow(void **state)
{
	struct fixture *f = *state;
	static const struct {
		uint64_t vaddr;
		uint32_t nr;
	} cases[] = {
		{ UINT64_MAX - P + 1, 1 },		/* ends at 2^64: wraps to 0 */
		{ UINT64_MAX - P + 1, 2 },		/* wraps past 0 */
		{ UINT64_MAX - 2 * P + 1, UINT32_MAX }, /* wraps far */
		{ 1ull << 57, 1 },			/* starts at the limit */
		{ (1ull << 57) - P, 2 },		/* ends one page past it */
		{ (1ull << 57) - P, UINT32_MAX },
		{ 1ull << 63, 1 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		f->s.len = 0;
		put_head(&f->s, 1);
		put_entry(&f->s, cases[i].vaddr, cases[i].nr, PE_PRESENT);
		assert_rejected(&f->s, -EINVAL);
	}
}

static void test_reject_unknown_flags(void **state)
{
	struct fixture *f = *state;

	for (int bit = 3; bit < 32; bit++) {
		f->s.len = 0;
		put_head(&f->s, 1);
		put_entry(&f->s, 0x1000, 1, (1u << bit) | PE_PRESENT);
		assert_rejected(&f->s, -EINVAL);
	}
}

/* Bytes that are no protobuf of the right shape, in head or entry. */
static void test_reject_garbage_protobuf(void **state)
{
	struct fixture *f = *state;
	static const struct {
		uint8_t b[12];
		size_t len;
	} bad[] = {
		{ { 0xff, 0xff, 0xff }, 3 },		    /* truncated varint key */
		{ { 0x08 }, 1 },			    /* key without value */
		{ { 0x08, 0x80 }, 2 },			    /* truncated varint */
		{ { 0x0a, 0x05, 1, 2 }, 4 },		    /* length-delimited, short */
		{ { 0x10, 0x01 }, 2 },			    /* nr_pages only: no vaddr */
		{ { 0x08, 0x80, 0x20 }, 3 },		    /* vaddr only: no nr_pages */
		{ { 0x0f, 0, 0, 0 }, 4 },		    /* wire type 7 */
		{ { 0x08, 0x80, 0x20, 0x10, 1, 0x00 }, 6 }, /* field number 0 */
		{ { 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 }, 12 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		f->s.len = 0;
		put_head(&f->s, 1);
		put_u32(&f->s, bad[i].len);
		put(&f->s, bad[i].b, bad[i].len);
		assert_rejected(&f->s, -EINVAL);
	}
	/* a head that is not a pagemap_head (pages_id missing) */
	f->s.len = 0;
	put_u32(&f->s, CRIU_IMG_COMMON_MAGIC);
	put_u32(&f->s, CRIU_PAGEMAP_MAGIC);
	put_u32(&f->s, 2);
	put(&f->s, (uint8_t[]){ 0x10, 0x01 }, 2);
	assert_rejected(&f->s, -EINVAL);
	/* a head whose pages_id varint is cut short */
	f->s.len = 0;
	put_u32(&f->s, CRIU_IMG_COMMON_MAGIC);
	put_u32(&f->s, CRIU_PAGEMAP_MAGIC);
	put_u32(&f->s, 3);
	put(&f->s, (uint8_t[]){ 0x08, 0xff, 0xff }, 3);
	assert_rejected(&f->s, -EINVAL);
}

/*
 * A valid entry (0x1000, 1 page, PE_PRESENT) padded with an unknown
 * length-delimited field (15) to exactly @n bytes (138 <= n < 16394).
 */
static void put_padded_entry(struct img *s, size_t n)
{
	static const uint8_t entry[] = { 0x08, 0x80, 0x20, 0x10, 0x01, 0x20, 0x04 };
	size_t pad = n - sizeof(entry) - 3;
	uint8_t *rec = calloc(1, n);

	assert_non_null(rec);
	memcpy(rec, entry, sizeof(entry));
	rec[7] = 15 << 3 | 2;
	rec[8] = 0x80 | (pad & 0x7f);
	rec[9] = pad >> 7;
	memset(rec + 10, 'x', pad);
	put_u32(s, n);
	put(s, rec, n);
	free(rec);
}

/* Records are at most 1024 bytes, whatever protobuf would accept. */
static void test_record_size_limit(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 };

	put_head(&f->s, 1);
	put_padded_entry(&f->s, 1024);
	assert_int_equal(pagemap_parse(f->s.b, f->s.len, &pm), 0);
	assert_entries(&pm, (struct pm_entry[]){ { 0x1000, 1, PE_PRESENT } }, 1);
	pagemap_free(&pm);

	f->s.len = 0;
	put_head(&f->s, 1);
	put_padded_entry(&f->s, 1025);
	assert_rejected(&f->s, -EINVAL);

	/* the head: 1024 bytes are fine, 1025 are not */
	for (size_t n = 1024; n <= 1025; n++) {
		uint8_t head[1025];
		size_t pad = n - 2 - 3;
		head[0] = 0x08; /* pages_id = 5 */
		head[1] = 0x05;
		head[2] = 15 << 3 | 2;
		head[3] = 0x80 | (pad & 0x7f);
		head[4] = pad >> 7;
		memset(head + 5, 'y', pad);
		f->s.len = 0;
		put_u32(&f->s, CRIU_IMG_COMMON_MAGIC);
		put_u32(&f->s, CRIU_PAGEMAP_MAGIC);
		put_u32(&f->s, n);
		put(&f->s, head, n);
		if (n == 1025) {
			assert_rejected(&f->s, -EINVAL);
			continue;
		}
		assert_int_equal(pagemap_parse(f->s.b, f->s.len, &pm), 0);
		assert_int_equal(pm.pages_id, 5);
		assert_int_equal(pm.nr, 0);
		pagemap_free(&pm);
	}
}

/* A bad entry after good ones frees what was built (ASan would tell). */
static void test_reject_late_error(void **state)
{
	struct fixture *f = *state;

	put_head(&f->s, 1);
	for (uint64_t i = 0; i < 300; i++)
		put_entry(&f->s, 2 * i * P, 1, PE_PRESENT);
	put_entry(&f->s, 0, 1, PE_PRESENT);
	assert_rejected(&f->s, -EINVAL);
}

/* --- the pagemaps of an image directory ------------------------------------ */

struct seen {
	uint64_t id[8];
	int nr;
	int stop_at; /* the call that returns 1 (1-based), 0: none */
};

static int seen_add(struct seen *s, uint64_t id, const char *name, const char *want)
{
	assert_string_equal(name, want);
	assert_true(s->nr < 8);
	s->id[s->nr++] = id;
	return s->nr == s->stop_at;
}

static int saw_pid(void *arg, int pid, const char *name)
{
	char want[64];

	snprintf(want, sizeof(want), "pagemap-%d.img", pid);
	return seen_add(arg, (uint64_t)pid, name, want);
}

static int saw_shmem(void *arg, uint64_t id, const char *name)
{
	char want[64];

	snprintf(want, sizeof(want), "pagemap-shmem-%llu.img", (unsigned long long)id);
	return seen_add(arg, id, name, want);
}

static bool seen_has(const struct seen *s, uint64_t id)
{
	for (int i = 0; i < s->nr; i++)
		if (s->id[i] == id)
			return true;
	return false;
}

/* pagemap_each sees the tasks' pagemaps, pagemap_each_shmem the objects'. */
static void test_each(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {
		"pagemap-100.img",     "pagemap-4194304.img",
		"pagemap-shmem-7.img", "pagemap-shmem-18446744073709551615.img",
		"pagemap-shmem-x.img", "pagemap-shmem-.img",
		"pagemap-13.im",       "pagemap-99999999999.img", /* no PID */
		"pages-1.img",	       "core-100.img",
	};
	struct seen s = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		int fd = openat(f->dirfd, names[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	assert_int_equal(pagemap_each(f->dirfd, saw_pid, &s), 0);
	assert_int_equal(s.nr, 2);
	assert_true(seen_has(&s, 100) && seen_has(&s, 4194304));
	memset(&s, 0, sizeof(s));
	assert_int_equal(pagemap_each_shmem(f->dirfd, saw_shmem, &s), 0);
	assert_int_equal(s.nr, 2);
	assert_true(seen_has(&s, 7) && seen_has(&s, UINT64_MAX));
	/* what a call returns that is not 0 ends the walk */
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	assert_int_equal(pagemap_each_shmem(f->dirfd, saw_shmem, &s), 1);
	assert_int_equal(s.nr, 1);
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	assert_int_equal(pagemap_each(f->dirfd, saw_pid, &s), 1);
	assert_int_equal(s.nr, 1);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip_many),
		T(test_round_trip_each_flag),
		T(test_round_trip_empty),
		T(test_write_layout),
		T(test_read_errors),
		T(test_add_merges),
		T(test_split_lazy),
		T(test_split_lazy_huge),
		T(test_add_count_limit),
		T(test_add_grows),
		T(test_parse_valid),
		T(test_parse_head_only),
		T(test_parse_old_style),
		T(test_parse_unknown_field),
		T(test_reject_bad_magics),
		T(test_reject_truncated),
		T(test_reject_bad_lengths),
		T(test_reject_unaligned),
		T(test_reject_empty_run),
		T(test_reject_unsorted_overlapping),
		T(test_reject_vaddr_overflow),
		T(test_reject_unknown_flags),
		T(test_reject_garbage_protobuf),
		T(test_reject_late_error),
		T(test_record_size_limit),
		T(test_each),
	};
#undef T

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests_name("pagemap", tests, NULL, NULL);
}
