# Two test "hosts" on one machine, for bats end-to-end tests.
#
# A host is a network + PID + mount namespace set whose PID 1 is
# build/workloads/hostinit.  The two hosts are joined by a veth pair:
#
#   src  192.0.2.1/24  <-- veth -->  192.0.2.2/24  dst
#
# Both hosts see the same files (their mount namespaces are private copies
# of the machine's), each has its own /proc.  Workloads started in src get
# PIDs >= 10000, those in dst stay low, so a tree restored from src into dst
# keeps its PIDs without clashing.
#
# Use from a .bats file:
#
#   load lib/hosts
#   setup()    { hosts_setup; }          # or: hosts_setup 100mbit
#   teardown() { hosts_teardown; }
#
# Functions (HOST is src or dst):
#   hosts_setup [RATE]        build both hosts; RATE = tbf rate on both veth
#                             ends (tc syntax: 100mbit, 1gbit, ...)
#   hosts_teardown            kill everything in both hosts, remove the veth,
#                             fail if anything of the test is left behind
#   in_src CMD... / in_dst CMD...
#                             run CMD inside the host (nsenter -n -p -m), in
#                             the caller's $PWD; exit status is CMD's
#   start_in_src [-o FILE] CMD... / start_in_dst [-o FILE] CMD...
#                             start CMD detached (setsid, stdin /dev/null,
#                             stdout+stderr appended to FILE, default
#                             $SCRATCH/HOST-NAME.out, cwd $SCRATCH); prints
#                             its PID as seen inside the host
#   pid_alive_in HOST PID     true if PID exists in HOST and is not a zombie
#   procs_in HOST [COMM]      "PID COMM" of every process in HOST but PID 1
#                             (only those named COMM if given)
#   children_in HOST PID      PIDs of PID's children in HOST
#   link_down [src|dst|both]  set the veth end(s) down (default both)
#   link_up [src|dst|both]
#   check_ticks FILE          verify a tick log (see below), print max gap ms
#   last_tick FILE            last complete tick number in FILE (0 if none)
#   wait_ticks FILE N [SEC]   wait until FILE's last tick >= N
#   ticks_advance FILE [N] [SEC]
#                             wait until N (default 20) more ticks appear
#   wait_for SEC CMD...       run CMD every 50 ms until it succeeds; fail
#                             with a message after SEC seconds
#   wait_frozen FILE MS [SEC] wait until FILE has not grown for MS ms
#   refute CMD...             fail if CMD succeeds (bats ignores "! CMD")
#
# Each host has a named network namespace ($HOSTS_NETNS, `ip netns add`),
# as container hosts have (ip netns, CNI): its nsfs mount is a mountinfo
# line whose root is "net:[N]", not a path.  It lives on a tmpfs mounted
# at /run/netns in the host's mount namespace, and goes with the host
# (the machine keeps at most an empty /run/netns directory).
#
# HOSTS_CGROUPNS=1 before hosts_setup gives each host a cgroup namespace
# rooted at a cgroup of its own in every hierarchy (HOSTS_CGROUPS lists
# those directories; hosts_teardown removes them), so that, as on two
# machines, what one host makes in its cgroup tree the other does not see.
# Hierarchies must then be mounted inside the host to show its own tree.
#
# Variables after hosts_setup: SCRATCH (per-test scratch dir, shared by
# both hosts), SRC_PID1 / DST_PID1 (PID 1 of each host, as seen from the
# machine), HOSTS_IF_SRC / HOSTS_IF_DST (veth names inside each host),
# SRC_ADDR / DST_ADDR, WORKLOADS (directory of the workload binaries).

HOSTS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=${REPO_ROOT:-$(cd "$HOSTS_LIB_DIR/../../.." && pwd -P)}
WORKLOADS=${WORKLOADS:-$REPO_ROOT/build/workloads}
SRC_ADDR=192.0.2.1
DST_ADDR=192.0.2.2
HOSTS_SRC_FIRST_PID=10000
HOSTS_NETNS=phaul-named

# Every test is bounded in time, even if a wait below were forgotten.
: "${BATS_TEST_TIMEOUT:=180}"

hosts_fail() {
	echo "hosts: $*" >&2
	return 1
}

# ---------------------------------------------------------------- asserts

# refute CMD...: fail (with a message) if CMD succeeds.  Use it instead of
# "! CMD", which bats' errexit ignores.
refute() {
	if "$@"; then
		echo "refute: this succeeded but must not: $*" >&2
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------- polling

# wait_for SEC CMD...: poll CMD every 50 ms until it succeeds.
wait_for() {
	local secs=$1
	shift
	local deadline=$((SECONDS + secs))
	while ! "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			echo "wait_for: timed out after ${secs}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.05
	done
}

# ---------------------------------------------------------------- hosts

_hosts_pid1() {
	case "$1" in
	src) echo "${SRC_PID1:?hosts_setup has not run}" ;;
	dst) echo "${DST_PID1:?hosts_setup has not run}" ;;
	*) hosts_fail "unknown host '$1' (src or dst)" ;;
	esac
}

# _hosts_in HOST CMD...: run CMD in HOST, in the caller's $PWD if it exists
# there.  The cd happens after entering the mount namespace: nsenter --wd
# would leave the cwd in the machine's mount namespace, which CRIU then
# cannot dump ("Can't lookup mount=N").
_hosts_in() {
	local pid1
	pid1=$(_hosts_pid1 "$1") || return 125
	shift
	nsenter -t "$pid1" -n -p -m ${HOSTS_CGROUPNS:+-C} -- /bin/sh -c \
		'cd "$0" 2>/dev/null || cd /; exec "$@"' "$PWD" "$@"
}

in_src() { _hosts_in src "$@"; }
in_dst() { _hosts_in dst "$@"; }

_hosts_start() {
	local host=$1 out=""
	shift
	if [ "${1:-}" = -o ]; then
		out=$2
		shift 2
	fi
	[ $# -gt 0 ] || hosts_fail "start_in_$host: no command" || return 1
	[ -n "$out" ] || out="$SCRATCH/$host-$(basename "$1").out"
	local pid
	# Non-interactive sh puts a background job in its own process group
	# only with job control, so setsid does not fork: $! is the PID of CMD.
	pid=$(_hosts_in "$host" /bin/sh -c \
		'cd "$1" || exit 125; out=$2; shift 2
		 setsid "$@" </dev/null >>"$out" 2>&1 &
		 echo $!' sh "$SCRATCH" "$out" "$@" 3>&- 4>&-) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || hosts_fail "start_in_$host $*: got pid '$pid'" || return 1
	echo "$host $pid $*" >>"$SCRATCH/.started"
	echo "$pid"
}

start_in_src() { _hosts_start src "$@"; }

# start_tree_in_src N LOG: a counter ticking into LOG under N-1 sleeping
# processes, in src; prints its PID. (The sleeps get only fds 0-2, as the
# workloads keep: the shell closes what it inherited, a sleep started
# with & gets no fd of the shell's.)
start_tree_in_src() {
	start_in_src -o "$SCRATCH/tree.out" /bin/bash -c '
		for fd in /proc/$$/fd/*; do
			fd=${fd##*/}
			[ "$fd" -le 2 ] || eval "exec $fd>&-"
		done
		for ((i = 1; i < $1; i++)); do sleep 100000 & done
		exec "$2" "$3"' sh "$1" "$WORKLOADS/counter" "$2"
}
start_in_dst() { _hosts_start dst "$@"; }

# /proc of the host, reached from the machine through PID 1's root.
_hosts_proc() {
	local pid1
	pid1=$(_hosts_pid1 "$1") || return 1
	echo "/proc/$pid1/root/proc"
}

pid_alive_in() {
	local proc state
	proc=$(_hosts_proc "$1") || return 2
	[ -r "$proc/$2/stat" ] || return 1
	state=$(sed 's/^.*) \(.\).*/\1/' "$proc/$2/stat" 2>/dev/null) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

procs_in() {
	local proc p comm
	proc=$(_hosts_proc "$1") || return 2
	for p in "$proc"/[0-9]*; do
		p=${p##*/}
		[ "$p" = 1 ] && continue
		pid_alive_in "$1" "$p" || continue
		comm=$(cat "$proc/$p/comm" 2>/dev/null) || continue
		if [ -z "${2:-}" ] || [ "$comm" = "$2" ]; then
			echo "$p $comm"
		fi
	done
}

children_in() {
	local proc
	proc=$(_hosts_proc "$1") || return 2
	tr ' ' '\n' <"$proc/$2/task/$2/children" 2>/dev/null | sed '/^$/d'
}

# _hosts_cgroups HOST: print a new cgroup directory for HOST under this
# shell's cgroup in each hierarchy (mounted on the machine).
_hosts_cgroups() {
	local line ctrl path mnt
	while IFS= read -r line; do
		ctrl=${line#*:}
		path=${ctrl#*:}
		ctrl=${ctrl%%:*}
		if [ -z "$ctrl" ]; then
			mnt=$(findmnt -rn -t cgroup2 -o TARGET | head -n1)
		else
			mnt=$(findmnt -rn -t cgroup -O "${ctrl%%,*}" -o TARGET | head -n1)
		fi
		[ -n "$mnt" ] || continue
		mnt=$mnt${path%/}/phaul-$1-$$-${BATS_TEST_NUMBER:-0}
		mkdir "$mnt" || return 1
		# a v1 cpuset starts empty: no task may join it until it has CPUs
		if [ -e "$mnt/cpuset.cpus" ]; then
			cat "${mnt%/*}/cpuset.cpus" >"$mnt/cpuset.cpus" &&
				cat "${mnt%/*}/cpuset.mems" >"$mnt/cpuset.mems" || return 1
		fi
		echo "$mnt"
	done </proc/self/cgroup
}

# Start one host: unshare's child is the host's PID 1.
_hosts_start_host() {
	local host=$1 upid pid1="" i cgs="" cgns=()
	[ -x "$WORKLOADS/hostinit" ] ||
		hosts_fail "$WORKLOADS/hostinit missing: run 'make workloads'" || return 1
	if [ -n "${HOSTS_CGROUPNS:-}" ]; then
		cgs=$(_hosts_cgroups "$host") || hosts_fail "$host: no cgroups of its own" || return 1
		HOSTS_CGROUPS+=" $cgs"
		cgns=(--cgroup)
	fi
	# shellcheck disable=SC2016,SC2086
	sh -c 'for d in $0; do echo $$ >"$d/cgroup.procs" || exit 125; done; shift; exec "$@"' \
		"$cgs" - unshare "${cgns[@]}" --net --pid --mount --fork --mount-proc --kill-child \
		"$WORKLOADS/hostinit" </dev/null >>"$SCRATCH/$host-init.out" 2>&1 3>&- 4>&- &
	upid=$!
	for ((i = 0; i < 100; i++)); do
		read -r pid1 _ <"/proc/$upid/task/$upid/children" 2>/dev/null || true
		if [ -n "$pid1" ] && [ "/proc/$pid1/exe" -ef "$WORKLOADS/hostinit" ]; then
			break
		fi
		pid1=""
		sleep 0.02
	done
	case "$host" in
	src) HOSTS_SRC_UNSHARE=$upid SRC_PID1=$pid1 ;;
	dst) HOSTS_DST_UNSHARE=$upid DST_PID1=$pid1 ;;
	esac
	[ -n "$pid1" ] || hosts_fail "$host: hostinit did not start" || return 1
	HOSTS_NS+=" $(readlink "/proc/$pid1/ns/pid") $(readlink "/proc/$pid1/ns/net") $(readlink "/proc/$pid1/ns/mnt")"
	_hosts_in "$host" ip link set lo up || hosts_fail "$host: lo up failed" || return 1
	# shellcheck disable=SC2016
	_hosts_in "$host" /bin/sh -c 'mkdir -p /run/netns &&
		mount -t tmpfs -o mode=0755 netns /run/netns && ip netns add "$0"' "$HOSTS_NETNS" ||
		hosts_fail "$host: ip netns add $HOSTS_NETNS failed"
}

_hosts_pick_names() {
	local i id
	for ((i = 0; i < 50; i++)); do
		id=$(printf 'ph%05x' $(((RANDOM << 5 ^ RANDOM ^ $$) & 0xfffff)))
		if ! ip link show "${id}s" >/dev/null 2>&1 && ! ip link show "${id}d" >/dev/null 2>&1; then
			HOSTS_IF_SRC=${id}s
			HOSTS_IF_DST=${id}d
			return 0
		fi
	done
	hosts_fail "no free veth name"
}

_hosts_link() {
	_hosts_pick_names || return 1
	ip link add "$HOSTS_IF_SRC" type veth peer name "$HOSTS_IF_DST" ||
		hosts_fail "ip link add veth failed" || return 1
	HOSTS_VETH_MADE=1
	ip link set "$HOSTS_IF_SRC" netns "$SRC_PID1" &&
		ip link set "$HOSTS_IF_DST" netns "$DST_PID1" ||
		hosts_fail "moving the veth ends into the hosts failed" || return 1
	in_src ip addr add "$SRC_ADDR/24" dev "$HOSTS_IF_SRC" &&
		in_src ip link set "$HOSTS_IF_SRC" up &&
		in_dst ip addr add "$DST_ADDR/24" dev "$HOSTS_IF_DST" &&
		in_dst ip link set "$HOSTS_IF_DST" up ||
		hosts_fail "configuring the veth failed" || return 1
}

_hosts_rate() {
	local rate=$1
	in_src tc qdisc replace dev "$HOSTS_IF_SRC" root tbf rate "$rate" burst 256kb latency 50ms &&
		in_dst tc qdisc replace dev "$HOSTS_IF_DST" root tbf rate "$rate" burst 256kb latency 50ms ||
		hosts_fail "tc tbf rate $rate failed"
}

# A process (not a job of the test shell) holding the hosts' namespaces
# open until hosts_teardown has looked for leftovers in them: a namespace
# freed earlier could have its inode number reused by another test's
# (tests run in parallel on one machine), whose processes would then look
# like ours and be killed.
_hosts_hold_ns() {
	HOSTS_NS_HOLDER=$(sleep 3600 5<"/proc/$SRC_PID1/ns/pid" 6<"/proc/$SRC_PID1/ns/net" \
		7<"/proc/$SRC_PID1/ns/mnt" 8<"/proc/$DST_PID1/ns/pid" 9<"/proc/$DST_PID1/ns/net" \
		10<"/proc/$DST_PID1/ns/mnt" </dev/null >/dev/null 2>&1 3>&- 4>&- &
		echo $!) || hosts_fail "cannot hold the hosts' namespaces" || return 1
	# ours only if it holds them
	[ "$(readlink "/proc/$HOSTS_NS_HOLDER/fd/10")" = "$(readlink "/proc/$DST_PID1/ns/mnt")" ] ||
		hosts_fail "the namespace holder $HOSTS_NS_HOLDER does not hold them"
}

_hosts_release_ns() {
	local p=${HOSTS_NS_HOLDER:-}
	HOSTS_NS_HOLDER=""
	[ -n "$p" ] || return 0
	# still the holder (the PID not reused): its fd 10 is our dst's mnt ns
	[[ " $HOSTS_NS " == *" $(readlink "/proc/$p/fd/10" 2>/dev/null) "* ]] || return 0
	kill -KILL "$p" 2>/dev/null || true
}

# hosts_setup [RATE]
hosts_setup() {
	local rate=${1:-}
	[ "$(id -u)" = 0 ] || hosts_fail "must run as root" || return 1
	SCRATCH=${BATS_TEST_TMPDIR:?not running under bats}/scratch
	mkdir -p "$SCRATCH"
	: >"$SCRATCH/.started"
	HOSTS_NS=""
	HOSTS_CGROUPS=""
	HOSTS_JOBS_BEFORE=$(jobs -p | tr '\n' ' ')
	HOSTS_UP=1
	_hosts_start_host src || return 1
	_hosts_start_host dst || return 1
	_hosts_hold_ns || return 1
	_hosts_link || return 1
	if [ -n "$rate" ]; then
		_hosts_rate "$rate" || return 1
	fi
	# Keep the PID ranges apart: src from 10000 up, dst low.
	in_src /bin/sh -c "echo $((HOSTS_SRC_FIRST_PID - 1)) >/proc/sys/kernel/ns_last_pid" ||
		hosts_fail "writing ns_last_pid in src failed" || return 1
	# Each side must reach the other before any test starts.
	wait_for 5 _hosts_link_ready || hosts_fail "veth link did not come up" || return 1
}

_hosts_link_ready() {
	in_src ip -o link show "$HOSTS_IF_SRC" | grep -q 'state UP' &&
		in_dst ip -o link show "$HOSTS_IF_DST" | grep -q 'state UP'
}

_hosts_sides() {
	case "${1:-both}" in
	src) echo src ;;
	dst) echo dst ;;
	both) echo src dst ;;
	*) hosts_fail "link side must be src, dst or both" ;;
	esac
}

_hosts_link_set() {
	local state=$1 side
	for side in $(_hosts_sides "${2:-both}"); do
		if [ "$side" = src ]; then
			in_src ip link set "$HOSTS_IF_SRC" "$state" || return 1
		else
			in_dst ip link set "$HOSTS_IF_DST" "$state" || return 1
		fi
	done
}

link_down() { _hosts_link_set down "$@"; }
link_up() { _hosts_link_set up "$@"; }

# ---------------------------------------------------------------- teardown

# Print what the hosts hold and the tail of every output file: called by
# hosts_teardown when the test failed, so the bats report shows it.
hosts_diagnostics() {
	local h f
	for h in src dst; do
		echo "# processes in $h:"
		procs_in "$h" 2>/dev/null | sed 's/^/#   /'
	done
	for f in "$SCRATCH"/*.out "$SCRATCH"/*.log; do
		[ -f "$f" ] || continue
		echo "# --- tail of ${f#"$SCRATCH"/}:"
		tail -n 15 "$f" | sed 's/^/#   /'
	done
}

# PIDs (on the machine) of processes in one of the hosts' namespaces, or
# whose cwd/root is inside the test's tmp dir, or that hold an fd there.
# Only processes started before $1 (clock ticks since boot, /proc/PID/stat
# field 22) count: once the hosts are stopped their namespaces' inode
# numbers are free, and a test host another bats run starts meanwhile (in
# parallel on the same machine) may get one of them.
_hosts_leftovers() {
	local ns args=()
	for ns in $HOSTS_NS; do
		# net:[4026532345]: the brackets are find's glob, not text
		ns=${ns//[/\\[}
		args+=(-o -lname "${ns//]/\\]}")
	done
	{
		find /proc/[0-9]*/ns -mindepth 1 -maxdepth 1 \( -false "${args[@]}" \) 2>/dev/null
		find /proc/[0-9]*/cwd /proc/[0-9]*/root -maxdepth 0 \
			\( -lname "$BATS_TEST_TMPDIR" -o -lname "$BATS_TEST_TMPDIR/*" \) 2>/dev/null
		find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -lname "$BATS_TEST_TMPDIR/*" 2>/dev/null
	} | cut -d/ -f3 | sort -un | grep -vx -e "$$" -e "$BASHPID" | while read -r p; do
		local st
		st=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f20) || continue
		[ -n "$st" ] && ((st <= $1)) && echo "$p"
	done
	true
}

# A process of the machine that exists and is not a zombie.
_running() {
	local st
	st=$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# PID is still the hostinit this harness started (not a reused PID).
_hosts_is_ours() {
	local ns
	[ -n "$1" ] || return 1
	ns=$(readlink "/proc/$1/ns/pid" 2>/dev/null) || return 1
	[[ " $HOSTS_NS " == *" $ns "* ]]
}

# PID is still the unshare this test shell started (its child).
_hosts_is_our_child() {
	[ -n "$1" ] && [ "$(awk '{print $4}' "/proc/$1/stat" 2>/dev/null)" = "$$" ]
}

_hosts_stop_host() {
	local pid1=$1 upid=$2 i
	if _hosts_is_ours "$pid1"; then
		kill -TERM "$pid1" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			_running "$pid1" || break
			sleep 0.05
		done
		_hosts_is_ours "$pid1" && kill -KILL "$pid1" 2>/dev/null
	fi
	if _hosts_is_our_child "$upid"; then
		for ((i = 0; i < 100; i++)); do
			_running "$upid" || break
			sleep 0.05
		done
		_running "$upid" && kill -KILL "$upid" 2>/dev/null
		wait "$upid" 2>/dev/null || true
	fi
	return 0
}

# Background jobs of the test shell started since hosts_setup.
hosts_own_jobs() {
	local j
	for j in $(jobs -p); do
		[[ " ${HOSTS_JOBS_BEFORE:-} " == *" $j "* ]] || echo "$j"
	done
}

hosts_teardown() {
	[ -n "${HOSTS_UP:-}" ] || return 0
	local failed=0 left i p j t0
	# now, as /proc/PID/stat counts (see _hosts_leftovers)
	t0=$(sed 's/^.*) //' /proc/self/stat | cut -d' ' -f20)
	if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -n "${SCRATCH:-}" ]; then
		hosts_diagnostics
	fi
	# Delete the veth first (deleting one end deletes both).
	if [ -n "${HOSTS_VETH_MADE:-}" ]; then
		if _hosts_is_ours "${SRC_PID1:-}"; then
			in_src ip link del "$HOSTS_IF_SRC" 2>/dev/null || true
		fi
		ip link del "$HOSTS_IF_SRC" 2>/dev/null || true
	fi
	_hosts_stop_host "${SRC_PID1:-}" "${HOSTS_SRC_UNSHARE:-}"
	_hosts_stop_host "${DST_PID1:-}" "${HOSTS_DST_UNSHARE:-}"
	# Background jobs the test started and left (the hosts are gone: they
	# end soon).  Jobs that existed before hosts_setup (bats' own timeout
	# watchdog) are not ours to touch.
	for j in $(hosts_own_jobs); do
		for ((i = 0; i < 40; i++)); do
			_running "$j" || break
			sleep 0.05
		done
		kill -KILL "$j" 2>/dev/null || true
		wait "$j" 2>/dev/null || true
	done
	# Anything still there after 3 s is a leak.
	local deadline=$(($(date +%s%3N) + 3000))
	while left=$(_hosts_leftovers "$t0") && [ -n "$left" ]; do
		(($(date +%s%3N) < deadline)) || break
		sleep 0.1
	done
	_hosts_release_ns
	if [ -n "$left" ]; then
		echo "hosts_teardown: processes left behind:" >&2
		for p in $left; do
			echo "  $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >&2
			kill -KILL "$p" 2>/dev/null || true
		done
		failed=1
	fi
	for p in ${HOSTS_CGROUPS:-}; do
		find "$p" -depth -type d -exec rmdir {} + 2>/dev/null
		[ ! -d "$p" ] || { echo "hosts_teardown: cannot remove cgroup $p" >&2; failed=1; }
	done
	for p in "${HOSTS_IF_SRC:-}" "${HOSTS_IF_DST:-}"; do
		[ -n "$p" ] || continue
		if ip link show "$p" >/dev/null 2>&1; then
			echo "hosts_teardown: veth $p left behind" >&2
			ip link del "$p" 2>/dev/null || true
			failed=1
		fi
	done
	HOSTS_UP=""
	SRC_PID1="" DST_PID1=""
	return "$failed"
}

# ---------------------------------------------------------------- tick logs

# A tick log holds lines "N WALL_MS" (counter, mtouch, openfile's data) or
# "ROUND N WALL_MS" (pipetree); other lines (READY, VERIFY PASS ...) are
# ignored; "FAIL ..." and "VERIFY FAIL ..." lines are failures.  A last
# line without its newline (being written) is ignored.

# check_ticks FILE: ticks must be 1, 2, 3, ... with no gap or repeat.
# Prints the largest wall-clock gap between consecutive ticks (ms).
check_ticks() {
	local f=$1
	[ -s "$f" ] || hosts_fail "check_ticks: $f is missing or empty" || return 1
	_complete_lines "$f" | awk -v file="$f" '
		function check(line,   a, n) {
			n = split(line, a, " ")
			if (a[1] == "FAIL" || (a[1] == "VERIFY" && a[2] == "FAIL")) {
				printf "check_ticks: %s: failure logged: %s\n", file, line > "/dev/stderr"
				bad = 1
				return
			}
			if (a[1] == "ROUND") { a[1] = a[2]; a[2] = a[3]; n-- }
			if (n != 2 || a[1] !~ /^[0-9]+$/ || a[2] !~ /^[0-9]+$/)
				return
			if (a[1] != last + 1) {
				if (++nbad <= 5)
					printf "check_ticks: %s: tick %s follows tick %d\n", file, a[1], last > "/dev/stderr"
				bad = 1
			}
			if (last > 0 && a[2] - wall > maxgap) { maxgap = a[2] - wall; at = a[1] }
			last = a[1]; wall = a[2]
		}
		{ check($0) }
		END {
			if (last == 0) {
				printf "check_ticks: %s: no ticks\n", file > "/dev/stderr"
				bad = 1
			}
			if (bad) exit 1
			print maxgap + 0
		}'
}

# Largest gap (ms) and the tick it ended at: "GAP TICK".
max_gap_at() {
	awk '{ if ($1 == "ROUND") { $1 = $2; $2 = $3; NF = 2 } }
	     NF == 2 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ {
		if (n++ && $2 - w > g) { g = $2 - w; t = $1 } w = $2 }
	     END { print g + 0, t + 0 }' "$1"
}

# FILE's complete lines (without a last line still being written).
_complete_lines() {
	if [ "$(tail -c1 "$1" | od -An -c | tr -d ' ')" = '\n' ]; then
		cat "$1"
	else
		sed '$d' "$1"
	fi
}

last_tick() {
	[ -s "$1" ] || { echo 0; return 0; }
	_complete_lines "$1" | awk '{ if ($1 == "ROUND") { $1 = $2; $2 = $3; NF = 2 } }
	     NF == 2 && $1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ { t = $1 }
	     END { print t + 0 }'
}

_tick_at_least() { [ "$(last_tick "$1")" -ge "$2" ]; }

wait_ticks() {
	wait_for "${3:-10}" _tick_at_least "$1" "$2" ||
		hosts_fail "$1: tick $2 not reached in ${3:-10}s (last $(last_tick "$1"))"
}

ticks_advance() {
	local now
	now=$(last_tick "$1")
	wait_ticks "$1" $((now + ${2:-20})) "${3:-10}"
}

_file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

_hosts_still_for() {
	local f=$1 ms=$2 s0 t0
	s0=$(_file_size "$f")
	t0=$(date +%s%3N)
	while (($(date +%s%3N) - t0 < ms)); do
		[ "$(_file_size "$f")" = "$s0" ] || return 1
		sleep 0.02
	done
}

# wait_frozen FILE MS [SEC]: FILE did not grow for MS ms (the workload
# writing it is frozen), within SEC seconds.
wait_frozen() {
	wait_for "${3:-10}" _hosts_still_for "$1" "$2" ||
		hosts_fail "$1 kept growing: its writer was never frozen for $2 ms"
}
