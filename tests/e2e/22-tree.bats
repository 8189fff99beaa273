#!/usr/bin/env bats
# A tree of many processes. After a live or post-copy restore, criu
# lazy-pages asks for every process's pages at once; each request is a
# small non-blocking send to phaul's page server, and a burst of a few
# hundred used to fill the socket's send buffer: CRIU's send failed with
# EAGAIN ("Can't send PSI"), lazy-pages gave up after the commit and the
# workload was lost (seen with 200 processes in 3 of 5 runs).

load lib/hosts
load lib/phaul

TREE_N=300

setup() {
	hosts_setup
	phaul_setup
}

teardown() {
	hosts_teardown
}

# start_tree: TREE_N-1 sleeping processes under a counter; sets PID, LOG.
start_tree() {
	LOG=$SCRATCH/ticks.log
	PID=$(start_tree_in_src "$TREE_N" "$LOG")
	ticks_advance "$LOG" 30
	[ "$(procs_in src | wc -l)" -ge "$TREE_N" ]
}

tree_moves() {
	serve_start
	start_tree
	migrate --key "$KEY" --mode "$1" --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	note "$1, $TREE_N processes: frozen $(json .frozen_ms) ms, total $(json .total_ms) ms"
	[ "$(procs_in src | wc -l)" -eq 0 ]
	[ "$(procs_in dst | wc -l)" -ge "$TREE_N" ]
	ticks_advance "$LOG" 30
	check_ticks "$LOG" >/dev/null
}

@test "tree: $TREE_N processes move in live mode, all of them run on dst" {
	tree_moves live
}

@test "tree: $TREE_N processes move in lazy mode, all of them run on dst" {
	tree_moves lazy
}

@test "tree: $TREE_N processes move in hybrid mode, all of them run on dst" {
	tree_moves hybrid
}
