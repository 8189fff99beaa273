#!/usr/bin/env bats
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

prot_case() {
	serve_start
	fx_start_mtouch 512 16 64 --none 512 --wronly 64 --xonly 64
	fx_verify_mtouch src
	fx_migrate --mode "$1" --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30
	fx_check_success_json "$1" "$LOG"
	fx_verify_mtouch dst
	fx_assert_migrated
}

@test "stop: protected pages" { prot_case stop; }
@test "live: protected pages" { prot_case live; }
@test "lazy: protected pages" { prot_case lazy; }
@test "hybrid: protected pages" { prot_case hybrid; }

big_case() {
	serve_start ${KEEPW:+PHAUL_KEEP_WORKDIR=1}
	fx_start_mtouch "$2" 16 64
	fx_migrate --mode "$1" --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30
	fx_check_success_json "$1" "$LOG"
	fx_verify_mtouch dst
	fx_assert_migrated
}
@test "live: big" { big_case live 2200; }
