/* SPDX-License-Identifier: MIT */
/*
 * sync: --fs sync:DIR, a directory private to each host, copied to the
 * destination by rsync (its delta algorithm, and every kind of file with
 * -aHAXS --numeric-ids: contents, holes, owners, modes, times, xattrs,
 * ACLs, hard links, symlinks, devices, fifos; --delete for deletions).
 *
 * rsync's two ends never talk over a socket of their own: the source runs
 * the rsync client with `phaul __fdpipe 3` as its remote shell, whose fd 3
 * is a socket to us; the destination runs `rsync --server --daemon` on a
 * socket to it, with a configuration it writes itself (the peer chooses no
 * option of it): module "sync", path DIR, `use chroot`, so that no name the
 * source sends can reach outside DIR. tunnel.c carries the bytes over
 * phaul's authenticated connection (FsSync, FsData, FsSyncDone).
 *
 * Source: start_migration copies in rounds while the workload runs, until
 * sync_decide() says stop; stop_migration (frozen) makes the last pass.
 * The source's DIR is only ever read.
 * Destination: target_check wants DIR absent (created, with its missing
 * parents) or empty, so that target_abort can remove everything the
 * migration put there (parents that another driver filled stay).
 */
#define LOG_PREFIX "sync: "
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "drivers/fs/fs.h"
#include "drivers/fs/sync_policy.h"
#include "drivers/fs/tunnel.h"

struct sync_priv {
	const char *dir;
	/* source */
	struct sync_stats rounds[SYNC_MAX_ROUNDS + 1];
	size_t nr_rounds;
	uint64_t wire_bytes;
	/* destination */
	int dirfd;
	bool created;
	char top[PATH_MAX]; /* the highest directory created for DIR */
	bool touched;
	char conf[PATH_MAX];
};

static int sync_init(struct driver *d, const char *arg)
{
	struct sync_priv *p = d->priv;

	p->dirfd = -1;
	if (!sync_dir_ok(arg)) {
		pr_err("'%s': need an absolute directory path of [A-Za-z0-9/._+-]", arg);
		return -EINVAL;
	}
	p->dir = arg;
	return 0;
}

static void sync_fini(struct driver *d)
{
	struct sync_priv *p = d->priv;

	if (p->dirfd >= 0)
		close(p->dirfd);
}

static int sync_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	struct sync_priv *p = d->priv;
	struct stat st;

	if (stat(p->dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return drv_fail(ctx, -ENOTDIR, "sync:%s is not a directory here", p->dir);
	return 0;
}

static int send_sync(const struct drv_ctx *ctx, uint32_t round, bool final)
{
	Phaul__FsSync s = PHAUL__FS_SYNC__INIT;
	Msg msg = PHAUL__MSG__INIT;

	s.driver = ctx->fs_index;
	s.round = round;
	s.has_final = true;
	s.final = final;
	msg.body_case = PHAUL__MSG__BODY_FS_SYNC;
	msg.fs_sync = &s;
	return drv_send(ctx, &msg);
}

/* The rsync client, talking through fd 3 of `phaul __fdpipe 3`. */
static int start_client(struct sync_priv *p, int sk, int out, pid_t *pid)
{
	char exe[PATH_MAX], rsh[PATH_MAX + 32], src[PATH_MAX + 2];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n < 0)
		return -errno;
	exe[n] = '\0';
	snprintf(rsh, sizeof(rsh), "%s __fdpipe 3", exe);
	snprintf(src, sizeof(src), "%s/", p->dir);
	char *const argv[] = { "rsync", "-aHAXS", "--numeric-ids", "--delete", "--stats", "-e",
			       rsh,	src,	  "phaul::sync/",  NULL };
	return spawn(argv, -1, out, sk, pid);
}

/* Carry rsync's stream on @sk (closed) until both ends are done; reap it. */
static int tunnel_rsync(const struct drv_ctx *ctx, int sk, pid_t pid, struct tunnel_stats *ts,
			int *status)
{
	int r = tunnel_run(ctx, sk, ts);

	close(sk);
	if (r < 0)
		kill(pid, SIGKILL);
	*status = spawn_wait(pid);
	return r;
}

static int read_stats(const char *path, struct sync_stats *st)
{
	_cleanup_free_ char *text = NULL;
	int r = read_file(path, 64 * 1024, &text, NULL);

	unlink(path);
	return r < 0 ? r : sync_parse_stats(text, st);
}

/* One rsync pass over the tunnel; the destination answers FsSyncDone. */
static int sync_round(struct driver *d, const struct drv_ctx *ctx, bool final)
{
	struct sync_priv *p = d->priv;
	_cleanup_msg_ Msg *done = NULL;
	struct tunnel_stats ts = { 0 };
	struct sync_stats st;
	_cleanup_close_ int out = -1;
	char path[PATH_MAX];
	uint64_t t0 = now_ms();
	int sp[2], status, r;
	pid_t pid;

	r = fault_point("fs.sync_round");
	if (r < 0)
		return drv_fail(ctx, r, "injected fault");
	snprintf(path, sizeof(path), "%s/rsync-%d.out", ctx->dir, ctx->fs_index);
	out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0)
		return drv_fail(ctx, -errno, "cannot create %s: %m", path);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return drv_fail(ctx, -errno, "socketpair: %m");
	r = send_sync(ctx, p->nr_rounds + 1, final);
	if (r == 0)
		r = start_client(p, sp[1], out, &pid);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		return drv_fail(ctx, r, "cannot start rsync: %s", strerror(-r));
	}
	r = tunnel_rsync(ctx, sp[0], pid, &ts, &status);
	if (r < 0)
		return drv_fail(ctx, r, "storage copy of %s broken", p->dir);
	r = drv_expect(ctx, PHAUL__MSG__BODY_FS_SYNC_DONE, &done);
	if (r < 0)
		return r;
	if (status != 0 || done->fs_sync_done->status != 0)
		return drv_fail(ctx, -EIO, "rsync of %s failed: status %d here, %d there", p->dir,
				status, done->fs_sync_done->status);
	if (read_stats(path, &st) < 0)
		return drv_fail(ctx, -EIO, "rsync printed no statistics");
	p->wire_bytes += ts.bytes_out + ts.bytes_in;
	if (p->nr_rounds < ARRAY_SIZE(p->rounds))
		p->rounds[p->nr_rounds] = st;
	p->nr_rounds++;
	pr_info("%s round %zu%s: %llu of %llu files changed (%llu bytes), %llu deleted, "
		"%llu bytes on the wire, %llu ms",
		p->dir, p->nr_rounds, final ? " (frozen)" : "", (unsigned long long)st.transferred,
		(unsigned long long)st.files, (unsigned long long)st.changed_bytes,
		(unsigned long long)st.deleted, (unsigned long long)(ts.bytes_out + ts.bytes_in),
		(unsigned long long)(now_ms() - t0));
	return 0;
}

static int sync_start(struct driver *d, const struct drv_ctx *ctx)
{
	struct sync_priv *p = d->priv;
	enum sync_verdict v = SYNC_CONTINUE;

	while (v == SYNC_CONTINUE) {
		int r = sync_round(d, ctx, false);
		if (r < 0)
			return r;
		v = sync_decide(p->rounds, p->nr_rounds);
	}
	pr_info("%s: %zu rounds while running (%s)", p->dir, p->nr_rounds, sync_verdict_name(v));
	return 0;
}

static int sync_stop(struct driver *d, const struct drv_ctx *ctx)
{
	return sync_round(d, ctx, true);
}

/* The highest missing directory of @dir (absent itself) into @top. */
static void missing_top(const char *dir, char *top, size_t len)
{
	char up[PATH_MAX];
	char *slash;

	snprintf(top, len, "%s", dir);
	snprintf(up, sizeof(up), "%s", dir);
	while ((slash = strrchr(up, '/')) && slash != up) {
		*slash = '\0';
		if (access(up, F_OK) == 0 || errno != ENOENT)
			break;
		snprintf(top, len, "%s", up);
	}
}

/* Remove @dir and its parents up to @top, as far as they are empty. */
static int rmdir_up(const char *dir, const char *top)
{
	char path[PATH_MAX];
	char *slash;

	snprintf(path, sizeof(path), "%s", dir);
	for (;;) {
		if (rmdir(path) < 0)
			return errno == ENOENT || (errno == ENOTEMPTY && strcmp(path, dir)) ?
				       0 :
				       -errno;
		if (!strcmp(path, top) || !(slash = strrchr(path, '/')) || slash == path)
			return 0;
		*slash = '\0';
	}
}

/* Destination: DIR absent (we create it) or empty, and the daemon's config. */
static int sync_target_check(struct driver *d, const struct drv_ctx *ctx)
{
	struct sync_priv *p = d->priv;
	_cleanup_free_ char *conf = NULL;
	DIR *dir;
	struct dirent *de;
	int fd, r, idx = ctx->fs_index;

	if (access(p->dir, F_OK) < 0 && errno == ENOENT) {
		missing_top(p->dir, p->top, sizeof(p->top));
		r = mkdir_p(p->dir, 0755);
		if (r < 0)
			return drv_fail(ctx, r, "cannot create %s: %s", p->dir, strerror(-r));
		p->created = true;
	}
	p->dirfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0)
		return drv_fail(ctx, -errno, "sync:%s: %m", p->dir);
	dir = opendir_at(p->dirfd);
	if (!dir)
		return drv_fail(ctx, -errno, "sync:%s: %m", p->dir);
	while ((de = readdir(dir)) && (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")))
		;
	closedir(dir);
	if (de)
		return drv_fail(ctx, -EEXIST, "sync:%s is not empty on the destination", p->dir);
	if (asprintf(&conf,
		     "use chroot = yes\nnumeric ids = yes\nmunge symlinks = no\n"
		     "log file = %s/rsyncd-%d.log\n[sync]\npath = %s\nread only = no\n"
		     "uid = 0\ngid = 0\n",
		     ctx->dir, idx, p->dir) < 0)
		return -ENOMEM;
	snprintf(p->conf, sizeof(p->conf), "%s/rsyncd-%d.conf", ctx->dir, idx);
	fd = open(p->conf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	r = fd < 0 ? -errno : write_full(fd, conf, strlen(conf));
	if (fd >= 0)
		close(fd);
	return r < 0 ? drv_fail(ctx, r, "cannot write %s: %s", p->conf, strerror(-r)) : 0;
}

/* Destination: one round, rsync's daemon end confined to DIR. */
static int sync_target_msg(struct driver *d, const struct drv_ctx *ctx, Phaul__Msg *msg)
{
	struct sync_priv *p = d->priv;
	Phaul__FsSyncDone dn = PHAUL__FS_SYNC_DONE__INIT;
	Msg reply = PHAUL__MSG__INIT;
	struct tunnel_stats ts = { 0 };
	char confarg[PATH_MAX + 16];
	int sp[2], status, r;
	pid_t pid;

	if (msg->body_case != PHAUL__MSG__BODY_FS_SYNC)
		return drv_fail(ctx, -EPROTO, "unexpected %s", msg_name(msg->body_case));
	snprintf(confarg, sizeof(confarg), "--config=%s", p->conf);
	char *const argv[] = { "rsync", "--server", "--daemon", confarg, ".", NULL };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		return drv_fail(ctx, -errno, "socketpair: %m");
	p->touched = true;
	r = spawn(argv, sp[1], sp[1], -1, &pid);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		return drv_fail(ctx, r, "cannot start rsync");
	}
	r = tunnel_rsync(ctx, sp[0], pid, &ts, &status);
	if (r < 0)
		return drv_fail(ctx, r, "storage copy into %s broken", p->dir);
	pr_info("%s round %u%s: rsync status %d, %llu bytes in", p->dir, msg->fs_sync->round,
		msg->fs_sync->final ? " (frozen)" : "", status, (unsigned long long)ts.bytes_in);
	dn.status = status < 0 ? 255 : status;
	reply.body_case = PHAUL__MSG__BODY_FS_SYNC_DONE;
	reply.fs_sync_done = &dn;
	r = drv_send(ctx, &reply);
	if (r < 0)
		return drv_fail(ctx, r, "cannot report the copy");
	if (status != 0)
		return drv_fail(ctx, -EIO, "rsync into %s failed (status %d)", p->dir, status);
	return 0;
}

/* Destination, failed: remove whatever the migration put into DIR. */
static int sync_target_abort(struct driver *d, const struct drv_ctx *ctx)
{
	struct sync_priv *p = d->priv;
	int r = 0;

	if (p->dirfd >= 0 && p->touched)
		r = rm_rf_at(p->dirfd);
	if (p->created && r == 0)
		r = rmdir_up(p->dir, p->top);
	if (r < 0)
		pr_err("could not remove everything from %s: %s", p->dir, strerror(-r));
	return r;
}

const struct driver_ops fs_sync_ops = {
	.name = "sync",
	.kind = DRV_FS,
	.priv_size = sizeof(struct sync_priv),
	.init = sync_init,
	.fini = sync_fini,
	.prepare = sync_prepare,
	.hooks = {
		[HOOK_START_MIGRATION] = sync_start,
		[HOOK_STOP_MIGRATION] = sync_stop,
		[HOOK_TARGET_CHECK] = sync_target_check,
		[HOOK_TARGET_ABORT] = sync_target_abort,
	},
	.target_msg = sync_target_msg,
};
