# Real applications in containers whose clients stay connected, for
# tests/e2e/71-apps-oci.bats (runc, crun) and 72-apps-lxc.bats (LXC).
# Load after lib/hosts, lib/phaul, lib/fixtures, lib/ctnet and lib/apps.
#
# The container (own network namespace on the bridge phbr0 that joins both
# hosts, lib/ctnet, at $CT_ADDR) has a rootfs of its own holding the
# machine's /usr (a read-only bind made by the container's config), the
# merged-/usr links and /etc's passwd, group and nsswitch.conf, and /data,
# a bind of $SCRATCH/data where the application keeps its files.  A
# client on a third host (a network namespace whose veth is on src's
# phbr0, $CLI_ADDR) holds one TCP connection across the migration
# (--tcp-established): LOAD_RECONNECT=0, any error or reconnect fails.
#
#   third_host / in_cli / third_host_stop
#                        the third host, a command run there, its end
#   ct_rootfs DIR        the rootfs described above (t_ct: in $CT_ROOTFS)
#   t_ct APP             the whole test of APP: its data, the container
#                        (the test file's ct_start), the client and the
#                        checks before, the migration (ct_migrate, with
#                        MIGRATE_MODE), the container on dst only
#                        (ct_moved), the checks after, ct_stop; its row
#
# Each APP (redis, nginx, python, memcached, postgresql, jvm) defines
#   ctapp_APP_prep      its files under $SCRATCH/data; CT_ARGS (the
#                       container's command), CT_PORT (empty: none),
#                       CT_USER (empty: root), CT_COMMS (its processes'
#                       names), CT_NPROCS (how many run at least)
#   ctapp_APP_before    once it answers: its data, its client started
#   ctapp_APP_after     the client's writes and the data checked on dst
#
# The test file defines ct_start (the container started in src, its init
# in CT_INIT), ct_migrate (ct_migrate_with the driver's options), ct_moved (the runtime sees it on dst
# only), ct_stop (stops it on dst) and ct_log (its runtime's log, shown
# when it does not start); it sets CT_RUNTIME and CT_ROOTFS.

: "${APPS_REDIS_KEYS:=1000000}"
: "${APPS_CT_PG_ROWS:=200000}"
: "${APPS_MC_ITEMS:=65536}" # of 4 KiB: 256 MiB
: "${APPS_JVM_MIB:=640}"    # live data in a 1 GiB heap
CLI_ADDR=192.0.2.60
PG_BIN=/usr/lib/postgresql/15/bin

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

ct_rootfs() {
	local r=$1 d
	mkdir -p "$r"/{usr,etc,data,proc,sys,dev,tmp,run} "$SCRATCH/data"
	for d in bin sbin lib lib64; do
		ln -s "usr/$d" "$r/$d"
	done
	cp /etc/passwd /etc/group /etc/nsswitch.conf "$r/etc/"
}

# ct_load_start KIND PORT: load.py's client on the third host, one
# connection to $CT_ADDR:PORT; waits for its first 50 acknowledged writes
ct_load_start() {
	ACKS=$SCRATCH/acks
	LOAD_RECONNECT=0 APP_MANIFEST="${APP_MANIFEST:-}" in_cli "$APPS_PY" "$APPS_DIR/load.py" \
		load "$1" "$ACKS" "$SCRATCH/load.stop" "$CT_ADDR:$2" \
		</dev/null >"$SCRATCH/load.out" 2>&1 3>&- 4>&- &
	CLI_LOAD=$!
	wait_ticks "$ACKS" 50 30 || { cat "$SCRATCH/load.out" >&2; return 1; }
}

# ct_load_stop KIND PORT: 100 more writes on dst, then the client stops;
# it never reconnected, lost no reply, every acknowledged write is there
ct_load_stop() {
	local fin out
	ticks_advance "$ACKS" 100 60 || { tail -n 3 "$ACKS" "$SCRATCH/load.out" >&2; return 1; }
	touch "$SCRATCH/load.stop"
	wait_for 30 grep -q '^DONE ' "$ACKS" || { cat "$SCRATCH/load.out" "$ACKS" | tail >&2; return 1; }
	wait "$CLI_LOAD" || { cat "$SCRATCH/load.out" >&2; return 1; }
	CLI_LOAD=""
	fin=$(grep '^DONE ' "$ACKS")
	[ "${fin##* }" = 0 ] || { echo "the client reconnected: $fin" >&2; return 1; }
	check_ticks "$ACKS" >/dev/null || return 1
	APP_STALL=$(max_gap_at "$ACKS" | cut -d' ' -f1)
	out=$(APP_MANIFEST="${APP_MANIFEST:-}" in_cli "$APPS_PY" "$APPS_DIR/load.py" verify "$1" \
		"$ACKS" "$CT_ADDR:$2")
	[[ "$out" == "VERIFY PASS"* ]] || { echo "$out" >&2; return 1; }
	note "$out on one connection ($fin)"
}

# ct_migrate_with ARGS...: the container (ARGS: the driver's options) to
# dst, its client's connection with it; its numbers for the row
ct_migrate_with() {
	fx_migrate -- "$@" --tcp-established --json
	[ "$status" -eq 0 ] || { echo "migrate failed ($status): $stderr" >&2; return 1; }
	read -r APP_FROZEN APP_BYTES APP_TOTAL < <(jq -r '"\(.frozen_ms) \(.bytes_sent) \(.total_ms)"' \
		<<<"$output")
}

# heavy WHY: skip unless APPS_CT_HEAVY=1 (the long or big ones)
heavy() {
	[ "${APPS_CT_HEAVY:-0}" = 1 ] || skip "APPS_CT_HEAVY=1 runs it ($1)"
}

_ct_port_open() { in_cli bash -c "exec 3<>/dev/tcp/$CT_ADDR/$CT_PORT" 2>/dev/null; }

# ct_procs HOST: the PIDs of the application's processes (CT_COMMS) in HOST
ct_procs() {
	local c
	for c in $CT_COMMS; do
		procs_in "$1" "$c" | cut -d' ' -f1
	done | sort -n | tr '\n' ' '
}

t_ct() {
	local app=$1 n
	APP_ROW_APP=$app-$CT_RUNTIME-tcp
	CT_PORT="" CT_USER="" CT_NPROCS=1
	bridge_hosts
	third_host
	ct_rootfs "$CT_ROOTFS"
	ctapp_"$app"_prep
	# no network client (the JVM): no -tcp in its row's name
	[ -n "$CT_PORT" ] || APP_ROW_APP=$app-$CT_RUNTIME
	ct_start
	if [ -n "$CT_PORT" ]; then
		wait_for 60 _ct_port_open ||
			{ echo "nothing answers on $CT_ADDR:$CT_PORT" >&2; ct_log >&2; return 1; }
	fi
	wait_for 20 eval '[ "$(ct_procs src | wc -w)" -ge "$CT_NPROCS" ]' ||
		{ echo "$app: fewer than $CT_NPROCS processes in src: $(ct_procs src)" >&2; return 1; }
	ctapp_"$app"_before
	ct_migrate
	ct_moved
	n=$(ct_procs dst | wc -w)
	[ "$n" -ge "$CT_NPROCS" ] && [ -z "$(ct_procs src)" ] ||
		{ echo "$app: $n processes in dst; in src: $(ct_procs src)" >&2; return 1; }
	ctapp_"$app"_after
	ct_stop
	app_result "$APP_ROW_APP"
}

# ---------------------------------------------------------------- redis

ctapp_redis_prep() {
	CT_ARGS=(/usr/bin/redis-server --port 6379 --bind 0.0.0.0 --protected-mode no --save ""
		--appendonly no --dir /data --enable-debug-command yes --daemonize no)
	CT_PORT=6379 CT_COMMS=redis-server
}

# 1M keys (DEBUG DIGEST), a client writing SETs
ctapp_redis_before() {
	in_cli redis-cli -h "$CT_ADDR" DEBUG POPULATE "$APPS_REDIS_KEYS" key 64 >/dev/null
	[ "$(in_cli redis-cli -h "$CT_ADDR" DBSIZE)" = "$APPS_REDIS_KEYS" ] || return 1
	DIGEST=$(in_cli redis-cli -h "$CT_ADDR" DEBUG DIGEST)
	ct_load_start redis 6379
}

ctapp_redis_after() {
	local after
	ct_load_stop redis 6379 || return 1
	in_cli redis-cli -h "$CT_ADDR" EVAL \
		"for _, k in ipairs(redis.call('KEYS', 'ack:*')) do redis.call('DEL', k) end" 0 >/dev/null
	after=$(in_cli redis-cli -h "$CT_ADDR" DEBUG DIGEST)
	[ "$after" = "$DIGEST" ] || { echo "DEBUG DIGEST $DIGEST before, $after after" >&2; return 1; }
	note "redis: DEBUG DIGEST of the ${APPS_REDIS_KEYS} keys as before"
}

# ---------------------------------------------------------------- nginx

ctapp_nginx_prep() {
	nginx_site "$SCRATCH/data/nginx" /data/nginx
	CT_ARGS=(/usr/sbin/nginx -p /data/nginx -c /data/nginx/nginx.conf -e /data/nginx/error.log)
	CT_PORT=8080 CT_COMMS=nginx CT_NPROCS=3
}

# every file fetched from the third host, then one keep-alive connection
# fetching files (each checked) across
ctapp_nginx_before() {
	local n
	n=$(nginx_files_intact cli "$CT_ADDR" "$SCRATCH/data/nginx") || return 1
	note "nginx: $n files intact before"
	APP_MANIFEST=$SCRATCH/data/nginx/manifest
	ct_load_start nginx 8080
}

ctapp_nginx_after() {
	local n
	ct_load_stop nginx 8080 || return 1
	n=$(nginx_files_intact cli "$CT_ADDR" "$SCRATCH/data/nginx") || return 1
	note "nginx: $n files intact from dst"
}

# ---------------------------------------------------------------- python

ctapp_python_prep() {
	cp "$APPS_DIR/kvserver.py" "$SCRATCH/data/"
	CT_ARGS=("$APPS_PY" /data/kvserver.py 8000 64)
	CT_PORT=8000 CT_COMMS=python3
}

ctapp_python_before() { ct_load_start http 8000; }

ctapp_python_after() {
	local out
	ct_load_stop http 8000 || return 1
	out=$(in_cli curl -s "http://$CT_ADDR:8000/check")
	[[ "$out" == PASS* ]] || { echo "the server's own check: $out" >&2; return 1; }
	note "kvserver: $out"
}

# ---------------------------------------------------------------- memcached

ctapp_memcached_prep() {
	# runc spec's RLIMIT_NOFILE is 1024: fewer connections than in 70-apps
	CT_ARGS=(/usr/bin/memcached -u root -l 0.0.0.0 -p 11211 -m 1024 -t 4 -c 256)
	CT_PORT=11211 CT_COMMS=memcached
}

ctapp_memcached_before() {
	local out
	out=$(in_cli "$APPS_PY" "$APPS_DIR/load.py" mcfill "$APPS_MC_ITEMS" 4096 "$CT_ADDR:11211") ||
		{ echo "filling memcached: $out" >&2; return 1; }
	out=$(in_cli "$APPS_PY" "$APPS_DIR/load.py" mccheck "$APPS_MC_ITEMS" 4096 "$CT_ADDR:11211") ||
		{ echo "before the migration: $out" >&2; return 1; }
	ct_load_start memcached 11211
}

ctapp_memcached_after() {
	local out
	ct_load_stop memcached 11211 || return 1
	out=$(in_cli "$APPS_PY" "$APPS_DIR/load.py" mccheck "$APPS_MC_ITEMS" 4096 "$CT_ADDR:11211") ||
		{ echo "after the migration: $out" >&2; return 1; }
	note "memcached: $out"
}

# ---------------------------------------------------------------- PostgreSQL

ct_psql() { in_cli psql -h "$CT_ADDR" -p 5432 -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# its own user (the container's process user), its data in /data/pg; its
# dynamic shared memory SysV, in the container's IPC namespace
ctapp_postgresql_prep() {
	local dir=$SCRATCH/data/pg
	mkdir -p "$dir/sock"
	chown -R postgres: "$dir"
	$(as_user postgres) "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync \
		>"$SCRATCH/initdb.out" 2>&1 || { cat "$SCRATCH/initdb.out" >&2; return 1; }
	echo "host all all 192.0.2.0/24 trust" >>"$dir/data/pg_hba.conf"
	CT_ARGS=("$PG_BIN/postgres" -D /data/pg/data -c listen_addresses=* -c port=5432
		-c unix_socket_directories=/data/pg/sock -c logging_collector=off
		-c dynamic_shared_memory_type=sysv)
	CT_PORT=5432 CT_USER=postgres CT_COMMS=postgres CT_NPROCS=6
}

PG_SUM="SELECT count(*) || ' ' || sum(hashtext(id::text || v)::bigint) FROM big"

ctapp_postgresql_before() {
	ct_psql "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v
		FROM generate_series(1, $APPS_CT_PG_ROWS) g; CREATE TABLE acks (n int PRIMARY KEY)" ||
		return 1
	PG_BEFORE=$(ct_psql "$PG_SUM")
	[ "${PG_BEFORE%% *}" = "$APPS_CT_PG_ROWS" ] || return 1
	ct_load_start pg 5432
}

ctapp_postgresql_after() {
	local after
	ct_load_stop pg 5432 || return 1
	after=$(ct_psql "$PG_SUM")
	[ "$after" = "$PG_BEFORE" ] || { echo "checksum '$PG_BEFORE' before, '$after' after" >&2; return 1; }
	ct_psql "INSERT INTO acks VALUES (-1)" || return 1
	note "postgresql: big $after (count, checksum) as before; it commits on dst"
}

# ---------------------------------------------------------------- JVM

# no network client: its own ticker thread's log is the stall it saw
ctapp_jvm_prep() {
	local java
	java=$(readlink -f /usr/lib/jvm/java-17-openjdk-*/bin/java | head -n1)
	[ -x "$java" ] || { echo "OpenJDK 17 is not installed" >&2; return 1; }
	mkdir -p "$SCRATCH/data/classes"
	javac -d "$SCRATCH/data/classes" "$APPS_DIR/HeapCheck.java" || return 1
	# Debian's JDK links its configuration to /etc
	cp -rL /etc/java-17-openjdk "$CT_ROOTFS/etc/" || return 1
	CT_ARGS=("$java" -Xms1g -Xmx1g -XX:+AlwaysPreTouch -XX:-UsePerfData -cp /data/classes
		HeapCheck /data/jvm.log "$APPS_JVM_MIB" 4)
	CT_COMMS=java
}

ctapp_jvm_before() {
	JVM_LOG=$SCRATCH/data/jvm.log
	wait_for 180 grep -q READY "$JVM_LOG" || { ct_log >&2; return 1; }
	ticks_advance "$JVM_LOG" 20 10
}

ctapp_jvm_after() {
	local n log=$JVM_LOG
	ticks_advance "$log" 20 30 || return 1
	n=$(grep -c '^VERIFY' "$log" || true)
	touch "$log.verify"
	wait_for 60 eval '[ "$(grep -c "^VERIFY" "$log")" -gt '"$n"' ]' || return 1
	grep -q "^VERIFY PASS $APPS_JVM_MIB\$" "$log" || { grep VERIFY "$log" >&2; return 1; }
	check_ticks "$log" >/dev/null || return 1
	APP_STALL=$(max_gap_at "$log" | cut -d' ' -f1)
	note "jvm: $(grep '^VERIFY' "$log" | tail -n1) MiB checked on dst"
}
