/* SPDX-License-Identifier: MIT */
/*
 * `phaul __fdpipe FD`: the remote shell phaul gives rsync (sync driver).
 * Copies stdin to the socket FD and FD to stdout; at the end of stdin it
 * shuts FD down for writing (the other side learns rsync is done), and
 * it exits when FD has nothing more to say. rsync's "host" and "command"
 * arguments that follow are ignored: the destination chooses its own.
 */
#include <poll.h>
#include <sys/socket.h>

#include "cli/cli.h"
#include "common/util.h"

/* Copy what is there from @from to @to: 1 on end of file. */
static int copy_some(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return 1;
	return write_full(to, buf, n);
}

int cmd_fdpipe(int argc, char **argv)
{
	uint64_t fd;
	bool in_open = true;

	if (argc < 2 || parse_u64(argv[1], 3, 1024, &fd) < 0)
		return 2;
	for (;;) {
		struct pollfd p[2] = { { .fd = in_open ? 0 : -1, .events = POLLIN },
				       { .fd = (int)fd, .events = POLLIN } };
		int r;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[0].revents) {
			r = copy_some(0, (int)fd);
			if (r < 0)
				return 1;
			if (r == 1) {
				shutdown((int)fd, SHUT_WR);
				in_open = false;
			}
		}
		if (p[1].revents) {
			r = copy_some((int)fd, 1);
			if (r != 0)
				return r < 0 ? 1 : 0;
		}
	}
}
