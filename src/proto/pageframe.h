/* SPDX-License-Identifier: MIT */
/*
 * pageframe: page data on the wire. Once both ends said
 * PHAUL_FEAT_PAGE_FRAMES in the handshake, every chunk of page data
 * (pre-copy runs, the frozen round, post-copy answers) travels as one
 * FRAME_PAGES frame instead of a raw FRAME_DATA:
 *
 *   codec:u8 (0 raw)  flags:u8 (0)  reserved:u16 (0)  raw_len:u32 BE
 *   zero:u64 BE       bit i set: page i of the chunk is all zero bytes
 *   data              the chunk's other pages, in order, as the codec says
 *
 * raw_len is a multiple of PAGE, 1 page .. FRAME_DATA_MAX; bits past the
 * chunk's pages are 0, and the data must be exactly the non-zero pages.
 * A zero page thus costs one bit on the wire, and the receiver is told
 * which pages are zero so that it need not store them. Without the
 * feature (an older peer), pages go as raw FRAME_DATA as before.
 */
#ifndef PHAUL_PAGEFRAME_H
#define PHAUL_PAGEFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/conn.h"

#define PF_HDR_LEN 16
#define PF_PAGES_MAX 64u /* FRAME_DATA_MAX / PAGE: one bit each in `zero` */

enum pf_codec {
	PF_RAW = 0,
};

/* What went through one side's codec (the source's --json). */
struct pf_stats {
	uint64_t raw_bytes;  /* page bytes before encoding, zero pages included */
	uint64_t wire_bytes; /* frame payload bytes after, headers included */
	uint64_t zero_pages; /* sent as one bit each */
};

/* One end's codec state; a conn with one (conn->pf) speaks FRAME_PAGES. */
struct pf_ctx {
	struct pf_stats *st; /* counted here when set (sender) */
	uint8_t *out;	     /* FRAME_PAGES_MAX: the frame being sent */
	uint8_t *in;	     /* FRAME_PAGES_MAX: the frame being received */
};

/* A codec counting into @st (may be NULL); freed with pf_ctx_free. */
struct pf_ctx *pf_ctx_new(struct pf_stats *st);
void pf_ctx_free(struct pf_ctx *pf);
/* Page data on @c goes through a new codec from now on (freed with @c). */
int pf_attach(struct conn *c, struct pf_stats *st);

/* Whether the @len bytes at @p are all zero. */
bool pf_is_zero(const void *p, size_t len);
/*
 * Encode @len bytes of pages (a multiple of PAGE, 1 page to
 * FRAME_DATA_MAX) into pf->out; the payload's length (at most FRAME_PAGES_MAX).
 */
size_t pf_encode(struct pf_ctx *pf, const uint8_t *raw, size_t len);
/*
 * Decode one FRAME_PAGES payload into @raw (@cap bytes, a multiple of
 * PAGE): *len gets the chunk's length and *zero its zero mask (the zero
 * pages are zero-filled in @raw). -EPROTO for anything malformed, with
 * nothing trusted before it was checked.
 */
int pf_decode(struct pf_ctx *pf, const uint8_t *in, size_t n, uint8_t *raw, size_t cap,
	      uint32_t *len, uint64_t *zero);

/*
 * Send @len bytes of pages (a multiple of PAGE): FRAME_PAGES frames of at
 * most FRAME_DATA_MAX each when c->pf is set, else FRAME_DATA frames.
 */
int pages_send(struct conn *c, const uint8_t *buf, size_t len);
/*
 * Receive the next chunk of pages into @buf (FRAME_DATA_MAX bytes): *len
 * its length, *zero its zero pages (0 for a FRAME_DATA chunk). -EPROTO
 * for a frame of another type, an empty chunk or one longer than @cap,
 * or a malformed FRAME_PAGES (whose chunks are whole pages; FRAME_DATA
 * chunks need not be).
 */
int pages_recv(struct conn *c, uint8_t *buf, size_t cap, uint32_t *len, uint64_t *zero);

#endif
