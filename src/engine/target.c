/* SPDX-License-Identifier: MIT */
/*
 * target: `phaul serve`'s side of one migration.
 */
#define LOG_PREFIX "session: "
#include "engine/target.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "proto/tls.h"
#include "proto/xfer.h"

/* A read cancelled by the daemon's shutdown says so (serve.c). */
static const char *why(int r)
{
	return r == -ECANCELED ? "the destination daemon is shutting down" : strerror(-r);
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

static int reply_hello(struct target *t)
{
	Phaul__HelloReply h = PHAUL__HELLO_REPLY__INIT;
	Msg msg = PHAUL__MSG__INIT;
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	h.version = PHAUL_PROTO_VERSION;
	h.has_session_id = true;
	h.session_id.data = t->m.session_id;
	h.session_id.len = PHAUL_SESSION_ID_LEN;
	h.host = host;
	msg.body_case = PHAUL__MSG__BODY_HELLO_REPLY;
	msg.hello_reply = &h;
	return msg_send(t->m.conn, &msg);
}

/* Hello: version check, or an outcome query; 1 when the session is over. */
static int hello(struct target *t)
{
	_cleanup_msg_ Msg *msg = NULL;
	int r;

	mig_step(&t->m, "handshake");
	r = fault_point("dst.handshake");
	if (r < 0)
		return mig_fail(&t->m, r, "injected fault");
	r = target_recv(t, &msg);
	if (r < 0)
		return r;
	if (msg->hello->version != PHAUL_PROTO_VERSION) {
		msg_send_error(t->m.conn, EPROTONOSUPPORT, "handshake",
			       "protocol version %u not supported (this daemon speaks %u)",
			       msg->hello->version, PHAUL_PROTO_VERSION);
		return mig_fail(&t->m, -EPROTONOSUPPORT, "client speaks protocol version %u, we %u",
				msg->hello->version, PHAUL_PROTO_VERSION);
	}
	if (msg->hello->has_resume) {
		target_outcome(t, msg->hello->resume.data);
		return 1;
	}
	if (getrandom(t->m.session_id, PHAUL_SESSION_ID_LEN, 0) != PHAUL_SESSION_ID_LEN)
		return mig_fail(&t->m, -EIO, "getrandom: %m");
	session_hex(t->m.session_id, t->hex);
	pr_info("session %s from %s", t->hex, msg->hello->host ? msg->hello->host : "?");
	r = session_mkdirs(&t->m, t->so->workdir, "in-");
	if (r == 0)
		r = session_write_owner(&t->m);
	if (r == 0)
		r = outcome_write(t->so->workdir, t->hex, "pending", getpid());
	if (r == 0)
		r = reply_hello(t);
	t->st = ST_PREFLIGHT;
	return r;
}

static int receive_pages(struct target *t, Msg *msg)
{
	int r;

	if (!t->live)
		return mig_fail(&t->m, -EPROTO, "pages sent in %s mode", t->m.mode);
	if (msg->body_case == PHAUL__MSG__BODY_PAGE_RUN) {
		r = pagestore_recv_run(&t->ps, t->m.conn, msg->page_run, &t->budget);
		return r < 0 ? mig_fail(&t->m, r, "receiving pages: %s", why(r)) : 0;
	}
	mig_step(&t->m, "round");
	r = fault_point("dst.round");
	if (r == 0)
		r = pagestore_end_round(&t->ps);
	if (r < 0)
		return mig_fail(&t->m, r, "round %u: %s", msg->round_end->round, strerror(-r));
	pr_info("round %u%s: %llu pages, %llu in all", msg->round_end->round,
		msg->round_end->final ? " (final)" : "",
		(unsigned long long)msg->round_end->pages, (unsigned long long)t->ps.pages);
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
		if (msg->body_case == PHAUL__MSG__BODY_RESTORE) {
			*ret_restore = msg;
			break;
		}
		if (msg->body_case == PHAUL__MSG__BODY_PAGE_RUN ||
		    msg->body_case == PHAUL__MSG__BODY_ROUND_END) {
			r = receive_pages(t, msg);
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
	r = target_recv(t, &msg);
	if (r == 0 && msg->body_case == PHAUL__MSG__BODY_CHECK)
		return target_check_only(t, msg->check);
	if (r == 0)
		r = target_preflight(t, msg->preflight);
	if (r < 0)
		return r;
	t->st = ST_TRANSFER;
	r = receive_images(t, &restore);
	if (r < 0)
		return r;
	return target_restore(t, restore->restore);
}

int target_session(int fd, const struct serve_opts *so)
{
	struct target t = { .so = so, .st = ST_HELLO };
	struct rusage ru;
	int r;

	t.ps.dirfd = t.ps.round_fd = -1;
	t.m.ps_sk = -1;
	t.m.imgfd = -1;
	t.m.st.start_ms = now_ms();
	mig_step(&t.m, "authentication");
	r = tls_accept(fd, &so->key, so->auth_timeout_s * 1000, &t.m.conn);
	if (r < 0) {
		pr_err("client failed authentication: %s",
		       r == -EACCES ? "wrong key" : strerror(-r));
		return 1;
	}
	conn_set_timeout(t.m.conn, 120000);
	r = run(&t);
	if (r < 0 && !t.committed) {
		if (t.m.conn && !t.m.peer_said) {
			msg_send_error(t.m.conn, t.m.err ? t.m.err : r, t.m.step ?: "session", "%s",
				       t.m.reason[0] ? t.m.reason : strerror(-r));
			session_drain(t.m.conn, 2000);
		}
		mig_hook(&t.m, HOOK_TARGET_ABORT);
		if (t.hex[0])
			outcome_write(so->workdir, t.hex, "aborted", 0);
		pr_info("session %s rolled back", t.hex[0] ? t.hex : "(none)");
	}
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		pr_info("session %s: peak memory %ld kB", t.hex[0] ? t.hex : "-", ru.ru_maxrss);
	pagestore_fini(&t.ps);
	session_rmdirs(&t.m);
	mig_free(&t.m);
	return r < 0 ? 1 : 0;
}
