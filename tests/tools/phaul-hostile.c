/* SPDX-License-Identifier: MIT */
/*
 * phaul-hostile: a source that holds the key and asks the destination for
 * what a real `phaul migrate` never would, built on phaul's own protocol
 * code (tests/e2e/70-policy.bats). It authenticates, sends Hello, an
 * optional driver message (OciContainer or LxcContainer), a Preflight
 * made of its options, and prints the destination's answer:
 *
 *   REFUSED <error>      the preflight refused it (exit 1)
 *   ACCEPTED             the preflight passed (exit 0); with --restart-*
 *                        a Restart follows and its answer is printed as
 *                        RESTART-REFUSED <error> (exit 1) or RESTARTED
 *                        (exit 0)
 *
 * Any other failure: exit 2. After ACCEPTED without a restart it sends
 * Abort: nothing is migrated.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/key.h"
#include "proto/msg.h"
#include "proto/tls.h"

#define MAX_LIST 16

struct opts {
	const char *to, *key, *mode, *htype;
	char *fs[MAX_LIST];
	size_t nr_fs;
	bool shell_job;
	uint64_t est_bytes;
	int32_t pid;
	/* OCI */
	const char *oci_bundle, *oci_rootfs, *oci_root;
	char *oci_mounts[MAX_LIST];
	size_t nr_mounts;
	const char *oci_stdio;
	/* LXC */
	const char *lxc_path, *lxc_config;
	/* restart */
	const char *restart_stdout;
	char *restart_argv[MAX_LIST];
	size_t nr_argv;
};

static Msg *recv_one(struct conn *c)
{
	Msg *m = NULL;

	if (msg_recv(c, &m) < 0) {
		fprintf(stderr, "phaul-hostile: no answer from the destination\n");
		exit(2);
	}
	return m;
}

static void send_or_die(struct conn *c, Msg *m)
{
	if (msg_send(c, m) < 0) {
		fprintf(stderr, "phaul-hostile: send failed\n");
		exit(2);
	}
}

static void hello(struct conn *c)
{
	Phaul__Hello h = PHAUL__HELLO__INIT;
	Msg m = PHAUL__MSG__INIT;
	Msg *r;

	h.version = PHAUL_PROTO_VERSION;
	h.host = "hostile";
	msg_set_hello(&m, &h);
	send_or_die(c, &m);
	r = recv_one(c);
	if (r->body_case != PHAUL__MSG__BODY_HELLO_REPLY) {
		fprintf(stderr, "phaul-hostile: no HelloReply\n");
		exit(2);
	}
	msg_free(r);
}

static void send_oci(struct conn *c, const struct opts *o)
{
	Phaul__OciContainer oc = PHAUL__OCI_CONTAINER__INIT;
	Phaul__OciMount mnt[MAX_LIST], *mp[MAX_LIST];
	Phaul__OciStdio io = PHAUL__OCI_STDIO__INIT, *iop[1] = { &io };
	Msg m = PHAUL__MSG__INIT;

	oc.id = "hostile";
	oc.runtime = "runc";
	oc.runtime_root = (char *)(o->oci_root ? o->oci_root : "/run/runc");
	oc.bundle = (char *)o->oci_bundle;
	oc.rootfs = (char *)(o->oci_rootfs ? o->oci_rootfs : o->oci_bundle);
	for (size_t i = 0; i < o->nr_mounts; i++) {
		phaul__oci_mount__init(&mnt[i]);
		mnt[i].dest = "/mnt";
		mnt[i].source = o->oci_mounts[i];
		mp[i] = &mnt[i];
	}
	oc.mounts = mp;
	oc.n_mounts = o->nr_mounts;
	if (o->oci_stdio) {
		io.fd = 1;
		io.key = "file[1:2]";
		io.path = (char *)o->oci_stdio;
		oc.stdio = iop;
		oc.n_stdio = 1;
	}
	msg_set_oci(&m, &oc);
	send_or_die(c, &m);
}

static void send_lxc(struct conn *c, const struct opts *o)
{
	Phaul__LxcContainer lc = PHAUL__LXC_CONTAINER__INIT;
	Msg m = PHAUL__MSG__INIT;
	_cleanup_free_ char *config = NULL;

	if (read_file(o->lxc_config, 32 * 1024, &config, NULL) < 0) {
		fprintf(stderr, "phaul-hostile: cannot read %s\n", o->lxc_config);
		exit(2);
	}
	lc.name = "hostile";
	lc.lxcpath = (char *)o->lxc_path;
	lc.config = config;
	msg_set_lxc(&m, &lc);
	send_or_die(c, &m);
}

static int preflight(struct conn *c, const struct opts *o)
{
	Phaul__Preflight p = PHAUL__PREFLIGHT__INIT;
	Msg m = PHAUL__MSG__INIT;
	Msg *r;
	int32_t pids[1] = { o->pid };
	int ok;

	p.mode = (char *)o->mode;
	p.htype = (char *)o->htype;
	p.fs = (char **)o->fs;
	p.n_fs = o->nr_fs;
	p.criu_version = 40101;
	p.pids = pids;
	p.n_pids = 1;
	p.est_bytes = o->est_bytes;
	p.root_cmd = "hostile";
	p.has_shell_job = true;
	p.shell_job = o->shell_job;
	msg_set_preflight(&m, &p);
	send_or_die(c, &m);
	r = recv_one(c);
	if (r->body_case == PHAUL__MSG__BODY_PREFLIGHT_REPLY) {
		ok = r->preflight_reply->ok;
		if (ok)
			printf("ACCEPTED\n");
		else
			printf("REFUSED %s\n", r->preflight_reply->error ?: "?");
	} else if (r->body_case == PHAUL__MSG__BODY_ERROR) {
		ok = 0;
		printf("REFUSED %s\n", r->error->message ?: "?");
	} else {
		fprintf(stderr, "phaul-hostile: unexpected %s\n", msg_name(r->body_case));
		exit(2);
	}
	msg_free(r);
	return ok;
}

static int restart(struct conn *c, const struct opts *o)
{
	Phaul__Restart rs = PHAUL__RESTART__INIT;
	Msg m = PHAUL__MSG__INIT;
	Msg *r;
	int ok;

	rs.argv = (char **)o->restart_argv;
	rs.n_argv = o->nr_argv;
	rs.cwd = "/";
	rs.stdout = (char *)o->restart_stdout;
	msg_set_restart(&m, &rs);
	send_or_die(c, &m);
	r = recv_one(c);
	ok = r->body_case == PHAUL__MSG__BODY_COMMITTED;
	if (ok)
		printf("RESTARTED\n");
	else if (r->body_case == PHAUL__MSG__BODY_ERROR)
		printf("RESTART-REFUSED %s\n", r->error->message ?: "?");
	else
		printf("RESTART-REFUSED (%s)\n", msg_name(r->body_case));
	msg_free(r);
	return ok;
}

static void usage(void)
{
	fprintf(stderr, "usage: phaul-hostile --to ADDR:PORT --key FILE [--mode M] [--htype H]\n"
			"  [--fs SPEC]... [--shell-job] [--est-bytes N] [--pid N]\n"
			"  [--oci-bundle P [--oci-rootfs P] [--oci-root P] [--oci-mount SRC]...\n"
			"   [--oci-stdio PATH]] [--lxc-path P --lxc-config FILE]\n"
			"  [--restart-stdout PATH] [--restart-arg ARG]...\n");
	exit(2);
}

static void add(char **list, size_t *n, char *v)
{
	if (*n >= MAX_LIST)
		usage();
	list[(*n)++] = v;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "to", required_argument, NULL, 't' },
		{ "key", required_argument, NULL, 'k' },
		{ "mode", required_argument, NULL, 'm' },
		{ "htype", required_argument, NULL, 'h' },
		{ "fs", required_argument, NULL, 'f' },
		{ "shell-job", no_argument, NULL, 's' },
		{ "est-bytes", required_argument, NULL, 'e' },
		{ "pid", required_argument, NULL, 'p' },
		{ "oci-bundle", required_argument, NULL, 'B' },
		{ "oci-rootfs", required_argument, NULL, 'R' },
		{ "oci-root", required_argument, NULL, 'T' },
		{ "oci-mount", required_argument, NULL, 'M' },
		{ "oci-stdio", required_argument, NULL, 'S' },
		{ "lxc-path", required_argument, NULL, 'L' },
		{ "lxc-config", required_argument, NULL, 'C' },
		{ "restart-stdout", required_argument, NULL, 'O' },
		{ "restart-arg", required_argument, NULL, 'A' },
		{ 0 },
	};
	struct opts o = { .mode = "stop", .htype = "pid", .pid = 31999 };
	struct psk_key key;
	_cleanup_conn_ struct conn *c = NULL;
	int ch, ok;

	log_init("phaul-hostile", LOG_WARN);
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 't': o.to = optarg; break;
		case 'k': o.key = optarg; break;
		case 'm': o.mode = optarg; break;
		case 'h': o.htype = optarg; break;
		case 'f': add(o.fs, &o.nr_fs, optarg); break;
		case 's': o.shell_job = true; break;
		case 'e': o.est_bytes = strtoull(optarg, NULL, 0); break;
		case 'p': o.pid = atoi(optarg); break;
		case 'B': o.oci_bundle = optarg; break;
		case 'R': o.oci_rootfs = optarg; break;
		case 'T': o.oci_root = optarg; break;
		case 'M': add(o.oci_mounts, &o.nr_mounts, optarg); break;
		case 'S': o.oci_stdio = optarg; break;
		case 'L': o.lxc_path = optarg; break;
		case 'C': o.lxc_config = optarg; break;
		case 'O': o.restart_stdout = optarg; break;
		case 'A': add(o.restart_argv, &o.nr_argv, optarg); break;
		default: usage();
		}
	}
	if (!o.to || !o.key || optind != argc || (o.lxc_path && !o.lxc_config))
		usage();
	if (key_load(o.key, &key) < 0 || tls_connect(o.to, &key, 10000, &c) < 0)
		return 2;
	conn_set_timeout(c, 60000);
	hello(c);
	if (o.oci_bundle)
		send_oci(c, &o);
	if (o.lxc_path)
		send_lxc(c, &o);
	ok = preflight(c, &o);
	if (ok && o.nr_argv)
		return restart(c, &o) ? 0 : 1;
	if (ok)
		msg_send_abort(c, "phaul-hostile: only asking");
	return ok ? 0 : 1;
}
