/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the FRAME_PAGES payload decoder (pageframe.c), the
 * destination's decompression path.
 *
 * Input: [0] bit 0: zstd negotiated, bits 1-7: the receiver's room in
 * pages (0: FRAME_DATA_MAX); then the payload. Whatever it decodes must
 * fit the room, be whole pages, and have its zero pages zero; then the
 * decoded pages, encoded again (zstd), must decode to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/page.h"
#include "proto/pageframe.h"
#include "proto/wire.h"
#include "fuzz.h"

static uint8_t space[FRAME_DATA_MAX], again[FRAME_DATA_MAX];
static struct pf_ctx *rx, *tx;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_QUIET);
	rx = pf_ctx_new(NULL);
	tx = pf_ctx_new(NULL);
	if (!rx || !tx)
		abort();
	tx->compress = PF_COMPRESS_ZSTD;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t cap, n;
	uint32_t len = 0, len2 = 0;
	uint64_t zero = 0, zero2 = 0;
	uint8_t *buf;
	int r;

	if (size < 1 || size - 1 > FRAME_PAGES_MAX)
		return 0;
	rx->zstd_ok = data[0] & 1;
	cap = (data[0] >> 1) ? (size_t)(data[0] >> 1) * PAGE : FRAME_DATA_MAX;
	if (cap > FRAME_DATA_MAX)
		cap = FRAME_DATA_MAX;
	/* the last @cap bytes of a global: ASan sees any write past cap */
	buf = space + sizeof(space) - cap;
	r = pf_decode(rx, data + 1, size - 1, buf, cap, &len, &zero);
	if (r < 0) {
		CHECK(r == -EPROTO || r == -EBADMSG || r == -ENOMEM);
		return 0;
	}
	CHECK(len > 0 && len <= cap && len % PAGE == 0);
	CHECK(len / PAGE == 64 || zero >> (len / PAGE) == 0);
	for (size_t i = 0; i < len / PAGE; i++)
		if (zero & 1ULL << i)
			CHECK(pf_is_zero(buf + i * PAGE, PAGE));
	n = pf_encode(tx, buf, len);
	rx->zstd_ok = 1;
	CHECK(pf_decode(rx, tx->out, n, again, sizeof(again), &len2, &zero2) == 0);
	CHECK(len2 == len && !memcmp(again, buf, len));
	return 0;
}
