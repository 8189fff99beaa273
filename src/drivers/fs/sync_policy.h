/* SPDX-License-Identifier: MIT */
/*
 * sync_policy: the pure logic of the sync driver, apart from any I/O.
 *
 * sync_parse_stats() reads what `rsync --stats` prints (numbers may carry
 * thousands separators: "Total bytes sent: 10,488,627"). Missing lines
 * leave their field at 0; -EINVAL when no line at all was recognised.
 *
 * sync_decide() is the convergence rule for the rounds run while the
 * workload runs, like memory's: keep copying while a round still moves a
 * lot and moves less than the one before; stop when a round moved at most
 * SYNC_SMALL_BYTES and SYNC_SMALL_FILES (what is left fits in the frozen
 * pass), when it stopped shrinking, or after SYNC_MAX_ROUNDS.
 */
#ifndef PHAUL_SYNC_POLICY_H
#define PHAUL_SYNC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SYNC_MAX_ROUNDS 6
#define SYNC_SMALL_BYTES (1ULL << 20)
#define SYNC_SMALL_FILES 16

struct sync_stats {
	uint64_t files;	      /* entries in the tree */
	uint64_t transferred; /* regular files (re)transferred */
	uint64_t deleted;
	uint64_t changed_bytes; /* "Total transferred file size" */
	uint64_t bytes_sent;	/* on the wire, from the sender */
};

enum sync_verdict { SYNC_CONTINUE, SYNC_CONVERGED, SYNC_NOT_SHRINKING, SYNC_MAX };

/*
 * Whether @dir may name a synced directory: absolute, at most 1024 bytes
 * of [A-Za-z0-9/._+-], no empty, "." or ".." component, not "/" itself
 * (it is written into the destination's rsync configuration).
 */
bool sync_dir_ok(const char *dir);
int sync_parse_stats(const char *text, struct sync_stats *st);
/* @rounds[0..n) are the rounds done so far (n >= 1), the last one last. */
enum sync_verdict sync_decide(const struct sync_stats *rounds, size_t n);
const char *sync_verdict_name(enum sync_verdict v);

#endif
