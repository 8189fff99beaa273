/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pagestore: "
#include "pages/store.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "criu/pagemap.h"
#include "proto/msg.h"
#include "proto/pageframe.h"
#include "proto/wire.h"

/*
 * The longest lazy run criu lazy-pages is given (64 MiB). It allocates a
 * buffer the size of its longest run (it never reads more than 4 MiB at
 * once), and CRIU 4.1 keeps that size in an int: a run over 2 GiB made
 * its allocation fail or its buffer too small (scripts/criu-patches/0010).
 */
#define LAZY_RUN_PAGES (16384u)

int pagestore_init(struct pagestore *ps, int sessfd, const int32_t *pids, size_t nr_pids)
{
	memset(ps, 0, sizeof(*ps));
	ps->dirfd = ps->round_fd = -1;
	ps->pids = pids;
	ps->nr_pids = nr_pids;
	ps->round = 1;
	ps->buf = malloc(FRAME_DATA_MAX);
	if (!ps->buf)
		return -ENOMEM;
	if (mkdirat(sessfd, "rounds", 0700) < 0 && errno != EEXIST)
		return -errno;
	ps->dirfd = openat(sessfd, "rounds", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return ps->dirfd < 0 ? -errno : 0;
}

int pagestore_add_pids(struct pagestore *ps, const int32_t *pids, size_t nr)
{
	int32_t *v;

	if (nr > MSG_PIDS_MAX || ps->nr_pids + ps->nr_more + nr > MSG_PIDS_MAX)
		return -E2BIG;
	v = realloc(ps->more, (ps->nr_more + nr + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	ps->more = v;
	memcpy(v + ps->nr_more, pids, nr * sizeof(*v));
	ps->nr_more += nr;
	return 0;
}

/* A new entry for @pid's pages (or a shared memory object's). */
static struct ps_proc *entry_new(struct pagestore *ps, pid_t pid)
{
	struct ps_proc *p = realloc(ps->p, (ps->nr + 1) * sizeof(*p));

	if (!p)
		return NULL;
	ps->p = p;
	p = &ps->p[ps->nr++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->pages_fd = -1;
	p->memfd = -1;
	return p;
}

static struct ps_proc *proc_get(struct pagestore *ps, pid_t pid)
{
	bool allowed = false;

	for (size_t i = 0; i < ps->nr; i++)
		if (ps->p[i].pid == pid && !ps->p[i].shmid)
			return &ps->p[i];
	for (size_t i = 0; i < ps->nr_pids; i++)
		allowed |= ps->pids[i] == pid;
	for (size_t i = 0; i < ps->nr_more; i++)
		allowed |= ps->more[i] == pid;
	return allowed ? entry_new(ps, pid) : NULL;
}

/*
 * A memfd of the object's size (holes: it takes no memory until written),
 * made as CRIU's restore would make it (its name; sealable unless the
 * object had only F_SEAL_SEAL), if the store prepares them; else -1.
 */
static int shm_memfd(const struct pagestore *ps, const Phaul__PageRun *pr)
{
	int fd;

	if (!ps->prepared || !pr->shm_name || !pr->has_shm_seals || !pr->has_shm_size ||
	    pr->shm_size > MSG_VADDR_LIMIT)
		return -1;
	fd = memfd_create(pr->shm_name,
			  MFD_CLOEXEC | (pr->shm_seals == F_SEAL_SEAL ? 0 : MFD_ALLOW_SEALING));
	if (fd >= 0 && ftruncate(fd, (off_t)pr->shm_size) < 0) {
		pr_warn("cannot size a memfd for shared memory %llu: %m; it goes to the rounds",
			(unsigned long long)pr->shmid);
		close(fd);
		fd = -1;
	}
	return fd;
}

/* The store's entry for the shared memory object of @pr, new if need be. */
static struct ps_proc *shm_get(struct pagestore *ps, const Phaul__PageRun *pr)
{
	struct ps_proc *p;

	for (size_t i = 0; i < ps->nr; i++)
		if (ps->p[i].shmid == pr->shmid)
			return &ps->p[i];
	if (!ps->shmem || ps->nr_shm >= MSG_SHMEM_MAX)
		return NULL;
	p = entry_new(ps, PS_SHM_PAGES_ID + (pid_t)ps->nr_shm);
	if (!p)
		return NULL;
	ps->nr_shm++;
	p->shmid = pr->shmid;
	p->memfd = shm_memfd(ps, pr);
	p->shm_size = p->memfd >= 0 ? pr->shm_size : 0;
	return p;
}

static int open_round(struct pagestore *ps)
{
	char name[16], parent[24];

	if (ps->round_fd >= 0)
		return 0;
	snprintf(name, sizeof(name), "%u", ps->round);
	if (mkdirat(ps->dirfd, name, 0700) < 0)
		return -errno;
	ps->round_fd = openat(ps->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ps->round_fd < 0)
		return -errno;
	snprintf(parent, sizeof(parent), "../%u", ps->round - 1);
	if (ps->round > 1 && symlinkat(parent, ps->round_fd, "parent") < 0)
		return -errno;
	return 0;
}

static int open_pages(struct pagestore *ps, struct ps_proc *p)
{
	char name[32];

	if (p->pages_fd >= 0)
		return 0;
	snprintf(name, sizeof(name), "pages-%d.img", p->pid);
	p->pages_fd = openat(ps->round_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return p->pages_fd < 0 ? -errno : 0;
}

/*
 * Write a chunk of pages at the file's offset, but not its zero pages:
 * they stay holes (no space; CRIU reads them as zeros). Bytes written.
 */
static int64_t write_chunk(int fd, const uint8_t *buf, uint32_t len, uint64_t zero)
{
	int64_t written = 0;
	uint32_t i = 0;
	int r;

	if (!zero) { /* FRAME_DATA chunks need not be whole pages */
		r = write_full(fd, buf, len);
		return r < 0 ? (int64_t)r : (int64_t)len;
	}
	while (i < len / PAGE) {
		uint32_t j = i;
		bool z = zero & 1ULL << i;
		while (j < len / PAGE && !!(zero & 1ULL << j) == z)
			j++;
		if (z) {
			if (lseek(fd, (off_t)(j - i) * PAGE, SEEK_CUR) < 0)
				return -errno;
		} else {
			r = write_full(fd, buf + (size_t)i * PAGE, (size_t)(j - i) * PAGE);
			if (r < 0)
				return r;
			written += (int64_t)(j - i) * PAGE;
		}
		i = j;
	}
	return written;
}

/* Receive a run's @bytes into @fd; *stored: the bytes that took space. */
static int recv_data(struct pagestore *ps, struct conn *c, int fd, uint64_t bytes, uint64_t *stored)
{
	bool hole = false; /* the file ends in a skipped zero page */
	uint64_t zero;
	uint32_t len;
	int64_t w;
	int r;

	*stored = 0;
	while (bytes > 0) {
		r = pages_recv(c, ps->buf, MIN(bytes, (uint64_t)FRAME_DATA_MAX), &len, &zero);
		if (r < 0)
			return r;
		w = write_chunk(fd, ps->buf, len, zero);
		if (w < 0)
			return (int)w;
		hole = len >= PAGE && zero >> (len / PAGE - 1) & 1;
		*stored += w;
		bytes -= len;
	}
	if (hole) { /* the file is as long as the pages it holds */
		off_t end = lseek(fd, 0, SEEK_CUR);
		if (end < 0 || ftruncate(fd, end) < 0)
			return -errno;
	}
	return 0;
}

/*
 * Punch [s, e) of run @i out of round @rd's file; the bytes of space it
 * gave back (none where the file had a hole: a zero page, or a copy
 * released before).
 */
static uint64_t punch(const struct ps_round *rd, size_t i, uint64_t s, uint64_t e)
{
	off_t off = (rd->first[i] + (s - rd->r[i].start) / PAGE) * PAGE;
	struct stat before, after;

	if (rd->fd < 0 || fstat(rd->fd, &before) < 0 ||
	    fallocate(rd->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, e - s) < 0 ||
	    fstat(rd->fd, &after) < 0 || after.st_blocks > before.st_blocks)
		return 0;
	return (uint64_t)(before.st_blocks - after.st_blocks) * 512;
}

/*
 * [a, b) came again in the round that ends now: the copies older rounds
 * hold are never read any more (the newest round wins), so their space
 * goes back. Returns the bytes freed.
 */
static uint64_t release_older(struct ps_proc *p, uint64_t a, uint64_t b)
{
	uint64_t freed = 0;

	for (size_t k = p->nr_rounds; k-- > 0;) {
		const struct ps_round *rd = &p->rounds[k];
		for (size_t i = range_after(rd->r, rd->nr, a); i < rd->nr && rd->r[i].start < b;
		     i++)
			freed += punch(rd, i, MAX(rd->r[i].start, a), MIN(rd->r[i].end, b));
	}
	return freed;
}

/*
 * A run of a prepared object: written in place, its zero pages punched
 * (an older copy may be there); known at once (no round files).
 */
static int recv_memfd(struct pagestore *ps, struct conn *c, struct ps_proc *p, uint64_t off,
		      uint64_t bytes)
{
	uint64_t zero, end = off + bytes;
	uint32_t len;
	int r = 0;

	/* a size that is not whole pages (memfd02: 6 bytes) still has its
	 * last page sent whole; CRIU truncates the memfd to the size */
	if (end > (p->shm_size + PAGE - 1) / PAGE * PAGE) {
		pr_err("shared memory %llu: pages past its end", (unsigned long long)p->shmid);
		return -EPROTO;
	}
	while (r == 0 && off < end) {
		r = pages_recv(c, ps->buf, MIN(end - off, (uint64_t)FRAME_DATA_MAX), &len, &zero);
		if (r == 0 && len % PAGE)
			r = -EPROTO;
		for (uint32_t i = 0; r == 0 && i < len / PAGE;) {
			uint32_t j = i;
			bool z = zero & 1ULL << i;
			while (j < len / PAGE && !!(zero & 1ULL << j) == z)
				j++;
			off_t at = (off_t)(off + (uint64_t)i * PAGE);
			size_t n = (size_t)(j - i) * PAGE;
			if (z && fallocate(p->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at,
					   (off_t)n) < 0)
				r = -errno;
			else if (!z)
				r = pwrite_full(p->memfd, ps->buf + (size_t)i * PAGE, n, at);
			i = j;
		}
		off += len;
	}
	return r;
}

/* The bytes of [a, b) that @s does not hold. */
static uint64_t bytes_new(const struct rangeset *s, uint64_t a, uint64_t b)
{
	uint64_t n = b - a;

	for (size_t i = range_after(s->r, s->nr, a); i < s->nr && s->r[i].start < b; i++)
		n -= MIN(s->r[i].end, b) - MAX(s->r[i].start, a);
	return n;
}

int pagestore_recv_run(struct pagestore *ps, struct conn *c, const Phaul__PageRun *pr,
		       uint64_t *budget)
{
	uint64_t bytes = (uint64_t)pr->nr_pages * PAGE, end = pr->vaddr + bytes, stored = 0;
	struct ps_proc *p = pr->has_shmid ? shm_get(ps, pr) : proc_get(ps, pr->pid);
	int r;

	if (end > MSG_VADDR_LIMIT || end <= pr->vaddr)
		return -EPROTO;

	if (!p && pr->has_shmid) {
		pr_err("pages of shared memory %llu: %s", (unsigned long long)pr->shmid,
		       ps->shmem ? "too many objects" : "not agreed");
		return -EPROTO;
	}
	if (!p) {
		pr_err("pages for PID %d, which is not part of this migration", pr->pid);
		return -EPROTO;
	}
	if (p->memfd >= 0) {
		/* in place: the pages that came before take no more space */
		uint64_t more = bytes_new(&p->known, pr->vaddr, end);
		if (more > *budget)
			return -ENOSPC;
		r = recv_memfd(ps, c, p, pr->vaddr, bytes);
		if (r == 0)
			r = rangeset_add(&p->known, pr->vaddr, end);
		if (r == 0) {
			*budget -= more;
			ps->pages += pr->nr_pages;
		}
		return r;
	}
	if (p->round.nr && pr->vaddr < p->round.r[p->round.nr - 1].end) {
		pr_err("pages of %s %llu out of order in round %u", p->shmid ? "shmem" : "PID",
		       (unsigned long long)(p->shmid ? p->shmid : (uint64_t)p->pid), ps->round);
		return -EPROTO;
	}
	if (bytes > *budget)
		return -ENOSPC;
	r = open_round(ps);
	if (r == 0)
		r = open_pages(ps, p);
	if (r == 0)
		r = recv_data(ps, c, p->pages_fd, bytes, &stored);
	if (r == 0)
		r = rangeset_add(&p->round, pr->vaddr, end);
	if (r < 0)
		return r;
	*budget -= stored; /* zero pages take no space */
	/* what the rounds finished since gave back */
	*budget += ps->freed;
	ps->freed = 0;
	ps->pages += pr->nr_pages;
	return 0;
}

static const struct ps_proc *proc_find(const struct pagestore *ps, pid_t pid)
{
	for (size_t i = 0; i < ps->nr; i++)
		if (ps->p[i].pid == pid && !ps->p[i].shmid)
			return &ps->p[i];
	return NULL;
}

/* @len bytes of @in at @off appended to @out (a copy in the kernel where it can). */
static int copy_bytes(int in, uint64_t off, int out, uint8_t *buf, uint64_t len)
{
	while (len > 0) {
		loff_t o = (loff_t)off;
		ssize_t n = copy_file_range(in, &o, out, NULL, len, 0);
		if (n < 0 &&
		    (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
			n = pread(in, buf, MIN(len, (uint64_t)FRAME_DATA_MAX), (off_t)off);
			if (n > 0 && write_full(out, buf, (size_t)n) < 0)
				return -errno;
		}
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA; /* the file is shorter than its runs say */
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int pagestore_copy(struct pagestore *ps, pid_t pid, pid_t from, uint64_t vaddr, uint64_t end,
		   uint64_t *budget)
{
	/* both of the migration (@from first: proc_get() may move @p) */
	struct ps_proc *p = from != pid && proc_get(ps, from) ? proc_get(ps, pid) : NULL;
	int r = p ? 0 : -EPROTO;
	uint64_t off, bytes = end - vaddr;
	uint32_t nr;
	int fd;

	if (r == 0 && (vaddr % PAGE || end % PAGE || end <= vaddr || end > MSG_VADDR_LIMIT ||
		       (p->round.nr && vaddr < p->round.r[p->round.nr - 1].end)))
		r = -EPROTO;
	if (r == 0 && bytes > *budget)
		r = -ENOSPC;
	if (r == 0)
		r = open_round(ps);
	if (r == 0)
		r = open_pages(ps, p);
	for (uint64_t pos = vaddr; r == 0 && pos < end; pos += (uint64_t)nr * PAGE) {
		r = pagestore_lookup(ps, from, pos, (uint32_t)MIN((end - pos) / PAGE, 1u << 20),
				     &fd, &off, &nr);
		if (r < 0) {
			pr_err("PID %d's pages at 0x%llx are PID %d's, which the store does not hold",
			       pid, (unsigned long long)pos, from);
			r = -ENODATA;
		} else {
			r = copy_bytes(fd, off, p->pages_fd, ps->buf, (uint64_t)nr * PAGE);
		}
	}
	if (r == 0)
		r = rangeset_add(&p->round, vaddr, end);
	if (r < 0)
		return r;
	*budget -= bytes;
	ps->pages += bytes / PAGE;
	return 0;
}

/* Round K's pagemap: every known page, present if it came in round K. */
static int build_pagemap(struct ps_proc *p, struct pagemap *pm)
{
	int r = rangeset_union(&p->known, &p->round);
	size_t k = 0;

	for (size_t i = 0; r == 0 && i < p->known.nr; i++) {
		uint64_t pos = p->known.r[i].start, end = p->known.r[i].end;
		while (r == 0 && pos < end) {
			/* the next round range at or after pos (pos only grows) */
			while (k < p->round.nr && p->round.r[k].end <= pos)
				k++;
			uint64_t rs = k < p->round.nr ? MAX(p->round.r[k].start, pos) : end;
			if (rs > pos) {
				uint64_t stop = MIN(rs, end);
				r = pagemap_add(pm, pos, (stop - pos) / PAGE, PE_PARENT);
				pos = stop;
			} else {
				uint64_t stop = MIN(p->round.r[k].end, end);
				r = pagemap_add(pm, pos, (stop - pos) / PAGE, PE_PRESENT);
				pos = stop;
			}
		}
	}
	return r;
}

/* Remember the round's runs and file for lookups; the fd moves there. */
static int keep_round(struct ps_proc *p)
{
	struct ps_round *v = realloc(p->rounds, (p->nr_rounds + 1) * sizeof(*v));
	struct ps_round *rd;
	uint64_t idx = 0;

	if (!v)
		return -ENOMEM;
	p->rounds = v;
	rd = &v[p->nr_rounds];
	rd->nr = p->round.nr;
	rd->r = malloc((rd->nr ? rd->nr : 1) * sizeof(*rd->r));
	rd->first = malloc((rd->nr ? rd->nr : 1) * sizeof(*rd->first));
	if (!rd->r || !rd->first) {
		free(rd->r);
		free(rd->first);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rd->nr; i++) {
		rd->r[i] = p->round.r[i];
		rd->first[i] = idx;
		idx += (rd->r[i].end - rd->r[i].start) / PAGE;
	}
	if (rd->nr) {
		rd->fd = TAKE_FD(p->pages_fd);
	} else { /* nothing to look up there: keep no fd */
		rd->fd = -1;
	}
	p->nr_rounds++;
	return 0;
}

static int write_proc_round(struct pagestore *ps, struct ps_proc *p)
{
	struct pagemap pm = { .pages_id = (uint32_t)p->pid };
	char name[48];
	int r;

	r = open_pages(ps, p); /* an empty one when nothing came */
	/* the round's copies are the newest now: older ones are never read */
	for (size_t i = 0; r == 0 && i < p->round.nr; i++)
		ps->freed += release_older(p, p->round.r[i].start, p->round.r[i].end);
	if (r == 0)
		r = build_pagemap(p, &pm);
	if (p->shmid)
		snprintf(name, sizeof(name), "pagemap-shmem-%llu.img",
			 (unsigned long long)p->shmid);
	else
		snprintf(name, sizeof(name), "pagemap-%d.img", p->pid);
	if (r == 0)
		r = pagemap_write(ps->round_fd, name, &pm);
	if (r == 0)
		r = keep_round(p);
	pagemap_free(&pm);
	if (p->pages_fd >= 0)
		close(p->pages_fd);
	p->pages_fd = -1;
	rangeset_clear(&p->round);
	return r;
}

int pagestore_end_round(struct pagestore *ps)
{
	int r;

	if (ps->round >= MSG_ROUNDS_MAX) {
		pr_err("more than %u rounds", MSG_ROUNDS_MAX);
		return -EPROTO;
	}
	r = open_round(ps);

	for (size_t i = 0; r == 0 && i < ps->nr; i++)
		if (ps->p[i].memfd < 0)
			r = write_proc_round(ps, &ps->p[i]);
	if (r < 0) {
		pr_err("cannot record round %u: %s", ps->round, strerror(-r));
		return r;
	}
	close(ps->round_fd);
	ps->round_fd = -1;
	ps->round++;
	return 0;
}

/* Whether the store holds a fresh copy of every page of [a, b). */
static bool holds_fresh(const struct ps_proc *p, uint64_t a, uint64_t b)
{
	size_t i = range_after(p->stale.r, p->stale.nr, a);

	return rangeset_covers(&p->known, a, b) && !(i < p->stale.nr && p->stale.r[i].start < b);
}

/*
 * Append lazy run @e to @out, its pages @p shares (pagestore_share) as
 * PE_PARENT: CRIU restores those from the chain before it forks the
 * children, which keeps them shared. -ENODATA if one is not held fresh.
 */
static int add_split(const struct ps_proc *p, const struct pm_entry *e, struct pagemap *out,
		     bool *linked)
{
	const struct rangeset *s = &p->shared;
	uint64_t pos = e->vaddr, end = pos + (uint64_t)e->nr_pages * PAGE;
	size_t i = range_after(s->r, s->nr, pos);
	int r = 0;

	while (r == 0 && pos < end) {
		uint64_t a = i < s->nr ? MIN(MAX(s->r[i].start, pos), end) : end;
		uint64_t b = i < s->nr ? MIN(s->r[i].end, end) : end;
		if (a > pos)
			r = pagemap_add(out, pos, (a - pos) / PAGE, e->flags);
		if (r == 0 && b > a) {
			if (!holds_fresh(p, a, b)) {
				pr_err("PID %d: shared pages at 0x%llx (%llu) are not in the store",
				       p->pid, (unsigned long long)a,
				       (unsigned long long)((b - a) / PAGE));
				return -ENODATA;
			}
			r = pagemap_add(out, a, (b - a) / PAGE, PE_PARENT);
			*linked = true;
		}
		pos = MAX(a, b);
		i++;
	}
	return r;
}

/* Lazy runs split where @p has shared pages, into @pm. */
static int split_shared(const struct ps_proc *p, struct pagemap *pm, bool *linked)
{
	struct pagemap out = { .pages_id = pm->pages_id };
	int r = 0;

	for (size_t i = 0; r == 0 && i < pm->nr; i++) {
		const struct pm_entry *e = &pm->e[i];
		if ((e->flags & PE_LAZY) && !(e->flags & PE_PRESENT))
			r = add_split(p, e, &out, linked);
		else
			r = pagemap_add(&out, e->vaddr, e->nr_pages, e->flags);
	}
	if (r < 0) {
		pagemap_free(&out);
		return r;
	}
	pagemap_free(pm);
	*pm = out;
	return 0;
}

/*
 * CRIU's lazy runs (no data in its pages file) now come from the chain;
 * with @lazy they stay lazy, cut to LAZY_RUN_PAGES at most, but for the
 * shared pages (*@linked then).
 */
static int relink_lazy(const struct pagestore *ps, int imgfd, const char *name, pid_t pid,
		       bool lazy, bool *linked)
{
	const struct ps_proc *p = proc_find(ps, pid);
	struct pagemap pm = { 0 };
	bool changed = false;
	int r = pagemap_read(imgfd, name, &pm);

	for (size_t i = 0; r == 0 && i < pm.nr; i++) {
		struct pm_entry *e = &pm.e[i];
		uint64_t end = e->vaddr + (uint64_t)e->nr_pages * PAGE;
		if (!(e->flags & PE_LAZY) || (e->flags & PE_PRESENT))
			continue;
		if (!ps->remote && (!p || !rangeset_covers(&p->known, e->vaddr, end))) {
			pr_err("PID %d: pages at 0x%llx (%u) never arrived", pid,
			       (unsigned long long)e->vaddr, e->nr_pages);
			r = -ENODATA;
			break;
		}
		if (!lazy) { /* CRIU reads them from the chain */
			e->flags = PE_PARENT;
			changed = true;
		}
	}
	if (r == 0 && lazy && p && p->shared.nr) {
		r = split_shared(p, &pm, linked);
		changed = true;
	}
	if (r == 0 && lazy && (r = pagemap_split_lazy(&pm, LAZY_RUN_PAGES)) > 0) {
		changed = true;
		r = 0;
	}
	if (r == 0 && changed)
		r = pagemap_write(imgfd, name, &pm);
	pagemap_free(&pm);
	return r;
}

struct relinker {
	const struct pagestore *ps;
	int imgfd;
	bool lazy;
	bool linked;
};

static int relink_one(void *arg, int pid, const char *name)
{
	struct relinker *rl = arg;

	return relink_lazy(rl->ps, rl->imgfd, name, pid, rl->lazy, &rl->linked);
}

/* A prepared object that CRIU's restore will not take: closed. */
static void unprepare(struct ps_proc *p, const char *why)
{
	pr_info("shared memory %llu: %s", (unsigned long long)p->shmid, why);
	close(p->memfd);
	p->memfd = -1;
}

/*
 * A prepared object holds what the source's object held: what CRIU found
 * no data at (a hole there) is a hole here too, whatever came before.
 */
static int punch_rest(const struct ps_proc *p, const struct pagemap *pm)
{
	uint64_t pos = 0;

	for (size_t i = 0; i <= pm->nr; i++) {
		uint64_t a = i < pm->nr ? MIN(pm->e[i].vaddr, p->shm_size) : p->shm_size;
		if (a > pos && fallocate(p->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					 (off_t)pos, (off_t)(a - pos)) < 0)
			return -errno;
		if (i < pm->nr)
			pos = MAX(pos, pm->e[i].vaddr + (uint64_t)pm->e[i].nr_pages * PAGE);
	}
	return 0;
}

/* Run @e of object @shmid, which CRIU left in the parent, is not in the store. */
static int shm_missing(uint64_t shmid, const struct pm_entry *e)
{
	pr_err("shared memory %llu: pages at offset 0x%llx (%u) never arrived",
	       (unsigned long long)shmid, (unsigned long long)e->vaddr, e->nr_pages);
	return -ENODATA;
}

/*
 * CRIU's pagemap of shared memory object @p, if it dumped the object: the
 * pages it left in the parent (CRIU_SHMEM_IN_PARENT) must all be in the
 * store (*@linked: the chain holds those not prepared). A CRIU without
 * that patch wrote the pages itself: a prepared copy is then not used.
 */
static int check_shm(struct ps_proc *p, int imgfd, bool *linked)
{
	struct pagemap pm = { 0 };
	bool present = false, parent = false;
	char name[48];
	int r;

	snprintf(name, sizeof(name), "pagemap-shmem-%llu.img", (unsigned long long)p->shmid);
	if (faccessat(imgfd, name, F_OK, 0) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (p->memfd >= 0) /* not dumped: gone */
			unprepare(p, "not in the dump");
		return 0;
	}
	r = pagemap_read(imgfd, name, &pm);
	for (size_t i = 0; r == 0 && i < pm.nr; i++) {
		const struct pm_entry *e = &pm.e[i];
		uint64_t end = e->vaddr + (uint64_t)e->nr_pages * PAGE;
		present |= e->flags & PE_PRESENT;
		if (!(e->flags & PE_PARENT))
			continue;
		parent = true;
		if (!rangeset_covers(&p->known, e->vaddr, end))
			r = shm_missing(p->shmid, e);
		*linked |= p->memfd < 0;
	}
	if (r == 0 && p->memfd >= 0 && present && parent) {
		/* CRIU would take the dumped ones only, the memfd holds the rest */
		pr_err("shared memory %llu: CRIU dumped some of its pages, left others in the "
		       "parent, where they are not",
		       (unsigned long long)p->shmid);
		r = -ENODATA;
	} else if (r == 0 && p->memfd >= 0 && present) {
		unprepare(p, "CRIU dumped its pages: restored from them");
	} else if (r == 0 && p->memfd >= 0) {
		r = punch_rest(p, &pm);
	}
	pagemap_free(&pm);
	return r;
}

/*
 * CRIU's pagemap of a shared memory object the store holds nothing of:
 * none of its pages may be in the parent (-ENODATA).
 */
static int check_unknown_shm(void *arg, uint64_t shmid, const char *name)
{
	const struct relinker *rl = arg;
	struct pagemap pm = { 0 };
	int r;

	for (size_t i = 0; i < rl->ps->nr; i++)
		if (rl->ps->p[i].shmid && rl->ps->p[i].shmid == shmid)
			return 0;
	r = pagemap_read(rl->imgfd, name, &pm);
	for (size_t i = 0; r == 0 && i < pm.nr; i++)
		if (pm.e[i].flags & PE_PARENT)
			r = shm_missing(shmid, &pm.e[i]);
	pagemap_free(&pm);
	return r;
}

int pagestore_write_prepared(const struct pagestore *ps, const char *path)
{
	FILE *f = fopen(path, "we");
	int n = 0, r = 0;

	if (!f)
		return -errno;
	for (size_t i = 0; i < ps->nr; i++)
		if (ps->p[i].memfd >= 0) {
			fprintf(f, "%llu %d %d\n", (unsigned long long)ps->p[i].shmid,
				(int)getpid(), ps->p[i].memfd);
			n++;
		}
	if (fflush(f) != 0 || ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r < 0 ? r : n;
}

int pagestore_assemble(struct pagestore *ps, int imgfd, bool lazy)
{
	struct relinker rl = { ps, imgfd, lazy, !lazy };
	char parent[32];
	int r = pagemap_each(imgfd, relink_one, &rl);

	for (size_t i = 0; r == 0 && i < ps->nr; i++)
		if (ps->p[i].shmid)
			r = check_shm(&ps->p[i], imgfd, &rl.linked);
	/* and of those it holds nothing of: the images are what CRIU reads */
	if (r == 0 && ps->shmem)
		r = pagemap_each_shmem(imgfd, check_unknown_shm, &rl);

	if (r == 0 && rl.linked && ps->round > 1) {
		snprintf(parent, sizeof(parent), "../rounds/%u", ps->round - 1);
		if (symlinkat(parent, imgfd, "parent") < 0)
			r = -errno;
	}
	return r;
}

/* The run of @rd holding @vaddr, or -1. */
static ssize_t round_find(const struct ps_round *rd, uint64_t vaddr)
{
	size_t i = range_after(rd->r, rd->nr, vaddr);

	return i < rd->nr && rd->r[i].start <= vaddr ? (ssize_t)i : -1;
}

int pagestore_drop(struct pagestore *ps, pid_t pid, uint64_t vaddr, uint64_t end)
{
	struct ps_proc *p = proc_get(ps, pid);

	if (!p || vaddr % PAGE || end % PAGE || end <= vaddr || end > MSG_VADDR_LIMIT)
		return -EPROTO;
	return rangeset_add(&p->stale, vaddr, end);
}

int pagestore_share(struct pagestore *ps, pid_t pid, uint64_t vaddr, uint64_t end)
{
	struct ps_proc *p = proc_get(ps, pid);

	if (!p || vaddr % PAGE || end % PAGE || end <= vaddr || end > MSG_VADDR_LIMIT)
		return -EPROTO;
	return rangeset_add(&p->shared, vaddr, end);
}

int pagestore_lookup(const struct pagestore *ps, pid_t pid, uint64_t vaddr, uint32_t max, int *fd,
		     uint64_t *off, uint32_t *nr)
{
	const struct ps_proc *p = proc_find(ps, pid);
	const struct range *st;
	size_t si;

	if (!p || vaddr % PAGE)
		return -ENOENT;
	si = range_after(p->stale.r, p->stale.nr, vaddr); /* the first stale run after */
	st = si < p->stale.nr ? &p->stale.r[si] : NULL;
	if (st && st->start <= vaddr)
		return -ENOENT;
	if (st && st->start < vaddr + (uint64_t)max * PAGE)
		max = (st->start - vaddr) / PAGE;
	for (size_t k = p->nr_rounds; k-- > 0;) {
		const struct ps_round *rd = &p->rounds[k];
		ssize_t i = round_find(rd, vaddr);
		uint64_t avail, stop;
		if (i < 0)
			continue;
		/* contiguous here, but a newer round may hold a later page */
		stop = rd->r[i].end;
		for (size_t n = k + 1; n < p->nr_rounds; n++) {
			const struct ps_round *nd = &p->rounds[n];
			size_t j = range_after(nd->r, nd->nr, vaddr);
			if (j < nd->nr && nd->r[j].start < stop)
				stop = nd->r[j].start;
		}
		avail = (stop - vaddr) / PAGE;
		*fd = rd->fd;
		*off = (rd->first[i] + (vaddr - rd->r[i].start) / PAGE) * PAGE;
		*nr = avail < max ? avail : max;
		return 0;
	}
	return -ENOENT;
}

void pagestore_fini(struct pagestore *ps)
{
	for (size_t i = 0; i < ps->nr; i++) {
		for (size_t k = 0; k < ps->p[i].nr_rounds; k++) {
			if (ps->p[i].rounds[k].fd >= 0)
				close(ps->p[i].rounds[k].fd);
			free(ps->p[i].rounds[k].r);
			free(ps->p[i].rounds[k].first);
		}
		free(ps->p[i].rounds);
		if (ps->p[i].pages_fd >= 0)
			close(ps->p[i].pages_fd);
		if (ps->p[i].memfd >= 0)
			close(ps->p[i].memfd);
		rangeset_free(&ps->p[i].known);
		rangeset_free(&ps->p[i].round);
		rangeset_free(&ps->p[i].stale);
		rangeset_free(&ps->p[i].shared);
	}
	free(ps->p);
	free(ps->more);
	free(ps->buf);
	if (ps->round_fd >= 0)
		close(ps->round_fd);
	if (ps->dirfd >= 0)
		close(ps->dirfd);
	memset(ps, 0, sizeof(*ps));
	ps->dirfd = ps->round_fd = -1;
}
