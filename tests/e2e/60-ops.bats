#!/usr/bin/env bats
# Operating phaul: two `phaul migrate` of one tree at once, several
# migrations into one daemon at once, --max-parallel, SIGTERM on the
# daemon mid-migration, `phaul check`, and hostile unauthenticated
# clients.  Same assertions as the other files: the workload runs on
# exactly one host, its ticks go on with none lost or repeated, nothing
# is left behind.

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

MIGRATE_MODE=stop

# start_counter_n N: counter N in src, log $SCRATCH/cN.log; sets CPID[N].
start_counter_n() {
	CPID[$1]=$(start_in_src "$WORKLOADS/counter" "$SCRATCH/c$1.log") || return 1
	ticks_advance "$SCRATCH/c$1.log" 20
}

# migrate_bg_n N [VAR=VAL...] [--] ARGS...: phaul migrate in src in the
# background, stdout/stderr in $SCRATCH/mN.out/.err; sets MJOBS[N].
migrate_bg_n() {
	local n=$1 envs=()
	shift
	while [[ "${1:-}" == *=* ]]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	in_src timeout -k 5 "$MIGRATE_TIMEOUT" env "${envs[@]}" "$PHAUL" migrate \
		--to "$DST_ADDR:$PHAUL_PORT" --mode "$MIGRATE_MODE" --key "$KEY" \
		--workdir "$SRC_WORKDIR" "$@" >"$SCRATCH/m$n.out" 2>"$SCRATCH/m$n.err" 3>&- 4>&- &
	MJOBS[$n]=$!
}

# wait_bg_n N SEC: the background migrate N ends within SEC s; sets
# status, stderr.
wait_bg_n() {
	local job=${MJOBS[$1]}
	wait_for "$2" eval '! _running '"$job" || {
		echo "phaul migrate $1 still runs $2 s later" >&2
		return 1
	}
	status=0
	wait "$job" || status=$?
	stderr=$(cat "$SCRATCH/m$1.err")
	echo "# migrate $1 -> exit $status: $stderr" >>"$SCRATCH/migrate.log"
}

# ---------------------------------------------------------------- one tree, two migrates

@test "ops: a second phaul migrate of the same PID is refused while the first runs; the first lands" {
	require_fault src.preflight
	serve_start
	fx_start_counter
	# the first holds its lock 4 s at the preflight
	migrate_bg_n 1 PHAUL_FAULT=src.preflight:delay=4000 -- "$PID"
	wait_for 10 grep -q 'session .* from' "$SERVE_LOG"
	assert_job_running "${MJOBS[1]}" "the second migrate"
	fx_migrate "$PID"
	assert_failed_with "PID $PID is being migrated already \(by phaul PID [0-9]+\)"
	[ "$status" -eq 1 ]
	# the refusal touched nothing: the first goes on and lands
	wait_bg_n 1 60
	[ "$status" -eq 0 ] || { echo "the first migrate failed: $stderr" >&2; false; }
	fx_assert_migrated
}

@test "ops: a phaul migrate killed while it holds the lock does not block the next one" {
	require_fault src.preflight
	serve_start
	fx_start_counter
	fx_migrate PHAUL_FAULT=src.preflight:kill -- "$PID"
	[ "$status" -eq 137 ] || { echo "migrate was not killed at src.preflight: $status $stderr" >&2; false; }
	assert_rolled_back "$LOG" "$PID"
	fx_migrate "$PID"
	[ "$status" -eq 0 ] || { echo "the next migrate failed: $stderr" >&2; false; }
	fx_assert_migrated
}
