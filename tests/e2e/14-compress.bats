#!/usr/bin/env bats
# End-to-end tests of the page codec (src/proto/pageframe.c): zero pages
# cross the wire as one bit each and take no space in the destination's
# store, and every page still verifies there. mtouch --fill chooses what
# the memory holds.

load lib/hosts
load lib/phaul

SIZE_MIB=128
PAGES=$((SIZE_MIB * 256))

setup() {
	hosts_setup
	phaul_setup
}

teardown() {
	hosts_teardown
}

# start_mtouch FILL HOT_MIB: 128 MiB filled so, HOT_MIB rewritten at 16 MiB/s.
start_mtouch() {
	LOG=$SCRATCH/mtouch.log
	PID=$(start_in_src "$WORKLOADS/mtouch" --size "$SIZE_MIB" --hot "$2" --rate 16 \
		--fill "$1" --log "$LOG" --verify-signal)
	wait_for 60 grep -q '^READY' "$LOG" || { echo "mtouch never got READY" >&2; false; }
	ticks_advance "$LOG" 30
}

# verify_in HOST: SIGUSR1 the workload there, expect VERIFY PASS of every page.
verify_in() {
	local host=$1 n line
	n=$(grep -c '^VERIFY' "$LOG" || true)
	in_"$host" kill -USR1 "$PID"
	wait_for 30 eval '[ "$(grep -c "^VERIFY" "$LOG")" -gt '"$n"' ]' ||
		{ echo "no VERIFY line from mtouch in $host within 30 s" >&2; return 1; }
	line=$(grep '^VERIFY' "$LOG" | tail -n1)
	note "$host: $line"
	[[ "$line" == "VERIFY PASS pages=$PAGES "* ]] ||
		{ echo "memory check failed in $host: $line" >&2; return 1; }
}

@test "zero pages: 128 MiB of zeros (1 MiB hot) cost almost nothing on the wire; every page verifies" {
	serve_start
	start_mtouch zero 1
	verify_in src
	migrate --key "$KEY" --mode live --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	local sent zero raw wire
	sent=$(json .bytes_sent) zero=$(json .pages.zero_pages)
	raw=$(json .pages.bytes_raw) wire=$(json .pages.bytes_wire)
	note "bytes_sent=$sent pages: raw=$raw wire=$wire zero=$zero (resident $((SIZE_MIB << 20)))"
	# all but the hot MiB (and the workload's own few pages) are zero
	((zero >= PAGES - 2 * 256)) || { echo "only $zero zero pages skipped" >&2; false; }
	((raw >= SIZE_MIB << 20)) || { echo "only $raw bytes of pages went through" >&2; false; }
	# the hot set's rewrites, the images and the shadow array (256 KiB)
	# make the rest: well under a tenth of the memory
	((sent < (SIZE_MIB << 20) / 10)) || { echo "$sent bytes on the wire" >&2; false; }
	ticks_advance "$LOG" 30
	verify_in dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "zero pages: random memory has none, and costs what it did" {
	serve_start
	start_mtouch random 1
	migrate --key "$KEY" --mode live --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	local sent zero raw wire
	sent=$(json .bytes_sent) zero=$(json .pages.zero_pages)
	raw=$(json .pages.bytes_raw) wire=$(json .pages.bytes_wire)
	note "bytes_sent=$sent pages: raw=$raw wire=$wire zero=$zero"
	((zero < 256)) || { echo "$zero zero pages in random memory" >&2; false; }
	((sent >= SIZE_MIB << 20)) || { echo "only $sent bytes for random memory" >&2; false; }
	((wire <= raw + raw / 100)) || { echo "framing cost $wire for $raw" >&2; false; }
	ticks_advance "$LOG" 30
	verify_in dst
}
