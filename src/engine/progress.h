/* SPDX-License-Identifier: MIT */
/*
 * progress: the user's progress line while data moves: on a terminal,
 * the phase, a bar, the rate and an ETA, rewritten in place five times a
 * second; otherwise one line a second.
 */
#ifndef PHAUL_PROGRESS_H
#define PHAUL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct progress {
	bool enabled;
	bool tty;
	const char *what;
	uint64_t total;
	uint64_t done;
	uint64_t start_us;
	uint64_t last_us;
};

void progress_begin(struct progress *p, bool enabled, const char *what, uint64_t total);
void progress_add(void *p, uint64_t bytes);
void progress_end(struct progress *p);

/* Its parts (tests/unit/test_events.c): the bar, @width cells between
 * brackets, into @buf (@width + 3 bytes); the seconds left at the rate
 * so far, -1 when not known yet. */
#define PROGRESS_BAR_WIDTH 24
void progress_bar(char *buf, size_t width, uint64_t done, uint64_t total);
long progress_eta(uint64_t done, uint64_t total, double secs);

#endif
