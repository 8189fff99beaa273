#!/usr/bin/env bats
# End-to-end tests of what an operator sees of a running migration
# (docs/EVENTS.md): `phaul migrate --events`, `phaul status` on both
# hosts, and `phaul cancel` before the commit (rolled back) and after it
# (refused). Each host's control sockets go to a directory of its own
# (PHAUL_CONTROL_DIR), as /run/phaul/control is on two machines: the test
# hosts share their files.

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	case "$BATS_TEST_DESCRIPTION" in
	*100mbit*) hosts_setup 100mbit ;;
	*) hosts_setup ;;
	esac
	phaul_setup
	CTL_src=$SCRATCH/control-src
	CTL_dst=$SCRATCH/control-dst
}

# ctl HOST ARGS...: phaul ARGS in HOST, with its control directory.
ctl() {
	local h=$1 dir
	shift
	[ "$h" = src ] && dir=$CTL_src || dir=$CTL_dst
	in_"$h" env PHAUL_CONTROL_DIR="$dir" "$PHAUL" "$@"
}

teardown() {
	hosts_teardown
}

# bg_migrate ARGS...: phaul migrate in src in the background: MJOB; its
# stdout and stderr in $SCRATCH/m.out, m.err.
bg_migrate() {
	in_src timeout -k 5 120 env PHAUL_CONTROL_DIR="$CTL_src" "$PHAUL" migrate \
		--to "$DST_ADDR:$PHAUL_PORT" --key "$KEY" "$@" >"$SCRATCH/m.out" 2>"$SCRATCH/m.err" \
		3>&- 4>&- &
	MJOB=$!
}

bg_wait() {
	wait_for 110 eval '! _running "$MJOB"' || { echo "migrate never finished" >&2; return 1; }
	status=0
	wait "$MJOB" || status=$?
	output=$(cat "$SCRATCH/m.out")
	stderr=$(cat "$SCRATCH/m.err")
}

# status_in HOST: `phaul status --json` there, in $STATUS.
status_in() {
	STATUS=$(ctl "$1" status --json)
}

# has_side HOST SIDE [PHASE]: the status there lists a migration of SIDE
# (in PHASE); its id in $ID.
has_side() {
	status_in "$1" || return 1
	ID=$(jq -r --arg s "$2" --arg p "${3:-}" '.migrations[] | select(.side == $s and .id != null
		and ($p == "" or .phase == $p)) | .id' <<<"$STATUS" | head -n1)
	[ -n "$ID" ]
}

@test "events: --events lines agree with --json (rounds, totals, steps, timestamps, the outcome last)" {
	serve_start PHAUL_CONTROL_DIR="$CTL_dst"
	fx_start_mtouch 64 8 32
	migrate PHAUL_CONTROL_DIR="$CTL_src" -- --key "$KEY" --mode live --json --events "$SCRATCH/ev.jsonl" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	local ev=$SCRATCH/ev.jsonl
	note "$(wc -l <"$ev") event lines; e.g. $(grep -m1 '"event":"round"' "$ev")"
	# every line one object of schema version 1 with the common fields
	jq -se 'all(.[]; .v == 1 and (.event | type == "string") and (.elapsed_ms | type == "number")
		and (.ts | type == "number") and (.phase | type == "string"))' "$ev" >/dev/null ||
		{ echo "a line lacks the common fields:" >&2; cat "$ev" >&2; false; }
	# the timestamps never go back
	jq -se '[.[].elapsed_ms] as $t | all(range(1; $t | length); $t[.] >= $t[. - 1])' "$ev" \
		>/dev/null || { echo "elapsed_ms goes back" >&2; false; }
	# the outcome is last and carries --json's very object
	[ "$(jq -s '.[-1].event' -r "$ev")" = outcome ]
	[ "$(jq -s '[.[] | select(.event == "outcome")] | length' "$ev")" = 1 ]
	[ "$(jq -S -c '.' <<<"$output")" = "$(jq -s -S -c '.[-1].result' "$ev")" ]
	# one round event per round of --json, the same numbers
	local rounds iters
	rounds=$(jq -s -c '[.[] | select(.event == "round") | [.round, .pages_sent, .pages_dirty, .bytes, .frozen]]' "$ev")
	iters=$(jq -c '[.iters | to_entries[] | [.key + 1, .value.pages_sent, .value.pages_dirty, .value.bytes, .value.frozen]]' <<<"$output")
	[ "$rounds" = "$iters" ] || { echo "rounds $rounds, --json $iters" >&2; false; }
	[ "$(jq 'length' <<<"$iters")" -ge 2 ]
	# the steps, in order, and the commit
	local steps
	steps=$(jq -s -r '[.[] | select(.event == "step") | .phase] | join(" ")' "$ev")
	note "steps: $steps"
	[[ "$steps" == "prepare connect preflight start round "*" commit"* ]]
	[ "$(jq -s '[.[] | select(.event == "committed")] | length' "$ev")" = 1 ]
	fx_verify_mtouch dst
}

@test "events: --events - interleaves nothing with --json: the lines, then the object" {
	serve_start PHAUL_CONTROL_DIR="$CTL_dst"
	fx_start_mtouch 16 2 8
	migrate PHAUL_CONTROL_DIR="$CTL_src" -- --key "$KEY" --mode stop --json --events - "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	local n
	n=$(wc -l <<<"$output")
	((n >= 5))
	# the last line is --json's object, the one before the outcome event with it
	[ "$(tail -n1 <<<"$output" | jq -S -c .)" = "$(tail -n2 <<<"$output" | head -n1 | jq -S -c .result)" ]
	[ "$(tail -n1 <<<"$output" | jq -r .ok)" = true ]
}

@test "status and cancel on a 100mbit link: both hosts list the migration; cancel before the commit rolls it back" {
	serve_start PHAUL_CONTROL_DIR="$CTL_dst"
	fx_start_mtouch 256 16 64
	bg_migrate --mode live --max-iters 20 --events "$SCRATCH/ev.jsonl" "$PID"
	wait_for 30 has_side src source round ||
		{ echo "phaul status never showed the pre-copy rounds; last: $STATUS" >&2; cat "$SCRATCH/m.err" >&2; false; }
	local id=$ID
	note "status in src: $STATUS"
	[ "$(jq -r --arg id "$id" '.migrations[] | select(.id == $id and .side == "source") | .pid' <<<"$STATUS")" = "$PID" ]
	[ "$(jq -r --arg id "$id" '.migrations[] | select(.id == $id and .side == "source") | .mode' <<<"$STATUS")" = live ]
	wait_for 10 has_side dst destination
	[ "$ID" = "$id" ] || { echo "dst shows session $ID, src $id" >&2; false; }
	# the human table names it too
	ctl dst status | grep -q "^$id  destination"
	# cancel by a prefix of the id, from the source's host
	local t0=$SECONDS
	run ctl src cancel "${id:0:12}"
	[ "$status" -eq 0 ] || { echo "cancel exited $status: $output" >&2; false; }
	note "cancel to rollback: $((SECONDS - t0)) s"
	# in the middle of a 20 s round: it stops within the round
	((SECONDS - t0 <= 5)) || { echo "the cancel took $((SECONDS - t0)) s" >&2; false; }
	bg_wait
	[ "$status" -eq 1 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	grep -q "cancelled by the operator; the workload runs on the source" <<<"$stderr"
	[ "$(jq -r .outcome <<<"$output")" = null ] || true
	[ "$(tail -n1 "$SCRATCH/ev.jsonl" | jq -r .result.ok)" = false ]
	assert_rolled_back "$LOG" "$PID"
	fx_verify_mtouch src
	assert_workdir_clean
	# nothing answers for it any more
	status_in src
	[ "$(jq --arg id "$id" '[.migrations[] | select(.id == $id)] | length' <<<"$STATUS")" = 0 ]
}

@test "cancel from the destination on a 100mbit link: the session aborts, the source rolls back" {
	serve_start PHAUL_CONTROL_DIR="$CTL_dst"
	fx_start_mtouch 256 16 64
	bg_migrate --mode live --max-iters 20 "$PID"
	wait_for 30 has_side dst destination ||
		{ echo "no destination session in phaul status; last: $STATUS" >&2; false; }
	# 256 MiB take 20 s on this link: the cancel comes well before the commit
	sleep 2
	[ "$(jq -r --arg id "$ID" '.migrations[] | select(.id == $id) | .committed' <<<"$STATUS")" = false ]
	run ctl dst cancel "$ID"
	[ "$status" -eq 0 ] || { echo "cancel exited $status: $output" >&2; false; }
	bg_wait
	[ "$status" -eq 1 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	grep -q "runs on the source" <<<"$stderr"
	# the session says why, and tells the source, which says it too unless
	# the Error was lost with the connection it was still writing a round to
	grep -q "session $ID: cancelled by the operator" "$SERVE_LOG"
	grep -q "session $ID rolled back" "$SERVE_LOG"
	grep -qiE "cancelled by the operator|connection|reset|closed" <<<"$stderr" ||
		{ echo "the source does not say why: $stderr" >&2; false; }
	note "source: $stderr"
	assert_rolled_back "$LOG" "$PID"
	fx_verify_mtouch src
	assert_workdir_clean
}

# dst_pages_moved: the destination's session reports post-copy pages moved.
dst_pages_moved() {
	status_in dst || return 1
	[ "$(jq -r --arg id "$ID" '.migrations[] | select(.id == $id and .side == "destination") |
		.progress.pages_moved // 0' <<<"$STATUS")" -gt 0 ]
}

@test "cancel after the commit on a 100mbit link (lazy): refused with exit 3; the migration completes" {
	serve_start PHAUL_CONTROL_DIR="$CTL_dst"
	fx_start_mtouch 256 16 64
	bg_migrate --mode lazy --json "$PID"
	wait_for 60 has_side src source post-copy ||
		{ echo "never saw post-copy in phaul status; last: $STATUS" >&2; cat "$SCRATCH/m.err" >&2; false; }
	[ "$(jq -r --arg id "$ID" '.migrations[] | select(.id == $id and .side == "source") | .committed' <<<"$STATUS")" = true ]
	# the destination's status counts the pages it has put in place
	wait_for 30 dst_pages_moved ||
		{ echo "the destination's status shows no post-copy progress; last: $STATUS" >&2; false; }
	note "status in dst: $(jq -c --arg id "$ID" '.migrations[] | select(.id == $id) | .progress' <<<"$STATUS")"
	run ctl src cancel "$ID"
	[ "$status" -eq 3 ] || { echo "cancel exited $status, not 3: $output" >&2; false; }
	grep -q "committed" <<<"$output"
	# the destination's session refuses too
	run ctl dst cancel "$ID"
	[ "$status" -eq 3 ] || [ "$status" -eq 1 ] # 1: it may have ended meanwhile
	bg_wait
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	[ "$(jq -r .outcome <<<"$output")" = committed ]
	assert_only_in dst "$PID"
	fx_verify_mtouch dst
}

@test "control: a request that is not one is answered so, the socket keeps serving" {
	serve_start PHAUL_CONTROL_DIR="$CTL_dst"
	fx_start_mtouch 256 16 64
	bg_migrate --mode live --max-iters 20 "$PID"
	wait_for 30 has_side src source
	local sock
	sock=$(jq -r --arg id "$ID" '.migrations[] | select(.id == $id and .side == "source") | .socket' <<<"$STATUS")
	[ -S "$sock" ]
	run python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"{\"v\":1,\"op\":\"cancel\",\"id\":\"zz\"}\n" + b"x"*4000); print(s.recv(4096).decode())' "$sock"
	[[ "$output" == *'"ok":false'* ]] || { echo "reply: $output" >&2; false; }
	run python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"{\"v\":2,\"op\":\"status\"}\n"); print(s.recv(4096).decode())' "$sock"
	[[ "$output" == *'"error":"bad-request"'* ]] || { echo "reply: $output" >&2; false; }
	has_side src source
	bg_wait
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; false; }
}

@test "progress on a 100mbit link: a terminal gets a bar with the phase and an ETA" {
	serve_start PHAUL_CONTROL_DIR="$CTL_dst"
	fx_start_mtouch 96 4 16
	# script(1) gives phaul migrate a terminal
	in_src env PHAUL_CONTROL_DIR="$CTL_src" script -qec "'$PHAUL' migrate --to $DST_ADDR:$PHAUL_PORT \
		--key '$KEY' --mode live '$PID'" /dev/null >"$SCRATCH/tty.out" 2>&1 ||
		{ echo "migrate failed:" >&2; cat "$SCRATCH/tty.out" >&2; false; }
	note "terminal: $(tr '\r' '\n' <"$SCRATCH/tty.out" | grep -m1 'ETA [0-9]')"
	# 96 MiB at 100 Mbit/s: a first round of ~8 s, redrawn in place
	tr '\r' '\n' <"$SCRATCH/tty.out" | grep -qE '^round 1 \[#+-*\] +[0-9]+% .* MB/s ETA [0-9]+:[0-9]{2}' ||
		{ echo "no progress bar with an ETA:" >&2; cat -v "$SCRATCH/tty.out" >&2; false; }
	grep -q "migrated PID $PID" "$SCRATCH/tty.out"
	fx_verify_mtouch dst
}
