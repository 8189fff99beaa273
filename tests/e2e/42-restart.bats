#!/usr/bin/env bats
# --mode restart: no CRIU. Storage is synced in rounds, the workload is
# stopped (SIGTERM), the storage synced a last time, and the workload is
# started on the destination with the same command line, environment and
# working directory. The workload here holds /dev/loop-control open, which
# CRIU refuses to dump; its state (a tick count) lives in its synced DIR.

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	hosts_setup
	phaul_setup
	fx_setup
	DATA=$SCRATCH/data
	mkdir -p "$DATA"
	in_src mount -t tmpfs tmpfs "$DATA"
	in_dst mount -t tmpfs tmpfs "$DATA"
	SRC_DATA=/proc/$SRC_PID1/root$DATA
	DST_DATA=/proc/$DST_PID1/root$DATA
	# restart, its storage, and its stdout file ($SCRATCH/src-worker.out)
	policy_allow "mode = stop restart" "sync_root = $DATA" "stdio_root = $SCRATCH"
	cat >"$SCRATCH/worker" <<'SH'
#!/bin/bash
# ticks "N WALL_MS" in $1/ticks, going on from the count already there
exec 10>&- 7</dev/loop-control
d=$1
n=$(cat "$d/ticks" 2>/dev/null | wc -l)
echo "start MARK=$MARK cwd=$(pwd) args=$*" >>"$d/starts"
trap 'echo "stopped at $n" >>"$d/starts"; exit 0' TERM
while :; do
	n=$((n + 1))
	echo "$n $(date +%s%3N)" >>"$d/ticks"
	sleep 0.02
done
SH
	chmod +x "$SCRATCH/worker"
	PID=$(start_in_src env MARK=restart-me "$SCRATCH/worker" "$DATA" extra-arg)
	ticks_advance "$SRC_DATA/ticks" 20
}

teardown() {
	hosts_teardown
}

# PIDs in HOST running the worker script (a restarted one is "bash worker")
workers_in() {
	local proc p
	proc=$(_hosts_proc "$1")
	for p in $(procs_in "$1" | awk '{ print $1 }'); do
		tr '\0' ' ' <"$proc/$p/cmdline" 2>/dev/null | grep -q "$SCRATCH/worker" && echo "$p"
	done
	return 0
}

@test "restart: CRIU cannot dump this workload (stop mode fails, it runs on)" {
	serve_start
	fx_migrate -v --mode stop "$PID"
	[ "$status" -eq 1 ]
	# CRIU says why: the misc device (10:237 is /dev/loop-control)
	grep -q "Can't dump file 7 of that type .* (chr 10:237)" <<<"$stderr"
	assert_only_in src "$PID"
	ticks_advance "$SRC_DATA/ticks" 10
}

@test "restart: the workload moves with its DIR: same command line, env, cwd; no tick lost" {
	serve_start
	fx_migrate --mode restart --json --fs "sync:$DATA" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	[ "$(json .ok)" = true ]
	[ "$(json .mode)" = restart ]
	refute pid_alive_in src "$PID"
	[ -z "$(workers_in src)" ]
	wait_for 10 eval '[ -n "$(workers_in dst)" ]'
	ticks_advance "$DST_DATA/ticks" 20
	check_ticks "$DST_DATA/ticks" >/dev/null
	# started twice, the same way; stopped cleanly in between
	[ "$(grep -c '^start' "$DST_DATA/starts")" = 2 ]
	[ "$(grep '^start' "$DST_DATA/starts" | sort -u | wc -l)" = 1 ]
	grep -q "^start MARK=restart-me cwd=$SCRATCH args=$DATA extra-arg$" "$DST_DATA/starts"
	grep -q '^stopped at' "$DST_DATA/starts"
	assert_workdir_clean
	fx_assert_src_workdir_clean
}

@test "restart: starting it on dst fails (dst.restart): it runs again on src, dst's DIR emptied" {
	serve_start PHAUL_FAULT=dst.restart
	fx_migrate --mode restart --fs "sync:$DATA" "$PID"
	assert_failed_with 'restart'
	assert_fault_hit dst.restart
	refute pid_alive_in src "$PID"
	wait_for 10 eval '[ -n "$(workers_in src)" ]'
	[ -z "$(workers_in dst)" ]
	ticks_advance "$SRC_DATA/ticks" 20
	check_ticks "$SRC_DATA/ticks" >/dev/null
	[ "$(grep -c '^start' "$SRC_DATA/starts")" = 2 ]
	[ -z "$(ls -A "$DST_DATA")" ]
	assert_workdir_clean
}
