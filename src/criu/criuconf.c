/* SPDX-License-Identifier: MIT */
/*
 * criuconf: CRIU options as a configuration file (criuconf.h).
 */
#define LOG_PREFIX "criu: "
#include "criu/criuconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

/* CRIU's config parser splits at blanks and knows quotes and comments. */
static bool value_ok(const char *v)
{
	if (!v || !*v)
		return false;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '"' || *p == '#' || *p == '\\')
			return false;
	return true;
}

static int put(FILE *f, const char *opt, const char *val)
{
	if (val && !value_ok(val)) {
		pr_err("cannot pass '%s' to CRIU's %s in a config file", val, opt);
		return -EINVAL;
	}
	fprintf(f, val ? "%s %s\n" : "%s\n", opt, val);
	return 0;
}

static void put_bool(FILE *f, const char *opt, bool has, bool v)
{
	if (has && v)
		fprintf(f, "%s\n", opt);
}

static int put_lock(FILE *f, const CriuOpts *o)
{
	if (!o->has_network_lock)
		return 0;
	switch (o->network_lock) {
	case CRIU_NETWORK_LOCK_METHOD__IPTABLES: return put(f, "network-lock", "iptables");
	case CRIU_NETWORK_LOCK_METHOD__NFTABLES: return put(f, "network-lock", "nftables");
	case CRIU_NETWORK_LOCK_METHOD__SKIP: return put(f, "network-lock", "skip");
	default: pr_err("unknown network lock method %d", o->network_lock); return -EINVAL;
	}
}

static int put_lists(FILE *f, const CriuOpts *o)
{
	char map[8192];
	int r = 0;

	for (size_t i = 0; r == 0 && i < o->n_ext_mnt; i++) {
		if (snprintf(map, sizeof(map), "%s:%s", o->ext_mnt[i]->key, o->ext_mnt[i]->val) >=
		    (int)sizeof(map))
			return -ENAMETOOLONG;
		r = put(f, "ext-mount-map", map);
	}
	for (size_t i = 0; r == 0 && i < o->n_external; i++)
		r = put(f, "external", o->external[i]);
	return r;
}

static int render(FILE *f, const CriuOpts *o, const char *work_dir, const char *script)
{
	int r = 0;

	if (o->n_inherit_fd) {
		pr_err("a restore run by a container manager cannot inherit our fds");
		return -ENOTSUP;
	}
	if (o->has_log_level)
		fprintf(f, "verbosity=%d\n", o->log_level);
	put_bool(f, "lazy-pages", o->has_lazy_pages, o->lazy_pages);
	put_bool(f, "tcp-established", o->has_tcp_established, o->tcp_established);
	put_bool(f, "tcp-close", o->has_tcp_close, o->tcp_close);
	put_bool(f, "ext-unix-sk", o->has_ext_unix_sk, o->ext_unix_sk);
	put_bool(f, "file-locks", o->has_file_locks, o->file_locks);
	put_bool(f, "shell-job", o->has_shell_job, o->shell_job);
	put_bool(f, "evasive-devices", o->has_evasive_devices, o->evasive_devices);
	put_bool(f, "orphan-pts-master", o->has_orphan_pts_master, o->orphan_pts_master);
	put_bool(f, "mntns-compat-mode", o->has_mntns_compat_mode, o->mntns_compat_mode);
	if (o->has_work_dir_fd && work_dir)
		r = put(f, "work-dir", work_dir);
	if (r == 0)
		r = put_lock(f, o);
	if (r == 0)
		r = put_lists(f, o);
	if (r == 0 && script)
		r = put(f, "action-script", script);
	return r;
}

int criuconf_render(const CriuOpts *o, const char *work_dir, const char *action_script, char **ret)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f)
		return -ENOMEM;
	r = render(f, o, work_dir, action_script);
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	return 0;
}
