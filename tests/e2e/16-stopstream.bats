#!/usr/bin/env bats
# Stop mode that streams memory (docs/MODES.md, "stop"): CRIU dumps with
# lazy pages, phaul sends every populated page of the frozen tree from
# /proc/PID/mem while CRIU dumps, and the destination restores lazily
# from its page store, as live mode's frozen round and restore do. Where
# that path cannot be used, stop mode moves CRIU's images as before, and
# says so (--json .stop_path, .stop_path_why; the summary; a log line).
# Each case verifies every page of mtouch on dst.

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

# stop_moved PATH: the stop migration of $PID (mtouch, $1 MiB) committed by
# PATH (streamed or images), every page and protection verified on dst.
stop_moved() {
	local path=$1 mib=$2 img
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; return 1; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30 60
	fx_check_success_json stop "$LOG"
	[ "$(json .stop_path)" = "$path" ] ||
		{ echo "stop mode took '$(json .stop_path)', not $path: $output" >&2; return 1; }
	img=$(json .image_bytes)
	if [ "$path" = streamed ]; then
		# the memory went as pages, not in CRIU's images
		((img < mib * 1048576 / 4)) || { echo "images of $img bytes: memory in them?" >&2; return 1; }
		(($(json .final_pages) >= mib * 256)) ||
			{ echo "final_pages $(json .final_pages) < $((mib * 256))" >&2; return 1; }
		[[ "$(json .fill.last_page_ms)" =~ ^[0-9]+$ ]] || { echo "no .fill: $output" >&2; return 1; }
		(($(json .fill.pages_local) >= mib * 256)) ||
			{ echo "the fill served $(json .fill.pages_local) pages" >&2; return 1; }
	else
		((img >= mib * 1048576)) || { echo "images of $img bytes lack the memory" >&2; return 1; }
		[ "$(json .fill)" = null ]
	fi
	fx_verify_mtouch dst
	fx_assert_migrated
}

@test "stop, streamed: 128 MiB with 640 protected pages streams while CRIU dumps, restored lazily; every page verifies" {
	serve_start
	fx_start_mtouch 128 16 64 --none 512 --wronly 64 --xonly 64
	fx_verify_mtouch src
	fx_migrate -- --mode stop --json "$PID"
	stop_moved streamed 128
	[ "$(json .stop_path_why)" = "" ]
}

@test "stop, fallback: PHAUL_STOP_STREAM=0 on the source: CRIU's images carry the memory, --json says why" {
	serve_start
	fx_start_mtouch 64 4 16
	fx_migrate PHAUL_STOP_STREAM=0 -- --mode stop --json "$PID"
	stop_moved images 64
	[ "$(json .stop_path_why)" = "PHAUL_STOP_STREAM=0 here" ]
}

@test "stop, fallback: the destination declines (PHAUL_STOP_STREAM=0 there): the images, --json says why" {
	serve_start PHAUL_STOP_STREAM=0
	fx_start_mtouch 64 4 16
	fx_migrate -- --mode stop --json "$PID"
	stop_moved images 64
	[ "$(json .stop_path_why)" = "PHAUL_STOP_STREAM=0 on the destination" ]
}

# A kernel whose /proc/PID/mem refuses pages the process cannot read
# (src.memforce plays it): live mode refuses such a tree; stop mode moves
# it through CRIU's images, which CRIU dumps from inside the process.
@test "stop, fallback: protected pages this kernel does not let phaul read: the images, every page verifies" {
	require_fault src.memforce
	serve_start
	fx_start_mtouch 64 4 16 --none 8
	fx_migrate PHAUL_FAULT=src.memforce:fail -- --mode stop --json "$PID"
	stop_moved images 64
	[[ "$(json .stop_path_why)" =~ ^PID\ $PID\ has\ pages\ in\ 0x[0-9a-f]+-0x[0-9a-f]+\ that\ this\ kernel ]]
}

@test "stop: the summary says how the memory moved: streamed, or in CRIU's images and why" {
	serve_start
	fx_start_counter
	fx_migrate -- --mode stop "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; false; }
	[[ "$stderr" =~ memory\ +streamed\ while\ CRIU\ dumped\;\ all\ in\ place\ [0-9]+\ ms\ after\ the\ commit ]] ||
		{ echo "no streamed line in the summary: $stderr" >&2; false; }
	fx_assert_migrated
	fx_start_mtouch 16 4 16
	fx_migrate PHAUL_STOP_STREAM=0 -- --mode stop "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; false; }
	[[ "$stderr" == *"memory   in CRIU's images: PHAUL_STOP_STREAM=0 here"* ]] ||
		{ echo "no images line in the summary: $stderr" >&2; false; }
	fx_assert_migrated
}

@test "stop, streamed: a terminal gets a progress bar for the memory, as it did for the images" {
	serve_start
	fx_start_mtouch 48 4 16
	# script(1) gives phaul migrate a terminal; 48 MiB at 100 Mbit/s: ~4 s
	in_src script -qec "'$PHAUL' migrate --to $DST_ADDR:$PHAUL_PORT --key '$KEY' \
		--mode stop --bandwidth 100 '$PID'" /dev/null >"$SCRATCH/tty.out" 2>&1 ||
		{ echo "migrate failed:" >&2; cat "$SCRATCH/tty.out" >&2; false; }
	tr '\r' '\n' <"$SCRATCH/tty.out" | grep -qE '^memory \[#+-*\] +[0-9]+% .* MB/s ETA [0-9]+:[0-9]{2}' ||
		{ echo "no progress bar for the memory:" >&2; cat -v "$SCRATCH/tty.out" >&2; false; }
	grep -q "memory   streamed while CRIU dumped" "$SCRATCH/tty.out"
	fx_assert_migrated
	fx_verify_mtouch dst
}
