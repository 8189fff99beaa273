/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: pagemap_parse on arbitrary bytes (a CRIU
 * pagemap-PID.img as it could arrive from the network).
 *
 * Input: the whole file.
 *
 * The result is compared with an independent reading of the format
 * (pagemap.h and CRIU's images): magics, u32-length-prefixed records of at
 * most 1024 bytes, one pagemap_head then pagemap_entry records; every run
 * page-aligned, non-empty, ending at 2^57 at the latest, after the previous
 * one; flags within PE_PARENT|PE_LAZY|PE_PRESENT, or, without flags,
 * in_parent ? PE_PARENT : PE_PRESENT; adjacent runs with the same flags
 * merged while the count fits 32 bits. What parses is then written with
 * pagemap_write to a file in a temporary directory (created once) and read
 * back with pagemap_read: it must give the same map. pagemap_split_lazy
 * at a bound taken from the last byte keeps every page in order, and its
 * output read back merges into the same map again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "criu-image.pb-c.h"
#include "criu/pagemap.h"
#include "fuzz.h"

static char dir[4096];
static int dirfd_ = -1;

static void cleanup(void)
{
	if (dirfd_ >= 0) {
		close(dirfd_);
		dirfd_ = -1;
		rm_rf(dir);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	log_init("fuzz", LOG_QUIET);
	snprintf(dir, sizeof(dir), "%s/phaul-fuzz-pagemap.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ < 0)
		abort();
	atexit(cleanup);
	return 0;
}

static uint32_t u32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* The next record, or false if there is none that fits. */
static bool record(const uint8_t *b, size_t len, size_t *pos, const uint8_t **rec, size_t *rlen)
{
	if (len - *pos < 4)
		return false;
	*rlen = u32_at(b + *pos);
	*pos += 4;
	if (*rlen > 1024 || *rlen > len - *pos)
		return false;
	*rec = b + *pos;
	*pos += *rlen;
	return true;
}

/* 0 and the expected map in @out (room for len/4 entries), or -1. */
static int oracle(const uint8_t *b, size_t len, uint32_t *pages_id, struct pm_entry *out,
		  size_t *nout)
{
	const uint8_t *rec;
	size_t pos = 8, rlen, n = 0;
	unsigned __int128 last_end = 0;
	Cimg__PagemapHead *h;

	if (len < 8 || u32_at(b) != 0x54564319u || u32_at(b + 4) != 0x56084025u)
		return -1;
	if (!record(b, len, &pos, &rec, &rlen))
		return -1;
	h = cimg__pagemap_head__unpack(NULL, rlen, rec);
	if (!h)
		return -1;
	*pages_id = h->pages_id;
	cimg__pagemap_head__free_unpacked(h, NULL);

	while (pos < len) {
		Cimg__PagemapEntry *e;
		unsigned __int128 start, end;
		uint32_t flags;

		if (!record(b, len, &pos, &rec, &rlen))
			return -1;
		e = cimg__pagemap_entry__unpack(NULL, rlen, rec);
		if (!e)
			return -1;
		start = e->vaddr;
		end = start + (unsigned __int128)e->nr_pages * 4096;
		if (e->has_flags)
			flags = e->flags;
		else
			flags = e->has_in_parent && e->in_parent ? 1 : 4;
		bool bad = e->vaddr % 4096 || e->nr_pages == 0 ||
			   end > ((unsigned __int128)1 << 57) || (n && start < last_end) ||
			   flags > 7;
		uint32_t nr = e->nr_pages;
		cimg__pagemap_entry__free_unpacked(e, NULL);
		if (bad)
			return -1;
		if (n && out[n - 1].flags == flags && last_end == start &&
		    (uint64_t)out[n - 1].nr_pages + nr <= UINT32_MAX) {
			out[n - 1].nr_pages += nr;
		} else {
			CHECK(n < len / 4); /* a record takes 4 bytes at least */
			out[n++] = (struct pm_entry){ (uint64_t)start, nr, flags };
		}
		last_end = end;
	}
	*nout = n;
	return 0;
}

static void same_map(const struct pagemap *a, uint32_t pages_id, const struct pm_entry *e, size_t n)
{
	CHECK(a->pages_id == pages_id);
	CHECK(a->nr == n);
	for (size_t i = 0; i < n; i++) {
		CHECK(a->e[i].vaddr == e[i].vaddr);
		CHECK(a->e[i].nr_pages == e[i].nr_pages);
		CHECK(a->e[i].flags == e[i].flags);
	}
}

/* What every parsed map must be, whatever the oracle says. */
static void check_invariants(const struct pagemap *pm)
{
	uint64_t present = 0;

	CHECK(pm->nr <= pm->cap);
	CHECK(pm->nr <= PAGEMAP_MAX_ENTRIES);
	for (size_t i = 0; i < pm->nr; i++) {
		const struct pm_entry *e = &pm->e[i];
		uint64_t end = e->vaddr + (uint64_t)e->nr_pages * 4096;
		CHECK(e->vaddr % 4096 == 0);
		CHECK(e->nr_pages > 0);
		CHECK(end > e->vaddr && end <= (1ull << 57));
		CHECK((e->flags & ~7u) == 0);
		if (i) {
			const struct pm_entry *p = &pm->e[i - 1];
			uint64_t pend = p->vaddr + (uint64_t)p->nr_pages * 4096;
			CHECK(pend <= e->vaddr);
			/* merged as far as possible */
			CHECK(!(pend == e->vaddr && p->flags == e->flags &&
				(uint64_t)p->nr_pages + e->nr_pages <= UINT32_MAX));
		}
		if (e->flags & PE_PRESENT)
			present += e->nr_pages;
	}
	CHECK(pagemap_present_pages(pm) == present);
}

/*
 * pagemap_split_lazy(@max): lazy-only runs at most @max pages, every other
 * run as it was, the same pages in the same order; written and read back,
 * the reader merges them again into the map before the split.
 */
static void split_check(const struct pagemap *pm, uint32_t max)
{
	struct pagemap cp = { .pages_id = pm->pages_id }, back = { 0 };
	size_t k = 0;
	int r;

	for (size_t i = 0; i < pm->nr; i++)
		CHECK(pagemap_add(&cp, pm->e[i].vaddr, pm->e[i].nr_pages, pm->e[i].flags) == 0);
	r = pagemap_split_lazy(&cp, max);
	CHECK(r >= 0 || r == -E2BIG || r == -ENOMEM);
	if (r < 0) {
		CHECK(cp.nr == pm->nr);
		pagemap_free(&cp);
		return;
	}
	CHECK(cp.nr == pm->nr + (size_t)r);
	for (size_t i = 0; i < pm->nr; i++) {
		const struct pm_entry *e = &pm->e[i];
		bool lazy = (e->flags & PE_LAZY) && !(e->flags & PE_PRESENT);
		uint64_t at = e->vaddr, left = e->nr_pages;

		while (left) {
			CHECK(k < cp.nr && cp.e[k].vaddr == at && cp.e[k].flags == e->flags);
			CHECK(cp.e[k].nr_pages == (lazy ? (left < max ? left : max) : left));
			at += (uint64_t)cp.e[k].nr_pages * PAGE;
			left -= cp.e[k++].nr_pages;
		}
	}
	CHECK(k == cp.nr);
	CHECK(pagemap_write(dirfd_, "pagemap-2.img", &cp) == 0);
	CHECK(pagemap_read(dirfd_, "pagemap-2.img", &back) == 0);
	same_map(&back, pm->pages_id, pm->e, pm->nr);
	pagemap_free(&back);
	pagemap_free(&cp);
	CHECK(unlinkat(dirfd_, "pagemap-2.img", 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pm_entry sentinel = { 1, 2, 3 };
	struct pagemap pm = { .pages_id = 99, .e = &sentinel, .nr = 1, .cap = 1 }, back = { 0 };
	struct pm_entry *want = malloc((size / 4 + 1) * sizeof(*want));
	uint32_t want_id = 0;
	size_t want_nr = 0;
	int r, o;

	CHECK(want);
	o = oracle(data, size, &want_id, want, &want_nr);
	r = pagemap_parse(data, size, &pm);
	CHECK(r == 0 || r == -EINVAL || r == -E2BIG || r == -ENOMEM);
	if (r < 0) {
		CHECK(o < 0);
		/* left alone */
		CHECK(pm.pages_id == 99 && pm.e == &sentinel && pm.nr == 1);
		CHECK(sentinel.vaddr == 1 && sentinel.nr_pages == 2 && sentinel.flags == 3);
		free(want);
		return 0;
	}
	CHECK(o == 0);
	same_map(&pm, want_id, want, want_nr);
	check_invariants(&pm);

	/* written and read back: the same map */
	CHECK(pagemap_write(dirfd_, "pagemap-1.img", &pm) == 0);
	CHECK(pagemap_read(dirfd_, "pagemap-1.img", &back) == 0);
	same_map(&back, pm.pages_id, pm.e, pm.nr);
	pagemap_free(&back);
	CHECK(unlinkat(dirfd_, "pagemap-1.img", 0) == 0);

	split_check(&pm, size ? 1 + data[size - 1] % 64 : 1);
	pagemap_free(&pm);
	CHECK(pm.e == NULL && pm.nr == 0);
	free(want);
	return 0;
}
