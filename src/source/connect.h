/* SPDX-License-Identifier: MIT */
/*
 * connect: the source's connection to the destination (below the steps
 * of source/source.h, which post-copy and the in-doubt resolution use
 * to reconnect).
 */
#ifndef PHAUL_SOURCE_CONNECT_H
#define PHAUL_SOURCE_CONNECT_H

#include <stdint.h>

#include "engine/migration.h"

/*
 * TLS connection plus Hello (with @resume: an outcome query, or with
 * PHAUL_FEAT_PAGES_RESUME in @features, reattaching a post-copy session).
 * The connection it replaces is closed and its bytes counted.
 */
int source_connect(struct migration *m, const uint8_t *resume, uint64_t features);
/* Connect, Hello, HelloReply: the session id in m->session_id. */
int source_hello(struct migration *m);

#endif
