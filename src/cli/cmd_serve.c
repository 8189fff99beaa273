/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: phaul serve --listen ADDR:PORT --key FILE [options]\n"
		   "  --workdir DIR        images and state (default " PHAUL_DEFAULT_WORKDIR ")\n"
		   "  --log-dir DIR        the log of a CRIU that failed is kept here\n"
		   "                       (default " PHAUL_DEFAULT_LOGDIR ", the newest 20)\n"
		   "  --max-parallel N     concurrent migrations (default 4)\n"
		   "  --auth-timeout SEC   time a client has to authenticate (default 10)\n"
		   "  -v, --verbose        more log lines (twice: CRIU logs too)\n");
}

int cmd_serve(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "key", required_argument, NULL, 'k' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "log-dir", required_argument, NULL, 'g' },
		{ "max-parallel", required_argument, NULL, 'p' },
		{ "auth-timeout", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct serve_opts o = { .workdir = PHAUL_DEFAULT_WORKDIR, .logdir = PHAUL_DEFAULT_LOGDIR,
				.max_parallel = 4,
				.auth_timeout_s = 10 };
	const char *key = NULL;
	uint64_t v;
	int c;

	log_init("phaul-serve", LOG_INFO);
	while ((c = getopt_long(argc, argv, "l:k:w:vh", lo, NULL)) != -1) {
		switch (c) {
		case 'l': o.listen = optarg; break;
		case 'k': key = optarg; break;
		case 'w': o.workdir = optarg; break;
		case 'g': o.logdir = optarg; break;
		case 'p':
			if (parse_u64(optarg, 1, 1024, &v) < 0)
				goto bad;
			o.max_parallel = v;
			break;
		case 'a':
			if (parse_u64(optarg, 1, 3600, &v) < 0)
				goto bad;
			o.auth_timeout_s = v;
			break;
		case 'v': log_set_level(log_get_level() + 1); break;
		case 'h': serve_usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (!o.listen || !key || optind != argc)
		goto bad;
	if (key_load(key, &o.key) < 0)
		return 1;
	return serve(&o) < 0 ? 1 : 0;
bad:
	serve_usage(stderr);
	return 2;
}
