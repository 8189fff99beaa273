/* SPDX-License-Identifier: MIT */
/*
 * oci: the workload is an OCI container run by runc or crun
 * (`phaul migrate --oci ID [--runtime runc|crun] [--runtime-root DIR]`).
 * Private to oci.c (source side) and oci_target.c (destination side).
 *
 * The source reads the runtime's state (RUNTIME_ROOT/ID/state.json for
 * runc, .../status for crun) and the container's mounts, and drives CRIU
 * itself (so that live pre-copy works): the container's init is the root
 * of the tree, its rootfs CRIU's root, binds of host paths external
 * mounts, its stdio external files. Before the Preflight it sends an
 * OciContainer message; with the images goes the state file
 * (oci-state.json; crun also oci-config.json).
 *
 * The destination restores with CRIU itself, not with `runc restore`:
 * runc answers CRIU's post-restore notification on its own (it writes
 * its state there and lets the tree run), so it could not hold the
 * restored container until phaul's commit, nor take phaul's lazy restore
 * options. Instead, at post-restore (the tree held), the driver writes
 * the runtime's state file for the restored init (PID, start time,
 * namespace paths) under the same ID: from then on `runc list/state/
 * kill/exec/delete` (or crun's) see it. A rollback removes that state;
 * after the commit the source's state directory and the container's
 * cgroup directories (those its state names) are removed, as `runc
 * delete` would; the veths went with the network namespace. After a
 * failure the source keeps everything.
 *
 * Once the restored tree runs (post-resume), a container with a network
 * namespace of its own is announced by gratuitous ARP (ocigarp.c).
 *
 * A container in a user namespace of its own is refused in the modes
 * that restore lazily (live, hybrid, lazy) unless the destination's
 * kernel lets it open a userfaultfd (vm.unprivileged_userfaultfd=1):
 * CRIU's restored tasks open it from inside that namespace.
 *
 * A rootfs or bind source below a storage driver's directory (sync:DIR)
 * may be missing at the preflight: it is checked again at target_restore,
 * once the storage is through.
 *
 * Bind mounts of cgroup directories (runc's cgroup v1 mounts) need not
 * exist on the destination before the restore: CRIU makes the cgroups
 * before it mounts anything.
 */
#ifndef PHAUL_OCI_H
#define PHAUL_OCI_H

#include <stdbool.h>

#include "drivers/htype/htype.h"
#include "drivers/htype/ocistate.h"

#define OCI_STATE_IMG "oci-state.json"
#define OCI_CONFIG_IMG "oci-config.json"
#define OCI_EXT_FILES_MAX 16 /* MSG_OCI_FILES_MAX */

struct oci_stdio {
	int fd;
	char key[65];
	char *path; /* NULL: not a file (a pipe) */
	unsigned int flags;
};

#define OCI_VETH_MAX 8 /* MSG_OCI_VETHS_MAX */

/* A veth of the container and its outer end here. */
struct oci_veth {
	char inner[16];
	char outer[16];
	char bridge[16]; /* "" when not on a bridge */
	char ext[64];	 /* CRIU's external veth[IN]:OUT[@BR] */
};

struct oci_priv {
	enum oci_runtime rt;
	char id[129];
	char *root;	     /* the runtime's state root */
	struct oci_state st; /* source: what its state says; dst: paths */
	char *state_json;    /* source: the state file as read */
	struct oci_mount *mnt;
	size_t nr_mnt;
	char *mountinfo;			   /* source: the container's */
	struct oci_stdio stdio[OCI_EXT_FILES_MAX]; /* files from outside */
	size_t nr_stdio;
	struct oci_veth veth[OCI_VETH_MAX];
	size_t nr_veth;
	bool userns; /* in a user namespace of its own */
	/*
	 * Podman's container (podman.h): its network namespace is podman's,
	 * external to CRIU (not dumped; the restore joins the one podman's
	 * restore made), and the restore runs under podman's runtime call:
	 * in the host's mount namespace, on the rootfs podman mounted, the
	 * init's stdio pipes those podman gave that CRIU as its own fd 0-2.
	 */
	bool under_manager;
	char netns_key[64]; /* source: CRIU's external net[INO]:KEY */
	int netns_fd;	    /* destination: podman's, CRIU's (drv_add_criu_fd) once > 0 */
	char *netns_path;   /* destination: its path, or NULL */
	char *manager_dirs[MSG_PODMAN_DIRS_MAX]; /* binds from below: the manager's */
	size_t nr_manager_dirs;
	/* destination */
	bool have_info;
	char *rootdir; /* the rootfs bound here for CRIU */
	bool mounted;
	bool registered;
	bool veths_made;  /* the restore began: the outer veth ends are CRIU's */
	ExtMountMap *ext; /* CRIU options built from the above */
	ExtMountMap **extp;
	char **exts; /* source: CRIU's external file keys */
	InheritFd *inh;
	InheritFd **inhp;
	size_t nr_inh;
};

/* CRIU's key of an external network namespace (runc's too). */
#define OCI_NETNS_KEY "extRootNetNS"

/* Source: the container named by p->rt, p->root and p->id: its tree in
 * @tree, its mounts, files from outside and veths in @p. */
int oci_prepare_container(const struct drv_ctx *ctx, struct oci_priv *p, struct drv_tree *tree);
/* Source: the OciContainer message (with @podman when not NULL). */
int oci_send_container(const struct drv_ctx *ctx, struct oci_priv *p, Phaul__PodmanInfo *podman);
int oci_dump_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o);
int oci_frozen(struct driver *d, const struct drv_ctx *ctx);
void oci_fini(struct driver *d);
/* Destination: @oc into @p. */
int oci_recv_container(const struct drv_ctx *ctx, struct oci_priv *p,
		       const Phaul__OciContainer *oc);

/* Whether @pid's namespace @ns ("net", "user") is not ours. */
bool oci_own_ns(pid_t pid, const char *ns);

/* The container's veths (none when it shares our network namespace). */
int oci_read_veths(const struct drv_ctx *ctx, struct oci_priv *p);
/* Delete our interface @name (a veth: both ends go); 0 if there is none. */
int oci_link_delete(const char *name);

/* Whether @path, or its nearest existing parent, is on a cgroup file system. */
bool oci_in_cgroupfs(const char *path);
/* rmdir the container's cgroups (p->st.cgroups) and their children; 0 if
 * none is left, else the first error, logged. */
int oci_remove_cgroups(const struct oci_priv *p);
/* Gratuitous ARP for each IPv4 address in the restored container's
 * network namespace (none if it has no veth), sent by a detached process;
 * -ENOENT, logged, when arping is missing. */
int oci_announce(const struct drv_ctx *ctx, struct oci_priv *p);

/* RUNTIME_ROOT/ID[/NAME] */
char *oci_path(const struct oci_priv *p, const char *name);

int oci_target_recv_info(struct driver *d, const struct drv_ctx *ctx, const Msg *msg);
int oci_target_check(struct driver *d, const struct drv_ctx *ctx);
int oci_target_restore(struct driver *d, const struct drv_ctx *ctx);
int oci_restore_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o);
int oci_target_restored(struct driver *d, const struct drv_ctx *ctx);
int oci_target_resumed(struct driver *d, const struct drv_ctx *ctx);
int oci_target_cleanup(struct driver *d, const struct drv_ctx *ctx);
int oci_target_abort(struct driver *d, const struct drv_ctx *ctx);

#endif
