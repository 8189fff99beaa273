#!/usr/bin/env bats
# A real application in an LXC container whose client stays connected:
# redis-server (Debian's) as the container's init, with LXC's default
# configuration (/etc/lxc/default.conf's lines, the bridge phbr0 instead of
# lxcbr0, and /usr/share/lxc/config/common.conf as LXC's templates include
# it: capabilities dropped, device cgroup, seccomp, a console, ttys), plus
# binds of the machine's /usr (read-only) and a data dir.  A client on a
# third host holds one TCP connection across a live migration
# (--tcp-established).  The config is not changed: its console (a pty of
# the container's devpts) comes back as LXC's new console, its 4 LXC ttys
# as new ptys LXC's monitor holds, its AppArmor profile (which LXC ignores
# on this kernel) unused (docs/CONTAINERS.md).  A process on one of its ttys is refused
# before the freeze.  Container tests share LXC's state and bridges:
#
#   flock /tmp/phaul-ctr.lock bats tests/e2e/72-apps-lxc.bats

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ctnet
load lib/apps

# the daemon's policy: the lxcpath and rootfs, the binds of /usr and the data dir
apps_policy() {
	policy_allow "lxc_root = $SCRATCH/lxcpath" "lxc_root = $SCRATCH/rootfs" \
		"bind_root = /usr" "bind_root = $SCRATCH/data"
}

setup() {
	apps_setup || return 1
	CT=pha$$-$BATS_TEST_NUMBER
	ROOTFS=$SCRATCH/rootfs
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

@test "lxc: redis (LXC's default config) with ${APPS_REDIS_KEYS} keys: a process on a tty refused before the freeze; then a client on a third host keeps its connection" {
	local init a cmd=""
	APP_ROW_APP=redis-lxc-tcp
	# REDIS_CT_ARGS, the empty argument quoted for LXC's splitting
	for a in "${REDIS_CT_ARGS[@]}"; do
		cmd+=" ${a:-\'\'}"
	done
	redis_rootfs "$ROOTFS"
	bridge_hosts
	third_host
	# /etc/lxc/default.conf on phbr0, then what LXC's templates add
	in_src mkdir -p "$LXCPATH/$CT"
	{
		grep -v '^lxc.net.0.link' /etc/lxc/default.conf
		echo "lxc.net.0.link = phbr0"
		echo "lxc.net.0.ipv4.address = $CT_ADDR/24"
		echo "lxc.include = /usr/share/lxc/config/common.conf"
		echo "lxc.uts.name = $CT"
		echo "lxc.rootfs.path = dir:$ROOTFS"
		echo "lxc.mount.entry = /usr usr none bind,ro 0 0"
		echo "lxc.mount.entry = $SCRATCH/data data none bind 0 0"
		echo "lxc.init.cmd =$cmd"
	} >"$SCRATCH/lxc.config"
	in_src sh -c 'cat "$0" >"$1"' "$SCRATCH/lxc.config" "$LXCPATH/$CT/config"
	lxc_tool src lxc-start -l DEBUG -o "$SCRATCH/lxc-start.log" ||
		{ tail -n 20 "$SCRATCH/lxc-start.log" >&2; return 1; }
	init=$(lxc_tool src lxc-info -p -H)
	wait_for 20 eval 'in_cli redis-cli -h "$CT_ADDR" PING | grep -q PONG' ||
		{ tail -n 20 "$SCRATCH/lxc-start.log" >&2; return 1; }
	# Debian's default config (through its lxc.include of common.conf)
	# gives the container 4 LXC ttys, ptys whose masters LXC's monitor
	# holds: a process on one could not be given it back on dst.  Refused
	# at the preflight, before anything froze, naming it; the container
	# runs on.
	in_src nsenter -t "$init" -m -p sh -c 'exec sleep 600 </dev/lxc/tty2 &' || return 1
	fx_migrate -- --lxc "$CT" --lxcpath "$LXCPATH" --tcp-established --json
	assert_failed_with "container $CT: process [0-9]+ holds LXC tty 2 \\(fd 0\\).*stop what runs on its ttys"
	[ "$(jq -r '"\(.frozen_ms) \(.iterations) \(.outcome)"' <<<"$output")" = "0 0 rolled-back" ] ||
		{ echo "not refused before the freeze: $output" >&2; return 1; }
	[ "$(state src)" = RUNNING ] && [ "$(state dst)" = none ]
	pid_alive_in src "$init"
	assert_workdir_clean 10
	# restarted without it (redis reaps no orphan), unchanged, it moves
	# with its client on one connection
	lxc_tool src lxc-stop -k && lxc_tool src lxc-start -l DEBUG -o "$SCRATCH/lxc-start.log" ||
		return 1
	init=$(lxc_tool src lxc-info -p -H)
	in_cli ip neigh flush all # a new MAC address
	wait_for 20 eval 'in_cli timeout 2 redis-cli -h "$CT_ADDR" PING | grep -q PONG' || return 1
	ct_redis_before
	fx_migrate -- --lxc "$CT" --lxcpath "$LXCPATH" --tcp-established --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	read -r APP_FROZEN APP_BYTES APP_TOTAL < <(jq -r '"\(.frozen_ms) \(.bytes_sent) \(.total_ms)"' \
		<<<"$output")
	[ "$(state dst)" = RUNNING ]
	[ "$(state src)" = none ]
	refute pid_alive_in src "$init"
	ct_redis_after
	lxc_tool dst lxc-stop -k
	app_result "$APP_ROW_APP"
}
