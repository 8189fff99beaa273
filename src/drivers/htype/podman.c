/* SPDX-License-Identifier: MIT */
/*
 * podman: the source side of the Podman driver, and what both sides share
 * (contract in podman.h).
 */
#define LOG_PREFIX "podman: "
#include "drivers/htype/podman.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"

#define INSPECT_MAX (1u << 20)
#define CONF_MAX (1u << 20)

/* Write @text to @dir/@name atomically, mode @mode. */
static int put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	_cleanup_free_ char *path = NULL, *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&path, "%s/%s", dir, name) < 0 ||
	    asprintf(&tmp, "%s/.%s.%d", dir, name, getpid()) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	r = write_full(fd, text, strlen(text));
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

/*
 * The containers.conf podman would read (CONTAINERS_CONF's; else the
 * administrator's /etc/containers/containers.conf, else the distribution's
 * /usr/share/containers/containers.conf: not both, a TOML table may not
 * be given twice), with phaul's runtime as runc. A config that names
 * runtimes itself is not merged: refused.
 */
/* The line of @text that is @line (spaces around it aside), or NULL. */
static const char *find_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *c = l + strspn(l, " \t");
		if (!strncmp(c, line, n) && strspn(c + n, " \t\r") == strcspn(c + n, "\n"))
			return l;
	}
	return NULL;
}

/* Whether the table starting after @from names a runtime "runc". */
static bool table_has_runc(const char *from)
{
	for (const char *l = from; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		const char *c = l + strspn(l, " \t");
		if (*c == '[')
			return false;
		if (!strncmp(c, PODMAN_RUNTIME, strlen(PODMAN_RUNTIME)) &&
		    strchr(" \t=", c[strlen(PODMAN_RUNTIME)]))
			return true;
	}
	return false;
}

static int make_conf(const struct drv_ctx *ctx, char **ret)
{
	const char *env = getenv("CONTAINERS_CONF"), *base = env, *table, *rest;
	static const char entry[] = PODMAN_RUNTIME
		" = [\"" PODMAN_RUN_DIR "/" PODMAN_RUNTIME "\"]\n";
	_cleanup_free_ char *text = NULL;
	int r;

	if (!base || !*base)
		base = access("/etc/containers/containers.conf", F_OK) == 0 ?
			       "/etc/containers/containers.conf" :
			       "/usr/share/containers/containers.conf";
	r = read_file(base, CONF_MAX, &text, NULL);
	if (r == -ENOENT && base != env)
		r = 0;
	if (r < 0)
		return drv_fail(ctx, r, "cannot read %s: %s", base, strerror(-r));
	table = text ? find_line(text, "[engine.runtimes]") : NULL;
	rest = table && strchr(table, '\n') ? strchr(table, '\n') + 1 : NULL;
	if (table && (!rest || table_has_runc(rest)))
		return drv_fail(ctx, -ENOTSUP,
				"%s names its own runc ([engine.runtimes]): phaul's cannot "
				"be added to it",
				base);
	/* into the table the file has (TOML has each once), else a new one */
	if (rest)
		r = asprintf(ret,
			     "# written by phaul (docs/CONTAINERS.md): %s, and phaul's runc\n"
			     "%.*s%s%s",
			     base, (int)(rest - text), text, entry, rest);
	else
		r = asprintf(ret,
			     "# written by phaul (docs/CONTAINERS.md): %s, and phaul's runc\n"
			     "%s\n[engine.runtimes]\n%s",
			     base, text ?: "", entry);
	return r < 0 ? -ENOMEM : 0;
}

int podman_setup(const struct drv_ctx *ctx)
{
	_cleanup_free_ char *conf = NULL, *script = NULL;
	char self[PATH_MAX], runc[256];
	const char *criu = getenv("PHAUL_CRIU");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int r;

	if (n < 0)
		return drv_fail(ctx, -errno, "cannot find phaul's own binary: %m");
	self[n] = '\0';
	if (prog_path("runc", runc, sizeof(runc)) < 0)
		return drv_fail(ctx, -ENOENT, "runc is not installed");
	r = make_conf(ctx, &conf);
	if (r < 0)
		return r;
	/* a CRIU of the user's choice goes with it: conmon passes podman's
	 * environment on to the runtime only in part */
	if (asprintf(
		    &script,
		    "#!/bin/sh\n# written by phaul (docs/CONTAINERS.md): runc, except for "
		    "phaul's checkpoint and restore\nexec env %s%s '%s' __podman-runtime '%s' \"$@\"\n",
		    criu && *criu ? "PHAUL_CRIU=" : "", criu && *criu ? criu : "", self, runc) < 0)
		return -ENOMEM;
	r = mkdir_p(PODMAN_RUN_DIR, 0700);
	if (r == 0)
		r = put_file(PODMAN_RUN_DIR, PODMAN_RUNTIME, script, 0700);
	if (r == 0)
		r = put_file(PODMAN_RUN_DIR, PODMAN_CONF, conf, 0600);
	if (r < 0)
		return drv_fail(ctx, r, "cannot write phaul's podman runtime in %s: %s",
				PODMAN_RUN_DIR, strerror(-r));
	return 0;
}

int podman_run(char *const args[], char **out)
{
	char *argv[24] = { "env", "CONTAINERS_CONF=" PODMAN_RUN_DIR "/" PODMAN_CONF, "podman" };
	size_t n = 3;

	for (size_t i = 0; args[i] && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return run_output(argv, INSPECT_MAX, out);
}

void podman_fini(struct driver *d)
{
	struct podman_priv *p = d->priv;

	free(p->image);
	for (size_t i = 0; i < p->nr_nets; i++)
		free(p->nets[i]);
	for (size_t i = 0; i < p->nr_macs; i++)
		free(p->macs[i]);
	free(p->pidfile);
	if (p->lsk > 0)
		close(p->lsk);
	if (p->rsk > 0)
		close(p->rsk);
	oci_fini(d);
}

static int podman_init(struct driver *d, const char *arg)
{
	struct podman_priv *p = d->priv;

	p->oci.under_manager = true;
	p->lsk = p->rsk = -1;
	if (!*arg)
		return 0; /* destination: the container is described by the peer */
	if (!name_is_safe(arg)) {
		pr_err("'%s' is not a container name or ID", arg);
		return -EINVAL;
	}
	snprintf(p->name, sizeof(p->name), "%s", arg);
	return 0;
}

static json_object *get(json_object *o, const char *key, json_type type)
{
	json_object *v = NULL;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key, json_type_string);

	return v ? json_object_get_string(v) : NULL;
}

static int add_dir(struct oci_priv *o, const char *path)
{
	char *d;

	if (!path || path[0] != '/' || o->nr_manager_dirs >= MSG_PODMAN_DIRS_MAX)
		return 0;
	d = strdup(path);
	if (!d)
		return -ENOMEM;
	o->manager_dirs[o->nr_manager_dirs++] = d;
	return 0;
}

/* What `podman container inspect` says of the container. */
static int parse_inspect(const struct drv_ctx *ctx, struct podman_priv *p, json_object *c)
{
	json_object *st = get(c, "State", json_type_object);
	json_object *nets = get(get(c, "NetworkSettings", json_type_object), "Networks",
				json_type_object);
	const char *id = get_str(c, "Id"), *name = get_str(c, "Name"),
		   *rt = get_str(c, "OCIRuntime");
	const char *img = get_str(c, "Image"), *pidf = get_str(c, "ConmonPidFile");
	_cleanup_free_ char *rundir = pidf ? strdup(pidf) : NULL;
	int r;

	if (!id || !name || !img || !st || strlen(img) != 64 || !name_is_safe(name) ||
	    !name_is_safe(id))
		return drv_fail(ctx, -EPROTO, "podman's description of %s is not understood",
				p->name);
	if (!get(st, "Running", json_type_boolean) ||
	    !json_object_get_boolean(get(st, "Running", json_type_boolean)))
		return drv_fail(ctx, -ESRCH, "container %s is not running", name);
	if (!rt || oci_runtime_parse(rt, &p->oci.rt) < 0)
		return drv_fail(ctx, -ENOTSUP, "container %s runs under %s: runc or crun only",
				name, rt ?: "an unknown runtime");
	snprintf(p->oci.id, sizeof(p->oci.id), "%s", id);
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->image_id, sizeof(p->image_id), "%s", img);
	p->image = get_str(c, "ImageName") ? strdup(get_str(c, "ImageName")) : NULL;
	p->oci.root = strdup(p->oci.rt == OCI_CRUN ? "/run/crun" : "/run/runc");
	if (!p->oci.root)
		return -ENOMEM;
	json_object_object_foreach(nets, net, v)
	{
		const char *mac = get_str(v, "MacAddress");
		if (p->nr_nets >= MSG_PODMAN_NETS_MAX || !name_is_safe(net))
			return drv_fail(ctx, -ENOTSUP, "container %s: network %s not supported",
					name, net);
		p->nets[p->nr_nets] = strdup(net);
		if (!p->nets[p->nr_nets++])
			return -ENOMEM;
		if (mac && strlen(mac) == 17 && !(p->macs[p->nr_macs++] = strdup(mac)))
			return -ENOMEM;
	}
	/* podman's directories of the container: its userdata here and in /run */
	if (rundir && strrchr(rundir, '/'))
		*strrchr(rundir, '/') = '\0';
	r = add_dir(&p->oci, get_str(c, "StaticDir"));
	if (r == 0)
		r = add_dir(&p->oci, rundir);
	return r;
}

static int podman_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	struct podman_priv *p = d->priv;
	char *args[] = { "container", "inspect", "--format", "json", p->name, NULL };
	_cleanup_free_ char *out = NULL;
	json_object *j;
	int r;

	if (!prog_installed("podman"))
		return drv_fail(ctx, -ENOENT, "podman is not installed");
	r = podman_setup(ctx);
	if (r < 0)
		return r;
	r = podman_run(args, &out);
	if (r != 0)
		return drv_fail(ctx, r < 0 ? r : -ESRCH, "no podman container %s", p->name);
	j = json_tokener_parse(out);
	r = json_object_is_type(j, json_type_array) && json_object_array_length(j) == 1 ?
		    parse_inspect(ctx, p, json_object_array_get_idx(j, 0)) :
		    drv_fail(ctx, -EPROTO, "podman's description of %s is not understood", p->name);
	json_object_put(j);
	if (r == 0)
		r = oci_prepare_container(ctx, &p->oci, tree);
	if (r == 0)
		pr_info("podman container %s (%.12s), image %s", p->name, p->oci.id,
			p->image ?: p->image_id);
	return r;
}

static int podman_send_info(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	Phaul__PodmanInfo pi = PHAUL__PODMAN_INFO__INIT;

	pi.name = p->name;
	pi.image_id = p->image_id;
	pi.image = p->image;
	pi.networks = p->nets;
	pi.n_networks = p->nr_nets;
	pi.dirs = p->oci.manager_dirs;
	pi.n_dirs = p->oci.nr_manager_dirs;
	pi.macs = p->macs;
	pi.n_macs = p->nr_macs;
	return oci_send_container(ctx, &p->oci, &pi);
}

/*
 * `nft -f -` of @script in the network namespace of @pid (0: ours): 0 when
 * it exited 0.
 */
int podman_nft(pid_t pid, const char *script)
{
	char ns[64];
	int fds[2], status, r = 0;
	pid_t child;

	snprintf(ns, sizeof(ns), "/proc/%d/ns/net", pid);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	child = fork();
	if (child == 0) {
		int fd = pid ? open(ns, O_RDONLY | O_CLOEXEC) : -1;
		if ((pid && (fd < 0 || setns(fd, CLONE_NEWNET) < 0)) || dup2(fds[0], 0) < 0)
			_exit(126);
		execlp("nft", "nft", "-f", "-", (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	if (child < 0)
		r = -errno;
	if (r == 0)
		r = write_full(fds[1], script, strlen(script));
	close(fds[1]);
	while (child > 0 && waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (r == 0 && child > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		r = -EIO;
	return r;
}

#define NETNS_LOCK "inet phaul_lock"

/*
 * The container's network namespace drops every packet from just before
 * the final dump on. CRIU locks a network namespace it dumps, not
 * podman's (external): without this, a peer's packet arriving while CRIU
 * holds the TCP sockets in repair mode, or once the tree is gone, is
 * answered with a reset.
 */
static int lock_netns(const struct drv_ctx *ctx, struct podman_priv *p, bool on)
{
	static const char lock[] = "add table " NETNS_LOCK "\n"
				   "add chain " NETNS_LOCK
				   " in { type filter hook input priority -300; policy drop; }\n"
				   "add chain " NETNS_LOCK
				   " out { type filter hook output priority -300; policy drop; }\n";
	int r;

	if (!p->oci.netns_key[0] || on == p->netns_locked)
		return 0;
	r = podman_nft(p->oci.st.pid, on ? lock : "delete table " NETNS_LOCK "\n");
	if (r < 0 && on)
		return drv_fail(ctx, r, "cannot lock the network of container %s (nft): %s",
				p->name, strerror(-r));
	if (r < 0)
		pr_err("cannot unlock the network of container %s (nft): %s", p->name,
		       strerror(-r));
	else
		p->netns_locked = on;
	return r;
}

/*
 * Frozen: podman's export of the container, taken now so that its
 * writable layer, /dev/shm and log are those of the frozen container.
 */
static int podman_frozen(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	_cleanup_free_ char *tar = NULL, *out = NULL;
	uint64_t t0 = now_ms();
	int r = oci_frozen(d, ctx);

	if (r < 0)
		return r;
	if (asprintf(&tar, "%s/img/" PODMAN_EXPORT_IMG, ctx->dir) < 0)
		return -ENOMEM;
	char *args[] = { "container", "checkpoint", "--leave-running", "--export", tar,
			 p->oci.id,   NULL };
	r = podman_run(args, &out);
	if (r != 0)
		return drv_fail(ctx, r < 0 ? r : -EIO,
				"podman could not export container %s (status %d)", p->name, r);
	pr_info("podman's export of %s took %llu ms", p->name, (unsigned long long)(now_ms() - t0));
	return 0;
}

/* The final dump: its network is locked first (lock_netns). */
static int podman_dump_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o)
{
	int r = oci_dump_opts(d, ctx, o);

	return r < 0 ? r : lock_netns(ctx, d->priv, true);
}

/* Rolled back: the container's network works again. */
static int podman_migration_failed(struct driver *d, const struct drv_ctx *ctx)
{
	return lock_netns(ctx, d->priv, false);
}

/* Committed: the container died here with CRIU's dump; podman forgets it. */
static int podman_migration_complete(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	char *args[] = { "rm", "--force", p->oci.id, NULL };
	int r = podman_run(args, NULL);

	(void)ctx;
	if (r != 0) {
		pr_err("podman rm %s failed (status %d)", p->name, r);
		return r < 0 ? r : -EIO;
	}
	return 0;
}

const struct driver_ops htype_podman_ops = {
	.name = "podman",
	.kind = DRV_HTYPE,
	.priv_size = sizeof(struct podman_priv),
	.init = podman_init,
	.fini = podman_fini,
	.prepare = podman_prepare,
	.hooks = {
		[HOOK_FROZEN] = podman_frozen,
		[HOOK_MIGRATION_COMPLETE] = podman_migration_complete,
		[HOOK_MIGRATION_FAILED] = podman_migration_failed,
		[HOOK_TARGET_CHECK] = podman_target_check,
		[HOOK_TARGET_RESTORE] = podman_target_restore,
		[HOOK_TARGET_RESTORED] = podman_target_restored,
		[HOOK_TARGET_COMMITTED] = podman_target_committed,
		[HOOK_TARGET_RESUMED] = oci_target_resumed,
		[HOOK_TARGET_CLEANUP] = podman_target_cleanup,
		[HOOK_TARGET_ABORT] = podman_target_abort,
	},
	.send_info = podman_send_info,
	.recv_info = podman_target_recv_info,
	.dump_opts = podman_dump_opts,
	.restore_opts = oci_restore_opts,
	.restore_criu = podman_restore_criu,
};
