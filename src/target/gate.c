/* SPDX-License-Identifier: MIT */
/*
 * target/gate: a session child's side of its gate socket (the daemon's
 * side is target/children.c).
 */
#define LOG_PREFIX "serve: "
#include "target/gate.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/session.h"

/* The child's end of its gate socket (in a child only). */
static int gate_fd = -1;

void gate_set_child_fd(int fd)
{
	gate_fd = fd;
}

/* Read the Hello, answer Error EBUSY: the client says why. */
static void answer_busy(struct conn *c, const struct serve_opts *o)
{
	Msg *msg = NULL;

	conn_set_timeout(c, 5000);
	if (msg_recv(c, &msg) < 0)
		return;
	msg_free(msg);
	msg_send_error(c, EBUSY, "handshake",
		       "busy: %u migrations running there (--max-parallel %u); try again later",
		       o->max_parallel, o->max_parallel);
	session_drain(c, 1000);
}

int gate_child(struct conn *c, const struct serve_opts *o)
{
	char verdict = 0;

	if (gate_fd < 0) /* not a child of the daemon (tests) */
		return 0;
	if (send(gate_fd, "A", 1, MSG_NOSIGNAL) != 1 || recv(gate_fd, &verdict, 1, 0) != 1)
		verdict = 'X'; /* the daemon is shutting down */
	close(gate_fd);
	gate_fd = -1;
	if (verdict == 'G')
		return 0;
	if (verdict == 'B')
		answer_busy(c, o);
	return 1;
}
