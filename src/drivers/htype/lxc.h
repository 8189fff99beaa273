/* SPDX-License-Identifier: MIT */
/*
 * lxc: the workload is an LXC 5.0 container
 * (`phaul migrate --lxc NAME [--lxcpath DIR]`). Private to lxc.c (source
 * side) and lxc_target.c (destination side).
 *
 * The source asks LXC for the container's init (`lxc-info -p`), reads
 * its config (LXCPATH/NAME/config: rootfs, network) and dumps it with
 * CRIU itself, through the RPC, so that live pre-copy works; the options
 * match what LXC's own restore expects (external mounts detected by
 * CRIU, the rootfs as root, the network locked with nftables). Before
 * the Preflight it sends an LxcContainer message: name, lxcpath, config.
 *
 * The destination restores with `lxc-checkpoint -r`, so that an LXC
 * monitor owns the restored container and lxc-ls/lxc-info/lxc-attach/
 * lxc-stop work on it: LXC creates its cgroups and veths (on the same
 * bridges) and execs `criu restore` itself (restore_exec in driver.h).
 * What phaul's restore needs beyond LXC's command line (lazy pages and
 * their work directory, nftables network lock, TCP repair, the log
 * level) goes to CRIU in a config file named by CRIU_CONFIG_FILE, with an
 * action script: at post-restore the script writes the restored init's
 * PID to a FIFO and waits on another for phaul's answer, which comes
 * after the source's Commit (yes: exit 0, CRIU lets the tree run; else,
 * or EOF when the session died: exit 1, CRIU kills it and LXC reports
 * the restore failed). The config is written under the same lxcpath and
 * name before the restore and removed again on a rollback (by the hook
 * too, unless the answer was yes); after the commit the source's config
 * is removed (the rootfs, on the storage both see, is left alone).
 *
 * Two layouts of the lxcpath work. Each host its own (LXC's default
 * /var/lib/lxc): the rootfs may come with the migration (--fs
 * sync:LXCPATH/NAME/rootfs; the preflight accepts it missing then). On
 * storage both hosts see: the destination finds the source's config file
 * itself (the same text, inode and mtime, which the source sends) and,
 * unless LXC runs the container there, uses it in place: it neither
 * writes nor removes it, and tells the source (PreflightReply.in_place),
 * which keeps it after the commit. Any other config of that name on the
 * destination is another container: refused.
 *
 * Bind mounts of host paths (lxc.mount.entry ... bind) need nothing of
 * ours: CRIU finds them external at the dump (auto_ext_mnt) and LXC's
 * restore (--ext-mount-map auto) binds the same path again.
 * A console (a pty of LXC's monitor bound on /dev/console, and on
 * /dev/DIR/console with lxc.tty.dir) is dumped as LXC dumps it: its
 * mounts external under the key "console", the pty CRIU's external
 * tty[RDEV:DEV], that key in the images' tty.info; LXC's restore binds its
 * new console there and hands its fd to CRIU. LXC makes that new console
 * only on the host's devpts, i.e. with lxc.pty.max <= 1: the restore runs
 * with the container's config plus lxc.pty.max = 1 and lxc.tty.max = 0
 * (--rcfile; lxc_target.c says why).
 * LXC's ttys (lxc.tty.max: ptys bound on /dev/lxc/ttyN whose masters its
 * monitor holds) are dumped as external mounts (key LXC_TTY_KEY N), their
 * count in the images (LXC_TTYS_IMG); the destination binds each to a
 * new pty of its devpts whose master the restored monitor inherits (an fd
 * of lxc-checkpoint, which LXC's restore keeps): the ttys are alive as on
 * the source, though LXC's monitor serves none (lxc-console -t N). Each
 * pty is also CRIU's external tty[RDEV:DEV] (its key in the images,
 * LXC_TTY_KEY N): a process holding one (a getty) is given the new pty's
 * slave, which lxc-checkpoint passes on to CRIU (--inherit-fd in the
 * config file); LXC's own checkpoint does that for the console only.
 *
 * In a user namespace the images are made readable for CRIU's restored
 * tasks, and a lazy restore (live, post-copy) needs the destination's
 * vm.unprivileged_userfaultfd (target_check says so).
 *
 * Not supported yet (prepare says so): a rootfs that is not a directory,
 * network devices other than veth, empty and none, a veth in a user
 * namespace.
 */
#ifndef PHAUL_LXC_H
#define PHAUL_LXC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "drivers/htype/htype.h"
#include "drivers/htype/lxcconf.h"

#define LXC_DEFAULT_PATH "/var/lib/lxc"
#define LXC_TTY_INFO "tty.info" /* LXC reads it from the images */

/* A mount dumped as external: its mount point, CRIU's key for it. */
struct lxc_ext {
	char path[96];
	char key[32];
};

/* CRIU's key of LXC tty N's mount: LXC_TTY_KEY "N" */
#define LXC_TTY_KEY "phaul-lxc-tty"
/* The images' file saying how many: "lxc.tty.max = N" */
#define LXC_TTYS_IMG "phaul-lxc-ttys"
/* The images' file LXC_TTY_KEY "N": CRIU's key of tty N's pty,
 * "tty[RDEV:DEV]" (dumped as an external tty) */
#define LXC_TTYS_MAX 64 /* each an fd of lxc-checkpoint (spawn_fds) */

struct lxc_priv {
	char name[129];
	char *lxcpath;
	char *config;		 /* the config file's text */
	uint64_t config_ino;	 /* the config file's inode and mtime (ns), */
	int64_t config_mtime_ns; /* 0 when unknown */
	struct lxcconf conf;
	pid_t init;	  /* source: the container's init */
	char tty_id[64];  /* source: CRIU's key of its console, "" without */
	char tty_dir[64]; /* source: lxc.tty.dir, "" when unset */
	/* source: mounts dumped as external: the console's (/dev/console,
	 * /dev/DIR/console; LXC's key "console") and the LXC ttys' */
	struct lxc_ext *ext;
	size_t nr_ext;
	ExtMountMap *maps;
	ExtMountMap **mapp;
	/* destination */
	bool made_dir; /* LXCPATH/NAME created here */
	bool wrote_config;
	bool config_in_place; /* the source's own config, on storage both see */
	int unconfined;	      /* no AppArmor profile on the source: 1, 0, -1 unsaid */
	long nr_ttys;	      /* source: the highest LXC tty dumped, 0 without */
	/* CRIU's key of LXC tty N + 1's pty on the source ("" when not
	 * there): the source dumps it as an external tty, the destination
	 * has CRIU inherit the new pty's slave for it (tty_slave) */
	char tty_ext[LXC_TTYS_MAX][32];
	char *extp[LXC_TTYS_MAX + 1]; /* source: CRIU's externals */
	int tty_slave[LXC_TTYS_MAX];
	/* destination: the fds lxc-checkpoint inherits, from fd 3: the
	 * masters, then the slaves of the ttys with a key */
	int tty_fds[2 * LXC_TTYS_MAX];
	/* destination: the ptys LXC's ttys are bound to (masters, their
	 * paths, CRIU's maps), and CRIU's restore ext_mnt with them */
	int tty_master[LXC_TTYS_MAX];
	char tty_pts[LXC_TTYS_MAX][32];
	char tty_key[LXC_TTYS_MAX][32];
	ExtMountMap tty_map[LXC_TTYS_MAX];
	ExtMountMap **rst_ext;
};

/* LXCPATH/NAME[/FILE] */
char *lxc_path(const struct lxc_priv *p, const char *file);
/* The init's PID as LXC knows it (`lxc-info -p -H`); -ESRCH: not running. */
int lxc_ask_init(const struct lxc_priv *p, pid_t *ret);

int lxc_target_recv_info(struct driver *d, const struct drv_ctx *ctx, const Msg *msg);
int lxc_target_check(struct driver *d, const struct drv_ctx *ctx);
int lxc_target_restore(struct driver *d, const struct drv_ctx *ctx);
int lxc_restore_opts(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o);
int lxc_restore_exec(struct driver *d, const struct drv_ctx *ctx, CriuOpts *o, driver_held_fn held,
		     void *arg, pid_t *root);
int lxc_target_abort(struct driver *d, const struct drv_ctx *ctx);

#endif
