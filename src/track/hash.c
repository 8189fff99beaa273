/* SPDX-License-Identifier: MIT */
/*
 * hash: the portable method. Every round reads every populated anonymous
 * page of the tracked mappings (1 MiB at a time, common/procmem.h: pages
 * of unreadable mappings included) and
 * compares its xxh3-64 with the last round's. Memory: 8 bytes a populated
 * page, in windows of 64 pages that hold hashes only for the pages present
 * (a sorted array of windows, 24 bytes each), plus a 1 MiB buffer. Never a
 * copy of the workload's memory. A page reads as written if its contents
 * differ (a 2^-64 chance per page and round to miss a change). Pages
 * the caller read after a collect (to send them) get the hash of what it
 * read (tracker_sent): a page written after the collect and written back
 * before the next one (a counter up and down again) differs from the
 * copy sent, not from the last hash.
 */
#define LOG_PREFIX "track: "
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/log.h"
#include "common/procmem.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#define WIN 64	  /* pages a window holds: one bit each in a uint64_t */
#define CHUNK 256 /* pages read at a time: 1 MiB */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_FILE (1ULL << 61) /* page cache (or shared) page: not dumped */

bool track_hash_no_pmscan;

struct hwin {
	uint64_t addr; /* first page's address, WIN-aligned */
	uint64_t mask; /* pages present */
	uint64_t *h;   /* their hashes, in address order: popcount(mask) */
};

struct wins {
	struct hwin *w;
	size_t nr, cap;
};

struct hash {
	struct wins old, cur; /* last round's windows, this round's */
	size_t at;	      /* next window of old to compare with */
	bool pmscan;	      /* the kernel has PAGEMAP_SCAN */
	struct procmem mem;   /* the process's memory, kept across rounds */
	/* This round: */
	int pagemap; /* /proc/PID/pagemap */
	struct rangeset *dirty;
	uint64_t *scanned;
	uint64_t base; /* the chunk being filled, if have */
	bool have;
	uint64_t want[CHUNK / WIN]; /* its pages to read */
	uint64_t pm[CHUNK];
	uint8_t *buf; /* CHUNK pages */
	struct iovec liov[CHUNK / 2 + 1], riov[CHUNK / 2 + 1];
};

#define SWAP(a, b)                        \
	do {                              \
		__typeof__(a) _tmp = (a); \
		(a) = (b);                \
		(b) = _tmp;               \
	} while (0)

static void wins_free(struct wins *ws, size_t from)
{
	for (size_t i = from; i < ws->nr; i++)
		free(ws->w[i].h);
	ws->nr = 0;
}

static int wins_push(struct wins *ws, const struct hwin *w)
{
	if (ws->nr == ws->cap) {
		size_t cap = ws->cap ? ws->cap * 2 : 256;
		struct hwin *n = realloc(ws->w, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ws->w = n;
		ws->cap = cap;
	}
	ws->w[ws->nr++] = *w;
	return 0;
}

static uint64_t page_hash(const void *p)
{
	uint64_t h = XXH3_64bits(p, PAGE);

	return h ? h : 1; /* 0 stays free for "no hash" */
}

/* Last round's hash of page @bit of @w, or 0. */
static uint64_t old_hash(const struct hwin *w, int bit)
{
	if (!w || !(w->mask & (1ULL << bit)))
		return 0;
	return w->h[__builtin_popcountll(w->mask & ((1ULL << bit) - 1))];
}

/* Last round's window at @addr, if any; older ones are dropped. */
static struct hwin *old_window(struct hash *h, uint64_t addr)
{
	while (h->at < h->old.nr && h->old.w[h->at].addr < addr)
		free(h->old.w[h->at++].h);
	if (h->at < h->old.nr && h->old.w[h->at].addr == addr)
		return &h->old.w[h->at++];
	return NULL;
}

/* Hash window @wi of the chunk at @base, report the pages that changed. */
static int update_window(struct hash *h, uint64_t base, int wi, struct rangeset *dirty)
{
	uint64_t addr = base + wi * WIN * PAGE, mask = h->want[wi];
	struct hwin *o = old_window(h, addr), n = { addr, mask, NULL };
	bool reuse = o && o->mask == mask && mask;
	int k = 0, r = 0;

	if (reuse)
		n.h = TAKE_PTR(o->h);
	else if (mask && !(n.h = malloc(__builtin_popcountll(mask) * sizeof(uint64_t))))
		r = -ENOMEM;
	for (int b = 0; r == 0 && b < WIN; b++) {
		const uint8_t *page = h->buf + (wi * WIN + b) * PAGE;
		uint64_t v, prev;

		if (!(mask & (1ULL << b)))
			continue;
		v = page_hash(page);
		prev = reuse ? n.h[k] : old_hash(o, b);
		if (v != prev)
			r = rangeset_add(dirty, addr + b * PAGE, addr + (b + 1) * PAGE);
		n.h[k++] = v;
	}
	if (o)
		free(TAKE_PTR(o->h));
	if (r == 0 && mask)
		r = wins_push(&h->cur, &n);
	if (r < 0)
		free(n.h);
	return r;
}

static bool wanted(const struct hash *h, int p)
{
	return h->want[p / WIN] & (1ULL << (p % WIN));
}

/* iovecs for the runs of wanted pages from page @k on; returns their count. */
static int chunk_iovs(struct hash *h, uint64_t base, int k)
{
	int n = 0;

	for (; k < CHUNK; k++) {
		if (!wanted(h, k))
			continue;
		if (n && (uint8_t *)h->liov[n - 1].iov_base + h->liov[n - 1].iov_len ==
				 h->buf + k * PAGE) {
			h->liov[n - 1].iov_len += PAGE;
			h->riov[n - 1].iov_len += PAGE;
			continue;
		}
		h->liov[n] = (struct iovec){ h->buf + k * PAGE, PAGE };
		h->riov[n++] = (struct iovec){ (void *)(uintptr_t)(base + k * PAGE), PAGE };
	}
	return n;
}

/* The wanted page after @k's first @done wanted pages (CHUNK if none). */
static int skip_wanted(const struct hash *h, int k, uint64_t done)
{
	for (; k < CHUNK; k++)
		if (wanted(h, k) && done-- == 0)
			return k;
	return CHUNK;
}

/* Read the wanted pages into buf; a page unmapped meanwhile is dropped. */
static int read_chunk(struct hash *h, uint64_t base)
{
	int k = skip_wanted(h, 0, 0);

	while (k < CHUNK) {
		int n = chunk_iovs(h, base, k);
		ssize_t got = procmem_readv(&h->mem, h->liov, h->riov, n);

		if (got < 0)
			return (int)got;
		k = skip_wanted(h, k, (uint64_t)got / PAGE);
		if (k == CHUNK)
			break;
		h->want[k / WIN] &= ~(1ULL << (k % WIN));
		k = skip_wanted(h, k + 1, 0);
	}
	return 0;
}

/* Read and hash the chunk being filled. */
static int flush_chunk(struct hash *h)
{
	int r;

	if (!h->have)
		return 0;
	h->have = false;
	if ((r = read_chunk(h, h->base)) < 0)
		return r;
	for (int wi = 0; wi < CHUNK / WIN; wi++) {
		if ((r = update_window(h, h->base, wi, h->dirty)) < 0)
			return r;
		*h->scanned += __builtin_popcountll(h->want[wi]);
	}
	return 0;
}

/* Populated pages [start, end), in increasing order across a round. */
static int add_range(void *arg, uint64_t start, uint64_t end)
{
	const uint64_t csize = CHUNK * PAGE;
	struct hash *h = arg;
	int r;

	while (start < end) {
		uint64_t base = start / csize * csize, stop = MIN(end, base + csize);

		if (!h->have || h->base != base) {
			if ((r = flush_chunk(h)) < 0)
				return r;
			h->base = base;
			h->have = true;
			memset(h->want, 0, sizeof(h->want));
		}
		for (uint64_t p = (start - base) / PAGE; p < (stop - base) / PAGE; p++)
			h->want[p / WIN] |= 1ULL << (p % WIN);
		start = stop;
	}
	return 0;
}

/* Without PAGEMAP_SCAN: /proc/PID/pagemap, 8 bytes a page, holes too. */
static int pagemap_populated(struct hash *h, const struct track_vma *v)
{
	const uint64_t csize = CHUNK * PAGE;
	int r;

	for (uint64_t a = v->start; a < v->end;) {
		uint64_t stop = MIN(v->end, a / csize * csize + csize);
		size_t n = (stop - a) / PAGE;

		if (pread(h->pagemap, h->pm, n * 8, a / PAGE * 8) != (ssize_t)(n * 8))
			return -ESRCH;
		for (size_t i = 0; i < n; i++)
			if ((h->pm[i] & (PM_PRESENT | PM_SWAP)) && !(h->pm[i] & PM_FILE) &&
			    (r = add_range(h, a + i * PAGE, a + (i + 1) * PAGE)) < 0)
				return r;
		a = stop;
	}
	return 0;
}

static int hash_round(struct hash *h, const struct track_vmas *vs)
{
	int r = 0;

	h->have = false;
	for (size_t i = 0; i < vs->nr && r == 0; i++) {
		if (h->pmscan)
			r = pm_scan(h->pagemap, &vs->v[i], PM_POPULATED, add_range, h);
		else
			r = pagemap_populated(h, &vs->v[i]);
	}
	return r < 0 ? r : flush_chunk(h);
}

static int open_proc(pid_t pid, const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 ? fd : errno == ENOENT ? -ESRCH : -errno;
}

/* One round; on failure the hashes are dropped: the next reports all. */
static int hash_try(struct tracker *t, struct hash *h)
{
	struct track_vmas vs = { 0 };
	int r;

	h->at = 0;
	if ((r = h->pagemap = open_proc(t->pid, "pagemap")) >= 0 &&
	    (r = track_vmas_read(t->pid, &vs)) >= 0)
		r = hash_round(h, &vs);
	if (r >= 0 && !track_alive(t->pid, t->pidfd))
		r = -ESRCH;
	wins_free(&h->old, h->at);
	if (r < 0)
		wins_free(&h->cur, 0);
	SWAP(h->old, h->cur);
	if (h->pagemap >= 0)
		close(h->pagemap);
	h->pagemap = -1;
	track_vmas_free(&vs);
	return r < 0 ? r : 0;
}

static int hash_collect(struct tracker *t, struct rangeset *dirty, uint64_t *scanned)
{
	struct hash *h = t->priv;
	int r;

	h->dirty = dirty;
	h->scanned = scanned;
	/* Twice: an exec during the round shows as -ESRCH, the process alive. */
	for (int i = 0; i < 2; i++) {
		rangeset_clear(dirty);
		*scanned = 0;
		r = hash_try(t, h);
		if (r != -ESRCH || !track_alive(t->pid, t->pidfd))
			break;
	}
	return r;
}

/* Last collect's window at @addr (WIN-aligned), if any. */
static struct hwin *find_window(struct wins *ws, uint64_t addr)
{
	size_t lo = 0, hi = ws->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ws->w[mid].addr == addr)
			return &ws->w[mid];
		if (ws->w[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* What the caller read is what the next collect compares with. */
static void hash_sent(struct tracker *t, uint64_t vaddr, const uint8_t *data, size_t bytes)
{
	struct hash *h = t->priv;

	for (size_t off = 0; off + PAGE <= bytes; off += PAGE) {
		uint64_t a = vaddr + off, waddr = a / (WIN * PAGE) * (WIN * PAGE);
		struct hwin *w = find_window(&h->old, waddr);
		int bit = (int)((a - waddr) / PAGE);

		/* a page not hashed then is reported by the next collect anyway */
		if (w && (w->mask & (1ULL << bit)))
			w->h[__builtin_popcountll(w->mask & ((1ULL << bit) - 1))] = page_hash(
				data + off);
	}
}

static int hash_open(struct tracker *t)
{
	_cleanup_close_ int fd = open_proc(t->pid, "pagemap");
	struct hash *h;

	if (fd < 0)
		return fd;
	if (!(h = calloc(1, sizeof(*h))) || !(h->buf = malloc(CHUNK * PAGE))) {
		free(h);
		return -ENOMEM;
	}
	h->pagemap = -1;
	procmem_init(&h->mem, t->pid);
	/* Without it, every round reads 8 bytes of pagemap per mapped page. */
	h->pmscan = !track_hash_no_pmscan && pm_scan_probe(fd) == 0;
	if (!h->pmscan)
		pr_info("hash: no PAGEMAP_SCAN: finding populated pages through pagemap");
	t->priv = h;
	return 0;
}

static void hash_close(struct tracker *t)
{
	struct hash *h = t->priv;

	if (!h)
		return;
	procmem_close(&h->mem);
	wins_free(&h->old, 0);
	wins_free(&h->cur, 0);
	free(h->old.w);
	free(h->cur.w);
	free(h->buf);
	free(h);
	t->priv = NULL;
}

const struct track_ops track_hash_ops = {
	.method = TRACK_HASH,
	.open = hash_open,
	.collect = hash_collect,
	.sent = hash_sent,
	.close = hash_close,
};
