/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pagemap: "
#include "criu/pagemap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "criu/imgfile.h"
#include "criu-image.pb-c.h"

#define RECORD_MAX 1024u
#define FILE_MAX (256u << 20)

int pagemap_add(struct pagemap *pm, uint64_t vaddr, uint32_t nr_pages, uint32_t flags)
{
	struct pm_entry *last = pm->nr ? &pm->e[pm->nr - 1] : NULL;

	if (last && last->flags == flags &&
	    last->vaddr + (uint64_t)last->nr_pages * PAGE == vaddr &&
	    (uint64_t)last->nr_pages + nr_pages <= UINT32_MAX) {
		last->nr_pages += nr_pages;
		return 0;
	}
	if (pm->nr == pm->cap) {
		size_t cap = pm->cap ? pm->cap * 2 : 64;
		struct pm_entry *e;
		if (cap > PAGEMAP_MAX_ENTRIES)
			return -E2BIG;
		e = realloc(pm->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		pm->e = e;
		pm->cap = cap;
	}
	pm->e[pm->nr++] = (struct pm_entry){ vaddr, nr_pages, flags };
	return 0;
}

static int check_entry(const struct pagemap *pm, const Cimg__PagemapEntry *pe)
{
	const struct pm_entry *last = pm->nr ? &pm->e[pm->nr - 1] : NULL;
	uint64_t end;

	if (pe->vaddr % PAGE || pe->nr_pages == 0)
		return -EINVAL;
	end = pe->vaddr + (uint64_t)pe->nr_pages * PAGE;
	if (end <= pe->vaddr || end > (1ULL << 57))
		return -EINVAL;
	if (last && pe->vaddr < last->vaddr + (uint64_t)last->nr_pages * PAGE)
		return -EINVAL;
	if (pe->flags & ~(PE_PARENT | PE_LAZY | PE_PRESENT))
		return -EINVAL;
	return 0;
}

static uint32_t entry_flags(const Cimg__PagemapEntry *pe)
{
	if (pe->has_flags)
		return pe->flags;
	return pe->has_in_parent && pe->in_parent ? PE_PARENT : PE_PRESENT;
}

static int parse_entries(const uint8_t *buf, size_t len, size_t off, struct pagemap *pm)
{
	const uint8_t *rec;
	uint32_t rlen;
	int r;

	while ((r = img_next_record(buf, len, &off, &rec, &rlen, RECORD_MAX)) > 0) {
		Cimg__PagemapEntry *pe = cimg__pagemap_entry__unpack(NULL, rlen, rec);
		if (!pe)
			return -EINVAL;
		r = check_entry(pm, pe);
		if (r == 0)
			r = pm->nr < PAGEMAP_MAX_ENTRIES ?
				    pagemap_add(pm, pe->vaddr, pe->nr_pages, entry_flags(pe)) :
				    -E2BIG;
		cimg__pagemap_entry__free_unpacked(pe, NULL);
		if (r < 0)
			return r;
	}
	return r;
}

int pagemap_parse(const uint8_t *buf, size_t len, struct pagemap *ret)
{
	struct pagemap pm = { 0 };
	Cimg__PagemapHead *h;
	const uint8_t *rec;
	uint32_t rlen;
	size_t off = 8;
	int r;

	if (!img_has_magic(buf, len, CRIU_PAGEMAP_MAGIC) ||
	    img_next_record(buf, len, &off, &rec, &rlen, RECORD_MAX) <= 0)
		return -EINVAL;
	h = cimg__pagemap_head__unpack(NULL, rlen, rec);
	if (!h)
		return -EINVAL;
	pm.pages_id = h->pages_id;
	cimg__pagemap_head__free_unpacked(h, NULL);
	r = parse_entries(buf, len, off, &pm);
	if (r < 0) {
		pagemap_free(&pm);
		return r;
	}
	*ret = pm;
	return 0;
}

int pagemap_read(int dirfd, const char *name, struct pagemap *ret)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int r = img_read_file(dirfd, name, FILE_MAX, &buf, &len);

	if (r < 0)
		return r;
	r = pagemap_parse(buf, len, ret);
	if (r < 0)
		pr_err("%s is not a valid CRIU pagemap", name);
	return r;
}

static int put_record(int fd, const ProtobufCMessage *m)
{
	uint8_t buf[4 + RECORD_MAX];
	uint32_t n = protobuf_c_message_get_packed_size(m);

	if (n > RECORD_MAX)
		return -EMSGSIZE;
	memcpy(buf, &n, 4);
	protobuf_c_message_pack(m, buf + 4);
	return write_full(fd, buf, 4 + n);
}

static int write_all(int fd, const struct pagemap *pm)
{
	uint32_t magic[2] = { CRIU_IMG_COMMON_MAGIC, CRIU_PAGEMAP_MAGIC };
	Cimg__PagemapHead h = CIMG__PAGEMAP_HEAD__INIT;
	int r = write_full(fd, magic, sizeof(magic));

	h.pages_id = pm->pages_id;
	if (r == 0)
		r = put_record(fd, &h.base);
	for (size_t i = 0; r == 0 && i < pm->nr; i++) {
		Cimg__PagemapEntry pe = CIMG__PAGEMAP_ENTRY__INIT;
		pe.vaddr = pm->e[i].vaddr;
		pe.nr_pages = pm->e[i].nr_pages;
		pe.has_flags = true;
		pe.flags = pm->e[i].flags;
		r = put_record(fd, &pe.base);
	}
	return r;
}

int pagemap_write(int dirfd, const char *name, const struct pagemap *pm)
{
	_cleanup_close_ int fd =
		openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int r;

	if (fd < 0) {
		pr_perror("cannot create %s", name);
		return -errno;
	}
	r = write_all(fd, pm);
	if (r < 0)
		pr_err("cannot write %s: %s", name, strerror(-r));
	return r;
}

static bool lazy_only(const struct pm_entry *e)
{
	return (e->flags & PE_LAZY) && !(e->flags & PE_PRESENT);
}

int pagemap_split_lazy(struct pagemap *pm, uint32_t max_pages)
{
	size_t nr = 0, k = 0;
	struct pm_entry *e;

	if (!max_pages)
		return -EINVAL;
	for (size_t i = 0; i < pm->nr; i++)
		nr += lazy_only(&pm->e[i]) ? (pm->e[i].nr_pages - 1) / max_pages + 1 : 1;
	if (nr == pm->nr)
		return 0;
	if (nr > PAGEMAP_MAX_ENTRIES)
		return -E2BIG;
	if (!(e = malloc(nr * sizeof(*e))))
		return -ENOMEM;
	for (size_t i = 0; i < pm->nr; i++) {
		struct pm_entry run = pm->e[i];

		while (lazy_only(&run) && run.nr_pages > max_pages) {
			e[k] = run;
			e[k++].nr_pages = max_pages;
			run.vaddr += (uint64_t)max_pages * PAGE;
			run.nr_pages -= max_pages;
		}
		e[k++] = run;
	}
	free(pm->e);
	pm->e = e;
	pm->cap = nr;
	nr -= pm->nr;
	pm->nr = k;
	return (int)nr;
}

void pagemap_free(struct pagemap *pm)
{
	free(pm->e);
	memset(pm, 0, sizeof(*pm));
}

uint64_t pagemap_present_pages(const struct pagemap *pm)
{
	uint64_t n = 0;

	for (size_t i = 0; i < pm->nr; i++)
		if (pm->e[i].flags & PE_PRESENT)
			n += pm->e[i].nr_pages;
	return n;
}

/* @fn for every file of @dirfd named @prefix, a number, ".img". */
static int each_numbered(int dirfd, const char *prefix,
			 int (*fn)(void *arg, uint64_t id, const char *name), void *arg)
{
	size_t len = strlen(prefix);
	DIR *d = opendir_at(dirfd);
	struct dirent *de;
	unsigned long long id;
	int r = 0;

	if (!d)
		return -errno;
	while (r == 0 && (de = readdir(d))) {
		char tail;
		if (!strncmp(de->d_name, prefix, len) &&
		    sscanf(de->d_name + len, "%llu.im%c", &id, &tail) == 2 && tail == 'g')
			r = fn(arg, id, de->d_name);
	}
	closedir(d);
	return r;
}

struct each_pid {
	int (*fn)(void *arg, int pid, const char *name);
	void *arg;
};

static int each_pid_one(void *arg, uint64_t id, const char *name)
{
	const struct each_pid *e = arg;

	return id > INT_MAX ? 0 : e->fn(e->arg, (int)id, name);
}

int pagemap_each(int dirfd, int (*fn)(void *arg, int pid, const char *name), void *arg)
{
	struct each_pid e = { fn, arg };

	return each_numbered(dirfd, "pagemap-", each_pid_one, &e);
}

int pagemap_each_shmem(int dirfd, int (*fn)(void *arg, uint64_t shmid, const char *name), void *arg)
{
	return each_numbered(dirfd, "pagemap-shmem-", fn, arg);
}
