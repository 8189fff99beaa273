#!/usr/bin/env bats
# The fixtures of 10-stop.bats (counter, pipetree, openfile) migrated in
# live mode (pre-copy rounds while the workload runs, a short freeze, lazy
# restore on dst), with the same assertions: the tree runs only on dst
# afterwards, its ticks go on in the same file with none lost or repeated,
# its fds and sockets work there, nothing is left behind; and the --json
# report says live, names the write-tracking method and lists the rounds.
#
# They fail (never skip) while build/phaul does not exist or misbehaves.

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	hosts_setup
	phaul_setup
	fx_setup
}

teardown() {
	hosts_teardown
}

# every migration here is live unless it says otherwise
MIGRATE_MODE=live
FX_NOTE_TRACKING=1

@test "live: counter moves to dst: ticks go on in the same file, none lost or repeated; --json says live, tracking, rounds" {
	serve_start
	fx_start_counter
	fx_migrate --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	# exit 0 means: runs on dst and is gone from src, already now
	assert_only_in dst "$PID"
	[ -z "$(procs_in src counter)" ]
	[ "$(procs_in dst counter)" = "$PID counter" ]
	ticks_advance "$LOG" 50
	fx_check_success_json live "$LOG"
	fx_assert_migrated
	# the daemon keeps serving, and stopping it leaves the workload running
	pid_alive_in dst "$DAEMON_PID"
	serve_stop
	ticks_advance "$LOG" 20
	assert_only_in dst "$PID"
	check_ticks "$LOG"
}

@test "live: pipetree (3 processes, pipe ring) moves whole: all 3 run on dst, rounds go on" {
	serve_start
	fx_start_pipetree
	fx_migrate --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst $PIDS
	[ "$(children_in dst "$PID" | sort -n | tr '\n' ' ')" = "$KIDS " ]
	[ -z "$(procs_in src)" ]
	[ "$(json .tasks)" = 3 ]
	ticks_advance "$LOG" 50
	fx_check_success_json live "$LOG"
	fx_assert_migrated
}

@test "live: openfile (open O_APPEND file, listening unix socket) moves: ping answers on dst, file consistent" {
	local n2
	serve_start
	fx_start_openfile
	fx_migrate --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30
	run in_dst "$WORKLOADS/openfile" --ping "$OFDIR"
	[ "$status" -eq 0 ] || { echo "ping on dst: $output" >&2; false; }
	n2=${output#COUNTER }
	[ "$n2" -gt "$PING_SRC" ]
	# the same two fds (data file, listening socket) are open on dst
	[ "$(ls "$(_hosts_proc dst)/$PID/fd" | sort -n | tr '\n' ' ')" = "0 1 2 3 4 " ]
	[ ! -e "$OFDIR/status" ] || { cat "$OFDIR/status" >&2; false; }
	# the json of the migration, not of the ping
	output=$(grep '^# stdout: ' "$SCRATCH/migrate.log" | tail -n1 | sed 's/^# stdout: //')
	fx_check_success_json live "$LOG"
	fx_assert_migrated
}

@test "live: mtouch 32 MiB (4 MiB hot) moves; every page verifies on dst; rounds account for the memory" {
	serve_start
	fx_start_mtouch 32
	fx_verify_mtouch src
	fx_migrate --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30
	fx_check_success_json live "$LOG"
	# random data: the rounds carried at least the 32 MiB
	[ "$(jq '[.iters[].pages_sent] | add' <<<"$output")" -ge $((32 * 256)) ]
	fx_verify_mtouch dst
	fx_assert_migrated
}
