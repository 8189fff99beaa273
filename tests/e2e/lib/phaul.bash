# Helpers for end-to-end tests of the phaul CLI between the two test hosts
# of lib/hosts.bash.  Load after it:
#
#   load lib/hosts
#   load lib/phaul
#   setup()    { hosts_setup; phaul_setup; }
#   teardown() { hosts_teardown; }
#
# The contract tested (see the test files):
#   phaul keygen FILE
#   phaul serve --listen 192.0.2.2:PORT --key FILE --workdir DIR [-v]   (in dst)
#   phaul migrate --to 192.0.2.2:PORT --key FILE [--mode M] [--json] PID (in src)
#   PHAUL_FAULT="point[:fail|delay=MS|kill]" in either's environment.
#
# Functions:
#   phaul_setup               fail clearly if $PHAUL is missing; make a key
#                             ($KEY) and the daemon's work dir ($WORKDIR);
#                             serve and migrate keep a failed CRIU's log in
#                             --log-dir $DST_LOGDIR / $SRC_LOGDIR
#   policy_allow LINE...      add LINEs to the daemon's --policy file
#                             ($SCRATCH/policy, see docs/SECURITY.md): each
#                             test file allows exactly what it needs beyond
#                             the defaults (a mode, roots under $SCRATCH)
#   serve_start [VAR=VAL...]  start the daemon in dst with those environment
#                             variables (and --policy $SCRATCH/policy when
#                             there is one), wait until it listens; sets
#                             DAEMON_PID (in dst); its stderr: $SERVE_LOG
#   serve_restart_if_dead     serve_start again unless the daemon still runs
#   serve_stop                SIGTERM the daemon, wait until it is gone
#   migrate [VAR=VAL...] [--] [ARGS...] PID
#                             "run --separate-stderr" of phaul migrate in src
#                             (bounded by $MIGRATE_TIMEOUT s): $status,
#                             $output (stdout), $stderr
#   json FIELD                a field of the JSON in $output (jq -r)
#   assert_failed_with REGEX  $status != 0 and stderr is one line matching
#                             REGEX (case-insensitive)
#   assert_only_in HOST PID...
#                             each PID runs in HOST and not in the other one
#   assert_workdir_clean [SEC]
#                             $WORKDIR holds nothing but outcome records
#                             (waits up to SEC s, default 10)
#   assert_rolled_back LOG PID...
#                             after a failed migration: the tree runs only in
#                             src, its ticks go on with none lost or repeated,
#                             no copy appears in dst, the work dir is empty
#   require_fault POINT       fail unless `phaul faults` lists POINT
#   assert_fault_hit POINT    the daemon's log names POINT (the fault fired)
#   assert_job_running PID WHAT
#                             a background migrate (stderr in $SCRATCH/m.err)
#                             still runs

bats_require_minimum_version 1.5.0	# run --separate-stderr

PHAUL=${PHAUL:-$REPO_ROOT/build/phaul}
PHAUL_PORT=${PHAUL_PORT:-7411}
MIGRATE_TIMEOUT=${MIGRATE_TIMEOUT:-120}

phaul_setup() {
	if [ ! -x "$PHAUL" ]; then
		echo "phaul binary '$PHAUL' does not exist or is not executable: run 'make' (or set PHAUL=)" >&2
		return 1
	fi
	if [ ! -x "$WORKLOADS/counter" ]; then
		echo "workloads missing in $WORKLOADS: run 'make workloads'" >&2
		return 1
	fi
	KEY=$SCRATCH/key
	WORKDIR=$SCRATCH/work
	SERVE_LOG=$SCRATCH/serve.log
	# where each side keeps the log of a CRIU that failed
	SRC_LOGDIR=$SCRATCH/src-logs
	DST_LOGDIR=$SCRATCH/dst-logs
	mkdir -p "$WORKDIR"
	"$PHAUL" keygen "$KEY" >"$SCRATCH/keygen.out" 2>&1 || {
		echo "phaul keygen $KEY failed:" >&2
		cat "$SCRATCH/keygen.out" >&2
		return 1
	}
}

policy_allow() {
	printf '%s\n' "$@" >>"$SCRATCH/policy" && chmod 0600 "$SCRATCH/policy"
}

_serve_listening() {
	in_dst ss -Hltn "sport = :$PHAUL_PORT" | grep -q "$DST_ADDR:$PHAUL_PORT"
}

serve_start() {
	local envs=() policy=()
	while [[ "${1:-}" == *=* ]]; do
		envs+=("$1")
		shift
	done
	[ ! -f "$SCRATCH/policy" ] || policy=(--policy "$SCRATCH/policy")
	DAEMON_PID=$(start_in_dst -o "$SERVE_LOG" env "${envs[@]}" "$PHAUL" serve \
		--listen "$DST_ADDR:$PHAUL_PORT" --key "$KEY" --workdir "$WORKDIR" \
		--log-dir "$DST_LOGDIR" -v "${policy[@]}" "$@") ||
		return 1
	if ! wait_for 10 _serve_listening; then
		echo "phaul serve did not listen on $DST_ADDR:$PHAUL_PORT within 10 s; its log:" >&2
		cat "$SERVE_LOG" >&2
		return 1
	fi
	pid_alive_in dst "$DAEMON_PID" || {
		echo "phaul serve ($DAEMON_PID) is not running" >&2
		return 1
	}
}

# serve_restart_if_dead [VAR=VAL...]: start a daemon again if the one
# started last is gone (the listener, not only a session, was killed).
serve_restart_if_dead() {
	pid_alive_in dst "$DAEMON_PID" || serve_start "$@"
}

serve_stop() {
	in_dst kill -TERM "$DAEMON_PID" || return 1
	wait_for 10 eval '! pid_alive_in dst "$DAEMON_PID"' ||
		{ echo "phaul serve did not exit within 10 s of SIGTERM" >&2; return 1; }
}

# migrate [VAR=VAL...] [--] ARGS... : sets status, output, stderr.
migrate() {
	local envs=()
	while [[ "${1:-}" == *=* ]]; do
		envs+=("$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	# a test file sets MIGRATE_MODE to run its fixtures in that mode
	local mode=()
	if [ -n "${MIGRATE_MODE:-}" ] && [[ " $* " != *" --mode "* ]]; then
		mode=(--mode "$MIGRATE_MODE")
	fi
	run --separate-stderr in_src timeout -k 5 "$MIGRATE_TIMEOUT" env "${envs[@]}" \
		"$PHAUL" migrate --to "$DST_ADDR:$PHAUL_PORT" --log-dir "$SRC_LOGDIR" "${mode[@]}" "$@"
	{
		echo "# phaul migrate $* -> exit $status"
		echo "# stdout: $output"
		echo "# stderr: ${stderr:-}"
	} >>"$SCRATCH/migrate.log"
	if [ "$status" = 124 ]; then
		echo "phaul migrate did not finish within ${MIGRATE_TIMEOUT}s (killed by timeout)" >&2
	fi
	return 0
}

json() {
	jq -r "$1" <<<"$output" 2>/dev/null || {
		echo "json: cannot read '$1' from phaul's stdout: $output" >&2
		return 1
	}
}

# The stdout of --json must be exactly one JSON object.
assert_json_object() {
	if ! jq -se 'length == 1 and (.[0] | type == "object")' <<<"$output" >/dev/null 2>&1; then
		echo "--json did not print one JSON object on stdout; stdout was: $output" >&2
		return 1
	fi
	local f
	for f in ok mode error iterations frozen_ms total_ms bytes_sent restore_ms; do
		jq -e "has(\"$f\")" <<<"$output" >/dev/null || {
			echo "--json output lacks \"$f\": $output" >&2
			return 1
		}
	done
}

assert_failed_with() {
	local re=$1 lines
	if [ "$status" -eq 0 ]; then
		echo "phaul migrate exited 0 but should have failed; stderr: ${stderr:-}" >&2
		return 1
	fi
	lines=$(printf '%s' "${stderr:-}" | grep -c .)
	if [ "$lines" != 1 ]; then
		echo "phaul migrate failed (exit $status) but stderr has $lines lines, not one:" >&2
		echo "${stderr:-}" >&2
		return 1
	fi
	if ! grep -qiE "$re" <<<"$stderr"; then
		echo "phaul migrate's error does not say what failed (expected /$re/): $stderr" >&2
		return 1
	fi
}

assert_only_in() {
	local host=$1 other p
	shift
	[ "$host" = src ] && other=dst || other=src
	for p in "$@"; do
		if ! pid_alive_in "$host" "$p"; then
			echo "PID $p does not run in $host" >&2
			return 1
		fi
		if pid_alive_in "$other" "$p"; then
			echo "PID $p runs in $other as well as in $host" >&2
			return 1
		fi
	done
}

# What a finished session may leave in the work dir: the daemon's outcome
# records, WORKDIR/outcomes/ID (a few bytes each: "committed PID START",
# "filled PID START", "aborted 0 0", ...; see src/proto/PROTOCOL.txt; they
# let a source whose link broke after Commit or during the fill learn what
# happened, and expire after 15 minutes).
# WORKDIR_KEEP_OUTCOMES= (empty) demands a completely empty work dir.
WORKDIR_KEEP_OUTCOMES=${WORKDIR_KEEP_OUTCOMES-1}

_workdir_leftovers() {
	if [ -n "$WORKDIR_KEEP_OUTCOMES" ]; then
		find "$WORKDIR" -mindepth 1 ! -path "$WORKDIR/outcomes" \
			! \( -path "$WORKDIR/outcomes/*" -type f -size -4k \) -print
	else
		find "$WORKDIR" -mindepth 1 -print
	fi
}

_workdir_empty() { [ -z "$(_workdir_leftovers | head -n1)" ]; }

assert_workdir_clean() {
	if ! wait_for "${1:-10}" _workdir_empty; then
		echo "left behind in the daemon's work dir $WORKDIR:" >&2
		_workdir_leftovers | head -20 >&2
		return 1
	fi
}

# After a rollback no outcome record may claim the workload resumed on dst.
assert_no_commit_recorded() {
	local f
	for f in "$WORKDIR"/outcomes/*; do
		[ -f "$f" ] || continue
		if grep -qE '^(commit|filled)' "$f"; then
			echo "the daemon recorded a commit ($(cat "$f")) for a migration that failed: $f" >&2
			return 1
		fi
	done
}

# The workload (tick log LOG, tree PIDs) must have stayed on src.
assert_rolled_back() {
	local log=$1 p
	shift
	for p in "$@"; do
		pid_alive_in src "$p" || {
			echo "after the failed migration, PID $p no longer runs in src" >&2
			return 1
		}
	done
	# no copy in dst, now or a little later
	for p in "$@"; do
		wait_for 5 eval '! pid_alive_in dst '"$p" || {
			echo "after the failed migration, PID $p runs in dst too" >&2
			return 1
		}
	done
	ticks_advance "$log" 30 10 || {
		echo "after the failed migration, the workload's ticks stopped" >&2
		return 1
	}
	for p in "$@"; do
		assert_only_in src "$p" || return 1
	done
	check_ticks "$log" >/dev/null || return 1
	assert_workdir_clean 10 || return 1
	assert_no_commit_recorded
}

# assert_fault_hit POINT: the daemon's log names POINT, i.e. the injected
# fault really fired (a migration failing earlier for another reason must
# not pass a fault test).
assert_fault_hit() {
	if ! wait_for 5 grep -qF "$1" "$SERVE_LOG"; then
		echo "the daemon's log never mentions fault point $1: the migration failed before reaching it?" >&2
		tail -n 20 "$SERVE_LOG" >&2
		return 1
	fi
}

# assert_job_running PID WHAT: the background migrate is still running.
assert_job_running() {
	if ! _running "$1"; then
		echo "phaul migrate ended before $2:" >&2
		cat "$SCRATCH/m.err" >&2
		return 1
	fi
}

require_fault() {
	if ! "$PHAUL" faults 2>/dev/null | grep -qx "$1"; then
		echo "'phaul faults' does not list $1: built without fault injection (FAULTS=0)?" >&2
		return 1
	fi
}

# Note the pause the workload saw and phaul's report in the bats output.
note() { echo "# $*" >&3; }
