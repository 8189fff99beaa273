/* SPDX-License-Identifier: MIT */
/*
 * phaul check: would a migration to ADDR:PORT pass its preflight? Prints
 * what blocks it on each side; exit 0 nothing does, 1 something does, 2
 * usage. Touches nothing: the workload is not frozen, nothing is kept.
 */
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/util.h"
#include "source/migrate.h"

static void check_usage(FILE *f)
{
	fprintf(f,
		"usage: phaul check --to ADDR:PORT --key FILE [options]\n"
		"       phaul check --to ssh://[USER@]HOST[:PORT] [--ssh-cmd CMD] [--ssh-remote CMD]\n"
		"  --pid PID          check for the tree rooted at PID (its PIDs free there,\n"
		"                     room for its memory, no migration of it running)\n"
		"  --mode live|stop   the mode to check for (default live)\n"
		"  --fs SPEC          storage driver, repeatable (default: shared)\n"
		"  --workdir DIR      scratch space (default " PHAUL_DEFAULT_WORKDIR ")\n"
		"  --json             one JSON object on stdout\n"
		"  -v, --verbose      log each step\n"
		"exit status: 0 nothing blocks a migration, 1 something does, 2 usage\n");
}

static int parse_args(int argc, char **argv, struct mig_opts *o, const char **key, const char **pid,
		      bool *json)
{
	static const struct option lo[] = {
		{ "to", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "pid", required_argument, NULL, 'p' },
		{ "mode", required_argument, NULL, 'm' },
		{ "fs", required_argument, NULL, 'f' },
		{ "workdir", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		CLI_SSH_OPTIONS,
		{ 0 },
	};
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "t:k:p:m:f:w:jvh", lo, NULL)) != -1) {
		switch (c) {
		case 't': o->to = optarg; break;
		case 'k': *key = optarg; break;
		case 'p':
			if (parse_u64(optarg, 1, 1 << 22, &v) < 0)
				return -EINVAL;
			*pid = optarg;
			break;
		case 'j': *json = true; break;
		case 'h': check_usage(stdout); exit(0);
		default:
			if (cli_common_opt(c, o) <= 0)
				return -EINVAL;
		}
	}
	return cli_dest_ok(o->to, *key) && optind == argc ? 0 : -EINVAL;
}

static json_object *version_json(uint32_t v)
{
	char buf[32];

	if (!v)
		return NULL;
	snprintf(buf, sizeof(buf), "%u.%u.%u", v / 10000, v / 100 % 100, v % 100);
	return json_object_new_string(buf);
}

/* The next of "a; b; c" at *@p: its length; *@p moves past it. */
static int next_problem(const char **p, const char **start)
{
	const char *end = strstr(*p, "; ");
	int n = end ? (int)(end - *p) : (int)strlen(*p);

	*start = *p;
	*p += n + (end ? 2 : 0);
	return n;
}

static json_object *problems_json(const char *text)
{
	json_object *a = json_object_new_array();
	const char *s;

	while (*text) {
		int n = next_problem(&text, &s);
		json_object_array_add(a, json_object_new_string_len(s, n));
	}
	return a;
}

static void print_json(const struct mig_opts *o, const char *pid, const struct check_report *r)
{
	json_object *j = json_object_new_object(), *s = json_object_new_object(),
		    *d = json_object_new_object();

	json_object_object_add(j, "ok", json_object_new_boolean(!r->src[0] && !r->dst[0]));
	json_object_object_add(j, "to", json_object_new_string(o->to));
	json_object_object_add(j, "pid", pid ? json_object_new_int(atoi(pid)) : NULL);
	json_object_object_add(j, "mode", json_object_new_string(o->mode));
	json_object_object_add(s, "criu", version_json(r->criu_src));
	json_object_object_add(s, "problems", problems_json(r->src));
	json_object_object_add(d, "reached", json_object_new_boolean(r->reached));
	json_object_object_add(d, "criu", version_json(r->criu_dst));
	json_object_object_add(d, "problems", problems_json(r->dst));
	json_object_object_add(j, "source", s);
	json_object_object_add(j, "destination", d);
	printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(j);
}

static void print_side(const char *side, const char *problems, uint32_t criu)
{
	const char *p = problems;

	if (!*p && criu) {
		printf("  %-12s ok (CRIU %u.%u.%u)\n", side, criu / 10000, criu / 100 % 100,
		       criu % 100);
		return;
	}
	if (!*p) {
		printf("  %-12s not checked\n", side);
		return;
	}
	while (*p) {
		const char *s;
		int n = next_problem(&p, &s);
		printf("  %-12s %.*s\n", side, n, s);
	}
}

static void print_human(const struct mig_opts *o, const char *pid, const struct check_report *r)
{
	bool ok = !r->src[0] && !r->dst[0];

	printf("%s migration%s%s to %s: %s\n", o->mode, pid ? " of PID " : "", pid ? pid : "",
	       o->to, ok ? "nothing blocks it" : "blocked");
	print_side("source", r->src, r->criu_src);
	print_side("destination", r->dst, r->criu_dst);
}

int cmd_check(int argc, char **argv)
{
	struct mig_opts o = { .mode = "live",
			      .workdir = PHAUL_DEFAULT_WORKDIR,
			      .connect_timeout_s = 10 };
	struct migration m = { .source = true, .opts = &o, .imgfd = -1, .ps_sk = -1 };
	struct check_report rep;
	const char *key = NULL, *pid = NULL;
	char htype[32];
	bool json = false;
	int r;

	log_init("phaul-check", LOG_QUIET);
	if (parse_args(argc, argv, &o, &key, &pid, &json) < 0) {
		check_usage(stderr);
		return 2;
	}
	if (strcmp(o.mode, "stop") && strcmp(o.mode, "live")) {
		fprintf(stderr, "phaul: mode '%s' is not supported: use stop or live\n", o.mode);
		return 2;
	}
	if (o.nr_fs == 0)
		o.fs[o.nr_fs++] = "shared";
	snprintf(htype, sizeof(htype), pid ? "pid:%s" : "pid", pid);
	o.htype = htype;
	m.mode = mode_parse(o.mode);
	if (cli_dest_load(&o, key) < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	r = migrate_check(&m, &rep);
	if (json)
		print_json(&o, pid, &rep);
	else
		print_human(&o, pid, &rep);
	migrate_free(&m);
	return r == 0 ? 0 : 1;
}
