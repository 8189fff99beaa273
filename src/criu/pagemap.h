/* SPDX-License-Identifier: MIT */
/*
 * pagemap: CRIU's pagemap-PID.img, the list of a process's memory runs
 * and where each run's contents are: in this image set's pages-N.img
 * (PE_PRESENT, in entry order), in the parent image set (PE_PARENT), or
 * to be restored lazily (PE_LAZY).
 *
 * pagemap_parse() takes untrusted bytes (images come over the network):
 * it checks the magics, every record's length, that runs are page
 * aligned, non-empty, sorted and non-overlapping, and caps the count.
 */
#ifndef PHAUL_PAGEMAP_H
#define PHAUL_PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

#include "criu/imgfile.h"

#define PE_PARENT (1u << 0)
#define PE_LAZY (1u << 1)
#define PE_PRESENT (1u << 2)

#define CRIU_PAGEMAP_MAGIC 0x56084025u
#define PAGEMAP_MAX_ENTRIES (4u << 20)

struct pm_entry {
	uint64_t vaddr;
	uint32_t nr_pages;
	uint32_t flags;
};

struct pagemap {
	uint32_t pages_id;
	struct pm_entry *e;
	size_t nr;
	size_t cap;
};

int pagemap_parse(const uint8_t *buf, size_t len, struct pagemap *ret);
int pagemap_read(int dirfd, const char *name, struct pagemap *ret);
int pagemap_write(int dirfd, const char *name, const struct pagemap *pm);
/* Append a run after the last one (merged with it when adjacent and alike). */
int pagemap_add(struct pagemap *pm, uint64_t vaddr, uint32_t nr_pages, uint32_t flags);
/*
 * Cut every lazy run (PE_LAZY without PE_PRESENT) longer than @max_pages
 * into runs of at most @max_pages: criu lazy-pages sizes a buffer by its
 * longest run (and CRIU <= 4.1 keeps that length in an int). Returns how
 * many runs were added, or -E2BIG / -ENOMEM (@pm unchanged then).
 */
int pagemap_split_lazy(struct pagemap *pm, uint32_t max_pages);
void pagemap_free(struct pagemap *pm);
/*
 * Call @fn for every pagemap-PID.img of the image directory @dirfd, with
 * the PID and the file's name, until one returns non-zero (returned).
 */
int pagemap_each(int dirfd, int (*fn)(void *arg, int pid, const char *name), void *arg);
/* The same for every pagemap-shmem-SHMID.img (a shared memory object's). */
int pagemap_each_shmem(int dirfd, int (*fn)(void *arg, uint64_t shmid, const char *name),
		       void *arg);
/* Pages with PE_PRESENT, i.e. the size of pages-N.img in pages. */
uint64_t pagemap_present_pages(const struct pagemap *pm);

#endif
