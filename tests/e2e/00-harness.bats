#!/usr/bin/env bats
# The test harness itself (lib/hosts.bash) and the workloads, checked with
# plain CRIU: meaningful before phaul exists, and it shows that a failure
# in the phaul tests is phaul's, not the harness's or CRIU's.

load lib/hosts

CRIU=${CRIU:-criu}

setup() {
	hosts_setup
}

teardown() {
	hosts_teardown
}

# criu_dump PID [ARGS...]: dump PID's tree from src into $SCRATCH/img.
criu_dump() {
	local pid=$1
	shift
	mkdir -p "$SCRATCH/img"
	if ! in_src timeout 60 "$CRIU" dump -t "$pid" -D "$SCRATCH/img" -o dump.log -v4 "$@"; then
		grep -E 'Error|Warn' "$SCRATCH/img/dump.log" >&2
		echo "criu dump of $pid in src failed" >&2
		return 1
	fi
}

# criu_restore: restore $SCRATCH/img in dst, detached.
criu_restore() {
	if ! in_dst timeout 60 "$CRIU" restore -D "$SCRATCH/img" -d -o restore.log -v4 "$@"; then
		grep -E 'Error|Warn' "$SCRATCH/img/restore.log" >&2
		echo "criu restore in dst failed" >&2
		return 1
	fi
}

# tcp_probe HOST ADDR: "refused" if ADDR answered (nothing listens on port
# 9), anything else (unreachable, timeout) otherwise.
tcp_probe() {
	local err
	err=$(_hosts_in "$1" timeout 2 bash -c "exec 3<>/dev/tcp/$2/9" 2>&1) && { echo open; return; }
	case "$err" in
	*"Connection refused"*) echo refused ;;
	*) echo "unreachable: $err" ;;
	esac
}

fds_of() { # HOST PID: fd numbers
	ls "$(_hosts_proc "$1")/$2/fd" | sort -n | tr '\n' ' '
}

@test "hosts: two hosts, each with its own namespaces, hostinit as PID 1 and its address" {
	[ "$SRC_PID1" != "$DST_PID1" ]
	for ns in pid net mnt; do
		[ "$(readlink /proc/$SRC_PID1/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ]
		[ "$(readlink /proc/$DST_PID1/ns/$ns)" != "$(readlink /proc/self/ns/$ns)" ]
		[ "$(readlink /proc/$SRC_PID1/ns/$ns)" != "$(readlink /proc/$DST_PID1/ns/$ns)" ]
	done
	[ "$(in_src cat /proc/1/comm)" = hostinit ]
	[ "$(in_dst cat /proc/1/comm)" = hostinit ]
	in_src ip -o addr show dev "$HOSTS_IF_SRC" | grep -q 'inet 192.0.2.1/24'
	in_dst ip -o addr show dev "$HOSTS_IF_DST" | grep -q 'inet 192.0.2.2/24'
	in_src ip -o link show lo | grep -q 'UP'
	in_dst ip -o link show lo | grep -q 'UP'
	# the machine's own interfaces are not visible inside
	[ "$(in_src ip -o link show | grep -c -v -e ": lo:" -e "$HOSTS_IF_SRC")" = 0 ]
	[ "$(tcp_probe src 192.0.2.2)" = refused ]
	[ "$(tcp_probe dst 192.0.2.1)" = refused ]
	# in_* runs in the caller's directory, inside the host
	[ "$(cd "$SCRATCH" && in_src pwd)" = "$SCRATCH" ]
	# both hosts see the same files
	echo hello >"$SCRATCH/shared"
	[ "$(in_dst cat "$SCRATCH/shared")" = hello ]
}

@test "hosts: src PIDs start at 10000, dst PIDs stay low, workloads hold only fds 0-2" {
	local s d
	s=$(start_in_src "$WORKLOADS/counter" "$SCRATCH/src.log")
	d=$(start_in_dst "$WORKLOADS/counter" "$SCRATCH/dst.log")
	[ "$s" -ge 10000 ]
	[ "$d" -lt 10000 ]
	pid_alive_in src "$s"
	pid_alive_in dst "$d"
	[ "$(cat "$(_hosts_proc src)/$s/comm")" = counter ]
	[ "$(procs_in src counter)" = "$s counter" ]
	[ "$(procs_in dst counter)" = "$d counter" ]
	# started detached: own session, stdin /dev/null, parent is hostinit
	[ "$(awk '{print $6}' "$(_hosts_proc src)/$s/stat")" = "$s" ]
	[ "$(readlink "$(_hosts_proc src)/$s/fd/0")" = /dev/null ]
	wait_for 5 pid_alive_in src "$s"
	[ "$(fds_of src "$s")" = "0 1 2 " ]
	ticks_advance "$SCRATCH/src.log" 20
	ticks_advance "$SCRATCH/dst.log" 20
	check_ticks "$SCRATCH/src.log"
	in_src kill "$s"
	wait_for 5 eval '! pid_alive_in src '"$s"
}

@test "criu: counter dumped in src, restored in dst: ticks continue in the same file, no tick lost, only in dst" {
	local pid log=$SCRATCH/counter.log before gap
	pid=$(start_in_src "$WORKLOADS/counter" "$log")
	ticks_advance "$log" 30
	criu_dump "$pid"
	refute pid_alive_in src "$pid"
	before=$(last_tick "$log")
	criu_restore
	pid_alive_in dst "$pid"
	[ "$(cat "$(_hosts_proc dst)/$pid/comm")" = counter ]
	ticks_advance "$log" 50
	[ -z "$(procs_in src)" ]
	[ "$(procs_in dst counter)" = "$pid counter" ]
	gap=$(check_ticks "$log")
	echo "# pause seen by the workload: ${gap} ms (tick $before -> $(last_tick "$log"))" >&3
	[ "$gap" -lt 5000 ]
}

@test "criu: pipetree (3 processes, pipes) moves with all processes, rounds continue" {
	local pid log=$SCRATCH/pipetree.log kids
	pid=$(start_in_src "$WORKLOADS/pipetree" "$log")
	ticks_advance "$log" 30
	kids=$(children_in src "$pid" | sort -n | tr '\n' ' ')
	[ "$(echo $kids | wc -w)" = 2 ]
	criu_dump "$pid"
	criu_restore
	ticks_advance "$log" 50
	pid_alive_in dst "$pid"
	[ "$(children_in dst "$pid" | sort -n | tr '\n' ' ')" = "$kids" ]
	for k in $kids; do
		pid_alive_in dst "$k"
		refute pid_alive_in src "$k"
	done
	[ -z "$(procs_in src)" ]
	check_ticks "$log"
}

@test "criu: openfile (open O_APPEND file, listening unix socket) moves, ping answers in dst" {
	local pid dir=$SCRATCH/of n1 n2
	mkdir "$dir"
	pid=$(start_in_src "$WORKLOADS/openfile" "$dir")
	ticks_advance "$dir/data" 30
	run in_src "$WORKLOADS/openfile" --ping "$dir"
	[ "$status" -eq 0 ]
	n1=${output#COUNTER }
	criu_dump "$pid"
	run in_src "$WORKLOADS/openfile" --ping "$dir"
	[ "$status" -ne 0 ]
	criu_restore
	ticks_advance "$dir/data" 30
	run in_dst "$WORKLOADS/openfile" --ping "$dir"
	[ "$status" -eq 0 ]
	n2=${output#COUNTER }
	[ "$n2" -gt "$n1" ]
	[ "$(fds_of dst "$pid")" = "0 1 2 3 4 " ]
	[ ! -e "$dir/status" ]
	[ -z "$(procs_in src)" ]
	check_ticks "$dir/data"
}

@test "criu: mtouch 64 MiB moves and verifies every page in dst" {
	local pid log=$SCRATCH/mtouch.log
	pid=$(start_in_src "$WORKLOADS/mtouch" --size 64 --hot 16 --rate 64 --log "$log")
	wait_for 30 grep -q '^READY' "$log"
	ticks_advance "$log" 30
	criu_dump "$pid"
	criu_restore
	ticks_advance "$log" 30
	in_dst kill -USR1 "$pid"
	wait_for 10 grep -q '^VERIFY' "$log"
	grep -q '^VERIFY PASS pages=16384 ' "$log"
	check_ticks "$log"
}

@test "mtouch: a page changed behind its back is caught (VERIFY FAIL)" {
	local pid log=$SCRATCH/mtouch.log base off
	pid=$(start_in_src "$WORKLOADS/mtouch" --size 64 --hot 16 --rate 64 --log "$log")
	wait_for 30 grep -q '^READY' "$log"
	in_src kill -USR1 "$pid"
	wait_for 10 grep -q '^VERIFY PASS pages=16384 ' "$log"
	base=$(sed -n 's/^READY.* base=\(0x[0-9a-f]*\).*/\1/p' "$log")
	# one byte in a cold page (40 MiB in; the hot set is the first 16 MiB)
	off=$((base + 40 * 1024 * 1024 + 123))
	printf 'Z' | dd of="$(_hosts_proc src)/$pid/mem" bs=1 seek="$off" oflag=seek_bytes conv=notrunc status=none
	in_src kill -USR1 "$pid"
	wait_for 10 grep -q '^VERIFY FAIL' "$log"
	grep -q '^VERIFY FAIL page=10240 .* bad=1 ' "$log"
	run check_ticks "$log"
	[ "$status" -ne 0 ]
}

@test "mtouch --sweep: passes over all memory between ticks; a stalled pass is the largest gap" {
	local pid log=$SCRATCH/mtouch.log gap pass t0 t1
	run "$WORKLOADS/mtouch" --size 4 --sweep x --log "$SCRATCH/bad.log"
	[ "$status" -eq 2 ]
	pid=$(start_in_src "$WORKLOADS/mtouch" --size 64 --hot 16 --rate 64 --threads 1 \
		--sweep 0 --log "$log")
	wait_for 30 grep -q '^READY' "$log"
	ticks_advance "$log" 20
	# a pass held up (here: the process stopped while it runs) delays the
	# next tick by as long: the gap between ticks is the stall it felt
	t0=$(date +%s%3N)
	in_src kill -STOP "$pid"
	sleep 0.7
	in_src kill -CONT "$pid"
	t1=$(date +%s%3N)
	ticks_advance "$log" 20
	in_src kill -USR1 "$pid"
	wait_for 10 grep -q '^VERIFY PASS pages=16384 ' "$log"
	_complete_lines "$log" >"$SCRATCH/snap.log" # (it goes on growing)
	gap=$(check_ticks "$SCRATCH/snap.log")
	# one pass at every tick, each of every page
	[ "$(grep -c '^SWEEP pages=16384 ms=[0-9]*$' "$SCRATCH/snap.log")" -ge 40 ]
	[ "$(grep -c '^SWEEP' "$SCRATCH/snap.log")" -eq "$(grep -c '^SWEEP pages=16384 ' "$SCRATCH/snap.log")" ]
	# the pass runs between two ticks: no pass is longer than the largest gap
	pass=$(awk '/^SWEEP/ { sub("ms=", "", $3); if ($3 > m) m = $3 } END { print m + 0 }' "$SCRATCH/snap.log")
	echo "# largest gap ${gap} ms (stopped for $((t1 - t0)) ms), longest pass ${pass} ms" >&3
	((gap >= 690 && gap <= t1 - t0 + 500))
	((pass <= gap + 1))
}

@test "mtouch --shared/--memfd: a child maps both shared regions, not the private memory; it exits with its parent" {
	local pid kid log=$SCRATCH/mtouch.log maps base n range perms
	pid=$(start_in_src "$WORKLOADS/mtouch" --size 8 --shared 16 --memfd 4 --log "$log")
	wait_for 30 grep -q '^READY' "$log"
	kid=$(children_in src "$pid")
	[[ "$kid" =~ ^[0-9]+$ ]]
	base=$(sed -n 's/^READY.* base=0x\([0-9a-f]*\).*/\1/p' "$log")
	for p in "$pid" "$kid"; do
		maps=$(cat "$(_hosts_proc src)/$p/maps")
		# 16 MiB shared anonymous, 4 MiB of the memfd, the same in both
		grep -Eq '^([0-9a-f]+)-([0-9a-f]+) rw-s .*/dev/zero' <<<"$maps"
		grep -q 'rw-s .*/memfd:mtouch' <<<"$maps"
		n=0
		while read -r range perms _; do
			[ "$perms" = rw-s ] && n=$((n + 0x${range#*-} - 0x${range%-*}))
		done <<<"$maps"
		[ "$n" -eq $((20 * 1024 * 1024)) ]
	done
	# the private memory came after the fork
	grep -q "^$base-" "$(_hosts_proc src)/$pid/maps"
	! grep -q "^$base-" "$(_hosts_proc src)/$kid/maps"
	ticks_advance "$log" 10
	in_src kill -TERM "$pid"
	wait_for 5 bash -c "! kill -0 $kid 2>/dev/null"
	check_ticks "$log"
}

@test "counter: a second copy running at once (split brain) is caught" {
	local pid log=$SCRATCH/counter.log
	pid=$(start_in_src "$WORKLOADS/counter" "$log")
	ticks_advance "$log" 20
	criu_dump "$pid" --leave-running
	criu_restore
	wait_for 10 grep -q '^FAIL size mismatch' "$log"
	run check_ticks "$log"
	[ "$status" -ne 0 ]
	[[ "$output" == *"failure logged"* ]]
}

@test "check_ticks: passes 1..N, catches a lost tick, a repeat, a FAIL line; ignores a partial last line" {
	local f=$SCRATCH/t
	printf '1 1000\n2 1010\n3 1500\n4 1510\n' >"$f"
	run check_ticks "$f"
	[ "$status" -eq 0 ]
	[ "$output" = 490 ]
	printf 'READY x\n1 1000\n2 1010\nVERIFY PASS pages=1 ms=1\n3 1020\n4 10' >"$f"
	run check_ticks "$f"
	[ "$status" -eq 0 ]
	[ "$output" = 10 ]
	[ "$(last_tick "$f")" = 3 ]
	printf 'ROUND 1 1000\nROUND 2 1010\n' >"$f"
	run check_ticks "$f"
	[ "$status" -eq 0 ]
	printf '1 1000\n2 1010\n4 1020\n' >"$f"
	run check_ticks "$f"
	[ "$status" -ne 0 ]
	[[ "$output" == *"tick 4 follows tick 2"* ]]
	printf '1 1000\n2 1010\n2 1020\n3 1030\n' >"$f"
	run check_ticks "$f"
	[ "$status" -ne 0 ]
	printf '2 1000\n3 1010\n' >"$f"
	run check_ticks "$f"
	[ "$status" -ne 0 ]
	printf '1 1000\nFAIL child1: x\n2 1010\n' >"$f"
	run check_ticks "$f"
	[ "$status" -ne 0 ]
	printf '1 1000\nVERIFY FAIL page=1\n' >"$f"
	run check_ticks "$f"
	[ "$status" -ne 0 ]
	: >"$f"
	run check_ticks "$f"
	[ "$status" -ne 0 ]
	run wait_for 1 false
	[ "$status" -ne 0 ]
	[[ "$output" == *"timed out after 1s"* ]]
}

@test "hosts: link_down cuts the link, link_up restores it" {
	link_down
	[[ "$(tcp_probe src 192.0.2.2)" == unreachable* ]]
	link_up
	wait_for 5 eval '[ "$(tcp_probe src 192.0.2.2)" = refused ]'
	link_down dst
	[[ "$(tcp_probe src 192.0.2.2)" == unreachable* ]]
	link_up dst
	wait_for 5 eval '[ "$(tcp_probe src 192.0.2.2)" = refused ]'
}

@test "hosts: hosts_setup RATE puts a tbf qdisc on both veth ends" {
	hosts_teardown
	hosts_setup 100mbit
	in_src tc qdisc show dev "$HOSTS_IF_SRC" | grep -q 'tbf .*rate 100Mbit'
	in_dst tc qdisc show dev "$HOSTS_IF_DST" | grep -q 'tbf .*rate 100Mbit'
	[ "$(tcp_probe src 192.0.2.2)" = refused ]
}

@test "hosts: teardown kills everything, removes the veth, and reports a leak" {
	local s1=$SRC_PID1 d1=$DST_PID1 ifs=$HOSTS_IF_SRC nsnet
	nsnet=$(readlink "/proc/$SRC_PID1/ns/net")
	start_in_src "$WORKLOADS/counter" "$SCRATCH/a.log"
	start_in_dst "$WORKLOADS/pipetree" "$SCRATCH/b.log"
	# something in the host's mount+net namespaces but not its PID namespace
	in_dst sleep 60 3>&- 4>&- &
	ticks_advance "$SCRATCH/a.log" 5
	local t0=$SECONDS
	hosts_teardown
	echo "# teardown took $((SECONDS - t0)) s" >&3
	refute kill -0 "$s1" 2>/dev/null
	refute kill -0 "$d1" 2>/dev/null
	refute ip link show "$ifs" 2>/dev/null
	[ -z "$(find /proc/[0-9]*/ns/net -lname "$nsnet" 2>/dev/null)" ]
	[ -z "$(hosts_own_jobs)" ]
	# a process the test leaves behind outside the hosts is caught and killed
	hosts_setup
	# (not a job of this shell: started from a subshell that exits)
	(cd "$SCRATCH" && { sleep 61 </dev/null >/dev/null 2>&1 3>&- 4>&- & echo $! >leak.pid; })
	local leak
	leak=$(cat "$SCRATCH/leak.pid")
	kill -0 "$leak"
	run hosts_teardown
	[ "$status" -ne 0 ]
	[[ "$output" == *"processes left behind"*"sleep 61"* ]]
	# killed (a zombie until whoever inherited it reaps it)
	wait_for 5 eval '[ ! -e /proc/$leak ] || grep -q "^State:.*Z" /proc/$leak/status'
}
