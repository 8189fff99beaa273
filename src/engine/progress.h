/* SPDX-License-Identifier: MIT */
/*
 * progress: the user's progress line while data moves: rewritten in
 * place on a terminal, one line a second otherwise.
 */
#ifndef PHAUL_PROGRESS_H
#define PHAUL_PROGRESS_H

#include <stdbool.h>
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

#endif
