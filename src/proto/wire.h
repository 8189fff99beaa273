/* SPDX-License-Identifier: MIT */
/*
 * wire: frames on a conn (PROTOCOL.txt). Every frame is an 8-byte header
 *
 *   'P' 'H'  type:u8  flags:u8 (0)  length:u32 big-endian
 *
 * followed by `length` bytes of payload. FRAME_MSG carries one packed
 * phaul.Msg (at most FRAME_MSG_MAX bytes), FRAME_DATA a chunk of the file
 * or page stream opened by the last control message (at most
 * FRAME_DATA_MAX), FRAME_PAGES one chunk of pages in pageframe.h's
 * encoding (at most FRAME_PAGES_MAX: FRAME_DATA_MAX and its header). The header is checked before anything is allocated.
 */
#ifndef PHAUL_WIRE_H
#define PHAUL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/conn.h"

enum frame_type {
	FRAME_MSG = 1,
	FRAME_DATA = 2,
	FRAME_PAGES = 3,
};

#define FRAME_HDR_LEN 8
#define FRAME_MSG_MAX (64u * 1024)
#define FRAME_DATA_MAX (256u * 1024)
#define FRAME_PAGES_MAX (FRAME_DATA_MAX + 16)

/* "message", "data" or "pages", for logs. */
const char *frame_type_name(enum frame_type type);

void frame_hdr_encode(uint8_t out[FRAME_HDR_LEN], enum frame_type type, uint32_t len);
/* -EPROTO for a bad magic, type, flags or an over-long frame. */
int frame_hdr_decode(const uint8_t in[FRAME_HDR_LEN], enum frame_type *type, uint32_t *len);

int frame_send(struct conn *c, enum frame_type type, const void *buf, size_t len);
/*
 * Read one frame into @buf (@cap bytes). -EPROTO on a malformed header,
 * -EMSGSIZE when the payload does not fit @cap.
 */
int frame_recv(struct conn *c, enum frame_type *type, void *buf, size_t cap, uint32_t *len);

#endif
