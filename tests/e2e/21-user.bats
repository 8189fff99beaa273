#!/usr/bin/env bats
# A workload that runs as its own user (as PostgreSQL, nginx workers and
# most daemons do) moves, and keeps its uid and resource limits.
#
# Dumping a process of another uid reads its limits: CRIU's prlimit() on it
# needs CAP_SYS_RESOURCE, which root lacks on some hosts (this machine: see
# ENVIRONMENT.md). CRIU patch 0012 (scripts/criu-patches) then reads
# /proc/PID/limits; the restorer sets the limits back while still root.
# These tests need that CRIU (installed, or PHAUL_CRIU=) where root has no
# CAP_SYS_RESOURCE; with stock CRIU there, the migration must fail cleanly.
#
# They fail (never skip) while build/phaul does not exist or misbehaves.

load lib/hosts
load lib/phaul
load lib/fixtures

USER_NAME=nobody

setup() {
	hosts_setup
	phaul_setup
	fx_setup
	# bats' own run directory is 0700: the user's files live elsewhere
	USER_DIR=$(mktemp -d /tmp/phaul-user.XXXXXX)
	chmod 755 "$USER_DIR"
	mkdir "$USER_DIR/run"
	chown "$USER_NAME:" "$USER_DIR/run"
}

teardown() {
	hosts_teardown
	[ -z "${USER_DIR:-}" ] || rm -rf "$USER_DIR"
}

# start_user_mtouch MIB: mtouch as $USER_NAME with limits that differ from
# root's (RLIMIT_NOFILE 1000:2000, RLIMIT_CORE 4096:8192, RLIMIT_NPROC
# 3000:4000); sets PID, PIDS, LOG, FX_MTOUCH_PAGES, LIMITS_SRC.
start_user_mtouch() {
	local mib=$1
	LOG=$USER_DIR/run/mtouch.log
	FX_MTOUCH_PAGES=$((mib * 256))
	# root lowers them (raising a hard limit needs CAP_SYS_RESOURCE)
	PID=$(start_in_src prlimit --nofile=1000:2000 --core=4096:8192 --nproc=3000:4000 \
		setpriv --reuid "$USER_NAME" --regid "$(id -g "$USER_NAME")" --clear-groups \
		"$WORKLOADS/mtouch" --size "$mib" --hot 4 --rate 16 --log "$LOG") || return 1
	PIDS=$PID
	wait_for 60 grep -q '^READY' "$LOG" || { echo "mtouch never got READY" >&2; return 1; }
	ticks_advance "$LOG" 30 || return 1
	CREDS_SRC=$(creds_of src "$PID")
	[ "$CREDS_SRC" = "$(id -u "$USER_NAME") $(id -g "$USER_NAME")" ] ||
		{ echo "mtouch does not run as $USER_NAME only: $CREDS_SRC" >&2; return 1; }
	LIMITS_SRC=$(proc_of src "$PID" limits)
	grep -Eq '^Max open files +1000 +2000 ' <<<"$LIMITS_SRC" ||
		{ echo "mtouch's limits are not the ones set: $LIMITS_SRC" >&2; return 1; }
}

# proc_of HOST PID FILE: /proc/PID/FILE as seen in HOST.
proc_of() { cat "$(_hosts_proc "$1")/$2/$3"; }

# creds_of HOST PID: "UID GID GROUPS" if its real, effective, saved and fs
# ids are all one uid and one gid; its status lines otherwise.
creds_of() {
	proc_of "$1" "$2" status | awk '
		/^Uid:/ { u = $2; if ($3 != u || $4 != u || $5 != u) bad = 1 }
		/^Gid:/ { g = $2; if ($3 != g || $4 != g || $5 != g) bad = 1 }
		/^Groups:/ { $1 = ""; gr = $0 }
		/^(Uid|Gid|Groups):/ { all = all $0 ";" }
		END { if (bad) print all; else print u, g gr }'
}

@test "user: mtouch 32 MiB running as nobody moves live; uid, memory and every rlimit are the same on dst" {
	serve_start
	start_user_mtouch 32
	fx_verify_mtouch src
	fx_migrate --mode live --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	fx_check_success_json live "$LOG"
	fx_verify_mtouch dst
	[ "$(creds_of dst "$PID")" = "$CREDS_SRC" ] ||
		{ echo "uid/gid changed: $(creds_of dst "$PID") was $CREDS_SRC" >&2; false; }
	local after
	after=$(proc_of dst "$PID" limits)
	if [ "$after" != "$LIMITS_SRC" ]; then
		echo "the limits changed:" >&2
		diff <(echo "$LIMITS_SRC") <(echo "$after") >&2
		false
	fi
	fx_assert_migrated
}

@test "user: stop mode moves an mtouch running as nobody; its limits are the same on dst" {
	serve_start
	start_user_mtouch 8
	fx_migrate --mode stop --json "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	[ "$(proc_of dst "$PID" limits)" = "$LIMITS_SRC" ]
	[ "$(creds_of dst "$PID")" = "$CREDS_SRC" ]
	fx_verify_mtouch dst
	fx_assert_migrated
}
