#!/usr/bin/env bats
# Real applications in LXC containers whose clients stay connected (see
# lib/ctapps.bash): Debian's redis-server, nginx, the Python HTTP server,
# memcached, PostgreSQL 15 (its own user: lxc.init.uid) and a JVM as the
# container's init, with LXC's default configuration
# (/etc/lxc/default.conf's lines, the bridge phbr0 instead of lxcbr0, and
# /usr/share/lxc/config/common.conf as LXC's templates include it:
# capabilities dropped, device cgroup, seccomp, a console, ttys), plus
# binds of the machine's /usr (read-only) and a data dir.  A client on a
# third host holds one TCP connection across a live migration
# (--tcp-established).  The config is not changed: its console (a pty of
# the container's devpts) comes back as LXC's new console, its 4 LXC ttys
# as new ptys LXC's monitor holds, its AppArmor profile (which LXC ignores
# on this kernel) unused (docs/CONTAINERS.md).  A process on one of its
# ttys is refused before the freeze.
#
# The default run: redis, nginx, python.  APPS_CT_HEAVY=1 adds memcached
# (256 MiB), PostgreSQL and the JVM (1 GiB heap: hold
# /tmp/phaul-bigmem.lock).  Container tests share LXC's state and bridges:
#
#   flock /tmp/phaul-ctr.lock bats tests/e2e/72-apps-lxc.bats

# PostgreSQL's and the JVM's start on a busy machine
: "${BATS_TEST_TIMEOUT:=300}"

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ctnet
load lib/apps
load lib/ctapps

# the daemon's policy: the lxcpath and rootfs, the binds of /usr and the data dir
apps_policy() {
	policy_allow "lxc_root = $SCRATCH/lxcpath" "lxc_root = $SCRATCH/rootfs" \
		"bind_root = /usr" "bind_root = $SCRATCH/data"
}

setup() {
	apps_setup || return 1
	CT=pha$$-$BATS_TEST_NUMBER
	CT_RUNTIME=lxc
	CT_ROOTFS=$SCRATCH/rootfs
	LXCPATH=$SCRATCH/lxcpath
	mkdir -p "$LXCPATH"
	local h d
	for h in src dst; do
		# LXC's locks in /run, its containers in LXCPATH: each host's own;
		# a sysfs of the host's network namespace (LXC finds bridges there)
		d=$SCRATCH/sys-$h
		mkdir -p "$d"
		in_$h mount -t tmpfs -o mode=0755 tmpfs /run &&
			in_$h mount -t tmpfs -o mode=0755 tmpfs "$LXCPATH" &&
			in_$h sh -c 'mount -t sysfs sysfs "$0" &&
				mount --rbind /sys/fs/cgroup "$0/fs/cgroup" && mount --move "$0" /sys' "$d" ||
			return 1
	done
}

teardown() {
	third_host_stop
	apps_teardown
	local rc=$?
	# LXC's cgroups (the machine's, shared by the hosts), named after $CT
	find /sys/fs/cgroup -mindepth 1 -depth -type d \
		\( -name "lxc.payload.$CT*" -o -name "lxc.monitor.$CT*" \) -exec rmdir {} + 2>/dev/null
	return $rc
}

lxc_tool() {
	local host=$1 cmd=$2
	shift 2
	in_"$host" "$cmd" -n "$CT" -P "$LXCPATH" "$@"
}

state() {
	in_"$1" lxc-ls -P "$LXCPATH" -1 | grep -qx "$CT" || { echo none; return 0; }
	lxc_tool "$1" lxc-info -s -H
}

# ct_start: /etc/lxc/default.conf on phbr0, then what LXC's templates
# add; the command CT_ARGS (the empty argument quoted for LXC's
# splitting) as CT_USER; started in src
ct_start() {
	local a cmd=""
	for a in "${CT_ARGS[@]}"; do
		cmd+=" ${a:-\'\'}"
	done
	in_src mkdir -p "$LXCPATH/$CT"
	{
		grep -v '^lxc.net.0.link' /etc/lxc/default.conf
		echo "lxc.net.0.link = phbr0"
		echo "lxc.net.0.ipv4.address = $CT_ADDR/24"
		echo "lxc.include = /usr/share/lxc/config/common.conf"
		echo "lxc.uts.name = $CT"
		echo "lxc.rootfs.path = dir:$CT_ROOTFS"
		echo "lxc.mount.entry = /usr usr none bind,ro 0 0"
		echo "lxc.mount.entry = $SCRATCH/data data none bind 0 0"
		echo "lxc.init.cmd =$cmd"
		if [ -n "${CT_USER:-}" ]; then
			echo "lxc.init.uid = $(id -u "$CT_USER")"
			echo "lxc.init.gid = $(id -g "$CT_USER")"
		fi
	} >"$SCRATCH/lxc.config"
	in_src sh -c 'cat "$0" >"$1"' "$SCRATCH/lxc.config" "$LXCPATH/$CT/config"
	lxc_tool src lxc-start -l DEBUG -o "$SCRATCH/lxc-start.log" || { ct_log >&2; return 1; }
	CT_INIT=$(lxc_tool src lxc-info -p -H)
}

ct_log() { tail -n 20 "$SCRATCH/lxc-start.log"; }

ct_migrate() { ct_migrate_with --lxc "$CT" --lxcpath "$LXCPATH"; }

ct_moved() {
	[ "$(state dst)" = RUNNING ] && [ "$(state src)" = none ] ||
		{ echo "LXC state: src $(state src), dst $(state dst)" >&2; return 1; }
	! pid_alive_in src "$CT_INIT" || { echo "the init $CT_INIT runs on in src" >&2; return 1; }
}

ct_stop() { lxc_tool dst lxc-stop -k; }

# Debian's default config (through its lxc.include of common.conf) gives
# the container 4 LXC ttys, ptys whose masters LXC's monitor holds.  A
# process on one (a session leader, the tty its controlling tty, as a
# getty) migrates with it: on dst its fd is on the new pty bound there.
@test "lxc: redis (LXC's default config), a process on one of its ttys: it migrates, on the new tty in dst" {
	local pid want got
	bridge_hosts
	ct_rootfs "$CT_ROOTFS"
	ctapp_redis_prep
	ct_start
	# only its own files open (lxc-attach passes on what it was given;
	# bash: dash cannot close fds above 9)
	# shellcheck disable=SC2016
	lxc_tool src lxc-attach -- /bin/sh -c 'exec </dev/null >/dev/null 2>&1; setsid bash -c "$0" &' \
		'for f in /proc/self/fd/*; do n=${f##*/}; [ "$n" -le 2 ] || eval "exec $n>&-"; done
		exec sleep 600 <>/dev/lxc/tty2 >&0 2>&0'
	wait_for 5 eval 'in_src pgrep -x sleep >/dev/null' || return 1
	fx_migrate -- --lxc "$CT" --lxcpath "$LXCPATH" --tcp-established --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	ct_moved || return 1
	pid=$(in_dst pgrep -x sleep) || { echo "the process on tty2 is not in dst" >&2; return 1; }
	want=$(in_dst stat -L -c %t:%T:%d "/proc/$(lxc_tool dst lxc-info -p -H)/root/dev/lxc/tty2") &&
		got=$(in_dst stat -L -c %t:%T:%d "/proc/$pid/fd/0") || return 1
	[ "$got" = "$want" ] || { echo "its fd 0 is on $got, not tty2's new pty $want" >&2; return 1; }
	ct_stop
}

@test "lxc: redis (LXC's default config) with ${APPS_REDIS_KEYS} keys; a client on a third host keeps its connection, no lost reply" {
	t_ct redis
}

@test "lxc: nginx, master and 2 workers; files intact from the third host before and after, one keep-alive connection across" {
	t_ct nginx
}

@test "lxc: python, threads and an HTTP server; every acknowledged PUT on one connection, its own check on dst" {
	t_ct python
}

@test "lxc: memcached, $((APPS_MC_ITEMS * 4 / 1024)) MiB of items; every item and acknowledged set on one connection" {
	heavy "$((APPS_MC_ITEMS * 4 / 1024)) MiB"
	t_ct memcached
}

@test "lxc: postgresql 15 as user postgres (lxc.init.uid), ${APPS_CT_PG_ROWS} rows; a client inserting on one connection, every committed row on dst" {
	heavy "initdb, a postmaster"
	t_ct postgresql
}

@test "lxc: jvm, OpenJDK 17 checking its 1 GiB heap; its full check passes on dst" {
	heavy "a 1 GiB heap"
	t_ct jvm
}
