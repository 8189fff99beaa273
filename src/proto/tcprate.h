/* SPDX-License-Identifier: MIT */
/*
 * tcprate: what the kernel's TCP stack says of a connection, for
 * --compress auto's measure of the link. Timing our own writes says
 * little while they only fill socket buffers (several MB at the start of
 * every connection); bytes the peer acknowledged over a span of time
 * are the path's rate, as long as the socket always had more to send
 * (else the span measured our pauses, not the link).
 */
#ifndef PHAUL_TCPRATE_H
#define PHAUL_TCPRATE_H

#include <stdint.h>

/* TCP socket @fd: the bytes of its stream the peer acknowledged so far
 * and the bytes queued in it, sent or not, not acknowledged yet;
 * -ENOTSOCK/-EOPNOTSUPP/... when @fd is no TCP socket (a pipe under ssh)
 * or the kernel keeps no such count. */
int tcp_link_state(int fd, uint64_t *acked, uint32_t *queued);

#endif
