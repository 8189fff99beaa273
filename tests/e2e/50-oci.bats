#!/usr/bin/env bats
# OCI containers (runc, crun) migrated between the two test hosts with
# `phaul migrate --oci ID`.  The container is a busybox shell loop that
# appends numbered ticks to /data/ticks (a bind mount of $SCRATCH/data, on
# the storage both hosts see), without forking.  Each host gets its own
# /run (the runtimes' state); crun, which refuses the machine's hybrid
# cgroup layout, gets cgroup2 at /sys/fs/cgroup in each host and runs
# with --cgroup-manager=disabled.  Each host has a cgroup namespace and
# the machine's hierarchies mounted afresh in it: its own cgroup tree.
#
#   bats tests/e2e/50-oci.bats

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ctnet
load lib/ssh
load lib/oldpeer

setup() {
	HOSTS_CGROUPNS=1
	hosts_setup || return 1
	phaul_setup || return 1
	fx_setup
	CID=phc$$-$BATS_TEST_NUMBER
	BUNDLE=$SCRATCH/bundle
	TICKS=$SCRATCH/data/ticks
	# the daemon's policy: the bundle, the runtimes' state, the /data bind,
	# the container's own cgroups (cgroup v1 binds) and its stdout file
	# (run_container), nothing else
	policy_allow "oci_root = $BUNDLE" "oci_root = /run/runc" "oci_root = /run/crun" \
		"bind_root = $SCRATCH/data" "bind_root = /sys/fs/cgroup" \
		"stdio_root = $SCRATCH/container.out"
	local h
	for h in src dst; do
		in_$h mount -t tmpfs -o mode=0755 tmpfs /run || return 1
		own_cgroups $h || return 1
	done
}

teardown() {
	hosts_teardown # removes the hosts' cgroups, and runc's below them
}

# make_bundle [PRE]: a busybox rootfs and a config whose process is the
# tick loop, after the shell command PRE if given.
make_bundle() {
	local bb
	bb=$(command -v busybox) || { echo "busybox-static is not installed" >&2; return 1; }
	mkdir -p "$BUNDLE/rootfs/bin" "$BUNDLE/rootfs/"{proc,sys,dev,tmp,data} "$SCRATCH/data"
	cp "$bb" "$BUNDLE/rootfs/bin/busybox"
	ln -s busybox "$BUNDLE/rootfs/bin/sh"
	ln -s busybox "$BUNDLE/rootfs/bin/mkfifo"
	ln -s busybox "$BUNDLE/rootfs/bin/nc"
	ln -s busybox "$BUNDLE/rootfs/bin/cat"
	ln -s busybox "$BUNDLE/rootfs/bin/sleep"
	(cd "$BUNDLE" && runc spec) || return 1
	# one process, no fork: read -t on a FIFO sleeps, $EPOCHREALTIME is the clock
	local loop="${1:-}"'mkfifo /tmp/f; exec 3<>/tmp/f; i=0; while :; do i=$((i+1));
		t=$EPOCHREALTIME; s=${t%.*}; u=${t#*.}; echo "$i $s${u%???}" >>/data/ticks;
		read -t 0.1 x <&3; done'
	# FORK=1: sleep(1) instead, a new process every 100 ms
	[ -z "${FORK:-}" ] || loop=${loop//read -t 0.1 x <&3/sleep 0.1}
	jq --arg loop "$loop" --arg data "$SCRATCH/data" '
		.process.terminal = false | .process.args = ["sh", "-c", $loop] |
		.root.readonly = false |
		.mounts += [{destination: "/data", type: "bind", source: $data,
			     options: ["rbind", "rw"]}]' \
		"$BUNDLE/config.json" >"$BUNDLE/config.new" &&
		mv "$BUNDLE/config.new" "$BUNDLE/config.json"
}

# bundle_edit JQ-FILTER [ARGS...]: change the bundle's config.json.
bundle_edit() {
	jq "$@" "$BUNDLE/config.json" >"$BUNDLE/config.new" &&
		mv "$BUNDLE/config.new" "$BUNDLE/config.json"
}

# seccomp_of HOST PID: "MODE FILTERS" from PID's status in HOST.
seccomp_of() {
	in_"$1" awk '/^Seccomp:/ { m = $2 } /^Seccomp_filters:/ { f = $2 } END { print m, f }' \
		"/proc/$2/status"
}

# rt HOST RUNTIME ARGS...: the runtime's own command in HOST.
rt() {
	local host=$1 runtime=$2
	shift 2
	if [ "$runtime" = crun ]; then
		in_"$host" crun --cgroup-manager=disabled "$@"
	else
		in_"$host" runc "$@"
	fi
}

# crun_cgroups RUNTIME: crun gets cgroup2 at /sys/fs/cgroup in each host.
crun_cgroups() {
	local h
	[ "$1" = crun ] || return 0
	for h in src dst; do
		in_$h mount -t cgroup2 none /sys/fs/cgroup || return 1
	done
}

# rt_cmd RUNTIME: the runtime's command line (words).
rt_cmd() {
	[ "$1" = crun ] && echo crun --cgroup-manager=disabled || echo runc
}

# start_container RUNTIME: run $CID in src, detached; wait for 20 ticks.
start_container() {
	make_bundle || return 1
	run_container "$1"
}

# run_container RUNTIME: start_container on the bundle made already.
run_container() {
	local runtime=$1
	crun_cgroups "$runtime" || return 1
	in_src sh -c 'cd "$1" && shift && exec "$@" </dev/null >>"$0" 2>&1' \
		"$SCRATCH/container.out" "$BUNDLE" $(rt_cmd "$runtime") run -d "$CID" ||
		{ cat "$SCRATCH/container.out" >&2; return 1; }
	wait_ticks "$TICKS" 20 || return 1
	INIT=$(rt src "$runtime" state "$CID" | jq -r .pid)
	[[ "$INIT" =~ ^[0-9]+$ ]] || { echo "no init PID in '$runtime state $CID'" >&2; return 1; }
	src_before_migration "$runtime"
}

# ---------------------------------------------------------------- network
# (bridge_hosts, start_client, stop_client and $CT_ADDR: lib/ctnet)

# start_net_container RUNTIME PRE: $CID with its own network namespace, a
# veth (eth0 inside, $VETH outside on phbr0) and $CT_ADDR; it runs the
# shell command PRE (an echo server: 'nc -l -p 7000 -e cat & ') first.
start_net_container() {
	local runtime=$1
	make_bundle "$2" || return 1
	crun_cgroups "$runtime" || return 1
	VETH=pv$BATS_TEST_NUMBER$((RANDOM % 1000))
	in_src sh -c 'cd "$1" && shift && exec "$@" </dev/null >>"$0" 2>&1' \
		"$SCRATCH/container.out" "$BUNDLE" $(rt_cmd "$runtime") create "$CID" ||
		{ cat "$SCRATCH/container.out" >&2; return 1; }
	INIT=$(rt src "$runtime" state "$CID" | jq -r .pid)
	# no IPv6: the container sends nothing unless asked (ARP replies), so
	# that the bridges learn where it is from its announcement only
	in_src nsenter -t "$INIT" -n sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 &&
		in_src ip link add "$VETH" type veth peer name eth0 netns "$INIT" &&
		in_src ip link set "$VETH" master phbr0 up &&
		in_src nsenter -t "$INIT" -n ip addr add "$CT_ADDR/24" dev eth0 &&
		in_src nsenter -t "$INIT" -n ip link set eth0 up &&
		in_src nsenter -t "$INIT" -n ip link set lo up &&
		rt src "$runtime" start "$CID" || return 1
	wait_ticks "$TICKS" 20 || return 1
	CT_MAC=$(in_src nsenter -t "$INIT" -n ip -br link show eth0 | awk '{print $3}')
	src_before_migration "$runtime"
}

# fdb_port HOST: the port of phbr0 in HOST behind which the container's MAC is.
fdb_port() {
	in_"$1" bridge fdb show br phbr0 | awk -v mac="$CT_MAC" '$1 == mac { print $3; exit }'
}

# listed HOST RUNTIME: the container's status in the runtime's list, or "none".
listed() {
	local st
	st=$(rt "$1" "$2" list --format json | jq -r --arg id "$CID" \
		'(. // [])[] | select(.id == $id) | .status')
	echo "${st:-none}"
}

assert_listed() {
	local got
	got=$(listed "$1" "$2")
	[ "$got" = "$3" ] || { echo "$2 list in $1 says $CID is '$got', not '$3'" >&2; return 1; }
}

migrate_container() {
	local runtime=$1
	shift
	fx_migrate -- --oci "$CID" --runtime "$runtime" "$@"
}

# cgroups_of HOST: the container's cgroup directories in HOST's own tree.
cgroups_of() {
	in_"$1" find /sys/fs/cgroup -type d -name "$CID" | sort
}

# src_before_migration RUNTIME: what the source holds of the container
# (SRC_CGROUPS, which runc has; crun runs without a cgroup manager here).
src_before_migration() {
	SRC_CGROUPS=$(cgroups_of src)
	[ "$1" != runc ] || [ -n "$SRC_CGROUPS" ] || { echo "runc made no cgroup in src" >&2; return 1; }
}

# assert_src_clean RUNTIME: nothing of the container is left on the source.
assert_src_clean() {
	local left
	left=$(cgroups_of src)
	[ -z "$left" ] || { echo "cgroups left in src: $left" >&2; return 1; }
	[ "$(cgroups_of dst)" = "$SRC_CGROUPS" ] ||
		{ echo "cgroups in dst: '$(cgroups_of dst)', not '$SRC_CGROUPS'" >&2; return 1; }
	in_src test ! -e "/run/$1/$CID" || { echo "/run/$1/$CID left in src" >&2; return 1; }
}

check_migrated() {
	local runtime=$1 pid out
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	assert_src_clean "$runtime" || return 1
	assert_listed dst "$runtime" running || return 1
	assert_listed src "$runtime" none || return 1
	ticks_advance "$TICKS" 20 10 || return 1
	check_ticks "$TICKS" >/dev/null || return 1
	pid=$(rt dst "$runtime" state "$CID" | jq -r .pid)
	pid_alive_in dst "$pid" || { echo "the state's init $pid does not run in dst" >&2; return 1; }
	pid_alive_in src "$INIT" && { echo "the old init $INIT still runs in src" >&2; return 1; }
	# the runtime's own commands work on the migrated container
	out=$(rt dst "$runtime" exec "$CID" sh -c 'echo in-$((6 * 7))') ||
		{ echo "$runtime exec failed in dst: $out" >&2; return 1; }
	[ "$out" = in-42 ] || { echo "$runtime exec printed '$out'" >&2; return 1; }
	rt dst "$runtime" kill "$CID" KILL || return 1
	wait_for 10 eval '[ "$(listed dst '"$runtime"')" = stopped ]' || return 1
	rt dst "$runtime" delete "$CID" || return 1
	assert_listed dst "$runtime" none
}

check_rolled_back() {
	local runtime=$1
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; return 1; }
	assert_listed src "$runtime" running || return 1
	assert_listed dst "$runtime" none || return 1
	pid_alive_in src "$INIT" || { echo "init $INIT no longer runs in src" >&2; return 1; }
	[ "$(rt src "$runtime" state "$CID" | jq -r .pid)" = "$INIT" ] || return 1
	[ "$(cgroups_of src)" = "$SRC_CGROUPS" ] ||
		{ echo "cgroups in src: '$(cgroups_of src)', not '$SRC_CGROUPS'" >&2; return 1; }
	ticks_advance "$TICKS" 20 10 || return 1
	check_ticks "$TICKS" >/dev/null || return 1
	assert_workdir_clean 10 || return 1
	fx_assert_src_workdir_clean
}

t_live() {
	start_container "$1"
	serve_start
	migrate_container "$1" --json
	check_migrated "$1"
	note "$1 live: $(jq -c '{frozen_ms, total_ms, iterations, tracking}' <<<"$output")"
}

t_stop() {
	start_container "$1"
	serve_start
	migrate_container "$1" --mode stop
	check_migrated "$1"
}

t_rollback() {
	require_fault dst.restored
	start_container "$1"
	serve_start PHAUL_FAULT=dst.restored
	migrate_container "$1"
	assert_fault_hit dst.restored
	check_rolled_back "$1"
}

t_net_veth() {
	local runtime=$1 pid
	bridge_hosts
	start_net_container "$runtime" ''
	in_dst busybox ping -c1 -W2 "$CT_ADDR" >/dev/null ||
		{ echo "the container's $CT_ADDR does not answer from dst before" >&2; return 1; }
	serve_start
	migrate_container "$runtime" --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	assert_listed dst "$runtime" running
	assert_listed src "$runtime" none
	in_dst ip -o link show "$VETH" | grep -q 'master phbr0' ||
		{ echo "no $VETH on phbr0 in dst" >&2; return 1; }
	refute in_src ip link show "$VETH"
	assert_src_clean "$runtime"
	# the container announced itself (gratuitous ARP): both bridges know
	# at once where its MAC is now, without its sending anything else
	wait_for 3 eval '[ "$(fdb_port dst)" = "$VETH" ]' ||
		{ echo "dst's bridge has $CT_MAC on '$(fdb_port dst)', not $VETH" >&2; return 1; }
	wait_for 3 eval '[ "$(fdb_port src)" = "$HOSTS_IF_SRC" ]' ||
		{ echo "src's bridge has $CT_MAC on '$(fdb_port src)', not $HOSTS_IF_SRC" >&2; return 1; }
	# the same address answers, now from the container in dst
	wait_for 10 in_dst busybox ping -c1 -W1 "$CT_ADDR"
	pid=$(rt dst "$runtime" state "$CID" | jq -r .pid)
	in_dst nsenter -t "$pid" -n ip -o addr show dev eth0 | grep -q "inet $CT_ADDR/24" ||
		{ echo "eth0 in the migrated container lacks $CT_ADDR" >&2; return 1; }
	ticks_advance "$TICKS" 20 10
	check_ticks "$TICKS" >/dev/null
}

t_net_tcp() {
	local runtime=$1
	bridge_hosts
	start_net_container "$runtime" 'nc -l -p 7000 -e cat & '
	start_client
	serve_start
	migrate_container "$runtime" --tcp-established --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	assert_listed dst "$runtime" running
	ticks_advance "$TICKS" 20 10
	sleep 1
	stop_client
	note "TCP client: $CLIENT_RES; migrate: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
	check_ticks "$TICKS" >/dev/null
}

t_net_rollback() {
	local runtime=$1
	require_fault dst.restored
	bridge_hosts
	start_net_container "$runtime" 'nc -l -p 7000 -e cat & '
	start_client
	serve_start PHAUL_FAULT=dst.restored
	migrate_container "$runtime" --tcp-established
	assert_fault_hit dst.restored
	check_rolled_back "$runtime"
	in_src ip -o link show "$VETH" | grep -q 'master phbr0' ||
		{ echo "$VETH left phbr0 in src" >&2; return 1; }
	refute in_dst ip link show "$VETH"
	sleep 1
	stop_client
	note "TCP client: $CLIENT_RES"
}

# t_oldpeer RUNTIME new-old|old-new: the container moves live between
# this phaul and an older one (lib/oldpeer), either way round
t_oldpeer() {
	local runtime=$1
	oldpeer_init || return 1
	[ -z "$OLDPEER_SKIP" ] || skip "$OLDPEER_SKIP"
	start_container "$runtime"
	if [ "$2" = new-old ]; then
		old_serve
		migrate_container "$runtime" --json
	else
		serve_start
		PHAUL=$OLD migrate_container "$runtime" --json
	fi
	check_migrated "$runtime"
	note "$runtime $2 live: $(jq -c '{frozen_ms, total_ms, bytes_sent}' <<<"$output")"
}

@test "runc: live over ssh (sshd in dst, serve --stdio, no daemon): the container moves" {
	start_container runc
	ssh_setup
	migrate_ssh -- --workdir "$SRC_WORKDIR" --oci "$CID" --runtime runc --json
	check_migrated runc
	grep -q "serving one migration over ssh" "$SERVE_LOG"
}

@test "runc: a container with its own network keeps its address, its veth on the bridge" {
	t_net_veth runc
}

@test "runc: an established TCP connection to the container survives" {
	t_net_tcp runc
}

@test "runc: a failure after the freeze leaves the container, its network and a TCP client as they were" {
	t_net_rollback runc
}

@test "crun: a container with its own network keeps its address, its veth on the bridge" {
	t_net_veth crun
}

@test "crun: an established TCP connection to the container survives" {
	t_net_tcp crun
}

@test "crun: a failure after the freeze leaves the container, its network and a TCP client as they were" {
	t_net_rollback crun
}

@test "runc: a container whose bundle is private to each host comes with --fs sync:" {
	local priv=$SCRATCH/priv h
	mkdir -p "$priv"
	for h in src dst; do
		in_$h mount -t tmpfs -o size=64m tmpfs "$priv" || return 1
	done
	make_bundle
	# the bundle is in src's tmpfs only; the tick log stays on shared storage
	in_src cp -a "$BUNDLE" "$priv/bundle"
	rm -rf "$BUNDLE"
	BUNDLE=$priv/bundle
	run_container runc
	refute in_dst test -e "$BUNDLE"
	policy_allow "oci_root = $priv" "sync_root = $priv"
	serve_start
	migrate_container runc --fs "sync:$priv" --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	in_dst cmp "$BUNDLE/rootfs/bin/busybox" "$(command -v busybox)"
	in_dst test -p "$BUNDLE/rootfs/tmp/f"
	note "bundle by sync: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
	check_migrated runc
	# the source's copy is only read: it stays, the destination has its own
	in_src test -f "$BUNDLE/config.json"
}

@test "runc: a container with a seccomp filter keeps it; its writes are tracked by uffd-wp" {
	make_bundle
	# a filter that kills the process for the very syscall the uffd-wp
	# tracker runs in it: phaul suspends the filter while it does
	bundle_edit '.linux.seccomp = {defaultAction: "SCMP_ACT_ALLOW",
		architectures: ["SCMP_ARCH_X86_64"],
		syscalls: [{names: ["sethostname"], action: "SCMP_ACT_ERRNO"},
			{names: ["userfaultfd"], action: "SCMP_ACT_KILL_PROCESS"}]}'
	run_container runc
	local before after pid
	before=$(seccomp_of src "$INIT")
	[ "${before%% *}" = 2 ] || { echo "runc gave the init no filter: '$before'" >&2; return 1; }
	serve_start
	migrate_container runc --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	pid=$(rt dst runc state "$CID" | jq -r .pid)
	after=$(seccomp_of dst "$pid")
	[ "$after" = "$before" ] || { echo "seccomp on dst: '$after', on src: '$before'" >&2; return 1; }
	[ "$(json .tracking)" = uffd-wp ] ||
		{ echo "tracking under seccomp: $(json .tracking), not uffd-wp" >&2; return 1; }
	check_migrated runc
}

# start_userns_container: a runc container in a user namespace of its own
# (identity mapping: the rootfs needs no chown).
start_userns_container() {
	make_bundle || return 1
	bundle_edit '.linux.namespaces += [{type: "user"}] |
		.linux.uidMappings = [{containerID: 0, hostID: 0, size: 65536}] |
		.linux.gidMappings = [{containerID: 0, hostID: 0, size: 65536}]' || return 1
	run_container runc
}

@test "runc: a container in a user namespace migrates in stop mode" {
	start_userns_container
	serve_start
	migrate_container runc --mode stop
	check_migrated runc
}

@test "runc: a container in a user namespace: live mode needs userfaultfd there" {
	start_userns_container
	serve_start
	migrate_container runc
	if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd)" = 1 ]; then
		check_migrated runc
	else
		[[ "$stderr" == *"vm.unprivileged_userfaultfd=1"* ]] ||
			{ echo "not the userfaultfd refusal: $stderr" >&2; return 1; }
		check_rolled_back runc
	fi
}

# A runc container whose process is mtouch (static) with SIZE MiB.
start_mtouch_container() {
	local size=$1
	make_bundle || return 1
	cc -O2 -static -std=gnu11 -D_GNU_SOURCE -o "$BUNDLE/rootfs/bin/mtouch" \
		"$REPO_ROOT/tests/workloads/mtouch.c" -l:libxxhash.a || return 1
	jq --arg size "$size" '.process.args = ["/bin/mtouch", "--size", $size, "--hot", "4",
		"--rate", "16", "--log", "/data/ticks"]' "$BUNDLE/config.json" >"$BUNDLE/config.new" &&
		mv "$BUNDLE/config.new" "$BUNDLE/config.json" || return 1
	in_src sh -c 'cd "$1" && exec runc run -d "$2" </dev/null >>"$0" 2>&1' \
		"$SCRATCH/container.out" "$BUNDLE" "$CID" || { cat "$SCRATCH/container.out" >&2; return 1; }
	wait_for 60 grep -q '^READY' "$TICKS" || { echo "mtouch never got READY" >&2; return 1; }
	ticks_advance "$TICKS" 30 10
}

# t_mtouch MIB MODE [LINK]: a runc container running mtouch over MIB MiB
# migrates in MODE (over LINK, e.g. 1gbit); on dst every page verifies
t_mtouch() {
	local mib=$1 mode=$2
	[ -z "${3:-}" ] || _hosts_rate "$3"
	start_mtouch_container "$mib"
	serve_start
	migrate_container runc --mode "$mode" --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	assert_listed dst runc running
	assert_listed src runc none
	ticks_advance "$TICKS" 30 10
	check_ticks "$TICKS" >/dev/null
	rt dst runc kill "$CID" USR1
	wait_for 30 grep -q '^VERIFY' "$TICKS"
	grep '^VERIFY' "$TICKS" | tail -n1 | grep -q "^VERIFY PASS pages=$((mib * 256)) " ||
		{ echo "memory check on dst: $(grep '^VERIFY' "$TICKS" | tail -n1)" >&2; return 1; }
	note "runc $mib MiB $mode${3:+ at $3}: $(jq -c '{frozen_ms, total_ms, iterations, bytes_sent,
		final_pages, fetched: .postcopy.pages_fetched}' <<<"$output"), workload pause $(check_ticks "$TICKS") ms"
}

@test "runc: a 256 MiB container migrates live over 1 Gbit/s, every page intact" {
	t_mtouch 256 live 1gbit
}

@test "runc: a 64 MiB container migrates in lazy mode (post-copy from the source), every page intact" {
	t_mtouch 64 lazy 1gbit
	(($(json .postcopy.pages_fetched) > 0)) || { echo "no page came by post-copy: $output" >&2; false; }
}

@test "runc: a 64 MiB container migrates in hybrid mode, every page intact" {
	t_mtouch 64 hybrid 1gbit
}

@test "runc: a container that forks a process every 100 ms migrates live" {
	FORK=1 start_container runc
	serve_start
	migrate_container runc --json
	check_migrated runc
	note "forking container: $(jq -c '{frozen_ms, iterations}' <<<"$output"); dst: $(grep -o '[0-9]* processes forked since the preflight' "$SERVE_LOG" || echo 'no new process at the freeze')"
}

@test "runc: a container migrates live; runc shows it on dst only, exec/kill/delete work" {
	t_live runc
}

@test "runc: stop mode migrates the container too" {
	t_stop runc
}

@test "runc: a failure at dst.restored leaves it running and listed on src only" {
	t_rollback runc
}

@test "crun: a container migrates live; crun shows it on dst only, exec/kill/delete work" {
	t_live crun
}

@test "crun: stop mode migrates the container too" {
	t_stop crun
}

@test "crun: a failure at dst.restored leaves it running and listed on src only" {
	t_rollback crun
}

@test "runc, old peer: a new source moves the container live to an older destination" {
	t_oldpeer runc new-old
}

@test "runc, old peer: an older source moves the container live to a new destination" {
	t_oldpeer runc old-new
}

@test "crun, old peer: a new source moves the container live to an older destination" {
	t_oldpeer crun new-old
}
