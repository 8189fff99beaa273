#!/usr/bin/env bats
# Podman containers migrated between the two test hosts with `phaul
# migrate --podman NAME`.  Each host has its own podman: its own
# /var/lib/containers (a directory of the test bound there), /run and
# /dev/shm (tmpfs), cgroup tree (a cgroup namespace), and a containers.conf
# of the test (runc, cgroupfs: crun fails on this machine's hybrid cgroup
# layout; rlimits this machine's root may set).  The image is made
# offline: `podman import` of a busybox-static rootfs, in both hosts.
#
# The container runs mtouch (the workload checks every page of its memory
# against a shadow checksum on SIGUSR1) from the machine's build tree, and
# a busybox echo server; it is on podman's default network, whose bridge
# podman0 in each host also carries the hosts' link (so the container
# keeps its address wherever it runs), and a TCP client on a third host
# on that bridge keeps one connection across the migration.
#
#   flock /tmp/phaul-ctr.lock bats tests/e2e/52-podman.bats
#
# PODMAN_MIB (default 64) sizes the container's memory.

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ctnet
load lib/apps
load lib/ctapps

: "${PODMAN_MIB:=64}"
PODMAN_CLI_ADDR=10.88.0.200

setup() {
	command -v podman >/dev/null || skip "podman is not installed"
	HOSTS_CGROUPNS=1
	hosts_setup "${PODMAN_RATE:-1gbit}" || return 1
	phaul_setup || return 1
	fx_setup
	NAME=php$$-$BATS_TEST_NUMBER
	DATA=$SCRATCH/data
	mkdir -p "$DATA"
	podman_conf || return 1
	local h
	for h in src dst; do
		mkdir -p "$SCRATCH/$h-containers" || return 1
		in_$h mount -t tmpfs -o mode=0755 tmpfs /run &&
			in_$h mount -t tmpfs tmpfs /dev/shm &&
			in_$h mount --bind "$SCRATCH/$h-containers" /var/lib/containers &&
			own_cgroups $h || return 1
	done
	podman_image || return 1
	# podman0, podman's default network's bridge, with its gateway, made
	# ahead in each host, takes the hosts' link: one layer-2 segment
	bridge_hosts podman0 10.88.0.1/16 || return 1
	# the daemon's policy: podman's storage and runtime state, the binds
	# of the build tree, /usr, the data dir and the cgroup tree
	policy_allow "podman = yes" "oci_root = $SCRATCH/src-containers" \
		"oci_root = $SCRATCH/dst-containers" "oci_root = /var/lib/containers" \
		"oci_root = /run/runc" "bind_root = /var/lib/containers" \
		"bind_root = /run/containers" "bind_root = /usr" "bind_root = $WORKLOADS" \
		"bind_root = $DATA" "bind_root = /sys/fs/cgroup"
}

teardown() {
	[ -z "${CLIENT:-}" ] || kill "$CLIENT" 2>/dev/null
	third_host_stop
	local h
	for h in src dst; do
		in_$h podman rm --force --time 0 --all >/dev/null 2>&1
	done
	hosts_teardown
}

# podman_conf: the test's containers.conf, for podman and phaul alike.
podman_conf() {
	export CONTAINERS_CONF=$SCRATCH/containers.conf
	cat >"$CONTAINERS_CONF" <<-'EOF'
		[containers]
		default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
		[engine]
		runtime = "runc"
		cgroup_manager = "cgroupfs"
		events_logger = "file"
	EOF
}

# podman_image: localhost/phaul-bb:1 in both hosts, from a busybox-static
# rootfs whose /lib and /lib64 lead into /usr (bound from the machine).
podman_image() {
	local bb root=$SCRATCH/rootfs h a
	bb=$(command -v busybox) || { echo "busybox-static is not installed" >&2; return 1; }
	mkdir -p "$root/bin" "$root"/{proc,sys,dev,tmp,etc,data,w,usr} || return 1
	cp "$bb" "$root/bin/busybox" || return 1
	for a in sh nc cat sleep; do ln -s busybox "$root/bin/$a" || return 1; done
	ln -s usr/lib "$root/lib" && ln -s usr/lib64 "$root/lib64" &&
		tar -C "$root" -cf "$SCRATCH/rootfs.tar" . || return 1
	for h in src dst; do
		in_$h podman import -q "$SCRATCH/rootfs.tar" localhost/phaul-bb:1 >/dev/null || return 1
	done
}


# start_podman [MIB [TAG]]: the container in src: mtouch of MIB MiB (its
# log $LOG, mtouchTAG.log; its init $PID in src) and an echo server on
# port 7000.
start_podman() {
	local mib=${1:-$PODMAN_MIB} log=mtouch${2:-}.log
	LOG=$DATA/$log
	FX_MTOUCH_PAGES=$((mib * 256))
	in_src podman run -d --name "$NAME" -v /usr:/usr:ro -v "$WORKLOADS:/w:ro" \
		-v "$DATA:/data" localhost/phaul-bb:1 sh -c \
		"nc -l -p 7000 -e cat & exec /w/mtouch --size $mib --hot 4 --rate 16 --log /data/$log" \
		>/dev/null || return 1
	wait_for 60 grep -q '^READY' "$LOG" || { echo "mtouch never got READY" >&2; return 1; }
	ticks_advance "$LOG" 30 || return 1
	PID=$(in_src podman inspect --format '{{.State.Pid}}' "$NAME")
	CID=$(in_src podman inspect --format '{{.Id}}' "$NAME")
	IP=$(in_src podman inspect --format '{{.NetworkSettings.IPAddress}}' "$NAME")
	[[ "$IP" == 10.88.* ]] || { echo "the container has no address: '$IP'" >&2; return 1; }
}

# start_podman_client: a third host on src's podman0 holds a connection to
# the container's echo server (lib/ctnet's client).
start_podman_client() {
	CLI_BRIDGE=podman0 CLI_ADDR=$PODMAN_CLI_ADDR/16 CLI_PING=$IP third_host || return 1
	CLIENT_IN=cli CT_ADDR=$IP start_client ||
		{ echo "client: $(cat "$SCRATCH/client.res" 2>&1)" >&2; return 1; }
}

# podman_state HOST: "STATUS ID IMAGE" of $NAME in HOST, or "none".
podman_state() {
	in_"$1" podman container exists "$NAME" || { echo none; return 0; }
	in_"$1" podman inspect --format '{{.State.Status}} {{.Id}} {{.ImageName}}' "$NAME"
}

# assert_on_dst: podman in dst runs the container (same name, ID and image)
# and its commands work on it; src has it no more.
assert_on_dst() {
	local st
	st=$(podman_state dst)
	[ "$st" = "running $CID localhost/phaul-bb:1" ] ||
		{ echo "podman ps in dst: '$st'" >&2; return 1; }
	[ "$(podman_state src)" = none ] || { echo "src still has it: $(podman_state src)" >&2; return 1; }
	# the init podman knows is the one running mtouch (mtouch's PID now)
	PID=$(in_dst podman inspect --format '{{.State.Pid}}' "$NAME")
	[ "$(in_dst cat "/proc/$PID/comm")" = mtouch ] ||
		{ echo "podman inspect in dst names $PID, not mtouch" >&2; return 1; }
	[ "$(in_dst podman exec "$NAME" cat /proc/1/comm)" = mtouch ] ||
		{ echo "podman exec in dst failed" >&2; return 1; }
	[ "$(in_dst podman inspect --format '{{.NetworkSettings.IPAddress}}' "$NAME")" = "$IP" ] ||
		{ echo "the container lost its address" >&2; return 1; }
	in_dst podman logs "$NAME" >/dev/null || { echo "podman logs in dst failed" >&2; return 1; }
}

migrate_podman() {
	fx_migrate -- --podman "$NAME" --tcp-established "$@"
}

@test "podman: live over 1 Gbit/s, every page verified, the TCP client stays, podman adopts it" {
	serve_start
	start_podman
	start_podman_client
	migrate_podman --json
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; cat "$SERVE_LOG" >&2; return 1; }
	assert_on_dst
	fx_verify_mtouch dst
	ticks_advance "$LOG" 20
	stop_client
	# podman's own checkpoint works on it there (runc's state is right)
	in_dst podman container checkpoint --leave-running "$NAME" >/dev/null
	[ "$(podman_state dst)" = "running $CID localhost/phaul-bb:1" ]
	ticks_advance "$LOG" 20
	in_dst podman stop --time 2 "$NAME" >/dev/null
	[ "$(podman_state dst)" = "exited $CID localhost/phaul-bb:1" ]
	local frozen cgap
	frozen=$(json .frozen_ms) cgap=${CLIENT_RES##* }
	note "frozen $frozen ms; workload's largest gap $(check_ticks "$LOG") ms; TCP client's largest gap $cgap ms ($CLIENT_RES)"
	# the client waits for its next retransmission after the container runs
	# (at most about twice the time it had waited, plus its minimum RTO);
	# with the bridges here dropping the restored sockets' first ARP request
	# it waited for the kernel to ask again, a second later: frozen + ~1 s
	((cgap < frozen + 900 || cgap < 2 * frozen + 300)) ||
		{ echo "the TCP client waited $cgap ms, frozen $frozen ms" >&2; return 1; }
}

# mode_case MODE: a smaller container in MODE, adopted by podman in dst.
mode_case() {
	serve_start
	start_podman 32
	migrate_podman --mode "$1" --json
	[ "$status" -eq 0 ] || { echo "migrate --mode $1 failed: $stderr" >&2; return 1; }
	assert_on_dst
	fx_verify_mtouch dst
	ticks_advance "$LOG" 20
	note "$1: frozen $(json .frozen_ms) ms; workload's largest gap $(check_ticks "$LOG") ms"
}

@test "podman: stop mode" { mode_case stop; }
@test "podman: lazy mode" { mode_case lazy; }
@test "podman: hybrid mode" { mode_case hybrid; }

@test "podman: a failure after the freeze leaves it running on the source, untouched" {
	serve_start PHAUL_FAULT=dst.restored:fail
	start_podman 32
	start_podman_client
	local before
	before=$(podman_state src)
	migrate_podman
	[ "$status" -ne 0 ]
	assert_fault_hit dst.restored
	# the same container, the same init, running on; nothing of it in dst
	[ "$(podman_state src)" = "$before" ]
	[ "$(in_src podman inspect --format '{{.State.Pid}}' "$NAME")" = "$PID" ]
	[ "$(podman_state dst)" = none ]
	refute in_dst test -e "/run/runc/$CID"
	ticks_advance "$LOG" 20
	fx_verify_mtouch src
	stop_client
	# and it migrates after all
	serve_stop
	serve_start
	migrate_podman
	[ "$status" -eq 0 ] || { echo "migrate after the rollback failed: $stderr" >&2; return 1; }
	assert_on_dst
}

@test "podman: the preflight refuses a destination without the image, and says so" {
	serve_start
	start_podman 16
	in_dst podman rmi localhost/phaul-bb:1 >/dev/null
	migrate_podman
	[ "$status" -ne 0 ]
	[[ "$stderr" == *"image localhost/phaul-bb:1 "*"is not on the destination"* ]] ||
		{ echo "stderr: $stderr" >&2; return 1; }
	[ "$(podman_state src)" = "running $CID localhost/phaul-bb:1" ]
	[ "$(podman_state dst)" = none ]
	ticks_advance "$LOG" 20
}

# ---------------------------------------------------------------- measurement

# max_gap_after FILE N: the longest wall-clock gap (ms) between ticks of
# mtouch's log FILE after tick N.
max_gap_after() {
	awk -v from="$2" 'NF == 2 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ {
		if ($1 > from && last) { g = $2 - last; if (g > max) max = g }
		last = $2 } END { print max + 0 }' "$1"
}

ms() { date +%s%3N; }

# PHAUL_BENCH=1: two containers of 256 MiB (PODMAN_BENCH_MIB), the same
# workload, from src to dst over 1 Gbit/s in one run: the first the way
# Podman offers (`podman container checkpoint --export`, the file over the
# link, `podman container restore --import`), the second live with phaul.
# The container's own stall for each: the largest gap between mtouch's
# ticks (its wall clock).
@test "bench: podman 256 MiB over 1 Gbit/s, phaul live vs podman checkpoint/restore" {
	[ -n "${PHAUL_BENCH:-}" ] || skip "measurement: run with PHAUL_BENCH=1"
	local mib=${PODMAN_BENCH_MIB:-256} base=$NAME n t0 t1 t2 t3 tar=$SCRATCH/ck.tar rx left
	serve_start
	# Podman's way
	NAME=$base-a
	start_podman "$mib" a
	n=$(last_tick "$LOG")
	in_src mkdir -p "$SCRATCH/src-local"
	t0=$(ms)
	in_src podman container checkpoint --export "$SCRATCH/src-local/ck.tar" "$NAME" >/dev/null
	t1=$(ms)
	in_dst busybox nc -l -p 9000 >"$tar" &
	rx=$!
	wait_for 5 eval 'in_dst ss -Hltn "sport = :9000" | grep -q 9000'
	in_src bash -c 'cat "$1" >"/dev/tcp/$2/9000"' sh "$SCRATCH/src-local/ck.tar" "$DST_ADDR"
	wait "$rx"
	t2=$(ms)
	in_dst podman container restore --import "$tar" >/dev/null
	t3=$(ms)
	left=$(podman_state src)
	PID=$(in_dst podman inspect --format '{{.State.Pid}}' "$NAME")
	fx_verify_mtouch dst
	ticks_advance "$LOG" 30
	local podman_gap
	podman_gap=$(max_gap_after "$LOG" "$n")
	note "podman container, $mib MiB, 1 Gbit/s; podman's export: $(stat -c %s "$tar") bytes"
	note "podman's way: checkpoint --export $((t1 - t0)) ms + copy $((t2 - t1)) ms + restore --import $((t3 - t2)) ms = $((t3 - t0)) ms; workload's largest gap $podman_gap ms"
	note "podman's export leaves the container on its source as: ${left%% *}"
	in_src podman rm --force "$NAME" >/dev/null
	in_dst podman rm --force --time 0 "$NAME" >/dev/null
	# phaul's
	NAME=$base-b
	start_podman "$mib" b
	n=$(last_tick "$LOG")
	migrate_podman --json -v
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; return 1; }
	assert_on_dst
	fx_verify_mtouch dst
	ticks_advance "$LOG" 30
	note "of phaul's frozen time: $(grep -o "podman's export of .*" <<<"$stderr"); $(grep -o 'podman made container .* in [0-9]* ms' "$SERVE_LOG")"
	note "phaul live:   frozen $(json .frozen_ms) ms, workload's largest gap $(max_gap_after "$LOG" "$n") ms (migration $(json .total_ms) ms, $(json .iterations) rounds)"
}
