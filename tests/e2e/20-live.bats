#!/usr/bin/env bats
# End-to-end tests of phaul's live mode (pre-copy rounds while the workload
# runs, then a short freeze) with the memory-integrity workload mtouch:
# every 4 KiB page has a shadow checksum, the hot set is rewritten all the
# time, and after the move every page must match its shadow on dst.
#
# Same contract as 10-stop.bats; they fail (never skip) while build/phaul
# does not exist or misbehaves.

load lib/hosts
load lib/phaul

SIZE_MIB=256
HOT_MIB=16
RATE_MIB=64
PAGES=$((SIZE_MIB * 256))

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*200mbit*) hosts_setup 200mbit ;;
	*) hosts_setup ;;
	esac
	phaul_setup
}

teardown() {
	hosts_teardown
}

# start_mtouch: 256 MiB, 16 MiB hot at 64 MiB/s in src; sets PID and LOG.
start_mtouch() {
	LOG=$SCRATCH/mtouch.log
	PID=$(start_in_src "$WORKLOADS/mtouch" --size "$SIZE_MIB" --hot "$HOT_MIB" \
		--rate "$RATE_MIB" --log "$LOG" --verify-signal)
	wait_for 60 grep -q '^READY' "$LOG" || { echo "mtouch never got READY" >&2; false; }
	ticks_advance "$LOG" 50
}

# verify_in HOST: SIGUSR1 the workload there, expect VERIFY PASS of every page.
verify_in() {
	local host=$1 n
	n=$(grep -c '^VERIFY' "$LOG" || true)
	in_"$host" kill -USR1 "$PID"
	wait_for 30 eval '[ "$(grep -c "^VERIFY" "$LOG")" -gt '"$n"' ]' ||
		{ echo "no VERIFY line from mtouch in $host within 30 s" >&2; return 1; }
	local line
	line=$(grep '^VERIFY' "$LOG" | tail -n1)
	note "$host: $line"
	[[ "$line" == "VERIFY PASS pages=$PAGES "* ]] ||
		{ echo "memory check failed in $host: $line" >&2; return 1; }
}

check_live_json() {
	local frozen total sent gap
	assert_json_object
	[ "$(json .ok)" = true ]
	[ "$(json .mode)" = live ]
	[ "$(json .error)" = null ]
	[[ "$(json .iterations)" =~ ^[0-9]+$ ]]
	[ "$(json .iterations)" -ge 1 ]
	frozen=$(json .frozen_ms) total=$(json .total_ms) sent=$(json .bytes_sent)
	[[ "$sent" =~ ^[0-9]+$ ]]
	# random data does not compress: all of it had to cross the link
	[ "$sent" -ge $((SIZE_MIB * 1024 * 1024)) ] ||
		{ echo "bytes_sent=$sent is less than the workload's $SIZE_MIB MiB" >&2; return 1; }
	(( ${frozen%.*} > 0 && ${frozen%.*} <= ${total%.*} ))
	gap=$(check_ticks "$LOG")
	note "workload pause ${gap} ms; phaul: frozen ${frozen} ms, total ${total} ms, $sent bytes, $(json .iterations) iterations"
	if ((gap > ${frozen%.*} + 1000)); then
		echo "the workload paused ${gap} ms but phaul reports frozen_ms=${frozen}" >&2
		return 1
	fi
}

@test "live: mtouch 256 MiB (16 MiB hot at 64 MiB/s) moves; every page verifies on dst" {
	serve_start
	start_mtouch
	verify_in src
	migrate --key "$KEY" --mode live --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_live_json
	verify_in dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "live: on a 200mbit link the freeze is a fraction of a full copy's time" {
	# 256 MiB take 10.7 s at 200 Mbit/s: stop mode would freeze that long.
	# Live mode freezes for the last dirty set (at most the 16 MiB hot set).
	serve_start
	start_mtouch
	migrate --key "$KEY" --mode live --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_live_json
	local gap
	gap=$(check_ticks "$LOG")
	((gap < 4000)) || { echo "the workload was paused ${gap} ms: not a live migration" >&2; false; }
	verify_in dst
	assert_workdir_clean
}

@test "live, failure: restore fails on dst: rolled back, memory intact on src" {
	require_fault dst.restore
	serve_start PHAUL_FAULT=dst.restore
	start_mtouch
	migrate --key "$KEY" --mode live --json "$PID"
	assert_failed_with 'restor'
	assert_fault_hit dst.restore
	assert_json_object
	[ "$(json .ok)" = false ]
	[ "$(json .mode)" = live ]
	assert_rolled_back "$LOG" "$PID"
	verify_in src
	check_ticks "$LOG"
}

@test "live, failure: the dst daemon is killed (-9) during pre-copy: the workload barely pauses, memory intact on src" {
	require_fault dst.round
	serve_start PHAUL_FAULT=dst.round:delay=3000
	start_mtouch
	local before
	before=$(last_tick "$LOG")
	in_src timeout -k 5 "$MIGRATE_TIMEOUT" "$PHAUL" migrate --to "$DST_ADDR:$PHAUL_PORT" \
		--key "$KEY" --mode live "$PID" >"$SCRATCH/m.out" 2>"$SCRATCH/m.err" 3>&- 4>&- &
	local mjob=$!
	# rounds are held 3 s each on dst: kill the daemon inside the first one
	wait_for 30 eval 'grep -qi round "$SERVE_LOG" || ! _running '"$mjob" ||
		{ echo "the daemon never logged a pre-copy round:" >&2; cat "$SERVE_LOG" >&2; false; }
	assert_job_running "$mjob" "the first pre-copy round"
	sleep 0.5
	assert_job_running "$mjob" "the daemon could be killed"
	in_dst kill -9 "$DAEMON_PID"
	wait_for 60 eval '! _running '"$mjob" || { echo "migrate still running 60 s after the daemon died" >&2; false; }
	status=0
	wait "$mjob" || status=$?
	stderr=$(cat "$SCRATCH/m.err")
	assert_failed_with '.'
	wait_for 5 eval '! pid_alive_in dst "$DAEMON_PID"'
	serve_start
	assert_rolled_back "$LOG" "$PID"
	local gap
	gap=$(check_ticks "$LOG")
	note "largest pause of the workload: ${gap} ms (ticks from $before)"
	((gap < 1000)) || { echo "the workload was paused ${gap} ms although it was never frozen for the final dump" >&2; false; }
	verify_in src
}

@test "live, failure: the workload is killed during pre-copy: the error says it is gone, not that it runs on src" {
	serve_start
	start_mtouch
	# the first round waits 3 s (a fault point's delay); the workload dies in it
	local killer
	(sleep 1 && in_src kill -KILL "$PID") 3>&- 4>&- &
	killer=$!
	migrate PHAUL_FAULT=src.round:delay=3000 --key "$KEY" --mode live "$PID"
	wait "$killer"
	[ "$status" -eq 1 ] || { echo "exit $status: $stderr" >&2; false; }
	[[ "$stderr" == *"gone from the source too"* ]] ||
		{ echo "the error does not say the workload is gone: $stderr" >&2; false; }
	[[ "$stderr" != *"the workload runs on the source"* ]]
	! pid_alive_in dst "$PID"
}
