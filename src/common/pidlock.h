/* SPDX-License-Identifier: MIT */
/*
 * pidlock: at most one `phaul migrate` per process tree at a time.
 *
 * A migration holds an exclusive flock(2) on DIR/pid-NS-PID.lock (NS: the
 * inode of this process's PID namespace, so that equal PIDs of different
 * namespaces never share a lock) for as long as it runs. The kernel drops
 * the lock when the holder dies, however it dies: a stale file never
 * blocks. The file holds the holder's PID, for the refusal message, and
 * is removed by pidlock_release().
 */
#ifndef PHAUL_PIDLOCK_H
#define PHAUL_PIDLOCK_H

#include <sys/types.h>

/* Where `phaul migrate` keeps its locks unless $PHAUL_RUNDIR says. */
#define PIDLOCK_DEFAULT_DIR "/run/phaul"

/*
 * Take the lock of @pid under @dir (created, mode 0700). Returns an fd
 * that holds it, -EBUSY if another process holds it (its PID in
 * *@holder, 0 if unknown), or another negative errno (logged).
 */
int pidlock_take(const char *dir, pid_t pid, pid_t *holder);
/* Remove the lock file and drop the lock (@fd from pidlock_take, or < 0). */
void pidlock_release(const char *dir, pid_t pid, int fd);
/* $PHAUL_RUNDIR or PIDLOCK_DEFAULT_DIR. */
const char *pidlock_dir(void);

#endif
