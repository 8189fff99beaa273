/* SPDX-License-Identifier: MIT */
/*
 * source/restart: the source's side of --mode restart (restart.h): stop
 * the workload, final storage pass, have the destination start it; on a
 * failure start it again here.
 */
#define LOG_PREFIX "engine: "
#include <signal.h>
#include <string.h>
#include <time.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "engine/control.h"
#include "engine/restart.h"
#include "engine/session.h"
#include "source/source.h"

#define RESTART_TIMEOUT_MS 120000

static bool tree_alive(struct migration *m)
{
	for (size_t i = 0; i < m->nr_procs; i++)
		if (proc_alive(m->pids[i]))
			return true;
	return false;
}

static void signal_tree(struct migration *m, int sig)
{
	for (size_t i = 0; i < m->nr_procs; i++)
		kill(m->pids[i], sig);
}

/* SIGTERM, wait, SIGKILL: the workload is gone when this returns 0. */
static int stop_workload(struct migration *m)
{
	uint64_t t0 = now_ms();
	struct timespec ts = { 0, 20 * 1000000L };

	mig_step(m, "stop");
	if (fault_point("src.stop") < 0)
		return mig_fail(m, -EIO, "injected fault");
	signal_tree(m, SIGTERM);
	while (tree_alive(m) && now_ms() - t0 < RESTART_TERM_MS)
		nanosleep(&ts, NULL);
	if (tree_alive(m)) {
		pr_warn("the workload ignored SIGTERM for %d ms: SIGKILL", RESTART_TERM_MS);
		signal_tree(m, SIGKILL);
		while (tree_alive(m) && now_ms() - t0 < 2 * RESTART_TERM_MS)
			nanosleep(&ts, NULL);
	}
	if (tree_alive(m))
		return mig_fail(m, -EBUSY, "the workload did not stop");
	pr_info("workload stopped in %llu ms", (unsigned long long)(now_ms() - t0));
	return 0;
}

static int send_restart(struct migration *m, const struct restart_spec *rs)
{
	Phaul__Restart rq = PHAUL__RESTART__INIT;

	rq.argv = rs->argv;
	rq.n_argv = rs->argc;
	rq.env = rs->env;
	rq.n_env = rs->nenv;
	rq.cwd = (char *)rs->cwd;
	rq.stdout = rs->out[0] ? (char *)rs->out : NULL;
	return msg_send_restart(m->conn, &rq);
}

/* Restart there; 0 when the destination says it runs. */
static int remote_restart(struct migration *m, const struct restart_spec *rs)
{
	int r;

	mig_step(m, "restart");
	r = fault_point("src.restart");
	if (r < 0)
		return mig_fail(m, r, "injected fault");
	/* the operator's cancel, or from now on none (engine/control.h) */
	r = control_commit();
	if (r < 0)
		return mig_fail(m, r, CONTROL_CANCELLED);
	conn_set_timeout(m->conn, RESTART_TIMEOUT_MS);
	r = send_restart(m, rs);
	if (r < 0)
		mig_fail(m, r, "cannot send the command line: %s", strerror(-r));
	return source_await_committed(m, r);
}

static void restart_here(struct migration *m, const struct restart_spec *rs)
{
	pid_t pid;

	if (restart_spawn(rs, &pid) == 0)
		pr_info("the workload runs again on the source as PID %d", pid);
	else
		mig_fail(m, -EIO, "and it could not be started again here: %s", rs->argv[0]);
}

int source_restart(struct migration *m)
{
	struct restart_spec rs = { 0 };
	int r = restart_capture(m->root_pid, &rs);

	if (r < 0) {
		mig_step(m, "restart");
		mig_fail(m, r, "cannot read the command line of PID %d: %s", m->root_pid,
			 strerror(-r));
	}
	if (r == 0)
		r = stop_workload(m);
	m->st.freeze_ms = now_ms();
	if (r == 0) {
		mig_step(m, "final");
		r = mig_hook(m, HOOK_FROZEN);
	}
	if (r == 0)
		r = mig_hook(m, HOOK_STOP_MIGRATION);
	if (r == 0)
		r = remote_restart(m, &rs);
	if (m->outcome == OUTCOME_COMMITTED) {
		m->st.frozen_ms = m->st.commit_ms - m->st.freeze_ms;
		mig_step(m, "cleanup");
		if (mig_hook(m, HOOK_MIGRATION_COMPLETE) < 0)
			pr_warn("cleanup after the commit failed; the migration stands");
		restart_spec_free(&rs);
		return 0;
	}
	if (m->outcome != OUTCOME_IN_DOUBT) {
		session_peer_reason(m, 2000);
		if (m->conn && !m->peer_said)
			msg_send_abort(m->conn, m->error[0] ? m->error : "source failed");
		mig_hook(m, HOOK_MIGRATION_FAILED);
		m->rolled_back = true;
		if (rs.argc && !tree_alive(m))
			restart_here(m, &rs);
	}
	restart_spec_free(&rs);
	return r < 0 ? r : -EIO;
}
