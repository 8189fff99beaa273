/* SPDX-License-Identifier: MIT */
/*
 * sshchan: a conn over an ssh process (`phaul migrate --to ssh://...`).
 *
 * The source runs OpenSSH (the user's config, keys and known_hosts;
 * BatchMode=yes, so it never prompts) with one end of a socketpair as
 * its stdin and stdout; ssh starts `phaul serve --stdio` on the
 * destination, which serves this one migration on its own stdin and
 * stdout. The framed protocol runs as is on that channel: ssh has
 * authenticated both hosts and encrypts the bytes, so there is no TLS
 * and no phaul key on either side.
 *
 * ssh_url_parse() takes ssh://[USER@]HOST[:PORT] (HOST may be [v6]);
 * a user or host that starts with '-' or holds characters outside
 * [A-Za-z0-9._-] (and ':' inside brackets) is refused, so that nothing
 * in the URL reaches ssh as an option.
 */
#ifndef PHAUL_SSHCHAN_H
#define PHAUL_SSHCHAN_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/conn.h"

#define SSH_URL_PREFIX "ssh://"
#define SSH_DEFAULT_CMD "ssh"
#define SSH_DEFAULT_REMOTE "phaul serve --stdio"

struct ssh_dest {
	char user[64]; /* "" for ssh's own choice */
	char host[256];
	char port[6]; /* "" for ssh's own choice */
};

/* Whether @to names an ssh destination (starts with ssh://). */
bool ssh_is_url(const char *to);
int ssh_url_parse(const char *url, struct ssh_dest *d);

/*
 * Start @ssh_cmd (split at spaces: "ssh -F FILE" works; NULL: "ssh")
 * to @d running @remote (NULL: SSH_DEFAULT_REMOTE) there; the conn
 * reads and writes its stdio. Freeing the conn ends the ssh process.
 */
int ssh_dial(const struct ssh_dest *d, const char *ssh_cmd, const char *remote, struct conn **ret);

/*
 * Wait up to @timeout_ms for the first bytes on an ssh conn: 0 when
 * they came (or @c is no ssh conn), a negative errno when ssh ended
 * first, with why in @why: no phaul on the far side (exit 127), ssh
 * could not connect or log in (255), ...
 */
int ssh_await(struct conn *c, int timeout_ms, char *why, size_t len);

/* Why an ssh process that exited with @status ended a channel. */
const char *ssh_status_text(int status);

#endif
