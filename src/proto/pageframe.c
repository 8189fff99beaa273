/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pages: "
#include "proto/pageframe.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "proto/wire.h"

struct pf_ctx *pf_ctx_new(struct pf_stats *st)
{
	struct pf_ctx *pf = calloc(1, sizeof(*pf));

	if (!pf)
		return NULL;
	pf->st = st;
	pf->out = malloc(FRAME_PAGES_MAX);
	pf->in = malloc(FRAME_PAGES_MAX);
	if (!pf->out || !pf->in) {
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
	free(pf);
}

int pf_attach(struct conn *c, struct pf_stats *st)
{
	struct pf_ctx *pf = pf_ctx_new(st);

	if (!pf)
		return -ENOMEM;
	if (c->pf)
		c->pf_free(c->pf);
	c->pf = pf;
	c->pf_free = pf_ctx_free;
	return 0;
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

size_t pf_encode(struct pf_ctx *pf, const uint8_t *raw, size_t len)
{
	uint8_t *data = pf->out + PF_HDR_LEN;
	size_t pages = len / PAGE, kept = 0, n;
	uint64_t zero = 0;

	for (size_t i = 0; i < pages; i++) {
		if (pf_is_zero(raw + i * PAGE, PAGE)) {
			zero |= 1ULL << i;
			continue;
		}
		memcpy(data + kept * PAGE, raw + i * PAGE, PAGE);
		kept++;
	}
	memset(pf->out, 0, PF_HDR_LEN);
	pf->out[0] = PF_RAW;
	put_be(pf->out + 4, len, 4);
	put_be(pf->out + 8, zero, 8);
	n = PF_HDR_LEN + kept * PAGE;
	if (pf->st) {
		pf->st->raw_bytes += len;
		pf->st->wire_bytes += n;
		pf->st->zero_pages += pages - kept;
	}
	return n;
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

int pf_decode(struct pf_ctx *pf, const uint8_t *in, size_t n, uint8_t *raw, size_t cap,
	      uint32_t *len, uint64_t *zero)
{
	uint64_t l, z, pages, kept;

	(void)pf;
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
	default: pr_err("page frame in unknown encoding %u", in[-PF_HDR_LEN]); return -EPROTO;
	}
	expand(raw, pages, kept, z);
	*len = l;
	*zero = z;
	return 0;
}

int pages_send(struct conn *c, const uint8_t *buf, size_t len)
{
	int r = 0;

	for (size_t off = 0; r == 0 && off < len;) {
		size_t n = MIN(len - off, (size_t)FRAME_DATA_MAX);
		if (c->pf)
			r = frame_send(c, FRAME_PAGES, c->pf->out, pf_encode(c->pf, buf + off, n));
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
