/* SPDX-License-Identifier: MIT */
/*
 * disk_spec: the pure logic of the disk driver.
 *
 * disk_parse_spec() splits "IMAGE:MOUNTPOINT" (both absolute paths that
 * sync_dir_ok() accepts) into its two halves.
 *
 * disk_mountinfo_find() looks up the mount at @mnt in the text of
 * /proc/self/mountinfo (mount points with \ooo escapes decoded) and
 * returns its source ("/dev/loop3") and file-system type of the last,
 * i.e. top-most, such mount; -ENOENT when nothing is mounted there.
 */
#ifndef PHAUL_DISK_SPEC_H
#define PHAUL_DISK_SPEC_H

#include <stddef.h>

int disk_parse_spec(const char *spec, char *image, char *mnt, size_t len);
int disk_mountinfo_find(const char *text, const char *mnt, char *src, size_t srclen, char *fstype,
			size_t fslen);

#endif
