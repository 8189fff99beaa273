# make bench, issue 15: what the workload feels, beside CRIU alone.
# Sourced by scripts/bench, which defines start_hosts, stop_hosts,
# start_workload, run_phaul, run_criu and the test hosts (lib/hosts.bash).
#
#   run_sweep MODE   stop|live|lazy|hybrid|criu: mtouch --sweep (the hot
#                    set rewritten by a thread, all memory read once a
#                    second between two ticks) at 1 Gbit/s
#   run_tree MODE    stop|live|criu: a tree of sleeping processes at 1 Gbit/s;
#                    live-tmpfs: live, the destination's work directory on a
#                    tmpfs (where its images are created)
#   run_shm MODE     stop|live|lazy|hybrid|criu: mtouch with a child sharing
#                    MAP_SHARED|MAP_ANONYMOUS memory and a memfd with it;
#                    private-live: as much memory, all private, live
#   sweep_report     their tables (nothing if neither ran)
#
# BENCH_QUICK=1: 128 MiB and 20 processes instead of 1 GiB and 200, shared
# memory a quarter of its size.

SWEEP_MIB=${BENCH_SWEEP_MIB:-$([ -n "${BENCH_QUICK:-}" ] && echo 128 || echo 1024)}
SWEEP_HOT=16 SWEEP_RATE=64
TREE_N=${BENCH_TREE_N:-$([ -n "${BENCH_QUICK:-}" ] && echo 20 || echo 200)}
# shared anonymous, memfd, private MiB
read -r SHM_SHARED SHM_MEMFD SHM_PRIVATE <<<"$([ -n "${BENCH_QUICK:-}" ] && echo 64 16 32 || echo 256 64 128)"
SWEEP_ROWS=()
TREE_ROWS=()
SHM_ROWS=()
# by scenario: frozen ms, the workload's largest stall (ms)
declare -A I15_FROZEN=() I15_STALL=()

# gaps_around LOG N: "BEFORE AFTER", the largest gap between ticks (ms) in
# LOG's first N lines and from its N-th line on (the migration started
# after line N); "? ?" if the log has a lost tick or a failure.
gaps_around() {
	local before after
	check_ticks "$1" >/dev/null 2>&1 || { echo "? ?"; return; }
	read -r before _ < <(max_gap_at <(head -n "$2" "$1"))
	read -r after _ < <(max_gap_at <(tail -n +"$2" "$1"))
	echo "$before $after"
}

# ms from the commit until every page is on the destination: CRIU alone,
# and stop mode moving CRIU's images, restore all of it before the resume;
# live, lazy, hybrid and stop mode streaming fill it after (criu
# lazy-pages, from the local store or the source): phaul's report says
# when (.fill, .postcopy), for live mode the destination's log.
all_local_ms() {
	case "$1" in
	criu) echo 0 ;;
	# streamed: filled from the destination's store, as live (its report)
	stop) jq -r '.fill.last_page_ms // 0' "$SCRATCH/result.json" ;;
	lazy | hybrid) jq -r '.postcopy.last_page_ms // "?"' "$SCRATCH/result.json" ;;
	*) sed -n 's/.*all memory in place \([0-9]*\) ms after the commit.*/\1/p' \
		"$SCRATCH/serve.log" | tail -n 1 | grep . || echo "?" ;;
	esac
}

# the phaul or CRIU run on workload $1, the JSON report in $SCRATCH/result.json
migrate_by() {
	local mode=$1 w=$2 name=$3
	if [ "$mode" = criu ]; then run_criu "$w"; else run_phaul "$mode" "$w" "$name"; fi
	[ -s "$SCRATCH/result.json" ] ||
		echo '{"ok": false, "mode": "'"$mode"'", "error": "no report", "frozen_ms": 0, "total_ms": 0, "bytes_sent": 0}' \
			>"$SCRATCH/result.json"
}

run_sweep() {
	local mode=$1 name=sweep-$1 w n gaps local_ms
	start_hosts 1gbit
	w=$(start_workload "$SWEEP_MIB" "$SWEEP_HOT" "$SWEEP_RATE" --threads 1 --sweep 1000)
	ticks_advance "$SCRATCH/ticks.log" 200 60 # a few passes: the gap they cost unmigrated
	n=$(wc -l <"$SCRATCH/ticks.log")
	migrate_by "$mode" "$w" "$name"
	local_ms=$(all_local_ms "$mode")
	# every page local, then a pass or two more
	ticks_advance "$SCRATCH/ticks.log" 250 120 || true
	gaps=$(gaps_around "$SCRATCH/ticks.log" "$n")
	echo "$name: $(cat "$SCRATCH/result.json") gaps=$gaps all_local_ms=$local_ms" >&2
	i15_note "$name" "${gaps#* }"
	SWEEP_ROWS+=("$(jq -r --arg n "$name" --arg mib "$SWEEP_MIB" --arg g "$gaps" --arg l "$local_ms" '
		($g | split(" ")) as $g |
		"| \($n) | \($mib) MiB | \(if .ok then "ok" else "FAILED: \(.error)" end) | \(.frozen_ms) | \($g[0]) | \($g[1]) | \($l) | \(.dump_ms // "-") / \(.transfer_ms // "-") / \(.restore_ms // "-") | \(.total_ms) | \(.bytes_sent / 1048576 | floor) MiB |"' \
		"$SCRATCH/result.json")")
	stop_hosts
}

# N processes: a counter (the ticks) and N-1 sleeping children of it
start_tree() {
	local w
	w=$(start_tree_in_src "$TREE_N" "$SCRATCH/ticks.log")
	ticks_advance "$SCRATCH/ticks.log" 50 60
	[ "$(procs_in src | wc -l)" -ge "$TREE_N" ] || echo "tree: fewer than $TREE_N processes in src" >&2
	echo "$w"
}

run_tree() {
	local mode=${1%-tmpfs} name=tree$TREE_N-$1 w pause
	start_hosts 1gbit
	w=$(start_tree)
	migrate_by "$mode" "$w" "$name"
	ticks_advance "$SCRATCH/ticks.log" 50 60 || true
	pause=$(check_ticks "$SCRATCH/ticks.log" 2>/dev/null || echo "?")
	echo "$name: $(cat "$SCRATCH/result.json") pause=$pause" >&2
	i15_note tree-$1 "$pause"
	TREE_ROWS+=("$(jq -r --arg n "$name" --arg p "$pause" --argjson k "$TREE_N" '
		"| \($n) | \($k) | \(if .ok then "ok" else "FAILED: \(.error)" end) | \(.frozen_ms) | \($p) | \(.frozen_ms / $k * 10 | floor / 10) | \(.dump_ms // "-") | \(.transfer_ms // "-") | \(.restore_ms // "-") | \(.total_ms) |"' \
		"$SCRATCH/result.json")")
	stop_hosts
}

run_shm() {
	local mode=$1 name=shm-$1 w pause
	start_hosts 1gbit
	if [ "$mode" = private-live ]; then
		mode=live
		w=$(start_workload $((SHM_SHARED + SHM_MEMFD + SHM_PRIVATE)) 16 64)
	else
		w=$(start_workload "$SHM_PRIVATE" 16 64 --shared "$SHM_SHARED" --memfd "$SHM_MEMFD")
	fi
	migrate_by "$mode" "$w" "$name"
	ticks_advance "$SCRATCH/ticks.log" 50 60 || true
	pause=$(check_ticks "$SCRATCH/ticks.log" 2>/dev/null || echo "?")
	echo "$name: $(cat "$SCRATCH/result.json") pause=$pause" >&2
	i15_note "$name" "$pause"
	SHM_ROWS+=("$(jq -r --arg n "$name" --arg p "$pause" '
		"| \($n) | \(.mode) | \(if .ok then "ok" else "FAILED: \(.error)" end) | \(.frozen_ms) | \($p) | \(.dump_ms // "-") / \(.transfer_ms // "-") / \(.restore_ms // "-") | \(.total_ms) | \(.bytes_sent / 1048576 | floor) MiB |"' \
		"$SCRATCH/result.json")")
	stop_hosts
}

# i15_note NAME STALL: keep a successful run's frozen time and stall
i15_note() {
	[ "$(jq -r .ok "$SCRATCH/result.json")" = true ] || return 0
	I15_FROZEN[$1]=$(jq -r .frozen_ms "$SCRATCH/result.json")
	I15_STALL[$1]=$2
}

# i15_ratio TEXT A B TARGET: "- TEXT: A/B (TARGET)" when both ran
i15_ratio() {
	[ -n "$2" ] && [ -n "$3" ] || return 0
	echo "- $1: $(awk -v a="$2" -v b="$3" 'BEGIN { if (b > 0 && a != "?") printf "%.2f", a / b; else print "-" }') ($4)"
}

# issue 15's targets, from this run's rows
i15_ratios() {
	local m
	echo
	echo "Issue 15's ratios from these rows (targets in parentheses):"
	echo
	for m in live hybrid; do
		i15_ratio "sweeping, $m: the workload's stall / CRIU alone's" \
			"${I15_STALL[sweep-$m]:-}" "${I15_STALL[sweep-criu]:-}" "<= 0.10"
	done
	i15_ratio "sweeping, stop frozen / CRIU alone frozen" "${I15_FROZEN[sweep-stop]:-}" \
		"${I15_FROZEN[sweep-criu]:-}" "<= 1"
	i15_ratio "sweeping, stop frozen / the floor ($SWEEP_MIB MiB at 125 MB/s)" \
		"${I15_FROZEN[sweep-stop]:-}" $((SWEEP_MIB * 1048576 / 125000)) "<= 1.1"
	i15_ratio "tree, live frozen / CRIU alone frozen" "${I15_FROZEN[tree-live]:-}" \
		"${I15_FROZEN[tree-criu]:-}" "<= 1"
	for m in live hybrid; do
		i15_ratio "shared memory, $m frozen / all private, live" "${I15_FROZEN[shm-$m]:-}" \
			"${I15_FROZEN[shm-private-live]:-}" "<= 1.5"
	done
}

sweep_report() {
	if ((${#SWEEP_ROWS[@]})); then
		echo
		echo "## The sweeping workload"
		echo
		echo "mtouch --size $SWEEP_MIB --hot $SWEEP_HOT --rate $SWEEP_RATE --threads 1 --sweep 1000:"
		echo "a thread rewrites the hot set at $SWEEP_RATE MiB/s, and once a second the"
		echo "ticking thread reads all of the memory in one pass (as a GC or a scan"
		echo "would) between two ticks. 1 Gbit/s."
		echo
		echo "- *gap before*: the largest gap between ticks before the migration (a"
		echo "  pass's own cost); *stall*: the largest gap from the migration's start"
		echo "  on, what the workload felt."
		echo "- *all local*: ms from the commit until every page is on the"
		echo "  destination (stop and CRIU: none left at the resume; live, lazy,"
		echo "  hybrid: until criu lazy-pages has filled the last page)."
		echo "- *dump / transfer / restore*: phaul's report (CRIU alone: not split)."
		echo
		echo "| scenario | memory | result | frozen ms | gap before ms | stall ms | all local ms | dump / transfer / restore ms | total ms | sent |"
		echo "|---|---|---|---|---|---|---|---|---|---|"
		printf '%s\n' "${SWEEP_ROWS[@]}"
	fi
	if ((${#TREE_ROWS[@]})); then
		echo
		echo "## A tree of $TREE_N processes"
		echo
		echo "tests/workloads/counter (the ticks) and $((TREE_N - 1)) sleeping children, 1 Gbit/s."
		echo
		echo "| scenario | processes | result | frozen ms | pause ms | frozen ms per process | dump ms | transfer ms | restore ms | total ms |"
		echo "|---|---|---|---|---|---|---|---|---|---|"
		printf '%s\n' "${TREE_ROWS[@]}"
	fi
	if ((${#SHM_ROWS[@]})); then
		echo
		echo "## Shared memory"
		echo
		echo "mtouch --size $SHM_PRIVATE --hot 16 --rate 64 --shared $SHM_SHARED --memfd $SHM_MEMFD: a"
		echo "parent and a sleeping child sharing $SHM_SHARED MiB of MAP_SHARED|MAP_ANONYMOUS"
		echo "memory and a $SHM_MEMFD MiB memfd, and the parent's $SHM_PRIVATE MiB of private memory"
		echo "(16 MiB of it rewritten at 64 MiB/s); shm-private-live: the same"
		echo "$((SHM_SHARED + SHM_MEMFD + SHM_PRIVATE)) MiB all private, live. 1 Gbit/s."
		echo
		echo "| scenario | mode | result | frozen ms | pause ms | dump / transfer / restore ms | total ms | sent |"
		echo "|---|---|---|---|---|---|---|---|"
		printf '%s\n' "${SHM_ROWS[@]}"
	fi
	if ((${#I15_FROZEN[@]})); then i15_ratios; fi
}
