# Shared fixtures and assertions for the phaul end-to-end tests that run
# the same workloads in every mode (11-live-fixtures.bats) and the fault
# matrix (30-faults.bats).  Load after lib/hosts and lib/phaul:
#
#   load lib/hosts
#   load lib/phaul
#   load lib/fixtures
#   setup()    { hosts_setup; phaul_setup; fx_setup; }
#   teardown() { hosts_teardown; }
#
# Workloads (each sets PID, PIDS = every PID of the tree, LOG = tick log):
#   fx_start_counter            counter, 30 ticks in
#   fx_start_pipetree           pipetree, 3 processes; also KIDS
#   fx_start_openfile           openfile in $SCRATCH/of; also OFDIR, PING_SRC
#                               (its counter as answered on src)
#   fx_start_mtouch MIB [HOT [RATE [ARGS...]]]
#                               mtouch of MIB MiB (default HOT 4, RATE 16),
#                               more mtouch options in ARGS; READY within
#                               $FX_READY_SEC s (default 60)
#   fx_verify_mtouch HOST       SIGUSR1 it there: VERIFY PASS of every page
#                               (within $FX_VERIFY_SEC s, default 30)
#
# Migration and assertions:
#   fx_migrate [VAR=VAL...] [--] ARGS...
#                               migrate (lib/phaul) with --key $KEY and
#                               --workdir $SRC_WORKDIR added
#   fx_check_success_json MODE LOG
#                               --json of a successful run is sane and agrees
#                               with the pause the workload measured; in live
#                               mode also tracking and the iters array
#   fx_check_iters              .iters: non-empty, every documented field
#   fx_assert_migrated          the tree ($PIDS) runs only in dst, ticks go on
#                               with none lost or repeated, nothing left
#   fx_assert_no_strays [SEC]   no criu process in either host, no phaul in
#                               src, no phaul in dst but the daemon
#   fx_assert_src_workdir_clean the source's --workdir is empty
#   fx_session_id               the id of the (only) session the daemon
#                               recorded an outcome for
#   fx_assert_outcome OK OUTCOME MODE
#                               --json is one object saying .ok, .outcome,
#                               .mode as given
#   fx_migrate_bg [VAR=VAL...] [--] ARGS...
#                               fx_migrate in the background (stdout
#                               $SCRATCH/m.out, stderr $SCRATCH/m.err); MJOB
#   fx_wait_migrate_job JOB SEC a background migrate ends within SEC s; sets
#                               status, output, stderr, FX_WAITED (seconds)
#   fx_proxy_start LPORT TPORT flip|truncate AFTER
#                               a TCP proxy in dst that corrupts or cuts the
#                               source's stream after AFTER bytes
#
# Variables: SRC_WORKDIR (the source's --workdir, $SCRATCH/srcwork).
# jq costs ~50 ms a run here: checks read many fields in one jq run.

FX_PAGE=4096

fx_setup() {
	SRC_WORKDIR=$SCRATCH/srcwork
	mkdir -p "$SRC_WORKDIR"
}

# ---------------------------------------------------------------- workloads

fx_start_counter() {
	LOG=$SCRATCH/counter.log
	PID=$(start_in_src "$WORKLOADS/counter" "$LOG") || return 1
	PIDS=$PID
	ticks_advance "$LOG" 30
}

fx_start_pipetree() {
	LOG=$SCRATCH/pipetree.log
	PID=$(start_in_src "$WORKLOADS/pipetree" "$LOG") || return 1
	ticks_advance "$LOG" 30 || return 1
	KIDS=$(children_in src "$PID" | sort -n | tr '\n' ' ')
	KIDS=${KIDS% }
	if [ "$(echo "$KIDS" | wc -w)" != 2 ]; then
		echo "pipetree $PID has children '$KIDS', not 2" >&2
		return 1
	fi
	PIDS="$PID $KIDS"
}

fx_start_openfile() {
	OFDIR=$SCRATCH/of
	LOG=$OFDIR/data
	mkdir -p "$OFDIR"
	PID=$(start_in_src "$WORKLOADS/openfile" "$OFDIR") || return 1
	PIDS=$PID
	ticks_advance "$LOG" 30 || return 1
	run in_src "$WORKLOADS/openfile" --ping "$OFDIR"
	if [ "$status" -ne 0 ] || [[ "$output" != "COUNTER "* ]]; then
		echo "openfile --ping on src: exit $status: $output" >&2
		return 1
	fi
	PING_SRC=${output#COUNTER }
}

fx_start_mtouch() {
	local mib=$1 hot=${2:-4} rate=${3:-16}
	shift $(($# < 3 ? $# : 3))
	LOG=$SCRATCH/mtouch.log
	FX_MTOUCH_PAGES=$((mib * 256))
	PID=$(start_in_src "$WORKLOADS/mtouch" --size "$mib" --hot "$hot" --rate "$rate" \
		--log "$LOG" "$@") || return 1
	PIDS=$PID
	wait_for "${FX_READY_SEC:-60}" grep -q '^READY' "$LOG" ||
		{ echo "mtouch never got READY" >&2; return 1; }
	ticks_advance "$LOG" 30
}

_fx_verify_count() { grep -c '^VERIFY' "$LOG" 2>/dev/null || true; }
_fx_verify_more() { [ "$(_fx_verify_count)" -gt "$1" ]; }

# fx_verify_mtouch HOST: every page of mtouch matches its shadow checksum.
fx_verify_mtouch() {
	local host=$1 n line
	n=$(_fx_verify_count)
	in_"$host" kill -USR1 "$PID" || { echo "cannot signal mtouch $PID in $host" >&2; return 1; }
	wait_for "${FX_VERIFY_SEC:-30}" _fx_verify_more "$n" ||
		{ echo "no VERIFY line from mtouch in $host within ${FX_VERIFY_SEC:-30} s" >&2; return 1; }
	line=$(grep '^VERIFY' "$LOG" | tail -n1)
	[[ "$line" == "VERIFY PASS pages=$FX_MTOUCH_PAGES "* ]] ||
		{ echo "memory check failed in $host: $line" >&2; return 1; }
}

# ---------------------------------------------------------------- migrate

fx_migrate() {
	local envs=()
	while [[ "${1:-}" == *=* ]]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	migrate "${envs[@]}" -- --key "$KEY" --workdir "$SRC_WORKDIR" "$@"
}

# ---------------------------------------------------------------- reports

_fx_num() { [[ "$1" =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; }

# fx_check_iters: the iters array of a live run's --json, in one jq pass
# that prints what is wrong (nothing when all is well).
fx_check_iters() {
	local errs
	errs=$(jq -r --argjson page "$FX_PAGE" '
		def num: type == "number" and . >= 0;
		((.pages.zstd_frames // 0) == 0 and (.pages.zero_pages // 0) == 0) as $plain |
		if (.iters | type) != "array" or (.iters | length) == 0 then
			"--json has no non-empty iters array"
		else
			(.iters | to_entries[] | .key as $i | .value as $r |
				(["pages_scanned", "pages_dirty", "pages_sent", "bytes", "ms", "mb_per_s"][] |
					select(($r[.] | num) | not) |
					"iters[\($i)].\(.) is \($r[.] | tojson), not a number >= 0"),
				# a page costs a whole page on the wire unless the run
				# compressed frames (--compress auto decides from the
				# link it measures) or sent zero pages as markers
				(select($plain and $r.pages_sent * $page > $r.bytes) |
					"iters[\($i)] sent more pages than bytes: \($r | tojson)"),
				(select($r.pages_sent > 0 and $r.bytes <= 0) |
					"iters[\($i)] sent pages in no bytes: \($r | tojson)"),
				# mb_per_s is bytes / ms (MB = 10^6 bytes) when ms > 0
				(select($r.ms > 0 and (($r.mb_per_s - $r.bytes / 1000 / $r.ms) | fabs) > 0.01 * ($r.mb_per_s + 1)) |
					"iters[\($i)].mb_per_s does not match bytes/ms: \($r | tojson)")),
			# the first round sends the workload memory
			(select(.iters[0].pages_sent <= 0) | "the first pre-copy round sent no page"),
			(select(([.iters[].bytes] | add) > .bytes_sent) |
				"the rounds sent more bytes than bytes_sent=\(.bytes_sent)"),
			# rounds before the freeze = iterations; a frozen round only last
			([.iters[] | select(.frozen == true)] | length) as $nf |
			(select((.iters | length) - $nf != .iterations or $nf > 1 or
				($nf == 1 and .iters[-1].frozen != true)) |
				"iters (\(.iters | length), \($nf) frozen) disagrees with iterations=\(.iterations)")
		end' <<<"$output" 2>&1)
	if [ -n "$errs" ]; then
		echo "$errs" >&2
		echo "iters: $(jq -c .iters <<<"$output" 2>/dev/null)" >&2
		return 1
	fi
}

# fx_check_success_json MODE LOG: as 10-stop.bats's check_success_json,
# and in live mode the tracking method and the iters array.  (One jq run
# for the top-level fields: jq costs ~50 ms a start on this machine.)
fx_check_success_json() {
	local mode=$1 log=$2 gap vals ok m err outc iters frozen total sent restore tracking
	vals=$(jq -rs 'if length == 1 and (.[0] | type) == "object" and
			(.[0] | has("ok") and has("mode") and has("error") and has("iterations") and
			 has("frozen_ms") and has("total_ms") and has("bytes_sent") and has("restore_ms"))
		then .[0] | [.ok, .mode, .error, .outcome, .iterations, .frozen_ms, .total_ms,
			     .bytes_sent, .restore_ms, (.tracking // "-")] | map(tostring) | join(" ")
		else "BAD" end' <<<"$output" 2>/dev/null)
	if [ -z "$vals" ] || [ "$vals" = BAD ]; then
		echo "--json did not print one JSON object with the statistics; stdout was: $output" >&2
		return 1
	fi
	read -r ok m err outc iters frozen total sent restore tracking <<<"$vals"
	[ "$ok" = true ] || { echo ".ok is not true: $output" >&2; return 1; }
	[ "$m" = "$mode" ] || { echo ".mode is not $mode: $output" >&2; return 1; }
	[ "$err" = null ] || { echo ".error is not null: $output" >&2; return 1; }
	[ "$outc" = committed ] || { echo ".outcome is not committed: $output" >&2; return 1; }
	[[ "$iters" =~ ^[0-9]+$ ]] || { echo "bad .iterations: $output" >&2; return 1; }
	_fx_num "$frozen" && _fx_num "$total" && _fx_num "$restore" && [[ "$sent" =~ ^[0-9]+$ ]] ||
		{ echo "bad numbers in --json: $output" >&2; return 1; }
	[ "$sent" -gt 0 ] || { echo "bytes_sent is 0" >&2; return 1; }
	((${frozen%.*} > 0 && ${frozen%.*} <= ${total%.*})) ||
		{ echo "frozen_ms=$frozen is not in (0, total_ms=$total]" >&2; return 1; }
	((${restore%.*} <= ${total%.*})) || { echo "restore_ms=$restore > total_ms=$total" >&2; return 1; }
	if [ "$mode" = live ]; then
		[ "$iters" -ge 1 ] || { echo "live mode ran no pre-copy round: $output" >&2; return 1; }
		case "$tracking" in
		uffd-wp | soft-dirty | hash) ;;
		*) echo "--json .tracking is '$tracking', not a tracking method: $output" >&2; return 1 ;;
		esac
		fx_check_iters || return 1
	fi
	gap=$(check_ticks "$log") || return 1
	note "workload pause ${gap} ms; phaul: frozen ${frozen} ms, total ${total} ms, restore ${restore} ms, ${sent} bytes, $iters iterations${FX_NOTE_TRACKING:+, tracking $tracking}"
	# phaul must not report a freeze much shorter than the pause the
	# workload itself measured.
	if ((gap > ${frozen%.*} + 1000)); then
		echo "the workload paused ${gap} ms but phaul reports frozen_ms=${frozen}" >&2
		return 1
	fi
}

# fx_assert_outcome OK OUTCOME MODE: --json printed one object with .ok,
# .outcome and .mode as given (one jq run).
fx_assert_outcome() {
	local got
	got=$(jq -rs 'if length == 1 and (.[0] | type) == "object" and (.[0] | has("error"))
		then .[0] | "\(.ok) \(.outcome) \(.mode)" else "BAD" end' <<<"$output" 2>/dev/null)
	if [ "$got" != "$1 $2 $3" ]; then
		echo "--json should say ok=$1 outcome=$2 mode=$3 (got '${got:-nothing}'); stdout: $output" >&2
		return 1
	fi
}

# ---------------------------------------------------------------- leftovers

# "PID COMM" of the processes in HOST that a finished migration must not
# leave: any criu; any phaul but the daemon.
_fx_strays_in() {
	local host=$1
	procs_in "$host" | while read -r p comm; do
		case "$comm" in
		criu*) echo "$host: $p $comm" ;;
		phaul*) [ "$host" = dst ] && [ "$p" = "${DAEMON_PID:-}" ] || echo "$host: $p $comm" ;;
		esac
	done
}

_fx_strays() { _fx_strays_in src; _fx_strays_in dst; }
_fx_no_strays() { [ -z "$(_fx_strays)" ]; }

fx_assert_no_strays() {
	if ! wait_for "${1:-10}" _fx_no_strays; then
		echo "processes left behind by the migration:" >&2
		_fx_strays >&2
		# which CRIU: its parent and command line tell swrk, a child
		# of it and lazy-pages apart (RELIABILITY.md, BUG-13)
		local host pid proc
		_fx_strays | while read -r host pid _; do
			proc=$(_hosts_proc "${host%:}") || continue
			echo "${host%:} $pid: ppid $(awk '/^PPid:/ {print $2}' "$proc/$pid/status" 2>/dev/null)," \
				"$(tr '\0' ' ' <"$proc/$pid/cmdline" 2>/dev/null)" >&2
		done
		return 1
	fi
}

fx_assert_src_workdir_clean() {
	local left
	left=$(find "$SRC_WORKDIR" -mindepth 1 -maxdepth 2 2>/dev/null | head -n 10)
	if [ -n "$left" ]; then
		echo "left behind in the source's --workdir $SRC_WORKDIR:" >&2
		echo "$left" >&2
		return 1
	fi
}

fx_session_id() {
	local ids
	ids=$(ls "$WORKDIR/outcomes" 2>/dev/null | grep -v '\.tmp$')
	if [ "$(echo "$ids" | grep -c .)" != 1 ]; then
		echo "expected one outcome record in $WORKDIR/outcomes, found: '$ids'" >&2
		return 1
	fi
	echo "$ids"
}

# fx_assert_migrated: after a successful migration of $PIDS (tick log $LOG).
fx_assert_migrated() {
	local p
	for p in $PIDS; do
		assert_only_in dst "$p" || return 1
	done
	ticks_advance "$LOG" 30 10 || { echo "the ticks stopped after the migration" >&2; return 1; }
	for p in $PIDS; do
		assert_only_in dst "$p" || return 1
	done
	check_ticks "$LOG" >/dev/null || return 1
	assert_workdir_clean 10 || return 1
	fx_assert_src_workdir_clean || return 1
	fx_assert_no_strays 10
}

# ---------------------------------------------------------------- jobs

# fx_wait_migrate_job JOB SEC: wait (bounded) for a background migrate whose
# stderr goes to $SCRATCH/m.err.
fx_wait_migrate_job() {
	local job=$1 secs=$2 t0=$SECONDS
	wait_for "$secs" eval '! _running '"$job" || {
		echo "phaul migrate still runs ${secs}s later" >&2
		return 1
	}
	FX_WAITED=$((SECONDS - t0))
	status=0
	wait "$job" || status=$?
	stderr=$(cat "$SCRATCH/m.err")
	output=$(cat "$SCRATCH/m.out" 2>/dev/null)
	{
		echo "# background phaul migrate -> exit $status after ${FX_WAITED}s"
		echo "# stdout: $output"
		echo "# stderr: $stderr"
	} >>"$SCRATCH/migrate.log"
}

# fx_migrate_bg [VAR=VAL...] [--] ARGS...: phaul migrate in src in the
# background (stdout $SCRATCH/m.out, stderr $SCRATCH/m.err); sets MJOB.
fx_migrate_bg() {
	local envs=() mode=()
	while [[ "${1:-}" == *=* ]]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	if [ -n "${MIGRATE_MODE:-}" ] && [[ " $* " != *" --mode "* ]]; then
		mode=(--mode "$MIGRATE_MODE")
	fi
	in_src timeout -k 5 "$MIGRATE_TIMEOUT" env "${envs[@]}" "$PHAUL" migrate \
		--to "$DST_ADDR:$PHAUL_PORT" "${mode[@]}" --key "$KEY" --workdir "$SRC_WORKDIR" \
		--log-dir "$SRC_LOGDIR" "$@" \
		>"$SCRATCH/m.out" 2>"$SCRATCH/m.err" 3>&- 4>&- &
	MJOB=$!
}

# ---------------------------------------------------------------- proxy

# fx_proxy_start LISTEN_PORT TARGET_PORT ACTION AFTER: a TCP proxy in dst,
# on $DST_ADDR:LISTEN_PORT, to $DST_ADDR:TARGET_PORT.  In the first
# connection's source-to-destination direction, after AFTER bytes:
#   ACTION=flip       XOR the next byte with 0x01, forward everything else
#   ACTION=truncate   forward nothing more and close both connections
# It appends "FLIPPED at N" / "TRUNCATED at N" to $SCRATCH/proxy.log.
# Sets PROXY_PID (in dst).
fx_proxy_start() {
	local py
	py=$(python3 -c 'import sys; print(sys.executable)') ||
		{ echo "python3 is needed for the proxy" >&2; return 1; }
	cat >"$SCRATCH/proxy.py" <<'EOF'
import socket, sys, threading

addr, lport, tport, action, after, logf = sys.argv[1:7]
lport, tport, after = int(lport), int(tport), int(after)

def log(msg):
    with open(logf, "a") as f:
        f.write(msg + "\n")

def close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

def pump(a, b, fault):
    seen = 0
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            if fault and seen <= after < seen + len(data):
                k = after - seen
                if action == "flip":
                    data = data[:k] + bytes([data[k] ^ 0x01]) + data[k + 1:]
                    log("FLIPPED at %d" % after)
                else:
                    b.sendall(data[:k])
                    log("TRUNCATED at %d" % after)
                    close(a, b)
                    return
            seen += len(data)
            b.sendall(data)
        b.shutdown(socket.SHUT_WR)
    except OSError:
        close(a, b)

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, lport))
srv.listen(8)
log("LISTENING")
first = True
while True:
    c, _ = srv.accept()
    u = socket.create_connection((addr, tport))
    threading.Thread(target=pump, args=(c, u, first), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, False), daemon=True).start()
    first = False
EOF
	: >"$SCRATCH/proxy.log"
	PROXY_PID=$(start_in_dst -o "$SCRATCH/proxy.out" "$py" "$SCRATCH/proxy.py" \
		"$DST_ADDR" "$1" "$2" "$3" "$4" "$SCRATCH/proxy.log") || return 1
	wait_for 10 grep -q LISTENING "$SCRATCH/proxy.log" || {
		echo "the proxy did not start:" >&2
		cat "$SCRATCH/proxy.out" >&2
		return 1
	}
}
