/* SPDX-License-Identifier: MIT */
/*
 * session: helpers both sides of the engine share: the Hello exchange,
 * waiting for one expected message, scratch directories, and the
 * outcome records the destination keeps so that a source left in doubt
 * can ask how a session ended.
 */
#ifndef PHAUL_SESSION_H
#define PHAUL_SESSION_H

#include "engine/migration.h"

/* Hex of a session id into @buf (at least 33 bytes). */
void session_hex(const uint8_t id[PHAUL_SESSION_ID_LEN], char *buf);

/*
 * Receive the next message and require @want; an Error or Abort from the
 * peer, or any other message, fails the migration with a clear reason.
 */
int expect_msg(struct migration *m, int want, Msg **ret);

/* Create "<workdir>/<prefix><hex>/img"; sets m->dir and m->imgfd. */
int session_mkdirs(struct migration *m, const char *workdir, const char *prefix);
/* Record this process as the owner of m->dir (the daemon cleans up after it). */
int session_write_owner(struct migration *m);
/* Remove the @prefix* directories of @workdir whose owner is dead. */
void session_sweep(const char *workdir, const char *prefix);
/* Remove m->dir and everything in it. */
void session_rmdirs(struct migration *m);
/* Log CRIU's own error lines from @log under m->dir (first @max). */
void session_log_criu_errors(struct migration *m, const char *log, int max);
/*
 * CRIU failed at @what: fail the migration with the cause its log @log
 * (under m->dir) gives (criu_log_error()) and where that log is kept:
 * m->dir goes with the session, so the log is copied to m->logdir as
 * "<session>-<name>", which keeps the newest SESSION_LOGS_KEEP of them.
 */
#define SESSION_LOGS_KEEP 20
int session_criu_failed(struct migration *m, const char *log, const char *what);
/* Copy @src to @dir/@name and drop all but the newest @keep *.log there. */
int session_keep_log(const char *src, const char *dir, const char *name, unsigned int keep);

/*
 * After sending an Error: read and drop what the peer still sends (for
 * at most @max_ms), so that closing does not reset the connection and
 * the peer can read the Error.
 */
void session_drain(struct conn *c, unsigned int max_ms);
/*
 * After a local failure that may have been the peer's doing (a reset
 * while sending): if the peer sent an Error, make it the reported one.
 */
void session_peer_reason(struct migration *m, unsigned int max_ms);

/*
 * Outcome records: <workdir>/outcomes/<hex>, "STATE PID START", replaced
 * atomically (rename); PID 0 for none, START its start time
 * (proc_start_time(), 0 if unknown). They survive a process or daemon
 * crash, not a power cut (no fsync: see outcome_write()).
 */
int outcome_write(const char *workdir, const char *hex, const char *state, int pid);
int outcome_read(const char *workdir, const char *hex, char *state, size_t len, int *pid,
		 uint64_t *start);
/* Whether the process a record names still runs: same PID, same start. */
bool outcome_pid_alive(int pid, uint64_t start);
void outcome_remove(const char *workdir, const char *hex);

#endif
