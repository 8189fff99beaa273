/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pageserver: "
#include "pages/fetch.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/fault.h"
#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "criu/criu.h"
#include "pages/reconnect.h"
#include "proto/pageframe.h"
#include "proto/wire.h"

#define FETCH_PAGES 128u /* 512 KiB: 4 ms at 1 Gbit/s */

int page_wait_input(struct page_server *srv, bool criu, bool conn, int timeout_ms, int *ready)
{
	struct pollfd pfd[3] = { { .fd = srv->wake, .events = POLLIN } };
	int n = 1, ci = -1, si = -1, r;
	bool buffered = false;

	if (conn) {
		int fd = conn_poll_fd(srv->conn, &buffered);
		if (fd < 0)
			return fd;
		if (buffered) {
			*ready = PS_READY_CONN;
			return 0;
		}
		ci = n;
		pfd[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	if (criu) {
		si = n;
		pfd[n++] = (struct pollfd){ .fd = srv->sk, .events = POLLIN };
	}
	do
		r = poll(pfd, n, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	/* CRIU first: a request (or its end) already there is answered */
	if (si >= 0 && pfd[si].revents)
		*ready = PS_READY_CRIU;
	else if (ci >= 0 && pfd[ci].revents)
		*ready = PS_READY_CONN;
	else
		*ready = PS_READY_WAKE;
	return 0;
}

/* Hand @msg (taken over) to the main thread; it is the last one it gets. */
static int post_control(struct page_server *srv, Msg *msg)
{
	int r = 0;

	pthread_mutex_lock(&srv->lock);
	if (srv->ctl || srv->ctl_final) {
		pr_err("unexpected %s from the source", msg_name(msg->body_case));
		msg_free(msg);
		r = -EPROTO;
	} else {
		srv->ctl = msg;
		srv->ctl_final = true;
		pthread_cond_broadcast(&srv->cond);
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}

static int control(struct page_server *srv, Msg *msg)
{
	switch (msg->body_case) {
	case PHAUL__MSG__BODY_COMMIT:
	case PHAUL__MSG__BODY_ABORT:
	case PHAUL__MSG__BODY_ERROR: return post_control(srv, msg);
	default:
		pr_err("%s not allowed while pages are served", msg_name(msg->body_case));
		msg_free(msg);
		return -EPROTO;
	}
}

int page_take_control(struct page_server *srv)
{
	Msg *msg = NULL;
	int r = msg_recv(srv->conn, &msg);

	if (r < 0) {
		pr_err("the connection to the source failed: %s", strerror(-r));
		return r;
	}
	return control(srv, msg);
}

/*
 * How many pages from @pi's start the store lacks (it asks at most that).
 * CRIU reads the answers in the order it asked, so a page fault waits for
 * the background transfer asked before it: answering at most FETCH_PAGES
 * at once (CRIU asks again for the rest) keeps that wait to a few ms.
 */
static uint32_t missing_span(const struct page_server *srv, const struct ps_iov *pi)
{
	uint64_t room = (MSG_VADDR_LIMIT - pi->vaddr) / PAGE;
	uint32_t max = MIN(MIN(pi->nr_pages, FETCH_PAGES), room), n = 1, nr;
	uint64_t off;
	int fd;

	while (n < max && pagestore_lookup(srv->ps, pi->dst_id, pi->vaddr + (uint64_t)n * PAGE, 1,
					   &fd, &off, &nr) == -ENOENT)
		n++;
	return n;
}

static int ask(struct page_server *srv, const struct ps_iov *pi, uint32_t n)
{
	Phaul__PageReq rq = PHAUL__PAGE_REQ__INIT;

	rq.pid = pi->dst_id;
	rq.vaddr = pi->vaddr;
	rq.nr_pages = n;
	return msg_send_page_req(srv->conn, &rq);
}

/* The source's PageData for our request; control messages on the way are passed on. */
static int await_answer(struct page_server *srv, Msg **ret)
{
	for (;;) {
		Msg *msg = NULL;
		int ready, r = page_wait_input(srv, false, true, srv->link_timeout_ms, &ready);
		if (r == -ETIMEDOUT)
			pr_err("the source sent no page for %d s", srv->link_timeout_ms / 1000);
		if (r < 0)
			return r;
		if (ready == PS_READY_WAKE)
			return -ECANCELED;
		r = msg_recv(srv->conn, &msg);
		if (r < 0) {
			pr_err("the connection to the source failed: %s", strerror(-r));
			return r;
		}
		if (msg->body_case == PHAUL__MSG__BODY_PAGE_DATA) {
			*ret = msg;
			return 0;
		}
		r = control(srv, msg);
		if (r < 0)
			return r;
	}
}

/* Relay the answer's data frames to CRIU; *done counts what went out. */
static int relay(struct page_server *srv, uint64_t bytes, uint64_t *done)
{
	uint64_t zero;
	uint32_t len;
	int r;

	while (*done < bytes) {
		r = pages_recv(srv->conn, srv->buf, MIN(bytes - *done, (uint64_t)FRAME_DATA_MAX),
			       &len, &zero);
		if (r < 0)
			return r;
		if (len % PAGE) {
			pr_err("page stream from the source broken: %u bytes, not whole pages",
			       len);
			return -EPROTO;
		}
		r = write_full(srv->sk, srv->buf, len);
		if (r < 0)
			return -ECANCELED; /* CRIU's side: nothing to retry */
		*done += len;
	}
	return 0;
}

/* One exchange for what is left of the run; the CRIU header goes once. */
struct fetch {
	struct ps_iov *pi;
	uint32_t asked; /* pages asked first */
	uint32_t nr;	/* pages promised to CRIU, 0: not yet */
	uint64_t done;	/* bytes relayed to CRIU */
};

static int check_answer(const struct fetch *f, const Phaul__PageData *pd)
{
	uint64_t at = f->pi->vaddr + f->done;
	uint32_t want = f->nr ? f->nr - (uint32_t)(f->done / PAGE) : f->asked;

	if (pd->pid != (int32_t)f->pi->dst_id || pd->vaddr != at || pd->nr_pages > want ||
	    (f->nr && pd->nr_pages != want)) {
		pr_err("the source answered %u pages at 0x%llx of %d for %u at 0x%llx of %llu",
		       pd->nr_pages, (unsigned long long)pd->vaddr, pd->pid, want,
		       (unsigned long long)at, (unsigned long long)f->pi->dst_id);
		return -EPROTO;
	}
	if (pd->nr_pages == 0) {
		pr_err("the source sent none of PID %d's pages at 0x%llx: it could not read them "
		       "(its log says why)",
		       pd->pid, (unsigned long long)pd->vaddr);
		return -EFAULT;
	}
	return 0;
}

static int fetch_once(struct page_server *srv, struct fetch *f)
{
	_cleanup_msg_ Msg *msg = NULL;
	struct ps_iov hdr = *f->pi;
	int r;

	hdr.vaddr += f->done;
	r = ask(srv, &hdr, f->nr ? f->nr - (uint32_t)(f->done / PAGE) : f->asked);
	if (r == 0)
		r = await_answer(srv, &msg);
	if (r == 0)
		r = check_answer(f, msg->page_data);
	if (r < 0)
		return r;
	if (!f->nr) {
		f->nr = msg->page_data->nr_pages;
		hdr = *f->pi;
		hdr.cmd = PS_REPLY_PRESENT;
		hdr.nr_pages = f->nr;
		if (write_full(srv->sk, &hdr, sizeof(hdr)) < 0)
			return -ECANCELED;
	}
	return relay(srv, (uint64_t)f->nr * PAGE, &f->done);
}

/* Whether a failed exchange may be retried on a connection that comes back. */
static bool link_error(int r)
{
	return r != -EPROTO && r != -EFAULT && r != -ECANCELED && r != -ENOMEM;
}

/* The connection broke after the commit: wait for the source to come back. */
static int reattach(struct page_server *srv, int cause)
{
	struct conn *nc = NULL;
	int lfd, r;

	pthread_mutex_lock(&srv->lock);
	lfd = srv->committed && srv->nr_dead < ARRAY_SIZE(srv->dead) ? srv->resume_fd : -1;
	pthread_mutex_unlock(&srv->lock);
	if (lfd < 0)
		return cause;
	pr_warn("the connection to the source broke: waiting up to %d s for it to come back",
		srv->link_timeout_ms / 1000);
	r = resume_accept(lfd, srv->wake, srv->link_timeout_ms, &nc);
	if (r < 0) {
		pr_err("the source did not come back: %s", strerror(-r));
		return r;
	}
	conn_set_timeout(nc, srv->link_timeout_ms);
	pthread_mutex_lock(&srv->lock);
	if (srv->conn != srv->orig_conn)
		srv->dead[srv->nr_dead++] = srv->conn;
	srv->conn = nc;
	pthread_mutex_unlock(&srv->lock);
	pr_info("the source is back: post-copy goes on");
	return 0;
}

int page_fetch(struct page_server *srv, struct ps_iov *pi)
{
	struct fetch f = { .pi = pi, .asked = missing_span(srv, pi) };
	int r;

	if (++srv->fetches == 64 && fault_point("dst.postcopy") < 0)
		conn_abort(srv->conn); /* a broken link, for the recovery tests */
	for (;;) {
		r = fetch_once(srv, &f);
		if (r == 0 || !link_error(r))
			break;
		r = reattach(srv, r);
		if (r < 0)
			return r;
	}
	if (r < 0)
		return r;
	srv->pages_remote += f.nr;
	if (pi->nr_pages <= CRIU_FAULT_AROUND) /* a fault's block (criu.h) */
		srv->pages_fault += f.nr;
	srv->last_ms = now_ms();
	page_server_progress(srv);
	return 0;
}

static void kill_tree(struct page_server *srv)
{
	for (size_t i = 0; i < srv->nr_pids; i++)
		kill(srv->pids[i], SIGKILL);
}

void page_fetch_end(struct page_server *srv, int err)
{
	pthread_mutex_lock(&srv->lock);
	if (err < 0) {
		srv->failed = true;
		if (srv->committed) {
			/* CRIU's lazy-pages would let it run on with holes */
			kill_tree(srv);
			pr_err("the workload's memory cannot be completed: restored tree killed");
		}
		/* and lazy-pages must not wait for answers that never come */
		shutdown(srv->sk, SHUT_RDWR);
		if (srv->client > 0)
			kill(srv->client, SIGKILL);
	}
	if (!srv->ctl && !srv->ctl_err)
		srv->ctl_err = err < 0 ? err : -EPIPE;
	srv->ctl_final = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}
