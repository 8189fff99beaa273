/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "proc: "
#include "common/proc.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

struct pidvec {
	int32_t *v;
	size_t nr, cap;
};

static int pidvec_push(struct pidvec *pv, int32_t pid)
{
	if (pv->nr == pv->cap) {
		size_t cap = pv->cap ? pv->cap * 2 : 64;
		int32_t *v = realloc(pv->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		pv->v = v;
		pv->cap = cap;
	}
	pv->v[pv->nr++] = pid;
	return 0;
}

/* Fields 3 (state), 4 (ppid) and 7 (tty_nr) of /proc/PID/stat. */
static int proc_stat_fields(pid_t pid, char *state, pid_t *ppid, int *tty)
{
	char path[64];
	_cleanup_free_ char *buf = NULL;
	char *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, 4096, &buf, NULL) < 0)
		return -ESRCH;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c %d %*d %*d %d", state, ppid, tty) != 3)
		return -EINVAL;
	return 0;
}

int proc_maps_sysv(const char *maps, unsigned long *key)
{
	for (const char *l = maps; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		const char *p = memchr(l, '/', strcspn(l, "\n"));
		char *end;

		if (!p || strncmp(p, "/SYSV", 5))
			continue;
		errno = 0;
		*key = strtoul(p + 5, &end, 16);
		if (errno || end != p + 13)
			continue;
		return 0;
	}
	return -ENOENT;
}

int proc_shares_ns(pid_t pid, const char *ns)
{
	char path[64], theirs[64], ours[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns);
	n = readlink(path, theirs, sizeof(theirs) - 1);
	if (n < 0)
		return -errno;
	theirs[n] = '\0';
	snprintf(path, sizeof(path), "/proc/self/ns/%s", ns);
	n = readlink(path, ours, sizeof(ours) - 1);
	if (n < 0)
		return -errno;
	ours[n] = '\0';
	return !strcmp(theirs, ours);
}

int proc_host_sysv_shm(pid_t pid, unsigned long *key)
{
	_cleanup_free_ char *maps = NULL;
	char path[64];
	ssize_t n;
	int r = proc_shares_ns(pid, "ipc");

	if (r <= 0)
		return r; /* its own namespace: CRIU dumps it with its segments */
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	n = read_file(path, 64u << 20, &maps, NULL);
	if (n < 0)
		return n;
	return proc_maps_sysv(maps, key) == 0;
}

int proc_stat_start_time(const char *stat, uint64_t *ret)
{
	const char *p = strrchr(stat, ')');
	unsigned long long v;

	/* after "pid (comm)": state is field 3, starttime field 22 */
	if (!p || sscanf(p + 1,
			 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
			 "%*d %*d %*d %*d %llu",
			 &v) != 1)
		return -EINVAL;
	*ret = v;
	return 0;
}

int proc_start_time(pid_t pid, uint64_t *ret)
{
	char path[64];
	_cleanup_free_ char *buf = NULL;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (read_file(path, 4096, &buf, NULL) < 0)
		return -ESRCH;
	return proc_stat_start_time(buf, ret);
}

pid_t proc_ppid(pid_t pid)
{
	pid_t ppid;
	int tty;
	char st;

	return proc_stat_fields(pid, &st, &ppid, &tty) < 0 ? -1 : ppid;
}

bool proc_has_tty(pid_t pid)
{
	pid_t ppid;
	int tty = 0;
	char st;

	return proc_stat_fields(pid, &st, &ppid, &tty) == 0 && tty != 0;
}

bool proc_alive(pid_t pid)
{
	pid_t ppid;
	int tty;
	char st = 'X';

	return proc_stat_fields(pid, &st, &ppid, &tty) == 0 && st != 'Z' && st != 'X';
}

void proc_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	_cleanup_free_ char *c = NULL;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	if (read_file(path, 64, &c, NULL) < 0) {
		snprintf(buf, len, "?");
		return;
	}
	c[strcspn(c, "\n")] = '\0';
	snprintf(buf, len, "%s", c);
}

static int add_threads(struct pidvec *pv, pid_t pid)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int r = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return -ESRCH;
	while (r == 0 && (de = readdir(d))) {
		int tid = atoi(de->d_name);
		if (tid > 0 && tid != pid)
			r = pidvec_push(pv, tid);
	}
	closedir(d);
	return r;
}

/* A process and its parent, as one scan of /proc saw them. */
struct pidpair {
	int32_t ppid, pid;
};

static int cmp_pair(const void *a, const void *b)
{
	const struct pidpair *x = a, *y = b;

	if (x->ppid != y->ppid)
		return x->ppid < y->ppid ? -1 : 1;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

static int cmp_i32(const void *a, const void *b)
{
	return *(const int32_t *)a - *(const int32_t *)b;
}

/*
 * Every process's parent, from one pass over /proc (a process gone
 * meanwhile is left out), sorted by parent: a tree of N processes on a
 * host of M costs M reads of /proc/PID/stat, not N * M.
 */
static int scan_parents(struct pidpair **ret, size_t *ret_nr)
{
	DIR *d = opendir("/proc");
	struct pidpair *v = NULL;
	size_t nr = 0, cap = 0;
	struct dirent *de;
	int r = 0;

	if (!d)
		return -errno;
	while (r == 0 && (de = readdir(d))) {
		int p = atoi(de->d_name);
		pid_t ppid = p > 0 ? proc_ppid(p) : -1;
		if (ppid < 0)
			continue;
		if (nr == cap) {
			size_t c = cap ? cap * 2 : 256;
			struct pidpair *n = realloc(v, c * sizeof(*v));
			if (!n) {
				r = -ENOMEM;
				break;
			}
			v = n;
			cap = c;
		}
		v[nr++] = (struct pidpair){ ppid, p };
	}
	closedir(d);
	if (r < 0) {
		free(v);
		return r;
	}
	qsort(v, nr, sizeof(*v), cmp_pair);
	*ret = v;
	*ret_nr = nr;
	return 0;
}

/* Append the children of @pid (in @pp, sorted by parent), by PID. */
static int add_children(struct pidvec *procs, const struct pidpair *pp, size_t nr, pid_t pid)
{
	size_t lo = 0, hi = nr;
	int r = 0;

	while (lo < hi) { /* the first entry whose parent is @pid or later */
		size_t mid = lo + (hi - lo) / 2;
		if (pp[mid].ppid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; r == 0 && lo < nr && pp[lo].ppid == pid; lo++)
		if (pp[lo].pid != pid)
			r = pidvec_push(procs, pp[lo].pid);
	return r;
}

int proctree_tasks(pid_t root, int32_t **ret, size_t *ret_nr, size_t *ret_nr_procs)
{
	struct pidvec procs = { 0 }, all = { 0 };
	_cleanup_free_ struct pidpair *pp = NULL;
	size_t nr_pp = 0;
	int r;

	if (proc_ppid(root) < 0)
		return -ESRCH;
	r = scan_parents(&pp, &nr_pp);
	if (r == 0)
		r = pidvec_push(&procs, root);
	for (size_t i = 0; r == 0 && i < procs.nr; i++)
		r = add_children(&procs, pp, nr_pp, procs.v[i]);
	for (size_t i = 0; r == 0 && i < procs.nr; i++)
		r = pidvec_push(&all, procs.v[i]);
	for (size_t i = 0; r == 0 && i < procs.nr; i++) {
		size_t first = all.nr;
		r = add_threads(&all, procs.v[i]);
		if (r == -ESRCH)
			r = 0; /* exited meanwhile: CRIU will see the truth */
		qsort(all.v + first, all.nr - first, sizeof(int32_t), cmp_i32);
	}
	free(procs.v);
	if (r < 0) {
		free(all.v);
		return r;
	}
	*ret = all.v;
	*ret_nr = all.nr;
	*ret_nr_procs = procs.nr;
	return 0;
}

static uint64_t proc_rss(pid_t pid)
{
	char path[64];
	_cleanup_free_ char *buf = NULL;
	const char *p;
	unsigned long long kb = 0;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", pid);
	if (read_file(path, 8192, &buf, NULL) < 0)
		return 0;
	p = strstr(buf, "\nRss:");
	if (p)
		sscanf(p + 5, "%llu", &kb);
	return kb * 1024;
}

uint64_t proctree_rss(const int32_t *pids, size_t nr)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < nr; i++)
		sum += proc_rss(pids[i]);
	return sum;
}

static ssize_t read_small(const char *path, char *buf, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* Whether every thread of @pid is in a tracing stop. */
static bool proc_seized(pid_t pid)
{
	char path[320], buf[512];
	struct dirent *de;
	bool all = true;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return false;
	while (all && (de = readdir(d))) {
		char *st;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", pid, de->d_name);
		st = read_small(path, buf, sizeof(buf)) > 0 ? strrchr(buf, ')') : NULL;
		all = st && st[1] == ' ' && st[2] == 't';
	}
	closedir(d);
	return all;
}

bool proctree_seized(const int32_t *pids, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (!proc_seized(pids[i]))
			return false;
	return nr > 0;
}

int proc_nspid(pid_t pid, pid_t *ret)
{
	char path[64];
	_cleanup_free_ char *buf = NULL;
	const char *l;
	char *end;
	long v = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	if (read_file(path, 16384, &buf, NULL) < 0)
		return -ESRCH;
	l = strstr(buf, "\nNSpid:");
	if (!l)
		return -ENOTSUP;
	for (l += 7; *l && *l != '\n'; l = end) {
		long n = strtol(l, &end, 10);
		if (end == l)
			break;
		v = n;
	}
	if (v <= 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

pid_t proc_ns_to_host(pid_t root, pid_t nspid)
{
	_cleanup_free_ int32_t *pids = NULL;
	size_t nr, nr_procs;
	pid_t v;

	if (proctree_tasks(root, &pids, &nr, &nr_procs) < 0)
		return -1;
	for (size_t i = 0; i < nr; i++)
		if (proc_nspid(pids[i], &v) == 0 && v == nspid)
			return pids[i];
	return -1;
}

bool fdinfo_lock_conflicts(const char *fdinfo)
{
	for (const char *l = fdinfo; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char kind[16], state[16], type[16];

		if (strncmp(l, "lock:", 5))
			continue;
		/* "lock:\t1: POSIX  ADVISORY  WRITE 42 08:01:1234 0 EOF",
		 * "lock:\t1: LEASE  ACTIVE    READ ..." */
		if (sscanf(l + 5, " %*d: %15s %15s %15s", kind, state, type) != 3)
			return true; /* unknown: take it as a lock */
		if (strcmp(kind, "LEASE") || strcmp(type, "READ"))
			return true;
	}
	return false;
}
