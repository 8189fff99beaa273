/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "cow: "
#include "source/cow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/page.h"
#include "common/proc.h"
#include "common/util.h"
#include "criu/pagemap.h"

#define PM_FRAME ((UINT64_C(1) << 55) - 1) /* frame number, or swap type and offset */
#define PM_SWAP (UINT64_C(1) << 62)
#define PM_PRESENT (UINT64_C(1) << 63)
#define CHUNK 4096u /* pagemap entries read at once (32 KiB) */

static bool same_page(uint64_t a, uint64_t b)
{
	uint64_t kind = a & (PM_PRESENT | PM_SWAP);

	return kind && kind == (b & (PM_PRESENT | PM_SWAP)) && (a & PM_FRAME) &&
	       (a & PM_FRAME) == (b & PM_FRAME);
}

int cow_match(uint64_t vaddr, const uint64_t *a, const uint64_t *b, size_t n, struct rangeset *out)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < n; i++) {
		size_t j = i;
		while (j < n && same_page(a[j], b[j]))
			j++;
		if (j > i)
			r = rangeset_add(out, vaddr + i * PAGE, vaddr + j * PAGE);
		i = j; /* a[j] is not shared (or j == n) */
	}
	return r;
}

static int read_entries(int fd, uint64_t vaddr, uint64_t *buf, size_t n)
{
	ssize_t got = pread(fd, buf, n * sizeof(*buf), (off_t)(vaddr / PAGE * sizeof(*buf)));

	if (got < 0)
		return -errno;
	return (size_t)got == n * sizeof(*buf) ? 0 : -EIO;
}

/* The shared pages of [a, b) between the processes of @cfd and @pfd. */
static int match_range(int cfd, int pfd, uint64_t a, uint64_t b, uint64_t *buf,
		       struct rangeset *out)
{
	int r = 0;

	for (uint64_t pos = a; r == 0 && pos < b;) {
		size_t n = MIN((b - pos) / PAGE, (uint64_t)CHUNK);
		r = read_entries(cfd, pos, buf, n);
		if (r == 0)
			r = read_entries(pfd, pos, buf + CHUNK, n);
		if (r == 0)
			r = cow_match(pos, buf, buf + CHUNK, n, out);
		pos += n * PAGE;
	}
	return r;
}

static int open_pagemap(pid_t pid)
{
	char path[40];

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Child @c and its parent @p: the pages both map, in both shared sets. */
static int match_pair(struct cow_proc *c, struct cow_proc *p, uint64_t *buf)
{
	_cleanup_close_ int cfd = open_pagemap(c->pid);
	_cleanup_close_ int pfd = open_pagemap(p->pid);
	struct rangeset both = { 0 }, found = { 0 };
	int r = 0;

	if (cfd < 0 || pfd < 0) {
		pr_warn("cannot read the pagemap of PID %d or %d: %m; their shared pages will "
			"be copies",
			c->pid, p->pid);
		return 0;
	}
	for (size_t i = 0; r == 0 && i < c->lazy.nr; i++)
		r = rangeset_intersect(&p->lazy, c->lazy.r[i].start, c->lazy.r[i].end, &both);
	for (size_t i = 0; r == 0 && i < both.nr; i++)
		r = match_range(cfd, pfd, both.r[i].start, both.r[i].end, buf, &found);
	rangeset_free(&both);
	if (r == -ENOMEM) {
		rangeset_free(&found);
		return r;
	}
	if (r < 0) {
		pr_warn("reading the pagemaps of PID %d and %d: %s; their shared pages will be "
			"copies",
			c->pid, p->pid, strerror(-r));
		rangeset_clear(&found);
	}
	r = rangeset_union(&c->shared, &found);
	if (r == 0)
		r = rangeset_union(&p->shared, &found);
	rangeset_free(&c->with_parent);
	c->with_parent = found;
	return r;
}

struct loader {
	struct migration *m;
	struct cow_set *cs;
};

/* One process of CRIU's images: its lazy runs and who it is here. */
static int load_proc(void *arg, int ipid, const char *name)
{
	struct loader *l = arg;
	struct cow_set *cs = l->cs;
	struct pagemap pm = { 0 };
	struct cow_proc *p = realloc(cs->p, (cs->nr + 1) * sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	cs->p = p;
	p = &cs->p[cs->nr++];
	memset(p, 0, sizeof(*p));
	p->ipid = ipid;
	p->pid = l->m->img_pids ? proc_ns_to_host(l->m->root_pid, ipid) : ipid;
	p->ppid = p->pid > 0 ? proc_ppid(p->pid) : -1;
	r = pagemap_read(l->m->imgfd, name, &pm);
	for (size_t i = 0; r == 0 && i < pm.nr; i++)
		if ((pm.e[i].flags & PE_LAZY) && !(pm.e[i].flags & PE_PRESENT))
			r = rangeset_add(&p->lazy, pm.e[i].vaddr,
					 pm.e[i].vaddr + (uint64_t)pm.e[i].nr_pages * PAGE);
	pagemap_free(&pm);
	return r;
}

static struct cow_proc *find_host(struct cow_set *cs, pid_t pid)
{
	for (size_t i = 0; pid > 0 && i < cs->nr; i++)
		if (cs->p[i].pid == pid)
			return &cs->p[i];
	return NULL;
}

/* Each process's depth below its first ancestor outside the tree. */
static void set_depths(struct cow_set *cs)
{
	for (size_t i = 0; i < cs->nr; i++) {
		unsigned int d = 0;
		/* at most nr steps: a cycle (PIDs reused) cannot hang us */
		for (ssize_t a = cs->p[i].parent; a >= 0 && d < cs->nr; a = cs->p[a].parent)
			d++;
		cs->p[i].depth = d;
		cs->depth = MAX(cs->depth, d);
	}
}

int cow_find(struct migration *m, struct cow_set *cs)
{
	_cleanup_free_ uint64_t *buf = NULL;
	uint64_t t0 = now_ms();
	int r;

	memset(cs, 0, sizeof(*cs));
	r = pagemap_each(m->imgfd, load_proc, &(struct loader){ m, cs });
	if (r < 0 || cs->nr < 2)
		return r;
	buf = malloc(2 * CHUNK * sizeof(*buf));
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < cs->nr; i++) {
		struct cow_proc *parent = cs->p[i].pid > 0 ? find_host(cs, cs->p[i].ppid) : NULL;
		cs->p[i].parent = parent ? parent - cs->p : -1;
	}
	for (size_t i = 0; r == 0 && i < cs->nr; i++)
		if (cs->p[i].parent >= 0)
			r = match_pair(&cs->p[i], &cs->p[cs->p[i].parent], buf);
	set_depths(cs);
	for (size_t i = 0; r == 0 && i < cs->nr; i++)
		cs->pages += rangeset_bytes(&cs->p[i].shared) / PAGE;
	if (r == 0)
		pr_info("%llu pages of %zu processes shared copy-on-write (found in %llu ms)",
			(unsigned long long)cs->pages, cs->nr, (unsigned long long)(now_ms() - t0));
	return r;
}

void cow_free(struct cow_set *cs)
{
	for (size_t i = 0; i < cs->nr; i++) {
		rangeset_free(&cs->p[i].lazy);
		rangeset_free(&cs->p[i].shared);
		rangeset_free(&cs->p[i].with_parent);
	}
	free(cs->p);
	memset(cs, 0, sizeof(*cs));
}
