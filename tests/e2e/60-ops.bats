#!/usr/bin/env bats
# Operating phaul: two `phaul migrate` of one tree at once, several
# migrations into one daemon at once, --max-parallel, SIGTERM on the
# daemon mid-migration, `phaul check`, and hostile unauthenticated
# clients.  Same assertions as the other files: the workload runs on
# exactly one host, its ticks go on with none lost or repeated, nothing
# is left behind.

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

MIGRATE_MODE=stop

# start_counter_n N: counter N in src, log $SCRATCH/cN.log; sets CPID[N].
start_counter_n() {
	CPID[$1]=$(start_in_src "$WORKLOADS/counter" "$SCRATCH/c$1.log") || return 1
	ticks_advance "$SCRATCH/c$1.log" 20
}

# migrate_bg_n N [VAR=VAL...] [--] ARGS...: phaul migrate in src in the
# background, stdout/stderr in $SCRATCH/mN.out/.err; sets MJOBS[N].
migrate_bg_n() {
	local n=$1 envs=()
	shift
	while [[ "${1:-}" == *=* ]]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	in_src timeout -k 5 "$MIGRATE_TIMEOUT" env "${envs[@]}" "$PHAUL" migrate \
		--to "$DST_ADDR:$PHAUL_PORT" --mode "$MIGRATE_MODE" --key "$KEY" \
		--workdir "$SRC_WORKDIR" "$@" >"$SCRATCH/m$n.out" 2>"$SCRATCH/m$n.err" 3>&- 4>&- &
	MJOBS[$n]=$!
}

# wait_bg_n N SEC: the background migrate N ends within SEC s; sets
# status, stderr.
wait_bg_n() {
	local job=${MJOBS[$1]}
	wait_for "$2" eval '! _running '"$job" || {
		echo "phaul migrate $1 still runs $2 s later" >&2
		return 1
	}
	status=0
	wait "$job" || status=$?
	stderr=$(cat "$SCRATCH/m$1.err")
	echo "# migrate $1 -> exit $status: $stderr" >>"$SCRATCH/migrate.log"
}

# ---------------------------------------------------------------- one tree, two migrates

@test "ops: a second phaul migrate of the same PID is refused while the first runs; the first lands" {
	require_fault src.preflight
	serve_start
	fx_start_counter
	# the first holds its lock 4 s at the preflight
	migrate_bg_n 1 PHAUL_FAULT=src.preflight:delay=4000 -- "$PID"
	wait_for 10 grep -q 'session .* from' "$SERVE_LOG"
	assert_job_running "${MJOBS[1]}" "the second migrate"
	fx_migrate "$PID"
	assert_failed_with "PID $PID is being migrated already \(by phaul PID [0-9]+\)"
	[ "$status" -eq 1 ]
	# the refusal touched nothing: the first goes on and lands
	wait_bg_n 1 60
	[ "$status" -eq 0 ] || { echo "the first migrate failed: $stderr" >&2; false; }
	fx_assert_migrated
}

@test "ops: a phaul migrate killed while it holds the lock does not block the next one" {
	require_fault src.preflight
	serve_start
	fx_start_counter
	fx_migrate PHAUL_FAULT=src.preflight:kill -- "$PID"
	[ "$status" -eq 137 ] || { echo "migrate was not killed at src.preflight: $status $stderr" >&2; false; }
	assert_rolled_back "$LOG" "$PID"
	fx_migrate "$PID"
	[ "$status" -eq 0 ] || { echo "the next migrate failed: $stderr" >&2; false; }
	fx_assert_migrated
}

# ---------------------------------------------------------------- several at once

@test "ops: three migrations into one daemon at the same time all land" {
	serve_start
	local n
	for n in 1 2 3; do start_counter_n "$n"; done
	for n in 1 2 3; do migrate_bg_n "$n" -- "${CPID[$n]}"; done
	for n in 1 2 3; do
		wait_bg_n "$n" 90
		[ "$status" -eq 0 ] || { echo "migrate $n failed: $stderr" >&2; false; }
	done
	# they really overlapped: three sessions were open at once
	[ "$(grep -c 'session .* from' "$SERVE_LOG")" -eq 3 ]
	for n in 1 2 3; do
		assert_only_in dst "${CPID[$n]}"
		ticks_advance "$SCRATCH/c$n.log" 20
		check_ticks "$SCRATCH/c$n.log" >/dev/null
	done
	assert_workdir_clean
	fx_assert_src_workdir_clean
	fx_assert_no_strays
}

@test "ops: one more migration than --max-parallel is refused with a clear message, the running one lands, the next one works" {
	require_fault src.preflight
	serve_start --max-parallel 1
	start_counter_n 1
	start_counter_n 2
	migrate_bg_n 1 PHAUL_FAULT=src.preflight:delay=3000 -- "${CPID[1]}"
	wait_for 10 grep -q 'session .* from' "$SERVE_LOG"
	fx_migrate "${CPID[2]}"
	assert_failed_with 'busy|max-parallel'
	grep -q 'refusing a connection' "$SERVE_LOG"
	assert_only_in src "${CPID[2]}"
	wait_bg_n 1 60
	[ "$status" -eq 0 ] || { echo "migrate 1 failed: $stderr" >&2; false; }
	assert_only_in dst "${CPID[1]}"
	# a slot is free again once the session process is gone
	fx_assert_no_strays
	fx_migrate "${CPID[2]}"
	[ "$status" -eq 0 ] || { echo "migrate 2 after the first ended failed: $stderr" >&2; false; }
	for n in 1 2; do
		assert_only_in dst "${CPID[$n]}"
		ticks_advance "$SCRATCH/c$n.log" 20
		check_ticks "$SCRATCH/c$n.log" >/dev/null
	done
	assert_workdir_clean
	fx_assert_no_strays
}

# ---------------------------------------------------------------- SIGTERM

# sigterm_case POINT OUTCOME [MODE]: hold the migration at the daemon's
# fault point POINT (delay), SIGTERM the daemon there; OUTCOME is
# rolled-back or committed.  The daemon must exit by itself soon after.
sigterm_case() {
	local point=$1 outcome=$2 mode=${3:-stop}
	require_fault "$point"
	serve_start PHAUL_FAULT="$point:delay=2500"
	if [ "$mode" = live ]; then fx_start_mtouch 32; else fx_start_counter; fi
	MIGRATE_MODE=$mode fx_migrate_bg -- --json "$PID"
	wait_for 60 grep -q "injected delay of 2500 ms at $point" "$SERVE_LOG"
	in_dst kill -TERM "$DAEMON_PID"
	fx_wait_migrate_job "$MJOB" 60
	wait_for 20 eval '! pid_alive_in dst "$DAEMON_PID"' ||
		{ echo "phaul serve still runs 20 s after SIGTERM" >&2; false; }
	grep -q 'shutting down' "$SERVE_LOG"
	if [ "$outcome" = committed ]; then
		[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
		fx_assert_outcome true committed "$mode"
		fx_assert_migrated
	else
		assert_failed_with 'shutting down.*runs on the source'
		fx_assert_outcome false rolled-back "$mode"
		assert_rolled_back "$LOG" "$PID"
		fx_assert_src_workdir_clean
		fx_assert_no_strays
	fi
	[ "$mode" != live ] || fx_verify_mtouch "$([ "$outcome" = committed ] && echo dst || echo src)"
	# no half-restored copy anywhere, now or a little later
	sleep 1
	if [ "$outcome" = committed ]; then assert_only_in dst "$PID"; else assert_only_in src "$PID"; fi
}

@test "ops: SIGTERM on the daemon during the image transfer: rolled back, the daemon exits" {
	sigterm_case dst.transfer rolled-back
}

@test "ops: SIGTERM on the daemon while it holds the restored tree: rolled back, one copy, the daemon exits" {
	sigterm_case dst.restored rolled-back
}

@test "ops: SIGTERM on the daemon after the Commit arrived: the migration commits, the daemon exits" {
	sigterm_case dst.commit committed
}

@test "ops: live: SIGTERM on the daemon during the pre-copy rounds: rolled back, memory intact on src" {
	sigterm_case dst.round rolled-back live
}

# ---------------------------------------------------------------- phaul check

# check_run ARGS...: phaul check in src against the daemon; status,
# output (stdout), stderr.
check_run() {
	run --separate-stderr in_src timeout -k 5 60 "$PHAUL" check --to "$DST_ADDR:$PHAUL_PORT" \
		--workdir "$SRC_WORKDIR" "$@"
	echo "# phaul check $* -> exit $status: $output / $stderr" >>"$SCRATCH/migrate.log"
}

# Nothing of a check may stay: not even an outcome record on dst.
assert_check_left_nothing() {
	assert_workdir_clean
	[ -z "$(ls -A "$WORKDIR/outcomes" 2>/dev/null)" ] ||
		{ echo "a check left outcome records: $(ls "$WORKDIR/outcomes")" >&2; false; }
	fx_assert_src_workdir_clean
	fx_assert_no_strays
}

@test "check: nothing blocks: exit 0, both sides ok, the workload untouched, nothing left behind" {
	serve_start
	fx_start_counter
	check_run --key "$KEY" --pid "$PID"
	[ "$status" -eq 0 ] || { echo "check failed: $output $stderr" >&2; false; }
	[[ "$output" == *"of PID $PID to $DST_ADDR:$PHAUL_PORT: nothing blocks it"* ]]
	grep -qE '^  source +ok \(CRIU [0-9]+\.[0-9]+\.[0-9]+\)$' <<<"$output"
	grep -qE '^  destination +ok \(CRIU [0-9]+\.[0-9]+\.[0-9]+\)$' <<<"$output"
	grep -q 'check only (phaul check)' "$SERVE_LOG"
	# not frozen, not moved: ticks went on without a pause
	ticks_advance "$LOG" 20
	assert_only_in src "$PID"
	(($(check_ticks "$LOG") < 500))
	assert_check_left_nothing
	# and --json says the same
	check_run --key "$KEY" --pid "$PID" --json
	[ "$status" -eq 0 ]
	[ "$(jq -r '[.ok, .pid, .mode, .destination.reached, (.source.problems | length),
		(.destination.problems | length), (.source.criu | type)] | map(tostring) | join(" ")' \
		<<<"$output")" = "true $PID live true 0 0 string" ]
	assert_check_left_nothing
}

@test "check: a PID taken on dst and a missing one are reported as blockers (exit 1, --json lists them)" {
	serve_start
	fx_start_counter
	# take $PID in dst: the next PIDs there are handed out from ns_last_pid
	local holder
	in_dst /bin/sh -c "echo $((PID - 2)) >/proc/sys/kernel/ns_last_pid"
	holder=$(start_in_dst sleep 1000)
	pid_alive_in dst "$PID" || { echo "test setup: PID $PID not taken in dst (sleep got $holder)" >&2; false; }
	check_run --key "$KEY" --pid "$PID"
	[ "$status" -eq 1 ]
	[[ "$output" == *": blocked"* ]]
	grep -qE "^  destination +PID $PID is taken on the destination" <<<"$output"
	grep -qE '^  source +ok' <<<"$output"
	check_run --key "$KEY" --pid "$PID" --json
	[ "$status" -eq 1 ]
	[ "$(jq -r '.ok' <<<"$output")" = false ]
	jq -e --arg p "PID $PID is taken" '.destination.problems | any(startswith($p))' <<<"$output"
	# a PID that does not exist on the source: a source problem
	check_run --key "$KEY" --pid 999999 --json
	[ "$status" -eq 1 ]
	jq -e '.source.problems | any(test("no process with PID 999999"))' <<<"$output"
	in_dst kill "$holder"
	assert_only_in src "$PID"
	assert_check_left_nothing
}

@test "check: a wrong key blocks: exit 1, says so, nothing left behind" {
	serve_start
	"$PHAUL" keygen "$SCRATCH/other.key" >/dev/null
	check_run --key "$SCRATCH/other.key"
	[ "$status" -eq 1 ]
	grep -qiE '^  destination +.*(wrong key|refused our key)' <<<"$output"
	grep -qE '^  source +ok \(CRIU [0-9.]+\)$' <<<"$output"
	check_run --key "$SCRATCH/other.key" --json
	[ "$(jq -r '[.ok, .destination.reached, .pid] | map(tostring) | join(" ")' <<<"$output")" = "false false null" ]
	assert_check_left_nothing
	pid_alive_in dst "$DAEMON_PID"
}

# ---------------------------------------------------------------- hostile clients

# hostile_start NAME MODE: a raw TCP client in src (no key) that connects
# to the daemon and then MODE: idle (sends nothing), garbage (random
# bytes), bigrecord (a TLS record header announcing 65535 bytes, then
# bytes that never complete it), http (a plain HTTP request).  It logs
# "CLOSED after S" to $SCRATCH/NAME.log when the daemon closes the
# connection (or "OPEN after 30" if it never does).  HOSTILE_FROM: the
# source address to connect from (default: src's own).
hostile_start() {
	# written once: rewriting it under a client that is just starting
	# hands that client an empty script, which exits without a word
	[ -f "$SCRATCH/hostile.py" ] && { hostile_run "$@"; return; }
	cat >"$SCRATCH/hostile.py" <<'PY'
import os, socket, sys, time
addr, port, mode, logf = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
src = (sys.argv[5], 0) if len(sys.argv) > 5 and sys.argv[5] else None
s = socket.create_connection((addr, port), source_address=src)
t0 = time.time()
try:
    if mode == "garbage":
        s.sendall(os.urandom(4096))
    elif mode == "bigrecord":
        s.sendall(b"\x16\x03\x01\xff\xff" + b"\x01" * 1000)
    elif mode == "http":
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    s.settimeout(30)
    while s.recv(4096):
        pass
    what = "CLOSED"
except socket.timeout:
    what = "OPEN"
except OSError:
    what = "CLOSED"
with open(logf, "a") as f:
    f.write("%s after %.1f\n" % (what, time.time() - t0))
PY
	hostile_run "$@"
}

hostile_run() {
	start_in_src -o "$SCRATCH/$1.out" python3 "$SCRATCH/hostile.py" "$DST_ADDR" "$PHAUL_PORT" "$2" \
		"$SCRATCH/$1.log" "${HOSTILE_FROM:-}" >/dev/null
}

# hostile_closed NAME MAXSEC: the daemon closed NAME's connection within MAXSEC s.
hostile_closed() {
	wait_for $(($2 + 5)) test -s "$SCRATCH/$1.log" ||
		{ echo "hostile client $1 never finished" >&2; return 1; }
	local what secs
	read -r what _ secs <"$SCRATCH/$1.log"
	[ "$what" = CLOSED ] && ((${secs%.*} <= $2)) ||
		{ echo "hostile client $1: $(cat "$SCRATCH/$1.log") (want CLOSED within $2 s)" >&2; return 1; }
}

@test "hostile: unauthenticated clients (silent, garbage, oversized record, HTTP) are cut off within --auth-timeout; a real migration meanwhile is unaffected" {
	serve_start --auth-timeout 3
	fx_start_counter
	local h
	for h in idle garbage bigrecord http; do hostile_start "$h" "$h"; done
	wait_for 5 eval '[ "$(grep -c "step: authentication" "$SERVE_LOG")" -ge 4 ]'
	# four sessions wait for a handshake that never comes; one more works
	fx_migrate "$PID"
	[ "$status" -eq 0 ] || { echo "migrate next to hostile clients failed: $stderr" >&2; false; }
	for h in idle garbage bigrecord http; do hostile_closed "$h" 4; done
	grep -q 'client failed authentication' "$SERVE_LOG"
	pid_alive_in dst "$DAEMON_PID"
	fx_assert_migrated
}

@test "hostile: idle connections take no session slot: a flood from one address is bounded by --max-unauth-per-host, a migration from another runs during it" {
	serve_start --auth-timeout 60 --max-parallel 1 --max-unauth-per-host 3
	fx_start_counter
	# the flood comes from a second address of src
	in_src ip addr add 192.0.2.3/24 dev "$HOSTS_IF_SRC"
	local i n max=0 closed
	for i in $(seq 10); do HOSTILE_FROM=192.0.2.3 hostile_start "idle$i" idle; done
	# 3 wait for their handshake, the 7 others are closed at once, unread
	wait_for 5 eval '[ "$(cat "$SCRATCH"/idle*.log 2>/dev/null | wc -l)" -ge 7 ]'
	for i in $(seq 10); do
		n=$(procs_in dst | grep -c phaul)
		((n > max)) && max=$n
		sleep 0.05
	done
	note "at most $max phaul processes in dst during the flood (the daemon and its children)"
	((max <= 4)) || { echo "the daemon had $((max - 1)) children for 3 allowed" >&2; false; }
	closed=$(cat "$SCRATCH"/idle*.log | wc -l)
	[ "$closed" -eq 7 ] || { echo "$closed of 10 closed at once, want 7" >&2; false; }
	grep -q 'too many unauthenticated connections from this address' "$SERVE_LOG"
	# the only session slot is free: a migration from 192.0.2.1 lands,
	# while the 3 idle connections still wait
	fx_migrate "$PID"
	[ "$status" -eq 0 ] || { echo "migrate during the flood failed: $stderr" >&2; false; }
	# (not fx_assert_migrated: the 3 handshakes are the daemon's children still)
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30 10
	closed=$(cat "$SCRATCH"/idle*.log | wc -l)
	[ "$closed" -eq 7 ] || { echo "idle connections were cut before --auth-timeout" >&2; false; }
	pid_alive_in dst "$DAEMON_PID"
	# SIGTERM cancels the handshakes still waiting
	serve_stop
	for i in $(seq 10); do hostile_closed "idle$i" 60; done
	fx_assert_no_strays
}

# ---------------------------------------------------------------- install, journald

@test "install: make install puts a release phaul (no fault injection) and a systemd unit that systemd-analyze accepts, ExecStart the installed binary, no default address" {
	local root=$SCRATCH/usr
	run make -s -C "$REPO_ROOT" install PREFIX="$root"
	[ "$status" -eq 0 ] || { echo "make install failed: $output" >&2; false; }
	[ -x "$root/bin/phaul" ]
	grep -qx "ExecStart=$root/bin/phaul serve .*" "$root/lib/systemd/system/phaul.service"
	grep -qx 'KillMode=process' "$root/lib/systemd/system/phaul.service"
	# the installed binary ignores PHAUL_FAULT: no fault point compiled in
	run --separate-stderr env PHAUL_FAULT=dst.preflight "$root/bin/phaul" faults
	[ "$status" -eq 0 ] && [ -z "$output" ] ||
		{ echo "installed phaul lists fault points: $output" >&2; false; }
	[[ "$stderr" == *"compiled out"* ]]
	# while the test build keeps them
	"$PHAUL" faults | grep -qx dst.preflight
	# no listening on every address by default
	refute grep -q '0\.0\.0\.0\|\[::\]' "$root/lib/systemd/system/phaul.service"
	grep -qx 'Environment=PHAUL_LISTEN= PHAUL_OPTS=' "$root/lib/systemd/system/phaul.service"
	refute grep -qE '^(PrivateTmp|ProtectSystem|NoNewPrivileges|SystemCallFilter)=' \
		"$root/lib/systemd/system/phaul.service"
	if command -v systemd-analyze >/dev/null; then
		run systemd-analyze verify "$root/lib/systemd/system/phaul.service"
		[ "$status" -eq 0 ] || { echo "systemd-analyze verify: $output" >&2; false; }
	fi
}

@test "journald: with stderr the journal (JOURNAL_STREAM), the daemon's lines carry a syslog priority and no time stamp of their own" {
	# as systemd does: JOURNAL_STREAM names the file stderr is
	: >"$SERVE_LOG"
	serve_start JOURNAL_STREAM="$(stat -c %d:%i "$SERVE_LOG")"
	fx_start_counter
	fx_migrate "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	grep -qE '^<6>phaul-serve\[[0-9]+\] serve: listening on ' "$SERVE_LOG"
	grep -qE '^<6>phaul-session\[[0-9]+\] ' "$SERVE_LOG"
	refute grep -qvE '^<[3467]>phaul-(serve|session|busy)\[[0-9]+\] ' "$SERVE_LOG"
	fx_assert_migrated
}
