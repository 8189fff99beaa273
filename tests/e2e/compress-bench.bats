#!/usr/bin/env bats
# Opt-in measurement of the page codec (issue 16), not a test: skipped
# unless PHAUL_BENCH=1 (`bats tests/e2e` runs every file):
#
#   PHAUL_BENCH=1 bats tests/e2e/compress-bench.bats     # ~3 minutes
#
# mtouch 256 MiB (1 MiB hot at 16 MiB/s) filled random, text (~4.7x
# compressible) or zero, and redis-server with 1M keys (DEBUG POPULATE,
# 64-byte values), migrated live with --compress auto and off, on the
# unshaped link and on a 1 Gbit/s one (tc). One markdown row per run on
# fd 3 (docs/BENCHMARKS.md has the last ones). Each run still checks
# that the migration succeeded (redis: DEBUG DIGEST equal on dst).

load lib/hosts
load lib/phaul

SIZE_MIB=256

setup() {
	[ -n "${PHAUL_BENCH:-}" ] || skip "measurement: run with PHAUL_BENCH=1"
	case "$BATS_TEST_DESCRIPTION" in
	*1gbit*) hosts_setup 1gbit ;;
	*) hosts_setup ;;
	esac
	phaul_setup
}

teardown() {
	[ -n "${PHAUL_BENCH:-}" ] || return 0
	hosts_teardown
}

# note_row WHAT LINK COMPRESS RESIDENT_BYTES: the row of the migration just done.
note_row() {
	note "| $1 | $2 | $3 | $(json .bytes_sent) |" \
		"$(awk "BEGIN { printf \"%.3f\", $(json .bytes_sent) / $4 }") |" \
		"$(json .total_ms) | $(json .frozen_ms) | $(json .pages.zero_pages) |" \
		"$(json .pages.zstd_frames) | $(json .pages.compress_cpu_ms) |"
}

# row LINK FILL COMPRESS: one live migration of mtouch, one row.
row() {
	local link=$1 fill=$2 compress=$3 log pid
	log=$SCRATCH/mtouch-$fill-$compress.log
	pid=$(start_in_src "$WORKLOADS/mtouch" --size "$SIZE_MIB" --hot 1 --rate 16 \
		--fill "$fill" --log "$log")
	wait_for 60 grep -q '^READY' "$log"
	ticks_advance "$log" 30
	migrate --key "$KEY" --mode live --json --compress "$compress" "$pid"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; return 1; }
	note_row "mtouch $fill" "$link" "$compress" $((SIZE_MIB << 20))
	in_dst kill -TERM "$pid"
}

# redis_row LINK COMPRESS: redis-server with 1M keys, one live migration.
redis_row() {
	local link=$1 compress=$2 pid rss digest
	mkdir -p "$SCRATCH/redis-$compress"
	# only fds 0-2 (lib/apps.bash's app_start)
	pid=$(start_in_src bash -c 'for n in $(ls /proc/$$/fd); do ((n > 2)) && exec {n}>&-; done
		exec "$@"' - redis-server --port 6379 --save '' --appendonly no \
		--dir "$SCRATCH/redis-$compress" --enable-debug-command yes --daemonize no)
	wait_for 30 eval 'in_src redis-cli -p 6379 PING 2>/dev/null | grep -q PONG'
	in_src redis-cli -p 6379 DEBUG POPULATE 1000000 key 64 >/dev/null
	digest=$(in_src redis-cli -p 6379 DEBUG DIGEST)
	rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "$(_hosts_proc src)/$pid/status")
	migrate --key "$KEY" --mode live --json --compress "$compress" "$pid"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; return 1; }
	[ "$(in_dst redis-cli -p 6379 DEBUG DIGEST)" = "$digest" ] ||
		{ echo "redis's DEBUG DIGEST differs on dst" >&2; return 1; }
	note_row "redis 1M keys ($((rss >> 20)) MiB)" "$link" "$compress" "$rss"
	in_dst kill -TERM "$pid"
}

bench_link() {
	serve_start
	note "| memory | link | --compress | bytes sent | x resident | total ms | frozen ms | zero pages | zstd frames | compress CPU ms |"
	note "|---|---|---|---|---|---|---|---|---|---|"
	for compress in auto off; do
		redis_row "$1" "$compress"
	done
	for fill in random text zero; do
		for compress in auto off; do
			row "$1" "$fill" "$compress"
		done
	done
}

@test "compress bench: unshaped link" {
	bench_link unshaped
}

@test "compress bench: 1gbit link" {
	bench_link 1gbit
}
