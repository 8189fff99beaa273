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
 *
 * With PHAUL_FEAT_PAGE_ZSTD too, the data may be one zstd frame (codec 1)
 * that must declare its content size (exactly the non-zero pages) and
 * carry its checksum: a corrupt frame is an error, never a wrong page.
 * The sender compresses a chunk only when that makes it smaller, and
 * (--compress auto) only while the measured compression speed and ratio
 * beat the link's measured rate (pf_auto_decide).
 */
#ifndef PHAUL_PAGEFRAME_H
#define PHAUL_PAGEFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "proto/conn.h"

#define PF_HDR_LEN 16
#define PF_PAGES_MAX 64u /* FRAME_DATA_MAX / PAGE: one bit each in `zero` */

enum pf_codec {
	PF_RAW = 0,
	PF_ZSTD = 1,
};

/* --compress */
enum pf_compress {
	PF_COMPRESS_AUTO = 0,
	PF_COMPRESS_ZSTD, /* always try */
	PF_COMPRESS_OFF,
};

/*
 * What --compress auto measured so far: rates over the recent frames
 * (decaying sums of bytes and of time, so that a slow frame weighs its
 * time: one frame waiting for the --bandwidth bucket after many that
 * went into socket buffers at once).
 */
struct pf_auto {
	double ratio;		  /* compressed / raw, 0: not measured */
	double comp_Bpns;	  /* raw bytes compressed per ns of compression */
	double link_Bpns;	  /* wire bytes per ns spent sending */
	double comp_b, comp_ns;	  /* the sums behind comp_Bpns */
	double link_b, link_ns;	  /* and link_Bpns */
	unsigned int off_frames;  /* frames sent raw since compression went off */
	unsigned int link_frames; /* samples behind link_Bpns */
	bool tcp;		  /* link_Bpns from TCP's acknowledged bytes, not timing */
	bool probing;		  /* a probe chosen, not accounted yet (pf_choose_zstd) */
	uint64_t acked0, t0_ns;	  /* tcp: where the current span began (0: none) */
};

/*
 * --compress auto's rule: compress when sending the compressed bytes
 * plus compressing them takes less time than sending them raw:
 * ratio / link + 1 / speed < 1 / link, i.e. speed * (1 - ratio) > link,
 * with a 10 % margin. Unmeasured inputs (0) say: try it.
 */
bool pf_auto_decide(const struct pf_auto *a);
/*
 * After a frame was sent (@raw: uncompressed), TCP had @acked bytes
 * acknowledged and @queued bytes not acknowledged yet (tcprate.h) at
 * @now_ns: each span of at least PF_AUTO_TCP_SPAN_NS of raw frames, after
 * each of which the socket still held PF_AUTO_TCP_BUSY bytes or more,
 * gives a->link_Bpns a sample of the path's rate. A compressed frame ends
 * the span (compressing, we may be what holds the link back), and so
 * does a socket that ran dry (the span would measure our pauses). A link
 * that raw frames never keep busy is never measured: auto then sends
 * raw, which is the faster then. A --bandwidth cap @cap_Bpns (0: none)
 * bounds the result.
 */
void pf_link_acked(struct pf_auto *a, bool raw, uint64_t acked, uint32_t queued, uint64_t now_ns,
		   double cap_Bpns);
#define PF_AUTO_TCP_SPAN_NS 20000000ull
#define PF_AUTO_TCP_BUSY (64u << 10)
/* clock_gettime(@id) in ns. */
uint64_t pf_clock_ns(clockid_t id);
/* Frames sent raw before auto measures compression again. */
#define PF_AUTO_PROBE_EVERY 64u
/* Full raw frames auto measures the link with before it compresses, when
 * the kernel cannot tell the link's rate (no TCP: ssh's pipes); over TCP
 * one span of raw frames (PF_AUTO_TCP_SPAN_NS). */
#define PF_AUTO_LINK_FRAMES 16u

/* What went through one side's codec (the source's --json). */
struct pf_stats {
	uint64_t raw_bytes;   /* page bytes before encoding, zero pages included */
	uint64_t wire_bytes;  /* frame payload bytes after, headers included */
	uint64_t zero_pages;  /* sent as one bit each */
	uint64_t zstd_frames; /* frames sent compressed */
	uint64_t cpu_ns;      /* thread CPU time spent compressing */
};

/*
 * An encoder (one per thread that encodes) and what encoding one chunk
 * gave: pf_encode_into only reads the chunk and writes the frame, so it
 * may run on a thread of its own (pfpipe.h); pf_account then counts it
 * into the codec's stats and auto's measures, on the sending thread.
 */
struct pf_enc {
	int level;
	void *cctx;   /* ZSTD_CCtx, made on first use */
	uint8_t *tmp; /* FRAME_DATA_MAX: the non-zero pages, compacted */
	/* the last chunk's */
	size_t len, n;	/* raw bytes; the frame's payload */
	size_t kept, z; /* non-zero pages; compressed bytes (0: raw) */
	bool zstd;	/* it was to be compressed */
	bool tried;	/* and was: cpu_ns and wall_ns say how long it took */
	uint64_t cpu_ns, wall_ns;
};
void pf_enc_fini(struct pf_enc *e);

/* One end's codec state; a conn with one (conn->pf) speaks FRAME_PAGES. */
struct pf_ctx {
	struct pf_stats *st;	   /* counted here when set (sender) */
	enum pf_compress compress; /* sender: whether to compress (negotiated) */
	bool zstd_ok;		   /* receiver: zstd frames allowed (negotiated) */
	int level;
	struct pf_auto a;
	struct pf_enc enc; /* the sending thread's own */
	void *dctx;	   /* ZSTD_DCtx, made on first use */
	uint8_t *out;	   /* FRAME_PAGES_MAX: the frame being sent */
	uint8_t *in;	   /* FRAME_PAGES_MAX: the frame being received */
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
 * Whether the next chunk is to be compressed (--compress, auto's rule);
 * pf_choose_zstd also takes the answer: a probe of auto's (compression
 * off for PF_AUTO_PROBE_EVERY frames) is then in flight until
 * pf_account, and no other chunk is compressed meanwhile (a pipe holds
 * several chunks before the first is accounted).
 */
bool pf_want_zstd(const struct pf_ctx *pf);
bool pf_choose_zstd(struct pf_ctx *pf);
/* pf_encode's two halves: the frame of @len bytes at @raw into @out
 * (FRAME_PAGES_MAX), compressed if @zstd and smaller so; then, on the
 * thread that owns @pf, its stats and auto's measures (and the test's
 * corruption, fault point src.pagecorrupt, into @out). */
void pf_encode_into(struct pf_enc *e, const uint8_t *raw, size_t len, bool zstd, uint8_t *out);
void pf_account(struct pf_ctx *pf, const struct pf_enc *e, uint8_t *out);
/* Send the encoded frame @out (@w bytes) and let auto measure the link. */
int pf_send_frame(struct conn *c, const uint8_t *out, size_t w);
/*
 * Decode one FRAME_PAGES payload into @raw (@cap bytes, a multiple of
 * PAGE): *len gets the chunk's length and *zero its zero mask (the zero
 * pages are zero-filled in @raw). -EPROTO for anything malformed, -EBADMSG
 * for a corrupt zstd frame, with nothing trusted before it was checked.
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
