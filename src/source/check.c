/* SPDX-License-Identifier: MIT */
/*
 * source/check: `phaul check`. The source's own checks (the tree exists
 * and is not being migrated, CRIU usable, cpuinfo), then the
 * destination's preflight through Msg.check, which runs every check and
 * ends the session. Nothing is frozen or dumped, and both sides remove
 * their scratch directories.
 */
#define LOG_PREFIX "check: "
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/pidlock.h"
#include "common/util.h"
#include "engine/session.h"
#include "source/source.h"
#include "source/migrate.h"

/* The tree (if any) exists, and no migration of it runs now. */
static void check_tree(struct migration *m, bool has_pid, struct check_report *rep)
{
	int lock = -1;

	mig_step(m, "prepare");
	if (mig_note(m, source_setup_drivers(m, has_pid), rep->src, sizeof(rep->src)) < 0)
		return;
	if (!has_pid || m->root_pid <= 0)
		return;
	mig_note(m, source_lock_tree(m, &lock), rep->src, sizeof(rep->src));
	pidlock_release(pidlock_dir(), m->root_pid, lock);
}

/* Our CRIU and cpuinfo, in a scratch directory of a random name. */
static void check_local(struct migration *m, struct check_report *rep, uint8_t **cpu,
			size_t *cpulen)
{
	size_t n = sizeof(rep->src);
	int r;

	mig_step(m, "preflight");
	if (getrandom(m->session_id, sizeof(m->session_id), 0) != sizeof(m->session_id))
		memset(m->session_id, 0, sizeof(m->session_id));
	session_sweep(m->opts->workdir, "out-");
	r = session_mkdirs(m, m->opts->workdir, "out-");
	if (r == 0)
		r = session_write_owner(m);
	if (r < 0) {
		mig_note(m, r, rep->src, n);
		return;
	}
	mig_note(m, source_local_checks(m, &rep->criu_src, cpu, cpulen), rep->src, n);
}

/* The peer's answer to Msg.check. */
static void ask_peer(struct migration *m, struct check_report *rep, uint8_t *cpu, size_t cpulen)
{
	_cleanup_msg_ Msg *reply = NULL;
	int r;

	mig_step(m, "preflight");
	r = source_send_preflight(m, rep->criu_src, cpu, cpulen, true);
	if (r == 0)
		r = expect_msg(m, PHAUL__MSG__BODY_PREFLIGHT_REPLY, &reply);
	if (r < 0) {
		mig_note(m, r, rep->dst, sizeof(rep->dst));
		return;
	}
	rep->criu_dst =
		reply->preflight_reply->has_criu_version ? reply->preflight_reply->criu_version : 0;
	if (!reply->preflight_reply->ok)
		snprintf(rep->dst, sizeof(rep->dst), "%s",
			 reply->preflight_reply->error ?: "refused (no reason given)");
}

int migrate_check(struct migration *m, struct check_report *rep)
{
	bool has_pid = strchr(m->opts->htype, ':') != NULL;
	_cleanup_free_ uint8_t *cpu = NULL;
	size_t cpulen = 0;

	m->imgfd = -1;
	memset(rep, 0, sizeof(*rep));
	check_tree(m, has_pid, rep);
	check_local(m, rep, &cpu, &cpulen);
	if (source_hello(m) < 0) {
		mig_note(m, -EIO, rep->dst, sizeof(rep->dst));
	} else {
		rep->reached = true;
		ask_peer(m, rep, cpu, cpulen);
	}
	session_rmdirs(m);
	pr_info("source: %s; destination: %s", rep->src[0] ? rep->src : "ok",
		rep->dst[0] ? rep->dst : "ok");
	return rep->src[0] || rep->dst[0] ? -EAGAIN : 0;
}
