/* SPDX-License-Identifier: MIT */
/*
 * target: `phaul serve`'s side of one migration.
 */
#define LOG_PREFIX "session: "
#include "target/target.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "pages/reconnect.h"
#include "target/gate.h"
#include "target/outcome.h"
#include "engine/control.h"
#include "engine/drvctx.h"
#include "engine/events.h"
#include "engine/session.h"
#include "proto/pageframe.h"
#include "proto/tls.h"
#include "proto/xfer.h"

/* A read cancelled by the operator (phaul cancel) or by the daemon's
 * shutdown (serve.c) says which. */
static const char *why(int r)
{
	if (r == -EBADMSG)
		return "corrupt data on the connection (it failed its check)";
	if (r == -ECANCELED)
		return control_cancelled() ? CONTROL_CANCELLED :
					     "the destination daemon is shutting down";
	return strerror(-r);
}

int target_recv(struct target *t, Msg **ret)
{
	Msg *msg = NULL;
	int r = msg_recv(t->m.conn, &msg);

	if (r == -EPIPE || r == -ECONNRESET)
		return mig_fail(&t->m, r, "the source closed the connection");
	if (r < 0)
		return mig_fail(&t->m, r, "receive: %s", why(r));
	if (!state_allows(t->st, msg->body_case)) {
		msg_send_error(t->m.conn, EPROTO, state_name(t->st), "%s not allowed in state %s",
			       msg_name(msg->body_case), state_name(t->st));
		t->told = true;
		r = mig_fail(&t->m, -EPROTO, "protocol error: %s in state %s",
			     msg_name(msg->body_case), state_name(t->st));
		msg_free(msg);
		return r;
	}
	if (msg->body_case == PHAUL__MSG__BODY_ABORT) {
		t->m.peer_said = true;
		r = mig_fail(&t->m, -ECANCELED, "the source aborted: %s", msg->abort->reason);
		msg_free(msg);
		return r;
	}
	*ret = msg;
	return 0;
}

static int reply_hello(struct target *t, uint64_t features)
{
	Phaul__HelloReply h = PHAUL__HELLO_REPLY__INIT;
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	h.version = proto_version();
	h.has_session_id = true;
	h.session_id.data = t->m.session_id;
	h.session_id.len = PHAUL_SESSION_ID_LEN;
	h.host = host;
	h.has_features = features != 0;
	h.features = features;
	return msg_send_hello_reply(t->m.conn, &h);
}

/*
 * A post-copy session lost its connection and its source is back: carry
 * this connection's bytes to the session process that waits for them.
 */
static void relay_session(struct target *t, const uint8_t *id)
{
	char hex[2 * PHAUL_SESSION_ID_LEN + 1], dir[4096];
	_cleanup_close_ int fd = -1;
	int r;

	session_hex(id, hex);
	snprintf(dir, sizeof(dir), "%s/in-%s", t->so->workdir, hex);
	r = resume_connect(dir, &fd);
	if (r < 0) {
		pr_warn("resume of session %s refused: no such post-copy session here", hex);
		msg_send_error(t->m.conn, ENOENT, "handshake", "no post-copy session %s waits here",
			       hex);
		return;
	}
	memcpy(t->m.session_id, id, PHAUL_SESSION_ID_LEN);
	if (reply_hello(t, 0) < 0) /* the resumed link carries raw pages */
		return;
	pr_info("relaying the resumed connection of session %s", hex);
	r = resume_relay(t->m.conn, fd);
	pr_info("relay of session %s ended%s%s", hex, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
}

/* Hello: version check, or an outcome query; 1 when the session is over. */
static int hello(struct target *t)
{
	_cleanup_msg_ Msg *msg = NULL;
	uint64_t agreed;
	char fs[64];
	int r;

	mig_step(&t->m, "handshake");
	r = fault_point("dst.handshake");
	if (r < 0)
		return mig_fail(&t->m, r, "injected fault");
	r = target_recv(t, &msg);
	if (r < 0)
		return r;
	if (msg->hello->version != proto_version()) {
		msg_send_error(t->m.conn, EPROTONOSUPPORT, "handshake",
			       "protocol version %u not supported (this daemon speaks %u)",
			       msg->hello->version, proto_version());
		t->told = true;
		return mig_fail(&t->m, -EPROTONOSUPPORT, "client speaks protocol version %u, we %u",
				msg->hello->version, proto_version());
	}
	if (msg->hello->has_resume && msg->hello->features & PHAUL_FEAT_PAGES_RESUME) {
		relay_session(t, msg->hello->resume.data);
		return 1;
	}
	if (msg->hello->has_resume) {
		outcome_answer(t->m.conn, t->so->workdir, msg->hello->resume.data);
		return 1;
	}
	if (getrandom(t->m.session_id, PHAUL_SESSION_ID_LEN, 0) != PHAUL_SESSION_ID_LEN)
		return mig_fail(&t->m, -EIO, "getrandom: %m");
	session_hex(t->m.session_id, t->hex);
	pr_info("session %s from %s", t->hex, msg->hello->host ? msg->hello->host : "?");
	r = session_mkdirs(&t->m, t->so->workdir, "in-");
	t->m.logdir = t->so->logdir;
	if (r == 0)
		r = session_write_owner(&t->m);
	if (r == 0)
		r = outcome_write(t->so->workdir, t->hex, "pending", getpid());
	/* an older source asks for fewer: it gets only what it asked */
	agreed = msg->hello->features &
		 (PHAUL_FEAT_PAGE_FRAMES | PHAUL_FEAT_PAGE_ZSTD | PHAUL_FEAT_PAGE_SHARED |
		  PHAUL_FEAT_IMG_ZSTD | PHAUL_FEAT_SHMEM_PAGES);
	t->shmem = agreed & PHAUL_FEAT_SHMEM_PAGES;
	if (r == 0)
		r = reply_hello(t, agreed);
	if (r == 0)
		pr_info("features agreed with the source: %s",
			proto_features_str(agreed, fs, sizeof(fs)));
	if (r == 0 && msg->hello->features & PHAUL_FEAT_PAGE_FRAMES) {
		if (pf_attach(t->m.conn, NULL) < 0)
			r = mig_fail(&t->m, -ENOMEM, "no memory for the page codec");
		else
			t->m.conn->pf->zstd_ok = msg->hello->features & PHAUL_FEAT_PAGE_ZSTD;
	}
	if (r == 0 && agreed & PHAUL_FEAT_IMG_ZSTD &&
	    xfer_attach(t->m.conn, PF_COMPRESS_OFF, NULL) < 0)
		r = mig_fail(&t->m, -ENOMEM, "no memory for the image codec");
	t->st = ST_PREFLIGHT;
	return r;
}

/*
 * The first pages of shared memory: whether they go into memfds that our
 * CRIU's restore maps (patch 0017), or into the rounds, read by any CRIU.
 */
static void shm_probe(struct target *t)
{
	/* PHAUL_SHMEM_PREPARED=0: the rounds, to measure and test them */
	const char *env = getenv("PHAUL_SHMEM_PREPARED");
	bool off = env && !strcmp(env, "0");
	int r = t->criu.shmem_env && !off ? criu_feature(CRIU_FEATURE_SHMEM) : 0;
	const char *where = "to the rounds (a container manager's CRIU restores)";

	if (r == 1)
		where = "into memfds CRIU's restore takes";
	else if (off)
		where = "to the rounds (PHAUL_SHMEM_PREPARED=0)";
	else if (t->criu.shmem_env)
		where = "to the rounds (this CRIU lacks patch 0017)";
	t->shm_probed = true;
	t->ps.prepared = r == 1;
	pr_info("shared memory goes %s", where);
}

static int receive_pages(struct target *t, Msg *msg)
{
	int r;

	if (!t->live)
		return mig_fail(&t->m, -EPROTO, "pages sent in %s mode", mode_name(t->m.mode));
	if (msg->body_case == PHAUL__MSG__BODY_NEW_PIDS) {
		r = pagestore_add_pids(&t->ps, msg->new_pids->pids, msg->new_pids->n_pids);
		if (r == 0)
			pr_info("%zu processes forked since the preflight", msg->new_pids->n_pids);
		return r < 0 ? mig_fail(&t->m, r, "new processes: %s", strerror(-r)) : 0;
	}
	if (msg->body_case == PHAUL__MSG__BODY_PAGE_RUN) {
		if (msg->page_run->has_shmid && !t->shm_probed)
			shm_probe(t);
		r = pagestore_recv_run(&t->ps, t->m.conn, msg->page_run, &t->budget);
		return r < 0 ? mig_fail(&t->m, r, "receiving pages: %s", why(r)) : 0;
	}
	if (msg->body_case == PHAUL__MSG__BODY_PAGE_DROP) {
		const Phaul__PageDrop *pd = msg->page_drop;
		if (!t->remote)
			return mig_fail(&t->m, -EPROTO, "stale pages marked in %s mode",
					mode_name(t->m.mode));
		r = pagestore_drop(&t->ps, pd->pid, pd->vaddr,
				   pd->vaddr + (uint64_t)pd->nr_pages * PAGE);
		return r < 0 ? mig_fail(&t->m, r, "marking stale pages: %s", strerror(-r)) : 0;
	}
	if (msg->body_case == PHAUL__MSG__BODY_PAGE_SHARED) {
		const Phaul__PageShared *sh = msg->page_shared;
		uint64_t end = sh->vaddr + (uint64_t)sh->nr_pages * PAGE;
		r = sh->has_from_pid ? pagestore_copy(&t->ps, sh->pid, sh->from_pid, sh->vaddr, end,
						      &t->budget) :
				       0;
		if (r == 0)
			r = pagestore_share(&t->ps, sh->pid, sh->vaddr, end);
		return r < 0 ? mig_fail(&t->m, r, "marking shared pages: %s", why(r)) : 0;
	}
	mig_step(&t->m, "round");
	r = fault_point("dst.round");
	if (r == 0)
		r = pagestore_end_round(&t->ps);
	if (r < 0)
		return mig_fail(&t->m, r, "round %u: %s", msg->round_end->round, strerror(-r));
	events_round(t->m.ev, msg->round_end->round,
		     &(struct round_stat){ .pages_sent = msg->round_end->pages,
					   .frozen = msg->round_end->final },
		     0);
	pr_info("round %u%s: %llu pages, %llu in all", msg->round_end->round,
		msg->round_end->final ? " (final)" : "", (unsigned long long)msg->round_end->pages,
		(unsigned long long)t->ps.pages);
	mig_step(&t->m, "transfer");
	return 0;
}

/* A storage driver's message: the driver it names runs the exchange. */
static int receive_fs(struct target *t, Msg *msg)
{
	uint32_t i = msg->fs_sync->driver + 1;
	struct driver *d = i < t->m.nr_drv ? t->m.drv[i] : NULL;
	struct mig_drvctx b;
	int r;

	if (!d || !d->ops->target_msg)
		return mig_fail(&t->m, -EPROTO, "storage message for driver %u, which takes none",
				msg->fs_sync->driver);
	mig_step(&t->m, "storage");
	mig_drvctx_init(&t->m, i, &b);
	r = d->ops->target_msg(d, &b.ctx, msg);
	if (r < 0)
		return t->m.error[0] ? r : mig_fail(&t->m, r, "%s driver failed", d->ops->name);
	mig_step(&t->m, "transfer");
	return 0;
}

static int receive_images(struct target *t, Msg **ret_restore)
{
	uint64_t bytes = 0, files = 0, t0 = now_ms();
	int r;

	mig_step(&t->m, "transfer");
	for (;;) {
		Msg *msg = NULL;
		r = target_recv(t, &msg);
		if (r < 0)
			return r;
		if (msg->body_case == PHAUL__MSG__BODY_RESTORE ||
		    msg->body_case == PHAUL__MSG__BODY_RESTART) {
			*ret_restore = msg;
			break;
		}
		if (msg->body_case == PHAUL__MSG__BODY_PAGE_RUN ||
		    msg->body_case == PHAUL__MSG__BODY_PAGE_DROP ||
		    msg->body_case == PHAUL__MSG__BODY_PAGE_SHARED ||
		    msg->body_case == PHAUL__MSG__BODY_ROUND_END ||
		    msg->body_case == PHAUL__MSG__BODY_NEW_PIDS) {
			r = receive_pages(t, msg);
			msg_free(msg);
			if (r < 0)
				return r;
			continue;
		}
		if (msg->body_case == PHAUL__MSG__BODY_FS_SYNC) {
			r = receive_fs(t, msg);
			msg_free(msg);
			if (r < 0)
				return r;
			continue;
		}
		r = fault_point("dst.transfer");
		if (r == 0)
			r = xfer_recv_file(t->m.conn, t->m.imgfd, msg->file_begin, &t->budget);
		if (r == 0) {
			bytes += msg->file_begin->size;
			files++;
		} else if (!t->m.error[0]) {
			msg_send_error(t->m.conn, r, "transfer", "image %s: %s",
				       msg->file_begin->name, why(r));
			t->told = true;
			mig_fail(&t->m, r, "image %s: %s", msg->file_begin->name, why(r));
		}
		msg_free(msg);
		if (r < 0)
			return r;
	}
	pr_info("received %llu image files, %.1f MiB in %llu ms", (unsigned long long)files,
		bytes / 1048576.0, (unsigned long long)(now_ms() - t0));
	return 0;
}

static int run(struct target *t)
{
	_cleanup_msg_ Msg *msg = NULL;
	_cleanup_msg_ Msg *restore = NULL;
	int r;

	r = hello(t);
	if (r != 0)
		return r < 0 ? r : 0;
	mig_step(&t->m, "preflight");
	/* `criu check` runs while the source runs its own checks; the
	 * preflight takes its answer (check_criu), or it starts then */
	if (criu_check_begin(&t->check, t->m.dir) < 0)
		pr_warn("could not start criu check ahead of the preflight; it runs then");
	r = target_recv(t, &msg);
	if (r == 0 && msg->body_case == PHAUL__MSG__BODY_CHECK)
		return target_check_only(t, msg->check);
	if (r == 0 && msg->body_case != PHAUL__MSG__BODY_PREFLIGHT) {
		/* a driver's own message comes first, once */
		t->info = TAKE_PTR(msg);
		r = target_recv(t, &msg);
		if (r == 0 && msg->body_case != PHAUL__MSG__BODY_PREFLIGHT)
			r = mig_fail(&t->m, -EPROTO, "protocol error: %s where Preflight was due",
				     msg_name(msg->body_case));
	}
	if (r == 0)
		r = target_preflight(t, msg->preflight);
	if (r < 0)
		return r;
	t->st = ST_TRANSFER;
	r = receive_images(t, &restore);
	if (r < 0)
		return r;
	if (restore->body_case == PHAUL__MSG__BODY_RESTART)
		return target_restart(t, restore->restart);
	if (t->m.mode == MODE_RESTART)
		return mig_fail(&t->m, -EPROTO, "Restore in restart mode");
	return target_restore(t, restore->restore);
}

static void target_init(struct target *t, const struct serve_opts *so)
{
	*t = (struct target){ .so = so,
			      .st = ST_HELLO,
			      .reaper = REAPER_INIT,
			      .criu = CRIU_INIT,
			      .check = CRIU_CALL_INIT,
			      .lazy = CRIU_LAZY_INIT,
			      .lazy_sk = -1 };
	t->ps.dirfd = t->ps.round_fd = -1;
	t->m.ps_sk = -1;
	t->m.imgfd = -1;
	t->m.st.start_ms = now_ms();
}

static int session_run(struct target *t);

int target_session(int fd, const struct serve_opts *so)
{
	struct target t;
	int r;

	target_init(&t, so);
	mig_step(&t.m, "authentication");
	r = tls_accept(fd, &so->key, so->auth_timeout_s * 1000, &t.m.conn);
	if (r < 0) {
		pr_err("client failed authentication: %s",
		       r == -EACCES ? "wrong key" : strerror(-r));
		return 1;
	}
	/* authenticated: now a session slot, or a busy answer (target/children.h) */
	if (gate_child(t.m.conn, so) != 0) {
		mig_free(&t.m);
		return 0;
	}
	return session_run(&t);
}

int target_session_conn(struct conn *c, const struct serve_opts *so)
{
	struct target t;

	target_init(&t, so);
	t.m.conn = c;
	return session_run(&t);
}

static int session_run(struct target *t)
{
	struct rusage ru;
	int r;

	conn_set_timeout(t->m.conn, 120000);
	/* `phaul status` and `phaul cancel` reach the session (a warning
	 * without them) */
	if (events_new(NULL, "destination", &t->m.ev) == 0)
		control_start(t->m.ev);
	r = run(t);
	if (r < 0 && !t->committed) {
		/* the workload's driver undoes what it set up here (a
		 * container's veth on the bridge, its registration) before the
		 * source, told, resumes its copy: a client of the workload must
		 * not meet this half meanwhile. Storage is undone after: a
		 * synced tree may take long to delete, the source waits not. */
		mig_hook_kind(&t->m, HOOK_TARGET_ABORT, DRV_HTYPE);
		if (t->m.conn && !t->m.peer_said) {
			if (!t->told)
				msg_send_error(t->m.conn, t->m.err ? t->m.err : r,
					       t->m.step ?: "session", "%s",
					       t->m.reason[0] ? t->m.reason : strerror(-r));
			session_drain(t->m.conn, 2000);
		}
		mig_hook_kind(&t->m, HOOK_TARGET_ABORT, DRV_FS);
		if (t->hex[0])
			outcome_write(t->so->workdir, t->hex, "aborted", 0);
		pr_info("session %s rolled back", t->hex[0] ? t->hex : "(none)");
	}
	criu_stop(&t->criu);
	criu_call_end(&t->check);
	target_lazy_cancel(t);
	reaper_disarm(&t->reaper);
	free(t->tree);
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		pr_info("session %s: peak memory %ld kB", t->hex[0] ? t->hex : "-", ru.ru_maxrss);
	pagestore_fini(&t->ps);
	if (t->info)
		msg_free(t->info);
	session_rmdirs(&t->m);
	control_stop();
	events_free(t->m.ev);
	mig_free(&t->m);
	return r < 0 ? 1 : 0;
}
