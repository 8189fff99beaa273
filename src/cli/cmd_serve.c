/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "target/admit.h"
#include "target/children.h"
#include "target/serve.h"

static void serve_usage(FILE *f)
{
	fprintf(f, "usage: phaul serve --listen ADDR:PORT --key FILE [options]\n"
		   "       phaul serve --stdio [options]\n"
		   "  --stdio              serve one migration on stdin/stdout, for\n"
		   "                       `phaul migrate --to ssh://...` (run by sshd only)\n"
		   "  --workdir DIR        images and state (default " PHAUL_DEFAULT_WORKDIR ")\n"
		   "  --log-dir DIR        the log of a CRIU that failed is kept here\n"
		   "                       (default " PHAUL_DEFAULT_LOGDIR ", the newest 20)\n"
		   "  --max-parallel N     concurrent migrations (default 4)\n"
		   "  --auth-timeout SEC   time a client has to authenticate (default 10)\n"
		   "  --max-unauth N       connections still authenticating (default 32)\n"
		   "  --max-unauth-per-host N   ... from one address (default 8)\n"
		   "  --policy FILE        what sources may ask for (modes, paths, ...);\n"
		   "                       without it: stop/live/lazy/hybrid of plain\n"
		   "                       process trees only (see docs/SECURITY.md)\n"
		   "  -v, --verbose        more log lines (twice: CRIU logs too)\n");
}

/* A number 1..@max. */
static int opt_uint(const char *arg, uint64_t max, unsigned int *ret)
{
	uint64_t v;
	int r = parse_u64(arg, 1, max, &v);

	if (r == 0)
		*ret = v;
	return r;
}

static const struct option serve_opts_long[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "key", required_argument, NULL, 'k' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "log-dir", required_argument, NULL, 'g' },
	{ "max-parallel", required_argument, NULL, 'p' },
	{ "auth-timeout", required_argument, NULL, 'a' },
	{ "policy", required_argument, NULL, 'P' },
	{ "max-unauth", required_argument, NULL, 'U' },
	{ "max-unauth-per-host", required_argument, NULL, 'H' },
	{ "stdio", no_argument, NULL, 'S' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o = { .workdir = PHAUL_DEFAULT_WORKDIR,
				.logdir = PHAUL_DEFAULT_LOGDIR,
				.max_parallel = 4,
				.auth_timeout_s = 10,
				.max_unauth = UNAUTH_MAX_DEFAULT,
				.max_unauth_per_host = UNAUTH_PER_HOST_DEFAULT };
	const char *key = NULL, *policy = NULL;
	static struct admit admit;
	char desc[4096];
	bool stdio = false;
	int c;

	log_init("phaul-serve", LOG_INFO);
	while ((c = getopt_long(argc, argv, "l:k:w:vh", serve_opts_long, NULL)) != -1) {
		switch (c) {
		case 'l': o.listen = optarg; break;
		case 'k': key = optarg; break;
		case 'P': policy = optarg; break;
		case 'S': stdio = true; break;
		case 'w': o.workdir = optarg; break;
		case 'g': o.logdir = optarg; break;
		case 'p':
			if (opt_uint(optarg, 1024, &o.max_parallel) < 0)
				goto bad;
			break;
		case 'a':
			if (opt_uint(optarg, 3600, &o.auth_timeout_s) < 0)
				goto bad;
			break;
		case 'U':
			if (opt_uint(optarg, 1024, &o.max_unauth) < 0)
				goto bad;
			break;
		case 'H':
			if (opt_uint(optarg, 1024, &o.max_unauth_per_host) < 0)
				goto bad;
			break;
		case 'v': log_set_level(log_get_level() + 1); break;
		case 'h': serve_usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (o.listen && !*o.listen) {
		/* the unit's PHAUL_LISTEN is empty until the operator sets it */
		pr_err("no address to listen on: give --listen ADDR:PORT (for the systemd "
		       "unit: PHAUL_LISTEN in /etc/default/phaul)");
		return 2;
	}
	if (stdio ? o.listen || key : !o.listen || !key)
		goto bad;
	if (stdio) /* its stderr is the source's terminal: warnings, errors; -v more */
		log_set_level(log_get_level() - 1);
	if (optind != argc)
		goto bad;
	if (!stdio && key_load(key, &o.key) < 0)
		return 1;
	admit_defaults(&admit);
	if (policy && admit_load(&admit, policy) < 0)
		return 1;
	admit_describe(&admit, desc, sizeof(desc));
	pr_info("policy (%s): %s", policy ? policy : "defaults, no --policy", desc);
	o.admit = &admit;
	if (stdio)
		return serve_stdio(&o) < 0 ? 1 : 0;
	return serve(&o) < 0 ? 1 : 0;
bad:
	serve_usage(stderr);
	return 2;
}
