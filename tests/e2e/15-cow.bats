#!/usr/bin/env bats
# Pages a fork shares copy-on-write stay shared after a migration, in
# every mode (tests/workloads/cowtree.c: a parent and its child map the
# same 256 pages, none written since the fork; the child compares the
# page frames of its /proc/self/pagemap with its parent's).
#
# CRIU keeps such a page shared only when it restores it before it forks
# the child. A lazy restore (phaul's live, lazy and hybrid modes) writes
# lazy pages afterwards, one process at a time: each got a copy of its
# own (zdtm's cow00 and cow01 failed). The source now names the shared
# pages (PageShared, src/source/cow.c) and the destination has CRIU
# restore them with the tree (pagestore_assemble).

load lib/hosts
load lib/phaul
load lib/fixtures

COW_PAGES=${COW_PAGES:-256}	# more: the cost of a bigger fork (e.g. 65536: 256 MiB)

setup() {
	hosts_setup
	phaul_setup
	fx_setup
}

teardown() {
	hosts_teardown
}

_cow_reported() { [ "$(grep -c '^COW' "$LOG")" -gt "$1" ]; }

# cow_check HOST: the child's last "COW shared=S of=N data=D" line, after
# a SIGUSR1 there; sets SHARED
cow_check() {
	local n line
	n=$(grep -c '^COW' "$LOG" || true)
	in_"$1" kill -USR1 "$PID"
	wait_for 10 _cow_reported "$n" || { echo "no COW line in $1" >&2; return 1; }
	line=$(grep '^COW' "$LOG" | tail -n1)
	[[ "$line" =~ ^COW\ shared=([0-9]+)\ of=$COW_PAGES\ data=ok$ ]] ||
		{ echo "in $1: $line" >&2; return 1; }
	SHARED=${BASH_REMATCH[1]}
}

# cow_move MODE [ARGS...]: migrate the tree, then the child's check on dst
# (SHARED)
cow_move() {
	local mode=$1
	shift
	serve_start
	LOG=$SCRATCH/cow.log
	PID=$(start_in_src "$WORKLOADS/cowtree" "$LOG" "$COW_PAGES")
	ticks_advance "$LOG" 20
	PIDS="$PID $(children_in src "$PID")"
	cow_check src
	[ "$SHARED" -eq "$COW_PAGES" ] || { echo "only $SHARED pages shared on src" >&2; false; }
	fx_migrate --mode "$mode" --json "$@" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	fx_assert_migrated
	cow_check dst
	note "$mode${*:+ $*}: $SHARED of $COW_PAGES pages shared on dst, $(json .cow_pages) marked," \
		"$(json .cow_sent_pages) sent while frozen, $(json .cow_copied_pages) copied there," \
		"frozen $(json .frozen_ms) ms"
}

# cow_migrates MODE: every shared page still shared on dst
cow_migrates() {
	cow_move "$1"
	[ "$SHARED" -eq "$COW_PAGES" ] ||
		{ echo "$1: $SHARED of $COW_PAGES pages still shared on dst" >&2; false; }
}

@test "cow: pages a fork shares stay shared, stop mode" {
	cow_migrates stop
}

@test "cow: pages a fork shares stay shared, live mode" {
	cow_migrates live
	# parent's and child's copies (and a few of libc's and the stack's),
	# all on dst from the rounds: none cross while frozen
	[ "$(json .cow_pages)" -ge $((2 * COW_PAGES)) ]
	[ "$(json .cow_sent_pages)" -eq 0 ]
}

@test "cow: pages a fork shares stay shared, lazy mode" {
	cow_migrates lazy
	# lazy mode has nothing on dst before the freeze: the parent's cross
	# then, the child's are copied from them on dst
	[ "$(json .cow_pages)" -ge $((2 * COW_PAGES)) ]
	[ "$(json .cow_copied_pages)" -ge "$COW_PAGES" ]
	[ $(($(json .cow_sent_pages) + $(json .cow_copied_pages))) -eq "$(json .cow_pages)" ]
}

@test "cow: pages a fork shares stay shared, hybrid mode" {
	cow_migrates hybrid
	[ "$(json .cow_pages)" -ge $((2 * COW_PAGES)) ]
}

# --cow-copies: the operator prefers a shorter freeze to the memory; each
# process gets a copy of its own, as a lazy restore does by itself.
@test "cow: --cow-copies restores them lazily, a copy in each process, lazy mode" {
	cow_move lazy --cow-copies
	[ "$SHARED" -eq 0 ] || { echo "$SHARED pages shared on dst" >&2; false; }
	[ "$(json .cow_pages)" -eq 0 ]
}

# src.cowsend: the source names shared pages but never sends them. The
# destination refuses to restore from what it lacks: rolled back before
# the commit, the workload runs on in src, its pages still shared there.
@test "cow, failure: shared pages named but never sent: refused on dst, rolled back, still shared on src" {
	require_fault src.cowsend
	serve_start
	LOG=$SCRATCH/cow.log
	PID=$(start_in_src "$WORKLOADS/cowtree" "$LOG" "$COW_PAGES")
	ticks_advance "$LOG" 20
	PIDS="$PID $(children_in src "$PID")"
	migrate PHAUL_FAULT=src.cowsend -- --mode lazy --key "$KEY" --json "$PID"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; false; }
	[ "$(json .outcome)" = rolled-back ]
	assert_failed_with "shared pages: No data available"
	# shellcheck disable=SC2086
	assert_rolled_back "$LOG" $PIDS
	cow_check src
	[ "$SHARED" -eq "$COW_PAGES" ] || { echo "only $SHARED pages shared on src" >&2; false; }
}
