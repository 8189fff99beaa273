#!/usr/bin/env bats
# Shared memory arrives whole and current (issue 15): tests/workloads/
# shmcheck.c, a parent and its child writing MAP_SHARED|MAP_ANONYMOUS
# memory and a memfd all through the migration (each its own half of the
# pages, 2000 random pages/s and a hot set rewritten every 10 ms), each
# with the generation of every page it wrote in its private memory. After
# the move a check on dst reads every shared page in both processes: a
# page lost (zero), torn, of another page or older than its owner's
# record (a write the migration did not carry) is a FAIL.
#
# Until live and hybrid mode pre-copy shared memory, CRIU dumps it while
# the tree is frozen, and every mode passes by construction; these tests
# are for the pre-copy path, where a write between the last round and the
# freeze that the tracking misses leaves a stale page on dst.

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

_shm_ready() { [ "$(grep -c '^shmcheck [0-9]*: ready ' "$LOG")" -ge 2 ]; }

# shm_start SHARED_MIB MEMFD_MIB [ARGS...]: shmcheck in src, both processes
# running; sets PID (the parent), CHILD, PIDS, LOG, SHM_PAGES.
shm_start() {
	LOG=$SCRATCH/shmcheck.log
	SHM_PAGES=$((($1 + $2) * 256))
	PID=$(start_in_src "$WORKLOADS/shmcheck" --shared "$1" --memfd "$2" --log "$LOG" "${@:3}")
	wait_for 30 _shm_ready || { echo "shmcheck never got ready:" >&2; cat "$LOG" >&2; false; }
	CHILD=$(children_in src "$PID")
	[[ "$CHILD" =~ ^[0-9]+$ ]] || { echo "shmcheck $PID has children '$CHILD', not one" >&2; false; }
	PIDS="$PID $CHILD"
	ticks_advance "$LOG" 20
}

# the verdicts so far: a PASS line or a FAIL summary per process and check
_shm_verdicts() { grep -cE '^shmcheck [0-9]+: (PASS|FAIL bad=)' "$LOG" || true; }
_shm_verdicts_reach() { [ "$(_shm_verdicts)" -ge "$1" ]; }

# shm_signal HOST: SIGUSR1 the parent there; both processes log a verdict
# (within 30 s); SHM_NEW: the log's lines since the signal.
shm_signal() {
	local host=$1 n lines
	lines=$(wc -l <"$LOG")
	n=$(_shm_verdicts)
	in_"$host" kill -USR1 "$PID" || { echo "cannot signal shmcheck $PID in $host" >&2; return 1; }
	wait_for 30 _shm_verdicts_reach $((n + 2)) ||
		{ echo "shmcheck did not check in $host within 30 s:" >&2; tail -n 20 "$LOG" >&2; return 1; }
	SHM_NEW=$(tail -n +$((lines + 1)) "$LOG" | grep '^shmcheck ')
}

# shm_check HOST: a check there passes in both processes, every page,
# and no FAIL was ever logged; SHM_WRITES: the parent's writes so far.
shm_check() {
	local p line
	shm_signal "$1" || return 1
	if grep -q '^shmcheck [0-9]*: FAIL' "$LOG"; then
		echo "shmcheck found bad shared pages (in $1 or before):" >&2
		grep '^shmcheck [0-9]*: FAIL' "$LOG" | head -n 20 >&2
		return 1
	fi
	for p in $PIDS; do
		line=$(grep "^shmcheck $p: PASS " <<<"$SHM_NEW") || {
			echo "no PASS from shmcheck $p in $1: $SHM_NEW" >&2
			return 1
		}
		[[ "$line" =~ ^shmcheck\ $p:\ PASS\ pages=$SHM_PAGES\ writes=([0-9]+)$ ]] ||
			{ echo "in $1: $line (expected pages=$SHM_PAGES)" >&2; return 1; }
		[ "$p" != "$PID" ] || SHM_WRITES=${BASH_REMATCH[1]}
	done
}

# check_json MODE: the --json report of a committed migration; after a
# post-copy commit the workload's pause is not bounded by frozen_ms.
check_json() {
	case "$1" in
	lazy | hybrid)
		assert_json_object
		[ "$(jq -r '"\(.ok) \(.mode) \(.outcome)"' <<<"$output")" = "true $1 committed" ] ||
			{ echo "not a committed $1 migration: $output" >&2; return 1; } ;;
	*) fx_check_success_json "$1" "$LOG" ;;
	esac
}

# shmem_pages_check: when --json reports shared pages pre-copied
# (shmem_pages, at any depth), live mode must have moved some; sets
# SHMEM_PAGES (the count, or "absent"). Until phaul pre-copies shared
# memory, the field does not exist and nothing is asserted.
shmem_pages_check() {
	SHMEM_PAGES=$(jq -r '[.. | objects | select(has("shmem_pages")) | .shmem_pages] |
		first // "absent"' <<<"$output")
	if [ "$SHMEM_PAGES" = absent ]; then
		note "no shmem_pages in --json (shared memory not pre-copied yet): not checked"
		return 0
	fi
	[[ "$SHMEM_PAGES" =~ ^[1-9][0-9]*$ ]] ||
		{ echo "--json shmem_pages is '$SHMEM_PAGES', not > 0 in live mode" >&2; return 1; }
	note "shmem_pages $SHMEM_PAGES"
}

# shm_migrates MODE SHARED_MIB MEMFD_MIB [MIGRATE ARGS...]: shmcheck
# (more of its options in $SHM_OPTS) checks out in src, moves, runs only
# on dst (both processes), and checks out there after writing on through
# the migration.
shm_migrates() {
	local mode=$1 before
	# shellcheck disable=SC2086
	serve_start ${SHM_SERVE_ENV:-}
	# shellcheck disable=SC2086
	shm_start "$2" "$3" ${SHM_OPTS:-}
	shift 3
	shm_check src
	before=$SHM_WRITES
	fx_migrate --mode "$mode" --json "$@" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; false; }
	# at once: a stale page is not yet rewritten by its owner (each of
	# its pages is rewritten about every 2.5 s)
	# shellcheck disable=SC2086
	assert_only_in dst $PIDS
	shm_check dst
	((SHM_WRITES > before)) || { echo "the parent wrote nothing since the check in src" >&2; false; }
	check_json "$mode"
	fx_assert_migrated
	# and again once all is in place and written on (post-copy's fill)
	shm_check dst
	note "$mode: frozen $(json .frozen_ms) ms, total $(json .total_ms) ms," \
		"$(json .iterations) rounds (dirty pages $(jq -c '[.iters[]?.pages_dirty]' <<<"$output"))," \
		"$((SHM_WRITES - before)) pages written by the parent since the check in src"
}

@test "shmem: shared and memfd pages written by two processes arrive current, stop mode" {
	shm_migrates stop 32 8
}

@test "shmem: shared and memfd pages written by two processes arrive current, live mode" {
	shm_migrates live 32 8
	shmem_pages_check
}

@test "shmem: shared and memfd pages written by two processes arrive current, lazy mode" {
	shm_migrates lazy 32 8
	# sent ahead of the freeze (CRIU restores it with the tree, not lazily)
	[ "$(json .shmem_pages)" -ge $(((32 + 8) * 256)) ]
	[ "$(json .shmem_frozen_pages)" -lt "$(json .shmem_pages)" ]
}

@test "shmem: shared and memfd pages written by two processes arrive current, hybrid mode" {
	shm_migrates hybrid 32 8
}

# Several rounds while both processes write 128 MiB + 16 MiB, 10000
# random pages/s each: a 1 ms downtime target is never met, so live mode
# goes on while the dirty set shrinks, up to 4 rounds. Today the rounds
# carry private memory only, which the workload hardly dirties: one round
# ("dirty set small"); once shared memory is pre-copied (--json reports
# shmem_pages), its writes during the first round make a second.
@test "shmem: 144 MiB shared, written through several pre-copy rounds, arrive current, live mode" {
	SHM_OPTS="--rate 10000" shm_migrates live 128 16 --downtime-ms 1 --max-iters 4
	shmem_pages_check
	if [ "$SHMEM_PAGES" != absent ]; then
		[ "$(json .iterations)" -ge 2 ] ||
			{ echo "only $(json .iterations) pre-copy rounds: $output" >&2; false; }
	fi
}

# The check can fail: a stale page of the parent's and a corrupt page of
# the child's (--selftest-corrupt) are reported by the processes that
# must see them, and no PASS is logged for that check.
@test "shmem: the check reports a stale and a corrupt shared page (selftest)" {
	local stale stale_region corrupt line
	shm_start 4 4 --selftest-corrupt
	shm_signal src
	line=$(grep "^shmcheck $PID: selftest " <<<"$SHM_NEW") ||
		{ echo "the parent did not corrupt anything: $SHM_NEW" >&2; false; }
	[[ "$line" =~ stale\ (region\ ([01])\ page\ [0-9]+),\ corrupt\ (region\ [01]\ page\ [0-9]+)$ ]]
	stale=${BASH_REMATCH[1]} stale_region=${BASH_REMATCH[2]} corrupt=${BASH_REMATCH[3]}
	! grep -q ': PASS ' <<<"$SHM_NEW" || { echo "a check passed: $SHM_NEW" >&2; false; }
	# the parent: its own page older than its record, the child's torn
	grep -q "^shmcheck $PID: FAIL $stale: stale (gen [0-9]*, expected [1-9][0-9]*)$" <<<"$SHM_NEW"
	grep -q "^shmcheck $PID: FAIL $corrupt: body differs .* the other's page)$" <<<"$SHM_NEW"
	grep -q "^shmcheck $PID: FAIL bad=2 pages=$SHM_PAGES " <<<"$SHM_NEW"
	# the child: its own page torn; the parent's stale page looks whole,
	# but the parent's pages of that region add up to less than it wrote
	grep -q "^shmcheck $CHILD: FAIL $corrupt: body differs .* expected [0-9]*)$" <<<"$SHM_NEW"
	grep -q "^shmcheck $CHILD: FAIL region $stale_region: the other's pages are whole but" <<<"$SHM_NEW"
	grep -q "^shmcheck $CHILD: FAIL bad=2 pages=$SHM_PAGES " <<<"$SHM_NEW"
	# and the helpers the migration tests use say so
	run shm_check src
	[ "$status" -ne 0 ]
}

# A region restored as a copy in each process instead of one memory both
# share: every page whole, each process's own current, the other's old.
# The child makes itself such a copy after a first check
# (--selftest-unshare); the next check fails in both processes.
@test "shmem: the check reports a region that is no longer shared (selftest)" {
	shm_start 4 4 --selftest-unshare
	shm_check src
	wait_for 10 grep -q "^shmcheck $CHILD: selftest unshared region 0$" "$LOG"
	# both write on, each into its own copy now
	ticks_advance "$LOG" 5
	shm_signal src
	grep -q "^shmcheck $PID: FAIL region 0: the other's pages are whole but" <<<"$SHM_NEW"
	grep -q "^shmcheck $CHILD: FAIL region 0: the other's pages are whole but" <<<"$SHM_NEW"
	grep -qE "^shmcheck $PID: FAIL bad=1 " <<<"$SHM_NEW"
	grep -qE "^shmcheck $CHILD: FAIL bad=1 " <<<"$SHM_NEW"
}

# What a lost page looks like on dst: after a live migration, one of the
# child's memfd pages (none rewritten: --rate 0, beyond the hot set) is
# zeroed through /proc/PID/mem there; the child's check and the parent's
# name it, and the helper the tests above use fails.
@test "shmem: a shared page zeroed on dst after the migration is reported by both processes" {
	local addr page line
	serve_start
	shm_start 4 4 --rate 0
	shm_check src
	fx_migrate --mode live "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; false; }
	# shellcheck disable=SC2086
	assert_only_in dst $PIDS
	line=$(grep "^shmcheck $CHILD: ready " "$LOG")
	[[ "$line" =~ region1=0x([0-9a-f]+)$ ]] || { echo "no memfd address: $line" >&2; false; }
	addr=$((16#${BASH_REMATCH[1]}))
	page=$((2 * 500 + 1))
	in_dst dd if=/dev/zero of="/proc/$CHILD/mem" bs=4096 seek=$((addr / 4096 + page)) count=1 \
		conv=notrunc status=none
	shm_signal dst
	grep -q "^shmcheck $CHILD: FAIL region 1 page $page: a zero page (gen 0, expected 1)$" <<<"$SHM_NEW"
	grep -q "^shmcheck $PID: FAIL region 1 page $page: a zero page (gen 0, the other's page)$" <<<"$SHM_NEW"
	run shm_check dst
	[ "$status" -ne 0 ]
}

# Where the destination kept the pre-copied shared memory: in memfds that
# its CRIU's restore takes (patch 0017), or in the rounds' chain, which
# any CRIU reads (PHAUL_SHMEM_PREPARED=0 forces it, as a CRIU without
# 0017 would).
@test "shmem: live mode, the destination's memfds taken by the restore: every page current" {
	shm_migrates live 32 8
	grep -q "shared memory goes into memfds CRIU's restore takes" "$SERVE_LOG"
	# the two regions and the control page
	grep -q "3 shared memory objects restored from their memfds" "$SERVE_LOG"
	[ "$(json .shmem_frozen_pages)" -gt 0 ]
}

@test "shmem: live mode, the destination keeps shared memory in its rounds: every page current" {
	SHM_SERVE_ENV=PHAUL_SHMEM_PREPARED=0 shm_migrates live 32 8
	grep -q "shared memory goes to the rounds (PHAUL_SHMEM_PREPARED=0)" "$SERVE_LOG"
	! grep -q "restored from their memfds" "$SERVE_LOG"
}

@test "shmem: hybrid mode, the destination keeps shared memory in its rounds: every page current" {
	SHM_SERVE_ENV=PHAUL_SHMEM_PREPARED=0 shm_migrates hybrid 32 8
	grep -q "shared memory goes to the rounds (PHAUL_SHMEM_PREPARED=0)" "$SERVE_LOG"
}

# src.shmskip: the source never sends an object's first page, which its
# CRIU records as in the parent. The destination must refuse to restore
# (CRIU would read a page that is not there), roll back, and the
# workload runs on in src with its memory shared and current.
@test "shmem, failure: a page left in the parent but never sent: refused on dst, rolled back, current on src" {
	require_fault src.shmskip
	serve_start
	shm_start 4 4
	shm_check src
	fx_migrate PHAUL_FAULT=src.shmskip -- --mode live --json "$PID"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; false; }
	[ "$(json .outcome)" = rolled-back ]
	assert_failed_with "cannot assemble the images: No data available"
	grep -q "shared memory [0-9]*: pages at offset 0x0 ([0-9]*) never arrived" "$SERVE_LOG"
	# shellcheck disable=SC2086
	assert_only_in src $PIDS
	shm_check src
}
