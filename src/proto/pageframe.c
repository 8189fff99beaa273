/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pages: "
#include "proto/pageframe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader() */
#include <zstd.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "proto/tcprate.h"
#include "proto/wire.h"

struct pf_ctx *pf_ctx_new(struct pf_stats *st)
{
	struct pf_ctx *pf = calloc(1, sizeof(*pf));

	if (!pf)
		return NULL;
	pf->st = st;
	pf->level = 1;
	pf->compress = PF_COMPRESS_OFF; /* the sender chooses */
	pf->out = malloc(FRAME_PAGES_MAX);
	pf->in = malloc(FRAME_PAGES_MAX);
	pf->enc.tmp = malloc(FRAME_DATA_MAX);
	if (!pf->out || !pf->in || !pf->enc.tmp) {
		pf_ctx_free(pf);
		return NULL;
	}
	return pf;
}

void pf_ctx_free(struct pf_ctx *pf)
{
	if (!pf)
		return;
	free(pf->out);
	free(pf->in);
	pf_enc_fini(&pf->enc);
	ZSTD_freeDCtx(pf->dctx);
	free(pf);
}

/* What TCP says of @c's socket (tcprate.h); -ENOTSUP when @c has none
 * (a pipe, a test's memory stream). */
static int link_acked(struct conn *c, uint64_t *acked, uint32_t *queued)
{
	bool buffered;
	int fd = conn_poll_fd(c, &buffered), r;

	if (fd < 0)
		return -ENOTSUP;
	r = tcp_link_state(fd, acked, queued);
	return r == -ENOTSOCK || r == -EOPNOTSUPP || r == -ENOPROTOOPT ? -ENOTSUP : r;
}

int pf_attach(struct conn *c, struct pf_stats *st)
{
	struct pf_ctx *pf = pf_ctx_new(st);

	if (!pf)
		return -ENOMEM;
	if (c->pf)
		c->pf_free(c->pf);
	uint32_t queued;

	pf->a.tcp = link_acked(c, &pf->a.acked0, &queued) == 0;
	c->pf = pf;
	c->pf_free = pf_ctx_free;
	return 0;
}

void pf_enc_fini(struct pf_enc *e)
{
	free(e->tmp);
	ZSTD_freeCCtx(e->cctx);
	e->tmp = NULL;
	e->cctx = NULL;
}

bool pf_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;

	/* pages are 8-byte aligned and a multiple of 64 bytes long */
	for (size_t i = 0; i < len / 8; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] |
		    w[i + 7])
			return false;
	return true;
}

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--, v >>= 8)
		p[i] = v;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

bool pf_auto_decide(const struct pf_auto *a)
{
	if (a->ratio <= 0 || a->comp_Bpns <= 0 || a->link_Bpns <= 0)
		return true;
	return a->comp_Bpns * (1 - a->ratio) > 1.1 * a->link_Bpns;
}

static void ewma(double *v, double x)
{
	*v = *v > 0 ? 0.75 * *v + 0.25 * x : x;
}

/* A rate over the recent frames: @b bytes took @ns more. */
static void rate_add(double *rate, double *sum_b, double *sum_ns, double b, double ns)
{
	*sum_b = 0.9 * *sum_b + b;
	*sum_ns = 0.9 * *sum_ns + (ns > 0 ? ns : 1);
	*rate = *sum_b / *sum_ns;
}

uint64_t pf_clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Auto's next chunk is a probe: compression measured and off for a while
 * (before the first measure every chunk tries, to measure it soon). */
static bool probe_due(const struct pf_auto *a)
{
	bool measured = a->ratio > 0 && a->comp_Bpns > 0 && a->link_Bpns > 0;

	return measured && !pf_auto_decide(a) && a->off_frames >= PF_AUTO_PROBE_EVERY;
}

bool pf_want_zstd(const struct pf_ctx *pf)
{
	switch (pf->compress) {
	case PF_COMPRESS_OFF: return false;
	case PF_COMPRESS_ZSTD: return true;
	case PF_COMPRESS_AUTO: break;
	}
	/* the link first: compressing before that would hide its rate */
	if (pf->a.link_frames < (pf->a.tcp ? 1 : PF_AUTO_LINK_FRAMES))
		return false;
	if (probe_due(&pf->a))
		return !pf->a.probing; /* one probe at a time */
	return pf_auto_decide(&pf->a) && !pf->a.probing;
}

bool pf_choose_zstd(struct pf_ctx *pf)
{
	bool zstd = pf_want_zstd(pf);

	if (zstd && pf->compress == PF_COMPRESS_AUTO && probe_due(&pf->a))
		pf->a.probing = true;
	return zstd;
}

static int cctx_get(void **cctx, int level)
{
	if (*cctx)
		return 0;
	*cctx = ZSTD_createCCtx();
	if (!*cctx || ZSTD_isError(ZSTD_CCtx_setParameter(*cctx, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(*cctx, ZSTD_c_checksumFlag, 1)))
		return -ENOMEM;
	return 0;
}

/* Compress the @n bytes at @tmp into @data when that makes them smaller:
 * the compressed length, or 0; what it took into @e. */
static size_t compress(struct pf_enc *e, const uint8_t *tmp, uint8_t *data, size_t n)
{
	uint64_t c0, w0;
	size_t z;

	if (cctx_get(&e->cctx, e->level) < 0)
		return 0;
	c0 = pf_clock_ns(CLOCK_THREAD_CPUTIME_ID);
	w0 = pf_clock_ns(CLOCK_MONOTONIC);
	/* no room for as many bytes: an incompressible chunk fails fast */
	z = ZSTD_compress2(e->cctx, data, n - 1, tmp, n);
	e->wall_ns = pf_clock_ns(CLOCK_MONOTONIC) - w0;
	e->cpu_ns = pf_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
	e->tried = true;
	return ZSTD_isError(z) ? 0 : z;
}

/*
 * The link's rate as this thread sees it (TLS, the --bandwidth bucket,
 * the network), from full raw frames only: while compression keeps the
 * link below its capacity, the time a frame takes says nothing of it.
 */
static void link_sample(struct pf_auto *a, uint8_t codec, size_t w, uint64_t ns)
{
	if (codec != PF_RAW || w < FRAME_DATA_MAX / 2)
		return;
	rate_add(&a->link_Bpns, &a->link_b, &a->link_ns, w, ns);
	a->link_frames++;
}

void pf_link_acked(struct pf_auto *a, bool raw, uint64_t acked, uint32_t queued, uint64_t now_ns,
		   double cap_Bpns)
{
	uint64_t dt = now_ns - a->t0_ns;
	bool busy = raw && queued >= PF_AUTO_TCP_BUSY;

	/* a span counts only while we sent raw (compressing, we may be what
	 * keeps the link below its rate) and the socket never ran dry (else
	 * it measured our pauses: a round's reading, the time between two) */
	if (!busy || !a->t0_ns || acked < a->acked0) {
		a->acked0 = acked;
		a->t0_ns = busy ? now_ns : 0;
		return;
	}
	if (dt < PF_AUTO_TCP_SPAN_NS)
		return;
	ewma(&a->link_Bpns, (double)(acked - a->acked0) / dt);
	if (cap_Bpns > 0 && a->link_Bpns > cap_Bpns)
		a->link_Bpns = cap_Bpns;
	a->link_frames++;
	a->acked0 = acked;
	a->t0_ns = now_ns;
}

/* The link's rate after a frame of @w bytes sent in @ns. */
static void link_update(struct conn *c, uint8_t codec, size_t w, uint64_t ns)
{
	uint64_t acked;
	uint32_t queued;

	if (!c->pf->a.tcp)
		link_sample(&c->pf->a, codec, w, ns);
	else if (link_acked(c, &acked, &queued) == 0)
		pf_link_acked(&c->pf->a, codec == PF_RAW, acked, queued,
			      pf_clock_ns(CLOCK_MONOTONIC), c->rate_Bps / 1e9);
}

void pf_encode_into(struct pf_enc *e, const uint8_t *raw, size_t len, bool zstd, uint8_t *out)
{
	uint8_t *data = out + PF_HDR_LEN;
	uint8_t *to = zstd ? e->tmp : data;
	uint64_t zero = 0;

	e->len = len;
	e->kept = e->z = 0;
	e->tried = false;
	e->zstd = zstd;
	for (size_t i = 0; i < len / PAGE; i++) {
		if (pf_is_zero(raw + i * PAGE, PAGE)) {
			zero |= 1ULL << i;
			continue;
		}
		memcpy(to + e->kept * PAGE, raw + i * PAGE, PAGE);
		e->kept++;
	}
	if (zstd && e->kept)
		e->z = compress(e, e->tmp, data, e->kept * PAGE);
	if (zstd && !e->z)
		memcpy(data, e->tmp, e->kept * PAGE);
	memset(out, 0, PF_HDR_LEN);
	out[0] = e->z ? PF_ZSTD : PF_RAW;
	put_be(out + 4, len, 4);
	put_be(out + 8, zero, 8);
	e->n = PF_HDR_LEN + (e->z ? e->z : e->kept * PAGE);
}

void pf_account(struct pf_ctx *pf, const struct pf_enc *e, uint8_t *out)
{
	if (e->zstd)
		pf->a.probing = false;
	if (e->tried) {
		ewma(&pf->a.ratio, e->z ? (double)e->z / (e->kept * PAGE) : 1.0);
		rate_add(&pf->a.comp_Bpns, &pf->a.comp_b, &pf->a.comp_ns, e->kept * PAGE,
			 e->wall_ns);
		pf->a.off_frames = 0;
	} else if (!e->zstd) {
		pf->a.off_frames++;
	}
	if (e->z && fault_point("src.pagecorrupt") < 0)
		out[PF_HDR_LEN + e->z / 2] ^= 0x55;
	if (pf->st) {
		pf->st->cpu_ns += e->tried ? e->cpu_ns : 0;
		pf->st->zstd_frames += e->z != 0;
		pf->st->raw_bytes += e->len;
		pf->st->wire_bytes += e->n;
		pf->st->zero_pages += e->len / PAGE - e->kept;
	}
}

size_t pf_encode(struct pf_ctx *pf, const uint8_t *raw, size_t len)
{
	pf->enc.level = pf->level;
	pf_encode_into(&pf->enc, raw, len, pf_choose_zstd(pf), pf->out);
	pf_account(pf, &pf->enc, pf->out);
	return pf->enc.n;
}

/* Spread the @kept non-zero pages at the start of @raw to their places. */
static void expand(uint8_t *raw, size_t pages, size_t kept, uint64_t zero)
{
	for (size_t i = pages; i-- > 0;) {
		if (zero & 1ULL << i) {
			memset(raw + i * PAGE, 0, PAGE);
		} else {
			kept--;
			if (kept != i)
				memmove(raw + i * PAGE, raw + kept * PAGE, PAGE);
		}
	}
}

/* One zstd frame of exactly @want bytes (its checksum right) into @raw. */
static int unzstd(struct pf_ctx *pf, const uint8_t *in, size_t n, uint8_t *raw, size_t want)
{
	ZSTD_frameHeader fh;
	unsigned long long size;
	size_t r;

	if (!pf->zstd_ok || want == 0) {
		pr_err("a zstd page frame %s", want ? "that was not negotiated" : "of zero pages");
		return -EPROTO;
	}
	size = ZSTD_getFrameContentSize(in, n);
	if (ZSTD_getFrameHeader(&fh, in, n) != 0 || !fh.checksumFlag) {
		pr_err("corrupt zstd page frame: no header with a checksum");
		return -EBADMSG;
	}
	if (size != want || ZSTD_findFrameCompressedSize(in, n) != n) {
		pr_err("corrupt zstd page frame: it declares %lld bytes in %zu, %zu were due",
		       (long long)size, n, want);
		return -EBADMSG;
	}
	if (!pf->dctx) {
		pf->dctx = ZSTD_createDCtx();
		/* a window beyond one chunk is never needed */
		if (!pf->dctx ||
		    ZSTD_isError(ZSTD_DCtx_setParameter(pf->dctx, ZSTD_d_windowLogMax, 18)))
			return -ENOMEM;
	}
	r = ZSTD_decompressDCtx(pf->dctx, raw, want, in, n);
	if (ZSTD_isError(r) || r != want) {
		pr_err("corrupt zstd page frame: %s",
		       ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short");
		return -EBADMSG;
	}
	return 0;
}

int pf_decode(struct pf_ctx *pf, const uint8_t *in, size_t n, uint8_t *raw, size_t cap,
	      uint32_t *len, uint64_t *zero)
{
	uint64_t l, z, pages, kept;
	int r;

	if (n < PF_HDR_LEN || in[1] || in[2] || in[3]) {
		pr_err("malformed page frame header");
		return -EPROTO;
	}
	l = get_be(in + 4, 4);
	z = get_be(in + 8, 8);
	pages = l / PAGE;
	if (l == 0 || l % PAGE || l > cap || l > FRAME_DATA_MAX || (pages < 64 && z >> pages)) {
		pr_err("page frame of %llu bytes (zero mask %llx) does not fit %zu",
		       (unsigned long long)l, (unsigned long long)z, cap);
		return -EPROTO;
	}
	kept = pages - __builtin_popcountll(z);
	in += PF_HDR_LEN;
	n -= PF_HDR_LEN;
	switch (in[-PF_HDR_LEN]) {
	case PF_RAW:
		if (n != kept * PAGE) {
			pr_err("page frame carries %zu bytes for %llu pages", n,
			       (unsigned long long)kept);
			return -EPROTO;
		}
		memcpy(raw, in, n);
		break;
	case PF_ZSTD:
		r = unzstd(pf, in, n, raw, kept * PAGE);
		if (r < 0)
			return r;
		break;
	default: pr_err("page frame in unknown encoding %u", in[-PF_HDR_LEN]); return -EPROTO;
	}
	expand(raw, pages, kept, z);
	*len = l;
	*zero = z;
	return 0;
}

int pf_send_frame(struct conn *c, const uint8_t *out, size_t w)
{
	uint64_t t0 = pf_clock_ns(CLOCK_MONOTONIC);
	int r = frame_send(c, FRAME_PAGES, out, w);

	link_update(c, out[0], w, pf_clock_ns(CLOCK_MONOTONIC) - t0);
	return r;
}

int pages_send(struct conn *c, const uint8_t *buf, size_t len)
{
	int r = 0;

	for (size_t off = 0; r == 0 && off < len;) {
		size_t n = MIN(len - off, (size_t)FRAME_DATA_MAX);
		if (c->pf)
			r = pf_send_frame(c, c->pf->out, pf_encode(c->pf, buf + off, n));
		else
			r = frame_send(c, FRAME_DATA, buf + off, n);
		off += n;
	}
	return r;
}

int pages_recv(struct conn *c, uint8_t *buf, size_t cap, uint32_t *len, uint64_t *zero)
{
	enum frame_type type;
	int r;

	*zero = 0;
	if (c->pf)
		r = frame_recv(c, &type, c->pf->in, FRAME_PAGES_MAX, len);
	else
		r = frame_recv(c, &type, buf, FRAME_DATA_MAX, len);
	if (r < 0)
		return r == -EMSGSIZE ? -EPROTO : r;
	if (type != (c->pf ? FRAME_PAGES : FRAME_DATA)) {
		pr_err("page stream broken: a %s frame where pages were due",
		       frame_type_name(type));
		return -EPROTO;
	}
	if (c->pf)
		r = pf_decode(c->pf, c->pf->in, *len, buf, FRAME_DATA_MAX, len, zero);
	if (r == 0 && (*len == 0 || *len > cap)) {
		pr_err("page stream broken: %u bytes of pages where at most %zu were due", *len,
		       cap);
		r = -EPROTO;
	}
	return r;
}
