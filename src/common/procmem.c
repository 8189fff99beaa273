/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "procmem: "
#include "common/procmem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/page.h"
#include "common/rangeset.h"
#include "common/util.h"

void procmem_init(struct procmem *pm, pid_t pid)
{
	*pm = (struct procmem)PROCMEM_INIT(pid);
}

static int open_mem(struct procmem *pm)
{
	char path[32];

	if (pm->memfd >= 0)
		close(pm->memfd);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pm->pid);
	pm->memfd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm->memfd >= 0)
		return 0;
	if (errno == ENOENT || errno == ESRCH)
		return -ESRCH;
	pr_perror("cannot open %s", path);
	return -errno;
}

/*
 * [addr, addr + len) through /proc/PID/mem: bytes read (short at the
 * first page that is not mapped), or -errno.
 */
static ssize_t forced_read(struct procmem *pm, uint64_t addr, uint8_t *buf, size_t len)
{
	bool reopened = false;
	size_t done = 0;
	int r;

	if (pm->memfd < 0 && (r = open_mem(pm)) < 0)
		return r;
	while (done < len) {
		ssize_t got = pread(pm->memfd, buf + done, len - done, (off_t)(addr + done));

		if (got < 0 && errno == EINTR)
			continue;
		if (got > 0) {
			done += (size_t)got;
			continue;
		}
		/* 0: the address space the fd was opened on is gone (exec) */
		if (got == 0 && !reopened) {
			reopened = true;
			if ((r = open_mem(pm)) < 0)
				return r;
			continue;
		}
		break; /* EIO: not mapped */
	}
	pm->forced += done;
	return (ssize_t)done;
}

ssize_t procmem_readv(struct procmem *pm, const struct iovec *local, const struct iovec *remote,
		      size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++) {
		ssize_t got = forced_read(pm, (uint64_t)(uintptr_t)remote[i].iov_base,
					  local[i].iov_base, remote[i].iov_len);
		if (got < 0)
			return got;
		total += (size_t)got;
		if ((size_t)got < remote[i].iov_len)
			break; /* not mapped */
	}
	return (ssize_t)total;
}

ssize_t procmem_read(struct procmem *pm, uint64_t addr, void *buf, size_t len)
{
	return forced_read(pm, addr, buf, len);
}

void procmem_close(struct procmem *pm)
{
	if (pm->memfd >= 0)
		close(pm->memfd);
	pm->memfd = -1;
}

bool procmem_can_force(void)
{
	static int ok = -1;
	struct procmem pm = PROCMEM_INIT(getpid());
	uint64_t want = 0x70686175ull, got = 0;
	uint64_t *page;

	if (ok >= 0)
		return ok;
	page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page == MAP_FAILED)
		return false; /* not known: asked again next time */
	*page = want;
	ok = mprotect(page, PAGE, PROT_NONE) == 0 &&
	     procmem_read(&pm, (uintptr_t)page, &got, sizeof(got)) == sizeof(got) && got == want;
	procmem_close(&pm);
	munmap(page, PAGE);
	if (!ok)
		pr_warn("/proc/PID/mem does not read pages of mappings without read permission here");
	return ok;
}

/* A /proc/PID/smaps header line: 1 for a private mapping without read
 * permission, 0 for another mapping, -1 for a field line. */
static int unreadable_private(const char *line, uint64_t *start, uint64_t *end)
{
	unsigned long long s, e;
	char perms[5];
	int name = 0;

	if (sscanf(line, "%llx-%llx %4s %*x %*x:%*x %*u %n", &s, &e, perms, &name) < 3)
		return -1;
	if (perms[0] == 'r' || perms[3] != 'p')
		return 0;
	line += name;
	/* the kernel's own: [vsyscall] is exec-only, and never dumped */
	if (name && (!strncmp(line, "[vsyscall]", 10) || !strncmp(line, "[vvar", 5) ||
		     !strncmp(line, "[vdso]", 6) || !strncmp(line, "[uprobes]", 9)))
		return 0;
	*start = s;
	*end = e;
	return 1;
}

/* A field line of smaps saying the mapping holds anonymous pages. */
static bool has_anon(const char *line)
{
	unsigned long kb;

	return (sscanf(line, "Anonymous: %lu kB", &kb) == 1 ||
		sscanf(line, "Swap: %lu kB", &kb) == 1) &&
	       kb > 0;
}

int procmem_find_unreadable(pid_t pid, uint64_t *start, uint64_t *end)
{
	_cleanup_free_ char *line = NULL;
	bool in = false;
	char path[48];
	size_t len = 0;
	int r = 0, h;
	FILE *f;

	/* smaps, not pagemap: the kernel skips what was never populated
	 * (terabytes of PROT_NONE reservations cost nothing) */
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	if (!(f = fopen(path, "re")))
		return errno == ENOENT ? -ESRCH : -errno;
	while (r == 0 && getline(&line, &len, f) > 0) {
		if ((h = unreadable_private(line, start, end)) >= 0)
			in = h;
		else if (in && has_anon(line))
			r = 1;
	}
	fclose(f);
	return r;
}

/* One maps line: its range, and the rest (perms, offset, dev, inode, name)
 * with the spaces squeezed, into @rest. */
static bool maps_line(const char *line, uint64_t *s, uint64_t *e, char *rest, size_t len)
{
	unsigned long long a, b;
	size_t n = 0;
	int off = 0;

	if (sscanf(line, "%llx-%llx %n", &a, &b, &off) < 2 || !off)
		return false;
	for (line += off; *line && *line != '\n' && n + 1 < len; line++)
		if (*line != ' ' || (n && rest[n - 1] != ' '))
			rest[n++] = *line;
	while (n && rest[n - 1] == ' ') /* no name: the inode ends it */
		n--;
	rest[n] = '\0';
	*s = a;
	*e = b;
	return true;
}

int procmem_maps_where(const char *maps, uint64_t addr, char *buf, size_t len)
{
	char rest[160], below[200] = "", above[200] = "";
	uint64_t s, e;

	for (const char *l = maps, *nl; l && *l; l = nl ? nl + 1 : NULL) {
		nl = strchr(l, '\n');
		if (!maps_line(l, &s, &e, rest, sizeof(rest)))
			continue;
		if (addr >= s && addr < e) {
			snprintf(buf, len, "in %llx-%llx %s", (unsigned long long)s,
				 (unsigned long long)e, rest);
			return 1;
		}
		if (e <= addr)
			snprintf(below, sizeof(below), "%llx-%llx %s", (unsigned long long)s,
				 (unsigned long long)e, rest);
		else if (!above[0])
			snprintf(above, sizeof(above), "%llx-%llx %s", (unsigned long long)s,
				 (unsigned long long)e, rest);
	}
	if (below[0] && above[0])
		snprintf(buf, len, "unmapped, between %s and %s", below, above);
	else if (below[0] || above[0])
		snprintf(buf, len, "unmapped, %s %s", below[0] ? "above" : "below",
			 below[0] ? below : above);
	else
		snprintf(buf, len, "no mapping at all");
	return 0;
}

void procmem_explain(pid_t pid, uint64_t addr, char *buf, size_t len)
{
	_cleanup_free_ char *stat = NULL, *maps = NULL;
	char path[48], where[480];
	const char *paren;
	char state = '?';

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, 4096, &stat, NULL) < 0) {
		snprintf(buf, len, "host PID %d is gone", (int)pid);
		return;
	}
	/* the state follows the command, which may hold ") " itself */
	if ((paren = strrchr(stat, ')')) && paren[1] == ' ')
		state = paren[2];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if (read_file(path, 1 << 22, &maps, NULL) < 0)
		snprintf(where, sizeof(where), "its maps unreadable");
	else
		procmem_maps_where(maps, addr, where, sizeof(where));
	snprintf(buf, len, "host PID %d, state %c, 0x%llx %s", (int)pid, state,
		 (unsigned long long)addr, where);
}

int procmem_maps_ranges(const char *maps, struct rangeset *out)
{
	char rest[8];
	uint64_t s, e;
	int r = 0;

	for (const char *l = maps, *nl; r == 0 && l && *l; l = nl ? nl + 1 : NULL) {
		nl = strchr(l, '\n');
		if (maps_line(l, &s, &e, rest, sizeof(rest)) && s < e)
			r = rangeset_add(out, s, e);
	}
	return r;
}
