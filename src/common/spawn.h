/* SPDX-License-Identifier: MIT */
/*
 * spawn: run helper programs (rsync, mount, cp) as children that die with
 * us. The child gets @in as stdin, @out as stdout (-1: /dev/null), our
 * stderr (the log), @fd3 as fd 3 when >= 0, and nothing else.
 */
#ifndef PHAUL_SPAWN_H
#define PHAUL_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

int spawn(char *const argv[], int in, int out, int fd3, pid_t *ret);
/* The same with @fds[i] as fd 3 + i (at most SPAWN_FDS_MAX). */
#define SPAWN_FDS_MAX 136
int spawn_fds(char *const argv[], int in, int out, const int *fds, size_t nr, pid_t *ret);
/* Wait for @pid: its exit status (0..255), 128+N when killed by signal N. */
int spawn_wait(pid_t pid);
/* spawn + spawn_wait, stdin and stdout /dev/null; 0 only when it exited 0. */
int run_cmd(char *const argv[]);
/* spawn + spawn_wait with stdout read into *out (at most @max bytes, NUL
 * terminated; the rest is dropped when the buffer is full): the exit status. */
int run_output(char *const argv[], size_t max, char **out);

#endif
