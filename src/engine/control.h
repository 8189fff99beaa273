/* SPDX-License-Identifier: MIT */
/*
 * control: each migration process (`phaul migrate`, and each session
 * process of `phaul serve`) answers on a unix socket of its own,
 * "<dir>/<pid>-<random>.sock", dir CONTROL_DIR (or $PHAUL_CONTROL_DIR),
 * created 0700: only root reaches it, and both ends check the other's
 * credentials (SO_PEERCRED: root, or our own user). One request a
 * connection, one JSON line, at most CONTROL_REQ_MAX bytes; one JSON
 * line back (docs/EVENTS.md, "Control"):
 *
 *   {"v":1,"op":"status"}           -> the status (engine/events.h)
 *   {"v":1,"op":"cancel","id":HEX}  -> {"v":1,"ok":true} or
 *                                      {"v":1,"ok":false,"error":...}
 *
 * A cancel before the commit point makes the migration fail with
 * "cancelled by the operator" (mig_fail(): the normal rollback); the
 * migration's network reads are woken for it (tls_set_cancel_fd). After
 * the commit point (control_commit()) a cancel is refused. The two are
 * decided under one lock: whichever comes first wins.
 *
 * The state is per process (one migration a process), like the TLS
 * cancel fd.
 */
#ifndef PHAUL_CONTROL_H
#define PHAUL_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/events.h"

#define CONTROL_DIR "/run/phaul/control"
#define CONTROL_REQ_MAX 512
#define CONTROL_REPLY_MAX (64 * 1024)
#define CONTROL_ID_LEN 32 /* hex digits of a session id */
#define CONTROL_CANCELLED "cancelled by the operator"

enum control_op { CONTROL_STATUS, CONTROL_CANCEL };

struct control_req {
	enum control_op op;
	char id[CONTROL_ID_LEN + 1]; /* cancel: lower-case hex */
};

/* Parse one request (pure; untrusted input): 0, or -EINVAL, -E2BIG. */
int control_parse(const char *buf, size_t len, struct control_req *rq);

/* The socket directory: $PHAUL_CONTROL_DIR or CONTROL_DIR. */
const char *control_dir(void);

/*
 * Listen and answer from a thread of our own with @ev's status. The
 * daemon's stop fd (tls_get_cancel_fd()), if any, keeps working: the
 * thread passes it on to the cancel pipe the TLS reads now watch.
 */
int control_start(struct events *ev);
/* Stop answering, remove the socket (also after a failed start). */
void control_stop(void);

/* Whether the operator cancelled this process's migration. */
bool control_cancelled(void);
/* The commit point: -ECANCELED if a cancel came first, else 0 and any
 * later cancel is refused. */
int control_commit(void);

/* Client: send @req to the socket @path, the reply (NUL-terminated) in
 * *@reply (freed by the caller). -ECONNREFUSED: nobody listens there. */
int control_call(const char *path, const char *req, char **reply);

#endif
