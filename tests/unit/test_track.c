/* SPDX-License-Identifier: MIT */
/*
 * test_track: the write trackers against a real child process ("kid") that
 * writes pages on command, with a thread sleeping in nanosleep (restart
 * semantics) and a thread spinning on its own page (a running thread).
 *
 * PHAUL_TRACK_BENCH=1 adds the 1 GiB benchmark (docs/TRACKING.md).
 */
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define AREA_PAGES 16384 /* 64 MiB */

/* ---- the kid ---- */

enum {
	OP_WRITE = 1,
	OP_WRITE_RANGE,
	OP_MMAP,
	OP_MMAP_FILE,
	OP_MUNMAP,
	OP_MREMAP,
	OP_READ_INTO,
	OP_UFFD,
	OP_STATUS,
	OP_EXEC,
	OP_PROTECT,
	OP_WRITE_PROT,
	OP_EXIT
};

struct cmd {
	int op;
	uint32_t n;
	uint64_t a, b;
	uint64_t addr[64];
};

struct reply {
	int64_t rc;
	uint64_t addr;
};

struct kid {
	pid_t pid;
	int cmd, rep;
	uint64_t area; /* AREA_PAGES pages */
};

static volatile int kid_bad; /* a syscall of the kid saw EINTR */
static volatile uint64_t *spin_page;

static void *sleeper(void *arg)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	(void)arg;
	for (;;)
		if (nanosleep(&ts, NULL) < 0)
			kid_bad = 1;
	return NULL;
}

static void *spinner(void *arg)
{
	(void)arg;
	for (uint64_t i = 0;; i++) {
		spin_page[0] = i;
		if (i % 4096 == 0)
			sched_yield();
	}
	return NULL;
}

static int64_t kid_read_into(uint64_t addr)
{
	char buf[PAGE];
	int p[2];
	int64_t r;

	memset(buf, 0x5a, sizeof(buf));
	if (pipe(p) < 0)
		return -errno;
	r = write(p[1], buf, sizeof(buf)) == sizeof(buf) &&
			    read(p[0], (void *)(uintptr_t)addr, PAGE) == PAGE ?
		    0 :
		    -EIO;
	close(p[0]);
	close(p[1]);
	return r;
}

static int64_t kid_uffd(uint64_t addr, uint64_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .range = { addr, len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0 || ioctl(fd, UFFDIO_REGISTER, &reg) < 0)
		return -errno;
	return fd; /* kept open */
}

/* Map file @path privately, writable; read every page, write pages 5, 6. */
static int64_t kid_mmap_file(const char *path, uint64_t len, uint64_t *addr)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	volatile char *p;
	char sum = 0;

	if (fd < 0)
		return -errno;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -errno;
	for (uint64_t o = 0; o < len; o += PAGE)
		sum += p[o];
	p[5 * PAGE] = sum;
	p[6 * PAGE] = 1;
	*addr = (uintptr_t)p;
	return 0;
}

static void kid_do(const struct cmd *c, struct reply *r)
{
	void *p;

	switch (c->op) {
	case OP_WRITE:
		for (uint32_t i = 0; i < c->n; i++)
			(*(volatile uint64_t *)(uintptr_t)c->addr[i])++;
		break;
	case OP_WRITE_RANGE:
		for (uint64_t a = c->a; a < c->b; a += PAGE)
			(*(volatile uint64_t *)(uintptr_t)a)++;
		break;
	case OP_MMAP:
		p = mmap(NULL, c->b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		r->rc = p == MAP_FAILED ? -errno : 0;
		r->addr = (uintptr_t)p;
		for (uint32_t i = 0; p != MAP_FAILED && i < c->n; i++)
			((volatile char *)p)[i * PAGE] = 1;
		break;
	case OP_MMAP_FILE: r->rc = kid_mmap_file((const char *)c->addr, c->b, &r->addr); break;
	case OP_MUNMAP: r->rc = munmap((void *)(uintptr_t)c->a, c->b) < 0 ? -errno : 0; break;
	case OP_MREMAP: /* move [a, a + b) elsewhere */
		p = mmap(NULL, c->b, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED)
			p = mremap((void *)(uintptr_t)c->a, c->b, c->b,
				   MREMAP_MAYMOVE | MREMAP_FIXED, p);
		r->rc = p == MAP_FAILED ? -errno : 0;
		r->addr = (uintptr_t)p;
		break;
	case OP_READ_INTO: r->rc = kid_read_into(c->a); break;
	case OP_UFFD: r->rc = kid_uffd(c->a, c->b); break;
	case OP_STATUS: r->rc = kid_bad; break;
	case OP_PROTECT: /* page a gets protection n */
		r->rc = mprotect((void *)(uintptr_t)c->a, PAGE, (int)c->n) < 0 ? -errno : 0;
		break;
	case OP_WRITE_PROT: /* write page a, of protection n, and protect it again */
		r->rc = mprotect((void *)(uintptr_t)c->a, PAGE, PROT_READ | PROT_WRITE) < 0 ?
				-errno :
				0;
		(*(volatile uint64_t *)(uintptr_t)c->a)++;
		if (mprotect((void *)(uintptr_t)c->a, PAGE, (int)c->n) < 0)
			r->rc = -errno;
		break;
	case OP_EXEC:
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		r->rc = -errno;
		break;
	default: _exit(0);
	}
}

static void kid_main(int cmd, int rep, bool threads)
{
	char *area = mmap(NULL, AREA_PAGES * PAGE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct reply r = { 0, (uintptr_t)area };
	pthread_t th;

	if (area == MAP_FAILED)
		_exit(2);
	memset(area, 1, AREA_PAGES * PAGE);
	spin_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int i = 0; threads && i < 8; i++)
		if (pthread_create(&th, NULL, sleeper, NULL))
			_exit(3);
	if (threads && pthread_create(&th, NULL, spinner, NULL))
		_exit(3);
	r.rc = (intptr_t)spin_page;
	if (write(rep, &r, sizeof(r)) != sizeof(r))
		_exit(4);
	for (;;) {
		struct cmd c;
		ssize_t n = read(cmd, &c, sizeof(c));

		if (n < 0 && errno == EINTR) {
			kid_bad = 1;
			continue;
		}
		if (n != sizeof(c))
			_exit(0);
		memset(&r, 0, sizeof(r));
		kid_do(&c, &r);
		if (write(rep, &r, sizeof(r)) != sizeof(r))
			_exit(5);
	}
}

static uint64_t kid_spin; /* the spinner's page, in the kid */

static void kid_start(struct kid *k, bool threads)
{
	int c[2], r[2];
	struct reply rep;

	assert_int_equal(pipe2(c, O_CLOEXEC), 0);
	assert_int_equal(pipe2(r, O_CLOEXEC), 0);
	k->pid = fork();
	assert_true(k->pid >= 0);
	if (k->pid == 0) {
		/* fds 0-2 and the pipes only (3 kept across OP_EXEC), as a
		 * workload: nothing inherited from a test that failed. */
		if (dup2(c[0], 3) < 0 || dup2(r[1], 4) < 0 ||
		    syscall(SYS_close_range, 5, ~0U, 0) < 0 || fcntl(4, F_SETFD, FD_CLOEXEC) < 0)
			_exit(6);
		kid_main(3, 4, threads);
	}
	close(c[0]);
	close(r[1]);
	k->cmd = c[1];
	k->rep = r[0];
	assert_int_equal(read(k->rep, &rep, sizeof(rep)), sizeof(rep));
	k->area = rep.addr;
	kid_spin = rep.rc;
}

static int64_t kid_cmd(struct kid *k, struct cmd *c, uint64_t *addr)
{
	struct reply rep;

	assert_int_equal(write(k->cmd, c, sizeof(*c)), sizeof(*c));
	assert_int_equal(read(k->rep, &rep, sizeof(rep)), sizeof(rep));
	if (addr)
		*addr = rep.addr;
	return rep.rc;
}

static void kid_stop(struct kid *k)
{
	int st;

	kill(k->pid, SIGKILL);
	waitpid(k->pid, &st, 0);
	close(k->cmd);
	close(k->rep);
}

static void kid_write(struct kid *k, const uint64_t *addrs, uint32_t n)
{
	struct cmd c = { .op = OP_WRITE, .n = n };

	memcpy(c.addr, addrs, n * sizeof(addrs[0]));
	kid_cmd(k, &c, NULL);
}

/* ---- what the kid looks like from outside ---- */

static int count_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static int count_vmflag(pid_t pid, const char *flag)
{
	char path[64], line[512];
	int n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	assert_non_null(f = fopen(path, "re"));
	while (fgets(line, sizeof(line), f))
		n += !strncmp(line, "VmFlags:", 8) && strstr(line, flag);
	fclose(f);
	return n;
}

/* Pages of @s in [lo, hi). */
static uint64_t pages_in(const struct rangeset *s, uint64_t lo, uint64_t hi)
{
	uint64_t n = 0;

	for (size_t i = 0; i < s->nr; i++) {
		uint64_t a = s->r[i].start > lo ? s->r[i].start : lo;
		uint64_t b = s->r[i].end < hi ? s->r[i].end : hi;

		n += a < b ? (b - a) / PAGE : 0;
	}
	return n;
}

/* Exactly the pages @want[0..n) of [lo, hi) are in @s. */
static void assert_exact(const struct rangeset *s, uint64_t lo, uint64_t hi, const uint64_t *want,
			 size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!rangeset_contains(s, want[i]))
			fail_msg("page %#llx not reported", (unsigned long long)want[i]);
	if (pages_in(s, lo, hi) != n)
		fail_msg("%llu pages reported in %#llx-%#llx, %zu expected",
			 (unsigned long long)pages_in(s, lo, hi), (unsigned long long)lo,
			 (unsigned long long)hi, n);
}

static int open_or_skip(pid_t pid, unsigned allowed, struct tracker **t)
{
	int r = tracker_open(pid, allowed, t);

	if (r == -EOPNOTSUPP && allowed == TRACK_UFFD_WP) {
		print_message("skipped: this kernel cannot track with uffd-wp "
			      "(needs userfaultfd WP_ASYNC and PAGEMAP_SCAN, Linux >= 6.7)\n");
		return r;
	}
	assert_int_equal(r, 0);
	assert_int_equal(tracker_method(*t), allowed);
	return 0;
}

/* ---- tests ---- */

static void file_mapping(enum track_method m);

static void test_names(void **state)
{
	struct tracker *t = NULL;

	(void)state;
	assert_string_equal(track_method_name(TRACK_UFFD_WP), "uffd-wp");
	assert_string_equal(track_method_name(TRACK_SOFT_DIRTY), "soft-dirty");
	assert_string_equal(track_method_name(TRACK_HASH), "hash");
	assert_string_equal(track_method_name(TRACK_NONE), "none");
	assert_int_equal(tracker_open(getpid(), 0, &t), -EINVAL);
	assert_int_equal(tracker_open(getpid(), 8, &t), -EINVAL);
	assert_int_equal(tracker_method(NULL), TRACK_NONE);
	tracker_close(NULL);
}

/* Not on this kernel, and not implemented: it must say so. */
static void test_soft_dirty_unavailable(void **state)
{
	struct tracker *t = NULL;
	struct kid k;

	(void)state;
	kid_start(&k, false);
	assert_int_equal(tracker_open(k.pid, TRACK_SOFT_DIRTY, &t), -EOPNOTSUPP);
	assert_null(t);
	kid_stop(&k);
}

static void collect(struct tracker *t, struct rangeset *s)
{
	uint64_t scanned = 0;

	assert_int_equal(tracker_collect(t, s, &scanned), 0);
	assert_true(scanned > 0);
}

/* One tracked kid through rounds. */
struct scenario {
	struct kid k;
	struct tracker *t;
	struct rangeset s;
	uint64_t lo, hi; /* the kid's area */
	uint64_t want[64 + 100];
};

/* Known writes by the kid, and one by the kernel (read(2) into a page). */
static void rounds_writes(struct scenario *sc)
{
	const uint64_t pages[] = { 0, 1, 2, 100, 4095, 4096, 9000, 16383 };
	struct cmd c = { .op = OP_WRITE_RANGE,
			 .a = sc->lo + 5000 * PAGE,
			 .b = sc->lo + 5100 * PAGE };
	uint64_t nw = 0;

	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		sc->want[nw++] = sc->lo + pages[i] * PAGE;
	kid_write(&sc->k, sc->want, nw);
	kid_cmd(&sc->k, &c, NULL);
	for (uint64_t p = 5000; p < 5100; p++)
		sc->want[nw++] = sc->lo + p * PAGE;
	collect(sc->t, &sc->s);
	assert_exact(&sc->s, sc->lo, sc->hi, sc->want, nw);

	c = (struct cmd){ .op = OP_READ_INTO, .a = sc->lo + 7000 * PAGE };
	assert_int_equal(kid_cmd(&sc->k, &c, NULL), 0);
	collect(sc->t, &sc->s);
	sc->want[0] = sc->lo + 7000 * PAGE;
	assert_exact(&sc->s, sc->lo, sc->hi, sc->want, 1);
}

/* A new mapping, munmap of part of the area: returns the new mapping. */
static uint64_t rounds_mmap(struct scenario *sc)
{
	struct cmd c = { .op = OP_MMAP, .b = 1024 * PAGE, .n = 10 };
	uint64_t fresh, *want = sc->want;

	assert_int_equal(kid_cmd(&sc->k, &c, &fresh), 0);
	collect(sc->t, &sc->s);
	for (int i = 0; i < 10; i++)
		want[i] = fresh + i * PAGE;
	assert_exact(&sc->s, fresh, fresh + 1024 * PAGE, want, 10);
	assert_exact(&sc->s, sc->lo, sc->hi, NULL, 0);

	c = (struct cmd){ .op = OP_MUNMAP, .a = sc->hi - 4096 * PAGE, .b = 4096 * PAGE };
	assert_int_equal(kid_cmd(&sc->k, &c, NULL), 0);
	sc->hi -= 4096 * PAGE;
	want[0] = sc->lo + 10 * PAGE, want[1] = sc->hi - PAGE;
	want[2] = fresh + 3 * PAGE, want[3] = fresh + 500 * PAGE; /* 500: not populated yet */
	kid_write(&sc->k, want, 4);
	collect(sc->t, &sc->s);
	assert_exact(&sc->s, sc->lo, sc->hi + 4096 * PAGE, want, 2);
	assert_exact(&sc->s, fresh, fresh + 1024 * PAGE, want + 2, 2);
	collect(sc->t, &sc->s);
	assert_exact(&sc->s, sc->lo, sc->hi, NULL, 0);
	assert_exact(&sc->s, fresh, fresh + 1024 * PAGE, NULL, 0);
	return fresh;
}

/* @fresh moved by mremap: its pages are new at the new address. */
static void rounds_mremap(struct scenario *sc, uint64_t fresh)
{
	struct cmd c = { .op = OP_MREMAP, .a = fresh, .b = 1024 * PAGE };
	uint64_t moved, nw, *want = sc->want;

	assert_int_equal(kid_cmd(&sc->k, &c, &moved), 0);
	collect(sc->t, &sc->s);
	for (nw = 0; nw < 10; nw++)
		want[nw] = moved + nw * PAGE;
	want[nw++] = moved + 500 * PAGE;
	assert_exact(&sc->s, moved, moved + 1024 * PAGE, want, nw);
	assert_exact(&sc->s, fresh, fresh + 1024 * PAGE, NULL, 0);
	want[0] = moved + 7 * PAGE;
	kid_write(&sc->k, want, 1);
	collect(sc->t, &sc->s);
	assert_exact(&sc->s, moved, moved + 1024 * PAGE, want, 1);
}

/* Rounds with known writes, a kernel write, mmap, munmap, mremap between. */
static void rounds(enum track_method m)
{
	struct scenario sc = { 0 };
	struct cmd c = { .op = OP_STATUS };
	int fds;

	kid_start(&sc.k, true);
	sc.lo = sc.k.area;
	sc.hi = sc.lo + AREA_PAGES * PAGE;
	fds = count_fds(sc.k.pid);
	if (open_or_skip(sc.k.pid, m, &sc.t) < 0) {
		kid_stop(&sc.k);
		skip();
	}
	assert_int_equal(count_fds(sc.k.pid), fds); /* nothing left in the workload */

	collect(sc.t, &sc.s); /* round 1: everything populated */
	assert_int_equal(pages_in(&sc.s, sc.lo, sc.hi), AREA_PAGES);
	assert_true(rangeset_contains(&sc.s, kid_spin));
	assert_true(m != TRACK_UFFD_WP || count_vmflag(sc.k.pid, " uw") > 0);
	usleep(20000);	      /* let the spinner run */
	collect(sc.t, &sc.s); /* nothing written */
	assert_exact(&sc.s, sc.lo, sc.hi, NULL, 0);
	assert_true(rangeset_contains(&sc.s, kid_spin)); /* a running thread writes */

	rounds_writes(&sc);
	rounds_mremap(&sc, rounds_mmap(&sc));

	assert_int_equal(kid_cmd(&sc.k, &c, NULL), 0); /* no syscall of the kid saw EINTR */
	tracker_close(sc.t);
	assert_int_equal(count_fds(sc.k.pid), fds);
	assert_int_equal(count_vmflag(sc.k.pid, " uw"), 0);
	rangeset_free(&sc.s);
	kid_stop(&sc.k);
}

static void test_rounds_uffd(void **state)
{
	(void)state;
	rounds(TRACK_UFFD_WP);
}

static void test_rounds_hash(void **state)
{
	(void)state;
	rounds(TRACK_HASH);
}

/* Bytes of tracked mappings in this process (and so in a forked kid). */
static uint64_t mapped_bytes(void)
{
	struct track_vmas vs = { 0 };
	uint64_t n = 0;

	assert_int_equal(track_vmas_read(getpid(), &vs), 0);
	for (size_t i = 0; i < vs.nr; i++)
		n += vs.v[i].end - vs.v[i].start;
	track_vmas_free(&vs);
	return n;
}

/*
 * Pages the workload cannot read itself (PROT_NONE, write-only, exec-only:
 * process_vm_readv refuses them) are tracked like the others.
 */
static void unreadable(enum track_method m)
{
	const int prot[] = { PROT_NONE, PROT_WRITE, PROT_EXEC };
	struct scenario sc = { 0 };
	struct cmd c;

	kid_start(&sc.k, false);
	sc.lo = sc.k.area;
	sc.hi = sc.lo + AREA_PAGES * PAGE;
	if (open_or_skip(sc.k.pid, m, &sc.t) < 0) {
		kid_stop(&sc.k);
		skip();
	}
	for (int i = 0; i < 3; i++) {
		sc.want[i] = sc.lo + (100 + 10 * i) * PAGE;
		c = (struct cmd){ .op = OP_PROTECT, .a = sc.want[i], .n = (uint32_t)prot[i] };
		assert_int_equal(kid_cmd(&sc.k, &c, NULL), 0);
	}
	collect(sc.t, &sc.s); /* round 1: every page, the protected ones too */
	assert_int_equal(pages_in(&sc.s, sc.lo, sc.hi), AREA_PAGES);
	collect(sc.t, &sc.s);
	assert_exact(&sc.s, sc.lo, sc.hi, NULL, 0);
	for (int i = 0; i < 3; i++) {
		c = (struct cmd){ .op = OP_WRITE_PROT, .a = sc.want[i], .n = (uint32_t)prot[i] };
		assert_int_equal(kid_cmd(&sc.k, &c, NULL), 0);
	}
	collect(sc.t, &sc.s);
	assert_exact(&sc.s, sc.lo, sc.hi, sc.want, 3);
	collect(sc.t, &sc.s);
	assert_exact(&sc.s, sc.lo, sc.hi, NULL, 0);
	tracker_close(sc.t);
	rangeset_free(&sc.s);
	kid_stop(&sc.k);
}

static void test_unreadable_uffd(void **state)
{
	(void)state;
	unreadable(TRACK_UFFD_WP);
}

static void test_unreadable_hash(void **state)
{
	(void)state;
	unreadable(TRACK_HASH);
}

/* The hash method as on kernels without PAGEMAP_SCAN (< 6.7). */
static void test_rounds_hash_pagemap(void **state)
{
	(void)state;
	if (mapped_bytes() > (1ULL << 40)) {
		print_message("skipped: pagemap reads 8 bytes per mapped page, and this "
			      "binary maps terabytes (sanitizer shadow)\n");
		skip();
	}
	track_hash_no_pmscan = true;
	rounds(TRACK_HASH);
	file_mapping(TRACK_HASH);
	track_hash_no_pmscan = false;
}

/* A workload that uses userfaultfd itself keeps it to itself. */
/* @len bytes of the kid's memory at @addr read or written, from here. */
static void kid_mem(pid_t pid, uint64_t addr, void *buf, size_t len, bool write)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = write ? process_vm_writev(pid, &l, 1, &r, 1, 0) :
			    process_vm_readv(pid, &l, 1, &r, 1, 0);

	assert_int_equal(n, (ssize_t)len);
}

/*
 * A page written after a collect, read then (sent), and written back to
 * what it held at the collect before the next one: the copy sent is stale,
 * the next collect reports it (the hash method through tracker_sent).
 */
static void written_back(enum track_method m)
{
	struct scenario sc = { 0 };
	static uint8_t page[PAGE];
	uint64_t a, v;

	kid_start(&sc.k, false);
	sc.lo = sc.k.area;
	sc.hi = sc.lo + AREA_PAGES * PAGE;
	if (open_or_skip(sc.k.pid, m, &sc.t) < 0) {
		kid_stop(&sc.k);
		skip();
	}
	collect(sc.t, &sc.s); /* round 1: every page */
	a = sc.lo + 4242 * PAGE;
	kid_mem(sc.k.pid, a, &v, sizeof(v), false);
	kid_write(&sc.k, &a, 1);
	kid_mem(sc.k.pid, a, page, PAGE, false);
	tracker_sent(sc.t, a, page, PAGE);
	kid_mem(sc.k.pid, a, &v, sizeof(v), true);
	collect(sc.t, &sc.s);
	assert_exact(&sc.s, sc.lo, sc.hi, &a, 1);
	/* sent as it is now: nothing more */
	kid_mem(sc.k.pid, a, page, PAGE, false);
	tracker_sent(sc.t, a, page, PAGE);
	collect(sc.t, &sc.s);
	assert_exact(&sc.s, sc.lo, sc.hi, NULL, 0);
	tracker_close(sc.t);
	rangeset_free(&sc.s);
	kid_stop(&sc.k);
}

static void test_written_back_uffd(void **state)
{
	(void)state;
	written_back(TRACK_UFFD_WP);
}

static void test_written_back_hash(void **state)
{
	(void)state;
	written_back(TRACK_HASH);
}

static void test_fallback_own_uffd(void **state)
{
	struct cmd c = { .op = OP_MMAP, .b = 16 * PAGE };
	struct tracker *t = NULL;
	uint64_t addr;
	struct kid k;

	(void)state;
	kid_start(&k, false);
	assert_int_equal(kid_cmd(&k, &c, &addr), 0);
	c = (struct cmd){ .op = OP_UFFD, .a = addr, .b = 16 * PAGE };
	assert_true(kid_cmd(&k, &c, NULL) >= 0);
	assert_int_equal(count_vmflag(k.pid, " um"), 1);
	assert_int_equal(tracker_open(k.pid, TRACK_UFFD_WP | TRACK_HASH, &t), 0);
	assert_int_equal(tracker_method(t), TRACK_HASH);
	tracker_close(t);
	t = NULL;
	assert_int_equal(tracker_open(k.pid, TRACK_UFFD_WP, &t), -EBUSY);
	assert_null(t);
	assert_int_equal(count_vmflag(k.pid, " um"), 1);
	kid_stop(&k);
}

static void dead(enum track_method m)
{
	struct rangeset s = { 0 };
	struct tracker *t = NULL;
	uint64_t scanned = 1;
	struct kid k;
	int st;

	kid_start(&k, true);
	if (open_or_skip(k.pid, m, &t) < 0) {
		kid_stop(&k);
		skip();
	}
	collect(t, &s);
	kill(k.pid, SIGKILL);
	usleep(20000); /* a zombie first */
	assert_int_equal(tracker_collect(t, &s, &scanned), -ESRCH);
	assert_int_equal(s.nr, 0);
	assert_int_equal(scanned, 0);
	waitpid(k.pid, &st, 0);
	assert_int_equal(tracker_collect(t, &s, &scanned), -ESRCH);
	tracker_close(t);
	assert_int_equal(tracker_open(k.pid, m, &t), -ESRCH);
	rangeset_free(&s);
	close(k.cmd);
	close(k.rep);
}

static void test_dead_uffd(void **state)
{
	(void)state;
	dead(TRACK_UFFD_WP);
}

static void test_dead_hash(void **state)
{
	(void)state;
	dead(TRACK_HASH);
}

/* exec replaces the address space: the next round is a first round. */
static void exec_rounds(enum track_method m)
{
	struct rangeset s = { 0 };
	struct tracker *t = NULL;
	struct cmd c = { .op = OP_EXEC };
	char exe[64], path[64];
	struct kid k;
	int fds;

	kid_start(&k, true);
	if (open_or_skip(k.pid, m, &t) < 0) {
		kid_stop(&k);
		skip();
	}
	collect(t, &s);
	assert_int_equal(write(k.cmd, &c, sizeof(c)), sizeof(c));
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)k.pid);
	for (int i = 0; i < 200; i++) {
		ssize_t n = readlink(path, exe, sizeof(exe) - 1);

		exe[n > 0 ? n : 0] = 0;
		if (strstr(exe, "sleep"))
			break;
		usleep(10000);
	}
	assert_non_null(strstr(exe, "sleep"));
	usleep(50000);
	collect(t, &s);
	assert_true(rangeset_bytes(&s) > 0);
	assert_int_equal(pages_in(&s, k.area, k.area + AREA_PAGES * PAGE), 0);
	assert_true(m != TRACK_UFFD_WP || count_vmflag(k.pid, " uw") > 0);
	fds = count_fds(k.pid);
	collect(t, &s);
	tracker_close(t);
	assert_int_equal(count_fds(k.pid), fds);
	assert_int_equal(count_vmflag(k.pid, " uw"), 0);
	rangeset_free(&s);
	kid_stop(&k);
}

static void test_exec_uffd(void **state)
{
	(void)state;
	exec_rounds(TRACK_UFFD_WP);
}

static void test_exec_hash(void **state)
{
	(void)state;
	exec_rounds(TRACK_HASH);
}

/* A private file mapping: only its written (copied) pages are memory. */
static void file_mapping(enum track_method m)
{
	char path[] = "/tmp/test_track.XXXXXX", buf[PAGE];
	struct cmd c = { .op = OP_MMAP_FILE, .b = 64 * PAGE };
	struct rangeset s = { 0 };
	struct tracker *t = NULL;
	uint64_t addr, want[2];
	struct kid k;
	int fd;

	assert_true((fd = mkstemp(path)) >= 0);
	memset(buf, 0x33, sizeof(buf));
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(fd, buf, sizeof(buf)), sizeof(buf));
	close(fd);
	kid_start(&k, false);
	strcpy((char *)c.addr, path);
	assert_int_equal(kid_cmd(&k, &c, &addr), 0);
	unlink(path);
	if (open_or_skip(k.pid, m, &t) < 0) {
		kid_stop(&k);
		skip();
	}
	collect(t, &s); /* the page cache pages are not memory to move */
	want[0] = addr + 5 * PAGE, want[1] = addr + 6 * PAGE;
	assert_exact(&s, addr, addr + 64 * PAGE, want, 2);
	want[0] = addr + 6 * PAGE, want[1] = addr + 40 * PAGE;
	kid_write(&k, want, 2);
	collect(t, &s);
	assert_exact(&s, addr, addr + 64 * PAGE, want, 2);
	collect(t, &s);
	assert_exact(&s, addr, addr + 64 * PAGE, NULL, 0);
	tracker_close(t);
	rangeset_free(&s);
	kid_stop(&k);
}

static void test_file_mapping_uffd(void **state)
{
	(void)state;
	file_mapping(TRACK_UFFD_WP);
}

static void test_file_mapping_hash(void **state)
{
	(void)state;
	file_mapping(TRACK_HASH);
}

static bool all_threads_stopped(pid_t pid)
{
	char path[320], line[512], *p;
	struct dirent *de;
	bool stopped = true;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)pid, de->d_name);
		if (!(f = fopen(path, "re")))
			continue;
		if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')))
			stopped = stopped && p[2] == 'T';
		fclose(f);
	}
	closedir(d);
	return stopped;
}

/* A stopped (SIGSTOP) workload stays stopped while it is armed. */
static void test_stopped_uffd(void **state)
{
	struct cmd c = { .op = OP_STATUS };
	struct rangeset s = { 0 };
	struct tracker *t = NULL;
	struct kid k;

	(void)state;
	kid_start(&k, true);
	kill(k.pid, SIGSTOP);
	for (int i = 0; i < 100 && !all_threads_stopped(k.pid); i++)
		usleep(10000);
	assert_true(all_threads_stopped(k.pid));
	if (open_or_skip(k.pid, TRACK_UFFD_WP, &t) < 0) {
		kid_stop(&k);
		skip();
	}
	collect(t, &s);
	usleep(50000);
	assert_true(all_threads_stopped(k.pid));
	collect(t, &s);
	assert_int_equal(pages_in(&s, k.area, k.area + AREA_PAGES * PAGE), 0);
	kill(k.pid, SIGCONT);
	assert_int_equal(kid_cmd(&k, &c, NULL), 0);
	tracker_close(t);
	assert_int_equal(count_vmflag(k.pid, " uw"), 0);
	rangeset_free(&s);
	kid_stop(&k);
}

/* ---- benchmark: PHAUL_TRACK_BENCH=1 ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* @dirty_pages pages written each round: spread (one in each stride) or in one run. */
static void bench(enum track_method m, uint64_t area_pages, uint64_t dirty_pages, bool spread)
{
	struct rangeset s = { 0 };
	struct tracker *t = NULL;
	struct cmd c = { 0 };
	double t0, first, sum = 0, max = 0, wr_sum = 0;
	uint64_t scanned = 0, lo, stride = spread ? area_pages / dirty_pages : 1;
	size_t heap0;
	const int rounds_n = 5;
	struct kid k;

	kid_start(&k, false);
	c = (struct cmd){ .op = OP_MMAP, .b = area_pages * PAGE, .n = (uint32_t)area_pages };
	assert_int_equal(kid_cmd(&k, &c, &lo), 0);
	heap0 = mallinfo2().uordblks;
	if (open_or_skip(k.pid, m, &t) < 0) {
		kid_stop(&k);
		skip();
	}
	t0 = now_s();
	assert_int_equal(tracker_collect(t, &s, &scanned), 0);
	first = now_s() - t0;
	assert_true(pages_in(&s, lo, lo + area_pages * PAGE) == area_pages);
	for (int r = 0; r < rounds_n; r++) {
		double w0 = now_s(), d;

		for (uint64_t p = 0; p < dirty_pages; p += 64) {
			c = (struct cmd){ .op = OP_WRITE, .n = 64 };
			for (int i = 0; i < 64; i++)
				c.addr[i] = lo + ((p + i) * stride + r) * PAGE;
			kid_cmd(&k, &c, NULL);
		}
		wr_sum += now_s() - w0;
		t0 = now_s();
		assert_int_equal(tracker_collect(t, &s, &scanned), 0);
		d = now_s() - t0;
		sum += d;
		max = d > max ? d : max;
		assert_int_equal(pages_in(&s, lo, lo + area_pages * PAGE), dirty_pages);
	}
	print_message("bench %-7s %4llu MiB, %llu MiB written %-6s: first %6.1f ms, next avg %6.2f "
		      "max %6.2f ms (%llu pages scanned), workload writes %.2f ms/round, "
		      "tracker heap %.2f B/page\n",
		      track_method_name(m), (unsigned long long)(area_pages * PAGE >> 20),
		      (unsigned long long)(dirty_pages * PAGE >> 20), spread ? "spread" : "run",
		      first * 1e3, sum / rounds_n * 1e3, max * 1e3, (unsigned long long)scanned,
		      wr_sum / rounds_n * 1e3,
		      ((double)mallinfo2().uordblks - heap0 - s.cap * sizeof(s.r[0])) / area_pages);
	tracker_close(t);
	rangeset_free(&s);
	kid_stop(&k);
}

/*
 * track_populated(): the populated private pages of a process, without a
 * tracker, but none of an executable mapping (stop mode's frozen round).
 */
static void test_populated(void **state)
{
	const size_t P = 4096;
	struct rangeset s = { 0 }, in = { 0 };
	uint8_t *a, *x;
	int r;

	(void)state;
	a = mmap(NULL, 64 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	x = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		 0);
	assert_true(a != MAP_FAILED && x != MAP_FAILED);
	a[3 * P] = a[4 * P] = a[10 * P] = 1;
	x[0] = 0xc3;
	r = track_populated(getpid(), &s);
	if (r == -EOPNOTSUPP)
		skip();
	assert_int_equal(r, 0);
	assert_int_equal(rangeset_intersect(&s, (uintptr_t)a, (uintptr_t)a + 64 * P, &in), 0);
	assert_int_equal(in.nr, 2);
	assert_true(rangeset_covers(&in, (uintptr_t)a + 3 * P, (uintptr_t)a + 5 * P));
	assert_true(rangeset_covers(&in, (uintptr_t)a + 10 * P, (uintptr_t)a + 11 * P));
	assert_int_equal(rangeset_bytes(&in), 3 * P);
	assert_false(rangeset_contains(&s, (uintptr_t)x));
	assert_int_equal(track_populated(0x7ffffff0, &s), -ESRCH);
	rangeset_free(&s);
	rangeset_free(&in);
	munmap(a, 64 * P);
	munmap(x, 4 * P);
}

static void test_bench(void **state)
{
	(void)state;
	if (!getenv("PHAUL_TRACK_BENCH")) {
		print_message("skipped: set PHAUL_TRACK_BENCH=1 to run the 1 GiB benchmark\n");
		skip();
	}
	for (int spread = 1; spread >= 0; spread--) {
		bench(TRACK_UFFD_WP, 262144, 4096, spread);
		bench(TRACK_HASH, 262144, 4096, spread);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_soft_dirty_unavailable),
		cmocka_unit_test(test_rounds_uffd),
		cmocka_unit_test(test_rounds_hash),
		cmocka_unit_test(test_rounds_hash_pagemap),
		cmocka_unit_test(test_unreadable_uffd),
		cmocka_unit_test(test_unreadable_hash),
		cmocka_unit_test(test_written_back_uffd),
		cmocka_unit_test(test_written_back_hash),
		cmocka_unit_test(test_fallback_own_uffd),
		cmocka_unit_test(test_dead_uffd),
		cmocka_unit_test(test_dead_hash),
		cmocka_unit_test(test_exec_uffd),
		cmocka_unit_test(test_exec_hash),
		cmocka_unit_test(test_file_mapping_uffd),
		cmocka_unit_test(test_file_mapping_hash),
		cmocka_unit_test(test_stopped_uffd),
		cmocka_unit_test(test_populated),
		cmocka_unit_test(test_bench),
	};

	log_init("test_track", getenv("PHAUL_DEBUG") ? LOG_DEBUG : LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
