/* SPDX-License-Identifier: MIT */
/*
 * target/children: the children of `phaul serve`. Every accepted connection
 * gets a child at once, which runs the TLS handshake. Until it is
 * authenticated it counts against the handshake budget alone (at most
 * --max-unauth at once, at most --max-unauth-per-host from one address;
 * beyond that a connection is closed unread), never against the session
 * slots: silent or hostile connections cannot lock migrations out. An
 * authenticated child asks the daemon for a session slot over its gate
 * socket: it gets one (at most --max-parallel sessions), or answers the
 * client Error EBUSY (at most BUSY_MAX such answers at once; beyond that
 * the connection is closed).
 *
 * Every child leads its own process group, ignores SIGTERM/SIGINT, dies
 * with the daemon (PDEATHSIG) until its commit, and has the read end of
 * the shutdown pipe as its TLS cancel fd.
 *
 * When a session process is reaped after a signal, its directory is
 * removed only once its process group (its CRIU, rolling back) is gone:
 * waited for 5 s, then killed unless it had committed (BUG-6 in
 * docs/RELIABILITY.md).
 */
#ifndef PHAUL_TARGET_CHILDREN_H
#define PHAUL_TARGET_CHILDREN_H

#include <poll.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/migration.h"
#include "target/serve.h"
#include "proto/conn.h"

#define BUSY_MAX 4
#define UNAUTH_MAX_DEFAULT 32
#define UNAUTH_PER_HOST_DEFAULT 8

enum kid_state { KID_HANDSHAKE, KID_SESSION, KID_BUSY };

struct kid {
	pid_t pid;
	int gate; /* the daemon's end while it may still ask, else -1 */
	enum kid_state state;
	uint8_t addr[16]; /* the client's address (IPv4 as ::ffff:a.b.c.d) */
};

/* The daemon's children. */
struct kids {
	unsigned int nr;	   /* sessions (authenticated, with a slot) */
	unsigned int nr_handshake; /* not authenticated yet */
	struct kid *tab;
	size_t len, cap;
	struct pollfd *pfd;    /* cap + 1 */
	uint64_t warned_ms;    /* last "closed unread" warning */
	unsigned int unwarned; /* connections closed since, not logged */
	int stop_rd, stop_wr;  /* shutdown pipe */
};

int kids_init(struct kids *k, const struct serve_opts *o);
/* Frees what kids_init allocated (the children's table). */
void kids_fini(struct kids *k);
/* Accept one connection from @lfd: a child for it, or closed unread. */
void kids_accept(int lfd, const struct serve_opts *o, struct kids *k);
/* Wait up to @ms for @lfd or a gate; answer the gates. 1 if @lfd is ready. */
int kids_poll(struct kids *k, const struct serve_opts *o, int lfd, int ms);
/* Shutting down: no child gets a slot any more. */
void kids_close_gates(struct kids *k);
/* Reap ended children without waiting; clean up after killed sessions. */
void kids_reap(const char *workdir, struct kids *k);

#endif
