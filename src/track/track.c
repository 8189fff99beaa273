/* SPDX-License-Identifier: MIT */
/* track: choose a method for a process, and run its rounds. */
#define LOG_PREFIX "track: "
#define TRACK_INTERNAL
#include "track/track.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* In order of preference. */
static const struct track_ops *const methods[] = {
	&track_uffd_ops,
	&track_softdirty_ops,
	&track_hash_ops,
};

const char *track_method_name(enum track_method m)
{
	switch (m) {
	case TRACK_UFFD_WP: return "uffd-wp";
	case TRACK_SOFT_DIRTY: return "soft-dirty";
	case TRACK_HASH: return "hash";
	default: return "none";
	}
}

enum track_method tracker_method(const struct tracker *t)
{
	return t && t->ops ? t->ops->method : TRACK_NONE;
}

static int try_methods(struct tracker *t, unsigned allowed)
{
	int r = -EOPNOTSUPP;

	for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
		if (!(allowed & methods[i]->method))
			continue;
		t->ops = methods[i];
		if ((r = t->ops->open(t)) == 0 || r == -ESRCH || r == -ENOMEM)
			return r;
	}
	t->ops = NULL;
	return r;
}

int tracker_open(pid_t pid, unsigned allowed, struct tracker **ret)
{
	struct tracker *t;
	int tgid, r;

	if (!allowed || (allowed & ~TRACK_ALL))
		return -EINVAL;
	if ((tgid = track_tgid(pid)) < 0)
		return -ESRCH;
	if (!(t = calloc(1, sizeof(*t))))
		return -ENOMEM;
	t->pid = tgid;
	t->pidfd = syscall(SYS_pidfd_open, tgid, 0);
	if (t->pidfd < 0)
		r = errno == ESRCH ? -ESRCH : -errno;
	else
		r = track_alive(tgid, t->pidfd) ? try_methods(t, allowed) : -ESRCH;
	if (r < 0) {
		if (r != -ESRCH)
			pr_warn("no way to track process %d: %s", (int)tgid, strerror(-r));
		tracker_close(t);
		return r;
	}
	pr_info("tracking the writes of process %d with %s", (int)tgid,
		track_method_name(t->ops->method));
	*ret = t;
	return 0;
}

int tracker_collect(struct tracker *t, struct rangeset *dirty, uint64_t *pages_scanned)
{
	uint64_t scanned = 0;
	int r;

	rangeset_clear(dirty);
	if (!t || !t->ops)
		return -EINVAL;
	r = t->ops->collect(t, dirty, &scanned);
	if (r < 0)
		rangeset_clear(dirty);
	else if (log_get_level() >= LOG_DEBUG) /* counting is O(ranges) */
		pr_debug("process %d: %llu pages written, %llu scanned", (int)t->pid,
			 (unsigned long long)(rangeset_bytes(dirty) / PAGE),
			 (unsigned long long)scanned);
	if (pages_scanned)
		*pages_scanned = r < 0 ? 0 : scanned;
	return r;
}

void tracker_sent(struct tracker *t, uint64_t vaddr, const void *data, size_t bytes)
{
	if (t && t->ops && t->ops->sent)
		t->ops->sent(t, vaddr, data, bytes);
}

void tracker_close(struct tracker *t)
{
	if (!t)
		return;
	if (t->ops)
		t->ops->close(t);
	if (t->pidfd >= 0)
		close(t->pidfd);
	free(t);
}
