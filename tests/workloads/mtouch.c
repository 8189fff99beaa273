/*
 * mtouch: memory-integrity workload (after p.haul's mtouch).
 *
 *   mtouch --size MiB --hot MiB --rate MiB/s --log FILE
 *          [--verify-signal] [--verify-every SEC] [--seed N] [--threads N]
 *          [--none N] [--wronly N] [--xonly N] [--sweep MS]
 *          [--shared MiB] [--memfd MiB] [--fill random|zero|text]
 *
 * Allocates SIZE MiB of anonymous memory and fills it with pseudo-random
 * data; keeps a shadow XXH3-64 checksum of every 4 KiB page in a separate
 * allocation.  Then, forever: rewrites random whole pages of the first HOT
 * MiB at RATE MiB/s (updating their shadows) and appends "TICK WALL_MS" to
 * FILE every 10 ms (TICK = 1, 2, ...; WALL_MS = CLOCK_REALTIME ms; FILE is
 * opened, appended and closed each time, no fd is held).
 *
 * With --threads N, N writer threads share the rewriting (each its own
 * slice of the hot set, RATE/N each); the main thread only ticks and
 * verifies, with the writers held off for the check.
 *
 * --sweep MS: a sweeping workload (a GC, a cache scan, a checksum pass):
 * besides rewriting the hot set, the main thread reads all of the memory
 * (an XXH3 of every page not given another protection) in one pass
 * between two ticks, a pass starting every MS ms (start to start; 0: one
 * at every tick, i.e. continuously), and appends "SWEEP pages=N ms=T"
 * (T: the pass's CLOCK_MONOTONIC duration). A pass that must wait for
 * memory (pages not yet back after a migration) delays the next tick, so
 * the largest gap between ticks is the longest stall the workload felt.
 * Without --threads the main thread also rewrites the hot set, and a pass
 * costs it up to 50 ms of writes (a pause is not made up for); with
 * --threads N the writers go on at RATE during a pass (which then reads
 * pages as they are being rewritten: it checks nothing, it only reads).
 *
 * --shared MiB, --memfd MiB: before anything else, that much memory
 * MAP_SHARED|MAP_ANONYMOUS and of a memfd (mapped MAP_SHARED, its fd
 * closed) is filled with random data, and a child is forked that keeps
 * both mapped and sleeps until it is signalled (SIGTERM: it exits; it is
 * also SIGKILLed when this process dies, and SIGTERMed when it exits).
 * The SIZE MiB of private memory is allocated after the fork, the child
 * has none of it. Nothing checks the shared memory: it is there to be
 * moved (the shared-memory rows of make bench).
 *
 * --none, --wronly, --xonly: after the fill, that many single pages spread
 * over the memory (never two adjacent: each is a mapping of its own, so
 * about two mappings a page) get PROT_NONE, PROT_WRITE or PROT_EXEC, pages
 * another process cannot read with process_vm_readv. Their contents are
 * checked like every other page (made readable for the check, then
 * protected again), they are rewritten like the others when they lie in
 * the hot set, and every check also verifies that each one still has its
 * protection, alone in its mapping (/proc/self/maps).
 *
 * Verification of every page against its shadow runs on SIGUSR1 (always;
 * --verify-signal is accepted for compatibility and changes nothing) and,
 * with --verify-every SEC, every SEC seconds.  It appends
 *   "VERIFY PASS pages=N ms=T"                         or
 *   "VERIFY FAIL page=I expected=0xH got=0xH bad=K pages=N ms=T"         or
 *   "VERIFY FAIL prot page=I want=PERMS got=PERMS"   (a protection lost)
 * A FAIL does not stop the workload (the test decides).
 *
 * Other log lines: "READY pages=N hot_pages=H base=0xADDR fill_ms=T
 * protected=P" once
 * the memory is filled (before the first tick; base lets a test corrupt a
 * page through /proc/PID/mem to prove verification is not vacuous), and
 * "FAIL ..." when FILE's size is not what this process left (another
 * writer, e.g. a second copy after a split-brain migration); then exit 3.
 * SIGTERM/SIGINT: exit 0.  Only fds 0-2 are inherited.
 *
 * --fill: what the pages hold (for the page codec's tests). random (the
 * default): incompressible; zero: every page all zeros at first (the hot
 * set's rewrites are random); text: words of a small vocabulary, about
 * 4x compressible, for the fill and the rewrites.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define PAGE 4096UL
#define MIB (1024UL * 1024UL)
#define TICK_NS (10L * 1000 * 1000)

struct opts {
	unsigned long size_mib, hot_mib, rate_mib;
	unsigned long verify_every;	     /* seconds, 0 = never */
	unsigned long threads;		     /* writer threads, 0 = the main thread writes */
	long sweep_ms;			     /* --sweep: a pass every sweep_ms, -1 = none */
	unsigned long shared_mib, memfd_mib; /* shared with a child */
	unsigned long nr_prot[3];	     /* pages made PROT_NONE, PROT_WRITE, PROT_EXEC */
	uint64_t seed;
	const char *log;
};

static volatile sig_atomic_t stop, verify_req;
static const char *log_path;
static off_t log_size;
static __thread uint64_t rng;
/* writers hold it shared while they rewrite pages, a check holds it alone */
static pthread_rwlock_t mem_lock;

#define PROT_RW (PROT_READ | PROT_WRITE)
static const int prot_kinds[3] = { PROT_NONE, PROT_WRITE, PROT_EXEC };

/* The pages given another protection than read-write, by page number. */
struct prot_page {
	size_t page;
	int prot;
};
static struct prot_page *prots;
static size_t nr_prots;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	verify_req = 1;
}

static void close_extra_fds(void)
{
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint64_t splitmix64(void)
{
	uint64_t z = (rng += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Append a line to the log after checking its size is what we left.
 * Returns 0, -EEXIST on a size mismatch (FAIL line written), or -errno.
 */
__attribute__((format(printf, 1, 2))) static int log_line(const char *fmt, ...)
{
	char line[512];
	struct stat st;
	va_list ap;
	int fd, ret;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	len = strlen(line);
	line[len++] = '\n';
	line[len] = 0;

	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (st.st_size != log_size) {
		dprintf(fd,
			"FAIL log is %lld bytes, expected %lld (another writer? split brain?)\n",
			(long long)st.st_size, (long long)log_size);
		fprintf(stderr, "mtouch: FAIL log size mismatch\n");
		ret = -EEXIST;
		goto out;
	}
	ret = write_all(fd, line, len);
	if (ret == 0)
		log_size += (off_t)len;
out:
	close(fd);
	return ret;
}

enum fill { FILL_RANDOM, FILL_ZERO, FILL_TEXT };
static enum fill fill_kind;

static void fill_text(uint8_t *page)
{
	static const char *const words[] = {
		"the ",	  "page ", "moves ",   "live ", "while ", "it ", "runs, ",  "and ",
		"every ", "byte ", "counts; ", "zstd ", "keeps ", "it ", "small. ", "memory "
	};
	size_t n = 0;

	while (n < PAGE) {
		uint64_t x = splitmix64();
		for (int k = 0; k < 16 && n < PAGE; k++, x >>= 4) {
			const char *w = words[x & 15];
			size_t l = strlen(w);
			l = l < PAGE - n ? l : PAGE - n;
			memcpy(page + n, w, l);
			n += l;
		}
	}
}

/* A page's contents: the first fill (@first) or a rewrite. */
static void fill_page_as(uint8_t *page, bool first)
{
	uint64_t *w = (uint64_t *)(void *)page;

	if (fill_kind == FILL_ZERO && first) {
		memset(page, 0, PAGE);
		return;
	}
	if (fill_kind == FILL_TEXT) {
		fill_text(page);
		return;
	}
	for (size_t i = 0; i < PAGE / sizeof(*w); i++)
		w[i] = splitmix64();
}

static void fill_page(uint8_t *page)
{
	fill_page_as(page, false);
}

/* The protection of page @i. */
static int prot_of(size_t i)
{
	size_t lo = 0, hi = nr_prots;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (prots[mid].page < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nr_prots && prots[lo].page == i ? prots[lo].prot : PROT_RW;
}

/* A protected page @i gets @prot (-1: its own again); others stay as they are. */
static void reprotect(uint8_t *mem, size_t i, int prot)
{
	int p = prot_of(i);

	if (p != PROT_RW && mprotect(mem + i * PAGE, PAGE, prot < 0 ? p : prot) < 0) {
		fprintf(stderr, "mtouch: mprotect page %zu: %s\n", i, strerror(errno));
		_exit(1);
	}
}

static uint64_t page_hash(uint8_t *mem, size_t i)
{
	uint64_t h;

	reprotect(mem, i, PROT_READ);
	h = XXH3_64bits(mem + i * PAGE, PAGE);
	reprotect(mem, i, -1);
	return h;
}

static void rewrite_page(uint8_t *mem, uint64_t *shadow, size_t i)
{
	reprotect(mem, i, PROT_RW);
	fill_page(mem + i * PAGE);
	shadow[i] = XXH3_64bits(mem + i * PAGE, PAGE);
	reprotect(mem, i, -1);
}

static const char *perms_of(int prot)
{
	switch (prot) {
	case PROT_NONE: return "---p";
	case PROT_WRITE: return "-w-p";
	case PROT_EXEC: return "--xp";
	default: return "rw-p";
	}
}

/* Each protected page still alone in a mapping with its protection? */
static int verify_prots(const uint8_t *mem)
{
	FILE *f = fopen("/proc/self/maps", "re");
	unsigned long start, end;
	char perms[8], line[512];
	size_t k = 0;
	int ret = 0;

	if (!nr_prots) { /* nothing protected: /proc need not be mounted */
		if (f)
			fclose(f);
		return 0;
	}
	if (!f)
		return log_line("VERIFY FAIL prot maps: %s", strerror(errno));
	while (k < nr_prots && fgets(line, sizeof(line), f)) {
		uintptr_t want = (uintptr_t)(mem + prots[k].page * PAGE);

		if (sscanf(line, "%lx-%lx %7s", &start, &end, perms) != 3 || start < want)
			continue;
		if (start == want && end == want + PAGE &&
		    !strcmp(perms, perms_of(prots[k].prot))) {
			k++;
			continue;
		}
		ret = log_line("VERIFY FAIL prot page=%zu want=%s got=%s(%lx-%lx)", prots[k].page,
			       perms_of(prots[k].prot), perms, start, end);
		break;
	}
	if (!ret && k < nr_prots)
		ret = log_line("VERIFY FAIL prot page=%zu want=%s got=nothing", prots[k].page,
			       perms_of(prots[k].prot));
	fclose(f);
	return ret ? ret : k < nr_prots ? 1 : 0;
}

static int verify(uint8_t *mem, const uint64_t *shadow, size_t pages)
{
	int64_t t0 = clock_ms(CLOCK_MONOTONIC);
	size_t bad = 0, first = 0;
	uint64_t first_got = 0;
	int ret = verify_prots(mem);

	if (ret)
		return ret < 0 ? ret : 0;
	for (size_t i = 0; i < pages; i++) {
		uint64_t h = page_hash(mem, i);

		if (h != shadow[i]) {
			if (bad++ == 0) {
				first = i;
				first_got = h;
			}
		}
	}
	if (bad == 0)
		return log_line("VERIFY PASS pages=%zu ms=%lld", pages,
				(long long)(clock_ms(CLOCK_MONOTONIC) - t0));
	return log_line("VERIFY FAIL page=%zu expected=0x%016" PRIx64 " got=0x%016" PRIx64
			" bad=%zu pages=%zu ms=%lld",
			first, shadow[first], first_got, bad, pages,
			(long long)(clock_ms(CLOCK_MONOTONIC) - t0));
}

static void usage(void)
{
	fprintf(stderr,
		"usage: mtouch --size MiB --hot MiB --rate MiB/s --log FILE\n"
		"              [--verify-signal] [--verify-every SEC] [--seed N] [--threads N]\n"
		"              [--none N] [--wronly N] [--xonly N] [--sweep MS]\n"
		"              [--shared MiB] [--memfd MiB] [--fill random|zero|text]\n");
}

static int parse_ulong(const char *s, unsigned long *ret)
{
	char *end;

	errno = 0;
	*ret = strtoul(s, &end, 10);
	return (errno || end == s || *end || s[0] == '-') ? -1 : 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "size", required_argument, NULL, 's' },
		{ "hot", required_argument, NULL, 'h' },
		{ "rate", required_argument, NULL, 'r' },
		{ "log", required_argument, NULL, 'l' },
		{ "verify-signal", no_argument, NULL, 'V' },
		{ "verify-every", required_argument, NULL, 'e' },
		{ "seed", required_argument, NULL, 'S' },
		{ "threads", required_argument, NULL, 'T' },
		{ "none", required_argument, NULL, 'N' },
		{ "wronly", required_argument, NULL, 'W' },
		{ "xonly", required_argument, NULL, 'X' },
		{ "sweep", required_argument, NULL, 'w' },
		{ "shared", required_argument, NULL, 'A' },
		{ "memfd", required_argument, NULL, 'M' },
		{ "fill", required_argument, NULL, 'F' },
		{ 0 }
	};
	unsigned long seed = 1, sweep;
	int c, bad = 0;

	o->hot_mib = ~0UL;
	o->sweep_ms = -1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': bad |= parse_ulong(optarg, &o->size_mib); break;
		case 'h': bad |= parse_ulong(optarg, &o->hot_mib); break;
		case 'r': bad |= parse_ulong(optarg, &o->rate_mib); break;
		case 'l': o->log = optarg; break;
		case 'V': break;
		case 'e': bad |= parse_ulong(optarg, &o->verify_every); break;
		case 'S': bad |= parse_ulong(optarg, &seed); break;
		case 'T': bad |= parse_ulong(optarg, &o->threads); break;
		case 'N': bad |= parse_ulong(optarg, &o->nr_prot[0]); break;
		case 'W': bad |= parse_ulong(optarg, &o->nr_prot[1]); break;
		case 'X': bad |= parse_ulong(optarg, &o->nr_prot[2]); break;
		case 'A': bad |= parse_ulong(optarg, &o->shared_mib); break;
		case 'M': bad |= parse_ulong(optarg, &o->memfd_mib); break;
		case 'w':
			bad |= parse_ulong(optarg, &sweep) | (sweep > 3600UL * 1000 ? -1 : 0);
			o->sweep_ms = (long)sweep;
			break;
		case 'F':
			if (!strcmp(optarg, "zero"))
				fill_kind = FILL_ZERO;
			else if (!strcmp(optarg, "text"))
				fill_kind = FILL_TEXT;
			else if (strcmp(optarg, "random"))
				bad = 1;
			break;
		default: return -1;
		}
	}
	if (o->hot_mib == ~0UL)
		o->hot_mib = o->size_mib;
	o->seed = seed;
	if (bad || optind != argc || !o->log || o->size_mib == 0 || o->size_mib > (1UL << 20) ||
	    o->hot_mib > o->size_mib || o->shared_mib > (1UL << 20) || o->memfd_mib > (1UL << 20) ||
	    (o->rate_mib > 0 && o->hot_mib == 0) || o->threads > 64 ||
	    (o->threads && o->hot_mib * MIB / PAGE < o->threads) ||
	    o->nr_prot[0] + o->nr_prot[1] + o->nr_prot[2] > o->size_mib * MIB / PAGE / 4)
		return -1;
	return 0;
}

/* Rewrite 'n' random pages of the hot set. */
static void touch(uint8_t *mem, uint64_t *shadow, size_t hot_pages, uint64_t n)
{
	while (n-- > 0)
		rewrite_page(mem, shadow, (size_t)(splitmix64() % hot_pages));
}

/*
 * Spread the protected pages: the k-th in the k-th of nr_prots equal
 * strides, never on a stride's first or last page (so never adjacent), of
 * a kind in random order.
 */
static int protect_pages(const struct opts *o, uint8_t *mem, size_t pages)
{
	size_t stride, n = 0;

	nr_prots = o->nr_prot[0] + o->nr_prot[1] + o->nr_prot[2];
	if (!nr_prots)
		return 0;
	if (!(prots = calloc(nr_prots, sizeof(*prots))))
		return -1;
	for (int kind = 0; kind < 3; kind++)
		for (unsigned long j = 0; j < o->nr_prot[kind]; j++)
			prots[n++].prot = prot_kinds[kind];
	for (size_t k = nr_prots; k > 1; k--) {
		size_t j = (size_t)(splitmix64() % k);
		int t = prots[k - 1].prot;

		prots[k - 1].prot = prots[j].prot;
		prots[j].prot = t;
	}
	stride = pages / nr_prots;
	for (size_t k = 0; k < nr_prots; k++) {
		prots[k].page = k * stride + 1 + (size_t)(splitmix64() % (stride - 2));
		if (mprotect(mem + prots[k].page * PAGE, PAGE, prots[k].prot) < 0)
			return -1;
	}
	return 0;
}

struct writer {
	pthread_t th;
	uint8_t *mem; /* its slice of the hot set */
	uint64_t *shadow;
	size_t pages;
	double pages_per_ns;
	uint64_t seed;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	const struct timespec period = { 0, TICK_NS };
	int64_t last = mono_ns();
	double carry = 0;

	rng = w->seed;
	while (!stop) {
		int64_t now = mono_ns(), dt = now - last;
		if (dt > 5 * TICK_NS)
			dt = 5 * TICK_NS;
		last = now;
		carry += w->pages_per_ns * (double)dt;
		if (carry >= 1) {
			pthread_rwlock_rdlock(&mem_lock);
			touch(w->mem, w->shadow, w->pages, (uint64_t)carry);
			pthread_rwlock_unlock(&mem_lock);
			carry -= (double)(uint64_t)carry;
		}
		nanosleep(&period, NULL);
	}
	return NULL;
}

/* N writers, each a slice of the hot set at RATE/N. */
static int start_writers(const struct opts *o, uint8_t *mem, uint64_t *shadow)
{
	const size_t hot_pages = o->hot_mib * MIB / PAGE;
	pthread_rwlockattr_t a;

	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&mem_lock, &a);
	for (unsigned long k = 0; k < o->threads; k++) {
		struct writer *w = calloc(1, sizeof(*w));
		size_t first = hot_pages * k / o->threads;
		if (!w)
			return -1;
		w->mem = mem + first * PAGE;
		w->shadow = shadow + first;
		w->pages = hot_pages * (k + 1) / o->threads - first;
		w->pages_per_ns = (double)o->rate_mib * MIB / PAGE / 1e9 / o->threads;
		w->seed = o->seed + k + 1;
		if (pthread_create(&w->th, NULL, writer_main, w))
			return -1;
	}
	return 0;
}

/* the sums of the passes, kept so that no pass can be optimised away */
static volatile uint64_t sweep_sum;

/* --sweep: one read of every page that has no other protection. */
static int sweep(const uint8_t *mem, size_t pages)
{
	int64_t t0 = clock_ms(CLOCK_MONOTONIC);
	uint64_t h = 0;

	for (size_t i = 0; i < pages; i++)
		if (prot_of(i) == PROT_RW)
			h ^= XXH3_64bits(mem + i * PAGE, PAGE);
	sweep_sum = h;
	return log_line("SWEEP pages=%zu ms=%lld", pages,
			(long long)(clock_ms(CLOCK_MONOTONIC) - t0));
}

static int verify_locked(uint8_t *mem, const uint64_t *shadow, size_t pages)
{
	int ret;

	pthread_rwlock_wrlock(&mem_lock);
	ret = verify(mem, shadow, pages);
	pthread_rwlock_unlock(&mem_lock);
	return ret;
}

static int run(const struct opts *o, uint8_t *mem, uint64_t *shadow)
{
	const size_t pages = o->size_mib * MIB / PAGE;
	const size_t hot_pages = o->threads ? 0 : o->hot_mib * MIB / PAGE;
	const double pages_per_ns = (double)o->rate_mib * MIB / PAGE / 1e9;
	const struct timespec period = { 0, TICK_NS };
	int64_t last = mono_ns(), next_verify = 0, next_sweep = 0, now_ms;
	double carry = 0;
	uint64_t tick = 0;
	int ret;

	if (o->threads && start_writers(o, mem, shadow) < 0) {
		fprintf(stderr, "mtouch: cannot start %lu writer threads\n", o->threads);
		return 1;
	}
	if (o->verify_every)
		next_verify = clock_ms(CLOCK_MONOTONIC) + (int64_t)o->verify_every * 1000;
	while (!stop) {
		int64_t now = mono_ns(), dt = now - last;

		/* A pause (a migration) is not made up for with a burst. */
		if (dt > 5 * TICK_NS)
			dt = 5 * TICK_NS;
		last = now;
		carry += pages_per_ns * (double)dt;
		if (hot_pages && carry >= 1) {
			touch(mem, shadow, hot_pages, (uint64_t)carry);
			carry -= (double)(uint64_t)carry;
		}
		ret = log_line("%" PRIu64 " %lld", ++tick, (long long)clock_ms(CLOCK_REALTIME));
		if (ret == 0 && o->verify_every && clock_ms(CLOCK_MONOTONIC) >= next_verify) {
			verify_req = 1;
			next_verify = clock_ms(CLOCK_MONOTONIC) + (int64_t)o->verify_every * 1000;
		}
		/* (after a migration to another host, CLOCK_MONOTONIC may be
		 * behind: a pass further off than a period is due now) */
		now_ms = clock_ms(CLOCK_MONOTONIC);
		if (ret == 0 && o->sweep_ms >= 0 &&
		    (now_ms >= next_sweep || next_sweep - now_ms > o->sweep_ms)) {
			next_sweep = now_ms + o->sweep_ms;
			ret = sweep(mem, pages);
		}
		if (ret == 0 && verify_req) {
			verify_req = 0;
			ret = o->threads ? verify_locked(mem, shadow, pages) :
					   verify(mem, shadow, pages);
		}
		if (ret == -EEXIST)
			return 3;
		if (ret < 0) {
			fprintf(stderr, "mtouch: FAIL append to %s: %s\n", log_path,
				strerror(-ret));
			return 1;
		}
		nanosleep(&period, NULL);
	}
	return 0;
}

/* @mib MiB of random data in a shared mapping: anonymous, or of a memfd */
static int map_shared(unsigned long mib, bool memfd)
{
	size_t bytes = mib * MIB;
	uint8_t *p;
	int fd = -1;

	if (!mib)
		return 0;
	if (memfd && ((fd = memfd_create("mtouch", MFD_CLOEXEC)) < 0 || ftruncate(fd, bytes) < 0))
		return -1;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | (memfd ? 0 : MAP_ANONYMOUS), fd,
		 0);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED)
		return -1;
	for (size_t i = 0; i < bytes / PAGE; i++)
		fill_page(p + i * PAGE);
	return 0;
}

static pid_t shared_child;

/* --shared, --memfd: the memory, and the child that shares it */
static int share_with_child(const struct opts *o)
{
	if (!o->shared_mib && !o->memfd_mib)
		return 0;
	if (map_shared(o->shared_mib, false) < 0 || map_shared(o->memfd_mib, true) < 0)
		return -1;
	shared_child = fork();
	if (shared_child == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		while (!stop)
			pause();
		_exit(0);
	}
	return shared_child < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa_stop = { .sa_handler = on_stop };
	struct sigaction sa_usr1 = { .sa_handler = on_usr1 };
	struct opts o = { 0 };
	size_t pages, bytes;
	uint8_t *mem;
	uint64_t *shadow;
	struct stat st;
	int64_t t0;
	int ret;

	if (parse_opts(argc, argv, &o) < 0) {
		usage();
		return 2;
	}
	close_extra_fds();
	log_path = o.log;
	rng = o.seed;
	if (stat(log_path, &st) == 0 && st.st_size != 0) {
		fprintf(stderr, "mtouch: %s is not empty\n", log_path);
		return 2;
	}
	/* Install before the fill: an early SIGUSR1 must not kill us. */
	sigaction(SIGTERM, &sa_stop, NULL);
	sigaction(SIGINT, &sa_stop, NULL);
	sigaction(SIGUSR1, &sa_usr1, NULL);
	if (share_with_child(&o) < 0) {
		perror("mtouch: shared memory");
		return 1;
	}

	bytes = o.size_mib * MIB;
	pages = bytes / PAGE;
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	shadow = mmap(NULL, pages * sizeof(*shadow), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || shadow == MAP_FAILED) {
		perror("mtouch: mmap");
		return 1;
	}
	t0 = clock_ms(CLOCK_MONOTONIC);
	for (size_t i = 0; i < pages; i++) {
		fill_page_as(mem + i * PAGE, true);
		shadow[i] = XXH3_64bits(mem + i * PAGE, PAGE);
	}
	if (protect_pages(&o, mem, pages) < 0) {
		perror("mtouch: mprotect");
		return 1;
	}
	ret = log_line("READY pages=%zu hot_pages=%zu base=%p fill_ms=%lld protected=%zu", pages,
		       o.hot_mib * MIB / PAGE, (void *)mem,
		       (long long)(clock_ms(CLOCK_MONOTONIC) - t0), nr_prots);
	if (ret < 0) {
		fprintf(stderr, "mtouch: append to %s: %s\n", log_path, strerror(-ret));
		return 1;
	}
	ret = run(&o, mem, shadow);
	if (shared_child > 0)
		kill(shared_child, SIGTERM);
	/* writers may be mid-page: do not let them see the memory go */
	_exit(ret);
}
