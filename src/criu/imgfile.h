/* SPDX-License-Identifier: MIT */
/*
 * imgfile: reading CRIU's protobuf images: a file read whole (capped),
 * then its u32-length-prefixed records one by one, each length checked
 * against the buffer and a cap.
 */
#ifndef PHAUL_IMGFILE_H
#define PHAUL_IMGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRIU_IMG_COMMON_MAGIC 0x54564319u

/* A u32 at @p (CRIU images are host-endian). */
uint32_t img_u32(const uint8_t *p);
/* @buf starts with IMG_COMMON_MAGIC and @magic; its records start at 8. */
bool img_has_magic(const uint8_t *buf, size_t len, uint32_t magic);
/*
 * The next record at *@off of @buf: 1 (with @rec, @rlen; *@off moved past
 * it), 0 at the end of the buffer, -EINVAL when cut short or longer than
 * @max.
 */
int img_next_record(const uint8_t *buf, size_t len, size_t *off, const uint8_t **rec,
		    uint32_t *rlen, uint32_t max);
/* Read @name of @dirfd whole into *@buf (malloc'ed), at most @max bytes. */
int img_read_file(int dirfd, const char *name, size_t max, uint8_t **buf, size_t *len);

#endif
