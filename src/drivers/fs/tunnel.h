/* SPDX-License-Identifier: MIT */
/*
 * tunnel: a local byte stream (a socket to an rsync process) carried over
 * phaul's connection as FsData messages, both directions at once, on the
 * driver's channel (drv_send(), drv_recv() of its struct drv_ctx).
 *
 * tunnel_run() sends what it reads from @fd as FsData{data} (a thread of
 * its own) and writes the data of the FsData messages it receives to @fd,
 * until both directions are over: it read end of file from @fd (and sent
 * FsData{eof}) and received FsData{eof} (and shut @fd down for writing).
 * One thread sends while the other receives on the channel; nothing
 * else may use it meanwhile. A message other than FsData, or an Error
 * from the peer, ends the tunnel with -EPROTO (the Error is logged).
 */
#ifndef PHAUL_TUNNEL_H
#define PHAUL_TUNNEL_H

#include <stdint.h>

#include "drivers/driver.h"

struct tunnel_stats {
	uint64_t bytes_out; /* sent to the peer */
	uint64_t bytes_in;  /* received from the peer */
};

int tunnel_run(const struct drv_ctx *ctx, int fd, struct tunnel_stats *st);

#endif
