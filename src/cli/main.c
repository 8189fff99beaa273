/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fault.h"
#include "common/log.h"

#ifndef PHAUL_VERSION
#define PHAUL_VERSION "0.1"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: phaul COMMAND [OPTIONS]\n"
		"\n"
		"Live migration of Linux process trees between hosts, built on CRIU.\n"
		"\n"
		"commands:\n"
		"  keygen FILE                        write a new secret key file (mode 0600)\n"
		"  serve --listen ADDR:PORT --key FILE [--workdir DIR]\n"
		"                                     the destination daemon\n"
		"  migrate --to ADDR:PORT --key FILE [--mode stop] [--json] PID\n"
		"                                     move the process tree rooted at PID\n"
		"  check --to ADDR:PORT --key FILE [--pid PID] [--json]\n"
		"                                     what would block a migration (preflight only)\n"
		"  report RESULT.json                 an HTML page of a migration's --json output\n"
		"  status [--json]                    the migrations running on this host\n"
		"  cancel ID                          roll back a migration that has not committed\n"
		"  faults                             list the fault-injection points (tests)\n"
		"  version\n"
		"\n"
		"Run 'phaul COMMAND --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	log_init("phaul", LOG_INFO);
	if (!cmd || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (fault_init() < 0)
		return 2;
	if (!strcmp(cmd, "keygen"))
		return cmd_keygen(argc - 1, argv + 1);
	if (!strcmp(cmd, "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(cmd, "migrate"))
		return cmd_migrate(argc - 1, argv + 1);
	if (!strcmp(cmd, "__fdpipe"))
		return cmd_fdpipe(argc - 1, argv + 1);
	if (!strcmp(cmd, "__podman-runtime"))
		return cmd_podman_runtime(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "report"))
		return cmd_report(argc - 1, argv + 1);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "cancel"))
		return cmd_cancel(argc - 1, argv + 1);
	if (!strcmp(cmd, "faults")) {
		fault_list();
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("phaul %s (protocol %d)\n", PHAUL_VERSION, PHAUL_PROTO_VERSION);
		return 0;
	}
	fprintf(stderr, "phaul: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
