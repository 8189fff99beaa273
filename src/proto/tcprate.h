/* SPDX-License-Identifier: MIT */
/*
 * tcprate: what the kernel's TCP stack says the peer acknowledged, for
 * --compress auto's measure of the link. Timing our own writes says
 * little while they only fill socket buffers (several MB at the start of
 * every connection); bytes acknowledged over a span of time are the
 * path's rate while we keep it busy.
 */
#ifndef PHAUL_TCPRATE_H
#define PHAUL_TCPRATE_H

#include <stdint.h>

/* The bytes of TCP socket @fd's stream the peer acknowledged so far;
 * -ENOTSOCK/-EOPNOTSUPP/... when @fd is no TCP socket (a pipe under ssh)
 * or the kernel keeps no such count. */
int tcp_bytes_acked(int fd, uint64_t *acked);

#endif
