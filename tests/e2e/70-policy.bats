#!/usr/bin/env bats
# The destination's policy (phaul serve --policy, docs/SECURITY.md) against
# a hostile source that holds the key: build/tools/phaul-hostile, built on
# phaul's own protocol code, asks for what `phaul migrate` never would.
# Each request is refused at the preflight with the rule and the setting
# that would allow it; nothing changes on the destination; the daemon
# keeps serving. Also: a local user squatting on the post-copy resume
# socket's old name is never relayed to.

load lib/hosts
load lib/phaul
load lib/fixtures

HOSTILE=${HOSTILE:-$REPO_ROOT/build/tools/phaul-hostile}

setup() {
	hosts_setup
	phaul_setup
	fx_setup
	[ -x "$HOSTILE" ] || { echo "$HOSTILE missing: run 'make workloads'" >&2; return 1; }
}

teardown() {
	hosts_teardown
	[ -z "${SQ:-}" ] || rm -rf "$SQ"
}

# hostile ARGS...: phaul-hostile in src against the daemon: $status, $output.
hostile() {
	run --separate-stderr in_src timeout -k 5 60 "$HOSTILE" --to "$DST_ADDR:$PHAUL_PORT" \
		--key "$KEY" "$@"
	echo "# phaul-hostile $* -> $status: $output ${stderr:+(stderr: $stderr)}" >>"$SCRATCH/hostile.log"
}

# refused REGEX: the last request was refused at the preflight, saying REGEX.
refused() {
	[ "$status" -eq 1 ] && [[ "$output" == "REFUSED "* ]] ||
		{ echo "not refused ($status): $output $stderr" >&2; return 1; }
	grep -qE -- "$1" <<<"$output" ||
		{ echo "refusal does not match /$1/: $output" >&2; return 1; }
}

# A snapshot of what the destination's file system holds where the
# requests point, to compare before and after.
dst_state() {
	local root=/proc/$DST_PID1/root
	{
		ls -la --time-style=+%s "$root/usr/local/sbin" "$root/etc" 2>&1
		sha256sum "$root/etc/passwd"
		findmnt -rn -N "$DST_PID1" -o TARGET | sort
		find "$SCRATCH" -path "$WORKDIR" -prune -o -print 2>/dev/null | grep -v -e hostile.log \
			-e 'serve.log' -e '\.out$' | sort
	}
}

@test "policy: with no policy file a key holder's requests beyond plain process trees are refused at the preflight; nothing changes on dst; the daemon serves on" {
	serve_start
	grep -q 'policy (defaults, no --policy): mode = stop live lazy hybrid; sync_root = (none)' \
		"$SERVE_LOG"
	truncate -s 16M "$SCRATCH/any.img"
	printf 'lxc.rootfs.path = dir:/\nlxc.hook.pre-start = /bin/sh -c "id >/tmp/pwned"\n' \
		>"$SCRATCH/lxc.conf"
	local before
	before=$(dst_state)

	hostile --mode restart --restart-arg /bin/sh --restart-arg -c --restart-arg 'id >/tmp/pwned'
	refused "policy: mode restart is not allowed here \(allow it with 'mode = stop live lazy hybrid restart'"
	hostile --fs sync:/usr/local/sbin
	refused "sync: directory /usr/local/sbin is not under any sync_root \(allow it with 'sync_root = DIR'"
	hostile --fs "sync:$SCRATCH/absent/sbin"
	refused "sync_root"
	hostile --fs "disk:$SCRATCH/any.img:/etc"
	refused "disk: image .* is not under any disk_image_root"
	hostile --htype oci --oci-bundle / --oci-rootfs /
	refused "OCI bundle / is not under any oci_root"
	hostile --htype lxc --lxc-path /var/lib/lxc --lxc-config "$SCRATCH/lxc.conf"
	refused "lxcpath /var/lib/lxc is not under any lxc_root"
	hostile --shell-job
	refused "shell jobs .* are not allowed \(allow it with 'shell_job = yes'"
	# past the policy: an estimate near 2^64 does not wrap the space check
	hostile --est-bytes 18446744073709551000
	refused "not enough space"

	[ "$(dst_state)" = "$before" ] ||
		{ diff <(echo "$before") <(dst_state) >&2; echo "dst changed" >&2; false; }
	[ ! -e /tmp/pwned ]
	assert_workdir_clean
	pid_alive_in dst "$DAEMON_PID"
	grep -q 'error: preflight: policy: ' "$SERVE_LOG"
	# a plain migration still works
	fx_start_counter
	fx_migrate "$PID"
	[ "$status" -eq 0 ] || { echo "migrate after the refusals failed: $stderr" >&2; false; }
	fx_assert_migrated
}

@test "policy: path tricks under an allowed root (.., a symlink out, a dangling symlink, very long names) are refused; a new directory under it is accepted and removed again" {
	local ok=$SCRATCH/allowed long
	mkdir -p "$ok" "$SCRATCH/outside"
	ln -s /usr/local "$ok/link"
	ln -s "$SCRATCH/outside/new" "$ok/dangling"
	policy_allow "sync_root = $ok"
	serve_start
	local before
	before=$(dst_state)

	hostile --fs "sync:$ok/../outside"
	refused "policy: sync: directory '.*/allowed/../outside' is refused: not an absolute path"
	hostile --fs "sync:$ok/link/sbin"
	refused "sync: directory .*/allowed/link/sbin \(resolved: /usr/local/sbin\) is not under any sync_root"
	hostile --fs "sync:$ok/dangling/x"
	refused "dangling/x' is refused: Too many levels of symbolic links"
	long=$(printf 'a%.0s' $(seq 300))
	hostile --fs "sync:$ok/$long"
	refused "refused: File name too long"
	long=$(printf '/abcdefgh%.0s' $(seq 450))
	hostile --fs "sync:$ok$long"
	[ "$status" -eq 1 ] && [[ "$output" == "REFUSED "* ]]
	[ "$(dst_state)" = "$before" ] ||
		{ diff <(echo "$before") <(dst_state) >&2; echo "dst changed" >&2; false; }
	[ ! -e "$SCRATCH/outside/new" ]

	# absent under the root: accepted (created by the sync driver), and
	# removed when the source gives up
	hostile --fs "sync:$ok/new/dir"
	[ "$status" -eq 0 ] && [ "$output" = ACCEPTED ] ||
		{ echo "a new directory under the root was refused: $output" >&2; false; }
	wait_for 10 eval '[ ! -e "/proc/$DST_PID1/root$ok/new/dir" ]' ||
		{ echo "the directory made for the refused source stayed" >&2; false; }
	assert_workdir_clean
	pid_alive_in dst "$DAEMON_PID"
}

@test "policy: a permissive policy allows exactly what it names: restart runs any command as root, yet its stdout file must be under a stdio_root" {
	mkdir -p "$SCRATCH/logs"
	policy_allow "mode = stop restart" "stdio_root = $SCRATCH/logs"
	serve_start
	local sum
	sum=$(sha256sum </proc/"$DST_PID1"/root/etc/passwd)
	hostile --mode restart --restart-stdout /etc/passwd --restart-arg /bin/sh \
		--restart-arg -c --restart-arg 'echo pwned'
	[ "$status" -eq 1 ] && [[ "$output" == *"RESTART-REFUSED policy: restart stdout file /etc/passwd is not under any stdio_root"* ]] ||
		{ echo "restart into /etc/passwd: $output" >&2; false; }
	[ "$(sha256sum </proc/"$DST_PID1"/root/etc/passwd)" = "$sum" ]
	# a symlink under the stdio root that points out of it
	ln -s /etc/passwd "$SCRATCH/logs/out"
	hostile --mode restart --restart-stdout "$SCRATCH/logs/out" --restart-arg /bin/true
	[ "$status" -eq 1 ] && [[ "$output" == *"RESTART-REFUSED policy: restart stdout file"*"(resolved: /etc/passwd)"* ]] ||
		{ echo "restart through a symlink: $output" >&2; false; }
	# what the policy allows: a key holder's command, run as root on dst
	touch "$SCRATCH/logs/ok.out"
	hostile --mode restart --restart-stdout "$SCRATCH/logs/ok.out" --restart-arg /bin/sh \
		--restart-arg -c --restart-arg 'id -u'
	[ "$status" -eq 0 ] && [[ "$output" == *RESTARTED* ]] || { echo "restart: $output" >&2; false; }
	wait_for 10 grep -qx 0 "$SCRATCH/logs/ok.out"
	# lazy stays refused: not in this policy's modes
	hostile --mode lazy
	refused "mode lazy is not allowed here \(allow it with 'mode = stop lazy restart' in .*/policy\)"
	pid_alive_in dst "$DAEMON_PID"
}

@test "policy: with container roots allowed, a host bind, a stdio file or an LXC hook outside what the policy names is still refused" {
	local ct=$SCRATCH/ct
	mkdir -p "$ct/bundle/rootfs" "$ct/lxc/c1/rootfs"
	policy_allow "oci_root = $ct" "lxc_root = $ct/lxc"
	serve_start
	# the control: inside the roots, the policy lets it through (the
	# runtime's own checks may still refuse it: not the policy)
	hostile --htype oci --oci-bundle "$ct/bundle" --oci-rootfs "$ct/bundle/rootfs" \
		--oci-root "$ct/runc"
	refute grep -q 'policy:' <<<"$output"
	hostile --htype oci --oci-bundle "$ct/bundle" --oci-rootfs / --oci-root "$ct/runc"
	refused "OCI rootfs / is not under any oci_root"
	hostile --htype oci --oci-bundle "$ct/bundle" --oci-root "$ct/runc" --oci-mount /
	refused "bind mount source / is not under any bind_root"
	hostile --htype oci --oci-bundle "$ct/bundle" --oci-root "$ct/runc" --oci-stdio /etc/shadow
	refused "stdio file /etc/shadow is not under any stdio_root"
	printf 'lxc.rootfs.path = dir:%s\nlxc.hook.start-host = /bin/sh -c "id >/tmp/pwned"\n' \
		"$ct/lxc/c1/rootfs" >"$SCRATCH/hook.conf"
	hostile --htype lxc --lxc-path "$ct/lxc" --lxc-config "$SCRATCH/hook.conf"
	refused "LXC hooks and fstab files run or mount as root on the destination \(allow it with 'lxc_hooks = yes'"
	printf 'lxc.rootfs.path = dir:%s\nlxc.mount.entry = /etc etc none bind 0 0\n' \
		"$ct/lxc/c1/rootfs" >"$SCRATCH/bind.conf"
	hostile --htype lxc --lxc-path "$ct/lxc" --lxc-config "$SCRATCH/bind.conf"
	refused "lxc.mount.entry source /etc is not under any bind_root"
	[ ! -e /tmp/pwned ]
	[ ! -e "$ct/lxc/hostile" ]
	pid_alive_in dst "$DAEMON_PID"
	assert_workdir_clean
}

@test "policy: phaul check shows a policy refusal like any other blocker" {
	serve_start
	fx_start_counter
	run --separate-stderr in_src "$PHAUL" check --to "$DST_ADDR:$PHAUL_PORT" --key "$KEY" \
		--workdir "$SRC_WORKDIR" --pid "$PID" --fs sync:/usr/local/sbin
	[ "$status" -eq 1 ] || { echo "check exited $status: $output $stderr" >&2; false; }
	grep -q "policy: sync: directory /usr/local/sbin is not under any sync_root" <<<"$output$stderr"
	assert_only_in src "$PID"
}

@test "policy: an unsafe or malformed policy file stops the daemon at start, saying why" {
	local f=$SCRATCH/bad.policy out
	printf 'mode = stop\n' >"$f"
	chmod 0620 "$f"
	run "$PHAUL" serve --listen 127.0.0.1:1 --key "$KEY" --policy "$f"
	[ "$status" -ne 0 ] && [[ "$output" == *"not writable by group or others"* ]]
	chmod 0600 "$f"
	ln -s "$f" "$SCRATCH/link.policy"
	run "$PHAUL" serve --listen 127.0.0.1:1 --key "$KEY" --policy "$SCRATCH/link.policy"
	[ "$status" -ne 0 ] && [[ "$output" == *"cannot open the policy file"* ]]
	printf 'mode = stop\nsync_root = relative\n' >"$f"
	run "$PHAUL" serve --listen 127.0.0.1:1 --key "$KEY" --policy "$f"
	[ "$status" -ne 0 ] && [[ "$output" == *"bad.policy:2: sync_root"* ]]
	# the example in contrib/ loads, and means the defaults
	install -m 600 "$REPO_ROOT/contrib/policy.example" "$SCRATCH/policy"
	serve_start
	out=$(grep 'policy (' "$SERVE_LOG")
	[[ "$out" == *"mode = stop live lazy hybrid; sync_root = (none)"*"shell_job = no; lxc_hooks = no; podman = no" ]]
}

@test "policy: a local user squatting on the resume socket's names during post-copy is never relayed to; the migration completes" {
	require_fault dst.postcopy
	serve_start PHAUL_FAULT=dst.postcopy
	fx_start_mtouch 256 16 64
	# the squatter runs as nobody: its script and log where nobody reaches
	SQ=$(mktemp -d /tmp/phaul-squat.XXXXXX)
	chmod 755 "$SQ"
	touch "$SQ/log"
	chmod 666 "$SQ/log"
	cat >"$SQ/squat.py" <<'PY'
import os, socket, sys, select, time
idf, workdir, logf = sys.argv[1], sys.argv[2], sys.argv[3]
log = open(logf, "a", buffering=1)
log.write("uid %d\n" % os.getuid())
# the session id, as soon as the test sees it (/proc/net/unix would show
# it too when a session listened on an abstract name)
while not os.path.exists(idf) or not open(idf).read().strip():
    time.sleep(0.005)
hexid = open(idf).read().strip()
path = "%s/in-%s/resume.sock" % (workdir, hexid)
socks = []
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.bind("\0phaul-pages-" + hexid)    # the name phaul used to connect to
    s.listen(4)
    socks.append(s)
    log.write("BOUND abstract\n")
except OSError as e:
    log.write("abstract: %s\n" % e)
p = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    p.bind(path)
    p.listen(4)
    socks.append(p)
    log.write("BOUND path\n")
except OSError as e:
    log.write("path: %s\n" % e.strerror)
while socks:
    r, _, _ = select.select(socks, [], [], 120)
    for x in r:
        c, _ = x.accept()
        log.write("RELAYED TO US\n")
PY
	start_in_dst -o "$SCRATCH/squat.out" setpriv --reuid=65534 --regid=65534 --clear-groups \
		/usr/bin/python3 "$SQ/squat.py" "$SQ/id" "$WORKDIR" "$SQ/log" >/dev/null
	wait_for 10 grep -q 'uid 65534' "$SQ/log"
	fx_migrate_bg -- --mode lazy --bandwidth 400 -v --json "$PID"
	wait_for 30 grep -qE 'session [0-9a-f]{32} from' "$SERVE_LOG"
	grep -oE 'session [0-9a-f]{32} from' "$SERVE_LOG" | head -1 | cut -d' ' -f2 >"$SQ/id.new"
	chmod 644 "$SQ/id.new"
	mv "$SQ/id.new" "$SQ/id"
	wait_for 10 grep -q 'BOUND abstract' "$SQ/log"
	# in place before the source came back
	refute grep -q 'the source is back' "$SERVE_LOG"
	fx_wait_migrate_job "$MJOB" 120
	[ "$status" -eq 0 ] || { echo "migrate exited $status: $stderr" >&2; false; }
	grep -q "reconnected: post-copy goes on" <<<"$stderr" ||
		{ echo "the source never reconnected: $stderr" >&2; false; }
	grep -q "the source is back" "$SERVE_LOG"
	grep -qx 'uid 65534' "$SQ/log"
	grep -q 'path: Permission denied' "$SQ/log"
	refute grep -q 'RELAYED TO US' "$SQ/log"
	grep -q "injected failure at dst.postcopy" "$SERVE_LOG"
	assert_only_in dst "$PID"
	fx_verify_mtouch dst
}
