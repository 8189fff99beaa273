#!/usr/bin/env bats
# --fs sync:DIR: a directory private to each host (a tmpfs mounted at the
# same path in each host's mount namespace) is copied to the destination
# in rounds while the workload runs, and a last time while it is frozen.
# The trees must then be identical: contents, holes, owners, modes, times,
# xattrs, ACLs, hard links, symlinks, devices, fifos, deletions.

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	hosts_setup
	phaul_setup
	fx_setup
	DATA=$SCRATCH/data
	mkdir -p "$DATA"
	in_src mount -t tmpfs -o size=600m tmpfs "$DATA"
	in_dst mount -t tmpfs -o size=600m tmpfs "$DATA"
	SRC_DATA=/proc/$SRC_PID1/root$DATA
	DST_DATA=/proc/$DST_PID1/root$DATA
	policy_allow "sync_root = $DATA"
}

teardown() {
	hosts_teardown
}

# A tree with every kind of file, in src's DATA.
make_tree() {
	local d=$SRC_DATA/tree
	mkdir -p "$d/sub/deep/er" "$d/empty" "$d/sticky"
	chmod 1777 "$d/sticky"
	echo "hello" >"$d/plain"
	head -c 3M /dev/urandom >"$d/random"
	truncate -s 64M "$d/sparse"
	echo middle | dd of="$d/sparse" bs=1 seek=$((20 << 20)) conv=notrunc status=none
	echo end | dd of="$d/sparse" bs=1 seek=$(((64 << 20) - 4)) conv=notrunc status=none
	echo "linked" >"$d/sub/a"
	ln "$d/sub/a" "$d/sub/deep/hardlink"
	ln "$d/sub/a" "$d/hardlink2"
	ln -s sub/a "$d/rel-symlink"
	ln -s /nowhere/at/all "$d/dangling-symlink"
	mkfifo "$d/fifo"
	mknod "$d/chardev" c 1 3
	mknod "$d/blockdev" b 7 200
	echo owned >"$d/owned"
	chown 1234:5678 "$d/owned"
	chmod 4750 "$d/owned"
	echo x >"$d/name with spaces"
	setfattr -n user.colour -v blue "$d/plain"
	setfattr -n trusted.secret -v 42 "$d/sub/a"
	setfacl -m u:4321:rwx,g:8765:r "$d/sub"
	setfacl -d -m u:4321:rx "$d/sub"
	touch -h -d '2001-02-03 04:05:06.789' "$d/rel-symlink"
	touch -d '1999-12-31 23:59:59.123456789' "$d/plain" "$d/sub/deep"
	echo "to be deleted" >"$d/doomed"
	echo "to be changed" >"$d/changing"
}

# Everything about the tree below $1 but the workload's own files (w/).
manifest() {
	(
		cd "$1" || exit 1
		find . -path ./w -prune -o -printf '%y %m %U:%G %s %n %T@ %p -> %l\n' | sort
		find . -path ./w -prune -o -type f -printf '%b %p\n' | sort -k2
		find . -path ./w -prune -o -type f -print0 | sort -z | xargs -0 sha256sum
		find . -path ./w -prune -o \( -type c -o -type b \) -print0 | sort -z |
			xargs -0 stat -c '%n %t:%T'
		find . -path ./w -prune -o -type f -links +1 -printf '%i %p\n' | sort -k2 |
			awk '{ g[$1] = g[$1] " " $2 } END { for (i in g) print "links:" g[i] }' | sort
		find . -path ./w -prune -o \( -type f -o -type d \) -print | sort | while read -r f; do
			getfattr -h -d -m - -e hex "$f" 2>/dev/null
			getfacl -P -p "$f" 2>/dev/null
		done
	)
}

_round_done() { grep -q "round $1.*rsync status 0" "$SERVE_LOG"; }

# sync rounds while the workload runs; changes made during them arrive.
@test "sync: a tree of every kind of file and a workload with open files in it migrate; trees equal" {
	serve_start
	make_tree
	mkdir -p "$SRC_DATA/w"
	PID=$(start_in_src "$WORKLOADS/openfile" "$DATA/w")
	LOG=$SRC_DATA/w/data
	ticks_advance "$LOG" 30
	# each round waits 1.5 s before it starts: changes land between rounds
	fx_migrate_bg PHAUL_FAULT=fs.sync_round:delay=1500 -- --json --fs "sync:$DATA" "$PID"
	wait_for 30 _round_done 1
	echo "changed after round 1" >>"$SRC_DATA/tree/changing"
	rm "$SRC_DATA/tree/doomed"
	echo "born after round 1" >"$SRC_DATA/tree/newborn"
	fx_wait_migrate_job "$MJOB" 60
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	grep -q "round 2" "$SERVE_LOG"
	grep -q "round .* (frozen): rsync status 0" "$SERVE_LOG"
	assert_only_in dst "$PID"
	[ ! -e "$DST_DATA/tree/doomed" ]
	grep -q "changed after round 1" "$DST_DATA/tree/changing"
	[ "$(cat "$DST_DATA/tree/newborn")" = "born after round 1" ]
	manifest "$SRC_DATA" >"$SCRATCH/src.manifest"
	manifest "$DST_DATA" >"$SCRATCH/dst.manifest"
	diff "$SCRATCH/src.manifest" "$SCRATCH/dst.manifest"
	# the manifest does see the tree: owners, ACLs, xattrs, devices, links
	grep -q '1234:5678 .* ./tree/owned' "$SCRATCH/dst.manifest"
	grep -q 'user:4321:rwx' "$SCRATCH/dst.manifest"
	grep -q 'user.colour=0x626c7565' "$SCRATCH/dst.manifest"
	grep -q 'trusted.secret' "$SCRATCH/dst.manifest"
	grep -q '^./tree/blockdev 7:c8' "$SCRATCH/dst.manifest"
	grep -q '^links: ./tree/hardlink2 ./tree/sub/a ./tree/sub/deep/hardlink' "$SCRATCH/dst.manifest"
	grep -q '^p .* ./tree/fifo' "$SCRATCH/dst.manifest"
	grep -q '^l .* ./tree/dangling-symlink -> /nowhere/at/all' "$SCRATCH/dst.manifest"
	# holes stay holes: 64 MiB apparent, a few blocks allocated
	[ "$(awk '$2 == "./tree/sparse" && $1 ~ /^[0-9]+$/ { print $1 }' "$SCRATCH/dst.manifest")" -lt 100 ]
	# the source's tree was only read: the deleted file stays deleted, the rest is there
	[ -e "$SRC_DATA/tree/plain" ]
	# the workload goes on in dst's copy of its file; nothing lost
	ticks_advance "$DST_DATA/w/data" 30
	check_ticks "$DST_DATA/w/data" >/dev/null
	[ ! -e "$DST_DATA/w/status" ]
	assert_workdir_clean
	fx_assert_src_workdir_clean
}

@test "sync: an open but unlinked file in DIR (CRIU's ghost file) comes along" {
	serve_start
	echo kept >"$SRC_DATA/kept"
	# (fd 10 is the starting shell's /dev/null: CRIU cannot dump it)
	PID=$(start_in_src /bin/bash -c 'exec 10>&- 5<>"$1/ghost"; echo ghost-data >&5;
		rm "$1/ghost"; exec sleep 1000' sh "$DATA")
	wait_for 5 eval '[ ! -e "$SRC_DATA/ghost" ]'
	fx_migrate --fs "sync:$DATA" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	local proc
	proc=$(_hosts_proc dst)
	[[ "$(readlink "$proc/$PID/fd/5")" == *"(deleted)" ]]
	[ "$(cat "$proc/$PID/fd/5")" = ghost-data ]
	[ "$(cat "$DST_DATA/kept")" = kept ]
	[ "$(ls -A "$DST_DATA")" = kept ]
}

@test "sync: a failed restore leaves nothing in the destination's DIR and the workload on src" {
	serve_start PHAUL_FAULT=dst.restore
	make_tree
	mkdir -p "$SRC_DATA/w"
	PID=$(start_in_src "$WORKLOADS/openfile" "$DATA/w")
	LOG=$SRC_DATA/w/data
	ticks_advance "$LOG" 30
	local before
	before=$(manifest "$SRC_DATA" | grep -v ' \./w')
	fx_migrate --fs "sync:$DATA" "$PID"
	assert_failed_with 'restore'
	assert_fault_hit dst.restore
	[ -z "$(ls -A "$DST_DATA")" ]
	assert_only_in src "$PID"
	ticks_advance "$LOG" 30
	check_ticks "$LOG" >/dev/null
	[ "$(manifest "$SRC_DATA" | grep -v ' \./w')" = "$before" ]
	assert_workdir_clean
	fx_assert_src_workdir_clean
}

@test "sync: a non-empty DIR on the destination is refused before anything is frozen" {
	serve_start
	mkdir -p "$SRC_DATA/w"
	echo precious >"$DST_DATA/precious"
	PID=$(start_in_src "$WORKLOADS/openfile" "$DATA/w")
	ticks_advance "$SRC_DATA/w/data" 30
	fx_migrate --fs "sync:$DATA" "$PID"
	assert_failed_with 'not empty'
	[ "$(cat "$DST_DATA/precious")" = precious ]
	[ "$(ls -A "$DST_DATA")" = precious ]
	assert_only_in src "$PID"
}

@test "sync: a DIR name with .. or a relative path is refused" {
	serve_start
	PID=$(start_in_src "$WORKLOADS/counter" "$SCRATCH/c.log")
	fx_migrate --fs "sync:$DATA/../x" "$PID"
	[ "$status" -ne 0 ]
	fx_migrate --fs "sync:relative/dir" "$PID"
	[ "$status" -ne 0 ]
	assert_only_in src "$PID"
}
