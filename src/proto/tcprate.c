/* SPDX-License-Identifier: MIT */
#include "proto/tcprate.h"

#include <errno.h>
#include <linux/sockios.h> /* SIOCOUTQ */
#include <linux/tcp.h>	   /* struct tcp_info with tcpi_bytes_acked */
#include <netinet/in.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int tcp_link_state(int fd, uint64_t *acked, uint32_t *queued)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int q;

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	/* older kernels fill less of the struct */
	if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return -EOPNOTSUPP;
	if (ioctl(fd, SIOCOUTQ, &q) < 0)
		return -errno;
	*acked = ti.tcpi_bytes_acked;
	*queued = q > 0 ? (uint32_t)q : 0;
	return 0;
}
