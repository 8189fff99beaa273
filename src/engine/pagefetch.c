/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pageserver: "
#include "engine/pagefetch.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/wire.h"

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
	if (pfd[0].revents)
		*ready = PS_READY_WAKE;
	else if (si >= 0 && pfd[si].revents)
		*ready = PS_READY_CRIU;
	else
		*ready = ci >= 0 ? PS_READY_CONN : PS_READY_WAKE;
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
	case PHAUL__MSG__BODY_ERROR:
		return post_control(srv, msg);
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

/* How many pages from @pi's start the store lacks (it asks at most that). */
static uint32_t missing_span(const struct page_server *srv, const struct ps_iov *pi)
{
	uint32_t max = MIN(pi->nr_pages, MSG_REQ_PAGES_MAX), n = 1, nr;
	uint64_t off;
	int fd;

	while (n < max && pagestore_lookup(srv->ps, pi->dst_id, pi->vaddr + (uint64_t)n * 4096, 1,
					   &fd, &off, &nr) == -ENOENT)
		n++;
	return n;
}

static int ask(struct page_server *srv, const struct ps_iov *pi, uint32_t n)
{
	Phaul__PageReq rq = PHAUL__PAGE_REQ__INIT;
	Msg msg = PHAUL__MSG__INIT;

	rq.pid = pi->dst_id;
	rq.vaddr = pi->vaddr;
	rq.nr_pages = n;
	msg.body_case = PHAUL__MSG__BODY_PAGE_REQ;
	msg.page_req = &rq;
	return msg_send(srv->conn, &msg);
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

static int relay(struct page_server *srv, uint64_t bytes)
{
	enum frame_type type;
	uint32_t len;
	int r;

	while (bytes > 0) {
		r = frame_recv(srv->conn, &type, srv->buf, FRAME_DATA_MAX, &len);
		if (r < 0)
			return r;
		if (type != FRAME_DATA || len == 0 || len > bytes) {
			pr_err("page stream from the source broken: %u bytes where %llu were due", len,
			       (unsigned long long)bytes);
			return -EPROTO;
		}
		r = write_full(srv->sk, srv->buf, len);
		if (r < 0)
			return r;
		bytes -= len;
	}
	return 0;
}

int page_fetch(struct page_server *srv, struct ps_iov *pi)
{
	uint32_t n = missing_span(srv, pi);
	_cleanup_msg_ Msg *msg = NULL;
	Phaul__PageData *pd;
	int r = ask(srv, pi, n);

	if (r == 0)
		r = await_answer(srv, &msg);
	if (r < 0)
		return r;
	pd = msg->page_data;
	if (pd->pid != (int32_t)pi->dst_id || pd->vaddr != pi->vaddr || pd->nr_pages > n) {
		pr_err("the source answered %u pages at 0x%llx of %d for %u at 0x%llx of %llu",
		       pd->nr_pages, (unsigned long long)pd->vaddr, pd->pid, n,
		       (unsigned long long)pi->vaddr, (unsigned long long)pi->dst_id);
		return -EPROTO;
	}
	if (pd->nr_pages == 0) {
		pr_err("the source cannot read PID %d's pages at 0x%llx", pd->pid,
		       (unsigned long long)pd->vaddr);
		return -EFAULT;
	}
	pi->cmd = PS_REPLY_PRESENT;
	pi->nr_pages = pd->nr_pages;
	r = write_full(srv->sk, pi, sizeof(*pi));
	if (r == 0)
		r = relay(srv, (uint64_t)pd->nr_pages * 4096);
	if (r < 0)
		return r;
	srv->pages_remote += pd->nr_pages;
	if (n == 1 && pi->nr_pages == 1) /* CRIU asks exactly the faulting page */
		srv->pages_fault++;
	srv->last_ms = now_ms();
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
	if (!srv->ctl && !srv->ctl_err && !srv->ctl_final)
		srv->ctl_err = err < 0 ? err : -EPIPE;
	srv->ctl_final = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

int page_server_recv(struct page_server *srv, int timeout_ms, Msg **ret)
{
	struct timespec ts;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&srv->lock);
	while (!srv->ctl && !srv->ctl_err && r == 0)
		r = pthread_cond_timedwait(&srv->cond, &srv->lock, &ts);
	if (srv->ctl) {
		*ret = srv->ctl;
		srv->ctl = NULL;
		r = 0;
	} else {
		r = srv->ctl_err ? srv->ctl_err : -ETIMEDOUT;
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}

int page_server_set_committed(struct page_server *srv)
{
	int r;

	pthread_mutex_lock(&srv->lock);
	srv->committed = true;
	r = srv->failed ? -EIO : 0;
	pthread_mutex_unlock(&srv->lock);
	return r;
}
