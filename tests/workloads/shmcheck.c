/*
 * shmcheck: two processes write and check the memory they share, so that
 * a migration that loses a shared page, or restores an older copy of it,
 * is seen by the workload itself.
 *
 *   shmcheck --log FILE [--shared MiB] [--memfd MiB] [--rate PAGES/s]
 *            [--hot N] [--seed N] [--selftest-corrupt] [--selftest-unshare]
 *
 * Region 0 is MiB of MAP_SHARED|MAP_ANONYMOUS memory, region 1 a memfd of
 * MiB mapped MAP_SHARED (its fd closed); at least one is not empty. The
 * parent fills every page (generation 1), then forks one child; from then
 * on the parent owns the even pages of both regions and the child the odd
 * ones, and each writes only its own. A write of page I of region R with
 * generation G puts a header {magic, R, I, G} at the start of the page and
 * fills the rest with a pattern derived from (R, I, G), so that a page
 * that is zero, of another page, torn or of another generation can be told
 * apart. Each process keeps the generation of each page it owns in its
 * own private memory (a malloc'd array), which a migration moves by
 * another path than the shared pages: a shared page restored older than
 * its owner's record is caught.
 *
 * Every 10 ms each process rewrites RATE/100 random pages of its own
 * (default RATE 2000 pages/s per process, spread over both regions) and
 * the first N (--hot, default 8) pages it owns in each region (a hot set,
 * rewritten at every step); the parent then appends "TICK WALL_MS" to
 * FILE (TICK = 1, 2, ...; WALL_MS = CLOCK_REALTIME ms). FILE is opened,
 * appended with one write(2) and closed for every line, by both.
 *
 * SIGUSR1 (to the parent; the child forwards one it gets to the parent)
 * asks for a check. Both processes stop writing (they meet through a
 * control page of their own, MAP_SHARED too), then each checks EVERY page
 * of both regions: its own exactly against its record, the other's for
 * consistency (header names that page, the body is the pattern of the
 * generation in the header) and, region by region, against the sum of
 * the generations the other says it wrote (published in the control page
 * as it stops: a region restored as two copies, one in each process, has
 * the other's pages whole but old). Each appends
 *   "shmcheck PID: PASS pages=N writes=W"              or, for a page
 *   "shmcheck PID: FAIL region R page I: WHAT (gen X, expected Y)"
 *   "shmcheck PID: FAIL region R page I: WHAT (gen X, the other's page)"
 *   "shmcheck PID: FAIL region R: the other's pages are whole but ..."
 * for the first 5 problems and "shmcheck PID: FAIL bad=B pages=N
 * writes=W" (B: problems, N: pages checked, W: pages this process wrote
 * since it started). Both resume writing once both have checked. A
 * process that waits more than 10 s for the other logs "shmcheck PID:
 * FAIL handshake: ..." (it then checks only its own pages).
 *
 * Why no page "in flight" is accepted at either generation: a check runs
 * in the main loop between two writes, after both processes stopped; a
 * freeze in the middle of a write resumes it on the destination, which
 * completes it before any check. A page found at an older generation than
 * its owner's record is always a lost write.
 *
 * Other lines: "shmcheck PID: ready parent|child pages=N owned=M
 * region0=ADDR region1=ADDR" once the process runs its loop (ADDR: where
 * the region is mapped, (nil) when empty; a test can spoil a page through
 * /proc/PID/mem); "shmcheck PID: FAIL child CPID exited ..."
 * (the parent; then it exits 3). SIGTERM/SIGINT to the parent: the child
 * gets SIGTERM, both exit 0. Only fds 0-2 are inherited.
 *
 * --selftest-corrupt: at the first check, after both stopped, the parent
 * writes one of its own pages with the generation before the recorded
 * one (a stale page, its record untouched) and flips a byte in the body
 * of one of the child's pages (a corrupt page), and logs
 * "shmcheck PID: selftest stale region R page I, corrupt region R page J".
 * Both checks must then FAIL: the tests use it to prove they can.
 *
 * --selftest-unshare: after the first check, the child replaces its
 * mapping of the first region that has pages by a private copy (as a
 * restore that gave each process a copy of its own would) and logs
 * "shmcheck PID: selftest unshared region R"; from the next check on,
 * both see the other's pages whole but old, and FAIL.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MIB (1024UL * 1024UL)
#define STEP_NS (10L * 1000 * 1000)
#define MAGIC UINT64_C(0x5348434b50414745) /* "SHCKPAGE" */
#define NR_REGIONS 2
#define MAX_REPORTED 5
#define WAIT_STEPS 10000 /* 1 ms each: how long one waits for the other */

enum { PARENT, CHILD };

struct page_hdr {
	uint64_t magic;
	uint32_t region;
	uint32_t page;
	uint64_t gen;
};

#define BODY_WORDS ((PAGE - sizeof(struct page_hdr)) / sizeof(uint64_t))

struct region {
	uint8_t *mem;
	size_t pages;
	uint64_t *gen; /* private: the generation of each page, valid for our own */
};

/* The meeting point of a check, in a page both share. */
struct ctl {
	uint64_t req;		     /* checks asked for (the parent counts them) */
	uint64_t stopped[2];	     /* the last request each process stopped writing for */
	uint64_t checked[2];	     /* ... and is done checking */
	uint64_t sum[2][NR_REGIONS]; /* the sum of the generations each wrote, by region */
};

struct opts {
	unsigned long mib[NR_REGIONS];
	unsigned long rate, hot;
	uint64_t seed;
	const char *log;
};

static volatile sig_atomic_t stop, usr1;
static const char *log_path;
static struct region regions[NR_REGIONS];
static struct ctl *ctl;
static int role;
static pid_t parent_pid, child_pid;
static uint64_t rng, writes;
static bool selftest_corrupt, selftest_unshare;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	usr1 = 1;
}

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t rand64(void)
{
	return mix64(rng += 0x9E3779B97F4A7C15ULL);
}

/* The first word of the body of page @i of region @r at generation @gen. */
static uint64_t pattern_seed(unsigned int r, size_t i, uint64_t gen)
{
	return mix64(mix64(((uint64_t)r << 48) ^ i) ^ gen) | 1;
}

static uint64_t xorshift(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	return x ^ (x << 17);
}

static void write_page(unsigned int r, size_t i, uint64_t gen)
{
	uint8_t *p = regions[r].mem + i * PAGE;
	struct page_hdr *h = (struct page_hdr *)(void *)p;
	uint64_t *w = (uint64_t *)(void *)(p + sizeof(*h)), x = pattern_seed(r, i, gen);

	for (size_t k = 0; k < BODY_WORDS; k++, x = xorshift(x))
		w[k] = x;
	h->magic = MAGIC;
	h->region = r;
	h->page = (uint32_t)i;
	h->gen = gen;
}

/* Our own page @i of region @r gets its next generation. */
static void rewrite(unsigned int r, size_t i)
{
	write_page(r, i, ++regions[r].gen[i]);
	writes++;
}

__attribute__((format(printf, 1, 2))) static void log_line(const char *fmt, ...)
{
	char line[512];
	int n, fd;
	va_list ap;

	n = snprintf(line, sizeof(line), "shmcheck %d: ", (int)getpid());
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		fprintf(stderr, "shmcheck: append to %s: %s\n", log_path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static void tick(uint64_t n)
{
	struct timespec ts;
	char line[64];
	int len, fd;

	clock_gettime(CLOCK_REALTIME, &ts);
	len = snprintf(line, sizeof(line), "%" PRIu64 " %lld\n", n,
		       (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	fd = open(log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || write(fd, line, (size_t)len) != len)
		fprintf(stderr, "shmcheck: tick to %s: %s\n", log_path, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static bool is_zero(const uint8_t *p)
{
	for (size_t k = 0; k < PAGE; k++)
		if (p[k])
			return false;
	return true;
}

/*
 * What is wrong with page @i of region @r, NULL when nothing; @expected:
 * the generation it must hold (0: any); *gen: the one it holds.
 */
static const char *page_problem(unsigned int r, size_t i, uint64_t expected, uint64_t *gen,
				char *buf, size_t len)
{
	const uint8_t *p = regions[r].mem + i * PAGE;
	const struct page_hdr *h = (const struct page_hdr *)(const void *)p;
	const uint64_t *w = (const uint64_t *)(const void *)(p + sizeof(*h));
	uint64_t x;

	*gen = h->gen;
	if (h->magic != MAGIC) {
		if (is_zero(p))
			return "a zero page";
		snprintf(buf, len, "no header (magic 0x%016" PRIx64 ")", h->magic);
		return buf;
	}
	if (h->region != r || h->page != i) {
		snprintf(buf, len, "holds region %u page %u", h->region, h->page);
		return buf;
	}
	if (expected && h->gen < expected)
		return "stale";
	if (expected && h->gen > expected)
		return "newer than its owner's record";
	x = pattern_seed(r, i, h->gen);
	for (size_t k = 0; k < BODY_WORDS; k++, x = xorshift(x))
		if (w[k] != x) {
			snprintf(buf, len, "body differs from its generation's pattern at byte %zu",
				 sizeof(*h) + k * sizeof(*w));
			return buf;
		}
	return NULL;
}

static bool owns(size_t i)
{
	return (int)(i % 2) == role;
}

/*
 * Check region @r's pages: ours, and with @all the other's, whose
 * generations must add up to what it published (a region restored as a
 * copy in each process instead of one memory both share has the other's
 * pages whole but old). Logs the problems while fewer than MAX_REPORTED
 * were (@reported before); returns how many it found.
 */
static size_t check_region(unsigned int r, bool all, size_t reported, size_t *checked)
{
	size_t bad = 0, other_bad = 0;
	uint64_t other_sum = 0;
	char buf[128];

	for (size_t i = 0; i < regions[r].pages; i++) {
		bool own = owns(i);
		const char *what;
		uint64_t gen;

		if (!own && !all)
			continue;
		(*checked)++;
		what = page_problem(r, i, own ? regions[r].gen[i] : 0, &gen, buf, sizeof(buf));
		if (!own)
			other_sum += gen;
		if (!what)
			continue;
		other_bad += !own;
		if (reported + bad++ >= MAX_REPORTED)
			continue;
		if (own)
			log_line("FAIL region %u page %zu: %s (gen %" PRIu64 ", expected %" PRIu64
				 ")",
				 r, i, what, gen, regions[r].gen[i]);
		else
			log_line("FAIL region %u page %zu: %s (gen %" PRIu64 ", the other's page)",
				 r, i, what, gen);
	}
	/* a bad page of the other's explains a wrong sum */
	if (all && !other_bad && other_sum != ctl->sum[!role][r]) {
		bad++;
		log_line("FAIL region %u: the other's pages are whole but their generations add up"
			 " to %" PRIu64 ", it wrote %" PRIu64 " (old pages, or not shared)",
			 r, other_sum, ctl->sum[!role][r]);
	}
	return bad;
}

/* Check every page (@all) or only ours; log PASS or FAIL lines. */
static void check(bool all)
{
	size_t checked = 0, bad = 0;

	for (unsigned int r = 0; r < NR_REGIONS; r++)
		bad += check_region(r, all, bad, &checked);
	if (bad)
		log_line("FAIL bad=%zu pages=%zu writes=%" PRIu64, bad, checked, writes);
	else
		log_line("PASS pages=%zu writes=%" PRIu64, checked, writes);
}

/* Before we say we stopped: the sums of our generations, for the other's check. */
static void publish_sums(void)
{
	for (unsigned int r = 0; r < NR_REGIONS; r++) {
		uint64_t sum = 0;

		for (size_t i = (size_t)role; i < regions[r].pages; i += 2)
			sum += regions[r].gen[i];
		ctl->sum[role][r] = sum;
	}
}

/* The parent's child is gone: say so (once) and end. */
static void reap_child(void)
{
	int st;

	if (role != PARENT || waitpid(child_pid, &st, WNOHANG) != child_pid)
		return;
	log_line("FAIL child %d exited (%s %d)", (int)child_pid,
		 WIFSIGNALED(st) ? "signal" : "status",
		 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	_exit(3);
}

/* Wait until the other process's @field reaches @epoch: true, or false after 10 s. */
static bool wait_other(uint64_t *field, uint64_t epoch)
{
	const struct timespec ms = { 0, 1000 * 1000 };

	for (int n = 0; n < WAIT_STEPS && !stop; n++) {
		if (__atomic_load_n(&field[!role], __ATOMIC_ACQUIRE) >= epoch)
			return true;
		reap_child();
		nanosleep(&ms, NULL);
	}
	return false;
}

/* --selftest-corrupt: one stale page of ours, one corrupt page of the child's. */
static void corrupt(void)
{
	unsigned int r = regions[0].pages >= 2 ? 0 : 1, rc = regions[1].pages >= 2 ? 1 : 0;
	size_t i = 2 * (rand64() % (regions[r].pages / 2));
	size_t j = 2 * (rand64() % (regions[rc].pages / 2)) + 1;

	write_page(r, i, regions[r].gen[i] - 1);
	regions[rc].mem[j * PAGE + PAGE / 2] ^= 0x5a;
	log_line("selftest stale region %u page %zu, corrupt region %u page %zu", r, i, rc, j);
}

/* --selftest-unshare: the child's own copy of a region, where it is. */
static void unshare(void)
{
	unsigned int r = regions[0].pages ? 0 : 1;
	size_t len = regions[r].pages * PAGE;
	uint8_t *copy = malloc(len);

	if (!copy) {
		log_line("selftest unshare: no memory for a copy");
		return;
	}
	memcpy(copy, regions[r].mem, len);
	if (mmap(regions[r].mem, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
		log_line("selftest unshare: mmap: %s", strerror(errno));
		_exit(1);
	}
	memcpy(regions[r].mem, copy, len);
	free(copy);
	log_line("selftest unshared region %u", r);
}

/*
 * Check request @epoch: both stop writing, both check, both resume. The
 * parent stops last, so that the selftest corrupts the child's page after
 * the child's last write and before its check.
 */
static void check_round(uint64_t epoch)
{
	bool met;

	publish_sums();
	if (role == CHILD) {
		__atomic_store_n(&ctl->stopped[CHILD], epoch, __ATOMIC_RELEASE);
		met = wait_other(ctl->stopped, epoch);
	} else {
		met = wait_other(ctl->stopped, epoch);
		if (met && selftest_corrupt) {
			corrupt();
			selftest_corrupt = false;
		}
		__atomic_store_n(&ctl->stopped[PARENT], epoch, __ATOMIC_RELEASE);
	}
	if (stop)
		return;
	if (!met)
		log_line("FAIL handshake: the other process did not stop writing within 10 s"
			 " (check %" PRIu64 "); checking our own pages only",
			 epoch);
	check(met);
	/* before the parent goes on writing: a whole copy of every page */
	if (role == CHILD && selftest_unshare) {
		unshare();
		selftest_unshare = false;
	}
	__atomic_store_n(&ctl->checked[role], epoch, __ATOMIC_RELEASE);
	if (met && !wait_other(ctl->checked, epoch) && !stop)
		log_line("FAIL handshake: the other process did not finish check %" PRIu64
			 " within 10 s",
			 epoch);
}

/* Our own page number @k, counted over the regions. */
static void rewrite_nth_own(size_t k)
{
	for (unsigned int r = 0; r < NR_REGIONS; r++) {
		size_t own = (regions[r].pages + 1 - (size_t)role) / 2;

		if (k < own) {
			rewrite(r, 2 * k + (size_t)role);
			return;
		}
		k -= own;
	}
}

static void run(const struct opts *o)
{
	const struct timespec step = { 0, STEP_NS };
	size_t owned = 0;
	uint64_t handled = 0, ticks = 0;
	unsigned long carry = 0;

	for (unsigned int r = 0; r < NR_REGIONS; r++)
		owned += (regions[r].pages + 1 - (size_t)role) / 2;
	log_line("ready %s pages=%zu owned=%zu region0=%p region1=%p",
		 role == PARENT ? "parent" : "child", regions[0].pages + regions[1].pages, owned,
		 (void *)regions[0].mem, (void *)regions[1].mem);
	while (!stop) {
		uint64_t req;

		if (usr1) {
			usr1 = 0;
			if (role == PARENT)
				__atomic_add_fetch(&ctl->req, 1, __ATOMIC_ACQ_REL);
			else
				kill(parent_pid, SIGUSR1);
		}
		req = __atomic_load_n(&ctl->req, __ATOMIC_ACQUIRE);
		if (req > handled) {
			check_round(req);
			handled = req;
		}
		carry += o->rate;
		for (; carry >= 100; carry -= 100)
			rewrite_nth_own((size_t)(rand64() % owned));
		for (unsigned int r = 0; r < NR_REGIONS; r++)
			for (size_t h = 0; h < o->hot && 2 * h + (size_t)role < regions[r].pages;
			     h++)
				rewrite(r, 2 * h + (size_t)role);
		if (role == PARENT) {
			tick(++ticks);
			reap_child();
		}
		nanosleep(&step, NULL);
	}
}

static void *map_region(unsigned long mib, bool memfd)
{
	void *p;
	int fd = -1;

	if (memfd && (fd = memfd_create("shmcheck", MFD_CLOEXEC)) < 0)
		return MAP_FAILED;
	if (memfd && ftruncate(fd, (off_t)(mib * MIB)) < 0) {
		close(fd);
		return MAP_FAILED;
	}
	p = mmap(NULL, mib * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | (memfd ? 0 : MAP_ANONYMOUS),
		 fd, 0);
	if (fd >= 0)
		close(fd);
	return p;
}

/* The regions, filled at generation 1, the private records and the control page. */
static int setup_memory(const struct opts *o)
{
	for (unsigned int r = 0; r < NR_REGIONS; r++) {
		struct region *g = &regions[r];

		g->pages = o->mib[r] * MIB / PAGE;
		if (!g->pages)
			continue;
		g->mem = map_region(o->mib[r], r == 1);
		g->gen = malloc(g->pages * sizeof(*g->gen));
		if (g->mem == MAP_FAILED || !g->gen)
			return -1;
		for (size_t i = 0; i < g->pages; i++)
			write_page(r, i, g->gen[i] = 1);
	}
	ctl = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return ctl == MAP_FAILED ? -1 : 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: shmcheck --log FILE [--shared MiB] [--memfd MiB] [--rate PAGES/s]\n"
		"                [--hot N] [--seed N] [--selftest-corrupt] [--selftest-unshare]\n");
}

/* A decimal number in [0, @max] into *@ret: 0, or -1 when it is not. */
static int parse_num(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*ret = strtoul(s, &end, 10);
	return errno || *end || *ret > max ? -1 : 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "shared", required_argument, NULL, 'A' },
		{ "memfd", required_argument, NULL, 'M' },
		{ "rate", required_argument, NULL, 'r' },
		{ "hot", required_argument, NULL, 'h' },
		{ "seed", required_argument, NULL, 'S' },
		{ "log", required_argument, NULL, 'l' },
		{ "selftest-corrupt", no_argument, NULL, 'C' },
		{ "selftest-unshare", no_argument, NULL, 'U' },
		{ 0 }
	};
	/* pages are numbered in 32 bits in their header: at most 16 GiB a region */
	const unsigned long max_mib = 16UL << 10;
	unsigned long seed = 1;
	int c, bad = 0;

	o->rate = 2000;
	o->hot = 8;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'A': bad |= parse_num(optarg, max_mib, &o->mib[0]); break;
		case 'M': bad |= parse_num(optarg, max_mib, &o->mib[1]); break;
		case 'r': bad |= parse_num(optarg, 10000000, &o->rate); break;
		case 'h': bad |= parse_num(optarg, 1024, &o->hot); break;
		case 'S': bad |= parse_num(optarg, ~0UL, &seed); break;
		case 'l': o->log = optarg; break;
		case 'C': selftest_corrupt = true; break;
		case 'U': selftest_unshare = true; break;
		default: return -1;
		}
	}
	o->seed = seed;
	return bad || optind != argc || !o->log || (!o->mib[0] && !o->mib[1]) ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa_stop = { .sa_handler = on_stop };
	struct sigaction sa_usr1 = { .sa_handler = on_usr1 };
	struct opts o = { 0 };
	struct stat st;

	if (parse_opts(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	log_path = o.log;
	if (stat(log_path, &st) == 0 && st.st_size != 0) {
		fprintf(stderr, "shmcheck: %s is not empty\n", log_path);
		return 2;
	}
	sigaction(SIGTERM, &sa_stop, NULL);
	sigaction(SIGINT, &sa_stop, NULL);
	sigaction(SIGUSR1, &sa_usr1, NULL);
	if (setup_memory(&o) < 0) {
		perror("shmcheck: shared memory");
		return 1;
	}
	parent_pid = getpid();
	child_pid = fork();
	if (child_pid < 0) {
		perror("shmcheck: fork");
		return 1;
	}
	if (child_pid == 0) {
		role = CHILD;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent_pid)
			_exit(1);
	}
	rng = mix64(o.seed) ^ (uint64_t)role;
	run(&o);
	if (role == PARENT) {
		kill(child_pid, SIGTERM);
		waitpid(child_pid, NULL, 0);
	}
	return 0;
}
