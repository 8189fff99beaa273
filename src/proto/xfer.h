/* SPDX-License-Identifier: MIT */
/*
 * xfer: files over a conn. A file travels as FileBegin{name,size,mode},
 * then FRAME_DATA chunks whose contents add up to exactly `size` bytes,
 * then FileEnd{xxh64}. Never more than one chunk is held in memory. The
 * receiver creates the file under a directory fd only (O_EXCL,
 * O_NOFOLLOW, a safe name), within a byte budget, and checks the hash
 * (of the file's bytes, after decompression) before it accepts the file.
 *
 * Once both ends said PHAUL_FEAT_IMG_ZSTD in the handshake (conn->xf set
 * on both, xfer_attach()), every chunk starts with a header:
 *
 *   codec:u8 (0 raw, 1 zstd)  reserved:u8 x3 (0)  raw_len:u32 BE
 *
 * raw_len is the chunk's share of the file: 1..XF_CHUNK_MAX bytes, at
 * most what the file has left. A raw chunk carries them as they are. A
 * zstd chunk carries the next piece of the connection's one zstd stream:
 * a frame begun by the first compressed chunk, flushed at the end of
 * every compressed chunk and never ended, so that a file may refer back
 * to the files before it (200 processes forked from one shell hold the
 * same pages); that piece must decode to exactly raw_len bytes, within a
 * window of at most 2^XF_WINDOW_LOG_MAX bytes. Raw chunks are not part
 * of the stream. Without the feature (an older peer), chunks are the
 * file's bytes, at most FRAME_DATA_MAX each, as before.
 */
#ifndef PHAUL_XFER_H
#define PHAUL_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/pageframe.h"

#define XF_HDR_LEN 8
#define XF_CHUNK_MAX (128u * 1024)
#define XF_WINDOW_LOG 21     /* the sender's window: 2 MiB of earlier images */
#define XF_WINDOW_LOG_MAX 23 /* the largest a receiver accepts */
/* auto: compressing that saves less than this share is not worth it */
#define XF_AUTO_GAIN_MIN 0.1

enum xf_codec {
	XF_RAW = 0,
	XF_ZSTD = 1,
};

/* What went through the sender's image codec (the source's --json). */
struct xfer_stats {
	uint64_t raw_bytes;   /* file bytes */
	uint64_t wire_bytes;  /* chunk payloads after encoding, headers included */
	uint64_t zstd_chunks; /* chunks sent compressed */
	uint64_t cpu_ns;      /* thread CPU time spent compressing */
};

/* One end's image codec (conn->xf). */
struct xfer_codec {
	struct xfer_stats *st;	   /* counted here when set (sender) */
	enum pf_compress compress; /* sender: whether to compress (negotiated) */
	int level;
	/* auto: what compressing the images cost (thread CPU time: a chunk
	 * preempted on a busy machine is not a slow compressor) and gave so
	 * far, in all (one batch of like files: no decay, and a small file's
	 * fixed cost weighs what it weighs; a moving average over the last
	 * chunks turned compression off in a stretch of tiny files and missed
	 * the pages after them) */
	double z_raw, z_out, z_ns;
	unsigned int off_chunks; /* sent raw since the last compressed one */
	bool warm;		 /* the compressor ran once */
	void *cctx, *dctx;	 /* ZSTD_CCtx, ZSTD_DCtx: one stream each way, made on first use */
	bool broken;		 /* a chunk failed: the stream cannot go on */
	uint8_t *buf;		 /* FRAME_DATA_MAX: a chunk as it goes on the wire */
	uint8_t *raw;		 /* XF_CHUNK_MAX: a chunk of the file */
};

/* A codec counting into @st (may be NULL), compressing as @compress says
 * (the receiver: PF_COMPRESS_OFF); freed with xf_free. */
struct xfer_codec *xf_new(enum pf_compress compress, struct xfer_stats *st);
void xf_free(struct xfer_codec *x);
/* Image chunks on @c carry the header from now on (freed with @c). */
int xfer_attach(struct conn *c, enum pf_compress compress, struct xfer_stats *st);

/*
 * Encode @n bytes of a file (1..XF_CHUNK_MAX) into x->buf; *len gets the
 * payload's length. @link_Bpns: the link's measured rate (bytes per ns,
 * 0 unknown), which --compress auto weighs against compressing.
 */
int xf_encode(struct xfer_codec *x, const uint8_t *raw, size_t n, double link_Bpns, size_t *len);
/*
 * Decode one chunk of @n bytes at @in into @raw, which has room for @cap
 * bytes (what the file has left, at most XF_CHUNK_MAX): *len gets its
 * raw_len. -EPROTO for a malformed header or a length out of bounds,
 * -EBADMSG for zstd data that does not decode to exactly raw_len bytes;
 * after an error the codec refuses every further zstd chunk.
 */
int xf_decode(struct xfer_codec *x, const uint8_t *in, size_t n, uint8_t *raw, size_t cap,
	      uint32_t *len);

struct xfer_progress {
	void (*cb)(void *arg, uint64_t bytes); /* called after each chunk */
	void *arg;
};

/* Send the file @name from @dirfd. */
int xfer_send_file(struct conn *c, int dirfd, const char *name, const struct xfer_progress *p);
/*
 * Send every regular file of @dirfd (names not starting with '.'), in
 * version order (pages-2.img before pages-10.img: the files of one kind
 * next to each other, which the zstd stream's window finds alike). *nr
 * gets the number sent; on failure, @failed (@len bytes) the file's name.
 */
int xfer_send_dir(struct conn *c, int dirfd, const struct xfer_progress *p, size_t *nr,
		  char *failed, size_t len);
/*
 * Receive the file announced by @fb (already validated) into @dirfd.
 * *budget is the number of bytes still allowed; decremented on success.
 */
int xfer_recv_file(struct conn *c, int dirfd, const Phaul__FileBegin *fb, uint64_t *budget);

#endif
