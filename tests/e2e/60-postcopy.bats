#!/usr/bin/env bats
# End-to-end tests of post-copy: lazy mode (restore first, every page
# fetched from the frozen source afterwards) and hybrid mode (pre-copy
# rounds, then post-copy for what is still dirty), with the memory-
# integrity workload mtouch: after the move every page must match its
# shadow checksum on dst.

load lib/hosts
load lib/phaul
load lib/fixtures

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

# check_postcopy_json MODE: the statistics of a post-copy migration.
check_postcopy_json() {
	local frozen fetched gap
	assert_json_object
	[ "$(json .ok)" = true ]
	[ "$(json .mode)" = "$1" ]
	[ "$(json .outcome)" = committed ]
	frozen=$(json .frozen_ms) fetched=$(json .postcopy.pages_fetched)
	# hybrid may have sent it all while CRIU dumped: nothing left to fetch
	[[ "$fetched" =~ ^[0-9]+$ ]] && { ((fetched > 0)) || [ "$1" = hybrid ]; } ||
		{ echo "no page fetched after the commit: $output" >&2; return 1; }
	[[ "$(json .postcopy.last_page_ms)" =~ ^[0-9]+$ ]]
	gap=$(check_ticks "$LOG")
	note "$1: frozen ${frozen} ms, workload pause ${gap} ms, $(json .bytes_sent) bytes;" \
		"post-copy: $fetched pages fetched ($(json .postcopy.pages_on_fault) on a fault)," \
		"$(json .postcopy.pages_local) local, last page $(json .postcopy.last_page_ms) ms after the commit"
}

@test "lazy: mtouch 256 MiB moves restore-first; every page verifies on dst" {
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	migrate --key "$KEY" --mode lazy --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_postcopy_json lazy
	# every page came after the commit
	(($(json .postcopy.pages_fetched) >= PAGES)) ||
		{ echo "only $(json .postcopy.pages_fetched) of $PAGES pages fetched" >&2; false; }
	fx_verify_mtouch dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "hybrid: rounds, then post-copy of the dirty rest; every page verifies on dst" {
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
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
	fx_verify_mtouch dst
	check_ticks "$LOG"
	assert_workdir_clean
}

# criu_note_wrapper: $SCRATCH/criu runs the real CRIU and notes in
# $SCRATCH/criu.note how each `criu lazy-pages` was told to fill:
# CRIU_LAZY_BULK (criu.h; patch 0015) or not.
criu_note_wrapper() {
	local real=${PHAUL_CRIU:-$(command -v criu)}
	cat >"$SCRATCH/criu" <<-EOF
		#!/bin/bash
		[ "\$1" != lazy-pages ] || echo "bulk=\${CRIU_LAZY_BULK:-unset}" >>"$SCRATCH/criu.note"
		exec "$real" "\$@"
	EOF
	chmod 755 "$SCRATCH/criu"
}

# fill_case MODE BULK: a MODE migration's criu lazy-pages is told
# CRIU_LAZY_BULK=BULK (unset: not at all); every page verifies.
fill_case() {
	criu_note_wrapper
	serve_start PHAUL_CRIU="$SCRATCH/criu"
	fx_start_mtouch 64 8 32
	migrate --key "$KEY" --mode "$1" --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	[ "$(sort -u "$SCRATCH/criu.note")" = "bulk=$2" ] ||
		{ echo "criu lazy-pages was told: $(cat "$SCRATCH/criu.note" 2>&1), not bulk=$2" >&2; false; }
	fx_verify_mtouch dst
	check_ticks "$LOG"
}

# Hybrid's pre-copy rounds left most pages in the store: lazy-pages asks
# 4 MiB at a time as in live mode (a fault waits behind at most 512 KiB
# fetched across the link, pages/fetch.c).
@test "hybrid: criu lazy-pages fills in 4 MiB requests (CRIU_LAZY_BULK); every page verifies" {
	fill_case hybrid 1
}

# Lazy mode: every page crosses the link; CRIU's own adaptive requests.
@test "lazy: criu lazy-pages keeps CRIU's adaptive requests (no CRIU_LAZY_BULK); every page verifies" {
	fill_case lazy unset
}

# Multi-threaded and multi-process trees: CRIU's lazy-pages daemon keeps
# one userfaultfd per process; faults from several threads of one process
# and from several processes are answered by the same page server.
@test "lazy: mtouch with 4 writer threads (5 tasks) moves; every page verifies on dst" {
	serve_start
	LOG=$SCRATCH/mtouch.log
	FX_MTOUCH_PAGES=$PAGES
	PID=$(start_in_src "$WORKLOADS/mtouch" --size "$SIZE_MIB" --hot "$HOT_MIB" \
		--rate "$RATE_MIB" --threads 4 --log "$LOG")
	wait_for 60 grep -q '^READY' "$LOG" || { echo "mtouch never got READY" >&2; false; }
	ticks_advance "$LOG" 50
	migrate --key "$KEY" --mode lazy --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	[ "$(json .tasks)" = 5 ] || { echo "tasks: $(json .tasks), not 5" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_postcopy_json lazy
	fx_verify_mtouch dst
	check_ticks "$LOG"
}

# pipetree_case MODE: the 3-process pipe ring moves whole in MODE.
pipetree_case() {
	MIGRATE_MODE=$1
	fx_setup
	serve_start
	fx_start_pipetree
	fx_migrate --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst $PIDS
	[ "$(children_in dst "$PID" | sort -n | tr '\n' ' ')" = "$KIDS " ]
	[ "$(json .tasks)" = 3 ]
	[ "$(json .mode)" = "$1" ]
	ticks_advance "$LOG" 50
	fx_assert_migrated
}

@test "hybrid: pipetree (3 processes, pipe ring) moves whole; all 3 run on dst, ticks go on" {
	pipetree_case hybrid
}

@test "lazy: pipetree (3 processes, pipe ring) moves whole; all 3 run on dst, ticks go on" {
	pipetree_case lazy
}

# ------------------------------------------------------------ failures

# wait_committed: the daemon logged the commit of the running migration.
wait_committed() {
	wait_for 60 eval 'grep -q "committed: tree" "$SERVE_LOG" || ! _running "$MJOB"' &&
		grep -q "committed: tree" "$SERVE_LOG" ||
		{ echo "no commit in the daemon's log" >&2; return 1; }
}

# no_workload_anywhere: neither host runs a copy (the workload is lost).
no_workload_anywhere() {
	wait_for 20 eval '! pid_alive_in src "$PID" && ! pid_alive_in dst "$PID"' || {
		echo "a copy of the workload is still alive:" >&2
		local h
		for h in src dst; do
			pid_alive_in "$h" "$PID" &&
				echo "$h: $(cat "$(_hosts_proc "$h")/$PID/stat")" >&2
		done
		return 1
	}
}

@test "hybrid on a 200mbit link: the freeze does not wait for the dirty set; the rest is fetched after the commit" {
	# the 16 MiB hot set takes 670 ms at 200 Mbit/s, longer than CRIU's
	# dump: what did not cross while CRIU dumped is left to post-copy
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	migrate --key "$KEY" --mode hybrid --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_postcopy_json hybrid
	(($(json .postcopy.pages_left_at_freeze) > 0)) ||
		{ echo "nothing was left to post-copy: the freeze waited for the dirty set" >&2; false; }
	(($(json .postcopy.pages_fetched) > 0))
	fx_verify_mtouch dst
	check_ticks "$LOG"
}

@test "lazy, failure: restore fails on dst before the commit: rolled back, memory intact on src" {
	require_fault dst.restore
	serve_start PHAUL_FAULT=dst.restore
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	migrate --key "$KEY" --mode lazy --json "$PID"
	assert_failed_with 'restor'
	[ "$status" -eq 1 ]
	[ "$(json .outcome)" = rolled-back ]
	assert_rolled_back "$LOG" "$PID"
	fx_verify_mtouch src
	check_ticks "$LOG"
}

@test "hybrid, failure: the restored tree fails before the commit: rolled back, memory intact on src" {
	require_fault dst.restored
	serve_start PHAUL_FAULT=dst.restored
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	migrate --key "$KEY" --mode hybrid --json "$PID"
	assert_failed_with 'restor'
	[ "$(json .outcome)" = rolled-back ]
	assert_rolled_back "$LOG" "$PID"
	fx_verify_mtouch src
	check_ticks "$LOG"
}

@test "lazy on a 200mbit link: the link is cut for 5 s during post-copy; it completes and every page verifies" {
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	MIGRATE_MODE=lazy
	MIGRATE_TIMEOUT=180
	in_src timeout -k 5 "$MIGRATE_TIMEOUT" "$PHAUL" migrate --to "$DST_ADDR:$PHAUL_PORT" \
		--mode lazy --key "$KEY" --json "$PID" >"$SCRATCH/m.out" 2>"$SCRATCH/m.err" 3>&- 4>&- &
	MJOB=$!
	wait_committed
	# 256 MiB take ~11 s at 200 Mbit/s: cut the link in the middle of it
	sleep 1
	assert_job_running "$MJOB" "the link could be cut"
	link_down
	sleep 5
	link_up
	wait_for 150 eval '! _running "$MJOB"' || { echo "migrate never finished" >&2; false; }
	status=0
	wait "$MJOB" || status=$?
	output=$(cat "$SCRATCH/m.out")
	stderr=$(cat "$SCRATCH/m.err")
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_postcopy_json lazy
	fx_verify_mtouch dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "lazy, failure: phaul migrate is killed (-9) during post-copy: the workload is lost on both sides, said clearly, nothing half-alive" {
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	# --recover-timeout: how long dst waits for the source to come back
	in_src timeout -k 5 120 "$PHAUL" migrate --to "$DST_ADDR:$PHAUL_PORT" --mode lazy \
		--bandwidth 200 --recover-timeout 5 --key "$KEY" "$PID" \
		>"$SCRATCH/m.out" 2>"$SCRATCH/m.err" 3>&- 4>&- &
	MJOB=$!
	wait_committed
	sleep 1
	assert_job_running "$MJOB" "migrate could be killed"
	# the oldest process running phaul migrate: not its timeout wrapper,
	# not the reaper it forked
	in_src pkill -KILL -o -f "^$PHAUL migrate"
	no_workload_anywhere
	wait_for 20 eval 'grep -q "cannot be completed\|could not be completed" "$SERVE_LOG"' ||
		{ echo "the daemon does not say the workload was lost:" >&2; tail -20 "$SERVE_LOG" >&2; false; }
	pid_alive_in dst "$DAEMON_PID"
	wait_for 20 eval '[ -z "$(in_src pgrep -x criu; in_dst pgrep -x criu)" ]' || {
		echo "criu left running:" >&2
		in_src ps -ef >&2
		in_dst ps -ef >&2
		false
	}
}

@test "lazy, failure: the dst session is killed (-9) during post-copy: exit 4, the workload is lost on both sides, nothing half-alive" {
	local spid
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	in_src timeout -k 5 120 "$PHAUL" migrate --to "$DST_ADDR:$PHAUL_PORT" --mode lazy \
		--bandwidth 200 --key "$KEY" --json "$PID" >"$SCRATCH/m.out" 2>"$SCRATCH/m.err" 3>&- 4>&- &
	MJOB=$!
	wait_committed
	spid=$(grep -o 'phaul-session\[[0-9]*\] session: committed' "$SERVE_LOG" | grep -o '[0-9]*' | head -n1)
	sleep 1
	in_dst kill -KILL "$spid"
	wait_for 90 eval '! _running "$MJOB"' || { echo "migrate never finished" >&2; false; }
	status=0
	wait "$MJOB" || status=$?
	output=$(cat "$SCRATCH/m.out")
	stderr=$(cat "$SCRATCH/m.err")
	[ "$status" -eq 4 ] || { echo "migrate exited $status, not 4 (lost): $stderr" >&2; false; }
	grep -qi 'lost' <<<"$stderr" || { echo "the error does not say the workload is lost: $stderr" >&2; false; }
	[ "$(json .outcome)" = lost ]
	no_workload_anywhere
	pid_alive_in dst "$DAEMON_PID"
}

# src.pageread: once committed, the source's reads of the frozen tree give
# nothing (as a page the tree no longer has would). Nothing can complete
# the memory: lost, exit 4, and both logs say which page of which process
# (its host PID, state and mapping on the source) was missing.
@test "lazy, failure: the source cannot read a page after the commit: exit 4, lost, the logs name the page and the process" {
	require_fault src.pageread
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	migrate PHAUL_FAULT=src.pageread -- -v --mode lazy --bandwidth 200 --key "$KEY" --json "$PID"
	[ "$status" -eq 4 ] || { echo "migrate exited $status, not 4 (lost): $stderr" >&2; false; }
	[ "$(json .outcome)" = lost ]
	grep -Eq "cannot read [0-9]+ pages of PID $PID at 0x[0-9a-f]+: not mapped \(host PID $PID, state ., 0x[0-9a-f]+ in [0-9a-f]+-[0-9a-f]+ " <<<"$stderr" ||
		{ echo "the source does not say which page of which process it could not read: $stderr" >&2; false; }
	grep -q "the source sent none of PID $PID's pages at 0x" "$SERVE_LOG" ||
		{ echo "the daemon does not say which page was missing:" >&2; tail -20 "$SERVE_LOG" >&2; false; }
	no_workload_anywhere
	pid_alive_in dst "$DAEMON_PID"
}

# src.lazymapped: the frozen process's mappings read as none, so CRIU's
# lazy runs lie outside them, which post-copy could not complete after the
# commit. Found before the restore: rolled back, the workload runs on.
@test "hybrid, failure: a lazy run in no mapping of the frozen process: rolled back before the commit, memory intact on src" {
	require_fault src.lazymapped
	serve_start
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	migrate PHAUL_FAULT=src.lazymapped -- --mode hybrid --key "$KEY" --json "$PID"
	[ "$status" -eq 1 ] || { echo "migrate exited $status, not 1: $stderr" >&2; false; }
	[ "$(json .outcome)" = rolled-back ]
	assert_failed_with "lazy pages at 0x[0-9a-f]+-0x[0-9a-f]+ are in no mapping of the frozen process"
	assert_rolled_back "$LOG" "$PID"
	fx_verify_mtouch src
	check_ticks "$LOG"
}

# The connection itself breaks (not just a silent link): src.postcopy and
# dst.postcopy shut the TCP connection down in the middle of post-copy
# (after 64 page requests).  The source dials again, the daemon relays the
# new connection to the waiting session, and post-copy goes on.
reconnect_case() {
	local point=$1 senv=() denv=()
	require_fault "$point"
	if [ "${point%%.*}" = src ]; then senv=("PHAUL_FAULT=$point"); else denv=("PHAUL_FAULT=$point"); fi
	serve_start "${denv[@]}"
	fx_start_mtouch "$SIZE_MIB" "$HOT_MIB" "$RATE_MIB"
	migrate "${senv[@]}" -- --key "$KEY" --mode lazy --bandwidth 400 -v --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	grep -q "reconnected: post-copy goes on" <<<"$stderr" ||
		{ echo "the source never reconnected: $stderr" >&2; false; }
	grep -q "the source is back" "$SERVE_LOG" ||
		{ echo "the session never took the resumed connection" >&2; false; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 50
	check_postcopy_json lazy
	fx_verify_mtouch dst
	check_ticks "$LOG"
	assert_workdir_clean
}

@test "lazy: the connection breaks on the source's side during post-copy: it reconnects, completes, every page verifies" {
	reconnect_case src.postcopy
}

@test "lazy: the connection breaks on the destination's side during post-copy: the source reconnects, completes, every page verifies" {
	reconnect_case dst.postcopy
}
