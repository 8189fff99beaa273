#!/usr/bin/env bats
# Docker and `phaul migrate --docker NAME|ID`.
#
# phaul refuses --docker at once: dockerd 20.10 lists as running only a
# container that its own containerd shim started or restored, under an ID
# it chose itself (docs/CONTAINERS.md, "Docker").  The first test checks
# the refusal and runs everywhere.  The others run Debian's docker.io 20.10
# (containerd, runc, the installed CRIU) in each test host, are skipped
# with the reason when dockerd is missing or does not start, and check what
# the refusal and its documented alternative rest on:
#   - Docker's own stop-and-copy between the two hosts (the alternative
#     docs/CONTAINERS.md gives): the container runs on dst under the same
#     name and a new ID, its counter goes on, docker exec/logs/stop work;
#   - a restore held at CRIU's post-restore by an action script in
#     /etc/criu/runc.conf (the only CRIU config runc reads for a Docker
#     container): a "no" leaves the container created, not running, and the
#     restored tree gone; a "yes" lets it run.  That is how a future driver
#     could hold Docker's restore until phaul's commit.
#
# Each host has its own /run (docker's and containerd's sockets and state),
# its own cgroup tree, a tmpfs on /etc/docker (dockerd writes key.json
# there) and the daemons' data under $SCRATCH/docker-HOST; docker0 is made
# in the host's network namespace and no iptables rule is written.
#
#   bats tests/e2e/53-docker.bats

load lib/hosts
load lib/phaul
load lib/ctnet

DOCKER_CLI=/usr/bin/docker # Debian's 20.10 client, whatever else is on PATH
CT=phd-web
# a counter line every 50 ms on its stdout (docker logs).  It writes nothing
# in its writable layer: `docker create` gives the container a fresh one on
# dst, where a file made on src (a FIFO in /tmp, say) is missing and fails
# CRIU's restore ("Can't open file tmp/f")
# shellcheck disable=SC2016
CT_LOOP='i=0; while :; do i=$((i+1)); echo "$i"; sleep 0.05; done'

setup() {
	HOSTS_CGROUPNS=1
	hosts_setup || return 1
	phaul_setup || return 1
	DOCKER_UP=()
}

teardown() {
	local h
	for h in "${DOCKER_UP[@]}"; do
		docker_stop "$h" || true
	done
	[ -z "${MADE_ETC_CRIU:-}" ] || rmdir /etc/criu 2>/dev/null || true
	hosts_teardown
}

dk() {
	local h=$1
	shift
	in_"$h" "$DOCKER_CLI" -H unix:///run/docker.sock "$@"
}

# docker_start HOST: containerd and dockerd in HOST; skips the test with
# dockerd's last log line when they are not installed or do not come up.
docker_start() {
	local h=$1 d=$SCRATCH/docker-$1
	[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/containerd ] && [ -x "$DOCKER_CLI" ] ||
		skip "docker.io (Debian's dockerd 20.10 and containerd) is not installed"
	command -v busybox >/dev/null || skip "busybox-static is not installed"
	mkdir -p "$d"
	if [ ${#DOCKER_UP[@]} = 0 ]; then
		own_cgroups src && own_cgroups dst || return 1
	fi
	in_"$h" sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run &&
		mount -t tmpfs -o mode=0755 tmpfs /etc/docker &&
		mkdir -p /run/containerd /run/docker' || return 1
	DOCKER_UP+=("$h")
	# not the machine's /etc/containerd/config.toml: nothing of it outside $d
	printf '%s\n' 'version = 2' 'disabled_plugins = ["io.containerd.grpc.v1.cri"]' \
		'[plugins."io.containerd.internal.v1.opt"]' "  path = \"$d/opt\"" >"$d/containerd.toml"
	start_in_"$h" -o "$d/containerd.log" containerd --config "$d/containerd.toml" --root "$d/containerd" \
		--state /run/containerd --address /run/containerd/containerd.sock >"$d/containerd.pid" ||
		return 1
	wait_for 10 in_"$h" test -S /run/containerd/containerd.sock || return 1
	start_in_"$h" -o "$d/dockerd.log" dockerd --containerd /run/containerd/containerd.sock \
		--data-root "$d/data" --exec-root /run/docker --pidfile /run/docker.pid \
		-H unix:///run/docker.sock --iptables=false --ip-masq=false \
		--storage-driver overlay2 --experimental >"$d/dockerd.pid" || return 1
	local _
	for _ in $(seq 100); do
		dk "$h" info >/dev/null 2>&1 && break
		if ! pid_alive_in "$h" "$(cat "$d/dockerd.pid")"; then
			skip "dockerd does not start here: $(tail -n1 "$d/dockerd.log")"
		fi
		sleep 0.1
	done
	dk "$h" info >/dev/null || return 1
	# the image: a busybox-static rootfs, imported (nothing is pulled)
	local r=$SCRATCH/bbroot
	if [ ! -d "$r" ]; then
		mkdir -p "$r/bin" "$r/tmp" && cp "$(command -v busybox)" "$r/bin/busybox" &&
			ln -s busybox "$r/bin/sh" && ln -s busybox "$r/bin/sleep" &&
			ln -s busybox "$r/bin/hostname" || return 1
	fi
	tar -C "$r" -c . | dk "$h" import - phaul-bb:1 >/dev/null
}

# docker_stop HOST: its containers removed, dockerd and containerd gone.
docker_stop() {
	local h=$1 d=$SCRATCH/docker-$1 ids p
	ids=$(dk "$h" ps -aq 2>/dev/null) || true
	# shellcheck disable=SC2086
	[ -z "$ids" ] || dk "$h" rm -f $ids >/dev/null 2>&1 || true
	for p in dockerd containerd; do
		[ -s "$d/$p.pid" ] || continue
		in_"$h" kill -TERM "$(cat "$d/$p.pid")" 2>/dev/null || continue
		wait_for 20 eval "! pid_alive_in $h $(cat "$d/$p.pid")" || return 1
	done
}

# docker_restore: `docker start --checkpoint cp1` in dst; on a failure, the
# end of containerd's log (CRIU's own log goes with the shim's bundle).
docker_restore() {
	dk dst start --checkpoint cp1 "$CT" && return 0
	tail -n 5 "$SCRATCH/docker-dst/containerd.log" >&2
	return 1
}

ct_state() { dk "$1" inspect -f '{{.State.Status}} {{.State.Pid}} {{.State.StartedAt}}' "$CT"; }
ct_lines() { dk "$1" logs "$CT" 2>/dev/null | grep -c .; }

# start_ct: the counter container in src, running and counting.
start_ct() {
	dk src run -d --name "$CT" --hostname "$CT" phaul-bb:1 \
		sh -c "$CT_LOOP" >/dev/null || return 1
	wait_for 10 eval '[ "$(ct_lines src)" -ge 5 ]'
}

# handover: Docker's own stop-and-copy up to the restore, as
# docs/CONTAINERS.md gives it: checkpoint in src (the container exits
# there), a container of the same name and config created in dst, the
# checkpoint copied into that container's directory under dst's data root
# (dockerd 20.10 refuses --checkpoint-dir).  Sets SRC_ID, DST_ID, LAST.
handover() {
	SRC_ID=$(dk src inspect -f '{{.Id}}' "$CT") || return 1
	dk src checkpoint create "$CT" cp1 >/dev/null || return 1
	[ "$(dk src inspect -f '{{.State.Status}}' "$CT")" = exited ] || {
		echo "the container still runs in src after its checkpoint" >&2
		return 1
	}
	LAST=$(dk src logs "$CT" | tail -n1)
	DST_ID=$(dk dst create --name "$CT" --hostname "$CT" phaul-bb:1 \
		sh -c "$CT_LOOP") || return 1
	local sroot droot
	sroot=$(dk src info -f '{{.DockerRootDir}}') && droot=$(dk dst info -f '{{.DockerRootDir}}') ||
		return 1
	mkdir -p "$droot/containers/$DST_ID/checkpoints" &&
		cp -a "$sroot/containers/$SRC_ID/checkpoints/cp1" "$droot/containers/$DST_ID/checkpoints/"
}

# assert_counts_on HOST FIRST: HOST's log of the container counts on from
# FIRST, one by one (none lost, none repeated).
assert_counts_on() {
	local h=$1 first=$2 seq
	wait_for 10 eval '[ "$(ct_lines '"$h"')" -ge 5 ]' || return 1
	seq=$(dk "$h" logs "$CT" | head -n5 | tr '\n' ' ')
	[ "$seq" = "$first $((first + 1)) $((first + 2)) $((first + 3)) $((first + 4)) " ] || {
		echo "the counter on $h does not go on from $first: $seq" >&2
		return 1
	}
}

@test "docker: --docker is refused at once, in one line, before any connection" {
	serve_start
	local before
	before=$(wc -c <"$SERVE_LOG")
	migrate --key "$KEY" --docker web
	[ "$status" = 2 ]
	assert_failed_with '^phaul: --docker web: not supported: dockerd adopts only a container it restores itself .*docs/CONTAINERS.md'
	[ "$(wc -c <"$SERVE_LOG")" = "$before" ] || {
		echo "the daemon saw something: $(tail -n3 "$SERVE_LOG")" >&2
		return 1
	}
	# over ssh: ssh is not even started
	run --separate-stderr in_src "$PHAUL" migrate --to ssh://root@"$DST_ADDR" \
		--ssh-cmd "touch $SCRATCH/ssh-ran" --docker 0123abcd
	[ "$status" = 2 ]
	assert_failed_with 'not supported'
	[ ! -e "$SCRATCH/ssh-ran" ]
	# the usage says so
	run "$PHAUL" migrate --help
	grep -q -- '--docker NAME|ID' <<<"$output"
}

@test "docker: a running container is untouched by --docker; Docker's own stop-and-copy moves it, new ID" {
	docker_start src
	docker_start dst
	serve_start
	start_ct
	local st
	st=$(ct_state src)
	migrate --key "$KEY" --docker "$CT"
	[ "$status" = 2 ]
	[ "$(ct_state src)" = "$st" ]
	[[ "$st" == running* ]]
	handover
	# dockerd chose the ID: no API gives it the source's
	[ "$DST_ID" != "$SRC_ID" ]
	docker_restore
	[ "$(dk dst inspect -f '{{.State.Running}} {{.Name}}' "$CT")" = "true /$CT" ]
	assert_counts_on dst $((LAST + 1))
	[ "$(dk dst exec "$CT" hostname)" = "$CT" ]
	dk dst ps --format '{{.Names}} {{.Status}}' | grep -q "^$CT Up"
	dk dst stop -t 1 "$CT" >/dev/null
	[ "$(dk dst inspect -f '{{.State.Status}}' "$CT")" = exited ]
	# the source keeps its stopped container and the checkpoint: its way
	# back (log line N is N: the count goes on from LAST, none repeated)
	[ "$(dk src inspect -f '{{.State.Status}}' "$CT")" = exited ]
	dk src start --checkpoint cp1 "$CT"
	wait_for 10 eval '[ "$(ct_lines src)" -ge $((LAST + 5)) ]'
	[ -z "$(dk src logs "$CT" | awk 'NR != $1' | head -n3)" ]
}

@test "docker: a restore held at post-restore by runc.conf's action script: no keeps it created, yes runs it" {
	docker_start src
	docker_start dst
	start_ct
	handover
	local hold=$SCRATCH/hold
	mkdir -p "$hold"
	cat >"$hold/script" <<EOF
#!/bin/sh
echo "\$CRTOOLS_SCRIPT_ACTION \$CRTOOLS_INIT_PID" >>$hold/log
[ "\$CRTOOLS_SCRIPT_ACTION" = post-restore ] || exit 0
echo "\$CRTOOLS_INIT_PID" >$hold/pid
for i in \$(seq 200); do [ -s $hold/answer ] && exit "\$(cat $hold/answer)"; sleep 0.1; done
exit 1
EOF
	chmod +x "$hold/script"
	echo "action-script $hold/script" >"$hold/runc.conf"
	# /etc/criu/runc.conf in dst's mount namespace only
	if [ ! -d /etc/criu ]; then
		mkdir /etc/criu
		MADE_ETC_CRIU=1
	fi
	in_dst sh -c "mount -t tmpfs tmpfs /etc/criu && cp $hold/runc.conf /etc/criu/runc.conf"

	# "no": docker start fails, the restored tree is gone, the container
	# stays created in dst; the source's checkpoint is still there
	in_dst sh -c "$DOCKER_CLI -H unix:///run/docker.sock start --checkpoint cp1 $CT \
		>$hold/start.out 2>&1; echo \$? >$hold/start.rc" &
	wait_for 20 test -s "$hold/pid"
	local pid
	pid=$(cat "$hold/pid")
	pid_alive_in dst "$pid"
	# held: not running for Docker (`docker ps` reads a copy; `docker
	# inspect` would wait for the start, which holds the container's lock)
	[ "$(dk dst ps -a --filter name="^/$CT\$" --format '{{.Status}}')" = Created ]
	echo 1 >"$hold/answer"
	wait_for 20 test -s "$hold/start.rc"
	[ "$(cat "$hold/start.rc")" != 0 ]
	[ "$(dk dst inspect -f '{{.State.Status}}' "$CT")" = created ]
	wait_for 5 eval '! pid_alive_in dst '"$pid"
	grep -q 'restore failed' "$hold/start.out"

	# "yes": the same restore again runs it
	rm -f "$hold/pid" "$hold/start.rc"
	echo 0 >"$hold/answer"
	docker_restore
	[ "$(dk dst inspect -f '{{.State.Running}}' "$CT")" = true ]
	assert_counts_on dst $((LAST + 1))
	grep -q '^post-resume ' "$hold/log"
}

# Docker's own stop-and-copy of mtouch with 256 MiB, the checkpoint sent
# over the hosts' link at 1 Gbit/s: its downtime, for docs/CONTAINERS.md.
# Opt-in (PHAUL_DOCKER_BENCH=1): about 30 s.
@test "docker: Docker's own stop-and-copy of a 256 MiB container over 1 Gbit/s (PHAUL_DOCKER_BENCH=1)" {
	[ "${PHAUL_DOCKER_BENCH:-}" = 1 ] || skip "set PHAUL_DOCKER_BENCH=1 to measure"
	docker_start src
	docker_start dst
	_hosts_rate 1gbit
	local r=$SCRATCH/mtroot ticks=$SCRATCH/data/ticks
	mkdir -p "$r/bin" "$r/data" "$SCRATCH/data" && cp -a "$SCRATCH/bbroot/." "$r/" &&
		cc -O2 -static -std=gnu11 -D_GNU_SOURCE -o "$r/bin/mtouch" \
			"$REPO_ROOT/tests/workloads/mtouch.c" -l:libxxhash.a
	local h
	for h in src dst; do
		tar -C "$r" -c . | dk $h import - phaul-mt:1 >/dev/null
	done
	local args=(--name "$CT" --hostname "$CT" -v "$SCRATCH/data:/data" phaul-mt:1
		/bin/mtouch --size 256 --hot 4 --rate 16 --log /data/ticks)
	dk src run -d "${args[@]}" >/dev/null
	wait_for 60 grep -q '^READY' "$ticks"
	ticks_advance "$ticks" 30 10
	SRC_ID=$(dk src inspect -f '{{.Id}}' "$CT")
	# created beforehand: not part of the downtime
	DST_ID=$(dk dst create "${args[@]}")
	local sdir ddir t0 t1 t2 t3 size
	sdir=$(dk src info -f '{{.DockerRootDir}}')/containers/$SRC_ID/checkpoints
	ddir=$(dk dst info -f '{{.DockerRootDir}}')/containers/$DST_ID/checkpoints
	mkdir -p "$ddir"
	start_in_dst -o "$SCRATCH/nc.out" sh -c "busybox nc -l -p 7500 | tar -C $ddir -x" >/dev/null
	wait_for 10 eval "in_dst ss -Hltn 'sport = :7500' | grep -q 7500"
	t0=$EPOCHREALTIME
	dk src checkpoint create "$CT" cp1 >/dev/null
	t1=$EPOCHREALTIME
	in_src bash -c "tar -C $sdir -c cp1 >/dev/tcp/$DST_ADDR/7500"
	wait_for 30 eval "! in_dst ss -Htn 'sport = :7500' | grep -q ESTAB"
	wait_for 30 eval "[ -z \"\$(in_dst pgrep -x tar)\" ]"
	t2=$EPOCHREALTIME
	docker_restore
	t3=$EPOCHREALTIME
	size=$(du -sm "$sdir/cp1" | cut -f1)
	ticks_advance "$ticks" 30 10
	local gap
	gap=$(check_ticks "$ticks")
	dk dst kill -s USR1 "$CT" >/dev/null
	wait_for 30 grep -q '^VERIFY' "$ticks"
	grep '^VERIFY' "$ticks" | tail -n1 | grep -q '^VERIFY PASS pages=65536 ' ||
		{ echo "memory check on dst: $(grep '^VERIFY' "$ticks" | tail -n1)" >&2; return 1; }
	ms() { echo "$1 $2" | awk '{ printf "%d", ($2 - $1) * 1000 }'; }
	note "docker stop-and-copy 256 MiB at 1 Gbit/s: down $(ms "$t0" "$t3") ms (checkpoint $(ms "$t0" "$t1"), copy $(ms "$t1" "$t2") for $size MiB, docker start --checkpoint $(ms "$t2" "$t3")), workload pause $gap ms"
}
