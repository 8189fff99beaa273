#!/usr/bin/env bats
# End-to-end tests of migrations over ssh, without a daemon:
# `phaul migrate --to ssh://root@DST` runs OpenSSH (a test config: key,
# known_hosts) to an sshd in the dst host (lib/ssh.bash), which starts
# `phaul serve --stdio` for this one migration; the whole migration runs
# on that channel. mtouch checks every page after the move.

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/ssh

SIZE_MIB=128
PAGES=$((SIZE_MIB * 256))

setup() {
	hosts_setup
	phaul_setup
	ssh_setup
}

teardown() {
	hosts_teardown
}

# start_migrate_ssh ARGS...: migrate over ssh in the background ($MJOB).
start_migrate_ssh() {
	in_src timeout -k 5 120 "$PHAUL" migrate --to "$SSH_TO" --ssh-cmd "$SSH_CMD" \
		--ssh-remote "$(ssh_remote)" "$@" >"$SCRATCH/m.out" 2>"$SCRATCH/m.err" 3>&- 4>&- &
	MJOB=$!
}

# end_migrate: wait for $MJOB; sets status, output, stderr.
end_migrate() {
	wait_for 150 eval '! _running "$MJOB"' || { echo "migrate never finished" >&2; false; }
	status=0
	wait "$MJOB" || status=$?
	output=$(cat "$SCRATCH/m.out")
	stderr=$(cat "$SCRATCH/m.err")
}

# assert_moved: mtouch runs in dst alone, every page verifies, nothing left.
assert_moved() {
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30
	fx_verify_mtouch dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "ssh, live: mtouch 128 MiB moves over ssh, no daemon and no key; every page verifies on dst" {
	fx_start_mtouch "$SIZE_MIB" 8 32
	migrate_ssh -- --mode live --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	[ "$(json .ok)" = true ]
	[ "$(json .mode)" = live ]
	(($(json .bytes_sent) >= SIZE_MIB * 1048576)) ||
		{ echo "bytes_sent $(json .bytes_sent) < the workload's $SIZE_MIB MiB" >&2; false; }
	grep -q "serving one migration over ssh from $SRC_ADDR" "$SERVE_LOG" ||
		{ echo "no serve --stdio session in $SERVE_LOG" >&2; false; }
	assert_moved
}

@test "ssh, lazy: mtouch 128 MiB restored first, its pages fetched over ssh; every page verifies on dst" {
	fx_start_mtouch "$SIZE_MIB" 8 32
	migrate_ssh -- --mode lazy --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	[ "$(json .outcome)" = committed ]
	(($(json .postcopy.pages_fetched) >= PAGES)) ||
		{ echo "only $(json .postcopy.pages_fetched) of $PAGES pages fetched" >&2; false; }
	assert_moved
}

# cut_case SIDE: lazy over a 100 Mbit/s cap (about 10 s of post-copy to
# cut into); after the commit, SIGKILL the ssh client (SIDE=src) or the
# sshd serving the connection (dst); phaul must dial ssh again, a new
# serve --stdio relay to the waiting session, and every page arrive.
cut_case() {
	local pids
	fx_start_mtouch "$SIZE_MIB" 8 32
	start_migrate_ssh --mode lazy --bandwidth 100 -v --json "$PID"
	wait_for 60 eval 'grep -q "committed: tree" "$SERVE_LOG" || ! _running "$MJOB"'
	sleep 1
	assert_job_running "$MJOB" "the channel could be cut"
	if [ "$1" = src ]; then
		pids=$(procs_in src ssh | awk '{ print $1 }')
	else # every sshd but the listener: the connection's monitor and child
		pids=$(procs_in dst sshd | awk -v l="$SSHD_PID" '$1 != l { print $1 }')
	fi
	[ -n "$pids" ] || { echo "no ssh process to kill in $1" >&2; false; }
	# shellcheck disable=SC2086
	in_"$1" kill -KILL $pids
	end_migrate
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	grep -q "reconnected: post-copy goes on" <<<"$stderr" ||
		{ echo "the source never reconnected: $stderr" >&2; false; }
	grep -q "the source is back" "$SERVE_LOG" ||
		{ echo "the session never took the resumed connection" >&2; false; }
	grep -q "relaying the resumed connection" "$SERVE_LOG" ||
		{ echo "no serve --stdio relayed the new channel" >&2; false; }
	assert_moved
}

@test "ssh, lazy: the ssh client is killed during post-copy; phaul dials ssh again, the session resumes, every page verifies" {
	cut_case src
}

@test "ssh, lazy: the destination's sshd for the channel is killed during post-copy; it recovers the same way" {
	cut_case dst
}

@test "ssh, failure: no phaul on the far side: a clear error before the freeze, the workload untouched" {
	fx_start_counter
	SSH_REMOTE="/nonexistent/phaul serve --stdio" migrate_ssh -- --mode live --json "$PID"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; false; }
	grep -q "no phaul on the far side.*status 127" <<<"$stderr" ||
		{ echo "no clear error: $stderr" >&2; false; }
	[ "$(json .outcome)" = rolled-back ]
	[ "$(json .frozen_ms)" = 0 ] || [ "$(json .frozen_ms)" = null ]
	assert_rolled_back "$LOG" "$PID"
}

@test "ssh, failure: the far side speaks another protocol version: a clear error before the freeze, the workload untouched" {
	require_fault src.connect
	fx_start_counter
	SSH_REMOTE=$(ssh_remote PHAUL_FAKE_PROTO_VERSION=99) migrate_ssh -- --mode live --json "$PID"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; false; }
	grep -qi "protocol version 1 not supported (this daemon speaks 99)" <<<"$stderr" ||
		{ echo "no clear error: $stderr" >&2; false; }
	assert_rolled_back "$LOG" "$PID"
}

@test "ssh, failure: the host key is not the known one: ssh refuses, a clear error, the workload untouched" {
	fx_start_counter
	ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/other"
	echo "$DST_ADDR $(cut -d' ' -f1,2 "$SSH_DIR/other.pub")" >"$SSH_DIR/known_hosts"
	migrate_ssh -- --mode live --json "$PID"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; false; }
	grep -q "ssh could not connect or log in.*status 255" <<<"$stderr" ||
		{ echo "no clear error: $stderr" >&2; false; }
	assert_rolled_back "$LOG" "$PID"
}

@test "serve --stdio refuses a channel that is not sshd's (no SSH_CONNECTION)" {
	run --separate-stderr env -u SSH_CONNECTION "$PHAUL" serve --stdio --workdir "$WORKDIR" </dev/null
	[ "$status" -eq 1 ]
	grep -q "serves a channel from sshd only" <<<"$stderr" || { echo "$stderr" >&2; false; }
	run --separate-stderr env SSH_CONNECTION="1 2 3 4" "$PHAUL" serve --stdio --key "$KEY"
	[ "$status" -eq 2 ]
}

@test "ssh, check: phaul check --to ssh:// runs the preflight over ssh, freezes nothing" {
	fx_start_counter
	run --separate-stderr in_src "$PHAUL" check --to "$SSH_TO" --ssh-cmd "$SSH_CMD" \
		--ssh-remote "$(ssh_remote)" --pid "$PID" --json
	[ "$status" -eq 0 ] || { echo "check exited $status: $stderr $output" >&2; false; }
	[ "$(json .ok)" = true ] || { echo "check: $output" >&2; false; }
	assert_only_in src "$PID"
	ticks_advance "$LOG" 20
	assert_workdir_clean
}

@test "ssh, stop: serve --stdio without -v keeps the source's terminal quiet (its stderr comes back over ssh)" {
	fx_start_counter
	SSH_REMOTE="$PHAUL serve --stdio --workdir $WORKDIR" migrate_ssh -- --mode stop "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	refute grep -q "phaul-serve" <<<"$stderr"
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 20
	check_ticks "$LOG"
}
