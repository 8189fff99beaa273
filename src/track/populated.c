/* SPDX-License-Identifier: MIT */
#define TRACK_INTERNAL
#include "track/track.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "common/util.h"

static int add(void *arg, uint64_t start, uint64_t end)
{
	return rangeset_add(arg, start, end);
}

int track_populated(pid_t pid, struct rangeset *out)
{
	struct track_vmas vs = { 0 };
	_cleanup_close_ int fd = -1;
	char path[64];
	int r;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	r = pm_scan_probe(fd);
	if (r == 0)
		r = track_vmas_read(pid, &vs);
	for (size_t i = 0; r == 0 && i < vs.nr; i++)
		if (!(vs.v[i].flags & TV_EXEC))
			r = pm_scan(fd, &vs.v[i], PM_POPULATED, add, out);
	track_vmas_free(&vs);
	return r;
}
