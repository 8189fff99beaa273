#!/usr/bin/env bats
# End-to-end tests of phaul's stop mode (freeze, dump, transfer, restore)
# between two test hosts: a self-checking workload runs in src, `phaul
# serve` in dst, `phaul migrate` in src.  Whatever happens, the workload
# must end up running on exactly one host, with no tick lost or repeated.
#
# They fail (never skip) while build/phaul does not exist or misbehaves.

load lib/hosts
load lib/phaul

setup() {
	hosts_setup
	phaul_setup
}

teardown() {
	hosts_teardown
}

# start_counter: a counter in src; sets PID and LOG.
start_counter() {
	LOG=$SCRATCH/counter.log
	PID=$(start_in_src "$WORKLOADS/counter" "$LOG")
	ticks_advance "$LOG" 30
}

# Report sanity of a successful --json run, against what the workload saw.
check_success_json() {
	local mode=$1 log=$2 gap
	assert_json_object
	[ "$(json .ok)" = true ]
	[ "$(json .mode)" = "$mode" ]
	[ "$(json .error)" = null ]
	[[ "$(json .iterations)" =~ ^[0-9]+$ ]]
	local frozen total sent restore
	frozen=$(json .frozen_ms) total=$(json .total_ms)
	sent=$(json .bytes_sent) restore=$(json .restore_ms)
	[[ "$frozen" =~ ^[0-9]+(\.[0-9]+)?$ ]]
	[[ "$total" =~ ^[0-9]+(\.[0-9]+)?$ ]]
	[[ "$restore" =~ ^[0-9]+(\.[0-9]+)?$ ]]
	[[ "$sent" =~ ^[0-9]+$ ]]
	[ "$sent" -gt 0 ]
	(( ${frozen%.*} > 0 && ${frozen%.*} <= ${total%.*} ))
	(( ${restore%.*} <= ${total%.*} ))
	gap=$(check_ticks "$log")
	note "workload pause ${gap} ms; phaul: frozen ${frozen} ms, total ${total} ms, restore ${restore} ms, ${sent} bytes, $(json .iterations) iterations"
	# phaul must not report a freeze much shorter than the pause the
	# workload itself measured.
	if ((gap > ${frozen%.*} + 1000)); then
		echo "the workload paused ${gap} ms but phaul reports frozen_ms=${frozen}" >&2
		return 1
	fi
}


# every migration here is stop-and-copy unless it says otherwise
MIGRATE_MODE=stop

@test "keygen: writes a key file with mode 0600, a new key each time" {
	local k1=$SCRATCH/k1 k2=$SCRATCH/k2
	run "$PHAUL" keygen "$k1"
	[ "$status" -eq 0 ]
	run "$PHAUL" keygen "$k2"
	[ "$status" -eq 0 ]
	[ -s "$k1" ]
	[ "$(stat -c %a "$k1")" = 600 ]
	[ "$(stat -c %a "$k2")" = 600 ]
	refute cmp -s "$k1" "$k2"
}

@test "stop: counter moves to dst: ticks go on in the same file, none lost or repeated; --json report is sane" {
	serve_start
	start_counter
	migrate --key "$KEY" --mode stop --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	# exit 0 means: runs on dst and is gone from src, already now
	assert_only_in dst "$PID"
	[ -z "$(procs_in src counter)" ]
	[ "$(procs_in dst counter)" = "$PID counter" ]
	ticks_advance "$LOG" 50
	check_success_json stop "$LOG"
	assert_workdir_clean
	# the daemon keeps serving, and stopping it leaves the workload running
	pid_alive_in dst "$DAEMON_PID"
	serve_stop
	ticks_advance "$LOG" 20
	assert_only_in dst "$PID"
	check_ticks "$LOG"
}

@test "stop: pipetree (3 processes, pipe ring) moves whole: all 3 run on dst, rounds go on" {
	local log=$SCRATCH/pipetree.log pid kids
	serve_start
	pid=$(start_in_src "$WORKLOADS/pipetree" "$log")
	ticks_advance "$log" 30
	kids=$(children_in src "$pid" | sort -n | tr '\n' ' ')
	[ "$(echo $kids | wc -w)" = 2 ]
	migrate --key "$KEY" "$pid"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$pid" $kids
	[ "$(children_in dst "$pid" | sort -n | tr '\n' ' ')" = "$kids" ]
	[ -z "$(procs_in src)" ]
	ticks_advance "$log" 50
	check_ticks "$log"
	assert_workdir_clean
}

@test "stop: openfile (open O_APPEND file, listening unix socket) moves: ping answers on dst, file consistent" {
	local dir=$SCRATCH/of pid n1 n2
	mkdir "$dir"
	serve_start
	pid=$(start_in_src "$WORKLOADS/openfile" "$dir")
	ticks_advance "$dir/data" 30
	run in_src "$WORKLOADS/openfile" --ping "$dir"
	[ "$status" -eq 0 ]
	n1=${output#COUNTER }
	migrate --key "$KEY" "$pid"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$pid"
	ticks_advance "$dir/data" 30
	run in_dst "$WORKLOADS/openfile" --ping "$dir"
	[ "$status" -eq 0 ] || { echo "ping on dst: $output" >&2; false; }
	n2=${output#COUNTER }
	[ "$n2" -gt "$n1" ]
	# the same two fds (data file, listening socket) are open on dst
	[ "$(ls "$(_hosts_proc dst)/$pid/fd" | sort -n | tr '\n' ' ')" = "0 1 2 3 4 " ]
	[ ! -e "$dir/status" ] || { cat "$dir/status" >&2; false; }
	check_ticks "$dir/data"
	assert_workdir_clean
}

@test "stop, failure: wrong key: both sides say so, the workload stays on src" {
	serve_start
	start_counter
	"$PHAUL" keygen "$SCRATCH/other.key" >/dev/null
	migrate --key "$SCRATCH/other.key" "$PID"
	assert_failed_with 'key|auth|psk'
	wait_for 5 grep -qiE 'key|auth|psk' "$SERVE_LOG" || {
		echo "the daemon's log does not mention the failed authentication:" >&2
		cat "$SERVE_LOG" >&2
		false
	}
	assert_rolled_back "$LOG" "$PID"
	# a bad client does not take the daemon down: the right key works
	pid_alive_in dst "$DAEMON_PID"
	migrate --key "$KEY" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate with the right key failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 20
	check_ticks "$LOG"
}

@test "stop, failure: the dst daemon is killed (-9) during image transfer: rolled back, a restarted daemon cleans up" {
	require_fault dst.transfer
	serve_start PHAUL_FAULT=dst.transfer:delay=3000
	start_counter
	in_src timeout -k 5 "$MIGRATE_TIMEOUT" "$PHAUL" migrate --to "$DST_ADDR:$PHAUL_PORT" \
		--key "$KEY" "$PID" >"$SCRATCH/m.out" 2>"$SCRATCH/m.err" 3>&- 4>&- &
	local mjob=$!
	# the tree is frozen for the dump, and the transfer is held 3 s on dst
	wait_for 30 eval '_hosts_still_for "$LOG" 300 || ! _running '"$mjob" ||
		{ echo "the workload was never frozen" >&2; false; }
	assert_job_running "$mjob" "the workload was frozen"
	sleep 0.5
	assert_job_running "$mjob" "the daemon could be killed"
	in_dst kill -9 "$DAEMON_PID"
	local t0=$SECONDS
	wait_for 60 eval '! _running '"$mjob" || { echo "migrate still running 60 s after the daemon died" >&2; false; }
	status=0
	wait "$mjob" || status=$?
	stderr=$(cat "$SCRATCH/m.err")
	note "migrate noticed the dead daemon after $((SECONDS - t0)) s"
	assert_failed_with '.'
	# a restarted daemon removes what the killed one left in its work dir
	wait_for 5 eval '! pid_alive_in dst "$DAEMON_PID"'
	serve_start
	assert_rolled_back "$LOG" "$PID"
	# and migrations work again
	migrate --key "$KEY" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate after the daemon's restart failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 20
	check_ticks "$LOG"
}

@test "stop, failure: restore fails on dst (PHAUL_FAULT=dst.restore): rolled back, error names the restore" {
	require_fault dst.restore
	serve_start PHAUL_FAULT=dst.restore
	start_counter
	migrate --key "$KEY" --json "$PID"
	assert_failed_with 'restor'
	assert_fault_hit dst.restore
	assert_json_object
	[ "$(json .ok)" = false ]
	[ "$(json .mode)" = stop ]
	json .error | grep -qi restor
	assert_rolled_back "$LOG" "$PID"
	pid_alive_in dst "$DAEMON_PID"
}

@test "stop, failure: dst fails right after restoring (dst.restored): the restored pipetree is killed on dst, all 3 go on in src" {
	require_fault dst.restored
	local log=$SCRATCH/pipetree.log pid kids
	serve_start PHAUL_FAULT=dst.restored
	pid=$(start_in_src "$WORKLOADS/pipetree" "$log")
	ticks_advance "$log" 30
	kids=$(children_in src "$pid" | tr '\n' ' ')
	migrate --key "$KEY" "$pid"
	assert_failed_with '.'
	assert_fault_hit dst.restored
	assert_rolled_back "$log" "$pid" $kids
	[ -z "$(procs_in dst pipetree)" ]
}

@test "stop, failure: the daemon dies between 'restored' and the commit (dst.restored:kill): the workload runs only on src" {
	require_fault dst.restored
	serve_start PHAUL_FAULT=dst.restored:kill
	start_counter
	migrate --key "$KEY" "$PID"
	assert_failed_with '.'
	assert_fault_hit dst.restored
	# The copy restored on dst must never run: the source never saw the
	# commit acknowledged.  It must be gone at the latest once the daemon
	# (restarted if the fault took it down) has noticed.
	serve_restart_if_dead
	wait_for 10 eval '! pid_alive_in dst '"$PID" || {
		echo "the restored copy of $PID still exists in dst:" >&2
		procs_in dst >&2
		false
	}
	assert_rolled_back "$LOG" "$PID"
}

@test "stop, failure: phaul migrate killed mid-transfer (src.transfer:kill): CRIU resumes the tree on src, dst rolls back" {
	require_fault src.transfer
	serve_start
	start_counter
	migrate PHAUL_FAULT=src.transfer:kill -- --key "$KEY" "$PID"
	# 137: killed by SIGKILL, i.e. the fault point was reached
	[ "$status" -eq 137 ] || { echo "migrate exited $status, not killed at src.transfer: $stderr" >&2; false; }
	assert_rolled_back "$LOG" "$PID"
	pid_alive_in dst "$DAEMON_PID"
}

@test "stop, refused: a tree holding a file lock on shared storage (--file-locks): the preflight says why, nothing freezes" {
	# The destination's restore would wait for ever for the lock that the
	# source's frozen copy holds until the commit (CRIU alone kills first).
	serve_start
	LOG=$SCRATCH/counter.log
	PID=$(start_in_src flock "$SCRATCH/lockfile" "$WORKLOADS/counter" "$LOG")
	ticks_advance "$LOG" 30
	migrate --key "$KEY" --file-locks "$PID"
	assert_failed_with "preflight.*PID [0-9]+ holds a file lock on $SCRATCH/lockfile, which both hosts see"
	assert_rolled_back "$LOG" "$PID" $(children_in src "$PID")
	[ "$(check_ticks "$LOG")" -lt 1000 ] || { echo "the workload paused: was it frozen?" >&2; false; }
}

@test "stop, refused: the destination's CPU check fails (dst.cpuinfo): the preflight says so, nothing freezes, no CRIU left" {
	# the CPU check's CRIU runs beside `criu check`: it fails, and both
	# are reaped before the session ends
	require_fault dst.cpuinfo
	serve_start PHAUL_FAULT=dst.cpuinfo
	LOG=$SCRATCH/counter.log
	PID=$(start_in_src "$WORKLOADS/counter" "$LOG")
	ticks_advance "$LOG" 30
	migrate --key "$KEY" "$PID"
	assert_failed_with "preflight.*this CPU lacks features the source's CPU has"
	assert_rolled_back "$LOG" "$PID"
	[ "$(check_ticks "$LOG")" -lt 1000 ] || { echo "the workload paused: was it frozen?" >&2; false; }
	assert_workdir_clean
	! procs_in dst | grep -w criu || { echo "a CRIU is left in dst" >&2; false; }
	! procs_in src | grep -w criu || { echo "a CRIU is left in src" >&2; false; }
}

@test "preflight: a second migration between the same hosts takes CRIU's answers kept from the first; PHAUL_CRIU_CACHE=0 asks again" {
	local run=$SCRATCH/run kept='criu check passed here [0-9]+ s ago: not run again'
	serve_start PHAUL_RUNDIR="$run/dst"
	local a b c
	a=$(start_in_src "$WORKLOADS/counter" "$SCRATCH/a.log")
	b=$(start_in_src "$WORKLOADS/counter" "$SCRATCH/b.log")
	c=$(start_in_src "$WORKLOADS/counter" "$SCRATCH/c.log")
	ticks_advance "$SCRATCH/a.log" 10
	migrate PHAUL_RUNDIR="$run/src" -- --key "$KEY" -v "$a"
	[ "$status" -eq 0 ] || { echo "first migration failed: $stderr" >&2; false; }
	! grep -qE "$kept" <<<"$stderr" || { echo "the first migration found answers kept" >&2; false; }
	# only the source's and the destination's own: private to root
	[ "$(stat -c %a "$run/src")" = 700 ] && [ "$(stat -c %a "$run/dst")" = 700 ]
	[ "$(find "$run" -name 'ck-*' | wc -l)" -ge 4 ]
	migrate PHAUL_RUNDIR="$run/src" -- --key "$KEY" -v "$b"
	[ "$status" -eq 0 ] || { echo "second migration failed: $stderr" >&2; false; }
	grep -qE "$kept" <<<"$stderr" || { echo "the source ran criu check again" >&2; false; }
	[ "$(grep -cE "$kept" "$SERVE_LOG")" -eq 1 ] ||
		{ echo "the destination did not take its kept answer once" >&2; false; }
	migrate PHAUL_RUNDIR="$run/src" PHAUL_CRIU_CACHE=0 -- --key "$KEY" -v "$c"
	[ "$status" -eq 0 ] || { echo "third migration failed: $stderr" >&2; false; }
	! grep -qE "$kept" <<<"$stderr" || { echo "PHAUL_CRIU_CACHE=0 took a kept answer" >&2; false; }
	for w in a b c; do ticks_advance "$SCRATCH/$w.log" 10; done
	assert_only_in dst "$a" "$b" "$c"
	assert_workdir_clean
}

@test "stop, failure: a PID that does not exist: clear error, nothing changes" {
	local pid=29999
	serve_start
	refute pid_alive_in src "$pid"
	migrate --key "$KEY" "$pid"
	assert_failed_with "$pid|no such process|not found|does not exist|not exist"
	assert_workdir_clean
	pid_alive_in dst "$DAEMON_PID"
	[ -z "$(procs_in dst | grep -v " phaul$")" ]
}
