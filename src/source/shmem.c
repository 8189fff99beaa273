/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "shmem: "
#include "source/shmem.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "proto/msg.h"
#include "proto/pageframe.h"

#define CHUNK_PAGES MSG_RUN_PAGES_MAX

#define DELETED " (deleted)"
#define MEMFD "/memfd:"

bool shm_maps_line(const char *line, uint64_t *start, uint64_t *end, uint64_t *ino, char *name,
		   size_t len)
{
	unsigned long long a, b, i;
	const char *path;
	char perms[8];
	size_t n = 0, d = strlen(DELETED);
	int at = 0;

	if (sscanf(line, "%llx-%llx %7s %*x %*x:%*x %llu %n", &a, &b, perms, &i, &at) != 4 ||
	    strlen(perms) != 4 || perms[3] != 's' || !i || b <= a)
		return false;
	path = line + at;
	n = strcspn(path, "\n");
	/* what the kernel shows of an unlinked shmem file: no other file */
	if (n < d || strncmp(path + n - d, DELETED, d))
		return false;
	n -= d;
	if (n == strlen("/dev/zero") && !strncmp(path, "/dev/zero", n)) {
		/* MAP_SHARED|MAP_ANONYMOUS: CRIU restores a memfd so named */
	} else if (n >= strlen(MEMFD) && !strncmp(path, MEMFD, strlen(MEMFD))) {
		path += strlen(MEMFD);
		n -= strlen(MEMFD);
	} else {
		return false;
	}
	if (n >= len)
		return false;
	memcpy(name, path, n);
	name[n] = '\0';
	*start = a;
	*end = b;
	*ino = i;
	return true;
}

static struct shm_obj *find(struct shm_set *s, uint64_t ino)
{
	for (size_t i = 0; i < s->nr; i++)
		if (s->o[i].ino == ino)
			return &s->o[i];
	return NULL;
}

/* Whether @fd is the shmem object @ino (not hugetlbfs: CRIU's own then). */
static bool is_shmem(int fd, uint64_t ino)
{
	struct statfs sfs;
	struct stat st;

	return fstat(fd, &st) == 0 && (uint64_t)st.st_ino == ino && fstatfs(fd, &sfs) == 0 &&
	       sfs.f_type == TMPFS_MAGIC;
}

static int add(struct shm_set *s, pid_t pid, uint64_t start, uint64_t end, uint64_t ino,
	       const char *name)
{
	char path[64];
	struct shm_obj *v;
	struct stat st;
	int fd, seals;

	if (s->nr >= MSG_SHMEM_MAX)
		return 0; /* CRIU dumps the rest */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, start, end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
	if (fd < 0 || !is_shmem(fd, ino) || seals < 0 || fstat(fd, &st) < 0) {
		pr_debug("%s: %s: left to CRIU", path,
			 fd < 0 || seals < 0 ? strerror(errno) : "not a shmem object");
		if (fd >= 0)
			close(fd);
		return 0;
	}
	v = realloc(s->o, (s->nr + 1) * sizeof(*v));
	if (!v) {
		close(fd);
		return -ENOMEM;
	}
	s->o = v;
	v = &s->o[s->nr++];
	memset(v, 0, sizeof(*v));
	v->ino = ino;
	v->fd = fd;
	v->seals = (uint32_t)seals;
	snprintf(v->name, sizeof(v->name), "%s", name);
	pr_info("pre-copying shared memory %" PRIu64 " (%" PRIu64 " KiB), mapped by PID %d", ino,
		(uint64_t)st.st_size >> 10, pid);
	return 0;
}

static int scan_one(struct shm_set *s, pid_t pid)
{
	char path[32], line[1024], name[256];
	uint64_t a, b, ino;
	FILE *f;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return 0; /* exited: CRIU will not dump it */
	while (r == 0 && fgets(line, sizeof(line), f))
		if (shm_maps_line(line, &a, &b, &ino, name, sizeof(name)) && !find(s, ino))
			r = add(s, pid, a, b, ino, name);
	fclose(f);
	return r;
}

int shm_scan(struct shm_set *s, const pid_t *pids, size_t nr)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < nr; i++)
		r = scan_one(s, pids[i]);
	return r;
}

/* The object's size now; the per-page arrays grow with it. */
static int resize(struct shm_obj *o)
{
	struct stat st;
	uint64_t pages;
	uint64_t *h;
	uint8_t *sent;

	if (fstat(o->fd, &st) < 0)
		return -errno;
	o->size = (uint64_t)st.st_size;
	pages = ((uint64_t)st.st_size + PAGE - 1) / PAGE;
	if (pages <= o->pages)
		return 0;
	h = realloc(o->hash, pages * sizeof(*h));
	if (!h)
		return -ENOMEM;
	o->hash = h;
	sent = realloc(o->sent, pages);
	if (!sent)
		return -ENOMEM;
	o->sent = sent;
	memset(o->sent + o->pages, 0, pages - o->pages);
	o->pages = pages;
	return 0;
}

/* The next run of data at or after page @pos: [*a, *b), or none (*a = *b). */
static int next_data(const struct shm_obj *o, uint64_t pos, uint64_t *a, uint64_t *b)
{
	off_t d = lseek(o->fd, (off_t)(pos * PAGE), SEEK_DATA), h;

	*a = *b = o->pages;
	if (d < 0)
		return errno == ENXIO ? 0 : -errno;
	h = lseek(o->fd, d, SEEK_HOLE);
	if (h < 0)
		return -errno;
	*a = MIN((uint64_t)d / PAGE, o->pages);
	*b = MIN(((uint64_t)h + PAGE - 1) / PAGE, o->pages);
	return 0;
}

/* Pages [pos, pos + n) into @buf; how many could be read (the object may
 * have shrunk since). */
static uint64_t read_pages(const struct shm_obj *o, uint64_t pos, uint64_t n, uint8_t *buf)
{
	ssize_t got = pread(o->fd, buf, n * PAGE, (off_t)(pos * PAGE));

	if (got <= 0)
		return 0;
	if (got % PAGE) /* the last page of an object not a page long */
		memset(buf + got, 0, PAGE - (size_t)got % PAGE);
	return ((uint64_t)got + PAGE - 1) / PAGE;
}

static int collect_one(struct shm_obj *o, uint8_t *buf, uint64_t *dirty, uint64_t *seen)
{
	uint64_t pos = 0, a, b;
	int r = resize(o);

	rangeset_clear(&o->pending);
	while (r == 0 && pos < o->pages) {
		r = next_data(o, pos, &a, &b);
		for (pos = a; r == 0 && pos < b;) {
			uint64_t got = read_pages(o, pos, MIN(b - pos, (uint64_t)CHUNK_PAGES), buf);
			if (!got) {
				pos = b;
				break;
			}
			for (uint64_t i = 0; r == 0 && i < got; i++) {
				uint64_t p = pos + i, h = XXH3_64bits(buf + i * PAGE, PAGE);
				if (o->sent[p] && o->hash[p] == h)
					continue;
				r = rangeset_add(&o->pending, p * PAGE, (p + 1) * PAGE);
				(*dirty)++;
			}
			*seen += got;
			pos += got;
		}
		if (a >= o->pages)
			break;
	}
	return r;
}

int shm_collect(struct shm_set *s, uint64_t *dirty)
{
	uint8_t *buf = malloc(CHUNK_PAGES * PAGE);
	int r = buf ? 0 : -ENOMEM;

	*dirty = 0;
	for (size_t i = 0; r == 0 && i < s->nr; i++) {
		r = collect_one(&s->o[i], buf, dirty, &s->seen);
		if (r < 0)
			pr_err("reading shared memory %" PRIu64 ": %s", s->o[i].ino, strerror(-r));
	}
	free(buf);
	return r;
}

static void *collect_thread(void *arg)
{
	struct shm_set *s = arg;

	s->result = shm_collect(s, &s->dirty);
	return NULL;
}

int shm_collect_start(struct shm_set *s)
{
	int r;

	if (s->running)
		return -EBUSY;
	r = -pthread_create(&s->thread, NULL, collect_thread, s);
	if (r < 0)
		return r;
	s->running = true;
	return 0;
}

int shm_collect_wait(struct shm_set *s, uint64_t *dirty)
{
	*dirty = 0;
	if (!s->running)
		return 0;
	pthread_join(s->thread, NULL);
	s->running = false;
	*dirty = s->dirty;
	return s->result;
}

static int send_chunk(struct shm_obj *o, struct conn *c, uint64_t pos, uint64_t n,
		      const uint8_t *buf)
{
	Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
	int r;

	for (uint64_t i = 0; i < n; i++) {
		o->hash[pos + i] = XXH3_64bits(buf + i * PAGE, PAGE);
		o->sent[pos + i] = 1;
	}
	pr.pid = 0;
	pr.has_shmid = true;
	pr.shmid = o->ino;
	pr.has_shm_size = true;
	pr.shm_size = o->size;
	if (!o->announced) { /* what the destination needs to make its copy */
		pr.shm_name = o->name;
		pr.has_shm_seals = true;
		pr.shm_seals = o->seals;
	}
	pr.vaddr = pos * PAGE;
	pr.nr_pages = (uint32_t)n;
	r = msg_send_page_run(c, &pr);
	o->announced |= r == 0;
	return r < 0 ? r : pages_send(c, buf, n * PAGE);
}

static int send_one(struct shm_obj *o, struct conn *c, uint8_t *buf, uint64_t *pages)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < o->pending.nr; i++) {
		uint64_t pos = o->pending.r[i].start / PAGE, end = o->pending.r[i].end / PAGE;
		/* the fault: a source that never sends a page it will say is
		 * in the parent (the destination must refuse to restore) */
		if (pos == 0 && fault_point("src.shmskip") < 0)
			pos++;
		while (r == 0 && pos < end) {
			uint64_t got = read_pages(o, pos, MIN(end - pos, (uint64_t)CHUNK_PAGES),
						  buf);
			if (!got) /* shrunk since: CRIU will not dump it either */
				break;
			r = send_chunk(o, c, pos, got, buf);
			*pages += got;
			pos += got;
		}
	}
	rangeset_clear(&o->pending);
	return r;
}

int shm_send(struct shm_set *s, struct conn *c, uint8_t *buf, uint64_t *pages)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < s->nr; i++) {
		r = send_one(&s->o[i], c, buf, pages);
		if (r < 0)
			pr_err("sending shared memory %" PRIu64 ": %s", s->o[i].ino, strerror(-r));
	}
	return r;
}

int shm_write_list(const struct shm_set *s, const char *path)
{
	FILE *f = fopen(path, "we");
	int r = 0;

	if (!f)
		return -errno;
	for (size_t i = 0; i < s->nr; i++)
		fprintf(f, "%" PRIu64 "\n", s->o[i].ino);
	if (fflush(f) != 0 || ferror(f))
		r = -EIO;
	if (fclose(f) != 0 && r == 0)
		r = -errno;
	return r;
}

void shm_free(struct shm_set *s)
{
	uint64_t dirty;

	shm_collect_wait(s, &dirty);
	for (size_t i = 0; i < s->nr; i++) {
		close(s->o[i].fd);
		free(s->o[i].hash);
		free(s->o[i].sent);
		rangeset_free(&s->o[i].pending);
	}
	free(s->o);
	memset(s, 0, sizeof(*s));
}
