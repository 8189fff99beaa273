/* SPDX-License-Identifier: MIT */
/*
 * pages/reconnect: reattaching a post-copy session whose connection broke.
 *
 * After the commit the destination's session process holds the restored
 * tree and its page server; the source's `phaul migrate` holds the frozen
 * tree with the pages not moved yet. If their connection breaks, neither
 * gives up for --recover-timeout seconds: the source dials the daemon
 * again and asks to resume the session (Hello{resume: id, features:
 * PHAUL_FEAT_PAGES_RESUME}); the session process that takes the new
 * connection (a fresh one, as for every connection) relays its bytes to
 * the waiting session over a unix socket in that session's directory
 * (RESUME_SOCK in WORKDIR/in-ID, root's alone; both ends check with
 * SO_PEERCRED that the other is root's). The waiting
 * session's page server continues on the relayed stream: TLS ends in the
 * relaying process, the stream behind it is the same framed protocol.
 */
#ifndef PHAUL_PAGES_RECONNECT_H
#define PHAUL_PAGES_RECONNECT_H

#include <stdint.h>

#include "proto/conn.h"
#include "proto/msg.h"

#define RESUME_SOCK "resume.sock"

/* The waiting session: listen for a relayed connection in its @dir. */
int resume_listen(const char *dir, int *ret_fd);
/* Accept one from a root process within @timeout_ms; -ECANCELED if @wake fires. */
int resume_accept(int lfd, int wake, int timeout_ms, struct conn **ret);
/* The new session process: connect to the session waiting in @dir
 * (-ENOENT if none, -EPERM if its listener is not root's). */
int resume_connect(const char *dir, int *ret_fd);
/* Relay bytes between @c and @fd until either side ends. */
int resume_relay(struct conn *c, int fd);

#endif
