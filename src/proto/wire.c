/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "wire: "
#include "proto/wire.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#define MAGIC0 'P'
#define MAGIC1 'H'

void frame_hdr_encode(uint8_t out[FRAME_HDR_LEN], enum frame_type type, uint32_t len)
{
	out[0] = MAGIC0;
	out[1] = MAGIC1;
	out[2] = type;
	out[3] = 0;
	out[4] = len >> 24;
	out[5] = len >> 16;
	out[6] = len >> 8;
	out[7] = len;
}

int frame_hdr_decode(const uint8_t in[FRAME_HDR_LEN], enum frame_type *type, uint32_t *len)
{
	uint32_t l = (uint32_t)in[4] << 24 | (uint32_t)in[5] << 16 | (uint32_t)in[6] << 8 | in[7];

	if (in[0] != MAGIC0 || in[1] != MAGIC1 || in[3] != 0)
		return -EPROTO;
	switch (in[2]) {
	case FRAME_MSG:
		if (l > FRAME_MSG_MAX)
			return -EPROTO;
		break;
	case FRAME_DATA:
		if (l > FRAME_DATA_MAX)
			return -EPROTO;
		break;
	case FRAME_PAGES:
		if (l > FRAME_PAGES_MAX)
			return -EPROTO;
		break;
	default: return -EPROTO;
	}
	*type = in[2];
	*len = l;
	return 0;
}

const char *frame_type_name(enum frame_type type)
{
	switch (type) {
	case FRAME_MSG: return "message";
	case FRAME_DATA: return "data";
	case FRAME_PAGES: return "pages";
	}
	return "?";
}

int frame_send(struct conn *c, enum frame_type type, const void *buf, size_t len)
{
	uint8_t hdr[FRAME_HDR_LEN];
	size_t max = type == FRAME_MSG	? FRAME_MSG_MAX :
		     type == FRAME_DATA ? FRAME_DATA_MAX :
					  FRAME_PAGES_MAX;
	int r;

	if (len > max)
		return -EMSGSIZE;
	frame_hdr_encode(hdr, type, len);
	pthread_mutex_lock(&c->send_lock);
	if (c->sendbuf) {
		/* the header in the write (the TLS record) of the payload's
		 * start: a small frame is one record and one syscall, not two */
		size_t head = MIN(len, (size_t)CONN_SENDBUF - FRAME_HDR_LEN);
		memcpy(c->sendbuf, hdr, FRAME_HDR_LEN);
		if (head)
			memcpy(c->sendbuf + FRAME_HDR_LEN, buf, head);
		r = conn_write(c, c->sendbuf, FRAME_HDR_LEN + head);
		if (r == 0 && len > head)
			r = conn_write(c, (const uint8_t *)buf + head, len - head);
	} else {
		r = conn_write(c, hdr, sizeof(hdr));
		if (r == 0 && len > 0)
			r = conn_write(c, buf, len);
	}
	pthread_mutex_unlock(&c->send_lock);
	return r;
}

int frame_recv(struct conn *c, enum frame_type *type, void *buf, size_t cap, uint32_t *len)
{
	uint8_t hdr[FRAME_HDR_LEN];
	int r;

	r = conn_read(c, hdr, sizeof(hdr));
	if (r < 0)
		return r;
	r = frame_hdr_decode(hdr, type, len);
	if (r < 0) {
		pr_err("malformed frame header from peer");
		return r;
	}
	if (*len > cap) {
		pr_err("frame of %u bytes exceeds the %zu expected", *len, cap);
		return -EMSGSIZE;
	}
	return *len ? conn_read(c, buf, *len) : 0;
}
