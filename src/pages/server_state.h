/* SPDX-License-Identifier: MIT */
/*
 * pages/server_state: the page server's state, shared by its two halves:
 * pages/server.c (the thread, answering from the store) and pages/fetch.c
 * (post-copy: fetching from the source), which server.c calls. The API
 * is pages/server.h.
 */
#ifndef PHAUL_PAGES_SERVER_STATE_H
#define PHAUL_PAGES_SERVER_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "engine/events.h"
#include "pages/store.h"
#include "proto/conn.h"
#include "proto/msg.h"

struct page_server {
	pthread_t thread;
	bool running;
	int sk;	      /* CRIU lazy-pages' socket */
	pid_t client; /* criu lazy-pages, killed if we fail */
	int wake;     /* eventfd: page_server_join() ends the thread */
	const struct pagestore *ps;
	/* post-copy */
	struct conn *conn;   /* to the source; NULL: the store has it all */
	const int32_t *pids; /* the restored processes */
	size_t nr_pids;
	int link_timeout_ms;	/* how long the source may stay silent */
	int resume_fd;		/* where a broken connection comes back */
	struct conn *orig_conn; /* the session's own (not ours to free) */
	struct conn *dead[16];	/* broken ones replaced since */
	size_t nr_dead;
	uint64_t fetches;
	uint8_t *buf;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	Msg *ctl;	/* for the main thread: Commit, Abort, Error */
	int ctl_err;	/* or why the connection failed */
	bool ctl_final; /* no more control messages will come */
	bool committed; /* a failure now must kill the tree */
	bool failed;
	bool criu_done;
	/* statistics */
	uint64_t pages;	       /* served from the store */
	uint64_t pages_remote; /* fetched from the source */
	uint64_t pages_fault;  /* of those, for a page fault */
	uint64_t requests;
	struct events *ev; /* `phaul status`'s progress (under lock) */
	uint64_t last_ms;  /* when the last page went to CRIU */
	int err;	   /* 0, or why it stopped */
};

/* Report the pages put in place so far to srv->ev (server.c). */
void page_server_progress(struct page_server *srv);

#endif
