#!/usr/bin/env bats
# End-to-end tests of the page codec (src/proto/pageframe.c): zero pages
# cross the wire as one bit each and take no space in the destination's
# store, compressible pages go zstd-compressed, a corrupt frame rolls the
# migration back, and every page still verifies. mtouch --fill chooses
# what the memory holds.

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

# migrate_text ARGS...: text memory (about 4x compressible) moves live with ARGS.
migrate_text() {
	serve_start
	start_mtouch text 1
	verify_in src
	migrate --key "$KEY" --mode live --json "$@" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	SENT=$(json .bytes_sent) RAW=$(json .pages.bytes_raw) WIRE=$(json .pages.bytes_wire)
	FRAMES=$(json .pages.zstd_frames)
	note "$*: bytes_sent=$SENT (resident $((SIZE_MIB << 20))) pages: raw=$RAW wire=$WIRE" \
		"zstd frames=$FRAMES ratio=$(json .pages.ratio) cpu=$(json .pages.compress_cpu_ms) ms"
	ticks_advance "$LOG" 30
	verify_in dst
	check_ticks "$LOG"
}

@test "compress zstd: text memory moves with a third of its bytes on the wire; every page verifies" {
	migrate_text --compress zstd
	((SENT < (SIZE_MIB << 20) / 3)) || { echo "$SENT bytes on the wire" >&2; false; }
	((FRAMES > 0))
	assert_workdir_clean
}

@test "compress auto on a 200 Mbit/s cap: compresses text memory; every page verifies" {
	migrate_text --bandwidth 200
	((SENT < (SIZE_MIB << 20) / 3)) || { echo "$SENT bytes on the wire" >&2; false; }
}

@test "compress off: text memory costs its full size, no frame compressed" {
	migrate_text --compress off
	((FRAMES == 0))
	((SENT >= SIZE_MIB << 20)) || { echo "only $SENT bytes with compression off" >&2; false; }
}

# corrupt_rolls_back FAULT MODE: every zstd frame or chunk FAULT corrupts
# is caught: rolled back, the error says corrupt, memory intact on src
corrupt_rolls_back() {
	require_fault "$1"
	serve_start
	start_mtouch text 1
	migrate PHAUL_FAULT="$1" --key "$KEY" --mode "$2" --compress zstd --json "$PID"
	[ "$status" -eq 1 ] || { echo "migrate exited $status: $stderr" >&2; return 1; }
	grep -qi "corrupt" <<<"$stderr$output" ||
		{ echo "the error does not say corrupt: $stderr" >&2; return 1; }
	note "error: $(json .error)"
	assert_only_in src "$PID"
	ticks_advance "$LOG" 30
	verify_in src
	assert_workdir_clean
}

@test "compress, failure: a corrupt zstd frame rolls back with a clear error; memory intact on src" {
	corrupt_rolls_back src.pagecorrupt live
}

@test "compress zstd, stop through CRIU's images: the images (the pages in them) cross compressed; every page verifies" {
	serve_start
	start_mtouch text 1
	verify_in src
	# stop mode's images path (a streamed stop sends the pages as frames)
	migrate PHAUL_STOP_STREAM=0 --key "$KEY" --mode stop --compress zstd --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	[ "$(json .stop_path)" = images ] || { echo "stop_path is not images: $output" >&2; false; }
	assert_only_in dst "$PID"
	local raw wire chunks sent
	raw=$(json .images.bytes_raw) wire=$(json .images.bytes_wire)
	chunks=$(json .images.zstd_chunks) sent=$(json .bytes_sent)
	note "stop: images raw=$raw wire=$wire zstd chunks=$chunks bytes_sent=$sent"
	((raw >= SIZE_MIB << 20)) || { echo "only $raw bytes of images" >&2; false; }
	((chunks > 0)) || { echo "no image chunk compressed" >&2; false; }
	((wire < raw / 2)) || { echo "images: $wire bytes on the wire for $raw" >&2; false; }
	((sent < raw / 2)) || { echo "$sent bytes sent for $raw of images" >&2; false; }
	ticks_advance "$LOG" 30
	verify_in dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "compress, failure: a corrupt image chunk rolls back with a clear error; memory intact on src" {
	corrupt_rolls_back src.imgcorrupt stop
}

@test "compress zstd, lazy: post-copy answers go compressed; every page verifies" {
	serve_start
	start_mtouch text 1
	migrate --key "$KEY" --mode lazy --compress zstd --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	local sent frames
	sent=$(json .bytes_sent) frames=$(json .pages.zstd_frames)
	note "lazy: bytes_sent=$sent zstd frames=$frames pages fetched=$(json .postcopy.pages_fetched)"
	# every page came from the source as an answer, nearly all compressed
	((frames > 400)) || { echo "only $frames compressed frames" >&2; false; }
	((sent < (SIZE_MIB << 20) / 3)) || { echo "$sent bytes on the wire" >&2; false; }
	ticks_advance "$LOG" 30
	verify_in dst
	check_ticks "$LOG"
	assert_workdir_clean
}
