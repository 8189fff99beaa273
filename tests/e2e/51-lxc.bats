#!/usr/bin/env bats
# LXC containers migrated between the two test hosts with
# `phaul migrate --lxc NAME --lxcpath DIR`.  The container's rootfs is
# busybox-static in $SCRATCH (the storage both hosts see); each host has
# its own lxcpath (a tmpfs on the same path) and its own /run (LXC's
# locks).  The container runs a TCP echo server and a shell loop that
# appends numbered ticks to /data/ticks, inside its rootfs; its veth is
# on a bridge phbr0 that joins both hosts at layer 2.  The memory tests
# run mtouch instead (tests/workloads) and check every page on dst.
#
#   bats tests/e2e/51-lxc.bats

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ctnet
load lib/ssh
load lib/oldpeer

setup() {
	hosts_setup || return 1
	phaul_setup || return 1
	fx_setup
	CT=phl$$-$BATS_TEST_NUMBER
	ROOTFS=$SCRATCH/rootfs
	RDIR=$ROOTFS
	LXCPATH=$SCRATCH/lxcpath
	TICKS=$ROOTFS/data/ticks
	mkdir -p "$LXCPATH"
	# the daemon's policy: the lxcpath, the rootfs, the /data bind (BIND=1)
	policy_allow "lxc_root = $LXCPATH" "lxc_root = $ROOTFS" "bind_root = $SCRATCH/data"
	local h
	for h in src dst; do
		in_$h mount -t tmpfs -o mode=0755 tmpfs /run &&
			in_$h mount -t tmpfs -o mode=0755 tmpfs "$LXCPATH" &&
			host_sysfs $h || return 1
	done
}

# host_sysfs HOST: a sysfs of the host's own network namespace on /sys
# (LXC looks for bridges there), the machine's cgroups kept under it.
host_sysfs() {
	local d=$SCRATCH/sys-$1
	mkdir -p "$d"
	in_$1 sh -c 'mount -t sysfs sysfs "$0" && mount --rbind /sys/fs/cgroup "$0/fs/cgroup" &&
		mount --move "$0" /sys' "$d"
}

teardown() {
	hosts_teardown
	local rc=$?
	# LXC's cgroups (the machine's, shared by the hosts), named after $CT
	find /sys/fs/cgroup -mindepth 1 -depth -type d \
		\( -name "lxc.payload.$CT*" -o -name "lxc.monitor.$CT*" \) -exec rmdir {} + 2>/dev/null
	return $rc
}

# make_rootfs: busybox, the tick loop after an echo server on port 7000,
# written to $RDIR (the rootfs as the machine sees it from the source).
make_rootfs() {
	local bb x
	bb=$(command -v busybox) || { echo "busybox-static is not installed" >&2; return 1; }
	mkdir -p "$RDIR/bin" "$RDIR/"{proc,sys,dev,tmp,data}
	cp "$bb" "$RDIR/bin/busybox"
	for x in sh mkfifo nc cat sleep; do
		ln -s busybox "$RDIR/bin/$x"
	done
	# one process for the loop, no fork: read -t on a FIFO sleeps
	cat >"$RDIR/init.sh" <<'EOF'
#!/bin/sh
# hold the console (when there is one), as a getty would
if [ -c /dev/console ]; then exec 5<>/dev/console; cat <&5 >>/data/console.in & fi
nc -l -p 7000 -e cat &
mkfifo /tmp/f; exec 3<>/tmp/f; i=0
while :; do
	i=$((i+1)); t=$EPOCHREALTIME; s=${t%.*}; u=${t#*.}
	echo "$i $s${u%???}" >>/data/ticks
	read -t 0.1 x <&3
done
EOF
	chmod +x "$RDIR/init.sh"
}

# userns_rootfs: the rootfs owned by the container's root (100000), and
# the test's directories above it searchable by it (bats makes them 0700).
userns_rootfs() {
	local d=$RDIR
	chown -R 100000:100000 "$RDIR" || return 1
	while [ "$d" != "$BATS_RUN_TMPDIR" ] && [ "$d" != / ]; do
		d=$(dirname "$d")
		setfacl -m u:100000:x "$d" || return 1
	done
}

# lxc_tool HOST CMD ARGS...: an LXC tool in HOST, on $CT under $LXCPATH.
lxc_tool() {
	local host=$1 cmd=$2
	shift 2
	in_"$host" "$cmd" -n "$CT" -P "$LXCPATH" "$@"
}

# start_container: $CT in src, its veth on phbr0 with $CT_ADDR; 20 ticks.
# No console (lxc.console.path = none) unless CONSOLE=1: LXC's default, a
# pty of its monitor bound on /dev/console.  BIND=1: /data is a bind of
# $SCRATCH/data (the ticks go there).  USERNS=1: in a user namespace
# (root is 100000 outside), the rootfs owned accordingly.
start_container() {
	local console='lxc.console.path = none' bind='# no bind mount' idmap='# no idmap'
	local net=$'lxc.net.0.type = veth\nlxc.net.0.link = phbr0\nlxc.net.0.name = eth0
lxc.net.0.flags = up\nlxc.net.0.ipv4.address = '"$CT_ADDR/24"
	[ "${NET:-}" != empty ] || net='lxc.net.0.type = empty'
	[ -z "${CONSOLE:-}" ] || console='# a console: LXC default'
	if [ -n "${DEFAULT:-}" ]; then
		# LXC's default config: /etc/lxc/default.conf (on phbr0), and
		# common.conf as LXC's distribution templates include it
		console='# a console: LXC default'
		net="$(grep -v '^lxc.net.0.link' /etc/lxc/default.conf)
lxc.net.0.link = phbr0
lxc.net.0.ipv4.address = $CT_ADDR/24
lxc.include = /usr/share/lxc/config/common.conf"
	fi
	if [ -n "${USERNS:-}" ]; then
		idmap=$'lxc.idmap = u 0 100000 65536\nlxc.idmap = g 0 100000 65536\nlxc.mount.auto = proc:mixed'
	fi
	if [ -n "${BIND:-}" ]; then
		mkdir -p "$SCRATCH/data"
		bind="lxc.mount.entry = $SCRATCH/data data none bind,create=dir 0 0"
		TICKS=$SCRATCH/data/ticks
	fi

	make_rootfs || return 1
	[ -z "${USERNS:-}" ] || userns_rootfs || return 1
	bridge_hosts || return 1
	in_src mkdir -p "$LXCPATH/$CT" &&
		in_src sh -c 'cat >"$0"' "$LXCPATH/$CT/config" <<EOF || return 1
lxc.uts.name = $CT
lxc.rootfs.path = dir:$ROOTFS
$console
$bind
$idmap
lxc.init.cmd = /init.sh
$net
EOF
	lxc_tool src lxc-start -l DEBUG -o "$SCRATCH/lxc-start.log" ||
		{ tail -n 20 "$SCRATCH/lxc-start.log" >&2; return 1; }
	wait_ticks "$TICKS" 20 || return 1
	INIT=$(lxc_tool src lxc-info -p -H)
	[[ "$INIT" =~ ^[0-9]+$ ]] || { echo "no init PID from lxc-info: '$INIT'" >&2; return 1; }
}

# start_mtouch SIZE: $CT (no network) running mtouch with SIZE MiB.
start_mtouch() {
	make_rootfs || return 1
	cc -O2 -static -std=gnu11 -D_GNU_SOURCE -o "$RDIR/bin/mtouch" \
		"$REPO_ROOT/tests/workloads/mtouch.c" -l:libxxhash.a || return 1
	in_src mkdir -p "$LXCPATH/$CT" &&
		in_src sh -c 'cat >"$0"' "$LXCPATH/$CT/config" <<EOF || return 1
lxc.uts.name = $CT
lxc.rootfs.path = dir:$ROOTFS
lxc.console.path = none
lxc.init.cmd = /bin/mtouch --size $1 --hot 4 --rate 16 --log /data/ticks
lxc.net.0.type = empty
EOF
	lxc_tool src lxc-start -l DEBUG -o "$SCRATCH/lxc-start.log" ||
		{ tail -n 20 "$SCRATCH/lxc-start.log" >&2; return 1; }
	wait_for 60 grep -q '^READY' "$TICKS" || { echo "mtouch never got READY" >&2; return 1; }
	ticks_advance "$TICKS" 30 10
}

# t_memory MODE SIZE: every page of mtouch's SIZE MiB intact on dst.
t_memory() {
	local pages=$(($2 * 256)) pid
	start_mtouch "$2"
	serve_start
	migrate_container --mode "$1" --json
	assert_migrated
	ticks_advance "$TICKS" 30 10
	pid=$(lxc_tool dst lxc-info -p -H)
	in_dst kill -USR1 "$pid"
	# a whole line: a reader may see a write in progress
	wait_for 30 grep -qE '^VERIFY (PASS .* ms=[0-9]+|FAIL .*)$' "$TICKS"
	grep '^VERIFY' "$TICKS" | tail -n1 | grep -q "^VERIFY PASS pages=$pages " ||
		{ echo "memory check on dst: $(grep '^VERIFY' "$TICKS" | tail -n1)" >&2; return 1; }
	note "lxc $1, $2 MiB: $(jq -c '{frozen_ms, total_ms, iterations, final_pages}' <<<"$output"), workload pause $(check_ticks "$TICKS") ms"
	lxc_tool dst lxc-stop -k
}

# state HOST: RUNNING, STOPPED, or none when HOST's LXC does not list $CT.
state() {
	in_"$1" lxc-ls -P "$LXCPATH" -1 | grep -qx "$CT" || { echo none; return 0; }
	lxc_tool "$1" lxc-info -s -H
}

assert_state() {
	local got
	got=$(state "$1")
	[ "$got" = "$2" ] || { echo "LXC in $1 says $CT is '$got', not '$2'" >&2; return 1; }
}

# assert_migrated: migrate succeeded; LXC lists $CT running in dst only,
# with the init it restored, as soon as migrate has returned.
assert_migrated() {
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	in_dst lxc-ls -P "$LXCPATH" --running -1 | grep -qx "$CT" ||
		{ echo "lxc-ls --running in dst does not list $CT" >&2; return 1; }
	assert_state dst RUNNING || return 1
	pid_alive_in dst "$(lxc_tool dst lxc-info -p -H)" ||
		{ echo "the init LXC names in dst does not run" >&2; return 1; }
	assert_state src none
}

# migrate_live [ARGS...]: $CT migrates (live unless ARGS say otherwise)
# and ticks on in dst (in $DST_TICKS if set); DST_INIT is its init there.
migrate_live() {
	serve_start
	migrate_container --json "$@"
	assert_migrated || return 1
	[ -z "${DST_TICKS:-}" ] || TICKS=$DST_TICKS
	ticks_advance "$TICKS" 20 10 || return 1
	check_ticks "$TICKS" >/dev/null || return 1
	DST_INIT=$(lxc_tool dst lxc-info -p -H)
}

migrate_container() {
	fx_migrate -- --lxc "$CT" --lxcpath "$LXCPATH" --tcp-established "$@"
}

# console_on_dst: lxc-console on dst reaches the container's console both
# ways: what the container writes on /dev/console shows, what is typed
# reaches init.sh's reader (/data/console.in).
console_on_dst() {
	local fifo=$SCRATCH/console.fifo out=$SCRATCH/console.out pid
	mkfifo "$fifo" || return 1
	# stdin opened read-write: never at EOF
	pid=$(start_in_dst -o "$out" sh -c 'exec timeout 30 lxc-console -n "$0" -P "$1" -t 0 0<>"$2"' \
		"$CT" "$LXCPATH" "$fifo") || return 1
	wait_for 5 grep -q "Connected to tty 0" "$out" ||
		{ echo "lxc-console did not connect in dst: $(cat "$out")" >&2; return 1; }
	lxc_tool dst lxc-attach -- /bin/sh -c 'echo out-$((6 * 7)) >/dev/console' || return 1
	wait_for 5 grep -q "out-42" "$out" ||
		{ echo "lxc-console in dst did not show the console's output: $(cat "$out")" >&2; return 1; }
	echo "in-$((6 * 7))" >"$fifo"
	wait_for 5 grep -qx "in-42" "$RDIR/data/console.in" ||
		{ echo "the container did not read what lxc-console typed" >&2; return 1; }
	in_dst kill "$pid"
}

@test "lxc: a container migrates live with its address and a TCP connection; LXC shows it on dst only" {
	start_container
	start_client
	serve_start
	migrate_container --json
	assert_migrated
	pid=$(lxc_tool dst lxc-info -p -H)
	pid_alive_in dst "$pid" || { echo "lxc-info's init $pid does not run in dst" >&2; return 1; }
	pid_alive_in src "$INIT" && { echo "the old init $INIT still runs in src" >&2; return 1; }
	in_dst lxc-ls -P "$LXCPATH" --running | grep -qw "$CT" ||
		{ echo "lxc-ls --running in dst does not show $CT" >&2; return 1; }
	in_dst nsenter -t "$pid" -n ip -o addr show dev eth0 | grep -q "inet $CT_ADDR/24" ||
		{ echo "eth0 in the migrated container lacks $CT_ADDR" >&2; return 1; }
	ticks_advance "$TICKS" 20 10
	sleep 1
	stop_client
	note "lxc live: $(jq -c '{frozen_ms, total_ms, iterations}' <<<"$output"); TCP client: $CLIENT_RES; workload pause $(check_ticks "$TICKS") ms"
	# LXC's own commands work on it there
	out=$(lxc_tool dst lxc-attach -- /bin/sh -c 'echo in-$((6 * 7))') ||
		{ echo "lxc-attach failed in dst: $out" >&2; return 1; }
	[ "$out" = in-42 ] || { echo "lxc-attach printed '$out'" >&2; return 1; }
	lxc_tool dst lxc-stop -k
	assert_state dst STOPPED
}

# t_fail SIDE POINT: a fault at POINT (in the daemon for dst, in migrate
# for src) after the freeze; the container must run on in src as before.
t_fail() {
	local side=$1 point=$2 menv=()
	require_fault "${point%%:*}"
	start_container
	start_client
	if [ "$side" = dst ]; then
		serve_start PHAUL_FAULT="$point"
	else
		serve_start
		menv=(PHAUL_FAULT="$point")
	fi
	fx_migrate "${menv[@]}" -- --lxc "$CT" --lxcpath "$LXCPATH" --tcp-established
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; return 1; }
	[ "$side" = src ] || assert_fault_hit "${point%%:*}"
	assert_state src RUNNING
	assert_state dst none
	[ "$(lxc_tool src lxc-info -p -H)" = "$INIT" ] || { echo "src's init changed" >&2; return 1; }
	in_src busybox ping -c1 -W2 "$CT_ADDR" >/dev/null ||
		{ echo "the container's $CT_ADDR does not answer in src" >&2; return 1; }
	ticks_advance "$TICKS" 20 10
	check_ticks "$TICKS" >/dev/null
	sleep 1
	stop_client
	note "$point: TCP client: $CLIENT_RES"
	assert_workdir_clean 10
	fx_assert_src_workdir_clean
	lxc_tool src lxc-stop -k
}

@test "lxc: a failure at dst.restored leaves it running and listed on src, its network and TCP client as they were" {
	t_fail dst dst.restored
}

@test "lxc: a failure at src.commit, the tree held by the hook on dst, leaves it on src" {
	t_fail src src.commit
}

@test "lxc: a container with a console migrates live; its console is LXC's new pty on dst" {
	CONSOLE=1 start_container
	migrate_live
	pid=$DST_INIT
	# /dev/console in the container is a pty again (the new monitor's),
	# and the init's fd 5 on it too
	in_dst sh -c 'grep " /dev/console " /proc/$0/mountinfo' "$pid" | grep -q devpts ||
		{ echo "no devpts console in the migrated container" >&2; return 1; }
	in_dst readlink "/proc/$pid/fd/5" | grep -q '^/dev/pts/' ||
		{ echo "the init's fd 5 is not on a pty: $(in_dst readlink /proc/$pid/fd/5)" >&2; return 1; }
	console_on_dst
	note "lxc with a console: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

@test "lxc: the destination's session killed while it holds the restored tree leaves it on src" {
	t_fail dst dst.restored:kill
}

# LXC restored it (lxc-checkpoint -r exited 0) but the daemon's lxc-info
# (a fake in its PATH) does not list it running: the daemon waits for it
# (1 s) and says so, and the commit stands: the tree has run on dst since
# CRIU let it go, resuming src's copy would run it twice.
@test "lxc: a restored container LXC does not list at once: the daemon waits, warns, and commits" {
	local fake=$SCRATCH/fakebin t0
	mkdir -p "$fake"
	printf '#!/bin/sh\nexit 0\n' >"$fake/lxc-info"
	chmod +x "$fake/lxc-info"
	start_container
	serve_start PATH="$fake:$PATH"
	t0=$SECONDS
	migrate_container --json
	assert_migrated
	grep -q "LXC does not list container $CT running after its restore" "$SERVE_LOG" ||
		{ echo "the daemon did not say it" >&2; return 1; }
	ticks_advance "$TICKS" 20 10
	check_ticks "$TICKS" >/dev/null
	lxc_tool dst lxc-stop -k
}

# LXC's restore fails before it runs CRIU (the daemon's PATH finds a
# fake criu, too old for LXC; phaul runs its own by absolute path): the
# migration says LXC's own error, and the container runs on in src.
@test "lxc: LXC failing before it runs CRIU is reported in LXC's words; the container runs on in src" {
	local fake=$SCRATCH/fakebin
	mkdir -p "$fake"
	printf '#!/bin/sh\necho "Version: 1.0"\n' >"$fake/criu"
	chmod +x "$fake/criu"
	start_container
	serve_start PATH="$fake:$PATH"
	migrate_container
	assert_failed_with "lxc-checkpoint -r failed before the tree was restored \\(status 1\\), before it ran CRIU: must have criu .* or greater"
	assert_state src RUNNING
	assert_state dst none
	[ "$(lxc_tool src lxc-info -p -H)" = "$INIT" ] || { echo "src's init changed" >&2; return 1; }
	ticks_advance "$TICKS" 20 10
	check_ticks "$TICKS" >/dev/null
	assert_workdir_clean 10
	lxc_tool src lxc-stop -k
}

# t_mode MODE: $CT migrates in MODE, runs on dst only, answers there.
t_mode() {
	start_container
	migrate_live --mode "$1"
	in_dst busybox ping -c1 -W2 "$CT_ADDR" >/dev/null ||
		{ echo "the container's $CT_ADDR does not answer in dst" >&2; return 1; }
	note "lxc $1 mode: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

@test "lxc: lazy over ssh (sshd in dst, serve --stdio, no daemon): it migrates with its address" {
	start_container
	ssh_setup
	migrate_ssh -- --workdir "$SRC_WORKDIR" --lxc "$CT" --lxcpath "$LXCPATH" --mode lazy --json
	assert_migrated
	ticks_advance "$TICKS" 20 10
	check_ticks "$TICKS" >/dev/null
	in_dst busybox ping -c1 -W2 "$CT_ADDR" >/dev/null ||
		{ echo "the container's $CT_ADDR does not answer in dst" >&2; return 1; }
	grep -q "serving one migration over ssh" "$SERVE_LOG"
	lxc_tool dst lxc-stop -k
}

@test "lxc: a rootfs private to each host comes along with --fs sync:" {
	local h
	mkdir -p "$ROOTFS"
	for h in src dst; do
		in_$h mount -t tmpfs -o mode=0755 tmpfs "$ROOTFS" || return 1
	done
	RDIR=/proc/$SRC_PID1/root$ROOTFS
	TICKS=$RDIR/data/ticks
	start_container
	# the ticks go on in dst's copy of the rootfs, after src's
	DST_TICKS=/proc/$DST_PID1/root$ROOTFS/data/ticks
	policy_allow "sync_root = $ROOTFS"
	migrate_live --fs "sync:$ROOTFS"
	note "lxc, rootfs by sync: $(jq -c '{frozen_ms, total_ms, iterations}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

@test "lxc: a bind mount of a host path (lxc.mount.entry) comes along" {
	BIND=1 start_container
	migrate_live
	in_dst grep -q " /data " "/proc/$DST_INIT/mountinfo" ||
		{ echo "no /data mount in the migrated container" >&2; return 1; }
	note "lxc with a bind mount: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

# The kernel lets CRIU's lazy restore (live, post-copy) open its
# userfaultfd in the container's user namespace only with this at 1.
uffd_unprivileged() { [ "$(cat /proc/sys/vm/unprivileged_userfaultfd)" = 1 ]; }

@test "lxc: a container in a user namespace migrates (live with vm.unprivileged_userfaultfd, else stop)" {
	local mode=stop
	! uffd_unprivileged || mode=live
	USERNS=1 NET=empty start_container
	migrate_live --mode "$mode"
	in_dst grep -q "100000" "/proc/$DST_INIT/uid_map" ||
		{ echo "the migrated init has no user namespace: $(in_dst cat /proc/$DST_INIT/uid_map)" >&2; return 1; }
	note "lxc in a user namespace, $mode mode: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

# refused MSG: migrate failed with MSG before the freeze; $CT runs on in
# src, nothing of it in dst.
refused() {
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; return 1; }
	grep -qF "$1" <<<"$stderr" || { echo "not the expected refusal: $stderr" >&2; return 1; }
	assert_state src RUNNING || return 1
	assert_state dst none || return 1
	[ "$(lxc_tool src lxc-info -p -H)" = "$INIT" ] || { echo "src's init changed" >&2; return 1; }
}

@test "lxc: in a user namespace, live mode without vm.unprivileged_userfaultfd is refused at the preflight" {
	uffd_unprivileged && skip "vm.unprivileged_userfaultfd is 1 on this machine"
	USERNS=1 NET=empty start_container
	serve_start
	migrate_container
	refused "unprivileged_userfaultfd = 1 on the destination"
	lxc_tool src lxc-stop -k
}

@test "lxc: a veth in a user namespace is refused before anything moves" {
	USERNS=1 start_container
	serve_start
	migrate_container
	refused "a veth in a user namespace is not supported"
	lxc_tool src lxc-stop -k
}

@test "lxc: with cgroup v2 only in both hosts, it migrates live" {
	local h
	for h in src dst; do
		in_$h mount -t cgroup2 none /sys/fs/cgroup || return 1
	done
	start_container
	migrate_live
	pid=$DST_INIT
	# LXC's cgroup in v2 only (on the hybrid machine, v1 would have one too)
	cg=$(in_dst cat "/proc/$pid/cgroup")
	grep -q "^0::/lxc.payload.$CT" <<<"$cg" && refute grep -q "^[1-9].*lxc.payload" <<<"$cg" ||
		{ echo "not in LXC's v2 cgroup only: $cg" >&2; return 1; }
	note "lxc, cgroup v2: $(jq -c '{frozen_ms, total_ms, iterations}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

@test "lxc: stop mode migrates it too" {
	t_mode stop
}

@test "lxc: lazy mode (post-copy) migrates it too" {
	t_mode lazy
}

@test "lxc: hybrid mode migrates it too" {
	t_mode hybrid
}

@test "lxc: 64 MiB live, every page intact on dst" {
	t_memory live 64
}

@test "lxc: 64 MiB lazy (post-copy), every page intact on dst" {
	t_memory lazy 64
}

@test "lxc: 256 MiB live over 1 Gbit/s, every page intact on dst" {
	_hosts_rate 1gbit
	t_memory live 256
}

# busybox_container: $CT made by `lxc-create -t busybox` in $LXCPATH, in
# attach_detached SCRIPT: SCRIPT runs in $CT in src, in a session of its
# own, with only the container's own files open: fds 0-2 on its /dev/null,
# no other (lxc-attach passes on what it was given).
attach_detached() {
	# shellcheck disable=SC2016
	lxc_tool src lxc-attach -- /bin/sh -c 'exec </dev/null >/dev/null 2>&1; setsid sh -c "$0" &' \
		'exec 2>/dev/null; for f in /proc/self/fd/*; do n=${f##*/}
		[ "$n" -le 2 ] || eval "exec $n>&-"; done; exec 2>&1; '"$1"
}

# src, with the stock /etc/lxc/default.conf (a veth on lxcbr0: a bridge of
# each host's own) and LXC's own rootfs $LXCPATH/$CT/rootfs; started, and
# a tick loop added with lxc-attach (appending to /ticks in the rootfs;
# TICKS as the machine sees it from src).
busybox_container() {
	local h
	# this lxcpath, and the rootfs a sync brings into it
	policy_allow "lxc_root = $LXCPATH" "sync_root = $LXCPATH"
	# the template's read-only binds of the host's libraries
	policy_allow "bind_root = /usr/lib" "bind_root = /usr/lib64" "bind_root = /sys/kernel/security"
	for h in src dst; do
		in_$h ip link add lxcbr0 type bridge && in_$h ip link set lxcbr0 up || return 1
	done
	in_src lxc-create -t busybox -n "$CT" -P "$LXCPATH" >"$SCRATCH/lxc-create.log" 2>&1 ||
		{ tail -n 20 "$SCRATCH/lxc-create.log" >&2; return 1; }
	# One change: no getty on tty1 (its init starts it only once rcS is
	# done, which waits on udhcpc, with no DHCP server here: at a random
	# point of the test; t_tty_held has gettys on LXC's ttys). Its 5 ttys
	# stay, and so does default.conf's AppArmor profile, which LXC ignored
	# on this kernel: the restore does too.
	in_src sed -i '/getty/d' "$LXCPATH/$CT/rootfs/etc/inittab" || return 1
	lxc_tool src lxc-start -l DEBUG -o "$SCRATCH/lxc-start.log" ||
		{ tail -n 20 "$SCRATCH/lxc-start.log" >&2; return 1; }
	wait_for 10 lxc_tool src lxc-attach -- true || return 1
	# shellcheck disable=SC2016
	attach_detached 'i=0; while :; do i=$((i+1)); t=$EPOCHREALTIME; s=${t%.*}
		u=${t#*.}; echo "$i $s${u%???}" >>/ticks; sleep 0.1; done' || return 1
	TICKS=/proc/$SRC_PID1/root$LXCPATH/$CT/rootfs/ticks
	wait_ticks "$TICKS" 20 || return 1
	INIT=$(lxc_tool src lxc-info -p -H)
	[[ "$INIT" =~ ^[0-9]+$ ]] || { echo "no init PID from lxc-info: '$INIT'" >&2; return 1; }
}

# busybox_moved [DST_TICKS]: $CT runs in dst, its ticks go on (in
# DST_TICKS if given), lxc-attach works there; stopped at the end.
busybox_moved() {
	local out
	assert_state dst RUNNING || return 1
	[ -z "${1:-}" ] || TICKS=$1
	ticks_advance "$TICKS" 20 10 || return 1
	check_ticks "$TICKS" >/dev/null || return 1
	out=$(lxc_tool dst lxc-attach -- /bin/sh -c 'echo in-$((6 * 7))') ||
		{ echo "lxc-attach failed in dst: $out" >&2; return 1; }
	[ "$out" = in-42 ] || { echo "lxc-attach printed '$out'" >&2; return 1; }
	# busybox's init and its syslogd came along
	lxc_tool dst lxc-attach -- /bin/sh -c 'ps' | grep -q 'syslogd' ||
		{ echo "no syslogd in the migrated container" >&2; return 1; }
	note "lxc-create -t busybox: $(jq -c '{frozen_ms, total_ms, iterations}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

@test "lxc: lxc-create -t busybox, each host its own lxcpath: the rootfs comes with --fs sync:LXCPATH/NAME/rootfs" {
	busybox_container
	serve_start
	migrate_container --json --fs "sync:$LXCPATH/$CT/rootfs"
	assert_migrated
	busybox_moved "/proc/$DST_PID1/root$LXCPATH/$CT/rootfs/ticks"
}

@test "lxc: lxc-create -t busybox, each host its own lxcpath: a rollback leaves nothing of it in dst's lxcpath" {
	require_fault dst.restored
	busybox_container
	serve_start PHAUL_FAULT=dst.restored
	migrate_container --fs "sync:$LXCPATH/$CT/rootfs"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; return 1; }
	assert_fault_hit dst.restored
	assert_state src RUNNING
	[ "$(lxc_tool src lxc-info -p -H)" = "$INIT" ] || { echo "src's init changed" >&2; return 1; }
	ticks_advance "$TICKS" 20 10
	check_ticks "$TICKS" >/dev/null
	[ -z "$(in_dst ls -A "$LXCPATH")" ] ||
		{ echo "left in dst's lxcpath: $(in_dst find "$LXCPATH")" >&2; return 1; }
	assert_workdir_clean 10
	lxc_tool src lxc-stop -k
}

@test "lxc: lxc-create -t busybox, each host its own lxcpath: another container of that name on dst is refused" {
	busybox_container
	# the same template makes the same text, in another file
	in_dst lxc-create -t busybox -n "$CT" -P "$LXCPATH" >"$SCRATCH/lxc-create-dst.log" 2>&1
	serve_start
	migrate_container --fs "sync:$LXCPATH/$CT/rootfs"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; return 1; }
	grep -qF "a container $CT exists on the destination" <<<"$stderr" ||
		{ echo "not the expected refusal: $stderr" >&2; return 1; }
	assert_state src RUNNING
	assert_state dst STOPPED
	lxc_tool src lxc-stop -k
}

@test "lxc: lxc-create -t busybox, lxcpath on storage both hosts see: moves, its config stays for dst" {
	LXCPATH=$SCRATCH/shared-lxcpath
	mkdir -p "$LXCPATH"
	busybox_container
	serve_start
	migrate_container --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	# one config, listed by both; it runs in dst only
	assert_state src STOPPED
	[ -f "$LXCPATH/$CT/config" ] || { echo "the shared config is gone" >&2; return 1; }
	pid_alive_in src "$INIT" && { echo "the old init $INIT still runs in src" >&2; return 1; }
	busybox_moved "$LXCPATH/$CT/rootfs/ticks"
}

@test "lxc: lxcpath on storage both hosts see: the container running on dst too is refused" {
	LXCPATH=$SCRATCH/shared-lxcpath
	mkdir -p "$LXCPATH"
	busybox_container
	lxc_tool dst lxc-start -l DEBUG -o "$SCRATCH/lxc-start-dst.log" ||
		{ tail -n 20 "$SCRATCH/lxc-start-dst.log" >&2; return 1; }
	serve_start
	migrate_container
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; return 1; }
	grep -qF "container $CT runs on the destination too" <<<"$stderr" ||
		{ echo "not the expected refusal: $stderr" >&2; return 1; }
	assert_state src RUNNING
	[ "$(lxc_tool src lxc-info -p -H)" = "$INIT" ] || { echo "src's init changed" >&2; return 1; }
	[ -f "$LXCPATH/$CT/config" ] || { echo "the shared config is gone" >&2; return 1; }
	lxc_tool dst lxc-stop -k
	lxc_tool src lxc-stop -k
}

# t_default MODE: a container with LXC's default config (DEFAULT=1: its
# console a pty of its own devpts, bound on /dev/console and
# /dev/lxc/console, 4 LXC ttys, an AppArmor profile that LXC ignores on
# this kernel) migrates in MODE; lxc-console on dst reaches its console.
t_default() {
	local conf
	DEFAULT=1 start_container
	[ "$(lxc_tool src lxc-info -c lxc.tty.max)" = "lxc.tty.max = 4" ] || return 1
	# common.conf's seccomp profile and dropped capabilities: as they were
	conf=$(in_src grep -E '^(Seccomp|CapBnd):' "/proc/$INIT/status")
	grep -q '^Seccomp:.*2' <<<"$conf" || { echo "no seccomp filter in src: $conf" >&2; return 1; }
	migrate_live --mode "$1"
	[ "$(in_dst grep -E '^(Seccomp|CapBnd):' "/proc/$DST_INIT/status")" = "$conf" ] ||
		{ echo "seccomp or capabilities changed in dst" >&2; return 1; }
	console_on_dst
	note "lxc, default config, $1 mode: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
}

@test "lxc: LXC's default config (console, ttys) migrates live; lxc-console reaches its console on dst" {
	local con mon
	t_default live
	# both of the console's mounts are the new console's pty
	con=$(lxc_tool dst lxc-attach -- /bin/sh -c 'stat -c %t:%T:%d /dev/console /dev/lxc/console')
	[ "$(sort -u <<<"$con" | wc -l)" = 1 ] ||
		{ echo "/dev/console and /dev/lxc/console differ: $con" >&2; return 1; }
	# its 4 ttys: new ptys whose masters LXC's restored monitor holds (it
	# serves none: lxc-console -t 1 is refused), usable from inside
	mon=$(in_dst cat "/proc/$DST_INIT/stat" | sed 's/^.*) . \([0-9]*\) .*/\1/')
	[ "$(in_dst sh -c 'ls -l /proc/$0/fd' "$mon" | grep -c /dev/ptmx)" -ge 5 ] ||
		{ echo "LXC's monitor $mon does not hold the ttys' and console's ptys" >&2; return 1; }
	lxc_tool dst lxc-attach -- /bin/sh -c 'echo x >/dev/lxc/tty1 && echo y >/dev/tty4' ||
		{ echo "the ttys do not take a write in dst" >&2; return 1; }
	run lxc_tool dst lxc-console -t 1 </dev/null
	[ "$status" -ne 0 ] || { echo "lxc-console -t 1 in dst: $output" >&2; return 1; }
	assert_state dst RUNNING
	lxc_tool dst lxc-stop -k
}

# on_tty HOST PATTERN N: the process of $CT whose command line matches
# PATTERN has its fd 0 on the pty bound on /dev/lxc/ttyN in HOST.
on_tty() {
	local pid init got want
	init=$(lxc_tool "$1" lxc-info -p -H)
	pid=$(in_"$1" pgrep -f -- "$2" | head -n 1)
	[ -n "$pid" ] || { echo "no process '$2' in $1" >&2; return 1; }
	want=$(in_"$1" stat -L -c %t:%T:%d "/proc/$init/root/dev/lxc/tty$3") &&
		got=$(in_"$1" stat -L -c %t:%T:%d "/proc/$pid/fd/0") || return 1
	[ "$got" = "$want" ] ||
		{ echo "'$2' ($pid) in $1: fd 0 on $got, not tty$3's pty $want" >&2; return 1; }
}

# t_tty_held MODE: LXC's default config, two processes on its ttys: a
# shell loop whose stdio is tty1 (a session leader: tty1 its controlling
# tty) writing on it and counting the writes that succeeded, and busybox's
# getty on tty2.  Both migrate in MODE, alive on dst with their fds on the
# new ptys bound on /dev/lxc/tty1 and tty2 (whose masters LXC's monitor
# holds), and the loop's writes on tty1 go on succeeding there.
t_tty_held() {
	local w=$RDIR/data/tty1.w loop n
	DEFAULT=1 start_container
	ln -s busybox "$RDIR/bin/getty"
	# shellcheck disable=SC2016
	loop='exec <>/dev/lxc/tty1 >&0 2>&0; i=0; while :; do i=$((i+1)); echo "w$i" && echo "$i" >>/data/tty1.w; sleep 0.1; done'
	attach_detached "$loop" && attach_detached 'exec getty 38400 tty2' || return 1
	wait_for 5 test -s "$w" || { echo "the loop on tty1 does not write in src" >&2; return 1; }
	on_tty src "getty 38400 tty2" 2 && on_tty src "tty1.w" 1 || return 1
	migrate_live --mode "$1" || return 1
	# the loop: its writes on tty1 go on in dst
	n=$(wc -l <"$w")
	wait_for 5 eval '[ "$(wc -l <"$w")" -ge $((n + 10)) ]' ||
		{ echo "the writes on tty1 stopped in dst at $(wc -l <"$w")" >&2; return 1; }
	on_tty dst "getty 38400 tty2" 2 && on_tty dst "tty1.w" 1 || return 1
	note "lxc, default config, processes on tty1 and tty2, $1 mode: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
}

@test "lxc: LXC's default config, a shell on tty1 and a getty on tty2, migrates live; both on the new ttys in dst" {
	t_tty_held live
	lxc_tool dst lxc-stop -k
}

@test "lxc: LXC's default config, a shell on tty1 and a getty on tty2, migrates in stop mode" {
	t_tty_held stop
	lxc_tool dst lxc-stop -k
}

@test "lxc: LXC's default config (console, ttys) migrates in stop mode" {
	t_default stop
	lxc_tool dst lxc-stop -k
}

@test "lxc: LXC's default config (console, ttys) migrates in lazy mode" {
	t_default lazy
	lxc_tool dst lxc-stop -k
}

@test "lxc: LXC's default config (console, ttys) migrates in hybrid mode" {
	t_default hybrid
	lxc_tool dst lxc-stop -k
}

# serve_in_src: a daemon in src too, for moving the container back.
serve_in_src() {
	mkdir -p "$SCRATCH/srcserve" "$SCRATCH/dstwork"
	start_in_src -o "$SCRATCH/serve-src.log" "$PHAUL" serve --listen "$SRC_ADDR:$PHAUL_PORT" \
		--key "$KEY" --workdir "$SCRATCH/srcserve" --log-dir "$SRC_LOGDIR" \
		--policy "$SCRATCH/policy" >/dev/null &&
		wait_for 10 eval 'in_src ss -Hltn "sport = :$PHAUL_PORT" | grep -q .'
}

# migrate_back [ARGS...]: $CT from dst to src.
migrate_back() {
	run --separate-stderr in_dst timeout -k 5 "$MIGRATE_TIMEOUT" "$PHAUL" migrate \
		--to "$SRC_ADDR:$PHAUL_PORT" --key "$KEY" --workdir "$SCRATCH/dstwork" \
		--lxc "$CT" --lxcpath "$LXCPATH" --json "$@"
}

@test "lxc: LXC's default config moves there and back again, its ttys alive" {
	t_default live
	serve_in_src
	migrate_back
	[ "$status" -eq 0 ] || { echo "migrate back failed ($status): $stderr" >&2; return 1; }
	assert_state src RUNNING
	assert_state dst none
	lxc_tool src lxc-attach -- /bin/sh -c 'echo x >/dev/lxc/tty2 && echo out >/dev/console' ||
		{ echo "tty2 or the console does not take a write in src" >&2; return 1; }
	ticks_advance "$TICKS" 20 10
	lxc_tool src lxc-stop -k
}

# t_oldpeer new-old|old-new: the container moves live between this phaul
# and an older one (lib/oldpeer), either way round, with its address
t_oldpeer() {
	oldpeer_init || return 1
	[ -z "$OLDPEER_SKIP" ] || skip "$OLDPEER_SKIP"
	start_container
	if [ "$1" = new-old ]; then
		old_serve
		migrate_container --json
	else
		serve_start
		PHAUL=$OLD migrate_container --json
	fi
	assert_migrated || return 1
	ticks_advance "$TICKS" 20 10 || return 1
	check_ticks "$TICKS" >/dev/null || return 1
	in_dst busybox ping -c1 -W2 "$CT_ADDR" >/dev/null ||
		{ echo "the container's $CT_ADDR does not answer in dst" >&2; return 1; }
	note "lxc $1 live: $(jq -c '{frozen_ms, total_ms}' <<<"$output")"
	lxc_tool dst lxc-stop -k
}

@test "lxc, old peer: a new source moves the container live to an older destination" {
	t_oldpeer new-old
}

@test "lxc, old peer: an older source moves the container live to a new destination" {
	t_oldpeer old-new
}

@test "lxc, old peer: LXC's default config to an older destination (no LXC ttys there) rolls back; it runs on in src" {
	oldpeer_init || return 1
	[ -z "$OLDPEER_SKIP" ] || skip "$OLDPEER_SKIP"
	DEFAULT=1 start_container
	old_serve
	migrate_container --json
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; false; }
	fx_assert_outcome false rolled-back live
	note "error: $(json .error)"
	assert_state src RUNNING
	assert_state dst none
	[ "$(lxc_tool src lxc-info -p -H)" = "$INIT" ] || { echo "src's init changed" >&2; false; }
	ticks_advance "$TICKS" 20 10
	check_ticks "$TICKS" >/dev/null
	assert_workdir_clean 10
	lxc_tool src lxc-stop -k
}
