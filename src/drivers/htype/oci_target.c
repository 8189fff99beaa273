/* SPDX-License-Identifier: MIT */
/*
 * oci_target: the destination side of the container driver (oci.h):
 * check, restore options, registration with the runtime, rollback.
 */
#define LOG_PREFIX "oci: "
#include "drivers/htype/oci.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"

#define STATE_MAX (4u << 20)

static int dup_str(char **dst, const char *src)
{
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

/*
 * CRIU wants the root to be a mount point: the rootfs is bound in a mount
 * namespace of this session's own, so that nothing else sees the bind
 * and it goes away with the session whatever happens to it (the session
 * directory is removed with rm_rf, which would cross a mount). The
 * images directory is reopened in it: CRIU mounts its cgroup yard there,
 * which the kernel refuses under a mount of another namespace (EINVAL).
 */
static int private_mounts(const struct drv_ctx *ctx)
{
	_cleanup_free_ char *img = NULL;
	_cleanup_close_ int fd = -1;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return drv_fail(ctx, -errno, "cannot make a private mount namespace: %m");
	if (asprintf(&img, "%s/img", ctx->dir) < 0)
		return -ENOMEM;
	fd = open(img, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || dup3(fd, ctx->imgfd, O_CLOEXEC) < 0)
		return drv_fail(ctx, -errno, "cannot reopen %s: %m", img);
	return 0;
}

int oci_recv_container(const struct drv_ctx *ctx, struct oci_priv *p, const Phaul__OciContainer *oc)
{
	int r;

	if (!oc)
		return drv_fail(ctx, -EPROTO, "the source did not describe the container");
	r = oci_runtime_parse(oc->runtime, &p->rt);
	snprintf(p->id, sizeof(p->id), "%s", oc->id);
	if (r == 0)
		r = dup_str(&p->root, oc->runtime_root);
	if (r == 0)
		r = dup_str(&p->st.bundle, oc->bundle);
	if (r == 0)
		r = dup_str(&p->st.rootfs, oc->rootfs);
	p->mnt = calloc(oc->n_mounts + 1, sizeof(*p->mnt));
	if (r == 0 && !p->mnt)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < oc->n_mounts; i++, p->nr_mnt++)
		if (dup_str(&p->mnt[i].dest, oc->mounts[i]->dest) < 0 ||
		    dup_str(&p->mnt[i].source, oc->mounts[i]->source) < 0)
			r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < oc->n_stdio; i++, p->nr_stdio++) {
		struct oci_stdio *s = &p->stdio[i];
		s->fd = oc->stdio[i]->fd;
		s->flags = oc->stdio[i]->has_flags ? oc->stdio[i]->flags : O_RDWR;
		snprintf(s->key, sizeof(s->key), "%s", oc->stdio[i]->key);
		if (oc->stdio[i]->path && dup_str(&s->path, oc->stdio[i]->path) < 0)
			r = -ENOMEM;
	}
	for (size_t i = 0; r == 0 && i < oc->n_veths && i < OCI_VETH_MAX; i++, p->nr_veth++) {
		struct oci_veth *v = &p->veth[i];
		snprintf(v->inner, sizeof(v->inner), "%s", oc->veths[i]->inner);
		snprintf(v->outer, sizeof(v->outer), "%s", oc->veths[i]->outer);
		snprintf(v->bridge, sizeof(v->bridge), "%s", oc->veths[i]->bridge ?: "");
	}
	p->userns = oc->has_userns && oc->userns;
	if (r < 0)
		return drv_fail(ctx, r, "container description: %s", strerror(-r));
	p->have_info = true;
	return 0;
}

int oci_target_recv_info(struct driver *d, const struct drv_ctx *ctx, const Msg *msg)
{
	int r = oci_recv_container(ctx, d->priv,
				   msg && msg->body_case == PHAUL__MSG__BODY_OCI ? msg->oci : NULL);

	return r < 0 ? r : private_mounts(ctx);
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Below a directory of the container's manager: made by its restore. */
static bool managers(const struct oci_priv *p, const char *path)
{
	for (size_t i = 0; i < p->nr_manager_dirs; i++)
		if (driver_path_under(path, p->manager_dirs[i]))
			return true;
	return false;
}

/*
 * What CRIU needs from this host: the rootfs and the binds' sources; before
 * the restore (!@all) not what storage brings, nor what the manager makes.
 */
static int check_paths(const struct drv_ctx *ctx, struct oci_priv *p, bool all)
{
	if (!all && p->under_manager)
		; /* podman mounts a rootfs of its own */
	else if (!is_dir(p->st.rootfs) && (all || !drv_storage_brings(ctx, p->st.rootfs)))
		return drv_fail(ctx, -ENOENT, "the container's rootfs %s is not on the destination",
				p->st.rootfs);
	for (size_t i = 0; i < p->nr_mnt; i++)
		if (access(p->mnt[i].source, F_OK) < 0 && !oci_in_cgroupfs(p->mnt[i].source) &&
		    (all ||
		     !(drv_storage_brings(ctx, p->mnt[i].source) || managers(p, p->mnt[i].source))))
			return drv_fail(ctx, -ENOENT,
					"%s, mounted at %s in the container, is not on "
					"the destination",
					p->mnt[i].source, p->mnt[i].dest);
	return 0;
}

/* A lazy restore in a user namespace needs userfaultfd there. */
static int check_userns(const struct drv_ctx *ctx, struct oci_priv *p)
{
	_cleanup_free_ char *v = NULL;

	if (!p->userns || !mode_lazy_dump(ctx->mode))
		return 0;
	if (read_file("/proc/sys/vm/unprivileged_userfaultfd", 64, &v, NULL) == 0 && v[0] == '1')
		return 0;
	return drv_fail(ctx, -EPERM,
			"container %s has a user namespace of its own: %s mode "
			"restores its memory with userfaultfd from inside it, which this kernel "
			"allows only with vm.unprivileged_userfaultfd=1 (or use --mode stop)",
			p->id, mode_name(ctx->mode));
}

int oci_target_restore(struct driver *d, const struct drv_ctx *ctx)
{
	struct oci_priv *p = d->priv;
	int r = check_paths(ctx, p, true);

	if (r == 0)
		p->veths_made = true;
	return r;
}

int oci_target_check(struct driver *d, const struct drv_ctx *ctx)
{
	struct oci_priv *p = d->priv;
	_cleanup_free_ char *dir = oci_path(p, NULL);
	int r;

	if (!dir)
		return -ENOMEM;
	if (!prog_installed(oci_runtime_name(p->rt)))
		return drv_fail(ctx, -ENOENT, "%s is not installed on the destination",
				oci_runtime_name(p->rt));
	if (access(dir, F_OK) == 0)
		return drv_fail(ctx, -EEXIST, "a container %s exists on the destination (%s)",
				p->id, dir);
	r = check_paths(ctx, p, false);
	if (r == 0)
		r = check_userns(ctx, p);
	if (r < 0)
		return r;
	for (size_t i = 0; i < p->nr_veth; i++) {
		if (if_nametoindex(p->veth[i].outer))
			return drv_fail(ctx, -EEXIST,
					"interface %s (the container's %s) exists on the "
					"destination",
					p->veth[i].outer, p->veth[i].inner);
		if (p->veth[i].bridge[0] && !if_nametoindex(p->veth[i].bridge))
			return drv_fail(ctx, -ENOENT,
					"no bridge %s on the destination for the "
					"container's %s",
					p->veth[i].bridge, p->veth[i].inner);
	}
	for (size_t i = 0; i < p->nr_stdio; i++)
		if (p->stdio[i].path && access(p->stdio[i].path, F_OK) < 0)
			return drv_fail(ctx, -ENOENT,
					"the container's fd %d, %s, is not on the "
					"destination",
					p->stdio[i].fd, p->stdio[i].path);
	return 0;
}

static int mount_root(const struct drv_ctx *ctx, struct oci_priv *p)
{
	if (asprintf(&p->rootdir, "%s/oci-root", ctx->dir) < 0)
		return -ENOMEM;
	if (mkdir(p->rootdir, 0700) < 0 ||
	    mount(p->st.rootfs, p->rootdir, NULL, MS_BIND | MS_REC, NULL) < 0)
		return drv_fail(ctx, -errno, "cannot bind %s for CRIU: %m", p->st.rootfs);
	p->mounted = true;
	return 0;
}

static void umount_root(struct oci_priv *p)
{
	if (p->mounted && umount2(p->rootdir, MNT_DETACH) < 0)
		pr_perror("cannot unmount %s", p->rootdir);
	if (p->mounted)
		rmdir(p->rootdir);
	p->mounted = false;
}

static void add_inherit(struct oci_priv *p, const char *key, int fd)
{
	InheritFd *in = &p->inh[p->nr_inh];

	inherit_fd__init(in);
	in->key = (char *)key;
	in->fd = fd;
	p->inhp[p->nr_inh++] = in;
}

/* One fd per distinct key (stdout and stderr often share a file). */
static int open_stdio(const struct drv_ctx *ctx, struct oci_priv *p, const struct oci_stdio *s)
{
	const char *path = s->path ?: "/dev/null"; /* a pipe has no reader here */
	int fd, r, flags = s->path ? (int)s->flags : O_RDWR;

	for (size_t k = 0; k < p->nr_inh; k++)
		if (!strcmp(p->inh[k].key, s->key))
			return 0;
	if (!s->path && p->under_manager) {
		fd = s->fd; /* the manager's pipe, that CRIU's own fd */
		goto add;
	}
	fd = open(path, flags | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return drv_fail(ctx, -errno, "cannot open %s for the container's fd %d: %m", path,
				s->fd);
	r = drv_add_criu_fd(ctx, fd);
	if (r < 0)
		return r;
add:
	add_inherit(p, s->key, fd);
	return 0;
}

static int build_opts(const struct drv_ctx *ctx, struct oci_priv *p, CriuOpts *o)
{
	int r = 0;

	p->ext = calloc(p->nr_mnt + 1, sizeof(*p->ext));
	p->extp = calloc(p->nr_mnt + 1, sizeof(*p->extp));
	p->inh = calloc(OCI_EXT_FILES_MAX + 1, sizeof(*p->inh));
	p->inhp = calloc(OCI_EXT_FILES_MAX + 1, sizeof(*p->inhp));
	if (!p->ext || !p->extp || !p->inh || !p->inhp)
		return -ENOMEM;
	for (size_t i = 0; i < p->nr_mnt; i++) {
		ext_mount_map__init(&p->ext[i]);
		p->ext[i].key = p->mnt[i].dest;
		p->ext[i].val = p->mnt[i].source;
		p->extp[i] = &p->ext[i];
	}
	o->ext_mnt = p->extp;
	o->n_ext_mnt = p->nr_mnt;
	for (size_t i = 0; r == 0 && i < p->nr_stdio; i++)
		r = open_stdio(ctx, p, &p->stdio[i]);
	if (p->netns_fd > 0)
		add_inherit(p, OCI_NETNS_KEY, p->netns_fd);
	o->inherit_fd = p->inhp;
	o->n_inherit_fd = p->nr_inh;
	p->exts = calloc(p->nr_veth + 1, sizeof(char *));
	if (!p->exts)
		return -ENOMEM;
	for (size_t i = 0; i < p->nr_veth; i++) {
		struct oci_veth *v = &p->veth[i];
		snprintf(v->ext, sizeof(v->ext), "veth[%s]:%s%s%s", v->inner, v->outer,
			 v->bridge[0] ? "@" : "", v->bridge);
		p->exts[i] = v->ext;
	}
	o->external = p->exts;
	o->n_external = p->nr_veth;
	return r;
}

int oci_restore_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o)
{
	struct oci_priv *p = d->priv;
	int r = p->under_manager ? 0 : mount_root(ctx, p);

	if (r == 0)
		r = build_opts(ctx, p, o);
	if (r < 0)
		return r;
	/* under the manager CRIU runs in the host's mount namespace, where
	 * the manager mounted the rootfs; the tree is the manager's child */
	o->root = p->under_manager ? p->st.rootfs : p->rootdir;
	o->has_rst_sibling = p->under_manager;
	o->rst_sibling = p->under_manager;
	o->has_manage_cgroups = true;
	o->manage_cgroups = true;
	o->has_evasive_devices = true;
	o->evasive_devices = true;
	o->has_orphan_pts_master = true;
	o->orphan_pts_master = true;
	o->has_network_lock = true;
	o->network_lock = CRIU_NETWORK_LOCK_METHOD__NFTABLES;
	return 0;
}

/* Write @name under the container's state directory, atomically. */
static int write_state_file(struct oci_priv *p, const char *name, const char *text)
{
	_cleanup_free_ char *path = oci_path(p, name);
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (!path || asprintf(&tmp, "%s.phaul-tmp", path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = write_full(fd, text, strlen(text));
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

static int read_image(const struct drv_ctx *ctx, const char *name, char **ret)
{
	_cleanup_free_ char *path = NULL;

	if (asprintf(&path, "%s/img/%s", ctx->dir, name) < 0)
		return -ENOMEM;
	return read_file(path, STATE_MAX, ret, NULL);
}

/* The runtime's state for the restored init, under the same ID. */
static int register_container(const struct drv_ctx *ctx, struct oci_priv *p, uint64_t start)
{
	_cleanup_free_ char *dir = oci_path(p, NULL);
	_cleanup_free_ char *old = NULL, *state = NULL, *config = NULL;
	int r = dir ? read_image(ctx, OCI_STATE_IMG, &old) : -ENOMEM;

	if (r == 0)
		r = oci_state_rewrite(p->rt, old, ctx->tree->root, start,
				      p->under_manager ?
					      &(struct oci_state_change){ .rootfs = p->st.rootfs,
									  .netns = p->netns_path } :
					      NULL,
				      &state);
	if (r == 0 && p->rt == OCI_CRUN)
		r = read_image(ctx, OCI_CONFIG_IMG, &config);
	if (r < 0)
		return drv_fail(ctx, r, "the runtime's state of container %s: %s", p->id,
				strerror(-r));
	r = mkdir_p(p->root, 0700);
	if (r == 0 && mkdir(dir, 0711) < 0)
		r = -errno;
	if (r < 0)
		return drv_fail(ctx, r, "cannot create %s: %s", dir, strerror(-r));
	p->registered = true;
	r = write_state_file(p, oci_state_file(p->rt), state);
	if (r == 0 && config)
		r = write_state_file(p, "config.json", config);
	if (r < 0)
		return drv_fail(ctx, r, "cannot write the state of container %s: %s", p->id,
				strerror(-r));
	return 0;
}

int oci_target_restored(struct driver *d, const struct drv_ctx *ctx)
{
	struct oci_priv *p = d->priv;
	uint64_t start;
	int r;

	/* CRIU is done with the root: the container has its own mounts now */
	umount_root(p);
	r = proc_start_time(ctx->tree->root, &start);
	if (r < 0)
		return drv_fail(ctx, r, "restored init %d of container %s: %s", ctx->tree->root,
				p->id, strerror(-r));
	r = register_container(ctx, p, start);
	if (r == 0)
		pr_info("container %s registered with %s: init %d", p->id, oci_runtime_name(p->rt),
			ctx->tree->root);
	return r;
}

int oci_target_resumed(struct driver *d, const struct drv_ctx *ctx)
{
	return oci_announce(ctx, d->priv);
}

int oci_target_cleanup(struct driver *d, const struct drv_ctx *ctx)
{
	umount_root(d->priv);
	return 0;
}

int oci_target_abort(struct driver *d, const struct drv_ctx *ctx)
{
	struct oci_priv *p = d->priv;
	_cleanup_free_ char *dir = NULL;
	int r = 0;

	umount_root(p);
	/* at once, not when the dead tree's namespace goes: until then the
	 * bridge may send the container's clients here, to no socket */
	for (size_t i = 0; p->veths_made && i < p->nr_veth; i++) {
		int e = oci_link_delete(p->veth[i].outer);
		if (e < 0)
			pr_warn("cannot delete %s: %s", p->veth[i].outer, strerror(-e));
	}
	p->veths_made = false;
	if (p->registered) {
		dir = oci_path(p, NULL);
		r = dir ? rm_rf(dir) : -ENOMEM;
		if (r < 0)
			pr_err("cannot remove %s: %s", dir ?: p->id, strerror(-r));
		p->registered = false;
	}
	return r;
}
