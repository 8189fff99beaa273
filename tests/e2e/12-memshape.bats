#!/usr/bin/env bats
# What a workload's memory looks like must never decide whether it moves
# (issue 13): the memory-integrity workload mtouch, migrated in every mode
# and verified page by page on dst.
#
# - Pages another process cannot read: 640 scattered single pages made
#   PROT_NONE, write-only or exec-only after the fill (about 1300
#   mappings); some of them lie in the hot set and are rewritten during
#   the rounds. process_vm_readv refuses them; phaul reads them through
#   /proc/PID/mem (src/common/procmem.c). Every check on dst also verifies
#   that each keeps its protection, alone in its mapping.
# - One mapping over 2 GiB (2100 MiB), in the modes that restore lazily:
#   criu lazy-pages sized a buffer from the longest lazy run in an int
#   (pages/store.c cuts the runs; scripts/criu-patches/0010 fixes CRIU).
#   These take the machine's big-memory lock (/tmp/phaul-bigmem.lock) for
#   the test: do not run this file under `flock` on that lock yourself.
#
# PHAUL_BIG_TESTS=1 adds 4 GiB and 8 GiB in one mapping in every mode
# (minutes each; about 2x the size in RAM on the machine, plus the page
# store's page cache); `PHAUL_BIG_TESTS=1 bats -f big tests/e2e/12-memshape.bats`.

if [ -n "${PHAUL_BIG_TESTS:-}" ]; then
	: "${BATS_TEST_TIMEOUT:=1800}"
fi

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	if [[ "$BATS_TEST_DESCRIPTION" == big:* ]] && [ -z "${PHAUL_BIG_TESTS:-}" ]; then
		skip "set PHAUL_BIG_TESTS=1 for the 4 and 8 GiB runs"
	fi
	hosts_setup
	phaul_setup
	fx_setup
}

teardown() {
	hosts_teardown
}

# The machine's big-memory lock, held until the test ends.
bigmem_lock() {
	exec {BIGMEM_FD}>/tmp/phaul-bigmem.lock
	flock -w 1200 "$BIGMEM_FD" || { echo "no big-memory lock within 20 min" >&2; return 1; }
}

# check_json MODE: the --json report of a successful migration. After a
# post-copy commit the workload waits for the pages it touches (each a
# round trip behind the background transfer): its pause is noted, not
# bounded by the frozen time as in stop and live mode.
check_json() {
	case "$1" in
	lazy | hybrid)
		assert_json_object
		[ "$(jq -r '"\(.ok) \(.mode) \(.outcome)"' <<<"$output")" = "true $1 committed" ] ||
			{ echo "not a committed $1 migration: $output" >&2; return 1; }
		note "workload pause $(check_ticks "$LOG") ms; phaul: frozen $(json .frozen_ms) ms," \
			"total $(json .total_ms) ms, $(json .postcopy.pages_fetched) pages fetched," \
			"last page $(json .postcopy.last_page_ms) ms after the commit" ;;
	*) fx_check_success_json "$1" "$LOG" ;;
	esac
}

# migrated_and_verified MODE: the migration of $PID succeeded, the tree
# runs on dst only, every page and protection checks out there.
migrated_and_verified() {
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; return 1; }
	assert_only_in dst "$PID"
	ticks_advance "$LOG" 30 60
	check_json "$1"
	# before the check, which pauses the ticks while it hashes every page
	STALL=$(check_ticks "$LOG")
	fx_verify_mtouch dst
	fx_assert_migrated
}

# prot_case MODE: 256 MiB, 512 PROT_NONE + 64 write-only + 64 exec-only pages.
prot_case() {
	serve_start
	fx_start_mtouch 256 16 64 --none 512 --wronly 64 --xonly 64
	grep -q '^READY .* protected=640$' "$LOG" || { head -1 "$LOG" >&2; false; }
	fx_verify_mtouch src
	fx_migrate --mode "$1" --json "$PID"
	migrated_and_verified "$1"
}

@test "stop: PROT_NONE, write-only and exec-only pages move; contents and protections verify on dst" {
	prot_case stop
}

@test "live: PROT_NONE, write-only and exec-only pages move, rewritten ones too; verify on dst" {
	prot_case live
}

@test "lazy: PROT_NONE, write-only and exec-only pages are fetched after the commit; verify on dst" {
	prot_case lazy
}

@test "hybrid: PROT_NONE, write-only and exec-only pages move; verify on dst" {
	prot_case hybrid
}

# A kernel that does not let /proc/PID/mem read them (proc_mem.force_override;
# the fault point src.memforce plays it): the preflight refuses the tree,
# before anything freezes, and says why; a tree without such pages moves.
@test "lazy: protected pages that cannot be read are refused at the preflight; the workload never stops" {
	require_fault src.memforce
	serve_start
	fx_start_mtouch 64 4 16 --none 8
	fx_migrate PHAUL_FAULT=src.memforce:fail -- --mode lazy "$PID"
	assert_failed_with "preflight.*PID $PID has pages in 0x[0-9a-f]+-0x[0-9a-f]+, a mapping it cannot read.*--mode stop"
	assert_rolled_back "$LOG" "$PID"
	# nothing froze: no gap beyond a tick's jitter
	(($(check_ticks "$LOG") < 200))
	fx_verify_mtouch src
	# the same kernel: a workload without such pages moves
	fx_start_counter
	fx_migrate PHAUL_FAULT=src.memforce:fail -- --mode lazy "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed (exit $status): $stderr" >&2; false; }
	fx_assert_migrated
}

# big_case MODE MIB: one mapping of MIB MiB (16 MiB hot at 64 MiB/s).
big_case() {
	local mib=$2
	bigmem_lock
	MIGRATE_TIMEOUT=$((120 + mib / 10)) FX_VERIFY_SEC=$((30 + mib / 50))
	FX_READY_SEC=$((60 + mib / 20))
	serve_start
	fx_start_mtouch "$mib" 16 64
	fx_migrate --mode "$1" --json "$PID"
	migrated_and_verified "$1"
	note "$1, one mapping of $mib MiB: frozen $(json .frozen_ms) ms, total $(json .total_ms) ms," \
		"workload's largest stall $STALL ms"
}

@test "live: one mapping of 2100 MiB moves (lazy restore); every page verifies on dst" {
	big_case live 2100
}

@test "lazy: one mapping of 2100 MiB moves; every page verifies on dst" {
	big_case lazy 2100
}

@test "big: stop, one mapping of 4 GiB" { big_case stop 4096; }
@test "big: live, one mapping of 4 GiB" { big_case live 4096; }
@test "big: lazy, one mapping of 4 GiB" { big_case lazy 4096; }
@test "big: hybrid, one mapping of 4 GiB" { big_case hybrid 4096; }
@test "big: stop, one mapping of 8 GiB" { big_case stop 8192; }
@test "big: live, one mapping of 8 GiB" { big_case live 8192; }
@test "big: lazy, one mapping of 8 GiB" { big_case lazy 8192; }
@test "big: hybrid, one mapping of 8 GiB" { big_case hybrid 8192; }
