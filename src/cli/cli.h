/* SPDX-License-Identifier: MIT */
/*
 * cli: the phaul command. Each subcommand is one cmd_* function taking
 * its own argv (argv[0] is the subcommand) and returning the exit code.
 */
#ifndef PHAUL_CLI_H
#define PHAUL_CLI_H

#include <json-c/json.h>

#include "engine/migration.h"

int cmd_keygen(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
/* Internal: the remote shell of the sync driver's rsync client. */
int cmd_fdpipe(int argc, char **argv);
/* The runtime podman runs for the podman driver (drivers/htype/podman.h). */
int cmd_podman_runtime(int argc, char **argv);
int cmd_check(int argc, char **argv);
/* An HTML page of a migration's JSON (report_html.h). */
int cmd_report(int argc, char **argv);
/* The migrations on this host (engine/control.h), and the cancel of one. */
int cmd_status(int argc, char **argv);
int cmd_cancel(int argc, char **argv);
/* Every migration's status (cmd_status.c), each with its "socket". */
json_object *status_collect(void);

/* getopt options migrate and check share (mode, fs, workdir, verbose):
 * 1 handled, 0 not one of them, -EINVAL bad. */
int cli_common_opt(int c, struct mig_opts *o);
/* --ssh-cmd and --ssh-remote, for getopt tables; cli_common_opt takes them. */
enum { OPT_SSH_CMD = 0x100, OPT_SSH_REMOTE };
/* clang-format off */
#define CLI_SSH_OPTIONS \
	{ "ssh-cmd", required_argument, NULL, OPT_SSH_CMD }, \
	{ "ssh-remote", required_argument, NULL, OPT_SSH_REMOTE }
/* clang-format on */
/* Whether @to and @key make a destination: an ssh:// URL without a key,
 * or ADDR:PORT with one. */
bool cli_dest_ok(const char *to, const char *key);
/* The destination's credentials: the key file, or for ssh:// the URL's
 * check and PHAUL_SSH; 0 or a negative errno (said on stderr). */
int cli_dest_load(struct mig_opts *o, const char *key);

/* The end-of-migration report: its JSON object (the caller puts it),
 * printed on stdout; or a human summary. */
json_object *report_object(const struct migration *m, bool ok);
void report_json(json_object *o);
void report_human(const struct migration *m, bool ok);

#endif
