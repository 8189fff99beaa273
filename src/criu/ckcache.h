/* SPDX-License-Identifier: MIT */
/*
 * ckcache: what CRIU's checks answered on this host a moment ago.
 *
 * Every migration's preflight asks CRIU the same questions on both hosts:
 * its version, `criu check`, this CPU's cpuinfo.img, and whether this CPU
 * has the source CPU's features. Each costs a CRIU run (`criu check` some
 * 30-70 ms), and they are the fixed cost of a migration that moves little
 * memory, again and again for an evacuation that moves many workloads
 * one after another. Their answers are kept here, for CKCACHE_TTL_S
 * seconds, under a key made of:
 *   - the boot (/proc/sys/kernel/random/boot_id): a new kernel asks again;
 *   - the CRIU binary (its path and the dev, inode, size and mtime of the
 *     file): a new CRIU asks again;
 *   - the caller's namespaces (mnt, net, pid, user, ipc, uts, cgroup) and
 *     effective UID: a container or another test host asks on its own;
 *   - the question, and what it is asked of (the source's cpuinfo.img).
 * Only answers that passed are kept: a failing check is asked every time,
 * and so says why every time. A check that would now fail though a kept
 * answer says it passed (a sysctl changed since) costs nothing but the
 * early refusal: CRIU's dump or restore fails and the migration rolls
 * back as it would have without the preflight.
 *
 * The entries live in $PHAUL_RUNDIR (/run/phaul), which must be the
 * caller's own and writable by nobody else; anything else there, a stale
 * or a short entry, is a miss. PHAUL_CRIU_CACHE=0 turns it off.
 */
#ifndef PHAUL_CKCACHE_H
#define PHAUL_CKCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKCACHE_TTL_S 600

/* An entry's name: the hash of its key, as hex. */
struct ckkey {
	char name[40];
};

/*
 * The key of question @what about @about (@len bytes, may be 0) asked of
 * the CRIU binary at @criu: false when the cache is off or the key cannot
 * be made (@criu not an absolute path to a file).
 */
bool ckcache_key(struct ckkey *k, const char *criu, const char *what, const void *about,
		 size_t len);
/*
 * A kept answer: true, with its payload (malloc'ed, *len bytes; NULL and
 * 0 for an empty one) and its age in seconds. Never fails but by missing.
 */
bool ckcache_get(const struct ckkey *k, uint8_t **data, size_t *len, long *age_s);
/* Keep an answer that passed (@len bytes of @data); failures only logged
 * at debug level, a cache that cannot be written is a cache that misses. */
void ckcache_put(const struct ckkey *k, const void *data, size_t len);

#endif
