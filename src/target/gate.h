/* SPDX-License-Identifier: MIT */
/*
 * target/gate: how an authenticated session child asks the daemon for a
 * session slot (target/children.h tells the daemon's side).
 */
#ifndef PHAUL_TARGET_GATE_H
#define PHAUL_TARGET_GATE_H

#include "proto/conn.h"
#include "target/serve.h"

/* In a new session child: its end of the gate socket. */
void gate_set_child_fd(int fd);
/*
 * The child's side, right after its handshake: ask for a session slot.
 * 0: go on with the session (also when not a child of the daemon: tests);
 * 1: refused (the client was told, or closed).
 */
int gate_child(struct conn *c, const struct serve_opts *o);

#endif
