#!/usr/bin/env bats
# End-to-end tests of `--mode auto`: live pre-copy rounds, then phaul
# chooses from what the rounds measured: live (what is still dirty moves
# while frozen, within --downtime-ms) or hybrid (it follows after the
# commit). On the wire auto is hybrid until the Restore says otherwise.
# The workload is mtouch: after the move every page must match its
# shadow checksum on dst.

load lib/hosts
load lib/phaul
load lib/fixtures

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

# check_auto_json MODE: auto chose MODE and says why
check_auto_json() {
	assert_json_object
	[ "$(json .ok)" = true ]
	[ "$(json .outcome)" = committed ]
	[ "$(json .mode)" = "$1" ] ||
		{ echo "auto chose $(json .mode), not $1: $(json .auto.why)" >&2; return 1; }
	[ "$(json .auto.chosen)" = "$1" ]
	[ -n "$(json .auto.why)" ] && [ "$(json .auto.why)" != null ]
	note "auto chose $1 ($(json .stop_reason)): $(json .auto.why); frozen $(json .frozen_ms) ms," \
		"$(json .iterations) rounds, workload pause $(check_ticks "$LOG") ms"
}

@test "auto: a small hot set on a fast link converges: live, nothing left to post-copy" {
	serve_start
	fx_start_mtouch 128 1 4
	migrate --key "$KEY" --mode auto --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	check_auto_json live
	# live: no post-copy object, and the destination was told
	[ "$(json .postcopy)" = null ]
	grep -q "the source chose live mode" "$SERVE_LOG" ||
		{ echo "the destination did not switch to live:" >&2; tail -20 "$SERVE_LOG" >&2; false; }
	ticks_advance "$LOG" 30
	fx_verify_mtouch dst
	assert_workdir_clean
}

@test "auto on a 200mbit link: a hot set written faster than the link: hybrid, the rest follows after the commit" {
	# 16 MiB rewritten at 64 MiB/s; the link carries 25 MB/s: every round
	# finds the whole hot set dirty again, 670 ms of frozen transfer
	serve_start
	fx_start_mtouch 128 16 64
	migrate --key "$KEY" --mode auto --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	check_auto_json hybrid
	[[ "$(json .postcopy.pages_fetched)" =~ ^[0-9]+$ ]]
	# the rounds stopped early: more could not shrink the dirty set
	(($(json .iterations) < 8)) ||
		{ echo "auto ran every round ($(json .stop_reason))" >&2; false; }
	ticks_advance "$LOG" 30
	fx_verify_mtouch dst
	assert_workdir_clean
}

@test "auto, having chosen live: the source fails after the commit: the migration stands" {
	serve_start
	fx_start_mtouch 64 1 4
	migrate PHAUL_FAULT=src.committed:fail --key "$KEY" --mode auto --json "$PID"
	assert_only_in dst "$PID"
	[ "$(json .mode)" = live ]
	ticks_advance "$LOG" 30
	fx_verify_mtouch dst
}

@test "auto, failure during the rounds: rolled back, the workload runs on src, memory intact" {
	serve_start
	fx_start_mtouch 64 1 4
	migrate PHAUL_FAULT=src.round:fail --key "$KEY" --mode auto --json "$PID"
	[ "$status" -eq 1 ] || { echo "exit $status: $stderr" >&2; false; }
	[ "$(json .outcome)" = rolled-back ]
	[ "$(json .mode)" = auto ]
	[ "$(json .auto.chosen)" = "" ]
	assert_only_in src "$PID"
	ticks_advance "$LOG" 30
	fx_verify_mtouch src
}
