/* SPDX-License-Identifier: MIT */
/* procfs: what /proc/PID tells the trackers (mappings, state, uffd use). */
#define LOG_PREFIX "track: "
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static FILE *proc_fopen(pid_t pid, const char *name)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	return fopen(path, "re");
}

/* Kernel mappings that are not the process's memory. */
static bool vma_special(const char *name)
{
	return !strcmp(name, "[vdso]") || !strcmp(name, "[vsyscall]") ||
	       !strncmp(name, "[vvar", 5) || !strcmp(name, "[uprobes]");
}

static int vmas_push(struct track_vmas *out, const struct track_vma *v)
{
	if (out->nr == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 64;
		struct track_vma *n = realloc(out->v, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		out->v = n;
		out->cap = cap;
	}
	out->v[out->nr++] = *v;
	return 0;
}

/* One line of /proc/PID/maps: 0 and *keep, or -EIO if malformed. */
static int vma_parse(char *line, struct track_vma *v, bool *keep)
{
	unsigned long long start, end, ino;
	char perms[5];
	int name = 0;

	if (sscanf(line, "%llx-%llx %4s %*x %*x:%*x %llu %n", &start, &end, perms, &ino, &name) <
		    4 ||
	    !name || start >= end)
		return -EIO;
	line += name;
	line[strcspn(line, "\n")] = 0;
	*keep = perms[3] == 'p' && !vma_special(line);
	v->start = start;
	v->end = end;
	v->flags = (perms[0] == 'r' ? TV_READ : 0) | (perms[1] == 'w' ? TV_WRITE : 0) |
		   (perms[2] == 'x' ? TV_EXEC : 0) | (ino ? TV_FILE : 0);
	return 0;
}

int track_vmas_read(pid_t pid, struct track_vmas *out)
{
	_cleanup_fclose_ FILE *f = proc_fopen(pid, "maps");
	_cleanup_free_ char *line = NULL;
	size_t len = 0;
	int r = 0;

	out->nr = 0;
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (getline(&line, &len, f) > 0) {
		struct track_vma v;
		bool keep;

		if ((r = vma_parse(line, &v, &keep)) < 0) {
			pr_err("unexpected line in /proc/%d/maps: %s", (int)pid, line);
			return r;
		}
		if (keep && (r = vmas_push(out, &v)) < 0)
			return r;
	}
	return ferror(f) ? -EIO : 0;
}

void track_vmas_free(struct track_vmas *v)
{
	free(v->v);
	*v = (struct track_vmas){ 0 };
}

/* Value of "@key:" in /proc/PID/status, or -ESRCH / -ENOENT. */
static int status_field(pid_t pid, const char *key, long *ret)
{
	_cleanup_fclose_ FILE *f = proc_fopen(pid, "status");
	_cleanup_free_ char *line = NULL;
	size_t len = 0, klen = strlen(key);

	if (!f)
		return -ESRCH;
	while (getline(&line, &len, f) > 0) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			*ret = strtol(line + klen + 1, NULL, 10);
			return 0;
		}
	}
	return -ENOENT;
}

int track_tgid(pid_t pid)
{
	long tgid;
	int r = status_field(pid, "Tgid", &tgid);

	return r < 0 ? r : (int)tgid;
}

int track_seccomp_mode(pid_t pid)
{
	long mode;
	int r = status_field(pid, "Seccomp", &mode);

	return r == -ENOENT ? 0 : r < 0 ? r : (int)mode;
}

char track_task_state(pid_t pid, pid_t tid)
{
	_cleanup_fclose_ FILE *f = NULL;
	char buf[512], name[32], *p;

	snprintf(name, sizeof(name), "task/%d/stat", (int)tid);
	f = proc_fopen(pid, name);

	if (!f || !fgets(buf, sizeof(buf), f) || !(p = strrchr(buf, ')')))
		return 0;
	return p[1] == ' ' ? p[2] : 0;
}

bool track_alive(pid_t pid, int pidfd)
{
	char st;

	if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		return false;
	st = track_task_state(pid, pid);
	return st && st != 'Z' && st != 'X';
}

static bool smaps_has_uffd(pid_t pid)
{
	_cleanup_fclose_ FILE *f = proc_fopen(pid, "smaps");
	_cleanup_free_ char *line = NULL;
	size_t len = 0;

	while (f && getline(&line, &len, f) > 0) {
		if (strncmp(line, "VmFlags:", 8))
			continue;
		if (strstr(line, " um") || strstr(line, " uw") || strstr(line, " ui"))
			return true;
	}
	return false;
}

static bool fds_have_uffd(pid_t pid)
{
	char path[64], link[64];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return false;
	while (!found && (de = readdir(d))) {
		ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);

		if (n > 0) {
			link[n] = 0;
			found = !strcmp(link, "anon_inode:[userfaultfd]");
		}
	}
	closedir(d);
	return found;
}

bool track_uses_uffd(pid_t pid)
{
	return smaps_has_uffd(pid) || fds_have_uffd(pid);
}
