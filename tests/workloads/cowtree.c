/*
 * cowtree: a parent and a child sharing anonymous pages copy-on-write,
 * as a forking server's processes do.
 *
 *   cowtree LOG [PAGES]
 *
 * The parent maps PAGES (default 256) anonymous pages, writes a known
 * pattern into each, then forks a child; neither writes them again. So
 * that a migration has more to move than those pages, the child also
 * writes 64 pages of its own (in a mapping both have). Every 10 ms the parent appends
 * "TICK WALL_MS\n" to LOG (TICK = 1, 2, 3, ...; opened, appended, closed
 * each time).
 *
 * SIGUSR1 to the child (the parent forwards it): the child compares, page
 * by page, its /proc/self/pagemap entry with its parent's
 * (/proc/PPID/pagemap; frame numbers need root) and the contents with the
 * pattern, and appends "COW shared=S of=N data=ok|bad" to LOG: S pages
 * are the very same page frame in both processes.
 * SIGTERM/SIGINT to the parent: the child is killed, exit 0. Errors:
 * "FAIL ..." in LOG, exit 3.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define TICK_MS 10
#define OWN_PAGES 64
#define PFN_MASK ((UINT64_C(1) << 55) - 1)
#define PRESENT (UINT64_C(1) << 63)

static volatile sig_atomic_t stop, check;
static const char *logpath;
static uint8_t *area;
static size_t pages = 256;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	check = 1;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_line(const char *fmt, ...)
{
	FILE *f = fopen(logpath, "a");
	va_list ap;

	if (!f)
		exit(3);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static uint8_t pattern(size_t page, size_t off)
{
	return (uint8_t)(page * 131 + off * 7 + 1);
}

static int read_pagemap(pid_t pid, uint64_t *e)
{
	char path[64];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = pread(fd, e, pages * sizeof(*e), (off_t)((uintptr_t)area / PAGE * sizeof(*e)));
	close(fd);
	return n == (ssize_t)(pages * sizeof(*e)) ? 0 : -1;
}

static void child_check(void)
{
	uint64_t *mine = calloc(pages, sizeof(*mine)), *theirs = calloc(pages, sizeof(*theirs));
	size_t shared = 0;
	int ok = 1;

	for (size_t i = 0; i < pages; i++)
		for (size_t j = 0; j < PAGE; j++)
			ok &= area[i * PAGE + j] == pattern(i, j);
	if (!mine || !theirs || read_pagemap(getpid(), mine) || read_pagemap(getppid(), theirs)) {
		log_line("FAIL cannot read the pagemaps: %s\n", strerror(errno));
		exit(3);
	}
	for (size_t i = 0; i < pages; i++)
		shared += (mine[i] & PRESENT) && (mine[i] & PFN_MASK) &&
			  (mine[i] & PFN_MASK) == (theirs[i] & PFN_MASK);
	log_line("COW shared=%zu of=%zu data=%s\n", shared, pages, ok ? "ok" : "bad");
	free(mine);
	free(theirs);
}

static void child(uint8_t *own)
{
	memset(own, 0x5a, OWN_PAGES * PAGE);
	signal(SIGTERM, SIG_DFL);
	while (getppid() != 1) {
		if (check) {
			check = 0;
			child_check();
		}
		usleep(TICK_MS * 1000);
	}
	exit(0);
}

int main(int argc, char **argv)
{
	long long tick = 0;
	uint8_t *own;
	pid_t kid;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: cowtree LOG [PAGES]\n");
		return 2;
	}
	logpath = argv[1];
	/* only fds 0-2: CRIU cannot dump one into the harness's mounts */
	syscall(SYS_close_range, 3U, ~0U, 0U);
	if (argc == 3)
		pages = strtoul(argv[2], NULL, 10);
	if (pages == 0 || pages > (1u << 20))
		return 2;
	area = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return 3;
	for (size_t i = 0; i < pages; i++)
		for (size_t j = 0; j < PAGE; j++)
			area[i * PAGE + j] = pattern(i, j);
	/*
	 * The child's own pages, in a mapping made here (a page unmapped on
	 * each side: it must not merge with the shared one). Made in the
	 * child, it would be a mapping only the child has, and CRIU 4.1's
	 * prepare_cow_vmas_for() then skips the child's next mapping:
	 * without any migration that one's pages would not be shared.
	 */
	own = mmap(NULL, (OWN_PAGES + 2) * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (own == MAP_FAILED || munmap(own, PAGE) || munmap(own + (OWN_PAGES + 1) * PAGE, PAGE))
		return 3;
	signal(SIGUSR1, on_usr1);
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
	kid = fork();
	if (kid < 0)
		return 3;
	if (kid == 0)
		child(own + PAGE);
	while (!stop) {
		if (check) {
			check = 0;
			kill(kid, SIGUSR1);
		}
		log_line("%lld %lld\n", ++tick, (long long)wall_ms());
		usleep(TICK_MS * 1000);
	}
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	return 0;
}
