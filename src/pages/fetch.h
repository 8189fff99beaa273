/* SPDX-License-Identifier: MIT */
/*
 * pages/fetch: the post-copy half of the page server (pages/server.h), in
 * its thread (the state: pages/server_state.h). A page the store lacks is asked of the source (PageReq) and
 * its answer (PageData + data frames) is relayed to CRIU as it arrives,
 * never held whole. Messages that are not page data go to the main
 * thread's mailbox. Internal to the page server.
 */
#ifndef PHAUL_PAGES_FETCH_H
#define PHAUL_PAGES_FETCH_H

#include <stdint.h>

#include "pages/server_state.h"

/* CRIU's page-server request header (criu/include/page-xfer.h) */
struct ps_iov {
	uint32_t cmd;
	uint32_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

#define PS_IOV_ADD_F 6
#define PS_CMD_BITS 16
#define PE_PRESENT_FLAG (1u << 2)
#define PS_REPLY_PRESENT (PE_PRESENT_FLAG << PS_CMD_BITS | PS_IOV_ADD_F)

enum { PS_READY_WAKE, PS_READY_CRIU, PS_READY_CONN };

/*
 * Wait for CRIU's socket (if @criu), the connection (if @conn) and the
 * wake-up; *ready says which. -ETIMEDOUT after
 * @timeout_ms (-1: forever).
 */
int page_wait_input(struct page_server *srv, bool criu, bool conn, int timeout_ms, int *ready);
/* Read one message that is not an answer and hand it to the main thread. */
int page_take_control(struct page_server *srv);
/* Fetch the run @pi starts from the source and relay it to CRIU. */
int page_fetch(struct page_server *srv, struct ps_iov *pi);
/* The thread ends with @err: wake the main thread; after the commit, a
 * failure kills the restored tree. */
void page_fetch_end(struct page_server *srv, int err);

#endif
