#!/usr/bin/env bats
# Both ends of a loopback TCP connection, with data in flight both ways
# (tests/workloads/tcpbuf.c: two processes of one tree, each end's peer
# receive queue full and part of its send queue never sent), migrate in
# every mode with --tcp-established: on dst no reset, every byte arrives
# once and in order, and no lock is left in dst's netfilter.
#
# The tree has no network namespace of its own: CRIU locks its
# connections on src at the dump (iptables rules per connection, or the
# nftables table "inet CRIU-<run id>"), but an unpatched CRIU takes no lock
# on dst: the socket restored first sends its not-sent data to its peer,
# not restored yet, and dst resets it ("Can't restore not-sent send queue
# data: Broken pipe"; zdtm socket-tcpbuf-local). CRIU patch 0013
# (CRIU_RESTORE_TCP_LOCK, set by phaul) takes that lock on dst before the
# restore and CRIU's unlock drops it as the tree resumes. Patch 0014
# (CRIU_RESTORE_TCP_MSS) gives the restored connections their MSS.
#
# TCPBUF_RUNS (default 2) migrations per mode. Also: a rollback after the
# restore and a daemon killed there leave no lock in dst; the nftables lock.
#
# After a commit CRIU's dump leaves its lock on src (for a restore on the
# same host); phaul's source removes it then, exactly it (criu/tcplock.h):
# no lock is left on src, and another lock of CRIU's kind there is untouched.

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	hosts_setup
	phaul_setup
	fx_setup
}

teardown() {
	hosts_teardown
}

_tcpbuf_lines() { [ "$(grep -c "^$1 " "$LOG")" -ge 2 ]; }

# tcpbuf_start [4|6]: the two-process tree in src, filled; sets PID, PIDS, LOG
tcpbuf_start() {
	LOG=$SCRATCH/tcpbuf.$((++TCPBUF_N)).log
	PID=$(start_in_src "$WORKLOADS/tcpbuf" "$LOG" "${1:-4}") || return 1
	wait_for 10 _tcpbuf_lines FILLED || { echo "tcpbuf never filled: $(cat "$LOG")" >&2; return 1; }
	ticks_advance "$LOG" 20 || return 1
	PIDS="$PID $(children_in src "$PID")"
	[ "$(echo "$PIDS" | wc -w)" = 2 ] || { echo "tcpbuf tree is '$PIDS', not 2 processes" >&2; return 1; }
}

# tcpbuf_verify HOST: each end reads the other's bytes to EOF, all of them
tcpbuf_verify() {
	local who filled line
	in_"$1" kill -USR1 "$PID"
	wait_for 15 _tcpbuf_lines VERIFY || { echo "no VERIFY lines in $1: $(grep -v '^[0-9]' "$LOG")" >&2; return 1; }
	for who in parent child; do
		filled=$(sed -n "s/^FILLED $who bytes=//p" "$LOG")
		line=$(grep "^VERIFY [A-Z]* $([ $who = parent ] && echo child || echo parent) " "$LOG")
		[ "$line" = "VERIFY PASS $([ $who = parent ] && echo child || echo parent) bytes=$filled" ] ||
			{ echo "in $1: $who wrote $filled bytes, its peer says: $line" >&2; return 1; }
	done
	check_ticks "$LOG" >/dev/null
}

# no_tcp_lock HOST: no CRIU connection lock left in HOST's netfilter
no_tcp_lock() {
	local rules
	rules=$(in_"$1" sh -c 'iptables -S && ip6tables -S && nft list tables') ||
		{ echo "cannot list $1's netfilter rules" >&2; return 1; }
	[[ "$rules" == *"-P INPUT"* ]] || { echo "no iptables rules listed in $1: $rules" >&2; return 1; }
	! grep -i -e 0xc114 -e CRIU <<<"$rules" || { echo "left in $1's netfilter (above)" >&2; return 1; }
}

# decoy_lock HOST: a lock of CRIU's kind in HOST that is not this
# migration's: iptables rules of another connection (v4 and v6) and another
# dump's nftables table
decoy_lock() {
	# shellcheck disable=SC2016
	in_"$1" sh -e -c '
		rule() { "$1" -w -t filter -I "$2" --protocol tcp -m mark ! --mark 0xc114 \
			--source "$3" --sport "$4" --destination "$5" --dport "$6" -j DROP; }
		rule iptables INPUT 127.0.0.1 2 127.0.0.1 1
		rule iptables OUTPUT 127.0.0.1 1 127.0.0.1 2
		rule ip6tables INPUT ::1 2 ::1 1
		nft add table inet CRIU-00000000-decoy
		nft add set inet CRIU-00000000-decoy conns4 \
			"{ type ipv4_addr . inet_service . ipv4_addr . inet_service; }"
		nft add element inet CRIU-00000000-decoy conns4 "{ 127.0.0.1 . 1 . 127.0.0.1 . 2 }"'
}

# twin_lock: in src, the very rules CRIU's dump will add for the tree's
# connections (PIDS, IPv4), added once already: another lock of the same
# connections, which phaul must not take for its dump's
twin_lock() {
	local l r n=0
	while read -r l r; do
		in_src iptables -w -t filter -I INPUT --protocol tcp -m mark ! --mark 0xc114 \
			--source "${r%:*}" --sport "${r##*:}" --destination "${l%:*}" --dport "${l##*:}" -j DROP
		in_src iptables -w -t filter -I OUTPUT --protocol tcp -m mark ! --mark 0xc114 \
			--source "${l%:*}" --sport "${l##*:}" --destination "${r%:*}" --dport "${r##*:}" -j DROP
		n=$((n + 1))
	done < <(in_src ss -tnHp state established | grep -E "pid=(${PIDS// /|})," | awk '{ print $3, $4 }')
	[ "$n" -ge 2 ] || { echo "twin_lock: $n connections of '$PIDS' in src" >&2; return 1; }
}

# netfilter_rules HOST: all of HOST's netfilter rules, without counters
netfilter_rules() {
	in_"$1" sh -c 'iptables -S && ip6tables -S && nft -s list ruleset'
}

# restored_mss_ok HOST: the restored loopback connections send segments
# as large as their route allows, not the kernel's default MSS (536 less
# the timestamp option): CRIU patch 0014
restored_mss_ok() {
	local mss
	mss=$(in_"$1" ss -tinH state established '( src 127.0.0.1 or src [::1] )' |
		grep -o ' mss:[0-9]*' | cut -d: -f2 | sort -n | head -n1)
	[ -n "$mss" ] && [ "$mss" -gt 1000 ] ||
		{ echo "restored connections in $1: MSS '${mss:-none}'" >&2; return 1; }
}

# tcpbuf_migrates MODE [4|6]
tcpbuf_migrates() {
	local tcpbuf_run
	serve_start
	for ((tcpbuf_run = 1; tcpbuf_run <= ${TCPBUF_RUNS:-2}; tcpbuf_run++)); do
		tcpbuf_start "${2:-4}"
		fx_migrate --mode "$1" --tcp-established "$PID"
		[ "$status" -eq 0 ] || { echo "run $tcpbuf_run: migrate failed: $stderr" >&2; false; }
		fx_assert_migrated
		restored_mss_ok dst
		tcpbuf_verify dst
		no_tcp_lock dst
		no_tcp_lock src
		in_dst kill "$PID"
		wait_for 5 eval '! pid_alive_in dst '"$PID"
	done
}

@test "tcp: both ends of a loopback connection with data in flight, stop mode" {
	tcpbuf_migrates stop
}

@test "tcp: both ends of a loopback connection with data in flight, live mode" {
	tcpbuf_migrates live
}

@test "tcp: both ends of a loopback connection with data in flight, lazy mode" {
	tcpbuf_migrates lazy
}

@test "tcp: both ends of a loopback connection with data in flight, hybrid mode" {
	tcpbuf_migrates hybrid
}

@test "tcp: the same over IPv6 (::1), stop mode" {
	TCPBUF_RUNS=1 tcpbuf_migrates stop 6
}

# The source removes its dump's iptables rules after the commit, and only
# those: src's netfilter is as it was before the migration, another
# lock included.
@test "tcp: after a commit src has no lock of the migration's left, another lock untouched (iptables)" {
	local before after
	decoy_lock src
	before=$(netfilter_rules src)
	[[ "$before" == *0xc114* && "$before" == *CRIU-00000000-decoy* ]]
	serve_start
	tcpbuf_start
	fx_migrate --mode live --tcp-established -v "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	fx_assert_migrated
	tcpbuf_verify dst
	after=$(netfilter_rules src)
	[ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") >&2; false; }
	grep -q "removed the dump's iptables rules of 2 connections (0 failed)" <<<"$stderr" ||
		{ echo "no removal logged: $stderr" >&2; false; }
}

# The same connections locked twice (CRIU's dump adds its rules on top of
# identical ones): the source removes one copy, its dump's, after the
# commit; when CRIU did not take the commit (src.committed:fail) CRIU
# removes its copy itself as on a failure and the source removes none.
# Either way src's netfilter is as before the migration.
@test "tcp: src removes only its dump's copy of rules another lock also holds; none when CRIU unlocked itself (src.committed:fail)" {
	local before after fault
	require_fault src.committed
	serve_start
	for fault in "" PHAUL_FAULT=src.committed:fail; do
		tcpbuf_start
		twin_lock
		before=$(netfilter_rules src)
		fx_migrate $fault -- --mode stop --tcp-established -v "$PID"
		[ "$status" -eq 0 ] || { echo "${fault:-no fault}: migrate failed: $stderr" >&2; false; }
		fx_assert_migrated
		after=$(netfilter_rules src)
		[ "$before" = "$after" ] ||
			{ echo "${fault:-no fault}: src's netfilter changed:" >&2; diff <(echo "$before") <(echo "$after") >&2; false; }
		in_dst kill "$PID"
		wait_for 5 eval '! pid_alive_in dst '"$PID"
		in_src sh -c 'iptables -F INPUT && iptables -F OUTPUT'
	done
}

# dst fails once the tree is restored and held, its connections locked
# there: CRIU kills the restored copy and removes the lock it took; the
# tree goes on in src with its connection whole.
@test "tcp, failure: dst fails after the restore (dst.restored): rolled back, no lock left in dst, the connection whole in src" {
	require_fault dst.restored
	serve_start PHAUL_FAULT=dst.restored
	tcpbuf_start
	fx_migrate --mode stop --tcp-established "$PID"
	assert_failed_with '.'
	assert_fault_hit dst.restored
	# shellcheck disable=SC2086
	assert_rolled_back "$LOG" $PIDS
	no_tcp_lock dst
	no_tcp_lock src
	tcpbuf_verify src
}

# The daemon dies with the tree restored and held (dst.restored:kill): its
# CRIU sees its socket close, kills the restored copy and removes the lock.
@test "tcp, failure: the daemon dies after the restore (dst.restored:kill): no lock left in dst, the connection whole in src" {
	require_fault dst.restored
	serve_start PHAUL_FAULT=dst.restored:kill
	tcpbuf_start
	fx_migrate --mode stop --tcp-established "$PID"
	assert_failed_with '.'
	assert_fault_hit dst.restored
	serve_restart_if_dead
	# shellcheck disable=SC2086
	assert_rolled_back "$LOG" $PIDS
	wait_for 10 no_tcp_lock dst || no_tcp_lock dst
	tcpbuf_verify src
}

# A source without iptables-restore makes phaul ask CRIU for the nftables
# lock (criu_pick_network_lock); the restore takes it the same way, from the
# method the dump wrote in the images.
@test "tcp: locked with nftables (no iptables-restore on src), hybrid mode" {
	local shim=$SCRATCH/sbin f before after
	mkdir "$shim"
	for f in /usr/sbin/* /sbin/*; do
		case ${f##*/} in iptables-restore | ip6tables-restore) continue ;; esac
		[ -e "$shim/${f##*/}" ] || ln -s "$f" "$shim/${f##*/}"
	done
	decoy_lock src
	before=$(netfilter_rules src)
	serve_start
	tcpbuf_start
	fx_migrate PATH="$shim:/usr/local/sbin:/usr/local/bin:/usr/bin:/bin" -- \
		--mode hybrid --tcp-established -v "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	fx_assert_migrated
	tcpbuf_verify dst
	no_tcp_lock dst
	# the dump locked with nftables (its table named in the images): the
	# source deleted that table after the commit, nothing else
	grep -q "removed the dump's table inet CRIU-" <<<"$stderr" ||
		{ echo "no removal logged: $stderr" >&2; false; }
	after=$(netfilter_rules src)
	[ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after") >&2; false; }
}
