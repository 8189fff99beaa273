# Networked containers on the two test hosts (lib/hosts): a bridge that
# joins both hosts at layer 2, and a TCP client in dst that talks to an
# echo server in the container across a migration.
#
#   own_cgroups HOST
#                   the machine's cgroup hierarchies mounted again in
#                   HOST (in its cgroup namespace), as runc wants them
#   bridge_hosts [BRIDGE [ADDR/PREFIX]]
#                   phbr0 (or BRIDGE, with ADDR too) in each host takes the
#                   host's link and address: a container on it keeps
#                   $CT_ADDR wherever it runs
#   start_client    a client in dst: a numbered line every 20 ms to
#                   $CT_ADDR:7000, each echo checked (CLIENT_IN=cli: on
#                   lib/apps' third host instead)
#   stop_client     stop it; fails unless it saw every echo, in order, no
#                   reset; CLIENT_RES is "OK N MAXGAP_MS"

CT_ADDR=192.0.2.50

bridge_hosts() {
	local br=${1:-phbr0} gw=${2:-} h if addr
	for h in src dst; do
		[ $h = src ] && if=$HOSTS_IF_SRC addr=$SRC_ADDR || if=$HOSTS_IF_DST addr=$DST_ADDR
		in_$h ip link add "$br" type bridge &&
			in_$h ip link set "$br" up &&
			{ [ -z "$gw" ] || in_$h ip addr add "$gw" dev "$br"; } &&
			in_$h ip addr del "$addr/24" dev "$if" &&
			in_$h ip link set "$if" master "$br" &&
			in_$h ip addr add "$addr/24" dev "$br" || return 1
	done
	wait_for 10 in_src busybox ping -c1 -W1 "$DST_ADDR"
}

start_client() {
	cat >"$SCRATCH/client.py" <<'PY'
import os, socket, sys, time
addr, stop, out = sys.argv[1], sys.argv[2], sys.argv[3]
def say(msg):
    with open(out, "w") as f:
        f.write(msg + "\n")
try:
    s = socket.create_connection((addr, 7000), timeout=5)
    s.settimeout(60)
    f = s.makefile("rwb")
    n, gap, last = 0, 0.0, time.time()
    while not os.path.exists(stop):
        n += 1
        f.write(b"%d\n" % n)
        f.flush()
        got = f.readline()
        if got != b"%d\n" % n:
            say("FAIL line %d echoed as %r" % (n, got))
            sys.exit(1)
        now = time.time()
        gap, last = max(gap, now - last), now
        if n == 20:
            open(out + ".ready", "w").close()
        time.sleep(0.02)
    say("OK %d %d" % (n, gap * 1000))
except Exception as e:
    say("FAIL %s: %s" % (type(e).__name__, e))
    sys.exit(1)
PY
	if [ "${CLIENT_IN:-dst}" = cli ]; then
		in_cli setsid python3 "$SCRATCH/client.py" "$CT_ADDR" "$SCRATCH/client.stop" \
			"$SCRATCH/client.res" </dev/null >/dev/null 2>&1 3>&- 4>&- &
		CLIENT=$!
	else
		CLIENT=$(start_in_dst python3 "$SCRATCH/client.py" "$CT_ADDR" \
			"$SCRATCH/client.stop" "$SCRATCH/client.res") || return 1
	fi
	wait_for 20 test -e "$SCRATCH/client.res.ready"
}

stop_client() {
	touch "$SCRATCH/client.stop"
	wait_for 90 test -s "$SCRATCH/client.res" || return 1
	CLIENT_RES=$(cat "$SCRATCH/client.res")
	[[ "$CLIENT_RES" == OK* ]] || { echo "TCP client: $CLIENT_RES" >&2; return 1; }
}

# own_cgroups HOST: the machine's cgroup hierarchies, mounted again in HOST
# (in its cgroup namespace: rooted at the host's own cgroups).
own_cgroups() {
	local mnts
	mnts=$(findmnt -rn -t cgroup,cgroup2 -o TARGET,FSTYPE,FS-OPTIONS) || return 1
	# shellcheck disable=SC2016
	in_"$1" sh -c 'mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup || exit 1
		echo "$0" | while read -r dir type opts; do
			mkdir -p "$dir" && mount -t "$type" -o "$opts" cgroup "$dir" || exit 1
		done' "$mnts"
}
