/* SPDX-License-Identifier: MIT */
/*
 * proc: facts about processes and process trees, read from /proc.
 */
#ifndef PHAUL_PROC_H
#define PHAUL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Every process of the tree rooted at @root, root first, then each
 * process's threads (tids other than the pid). Sorted per process.
 */
int proctree_tasks(pid_t root, int32_t **ret, size_t *ret_nr, size_t *ret_nr_procs);
/* Sum of resident memory (bytes) of the listed processes. */
uint64_t proctree_rss(const int32_t *pids, size_t nr);
/* Whether @pid has a controlling terminal. */
bool proc_has_tty(pid_t pid);
/* /proc/PID/comm into @buf; "?" when gone. */
void proc_comm(pid_t pid, char *buf, size_t len);
/* Whether @pid exists and is not a zombie. */
bool proc_alive(pid_t pid);
/* Whether every thread of the @nr processes is in a tracing stop ("t"). */
bool proctree_seized(const int32_t *pids, size_t nr);
/* Parent pid of @pid, or -1. */
pid_t proc_ppid(pid_t pid);
/*
 * When @pid started (clock ticks after boot, field 22 of /proc/PID/stat):
 * with the PID it names one process, never a later one given the same PID.
 */
int proc_start_time(pid_t pid, uint64_t *ret);
/* Field 22 of a /proc/PID/stat line (after the last ')'). */
int proc_stat_start_time(const char *stat, uint64_t *ret);

/*
 * The key of the first SysV shared memory segment that a /proc/PID/maps
 * text maps ("/SYSV0052e2c1 (deleted)"): 0 and the key in @key, or
 * -ENOENT if it maps none.
 */
int proc_maps_sysv(const char *maps, unsigned long *key);
/*
 * Whether @pid maps a SysV shared memory segment of the IPC namespace
 * phaul itself is in (CRIU dumps such a segment only with its namespace):
 * 1 and its key in @key, 0 if not, negative errno if /proc said nothing.
 */
int proc_host_sysv_shm(pid_t pid, unsigned long *key);
/* Whether @pid is in our namespace of kind @ns ("net", "ipc"): 1, 0, -errno. */
int proc_shares_ns(pid_t pid, const char *ns);
/*
 * Whether the text of a /proc/PID/fdinfo/FD file shows a lock that
 * another process opening the file again would conflict with: a POSIX,
 * OFD or flock lock, or a write lease (any open breaks it); not a read
 * lease (opens for reading leave it).
 */
bool fdinfo_lock_conflicts(const char *fdinfo);

/* @pid's number in its own (innermost) PID namespace: NSpid's last field. */
int proc_nspid(pid_t pid, pid_t *ret);
/* The task of @root's tree whose innermost PID is @nspid; -1 if none. */
pid_t proc_ns_to_host(pid_t root, pid_t nspid);

#endif
