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

/* "[#####-----]" of @done out of @total, @width cells, into @buf. */
void progress_bar(char *buf, size_t width, uint64_t done, uint64_t total)
{
	size_t full = total ? (size_t)((double)MIN(done, total) / total * width) : 0;

	buf[0] = '[';
	for (size_t i = 0; i < width; i++)
		buf[1 + i] = i < full ? '#' : '-';
	buf[1 + width] = ']';
	buf[2 + width] = '\0';
}

/* Seconds left at the rate so far; -1 when unknown. */
long progress_eta(uint64_t done, uint64_t total, double secs)
{
	if (!done || secs <= 0 || total < done)
		return done && total <= done ? 0 : -1;
	return (long)((total - done) / (done / secs) + 0.5);
}

static void progress_print(struct progress *p, const char *end)
{
	double secs = (now_us() - p->start_us) / 1e6;
	double rate = secs > 0 ? p->done / secs / 1e6 : 0;
	long eta = progress_eta(p->done, p->total, secs);
	char bar[PROGRESS_BAR_WIDTH + 3], left[32] = "ETA --:--";

	if (!p->tty) {
		fprintf(stderr, "%s: %.1f / %.1f MiB, %.1f MB/s%s", p->what, p->done / 1048576.0,
			p->total / 1048576.0, rate, end);
		fflush(stderr);
		return;
	}
	progress_bar(bar, PROGRESS_BAR_WIDTH, p->done, p->total);
	if (eta >= 0)
		snprintf(left, sizeof(left), "ETA %ld:%02ld", eta / 60, eta % 60);
	fprintf(stderr, "\r%s %s %3.0f%% %.1f/%.1f MiB %.1f MB/s %s\033[K%s", p->what, bar,
		p->total ? 100.0 * MIN(p->done, p->total) / p->total : 0.0, p->done / 1048576.0,
		p->total / 1048576.0, rate, left, end);
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
