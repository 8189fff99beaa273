/* SPDX-License-Identifier: MIT */
/*
 * lxc: the source side of the LXC container driver (contract in lxc.h).
 */
#define LOG_PREFIX "lxc: "
#include "drivers/htype/lxc.h"

#include <ctype.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/spawn.h"
#include "common/util.h"

char *lxc_path(const struct lxc_priv *p, const char *file)
{
	char *s;

	if (asprintf(&s, "%s/%s%s%s", p->lxcpath, p->name, file ? "/" : "", file ?: "") < 0)
		return NULL;
	return s;
}

static int lxc_init(struct driver *d, const char *arg)
{
	struct lxc_priv *p = d->priv;

	for (size_t i = 0; i < LXC_TTYS_MAX; i++)
		p->tty_master[i] = p->tty_slave[i] = -1;
	if (!*arg)
		return 0; /* destination: the container is described by the peer */
	if (!name_is_safe(arg)) {
		pr_err("'%s' is not a container name", arg);
		return -EINVAL;
	}
	snprintf(p->name, sizeof(p->name), "%s", arg);
	return 0;
}

static void lxc_fini(struct driver *d)
{
	struct lxc_priv *p = d->priv;

	free(p->lxcpath);
	free(p->config);
	free(p->ext);
	free(p->maps);
	free(p->mapp);
	free(p->rst_ext);
	for (size_t i = 0; i < LXC_TTYS_MAX; i++) {
		if (p->tty_master[i] >= 0)
			close(p->tty_master[i]);
		if (p->tty_slave[i] >= 0)
			close(p->tty_slave[i]);
	}
}

/* @path in the container (a mount point) is dumped as external, @key. */
static int add_ext(struct lxc_priv *p, const char *path, const char *key)
{
	struct lxc_ext *v = realloc(p->ext, (p->nr_ext + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	p->ext = v;
	snprintf(v[p->nr_ext].path, sizeof(v->path), "%s", path);
	snprintf(v[p->nr_ext++].key, sizeof(v->key), "%s", key);
	return 0;
}

/*
 * What `lxc-info -n NAME -P LXCPATH OPT [ARG]` prints, in @buf: -H (bare
 * values) without ARG, "KEY = VALUE" lines with -c KEY.
 */
static int lxc_info(const struct lxc_priv *p, const char *opt, const char *arg, char *buf,
		    size_t size)
{
	char *argv[] = { "lxc-info", "-n",	  (char *)p->name,	 "-P",
			 p->lxcpath, (char *)opt, (char *)(arg ?: "-H"), NULL };
	_cleanup_free_ char *out = NULL;
	int r = run_output(argv, size - 1, &out);

	snprintf(buf, size, "%s", out ?: "");
	return r < 0 ? r : r > 0 ? -ESRCH : 0;
}

/* The init's PID, as `lxc-info -p -H` prints it (nothing: not running). */
int lxc_ask_init(const struct lxc_priv *p, pid_t *ret)
{
	char buf[32];
	long v;
	int r = lxc_info(p, "-p", NULL, buf, sizeof(buf));

	if (r < 0)
		return r;
	if (sscanf(buf, "%ld", &v) != 1 || v <= 0 || v > (1 << 22))
		return -ESRCH;
	*ret = v;
	return 0;
}

/* Where LXC binds its tty N: /dev/DIR/ttyN (lxc.tty.dir), else /dev/ttyN. */
static void lxc_tty_path(const struct lxc_priv *p, long n, char *buf, size_t size)
{
	if (p->tty_dir[0])
		snprintf(buf, size, "/dev/%s/tty%ld", p->tty_dir, n);
	else
		snprintf(buf, size, "/dev/tty%ld", n);
}

/* @path in the container, as its init sees it: a character device. */
static bool ct_chr_stat(const struct lxc_priv *p, const char *path, struct stat *st)
{
	char full[160];

	snprintf(full, sizeof(full), "/proc/%d/root%s", p->init, path);
	return stat(full, st) == 0 && S_ISCHR(st->st_mode);
}

/* Whether @pid has an fd on @tty: the fd, -1 when not. */
static int fd_on(pid_t pid, const struct stat *tty)
{
	char path[64];
	struct dirent *e;
	DIR *dir;
	int ret = -1;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while (ret < 0 && (e = readdir(dir))) {
		struct stat st;

		if (e->d_name[0] == '.' || fstatat(dirfd(dir), e->d_name, &st, 0) < 0)
			continue;
		if (S_ISCHR(st.st_mode) && st.st_dev == tty->st_dev && st.st_rdev == tty->st_rdev)
			ret = atoi(e->d_name);
	}
	closedir(dir);
	return ret;
}

/* A process of @tree with an fd on @tty: its PID, 0 when none. */
static pid_t tty_holder(const struct drv_tree *tree, const struct stat *tty, int *fdp)
{
	for (size_t i = 0; i < tree->nr_procs; i++) {
		*fdp = fd_on(tree->pids[i], tty);
		if (*fdp >= 0)
			return tree->pids[i];
	}
	return 0;
}

/*
 * LXC's ttys (lxc.tty.max, 4 in Debian's default config, often through an
 * lxc.include) are ptys bind-mounted on /dev/lxc/ttyN (lxc.tty.dir) or
 * /dev/ttyN, their masters held by LXC's monitor, outside the tree. The
 * effective value comes from LXC itself (`lxc-info -c`), which has
 * followed the includes. Their mounts are dumped as external (key
 * LXC_TTY_KEY N, their count in the images). Each pty is CRIU's
 * external tty[RDEV:DEV] too, as LXC dumps the console (LXC's own
 * checkpoint knows no ttys but the console): a process holding it (a
 * getty, maybe respawned after this check) is restored on the slave of
 * the new pty the destination binds there. The keys go in the images
 * (LXC_TTY_KEY N); the holders found now are logged.
 */
static int check_ttys(const struct drv_ctx *ctx, struct lxc_priv *p, const struct drv_tree *tree)
{
	char buf[128], path[96], key[32];
	long max = 0;
	int r = lxc_info(p, "-c", "lxc.tty.max", buf, sizeof(buf));

	if (r < 0 || lxcconf_info_long(buf, "lxc.tty.max", &max) < 0)
		return drv_fail(ctx, r < 0 ? r : -EINVAL,
				"container %s: cannot read its lxc.tty.max (lxc-info -c)", p->name);
	for (long n = 1; n <= max; n++) {
		struct stat tty;
		pid_t pid;
		int fd;

		lxc_tty_path(p, n, path, sizeof(path));
		if (!ct_chr_stat(p, path, &tty))
			continue;
		if (n > LXC_TTYS_MAX)
			return drv_fail(ctx, -ENOTSUP,
					"container %s: more than %d LXC ttys are not supported",
					p->name, LXC_TTYS_MAX);
		snprintf(p->tty_ext[n - 1], sizeof(p->tty_ext[n - 1]), "tty[%llx:%llx]",
			 (unsigned long long)tty.st_rdev, (unsigned long long)tty.st_dev);
		pid = tty_holder(tree, &tty, &fd);
		if (pid)
			pr_info("container %s: process %d holds LXC tty %ld (fd %d): %s", p->name,
				pid, n, fd, p->tty_ext[n - 1]);
		snprintf(key, sizeof(key), LXC_TTY_KEY "%u", (unsigned int)n); /* 1..64 */
		if (add_ext(p, path, key) < 0)
			return -ENOMEM;
		p->nr_ttys = n;
	}
	return 0;
}

/* CRIU 4.1 creates a restored veth from inside the container's user
 * namespace, where the kernel refuses it (EPERM from rtnetlink). */
static int check_userns_net(const struct drv_ctx *ctx, struct lxc_priv *p)
{
	if (p->conf.root_uid < 0 && p->conf.root_gid < 0)
		return 0;
	for (size_t i = 0; i < p->conf.nr_net; i++)
		if (p->conf.net[i].type == LXCNET_VETH)
			return drv_fail(ctx, -ENOTSUP,
					"container %s: a veth in a user namespace is "
					"not supported (CRIU cannot recreate it there)",
					p->name);
	return 0;
}

static int read_config(const struct drv_ctx *ctx, struct lxc_priv *p)
{
	_cleanup_free_ char *file = lxc_path(p, "config");
	struct stat st;
	int r;

	if (!file)
		return -ENOMEM;
	if (stat(file, &st) == 0) {
		p->config_ino = st.st_ino;
		p->config_mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	}
	r = read_file(file, MSG_LXC_CONFIG_MAX, &p->config, NULL);
	if (r == -ENOENT)
		return drv_fail(ctx, r, "no container %s in %s", p->name, p->lxcpath);
	if (r < 0)
		return drv_fail(ctx, r, "cannot read %s: %s", file, strerror(-r));
	r = lxcconf_parse(p->config, &p->conf);
	if (r < 0)
		return drv_fail(ctx, r, "%s: %s", file,
				r == -ENOTSUP ? "not supported" : "not valid");
	return check_userns_net(ctx, p);
}

/* @path in the container is a bind of the console's pty (@con). */
static bool is_console(const struct lxc_priv *p, const char *path, const struct stat *con)
{
	struct stat st;

	return ct_chr_stat(p, path, &st) && st.st_rdev == con->st_rdev && st.st_dev == con->st_dev;
}

/* lxc.tty.dir as LXC has it (includes followed), "" when unset. */
static int read_tty_dir(const struct drv_ctx *ctx, struct lxc_priv *p)
{
	char buf[128];

	if (lxc_info(p, "-c", "lxc.tty.dir", buf, sizeof(buf)) < 0 ||
	    lxcconf_info_str(buf, "lxc.tty.dir", p->tty_dir, sizeof(p->tty_dir)) < 0 ||
	    (p->tty_dir[0] && !name_is_safe(p->tty_dir)))
		return drv_fail(ctx, -EINVAL,
				"container %s: cannot read its lxc.tty.dir (lxc-info -c)", p->name);
	return 0;
}

/*
 * The console's pty, as CRIU keys it: tty[RDEV:DEV] of /dev/console; its
 * mounts: /dev/console, and with lxc.tty.dir = DIR /dev/DIR/console too
 * (common.conf sets "lxc"), both external under LXC's key "console".
 */
static int read_console(const struct drv_ctx *ctx, struct lxc_priv *p)
{
	char path[96];
	struct stat st;

	if (!p->conf.console)
		return 0;
	if (!ct_chr_stat(p, "/dev/console", &st))
		return drv_fail(ctx, -ENOENT, "container %s has no console /dev/console", p->name);
	snprintf(p->tty_id, sizeof(p->tty_id), "tty[%llx:%llx]", (unsigned long long)st.st_rdev,
		 (unsigned long long)st.st_dev);
	snprintf(path, sizeof(path), "/dev/%s/console", p->tty_dir);
	if (add_ext(p, "/dev/console", "console") < 0 ||
	    (p->tty_dir[0] && is_console(p, path, &st) && add_ext(p, path, "console") < 0))
		return -ENOMEM;
	return 0;
}

static int lxc_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	struct lxc_priv *p = d->priv;
	int r;

	p->lxcpath = strdup(ctx->opts->lxc_path ?: LXC_DEFAULT_PATH);
	if (!p->lxcpath)
		return -ENOMEM;
	if (!path_is_safe(p->lxcpath))
		return drv_fail(ctx, -EINVAL, "lxcpath %s is not an absolute path", p->lxcpath);
	r = read_config(ctx, p);
	if (r < 0)
		return r;
	r = lxc_ask_init(p, &p->init);
	if (r < 0)
		return drv_fail(ctx, r, "container %s is not running (lxc-info shows no init)",
				p->name);
	r = read_tty_dir(ctx, p);
	if (r == 0)
		r = read_console(ctx, p);
	if (r == 0)
		r = htype_container_tree(ctx, tree, p->init, p->name);
	if (r == 0)
		r = check_ttys(ctx, p, tree);
	if (r < 0)
		return r;
	pr_info("container %s: init %d, %zu processes, rootfs %s, %zu network devices", p->name,
		p->init, tree->nr_procs, p->conf.rootfs, p->conf.nr_net);
	return 0;
}

/*
 * Whether the init runs without an AppArmor profile: on a kernel without
 * AppArmor (no /proc/PID/attr/apparmor; EINVAL when it is there but off)
 * LXC ignored lxc.apparmor.profile; else its label says "unconfined".
 */
static bool unconfined(pid_t pid)
{
	_cleanup_free_ char *label = NULL;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/attr/apparmor/current", pid);
	r = read_file(path, 256, &label, NULL);
	if (r == -ENOENT || r == -EINVAL)
		return true;
	return r == 0 && !strncmp(label, "unconfined", 10) &&
	       (!label[10] || isspace((unsigned char)label[10]));
}

static int lxc_send_info(struct driver *d, const struct drv_ctx *ctx)
{
	struct lxc_priv *p = d->priv;
	Phaul__LxcContainer lc = PHAUL__LXC_CONTAINER__INIT;
	Msg msg = PHAUL__MSG__INIT;
	int r;

	lc.name = p->name;
	lc.lxcpath = p->lxcpath;
	lc.config = p->config;
	lc.has_config_ino = lc.has_config_mtime_ns = p->config_ino != 0;
	lc.config_ino = p->config_ino;
	lc.config_mtime_ns = p->config_mtime_ns;
	lc.has_unconfined = true;
	lc.unconfined = unconfined(p->init);
	msg.body_case = PHAUL__MSG__BODY_LXC;
	msg.lxc = &lc;
	r = drv_send(ctx, &msg);
	if (r < 0)
		return drv_fail(ctx, r, "cannot describe container %s: %s", p->name, strerror(-r));
	return 0;
}

/*
 * As LXC's own dump: mounts from outside the container are detected as
 * external (LXC's restore maps them back with --ext-mount-map auto).
 */
static int lxc_dump_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o)
{
	struct lxc_priv *p = d->priv;

	o->has_pid = true;
	o->pid = p->init;
	o->root = p->conf.rootfs;
	o->has_manage_cgroups = true;
	o->manage_cgroups = true;
	o->has_auto_ext_mnt = true;
	o->auto_ext_mnt = true;
	o->has_ext_sharing = true;
	o->ext_sharing = true;
	o->has_ext_masters = true;
	o->ext_masters = true;
	o->has_link_remap = true;
	o->link_remap = true;
	o->has_network_lock = true;
	o->network_lock = CRIU_NETWORK_LOCK_METHOD__NFTABLES;
	free(p->maps);
	free(p->mapp);
	p->maps = calloc(p->nr_ext, sizeof(*p->maps));
	p->mapp = calloc(p->nr_ext, sizeof(*p->mapp));
	if (p->nr_ext && (!p->maps || !p->mapp))
		return -ENOMEM;
	for (size_t i = 0; i < p->nr_ext; i++) {
		ext_mount_map__init(&p->maps[i]);
		p->maps[i].key = p->ext[i].path;
		p->maps[i].val = p->ext[i].key;
		p->mapp[i] = &p->maps[i];
	}
	o->ext_mnt = p->mapp;
	o->n_ext_mnt = p->nr_ext;
	o->n_external = 0;
	if (p->tty_id[0])
		p->extp[o->n_external++] = p->tty_id;
	for (long i = 0; i < p->nr_ttys && o->n_external < LXC_TTYS_MAX + 1; i++)
		if (p->tty_ext[i][0])
			p->extp[o->n_external++] = p->tty_ext[i];
	o->external = o->n_external ? p->extp : NULL;
	return 0;
}

/* @name in the images: @text. */
static int write_image(const struct drv_ctx *ctx, const char *name, const char *text)
{
	_cleanup_close_ int fd = -1;
	int r;

	fd = openat(ctx->imgfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	r = fd < 0 ? -errno : write_full(fd, text, strlen(text));
	if (r < 0)
		return drv_fail(ctx, r, "cannot write %s to the images: %s", name, strerror(-r));
	return 0;
}

/* LXC's restore finds the console's key in the images' tty.info; the
 * destination's driver how many ttys to bind in LXC_TTYS_IMG, and the
 * keys of those a process holds in LXC_TTY_KEY N. */
static int lxc_frozen(struct driver *d, const struct drv_ctx *ctx)
{
	struct lxc_priv *p = d->priv;
	char ttys[48], name[32];
	int r = 0;

	if (p->tty_id[0])
		r = write_image(ctx, LXC_TTY_INFO, p->tty_id);
	snprintf(ttys, sizeof(ttys), "lxc.tty.max = %ld\n", p->nr_ttys);
	if (r == 0 && p->nr_ttys)
		r = write_image(ctx, LXC_TTYS_IMG, ttys);
	for (long i = 0; r == 0 && i < p->nr_ttys; i++) {
		snprintf(name, sizeof(name), LXC_TTY_KEY "%u", (unsigned int)(i + 1));
		if (p->tty_ext[i][0])
			r = write_image(ctx, name, p->tty_ext[i]);
	}
	return r;
}

/*
 * Committed: CRIU killed the container here and its LXC monitor has seen
 * the init go; the container's config goes, so that LXC no longer lists
 * it. Its directory goes only when empty (the rootfs may live in it).
 * On an lxcpath both hosts see, the config is the destination's now: kept.
 */
static int lxc_migration_complete(struct driver *d, const struct drv_ctx *ctx)
{
	struct lxc_priv *p = d->priv;
	_cleanup_free_ char *file = lxc_path(p, "config");
	_cleanup_free_ char *dir = lxc_path(p, NULL);

	if (!file || !dir)
		return -ENOMEM;
	if (proc_alive(p->init))
		pr_warn("init %d of container %s still runs on the source", p->init, p->name);
	if (drv_in_place(ctx, file)) {
		pr_info("%s is the destination's too (a shared lxcpath): kept", file);
		return 0;
	}
	if (unlink(file) < 0 && errno != ENOENT) {
		pr_perror("cannot remove %s", file);
		return -errno;
	}
	if (rmdir(dir) < 0 && errno != ENOTEMPTY && errno != EEXIST && errno != ENOENT)
		pr_perror("cannot remove %s", dir);
	return 0;
}

const struct driver_ops htype_lxc_ops = {
	.name = "lxc",
	.kind = DRV_HTYPE,
	.priv_size = sizeof(struct lxc_priv),
	.init = lxc_init,
	.fini = lxc_fini,
	.prepare = lxc_prepare,
	.hooks = {
		[HOOK_FROZEN] = lxc_frozen,
		[HOOK_MIGRATION_COMPLETE] = lxc_migration_complete,
		[HOOK_TARGET_CHECK] = lxc_target_check,
		[HOOK_TARGET_RESTORE] = lxc_target_restore,
		[HOOK_TARGET_ABORT] = lxc_target_abort,
	},
	.send_info = lxc_send_info,
	.recv_info = lxc_target_recv_info,
	.dump_opts = lxc_dump_opts,
	.restore_opts = lxc_restore_opts,
	.restore_exec = lxc_restore_exec,
};
