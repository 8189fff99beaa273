/* SPDX-License-Identifier: MIT */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "engine/control.h"
#include "engine/events.h"
#include "proto/sshchan.h"
#include "source/migrate.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_IN_DOUBT = 3, EXIT_LOST = 4 };
enum { OPT_DOCKER = 0x200 };

/*
 * dockerd 20.10 lists as running only a container that its containerd shim
 * started or restored (`docker start --checkpoint`, images under its own
 * data root, a container ID it chose at `docker create`): a tree phaul
 * restores has no shim and no task, and no API sets an ID.  Refused before
 * anything else is looked at: docs/CONTAINERS.md, "Docker", says why and
 * what to do instead.
 */
static int docker_refuse(const char *name)
{
	fprintf(stderr,
		"phaul: --docker %s: not supported: dockerd adopts only a container it restores "
		"itself (docker start --checkpoint, under a new ID); Docker's own stop-and-copy: "
		"docs/CONTAINERS.md, \"Docker\"\n",
		name);
	return -EOPNOTSUPP;
}

static void migrate_usage(FILE *f)
{
	fprintf(f,
		"usage: phaul migrate --to ADDR:PORT --key FILE [options] PID\n"
		"       phaul migrate --to ADDR:PORT --key FILE [options] --oci ID\n"
		"       phaul migrate --to ADDR:PORT --key FILE [options] --lxc NAME\n"
		"       phaul migrate --to ADDR:PORT --key FILE [options] --podman NAME|ID\n"
		"       phaul migrate --to ssh://[USER@]HOST[:PORT] [options] PID|--oci ID|--lxc NAME|\n"
		"                         --podman NAME|ID\n"
		"                         over ssh: no daemon and no key, ssh starts\n"
		"                         `phaul serve --stdio` there for this migration\n"
		"  --ssh-cmd CMD          ssh://: the ssh command, split at spaces (default\n"
		"                         $PHAUL_SSH, or ssh); -o BatchMode=yes is added\n"
		"  --ssh-remote CMD       ssh://: what runs there (default " SSH_DEFAULT_REMOTE
		")\n"
		"  --mode MODE            live (default): copy memory in rounds while the\n"
		"                         workload runs, then a short freeze; stop: freeze,\n"
		"                         copy everything, restore; lazy: restore first, the\n"
		"                         memory follows on demand (post-copy); hybrid: live\n"
		"                         rounds, then post-copy for what is still dirty;\n"
		"                         restart: no CRIU: sync storage, stop the workload\n"
		"                         (SIGTERM), start it there with the same command\n"
		"                         line, env and cwd; auto: live rounds, then live\n"
		"                         or hybrid, whichever the rounds showed keeps the\n"
		"                         freeze within --downtime-ms (the summary says why)\n"
		"  --downtime-ms MS       live: target frozen time (default 300)\n"
		"  --max-iters N          live: at most N pre-copy rounds (default 8)\n"
		"  --max-time SEC         live: at most SEC seconds of pre-copy\n"
		"  --fs SPEC              storage driver, repeatable (default: shared):\n"
		"                         shared, sync:DIR, disk:IMAGE:MOUNTPOINT\n"
		"  --oci ID               migrate the OCI container ID (not a PID)\n"
		"  --runtime runc|crun    its runtime (default runc)\n"
		"  --runtime-root DIR     the runtime's --root (default /run/runc, /run/crun)\n"
		"  --lxc NAME             migrate the LXC container NAME (not a PID)\n"
		"  --lxcpath DIR          its lxcpath (default /var/lib/lxc)\n"
		"  --docker NAME|ID       refused: Docker restores its containers only itself\n"
		"                         (docs/CONTAINERS.md, \"Docker\")\n"
		"  --podman NAME|ID       migrate the Podman container NAME or ID (not a PID)\n"
		"  --json                 print one JSON object with the statistics on stdout\n"
		"  --events FILE|-        write each step, round and post-copy progress as\n"
		"                         JSON lines to FILE (- for stdout): docs/EVENTS.md\n"
		"  --workdir DIR          scratch space for images (default " PHAUL_DEFAULT_WORKDIR
		")\n"
		"  --log-dir DIR          the log of a CRIU that failed is kept here\n"
		"                         (default " PHAUL_DEFAULT_LOGDIR ", the newest 20)\n"
		"  --shell-job            the tree was started from a shell (auto-detected)\n"
		"  --tcp-established      migrate established TCP connections\n"
		"  --tcp-close            close established TCP connections on the\n"
		"                         destination (their peers reconnect there)\n"
		"  --ext-unix-sk          allow unix sockets connected outside the tree\n"
		"  --file-locks           migrate file locks\n"
		"  --link-remap           files the tree holds open but deleted: link them\n"
		"                         again for the restore (storage both hosts see)\n"
		"  --ghost-limit MIB      carry deleted files the tree holds open, up to MIB\n"
		"                         MiB each, in the images (default 1)\n"
		"  --cow-copies           live, lazy, hybrid: give each process of a forked\n"
		"                         tree its own copy of the pages it shares\n"
		"                         copy-on-write (they are restored lazily: a shorter\n"
		"                         freeze when there are many, more memory on the\n"
		"                         destination); by default they stay shared\n"
		"  --bandwidth MBIT       cap phaul's sending rate (bytes on the wire)\n"
		"  --compress MODE        page data: auto (zstd where it pays, the default),\n"
		"                         zstd (always), off (zero pages are skipped in all)\n"
		"  --recover-timeout SEC  how long to ask for an outcome left in doubt, and how\n"
		"                         long post-copy waits for a silent link (default 60)\n"
		"  -v, --verbose          log each step (twice: debug and CRIU logs)\n"
		"exit status: 0 migrated, 1 failed and rolled back (the workload runs here),\n"
		"             2 usage, 3 outcome unknown (the workload is left stopped here),\n"
		"             4 lost: post-copy could not complete the workload's memory\n");
}

int cli_common_opt(int c, struct mig_opts *o)
{
	switch (c) {
	case 'm': o->mode = optarg; return 1;
	case 'f':
		if (o->nr_fs >= MSG_FS_MAX)
			return -EINVAL;
		o->fs[o->nr_fs++] = optarg;
		return 1;
	case 'w': o->workdir = optarg; return 1;
	case OPT_SSH_CMD: o->ssh_cmd = optarg; return 1;
	case OPT_SSH_REMOTE: o->ssh_remote = optarg; return 1;
	case 'g': o->logdir = optarg; return 1;
	case 'v': log_set_level(log_get_level() < LOG_INFO ? LOG_INFO : LOG_DEBUG); return 1;
	default: return 0;
	}
}

struct cli_out {
	bool json;
	const char *events; /* --events FILE|- */
};

bool cli_dest_ok(const char *to, const char *key)
{
	return to && !key == ssh_is_url(to);
}

int cli_dest_load(struct mig_opts *o, const char *key)
{
	struct ssh_dest d;

	if (!ssh_is_url(o->to))
		return key_load(key, &o->key);
	if (!o->ssh_cmd)
		o->ssh_cmd = getenv("PHAUL_SSH");
	if (ssh_url_parse(o->to, &d) == 0)
		return 0;
	fprintf(stderr, "phaul: bad destination '%s': use ssh://[USER@]HOST[:PORT]\n", o->to);
	return -EINVAL;
}

static const struct option migrate_opts[] = {
	{ "to", required_argument, NULL, 't' },
	{ "key", required_argument, NULL, 'k' },
	{ "mode", required_argument, NULL, 'm' },
	{ "fs", required_argument, NULL, 'f' },
	{ "json", no_argument, NULL, 'j' },
	{ "events", required_argument, NULL, 'E' },
	{ "workdir", required_argument, NULL, 'w' },
	{ "log-dir", required_argument, NULL, 'g' },
	{ "shell-job", no_argument, NULL, 's' },
	{ "tcp-established", no_argument, NULL, 'T' },
	{ "tcp-close", no_argument, NULL, 'K' },
	{ "ext-unix-sk", no_argument, NULL, 'U' },
	{ "file-locks", no_argument, NULL, 'L' },
	{ "link-remap", no_argument, NULL, 'N' },
	{ "ghost-limit", required_argument, NULL, 'G' },
	{ "cow-copies", no_argument, NULL, 'Y' },
	{ "bandwidth", required_argument, NULL, 'b' },
	{ "compress", required_argument, NULL, 'z' },
	{ "recover-timeout", required_argument, NULL, 'r' },
	{ "downtime-ms", required_argument, NULL, 'D' },
	{ "max-iters", required_argument, NULL, 'I' },
	{ "max-time", required_argument, NULL, 'M' },
	{ "oci", required_argument, NULL, 'O' },
	{ "runtime", required_argument, NULL, 'R' },
	{ "runtime-root", required_argument, NULL, 'X' },
	{ "lxc", required_argument, NULL, 'C' },
	{ "lxcpath", required_argument, NULL, 'P' },
	{ "docker", required_argument, NULL, OPT_DOCKER },
	{ "podman", required_argument, NULL, 'Q' },
	CLI_SSH_OPTIONS,
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* The container named: --oci, --lxc, --podman (at most one). */
struct ctr_arg {
	const char *oci, *lxc, *podman;
};

static int parse_args(int argc, char **argv, struct mig_opts *o, const char **key,
		      struct ctr_arg *ct, struct cli_out *out)
{
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "t:k:m:f:jw:vh", migrate_opts, NULL)) != -1) {
		switch (c) {
		case 't': o->to = optarg; break;
		case 'k': *key = optarg; break;
		case 'j': out->json = true; break;
		case 'E': out->events = optarg; break;
		case 's': o->shell_job = true; break;
		case 'T': o->tcp_established = true; break;
		case 'K': o->tcp_close = true; break;
		case 'U': o->ext_unix_sk = true; break;
		case 'L': o->file_locks = true; break;
		case 'N': o->link_remap = true; break;
		case 'Y': o->cow_copies = true; break;
		case 'G':
			if (parse_u64(optarg, 1, 4095, &v) < 0)
				return -EINVAL;
			o->ghost_limit_mib = v;
			break;
		case 'b':
			if (parse_u64(optarg, 1, 1000000, &v) < 0)
				return -EINVAL;
			o->bandwidth_mbit = v;
			break;
		case 'z':
			if (!strcmp(optarg, "auto"))
				o->compress = PF_COMPRESS_AUTO;
			else if (!strcmp(optarg, "zstd"))
				o->compress = PF_COMPRESS_ZSTD;
			else if (!strcmp(optarg, "off"))
				o->compress = PF_COMPRESS_OFF;
			else
				return -EINVAL;
			break;
		case 'r':
			if (parse_u64(optarg, 0, 86400, &v) < 0)
				return -EINVAL;
			o->recover_timeout_s = v;
			break;
		case 'D':
			if (parse_u64(optarg, 1, 3600000, &v) < 0)
				return -EINVAL;
			o->policy.downtime_ms = v;
			break;
		case 'I':
			if (parse_u64(optarg, 1, MSG_ROUNDS_MAX - 1, &v) < 0)
				return -EINVAL;
			o->policy.max_iters = v;
			break;
		case 'M':
			if (parse_u64(optarg, 1, 86400, &v) < 0)
				return -EINVAL;
			o->policy.max_time_ms = v * 1000;
			break;
		case 'O': ct->oci = optarg; break;
		case 'R': o->oci_runtime = optarg; break;
		case 'X': o->oci_root = optarg; break;
		case 'C': ct->lxc = optarg; break;
		case 'Q': ct->podman = optarg; break;
		case 'P': o->lxc_path = optarg; break;
		case OPT_DOCKER: return docker_refuse(optarg);
		case 'h': migrate_usage(stdout); exit(0);
		default:
			if (cli_common_opt(c, o) <= 0)
				return -EINVAL;
		}
	}
	int nr_ctr = !!ct->oci + !!ct->lxc + !!ct->podman;

	if (!cli_dest_ok(o->to, *key) || optind != argc - (nr_ctr ? 0 : 1) || nr_ctr > 1)
		return -EINVAL;
	if (!ct->oci && (o->oci_runtime || o->oci_root))
		return -EINVAL;
	if (!ct->lxc && o->lxc_path)
		return -EINVAL;
	if (o->tcp_established && o->tcp_close)
		return -EINVAL;
	return 0;
}

/* What became of the workload, after the failure's reason. A rollback
 * leaves it running here, unless it died on its own meanwhile (killed,
 * exited): then say that rather than a comfort that is not true. */
static const char *failure_said(const struct migration *m)
{
	if (m->outcome == OUTCOME_IN_DOUBT)
		return "";
	if (m->outcome == OUTCOME_LOST)
		return "; the workload is lost";
	if (m->root_pid > 0 && !proc_alive(m->root_pid))
		return "; the workload's process is gone from the source too (it exited or was "
		       "killed during the migration)";
	return "; the workload runs on the source";
}

int cmd_migrate(int argc, char **argv)
{
	struct mig_opts o = { .mode = "live",
			      .workdir = PHAUL_DEFAULT_WORKDIR,
			      .logdir = PHAUL_DEFAULT_LOGDIR,
			      .recover_timeout_s = 60,
			      .connect_timeout_s = 10,
			      .policy = { .downtime_ms = POLICY_DEFAULT_DOWNTIME_MS,
					  .max_iters = POLICY_DEFAULT_MAX_ITERS } };
	struct migration m = { .source = true, .opts = &o, .imgfd = -1, .ps_sk = -1 };
	const char *key = NULL;
	struct ctr_arg ct = { 0 };
	struct cli_out out = { 0 };
	json_object *result;
	char htype[160];
	int r;

	log_init("phaul-migrate", LOG_QUIET);
	r = parse_args(argc, argv, &o, &key, &ct, &out);
	if (r < 0) {
		if (r != -EOPNOTSUPP)
			migrate_usage(stderr);
		return EXIT_USAGE;
	}
	m.auto_mode = !strcmp(o.mode, "auto");
	if (m.auto_mode)
		o.mode = "hybrid"; /* on the wire: the destination can take either */
	if (mode_parse(o.mode) < 0) {
		fprintf(stderr,
			"phaul: unknown mode '%s': use live, stop, lazy, hybrid, auto or restart\n",
			o.mode);
		return EXIT_USAGE;
	}
	if (o.nr_fs == 0)
		o.fs[o.nr_fs++] = "shared";
	if (ct.oci)
		snprintf(htype, sizeof(htype), "oci:%.128s", ct.oci);
	else if (ct.lxc)
		snprintf(htype, sizeof(htype), "lxc:%.128s", ct.lxc);
	else if (ct.podman)
		snprintf(htype, sizeof(htype), "podman:%.128s", ct.podman);
	else
		snprintf(htype, sizeof(htype), "pid:%.30s", argv[argc - 1]);
	o.htype = htype;
	o.progress = !out.json || isatty(STDERR_FILENO);
	m.mode = mode_parse(o.mode);
	if (cli_dest_load(&o, key) < 0)
		return EXIT_FAILED;
	signal(SIGPIPE, SIG_IGN);
	if (events_new(out.events, "source", &m.ev) < 0)
		return EXIT_FAILED;
	/* `phaul status` and `phaul cancel` reach us (a warning without) */
	events_set_workload(m.ev, 0, m.auto_mode ? "auto" : mode_name(m.mode));
	control_start(m.ev);
	r = migrate_source(&m);
	control_stop();
	result = report_object(&m, r == 0);
	/* the outcome is the last line, written before --json's object */
	events_outcome(m.ev, result);
	events_free(TAKE_PTR(m.ev));
	if (out.json)
		report_json(result);
	else
		report_human(&m, r == 0);
	json_object_put(result);
	if (r < 0)
		fprintf(stderr, "phaul: %s%s\n", m.error[0] ? m.error : strerror(-r),
			failure_said(&m));
	r = r == 0			  ? EXIT_OK :
	    m.outcome == OUTCOME_IN_DOUBT ? EXIT_IN_DOUBT :
	    m.outcome == OUTCOME_LOST	  ? EXIT_LOST :
					    EXIT_FAILED;
	migrate_free(&m);
	return r;
}
