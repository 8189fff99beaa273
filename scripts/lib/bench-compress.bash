# make bench, issue 16: bytes on the wire, --compress auto beside off.
# Sourced by scripts/bench, which defines start_hosts, stop_hosts,
# start_workload, run_phaul (BENCH_PHAUL_ARGS: more migrate options) and
# the test hosts (lib/hosts.bash).
#
#   run_compress WHAT LINK COMPRESS   WHAT: redis (redis-server with 1M keys,
#                    DEBUG POPULATE, its DEBUG DIGEST checked on dst) or random
#                    (mtouch 256 MiB of random data); LINK: 1gbit or unshaped;
#                    COMPRESS: auto or off. Live mode.
#   compress_report  the table and the ratios against the issue's targets
#                    (nothing if no row ran)

COMPRESS_ROWS=()
# by "WHAT-LINK-COMPRESS": bytes sent, total ms, resident bytes
declare -A CMP_SENT=() CMP_TOTAL=() CMP_RSS=()

# start_redis: redis-server in src with 1M keys; prints its PID
start_redis() {
	local pid
	mkdir -p "$SCRATCH/redis"
	# only fds 0-2 for the server (the shell closes what it inherited)
	pid=$(start_in_src -o "$SCRATCH/redis.out" bash -c '
		for n in $(ls /proc/$$/fd); do ((n > 2)) && eval "exec $n>&-"; done
		exec "$@"' - redis-server --port 6379 --save '' --appendonly no \
		--dir "$SCRATCH/redis" --enable-debug-command yes --daemonize no)
	wait_for 30 eval 'in_src redis-cli -p 6379 PING 2>/dev/null | grep -q PONG' >&2
	in_src redis-cli -p 6379 DEBUG POPULATE 1000000 key 64 >/dev/null
	echo "$pid"
}

run_compress() {
	local what=$1 link=$2 compress=$3 name="compress-$1-$2-$3" w rss digest=
	start_hosts "$([ "$link" = unshaped ] && echo - || echo "$link")"
	if [ "$what" = redis ]; then
		w=$(start_redis)
		digest=$(in_src redis-cli -p 6379 DEBUG DIGEST)
		rss=$(awk '/^VmRSS:/ { print $2 * 1024 }' "$(_hosts_proc src)/$w/status")
	else
		w=$(start_workload 256 1 16 --fill random)
		rss=$((256 << 20))
	fi
	BENCH_PHAUL_ARGS=(--compress "$compress")
	BENCH_WARM=1 run_phaul live "$w" "$name"
	BENCH_PHAUL_ARGS=()
	# redis: the same data on dst, or the row says it failed
	if [ -n "$digest" ] && [ "$(jq -r .ok "$SCRATCH/result.json")" = true ] &&
		[ "$(in_dst redis-cli -p 6379 DEBUG DIGEST)" != "$digest" ]; then
		jq -c '.ok = false | .error = "DEBUG DIGEST differs on dst"' "$SCRATCH/result.json" \
			>"$SCRATCH/r.json" && mv "$SCRATCH/r.json" "$SCRATCH/result.json"
	fi
	echo "$name: $(cat "$SCRATCH/result.json")" >&2
	if [ "$(jq -r .ok "$SCRATCH/result.json")" = true ]; then
		CMP_SENT[$what-$link-$compress]=$(jq -r .bytes_sent "$SCRATCH/result.json")
		CMP_TOTAL[$what-$link-$compress]=$(jq -r .total_ms "$SCRATCH/result.json")
		CMP_RSS[$what-$link-$compress]=$rss
	fi
	COMPRESS_ROWS+=("$(jq -r --arg n "$name" --argjson rss "$rss" '
		"| \($n) | \($rss / 1048576 | floor) MiB | \(if .ok then "ok" else "FAILED: \(.error)" end) | \(.bytes_sent) | \(.bytes_sent / $rss * 1000 | floor / 1000) | \(.total_ms) | \(.frozen_ms) | \(.pages.zero_pages // "-") | \(.pages.zstd_frames // "-") | \(.pages.compress_cpu_ms // "-") |"' \
		"$SCRATCH/result.json")")
	stop_hosts
}

# cmp_ratio A B: A / B with two decimals ("-" when either is missing)
cmp_ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a != "" && b > 0) printf "%.3f", a / b; else print "-" }'; }

compress_report() {
	((${#COMPRESS_ROWS[@]})) || return 0
	echo
	echo "## Compression: --compress auto beside off"
	echo
	echo "Live mode. redis: redis-server with 1M keys (DEBUG POPULATE 1000000 key 64),"
	echo "its DEBUG DIGEST equal on dst; random: mtouch 256 MiB of random data (1 MiB"
	echo "hot at 16 MiB/s). *x resident*: bytes sent over the workload's resident"
	echo "memory; *CPU*: the source's thread CPU time spent compressing. Each"
	echo "migration follows a \`phaul check\` between the same hosts, as on hosts"
	echo "that migrated before: CRIU's preflight answers are kept on both sides"
	echo "(a first migration pays ~60 ms more, with either setting)."
	echo
	echo "| scenario | resident | result | bytes sent | x resident | total ms | frozen ms | zero pages | zstd frames | CPU ms |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${COMPRESS_ROWS[@]}"
	echo
	echo "Against the targets (issue 16):"
	echo
	echo "- redis at 1 Gbit/s, auto: bytes sent / resident $(cmp_ratio "${CMP_SENT[redis-1gbit-auto]:-}" "${CMP_RSS[redis-1gbit-auto]:-}") (<= 0.15); total time / off's $(cmp_ratio "${CMP_TOTAL[redis-1gbit-auto]:-}" "${CMP_TOTAL[redis-1gbit-off]:-}") (<= 0.3)"
	local l
	for l in 1gbit unshaped; do
		echo "- random at $l: total time auto / off $(cmp_ratio "${CMP_TOTAL[random-$l-auto]:-}" "${CMP_TOTAL[random-$l-off]:-}") (<= 1.05)"
	done
	echo "- unshaped, auto / off total time: redis $(cmp_ratio "${CMP_TOTAL[redis-unshaped-auto]:-}" "${CMP_TOTAL[redis-unshaped-off]:-}"), random $(cmp_ratio "${CMP_TOTAL[random-unshaped-auto]:-}" "${CMP_TOTAL[random-unshaped-off]:-}") (<= 1: never slower)"
}
