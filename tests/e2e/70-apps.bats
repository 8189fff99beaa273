#!/usr/bin/env bats
# Real applications from Debian, each with a real load, migrated from src
# to dst and checked there by its own means: no acknowledged write lost,
# its data identical, it answers new requests on dst and runs there only.
# See lib/apps.bash for how they run and how the client reconnects.
#
#   bats tests/e2e/70-apps.bats                      (live mode)
#   MIGRATE_MODE=stop bats tests/e2e/70-apps.bats    (stop, lazy, hybrid)
#   make apps                                        (every mode, docs/APPS.md)

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
	app_start redis ${user:+app_as "$user"} redis-server --port 6379 --bind 0.0.0.0 \
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
