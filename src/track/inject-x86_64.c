/* SPDX-License-Identifier: MIT */
/*
 * inject-x86_64: the registers of a ptrace-stopped x86_64 thread, for
 * inject.c. Another architecture adds its own inject-<arch>.c with the same
 * functions (struct user_pt_regs, "svc #0", x8 for the number on arm64).
 */
#ifdef __x86_64__
#define TRACK_INTERNAL
#include "track/track.h"

#include <elf.h>
#include <errno.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>

_Static_assert(sizeof(struct user_regs_struct) <= sizeof(struct arch_regs),
	       "struct arch_regs too small");

/* Kernel-internal errno values a thread stopped in a syscall may show. */
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

const uint8_t arch_syscall_insn[] = { 0x0f, 0x05 }; /* syscall */
const size_t arch_syscall_insn_len = sizeof(arch_syscall_insn);

static struct user_regs_struct *X(struct arch_regs *r)
{
	return (struct user_regs_struct *)r->raw;
}

/* -EOPNOTSUPP for a 32-bit (compat) process: its regset is smaller. */
int arch_regs_get(pid_t tid, struct arch_regs *r)
{
	struct iovec iov = { r->raw, sizeof(struct user_regs_struct) };

	if (ptrace(PTRACE_GETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0)
		return -errno;
	return iov.iov_len == sizeof(struct user_regs_struct) ? 0 : -EOPNOTSUPP;
}

int arch_regs_set(pid_t tid, const struct arch_regs *r)
{
	struct iovec iov = { (void *)r->raw, sizeof(struct user_regs_struct) };

	return ptrace(PTRACE_SETREGSET, tid, (void *)NT_PRSTATUS, &iov) < 0 ? -errno : 0;
}

/*
 * What the kernel would have done on the way back to user space
 * (arch_do_signal_or_restart): re-execute the interrupted syscall. A
 * restart block (nanosleep, poll...) resumes through restart_syscall(2).
 */
void arch_regs_restart(struct arch_regs *r)
{
	struct user_regs_struct *x = X(r);

	if ((long)x->orig_rax < 0)
		return;
	switch ((long)x->rax) {
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
		x->rax = x->orig_rax;
		x->rip -= 2;
		break;
	case -ERESTART_RESTARTBLOCK:
		x->rax = SYS_restart_syscall;
		x->rip -= 2;
		break;
	}
	/* The restart is now in the registers: no second one on resume. */
	x->orig_rax = (unsigned long long)-1;
}

void arch_regs_syscall(struct arch_regs *r, const struct arch_regs *saved, uint64_t pc, long nr,
		       const uint64_t args[6])
{
	struct user_regs_struct *x = X(r);

	*r = *saved;
	x->rip = pc;
	x->rax = nr;
	x->orig_rax = (unsigned long long)-1;
	x->rdi = args[0];
	x->rsi = args[1];
	x->rdx = args[2];
	x->r10 = args[3];
	x->r8 = args[4];
	x->r9 = args[5];
}
#endif
