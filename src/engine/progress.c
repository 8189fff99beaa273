/* SPDX-License-Identifier: MIT */
#include "engine/progress.h"

#include <stdio.h>
#include <unistd.h>

#include "common/util.h"

void progress_begin(struct progress *p, bool enabled, const char *what, uint64_t total)
{
	p->enabled = enabled;
	p->tty = isatty(STDERR_FILENO);
	p->what = what;
	p->total = total;
	p->done = 0;
	p->start_us = p->last_us = now_us();
}

static void progress_print(struct progress *p, const char *end)
{
	double secs = (now_us() - p->start_us) / 1e6;
	double rate = secs > 0 ? p->done / secs / 1e6 : 0;

	fprintf(stderr, "%s%s: %.1f / %.1f MiB, %.1f MB/s%s", p->tty ? "\r" : "", p->what,
		p->done / 1048576.0, p->total / 1048576.0, rate, end);
	fflush(stderr);
}

void progress_add(void *arg, uint64_t bytes)
{
	struct progress *p = arg;
	uint64_t now = now_us();

	p->done += bytes;
	if (!p->enabled)
		return;
	if (now - p->last_us < (p->tty ? 200000u : 1000000u))
		return;
	p->last_us = now;
	progress_print(p, p->tty ? "" : "\n");
}

void progress_end(struct progress *p)
{
	if (p->enabled && p->tty)
		progress_print(p, "\n");
}
