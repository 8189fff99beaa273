/* SPDX-License-Identifier: MIT */
/*
 * restart: --mode restart, migration without CRIU (p.haul's restart
 * mode), for workloads CRIU cannot dump.
 *
 *   source                                   destination
 *   storage rounds (start_migration)
 *   read the root's argv, environ, cwd,
 *   stdout file from /proc; SIGTERM the
 *   tree, SIGKILL what is left after
 *   RESTART_TERM_MS
 *   frozen, stop_migration (final sync)
 *   Restart{argv, env, cwd, stdout}    --->  target_restore (mount), start it
 *                                            (setsid, cwd, env, stdout), record
 *                                     <---   "committed", Committed{pid}
 *   migration_complete                       target_restored, target_cleanup
 *
 * Any failure before Committed: the destination kills what it started
 * (target_abort for storage), the source runs migration_failed and starts
 * the workload again itself, the same way. A link broken after Restart
 * went out is resolved like a broken Commit (source_resolve).
 */
#ifndef PHAUL_RESTART_H
#define PHAUL_RESTART_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "engine/migration.h"

#define RESTART_TERM_MS 5000

struct restart_spec {
	char **argv;
	size_t argc;
	char **env;
	size_t nenv;
	char cwd[PATH_MAX];
	char out[PATH_MAX]; /* "" when stdout is no regular file */
};

/* The command line, environment, cwd and stdout file of @pid. */
int restart_capture(pid_t pid, struct restart_spec *rs);
void restart_spec_free(struct restart_spec *rs);
/* Start it (new session, stdin /dev/null, stdout+stderr to rs->out). */
int restart_spawn(const struct restart_spec *rs, pid_t *ret);

#endif
