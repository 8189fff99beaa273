/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "xfer: "
#include "proto/xfer.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <zstd.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/wire.h"

_Static_assert(ZSTD_COMPRESSBOUND(XF_CHUNK_MAX) + XF_HDR_LEN <= FRAME_DATA_MAX,
	       "a compressed chunk fits in one frame whatever its data");

struct xfer_codec *xf_new(enum pf_compress compress, struct xfer_stats *st)
{
	struct xfer_codec *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->st = st;
	x->compress = compress;
	x->level = 1;
	x->buf = malloc(FRAME_DATA_MAX);
	x->raw = malloc(XF_CHUNK_MAX);
	if (!x->buf || !x->raw) {
		xf_free(x);
		return NULL;
	}
	return x;
}

void xf_free(struct xfer_codec *x)
{
	if (!x)
		return;
	free(x->buf);
	free(x->raw);
	ZSTD_freeCCtx(x->cctx);
	ZSTD_freeDCtx(x->dctx);
	free(x);
}

int xfer_attach(struct conn *c, enum pf_compress compress, struct xfer_stats *st)
{
	struct xfer_codec *x = xf_new(compress, st);

	if (!x)
		return -ENOMEM;
	if (c->xf)
		c->xf_free(c->xf);
	c->xf = x;
	c->xf_free = xf_free;
	return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * --compress auto weighs the images' own ratio and speed (they compress
 * far better than most memory) against the link's rate as the page codec
 * measured it, with pf_auto_decide's rule; with either unmeasured, it
 * compresses, unless what it compressed so far gained less than
 * XF_AUTO_GAIN_MIN (a stop-mode dump's random pages: nothing to win on any
 * link). Once off, every PF_AUTO_PROBE_EVERY-th chunk measures again.
 */
static bool want_zstd(struct xfer_codec *x, double link_Bpns)
{
	struct pf_auto a = { .link_Bpns = link_Bpns };

	if (x->broken)
		return false;
	switch (x->compress) {
	case PF_COMPRESS_OFF: return false;
	case PF_COMPRESS_ZSTD: return true;
	case PF_COMPRESS_AUTO: break;
	}
	if (x->off_chunks >= PF_AUTO_PROBE_EVERY)
		return true;
	if (x->z_raw > 0) {
		a.ratio = x->z_out / x->z_raw;
		a.comp_Bpns = x->z_raw / x->z_ns;
		if (a.ratio > 1 - XF_AUTO_GAIN_MIN)
			return false;
	}
	return pf_auto_decide(&a);
}

static int cctx_get(struct xfer_codec *x)
{
	if (x->cctx)
		return 0;
	x->cctx = ZSTD_createCCtx();
	if (!x->cctx ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(x->cctx, ZSTD_c_compressionLevel, x->level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(x->cctx, ZSTD_c_windowLog, XF_WINDOW_LOG)))
		return -ENOMEM;
	return 0;
}

/*
 * The @n bytes at @raw as the stream's next piece, flushed, into @out (room
 * for their bound); its length, or 0 when zstd failed (the stream is then
 * given up: what it held was never sent, and no zstd chunk follows).
 */
static size_t compress(struct xfer_codec *x, const uint8_t *raw, size_t n, uint8_t *out, size_t cap)
{
	ZSTD_inBuffer in = { raw, n, 0 };
	ZSTD_outBuffer o = { out, cap, 0 };
	uint64_t c0, cpu;
	size_t left;

	if (cctx_get(x) < 0) {
		pr_warn("no memory for the image compressor: images go raw");
		x->broken = true;
		return 0;
	}
	c0 = pf_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	left = ZSTD_compressStream2(x->cctx, &o, &in, ZSTD_e_flush);
	cpu = pf_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	/* the first chunk pays for the context's tables: not a rate */
	if (x->warm) {
		x->z_ns += cpu + 1;
		x->z_raw += n;
		x->z_out += MIN(o.pos, n);
	}
	x->warm = true;
	x->off_chunks = 0;
	if (x->st)
		x->st->cpu_ns += cpu;
	if (ZSTD_isError(left) || left || in.pos != n || !o.pos) {
		pr_warn("compressing an image chunk failed (%s): images go raw",
			ZSTD_isError(left) ? ZSTD_getErrorName(left) : "not flushed");
		x->broken = true;
		return 0;
	}
	return o.pos;
}

int xf_encode(struct xfer_codec *x, const uint8_t *raw, size_t n, double link_Bpns, size_t *len)
{
	uint8_t *data = x->buf + XF_HDR_LEN;
	size_t z = 0;

	if (n == 0 || n > XF_CHUNK_MAX)
		return -EINVAL;
	if (want_zstd(x, link_Bpns))
		z = compress(x, raw, n, data, FRAME_DATA_MAX - XF_HDR_LEN);
	else
		x->off_chunks++;
	if (z && fault_point("src.imgcorrupt") < 0)
		data[z / 2] ^= 0x55;
	if (!z)
		memcpy(data, raw, n);
	memset(x->buf, 0, XF_HDR_LEN);
	x->buf[0] = z ? XF_ZSTD : XF_RAW;
	put_be32(x->buf + 4, n);
	*len = XF_HDR_LEN + (z ? z : n);
	if (x->st) {
		x->st->raw_bytes += n;
		x->st->wire_bytes += *len;
		x->st->zstd_chunks += z != 0;
	}
	return 0;
}

/*
 * The stream's next piece, @n bytes at @in, into exactly @want bytes at
 * @raw: no fewer, and nothing left over for the next chunk.
 */
static int unzstd(struct xfer_codec *x, const uint8_t *in, size_t n, uint8_t *raw, size_t want)
{
	ZSTD_inBuffer i = { in, n, 0 }, none = { in, 0, 0 };
	ZSTD_outBuffer o = { raw, want, 0 };
	uint8_t extra;
	ZSTD_outBuffer e = { &extra, 1, 0 };
	size_t r = 0;

	if (x->broken) {
		pr_err("a zstd image chunk after a corrupt one");
		return -EBADMSG;
	}
	if (!x->dctx) {
		x->dctx = ZSTD_createDCtx();
		if (!x->dctx || ZSTD_isError(ZSTD_DCtx_setParameter(x->dctx, ZSTD_d_windowLogMax,
								    XF_WINDOW_LOG_MAX)))
			return -ENOMEM;
	}
	for (;;) {
		size_t ip = i.pos, op = o.pos;
		r = ZSTD_decompressStream(x->dctx, &o, &i);
		if (ZSTD_isError(r))
			break;
		if ((i.pos == i.size && o.pos == o.size) || (i.pos == ip && o.pos == op))
			break;
	}
	if (!ZSTD_isError(r) && o.pos == want && i.pos == i.size) {
		r = ZSTD_decompressStream(x->dctx, &e, &none);
		if (!ZSTD_isError(r) && !e.pos)
			return 0;
	}
	x->broken = true;
	pr_err("corrupt zstd image chunk: %s",
	       ZSTD_isError(r) ? ZSTD_getErrorName(r) :
	       o.pos < want    ? "short" :
				 "longer than it says");
	return -EBADMSG;
}

int xf_decode(struct xfer_codec *x, const uint8_t *in, size_t n, uint8_t *raw, size_t cap,
	      uint32_t *len)
{
	uint32_t l;
	int r;

	if (n < XF_HDR_LEN || in[1] || in[2] || in[3]) {
		pr_err("malformed image chunk header");
		return -EPROTO;
	}
	l = get_be32(in + 4);
	if (l == 0 || l > cap || l > XF_CHUNK_MAX) {
		pr_err("an image chunk of %u bytes where 1 to %zu were due", l,
		       MIN(cap, (size_t)XF_CHUNK_MAX));
		return -EPROTO;
	}
	in += XF_HDR_LEN;
	n -= XF_HDR_LEN;
	switch (in[-XF_HDR_LEN]) {
	case XF_RAW:
		if (n != l) {
			pr_err("a raw image chunk of %u bytes carries %zu", l, n);
			return -EPROTO;
		}
		memcpy(raw, in, n);
		break;
	case XF_ZSTD:
		r = unzstd(x, in, n, raw, l);
		if (r < 0)
			return r;
		break;
	default: pr_err("an image chunk in unknown encoding %u", in[-XF_HDR_LEN]); return -EPROTO;
	}
	*len = l;
	return 0;
}

static void xxh_freep(XXH64_state_t **s)
{
	if (*s)
		XXH64_freeState(*s);
}
#define _cleanup_xxh_ __attribute__((cleanup(xxh_freep)))

static int send_begin(struct conn *c, const char *name, uint64_t size, uint32_t mode)
{
	Phaul__FileBegin fb = PHAUL__FILE_BEGIN__INIT;

	fb.name = (char *)name;
	fb.size = size;
	fb.has_mode = true;
	fb.mode = mode & 07777;
	return msg_send_file_begin(c, &fb);
}

static int send_end(struct conn *c, uint64_t hash)
{
	Phaul__FileEnd fe = PHAUL__FILE_END__INIT;

	fe.xxh64 = hash;
	return msg_send_file_end(c, &fe);
}

/* One chunk of a file, through the codec when there is one. */
static int send_chunk(struct conn *c, const uint8_t *buf, size_t n)
{
	size_t w;
	int r;

	if (!c->xf)
		return frame_send(c, FRAME_DATA, buf, n);
	r = xf_encode(c->xf, buf, n, c->pf ? c->pf->a.link_Bpns : 0, &w);
	return r < 0 ? r : frame_send(c, FRAME_DATA, c->xf->buf, w);
}

int xfer_send_file(struct conn *c, int dirfd, const char *name, const struct xfer_progress *p)
{
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	_cleanup_free_ uint8_t *own = c->xf ? NULL : malloc(FRAME_DATA_MAX);
	_cleanup_xxh_ XXH64_state_t *h = XXH64_createState();
	uint8_t *buf = c->xf ? c->xf->raw : own;
	size_t max = c->xf ? XF_CHUNK_MAX : FRAME_DATA_MAX;
	struct stat st;
	uint64_t left;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		pr_perror("cannot open image %s", name);
		return -errno;
	}
	if (!buf || !h)
		return -ENOMEM;
	XXH64_reset(h, 0);
	r = send_begin(c, name, st.st_size, st.st_mode);
	for (left = st.st_size; r == 0 && left > 0;) {
		size_t n = MIN(left, (uint64_t)max);
		r = read_full(fd, buf, n);
		if (r < 0) {
			errno = -r;
			pr_perror("cannot read image %s", name);
			break;
		}
		XXH64_update(h, buf, n);
		r = send_chunk(c, buf, n);
		left -= n;
		if (r == 0 && p && p->cb)
			p->cb(p->arg, n);
	}
	if (r == 0)
		r = send_end(c, XXH64_digest(h));
	return r;
}

static int regular(const struct dirent *de)
{
	return de->d_name[0] != '.' && de->d_type == DT_REG;
}

int xfer_send_dir(struct conn *c, int dirfd, const struct xfer_progress *p, size_t *nr,
		  char *failed, size_t len)
{
	struct dirent **list = NULL;
	int n = scandirat(dirfd, ".", &list, regular, versionsort), r = 0;

	*nr = 0;
	if (n < 0) {
		r = -errno;
		snprintf(failed, len, ".");
		pr_perror("cannot list the images");
		return r;
	}
	for (int i = 0; i < n; i++) {
		if (r == 0) {
			r = xfer_send_file(c, dirfd, list[i]->d_name, p);
			if (r < 0)
				snprintf(failed, len, "%s", list[i]->d_name);
			else
				(*nr)++;
		}
		free(list[i]);
	}
	free(list);
	return r;
}

static int recv_data(struct conn *c, int fd, uint64_t size, XXH64_state_t *h)
{
	struct xfer_codec *x = c->xf;
	_cleanup_free_ uint8_t *own = x ? NULL : malloc(FRAME_DATA_MAX);
	uint8_t *in = x ? x->buf : own, *data = in;
	enum frame_type type;
	uint32_t len;
	int r;

	if (!in)
		return -ENOMEM;
	while (size > 0) {
		r = frame_recv(c, &type, in, FRAME_DATA_MAX, &len);
		if (r < 0)
			return r;
		if (type != FRAME_DATA || len == 0 || (!x && len > size)) {
			pr_err("file stream broken: %s frame of %u bytes with %llu left",
			       type == FRAME_DATA ? "data" : "message", len,
			       (unsigned long long)size);
			return -EPROTO;
		}
		if (x) {
			r = xf_decode(x, in, len, x->raw, MIN(size, (uint64_t)XF_CHUNK_MAX), &len);
			if (r < 0)
				return r;
			data = x->raw;
		}
		XXH64_update(h, data, len);
		r = write_full(fd, data, len);
		if (r < 0) {
			errno = -r;
			pr_perror("cannot write received image");
			return r;
		}
		size -= len;
	}
	return 0;
}

static int recv_end(struct conn *c, const char *name, uint64_t want)
{
	_cleanup_msg_ Msg *m = NULL;
	int r = msg_recv(c, &m);

	if (r < 0)
		return r;
	if (m->body_case != PHAUL__MSG__BODY_FILE_END) {
		pr_err("expected FileEnd for %s, got %s", name, msg_name(m->body_case));
		return -EPROTO;
	}
	if (m->file_end->xxh64 != want) {
		pr_err("checksum mismatch on %s: the stream was corrupted", name);
		return -EBADMSG;
	}
	return 0;
}

int xfer_recv_file(struct conn *c, int dirfd, const Phaul__FileBegin *fb, uint64_t *budget)
{
	_cleanup_close_ int fd = -1;
	_cleanup_xxh_ XXH64_state_t *h = XXH64_createState();
	mode_t mode = fb->has_mode ? (fb->mode & 0600) | 0600 : 0600;
	int r;

	if (!name_is_safe(fb->name))
		return -EPROTO;
	if (fb->size > *budget) {
		pr_err("image %s (%llu bytes) exceeds the space left (%llu bytes)", fb->name,
		       (unsigned long long)fb->size, (unsigned long long)*budget);
		return -ENOSPC;
	}
	if (!h)
		return -ENOMEM;
	XXH64_reset(h, 0);
	fd = openat(dirfd, fb->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0) {
		pr_perror("cannot create image %s", fb->name);
		return -errno;
	}
	r = recv_data(c, fd, fb->size, h);
	if (r == 0)
		r = recv_end(c, fb->name, XXH64_digest(h));
	if (r < 0) {
		unlinkat(dirfd, fb->name, 0);
		return r;
	}
	*budget -= fb->size;
	return 0;
}
