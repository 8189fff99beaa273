#!/usr/bin/env bats
# Real applications from Debian, each with a real load, migrated from src
# to dst and checked there by its own means: no acknowledged write lost,
# its data identical, it answers new requests on dst and runs there only.
# See lib/apps.bash for how they run and how the client reconnects.
#
#   bats tests/e2e/70-apps.bats                      (live mode)
#   MIGRATE_MODE=stop bats tests/e2e/70-apps.bats    (stop, lazy, hybrid)
#   make apps                                        (every mode, docs/APPS.md)

# the JVM's and PostgreSQL's start and the all-modes run on a busy machine
: "${BATS_TEST_TIMEOUT:=300}"

load lib/hosts
load lib/phaul
load lib/fixtures
load lib/apps

: "${APPS_REDIS_KEYS:=1000000}"

setup() { apps_setup; }
teardown() { apps_teardown; }

# ---------------------------------------------------------------- redis

redis_cli() { in_"$1" redis-cli -h "$2" -p 6379 "${@:3}"; }

t_redis() {
	local user=$1 digest after
	APP_ROW_APP=redis${user:+-$user}
	mkdir -p "$SCRATCH/redis"
	[ -z "$user" ] || chown "$user" "$SCRATCH/redis"
	app_start redis ${user:+$(as_user "$user")} redis-server --port 6379 --bind 0.0.0.0 \
		--protected-mode no --save '' --appendonly no --dir "$SCRATCH/redis" \
		--enable-debug-command yes --daemonize no
	app_wait_port 6379
	redis_cli dst "$SRC_ADDR" DEBUG POPULATE "$APPS_REDIS_KEYS" key 64 >/dev/null
	[ "$(redis_cli dst "$SRC_ADDR" DBSIZE)" = "$APPS_REDIS_KEYS" ]
	digest=$(redis_cli dst "$SRC_ADDR" DEBUG DIGEST)
	load_start redis 6379
	app_tree
	app_migrate
	app_assert_moved redis-server
	load_stop
	load_verify redis 6379
	# the populated keys are as they were: drop the client's, compare digests
	redis_cli src "$DST_ADDR" EVAL \
		"for _, k in ipairs(redis.call('KEYS', 'ack:*')) do redis.call('DEL', k) end" 0 >/dev/null
	after=$(redis_cli src "$DST_ADDR" DEBUG DIGEST)
	[ "$after" = "$digest" ] || { echo "DEBUG DIGEST $digest before, $after after" >&2; return 1; }
	[ "$(redis_cli src "$DST_ADDR" DBSIZE)" = "$APPS_REDIS_KEYS" ]
	app_assert_moved redis-server
	app_result "$APP_ROW_APP"
}

@test "redis: ${APPS_REDIS_KEYS} keys and a writing client; DEBUG DIGEST equal, every acknowledged SET on dst" {
	t_redis ""
}

# ---------------------------------------------------------------- memcached

: "${APPS_MC_ITEMS:=65536}"	# of 4 KiB: 256 MiB

t_memcached() {
	local user=$1 out
	APP_ROW_APP=memcached${user:+-$user}
	app_start memcached memcached -u "${user:-root}" -l 0.0.0.0 -p 11211 -m 1024 -t 4 -c 1024
	app_wait_port 11211
	out=$(in_dst "$APPS_PY" "$APPS_DIR/load.py" mcfill "$APPS_MC_ITEMS" 4096 "$SRC_ADDR:11211") ||
		{ echo "filling memcached: $out" >&2; return 1; }
	out=$(in_dst "$APPS_PY" "$APPS_DIR/load.py" mccheck "$APPS_MC_ITEMS" 4096 "$SRC_ADDR:11211") ||
		{ echo "before the migration: $out" >&2; return 1; }
	load_start memcached 11211
	app_tree
	app_migrate
	app_assert_moved memcached
	load_stop
	load_verify memcached 11211
	out=$(in_src "$APPS_PY" "$APPS_DIR/load.py" mccheck "$APPS_MC_ITEMS" 4096 "$DST_ADDR:11211") ||
		{ echo "after the migration: $out" >&2; return 1; }
	note "$out"
	app_assert_moved memcached
	app_result "$APP_ROW_APP"
}

@test "memcached: $((APPS_MC_ITEMS * 4 / 1024)) MiB of items and a writing client; every item and acknowledged set on dst" {
	t_memcached ""
}

# ---------------------------------------------------------------- nginx

t_nginx() {
	local user=$1 dir=$SCRATCH/nginx out n
	APP_ROW_APP=nginx${user:+-$user}
	nginx_site "$dir" "$dir" "$user"
	app_start nginx nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
	app_wait_port 8080
	wait_for 10 eval '[ "$(children_in src "$APP_PID" | wc -l)" = 2 ]' ||
		{ echo "nginx has no 2 workers" >&2; return 1; }
	# every file, from the other host
	out=$(in_dst curl -sf "http://$SRC_ADDR:8080/big" | sha256sum | cut -d' ' -f1)
	grep -q "^big $out\$" "$dir/manifest" || { echo "big served wrong before" >&2; return 1; }
	APP_MANIFEST=$dir/manifest load_start nginx 8080
	app_tree
	app_migrate
	app_assert_moved nginx
	load_stop
	# after: from the other host (now src), every file intact
	n=$(nginx_files_intact src "$DST_ADDR" "$dir")
	note "$n files served intact from dst; the client: $LOAD_DONE"
	[ "$(in_dst cat "$dir/nginx.pid")" = "$APP_PID" ]
	app_assert_moved nginx
	app_result "$APP_ROW_APP"
}

@test "nginx: master, 2 workers and a listening socket; a client fetching files across, every file intact from dst" {
	t_nginx ""
}

# ---------------------------------------------------------------- python

t_python() {
	local out
	APP_ROW_APP=python
	app_start python "$APPS_PY" "$APPS_DIR/kvserver.py" 8000 64
	app_wait_port 8000
	load_start http 8000
	app_tree
	[ "$(ls "/proc/$SRC_PID1/root/proc/$APP_PID/task" | wc -l)" -ge 3 ] ||
		{ echo "the Python server has fewer than 3 threads" >&2; return 1; }
	app_migrate
	app_assert_moved python3
	load_stop
	load_verify http 8000
	out=$(in_src curl -s "http://$DST_ADDR:8000/check")
	[[ "$out" == PASS* ]] || { echo "the server's own check: $out" >&2; return 1; }
	note "kvserver: $out"
	app_assert_moved python3
	app_result python
}

@test "python: the stock interpreter, threads, an HTTP server; every acknowledged PUT and its own data check on dst" {
	t_python
}

# ---------------------------------------------------------------- JVM

: "${APPS_JVM_MIB:=640}"	# live data in a 1 GiB heap

t_jvm() {
	local log=$SCRATCH/jvm.log java n
	APP_ROW_APP=jvm
	java=$(readlink -f /usr/lib/jvm/java-17-openjdk-*/bin/java | head -n1)
	[ -x "$java" ] || { echo "OpenJDK 17 is not installed" >&2; return 1; }
	mkdir -p "$SCRATCH/classes"
	javac -d "$SCRATCH/classes" "$APPS_DIR/HeapCheck.java"
	app_start jvm "$java" -Xms1g -Xmx1g -XX:+AlwaysPreTouch -cp "$SCRATCH/classes" HeapCheck \
		"$log" "$APPS_JVM_MIB" 4
	wait_for 180 grep -q READY "$log"
	ticks_advance "$log" 20 10
	app_tree
	[ "$(ls "/proc/$SRC_PID1/root/proc/$APP_PID/task" | wc -l)" -ge 8 ]
	app_migrate
	app_assert_moved java
	ticks_advance "$log" 20 10
	n=$(grep -c '^VERIFY' "$log" || true)
	touch "$log.verify"
	wait_for 60 eval '[ "$(grep -c "^VERIFY" "$log")" -gt '"$n"' ]'
	grep -q "^VERIFY PASS $APPS_JVM_MIB\$" "$log" || { grep VERIFY "$log" >&2; return 1; }
	check_ticks "$log" >/dev/null
	APP_STALL=$(max_gap_at "$log" | cut -d' ' -f1)
	note "jvm: $(grep '^VERIFY' "$log" | tail -n1) MiB checked on dst"
	app_assert_moved java
	app_result jvm
}

@test "jvm: OpenJDK 17, 4 threads rewriting and checking a 1 GiB heap; its full check passes on dst" {
	t_jvm
}

# ---------------------------------------------------------------- PostgreSQL

: "${APPS_PG_ROWS:=2000000}"
PG_BIN=/usr/lib/postgresql/15/bin

psql_at() { in_"$1" psql -h "$2" -p 5432 -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$3"; }

PG_SUM="SELECT count(*) || ' ' || sum(hashtext(id::text || v)::bigint) FROM big"

t_postgres() {
	local sum after
	APP_ROW_APP=postgresql
	require_foreign_uid_dump
	# its own IPC namespace (systemd: PrivateIPC=yes): CRIU cannot dump the
	# SysV segment every postmaster makes in a namespace it does not dump
	pg_start unshare --ipc
	# its processes before any client's backend (those end with their clients)
	app_tree
	[ "$(echo "$APP_PIDS" | wc -w)" -ge 5 ] ||
		{ echo "postgres has no workers: $APP_PIDS" >&2; return 1; }
	psql_at dst "$SRC_ADDR" "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v
		FROM generate_series(1, $APPS_PG_ROWS) g; CREATE TABLE acks (n int PRIMARY KEY)"
	sum=$(psql_at dst "$SRC_ADDR" "$PG_SUM")
	[ "${sum%% *}" = "$APPS_PG_ROWS" ]
	load_start pg 5432
	app_migrate
	app_assert_moved postgres
	load_stop
	load_verify pg 5432
	after=$(psql_at src "$DST_ADDR" "$PG_SUM")
	[ "$after" = "$sum" ] || { echo "checksum '$sum' before, '$after' after" >&2; return 1; }
	note "big: $after (count, checksum) on dst as before; $(echo "$APP_PIDS" | wc -w) processes"
	# it still commits, and its processes are its own user's
	psql_at src "$DST_ADDR" "INSERT INTO acks VALUES (-1)"
	[ "$(in_dst stat -c %U "/proc/$APP_PID")" = postgres ]
	app_assert_moved postgres
	app_result postgresql
}

# pg_start [PRE...]: initdb and the postmaster in src, as postgres, run by
# the words PRE if any; sets APP_PID.
pg_start() {
	local dir=$SCRATCH/pg
	mkdir -p "$dir/sock"
	chown -R postgres: "$dir"
	in_src $(as_user postgres) "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
		>"$SCRATCH/initdb.out" 2>&1 || { cat "$SCRATCH/initdb.out" >&2; return 1; }
	echo "host all all 192.0.2.0/24 trust" >>"$dir/data/pg_hba.conf"
	app_start postgres "$@" $(as_user postgres) "$PG_BIN/postgres" -D "$dir/data" \
		-c listen_addresses='*' -c port=5432 -c unix_socket_directories="$dir/sock" \
		-c logging_collector=off
	app_wait_port 5432
}

@test "postgresql in the host's IPC namespace: refused at the preflight, naming its SysV segment; it runs on" {
	APP_ROW_APP=postgresql-hostipc
	# refused before CRIU runs: any CRIU will do
	pg_start
	app_tree
	psql_at dst "$SRC_ADDR" "CREATE TABLE t AS SELECT 1 AS one"
	fx_migrate -- --json --tcp-close "$APP_PID"
	assert_failed_with "process $APP_PID \\(postgres\\) maps SysV shared memory \\(key 0x[0-9a-f]{8}\\) of the host's IPC namespace"
	[ "$(jq -r '"\(.iterations) \(.frozen_ms) \(.outcome)"' <<<"$output")" = "0 0 rolled-back" ] ||
		{ echo "not refused before the pre-copy: $output" >&2; return 1; }
	note "phaul: $stderr"
	local p
	for p in $APP_PIDS; do
		assert_only_in src "$p"
	done
	[ "$(psql_at dst "$SRC_ADDR" "SELECT one FROM t")" = 1 ]
	assert_workdir_clean 10
	fx_assert_src_workdir_clean
	APP_ROW_APP=""
}

@test "postgresql: 15, its own user, ${APPS_PG_ROWS} rows and a client inserting; checksum equal, every committed row on dst" {
	t_postgres
}

# ---------------------------------------------------------------- own users

@test "redis as user redis: ${APPS_REDIS_KEYS} keys; DEBUG DIGEST equal, every acknowledged SET on dst" {
	require_foreign_uid_dump
	t_redis redis
}

@test "memcached as user memcache: $((APPS_MC_ITEMS * 4 / 1024)) MiB of items; every item and acknowledged set on dst" {
	require_foreign_uid_dump
	t_memcached memcache
}

@test "nginx, workers as www-data: every file intact from dst" {
	require_foreign_uid_dump
	t_nginx www-data
}

# ---------------------------------------------------------------- refusals

@test "redis with a connected client, neither --tcp-close nor --tcp-established: one line naming the socket; it runs on, its client unaware" {
	local before
	mkdir -p "$SCRATCH/redis"
	app_start redis redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save '' \
		--appendonly no --dir "$SCRATCH/redis" --daemonize no
	app_wait_port 6379
	LOAD_RECONNECT=0 load_start redis 6379
	fx_migrate -- --json "$APP_PID"
	assert_failed_with "process $APP_PID \\(redis-server\\): .*Connected TCP socket"
	[ "$(jq -r .outcome <<<"$output")" = rolled-back ]
	note "phaul: $stderr"
	assert_only_in src "$APP_PID"
	# the client's one connection goes on: no error, no reconnect
	before=$(last_tick "$ACKS")
	load_stop
	[ "$(last_tick "$ACKS")" -gt "$before" ]
	[ "${LOAD_DONE##* }" = 0 ] || { echo "the client reconnected: $LOAD_DONE" >&2; return 1; }
	assert_workdir_clean 10
	fx_assert_src_workdir_clean
}
