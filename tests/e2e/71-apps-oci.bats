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

: "${APPS_REDIS_KEYS:=1000000}"
CLI_ADDR=192.0.2.60

setup() {
	HOSTS_CGROUPNS=1
	apps_setup || return 1
	CID=pha$$-$BATS_TEST_NUMBER
	BUNDLE=$SCRATCH/bundle
	local h
	for h in src dst; do
		in_$h mount -t tmpfs -o mode=0755 tmpfs /run || return 1
		host_cgroups $h || return 1
	done
}

teardown() {
	third_host_stop
	apps_teardown
}

# host_cgroups HOST: the machine's cgroup hierarchies mounted again in
# HOST's cgroup namespace (its own cgroup tree), as runc wants them.
host_cgroups() {
	local mnts
	mnts=$(findmnt -rn -t cgroup,cgroup2 -o TARGET,FSTYPE,FS-OPTIONS) || return 1
	# shellcheck disable=SC2016
	in_"$1" sh -c 'mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup || exit 1
		echo "$0" | while read -r dir type opts; do
			mkdir -p "$dir" && mount -t "$type" -o "$opts" cgroup "$dir" || exit 1
		done' "$mnts"
}

# ---------------------------------------------------------------- third host

# third_host: a network namespace (held by a sleep of this test) whose
# veth is on src's phbr0, address $CLI_ADDR; in_cli runs a command there.
third_host() {
	unshare --net sleep 3600 </dev/null >/dev/null 2>&1 3>&- 4>&- &
	CLI_NS=$!
	wait_for 5 eval '[ "$(readlink /proc/$CLI_NS/ns/net)" != "$(readlink /proc/$$/ns/net)" ]'
	CLI_IF=pc$BATS_TEST_NUMBER$((RANDOM % 1000))
	ip link add "$CLI_IF" type veth peer name eth0 netns "$CLI_NS" &&
		ip link set "$CLI_IF" netns "$SRC_PID1" &&
		in_src ip link set "$CLI_IF" master phbr0 up &&
		in_cli ip addr add "$CLI_ADDR/24" dev eth0 &&
		in_cli ip link set eth0 up &&
		in_cli ip link set lo up || return 1
	wait_for 10 in_cli busybox ping -c1 -W1 "$SRC_ADDR"
}

in_cli() { nsenter -t "$CLI_NS" -n -- "$@"; }

third_host_stop() {
	[ -n "${CLI_NS:-}" ] || return 0
	[ -z "${CLI_LOAD:-}" ] || { kill "$CLI_LOAD" 2>/dev/null; wait "$CLI_LOAD" 2>/dev/null; }
	kill "$CLI_NS" 2>/dev/null
	wait "$CLI_NS" 2>/dev/null
	CLI_NS=""
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
	local r=$BUNDLE/rootfs d
	mkdir -p "$r"/{usr,etc,data,proc,sys,dev,tmp,run} "$SCRATCH/data"
	for d in bin sbin lib lib64; do
		ln -s "usr/$d" "$r/$d"
	done
	cp /etc/passwd /etc/group /etc/nsswitch.conf "$r/etc/"
	(cd "$BUNDLE" && runc spec) || return 1
	jq --arg data "$SCRATCH/data" '
		.process.terminal = false |
		.process.args = ["redis-server", "--port", "6379", "--bind", "0.0.0.0",
			"--protected-mode", "no", "--save", "", "--appendonly", "no",
			"--dir", "/data", "--enable-debug-command", "yes", "--daemonize", "no"] |
		.mounts += [{destination: "/usr", type: "bind", source: "/usr",
			     options: ["rbind", "ro"]},
			    {destination: "/data", type: "bind", source: $data,
			     options: ["rbind", "rw"]}]' \
		"$BUNDLE/config.json" >"$BUNDLE/config.new" &&
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
	local runtime=$1 digest after done
	APP_ROW_APP=redis-$runtime-tcp
	bridge_hosts
	third_host
	start_redis_container "$runtime"
	in_cli redis-cli -h "$CT_ADDR" DEBUG POPULATE "$APPS_REDIS_KEYS" key 64 >/dev/null
	[ "$(in_cli redis-cli -h "$CT_ADDR" DBSIZE)" = "$APPS_REDIS_KEYS" ]
	digest=$(in_cli redis-cli -h "$CT_ADDR" DEBUG DIGEST)
	# one connection, never another: LOAD_RECONNECT=0 makes any error fatal
	ACKS=$SCRATCH/acks
	LOAD_RECONNECT=0 in_cli "$APPS_PY" "$APPS_DIR/load.py" load redis "$ACKS" \
		"$SCRATCH/load.stop" "$CT_ADDR:6379" </dev/null >"$SCRATCH/load.out" 2>&1 3>&- 4>&- &
	CLI_LOAD=$!
	wait_ticks "$ACKS" 50 30
	fx_migrate -- --oci "$CID" --runtime "$runtime" --tcp-established --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	read -r APP_FROZEN APP_BYTES APP_TOTAL < <(jq -r '"\(.frozen_ms) \(.bytes_sent) \(.total_ms)"' \
		<<<"$output")
	[ "$(listed dst "$runtime")" = running ]
	[ "$(listed src "$runtime")" = none ]
	refute pid_alive_in src "$INIT"
	ticks_advance "$ACKS" 100 30
	touch "$SCRATCH/load.stop"
	wait_for 30 grep -q '^DONE ' "$ACKS"
	wait "$CLI_LOAD" || { cat "$SCRATCH/load.out" >&2; return 1; }
	CLI_LOAD=""
	done=$(grep '^DONE ' "$ACKS")
	[ "${done##* }" = 0 ] || { echo "the client reconnected: $done" >&2; return 1; }
	check_ticks "$ACKS" >/dev/null
	APP_STALL=$(max_gap_at "$ACKS" | cut -d' ' -f1)
	# every acknowledged SET, then the 1M keys as before
	out=$(in_cli "$APPS_PY" "$APPS_DIR/load.py" verify redis "$ACKS" "$CT_ADDR:6379")
	[[ "$out" == "VERIFY PASS"* ]] || { echo "$out" >&2; return 1; }
	in_cli redis-cli -h "$CT_ADDR" EVAL \
		"for _, k in ipairs(redis.call('KEYS', 'ack:*')) do redis.call('DEL', k) end" 0 >/dev/null
	after=$(in_cli redis-cli -h "$CT_ADDR" DEBUG DIGEST)
	[ "$after" = "$digest" ] || { echo "DEBUG DIGEST $digest before, $after after" >&2; return 1; }
	note "$out on one connection ($done); DEBUG DIGEST as before"
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
