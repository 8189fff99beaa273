/* SPDX-License-Identifier: MIT */
/*
 * criu: CRIU driven through its RPC protocol (`criu swrk FD`, messages of
 * CRIU's installed rpc.proto). One struct criu is one swrk child and its
 * SOCK_SEQPACKET socket. Requests that need notifications (dump,
 * restore) are driven by the caller with criu_send()/criu_recv() and
 * answered with criu_notify_reply(); one-shot requests have helpers.
 *
 * The CRIU binary is $PHAUL_CRIU, else `criu` from PATH, /usr/local/sbin
 * or /usr/sbin.
 */
#ifndef PHAUL_CRIU_H
#define PHAUL_CRIU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "criu-rpc.pb-c.h"
#include "criu/ckcache.h"

struct criu {
	pid_t pid;
	int sk;
	int pass_fd;	     /* handed to CRIU as CRIU_PASS_FD, or -1 */
	const int *keep_fds; /* inherited by CRIU under their own numbers */
	size_t nr_keep_fds;  /* (InheritFd options name them) */
	/* a lazy dump leaves the lazy pages in the frozen tree, for us to
	 * serve (scripts/criu-patches/0002; an unpatched CRIU ignores it) */
	bool lazy_in_place;
	/* "CRIU_SHMEM_IN_PARENT=FILE" (scripts/criu-patches/0016), or NULL */
	char *shmem_env;
};

#define CRIU_INIT                                  \
	{                                          \
		.pid = -1, .sk = -1, .pass_fd = -1 \
	}
/*
 * criu lazy-pages asks for this many pages from a faulting page on
 * (scripts/criu-patches/0003; an unpatched CRIU asks one).
 * Its background transfers ask at least twice as many, except at the end
 * of a run: requests up to this size count as faults in the statistics.
 */
#define CRIU_FAULT_AROUND 8
/*
 * @bulk of criu_lazy_pages_spawn/start, for a page server that answers
 * (nearly) every page from the local store (live and hybrid modes): the
 * background transfer asks 4 MiB at a time, faults or not, from the last
 * fault on, and lazy-pages sleeps while it waits for an answer instead of
 * polling (scripts/criu-patches/0015; an unpatched CRIU ignores it and
 * fills in 64 KiB requests while the workload faults). Not when every
 * page crosses a link (lazy mode).
 */
#define CRIU_ENV_LAZY_BULK "CRIU_LAZY_BULK=1"
/*
 * For every CRIU phaul runs: leave parasite and restorer code by tracing
 * syscalls, not with a hardware breakpoint, whose registration can cost
 * the kernel 5-13 ms per task while the tree is frozen
 * (scripts/criu-patches/0006; an unpatched CRIU ignores it).
 */
#define CRIU_ENV_NO_BREAKPOINTS "CRIU_NO_BREAKPOINTS=1"
/*
 * For the swrk CRIUs: a dump reads /proc/PID/smaps of the seized tree in a
 * child while it collects namespaces and sockets (scripts/criu-patches/0009).
 */
#define CRIU_ENV_SMAPS_PREFETCH "CRIU_SMAPS_PREFETCH=1"
/*
 * For every restore: a named FIFO that already holds exactly the dumped
 * bytes is the dumped pipe itself (the source's frozen tree holds it open
 * on this same kernel: two test hosts on one machine), and its data is
 * not written into it a second time (scripts/criu-patches/0011; an
 * unpatched CRIU doubles the data, or fails with EAGAIN when twice the
 * data does not fit in the pipe).
 */
#define CRIU_ENV_FIFO_SHARED_CHECK "CRIU_FIFO_SHARED_CHECK=1"
/*
 * For every restore: lock the tree's TCP connections (those its dump
 * locked on the source) on this host before any socket is restored, until
 * CRIU's own unlock as the tasks resume; without it a socket restored
 * first sends to its peer, not restored yet, and is reset
 * (scripts/criu-patches/0013; an unpatched CRIU takes no lock there).
 */
#define CRIU_ENV_RESTORE_TCP_LOCK "CRIU_RESTORE_TCP_LOCK=1"
/*
 * For every restore: a restored TCP connection gets its MSS from its route
 * and dumped MSS clamp, not the kernel's default 536; with 524-byte
 * segments a peer whose receive buffer is fixed (SO_RCVBUF) could run out
 * of it and the pair deadlock (scripts/criu-patches/0014; an unpatched
 * CRIU restores every connection with an MSS of 524).
 */
#define CRIU_ENV_RESTORE_TCP_MSS "CRIU_RESTORE_TCP_MSS=1"
/* The number the passed fd has in CRIU (its config file names it). */
#define CRIU_PASS_FD 100
/* The fd criu lazy-pages started ahead waits on (criu_lazy_pages_spawn) */
#define CRIU_LAZY_GO_FD 102

int criu_start(struct criu *c);
/* Close the socket (a pending notification is thereby refused) and reap. */
void criu_stop(struct criu *c);
int criu_send(struct criu *c, CriuReq *req);
/* Next message from CRIU; an fd passed along with it is closed. */
int criu_recv(struct criu *c, CriuResp **ret);
int criu_notify_reply(struct criu *c, bool success);
/* Start @c and send @req; the usual start of a dump or a restore. */
int criu_begin(struct criu *c, CriuReq *req);

/* CRIU's version as major*10000 + minor*100 + sublevel. */
int criu_version(uint32_t *ret);
/* `criu check` (its log in @dir): 0 if it passes, else why in @why. */
int criu_check(const char *dir, char *why, size_t len);
/* Write cpuinfo.img into @dir (dump) or check this CPU against it. */
#define CRIU_CPUINFO_MAX (63u * 1024) /* the largest cpuinfo.img taken */
int criu_cpuinfo(const char *dir, bool dump);

/*
 * The same two as a CRIU of their own running while the caller does
 * something else (the preflight runs them beside each other): *_begin
 * starts CRIU and sends the request, *_end waits for the answer and
 * reaps CRIU; after a successful begin, *_end or criu_call_end (which
 * kills it: its answer is no longer wanted) must follow on every path.
 */
struct criu_call {
	struct criu c;
	int dfd;    /* the request's directory, open until CRIU answered */
	bool keyed; /* an answer that passes is kept under key (ckcache.h) */
	bool kept;  /* answered from what was kept: no CRIU runs */
	bool dump;  /* a cpuinfo dump (not a check) */
	struct ckkey key;
};
#define CRIU_CALL_INIT                    \
	{                                 \
		.c = CRIU_INIT, .dfd = -1 \
	}
/* Begun and not ended yet (a CRIU runs, or a kept answer waits). */
bool criu_call_pending(const struct criu_call *k);
void criu_call_end(struct criu_call *k);
int criu_check_begin(struct criu_call *k, const char *dir);
int criu_check_end(struct criu_call *k, const char *dir, char *why, size_t len);
int criu_cpuinfo_begin(struct criu_call *k, const char *dir, bool dump);
int criu_cpuinfo_end(struct criu_call *k);

/*
 * Start `criu lazy-pages` filling the lazy memory of a restore whose work
 * directory is @workdir (they meet on its lazy-pages.socket) with pages it
 * asks for over @ps_fd, in CRIU's page-server protocol (pages/server.c
 * answers); returns once it listens. It exits when every page is in place.
 */
int criu_lazy_pages_start(const char *imgdir, const char *workdir, int ps_fd, bool bulk,
			  pid_t *ret);

/*
 * The same, started ahead (at the preflight, before the images exist):
 * exec, libraries and CPU probing are then off the frozen path. It waits
 * until criu_lazy_pages_go(), which returns once it listens (0), or reaps
 * it (-EIO: a CRIU without scripts/criu-patches/0007 read the images at
 * once and failed; start another). criu_lazy_pages_cancel() ends one not
 * let go. The fd numbers given to CRIU are fixed (CRIU_PASS_FD on).
 */
struct criu_lazy {
	pid_t pid;
	int go;	    /* a byte here lets it go on; closing it ends it */
	int status; /* it writes a byte here once it listens */
};

#define CRIU_LAZY_INIT                           \
	{                                        \
		.pid = 0, .go = -1, .status = -1 \
	}

int criu_lazy_pages_spawn(const char *imgdir, const char *workdir, int ps_fd, bool bulk,
			  struct criu_lazy *l);
int criu_lazy_pages_go(struct criu_lazy *l);
void criu_lazy_pages_cancel(struct criu_lazy *l);

const char *criu_binary(void);
/*
 * Whether CRIU here has feature @name (`criu check --feature NAME`): 1, 0
 * (not known to it, or the kernel lacks it), or a negative errno when it
 * could not be run. A yes is kept (ckcache.h).
 */
int criu_feature(const char *name);
/*
 * The restore takes shared memory a caller prepared in memfds of its own
 * (CRIU_SHMEM_PREPARED; scripts/criu-patches/0017), and the dump leaves
 * the pages of the objects it is told in the parent images
 * (CRIU_SHMEM_IN_PARENT; 0016): `criu check --feature shmem_external`.
 */
#define CRIU_FEATURE_SHMEM "shmem_external"
/*
 * CRIU locks TCP connections (--tcp-established) with iptables unless told
 * otherwise: on a host without iptables-restore and ip6tables-restore in
 * PATH, which it runs, that fails ("exited, status=127"). There this asks
 * for nftables instead (CRIU built with libnftables, as scripts/setup
 * builds it); a method set already is kept.
 */
void criu_pick_network_lock(CriuOpts *o);
/*
 * Why CRIU failed, from its log at @path (its last CRIU_LOG_SCAN_MAX
 * bytes): the first error line before "Dumping/Restoring FAILED." (the
 * cause) and the two just before that line, their messages joined with
 * "; " (and "..." when more came between). Error lines CRIU also writes
 * on runs that succeed (RLIMIT_NOFILE without CAP_SYS_RESOURCE) are
 * skipped unless there is nothing else; no error line at all: the last
 * line (`criu check` says some failures without that prefix). "see PATH"
 * if the log cannot be read. criu_log_cause() does it on @log's text.
 */
#define CRIU_LOG_SCAN_MAX (1u << 20)
void criu_log_cause(const char *log, size_t size, char *buf, size_t len);
void criu_log_error(const char *path, char *buf, size_t len);
/*
 * The process a failed dump was at, from CRIU's log at @path: the first
 * error line naming one ("Dump files (pid: 10002) failed with -1"); 0 if
 * none does or the log cannot be read.
 */
pid_t criu_log_failed_pid(const char *path);
/* The same, on the log's text. */
pid_t criu_log_text_failed_pid(const char *log);

#endif
