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

# nginx_site DIR SERVED USER: APPS_NGINX_FILES files of 64 KiB and one of
# 8 MiB in DIR/www, their "NAME SHA256" list in DIR/manifest, and
# DIR/nginx.conf: master, 2 workers (as USER, default root), port 8080,
# its paths under SERVED (where nginx sees DIR: DIR itself for a process
# tree, a bind in a container); keep-alive connections last.
: "${APPS_NGINX_FILES:=200}"

nginx_site() {
	local dir=$1 srv=$2 user=${3:-root} i
	mkdir -p "$dir/www" "$dir/tmp"
	for ((i = 0; i < APPS_NGINX_FILES; i++)); do
		head -c 65536 /dev/urandom >"$dir/www/f$i"
	done
	head -c $((8 << 20)) /dev/urandom >"$dir/www/big"
	(cd "$dir/www" && sha256sum -- * | awk '{ print $2, $1 }') >"$dir/manifest"
	cat >"$dir/nginx.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
user $user;
pid $srv/nginx.pid;
error_log $srv/error.log;
events { worker_connections 256; }
http {
	access_log off;
	keepalive_requests 1000000;
	keepalive_timeout 600s;
	client_body_temp_path $srv/tmp;
	proxy_temp_path $srv/tmp;
	fastcgi_temp_path $srv/tmp;
	uwsgi_temp_path $srv/tmp;
	scgi_temp_path $srv/tmp;
	server {
		listen 8080 reuseport;
		root $srv/www;
	}
}
CONF
	[ "$user" = root ] || chown -R "$user" "$dir/tmp"
}

# nginx_files_intact HOST ADDR DIR: every file of DIR/manifest, fetched
# from HOST (in_HOST), as listed; prints how many
nginx_files_intact() {
	local host=$1 addr=$2 f sum out n=0
	while read -r f sum; do
		out=$(in_"$host" curl -sf "http://$addr:8080/$f" | sha256sum | cut -d' ' -f1)
		[ "$out" = "$sum" ] || { echo "$f served wrong by $addr" >&2; return 1; }
		n=$((n + 1))
	done <"$3/manifest"
	echo "$n"
}
