/* SPDX-License-Identifier: MIT */
/*
 * inject: run a few syscalls inside another process, as CRIU's compel does
 * but without writing to its memory: every thread is ptrace-stopped (so no
 * other thread can fork, close or dup over what the syscalls create), one
 * thread's registers point at a `syscall` instruction already in the process
 * (its vDSO, else any executable mapping), PTRACE_SYSCALL runs it to its
 * exit stop, and the thread gets its registers and signal mask back.
 */
#define LOG_PREFIX "track: "
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>

struct inject {
	pid_t pid, tid; /* process; the thread running the syscalls */
	pid_t *tids;	/* every thread seized and stopped */
	size_t nr, cap;
	struct arch_regs saved; /* tid's registers, restart applied */
	uint64_t sigmask;	/* tid's signal mask */
	bool regs_saved, mask_saved;
	uint64_t pc;	 /* address of a syscall instruction */
	uint64_t resend; /* signals caught while running, to re-raise */
	long opts;	 /* PTRACE_SEIZE options */
};

static int wait_tid(pid_t tid, int *status)
{
	while (waitpid(tid, status, __WALL) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Wait for the PTRACE_INTERRUPT stop; 1 if the thread died instead. */
static int wait_interrupted(pid_t tid)
{
	int st, r;

	for (;;) {
		if ((r = wait_tid(tid, &st)) < 0)
			return r;
		if (!WIFSTOPPED(st))
			return 1;
		if (st >> 16 == PTRACE_EVENT_STOP)
			return 0;
		/* A signal on its way: let it be delivered, the trap comes next. */
		if (ptrace(PTRACE_CONT, tid, 0, (void *)(long)WSTOPSIG(st)) < 0)
			return -errno;
	}
}

/* 0 when stopped (and recorded), 1 when the thread is gone, or -errno. */
static int seize_one(struct inject *in, pid_t tid)
{
	char st = track_task_state(in->pid, tid);
	int r;

	if (!st || st == 'Z' || st == 'X')
		return 1;
	if (in->nr == in->cap) {
		size_t cap = in->cap ? in->cap * 2 : 16;
		pid_t *n = realloc(in->tids, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		in->tids = n;
		in->cap = cap;
	}
	if (ptrace(PTRACE_SEIZE, tid, 0, (void *)in->opts) < 0)
		return errno == ESRCH ? 1 : -errno;
	in->tids[in->nr++] = tid;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
		return errno == ESRCH ? 1 : -errno;
	r = wait_interrupted(tid);
	if (r == 1)
		in->nr--; /* died: nothing to detach */
	return r;
}

static bool seized(const struct inject *in, pid_t tid)
{
	for (size_t i = 0; i < in->nr; i++)
		if (in->tids[i] == tid)
			return true;
	return false;
}

/* One pass over /proc/PID/task: how many new threads were stopped. */
static int seize_pass(struct inject *in)
{
	char path[64];
	struct dirent *de;
	int r = 0, n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)in->pid);
	if (!(d = opendir(path)))
		return -ESRCH;
	while (r >= 0 && (de = readdir(d))) {
		pid_t tid = atoi(de->d_name);

		if (tid <= 0 || seized(in, tid))
			continue;
		r = seize_one(in, tid);
		n += r == 0;
	}
	closedir(d);
	return r < 0 ? r : n;
}

/* Stop every thread, including threads created while we stop the others. */
static int seize_all(struct inject *in)
{
	int r;

	for (int pass = 0; pass < 1000; pass++) {
		if ((r = seize_pass(in)) <= 0)
			return r < 0 ? r : in->nr ? 0 : -ESRCH;
	}
	return -EAGAIN;
}

/* Find @insn in the mapping [start, end) through /proc/PID/mem. */
static int scan_mapping(int memfd, uint64_t start, uint64_t end, uint64_t *ret)
{
	const size_t ilen = arch_syscall_insn_len, blen = 65536;
	_cleanup_free_ uint8_t *buf = malloc(blen);

	if (!buf)
		return -ENOMEM;
	for (uint64_t a = start; a < end; a += blen - (ilen - 1)) {
		ssize_t n = pread(memfd, buf, MIN(blen, end - a), a);
		uint8_t *p;

		if (n < (ssize_t)ilen)
			return -EIO;
		if ((p = memmem(buf, n, arch_syscall_insn, ilen))) {
			*ret = a + (p - buf);
			return 0;
		}
	}
	return -ENOENT;
}

/* Pass 0 looks at the vDSO, pass 1 at any other executable mapping. */
static int find_syscall_in(struct inject *in, FILE *maps, int memfd, int pass)
{
	unsigned long long start, end;
	char perms[5], line[512];
	int name;

	rewind(maps);
	while (fgets(line, sizeof(line), maps)) {
		name = 0;
		if (sscanf(line, "%llx-%llx %4s %*x %*x:%*x %*u %n", &start, &end, perms, &name) <
			    3 ||
		    !name || perms[2] != 'x')
			continue;
		if ((pass == 0) != !strncmp(line + name, "[vdso]", 6) ||
		    !strncmp(line + name, "[vsyscall]", 10))
			continue;
		if (scan_mapping(memfd, start, end, &in->pc) == 0)
			return 0;
	}
	return -ENOENT;
}

static int find_syscall(struct inject *in)
{
	char path[64];
	int r = -ENOENT, memfd;
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)in->pid);
	if (!(maps = fopen(path, "re")))
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)in->pid);
	if ((memfd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		for (int pass = 0; pass < 2 && r < 0; pass++)
			r = find_syscall_in(in, maps, memfd, pass);
		close(memfd);
	}
	fclose(maps);
	if (r < 0)
		pr_info("no syscall instruction found in process %d", (int)in->pid);
	return r;
}

/* Save the chosen thread's registers and mask, then block its signals. */
static int prepare_thread(struct inject *in)
{
	uint64_t all = ~0ULL;
	int r;

	in->tid = seized(in, in->pid) ? in->pid : in->tids[0];
	if ((r = arch_regs_get(in->tid, &in->saved)) < 0)
		return r;
	arch_regs_restart(&in->saved);
	in->regs_saved = true;
	if (ptrace(PTRACE_GETSIGMASK, in->tid, sizeof(in->sigmask), &in->sigmask) < 0)
		return -errno;
	in->mask_saved = true;
	if (ptrace(PTRACE_SETSIGMASK, in->tid, sizeof(all), &all) < 0)
		return -errno;
	return 0;
}

int inject_begin(pid_t pid, struct inject **ret)
{
	struct inject *in = calloc(1, sizeof(*in));
	int r;

	if (!in)
		return -ENOMEM;
	in->pid = pid;
	in->opts = PTRACE_O_TRACESYSGOOD;
	/* a seccomp filter could refuse the syscalls we run, or kill the
	 * process for them: it is suspended while we hold the threads, as
	 * CRIU suspends it for its parasite (needs CAP_SYS_ADMIN) */
	if (track_seccomp_mode(pid) != 0)
		in->opts |= PTRACE_O_SUSPEND_SECCOMP;
	if ((r = seize_all(in)) < 0 || (r = find_syscall(in)) < 0 || (r = prepare_thread(in)) < 0) {
		if (r == -EPERM || r == -EINVAL)
			pr_info("cannot ptrace process %d%s: traced by another, or not allowed",
				(int)pid,
				in->opts & PTRACE_O_SUSPEND_SECCOMP ?
					" with its seccomp suspended" :
					"");
		inject_end(in);
		return r;
	}
	*ret = in;
	return 0;
}

pid_t inject_tid(const struct inject *in)
{
	return in->tid;
}

/* Resume until the syscall's exit stop; 1 for a stop that is not it. */
static int step_syscall(struct inject *in, long *ret_val)
{
	struct __ptrace_syscall_info info;
	int st, r;

	if (ptrace(PTRACE_SYSCALL, in->tid, 0, 0) < 0)
		return -errno;
	if ((r = wait_tid(in->tid, &st)) < 0)
		return r;
	if (!WIFSTOPPED(st))
		return -ESRCH;
	if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
		/* Only SIGSTOP/SIGKILL get through the mask: keep it for later. */
		if (st >> 16 == 0 && WSTOPSIG(st) < 64)
			in->resend |= 1ULL << WSTOPSIG(st);
		return 1;
	}
	if (ptrace(PTRACE_GET_SYSCALL_INFO, in->tid, sizeof(info), &info) < 0)
		return -errno;
	if (info.op != PTRACE_SYSCALL_INFO_EXIT)
		return 1;
	*ret_val = info.exit.rval;
	return 0;
}

int inject_syscall(struct inject *in, long nr, const uint64_t args[6], long *ret_val)
{
	struct arch_regs regs;
	int r;

	arch_regs_syscall(&regs, &in->saved, in->pc, nr, args);
	if ((r = arch_regs_set(in->tid, &regs)) < 0)
		return r;
	for (int i = 0; i < 16; i++)
		if ((r = step_syscall(in, ret_val)) <= 0)
			return r;
	return -EIO;
}

void inject_end(struct inject *in)
{
	if (!in)
		return;
	if (in->regs_saved && arch_regs_set(in->tid, &in->saved) < 0 && errno != ESRCH)
		pr_warn("cannot restore the registers of thread %d: %m", (int)in->tid);
	if (in->mask_saved)
		ptrace(PTRACE_SETSIGMASK, in->tid, sizeof(in->sigmask), &in->sigmask);
	for (size_t i = 0; i < in->nr; i++)
		ptrace(PTRACE_DETACH, in->tids[i], 0, 0);
	for (int sig = 1; sig < 64; sig++)
		if (in->resend & (1ULL << sig))
			syscall(SYS_tgkill, in->pid, in->tid, sig);
	free(in->tids);
	free(in);
}
