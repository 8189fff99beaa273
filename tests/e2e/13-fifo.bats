#!/usr/bin/env bats
# A named FIFO holding data nobody has read yet (tests/workloads/fifo.c)
# migrates in every mode: the bytes waiting in the pipe arrive on dst,
# byte for byte, once, and the workload goes on using both ends there.
#
# The two test hosts are one kernel and see the same files, so the FIFO
# on dst is the very pipe the source's frozen tree still holds open: its
# data is already there when CRIU restores it. CRIU patch 0011
# (CRIU_FIFO_SHARED_CHECK) leaves it as it is; an unpatched CRIU writes
# it a second time (20000 bytes: the workload reads 40000) or fails
# (40000 bytes: twice that does not fit, "Error splicing data").

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

_fifo_verified() { [ "$(grep -c '^VERIFY' "$LOG")" -gt "$1" ]; }

# fifo_verify HOST: SIGUSR1 the workload there: it reads the FIFO empty
# and must find exactly the last $BYTES bytes it wrote
fifo_verify() {
	local n
	n=$(grep -c '^VERIFY' "$LOG" || true)
	in_"$1" kill -USR1 "$PID"
	wait_for 10 _fifo_verified "$n" || { echo "no VERIFY line in $1" >&2; return 1; }
	grep '^VERIFY' "$LOG" | tail -n1 | grep -qx "VERIFY PASS bytes=$BYTES" ||
		{ echo "in $1: $(grep '^VERIFY' "$LOG" | tail -n1)" >&2; return 1; }
}

# fifo_migrates MODE BYTES
fifo_migrates() {
	local dir=$SCRATCH/fifo
	BYTES=$2
	mkdir "$dir"
	serve_start
	LOG=$SCRATCH/fifo.log
	PID=$(start_in_src "$WORKLOADS/fifo" "$dir" "$LOG" "$BYTES")
	PIDS=$PID
	ticks_advance "$LOG" 20
	# reading and refilling once on src: what moves is the second fill
	fifo_verify src
	fx_migrate --mode "$1" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	fifo_verify dst
	fx_assert_migrated
	fifo_verify dst
}

@test "fifo: 20000 bytes waiting in a named FIFO move once, stop mode" {
	fifo_migrates stop 20000
}

@test "fifo: 40000 bytes waiting in a named FIFO move once, stop mode" {
	fifo_migrates stop 40000
}

@test "fifo: 40000 bytes waiting in a named FIFO move once, live mode" {
	fifo_migrates live 40000
}

@test "fifo: 40000 bytes waiting in a named FIFO move once, lazy mode" {
	fifo_migrates lazy 40000
}

@test "fifo: 40000 bytes waiting in a named FIFO move once, hybrid mode" {
	fifo_migrates hybrid 40000
}

# The restore fails for a reason of CRIU's own: the user is told that
# reason (not the RLIMIT_NOFILE line every CRIU here logs first) and
# where the destination keeps CRIU's log, which says it too.
@test "fifo, failure: the FIFO is gone at the restore: the error says CRIU's cause and where its log is kept" {
	local dir=$SCRATCH/fifo kept
	BYTES=20000
	mkdir "$dir"
	serve_start PHAUL_FAULT=dst.restore:delay=1500
	LOG=$SCRATCH/fifo.log
	PID=$(start_in_src "$WORKLOADS/fifo" "$dir" "$LOG" "$BYTES")
	ticks_advance "$LOG" 20
	fx_migrate_bg --mode stop "$PID"
	# the tree is dumped and frozen: the FIFO goes before CRIU restores
	assert_fault_hit dst.restore
	rm "$dir/fifo"
	fx_wait_migrate_job "$MJOB" 30
	[ "$status" -eq 1 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	[[ "$stderr" == *"CRIU could not restore the tree: Can't open fake fifo "*"/fifo/fifo]: No such file or directory"* ]] ||
		{ echo "not CRIU's cause: $stderr" >&2; false; }
	[[ "$stderr" != *RLIMIT_NOFILE* ]] || { echo "names the harmless line: $stderr" >&2; false; }
	kept=$(sed -n "s/.*(CRIU's log: \([^ ]*\) on the destination).*/\1/p" <<<"$stderr")
	[ "$(dirname "$kept")" = "$DST_LOGDIR" ] || { echo "no kept log named: $stderr" >&2; false; }
	grep -q "Can't open fake fifo .*fifo]: No such file or directory" "$kept"
	grep -q "Restoring FAILED" "$kept"
	# rolled back: it runs on src, its data still there
	assert_only_in src "$PID"
	fifo_verify src
	assert_workdir_clean
}
