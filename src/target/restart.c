/* SPDX-License-Identifier: MIT */
/*
 * target/restart: the destination's side of --mode restart (restart.h):
 * storage ready, start the workload, report it. Nothing is held: the
 * source's copy is already gone, so starting it is the commit.
 */
#define LOG_PREFIX "session: "
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "target/admit.h"
#include "engine/control.h"
#include "engine/restart.h"
#include "engine/session.h"
#include "target/target.h"

/* protobuf-c's repeated strings as a NULL-terminated vector */
static char **vec(char **s, size_t n)
{
	char **v = calloc(n + 1, sizeof(char *));

	if (v && n)
		memcpy(v, s, n * sizeof(char *));
	return v;
}

int target_restart(struct target *t, Phaul__Restart *rq)
{
	_cleanup_free_ char **argv = vec(rq->argv, rq->n_argv);
	_cleanup_free_ char **env = vec(rq->env, rq->n_env);
	struct restart_spec rs = { .argv = argv,
				   .argc = rq->n_argv,
				   .env = env,
				   .nenv = rq->n_env };
	uint64_t t0 = now_ms();
	char why[1024];
	pid_t pid;
	int r;

	if (!argv || !env)
		return -ENOMEM;
	mig_step(&t->m, "restart");
	t->st = ST_DONE;
	if (t->m.mode != MODE_RESTART)
		return mig_fail(&t->m, -EPROTO, "Restart in %s mode", mode_name(t->m.mode));
	/* the operator's cancel, or from now on none (engine/control.h) */
	r = control_commit();
	if (r < 0)
		return mig_fail(&t->m, r, CONTROL_CANCELLED);
	snprintf(rs.cwd, sizeof(rs.cwd), "%s", rq->cwd);
	snprintf(rs.out, sizeof(rs.out), "%s", rq->stdout ? rq->stdout : "");
	if (rs.out[0] && admit_path(t->so->admit, ROOT_STDIO, "restart stdout file", rs.out, why,
				    sizeof(why)) < 0)
		return mig_fail(&t->m, -EPERM, "%s", why);
	r = fault_point("dst.restart");
	if (r == 0)
		r = mig_hook(&t->m, HOOK_TARGET_RESTORE);
	if (r < 0)
		return mig_fail(&t->m, r, "storage could not be made ready");
	r = restart_spawn(&rs, &pid);
	if (r < 0)
		return mig_fail(&t->m, r, "cannot start %s: %s", rs.argv[0], strerror(-r));
	t->m.st.restore_ms = now_ms() - t0;
	r = outcome_write(t->so->workdir, t->hex, "committed", pid);
	if (r < 0) {
		kill(-pid, SIGKILL);
		return mig_fail(&t->m, r, "cannot record the commit");
	}
	t->committed = true;
	mig_hook(&t->m, HOOK_TARGET_RESTORED);
	if (target_send_committed(t, pid) < 0)
		pr_warn("could not confirm the restart to the source; it will ask");
	mig_step(&t->m, "cleanup");
	if (fault_point("dst.cleanup") < 0 || mig_hook(&t->m, HOOK_TARGET_CLEANUP) < 0)
		pr_warn("cleanup after the commit failed; the migration stands");
	return 0;
}
