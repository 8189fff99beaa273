/* SPDX-License-Identifier: MIT */
/*
 * target: one migration on the destination, run in its own process (one
 * per connection) with the session state machine of proto/state.h.
 */
#ifndef PHAUL_TARGET_H
#define PHAUL_TARGET_H

#include <limits.h>

#include "common/reaper.h"
#include "criu/criu.h"
#include "engine/migration.h"
#include "pages/store.h"
#include "pages/server.h"
#include "proto/state.h"
#include "target/serve.h"

struct target {
	struct migration m;
	const struct serve_opts *so;
	char hex[2 * PHAUL_SESSION_ID_LEN + 1];
	enum sess_state st;
	uint64_t budget; /* bytes the peer may still write */
	bool committed;
	bool resumed;		     /* CRIU let the tree run: the commit stands */
	bool told;		     /* an Error went to the source already */
	bool live;		     /* restored lazily from the page store */
	bool shmem;		     /* the source pre-copies shared memory (SHMEM_PAGES) */
	bool shm_probed;	     /* whether CRIU takes prepared shmem: asked */
	char shm_env[PATH_MAX + 32]; /* CRIU_SHMEM_PREPARED=FILE for the restore */
	bool remote;		     /* post-copy: what the store lacks is fetched */
	struct pagestore ps;
	pid_t lazy_pid;		/* criu lazy-pages filling memory, or 0 */
	struct criu_lazy lazy;	/* one started at the preflight, not let go yet */
	int lazy_sk;		/* our end of its page-server socket, or -1 */
	struct page_server srv; /* answering it from the page store */
	struct reaper reaper;	/* kills the tree if we die before it is whole */
	struct criu criu;	/* the restore's CRIU, started at the preflight */
	struct criu_call check; /* `criu check`, started when the session began */
	int32_t *tree;		/* the restored tree, as this host numbers it */
	size_t nr_tree, nr_tree_procs;
	Msg *info; /* a driver's message before the Preflight */
};

/* Serve one accepted connection (fd taken over); exit status for the child. */
int target_session(int fd, const struct serve_opts *so);
/* Serve one already trusted stream (`serve --stdio` under sshd; taken over). */
int target_session_conn(struct conn *c, const struct serve_opts *so);
/* Receive the next message, which must be allowed in t->st. */
int target_recv(struct target *t, Msg **ret);
/* The preflight step: checks, drivers, answer. */
int target_preflight(struct target *t, Phaul__Preflight *p);
/* `phaul check`: every check, all failures in the reply, then the end. */
int target_check_only(struct target *t, Phaul__Preflight *p);
/* Restore from the received images, hold, commit or abort. */
int target_restore(struct target *t, Phaul__Restore *rq);
/* Start criu lazy-pages for a live restore now, off the frozen path; and
 * end it if the restore never came. */
void target_lazy_prestart(struct target *t);
void target_lazy_cancel(struct target *t);
/* Committed{root, restore_ms} to the source. */
int target_send_committed(struct target *t, pid_t root);
/* --mode restart: start the workload from its command line (restart.h). */
int target_restart(struct target *t, Phaul__Restart *rq);

#endif
