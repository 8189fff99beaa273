/* SPDX-License-Identifier: MIT */
/*
 * serve: the destination's entry point, the daemon of `phaul serve`
 * (target/daemon.c).
 */
#ifndef PHAUL_SERVE_H
#define PHAUL_SERVE_H

#include "proto/key.h"

struct admit;

struct serve_opts {
	const char *listen;
	struct psk_key key;
	const char *workdir;
	const char *logdir; /* failed CRIUs' logs kept here */
	unsigned int max_parallel;
	unsigned int auth_timeout_s;
	unsigned int max_unauth;	  /* connections before authentication */
	unsigned int max_unauth_per_host; /* ... from one address */
	const struct admit *admit;	  /* what the daemon accepts (target/admit.h) */
};
/* The destination daemon: `phaul serve`; returns at SIGTERM. */
int serve(const struct serve_opts *o);
/* `phaul serve --stdio`: one migration on stdin/stdout, under sshd. */
int serve_stdio(const struct serve_opts *o);

#endif
