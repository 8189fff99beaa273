# Real applications (Debian's packages) migrated between the two test
# hosts of lib/hosts, for tests/e2e/70-apps.bats.  Load after lib/hosts,
# lib/phaul and lib/fixtures.
#
# An application runs in src with its own config and its data in the
# test's scratch dir (storage both hosts see: --fs shared), listening on
# the wildcard address; a client in dst (tests/e2e/apps/load.py) writes
# during the migration and records each write the server acknowledged.
# A plain process cannot take its address along, so the migration closes
# its clients' connections on the destination (--tcp-close) and the
# client reconnects to the host where the server runs now.
#
#   apps_setup                hosts, key, work dirs, the daemon in dst
#   app_start NAME CMD...     start CMD in src with only fds 0-2 open,
#                             output in $SCRATCH/NAME.out; sets APP_PID
#   as_user USER              the words that run a command as USER
#                             (its groups): app_start N $(as_user U) CMD
#   app_tree                  the PIDs of APP_PID's tree in src (sets APP_PIDS)
#   app_wait_port PORT [SEC]  PORT of src answers a TCP connect from dst
#   load_start KIND PORT      the client in dst (load.py load); waits for
#                             its first 50 acknowledged writes
#                             (LOAD_RECONNECT=0: on one connection only)
#   load_stop                 stop it, wait for its DONE line
#   load_verify KIND PORT     every acknowledged write is on the server
#                             (now in dst), asked from src
#   app_migrate [ARGS...]     migrate APP_PID (--json --tcp-close, mode
#                             $MIGRATE_MODE, default live), fail unless
#                             it exited 0
#   app_assert_moved COMM...  every PID of the tree runs in dst only, no
#                             process named COMM is left in src
#   app_result APP            note frozen ms, the client's largest stall,
#                             bytes sent; the test passed (apps_teardown)
#   apps_teardown             the hosts' teardown, then the row (pass or fail)
#   require_foreign_uid_dump  skip, saying why, unless CRIU can dump a
#                             process of another uid on this machine
#
# APPS_RESULTS=FILE collects "app mode frozen_ms stall_ms bytes total_ms pass|fail"
# rows (make apps turns them into docs/APPS.md).

APPS_DIR=$REPO_ROOT/tests/e2e/apps
# the stock interpreter, not a python3 that PATH may find first
APPS_PY=/usr/bin/python3

apps_setup() {
	hosts_setup || return 1
	phaul_setup || return 1
	fx_setup
	# daemons that drop root must reach their files under the scratch dir
	local d=$SCRATCH
	while [ "$d" != / ]; do
		chmod o+x "$d" || return 1
		d=$(dirname "$d")
	done
	APP_ROW_APP="" APP_FROZEN=- APP_STALL=- APP_BYTES=- APP_TOTAL=-
	# a test file that needs more than the default policy defines apps_policy
	if declare -F apps_policy >/dev/null; then
		apps_policy || return 1
	fi
	serve_start
}

# The row goes out after the hosts' teardown: a leak it finds fails the test.
apps_teardown() {
	local rc=0 result=fail
	hosts_teardown || rc=$?
	[ -z "${APP_ROW_DONE:-}" ] || [ "$rc" != 0 ] || result=pass
	if [ -n "${APPS_RESULTS:-}" ] && [ -n "$APP_ROW_APP" ]; then
		echo "$APP_ROW_APP ${MIGRATE_MODE:-live} $APP_FROZEN $APP_STALL $APP_BYTES $APP_TOTAL" \
			"$result" >>"$APPS_RESULTS"
	fi
	return "$rc"
}

# app_start NAME CMD...: fds above 2 (bats' own) would point into the
# machine's mount namespace, which CRIU cannot dump from the host's.
app_start() {
	local name=$1
	shift
	APP_ROW_APP=${APP_ROW_APP:-$name}
	APP_PID=$(start_in_src -o "$SCRATCH/$name.out" bash -c \
		'for n in $(ls /proc/$$/fd); do ((n > 2)) && exec {n}>&-; done
		 exec "$@"' - "$@") || return 1
}

# $(as_user USER) CMD...: the words that run CMD as USER, with its groups
as_user() {
	echo setpriv --reuid="$1" --regid="$(id -g "$1")" --init-groups --reset-env --
}

_app_tree() {
	local p
	echo "$1"
	for p in $(children_in src "$1"); do
		_app_tree "$p"
	done
}

app_tree() {
	APP_PIDS=$(_app_tree "$APP_PID" | sort -n | tr '\n' ' ')
	APP_PIDS=${APP_PIDS% }
}

_app_port_open() { in_dst bash -c "exec 3<>/dev/tcp/$SRC_ADDR/$1" 2>/dev/null; }

app_wait_port() {
	wait_for "${2:-30}" _app_port_open "$1" || {
		echo "nothing answers on $SRC_ADDR:$1; the application's output:" >&2
		tail -n 20 "$SCRATCH"/*.out >&2
		return 1
	}
	pid_alive_in src "$APP_PID" || { echo "the application ($APP_PID) died" >&2; return 1; }
}

# The client's tick log: "N WALL_MS" per acknowledged write.
APP_ACKS_NAME=acks

load_start() {
	local kind=$1 port=$2
	ACKS=$SCRATCH/$APP_ACKS_NAME
	LOAD_KIND=$kind
	LOAD_PID=$(start_in_dst -o "$SCRATCH/load.out" env APP_MANIFEST="${APP_MANIFEST:-}" \
		LOAD_RECONNECT="${LOAD_RECONNECT:-}" "$APPS_PY" "$APPS_DIR/load.py" load "$kind" "$ACKS" "$SCRATCH/load.stop" \
		"$SRC_ADDR:$port" "$DST_ADDR:$port") || return 1
	wait_ticks "$ACKS" 50 30 || { cat "$SCRATCH/load.out" >&2; return 1; }
}

_load_done() { grep -q '^DONE ' "$ACKS"; }

load_stop() {
	# some writes after the migration first
	ticks_advance "$ACKS" 50 60 || return 1
	touch "$SCRATCH/load.stop"
	wait_for 30 _load_done || { cat "$SCRATCH/load.out" >&2; return 1; }
	check_ticks "$ACKS" >/dev/null || return 1
	APP_STALL=$(max_gap_at "$ACKS" | cut -d' ' -f1)
	LOAD_DONE=$(grep '^DONE ' "$ACKS")
}

# load_verify KIND PORT: asked from src, the server now in dst.
load_verify() {
	local kind=$1 port=$2 out
	out=$(in_src "$APPS_PY" "$APPS_DIR/load.py" verify "$kind" "$ACKS" "$DST_ADDR:$port" 2>&1)
	[[ "$out" == "VERIFY PASS"* ]] || { echo "acknowledged writes: $out" >&2; return 1; }
	note "$out (the client: $LOAD_DONE; acknowledged reconnects)"
}

app_migrate() {
	fx_migrate -- --json --tcp-close "$@" "$APP_PID"
	[ "$status" -eq 0 ] || {
		echo "phaul migrate exited $status: $stderr" >&2
		return 1
	}
	read -r APP_FROZEN APP_BYTES APP_TOTAL < <(jq -r '"\(.frozen_ms) \(.bytes_sent) \(.total_ms)"' \
		<<<"$output")
}

# app_assert_moved COMM...: the tree runs in dst only; no COMM left in src.
app_assert_moved() {
	local p c left
	for p in $APP_PIDS; do
		assert_only_in dst "$p" || return 1
	done
	for c in "$@"; do
		left=$(procs_in src "$c")
		[ -z "$left" ] || { echo "left in src: $left" >&2; return 1; }
	done
}

# app_result APP: the test's checks all held (its row says pass unless the
# teardown then fails).
app_result() {
	APP_ROW_APP=$1
	note "$1 ${MIGRATE_MODE:-live}: frozen ${APP_FROZEN} ms, client's largest stall" \
		"${APP_STALL} ms, sent ${APP_BYTES} bytes, total ${APP_TOTAL} ms"
	APP_ROW_DONE=1
}

# require_foreign_uid_dump: CRIU without CAP_SYS_RESOURCE cannot read the
# rlimits of another uid's process (prlimit: EPERM) unless patched to read
# them from /proc (scripts/criu-patches).  Tried for real: a `sleep` of
# user nobody migrated in stop mode.
require_foreign_uid_dump() {
	local pid
	pid=$(start_in_src -o "$SCRATCH/uidprobe.out" bash -c \
		'for n in $(ls /proc/$$/fd); do ((n > 2)) && exec {n}>&-; done
		 exec setpriv --reuid=nobody --regid=nogroup --clear-groups sleep 600') || return 1
	fx_migrate -- --mode stop "$pid"
	if [ "$status" -eq 0 ]; then
		in_dst kill -KILL "$pid"
		return 0
	fi
	in_src kill -KILL "$pid" 2>/dev/null || true
	if grep -q "rlimit" <<<"$stderr"; then
		APP_ROW_APP=""
		skip "CRIU ($(criu_path)) cannot dump another uid's process here (no CAP_SYS_RESOURCE and no /proc rlimit fallback): $stderr"
	fi
	echo "probe migration of a process of user nobody failed: $stderr" >&2
	return 1
}

criu_path() { echo "${PHAUL_CRIU:-$(command -v criu)}"; }

# ---------------------------------------------------------------- containers
# (with lib/ctnet: a container on phbr0 at $CT_ADDR)

: "${APPS_REDIS_KEYS:=1000000}"
CLI_ADDR=192.0.2.60

# third_host: a network namespace (held by a sleep of this test) whose
# veth is on src's phbr0, address $CLI_ADDR; in_cli runs a command there.
# CLI_BRIDGE, CLI_ADDR (ADDR/PREFIX) and CLI_PING (an address it must
# reach) choose another bridge and network.
third_host() {
	local addr=$CLI_ADDR
	[[ "$addr" == */* ]] || addr=$addr/24
	unshare --net sleep 3600 </dev/null >/dev/null 2>&1 3>&- 4>&- &
	CLI_NS=$!
	wait_for 5 eval '[ "$(readlink /proc/$CLI_NS/ns/net)" != "$(readlink /proc/$$/ns/net)" ]'
	CLI_IF=pc$BATS_TEST_NUMBER$((RANDOM % 1000))
	ip link add "$CLI_IF" type veth peer name eth0 netns "$CLI_NS" &&
		ip link set "$CLI_IF" netns "$SRC_PID1" &&
		in_src ip link set "$CLI_IF" master "${CLI_BRIDGE:-phbr0}" up &&
		in_cli ip addr add "$addr" dev eth0 &&
		in_cli ip link set eth0 up &&
		in_cli ip link set lo up || return 1
	wait_for 10 in_cli busybox ping -c1 -W1 "${CLI_PING:-$SRC_ADDR}"
}

in_cli() { nsenter -t "$CLI_NS" -n -- "$@"; }

third_host_stop() {
	[ -n "${CLI_NS:-}" ] || return 0
	[ -z "${CLI_LOAD:-}" ] || { kill "$CLI_LOAD" 2>/dev/null; wait "$CLI_LOAD" 2>/dev/null; }
	kill "$CLI_NS" 2>/dev/null
	wait "$CLI_NS" 2>/dev/null
	CLI_NS=""
}

# ct_redis_before: redis in the container at $CT_ADDR gets its keys
# (DIGEST), and a client on the third host starts writing on one
# connection, never another (LOAD_RECONNECT=0: any error is fatal).
ct_redis_before() {
	in_cli redis-cli -h "$CT_ADDR" DEBUG POPULATE "$APPS_REDIS_KEYS" key 64 >/dev/null
	[ "$(in_cli redis-cli -h "$CT_ADDR" DBSIZE)" = "$APPS_REDIS_KEYS" ] || return 1
	DIGEST=$(in_cli redis-cli -h "$CT_ADDR" DEBUG DIGEST)
	ACKS=$SCRATCH/acks
	LOAD_RECONNECT=0 in_cli "$APPS_PY" "$APPS_DIR/load.py" load redis "$ACKS" \
		"$SCRATCH/load.stop" "$CT_ADDR:6379" </dev/null >"$SCRATCH/load.out" 2>&1 3>&- 4>&- &
	CLI_LOAD=$!
	wait_ticks "$ACKS" 50 30
}

# ct_redis_after: the client wrote on, never reconnected, lost no reply;
# every acknowledged SET and the populated keys (DIGEST) are there.
ct_redis_after() {
	local done out after
	ticks_advance "$ACKS" 100 30 || return 1
	touch "$SCRATCH/load.stop"
	wait_for 30 grep -q '^DONE ' "$ACKS" || { cat "$SCRATCH/load.out" "$ACKS" | tail >&2; return 1; }
	wait "$CLI_LOAD" || { cat "$SCRATCH/load.out" >&2; return 1; }
	CLI_LOAD=""
	done=$(grep '^DONE ' "$ACKS")
	[ "${done##* }" = 0 ] || { echo "the client reconnected: $done" >&2; return 1; }
	check_ticks "$ACKS" >/dev/null || return 1
	APP_STALL=$(max_gap_at "$ACKS" | cut -d' ' -f1)
	out=$(in_cli "$APPS_PY" "$APPS_DIR/load.py" verify redis "$ACKS" "$CT_ADDR:6379")
	[[ "$out" == "VERIFY PASS"* ]] || { echo "$out" >&2; return 1; }
	in_cli redis-cli -h "$CT_ADDR" EVAL \
		"for _, k in ipairs(redis.call('KEYS', 'ack:*')) do redis.call('DEL', k) end" 0 >/dev/null
	after=$(in_cli redis-cli -h "$CT_ADDR" DEBUG DIGEST)
	[ "$after" = "$DIGEST" ] || { echo "DEBUG DIGEST $DIGEST before, $after after" >&2; return 1; }
	note "$out on one connection ($done); DEBUG DIGEST as before"
}

# redis_rootfs DIR: the machine's /usr is bound there by the container's
# config; the merged-/usr links, /etc's passwd, group, nsswitch.conf.
redis_rootfs() {
	local r=$1 d
	mkdir -p "$r"/{usr,etc,data,proc,sys,dev,tmp,run} "$SCRATCH/data"
	for d in bin sbin lib lib64; do
		ln -s "usr/$d" "$r/$d"
	done
	cp /etc/passwd /etc/group /etc/nsswitch.conf "$r/etc/"
}

# The container's command.
REDIS_CT_ARGS=(redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save ""
	--appendonly no --dir /data --enable-debug-command yes --daemonize no)
