/* SPDX-License-Identifier: MIT */
/*
 * podman_target: the destination side of the Podman driver (podman.h):
 * preflight, `podman container restore --import` and the handover of
 * CRIU to the runtime conmon runs, rollback.
 */
#define LOG_PREFIX "podman: "
#include "drivers/htype/podman.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"

/* podman's restore makes the container before it runs the runtime */
#define RUNTIME_WAIT_MS 60000
#define RESTORE_WAIT_MS 30000
#define BUNDLE_CONFIG_MAX (4u << 20)

int podman_target_recv_info(struct driver *d, const struct drv_ctx *ctx, const Msg *msg)
{
	struct podman_priv *p = d->priv;
	const Phaul__OciContainer *oc =
		msg && msg->body_case == PHAUL__MSG__BODY_OCI ? msg->oci : NULL;
	const Phaul__PodmanInfo *pi = oc ? oc->podman : NULL;
	int r;

	if (!pi)
		return drv_fail(ctx, -EPROTO, "the source did not describe a podman container");
	r = oci_recv_container(ctx, &p->oci, oc);
	if (r < 0)
		return r;
	snprintf(p->name, sizeof(p->name), "%s", pi->name);
	snprintf(p->image_id, sizeof(p->image_id), "%s", pi->image_id);
	p->image = pi->image ? strdup(pi->image) : NULL;
	for (size_t i = 0; i < pi->n_networks && i < MSG_PODMAN_NETS_MAX; i++)
		if (!(p->nets[p->nr_nets++] = strdup(pi->networks[i])))
			return -ENOMEM;
	for (size_t i = 0; i < pi->n_dirs && i < MSG_PODMAN_DIRS_MAX; i++)
		if (!(p->oci.manager_dirs[p->oci.nr_manager_dirs++] = strdup(pi->dirs[i])))
			return -ENOMEM;
	for (size_t i = 0; i < pi->n_macs && i < MSG_PODMAN_NETS_MAX; i++)
		if (!(p->macs[p->nr_macs++] = strdup(pi->macs[i])))
			return -ENOMEM;
	return 0;
}

/* `podman ARGS` exited 0 (1: it did not; < 0: it could not run). */
static int podman_yes(char *const args[])
{
	int r = podman_run(args, NULL);

	return r < 0 ? r : r != 0;
}

int podman_target_check(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	char *ctr[] = { "container", "exists", p->oci.id, NULL };
	char *named[] = { "container", "exists", p->name, NULL };
	char *img[] = { "image", "exists", p->image_id, NULL };
	int r;

	if (!prog_installed("podman"))
		return drv_fail(ctx, -ENOENT, "podman is not installed on the destination");
	r = podman_setup(ctx);
	if (r == 0)
		r = oci_target_check(d, ctx);
	if (r < 0)
		return r;
	if (podman_yes(ctr) == 0)
		return drv_fail(ctx, -EEXIST, "a podman container %.12s exists on the destination",
				p->oci.id);
	if (podman_yes(named) == 0)
		return drv_fail(ctx, -EEXIST,
				"a podman container named %s exists on the destination", p->name);
	if (podman_yes(img) != 0)
		return drv_fail(ctx, -ENOENT,
				"the container's image %s (%.12s) is not on the destination: "
				"pull, load or import it there first",
				p->image ?: "", p->image_id);
	if (p->nr_macs && !prog_installed("nft"))
		pr_warn("nft (nftables) is not installed: the bridges here may learn container %s "
			"too early, and its TCP peers get resets",
			p->name);
	for (size_t i = 0; i < p->nr_nets; i++) {
		char *net[] = { "network", "exists", p->nets[i], NULL };
		if (podman_yes(net) != 0)
			return drv_fail(ctx, -ENOENT, "no podman network %s on the destination",
					p->nets[i]);
	}
	return 0;
}

static int listen_runtime(const struct drv_ctx *ctx, struct podman_priv *p)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), PODMAN_RUN_DIR "/%.64s.sock",
			     p->oci.id) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	unlink(sa.sun_path);
	p->lsk = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (p->lsk < 0 || bind(p->lsk, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(p->lsk, 1) < 0)
		return drv_fail(ctx, -errno, "cannot listen on %s: %m", sa.sun_path);
	return 0;
}

static void unlink_socket(const struct podman_priv *p)
{
	char path[128];

	snprintf(path, sizeof(path), PODMAN_RUN_DIR "/%.64s.sock", p->oci.id);
	unlink(path);
}

/* `podman container restore --import` of the export, in the background. */
static int start_restore(const struct drv_ctx *ctx, struct podman_priv *p)
{
	_cleanup_free_ char *tar = NULL, *log = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&tar, "%s/img/" PODMAN_EXPORT_IMG, ctx->dir) < 0 ||
	    asprintf(&log, "%s/podman-restore.log", ctx->dir) < 0)
		return -ENOMEM;
	char *argv[] = { "env",	    "CONTAINERS_CONF=" PODMAN_RUN_DIR "/" PODMAN_CONF,
			 "podman",  "container",
			 "restore", "--import",
			 tar,	    "--tcp-established",
			 NULL };
	fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return drv_fail(ctx, -errno, "cannot create %s: %m", log);
	r = spawn(argv, -1, fd, -1, &p->restore);
	if (r < 0)
		return drv_fail(ctx, r, "cannot run podman: %s", strerror(-r));
	p->imported = true;
	return 0;
}

/* podman's restore exited: its status (the log says why). */
static int restore_exited(struct podman_priv *p, int status)
{
	p->restore = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Wait up to @ms for the runtime conmon runs to connect; -EIO when
 * podman's restore ended first. */
static int accept_runtime(const struct drv_ctx *ctx, struct podman_priv *p, int ms)
{
	uint64_t end = now_ms() + ms;
	int status;

	while (now_ms() < end) {
		struct pollfd pf = { .fd = p->lsk, .events = POLLIN };
		int n = poll(&pf, 1, 100);

		if (n > 0) {
			p->rsk = accept4(p->lsk, NULL, NULL, SOCK_CLOEXEC);
			if (p->rsk >= 0 && sock_peer_is_root(p->rsk))
				return 0;
			if (p->rsk >= 0)
				close(p->rsk);
			p->rsk = -1;
		}
		if (waitpid(p->restore, &status, WNOHANG) == p->restore)
			return drv_fail(ctx, -EIO,
					"podman container restore failed (status %d) before "
					"it ran the runtime: see %s/podman-restore.log",
					restore_exited(p, status), ctx->dir);
	}
	return drv_fail(ctx, -ETIMEDOUT, "podman's restore did not run the runtime in %d s",
			ms / 1000);
}

/* The runtime's hello: the bundle and the pid file conmon reads. */
static int recv_hello(const struct drv_ctx *ctx, struct podman_priv *p, char **bundle)
{
	char buf[PODMAN_HELLO_MAX + 1];
	ssize_t n = recv(p->rsk, buf, PODMAN_HELLO_MAX, 0);
	size_t a;

	if (n <= 0)
		return drv_fail(ctx, -EPROTO, "the runtime podman ran said nothing");
	buf[n] = '\0';
	a = strlen(buf);
	if ((ssize_t)a + 1 >= n || buf[0] != '/' || buf[a + 1] != '/' ||
	    strlen(buf + a + 1) + a + 2 != (size_t)n)
		return drv_fail(ctx, -EPROTO, "the runtime podman ran sent a malformed hello");
	*bundle = strdup(buf);
	p->pidfile = strdup(buf + a + 1);
	return *bundle && p->pidfile ? 0 : -ENOMEM;
}

/* @path of the directory @root, symlinks resolved inside it, O_PATH. */
static int open_in_root(int root, const char *path)
{
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };

	return (int)syscall(SYS_openat2, root, *path ? path : ".", &how, sizeof(how));
}

/*
 * The mount point @dest (a directory if @dir, else a file) in the rootfs
 * open at @root, with its parents, as runc makes them before it has CRIU
 * restore: podman's new rootfs has the image's files, not the source's
 * mount points. Symlinks stay inside the rootfs; an existing entry stays.
 */
static int make_mountpoint(int root, const char *dest, bool dir)
{
	char path[PATH_MAX];
	size_t n = 0;

	while (*dest == '/')
		dest++;
	for (const char *c = dest; *c;) {
		size_t len = strcspn(c, "/");
		bool last = c[len] == '\0';
		_cleanup_close_ int parent = -1;
		struct stat st;

		if (n + len + 2 > sizeof(path))
			return -ENAMETOOLONG;
		path[n] = '\0';
		parent = open_in_root(root, path);
		if (parent < 0)
			return -errno;
		snprintf(path + n, sizeof(path) - n, "%s%.*s", n ? "/" : "", (int)len, c);
		n = strlen(path);
		if (fstatat(parent, path + n - len, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			int fd = !last || dir ? mkdirat(parent, path + n - len, 0755) :
						openat(parent, path + n - len,
						       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
							       O_CLOEXEC,
						       0644);
			if (fd < 0 && errno != EEXIST)
				return -errno;
			if (fd > 0 && last && !dir)
				close(fd);
		}
		for (c += len; *c == '/';)
			c++;
	}
	return 0;
}

/* Mount points of the bundle's binds that are not on a tmpfs of it
 * (CRIU restores a tmpfs with its files). */
static int make_mountpoints(const struct drv_ctx *ctx, const char *rootfs, json_object *mounts)
{
	_cleanup_close_ int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	size_t nr =
		json_object_is_type(mounts, json_type_array) ? json_object_array_length(mounts) : 0;

	if (root < 0)
		return drv_fail(ctx, -errno, "cannot open podman's rootfs %s: %m", rootfs);
	for (size_t i = 0; i < nr; i++) {
		json_object *m = json_object_array_get_idx(mounts, i), *v;
		const char *dest = json_object_object_get_ex(m, "destination", &v) ?
					   json_object_get_string(v) :
					   NULL;
		const char *type =
			json_object_object_get_ex(m, "type", &v) ? json_object_get_string(v) : "";
		const char *src =
			json_object_object_get_ex(m, "source", &v) ? json_object_get_string(v) : "";
		bool on_tmpfs = false;
		struct stat st;
		int r;

		if (!dest || strcmp(type, "bind"))
			continue;
		for (size_t k = 0; k < nr; k++) {
			json_object *t = json_object_array_get_idx(mounts, k), *d, *ty;
			if (k != i && json_object_object_get_ex(t, "type", &ty) &&
			    !strcmp(json_object_get_string(ty), "tmpfs") &&
			    json_object_object_get_ex(t, "destination", &d) &&
			    driver_path_under(dest, json_object_get_string(d)))
				on_tmpfs = true;
		}
		if (on_tmpfs)
			continue;
		r = make_mountpoint(root, dest, stat(src, &st) == 0 && S_ISDIR(st.st_mode));
		if (r < 0)
			return drv_fail(ctx, r, "cannot make mount point %s in %s: %s", dest,
					rootfs, strerror(-r));
	}
	return 0;
}

/* From the bundle podman made: the rootfs it mounted and the network
 * namespace it made (none: the host's). */
static int read_bundle(const struct drv_ctx *ctx, struct podman_priv *p, const char *bundle)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	json_object *j = NULL, *root, *ns, *v, *mounts = NULL;
	const char *rootfs = NULL, *netns = NULL;
	int r;

	if (asprintf(&path, "%s/config.json", bundle) < 0)
		return -ENOMEM;
	r = read_file(path, BUNDLE_CONFIG_MAX, &text, NULL);
	if (r < 0)
		return drv_fail(ctx, r, "cannot read %s: %s", path, strerror(-r));
	j = json_tokener_parse(text);
	if (json_object_object_get_ex(j, "root", &root) &&
	    json_object_object_get_ex(root, "path", &v))
		rootfs = json_object_get_string(v);
	if (json_object_object_get_ex(j, "linux", &v) &&
	    json_object_object_get_ex(v, "namespaces", &ns) &&
	    json_object_is_type(ns, json_type_array))
		for (size_t i = 0; i < json_object_array_length(ns); i++) {
			json_object *e = json_object_array_get_idx(ns, i), *t, *pa;
			if (json_object_object_get_ex(e, "type", &t) &&
			    !strcmp(json_object_get_string(t), "network") &&
			    json_object_object_get_ex(e, "path", &pa))
				netns = json_object_get_string(pa);
		}
	json_object_object_get_ex(j, "mounts", &mounts);
	r = rootfs && rootfs[0] == '/' ? 0 : -EPROTO;
	if (r == 0 && make_mountpoints(ctx, rootfs, mounts) < 0)
		r = -EIO; /* said */
	else if (r == 0) {
		free(p->oci.st.rootfs);
		p->oci.st.rootfs = strdup(rootfs);
		r = p->oci.st.rootfs ? 0 : -ENOMEM;
	}
	if (r == 0 && netns && p->oci.under_manager) {
		int fd = open(netns, O_RDONLY | O_CLOEXEC);
		r = fd < 0 ? -errno : drv_add_criu_fd(ctx, fd);
		if (r == 0)
			p->oci.netns_fd = fd;
		if (r == 0 && !(p->oci.netns_path = strdup(netns)))
			r = -ENOMEM;
	}
	json_object_put(j);
	if (r < 0)
		return drv_fail(ctx, r, "podman's bundle %s: %s", bundle, strerror(-r));
	return 0;
}

/* The bridges here drop the container's frames (podman.h), or stop. */
static void fence(struct podman_priv *p, bool on)
{
	char script[1024];
	size_t n;

	if (on == p->fenced || !p->nr_macs || !prog_installed("nft"))
		return;
	n = snprintf(script, sizeof(script), "%s table bridge phaul_%.12s\n", on ? "add" : "delete",
		     p->oci.id);
	if (on) {
		n += snprintf(script + n, sizeof(script) - n,
			      "add chain bridge phaul_%.12s pre { type filter hook prerouting "
			      "priority -300; }\n",
			      p->oci.id);
		for (size_t i = 0; i < p->nr_macs && n < sizeof(script); i++)
			n += snprintf(script + n, sizeof(script) - n,
				      "add rule bridge phaul_%.12s pre ether saddr %s drop\n"
				      "add rule bridge phaul_%.12s pre ether daddr %s drop\n",
				      p->oci.id, p->macs[i], p->oci.id, p->macs[i]);
	}
	if (n >= sizeof(script) || podman_nft(0, script) < 0) {
		pr_warn("nft could not %s the frames of container %s", on ? "stop" : "let go",
			p->name);
	} else {
		p->fenced = on;
		pr_info("this host's bridges %s the frames of container %s", on ? "drop" : "pass",
			p->name);
	}
}

int podman_target_restore(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	_cleanup_free_ char *bundle = NULL;
	uint64_t t0 = now_ms();
	int r = listen_runtime(ctx, p);

	fence(p, true);
	if (r == 0)
		r = start_restore(ctx, p);
	if (r == 0)
		r = accept_runtime(ctx, p, RUNTIME_WAIT_MS);
	unlink_socket(p);
	if (p->lsk >= 0)
		close(p->lsk);
	p->lsk = -1;
	if (r == 0)
		r = recv_hello(ctx, p, &bundle);
	if (r == 0)
		r = read_bundle(ctx, p, bundle);
	if (r < 0)
		return r;
	pr_info("podman made container %s in %llu ms; its runtime waits for CRIU", p->name,
		(unsigned long long)(now_ms() - t0));
	return oci_target_restore(d, ctx);
}

/* The fds, the RPC socket's other end first, to the runtime waiting. */
int podman_restore_criu(struct driver *d, const struct drv_ctx *ctx, const int *fds, size_t nr,
			int *sk)
{
	struct podman_priv *p = d->priv;
	int32_t num[PODMAN_FDS_MAX];
	char cbuf[CMSG_SPACE(sizeof(int) * PODMAN_FDS_MAX)] = { 0 };
	struct iovec iov = { .iov_base = num };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf };
	struct cmsghdr *cm;
	int sp[2];

	if (p->rsk < 0 || nr + 1 > PODMAN_FDS_MAX)
		return drv_fail(ctx, -EINVAL, "no runtime waits for CRIU, or too many fds");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return drv_fail(ctx, -errno, "socketpair for CRIU: %m");
	num[0] = -1;
	for (size_t i = 0; i < nr; i++)
		num[i + 1] = fds[i];
	iov.iov_len = sizeof(int32_t) * (nr + 1);
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * (nr + 1));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (nr + 1));
	memcpy(CMSG_DATA(cm), &sp[1], sizeof(int));
	memcpy(CMSG_DATA(cm) + sizeof(int), fds, sizeof(int) * nr);
	if (sendmsg(p->rsk, &mh, MSG_NOSIGNAL) < 0) {
		int r = -errno;
		close(sp[0]);
		close(sp[1]);
		return drv_fail(ctx, r, "cannot hand CRIU's socket to podman's runtime: %s",
				strerror(-r));
	}
	close(sp[1]);
	close(p->rsk);
	p->rsk = -1;
	*sk = sp[0];
	return 0;
}

/* Held: runc's state (the oci driver), and the pid file conmon reads once
 * CRIU exits. */
int podman_target_restored(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	char pid[24];
	_cleanup_close_ int fd = -1;
	int r = oci_target_restored(d, ctx);

	if (r < 0)
		return r;
	snprintf(pid, sizeof(pid), "%d", ctx->tree->root);
	fd = open(p->pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	r = fd < 0 ? -errno : write_full(fd, pid, strlen(pid));
	if (r < 0)
		return drv_fail(ctx, r, "cannot write %s: %s", p->pidfile, strerror(-r));
	return 0;
}

/*
 * Committed: the container runs here next. Its frames pass from now on,
 * before CRIU takes its TCP sockets out of repair mode: the window probe
 * each sends then, and the ARP request for its peer's address that this
 * fresh network namespace sends first, reach the bridges. Lifted at
 * post-resume instead, that ARP request was dropped, the kernel asked
 * again only a second later, and the peers' retransmissions were
 * answered into its queue meanwhile (docs/BENCHMARKS.md).
 */
int podman_target_committed(struct driver *d, const struct drv_ctx *ctx)
{
	fence(d->priv, false);
	return 0;
}

/* podman's restore ends: its status, or -ETIMEDOUT (then killed). */
static int wait_restore(struct podman_priv *p, int ms)
{
	uint64_t end = now_ms() + ms;
	int status;

	while (p->restore > 0) {
		pid_t w = waitpid(p->restore, &status, WNOHANG);
		if (w == p->restore)
			return restore_exited(p, status);
		if (w < 0 && errno != EINTR)
			return -errno;
		if (now_ms() >= end) {
			kill(p->restore, SIGKILL);
			while (waitpid(p->restore, &status, 0) < 0 && errno == EINTR)
				;
			p->restore = 0;
			return -ETIMEDOUT;
		}
		usleep(10000);
	}
	return 0;
}

int podman_target_cleanup(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	int r = wait_restore(p, RESTORE_WAIT_MS);

	fence(p, false);
	oci_target_cleanup(d, ctx);
	if (r != 0) {
		pr_err("podman container restore of %s ended with %d after the commit: see "
		       "%s/podman-restore.log",
		       p->name, r, ctx->dir);
		return r < 0 ? r : -EIO;
	}
	pr_info("podman runs container %s", p->name);
	return 0;
}

int podman_target_abort(struct driver *d, const struct drv_ctx *ctx)
{
	struct podman_priv *p = d->priv;
	char *rm[] = { "rm", "--force", p->oci.id, NULL };
	int r;

	/* a runtime still waiting for CRIU gives up: podman's restore fails */
	if (p->rsk >= 0)
		close(p->rsk);
	p->rsk = -1;
	r = wait_restore(p, RESTORE_WAIT_MS);
	if (r == 0 && p->imported)
		pr_warn("podman's restore of %s succeeded, yet the migration failed", p->name);
	if (p->imported && podman_run(rm, NULL) != 0)
		pr_warn("podman rm %s failed", p->name);
	p->imported = false;
	fence(p, false);
	return oci_target_abort(d, ctx);
}
