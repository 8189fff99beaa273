/* SPDX-License-Identifier: MIT */
/*
 * target/restore: CRIU restores the tree and, at its post-restore
 * notification, holds it (created, not yet running) while we tell the
 * source and wait for its Commit. Commit: we answer yes and CRIU resumes
 * the tree. Anything else, including our own death (CRIU then sees its
 * socket close): CRIU kills what it restored.
 */
#define LOG_PREFIX "session: "
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <stdio.h>
#include <string.h>

#include "common/fault.h"
#include "common/proc.h"
#include "common/reaper.h"
#include "common/log.h"
#include "common/util.h"
#include "criu/criu.h"
#include "pages/reconnect.h"
#include "engine/control.h"
#include "engine/drvctx.h"
#include "engine/session.h"
#include "target/target.h"

#define COMMIT_TIMEOUT_MS 60000

static int wait_lazy(struct target *t, bool kill_it);

static int send_ready(struct target *t, pid_t root)
{
	Phaul__RestoreReady rr = PHAUL__RESTORE_READY__INIT;

	rr.root_pid = root;
	rr.restore_ms = t->m.st.restore_ms;
	return msg_send_restore_ready(t->m.conn, &rr);
}

int target_send_committed(struct target *t, pid_t root)
{
	Phaul__Committed c = PHAUL__COMMITTED__INIT;

	c.root_pid = root;
	c.restore_ms = t->m.st.restore_ms;
	return msg_send_committed(t->m.conn, &c);
}

/*
 * Post-copy: the page server owns the connection's input; the source's
 * Commit (or Abort, Error) comes through it.
 */
static int recv_via_pager(struct target *t, Msg **ret)
{
	Msg *msg = NULL;
	int r = page_server_recv(&t->srv, COMMIT_TIMEOUT_MS, &msg);

	if (r == -ETIMEDOUT)
		return mig_fail(&t->m, r, "timed out waiting for Commit");
	if (r < 0)
		return mig_fail(&t->m, r, "the connection to the source failed: %s", strerror(-r));
	t->m.peer_said = msg->body_case != PHAUL__MSG__BODY_COMMIT;
	if (msg->body_case == PHAUL__MSG__BODY_ABORT)
		r = mig_fail(&t->m, -ECANCELED, "the source aborted: %s", msg->abort->reason);
	else if (msg->body_case == PHAUL__MSG__BODY_ERROR)
		r = mig_fail(&t->m, -(int)msg->error->code, "the source failed: %s",
			     msg->error->message);
	if (r < 0) {
		msg_free(msg);
		return r;
	}
	*ret = msg;
	return 0;
}

/* The tree is restored and held: 0 when the source commits. */
static int hold_for_commit(struct target *t, pid_t root)
{
	_cleanup_msg_ Msg *msg = NULL;
	int r;

	t->m.st.restore_ms = now_ms() - t->m.st.freeze_ms;
	t->m.root_pid = root; /* as this host numbers it (the drivers' hooks) */
	r = mig_hook(&t->m, HOOK_TARGET_RESTORED);
	if (r == 0)
		r = fault_point("dst.restored");
	if (r < 0)
		return mig_fail(&t->m, r, "after the restore");
	pr_info("restored tree %d in %llu ms, waiting for the commit", root,
		(unsigned long long)t->m.st.restore_ms);
	r = send_ready(t, root);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot report the restore: %s", strerror(-r));
	t->st = ST_RESTORED;
	mig_step(&t->m, "commit");
	if (!t->remote) /* else the page server reads, with its own timeout */
		conn_set_timeout(t->m.conn, COMMIT_TIMEOUT_MS);
	r = t->remote ? recv_via_pager(t, &msg) : target_recv(t, &msg);
	if (r < 0)
		return r;
	r = fault_point("dst.commit");
	if (r < 0)
		return mig_fail(&t->m, r, "injected fault");
	/* the operator's cancel, or from now on none (engine/control.h) */
	r = control_commit();
	if (r < 0)
		return mig_fail(&t->m, r, CONTROL_CANCELLED);
	/* the restored processes as this host numbers them (a container's
	 * are not the source's numbers): what a failure must kill */
	r = proctree_tasks(root, &t->tree, &t->nr_tree, &t->nr_tree_procs);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot list the restored tree: %s", strerror(-r));
	if (t->srv.running)
		page_server_set_tree(&t->srv, t->tree, t->nr_tree_procs);
	if (t->remote && page_server_set_committed(&t->srv) < 0)
		return mig_fail(&t->m, -EIO, "the source's pages became unreachable");
	r = reaper_arm(&t->reaper, t->tree, t->nr_tree_procs);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot guard the restored tree: %s", strerror(-r));
	/* the decision is recorded before CRIU lets the tree run */
	r = outcome_write(t->so->workdir, t->hex, "committing", root);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot record the commit");
	t->committed = true;
	/* from now on the workload's memory may depend on this process (the
	 * page server): a daemon restart must not take it down */
	prctl(PR_SET_PDEATHSIG, 0);
	/* CRIU unlocks the network next, and the restored sockets send
	 * before post-resume: the drivers' own fences go now */
	if (mig_hook(&t->m, HOOK_TARGET_COMMITTED) < 0)
		pr_warn("a driver failed after the commit; the migration stands");
	return 0;
}

static void fill_restore_opts(struct target *t, Phaul__Restore *rq, CriuOpts *o)
{
	o->images_dir_fd = t->m.imgfd;
	o->log_file = "restore.log";
	o->has_log_level = true;
	o->log_level = log_get_level() >= LOG_DEBUG ? 4 : 2;
	o->has_notify_scripts = true;
	o->notify_scripts = true;
	o->has_shell_job = true;
	/* only what the preflight asked and the policy allowed (admit.h) */
	o->shell_job = t->m.shell_job && rq->has_shell_job && rq->shell_job;
	o->has_tcp_established = true;
	o->tcp_established = true;
	/* CRIU refuses images dumped with tcp_close unless restored with it */
	o->has_tcp_close = rq->has_tcp_close;
	o->tcp_close = rq->has_tcp_close && rq->tcp_close;
	criu_pick_network_lock(o);
	o->has_ext_unix_sk = true;
	o->ext_unix_sk = true;
	o->has_file_locks = true;
	o->file_locks = true;
}

static int restore_opts(struct target *t, Phaul__Restore *rq, CriuOpts *o)
{
	fill_restore_opts(t, rq, o);
	for (size_t i = 0; i < t->m.nr_drv; i++) {
		const struct driver_ops *ops = t->m.drv[i]->ops;
		struct mig_drvctx b;
		int r;

		mig_drvctx_init(&t->m, i, &b);
		r = ops->restore_opts ? ops->restore_opts(t->m.drv[i], &b.ctx, o) : 0;
		if (r < 0)
			return mig_fail(&t->m, r, "%s driver: restore options", ops->name);
	}
	return 0;
}

/*
 * The tree runs here: record it, then tell the source, which may let its
 * copy go. At CRIU's post-resume, not at the end of its restore: the
 * source's frozen time ends with this message.
 */
static void say_committed(struct target *t, pid_t root)
{
	t->resumed = true;
	outcome_write(t->so->workdir, t->hex, "committed", root);
	pr_info("committed: tree %d runs here", root);
	if (target_send_committed(t, root) < 0)
		pr_warn("could not confirm the commit to the source; it will ask");
}

/*
 * CRIU's restore log under t->m.dir: in its work dir, t->m.dir, when lazy;
 * else with the images, as is a manager's (its command line says so).
 */
static const char *restore_log(const struct target *t)
{
	return t->live && !t->m.drv[0]->ops->restore_exec ? "restore.log" : "img/restore.log";
}

static int restore_loop(struct target *t, struct criu *c, pid_t *root)
{
	CriuResp *resp = NULL;
	int r, ret = 0;

	for (;;) {
		r = criu_recv(c, &resp);
		if (r < 0)
			return ret ? ret : mig_fail(&t->m, r, "CRIU died during the restore");
		if (resp->type != CRIU_REQ_TYPE__NOTIFY)
			break;
		pr_debug("CRIU: %s",
			 resp->notify && resp->notify->script ? resp->notify->script : "?");
		if (resp->notify && resp->notify->script &&
		    !strcmp(resp->notify->script, "post-restore")) {
			pid_t pid = resp->notify->has_pid ? resp->notify->pid : t->m.root_pid;
			ret = hold_for_commit(t, pid);
			criu_notify_reply(c, ret == 0);
		} else if (resp->notify && resp->notify->script &&
			   !strcmp(resp->notify->script, "post-resume")) {
			if (!ret && t->committed)
				say_committed(t, t->m.root_pid);
			if (!ret && mig_hook(&t->m, HOOK_TARGET_RESUMED) < 0)
				pr_warn("a driver failed after the tree resumed; the migration stands");
			criu_notify_reply(c, true);
		} else {
			criu_notify_reply(c, true);
		}
		criu_resp__free_unpacked(resp, NULL);
	}
	if (resp->type == CRIU_REQ_TYPE__RESTORE && resp->success) {
		*root = resp->restore && resp->restore->pid > 0 ? resp->restore->pid :
								  t->m.root_pid;
	} else if (!ret) {
		/* a lazy restore logs in its work directory, above the images */
		ret = session_criu_failed(&t->m, t->live ? "restore.log" : "img/restore.log",
					  "CRIU could not restore the tree");
	}
	criu_resp__free_unpacked(resp, NULL);
	return ret;
}

static int held_for_driver(void *arg, pid_t root)
{
	return hold_for_commit(arg, root);
}

/*
 * The workload's manager runs the restore (the lxc driver): CRIU's RPC is
 * not used, the CRIU started at the preflight goes; the driver calls
 * hold_for_commit at the point CRIU's post-restore notification would.
 */
static int restore_by_driver(struct target *t, CriuOpts *o, pid_t *root)
{
	struct driver *d = t->m.drv[0];
	struct mig_drvctx b;
	int r;

	criu_stop(&t->criu);
	mig_drvctx_init(&t->m, 0, &b);
	r = d->ops->restore_exec(d, &b.ctx, o, held_for_driver, t, root);
	if (r < 0 && !t->m.error[0])
		mig_fail(&t->m, r, "%s driver: the restore failed", d->ops->name);
	return r;
}

static int send_pages_done(struct target *t, uint64_t t0)
{
	Phaul__PagesDone pd = PHAUL__PAGES_DONE__INIT;

	pd.pages_remote = t->srv.pages_remote;
	pd.pages_local = t->srv.pages;
	pd.pages_fault = t->srv.pages_fault;
	pd.last_page_ms = t->srv.last_ms > t0 ? t->srv.last_ms - t0 : 0;
	return msg_send_pages_done(t->m.conn, &pd);
}

static int finish_commit(struct target *t, pid_t root)
{
	uint64_t t0 = now_ms();
	int r;

	if (!t->resumed)
		say_committed(t, root);
	if (fault_point("dst.fillbreak") < 0)
		conn_abort(t->m.conn); /* the link breaks; the fill goes on */
	r = wait_lazy(t, false);
	if (r == 0)
		outcome_write(t->so->workdir, t->hex, "filled", root);
	if (r < 0) {
		outcome_write(t->so->workdir, t->hex, "lost", 0);
		if (t->remote)
			msg_send_error(t->m.conn, -r, "post-copy",
				       "the memory could not be completed");
		return mig_fail(&t->m, r,
				"the workload's memory could not be completed: it is lost");
	}
	reaper_disarm(&t->reaper);
	if (t->live && send_pages_done(t, t0) < 0)
		pr_warn("could not tell the source that every page is here");
	mig_step(&t->m, "cleanup");
	if (fault_point("dst.cleanup") < 0 || mig_hook(&t->m, HOOK_TARGET_CLEANUP) < 0)
		pr_warn("cleanup after the commit failed; the migration stands");
	return 0;
}

/*
 * The socket between criu lazy-pages and our page server. CRIU sends its
 * page requests without blocking (MSG_DONTWAIT) and gives up on EAGAIN:
 * after a restore of many processes it asks for all of them at once, and
 * a few hundred small requests fill a socket's default send buffer (each
 * costs ~1 KiB of buffer, not 24 bytes). CRIU's end gets a send buffer
 * big enough for tens of thousands (root may exceed wmem_max).
 */
#define LAZY_SNDBUF (32 << 20)
/*
 * Ours holds a whole answer to its largest request (4 MiB, patch 0015),
 * so that lazy-pages reads it in one go, not a wake-up per 200 KiB.
 */
#define LAZY_ANSWER_SNDBUF (8 << 20)

/*
 * criu lazy-pages asks 4 MiB at a time (criu.h, CRIU_ENV_LAZY_BULK) where
 * the pre-copy rounds left most pages in the store: live mode, and hybrid,
 * whose stale pages the page server fetches at most FETCH_PAGES (512 KiB)
 * per answer (pages/fetch.c), so that a fault waits behind no more than
 * that across the link; and stop mode when it streams (every page is in
 * the store). Lazy mode keeps CRIU's own adaptive requests.
 */
static bool lazy_bulk(const struct target *t)
{
	return mode_has_rounds(t->m.mode) || t->m.stream;
}

static int lazy_socketpair(int sp[2])
{
	int size = LAZY_SNDBUF;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	if (setsockopt(sp[1], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0 &&
	    setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0)
		pr_warn("cannot grow criu lazy-pages' send buffer: %m");
	size = LAZY_ANSWER_SNDBUF;
	if (setsockopt(sp[0], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0 &&
	    setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0)
		pr_warn("cannot grow the page server's send buffer: %m");
	return 0;
}

void target_lazy_prestart(struct target *t)
{
	char img[4200];
	int sp[2], r;

	snprintf(img, sizeof(img), "%s/img", t->m.dir);
	r = lazy_socketpair(sp);
	if (r < 0) {
		pr_warn("socketpair for criu lazy-pages: %s; it starts at the restore",
			strerror(-r));
		return;
	}
	r = criu_lazy_pages_spawn(img, t->m.dir, sp[1], lazy_bulk(t), &t->lazy);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		pr_warn("could not start criu lazy-pages ahead: %s; it starts at the restore",
			strerror(-r));
		return;
	}
	t->lazy_sk = sp[0];
}

void target_lazy_cancel(struct target *t)
{
	criu_lazy_pages_cancel(&t->lazy);
	if (t->lazy_sk >= 0)
		close(t->lazy_sk);
	t->lazy_sk = -1;
}

/* criu lazy-pages listening: the one started ahead, else a new one; *sk is
 * our end of its page-server socket */
static int lazy_pages_ready(struct target *t, int *sk)
{
	char img[4200];
	int sp[2], r;

	if (t->lazy.pid > 0 && criu_lazy_pages_go(&t->lazy) == 0) {
		t->lazy_pid = t->lazy.pid;
		t->lazy.pid = 0;
		*sk = t->lazy_sk;
		t->lazy_sk = -1;
		return 0;
	}
	target_lazy_cancel(t);
	r = lazy_socketpair(sp);
	if (r < 0)
		return r;
	snprintf(img, sizeof(img), "%s/img", t->m.dir);
	r = criu_lazy_pages_start(img, t->m.dir, sp[1], lazy_bulk(t), &t->lazy_pid);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		return r;
	}
	*sk = sp[0];
	return 0;
}

/*
 * Live mode: the restore creates the memory mappings but copies nothing
 * into them; `criu lazy-pages` fills them from the page store after the
 * tree resumes (its first touches first, then everything), so the
 * frozen path does not grow with the workload's memory.
 */
static int prepare_lazy(struct target *t, Phaul__Restore *rq, CriuOpts *o, int *workfd)
{
	int link_ms = (rq->has_recover_timeout_s && rq->recover_timeout_s ?
			       (int)MIN(rq->recover_timeout_s, 3600u) :
			       60) *
		      1000;
	int sk = -1, r, lfd;

	t->ps.remote = t->remote;
	r = pagestore_assemble(&t->ps, t->m.imgfd, true);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot assemble the images: %s", strerror(-r));
	/* the restore's CRIU reads this file (named in its environment) */
	if (t->criu.shmem_env) {
		const char *path = strchr(t->criu.shmem_env, '=') + 1;
		r = pagestore_write_prepared(&t->ps, path);
		if (r < 0)
			return mig_fail(&t->m, r, "cannot write %s: %s", path, strerror(-r));
		if (r > 0)
			pr_info("%d shared memory objects restored from their memfds", r);
	}
	r = lazy_pages_ready(t, &sk);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot start criu lazy-pages");
	pr_debug("criu lazy-pages (PID %d) listens", t->lazy_pid);
	if (t->remote)
		conn_set_link_timeout(t->m.conn, link_ms);
	/* nothing to kill until the commit names the restored tree */
	r = page_server_start(&t->srv, &t->ps, sk, t->remote ? t->m.conn : NULL, NULL, 0, link_ms);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot start the page server");
	t->srv.client = t->lazy_pid;
	page_server_set_events(&t->srv, t->m.ev);
	if (t->remote && resume_listen(t->m.dir, &lfd) == 0)
		page_server_set_resume(&t->srv, lfd);
	*workfd = open(t->m.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*workfd < 0)
		return mig_fail(&t->m, -errno, "cannot open %s: %m", t->m.dir);
	o->has_work_dir_fd = true;
	o->work_dir_fd = *workfd;
	o->has_lazy_pages = true;
	o->lazy_pages = true;
	return 0;
}

/* The page server is done; go on with its connection if it replaced ours. */
static int join_server(struct target *t)
{
	int r = page_server_join(&t->srv);
	struct conn *c = page_server_conn(&t->srv);

	if (c && c != t->m.conn) {
		conn_free(t->m.conn);
		t->m.conn = c;
	}
	t->srv.conn = NULL;
	return r;
}

static void kill_tree(struct target *t)
{
	for (size_t i = 0; i < t->nr_tree_procs; i++)
		kill(t->tree[i], SIGKILL);
}

/*
 * After the commit: wait until every page is in place, then the store can
 * go. If criu lazy-pages failed, the tree would run on with holes in its
 * memory: it is killed, and the failure returned.
 */
static int wait_lazy(struct target *t, bool kill_it)
{
	uint64_t t0 = now_ms();
	int status = 0, r;

	if (t->lazy_pid <= 0) {
		join_server(t);
		return 0;
	}
	if (kill_it)
		kill(t->lazy_pid, SIGKILL);
	while (waitpid(t->lazy_pid, &status, 0) < 0 && errno == EINTR)
		;
	t->lazy_pid = 0;
	r = join_server(t);
	if (kill_it)
		return 0;
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) || r < 0) {
		kill_tree(t);
		pr_err("criu lazy-pages failed (status 0x%x, page server: %s): see lazy-pages.log",
		       status, r < 0 ? strerror(-r) : "ok");
		return r < 0 ? r : -EIO;
	}
	pr_info("all memory in place %llu ms after the commit (%llu pages from the store, "
		"%llu from the source)",
		(unsigned long long)(now_ms() - t0), (unsigned long long)t->srv.pages,
		(unsigned long long)t->srv.pages_remote);
	return 0;
}

/* The CRIU the workload's manager started (restore_criu in driver.h). */
static int manager_criu(struct target *t, struct criu *c)
{
	struct driver *d = t->m.drv[0];
	struct mig_drvctx b;

	criu_stop(c);
	mig_drvctx_init(&t->m, 0, &b);
	return d->ops->restore_criu(d, &b.ctx, t->m.criu_fds, t->m.nr_criu_fds, &c->sk);
}

static int restore_by_criu(struct target *t, CriuOpts *o, pid_t *root)
{
	struct criu *c = &t->criu;
	CriuReq req = CRIU_REQ__INIT;
	int r;

	req.type = CRIU_REQ_TYPE__RESTORE;
	req.opts = o;
	/* started at the preflight, off the frozen path, unless the drivers
	 * have fds for it to inherit: then it starts now, with them */
	if (c->pid > 0 && t->m.nr_criu_fds)
		criu_stop(c);
	c->keep_fds = t->m.criu_fds;
	c->nr_keep_fds = t->m.nr_criu_fds;
	if (t->m.drv[0]->ops->restore_criu) {
		r = manager_criu(t, c);
		if (r == 0)
			r = criu_send(c, &req);
	} else {
		r = c->pid > 0 ? criu_send(c, &req) : criu_begin(c, &req);
	}
	if (r < 0)
		return mig_fail(&t->m, r, "cannot start CRIU");
	r = restore_loop(t, c, root);
	criu_stop(c);
	return r;
}

int target_restore(struct target *t, Phaul__Restore *rq)
{
	CriuOpts o = CRIU_OPTS__INIT;
	_cleanup_close_ int workfd = -1;
	pid_t root = -1;
	int r;

	mig_step(&t->m, "restore");
	t->st = ST_DONE;
	t->m.st.freeze_ms = now_ms();
	r = fault_point("dst.restore");
	if (r < 0)
		return mig_fail(&t->m, r, "injected fault");
	if (rq->has_no_postcopy && rq->no_postcopy && t->m.mode == MODE_HYBRID) {
		pr_info("the source chose live mode (--mode auto): every page is here");
		t->m.mode = MODE_LIVE;
		t->remote = false;
	}
	r = mig_hook(&t->m, HOOK_TARGET_RESTORE);
	if (r < 0)
		return mig_fail(&t->m, r, "storage could not be made ready for the restore");
	if (t->live)
		r = prepare_lazy(t, rq, &o, &workfd);
	if (r == 0)
		r = restore_opts(t, rq, &o);
	if (r < 0)
		return r;
	r = t->m.drv[0]->ops->restore_exec ? restore_by_driver(t, &o, &root) :
					     restore_by_criu(t, &o, &root);
	if (r < 0 && t->resumed)
		pr_warn("CRIU failed after the tree resumed; it runs, the commit stands");
	if (t->committed && (r == 0 || t->resumed))
		return finish_commit(t, r == 0 ? root : t->m.root_pid);
	if (t->committed) {
		/* CRIU failed after the commit: the tree did not survive */
		t->committed = false;
		outcome_write(t->so->workdir, t->hex, "aborted", 0);
	}
	wait_lazy(t, true);
	session_log_criu_errors(&t->m, restore_log(t), 5);
	return r < 0 ? r : -EIO;
}
