#!/usr/bin/env bats
# A real application in an OCI container whose clients stay connected:
# redis-server (Debian's) in a runc or crun container made from `runc
# spec`'s default configuration (only the command, no terminal, and the
# binds of the machine's /usr and of a data dir added), with its own
# network namespace on the bridge phbr0 that joins both hosts (lib/ctnet).
# A client on a third host (a network namespace with a veth on src's
# phbr0) holds one TCP connection across the migration (--tcp-established):
# no reconnect, no lost reply, every acknowledged SET on dst, DEBUG DIGEST
# of the 1M keys as before.  Container tests share runc state and bridges:
#
#   flock /tmp/phaul-ctr.lock bats tests/e2e/71-apps-oci.bats

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ctnet
load lib/apps

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

# make_redis_bundle: runc spec's config; the rootfs holds the machine's
# /usr (read-only bind) and the merged-/usr links, /etc/passwd and group,
# and /data (a bind of $SCRATCH/data).
make_redis_bundle() {
	redis_rootfs "$BUNDLE/rootfs" || return 1
	(cd "$BUNDLE" && runc spec) || return 1
	jq --arg data "$SCRATCH/data" \
		--argjson args "$(printf '%s\n' "${REDIS_CT_ARGS[@]}" | jq -R . | jq -s .)" '
		.process.terminal = false |
		.process.args = $args |
		.mounts += [{destination: "/usr", type: "bind", source: "/usr",
			     options: ["rbind", "ro"]},
			    {destination: "/data", type: "bind", source: $data,
			     options: ["rbind", "rw"]}]' \
		<"$BUNDLE/config.json" >"$BUNDLE/config.new" &&
		mv "$BUNDLE/config.new" "$BUNDLE/config.json"
}

# start_redis_container RUNTIME: create it, give its network namespace a
# veth on phbr0 and $CT_ADDR, start it; wait until redis answers.
start_redis_container() {
	local runtime=$1 h
	make_redis_bundle || return 1
	if [ "$runtime" = crun ]; then
		for h in src dst; do
			in_$h mount -t cgroup2 none /sys/fs/cgroup || return 1
		done
	fi
	VETH=pv$BATS_TEST_NUMBER$((RANDOM % 1000))
	in_src sh -c 'cd "$1" && shift && exec "$@" </dev/null >>"$0" 2>&1' \
		"$SCRATCH/container.out" "$BUNDLE" \
		$([ "$runtime" = crun ] && echo crun --cgroup-manager=disabled || echo runc) \
		create "$CID" || { cat "$SCRATCH/container.out" >&2; return 1; }
	INIT=$(rt src "$runtime" state "$CID" | jq -r .pid)
	in_src nsenter -t "$INIT" -n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 &&
		in_src ip link add "$VETH" type veth peer name eth0 netns "$INIT" &&
		in_src ip link set "$VETH" master phbr0 up &&
		in_src nsenter -t "$INIT" -n ip addr add "$CT_ADDR/24" dev eth0 &&
		in_src nsenter -t "$INIT" -n ip link set eth0 up &&
		in_src nsenter -t "$INIT" -n ip link set lo up &&
		rt src "$runtime" start "$CID" || return 1
	wait_for 20 eval 'in_cli redis-cli -h "$CT_ADDR" PING | grep -q PONG' ||
		{ cat "$SCRATCH/container.out" >&2; return 1; }
}

listed() {
	local st
	st=$(rt "$1" "$2" list --format json | jq -r --arg id "$CID" \
		'(. // [])[] | select(.id == $id) | .status')
	echo "${st:-none}"
}

t_redis_ct() {
	local runtime=$1
	APP_ROW_APP=redis-$runtime-tcp
	bridge_hosts
	third_host
	start_redis_container "$runtime"
	ct_redis_before
	fx_migrate -- --oci "$CID" --runtime "$runtime" --tcp-established --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	read -r APP_FROZEN APP_BYTES APP_TOTAL < <(jq -r '"\(.frozen_ms) \(.bytes_sent) \(.total_ms)"' \
		<<<"$output")
	[ "$(listed dst "$runtime")" = running ]
	[ "$(listed src "$runtime")" = none ]
	refute pid_alive_in src "$INIT"
	ct_redis_after
	rt dst "$runtime" kill "$CID" KILL
	wait_for 10 eval '[ "$(listed dst '"$runtime"')" = stopped ]'
	rt dst "$runtime" delete "$CID"
	app_result "$APP_ROW_APP"
}

@test "runc: redis (runc spec defaults) with ${APPS_REDIS_KEYS} keys; a client on a third host keeps its connection, no lost reply" {
	t_redis_ct runc
}

@test "crun: redis (runc spec defaults) with ${APPS_REDIS_KEYS} keys; a client on a third host keeps its connection, no lost reply" {
	t_redis_ct crun
}
