/* SPDX-License-Identifier: MIT */
/*
 * pageserver: the destination's answer to `criu lazy-pages`. CRIU's lazy
 * restore leaves anonymous memory empty and its lazy-pages daemon asks
 * for pages over a socket in CRIU's page-server protocol (24-byte header
 * {cmd, nr_pages, vaddr, pid}, host-endian); this thread answers from the
 * page store. Requests are range-checked like any peer input.
 */
#ifndef PHAUL_PAGESERVER_H
#define PHAUL_PAGESERVER_H

#include <pthread.h>
#include <stdint.h>

#include "engine/pagestore.h"

struct page_server {
	pthread_t thread;
	bool running;
	int sk;
	const struct pagestore *ps;
	uint64_t pages;			/* served */
	uint64_t requests;
	int err;			/* 0, or why it stopped */
};

/* Serve @ps on @sk (taken over) in a thread of its own. */
int page_server_start(struct page_server *srv, const struct pagestore *ps, int sk);
/* Wait for the thread (it ends when the client closes); returns srv->err. */
int page_server_join(struct page_server *srv);

#endif
