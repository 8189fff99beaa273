/* SPDX-License-Identifier: MIT */
/*
 * xfer: files over a conn. A file travels as FileBegin{name,size,mode},
 * then FRAME_DATA chunks of at most FRAME_DATA_MAX bytes adding up to
 * exactly `size`, then FileEnd{xxh64}. Never more than one chunk is held
 * in memory. The receiver creates the file under a directory fd only
 * (O_EXCL, O_NOFOLLOW, a safe name), within a byte budget, and checks the
 * hash before it accepts the file.
 */
#ifndef PHAUL_XFER_H
#define PHAUL_XFER_H

#include <stdint.h>

#include "proto/conn.h"
#include "proto/msg.h"

struct xfer_progress {
	void (*cb)(void *arg, uint64_t bytes); /* called after each chunk */
	void *arg;
};

/* Send the file @name from @dirfd. */
int xfer_send_file(struct conn *c, int dirfd, const char *name, const struct xfer_progress *p);
/*
 * Receive the file announced by @fb (already validated) into @dirfd.
 * *budget is the number of bytes still allowed; decremented on success.
 */
int xfer_recv_file(struct conn *c, int dirfd, const Phaul__FileBegin *fb, uint64_t *budget);

#endif
