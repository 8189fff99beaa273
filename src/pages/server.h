/* SPDX-License-Identifier: MIT */
/*
 * pages/server: the destination's answer to `criu lazy-pages`. CRIU's lazy
 * restore leaves anonymous memory empty and its lazy-pages daemon asks
 * for pages over a socket in CRIU's page-server protocol (24-byte header
 * {cmd, nr_pages, vaddr, pid}, host-endian); this thread answers from the
 * page store. Requests are range-checked like any peer input.
 *
 * Post-copy (lazy, hybrid): pages the store lacks are fetched from the
 * source's frozen tree over the migration's connection (PageReq, answered
 * by PageData). From the restore until the commit this thread is the
 * connection's only reader: the messages that are not page data (Commit,
 * Abort, Error) go to the main thread through page_server_recv(). After
 * the commit the source's copy is the only home of the missing pages: if
 * they cannot come any more, the thread kills the restored tree before
 * CRIU's lazy-pages could let it run on with holes in its memory.
 */
#ifndef PHAUL_PAGES_SERVER_H
#define PHAUL_PAGES_SERVER_H

#include <stdint.h>

#include "pages/server_state.h"
#include "pages/store.h"
#include "proto/conn.h"
#include "proto/msg.h"

/*
 * Serve @ps on @sk (taken over) in a thread of its own; with @conn, fetch
 * what @ps lacks from the source and own @conn's input until the commit.
 */
int page_server_start(struct page_server *srv, const struct pagestore *ps, int sk,
		      struct conn *conn, const int32_t *pids, size_t nr_pids, int link_timeout_ms);
/*
 * Post-copy: after the commit, a broken connection is waited for on
 * @lfd (pages/reconnect.h; taken over) for link_timeout_ms instead of failing.
 */
void page_server_set_resume(struct page_server *srv, int lfd);
/* After page_server_join(): the connection to go on with (the session's
 * own, or one that replaced it after a break: then the caller owns it). */
struct conn *page_server_conn(struct page_server *srv);
/* Post-copy: the next message from the source that is not page data. */
int page_server_recv(struct page_server *srv, int timeout_ms, Msg **ret);
/* The restored processes (host pids) a failure after the commit kills. */
void page_server_set_tree(struct page_server *srv, const int32_t *pids, size_t nr);
/* Where the pages moved so far are reported (`phaul status`), or NULL. */
void page_server_set_events(struct page_server *srv, struct events *ev);
/* Post-copy: the tree runs; from now on a lost page kills it. -EIO if
 * the page source already failed (then the tree must not run). */
int page_server_set_committed(struct page_server *srv);
/* Wait for the thread (it ends when the client closes); returns srv->err. */
int page_server_join(struct page_server *srv);

#endif
