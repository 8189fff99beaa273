/* SPDX-License-Identifier: MIT */
/*
 * podman: the workload is a Podman container (`phaul migrate --podman
 * NAME|ID`), a runc (or crun) container whose parent is podman's conmon.
 * Private to podman.c (source side), podman_target.c (destination side)
 * and the runtime podman runs for phaul (cli/cmd_podman.c). It is the oci
 * driver (oci.h) with oci_priv.under_manager set, plus what podman needs:
 *
 * Source: `podman container inspect` gives the ID, name, image, networks
 * and directories; the oci driver reads runc's state and dumps the tree
 * itself (live pre-copy and all), the network namespace external (it is
 * podman's). At the freeze `podman container checkpoint --export
 * --leave-running` writes podman's own description of the container
 * (config.dump, spec.dump, network.status: its address and MAC, the
 * writable layer's changes, /dev/shm) into the images as
 * podman-export.tar, with phaul's runtime (below) as runc, whose
 * `checkpoint` dumps nothing: the container is left running, untouched.
 * After the commit `podman rm -f` removes the (dead) container there.
 *
 * Destination: the preflight checks podman and runc, the image (by ID),
 * the networks, and that no container has that ID or name. At the
 * restore `podman container restore --import` of the export recreates
 * the container (same ID, name, image, address and MAC, a fresh network
 * namespace on the same network, the writable layer) and has conmon run
 * `runc restore`: with phaul's runtime as runc, that is `phaul
 * __podman-runtime`, which connects to this migration's socket
 * (PODMAN_RUN_DIR/ID.sock), says the bundle and pid file, receives the
 * fds CRIU is to inherit and one end of a CRIU RPC socket, and becomes
 * `criu swrk`. The engine drives that CRIU as its own (restore_criu in
 * driver.h): lazy pages, the hold until the commit; the tree is restored
 * as conmon's child (rst_sibling) into podman's network namespace, with
 * conmon's stdio pipes. At post-restore the driver writes runc's state
 * (the oci driver) and the pid file; after the commit CRIU exits 0,
 * conmon reads the pid file and podman marks the container running. On
 * a failure CRIU exits non-zero, podman's restore fails, and the driver
 * removes what podman created (`podman rm -f`).
 *
 * From just before the final dump on, the container's network namespace
 * on the source drops every packet (an nftables table there; removed on
 * a rollback): CRIU locks a network namespace it dumps, not an external
 * one, and a peer's packet arriving while CRIU holds the TCP sockets in
 * repair mode, or once the tree is gone, would be answered with a reset.
 * From before podman's restore until the commit (target_committed, just
 * before CRIU unlocks the network and takes the TCP sockets out of repair
 * mode) the destination's bridges drop the container's frames (an
 * nftables bridge table): podman brings its new interface up with the old
 * MAC, and its first IPv6 packets would teach the bridges that the
 * container is here while its TCP sockets are not, whose peers would then
 * get resets. Lifted any later, the first ARP request of the restored
 * sockets is lost and the peers wait a second more. At post-resume the
 * container is announced (gratuitous ARP, oci driver).
 *
 * Podman picks the runtime by name from containers.conf, and conmon
 * passes CONTAINERS_CONF on to the container's exit command: phaul's
 * containers.conf (the one podman would read, plus runc = phaul's
 * runtime) and runtime script stay in PODMAN_RUN_DIR. For any other
 * command that runtime execs runc itself.
 */
#ifndef PHAUL_PODMAN_H
#define PHAUL_PODMAN_H

#include "drivers/htype/oci.h"

#define PODMAN_RUN_DIR "/run/phaul/podman"
#define PODMAN_CONF "containers.conf"
/* podman trusts only a runtime whose file is named runc (or crun) to checkpoint */
#define PODMAN_RUNTIME "runc"
#define PODMAN_EXPORT_IMG "podman-export.tar"
/* the runtime's hello: "BUNDLE\0PID-FILE\0", at most this long */
#define PODMAN_HELLO_MAX 8192
/* the answer: int32 fd numbers and as many fds (SCM_RIGHTS), the first
 * the RPC socket (its number: CRIU's choice) */
#define PODMAN_FDS_MAX (OCI_EXT_FILES_MAX + 2)

struct podman_priv {
	struct oci_priv oci; /* first: the oci driver's hooks take it */
	char name[129];
	char image_id[65];
	char *image;
	char *nets[MSG_PODMAN_NETS_MAX];
	size_t nr_nets;
	char *macs[MSG_PODMAN_NETS_MAX];
	size_t nr_macs;
	/* destination */
	pid_t restore;	   /* `podman container restore`, or 0 */
	int lsk;	   /* PODMAN_RUN_DIR/ID.sock, listening, or -1 */
	int rsk;	   /* the runtime's connection, or -1 */
	char *pidfile;	   /* conmon's --pid-file */
	bool imported;	   /* the container may exist here */
	bool fenced;	   /* the bridges here drop its frames (below) */
	bool netns_locked; /* source: its network namespace drops everything */
};

/* Write PODMAN_RUN_DIR's runtime and containers.conf (again). */
int podman_setup(const struct drv_ctx *ctx);
/* `nft -f -` of @script in @pid's network namespace (0: ours). */
int podman_nft(pid_t pid, const char *script);
/* `podman ARGS...` with phaul's containers.conf; its stdout in *out
 * (may be NULL), at most 1 MiB. Its exit status, or a negative errno. */
int podman_run(char *const args[], char **out);
void podman_fini(struct driver *d);

int podman_target_recv_info(struct driver *d, const struct drv_ctx *ctx, const Msg *msg);
int podman_target_check(struct driver *d, const struct drv_ctx *ctx);
int podman_target_restore(struct driver *d, const struct drv_ctx *ctx);
int podman_restore_criu(struct driver *d, const struct drv_ctx *ctx, const int *fds, size_t nr,
			int *sk);
int podman_target_restored(struct driver *d, const struct drv_ctx *ctx);
int podman_target_committed(struct driver *d, const struct drv_ctx *ctx);
int podman_target_cleanup(struct driver *d, const struct drv_ctx *ctx);
int podman_target_abort(struct driver *d, const struct drv_ctx *ctx);

#endif
