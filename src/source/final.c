/* SPDX-License-Identifier: MIT */
/*
 * source/final: the frozen path of `phaul migrate`. CRIU freezes and
 * dumps the tree, then holds it frozen at its post-dump notification
 * while we move the images, have the destination restore (and hold the
 * restored tree), and commit. Our answer to post-dump decides: yes kills
 * the source tree, no resumes it.
 */
#define LOG_PREFIX "engine: "
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "criu/criu.h"
#include "criu/tcplock.h"
#include "source/cow.h"
#include "source/freeze.h"
#include "source/indoubt.h"
#include "source/postcopy.h"
#include "source/precopy.h"
#include "engine/drvctx.h"
#include "engine/progress.h"
#include "engine/control.h"
#include "engine/session.h"
#include "source/source.h"
#include "proto/xfer.h"

#define RESTORE_TIMEOUT_MS (15 * 60 * 1000)

static uint64_t images_size(int dirfd, size_t *nr)
{
	DIR *d = opendir_at(dirfd);
	struct dirent *de;
	uint64_t sum = 0;
	struct stat st;

	*nr = 0;
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && !fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) &&
		    S_ISREG(st.st_mode)) {
			sum += st.st_size;
			(*nr)++;
		}
	closedir(d);
	return sum;
}

static int send_images(struct migration *m)
{
	struct progress p;
	struct xfer_progress xp = { progress_add, &p };
	char failed[256];
	size_t nr;
	uint64_t t0 = now_ms();
	int r = fault_point("src.transfer");

	mig_step(m, "transfer");
	if (r < 0)
		return mig_fail(m, r, "injected fault");
	m->st.bytes_images = images_size(m->imgfd, &nr);
	progress_begin(&p, m->opts->progress, "images", m->st.bytes_images);
	r = xfer_send_dir(m->conn, m->imgfd, &xp, &nr, failed, sizeof(failed));
	if (r < 0)
		mig_fail(m, r, "sending %s: %s", failed, strerror(-r));
	progress_end(&p);
	m->st.transfer_ms = now_ms() - t0;
	if (r == 0)
		pr_info("sent %zu image files, %.1f MiB as %.1f MiB in %llu ms", nr,
			m->st.bytes_images / 1048576.0,
			(m->st.images.wire_bytes ? m->st.images.wire_bytes : m->st.bytes_images) /
				1048576.0,
			(unsigned long long)m->st.transfer_ms);
	return r;
}

static int remote_restore(struct migration *m)
{
	Phaul__Restore rs = PHAUL__RESTORE__INIT;
	_cleanup_msg_ Msg *reply = NULL;
	int r;

	mig_step(m, "restore");
	r = fault_point("src.restore");
	if (r < 0)
		return mig_fail(m, r, "injected fault");
	rs.has_shell_job = true;
	rs.shell_job = m->shell_job;
	rs.has_tcp_close = true;
	rs.tcp_close = m->opts->tcp_close;
	rs.has_recover_timeout_s = true;
	rs.recover_timeout_s = m->opts->recover_timeout_s;
	rs.has_no_postcopy = m->auto_mode;
	rs.no_postcopy = !mode_postcopy(m->mode);
	r = msg_send_restore(m->conn, &rs);
	if (r < 0)
		return mig_fail(m, r, "cannot ask for the restore: %s", strerror(-r));
	conn_set_timeout(m->conn, RESTORE_TIMEOUT_MS);
	r = expect_msg(m, PHAUL__MSG__BODY_RESTORE_READY, &reply);
	if (r < 0)
		return r;
	m->st.restore_ms = reply->restore_ready->restore_ms;
	pr_info("restored on the destination in %llu ms, held until the commit",
		(unsigned long long)m->st.restore_ms);
	return 0;
}

/* CRIU must still hold the tree: its socket open, the root traced. */
static bool criu_holds_tree(struct criu *c)
{
	struct pollfd pfd = { .fd = c->sk, .events = POLLIN };

	return poll(&pfd, 1, 0) == 0;
}

/*
 * From here the source tree must never run again unless the destination
 * says it rolled back: a pending SIGSTOP keeps it stopped even if CRIU
 * (or we) die and CRIU lets it go.
 */
static void stop_tree(struct migration *m, int sig)
{
	for (size_t i = 0; i < m->nr_procs; i++)
		kill(m->pids[i], sig);
}

static int remote_commit(struct migration *m, struct criu *c)
{
	Phaul__Commit cm = PHAUL__COMMIT__INIT;
	int r;

	mig_step(m, "commit");
	r = fault_point("src.commit");
	if (r < 0)
		return mig_fail(m, r, "injected fault");
	if (!criu_holds_tree(c))
		return mig_fail(m, -ESRCH, "CRIU let go of the frozen tree before the commit");
	/* the operator's cancel, or from now on none (engine/control.h) */
	r = control_commit();
	if (r < 0)
		return mig_fail(m, r, CONTROL_CANCELLED);
	stop_tree(m, SIGSTOP);
	r = msg_send_commit(m->conn, &cm);
	return source_await_committed(m, r);
}

int source_await_committed(struct migration *m, int r)
{
	_cleanup_msg_ Msg *reply = NULL;

	if (r == 0)
		r = expect_msg(m, PHAUL__MSG__BODY_COMMITTED, &reply);
	if (r == 0) {
		m->st.commit_ms = now_ms();
		m->st.restore_ms = reply->committed->restore_ms;
		m->outcome = OUTCOME_COMMITTED;
		pr_info("the workload runs on the destination as PID %d",
			reply->committed->root_pid);
		return 0;
	}
	if (m->peer_said) {
		m->outcome = OUTCOME_ABORTED;
		return r;
	}
	/* the link broke after Commit (or Restart) went out: ask how it ended */
	m->outcome = source_resolve(m);
	return m->outcome == OUTCOME_COMMITTED ? 0 : r;
}

/* The frozen time starts when CRIU had the whole tree, if that was seen. */
static void freeze_end_stats(struct migration *m)
{
	uint64_t seized = m->fw ? atomic_load(&m->fw->seized_ms) : 0;

	if (seized > m->st.freeze_ms)
		m->st.freeze_ms = seized;
}

/*
 * Stop watching the freeze (its thread may be sending the final pages: the
 * connection is ours again after this). The frozen time starts when CRIU
 * had the whole tree, not when it was started.
 */
static int freeze_end(struct migration *m)
{
	struct freeze_watch *w = m->fw;
	int r;

	if (!w)
		return 0;
	r = freeze_watch_wait(w);
	freeze_end_stats(m);
	m->fw = NULL;
	return r;
}

/*
 * What still has to move while frozen, by mode. The pages a fork shares
 * (cow.h) go first in hybrid mode (sent, they are not dropped), after
 * the final round in live mode (which sent them already).
 */
static int final_pages(struct migration *m)
{
	/* stop mode that streams moves memory as live mode does */
	bool live = m->mode == MODE_LIVE || m->stream;
	struct cow_set cs = { 0 };
	int r = 0;

	if (mig_lazy_dump(m) && m->peer_shared && !m->opts->cow_copies &&
	    (r = cow_find(m, &cs)) < 0)
		mig_fail(m, r, "finding the pages shared copy-on-write: %s", strerror(-r));
	/* lazy mode's shared memory, if the freeze's thread did not send it */
	if (r == 0 && m->mode == MODE_LAZY)
		r = precopy_shm_final(m);
	if (r == 0 && !live)
		r = precopy_send_shared(m, &cs);
	if (r == 0 && m->pc && (mode_has_rounds(m->mode) || m->stream))
		r = mode_postcopy(m->mode) ? precopy_final_lazy(m) : precopy_final(m);
	if (r == 0 && live)
		r = precopy_send_shared(m, &cs);
	if (r == 0 && m->mode == MODE_LAZY)
		m->st.final_pages = m->st.cow_sent;
	cow_free(&cs);
	return r;
}

int source_switch_over(struct migration *m, struct criu *c)
{
	int r;

	mig_step(m, "final");
	/* the connection is ours again before any driver talks on it */
	r = freeze_end(m);
	if (r == 0)
		r = mig_hook(m, HOOK_FROZEN);
	if (r == 0)
		r = mig_hook(m, HOOK_STOP_MIGRATION);
	if (r == 0)
		r = final_pages(m);
	if (r == 0)
		r = send_images(m);
	if (r == 0 && mig_lazy_dump(m))
		r = postcopy_begin(m);
	if (r == 0)
		r = remote_restore(m);
	if (r == 0)
		r = remote_commit(m, c);
	if (r == 0 && m->post && (r = postcopy_serve(m)) < 0) {
		/* not known how the fill went: in doubt, as a commit can be */
		m->outcome = r == -EINPROGRESS ? OUTCOME_IN_DOUBT : OUTCOME_LOST;
		r = m->err ? m->err : -EIO;
	}
	return r;
}

/* CRIU's post-dump: the tree is frozen and dumped. Our answer commits. */
static int on_post_dump(struct migration *m, struct criu *c)
{
	int r;

	freeze_end_stats(m);
	m->st.dump_ms = now_ms() - m->st.freeze_ms;
	pr_info("frozen and dumped in %llu ms", (unsigned long long)m->st.dump_ms);
	r = source_switch_over(m, c);
	if (m->outcome == OUTCOME_LOST) {
		/* the destination's copy is gone or will be: so must this one */
		pr_err("post-copy failed after the commit: the workload is lost");
		stop_tree(m, SIGKILL);
		if (criu_notify_reply(c, true) < 0)
			m->tcp_lock_left = false; /* CRIU unlocks as on a failure */
		return r;
	}
	if (m->outcome == OUTCOME_COMMITTED) {
		if (fault_point("src.committed") < 0 || criu_notify_reply(c, true) < 0) {
			/* CRIU is gone or did not take it: the tree must not outlive
			 * the commit, and CRIU, left unanswered, is let go */
			pr_warn("CRIU did not take the commit: killing the source tree");
			stop_tree(m, SIGKILL);
			shutdown(c->sk, SHUT_RDWR);
			m->tcp_lock_left = false; /* CRIU unlocks as on a failure */
		}
		return 0;
	}
	if (m->outcome == OUTCOME_IN_DOUBT) {
		criu_notify_reply(c, false);
		return r;
	}
	/* rolled back (or never committed): storage first, then CRIU resumes
	 * the tree, which finds its files where they were */
	mig_hook(m, HOOK_MIGRATION_FAILED);
	m->rolled_back = true;
	criu_notify_reply(c, false);
	if (m->step && !strcmp(m->step, "commit"))
		stop_tree(m, SIGCONT);
	return r < 0 ? r : -EIO;
}

static void fill_dump_opts(struct migration *m, CriuOpts *o)
{
	const struct mig_opts *mo = m->opts;

	o->images_dir_fd = m->imgfd;
	o->log_file = "dump.log";
	o->has_log_level = true;
	o->log_level = log_get_level() >= LOG_DEBUG ? 4 : 2;
	o->has_notify_scripts = true;
	o->notify_scripts = true;
	o->has_shell_job = true;
	o->shell_job = m->shell_job;
	o->has_tcp_established = true;
	o->tcp_established = mo->tcp_established;
	o->has_tcp_close = true;
	o->tcp_close = mo->tcp_close;
	if (mo->tcp_established)
		criu_pick_network_lock(o);
	o->has_ext_unix_sk = true;
	o->ext_unix_sk = mo->ext_unix_sk;
	o->has_file_locks = true;
	o->file_locks = mo->file_locks;
	o->has_link_remap = mo->link_remap;
	o->link_remap = mo->link_remap;
	o->has_ghost_limit = mo->ghost_limit_mib > 0;
	o->ghost_limit = mo->ghost_limit_mib << 20;
	o->has_leave_running = true;
	o->leave_running = false;
}

/*
 * Live, lazy and hybrid modes: CRIU dumps anonymous memory "lazily", i.e.
 * not at all (the destination has it from the rounds, or fetches it from
 * us after the restore: postcopy.h). Our CRIU patch 0002 leaves those
 * pages in the frozen tree, where we read them: the dump neither splices
 * them into pipes nor serves them. An unpatched CRIU does both, serving
 * from a page server after post-dump; CRIU's RPC does not take that
 * server's socket, so a config file hands it ours: when we close our
 * end, the server ends and the dump finishes. No port is ever opened.
 */
/*
 * The shared memory the rounds pre-copied: CRIU records its pages as in
 * the parent images (the destination's store; patch 0016) and does not
 * read them. An unpatched CRIU ignores it and dumps them as before.
 */
static int shmem_opts(struct migration *m, struct criu *c)
{
	static char env[4200]; /* one dump per process */
	int n = snprintf(env, sizeof(env), "CRIU_SHMEM_IN_PARENT=%s/shmem-in-parent", m->dir);
	int r;

	if (n < 0 || (size_t)n >= sizeof(env))
		return mig_fail(m, -ENAMETOOLONG, "the work directory's name is too long");
	r = precopy_shmem_list(m, env + strlen("CRIU_SHMEM_IN_PARENT="));
	if (r > 0)
		c->shmem_env = env;
	return r < 0 ? r : 0;
}

static int lazy_opts(struct migration *m, struct criu *c, CriuOpts *o, char *conf, size_t len)
{
	int sp[2];
	FILE *f;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return mig_fail(m, -errno, "socketpair: %m");
	m->ps_sk = sp[0];
	c->pass_fd = sp[1];
	snprintf(conf, len, "%s/criu-dump.conf", m->dir);
	f = fopen(conf, "we");
	if (!f)
		return mig_fail(m, -errno, "cannot write %s: %m", conf);
	fprintf(f, "ps-socket %d\n", CRIU_PASS_FD);
	fclose(f);
	o->config_file = conf;
	o->has_lazy_pages = true;
	o->lazy_pages = true;
	c->lazy_in_place = true;
	return shmem_opts(m, c);
}

static int dump_opts(struct migration *m, CriuOpts *o)
{
	fill_dump_opts(m, o);
	for (size_t i = 0; i < m->nr_drv; i++) {
		const struct driver_ops *ops = m->drv[i]->ops;
		struct mig_drvctx b;
		int r;

		mig_drvctx_init(m, i, &b);
		r = ops->dump_opts ? ops->dump_opts(m->drv[i], &b.ctx, o) : 0;
		if (r < 0)
			return mig_fail(m, r, "%s driver: dump options", ops->name);
	}
	return 0;
}

/* Run CRIU's dump to its end, answering its notifications. */
static int dump_loop(struct migration *m, struct criu *c, bool *ok)
{
	CriuResp *resp = NULL;
	int r, ret = 0;

	for (;;) {
		r = criu_recv(c, &resp);
		if (r < 0)
			return ret ? ret :
				     mig_fail(m, r, "CRIU died during the dump (see dump.log)");
		if (resp->type != CRIU_REQ_TYPE__NOTIFY)
			break;
		if (resp->notify && resp->notify->script &&
		    !strcmp(resp->notify->script, "post-dump")) {
			ret = on_post_dump(m, c);
			/* ends CRIU's lazy page server: nothing is fetched from it */
			if (m->ps_sk >= 0)
				close(m->ps_sk);
			m->ps_sk = -1;
		} else
			criu_notify_reply(c, true);
		criu_resp__free_unpacked(resp, NULL);
	}
	*ok = resp->type == CRIU_REQ_TYPE__DUMP && resp->success;
	if (!*ok && !ret) {
		char log[PATH_MAX], what[96], comm[32];
		pid_t who;

		mig_step(m, "dump");
		/* whose resource it was (the tree resumed: its names are readable) */
		snprintf(log, sizeof(log), "%s/img/dump.log", m->dir);
		who = criu_log_failed_pid(log);
		if (who > 0) {
			proc_comm(who, comm, sizeof(comm));
			snprintf(what, sizeof(what), "CRIU could not dump process %d (%s)", who,
				 comm);
		} else {
			snprintf(what, sizeof(what), "CRIU could not dump the tree");
		}
		ret = session_criu_failed(m, "img/dump.log", what);
	}
	criu_resp__free_unpacked(resp, NULL);
	return ret;
}

/*
 * The tree is gone after a commit; CRIU's dump left the lock it took on
 * the tree's TCP connections in this host's netfilter (criu/tcplock.h),
 * for a restore here that will not come: remove exactly that lock. Until
 * now it dropped, without a reset, what a peer outside the tree still
 * sent to this host's address; from now such a peer gets resets (BUG-16
 * in docs/RELIABILITY.md). Only when the tree shared our network
 * namespace: a tree in its own is locked there, whole, and its namespace
 * goes with it; and only when CRIU took our "yes" (else it unlocked).
 */
static void unlock_tcp(struct migration *m)
{
	struct tcplock l;

	if (!m->tcp_lock_left)
		return;
	m->tcp_lock_left = false;
	if (tcplock_read(m->imgfd, &l) < 0 || tcplock_remove(&l) < 0)
		pr_warn("the dump's TCP connection lock may be left in this host's netfilter "
			"(see above)");
	tcplock_free(&l);
}

int source_final_dump(struct migration *m)
{
	struct criu c = CRIU_INIT;
	CriuReq req = CRIU_REQ__INIT;
	CriuOpts o = CRIU_OPTS__INIT;
	struct freeze_watch fw;
	char conf[4200];
	bool ok = false;
	int r;

	mig_step(m, "dump");
	r = fault_point("src.dump");
	if (r < 0)
		return mig_fail(m, r, "injected fault");
	r = dump_opts(m, &o);
	if (r == 0 && m->stream)
		r = precopy_stream_start(m);
	if (r == 0 && mig_lazy_dump(m))
		r = lazy_opts(m, &c, &o, conf, sizeof(conf));
	if (r < 0) {
		precopy_stop(m);
		return r;
	}
	req.type = CRIU_REQ_TYPE__DUMP;
	req.opts = &o;
	/* as CRIU decides where it locks connections: its netns is ours */
	m->tcp_lock_left = proc_shares_ns(m->root_pid, "net") > 0;
	m->st.freeze_ms = now_ms();
	r = criu_begin(&c, &req);
	if (c.pass_fd >= 0)
		close(c.pass_fd);
	c.pass_fd = -1;
	if (r < 0)
		return mig_fail(m, r, "cannot start CRIU");
	if (freeze_watch_start(&fw, m, precopy_send_frozen) == 0)
		m->fw = &fw;
	else
		pr_warn("cannot watch the freeze: the final pages wait for the end of the dump");
	r = dump_loop(m, &c, &ok);
	freeze_end(m);
	criu_stop(&c);
	postcopy_end(m);
	if (m->outcome == OUTCOME_LOST) {
		m->st.frozen_ms = m->st.commit_ms - m->st.freeze_ms;
		unlock_tcp(m);
		return r < 0 ? r : -EIO;
	}
	if (m->outcome == OUTCOME_COMMITTED) {
		m->st.frozen_ms = m->st.commit_ms - m->st.freeze_ms;
		mig_step(m, "cleanup");
		if (fault_point("src.cleanup") < 0 || mig_hook(m, HOOK_MIGRATION_COMPLETE) < 0)
			pr_warn("cleanup after the commit failed; the migration stands");
		unlock_tcp(m);
		return 0;
	}
	if (r < 0 && m->error[0] == '\0')
		mig_fail(m, r, "dump failed");
	session_log_criu_errors(m, "img/dump.log", 5);
	if (m->outcome != OUTCOME_IN_DOUBT)
		session_peer_reason(m, 2000);
	if (m->conn && !m->peer_said && m->outcome != OUTCOME_IN_DOUBT)
		msg_send_abort(m->conn, m->error);
	precopy_stop(m);
	if (m->outcome != OUTCOME_IN_DOUBT && !m->rolled_back)
		mig_hook(m, HOOK_MIGRATION_FAILED);
	return r < 0 ? r : -EIO;
}
