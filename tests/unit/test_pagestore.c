/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for pages/store: the destination's page store.
 *
 * A sender thread speaks the real protocol (msg_send / frame_send) on one
 * end of a socketpair; the test receives on the other end the way the
 * target does (msg_recv, then pagestore_recv_run / pagestore_end_round).
 * Every page carries a tag of (pid, address, round), so what lookups return
 * and what the round directories hold is checked against a model of what
 * was sent: the newest round's copy of each page, CRIU image sets chained by
 * `parent` whose PE_PRESENT runs are exactly that round's pages.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "criu/pagemap.h"
#include "pages/store.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/pageframe.h"
#include "proto/wire.h"

#define P PAGE
#define TIMEOUT_MS 10000

#define PID_A 100
#define PID_B 4194304 /* the largest pid there is */
#define PID_C 333     /* allowed, never sends */
#define BASE_A 0x7f1234500000ull
#define BASE_B 0x400000ull
#define NPAGES 300
#define ROUNDS 5

static const int32_t allowed[] = { PID_A, PID_B, PID_C };

/* --- page contents ------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* The contents of @pid's page at @vaddr as sent in @round. */
static void fill_page(uint8_t *p, int32_t pid, uint64_t vaddr, unsigned int round)
{
	uint64_t x = mix((uint64_t)pid << 40 ^ vaddr ^ (uint64_t)round << 56);

	for (size_t i = 0; i < P; i += 8) {
		x = mix(x);
		memcpy(p + i, &x, 8);
	}
}

static void assert_page(const uint8_t *p, int32_t pid, uint64_t vaddr, unsigned int round)
{
	uint8_t want[P];

	fill_page(want, pid, vaddr, round);
	if (memcmp(p, want, P))
		fail_msg("page 0x%llx of %d is not round %u's", (unsigned long long)vaddr, pid,
			 round);
}

/* --- the sending side ---------------------------------------------------- */

struct sender {
	struct conn *c;
	void (*fn)(struct sender *s);
	const void *arg;
	pthread_t th;
	int err; /* the first failure; later sends are skipped */
};

static void send_msg(struct sender *s, Msg *m)
{
	if (s->err == 0)
		s->err = msg_send(s->c, m);
}

static void send_frame(struct sender *s, enum frame_type type, const void *buf, size_t len)
{
	if (s->err == 0)
		s->err = frame_send(s->c, type, buf, len);
}

static void send_run_msg(struct sender *s, int32_t pid, uint64_t vaddr, uint32_t nr)
{
	Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
	Msg m = PHAUL__MSG__INIT;

	pr.pid = pid;
	pr.vaddr = vaddr;
	pr.nr_pages = nr;
	msg_set_page_run(&m, &pr);
	send_msg(s, &m);
}

/* @nr pages of round @round as data frames of @chunk bytes (0: one frame). */
static void send_pages(struct sender *s, int32_t pid, uint64_t vaddr, uint32_t nr,
		       unsigned int round, size_t chunk)
{
	size_t len = nr * P, off = 0;
	uint8_t *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	for (uint32_t i = 0; i < nr; i++)
		fill_page(buf + i * P, pid, vaddr + i * P, round);
	if (!chunk)
		chunk = FRAME_DATA_MAX;
	while (off < len) {
		size_t n = MIN(chunk, len - off);
		send_frame(s, FRAME_DATA, buf + off, n);
		off += n;
	}
	free(buf);
}

static void send_run(struct sender *s, int32_t pid, uint64_t vaddr, uint32_t nr, unsigned int round,
		     size_t chunk)
{
	send_run_msg(s, pid, vaddr, nr);
	send_pages(s, pid, vaddr, nr, round, chunk);
}

static void send_round_end(struct sender *s, unsigned int round)
{
	Phaul__RoundEnd re = PHAUL__ROUND_END__INIT;
	Msg m = PHAUL__MSG__INIT;

	re.round = round;
	re.pages = 0;
	msg_set_round_end(&m, &re);
	send_msg(s, &m);
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;

	s->fn(s);
	conn_free(s->c); /* the receiver sees the end of the stream */
	s->c = NULL;
	return NULL;
}

/* --- the receiving side -------------------------------------------------- */

struct fixture {
	char dir[1024];
	int sessfd;
	struct pagestore ps;
	uint64_t budget;
	struct conn *c; /* receiving end, while a sender runs */
	struct sender snd;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/phaul-test-pagestore.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	f->sessfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->sessfd < 0)
		return -1;
	if (pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)) < 0)
		return -1;
	f->budget = UINT64_MAX;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int r;

	if (f->c) {
		conn_free(f->c);
		pthread_join(f->snd.th, NULL);
	}
	pagestore_fini(&f->ps);
	close(f->sessfd);
	r = rm_rf(f->dir);
	free(f);
	return r;
}

/* Start @fn sending on a fresh socketpair; f->c is the receiving end. */
static void start_sender(struct fixture *f, void (*fn)(struct sender *s), const void *arg)
{
	int sv[2];

	assert_null(f->c);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	memset(&f->snd, 0, sizeof(f->snd));
	f->snd.fn = fn;
	f->snd.arg = arg;
	assert_int_equal(conn_from_fd(sv[1], &f->snd.c), 0);
	assert_int_equal(conn_from_fd(sv[0], &f->c), 0);
	assert_int_equal(conn_set_timeout(f->c, TIMEOUT_MS), 0);
	assert_int_equal(pthread_create(&f->snd.th, NULL, sender_main, &f->snd), 0);
}

static void stop_sender(struct fixture *f)
{
	conn_free(f->c); /* a sender still writing fails now */
	f->c = NULL;
	assert_int_equal(pthread_join(f->snd.th, NULL), 0);
}

/*
 * What the target does with page messages, until the sender closes the
 * stream (0) or something fails (that error). *nmsg counts the messages.
 */
static int receive(struct fixture *f, int *nmsg)
{
	int n = 0;

	for (;;) {
		Msg *m = NULL;
		int r = msg_recv(f->c, &m);
		if (r == -EPIPE)
			r = 1; /* the end of the stream, at a frame boundary */
		if (r != 0) {
			if (nmsg)
				*nmsg = n;
			return r > 0 ? 0 : r;
		}
		n++;
		if (m->body_case == PHAUL__MSG__BODY_PAGE_RUN)
			r = pagestore_recv_run(&f->ps, f->c, m->page_run, &f->budget);
		else if (m->body_case == PHAUL__MSG__BODY_ROUND_END)
			r = pagestore_end_round(&f->ps);
		else
			r = -EBADMSG;
		msg_free(m);
		if (r < 0) {
			if (nmsg)
				*nmsg = n;
			return r;
		}
	}
}

/* Run @fn as the sender and receive everything; returns receive()'s result. */
static int exchange(struct fixture *f, void (*fn)(struct sender *s), const void *arg, int *nmsg)
{
	int r;

	start_sender(f, fn, arg);
	r = receive(f, nmsg);
	stop_sender(f);
	return r;
}

/* --- the model ----------------------------------------------------------- */

struct run {
	int32_t pid; /* 0: the end of a round */
	uint64_t vaddr;
	uint32_t nr;
	unsigned int round;
	size_t chunk;
};

struct schedule {
	struct run r[4096];
	size_t nr;
	/* sent[k][p][i]: page i of process p came in round k (1-based) */
	bool sent[ROUNDS + 1][2][NPAGES];
	uint64_t pages;
};

static const int32_t spid[2] = { PID_A, PID_B };
static const uint64_t sbase[2] = { BASE_A, BASE_B };

static uint64_t rng = 0x853c49e6748fea9bull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Random sorted runs of process @p for @round, some adjacent. */
static void plan_runs(struct schedule *sc, int p, unsigned int round, struct run *out, size_t *n)
{
	static const size_t chunks[] = { 0, P, 1000, 12345, 65536 + 3 };
	uint64_t i = rnd() % 8;

	while (i < NPAGES) {
		uint32_t nr = 1 + rnd() % MSG_RUN_PAGES_MAX;
		if (i + nr > NPAGES)
			nr = NPAGES - i;
		out[(*n)++] = (struct run){ spid[p], sbase[p] + i * P, nr, round,
					    chunks[rnd() % ARRAY_SIZE(chunks)] };
		for (uint32_t k = 0; k < nr; k++)
			sc->sent[round][p][i + k] = true;
		sc->pages += nr;
		i += nr;
		if (rnd() % 3) /* a gap, else the next run is adjacent */
			i += 1 + rnd() % (round == 1 ? 4 : 40);
	}
}

/*
 * ROUNDS rounds; B starts in round 2, A sends nothing in round 3; within a
 * round the two processes' runs are interleaved.
 */
static void plan(struct schedule *sc)
{
	memset(sc, 0, sizeof(*sc));
	for (unsigned int k = 1; k <= ROUNDS; k++) {
		struct run a[NPAGES], b[NPAGES];
		size_t na = 0, nb = 0, ia = 0, ib = 0;
		if (k != 3)
			plan_runs(sc, 0, k, a, &na);
		if (k != 1)
			plan_runs(sc, 1, k, b, &nb);
		while (ia < na || ib < nb) {
			bool take_a = ib == nb || (ia < na && rnd() % 2);
			sc->r[sc->nr++] = take_a ? a[ia++] : b[ib++];
		}
		sc->r[sc->nr++] = (struct run){ .pid = 0, .round = k };
		assert_true(sc->nr < ARRAY_SIZE(sc->r) - 2 * NPAGES);
	}
}

static void send_schedule(struct sender *s)
{
	const struct schedule *sc = s->arg;

	for (size_t i = 0; i < sc->nr; i++) {
		const struct run *r = &sc->r[i];
		if (r->pid)
			send_run(s, r->pid, r->vaddr, r->nr, r->round, r->chunk);
		else
			send_round_end(s, r->round);
	}
}

/* The newest round (up to @upto) that sent page @i of process @p, or 0. */
static unsigned int newest(const struct schedule *sc, int p, long i, unsigned int upto)
{
	if (i < 0 || i >= NPAGES)
		return 0;
	for (unsigned int k = upto; k > 0; k--)
		if (sc->sent[k][p][i])
			return k;
	return 0;
}

/* pread @nr pages at @off of @fd and check them against the model. */
static void check_data(int fd, uint64_t off, int32_t pid, uint64_t vaddr, uint32_t nr,
		       const unsigned int *rounds)
{
	uint8_t *buf = malloc(nr * P);

	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, nr * P, off), (ssize_t)(nr * P));
	for (uint32_t k = 0; k < nr; k++) {
		static const uint8_t zero[P];
		if (rounds[k]) /* else a newer copy came: this one's space went back */
			assert_page(buf + k * P, pid, vaddr + k * P, rounds[k]);
		else if (memcmp(buf + k * P, zero, P))
			fail_msg("page 0x%llx of %d was sent again but not released",
				 (unsigned long long)(vaddr + k * P), pid);
	}
	free(buf);
}

/* Every page of both processes, and some around them, looked up. */
static void check_lookups(const struct fixture *f, const struct schedule *sc)
{
	for (int p = 0; p < 2; p++) {
		for (long i = -3; i < NPAGES + 3; i++) {
			uint64_t vaddr = sbase[p] + i * P, off = 0;
			unsigned int k = newest(sc, p, i, ROUNDS), rounds[NPAGES];
			uint32_t want = 0, nr = 0;
			int fd = -1, r;

			for (long j = i; k && newest(sc, p, j, ROUNDS) == k; j++)
				rounds[want++] = k;
			r = pagestore_lookup(&f->ps, spid[p], vaddr, 1000, &fd, &off, &nr);
			if (!k) {
				assert_int_equal(r, -ENOENT);
				continue;
			}
			assert_int_equal(r, 0);
			assert_int_equal(off % P, 0);
			/* the longest stretch of round k's copy, no more */
			assert_int_equal(nr, want);
			check_data(fd, off, spid[p], vaddr, nr, rounds);
			/* at most what was asked */
			assert_int_equal(
				pagestore_lookup(&f->ps, spid[p], vaddr, 1, &fd, &off, &nr), 0);
			assert_int_equal(nr, 1);
			if (want > 2) {
				assert_int_equal(pagestore_lookup(&f->ps, spid[p], vaddr, 2, &fd,
								  &off, &nr),
						 0);
				assert_int_equal(nr, 2);
			}
		}
	}
}

/* Round @k's pagemap of process @p: every page known, present if sent in k. */
static void want_pagemap(const struct schedule *sc, int p, unsigned int k, struct pagemap *pm)
{
	pm->pages_id = spid[p];
	for (long i = 0; i < NPAGES; i++) {
		uint32_t flags = sc->sent[k][p][i] ? PE_PRESENT : PE_PARENT;
		if (newest(sc, p, i, k))
			assert_int_equal(pagemap_add(pm, sbase[p] + i * P, 1, flags), 0);
	}
}

static bool seen_by(const struct schedule *sc, int p, unsigned int k)
{
	for (unsigned int j = 1; j <= k; j++)
		for (long i = 0; i < NPAGES; i++)
			if (sc->sent[j][p][i])
				return true;
	return false;
}

/* rounds/K: pagemap-PID.img and pages-PID.img as CRIU reads them; parent. */
static void check_round_dirs(const struct fixture *f, const struct schedule *sc)
{
	int roundsfd = openat(f->sessfd, "rounds", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	assert_true(roundsfd >= 0);
	for (unsigned int k = 1; k <= ROUNDS; k++) {
		char name[64], link[64];
		ssize_t n;
		int dfd;

		snprintf(name, sizeof(name), "%u", k);
		dfd = openat(roundsfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		assert_true(dfd >= 0);
		n = readlinkat(dfd, "parent", link, sizeof(link) - 1);
		if (k == 1) {
			assert_int_equal(n, -1);
			assert_int_equal(errno, ENOENT);
		} else {
			assert_true(n > 0);
			link[n] = '\0';
			snprintf(name, sizeof(name), "../%u", k - 1);
			assert_string_equal(link, name);
		}
		for (int p = 0; p < 2; p++) {
			struct pagemap got = { 0 }, want = { 0 };
			struct stat st;
			int pfd;

			snprintf(name, sizeof(name), "pagemap-%d.img", spid[p]);
			if (!seen_by(sc, p, k)) {
				assert_int_equal(pagemap_read(dfd, name, &got), -ENOENT);
				continue;
			}
			assert_int_equal(pagemap_read(dfd, name, &got), 0);
			want_pagemap(sc, p, k, &want);
			assert_int_equal(got.pages_id, want.pages_id);
			assert_int_equal(got.nr, want.nr);
			for (size_t i = 0; i < want.nr; i++) {
				assert_int_equal(got.e[i].vaddr, want.e[i].vaddr);
				assert_int_equal(got.e[i].nr_pages, want.e[i].nr_pages);
				assert_int_equal(got.e[i].flags, want.e[i].flags);
			}
			/* pages-<pages_id>.img: the present runs' pages in order */
			snprintf(name, sizeof(name), "pages-%u.img", got.pages_id);
			pfd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
			assert_true(pfd >= 0);
			assert_int_equal(fstat(pfd, &st), 0);
			assert_int_equal(st.st_size, pagemap_present_pages(&got) * P);
			uint64_t off = 0;
			for (size_t i = 0; i < got.nr; i++) {
				unsigned int rounds[NPAGES];
				if (!(got.e[i].flags & PE_PRESENT))
					continue;
				long first = (got.e[i].vaddr - sbase[p]) / P;
				for (uint32_t j = 0; j < got.e[i].nr_pages; j++)
					rounds[j] = newest(sc, p, first + j, ROUNDS) > k ? 0 : k;
				check_data(pfd, off, spid[p], got.e[i].vaddr, got.e[i].nr_pages,
					   rounds);
				off += got.e[i].nr_pages * P;
			}
			close(pfd);
			pagemap_free(&got);
			pagemap_free(&want);
		}
		/* nothing for a process that never sent */
		snprintf(name, sizeof(name), "pagemap-%d.img", PID_C);
		assert_int_equal(faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW), -1);
		close(dfd);
	}
	close(roundsfd);
}

/* --- rounds, lookups, round directories ---------------------------------- */

static struct schedule *new_schedule(void)
{
	struct schedule *sc = malloc(sizeof(*sc));

	assert_non_null(sc);
	plan(sc);
	return sc;
}

static void test_rounds_and_lookup(void **state)
{
	struct fixture *f = *state;
	struct schedule *sc = new_schedule();
	int fd, nmsg = 0;
	uint64_t off;
	uint32_t nr;

	f->budget = sc->pages * P + 5;
	assert_int_equal(exchange(f, send_schedule, sc, &nmsg), 0);
	assert_int_equal(nmsg, sc->nr);
	assert_int_equal(f->snd.err, 0);
	assert_int_equal(f->ps.pages, sc->pages);
	assert_int_equal(f->ps.round, ROUNDS + 1);
	/* a page sent again gives its older copy's space back (BUG-5): the
	 * budget spent is what the store holds, each page once */
	uint64_t held = 0;
	for (size_t i = 0; i < f->ps.nr; i++)
		held += rangeset_bytes(&f->ps.p[i].known);
	/* (the last round's give-back is credited with the next run) */
	assert_int_equal(f->budget + f->ps.freed, 5 + sc->pages * P - held);

	check_lookups(f, sc);
	check_round_dirs(f, sc);

	/* unknown, never-sending and bogus pids; unaligned addresses */
	assert_int_equal(pagestore_lookup(&f->ps, 4242, BASE_A, 1, &fd, &off, &nr), -ENOENT);
	assert_int_equal(pagestore_lookup(&f->ps, PID_C, BASE_A, 1, &fd, &off, &nr), -ENOENT);
	assert_int_equal(pagestore_lookup(&f->ps, 0, BASE_A, 1, &fd, &off, &nr), -ENOENT);
	assert_int_equal(pagestore_lookup(&f->ps, -1, BASE_A, 1, &fd, &off, &nr), -ENOENT);
	for (long i = 0; i < NPAGES; i++) {
		if (!newest(sc, 0, i, ROUNDS))
			continue;
		assert_int_equal(pagestore_lookup(&f->ps, PID_A, BASE_A + i * P + 8, 1, &fd, &off,
						  &nr),
				 -ENOENT);
		break;
	}
	free(sc);
}

/* Hand-made rounds for exact contiguity checks. */
static void send_contiguity(struct sender *s)
{
	/* round 1: pages 0-9 and 20-29 */
	send_run(s, PID_A, BASE_A, 10, 1, 0);
	send_run(s, PID_A, BASE_A + 20 * P, 10, 1, P);
	send_round_end(s, 1);
	/* round 2: pages 4 and 6-7, and 10-11 (right after round 1's first run) */
	send_run(s, PID_A, BASE_A + 4 * P, 1, 2, 0);
	send_run(s, PID_A, BASE_A + 6 * P, 2, 2, 0);
	send_run(s, PID_A, BASE_A + 10 * P, 2, 2, 0);
	send_round_end(s, 2);
	/* round 3: nothing for A; round 4: page 25 */
	send_round_end(s, 3);
	send_run(s, PID_A, BASE_A + 25 * P, 1, 4, 0);
	send_round_end(s, 4);
	/* pages of a round that never ends are not looked up */
	send_run(s, PID_A, BASE_A + 40 * P, 3, 5, 0);
}

struct expect {
	long page;
	int r;
	uint32_t nr;
	unsigned int round;
};

static void test_contiguity(void **state)
{
	struct fixture *f = *state;
	static const struct expect ex[] = {
		{ 0, 0, 4, 1 },			       /* stops at page 4: round 2 has it */
		{ 3, 0, 1, 1 },	       { 4, 0, 1, 2 }, /* round 2's page 4, then page 5 is only in round 1 */
		{ 5, 0, 1, 1 },			       /* stops at page 6 */
		{ 6, 0, 2, 2 },			       /* 6-7 of round 2: page 8 is round 1's */
		{ 7, 0, 1, 2 },	       { 8, 0, 2, 1 }, /* 8-9: the end of round 1's run */
		{ 10, 0, 2, 2 },       { 12, -ENOENT, 0, 0 }, { 19, -ENOENT, 0, 0 },
		{ 20, 0, 5, 1 }, /* stops at 25, which round 4 has */
		{ 24, 0, 1, 1 },       { 25, 0, 1, 4 },	      { 26, 0, 4, 1 },
		{ 30, -ENOENT, 0, 0 }, { 40, -ENOENT, 0, 0 }, /* round 5 never ended */
		{ -1, -ENOENT, 0, 0 },
	};

	assert_int_equal(exchange(f, send_contiguity, NULL, NULL), 0);
	assert_int_equal(f->ps.round, 5);
	for (size_t i = 0; i < ARRAY_SIZE(ex); i++) {
		uint64_t vaddr = BASE_A + ex[i].page * P, off;
		unsigned int rounds[16];
		uint32_t nr = 0;
		int fd;

		assert_int_equal(pagestore_lookup(&f->ps, PID_A, vaddr, 100, &fd, &off, &nr),
				 ex[i].r);
		if (ex[i].r)
			continue;
		assert_int_equal(nr, ex[i].nr);
		for (uint32_t k = 0; k < nr; k++)
			rounds[k] = ex[i].round;
		check_data(fd, off, PID_A, vaddr, nr, rounds);
	}
}

/* A process first seen in a later round; a round with no pages at all. */
static void send_late_and_empty(struct sender *s)
{
	send_round_end(s, 1); /* nothing at all */
	send_run(s, PID_B, BASE_B, 3, 2, 0);
	send_round_end(s, 2);
	send_run(s, PID_A, BASE_A, 1, 3, 0);
	send_round_end(s, 3);
}

static void test_late_process_and_empty_round(void **state)
{
	struct fixture *f = *state;
	int roundsfd, dfd, fd, n = 0;
	struct pagemap pm = { 0 };
	uint64_t off;
	uint32_t nr;
	DIR *d;

	assert_int_equal(exchange(f, send_late_and_empty, NULL, NULL), 0);
	roundsfd = openat(f->sessfd, "rounds", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(roundsfd >= 0);
	/* round 1 is an empty directory */
	dfd = openat(roundsfd, "1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	d = opendir_at(dfd);
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 0);
	close(dfd);
	/* round 3: B's pagemap says everything is in the parent, its pages file is empty */
	dfd = openat(roundsfd, "3", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(pagemap_read(dfd, "pagemap-4194304.img", &pm), 0);
	assert_int_equal(pm.nr, 1);
	assert_int_equal(pm.e[0].vaddr, BASE_B);
	assert_int_equal(pm.e[0].nr_pages, 3);
	assert_int_equal(pm.e[0].flags, PE_PARENT);
	pagemap_free(&pm);
	fd = openat(dfd, "pages-4194304.img", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(lseek(fd, 0, SEEK_END), 0);
	close(fd);
	assert_int_equal(pagemap_read(dfd, "pagemap-100.img", &pm), 0);
	assert_int_equal(pm.nr, 1);
	assert_int_equal(pm.e[0].flags, PE_PRESENT);
	pagemap_free(&pm);
	close(dfd);
	close(roundsfd);
	/* B's pages still come from round 2 */
	assert_int_equal(pagestore_lookup(&f->ps, PID_B, BASE_B, 10, &fd, &off, &nr), 0);
	assert_int_equal(nr, 3);
	check_data(fd, off, PID_B, BASE_B, 3, (unsigned int[]){ 2, 2, 2 });
}

/* --- protocol errors ----------------------------------------------------- */

static void send_stranger(struct sender *s)
{
	send_run(s, PID_A, BASE_A, 1, 1, 0);
	send_run(s, 4242, BASE_A, 1, 1, 0);
}

static void test_pid_not_allowed(void **state)
{
	struct fixture *f = *state;
	int nmsg = 0, dfd;

	assert_int_equal(exchange(f, send_stranger, NULL, &nmsg), -EPROTO);
	assert_int_equal(nmsg, 2);
	assert_int_equal(f->ps.pages, 1);
	dfd = openat(f->sessfd, "rounds/1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(faccessat(dfd, "pages-4242.img", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(dfd);
}

/* Once NewPids named it, a process forked since the preflight may send. */
static void test_pid_added(void **state)
{
	struct fixture *f = *state;
	const int32_t more[] = { 4242 };
	int nmsg = 0, dfd;

	assert_int_equal(pagestore_add_pids(&f->ps, more, 1), 0);
	assert_int_equal(exchange(f, send_stranger, NULL, &nmsg), 0);
	assert_int_equal(f->ps.pages, 2);
	dfd = openat(f->sessfd, "rounds/1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_int_equal(faccessat(dfd, "pages-4242.img", F_OK, AT_SYMLINK_NOFOLLOW), 0);
	close(dfd);
	/* never more than MSG_PIDS_MAX processes in all */
	int32_t *many = calloc(MSG_PIDS_MAX, sizeof(*many));
	assert_non_null(many);
	assert_int_equal(pagestore_add_pids(&f->ps, many, MSG_PIDS_MAX), -E2BIG);
	free(many);
}

static void send_backwards(struct sender *s)
{
	const uint64_t *v = s->arg;

	send_run(s, PID_A, BASE_A + v[0] * P, v[1], 1, 0);
	send_run(s, PID_B, BASE_B, 1, 1, 0); /* another process: independent */
	send_run(s, PID_A, BASE_A + v[2] * P, v[3], 1, 0);
}

static void test_out_of_order(void **state)
{
	struct fixture *f = *state;
	static const uint64_t cases[][4] = {
		{ 10, 1, 5, 1 },  /* before */
		{ 10, 4, 10, 1 }, /* the same start */
		{ 10, 4, 13, 1 }, /* inside the last run */
		{ 10, 4, 12, 8 }, /* overlapping its end */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int nmsg = 0;
		pagestore_fini(&f->ps);
		assert_int_equal(rm_rf_at(f->sessfd), 0);
		assert_int_equal(pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)),
				 0);
		assert_int_equal(exchange(f, send_backwards, cases[i], &nmsg), -EPROTO);
		assert_int_equal(nmsg, 3);
		assert_int_equal(f->ps.pages, cases[i][1] + 1);
	}
}

/* Adjacent runs are in order; after a RoundEnd, addresses start over. */
static void send_adjacent(struct sender *s)
{
	send_run(s, PID_A, BASE_A, 2, 1, 0);
	send_run(s, PID_A, BASE_A + 2 * P, 2, 1, 0);
	send_round_end(s, 1);
	send_run(s, PID_A, BASE_A + P, 1, 2, 0);
	send_round_end(s, 2);
}

static void test_adjacent_runs(void **state)
{
	struct fixture *f = *state;
	uint64_t off;
	uint32_t nr;
	int fd;

	assert_int_equal(exchange(f, send_adjacent, NULL, NULL), 0);
	assert_int_equal(pagestore_lookup(&f->ps, PID_A, BASE_A, 10, &fd, &off, &nr), 0);
	assert_int_equal(nr, 1);
	check_data(fd, off, PID_A, BASE_A, 1, (unsigned int[]){ 1 });
	assert_int_equal(pagestore_lookup(&f->ps, PID_A, BASE_A + 2 * P, 10, &fd, &off, &nr), 0);
	assert_int_equal(nr, 2);
	check_data(fd, off, PID_A, BASE_A + 2 * P, 2, (unsigned int[]){ 1, 1 });
}

enum bad_data {
	SHORT_THEN_MSG,	 /* fewer bytes, then a message */
	SHORT_THEN_EOF,	 /* fewer bytes, then the stream ends */
	LONG_FRAME,	 /* one frame longer than what is due */
	LONG_LAST_FRAME, /* the last frame overshoots by one byte */
	EXTRA_FRAME,	 /* all bytes, then one data frame more */
	EMPTY_FRAME,	 /* a zero-length data frame */
	MSG_IN_MIDDLE,	 /* a PageRun while data is due */
};

static void send_bad_data(struct sender *s)
{
	enum bad_data how = *(const enum bad_data *)s->arg;
	uint8_t buf[3 * P + 1];

	memset(buf, 0x5a, sizeof(buf));
	send_run(s, PID_A, BASE_A, 2, 1, 0); /* a good one first */
	send_run_msg(s, PID_A, BASE_A + 10 * P, 2);
	switch (how) {
	case SHORT_THEN_MSG:
		send_frame(s, FRAME_DATA, buf, P + 100);
		send_round_end(s, 1);
		break;
	case SHORT_THEN_EOF: send_frame(s, FRAME_DATA, buf, P); break;
	case LONG_FRAME: send_frame(s, FRAME_DATA, buf, 3 * P); break;
	case LONG_LAST_FRAME:
		send_frame(s, FRAME_DATA, buf, P);
		send_frame(s, FRAME_DATA, buf, P + 1);
		break;
	case EXTRA_FRAME:
		send_pages(s, PID_A, BASE_A + 10 * P, 2, 1, 0);
		send_frame(s, FRAME_DATA, buf, 10);
		send_round_end(s, 1);
		break;
	case EMPTY_FRAME:
		send_frame(s, FRAME_DATA, buf, 100);
		send_frame(s, FRAME_DATA, NULL, 0);
		send_frame(s, FRAME_DATA, buf, 2 * P - 100);
		break;
	case MSG_IN_MIDDLE:
		send_frame(s, FRAME_DATA, buf, P);
		send_run_msg(s, PID_A, BASE_A + 20 * P, 1);
		send_frame(s, FRAME_DATA, buf, P);
		break;
	}
}

static void test_bad_data_frames(void **state)
{
	struct fixture *f = *state;
	static const struct {
		enum bad_data how;
		int err;
		int nmsg;
	} cases[] = {
		{ SHORT_THEN_MSG, -EPROTO, 2 }, { SHORT_THEN_EOF, -EPIPE, 2 },
		{ LONG_FRAME, -EPROTO, 2 },	{ LONG_LAST_FRAME, -EPROTO, 2 },
		{ EXTRA_FRAME, -EPROTO, 2 }, /* msg_recv refuses the data frame */
		{ EMPTY_FRAME, -EPROTO, 2 },	{ MSG_IN_MIDDLE, -EPROTO, 2 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int nmsg = 0;
		uint64_t off;
		uint32_t nr;
		int fd;

		pagestore_fini(&f->ps);
		assert_int_equal(rm_rf_at(f->sessfd), 0);
		assert_int_equal(pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)),
				 0);
		f->budget = 100 * P;
		assert_int_equal(exchange(f, send_bad_data, &cases[i].how, &nmsg), cases[i].err);
		assert_int_equal(nmsg, cases[i].nmsg);
		/* the good run counts, the bad one does not */
		assert_int_equal(f->ps.pages, cases[i].how == EXTRA_FRAME ? 4 : 2);
		assert_int_equal(f->budget, (100 - f->ps.pages) * P);
		/* the round never ended: nothing to look up */
		assert_int_equal(pagestore_lookup(&f->ps, PID_A, BASE_A, 1, &fd, &off, &nr),
				 -ENOENT);
	}
}

static void send_budget(struct sender *s)
{
	send_run(s, PID_A, BASE_A, 2, 1, 0);
	send_run(s, PID_A, BASE_A + 2 * P, 1, 1, 0); /* exactly what is left */
	send_round_end(s, 1);
	send_run(s, PID_B, BASE_B, 1, 2, 0); /* one page over */
	send_round_end(s, 2);
}

static void test_budget(void **state)
{
	struct fixture *f = *state;
	enum frame_type type;
	uint8_t *buf = malloc(FRAME_DATA_MAX);
	uint32_t len;
	int nmsg = 0;

	assert_non_null(buf);
	f->budget = 3 * P;
	start_sender(f, send_budget, NULL);
	assert_int_equal(receive(f, &nmsg), -ENOSPC);
	assert_int_equal(nmsg, 4);
	assert_int_equal(f->budget, 0);
	assert_int_equal(f->ps.pages, 3);
	/* refused before any of its data was read: the next frame is that data */
	assert_int_equal(frame_recv(f->c, &type, buf, FRAME_DATA_MAX, &len), 0);
	assert_int_equal(type, FRAME_DATA);
	assert_int_equal(len, P);
	stop_sender(f);
	free(buf);

	/* a run bigger than a budget that is not yet exhausted */
	pagestore_fini(&f->ps);
	assert_int_equal(rm_rf_at(f->sessfd), 0);
	assert_int_equal(pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)), 0);
	f->budget = 2 * P + 4095;
	assert_int_equal(exchange(f, send_budget, NULL, &nmsg), -ENOSPC);
	assert_int_equal(nmsg, 2);
	assert_int_equal(f->budget, 4095);
	assert_int_equal(f->ps.pages, 2);
}

/*
 * Page frames (negotiated): 8 pages of which 1, 2 and 7 (the last) are
 * zero, in round 1; the same pages again in round 2, all non-zero.
 */
#define ZMASK 0x86u
static void zero_pages(uint8_t *buf, unsigned int round)
{
	for (uint32_t i = 0; i < 8; i++) {
		fill_page(buf + i * P, PID_A, BASE_A + i * P, round);
		if (round == 1 && ZMASK & 1u << i)
			memset(buf + i * P, 0, P);
	}
}

static void send_zero(struct sender *s)
{
	uint8_t buf[8 * P];

	pf_attach(s->c, NULL);
	for (unsigned int round = 1; round <= 2; round++) {
		zero_pages(buf, round);
		send_run_msg(s, PID_A, BASE_A, 8);
		if (s->err == 0)
			s->err = pages_send(s->c, buf, sizeof(buf));
		send_round_end(s, round);
	}
}

static void test_zero_pages(void **state)
{
	struct fixture *f = *state;
	uint8_t want[8 * P], got[P];
	struct stat st;
	uint64_t off;
	uint32_t nr;
	int fd, nmsg;

	start_sender(f, send_zero, NULL);
	assert_int_equal(pf_attach(f->c, NULL), 0);
	f->budget = 100 * P;
	/* round 1 only */
	for (int i = 0; i < 2; i++) {
		Msg *m = NULL;
		assert_int_equal(msg_recv(f->c, &m), 0);
		if (m->body_case == PHAUL__MSG__BODY_PAGE_RUN)
			assert_int_equal(pagestore_recv_run(&f->ps, f->c, m->page_run, &f->budget),
					 0);
		else
			assert_int_equal(pagestore_end_round(&f->ps), 0);
		msg_free(m);
	}
	/* the zero pages took neither budget nor space, the file is whole */
	assert_int_equal(f->budget, 95 * P);
	fd = f->ps.p[0].rounds[0].fd;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 8 * P);
	assert_true((uint64_t)st.st_blocks * 512 <= 5 * P);
	/* and read back as zeros */
	zero_pages(want, 1);
	for (uint32_t i = 0; i < 8; i++) {
		assert_int_equal(pagestore_lookup(&f->ps, PID_A, BASE_A + i * P, 1, &fd, &off, &nr),
				 0);
		assert_int_equal(pread(fd, got, P, off), P);
		assert_memory_equal(got, want + i * P, P);
	}
	/* round 2 sends them all: only the 5 pages that held space give it back */
	assert_int_equal(receive(f, &nmsg), 0);
	assert_int_equal(nmsg, 2);
	stop_sender(f);
	assert_int_equal(f->budget + f->ps.freed, 95 * P - 8 * P + 5 * P);
}

/*
 * A run that msg_validate lets through must give a round pagemap that the
 * store's own reader (and CRIU) accepts: runs end at 2^57 at the latest.
 */
static void send_top(struct sender *s)
{
	send_run(s, PID_A, (1ull << 57) - 2 * P, 2, 1, 0); /* ends at 2^57: fine */
	send_run(s, PID_B, (1ull << 57) - P, 2, 1, 0);	   /* ends a page beyond */
	send_round_end(s, 1);
}

static void test_run_beyond_address_limit(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { 0 };
	int r = exchange(f, send_top, NULL, NULL), dfd;

	dfd = openat(f->sessfd, "rounds/1", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	if (r == 0) {
		/* everything was accepted: then it must all be readable */
		assert_int_equal(pagemap_read(dfd, "pagemap-100.img", &pm), 0);
		pagemap_free(&pm);
		r = pagemap_read(dfd, "pagemap-4194304.img", &pm);
		pagemap_free(&pm);
		close(dfd);
		if (r)
			fail_msg("a PageRun ending past 2^57 was stored, and its round's pagemap "
				 "is refused by pagemap_read (%d)",
				 r);
	} else {
		close(dfd);
		assert_int_equal(r, -EPROTO);
	}
}

/* --- pagestore_assemble --------------------------------------------------- */

/* A: pages 0-9 in round 1, 5-14 in round 2; B: 0-3 in round 2. */
static void send_for_assemble(struct sender *s)
{
	send_run(s, PID_A, BASE_A, 10, 1, 0);
	send_round_end(s, 1);
	send_run(s, PID_B, BASE_B, 4, 2, 0);
	send_run(s, PID_A, BASE_A + 5 * P, 10, 2, 0);
	send_round_end(s, 2);
}

/* CRIU's final images: img/pagemap-PID.img with lazy runs; img next to rounds. */
static int make_images(struct fixture *f, bool with_missing)
{
	struct pagemap a = { .pages_id = 1 }, b = { .pages_id = 2 }, other = { .pages_id = 3 };
	int imgfd, fd;

	assert_true(mkdirat(f->sessfd, "img", 0700) == 0);
	imgfd = openat(f->sessfd, "img", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(imgfd >= 0);
	/* A: a present run (not in the store), lazy runs the store has */
	assert_int_equal(pagemap_add(&a, BASE_A - 16 * P, 2, PE_PRESENT), 0);
	assert_int_equal(pagemap_add(&a, BASE_A, 3, PE_LAZY), 0);
	assert_int_equal(pagemap_add(&a, BASE_A + 3 * P, 2, PE_LAZY | PE_PRESENT), 0);
	assert_int_equal(pagemap_add(&a, BASE_A + 5 * P, 10, PE_LAZY), 0);
	if (with_missing)
		assert_int_equal(pagemap_add(&a, BASE_A + 20 * P, 1, PE_LAZY), 0);
	assert_int_equal(pagemap_write(imgfd, "pagemap-100.img", &a), 0);
	/* B: all lazy */
	assert_int_equal(pagemap_add(&b, BASE_B, 4, PE_LAZY), 0);
	assert_int_equal(pagemap_write(imgfd, "pagemap-4194304.img", &b), 0);
	/* a process the store never heard of, with nothing lazy */
	assert_int_equal(pagemap_add(&other, 0x1000, 1, PE_PRESENT), 0);
	assert_int_equal(pagemap_write(imgfd, "pagemap-555.img", &other), 0);
	/* files that are not task pagemaps are left alone */
	fd = openat(imgfd, "pagemap-shmem-7.img", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, "not a pagemap", 13), 0);
	close(fd);
	fd = openat(imgfd, "core-100.img", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	pagemap_free(&a);
	pagemap_free(&b);
	pagemap_free(&other);
	return imgfd;
}

static void assert_pagemap(int dirfd, const char *name, uint32_t pages_id,
			   const struct pm_entry *want, size_t n)
{
	struct pagemap pm = { 0 };

	assert_int_equal(pagemap_read(dirfd, name, &pm), 0);
	assert_int_equal(pm.pages_id, pages_id);
	assert_int_equal(pm.nr, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(pm.e[i].vaddr, want[i].vaddr);
		assert_int_equal(pm.e[i].nr_pages, want[i].nr_pages);
		assert_int_equal(pm.e[i].flags, want[i].flags);
	}
	pagemap_free(&pm);
}

static const struct pm_entry criu_a[] = {
	{ BASE_A - 16 * P, 2, PE_PRESENT },
	{ BASE_A, 3, PE_LAZY },
	{ BASE_A + 3 * P, 2, PE_LAZY | PE_PRESENT },
	{ BASE_A + 5 * P, 10, PE_LAZY },
};

static void test_assemble_lazy(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	imgfd = make_images(f, false);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	/* nothing changes: lazy-pages serves those runs from the store */
	assert_pagemap(imgfd, "pagemap-100.img", 1, criu_a, ARRAY_SIZE(criu_a));
	assert_pagemap(imgfd, "pagemap-4194304.img", 2,
		       (struct pm_entry[]){ { BASE_B, 4, PE_LAZY } }, 1);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(imgfd);
}

static void assert_parent(int imgfd, const char *want)
{
	char link[64];
	ssize_t n = readlinkat(imgfd, "parent", link, sizeof(link) - 1);

	assert_true(n > 0);
	link[n] = '\0';
	assert_string_equal(link, want);
}

static void test_assemble_chain(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	imgfd = make_images(f, false);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, false), 0);
	/* the lazy runs now come from the parent; present ones stay */
	assert_pagemap(imgfd, "pagemap-100.img", 1,
		       (struct pm_entry[]){ { BASE_A - 16 * P, 2, PE_PRESENT },
					    { BASE_A, 3, PE_PARENT },
					    { BASE_A + 3 * P, 2, PE_LAZY | PE_PRESENT },
					    { BASE_A + 5 * P, 10, PE_PARENT } },
		       4);
	assert_pagemap(imgfd, "pagemap-4194304.img", 2,
		       (struct pm_entry[]){ { BASE_B, 4, PE_PARENT } }, 1);
	assert_pagemap(imgfd, "pagemap-555.img", 3,
		       (struct pm_entry[]){ { 0x1000, 1, PE_PRESENT } }, 1);
	/* parent -> ../rounds/2, where CRIU finds the whole chain */
	assert_parent(imgfd, "../rounds/2");
	assert_pagemap(imgfd, "parent/pagemap-100.img", PID_A,
		       (struct pm_entry[]){ { BASE_A, 5, PE_PARENT },
					    { BASE_A + 5 * P, 10, PE_PRESENT } },
		       2);
	assert_pagemap(imgfd, "parent/parent/pagemap-100.img", PID_A,
		       (struct pm_entry[]){ { BASE_A, 10, PE_PRESENT } }, 1);
	close(imgfd);
}

static void test_assemble_missing(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	imgfd = make_images(f, true);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, false), -ENODATA);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(imgfd);
}

/*
 * Shared pages (PageShared): A's 1-2 and 6-8, B's 0-3 come from the chain,
 * the rest of the lazy runs stays lazy; the store links `parent`.
 */
static void test_assemble_shared(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	imgfd = make_images(f, false);
	assert_int_equal(pagestore_share(&f->ps, PID_A, BASE_A + P, BASE_A + 3 * P), 0);
	assert_int_equal(pagestore_share(&f->ps, PID_A, BASE_A + 6 * P, BASE_A + 9 * P), 0);
	assert_int_equal(pagestore_share(&f->ps, PID_B, BASE_B, BASE_B + 4 * P), 0);
	/* a shared run outside every lazy run: CRIU's images say how */
	assert_int_equal(pagestore_share(&f->ps, PID_A, BASE_A - 16 * P, BASE_A - 15 * P), 0);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_pagemap(imgfd, "pagemap-100.img", 1,
		       (struct pm_entry[]){ { BASE_A - 16 * P, 2, PE_PRESENT },
					    { BASE_A, 1, PE_LAZY },
					    { BASE_A + P, 2, PE_PARENT },
					    { BASE_A + 3 * P, 2, PE_LAZY | PE_PRESENT },
					    { BASE_A + 5 * P, 1, PE_LAZY },
					    { BASE_A + 6 * P, 3, PE_PARENT },
					    { BASE_A + 9 * P, 6, PE_LAZY } },
		       7);
	assert_pagemap(imgfd, "pagemap-4194304.img", 2,
		       (struct pm_entry[]){ { BASE_B, 4, PE_PARENT } }, 1);
	assert_parent(imgfd, "../rounds/2");
	close(imgfd);
}

/* A shared page the store lacks, or holds stale: the restore fails. */
static void test_assemble_shared_missing(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.remote = true; /* post-copy: lazy runs may lack pages */
	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	imgfd = make_images(f, true);
	/* page 20 is lazy in the images, never sent */
	assert_int_equal(pagestore_share(&f->ps, PID_A, BASE_A + 20 * P, BASE_A + 21 * P), 0);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(imgfd);
}

static void test_assemble_shared_stale(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.remote = true;
	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	imgfd = make_images(f, false);
	assert_int_equal(pagestore_drop(&f->ps, PID_B, BASE_B + 2 * P, BASE_B + 3 * P), 0);
	assert_int_equal(pagestore_share(&f->ps, PID_B, BASE_B, BASE_B + 4 * P), 0);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	close(imgfd);
}

static void test_share_bad(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(pagestore_share(&f->ps, 999, BASE_A, BASE_A + P), -EPROTO);
	assert_int_equal(pagestore_share(&f->ps, PID_A, BASE_A + 1, BASE_A + P), -EPROTO);
	assert_int_equal(pagestore_share(&f->ps, PID_A, BASE_A, BASE_A), -EPROTO);
	assert_int_equal(pagestore_share(&f->ps, PID_A, 0, MSG_VADDR_LIMIT + P), -EPROTO);
}

/* B's page at @vaddr, looked up: A's newest copy, of round @round. */
static void assert_copied(const struct fixture *f, uint64_t vaddr, unsigned int round)
{
	uint8_t buf[P];
	uint64_t off;
	uint32_t nr;
	int fd;

	assert_int_equal(pagestore_lookup(&f->ps, PID_B, vaddr, 1, &fd, &off, &nr), 0);
	assert_int_equal(pread(fd, buf, P, (off_t)off), P);
	assert_page(buf, PID_A, vaddr, round);
}

/*
 * PageShared with from_pid: B's pages at A's addresses are A's, copied
 * from the store's newest copy of each into the round being received.
 */
static void test_copy_from(void **state)
{
	struct fixture *f = *state;
	uint64_t budget = 8 * P;

	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	assert_int_equal(
		pagestore_copy(&f->ps, PID_B, PID_A, BASE_A + 3 * P, BASE_A + 7 * P, &budget), 0);
	assert_int_equal(budget, 4 * P);
	/* in order within the round, as received runs are */
	assert_int_equal(pagestore_copy(&f->ps, PID_B, PID_A, BASE_A, BASE_A + P, &budget),
			 -EPROTO);
	assert_int_equal(pagestore_copy(&f->ps, PID_B, PID_A, BASE_A + 8 * P, BASE_A + 13 * P,
					&budget),
			 -ENOSPC);
	assert_int_equal(pagestore_end_round(&f->ps), 0);
	for (int i = 3; i < 7; i++)
		assert_copied(f, BASE_A + i * P, i < 5 ? 1 : 2);
	/* B's round file holds them, and its pagemap says so */
	assert_true(rangeset_covers(&f->ps.p[1].known, BASE_A + 3 * P, BASE_A + 7 * P));
}

/* What cannot be copied: A's pages the store lacks or holds stale; oneself. */
static void test_copy_refused(void **state)
{
	struct fixture *f = *state;

	f->ps.remote = true;
	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	assert_int_equal(pagestore_copy(&f->ps, PID_B, PID_A, BASE_A + 14 * P, BASE_A + 16 * P,
					&f->budget),
			 -ENODATA);
	assert_int_equal(pagestore_drop(&f->ps, PID_A, BASE_A + 20 * P, BASE_A + 30 * P), 0);
	assert_int_equal(pagestore_drop(&f->ps, PID_A, BASE_A + 2 * P, BASE_A + 3 * P), 0);
	assert_int_equal(pagestore_copy(&f->ps, PID_C, PID_A, BASE_A, BASE_A + 4 * P, &f->budget),
			 -ENODATA);
	assert_int_equal(pagestore_copy(&f->ps, PID_A, PID_A, BASE_A, BASE_A + P, &f->budget),
			 -EPROTO);
	assert_int_equal(pagestore_copy(&f->ps, PID_A, 999, BASE_A, BASE_A + P, &f->budget),
			 -EPROTO);
	assert_int_equal(pagestore_copy(&f->ps, 999, PID_A, BASE_A, BASE_A + P, &f->budget),
			 -EPROTO);
}

/* A lazy run of a process that sent nothing, or only in an unfinished round. */
static void send_unfinished(struct sender *s)
{
	send_run(s, PID_A, BASE_A, 15, 1, 0);
	send_round_end(s, 1);
	send_run(s, PID_B, BASE_B, 4, 2, 0); /* round 2 never ends */
}

static void test_assemble_unknown_process(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	assert_int_equal(exchange(f, send_unfinished, NULL, NULL), 0);
	imgfd = make_images(f, false);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	assert_int_equal(unlinkat(imgfd, "pagemap-4194304.img", 0), 0);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	close(imgfd);
}

/* Without lazy runs and rounds there is nothing to link. */
static void test_assemble_no_rounds(void **state)
{
	struct fixture *f = *state;
	struct pagemap pm = { .pages_id = 1 };
	int imgfd;

	assert_int_equal(mkdirat(f->sessfd, "img", 0700), 0);
	imgfd = openat(f->sessfd, "img", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(imgfd >= 0);
	assert_int_equal(pagemap_add(&pm, BASE_A, 1, PE_PRESENT), 0);
	assert_int_equal(pagemap_write(imgfd, "pagemap-100.img", &pm), 0);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, false), 0);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	pagemap_free(&pm);
	pagemap_add(&pm, BASE_A, 1, PE_LAZY);
	assert_int_equal(pagemap_write(imgfd, "pagemap-100.img", &pm), 0);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, false), -ENODATA);
	pagemap_free(&pm);
	close(imgfd);
}

/* Leave non-zero bytes where the next calls' locals will live. */
static __attribute__((noinline)) void scribble_stack(void)
{
	volatile uint8_t junk[16384];

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = 0xa5;
}

/*
 * A pagemap in the images that is not one: an error, not a crash. It is the
 * only pagemap there, so it is the first one pagestore_assemble reads (after
 * a valid one, pagemap_free has zeroed the struct the bad one then reuses).
 */
static void bad_pagemap(struct fixture *f, bool lazy, const char *contents)
{
	int imgfd, fd;

	if (mkdirat(f->sessfd, "img", 0700) < 0)
		assert_int_equal(errno, EEXIST);
	imgfd = openat(f->sessfd, "img", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(imgfd >= 0);
	fd = openat(imgfd, "pagemap-100.img", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, contents, strlen(contents)), 0);
	close(fd);
	scribble_stack();
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, lazy), -EINVAL);
	close(imgfd);
}

static void test_assemble_bad_pagemap(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	bad_pagemap(f, true, "garbage, not a CRIU image");
	bad_pagemap(f, false, "");
	bad_pagemap(f, true, "\x19\x43\x56\x54\x25\x40\x08\x56\xff");
}

/* --- pagestore_drop and post-copy ------------------------------------------ */

static int lookup_n(const struct fixture *f, int32_t pid, long page, uint32_t max, uint32_t *nr)
{
	uint64_t off;
	int fd;

	*nr = 0;
	return pagestore_lookup(&f->ps, pid, BASE_A + page * P, max, &fd, &off, nr);
}

static void drop(struct fixture *f, long from, long to)
{
	assert_int_equal(pagestore_drop(&f->ps, PID_A, BASE_A + from * P, BASE_A + to * P), 0);
}

/* On send_contiguity's store: stale pages miss, runs reaching them are cut short. */
static void test_drop(void **state)
{
	struct fixture *f = *state;
	static const struct expect ex[] = {
		{ 0, 0, 2, 1 },			       /* 0-1: page 2 is stale */
		{ 2, -ENOENT, 0, 0 },  { 3, 0, 1, 1 }, /* round 1's page 3, then round 2's page 4 */
		{ 4, 0, 1, 2 },	       { 20, 0, 2, 1 }, /* 20-21: 22-24 stale */
		{ 22, -ENOENT, 0, 0 }, { 24, -ENOENT, 0, 0 },
		{ 25, -ENOENT, 0, 0 }, /* round 4's copy is dropped too */
		{ 26, 0, 2, 1 },       /* 26-27: 28 stale */
		{ 28, -ENOENT, 0, 0 }, { 29, 0, 1, 1 },
		{ 6, 0, 2, 2 }, /* untouched */
	};
	uint32_t nr;

	assert_int_equal(exchange(f, send_contiguity, NULL, NULL), 0);
	drop(f, 2, 3);
	drop(f, 22, 24);
	drop(f, 24, 26); /* adjacent to the previous drop */
	drop(f, 28, 29);
	drop(f, 23, 25);   /* overlapping what is already stale */
	drop(f, 100, 200); /* nothing there: harmless */
	for (size_t i = 0; i < ARRAY_SIZE(ex); i++) {
		int r = lookup_n(f, PID_A, ex[i].page, 100, &nr);
		if (r != ex[i].r || (r == 0 && nr != ex[i].nr))
			fail_msg("page %ld: lookup %d, %u pages; want %d, %u", ex[i].page, r, nr,
				 ex[i].r, ex[i].nr);
	}
	/* the cut depends on max too: a small max is not extended */
	assert_int_equal(lookup_n(f, PID_A, 0, 1, &nr), 0);
	assert_int_equal(nr, 1);
	/* another process's pages are not affected */
	assert_int_equal(pagestore_drop(&f->ps, PID_C, BASE_A, BASE_A + 30 * P), 0);
	assert_int_equal(lookup_n(f, PID_A, 26, 100, &nr), 0);
	assert_int_equal(nr, 2);
}

static void test_drop_bad_ranges(void **state)
{
	struct fixture *f = *state;
	static const struct {
		int32_t pid;
		uint64_t vaddr, end;
	} bad[] = {
		{ 4242, BASE_A, BASE_A + P }, /* not part of the migration */
		{ 0, BASE_A, BASE_A + P },
		{ -1, BASE_A, BASE_A + P },
		{ PID_A, BASE_A + 8, BASE_A + P }, /* unaligned */
		{ PID_A, BASE_A, BASE_A + P + 8 },
		{ PID_A, BASE_A, BASE_A },			     /* empty */
		{ PID_A, BASE_A + P, BASE_A },			     /* backwards */
		{ PID_A, MSG_VADDR_LIMIT - P, MSG_VADDR_LIMIT + P }, /* past the limit */
		{ PID_A, UINT64_MAX & ~4095ull, 0 },
	};
	uint32_t nr;

	assert_int_equal(exchange(f, send_contiguity, NULL, NULL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (pagestore_drop(&f->ps, bad[i].pid, bad[i].vaddr, bad[i].end) != -EPROTO)
			fail_msg("drop %zu was not refused", i);
	/* nothing was dropped, nothing was added for the stranger */
	assert_int_equal(lookup_n(f, PID_A, 0, 100, &nr), 0);
	assert_int_equal(nr, 4);
	for (size_t i = 0; i < f->ps.nr; i++)
		assert_int_not_equal(f->ps.p[i].pid, 4242);
	assert_int_equal(pagestore_drop(&f->ps, PID_A, MSG_VADDR_LIMIT - P, MSG_VADDR_LIMIT), 0);
}

/* Post-copy: lazy runs the store lacks are fetched later, not an error. */
static void test_assemble_remote(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	assert_int_equal(exchange(f, send_unfinished, NULL, NULL), 0);
	imgfd = make_images(f, true);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	f->ps.remote = true;
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	/* the runs stay lazy: the page server answers for them */
	assert_pagemap(imgfd, "pagemap-4194304.img", 2,
		       (struct pm_entry[]){ { BASE_B, 4, PE_LAZY } }, 1);
	assert_pagemap(imgfd, "pagemap-100.img", 1,
		       (struct pm_entry[]){ { BASE_A - 16 * P, 2, PE_PRESENT },
					    { BASE_A, 3, PE_LAZY },
					    { BASE_A + 3 * P, 2, PE_LAZY | PE_PRESENT },
					    { BASE_A + 5 * P, 10, PE_LAZY },
					    { BASE_A + 20 * P, 1, PE_LAZY } },
		       5);
	close(imgfd);
}

/* Post-copy with no pre-copy round at all: everything is lazy and remote. */
static void test_assemble_remote_no_rounds(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	imgfd = make_images(f, true);
	f->ps.remote = true;
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(imgfd);
}

/* --- shared memory objects (PageRun.shmid) -------------------------------- */

#define SHM_A 0x1234abcdull /* CRIU's shmid: the object's inode */
#define SHM_B 77ull
#define SHM_C 78ull
#define SHM_SIZE (16 * P)

/* An object's pages are tagged like a process's, with its shmid as the "pid". */
static int32_t shm_tag(uint64_t shmid)
{
	return (int32_t)(shmid & 0x7fffffff);
}

/*
 * A run of object @shmid: @nr pages at offset @off of round @round, those
 * whose bit is set in @zero all zeros, through pages_send (page frames
 * when the sender attached them). An object's first run says its @name
 * and @seals, which the store needs to prepare it (NULL: not said).
 */
/* The size the runs say (a test of an object not whole pages long sets it). */
static uint64_t shm_size = SHM_SIZE;

static void send_shm_run(struct sender *s, uint64_t shmid, uint64_t off, uint32_t nr,
			 unsigned int round, const char *name, uint32_t seals, uint64_t zero)
{
	Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
	Msg m = PHAUL__MSG__INIT;
	uint8_t *buf = calloc(nr, P);

	assert_non_null(buf);
	pr.pid = 0;
	pr.has_shmid = true;
	pr.shmid = shmid;
	pr.has_shm_size = true;
	pr.shm_size = shm_size;
	if (name) {
		pr.shm_name = (char *)name;
		pr.has_shm_seals = true;
		pr.shm_seals = seals;
	}
	pr.vaddr = off;
	pr.nr_pages = nr;
	msg_set_page_run(&m, &pr);
	send_msg(s, &m);
	for (uint32_t i = 0; i < nr; i++)
		if (!(zero & 1ull << i))
			fill_page(buf + i * P, shm_tag(shmid), off + i * P, round);
	if (s->err == 0)
		s->err = pages_send(s->c, buf, (size_t)nr * P);
	free(buf);
}

/* The store's entry of object @shmid. */
static struct ps_proc *shm_entry(struct fixture *f, uint64_t shmid)
{
	for (size_t i = 0; i < f->ps.nr; i++)
		if (f->ps.p[i].shmid == shmid)
			return &f->ps.p[i];
	fail_msg("the store holds no object %llu", (unsigned long long)shmid);
	return NULL;
}

/*
 * Object A: pages 0-7 in round 1, 2-3 again and 20 in round 2, nothing in
 * round 3; object B: 16-17 in round 1; A's process pages around them.
 */
static void send_shm_chain(struct sender *s)
{
	send_run(s, PID_A, BASE_A, 4, 1, 0);
	send_shm_run(s, SHM_A, 0, 8, 1, "a", 0, 0);
	send_shm_run(s, SHM_B, 16 * P, 2, 1, "/dev/zero", F_SEAL_SEAL, 0);
	send_round_end(s, 1);
	send_shm_run(s, SHM_A, 2 * P, 2, 2, NULL, 0, 0);
	send_run(s, PID_A, BASE_A + 2 * P, 1, 2, 0);
	send_shm_run(s, SHM_A, 20 * P, 1, 2, NULL, 0, 0);
	send_round_end(s, 2);
	send_run(s, PID_A, BASE_A + 3 * P, 1, 3, 0);
	send_round_end(s, 3);
}

/*
 * rounds/@k/pagemap-shmem-@shmid.img is @want, and the pages file its
 * pages_id names holds each present page as sent in round @k (0 in
 * @gone[i]: the i-th present page came again later; its space went back).
 */
static void assert_shm_round(struct fixture *f, unsigned int k, uint64_t shmid, uint32_t pages_id,
			     const struct pm_entry *want, size_t n, const unsigned int *rounds)
{
	struct pagemap pm = { 0 };
	char name[96];
	struct stat st;
	uint64_t off = 0;
	size_t at = 0;
	int dfd, pfd;

	snprintf(name, sizeof(name), "rounds/%u", k);
	dfd = openat(f->sessfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	snprintf(name, sizeof(name), "pagemap-shmem-%llu.img", (unsigned long long)shmid);
	assert_pagemap(dfd, name, pages_id, want, n);
	assert_int_equal(pagemap_read(dfd, name, &pm), 0);
	snprintf(name, sizeof(name), "pages-%u.img", pm.pages_id);
	pfd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	assert_true(pfd >= 0);
	assert_int_equal(fstat(pfd, &st), 0);
	assert_int_equal(st.st_size, pagemap_present_pages(&pm) * P);
	for (size_t i = 0; i < pm.nr; i++) {
		if (!(pm.e[i].flags & PE_PRESENT))
			continue;
		check_data(pfd, off, shm_tag(shmid), pm.e[i].vaddr, pm.e[i].nr_pages, rounds + at);
		at += pm.e[i].nr_pages;
		off += pm.e[i].nr_pages * P;
	}
	close(pfd);
	pagemap_free(&pm);
	close(dfd);
}

static void test_shm_chain(void **state)
{
	struct fixture *f = *state;
	const uint32_t id_a = PS_SHM_PAGES_ID, id_b = PS_SHM_PAGES_ID + 1;
	int nmsg = 0, fd;
	uint64_t off;
	uint32_t nr;

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_chain, NULL, &nmsg), 0);
	assert_int_equal(nmsg, 10);
	assert_int_equal(f->ps.pages, 4 + 8 + 2 + 2 + 1 + 1 + 1);
	assert_int_equal(f->ps.nr_shm, 2);
	assert_int_equal(shm_entry(f, SHM_A)->memfd, -1);
	assert_true(rangeset_covers(&shm_entry(f, SHM_A)->known, 0, 8 * P));
	assert_true(rangeset_covers(&shm_entry(f, SHM_A)->known, 20 * P, 21 * P));
	assert_int_equal(rangeset_bytes(&shm_entry(f, SHM_A)->known), 9 * P);

	/* round 1: A's 8 pages (2-3 were sent again: their space went back) */
	assert_shm_round(f, 1, SHM_A, id_a, (struct pm_entry[]){ { 0, 8, PE_PRESENT } }, 1,
			 (unsigned int[]){ 1, 1, 0, 0, 1, 1, 1, 1 });
	assert_shm_round(f, 1, SHM_B, id_b, (struct pm_entry[]){ { 16 * P, 2, PE_PRESENT } }, 1,
			 (unsigned int[]){ 1, 1 });
	/* round 2: 2-3 and 20 present, the rest in the parent */
	assert_shm_round(f, 2, SHM_A, id_a,
			 (struct pm_entry[]){ { 0, 2, PE_PARENT },
					      { 2 * P, 2, PE_PRESENT },
					      { 4 * P, 4, PE_PARENT },
					      { 20 * P, 1, PE_PRESENT } },
			 4, (unsigned int[]){ 2, 2, 2 });
	assert_shm_round(f, 2, SHM_B, id_b, (struct pm_entry[]){ { 16 * P, 2, PE_PARENT } }, 1,
			 NULL);
	/* round 3: all in the parent, the pages file empty */
	assert_shm_round(f, 3, SHM_A, id_a,
			 (struct pm_entry[]){ { 0, 8, PE_PARENT }, { 20 * P, 1, PE_PARENT } }, 2,
			 NULL);

	/* the process's pagemaps are its own */
	int dfd = openat(f->sessfd, "rounds", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(dfd >= 0);
	assert_pagemap(dfd, "1/pagemap-100.img", PID_A,
		       (struct pm_entry[]){ { BASE_A, 4, PE_PRESENT } }, 1);
	assert_pagemap(dfd, "2/pagemap-100.img", PID_A,
		       (struct pm_entry[]){ { BASE_A, 2, PE_PARENT },
					    { BASE_A + 2 * P, 1, PE_PRESENT },
					    { BASE_A + 3 * P, 1, PE_PARENT } },
		       3);
	assert_pagemap(dfd, "3/pagemap-100.img", PID_A,
		       (struct pm_entry[]){ { BASE_A, 3, PE_PARENT },
					    { BASE_A + 3 * P, 1, PE_PRESENT } },
		       2);
	/* and no process pagemap for an object */
	assert_int_equal(faccessat(dfd, "1/pagemap-1073741824.img", F_OK, 0), -1);
	assert_int_equal(faccessat(dfd, "1/pagemap-0.img", F_OK, 0), -1);
	close(dfd);

	/* lookups are by process: never an object's pages */
	assert_int_equal(pagestore_lookup(&f->ps, PID_A, BASE_A, 10, &fd, &off, &nr), 0);
	assert_int_equal(nr, 2);
	check_data(fd, off, PID_A, BASE_A, 2, (unsigned int[]){ 1, 1 });
	assert_int_equal(pagestore_lookup(&f->ps, PID_A, BASE_A + 2 * P, 1, &fd, &off, &nr), 0);
	check_data(fd, off, PID_A, BASE_A + 2 * P, 1, (unsigned int[]){ 2 });
	for (uint64_t o = 0; o < 24 * P; o += P) {
		assert_int_equal(pagestore_lookup(&f->ps, 0, o, 1, &fd, &off, &nr), -ENOENT);
		assert_int_equal(pagestore_lookup(&f->ps, (pid_t)id_a, o, 1, &fd, &off, &nr),
				 -ENOENT);
		assert_int_equal(pagestore_lookup(&f->ps, (pid_t)id_b, o, 1, &fd, &off, &nr),
				 -ENOENT);
		assert_int_equal(pagestore_lookup(&f->ps, PID_C, o, 1, &fd, &off, &nr), -ENOENT);
	}
	/* nor are an object's pages a process's to copy, drop or share */
	assert_int_equal(pagestore_drop(&f->ps, (pid_t)id_a, 0, P), -EPROTO);
	assert_int_equal(pagestore_share(&f->ps, (pid_t)id_a, 0, P), -EPROTO);
}

/* An object's runs are in order within a round, as a process's are. */
static void send_shm_backwards(struct sender *s)
{
	send_shm_run(s, SHM_A, 4 * P, 2, 1, NULL, 0, 0);
	send_shm_run(s, SHM_B, 0, 1, 1, NULL, 0, 0); /* another object: independent */
	send_run(s, PID_A, BASE_A, 1, 1, 0);
	send_shm_run(s, SHM_A, 5 * P, 1, 1, NULL, 0, 0);
}

static void test_shm_out_of_order(void **state)
{
	struct fixture *f = *state;
	int nmsg = 0;

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_backwards, NULL, &nmsg), -EPROTO);
	assert_int_equal(nmsg, 4);
	assert_int_equal(f->ps.pages, 4);
}

/* Objects' runs when the destination did not agree to take them. */
static void send_shm_one(struct sender *s)
{
	send_run(s, PID_A, BASE_A, 1, 1, 0);
	send_shm_run(s, SHM_A, 0, 1, 1, "buffer", 0, 0);
}

static void test_shm_not_agreed(void **state)
{
	struct fixture *f = *state;
	int nmsg = 0;

	f->ps.prepared = true; /* not without shmem */
	assert_int_equal(exchange(f, send_shm_one, NULL, &nmsg), -EPROTO);
	assert_int_equal(nmsg, 2);
	assert_int_equal(f->ps.pages, 1);
	assert_int_equal(f->ps.nr_shm, 0);
	for (size_t i = 0; i < f->ps.nr; i++)
		assert_int_equal(f->ps.p[i].shmid, 0);
}

/* MSG_SHMEM_MAX objects, one of them again, then one more. */
static void send_shm_many(struct sender *s)
{
	for (uint64_t i = 1; i <= MSG_SHMEM_MAX; i++)
		send_shm_run(s, 1000 + i, 0, 1, 1, NULL, 0, 0);
	send_shm_run(s, 1001, P, 1, 1, NULL, 0, 0); /* known: taken */
	send_shm_run(s, 1000 + MSG_SHMEM_MAX + 1, 0, 1, 1, NULL, 0, 0);
}

static void test_shm_too_many(void **state)
{
	struct fixture *f = *state;
	struct rlimit rl;
	int nmsg = 0;

	/* the store holds a file open for each object's round */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * MSG_SHMEM_MAX)
		skip();
	rl.rlim_cur = rl.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_many, NULL, &nmsg), -EPROTO);
	assert_int_equal(nmsg, MSG_SHMEM_MAX + 2);
	assert_int_equal(f->ps.nr_shm, MSG_SHMEM_MAX);
	assert_int_equal(f->ps.nr, MSG_SHMEM_MAX);
	assert_int_equal(f->ps.pages, MSG_SHMEM_MAX + 1);
}

/*
 * Prepared (CRIU_SHMEM_PREPARED): an object goes straight into a memfd
 * made as CRIU's restore would make it. Object A (16 pages, sealable):
 * 0-3 and 8-9 in round 1, 2-3 again in round 2, page 2 now zeros; object
 * C (only F_SEAL_SEAL) one page; object B, whose first run does not say
 * how to make it, goes to the rounds.
 */
static void send_shm_prepared(struct sender *s)
{
	pf_attach(s->c, NULL);
	send_shm_run(s, SHM_A, 0, 4, 1, "buffer", 0, 0);
	send_shm_run(s, SHM_B, 0, 1, 1, NULL, 0, 0);
	send_shm_run(s, SHM_A, 8 * P, 2, 1, NULL, 0, 0);
	send_shm_run(s, SHM_C, 0, 1, 1, "/dev/zero", F_SEAL_SEAL, 0);
	send_round_end(s, 1);
	send_shm_run(s, SHM_A, 2 * P, 2, 2, NULL, 0, 1); /* page 2 is zeros now */
	send_shm_run(s, SHM_A, 0, 1, 2, NULL, 0, 0);	 /* and in place: order does not matter */
	send_round_end(s, 2);
}

static int exchange_frames(struct fixture *f, void (*fn)(struct sender *s), const void *arg,
			   int *nmsg)
{
	int r;

	start_sender(f, fn, arg);
	assert_int_equal(pf_attach(f->c, NULL), 0);
	r = receive(f, nmsg);
	stop_sender(f);
	return r;
}

/* Page @i of @fd is object @shmid's of round @round (0: all zeros). */
static void assert_shm_page(int fd, uint64_t shmid, uint64_t i, unsigned int round)
{
	static const uint8_t zero[P];
	uint8_t buf[P];

	assert_int_equal(pread(fd, buf, P, (off_t)(i * P)), P);
	if (round)
		assert_page(buf, shm_tag(shmid), i * P, round);
	else if (memcmp(buf, zero, P))
		fail_msg("page %llu of the memfd is not zeros", (unsigned long long)i);
}

/* Memfd @fd is named @name (as /proc shows it) and has @seals. */
static void assert_memfd(int fd, const char *name, int seals)
{
	char path[64], link[300], want[300];
	ssize_t n;

	assert_true(fd >= 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	assert_true(n > 0);
	link[n] = '\0';
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	assert_string_equal(link, want);
	assert_int_equal(fcntl(fd, F_GET_SEALS), seals);
}

static void test_shm_prepared(void **state)
{
	struct fixture *f = *state;
	static const unsigned int want[16] = { 2, 1, 0, 2, 0, 0, 0, 0, 1, 1 };
	struct ps_proc *a;
	struct stat st;
	int nmsg = 0;

	f->ps.shmem = f->ps.prepared = true;
	f->budget = 8 * P; /* what round 1 brings; round 2 only sends again */
	assert_int_equal(exchange_frames(f, send_shm_prepared, NULL, &nmsg), 0);
	assert_int_equal(nmsg, 8);
	assert_int_equal(f->ps.pages, 11);
	a = shm_entry(f, SHM_A);
	assert_true(a->memfd >= 0);
	/* made as CRIU's restore would: its name, sealable or not */
	assert_memfd(a->memfd, "buffer", 0);
	assert_memfd(shm_entry(f, SHM_C)->memfd, "/dev/zero", F_SEAL_SEAL);
	assert_shm_page(shm_entry(f, SHM_C)->memfd, SHM_C, 0, 1);
	assert_int_equal(a->shm_size, SHM_SIZE);
	assert_int_equal(fstat(a->memfd, &st), 0);
	assert_int_equal(st.st_size, SHM_SIZE);
	for (uint64_t i = 0; i < 16; i++)
		assert_shm_page(a->memfd, SHM_A, i, want[i]);
	/* the zero page is a hole again, as never-sent pages are */
	assert_int_equal(lseek(a->memfd, 0, SEEK_HOLE), 2 * P);
	assert_int_equal(lseek(a->memfd, 2 * P, SEEK_DATA), 3 * P);
	assert_int_equal(lseek(a->memfd, 4 * P, SEEK_DATA), 8 * P);
	assert_int_equal(lseek(a->memfd, 8 * P, SEEK_HOLE), 10 * P);
	assert_true(rangeset_covers(&a->known, 0, 4 * P));
	assert_true(rangeset_covers(&a->known, 8 * P, 10 * P));
	assert_int_equal(rangeset_bytes(&a->known), 6 * P);
	/* the budget is the space the pages take: a page that came again
	 * in place takes none more */
	assert_int_equal(f->budget, 0);
	/* A is in no round; B in the rounds */
	assert_int_equal(shm_entry(f, SHM_B)->memfd, -1);
	for (unsigned int k = 1; k <= 2; k++) {
		char name[96];
		snprintf(name, sizeof(name), "rounds/%u/pagemap-shmem-%llu.img", k,
			 (unsigned long long)SHM_A);
		assert_int_equal(faccessat(f->sessfd, name, F_OK, 0), -1);
		assert_int_equal(errno, ENOENT);
		snprintf(name, sizeof(name), "rounds/%u/pages-%u.img", k, PS_SHM_PAGES_ID);
		assert_int_equal(faccessat(f->sessfd, name, F_OK, 0), -1);
	}
	assert_shm_round(f, 1, SHM_B, PS_SHM_PAGES_ID + 1,
			 (struct pm_entry[]){ { 0, 1, PE_PRESENT } }, 1, (unsigned int[]){ 1 });
	assert_shm_round(f, 2, SHM_B, PS_SHM_PAGES_ID + 1,
			 (struct pm_entry[]){ { 0, 1, PE_PARENT } }, 1, NULL);
	assert_int_equal(faccessat(f->sessfd, "rounds/1/pagemap-shmem-78.img", F_OK, 0), -1);
}

/* Raw data frames (no page frames) land in the memfd too. */
static void send_shm_raw(struct sender *s)
{
	send_shm_run(s, SHM_A, 3 * P, 3, 1, "buffer", 0, 0);
	send_round_end(s, 1);
}

static void test_shm_prepared_raw(void **state)
{
	struct fixture *f = *state;

	f->ps.shmem = f->ps.prepared = true;
	assert_int_equal(exchange(f, send_shm_raw, NULL, NULL), 0);
	for (uint64_t i = 0; i < 16; i++)
		assert_shm_page(shm_entry(f, SHM_A)->memfd, SHM_A, i, i >= 3 && i < 6);
}

/* New pages of a prepared object past the budget are refused unread. */
static void test_shm_prepared_budget(void **state)
{
	struct fixture *f = *state;
	int nmsg = 0;

	f->ps.shmem = f->ps.prepared = true;
	f->budget = 3 * P - 1;
	assert_int_equal(exchange(f, send_shm_raw, NULL, &nmsg), -ENOSPC);
	assert_int_equal(nmsg, 1);
	assert_int_equal(f->budget, 3 * P - 1);
	assert_int_equal(f->ps.pages, 0);
	assert_int_equal(rangeset_bytes(&shm_entry(f, SHM_A)->known), 0);
}

/* A run of a prepared object past its end. */
static void send_shm_past_end(struct sender *s)
{
	const uint64_t *v = s->arg;

	pf_attach(s->c, NULL);
	send_shm_run(s, SHM_A, 0, 1, 1, "buffer", 0, 0);
	send_shm_run(s, SHM_A, v[0] * P, (uint32_t)v[1], 1, NULL, 0, 0);
}

static void test_shm_prepared_past_end(void **state)
{
	struct fixture *f = *state;
	static const uint64_t cases[][2] = { { 15, 2 }, { 16, 1 }, { 100, 3 } };

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int nmsg = 0;
		pagestore_fini(&f->ps);
		assert_int_equal(rm_rf_at(f->sessfd), 0);
		assert_int_equal(pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)),
				 0);
		f->ps.shmem = f->ps.prepared = true;
		assert_int_equal(exchange_frames(f, send_shm_past_end, cases[i], &nmsg), -EPROTO);
		assert_int_equal(nmsg, 2);
		assert_int_equal(f->ps.pages, 1);
		struct stat st;
		assert_int_equal(fstat(shm_entry(f, SHM_A)->memfd, &st), 0);
		assert_int_equal(st.st_size, SHM_SIZE);
	}
	/* the last page is fine */
	pagestore_fini(&f->ps);
	assert_int_equal(rm_rf_at(f->sessfd), 0);
	assert_int_equal(pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)), 0);
	f->ps.shmem = f->ps.prepared = true;
	assert_int_equal(exchange_frames(f, send_shm_past_end, (uint64_t[]){ 15, 1 }, NULL), 0);
	assert_shm_page(shm_entry(f, SHM_A)->memfd, SHM_A, 15, 1);
}

/* An object of 6 bytes (zdtm's memfd02): its one page comes whole. */
static void test_shm_prepared_short(void **state)
{
	struct fixture *f = *state;

	f->ps.shmem = f->ps.prepared = true;
	shm_size = 6;
	assert_int_equal(exchange_frames(f, send_shm_past_end, (uint64_t[]){ 0, 1 }, NULL), 0);
	assert_shm_page(shm_entry(f, SHM_A)->memfd, SHM_A, 0, 1);
	pagestore_fini(&f->ps);
	assert_int_equal(rm_rf_at(f->sessfd), 0);
	assert_int_equal(pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)), 0);
	f->ps.shmem = f->ps.prepared = true;
	/* but not a second one */
	assert_int_equal(exchange_frames(f, send_shm_past_end, (uint64_t[]){ 1, 1 }, NULL),
			 -EPROTO);
	shm_size = SHM_SIZE;
}

/* --- pagestore_assemble with shared memory -------------------------------- */

/* img/ with CRIU's pagemap-shmem-@shmid.img of @n entries. */
static int shm_images(struct fixture *f, uint64_t shmid, const struct pm_entry *e, size_t n)
{
	struct pagemap pm = { .pages_id = 9 };
	char name[96];
	int imgfd;

	if (mkdirat(f->sessfd, "img", 0700) < 0)
		assert_int_equal(errno, EEXIST);
	imgfd = openat(f->sessfd, "img", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(imgfd >= 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(pagemap_add(&pm, e[i].vaddr, e[i].nr_pages, e[i].flags), 0);
	snprintf(name, sizeof(name), "pagemap-shmem-%llu.img", (unsigned long long)shmid);
	assert_int_equal(pagemap_write(imgfd, name, &pm), 0);
	pagemap_free(&pm);
	return imgfd;
}

static void test_assemble_shm_chain(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_chain, NULL, NULL), 0);
	/* CRIU_SHMEM_IN_PARENT: every page with data in the parent; page 5
	 * has none at the source any more */
	imgfd = shm_images(f, SHM_A,
			   (struct pm_entry[]){ { 0, 5, PE_PARENT },
						{ 6 * P, 2, PE_PARENT },
						{ 20 * P, 1, PE_PARENT } },
			   3);
	/* lazy: only the object asks for the chain */
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_parent(imgfd, "../rounds/3");
	assert_pagemap(imgfd, "parent/pagemap-shmem-305441741.img", PS_SHM_PAGES_ID,
		       (struct pm_entry[]){ { 0, 8, PE_PARENT }, { 20 * P, 1, PE_PARENT } }, 2);
	close(imgfd);
}

/* No object pages in the parent: nothing is linked for them. */
static void test_assemble_shm_unused(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_chain, NULL, NULL), 0);
	/* a CRIU without patch 0016 dumped the object itself */
	imgfd = shm_images(f, SHM_A, (struct pm_entry[]){ { 0, 8, PE_PRESENT } }, 1);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(imgfd);
}

/* Assembling refuses, lazy or not, and links nothing; @imgfd is closed. */
static void assert_assemble_nodata(struct fixture *f, int imgfd)
{
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, false), -ENODATA);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(imgfd);
}

static void test_assemble_shm_missing(void **state)
{
	struct fixture *f = *state;
	static const struct pm_entry cases[][2] = {
		{ { 0, 8, PE_PARENT }, { 8 * P, 1, PE_PARENT } },   /* just past what came */
		{ { 0, 8, PE_PARENT }, { 19 * P, 2, PE_PARENT } },  /* around page 20 */
		{ { 0, 9, PE_PARENT }, { 20 * P, 1, PE_PARENT } },  /* overlapping the end */
		{ { 0, 8, PE_PRESENT }, { 30 * P, 1, PE_PARENT } }, /* after present ones */
	};

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_chain, NULL, NULL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_assemble_nodata(f, shm_images(f, SHM_A, cases[i], 2));
	}
}

/* Pages of an unfinished round are not in the chain: they do not count. */
static void send_shm_unfinished(struct sender *s)
{
	send_shm_run(s, SHM_A, 0, 2, 1, NULL, 0, 0);
	send_round_end(s, 1);
	send_shm_run(s, SHM_A, 4 * P, 2, 2, NULL, 0, 0);
}

static void test_assemble_shm_unfinished(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_unfinished, NULL, NULL), 0);
	imgfd = shm_images(f, SHM_A,
			   (struct pm_entry[]){ { 0, 2, PE_PARENT }, { 4 * P, 2, PE_PARENT } }, 2);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	close(imgfd);
}

/* The "shmid pid fd" lines of pagestore_write_prepared(); their number. */
static int read_prepared(struct fixture *f, uint64_t *shmid, int *pid, int *fd, size_t max)
{
	char path[1100];
	unsigned long long id;
	int n = 0, p, d, r;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/shmem-prepared", f->dir);
	r = pagestore_write_prepared(&f->ps, path);
	assert_true(r >= 0);
	fp = fopen(path, "re");
	assert_non_null(fp);
	while (fscanf(fp, "%llu %d %d\n", &id, &p, &d) == 3) {
		assert_true((size_t)n < max);
		shmid[n] = id;
		pid[n] = p;
		fd[n] = d;
		n++;
	}
	assert_true(feof(fp));
	fclose(fp);
	assert_int_equal(n, r);
	return n;
}

/*
 * Prepared, assembled: where CRIU found no data (page 1, the never-sent
 * pages and page 9 the source punched) the memfd has a hole now, whatever
 * came before; the memfd is listed for CRIU; B stays in the chain.
 */
static void test_assemble_shm_prepared(void **state)
{
	struct fixture *f = *state;
	static const unsigned int want[16] = { 2, 0, 0, 2, 0, 0, 0, 0, 1 };
	uint64_t shmid[4];
	int pid[4], fd[4], imgfd, a;
	struct stat st;

	f->ps.shmem = f->ps.prepared = true;
	assert_int_equal(exchange_frames(f, send_shm_prepared, NULL, NULL), 0);
	imgfd = shm_images(f, SHM_A,
			   (struct pm_entry[]){ { 0, 1, PE_PARENT },
						{ 3 * P, 1, PE_PARENT },
						{ 8 * P, 1, PE_PARENT } },
			   3);
	close(imgfd);
	imgfd = shm_images(f, SHM_B, (struct pm_entry[]){ { 0, 1, PE_PARENT } }, 1);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	/* B asks for the chain */
	assert_parent(imgfd, "../rounds/2");
	close(imgfd);
	a = shm_entry(f, SHM_A)->memfd;
	assert_true(a >= 0);
	for (uint64_t i = 0; i < 16; i++)
		assert_shm_page(a, SHM_A, i, want[i]);
	assert_int_equal(lseek(a, 0, SEEK_HOLE), P);
	assert_int_equal(lseek(a, P, SEEK_DATA), 3 * P);
	assert_int_equal(lseek(a, 4 * P, SEEK_DATA), 8 * P);
	assert_int_equal(lseek(a, 8 * P, SEEK_HOLE), 9 * P);
	assert_int_equal(lseek(a, 9 * P, SEEK_DATA), -1);
	assert_int_equal(errno, ENXIO);
	assert_int_equal(fstat(a, &st), 0);
	assert_int_equal(st.st_size, SHM_SIZE);
	/* only A is CRIU's to map: its fd, in this process */
	assert_int_equal(read_prepared(f, shmid, pid, fd, 4), 1);
	assert_int_equal(shmid[0], SHM_A);
	assert_int_equal(pid[0], getpid());
	assert_int_equal(fd[0], a);
}

/* Prepared, without the chain: nothing to link. */
static void test_assemble_shm_prepared_only(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.shmem = f->ps.prepared = true;
	assert_int_equal(exchange(f, send_shm_raw, NULL, NULL), 0);
	imgfd = shm_images(f, SHM_A, (struct pm_entry[]){ { 3 * P, 3, PE_PARENT } }, 1);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_int_equal(faccessat(imgfd, "parent", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	close(imgfd);
	for (uint64_t i = 0; i < 16; i++)
		assert_shm_page(shm_entry(f, SHM_A)->memfd, SHM_A, i, i >= 3 && i < 6);
	/* a page the memfd never got */
	imgfd = shm_images(f, SHM_A,
			   (struct pm_entry[]){ { 3 * P, 3, PE_PARENT }, { 7 * P, 1, PE_PARENT } },
			   2);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), -ENODATA);
	close(imgfd);
}

/*
 * A CRIU without patch 0016 dumped the object itself (PE_PRESENT), or did
 * not dump it: the memfd is not CRIU's to map, and is closed.
 */
static void test_assemble_shm_prepared_dropped(void **state)
{
	struct fixture *f = *state;
	uint64_t shmid[4];
	int pid[4], fd[4], imgfd;

	f->ps.shmem = f->ps.prepared = true;
	assert_int_equal(exchange_frames(f, send_shm_prepared, NULL, NULL), 0);
	imgfd = shm_images(f, SHM_A,
			   (struct pm_entry[]){ { 0, 4, PE_PRESENT }, { 8 * P, 2, PE_PRESENT } },
			   2);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_int_equal(shm_entry(f, SHM_A)->memfd, -1);
	assert_int_equal(read_prepared(f, shmid, pid, fd, 4), 0);
	close(imgfd);

	/* not in the dump at all */
	pagestore_fini(&f->ps);
	assert_int_equal(rm_rf_at(f->sessfd), 0);
	assert_int_equal(pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)), 0);
	f->ps.shmem = f->ps.prepared = true;
	assert_int_equal(exchange_frames(f, send_shm_prepared, NULL, NULL), 0);
	imgfd = shm_images(f, SHM_B, (struct pm_entry[]){ { 0, 1, PE_PARENT } }, 1);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_int_equal(shm_entry(f, SHM_A)->memfd, -1);
	assert_int_equal(read_prepared(f, shmid, pid, fd, 4), 0);
	close(imgfd);
}

/*
 * Some pages dumped, some left in the parent by CRIU: the restore would
 * take the dumped ones and look for the rest in a chain that lacks them
 * (they are in the memfd, which it then does not map).
 */
static void test_assemble_shm_prepared_mixed(void **state)
{
	struct fixture *f = *state;

	f->ps.shmem = f->ps.prepared = true;
	assert_int_equal(exchange_frames(f, send_shm_prepared, NULL, NULL), 0);
	assert_assemble_nodata(
		f, shm_images(f, SHM_A,
			      (struct pm_entry[]){ { 0, 4, PE_PRESENT }, { 8 * P, 2, PE_PARENT } },
			      2));
	/* the memfd is kept: nothing was decided */
	assert_true(shm_entry(f, SHM_A)->memfd >= 0);
}

/*
 * CRIU's pagemap of an object the store never heard of: pages in the
 * parent are missing; pages it dumped itself are fine.
 */
static void test_assemble_shm_unknown(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_shm_chain, NULL, NULL), 0);
	imgfd = shm_images(f, SHM_A, (struct pm_entry[]){ { 0, 8, PE_PARENT } }, 1);
	close(imgfd);
	imgfd = shm_images(f, 4242, (struct pm_entry[]){ { 0, 2, PE_PRESENT } }, 1);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, true), 0);
	assert_int_equal(unlinkat(imgfd, "parent", 0), 0);
	close(imgfd);
	assert_assemble_nodata(
		f, shm_images(f, 4242,
			      (struct pm_entry[]){ { 0, 2, PE_PRESENT }, { 2 * P, 1, PE_PARENT } },
			      2));
}

/* An object's pages left in the parent when no object ever came. */
static void test_assemble_shm_none_sent(void **state)
{
	struct fixture *f = *state;
	int imgfd;

	f->ps.shmem = true;
	assert_int_equal(exchange(f, send_for_assemble, NULL, NULL), 0);
	imgfd = shm_images(f, SHM_A, (struct pm_entry[]){ { 0, 1, PE_PARENT } }, 1);
	assert_int_equal(pagestore_assemble(&f->ps, imgfd, false), -ENODATA);
	close(imgfd);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_rounds_and_lookup),
		T(test_contiguity),
		T(test_late_process_and_empty_round),
		T(test_pid_not_allowed),
		T(test_pid_added),
		T(test_out_of_order),
		T(test_adjacent_runs),
		T(test_bad_data_frames),
		T(test_budget),
		T(test_zero_pages),
		T(test_run_beyond_address_limit),
		T(test_assemble_lazy),
		T(test_assemble_chain),
		T(test_assemble_missing),
		T(test_assemble_unknown_process),
		T(test_assemble_no_rounds),
		T(test_assemble_bad_pagemap),
		T(test_drop),
		T(test_drop_bad_ranges),
		T(test_assemble_remote),
		T(test_assemble_shared),
		T(test_assemble_shared_missing),
		T(test_assemble_shared_stale),
		T(test_share_bad),
		T(test_copy_from),
		T(test_copy_refused),
		T(test_assemble_remote_no_rounds),
		T(test_shm_chain),
		T(test_shm_out_of_order),
		T(test_shm_not_agreed),
		T(test_shm_too_many),
		T(test_shm_prepared),
		T(test_shm_prepared_raw),
		T(test_shm_prepared_budget),
		T(test_shm_prepared_past_end),
		T(test_shm_prepared_short),
		T(test_assemble_shm_chain),
		T(test_assemble_shm_unused),
		T(test_assemble_shm_missing),
		T(test_assemble_shm_unfinished),
		T(test_assemble_shm_prepared),
		T(test_assemble_shm_prepared_only),
		T(test_assemble_shm_prepared_dropped),
		T(test_assemble_shm_prepared_mixed),
		T(test_assemble_shm_unknown),
		T(test_assemble_shm_none_sent),
	};
#undef T

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("pagestore", tests, NULL, NULL);
}
