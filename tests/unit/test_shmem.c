/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for source/shmem: which lines of /proc/PID/maps are shared
 * memory objects that the pre-copy moves (shm_maps_line), and, on this
 * test's own process, that a scan finds its objects, that a pass reports
 * exactly the pages with data that differ from what was sent, and that
 * what shm_send puts on the wire is what the store expects: PageRuns of
 * the object (pid 0, shmid, size; the first one its name and seals) with
 * the pages' data.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/pageframe.h"
#include "proto/wire.h"
#include "source/shmem.h"

#define P PAGE

/* --- shm_maps_line ----------------------------------------------------------- */

struct taken {
	const char *line;
	uint64_t start, end, ino;
	const char *name; /* as CRIU names the object */
};

static void test_maps_line(void **state)
{
	static const struct taken taken[] = {
		/* shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS) */
		{ "7f1234560000-7f1234570000 rw-s 00000000 00:01 3151                       "
		  "/dev/zero (deleted)\n",
		  0x7f1234560000, 0x7f1234570000, 3151, "/dev/zero" },
		/* read-only, at an offset, no newline */
		{ "7f0000000000-7f0000001000 r--s 00002000 00:01 9 /dev/zero (deleted)",
		  0x7f0000000000, 0x7f0000001000, 9, "/dev/zero" },
		/* memfds, whatever their names */
		{ "7fab00000000-7fab00400000 rw-s 00000000 00:01 2049                       "
		  "/memfd:buffer (deleted)\n",
		  0x7fab00000000, 0x7fab00400000, 2049, "buffer" },
		{ "1000-3000 rw-s 00000000 00:01 18446744073709551615 /memfd:a name with spaces "
		  "and more than sixty-four characters in all of it (deleted)\n",
		  0x1000, 0x3000, UINT64_MAX,
		  "a name with spaces and more than sixty-four characters in all of it" },
		{ "1000-2000 rw-s 00000000 00:01 5 /memfd:dev/zero (deleted)\n", 0x1000, 0x2000, 5,
		  "dev/zero" },
		{ "1000-2000 rw-s 00000000 00:01 5 /memfd:x (deleted) (deleted)\n", 0x1000, 0x2000,
		  5, "x (deleted)" },
		{ "1000-2000 rw-s 00000000 00:01 5 /memfd: (deleted)\n", 0x1000, 0x2000, 5, "" },
	};
	static const char *const refused[] = {
		/* private mappings of the same: CRIU dumps them with the process */
		"7f1234560000-7f1234570000 rw-p 00000000 00:01 3151 /dev/zero (deleted)\n",
		"7fab00000000-7fab00400000 rw-p 00000000 00:01 2049 /memfd:buffer (deleted)\n",
		/* System V shared memory: left to CRIU */
		"7f5e00000000-7f5e00100000 rw-s 00000000 00:01 32768 /SYSV00000000 (deleted)\n",
		"7f5e00000000-7f5e00100000 rw-s 00000000 00:01 32769 /SYSV0000162e (deleted)\n",
		/* files mapped shared, existing or not */
		"7f5e00000000-7f5e00001000 rw-s 00000000 fe:01 131090 /var/tmp/data\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 fe:01 131090 /tmp/x (deleted)\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:05 6 /dev/zero\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:01 6 /dev/zeros (deleted)\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:01 6 memfd:x (deleted)\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:01 6 /memfd:x\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:01 6 /memfd:x (deleted) trailing\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:01 6 /dev/zero (deleted) \n",
		/* inode 0: nothing to name the object by */
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:00 0 /dev/zero (deleted)\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:00 0 /memfd:x (deleted)\n",
		/* anonymous, heap, stack, vdso */
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:00 0 \n",
		"55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0              [heap]\n",
		"7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]\n",
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]\n",
		/* malformed */
		"",
		"\n",
		"garbage\n",
		/* ends before it starts; empty */
		"7f5e00001000-7f5e00000000 rw-s 00000000 00:01 6 /dev/zero (deleted)\n",
		"7f5e00000000-7f5e00000000 rw-s 00000000 00:01 6 /dev/zero (deleted)\n",
		"7f5e00000000-7f5e00001000 rw-sx 00000000 00:01 6 /dev/zero (deleted)\n",
		"7f5e00000000-7f5e00001000 rws 00000000 00:01 6 /dev/zero (deleted)\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:01 /dev/zero (deleted)\n",
		"7f5e00000000-7f5e00001000 rw-s 00000000 00:01\n",
		"7f5e00000000 rw-s 00000000 00:01 6 /dev/zero (deleted)\n",
	};
	uint64_t start, end, ino;
	char name[256];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(taken); i++) {
		const struct taken *c = &taken[i];
		size_t n = strlen(c->name);
		start = end = ino = 1;
		memset(name, 'z', sizeof(name));
		if (!shm_maps_line(c->line, &start, &end, &ino, name, sizeof(name)))
			fail_msg("not taken: %s", c->line);
		assert_int_equal(start, c->start);
		assert_int_equal(end, c->end);
		assert_int_equal(ino, c->ino);
		assert_string_equal(name, c->name);
		/* a name that does not fit (with its NUL) is not cut: refused */
		memset(name, 'z', sizeof(name));
		assert_false(shm_maps_line(c->line, &start, &end, &ino, name, n));
		assert_int_equal(name[0], 'z');
		assert_true(shm_maps_line(c->line, &start, &end, &ino, name, n + 1));
		assert_string_equal(name, c->name);
	}
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (shm_maps_line(refused[i], &start, &end, &ino, name, sizeof(name)))
			fail_msg("not refused: %s", refused[i]);
}

/* --- scan, collect, send on this process ------------------------------------ */

#define ANON_PAGES 96
#define MFD_PAGES 8

struct fixture {
	uint8_t *anon; /* MAP_SHARED | MAP_ANONYMOUS */
	int mfd;       /* a memfd, mapped shared at @mem */
	uint8_t *mem;
	uint64_t anon_ino, mfd_ino;
	bool anon_told, mfd_told; /* a run said the object's name and seals */
	struct shm_set set;
	struct conn *tx, *rx;
	uint8_t *buf;
};

/* The inode of the mapping at @addr (CRIU's shmid), through map_files. */
static uint64_t map_ino(void *addr, size_t len)
{
	char path[96];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)addr,
		 (unsigned long)addr + len);
	if (stat(path, &st) < 0)
		return 0;
	return (uint64_t)st.st_ino;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int sv[2];

	if (!f)
		return -1;
	*state = f;
	f->anon = mmap(NULL, ANON_PAGES * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		       0);
	f->mfd = memfd_create("test-shmem", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (f->anon == MAP_FAILED || f->mfd < 0 || ftruncate(f->mfd, MFD_PAGES * P) < 0)
		return -1;
	f->mem = mmap(NULL, MFD_PAGES * P, PROT_READ | PROT_WRITE, MAP_SHARED, f->mfd, 0);
	if (f->mem == MAP_FAILED)
		return -1;
	f->anon_ino = map_ino(f->anon, ANON_PAGES * P);
	f->mfd_ino = map_ino(f->mem, MFD_PAGES * P);
	f->buf = malloc(FRAME_DATA_MAX);
	if (!f->buf || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	/* a pass fits the socket's buffer: no second thread needed */
	if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &(int){ 4 << 20 }, sizeof(int)) < 0 ||
	    conn_from_fd(sv[0], &f->tx) < 0 || conn_from_fd(sv[1], &f->rx) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	shm_free(&f->set);
	conn_free(f->tx);
	conn_free(f->rx);
	munmap(f->anon, ANON_PAGES * P);
	munmap(f->mem, MFD_PAGES * P);
	close(f->mfd);
	free(f->buf);
	free(f);
	return 0;
}

/* The page contents: @tag and the page's index. */
static void fill(uint8_t *p, unsigned int tag, uint64_t i)
{
	for (size_t b = 0; b < P; b += 8) {
		uint64_t x = (uint64_t)tag << 48 ^ i << 32 ^ b ^ 0x5a5a5a5a;
		memcpy(p + b, &x, 8);
	}
}

static struct shm_obj *obj(struct fixture *f, uint64_t ino)
{
	for (size_t i = 0; i < f->set.nr; i++)
		if (f->set.o[i].ino == ino)
			return &f->set.o[i];
	fail_msg("the scan did not find object %llu", (unsigned long long)ino);
	return NULL;
}

/* Object @ino's pending set is exactly @want (n ranges of pages). */
static void assert_pending(struct fixture *f, uint64_t ino, const struct range *want, size_t n)
{
	const struct rangeset *s = &obj(f, ino)->pending;

	assert_int_equal(s->nr, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(s->r[i].start, want[i].start * P);
		assert_int_equal(s->r[i].end, want[i].end * P);
	}
}

/* A pass: how many pages differ from what was sent. */
static uint64_t collect(struct fixture *f)
{
	uint64_t dirty = 99;

	assert_int_equal(shm_collect(&f->set, &dirty), 0);
	return dirty;
}

/*
 * Receive what shm_send sent: @n pages in all, each checked against the
 * object's memory (@base of @ino), runs of one object at a time.
 */
struct got {
	uint64_t ino, off;
	uint32_t nr;
};

/* The @len bytes received at offset @at of @pr's object are its own. */
static void expect_data(struct fixture *f, const Phaul__PageRun *pr, uint64_t at, uint32_t len)
{
	bool anon = pr->shmid == f->anon_ino;
	uint64_t size = anon ? ANON_PAGES * P : (uint64_t)lseek(f->mfd, 0, SEEK_END);
	uint64_t have = at < size ? MIN(size - at, len) : 0;
	uint8_t *want = calloc(1, len);

	assert_non_null(want);
	assert_int_equal(pr->shm_size, size);
	if (anon)
		memcpy(want, f->anon + at, have);
	else
		assert_int_equal(pread(f->mfd, want, have, (off_t)at), (ssize_t)have);
	/* past the object's end (its last page's tail): zeros */
	assert_memory_equal(f->buf, want, len);
	free(want);
}

/*
 * An object's first run says its name and seals, as CRIU's restore names
 * and seals it (a sealable memfd without seals: 0; shared anonymous
 * memory: F_SEAL_SEAL); later runs do not.
 */
static void expect_told(struct fixture *f, const Phaul__PageRun *pr)
{
	bool anon = pr->shmid == f->anon_ino, *told = anon ? &f->anon_told : &f->mfd_told;

	if (*told) {
		assert_null(pr->shm_name);
		assert_false(pr->has_shm_seals);
		return;
	}
	assert_non_null(pr->shm_name);
	assert_string_equal(pr->shm_name, anon ? "/dev/zero" : "test-shmem");
	assert_true(pr->has_shm_seals);
	assert_int_equal(pr->shm_seals, anon ? F_SEAL_SEAL : 0);
	*told = true;
}

static size_t receive(struct fixture *f, struct got *g, size_t max, uint64_t pages)
{
	size_t n = 0;

	while (pages > 0) {
		Msg *m = NULL;
		uint32_t len;
		uint64_t zero;
		const Phaul__PageRun *pr;

		assert_int_equal(msg_recv(f->rx, &m), 0);
		assert_int_equal(m->body_case, PHAUL__MSG__BODY_PAGE_RUN);
		pr = m->page_run;
		assert_int_equal(pr->pid, 0);
		assert_true(pr->has_shmid && pr->has_shm_size);
		assert_true(pr->shmid == f->anon_ino || pr->shmid == f->mfd_ino);
		expect_told(f, pr);
		assert_int_equal(pr->vaddr % P, 0);
		assert_true(pr->nr_pages > 0 && pr->nr_pages <= pages);
		assert_true(n < max);
		g[n++] = (struct got){ pr->shmid, pr->vaddr, pr->nr_pages };
		for (uint32_t done = 0; done < pr->nr_pages * P; done += len) {
			assert_int_equal(pages_recv(f->rx, f->buf, FRAME_DATA_MAX, &len, &zero), 0);
			assert_int_equal(zero, 0);
			expect_data(f, pr, pr->vaddr + done, len);
		}
		pages -= pr->nr_pages;
		msg_free(m);
	}
	return n;
}

static uint64_t send_all(struct fixture *f)
{
	uint64_t pages = 0;

	assert_int_equal(shm_send(&f->set, f->tx, f->buf, &pages), 0);
	for (size_t i = 0; i < f->set.nr; i++)
		assert_int_equal(f->set.o[i].pending.nr, 0);
	return pages;
}

/* map_files needs CAP_SYS_ADMIN: without it, nothing to test here. */
static void need_map_files(struct fixture *f)
{
	if (!f->anon_ino || !f->mfd_ino) {
		print_message("no /proc/self/map_files here (CAP_SYS_ADMIN): skipped\n");
		skip();
	}
}

static void scan(struct fixture *f)
{
	pid_t self = getpid();
	size_t before;

	assert_int_equal(shm_scan(&f->set, &self, 1), 0);
	/* ours, and none other (cmocka, libc and ASan map none) */
	assert_int_equal(f->set.nr, 2);
	assert_string_equal(obj(f, f->anon_ino)->name, "/dev/zero");
	assert_string_equal(obj(f, f->mfd_ino)->name, "test-shmem");
	/* again: nothing new (an object is found once, by inode) */
	before = f->set.nr;
	assert_int_equal(shm_scan(&f->set, &self, 1), 0);
	assert_int_equal(f->set.nr, before);
}

static void test_scan(void **state)
{
	struct fixture *f = *state;
	pid_t none = 0x7ffffff0, self = getpid();
	void *again;
	size_t before;

	need_map_files(f);
	/* a process that is gone: nothing, no error */
	assert_int_equal(shm_scan(&f->set, &none, 1), 0);
	assert_int_equal(f->set.nr, 0);
	scan(f);
	/* the memfd mapped once more is one object still */
	again = mmap(NULL, 2 * P, PROT_READ, MAP_SHARED, f->mfd, 2 * P);
	assert_true(again != MAP_FAILED);
	before = f->set.nr;
	assert_int_equal(shm_scan(&f->set, &self, 1), 0);
	assert_int_equal(f->set.nr, before);
	munmap(again, 2 * P);
	/* the list CRIU_SHMEM_IN_PARENT reads: every object's inode */
	char path[] = "/tmp/phaul-test-shmem.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(shm_write_list(&f->set, path), 0);
	FILE *fp = fopen(path, "re");
	unsigned long long ino;
	size_t n = 0;
	bool anon = false, mfd = false;
	assert_non_null(fp);
	while (fscanf(fp, "%llu\n", &ino) == 1) {
		anon |= ino == f->anon_ino;
		mfd |= ino == f->mfd_ino;
		n++;
	}
	assert_true(feof(fp));
	fclose(fp);
	unlink(path);
	assert_int_equal(n, f->set.nr);
	assert_true(anon && mfd);
}

/*
 * The first pass reports every page with data, none without; once sent,
 * none; then exactly what was written since, not what was written with
 * the same bytes, not what was punched.
 */
static void test_collect_send(void **state)
{
	struct fixture *f = *state;
	struct got g[16];
	uint64_t pages;

	need_map_files(f);
	fill(f->anon, 1, 0);
	fill(f->anon + P, 1, 1);
	fill(f->anon + 5 * P, 1, 5);
	fill(f->anon + 15 * P, 1, 15);
	fill(f->mem + 2 * P, 2, 2);
	fill(f->mem + 3 * P, 2, 3);
	scan(f);
	assert_int_equal(collect(f), 6);
	assert_pending(f, f->anon_ino, (struct range[]){ { 0, 2 }, { 5, 6 }, { 15, 16 } }, 3);
	assert_pending(f, f->mfd_ino, (struct range[]){ { 2, 4 } }, 1);
	pages = send_all(f);
	assert_int_equal(pages, 6);
	assert_int_equal(receive(f, g, ARRAY_SIZE(g), pages), 4);

	/* all sent: nothing differs */
	assert_int_equal(collect(f), 0);
	assert_int_equal(send_all(f), 0);

	/* one page written */
	f->anon[5 * P + 100] ^= 0xff;
	assert_int_equal(collect(f), 1);
	assert_pending(f, f->anon_ino, (struct range[]){ { 5, 6 } }, 1);
	assert_pending(f, f->mfd_ino, NULL, 0);
	assert_int_equal(send_all(f), 1);
	assert_int_equal(receive(f, g, ARRAY_SIZE(g), 1), 1);
	assert_int_equal(g[0].ino, f->anon_ino);
	assert_int_equal(g[0].off, 5 * P);
	assert_int_equal(g[0].nr, 1);

	/* written with what it held: not sent again */
	fill(f->anon + P, 1, 1);
	fill(f->mem + 3 * P, 2, 3);
	assert_int_equal(collect(f), 0);

	/* a page punched out of the memfd: no data, nothing to send (CRIU
	 * finds none there either); a page written where there was none */
	assert_int_equal(fallocate(f->mfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2 * P, P),
			 0);
	fill(f->mem + 7 * P, 3, 7);
	assert_int_equal(collect(f), 1);
	assert_pending(f, f->mfd_ino, (struct range[]){ { 7, 8 } }, 1);
	assert_pending(f, f->anon_ino, NULL, 0);
	assert_int_equal(send_all(f), 1);
	assert_int_equal(receive(f, g, ARRAY_SIZE(g), 1), 1);
	assert_int_equal(g[0].ino, f->mfd_ino);
	assert_int_equal(g[0].off, 7 * P);

	/* the punched page written again with its old bytes: the store holds
	 * them, nothing to send */
	fill(f->mem + 2 * P, 2, 2);
	assert_int_equal(collect(f), 0);
	/* written to zeros: data still, and different */
	memset(f->mem + 3 * P, 0, P);
	assert_int_equal(collect(f), 1);
	assert_pending(f, f->mfd_ino, (struct range[]){ { 3, 4 } }, 1);
}

/* Runs longer than a PageRun may be: cut at MSG_RUN_PAGES_MAX pages. */
static void test_long_runs(void **state)
{
	struct fixture *f = *state;
	uint32_t total = 0, at = 2;
	struct got g[8];
	size_t n;

	need_map_files(f);
	for (uint64_t i = 2; i < 82; i++)
		fill(f->anon + i * P, 5, i);
	scan(f);
	assert_int_equal(collect(f), 80);
	assert_pending(f, f->anon_ino, (struct range[]){ { 2, 82 } }, 1);
	assert_int_equal(send_all(f), 80);
	n = receive(f, g, ARRAY_SIZE(g), 80);
	assert_true(n >= 2);
	for (size_t i = 0; i < n; i++) {
		assert_true(g[i].nr <= MSG_RUN_PAGES_MAX);
		assert_int_equal(g[i].off, at * P); /* in order, no gap */
		at += g[i].nr;
		total += g[i].nr;
	}
	assert_int_equal(total, 80);
	assert_int_equal(collect(f), 0);
}

/* A memfd that grows, with a last page not whole, then shrinks. */
static void test_resize(void **state)
{
	struct fixture *f = *state;
	uint8_t page[P];
	struct got g[4];
	uint64_t size = 10 * P + 100;

	need_map_files(f);
	scan(f);
	collect(f);
	send_all(f);
	/* grown: pages past the mapping, written through the fd */
	assert_int_equal(ftruncate(f->mfd, (off_t)size), 0);
	memset(page, 0x77, sizeof(page));
	assert_int_equal(pwrite(f->mfd, page, 100, 10 * P), 100);
	assert_int_equal(pwrite(f->mfd, page, P, 9 * P), P);
	assert_int_equal(collect(f), 2);
	assert_int_equal(obj(f, f->mfd_ino)->size, size);
	assert_int_equal(obj(f, f->mfd_ino)->pages, 11);
	assert_pending(f, f->mfd_ino, (struct range[]){ { 9, 11 } }, 1);
	/* sent as whole pages: the tail past the end is zeros */
	assert_int_equal(send_all(f), 2);
	assert_int_equal(receive(f, g, ARRAY_SIZE(g), 2), 1);
	assert_int_equal(g[0].off, 9 * P);
	assert_int_equal(g[0].nr, 2);
	assert_int_equal(collect(f), 0);
	/* shrunk under a pending page: sent no more (nor past the end) */
	assert_int_equal(pwrite(f->mfd, "x", 1, 10 * P + 5), 1);
	assert_int_equal(collect(f), 1);
	assert_int_equal(ftruncate(f->mfd, 4 * P), 0);
	assert_int_equal(send_all(f), 0);
	assert_int_equal(collect(f), 0);
}

/* While frozen, the pass runs on a thread of its own. */
static void test_collect_thread(void **state)
{
	struct fixture *f = *state;
	uint64_t dirty = 99;

	need_map_files(f);
	/* none runs: 0 at once */
	assert_int_equal(shm_collect_wait(&f->set, &dirty), 0);
	assert_int_equal(dirty, 0);
	scan(f);
	assert_int_equal(collect(f), 0);
	fill(f->anon + 3 * P, 4, 3);
	fill(f->mem, 4, 0);
	assert_int_equal(shm_collect_start(&f->set), 0);
	assert_int_equal(shm_collect_start(&f->set), -EBUSY);
	assert_int_equal(shm_collect_wait(&f->set, &dirty), 0);
	assert_int_equal(dirty, 2);
	assert_pending(f, f->anon_ino, (struct range[]){ { 3, 4 } }, 1);
	assert_pending(f, f->mfd_ino, (struct range[]){ { 0, 1 } }, 1);
	/* shm_free joins one still running */
	assert_int_equal(shm_collect_start(&f->set), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_maps_line),
		T(test_scan),
		T(test_collect_send),
		T(test_long_runs),
		T(test_resize),
		T(test_collect_thread),
	};
#undef T

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests_name("shmem", tests, NULL, NULL);
}
