/* SPDX-License-Identifier: MIT */
/*
 * oci: the source side of the container driver (contract in oci.h).
 */
#define LOG_PREFIX "oci: "
#include "drivers/htype/oci.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"

#define STATE_MAX (4u << 20)

char *oci_path(const struct oci_priv *p, const char *name)
{
	char *s;

	if (asprintf(&s, "%s/%s%s%s", p->root, p->id, name ? "/" : "", name ?: "") < 0)
		return NULL;
	return s;
}

bool oci_own_ns(pid_t pid, const char *ns)
{
	char path[64], self[64];
	struct stat a, b;

	snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns);
	snprintf(self, sizeof(self), "/proc/self/ns/%s", ns);
	return stat(path, &a) == 0 && stat(self, &b) == 0 &&
	       (a.st_ino != b.st_ino || a.st_dev != b.st_dev);
}

static int oci_init(struct driver *d, const char *arg)
{
	struct oci_priv *p = d->priv;

	if (!*arg)
		return 0; /* destination: the container is described by the peer */
	if (!name_is_safe(arg)) {
		pr_err("'%s' is not a container ID", arg);
		return -EINVAL;
	}
	snprintf(p->id, sizeof(p->id), "%s", arg);
	return 0;
}

void oci_fini(struct driver *d)
{
	struct oci_priv *p = d->priv;

	oci_state_free(&p->st);
	oci_mounts_free(p->mnt, p->nr_mnt);
	for (size_t i = 0; i < p->nr_stdio; i++)
		free(p->stdio[i].path);
	free(p->state_json);
	free(p->mountinfo);
	free(p->root);
	free(p->rootdir);
	free(p->ext);
	free(p->extp);
	free(p->exts);
	free(p->inh);
	free(p->inhp);
	for (size_t i = 0; i < p->nr_manager_dirs; i++)
		free(p->manager_dirs[i]);
	free(p->netns_path);
}

/* The init named by the state must be the process running now. */
static int check_init(const struct drv_ctx *ctx, struct oci_priv *p)
{
	uint64_t start;

	if (proc_start_time(p->st.pid, &start) < 0 || start != p->st.start)
		return drv_fail(ctx, -ESRCH, "container %s is not running (its init %d is gone)",
				p->id, p->st.pid);
	return 0;
}

static int read_state(const struct drv_ctx *ctx, struct oci_priv *p)
{
	_cleanup_free_ char *file = oci_path(p, oci_state_file(p->rt));
	int r;

	if (!file)
		return -ENOMEM;
	r = read_file(file, STATE_MAX, &p->state_json, NULL);
	if (r == -ENOENT)
		return drv_fail(ctx, r, "no container %s in %s's state (%s)", p->id,
				oci_runtime_name(p->rt), file);
	if (r < 0)
		return drv_fail(ctx, r, "cannot read %s: %s", file, strerror(-r));
	r = oci_state_parse(p->rt, p->state_json, &p->st);
	if (r < 0)
		return drv_fail(ctx, r, "%s: not a %s state file", file, oci_runtime_name(p->rt));
	return check_init(ctx, p);
}

static int read_mounts(const struct drv_ctx *ctx, struct oci_priv *p)
{
	_cleanup_free_ char *host = NULL;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", p->st.pid);
	r = read_file(path, STATE_MAX, &p->mountinfo, NULL);
	if (r == 0)
		r = read_file("/proc/self/mountinfo", STATE_MAX, &host, NULL);
	if (r == 0)
		r = oci_ext_mounts(p->mountinfo, host, &p->mnt, &p->nr_mnt);
	if (r == 0 && p->nr_mnt > MSG_OCI_MOUNTS_MAX)
		r = -E2BIG;
	if (r < 0)
		return drv_fail(ctx, r, "mounts of container %s: %s", p->id, strerror(-r));
	for (size_t i = 0; i < p->nr_mnt; i++)
		pr_debug("external mount %s <- %s", p->mnt[i].dest, p->mnt[i].source);
	return 0;
}

/* fdinfo's "mnt_id:" and "flags:" of the init's fd @fd. */
static int fd_info(pid_t pid, int fd, unsigned int *mnt, unsigned int *flags)
{
	char path[64];
	_cleanup_free_ char *buf = NULL;
	const char *a, *b;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	if (read_file(path, 65536, &buf, NULL) < 0)
		return -ENOENT;
	a = strstr(buf, "flags:");
	b = strstr(buf, "mnt_id:");
	if (!a || !b || sscanf(a, "flags: %o", flags) != 1 || sscanf(b, "mnt_id: %u", mnt) != 1)
		return -EINVAL;
	return 0;
}

static struct oci_stdio *find_key(struct oci_priv *p, const char *key)
{
	for (size_t i = 0; i < p->nr_stdio; i++)
		if (!strcmp(p->stdio[i].key, key))
			return &p->stdio[i];
	return NULL;
}

/*
 * One fd of a task: a file outside the container's mounts (its stdio,
 * usually: /dev/null, a log) is external to CRIU and reopened on the
 * destination by path; a pipe on the init's 0-2 leads outside (nothing
 * reads it there: it ends in /dev/null). Everything else is CRIU's.
 */
static int scan_fd(const struct drv_ctx *ctx, struct oci_priv *p, pid_t pid, int fd)
{
	struct oci_stdio *s = &p->stdio[p->nr_stdio];
	char path[64], link[PATH_MAX], key[65];
	unsigned int mnt, flags;
	struct stat st;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0; /* closed meanwhile */
	link[n] = '\0';
	if (!strncmp(link, "pipe:[", 6) && pid == p->st.pid && fd <= 2) {
		snprintf(key, sizeof(key), "%.64s", link);
	} else if (link[0] == '/' && stat(path, &st) == 0 && fd_info(pid, fd, &mnt, &flags) == 0 &&
		   !mountinfo_has_id(p->mountinfo, mnt)) {
		if (strstr(link, " (deleted)"))
			return drv_fail(ctx, -ENOTSUP,
					"fd %d of task %d of container %s is a deleted "
					"file outside the container: %s",
					fd, pid, p->id, link);
		snprintf(key, sizeof(key), "file[%x:%llx]", mnt, (unsigned long long)st.st_ino);
	} else {
		return 0;
	}
	if (find_key(p, key))
		return 0;
	if (p->nr_stdio >= OCI_EXT_FILES_MAX)
		return drv_fail(ctx, -E2BIG, "container %s holds more than %d files from outside",
				p->id, OCI_EXT_FILES_MAX);
	snprintf(s->key, sizeof(s->key), "%s", key);
	s->fd = fd;
	if (key[0] == 'f') {
		s->path = strdup(link);
		s->flags = flags & (O_ACCMODE | O_APPEND);
		if (!s->path)
			return -ENOMEM;
	}
	p->nr_stdio++;
	pr_debug("external file %s: fd %d of %d, %s", s->key, fd, pid, s->path ?: "pipe");
	return 0;
}

static int scan_fds(const struct drv_ctx *ctx, const struct drv_tree *tree, struct oci_priv *p)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < tree->nr_procs; i++) {
		char dir[64];
		DIR *d;
		struct dirent *de;

		snprintf(dir, sizeof(dir), "/proc/%d/fd", tree->pids[i]);
		d = opendir(dir);
		if (!d)
			continue; /* exited meanwhile */
		while (r == 0 && (de = readdir(d)))
			if (de->d_name[0] != '.')
				r = scan_fd(ctx, p, tree->pids[i], atoi(de->d_name));
		closedir(d);
	}
	return r;
}

/* The network namespace is the manager's: CRIU's external net[INO]:KEY. */
static int netns_external(const struct drv_ctx *ctx, struct oci_priv *p)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/ns/net", p->st.pid);
	if (stat(path, &st) < 0)
		return drv_fail(ctx, -errno, "network namespace of container %s: %m", p->id);
	snprintf(p->netns_key, sizeof(p->netns_key), "net[%llu]:" OCI_NETNS_KEY,
		 (unsigned long long)st.st_ino);
	return 0;
}

int oci_prepare_container(const struct drv_ctx *ctx, struct oci_priv *p, struct drv_tree *tree)
{
	int r = read_state(ctx, p);

	if (r == 0)
		r = read_mounts(ctx, p);
	if (r == 0)
		r = htype_container_tree(ctx, tree, p->st.pid, p->id);
	if (r == 0)
		r = scan_fds(ctx, tree, p);
	if (r == 0 && p->under_manager && oci_own_ns(p->st.pid, "net"))
		r = netns_external(ctx, p);
	else if (r == 0 && !p->under_manager)
		r = oci_read_veths(ctx, p);
	if (r < 0)
		return r;
	p->userns = oci_own_ns(p->st.pid, "user");
	pr_info("container %s (%s): init %d, %zu processes, %zu external mounts, rootfs %s", p->id,
		oci_runtime_name(p->rt), p->st.pid, tree->nr_procs, p->nr_mnt, p->st.rootfs);
	return 0;
}

static int oci_prepare(struct driver *d, const struct drv_ctx *ctx, struct drv_tree *tree)
{
	const struct drv_opts *o = ctx->opts;
	struct oci_priv *p = d->priv;
	int r = oci_runtime_parse(o->oci_runtime ?: "runc", &p->rt);

	if (r < 0)
		return drv_fail(ctx, r, "runtime '%s' is not supported: runc or crun",
				o->oci_runtime);
	p->root = strdup(o->oci_root ?: p->rt == OCI_CRUN ? "/run/crun" : "/run/runc");
	if (!p->root)
		return -ENOMEM;
	return oci_prepare_container(ctx, p, tree);
}

int oci_send_container(const struct drv_ctx *ctx, struct oci_priv *p, Phaul__PodmanInfo *podman)
{
	Phaul__OciContainer oc = PHAUL__OCI_CONTAINER__INIT;
	Phaul__OciMount mv[MSG_OCI_MOUNTS_MAX], *mp[MSG_OCI_MOUNTS_MAX];
	Phaul__OciStdio sv[OCI_EXT_FILES_MAX], *sp[OCI_EXT_FILES_MAX];
	Phaul__OciVeth vv[OCI_VETH_MAX], *vp[OCI_VETH_MAX];
	Msg msg = PHAUL__MSG__INIT;
	int r;

	oc.id = p->id;
	oc.runtime = (char *)oci_runtime_name(p->rt);
	oc.runtime_root = p->root;
	oc.bundle = p->st.bundle;
	oc.rootfs = p->st.rootfs;
	for (size_t i = 0; i < p->nr_mnt; i++) {
		phaul__oci_mount__init(&mv[i]);
		mv[i].dest = p->mnt[i].dest;
		mv[i].source = p->mnt[i].source;
		mp[i] = &mv[i];
	}
	oc.mounts = mp;
	oc.n_mounts = p->nr_mnt;
	for (size_t i = 0; i < p->nr_stdio; i++) {
		phaul__oci_stdio__init(&sv[i]);
		sv[i].fd = p->stdio[i].fd;
		sv[i].key = p->stdio[i].key;
		sv[i].path = p->stdio[i].path;
		sv[i].has_flags = true;
		sv[i].flags = p->stdio[i].flags;
		sp[i] = &sv[i];
	}
	oc.stdio = sp;
	oc.n_stdio = p->nr_stdio;
	for (size_t i = 0; i < p->nr_veth; i++) {
		phaul__oci_veth__init(&vv[i]);
		vv[i].inner = p->veth[i].inner;
		vv[i].outer = p->veth[i].outer;
		vv[i].bridge = p->veth[i].bridge[0] ? p->veth[i].bridge : NULL;
		vp[i] = &vv[i];
	}
	oc.veths = vp;
	oc.n_veths = p->nr_veth;
	oc.has_userns = true;
	oc.userns = p->userns;
	oc.podman = podman;
	msg.body_case = PHAUL__MSG__BODY_OCI;
	msg.oci = &oc;
	r = drv_send(ctx, &msg);
	if (r < 0)
		return drv_fail(ctx, r, "cannot describe container %s: %s", p->id, strerror(-r));
	return 0;
}

static int oci_send_info(struct driver *d, const struct drv_ctx *ctx)
{
	return oci_send_container(ctx, d->priv, NULL);
}

int oci_dump_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o)
{
	struct oci_priv *p = d->priv;
	size_t n = 0;

	o->has_pid = true;
	o->pid = p->st.pid;
	o->root = p->st.rootfs;
	o->has_manage_cgroups = true;
	o->manage_cgroups = true;
	o->has_orphan_pts_master = true;
	o->orphan_pts_master = true;
	o->has_network_lock = true;
	o->network_lock = CRIU_NETWORK_LOCK_METHOD__NFTABLES;
	free(p->extp);
	free(p->ext);
	p->ext = calloc(p->nr_mnt + 1, sizeof(*p->ext));
	p->extp = calloc(p->nr_mnt + 1, sizeof(*p->extp));
	free(p->exts);
	p->exts = calloc(OCI_EXT_FILES_MAX + 1, sizeof(char *));
	if (!p->ext || !p->extp || !p->exts)
		return -ENOMEM;
	for (size_t i = 0; i < p->nr_mnt; i++) {
		ext_mount_map__init(&p->ext[i]);
		p->ext[i].key = p->mnt[i].dest;
		p->ext[i].val = p->mnt[i].dest;
		p->extp[i] = &p->ext[i];
	}
	o->ext_mnt = p->extp;
	o->n_ext_mnt = p->nr_mnt;
	for (size_t i = 0; i < p->nr_stdio; i++)
		if (!strncmp(p->stdio[i].key, "file[", 5))
			p->exts[n++] = p->stdio[i].key;
	if (p->netns_key[0])
		p->exts[n++] = p->netns_key;
	o->external = p->exts;
	o->n_external = n;
	return 0;
}

/* The runtime's state goes with the images (crun's config too). */
static int copy_to_images(const struct drv_ctx *ctx, const char *src, const char *name)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_close_ int fd = -1;
	size_t len;
	int r = read_file(src, STATE_MAX, &buf, &len);

	if (r == 0) {
		fd = openat(ctx->imgfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		r = fd < 0 ? -errno : write_full(fd, buf, len);
	}
	if (r < 0)
		return drv_fail(ctx, r, "cannot copy %s to the images: %s", src, strerror(-r));
	return 0;
}

int oci_frozen(struct driver *d, const struct drv_ctx *ctx)
{
	struct oci_priv *p = d->priv;
	_cleanup_free_ char *state = oci_path(p, oci_state_file(p->rt));
	_cleanup_free_ char *config = oci_path(p, "config.json");
	int r;

	if (!state || !config)
		return -ENOMEM;
	r = copy_to_images(ctx, state, OCI_STATE_IMG);
	if (r == 0 && p->rt == OCI_CRUN)
		r = copy_to_images(ctx, config, OCI_CONFIG_IMG);
	return r;
}

/* Committed: CRIU killed the container here; the runtime forgets it. */
static int oci_migration_complete(struct driver *d, const struct drv_ctx *ctx)
{
	struct oci_priv *p = d->priv;
	_cleanup_free_ char *dir = oci_path(p, NULL);
	int r, e;

	if (proc_alive(p->st.pid))
		pr_warn("init %d of container %s still runs on the source", p->st.pid, p->id);
	r = dir ? rm_rf(dir) : -ENOMEM;
	if (r < 0)
		pr_err("cannot remove %s: %s", dir ?: p->id, strerror(-r));
	e = oci_remove_cgroups(p);
	return r ?: e;
}

const struct driver_ops htype_oci_ops = {
	.name = "oci",
	.kind = DRV_HTYPE,
	.priv_size = sizeof(struct oci_priv),
	.init = oci_init,
	.fini = oci_fini,
	.prepare = oci_prepare,
	.hooks = {
		[HOOK_FROZEN] = oci_frozen,
		[HOOK_MIGRATION_COMPLETE] = oci_migration_complete,
		[HOOK_TARGET_CHECK] = oci_target_check,
		[HOOK_TARGET_RESTORE] = oci_target_restore,
		[HOOK_TARGET_RESTORED] = oci_target_restored,
		[HOOK_TARGET_RESUMED] = oci_target_resumed,
		[HOOK_TARGET_CLEANUP] = oci_target_cleanup,
		[HOOK_TARGET_ABORT] = oci_target_abort,
	},
	.send_info = oci_send_info,
	.recv_info = oci_target_recv_info,
	.dump_opts = oci_dump_opts,
	.restore_opts = oci_restore_opts,
};
