/* SPDX-License-Identifier: MIT */
/*
 * migration: the state of one migration on either side. The entry
 * points are the sides' own: source/migrate.h and target/serve.h.
 *
 * A migration is a transaction (docs/DESIGN.md). The source holds the
 * frozen tree at CRIU's post-dump notification while the destination
 * restores and holds the restored tree at CRIU's post-restore
 * notification; the commit is the destination answering Commit. Until
 * then any failure on either side rolls back: the destination's CRIU
 * kills what it restored, the source's CRIU resumes the tree.
 */
#ifndef PHAUL_MIGRATION_H
#define PHAUL_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "drivers/driver.h"
#include "engine/converge.h"
#include "proto/conn.h"
#include "proto/key.h"
#include "proto/mode.h"
#include "proto/pageframe.h"
#include "proto/msg.h"
#include "proto/xfer.h"

#define PHAUL_DEFAULT_WORKDIR "/var/lib/phaul"
/* where the log of a CRIU that failed is kept (--log-dir) */
#define PHAUL_DEFAULT_LOGDIR "/var/log/phaul"
#define MIG_CRIU_FDS_MAX 16

struct mig_opts {
	const char *to; /* ADDR:PORT of the destination, or ssh://[USER@]HOST[:PORT] */
	struct psk_key key;
	const char *ssh_cmd;	    /* ssh://: the ssh command (--ssh-cmd, PHAUL_SSH) */
	const char *ssh_remote;	    /* ssh://: the command run there (--ssh-remote) */
	const char *mode;	    /* "stop" */
	const char *htype;	    /* "pid:1234", "oci:ID", "lxc:NAME" */
	const char *oci_runtime;    /* runc (default) or crun */
	const char *oci_root;	    /* the runtime's --root, or its default */
	const char *lxc_path;	    /* LXC's lxcpath, or its default */
	const char *fs[MSG_FS_MAX]; /* storage driver specs */
	size_t nr_fs;
	const char *workdir; /* source scratch space */
	const char *logdir;  /* failed CRIUs' logs kept here */
	bool shell_job;
	bool tcp_established;
	bool tcp_close; /* close established TCP on dst */
	bool ext_unix_sk;
	bool file_locks;
	bool link_remap;		/* CRIU --link-remap */
	uint32_t ghost_limit_mib;	/* CRIU --ghost-limit; 0: CRIU's 1 MiB */
	bool cow_copies;		/* --cow-copies: shared pages restored lazily */
	bool progress;			/* progress line on stderr */
	uint64_t bandwidth_mbit;	/* 0: no cap */
	enum pf_compress compress;	/* --compress, auto by default */
	unsigned int recover_timeout_s; /* in-doubt resolution window */
	unsigned int connect_timeout_s;
	struct policy policy; /* live mode */
};

struct events;

/* post-copy: pages the source had sent, @ms after the commit (0 before it) */
struct fill_sample {
	uint64_t ms;
	uint64_t pages;
};
#define MIG_FILL_MAX 128

struct mig_stats {
	uint64_t start_ms;
	uint64_t freeze_ms; /* when the final dump started */
	uint64_t frozen_ms; /* workload not running anywhere */
	uint64_t total_ms;
	uint64_t bytes_sent;
	uint64_t bytes_before; /* sent on connections closed since */
	uint64_t bytes_images;
	uint64_t restore_ms; /* as the destination measured it */
	uint64_t dump_ms;
	uint64_t commit_ms; /* when Committed arrived */
	uint64_t transfer_ms;
	unsigned int iterations;
	/* live mode */
	const char *tracking;	   /* dirty-page tracking method */
	struct round_stat *rounds; /* per round, the final one last */
	size_t nr_rounds;
	uint64_t predicted_ms;	 /* the policy's frozen-time prediction */
	const char *stop_reason; /* why the rounds stopped */
	char auto_why[160];	 /* --mode auto: why it chose the mode */
	/* stop mode: "streamed" (m->stream) or "images", and why not streamed */
	const char *stop_path;
	char stop_why[200];
	uint64_t final_pages; /* pages sent while frozen */
	/* post-copy: pages moved after the commit */
	uint64_t pages_remote;	/* fetched from the frozen source */
	uint64_t pages_fault;	/* of those, because the workload faulted */
	uint64_t pages_local;	/* hybrid: served from the pre-copy store */
	uint64_t postcopy_ms;	/* the commit to the last page in place */
	uint64_t pages_dropped; /* hybrid: stale at the freeze, left to post-copy */
	bool fill_asked;	/* the link broke in the fill: the destination said it ended */
	/* pages a fork shares copy-on-write: restored with the tree (cow.h) */
	uint64_t cow_pages;
	uint64_t cow_sent;   /* of those, sent while frozen */
	uint64_t cow_copied; /* and copied there from the parent's, not sent */
	/* shared memory objects' pages sent by pre-copy (source/shmem.h), and
	 * of those while frozen; 0 when CRIU dumps them */
	uint64_t shm_pages;
	uint64_t shm_frozen_pages;
	/* the source's pages over time, evenly spaced, the last one at the end */
	struct fill_sample fill[MIG_FILL_MAX];
	size_t nr_fill;
	uint64_t fill_step_ms;	  /* between two samples; doubles when full */
	struct pf_stats pages;	  /* page data through the codec (pageframe.h) */
	struct xfer_stats images; /* image files through theirs (xfer.h) */
};

/* LOST: committed, then post-copy could not complete the memory. */
enum mig_outcome {
	OUTCOME_NONE,
	OUTCOME_ABORTED,
	OUTCOME_COMMITTED,
	OUTCOME_IN_DOUBT,
	OUTCOME_LOST
};

struct migration {
	bool source;
	const struct mig_opts *opts; /* source only */
	enum mig_mode mode;
	bool auto_mode; /* source: --mode auto (hybrid until the rounds end) */
	struct conn *conn;
	struct driver *drv[1 + MSG_FS_MAX]; /* [0] is the workload driver */
	size_t nr_drv;
	pid_t root_pid;
	int32_t *pids;	   /* processes first, then threads */
	int32_t *img_pids; /* the same tasks as CRIU's images number
					 * them (inside the workload's PID
					 * namespace), or NULL: the same as pids */
	size_t nr_pids;
	size_t nr_procs;
	uint64_t est_bytes;
	bool shell_job;
	uint8_t session_id[PHAUL_SESSION_ID_LEN];
	char *dir;	    /* this migration's scratch directory */
	const char *logdir; /* where a failed CRIU's log is kept */
	int imgfd;	    /* its images directory */
	struct precopy *pc; /* live mode's state on the source */
	bool peer_shared;   /* the destination takes PageShared */
	bool peer_shmem;    /* and shared memory's pages (SHMEM_PAGES) */
	/* stop mode moves private anonymous memory as page runs while CRIU
	 * dumps, restored lazily from the destination's store, as live mode's
	 * frozen round (mig_lazy_dump()); false: CRIU's images carry it */
	bool stream;
	int ps_sk;		 /* our end of CRIU's lazy page-server socket */
	bool tcp_lock_left;	 /* src: CRIU's dump leaves its TCP lock to us */
	struct postcopy *post;	 /* post-copy's state on the source */
	struct freeze_watch *fw; /* during the final dump */
	/* set while the source answers the destination's page requests */
	int (*on_page_req)(struct migration *m, const Phaul__PageReq *rq);
	int criu_fds[MIG_CRIU_FDS_MAX]; /* drivers' fds for CRIU (inherit_fd) */
	size_t nr_criu_fds;
	enum mig_outcome outcome;
	bool peer_said;	  /* the failure came as the peer's Error/Abort */
	bool rolled_back; /* migration_failed hooks have run */
	/* files the destination uses where they are (PreflightReply.in_place):
	 * its drivers add them at target_check, the source's keep them */
	char *in_place[MSG_IN_PLACE_MAX];
	size_t nr_in_place;
	struct mig_stats st;
	struct events *ev; /* status and --events (engine/events.h), or NULL */
	const char *step;  /* the step running now, for errors */
	int err;
	char error[512];  /* the first failure, for the user */
	char reason[400]; /* the same without the step */
};

/* CRIU leaves private anonymous memory to phaul: the lazy dump of live,
 * lazy and hybrid modes, and of stop mode when it streams. */
bool mig_lazy_dump(const struct migration *m);

/* Record the first failure (later ones are only logged). Returns @err.
 * After the operator's cancel (engine/control.h), the reason recorded is
 * CONTROL_CANCELLED, whatever woke the migration up. */
int mig_fail(struct migration *m, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * Checks that go on after a failure (`phaul check`): with @buf, append
 * the failure @r recorded (m->reason, "; "-separated), forget it and
 * return 0; without @buf (or when @r >= 0), return @r.
 */
int mig_note(struct migration *m, int r, char *buf, size_t len);
/* The step that runs now: logged, and an event (m->ev). */
void mig_step(struct migration *m, const char *step);
/* m->in_place: add @path (-ENOSPC when full), or whether it holds it. */
int mig_add_in_place(struct migration *m, const char *path);
bool mig_in_place(const struct migration *m, const char *path);
/* Call @hook on every driver, in order (reverse for rollback hooks). */
int mig_hook(struct migration *m, enum driver_hook hook);
/* The same, on the drivers of one kind (enum driver_kind) only. */
int mig_hook_kind(struct migration *m, enum driver_hook hook, int kind);
/* Free what either side holds; the source's own state goes first
 * (migrate_free, source/migrate.h). */
void mig_free(struct migration *m);

#endif
