#!/usr/bin/env bats
# --fs disk:IMAGE:MOUNTPOINT: an ext4 image on storage both hosts see (the
# test's scratch directory), loop-mounted in src where the workload writes
# to it. The image is never copied over the network; at the switch-over
# the source hands it over (freeze, snapshot, exchange, detach) and the
# destination mounts it; a failure puts the source's image back exactly.

load lib/hosts
load lib/phaul
load lib/fixtures

setup() {
	hosts_setup
	phaul_setup
	fx_setup
	IMG=$SCRATCH/disk.img
	MNT=$SCRATCH/mnt
	mkdir -p "$MNT"
	truncate -s 64M "$IMG"
	mkfs.ext4 -q -F "$IMG"
	in_src mount -o loop "$IMG" "$MNT"
	SRC_MNT=/proc/$SRC_PID1/root$MNT
	DST_MNT=/proc/$DST_PID1/root$MNT
	mkdir -p "$SRC_MNT/w"
	PID=$(start_in_src "$WORKLOADS/openfile" "$MNT/w")
	ticks_advance "$SRC_MNT/w/data" 30
	INODE=$(stat -c %i "$IMG")
	policy_allow "disk_image_root = $SCRATCH" "disk_mount_root = $MNT"
}

teardown() {
	hosts_teardown
}

mounted_in() { "in_$1" findmnt -n "$MNT" >/dev/null; }

# losetup's view: loop devices still backed by the snapshot.
_no_snapshot_loop() { ! losetup -l -n -O BACK-FILE | grep -q 'phaul-snap'; }

@test "disk: a workload writing to the loop-mounted image migrates; image mounted only on dst" {
	serve_start
	fx_migrate --json --fs "disk:$IMG:$MNT" "$PID"
	[ "$status" -eq 0 ] || { echo "migrate failed: $stderr" >&2; false; }
	assert_only_in dst "$PID"
	mounted_in dst
	refute mounted_in src
	# every tick written before the freeze is there, and it goes on writing
	ticks_advance "$DST_MNT/w/data" 30
	check_ticks "$DST_MNT/w/data" >/dev/null
	[ ! -e "$DST_MNT/w/status" ]
	run in_dst "$WORKLOADS/openfile" --ping "$MNT/w"
	[ "$status" -eq 0 ]
	# the snapshot was dropped on the source, its loop device released
	[ ! -e "$IMG.phaul-snap" ]
	wait_for 10 _no_snapshot_loop
	grep -q "mounted at $MNT" "$SERVE_LOG"
	assert_workdir_clean
	fx_assert_src_workdir_clean
}

_logged() { grep -qF "$1" "$SCRATCH/m.err"; }

@test "disk: restore fails after the switch-over: image byte-identical, mounted on src again, workload writes on" {
	local at_freeze after
	serve_start PHAUL_FAULT=dst.restored
	fx_migrate_bg PHAUL_FAULT=fs.stop_migration:delay=2500,fs.migration_failed:delay=2500 \
		-- -v --fs "disk:$IMG:$MNT" "$PID"
	# frozen and handed over: the source's original is the snapshot now
	wait_for 30 _logged "injected delay of 2500 ms at fs.stop_migration"
	refute mounted_in src
	[ "$(stat -c %i "$IMG.phaul-snap")" = "$INODE" ]
	at_freeze=$(sha256sum <"$IMG.phaul-snap")
	# the destination mounted the copy, CRIU restored, then the fault
	wait_for 30 _logged "injected delay of 2500 ms at fs.migration_failed"
	after=$(sha256sum <"$IMG.phaul-snap")
	[ "$at_freeze" = "$after" ]
	fx_wait_migrate_job "$MJOB" 60
	[ "$status" -eq 1 ]
	grep -q "injected failure at dst.restored" "$SERVE_LOG"
	grep -q "mounted at $MNT" "$SERVE_LOG"
	# the original file is the image again, mounted on src only
	[ "$(stat -c %i "$IMG")" = "$INODE" ]
	[ ! -e "$IMG.phaul-snap" ]
	mounted_in src
	wait_for 10 eval '! mounted_in dst'
	assert_rolled_back "$SRC_MNT/w/data" "$PID"
	[ ! -e "$SRC_MNT/w/status" ]
	run in_src "$WORKLOADS/openfile" --ping "$MNT/w"
	[ "$status" -eq 0 ]
}

@test "disk: restore refused before the mount (dst.restore): rolled back, image is the original" {
	serve_start PHAUL_FAULT=dst.restore
	fx_migrate --fs "disk:$IMG:$MNT" "$PID"
	assert_failed_with 'restore'
	[ "$(stat -c %i "$IMG")" = "$INODE" ]
	[ ! -e "$IMG.phaul-snap" ]
	mounted_in src
	refute mounted_in dst
	assert_rolled_back "$SRC_MNT/w/data" "$PID"
}

@test "disk: an image that is not what is mounted at the mount point is refused" {
	serve_start
	truncate -s 1M "$SCRATCH/other.img"
	fx_migrate --fs "disk:$SCRATCH/other.img:$MNT" "$PID"
	assert_failed_with 'not the image'
	mounted_in src
	assert_only_in src "$PID"
}
