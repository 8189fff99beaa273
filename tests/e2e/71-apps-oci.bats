#!/usr/bin/env bats
# Real applications in OCI containers whose clients stay connected (see
# lib/ctapps.bash): Debian's redis-server, nginx (master and 2 workers), the
# Python HTTP server, memcached, PostgreSQL 15 (as its own user) and a JVM
# in runc or crun containers made from `runc spec`'s default configuration
# (only the command, its user, no terminal, and the binds of the machine's
# /usr and of a data dir added), with their own network namespace on the
# bridge phbr0 that joins both hosts (lib/ctnet).  A client on a third
# host holds one TCP connection across the migration (--tcp-established):
# no reconnect, no lost reply, every acknowledged write on dst, the data as
# before.  nginx moves also in stop, lazy and hybrid mode.
#
# The default run: redis, nginx, python (runc; redis and nginx in crun
# too).  APPS_CT_HEAVY=1 adds python in crun, memcached (256 MiB),
# PostgreSQL and the JVM (1 GiB heap: hold /tmp/phaul-bigmem.lock) in
# runc and crun.  Container tests share runc state and bridges:
#
#   flock /tmp/phaul-ctr.lock bats tests/e2e/71-apps-oci.bats

# PostgreSQL's and the JVM's start on a busy machine
: "${BATS_TEST_TIMEOUT:=300}"

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ctnet
load lib/apps
load lib/ctapps

# the daemon's policy: the bundle, the runtimes' state, the binds of /usr,
# of the data dir and of the cgroup tree, the container's stdio file
apps_policy() {
	policy_allow "oci_root = $SCRATCH/bundle" "oci_root = /run/runc" "oci_root = /run/crun" \
		"bind_root = /usr" "bind_root = $SCRATCH/data" "bind_root = /sys/fs/cgroup" \
		"stdio_root = $SCRATCH"
}

setup() {
	HOSTS_CGROUPNS=1
	apps_setup || return 1
	CID=pha$$-$BATS_TEST_NUMBER
	BUNDLE=$SCRATCH/bundle
	CT_ROOTFS=$BUNDLE/rootfs
	local h
	for h in src dst; do
		in_$h mount -t tmpfs -o mode=0755 tmpfs /run || return 1
		own_cgroups $h || return 1
	done
}

teardown() {
	third_host_stop
	apps_teardown
}

# ---------------------------------------------------------------- container

rt() {
	local host=$1 runtime=$2
	shift 2
	if [ "$runtime" = crun ]; then
		in_"$host" crun --cgroup-manager=disabled "$@"
	else
		in_"$host" runc "$@"
	fi
}

# make_bundle: runc spec's config; the command CT_ARGS as CT_USER (root
# if empty); the rootfs (ct_rootfs) with the machine's /usr bound read-only
# and /data a bind of $SCRATCH/data.
make_bundle() {
	local uid=0 gid=0
	if [ -n "$CT_USER" ]; then
		uid=$(id -u "$CT_USER") gid=$(id -g "$CT_USER")
	fi
	(cd "$BUNDLE" && runc spec) || return 1
	jq --arg data "$SCRATCH/data" --argjson uid "$uid" --argjson gid "$gid" \
		--argjson args "$(printf '%s\n' "${CT_ARGS[@]}" | jq -R . | jq -s .)" '
		.process.terminal = false |
		.process.args = $args |
		.process.user = {uid: $uid, gid: $gid} |
		.mounts += [{destination: "/usr", type: "bind", source: "/usr",
			     options: ["rbind", "ro"]},
			    {destination: "/data", type: "bind", source: $data,
			     options: ["rbind", "rw"]}]' \
		<"$BUNDLE/config.json" >"$BUNDLE/config.new" &&
		mv "$BUNDLE/config.new" "$BUNDLE/config.json"
}

# ct_start: create the container, give its network namespace a veth on
# phbr0 and $CT_ADDR, start it.
ct_start() {
	local h
	make_bundle || return 1
	if [ "$CT_RUNTIME" = crun ]; then
		for h in src dst; do
			in_$h mount -t cgroup2 none /sys/fs/cgroup || return 1
		done
	fi
	VETH=pv$BATS_TEST_NUMBER$((RANDOM % 1000))
	in_src sh -c 'cd "$1" && shift && exec "$@" </dev/null >>"$0" 2>&1' \
		"$SCRATCH/container.out" "$BUNDLE" \
		$([ "$CT_RUNTIME" = crun ] && echo crun --cgroup-manager=disabled || echo runc) \
		create "$CID" || { cat "$SCRATCH/container.out" >&2; return 1; }
	CT_INIT=$(rt src "$CT_RUNTIME" state "$CID" | jq -r .pid)
	in_src nsenter -t "$CT_INIT" -n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 &&
		in_src ip link add "$VETH" type veth peer name eth0 netns "$CT_INIT" &&
		in_src ip link set "$VETH" master phbr0 up &&
		in_src nsenter -t "$CT_INIT" -n ip addr add "$CT_ADDR/24" dev eth0 &&
		in_src nsenter -t "$CT_INIT" -n ip link set eth0 up &&
		in_src nsenter -t "$CT_INIT" -n ip link set lo up &&
		rt src "$CT_RUNTIME" start "$CID"
}

ct_log() { cat "$SCRATCH/container.out"; }

listed() {
	local st
	st=$(rt "$1" "$2" list --format json | jq -r --arg id "$CID" \
		'(. // [])[] | select(.id == $id) | .status')
	echo "${st:-none}"
}

ct_migrate() { ct_migrate_with --oci "$CID" --runtime "$CT_RUNTIME"; }

ct_moved() {
	[ "$(listed dst "$CT_RUNTIME")" = running ] && [ "$(listed src "$CT_RUNTIME")" = none ] ||
		{ echo "runtime state: src $(listed src "$CT_RUNTIME"), dst $(listed dst "$CT_RUNTIME")" >&2; return 1; }
	! pid_alive_in src "$CT_INIT" || { echo "the init $CT_INIT runs on in src" >&2; return 1; }
}

ct_stop() {
	rt dst "$CT_RUNTIME" kill "$CID" KILL
	wait_for 10 eval '[ "$(listed dst "$CT_RUNTIME")" = stopped ]'
	rt dst "$CT_RUNTIME" delete "$CID"
}

@test "runc: redis (runc spec defaults) with ${APPS_REDIS_KEYS} keys; a client on a third host keeps its connection, no lost reply" {
	CT_RUNTIME=runc t_ct redis
}

@test "crun: redis (runc spec defaults) with ${APPS_REDIS_KEYS} keys; a client on a third host keeps its connection, no lost reply" {
	CT_RUNTIME=crun t_ct redis
}

@test "runc: nginx, master and 2 workers; files intact from the third host before and after, one keep-alive connection across" {
	CT_RUNTIME=runc t_ct nginx
}

@test "crun: nginx, master and 2 workers; files intact from the third host before and after, one keep-alive connection across" {
	CT_RUNTIME=crun t_ct nginx
}

@test "runc: nginx in stop mode; one keep-alive connection across" {
	MIGRATE_MODE=stop
	CT_RUNTIME=runc t_ct nginx
}

@test "runc: nginx in lazy mode (post-copy); one keep-alive connection across" {
	MIGRATE_MODE=lazy
	CT_RUNTIME=runc t_ct nginx
}

@test "runc: nginx in hybrid mode; one keep-alive connection across" {
	MIGRATE_MODE=hybrid
	CT_RUNTIME=runc t_ct nginx
}

@test "runc: python, threads and an HTTP server; every acknowledged PUT on one connection, its own check on dst" {
	CT_RUNTIME=runc t_ct python
}

@test "crun: python, threads and an HTTP server; every acknowledged PUT on one connection, its own check on dst" {
	heavy "a second runtime, same code path"
	CT_RUNTIME=crun t_ct python
}

@test "runc: memcached, $((APPS_MC_ITEMS * 4 / 1024)) MiB of items; every item and acknowledged set on one connection" {
	heavy "$((APPS_MC_ITEMS * 4 / 1024)) MiB"
	CT_RUNTIME=runc t_ct memcached
}

@test "crun: memcached, $((APPS_MC_ITEMS * 4 / 1024)) MiB of items; every item and acknowledged set on one connection" {
	heavy "$((APPS_MC_ITEMS * 4 / 1024)) MiB"
	CT_RUNTIME=crun t_ct memcached
}

@test "runc: postgresql 15 as user postgres, ${APPS_CT_PG_ROWS} rows; a client inserting on one connection, every committed row on dst" {
	heavy "initdb, a postmaster"
	CT_RUNTIME=runc t_ct postgresql
}

@test "crun: postgresql 15 as user postgres, ${APPS_CT_PG_ROWS} rows; a client inserting on one connection, every committed row on dst" {
	heavy "initdb, a postmaster"
	CT_RUNTIME=crun t_ct postgresql
}

@test "runc: jvm, OpenJDK 17 checking its 1 GiB heap; its full check passes on dst" {
	heavy "a 1 GiB heap"
	CT_RUNTIME=runc t_ct jvm
}

@test "crun: jvm, OpenJDK 17 checking its 1 GiB heap; its full check passes on dst" {
	heavy "a 1 GiB heap"
	CT_RUNTIME=crun t_ct jvm
}
