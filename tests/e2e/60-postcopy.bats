#!/usr/bin/env bats
# End-to-end tests of post-copy: lazy mode (restore first, every page
# fetched from the frozen source afterwards) and hybrid mode (pre-copy
# rounds, then post-copy for what is still dirty), with the memory-
# integrity workload mtouch: after the move every page must match its
# shadow checksum on dst.

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

start_mtouch() {
	LOG=$SCRATCH/mtouch.log
	PID=$(start_in_src "$WORKLOADS/mtouch" --size "$SIZE_MIB" --hot "$HOT_MIB" \
		--rate "$RATE_MIB" --log "$LOG" --verify-signal "$@")
	wait_for 60 grep -q '^READY' "$LOG" || { echo "mtouch never got READY" >&2; false; }
	ticks_advance "$LOG" 50
}

verify_in() {
	local host=$1 n line
	n=$(grep -c '^VERIFY' "$LOG" || true)
	in_"$host" kill -USR1 "$PID"
	wait_for 60 eval '[ "$(grep -c "^VERIFY" "$LOG")" -gt '"$n"' ]' ||
		{ echo "no VERIFY line from mtouch in $host within 60 s" >&2; return 1; }
	line=$(grep '^VERIFY' "$LOG" | tail -n1)
	note "$host: $line"
	[[ "$line" == "VERIFY PASS pages=$PAGES "* ]] ||
		{ echo "memory check failed in $host: $line" >&2; return 1; }
}

# check_postcopy_json MODE: the statistics of a post-copy migration.
check_postcopy_json() {
	local frozen fetched gap
	assert_json_object
	[ "$(json .ok)" = true ]
	[ "$(json .mode)" = "$1" ]
	[ "$(json .outcome)" = committed ]
	frozen=$(json .frozen_ms) fetched=$(json .postcopy.pages_fetched)
	[[ "$fetched" =~ ^[0-9]+$ ]] && ((fetched > 0)) ||
		{ echo "no page fetched after the commit: $output" >&2; return 1; }
	[[ "$(json .postcopy.last_page_ms)" =~ ^[0-9]+$ ]]
	gap=$(check_ticks "$LOG")
	note "$1: frozen ${frozen} ms, workload pause ${gap} ms, $(json .bytes_sent) bytes;" \
		"post-copy: $fetched pages fetched ($(json .postcopy.pages_on_fault) on a fault)," \
		"$(json .postcopy.pages_local) local, last page $(json .postcopy.last_page_ms) ms after the commit"
}

@test "lazy: mtouch 256 MiB moves restore-first; every page verifies on dst" {
	serve_start
	start_mtouch
	migrate --key "$KEY" --mode lazy --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_postcopy_json lazy
	# every page came after the commit
	(($(json .postcopy.pages_fetched) >= PAGES)) ||
		{ echo "only $(json .postcopy.pages_fetched) of $PAGES pages fetched" >&2; false; }
	verify_in dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "hybrid: rounds, then post-copy of the dirty rest; every page verifies on dst" {
	serve_start
	start_mtouch
	migrate --key "$KEY" --mode hybrid --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_postcopy_json hybrid
	[ "$(json .iterations)" -ge 1 ]
	# pre-copy moved most of it: post-copy fetched no more than it had to
	(($(json .postcopy.pages_local) > 0))
	(($(json .postcopy.pages_fetched) <= $(json .postcopy.pages_left_at_freeze))) ||
		{ echo "fetched $(json .postcopy.pages_fetched) pages, more than the $(json .postcopy.pages_left_at_freeze) left at the freeze" >&2; false; }
	verify_in dst
	check_ticks "$LOG"
	assert_workdir_clean
}
