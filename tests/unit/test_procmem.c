/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for common/procmem: another process's memory read whatever
 * its mappings' protection (PROT_NONE, write-only, exec-only), up to the
 * first page that is not mapped; a process that is gone.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/page.h"
#include "common/procmem.h"
#include "common/rangeset.h"

#define P PAGE
#define NPAGES 8

/*
 * A child holding NPAGES pages of known contents (page i filled with
 * byte 'a' + i), then protected: page 1 PROT_NONE, 3 PROT_WRITE, 5
 * PROT_EXEC, 7 unmapped; the others stay read-write.
 */
struct fixture {
	pid_t child;
	uint8_t *mem; /* the same address in the child (fork) */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int go[2];
	char c;

	if (!f || pipe(go) < 0)
		return -1;
	f->mem = mmap(NULL, NPAGES * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (f->mem == MAP_FAILED)
		return -1;
	f->child = fork();
	if (f->child < 0)
		return -1;
	if (f->child == 0) {
		for (int i = 0; i < NPAGES; i++)
			memset(f->mem + i * P, 'a' + i, P);
		if (mprotect(f->mem + 1 * P, P, PROT_NONE) ||
		    mprotect(f->mem + 3 * P, P, PROT_WRITE) ||
		    mprotect(f->mem + 5 * P, P, PROT_EXEC) || munmap(f->mem + 7 * P, P))
			_exit(1);
		if (write(go[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(go[1]);
	if (read(go[0], &c, 1) != 1)
		return -1;
	close(go[0]);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	munmap(f->mem, NPAGES * P);
	free(f);
	return 0;
}

static void assert_page(const uint8_t *buf, int i)
{
	for (size_t k = 0; k < P; k++)
		if (buf[k] != 'a' + i)
			fail_msg("page %d byte %zu is 0x%02x, not '%c'", i, k, buf[k], 'a' + i);
}

/* Readable pages: through /proc/PID/mem, opened on the first read. */
static void test_readable(void **state)
{
	struct fixture *f = *state;
	struct procmem pm = PROCMEM_INIT(f->child);
	uint8_t buf[P];

	assert_int_equal(pm.memfd, -1);
	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem, buf, P), P);
	assert_page(buf, 0);
	assert_true(pm.memfd >= 0);
	assert_int_equal(pm.forced, P);
	procmem_close(&pm);
}

/* Pages 0-6 in one go: the three unreadable ones come through /proc/PID/mem. */
static void test_unreadable_pages(void **state)
{
	struct fixture *f = *state;
	struct procmem pm;
	uint8_t *buf = malloc(7 * P);

	procmem_init(&pm, f->child);
	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem, buf, 7 * P), 7 * P);
	for (int i = 0; i < 7; i++)
		assert_page(buf + i * P, i);
	assert_true(pm.memfd >= 0);
	assert_int_equal(pm.forced, 7 * P);
	/* each protection alone, the fd kept */
	for (int i = 1; i <= 5; i += 2) {
		int fd = pm.memfd;
		memset(buf, 0, P);
		assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem + i * P, buf, P), P);
		assert_page(buf, i);
		assert_int_equal(pm.memfd, fd);
	}
	procmem_close(&pm);
	assert_int_equal(pm.memfd, -1);
	free(buf);
}

/* Up to the unmapped page 7, not beyond; nothing if it starts there. */
static void test_stops_at_unmapped(void **state)
{
	struct fixture *f = *state;
	struct procmem pm = PROCMEM_INIT(f->child);
	uint8_t *buf = malloc(8 * P);

	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem + 4 * P, buf, 4 * P), 3 * P);
	for (int i = 4; i < 7; i++)
		assert_page(buf + (i - 4) * P, i);
	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem + 7 * P, buf, P), 0);
	/* an unreadable page right before the hole */
	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem + 5 * P, buf, 3 * P), 2 * P);
	assert_page(buf, 5);
	procmem_close(&pm);
	free(buf);
}

/* Scattered ranges, unreadable ones among them, into scattered buffers. */
static void test_readv(void **state)
{
	struct fixture *f = *state;
	struct procmem pm = PROCMEM_INIT(f->child);
	uint8_t *buf = calloc(8, P);
	const int order[] = { 6, 1, 0, 5, 3, 2 };
	struct iovec l[6], r[6];

	for (int k = 0; k < 6; k++) {
		l[k] = (struct iovec){ buf + k * P, P };
		r[k] = (struct iovec){ f->mem + order[k] * P, P };
	}
	assert_int_equal(procmem_readv(&pm, l, r, 6), 6 * P);
	for (int k = 0; k < 6; k++)
		assert_page(buf + k * P, order[k]);
	/* the unmapped page ends it: what came before counts */
	r[2].iov_base = f->mem + 7 * P;
	assert_int_equal(procmem_readv(&pm, l, r, 6), 2 * P);
	/* half a range read, then a hole: the bytes read count */
	l[0].iov_len = r[0].iov_len = 2 * P;
	r[0].iov_base = f->mem + 6 * P;
	assert_int_equal(procmem_readv(&pm, l, r, 1), P);
	procmem_close(&pm);
	free(buf);
}

/* A process that is gone: -ESRCH, before and after the fd was opened. */
static void test_gone(void **state)
{
	struct fixture *f = *state;
	struct procmem pm = PROCMEM_INIT(f->child);
	uint8_t buf[P];

	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem + P, buf, P), P);
	assert_true(pm.memfd >= 0);
	kill(f->child, SIGKILL);
	waitpid(f->child, NULL, 0);
	assert_true(procmem_read(&pm, (uintptr_t)f->mem + P, buf, P) <= 0);
	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem, buf, P), -ESRCH);
	procmem_close(&pm);
	procmem_init(&pm, f->child);
	assert_int_equal(procmem_read(&pm, (uintptr_t)f->mem + P, buf, P), -ESRCH);
}

/* This kernel lets /proc/PID/mem read what the process cannot (all above
 * relies on it); the answer is kept. */
static void test_can_force(void **state)
{
	(void)state;
	assert_true(procmem_can_force());
	assert_true(procmem_can_force());
}

/* Unreadable mappings holding populated pages are found; empty ones not. */
static void test_find_unreadable(void **state)
{
	struct fixture *f = *state;
	uint64_t start = 0, end = 0;
	uint8_t *guard, *page;

	assert_int_equal(procmem_find_unreadable(f->child, &start, &end), 1);
	assert_int_equal(start, (uintptr_t)f->mem + P);
	assert_int_equal(end, (uintptr_t)f->mem + 2 * P);
	/* this process: a PROT_NONE reservation never touched does not count */
	guard = mmap(NULL, 64 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(guard != MAP_FAILED);
	assert_int_equal(procmem_find_unreadable(getpid(), &start, &end), 0);
	page = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(page != MAP_FAILED);
	page[0] = 1;
	assert_int_equal(mprotect(page, P, PROT_WRITE), 0);
	assert_int_equal(procmem_find_unreadable(getpid(), &start, &end), 1);
	assert_int_equal(start, (uintptr_t)page);
	munmap(page, P);
	munmap(guard, 64 * P);
	assert_int_equal(procmem_find_unreadable(getpid(), &start, &end), 0);
	assert_int_equal(procmem_find_unreadable(f->child + 4000000, &start, &end), -ESRCH);
}

/* A maps text: the mapping holding an address, else its neighbours. */
static void test_maps_where(void **state)
{
	const char *maps =
		"00400000-00401000 r--p 00000000 fe:00 10977295                           /usr/bin/busybox\n"
		"7ffd33390000-7ffd333b1000 rw-p 00000000 00:00 0                          [stack]\n"
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";
	char buf[512];

	(void)state;
	assert_int_equal(procmem_maps_where(maps, 0x7ffd333ae000, buf, sizeof(buf)), 1);
	assert_string_equal(buf, "in 7ffd33390000-7ffd333b1000 rw-p 00000000 00:00 0 [stack]");
	/* the page just below the stack: a guard gap */
	assert_int_equal(procmem_maps_where(maps, 0x7ffd3338f000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "unmapped, between 400000-401000 r--p 00000000 fe:00 10977295 "
				 "/usr/bin/busybox and 7ffd33390000-7ffd333b1000 rw-p 00000000 "
				 "00:00 0 [stack]");
	assert_int_equal(procmem_maps_where(maps, 0x1000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "unmapped, below 400000-401000 r--p 00000000 fe:00 10977295 "
				 "/usr/bin/busybox");
	assert_int_equal(procmem_maps_where(strstr(maps, "ffffffffff600000"), 0xfffffffffffff000,
					    buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "unmapped, above ffffffffff600000-ffffffffff601000 --xp "
				 "00000000 00:00 0 [vsyscall]");
	assert_int_equal(procmem_maps_where("", 0x1000, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "no mapping at all");
	/* lines that are no mapping are skipped; a short buffer is cut */
	assert_int_equal(procmem_maps_where("junk\n1000-2000 rw-p 0 0:0 0   \n", 0x1800, buf,
					    sizeof(buf)),
			 1);
	assert_string_equal(buf, "in 1000-2000 rw-p 0 0:0 0");
	assert_int_equal(procmem_maps_where("junk\n1000-2000 rw-p 0 0:0 0\n", 0x1800, buf, 8), 1);
	assert_string_equal(buf, "in 1000");
}

/* A maps text as ranges: adjacent mappings merge, a gap stays one. */
static void test_maps_ranges(void **state)
{
	const char *maps = "1000-2000 rw-p 00000000 00:00 0\n"
			   "2000-3000 r--p 00000000 00:00 0 [heap]\n"
			   "not a mapping\n"
			   "5000-6000 rw-p 00000000 00:00 0";
	struct rangeset rs = { 0 };

	(void)state;
	assert_int_equal(procmem_maps_ranges(maps, &rs), 0);
	assert_int_equal(rs.nr, 2);
	assert_true(rangeset_covers(&rs, 0x1000, 0x3000));  /* a run across two mappings */
	assert_false(rangeset_covers(&rs, 0x2000, 0x4000)); /* into the gap */
	assert_false(rangeset_covers(&rs, 0x0, 0x1000));
	assert_true(rangeset_covers(&rs, 0x5000, 0x6000)); /* the last line, no newline */
	rangeset_free(&rs);
	assert_int_equal(procmem_maps_ranges("", &rs), 0);
	assert_int_equal(rs.nr, 0);
}

/* The explanation names the host PID, its state and the mapping. */
static void test_explain(void **state)
{
	struct fixture *f = *state;
	char buf[640], want[64];
	int st;

	procmem_explain(f->child, (uintptr_t)f->mem, buf, sizeof(buf));
	/* S in its pause(), or R on its way there */
	snprintf(want, sizeof(want), "host PID %d, state ", (int)f->child);
	assert_memory_equal(buf, want, strlen(want));
	snprintf(want, sizeof(want), ", 0x%llx in ", (unsigned long long)(uintptr_t)f->mem);
	assert_non_null(strstr(buf, want));
	procmem_explain(f->child, (uintptr_t)f->mem + 7 * P, buf, sizeof(buf));
	assert_non_null(strstr(buf, " unmapped, between "));
	/* a zombie has no mappings left */
	kill(f->child, SIGKILL);
	assert_int_equal(waitid(P_PID, f->child, NULL, WEXITED | WNOWAIT), 0);
	procmem_explain(f->child, (uintptr_t)f->mem, buf, sizeof(buf));
	snprintf(want, sizeof(want), "host PID %d, state Z, ", (int)f->child);
	assert_memory_equal(buf, want, strlen(want));
	assert_int_equal(waitpid(f->child, &st, 0), f->child);
	procmem_explain(f->child, (uintptr_t)f->mem, buf, sizeof(buf));
	snprintf(want, sizeof(want), "host PID %d is gone", (int)f->child);
	assert_string_equal(buf, want);
	f->child = 0;
}

static uint64_t frame_of(pid_t pid, const void *addr)
{
	char path[40];
	uint64_t e = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_int_equal(fseeko(f, (off_t)((uintptr_t)addr / P * sizeof(e)), SEEK_SET), 0);
	assert_int_equal(fread(&e, sizeof(e), 1, f), 1);
	fclose(f);
	assert_true(e >> 63); /* present */
	return e & ((UINT64_C(1) << 55) - 1);
}

/*
 * A page shared copy-on-write with the parent stays shared when read
 * (process_vm_readv pins it, and the kernel copies it for the child).
 */
static void test_keeps_cow_shared(void **state)
{
	uint8_t *page = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct procmem pm;
	uint8_t buf[P];
	pid_t kid;

	(void)state;
	assert_true(page != MAP_FAILED);
	memset(page, 'c', P);
	kid = fork();
	assert_true(kid >= 0);
	if (kid == 0) {
		pause();
		_exit(0);
	}
	if (frame_of(getpid(), page) == 0) { /* frame numbers need CAP_SYS_ADMIN */
		kill(kid, SIGKILL);
		waitpid(kid, NULL, 0);
		skip();
	}
	assert_int_equal(frame_of(kid, page), frame_of(getpid(), page));
	procmem_init(&pm, kid);
	assert_int_equal(procmem_read(&pm, (uintptr_t)page, buf, P), P);
	assert_int_equal(buf[0], 'c');
	assert_int_equal(frame_of(kid, page), frame_of(getpid(), page));
	procmem_close(&pm);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	munmap(page, P);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_readable),
		T(test_unreadable_pages),
		T(test_stops_at_unmapped),
		T(test_readv),
		T(test_gone),
		T(test_can_force),
		T(test_find_unreadable),
		cmocka_unit_test(test_maps_where),
		cmocka_unit_test(test_maps_ranges),
		T(test_explain),
		cmocka_unit_test(test_keeps_cow_shared),
	};
#undef T

	log_init("test", LOG_QUIET);
	return cmocka_run_group_tests_name("procmem", tests, NULL, NULL);
}
