/* SPDX-License-Identifier: MIT */
#include "proto/tcprate.h"

#include <errno.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked */
#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>

int tcp_bytes_acked(int fd, uint64_t *acked)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	/* older kernels fill less of the struct */
	if (len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof(ti.tcpi_bytes_acked))
		return -EOPNOTSUPP;
	*acked = ti.tcpi_bytes_acked;
	return 0;
}
