/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the image chunk decoder (xfer.c, PHAUL_FEAT_IMG_ZSTD),
 * the destination's decompression of CRIU's image files. The zstd stream
 * spans chunks, so an input is a series of chunks into one receiver.
 *
 * Input: [0] the room the file has left, in 512-byte units (0:
 * XF_CHUNK_MAX); then chunks, each a 2-byte big-endian length and that
 * many bytes (the last one cut to what is left). Decoding stops at the
 * first error, as the connection would. Whatever decodes must fit the
 * room; its bytes, encoded again (zstd), must decode to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/wire.h"
#include "proto/xfer.h"
#include "fuzz.h"

static uint8_t space[XF_CHUNK_MAX], again[XF_CHUNK_MAX];
static struct xfer_codec *tx, *rx2;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init("fuzz", LOG_QUIET);
	tx = xf_new(PF_COMPRESS_ZSTD, NULL);
	rx2 = xf_new(PF_COMPRESS_OFF, NULL);
	if (!tx || !rx2)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xfer_codec *rx;
	size_t cap, pos = 1;
	uint8_t *buf;

	if (size < 1)
		return 0;
	cap = data[0] ? (size_t)data[0] * 512 : XF_CHUNK_MAX;
	if (cap > XF_CHUNK_MAX)
		cap = XF_CHUNK_MAX;
	/* the last @cap bytes of a global: ASan sees any write past cap */
	buf = space + sizeof(space) - cap;
	rx = xf_new(PF_COMPRESS_OFF, NULL);
	CHECK(rx);
	while (pos + 2 <= size) {
		size_t n = (size_t)data[pos] << 8 | data[pos + 1], w;
		uint32_t len = 0, len2 = 0;
		int r;

		pos += 2;
		if (n > size - pos)
			n = size - pos;
		r = xf_decode(rx, data + pos, n, buf, cap, &len);
		pos += n;
		if (r < 0) {
			CHECK(r == -EPROTO || r == -EBADMSG || r == -ENOMEM);
			/* a broken stream takes no more compressed data */
			CHECK(r != -EBADMSG || rx->broken);
			break;
		}
		CHECK(len > 0 && len <= cap);
		CHECK(xf_encode(tx, buf, len, 0, &w) == 0);
		CHECK(w <= FRAME_DATA_MAX);
		CHECK(xf_decode(rx2, tx->buf, w, again, sizeof(again), &len2) == 0);
		CHECK(len2 == len && !memcmp(again, buf, len));
	}
	xf_free(rx);
	return 0;
}
