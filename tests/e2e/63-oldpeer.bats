#!/usr/bin/env bats
# Migrations between phaul versions: a host upgraded before its peer.
# Every wire feature added since the protocol's version was fixed is
# negotiated (PROTOCOL.txt, "Features"): PAGE_FRAMES (zero pages),
# PAGE_ZSTD (--compress), PAGE_SHARED (COW pages), IMG_ZSTD (compressed
# image files), Restore.no_postcopy (--mode auto). An older peer must get
# what it understands: every page verified on dst, or a refusal before the
# freeze; never a lost workload.
#
# The old phaul is built from this repository's own history, once, into
# $OLDPEER_CACHE/<commit> (default /var/cache/phaul-oldpeer): commit
# OLDPEER_COMMIT predates all five features but speaks protocol version 1
# with PAGES_RESUME (post-copy reconnects). Without that commit in the
# clone (a shallow one), every test is skipped, saying so.

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/oldpeer

MIB=64

setup_file() {
	oldpeer_init
}

setup() {
	[ -z "$OLDPEER_SKIP" ] || skip "$OLDPEER_SKIP"
	hosts_setup
	phaul_setup
	fx_setup
}

teardown() {
	hosts_teardown
}

# moved: the migration succeeded, mtouch runs only on dst, every page
# verifies there, its ticks went on with none lost
moved() {
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; return 1; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30
	fx_verify_mtouch dst
	note "$1: frozen $(json .frozen_ms) ms, $(json .bytes_sent) bytes, pause $(check_ticks "$LOG") ms"
	assert_workdir_clean
}

# reconnected WHAT: the link broke in post-copy, the source dialled again
# (Hello{resume}, PAGES_RESUME), the session took it, and WHAT moved
reconnected() {
	grep -q "reconnected: post-copy goes on" <<<"$stderr" ||
		{ echo "the source never reconnected (exit $status): $stderr" >&2; return 1; }
	grep -q "the source is back" "$SERVE_LOG" ||
		{ echo "the session never took the resumed connection" >&2; return 1; }
	moved "$1"
}

# text memory: what zstd would shrink, had the peer agreed to it
start_text() { fx_start_mtouch "$MIB" 1 4 --fill text; }

# ------------------------------------------- old source, new destination

@test "oldpeer: old source -> new destination, live: every page verifies; the daemon says what it agreed to" {
	serve_start
	start_text
	old_migrate --mode live --json "$PID"
	moved "old->new live"
	grep -q "features agreed with the source: $OLD_FEATS\$" "$SERVE_LOG" ||
		{ echo "the daemon does not say it agreed to $OLD_FEATS:" >&2; tail "$SERVE_LOG" >&2; false; }
}

@test "oldpeer: old source -> new destination, lazy: every page verifies" {
	serve_start
	start_text
	old_migrate --mode lazy --json "$PID"
	moved "old->new lazy"
	(($(json .postcopy.pages_fetched) > 0))
}

@test "oldpeer: old source -> new destination, hybrid: every page verifies" {
	serve_start
	start_text
	old_migrate --mode hybrid --json "$PID"
	moved "old->new hybrid"
}

@test "oldpeer: old source -> new destination, lazy, the connection breaks: the old source resumes (PAGES_RESUME)" {
	serve_start
	start_text
	old_migrate PHAUL_FAULT=src.postcopy -- --mode lazy --bandwidth 400 -v --json "$PID"
	reconnected "old->new lazy, reconnected"
}

# ------------------------------------------- new source, old destination

@test "oldpeer: new source -> old destination, live --compress zstd: raw pages, no zstd frame; every page verifies" {
	old_serve
	start_text
	fx_migrate -- --mode live --compress zstd -v --json "$PID"
	grep -q "protocol 1, features $OLD_FEATS\$" <<<"$stderr" ||
		{ echo "the source does not say the peer agreed to $OLD_FEATS: $stderr" >&2; false; }
	moved "new->old live zstd"
	old_has zstd && skip "the old peer ($OLDPEER_COMMIT) has zstd"
	[ "$(json .pages.zstd_frames)" = 0 ]
	# uncompressed: the whole text memory crossed the wire (zstd: ~1/4)
	(($(json .bytes_sent) >= MIB << 20)) || { echo "only $(json .bytes_sent) bytes sent" >&2; false; }
	old_has frames || [ "$(json .pages.zero_pages)" = 0 ]
}

@test "oldpeer: new source -> old destination, lazy (compress auto): every page verifies" {
	old_serve
	start_text
	fx_migrate -- --mode lazy --json "$PID"
	moved "new->old lazy"
	old_has zstd || [ "$(json .pages.zstd_frames)" = 0 ]
	(($(json .postcopy.pages_fetched) > 0))
}

@test "oldpeer: new source -> old destination, hybrid: every page verifies" {
	old_serve
	start_text
	fx_migrate -- --mode hybrid --json "$PID"
	moved "new->old hybrid"
}

@test "oldpeer: new source -> old destination, lazy, the connection breaks there: the new source resumes" {
	old_serve PHAUL_FAULT=dst.postcopy
	start_text
	fx_migrate -- --mode lazy --bandwidth 400 -v --json "$PID"
	reconnected "new->old lazy, reconnected"
}

@test "oldpeer: new source -> old destination, --mode auto choosing live: every page verifies" {
	old_serve
	start_text
	fx_migrate -- --mode auto --json "$PID"
	moved "new->old auto ($(json .mode): $(json .auto.why))"
	[ "$(json .auto.chosen)" = live ]
}

# ------------------------------------ stop mode, COW pages (PAGE_SHARED)

@test "oldpeer: old source -> new destination, stop: every page verifies" {
	serve_start
	start_text
	old_migrate --mode stop --json "$PID"
	moved "old->new stop"
}

@test "oldpeer: new source -> old destination, stop: every page verifies" {
	old_serve
	start_text
	fx_migrate -- --mode stop --json "$PID"
	moved "new->old stop"
	# it never answers Preflight.stream: today's stop path, the images
	[ "$(json .stop_path)" = images ]
	[[ "$(json .stop_path_why)" == *"older phaul"* ]]
}

@test "oldpeer: new source -> old destination, stop --compress zstd: the images go raw; every page verifies" {
	old_serve
	start_text
	fx_migrate -- --mode stop --compress zstd --json "$PID"
	moved "new->old stop zstd"
	old_has imgzstd && skip "the old peer ($OLDPEER_COMMIT) has compressed images"
	[ "$(json .images.zstd_chunks)" = 0 ]
	# the pages are in the images: all of the text memory crossed raw
	(($(json .images.bytes_wire) >= MIB << 20)) || { echo "images: $(json .images.bytes_wire) bytes" >&2; false; }
}

_cow_reported() { [ "$(grep -c '^COW' "$LOG")" -gt "$1" ]; }

# cow_data_ok HOST: cowtree's child finds every page's data right there
# (whether it is still shared with the parent is PAGE_SHARED's business:
# an old peer restores those pages lazily, a copy in each process)
cow_data_ok() {
	local n line
	n=$(grep -c '^COW' "$LOG" || true)
	in_"$1" kill -USR1 "$PID"
	wait_for 10 _cow_reported "$n" || { echo "no COW line in $1" >&2; return 1; }
	line=$(grep '^COW' "$LOG" | tail -n1)
	note "$1: $line"
	[[ "$line" =~ ^COW\ shared=[0-9]+\ of=256\ data=ok$ ]] || { echo "in $1: $line" >&2; return 1; }
}

# cow_lazy MIGRATE_FN: a fork sharing 256 pages moves in lazy mode with
# MIGRATE_FN; both processes run on dst with their data intact
cow_lazy() {
	LOG=$SCRATCH/cow.log
	PID=$(start_in_src "$WORKLOADS/cowtree" "$LOG" 256)
	ticks_advance "$LOG" 20
	PIDS="$PID $(children_in src "$PID")"
	"$1" -- --mode lazy --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; return 1; }
	fx_assert_migrated
	cow_data_ok dst
}

@test "oldpeer: new source -> old destination, lazy, pages a fork shares: no PageShared sent; data intact" {
	old_serve
	cow_lazy fx_migrate
	old_has shared || [ "$(json .cow_pages)" = 0 ] ||
		{ echo "PageShared sent to an old peer: $output" >&2; false; }
}

@test "oldpeer: old source -> new destination, lazy, pages a fork shares: data intact" {
	serve_start
	cow_lazy old_migrate
}
