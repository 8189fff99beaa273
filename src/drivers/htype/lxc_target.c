/* SPDX-License-Identifier: MIT */
/*
 * lxc_target: the destination side of the LXC container driver (lxc.h):
 * check, the config written under the same name, the restore run by
 * `lxc-checkpoint -r` with phaul's CRIU options and hold, rollback.
 */
#define LOG_PREFIX "lxc: "
#include "drivers/htype/lxc.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "criu/criu.h"
#include "criu/criuconf.h"

#define HOOK_SCRIPT "lxc-hook"
#define HOOK_PID_FIFO "lxc-hook.pid"
#define HOOK_ANS_FIFO "lxc-hook.ans"
#define CRIU_CONF "lxc-criu.conf"
#define RCFILE "lxc-restore.conf"
#define LXC_LOG "lxc-checkpoint.log" /* its errors (and its monitor's) */
/* FIFO of the report, timeout, FIFO of the answer, config, rmdir, dir */
#define HOOK_FMT                                                                    \
	"#!/bin/sh\n"                                                               \
	"[ \"$CRTOOLS_SCRIPT_ACTION\" = post-restore ] || exit 0\n"                 \
	"exec 3<>'%s' || exit 1\n"                                                  \
	"answer=$(timeout %d sh -c 'exec <\"$0\" && echo \"$1\" >&3 && head -n 1' " \
	"'%s' \"$CRTOOLS_INIT_PID\")\n"                                             \
	"[ \"$answer\" = yes ] && exit 0\n"                                         \
	"%s'%s'\n"                                                                  \
	"%s'%s' 2>/dev/null\n"                                                      \
	"exit 1\n"
#define HOOK_TIMEOUT_S 600 /* far beyond the commit's own timeout */
_Static_assert(2 * LXC_TTYS_MAX <= SPAWN_FDS_MAX, "lxc-checkpoint inherits 2 fds a tty");

int lxc_target_recv_info(struct driver *d, const struct drv_ctx *ctx, const Msg *msg)
{
	struct lxc_priv *p = d->priv;
	const Phaul__LxcContainer *lc =
		msg && msg->body_case == PHAUL__MSG__BODY_LXC ? msg->lxc : NULL;
	int r;

	if (!lc)
		return drv_fail(ctx, -EPROTO, "the source did not describe the container");
	snprintf(p->name, sizeof(p->name), "%s", lc->name);
	p->lxcpath = strdup(lc->lxcpath);
	p->config = strdup(lc->config);
	if (!p->lxcpath || !p->config)
		return -ENOMEM;
	p->unconfined = lc->has_unconfined ? lc->unconfined : -1;
	if (lc->has_config_ino && lc->has_config_mtime_ns) {
		p->config_ino = lc->config_ino;
		p->config_mtime_ns = lc->config_mtime_ns;
	}
	r = lxcconf_parse(p->config, &p->conf);
	if (r < 0)
		return drv_fail(ctx, r, "the config of container %s is not usable here", p->name);
	return 0;
}

static int check_net(const struct drv_ctx *ctx, const struct lxcconf_net *n)
{
	if (n->type != LXCNET_VETH)
		return 0;
	if (n->link[0] && !if_nametoindex(n->link))
		return drv_fail(ctx, -ENOENT, "no bridge %s on the destination", n->link);
	if (n->pair[0] && if_nametoindex(n->pair))
		return drv_fail(ctx, -EEXIST, "interface %s exists on the destination", n->pair);
	return 0;
}

/*
 * Live and post-copy restores are lazy: CRIU opens its userfaultfd in the
 * container's user namespace, which the kernel allows only with
 * vm.unprivileged_userfaultfd = 1 (stop mode needs none).
 */
static int check_userns(const struct drv_ctx *ctx, const struct lxcconf *c)
{
	_cleanup_free_ char *v = NULL;

	if ((c->root_uid < 0 && c->root_gid < 0) || ctx->mode == MODE_STOP)
		return 0;
	if (read_file("/proc/sys/vm/unprivileged_userfaultfd", 64, &v, NULL) == 0 && v[0] == '1')
		return 0;
	return drv_fail(ctx, -ENOTSUP,
			"a container in a user namespace needs "
			"vm.unprivileged_userfaultfd = 1 on the destination for --mode %s "
			"(or use --mode stop)",
			mode_name(ctx->mode));
}

/*
 * LXCPATH/NAME/config exists here: on an lxcpath both hosts see, the
 * source's own file (its text, inode and mtime), which is used in place
 * unless LXC runs the container here too; else another container.
 */
static int check_existing(const struct drv_ctx *ctx, struct lxc_priv *p, const char *file)
{
	_cleanup_free_ char *text = NULL;
	struct stat st;
	pid_t pid;
	int r;

	if (stat(file, &st) < 0 || !p->config_ino || st.st_ino != p->config_ino ||
	    st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != p->config_mtime_ns ||
	    read_file(file, MSG_LXC_CONFIG_MAX, &text, NULL) < 0 || strcmp(text, p->config))
		return drv_fail(ctx, -EEXIST,
				"a container %s exists on the destination (%s, not "
				"the source's config file)",
				p->name, file);
	if (lxc_ask_init(p, &pid) == 0)
		return drv_fail(ctx, -EEXIST,
				"container %s runs on the destination too (init %d; "
				"its lxcpath %s is on storage both hosts see)",
				p->name, pid, p->lxcpath);
	r = drv_add_in_place(ctx, file);
	if (r < 0)
		return drv_fail(ctx, r, "cannot use %s in place", file);
	p->config_in_place = true;
	pr_info("%s is the source's (an lxcpath both hosts see): used in place", file);
	return 0;
}

/* The rootfs is here, or (all false) comes with the storage. */
static int check_rootfs(const struct drv_ctx *ctx, const struct lxc_priv *p, bool all)
{
	struct stat st;

	if (stat(p->conf.rootfs, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (!all && drv_storage_brings(ctx, p->conf.rootfs))
		return 0;
	return drv_fail(ctx, -ENOENT, "the container's rootfs %s is not on the destination",
			p->conf.rootfs);
}

static bool apparmor_here(void)
{
	_cleanup_free_ char *on = NULL;

	return read_file("/sys/module/apparmor/parameters/enabled", 16, &on, NULL) == 0 &&
	       on[0] == 'Y';
}

/*
 * LXC's restore passes lxc.apparmor.profile to CRIU (--lsm-profile
 * apparmor:...), which fails on a kernel without AppArmor, after the
 * freeze. A container the source ran unconfined (LXC ignores the profile
 * on a kernel without AppArmor) is restored without it (the rcfile resets
 * it: write_rcfile); one confined there would lose its confinement here:
 * refused, before anything freezes. A source that does not say is judged
 * by the config file itself (a profile set only in an lxc.include'd file
 * is not seen then, and fails at the restore, rolled back).
 */
static int check_apparmor(const struct drv_ctx *ctx, const struct lxc_priv *p)
{
	if (apparmor_here() || p->unconfined == 1 || (p->unconfined < 0 && !p->conf.apparmor))
		return 0;
	if (p->unconfined == 0)
		return drv_fail(ctx, -ENOTSUP,
				"container %s: AppArmor confines it on the source, and the "
				"destination's kernel has no AppArmor",
				p->name);
	return drv_fail(ctx, -ENOTSUP,
			"container %s: its config sets lxc.apparmor.profile, which LXC's "
			"restore asks CRIU for, and the destination's kernel has no AppArmor; "
			"remove lxc.apparmor.* from its config",
			p->name);
}

int lxc_target_check(struct driver *d, const struct drv_ctx *ctx)
{
	struct lxc_priv *p = d->priv;
	_cleanup_free_ char *file = lxc_path(p, "config"), *dir = lxc_path(p, NULL);
	int r = 0;

	if (!file || !dir)
		return -ENOMEM;
	if (!prog_installed("lxc-checkpoint"))
		return drv_fail(ctx, -ENOENT,
				"LXC (lxc-checkpoint) is not installed on the destination");
	if (access(file, F_OK) == 0)
		r = check_existing(ctx, p, file);
	/* a storage driver (sync:LXCPATH/NAME/rootfs) may make it next */
	if (r == 0 && access(dir, F_OK) < 0 && errno == ENOENT)
		p->made_dir = true;
	if (r == 0)
		r = check_rootfs(ctx, p, false);
	if (r == 0)
		r = check_apparmor(ctx, p);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < p->conf.nr_net; i++)
		r = check_net(ctx, &p->conf.net[i]);
	return r < 0 ? r : check_userns(ctx, &p->conf);
}

/* Storage is through: the rootfs must be here now. */
int lxc_target_restore(struct driver *d, const struct drv_ctx *ctx)
{
	return check_rootfs(ctx, d->priv, true);
}

/* LXCPATH/NAME/config, as the source has it (unless it is that file). */
static int write_config(const struct drv_ctx *ctx, struct lxc_priv *p)
{
	_cleanup_free_ char *dir = lxc_path(p, NULL);
	_cleanup_free_ char *file = lxc_path(p, "config");
	_cleanup_close_ int fd = -1;
	int r;

	if (!dir || !file)
		return -ENOMEM;
	if (p->config_in_place)
		return 0;
	r = mkdir_p(p->lxcpath, 0755);
	if (r == 0 && mkdir(dir, 0750) == 0)
		p->made_dir = true;
	else if (r == 0 && errno != EEXIST)
		r = -errno;
	if (r == 0) {
		fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
		r = fd < 0 ? -errno : 0;
	}
	if (r == 0)
		p->wrote_config = true;
	if (r == 0)
		r = write_full(fd, p->config, strlen(p->config));
	if (r < 0)
		return drv_fail(ctx, r, "cannot write %s: %s", file, strerror(-r));
	return 0;
}

static void remove_config(struct lxc_priv *p)
{
	_cleanup_free_ char *dir = lxc_path(p, NULL);
	_cleanup_free_ char *file = lxc_path(p, "config");

	if (p->wrote_config && file && unlink(file) < 0 && errno != ENOENT)
		pr_perror("cannot remove %s", file);
	p->wrote_config = false;
	/* not empty: a sync of the rootfs, which removes it then */
	if (p->made_dir && dir && rmdir(dir) < 0 && errno != ENOENT && errno != ENOTEMPTY)
		pr_perror("cannot remove %s", dir);
	p->made_dir = false;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
				      mode);

	if (fd < 0)
		return -errno;
	return write_full(fd, text, strlen(text));
}

/*
 * The action script CRIU runs at each step of the restore: at
 * post-restore it opens the answer FIFO, reports the restored init on
 * the other, and waits for our answer. We hold both FIFOs open from
 * before the restore: its opens and report never block, our answer
 * stays in the FIFO it already opened, and its read ends (EOF: "no")
 * when we die before answering. The timeout covers only our death
 * before it opened the answer FIFO. Unless the answer is yes it removes
 * the config we wrote: CRIU kills the tree, and LXC must not list a
 * container we may no longer be alive to remove.
 */
static int write_hook(const struct drv_ctx *ctx, struct lxc_priv *p)
{
	_cleanup_free_ char *script = NULL, *text = NULL, *pidf = NULL, *ansf = NULL;
	_cleanup_free_ char *file = lxc_path(p, "config"), *dir = lxc_path(p, NULL);
	int r;

	if (!file || !dir)
		return -ENOMEM;
	if (strchr(ctx->dir, '\'') || strchr(file, '\'')) /* they are quoted below */
		return drv_fail(ctx, -EINVAL, "%s or %s holds a quote", ctx->dir, file);
	if (asprintf(&script, "%s/" HOOK_SCRIPT, ctx->dir) < 0 ||
	    asprintf(&pidf, "%s/" HOOK_PID_FIFO, ctx->dir) < 0 ||
	    asprintf(&ansf, "%s/" HOOK_ANS_FIFO, ctx->dir) < 0 ||
	    asprintf(&text, HOOK_FMT, pidf, HOOK_TIMEOUT_S, ansf, p->wrote_config ? "rm -f " : ": ",
		     file, p->made_dir ? "rmdir " : ": ", dir) < 0)
		return -ENOMEM;
	if (mkfifo(pidf, 0600) < 0 || mkfifo(ansf, 0600) < 0)
		r = -errno;
	else
		r = write_text(script, text, 0700);
	if (r < 0)
		return drv_fail(ctx, r, "cannot write the restore hook %s: %s", script,
				strerror(-r));
	return 0;
}

/*
 * CRIU's options for LXC's restore: phaul's (criuconf_render), and for
 * each LXC tty with a key, the new pty's slave as the external tty of the
 * source's key: fd 3 + nr_ttys + k of lxc-checkpoint, the k-th with one
 * (start_restore), which LXC's restore passes on to CRIU.
 */
static int write_criu_conf(const struct drv_ctx *ctx, const struct lxc_priv *p, const CriuOpts *o)
{
	_cleanup_free_ char *conf = NULL, *path = NULL, *script = NULL;
	int r, fd = 3 + (int)p->nr_ttys;

	if (asprintf(&path, "%s/" CRIU_CONF, ctx->dir) < 0 ||
	    asprintf(&script, "%s/" HOOK_SCRIPT, ctx->dir) < 0)
		return -ENOMEM;
	r = criuconf_render(o, ctx->dir, script, &conf);
	for (long i = 0; r == 0 && i < p->nr_ttys; i++) {
		char *more;

		if (!p->tty_ext[i][0])
			continue;
		if (asprintf(&more, "%sinherit-fd fd[%d]:%s\n", conf, fd++, p->tty_ext[i]) < 0)
			return -ENOMEM;
		free(conf);
		conf = more;
	}
	if (r == 0)
		r = write_text(path, conf, 0600);
	if (r < 0)
		return drv_fail(ctx, r, "cannot write CRIU's options for LXC: %s", strerror(-r));
	return 0;
}

/*
 * Beyond LXC's command line: the dump's network lock, and mount namespace
 * compatibility mode (LXC's mounts are shared on a host whose / is, which
 * CRIU's newer mount engine fails to restore: "Failed to make mount
 * shared", with LXC's own checkpoints too).
 */
int lxc_restore_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o)
{
	o->has_network_lock = true;
	o->network_lock = CRIU_NETWORK_LOCK_METHOD__NFTABLES;
	o->has_mntns_compat_mode = true;
	o->mntns_compat_mode = true;
	return 0;
}

/* How many LXC ttys the source dumped (LXC_TTYS_IMG; untrusted), 0 without. */
static int read_nr_ttys(const struct drv_ctx *ctx, long *n)
{
	_cleanup_close_ int fd = openat(ctx->imgfd, LXC_TTYS_IMG,
					O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	char buf[64];
	ssize_t k;

	*n = 0;
	if (fd < 0 && errno == ENOENT)
		return 0;
	k = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (k < 0)
		return drv_fail(ctx, -errno, "cannot read %s in the images: %m", LXC_TTYS_IMG);
	buf[k] = '\0';
	if (lxcconf_info_long(buf, "lxc.tty.max", n) < 0 || *n > LXC_TTYS_MAX)
		return drv_fail(ctx, -EPROTO, "%s in the images is not valid", LXC_TTYS_IMG);
	return 0;
}

/*
 * CRIU's key of LXC tty @n's pty on the source (the images' LXC_TTY_KEY
 * N; untrusted; none from an older source): its slave here is opened for
 * CRIU to inherit, O_NOCTTY (CRIU makes it a holder's controlling tty
 * when it was).
 */
static int read_tty_ext(const struct drv_ctx *ctx, struct lxc_priv *p, long n)
{
	_cleanup_close_ int fd = -1;
	char name[32], buf[64];
	ssize_t k;

	snprintf(name, sizeof(name), LXC_TTY_KEY "%u", (unsigned int)n); /* n <= LXC_TTYS_MAX */
	fd = openat(ctx->imgfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	k = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (k < 0)
		return drv_fail(ctx, -errno, "cannot read %s in the images: %m", name);
	buf[k] = '\0';
	if (lxcconf_tty_key(buf, p->tty_ext[n - 1], sizeof(p->tty_ext[n - 1])) < 0)
		return drv_fail(ctx, -EPROTO, "%s in the images is not valid", name);
	p->tty_slave[n - 1] = open(p->tty_pts[n - 1], O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (p->tty_slave[n - 1] < 0)
		return drv_fail(ctx, -errno, "cannot open %s for LXC tty %ld: %m",
				p->tty_pts[n - 1], n);
	return 0;
}

/*
 * The ptys LXC's ttys 1..N are bound to (their mounts dumped external,
 * LXC_TTY_KEY N): new ones of this host's devpts, whose masters
 * lxc-checkpoint inherits (start_restore) and its restored monitor keeps,
 * as the source's monitor kept the old ones. LXC's restore closes no fd it
 * inherits; its monitor serves none of them (lxc-console -t N). The
 * slaves go to CRIU too, for the processes that held the ttys
 * (read_tty_ext); the monitor keeps a copy of them as well.
 */
static int open_ttys(const struct drv_ctx *ctx, struct lxc_priv *p, CriuOpts *o)
{
	long n;
	int r = read_nr_ttys(ctx, &n);

	if (r < 0)
		return r;
	free(p->rst_ext);
	p->rst_ext = calloc(o->n_ext_mnt + n + 1, sizeof(*p->rst_ext));
	if (!p->rst_ext)
		return -ENOMEM;
	for (size_t i = 0; i < o->n_ext_mnt; i++)
		p->rst_ext[i] = o->ext_mnt[i];
	for (long i = 0; i < n; i++) {
		int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);

		p->tty_master[i] = fd;
		if (fd < 0 || unlockpt(fd) < 0 ||
		    ptsname_r(fd, p->tty_pts[i], sizeof(p->tty_pts[i])) != 0)
			return drv_fail(ctx, -errno, "cannot open a pty for LXC tty %ld: %m",
					i + 1);
		snprintf(p->tty_key[i], sizeof(p->tty_key[i]), LXC_TTY_KEY "%u",
			 (unsigned int)(i + 1)); /* n <= LXC_TTYS_MAX */
		ext_mount_map__init(&p->tty_map[i]);
		p->tty_map[i].key = p->tty_key[i];
		p->tty_map[i].val = p->tty_pts[i];
		p->rst_ext[o->n_ext_mnt++] = &p->tty_map[i];
		r = read_tty_ext(ctx, p, i + 1);
		if (r < 0)
			return r;
	}
	p->nr_ttys = n;
	o->ext_mnt = p->rst_ext;
	return 0;
}

/* Our copies of the ttys' masters and slaves: lxc-checkpoint has its own. */
static void close_ttys(struct lxc_priv *p)
{
	for (size_t i = 0; i < LXC_TTYS_MAX; i++) {
		if (p->tty_master[i] >= 0)
			close(p->tty_master[i]);
		if (p->tty_slave[i] >= 0)
			close(p->tty_slave[i]);
		p->tty_master[i] = p->tty_slave[i] = -1;
	}
}

/*
 * In a user namespace CRIU's restored tasks open some images themselves
 * (tty-info.img, timens-0.img), not always yet as the container's root:
 * the images must be readable by anyone (as CRIU writes them) and their
 * directory searchable. Its parent, the session's directory, stays 0700:
 * only who holds the images directory open reaches them.
 */
static int images_readable(const struct drv_ctx *ctx, const struct lxcconf *c)
{
	int fd, r = 0;
	struct dirent *de;
	DIR *d;

	if (c->root_uid < 0 && c->root_gid < 0)
		return 0;
	fd = openat(ctx->imgfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return drv_fail(ctx, r, "cannot list the images: %s", strerror(-r));
	}
	if (fchmod(dirfd(d), 0711) < 0)
		r = -errno;
	while (r == 0 && (de = readdir(d))) {
		struct stat st; /* files only: "parent" links to the page store */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && fchmodat(dirfd(d), de->d_name, 0644, 0) < 0)
			r = -errno;
	}
	closedir(d);
	if (r < 0)
		return drv_fail(ctx, r,
				"cannot make the images readable in the container's user "
				"namespace: %s",
				strerror(-r));
	return 0;
}

/*
 * The config LXC's restore runs the container with (--rcfile): the
 * container's, then what differs after a restore. LXC 5.0 allocates a
 * console before the restore only from the host's devpts, which it does
 * when lxc.pty.max <= 1; with more (1024 in common.conf, which Debian's
 * templates include) it would make the console inside the container's
 * devpts, in the container's start-up that a restore never runs, and it
 * refuses to restore a console it has not got ("lxc.console.path
 * configured on source host but not target"). The restored container's
 * devpts is CRIU's, with its dumped options: pty.max no longer matters.
 * Nor does the restore allocate LXC's ttys, and with lxc.tty.max > 0 its
 * monitor (lxc-checkpoint -r) walks the array of them it never made and
 * dies (LXC 5.0.2: a segfault right after the restore, seen here; the
 * container then runs without a monitor). Their mounts are bound to new
 * ptys whose masters that monitor inherits (open_ttys).
 */
#define RCFILE_TAIL                                                                \
	"\n# phaul: after a restore, the console on a pty of the host's devpts,\n" \
	"# and no LXC ttys (LXC's restore makes none)\n"                           \
	"lxc.pty.max = 1\n"                                                        \
	"lxc.tty.max = 0\n"

#define RCFILE_NO_APPARMOR                                              \
	"# phaul: no AppArmor here, and the source ran it unconfined\n" \
	"lxc.apparmor.profile =\n"

static int write_rcfile(const struct drv_ctx *ctx, const struct lxc_priv *p)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	bool no_aa = p->unconfined == 1 && !apparmor_here();
	int r;

	if (asprintf(&path, "%s/" RCFILE, ctx->dir) < 0 ||
	    asprintf(&text, "%s" RCFILE_TAIL "%s", p->config, no_aa ? RCFILE_NO_APPARMOR : "") < 0)
		return -ENOMEM;
	r = write_text(path, text, 0600);
	if (r < 0)
		return drv_fail(ctx, r, "cannot write %s: %s", path, strerror(-r));
	return 0;
}

static int start_restore(const struct drv_ctx *ctx, struct lxc_priv *p, pid_t *pid)
{
	_cleanup_free_ char *env = NULL, *img = NULL, *rc = NULL, *log = NULL;
	int r;

	if (asprintf(&env, "CRIU_CONFIG_FILE=%s/" CRIU_CONF, ctx->dir) < 0 ||
	    asprintf(&img, "%s/img", ctx->dir) < 0 ||
	    asprintf(&rc, "--rcfile=%s/" RCFILE, ctx->dir) < 0 ||
	    asprintf(&log, "--logfile=%s/" LXC_LOG, ctx->dir) < 0)
		return -ENOMEM;
	char *argv[] = {
		"env",
		env,
		CRIU_ENV_NO_BREAKPOINTS,
		CRIU_ENV_FIFO_SHARED_CHECK,
		CRIU_ENV_RESTORE_TCP_MSS, /* its connections' MSS, as with phaul's CRIU */
		"lxc-checkpoint",
		"-r",
		"-n",
		p->name,
		"-P",
		p->lxcpath,
		"-D",
		img,
		rc,
		log,
		"--logpriority=ERROR",
		NULL
	};
	size_t nr = 0;

	for (long i = 0; i < p->nr_ttys; i++)
		p->tty_fds[nr++] = p->tty_master[i];
	for (long i = 0; i < p->nr_ttys; i++)
		if (p->tty_slave[i] >= 0)
			p->tty_fds[nr++] = p->tty_slave[i];
	r = spawn_fds(argv, -1, -1, p->tty_fds, nr, pid);
	if (r < 0)
		return drv_fail(ctx, r, "cannot run lxc-checkpoint: %s", strerror(-r));
	return 0;
}

/*
 * lxc-checkpoint -r exited before the tree was restored: CRIU's log says
 * why, or, when LXC failed before it ran CRIU, LXC's own log.
 */
static void lxc_failed(const struct drv_ctx *ctx, int status)
{
	_cleanup_free_ char *path = NULL, *log = NULL;
	char what[96], cause[256];

	snprintf(what, sizeof(what),
		 "lxc-checkpoint -r failed before the tree was restored (%s %d)",
		 WIFEXITED(status) ? "status" : "signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	if (faccessat(ctx->imgfd, "restore.log", F_OK, 0) == 0) {
		drv_criu_failed(ctx, "img/restore.log", what);
		return;
	}
	if (asprintf(&path, "%s/" LXC_LOG, ctx->dir) < 0 ||
	    read_file(path, 64 * 1024, &log, NULL) < 0 ||
	    lxcconf_log_error(log, cause, sizeof(cause)) < 0)
		snprintf(cause, sizeof(cause), "LXC says nothing (%s)", path ?: LXC_LOG);
	drv_fail(ctx, -EIO, "%s, before it ran CRIU: %s", what, cause);
}

/*
 * Wait for the hook's report (the restored init's PID) while
 * lxc-checkpoint runs; 0 with *root, or the restore's failure.
 */
static int wait_report(const struct drv_ctx *ctx, int fd, pid_t lxc, pid_t *root)
{
	char buf[32];
	ssize_t n = 0;
	long v;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int status;

		if (poll(&pfd, 1, 100) > 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			if (n > 0)
				break;
		}
		if (waitpid(lxc, &status, WNOHANG) == lxc) {
			lxc_failed(ctx, status);
			return -ECHILD;
		}
	}
	buf[n] = '\0';
	if (sscanf(buf, "%ld", &v) != 1 || v <= 1 || v > (1 << 22))
		return drv_fail(ctx, -EIO, "the restore hook reported no PID ('%.16s')", buf);
	*root = v;
	return 0;
}

/* O_RDWR: opening never blocks, and the FIFO has a reader and a writer
 * for as long as we hold it. */
static int open_fifo(const struct drv_ctx *ctx, const char *name, int *fd)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/%s", ctx->dir, name) < 0)
		return -ENOMEM;
	*fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (*fd < 0)
		return drv_fail(ctx, -errno, "cannot open %s: %m", path);
	return 0;
}

/* Tell the hook, and close: its read ends either way. */
static int answer(const struct drv_ctx *ctx, int *fd, bool yes)
{
	int r = write_full(*fd, yes ? "yes\n" : "no\n", yes ? 4 : 3);

	close(*fd);
	*fd = -1;
	if (r < 0)
		return drv_fail(ctx, r, "cannot answer the restore hook: %s", strerror(-r));
	return 0;
}

/*
 * lxc-checkpoint -r exited 0: its monitor has set the container RUNNING
 * with the restored init as the container's, and a commit promises that
 * LXC lists it running: it is checked (retried for 1 s) before the
 * source is told. If LXC still does not list it, the commit stands all
 * the same: the tree has run here since CRIU let it go, and resuming the
 * source's copy now would run the workload twice. It is said loudly.
 */
static void confirm_running(struct lxc_priv *p, pid_t root)
{
	struct timespec ts = { 0, 50 * 1000000 };
	pid_t init = 0;
	int r = -ESRCH;

	for (int i = 0; i < 20 && (r < 0 || init != root); i++) {
		if (i)
			nanosleep(&ts, NULL);
		r = lxc_ask_init(p, &init);
	}
	if (r < 0)
		pr_warn("LXC does not list container %s running after its restore: its init %d "
			"runs here without LXC's monitor",
			p->name, root);
	else if (init != root)
		pr_warn("LXC lists container %s with init %d, not the restored %d", p->name, init,
			root);
}

int lxc_restore_exec(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o, driver_held_fn held,
		     void *arg, pid_t *root)
{
	struct lxc_priv *p = d->priv;
	_cleanup_close_ int rep = -1, ans = -1;
	pid_t lxc = -1, pid = -1;
	int status, r = write_config(ctx, p);

	if (r == 0)
		r = write_hook(ctx, p);
	if (r == 0)
		r = open_ttys(ctx, p, o);
	if (r == 0)
		r = write_criu_conf(ctx, p, o);
	if (r == 0)
		r = write_rcfile(ctx, p);
	if (r == 0)
		r = images_readable(ctx, &p->conf);
	if (r == 0)
		r = open_fifo(ctx, HOOK_PID_FIFO, &rep);
	if (r == 0)
		r = open_fifo(ctx, HOOK_ANS_FIFO, &ans);
	if (r == 0)
		r = start_restore(ctx, p, &lxc);
	if (r < 0)
		return r;
	r = wait_report(ctx, rep, lxc, &pid);
	close_ttys(p);
	if (r == -ECHILD)
		return -EIO; /* lxc-checkpoint is gone, and nothing was restored */
	r = r < 0 ? r : held(arg, pid);
	if (answer(ctx, &ans, r == 0) < 0 && r == 0)
		r = -EIO;
	status = spawn_wait(lxc);
	if (r == 0 && status != 0) {
		char what[96];
		snprintf(what, sizeof(what),
			 "lxc-checkpoint -r failed after the restore (status %d)", status);
		r = drv_criu_failed(ctx, "img/restore.log", what);
	}
	if (r == 0)
		confirm_running(p, pid);
	if (r == 0) {
		*root = pid;
		pr_info("container %s restored by LXC: init %d", p->name, pid);
	}
	return r;
}

int lxc_target_abort(struct driver *d, const struct drv_ctx *ctx)
{
	close_ttys(d->priv);
	remove_config(d->priv);
	return 0;
}
