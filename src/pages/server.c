/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pageserver: "
#include "pages/server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "pages/fetch.h"
#include "proto/wire.h"

/* CRIU's page-server protocol (criu/page-xfer.c) */
#define PS_IOV_GET 7
#define PS_IOV_CLOSE 0x1023
#define PS_IOV_FORCE_CLOSE 0x1024
#define PS_MAX_PAGES 1024u

#define CHUNK_PAGES 64u

/* The fallback where sendfile() cannot move pages to this socket. */
static int copy_pages(int sk, int fd, uint64_t off, uint32_t nr)
{
	uint8_t buf[CHUNK_PAGES * PAGE];

	while (nr > 0) {
		uint32_t n = nr < CHUNK_PAGES ? nr : CHUNK_PAGES;
		ssize_t got = pread(fd, buf, n * PAGE, off);
		if (got != (ssize_t)(n * PAGE))
			return got < 0 ? -errno : -EIO;
		int r = write_full(sk, buf, n * PAGE);
		if (r < 0)
			return r;
		off += n * PAGE;
		nr -= n;
	}
	return 0;
}

/*
 * sendfile() hands the store's page-cache pages to the socket (a unix
 * socket takes them by reference since Linux 6.5): no copy into a buffer
 * of ours and none into the socket, which was most of this thread's time
 * while criu lazy-pages filled a live-mode restore.
 */
static int send_pages(int sk, int fd, uint64_t off, uint32_t nr)
{
	off_t pos = (off_t)off;
	size_t left = (size_t)nr * PAGE;

	while (left > 0) {
		ssize_t n = sendfile(sk, fd, &pos, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EINVAL || errno == ENOSYS) && left == (size_t)nr * PAGE)
			return copy_pages(sk, fd, off, nr);
		if (n <= 0)
			return n < 0 ? -errno : -EIO; /* the store file is short */
		left -= (size_t)n;
	}
	return 0;
}

static int answer_get(struct page_server *srv, struct ps_iov *pi)
{
	uint64_t off;
	uint32_t nr;
	int fd, r;

	if (pi->nr_pages == 0 || pi->nr_pages > (1u << 20) || pi->dst_id > (1u << 22) ||
	    pi->vaddr % PAGE || pi->vaddr >= MSG_VADDR_LIMIT) {
		pr_err("bad request: %u pages at 0x%llx for %llu", pi->nr_pages,
		       (unsigned long long)pi->vaddr, (unsigned long long)pi->dst_id);
		return -EPROTO;
	}
	srv->requests++;
	r = pagestore_lookup(srv->ps, pi->dst_id, pi->vaddr, MIN(pi->nr_pages, PS_MAX_PAGES), &fd,
			     &off, &nr);
	if (r == -ENOENT && srv->conn)
		return page_fetch(srv, pi);
	if (r < 0) {
		pr_err("PID %llu asks for 0x%llx, which never arrived",
		       (unsigned long long)pi->dst_id, (unsigned long long)pi->vaddr);
		return r;
	}
	pi->cmd = PS_REPLY_PRESENT;
	pi->nr_pages = nr;
	r = write_full(srv->sk, pi, sizeof(*pi));
	if (r == 0)
		r = send_pages(srv->sk, fd, off, nr);
	srv->pages += nr;
	srv->last_ms = now_ms();
	page_server_progress(srv);
	return r;
}

/* One request from CRIU; sets criu_done when it is through. */
static int handle_request(struct page_server *srv)
{
	struct ps_iov pi;
	int r = read_full(srv->sk, &pi, 1);

	if (r == -EPIPE) { /* the client went away between requests */
		srv->criu_done = true;
		return 0;
	}
	if (r == 0) /* a header cut short is an error */
		r = read_full(srv->sk, (uint8_t *)&pi + 1, sizeof(pi) - 1);
	if (r < 0)
		return r;
	if ((pi.cmd & 0xffff) == PS_IOV_GET)
		return answer_get(srv, &pi);
	if (pi.cmd == PS_IOV_CLOSE || pi.cmd == PS_IOV_FORCE_CLOSE) {
		int32_t status = 0;
		srv->criu_done = true;
		return write_full(srv->sk, &status, sizeof(status));
	}
	pr_err("unexpected command 0x%x", pi.cmd);
	return -EPROTO;
}

static bool finished(const struct page_server *srv)
{
	return srv->criu_done && (!srv->conn || srv->ctl_final);
}

static void *serve(void *arg)
{
	struct page_server *srv = arg;
	int r = 0, ready;

	while (r == 0 && !finished(srv)) {
		r = page_wait_input(srv, !srv->criu_done, srv->conn && !srv->ctl_final, -1, &ready);
		if (r < 0 || ready == PS_READY_WAKE)
			break;
		if (ready == PS_READY_CONN)
			r = page_take_control(srv);
		else
			r = handle_request(srv);
	}
	srv->err = r;
	if (r < 0)
		pr_err("stopped: %s", strerror(-r));
	page_fetch_end(srv, r);
	pr_debug("served %llu pages from the store, %llu from the source, in %llu requests",
		 (unsigned long long)srv->pages, (unsigned long long)srv->pages_remote,
		 (unsigned long long)srv->requests);
	return NULL;
}

int page_server_start(struct page_server *srv, const struct pagestore *ps, int sk,
		      struct conn *conn, const int32_t *pids, size_t nr_pids, int link_timeout_ms)
{
	int r;

	memset(srv, 0, sizeof(*srv));
	srv->sk = sk;
	srv->ps = ps;
	srv->conn = conn;
	srv->pids = pids;
	srv->nr_pids = nr_pids;
	srv->link_timeout_ms = link_timeout_ms;
	if (conn) /* a source that stalls mid-answer is a silent link */
		conn_set_timeout(conn, link_timeout_ms);
	srv->orig_conn = conn;
	srv->resume_fd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->cond, NULL);
	srv->wake = eventfd(0, EFD_CLOEXEC);
	srv->buf = conn ? malloc(FRAME_DATA_MAX) : NULL;
	if (srv->wake < 0 || (conn && !srv->buf))
		r = srv->wake < 0 ? -errno : -ENOMEM;
	else
		r = -pthread_create(&srv->thread, NULL, serve, srv);
	if (r == 0) {
		srv->running = true;
		return 0;
	}
	close(sk);
	if (srv->wake >= 0)
		close(srv->wake);
	free(srv->buf);
	srv->sk = srv->wake = -1;
	srv->buf = NULL;
	return r;
}

int page_server_join(struct page_server *srv)
{
	uint64_t one = 1;

	if (!srv->running)
		return 0;
	if (write(srv->wake, &one, sizeof(one)) < 0)
		pr_warn("cannot wake the page server: %m");
	shutdown(srv->sk, SHUT_RDWR);
	pthread_join(srv->thread, NULL);
	close(srv->sk);
	close(srv->wake);
	srv->sk = srv->wake = -1;
	srv->running = false;
	if (srv->ctl)
		msg_free(srv->ctl);
	srv->ctl = NULL;
	free(srv->buf);
	srv->buf = NULL;
	for (size_t i = 0; i < srv->nr_dead; i++)
		conn_free(srv->dead[i]);
	srv->nr_dead = 0;
	if (srv->resume_fd >= 0)
		close(srv->resume_fd);
	srv->resume_fd = -1;
	pthread_cond_destroy(&srv->cond);
	pthread_mutex_destroy(&srv->lock);
	return srv->err;
}

struct conn *page_server_conn(struct page_server *srv)
{
	return srv->conn;
}

void page_server_set_resume(struct page_server *srv, int lfd)
{
	pthread_mutex_lock(&srv->lock);
	if (srv->resume_fd >= 0)
		close(srv->resume_fd);
	srv->resume_fd = lfd;
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

void page_server_set_tree(struct page_server *srv, const int32_t *pids, size_t nr)
{
	pthread_mutex_lock(&srv->lock);
	srv->pids = pids;
	srv->nr_pids = nr;
	pthread_mutex_unlock(&srv->lock);
}

void page_server_set_events(struct page_server *srv, struct events *ev)
{
	pthread_mutex_lock(&srv->lock);
	srv->ev = ev;
	pthread_mutex_unlock(&srv->lock);
}

/* The destination does not know how many pages are left: 0. */
void page_server_progress(struct page_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	events_postcopy(srv->ev, srv->pages + srv->pages_remote, 0, false);
	pthread_mutex_unlock(&srv->lock);
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
