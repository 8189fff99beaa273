/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "pageserver: "
#include "engine/pageserver.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* CRIU's page-server protocol (criu/page-xfer.c) */
#define PS_IOV_ADD_F 6
#define PS_IOV_GET 7
#define PS_IOV_CLOSE 0x1023
#define PS_IOV_FORCE_CLOSE 0x1024
#define PS_CMD_BITS 16
#define PE_PRESENT_FLAG (1u << 2)
#define PS_MAX_PAGES 1024u

struct ps_iov {
	uint32_t cmd;
	uint32_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

#define CHUNK_PAGES 64u

static int send_pages(int sk, int fd, uint64_t off, uint32_t nr)
{
	uint8_t buf[CHUNK_PAGES * 4096];

	while (nr > 0) {
		uint32_t n = nr < CHUNK_PAGES ? nr : CHUNK_PAGES;
		ssize_t got = pread(fd, buf, n * 4096, off);
		if (got != (ssize_t)n * 4096)
			return got < 0 ? -errno : -EIO;
		int r = write_full(sk, buf, n * 4096);
		if (r < 0)
			return r;
		off += n * 4096;
		nr -= n;
	}
	return 0;
}

static int answer_get(struct page_server *srv, struct ps_iov *pi)
{
	uint64_t off;
	uint32_t nr;
	int fd, r;

	if (pi->nr_pages == 0 || pi->nr_pages > (1u << 20) || pi->dst_id > (1u << 22)) {
		pr_err("bad request: %u pages at 0x%llx for %llu", pi->nr_pages,
		       (unsigned long long)pi->vaddr, (unsigned long long)pi->dst_id);
		return -EPROTO;
	}
	r = pagestore_lookup(srv->ps, pi->dst_id, pi->vaddr, MIN(pi->nr_pages, PS_MAX_PAGES), &fd,
			     &off, &nr);
	if (r < 0) {
		pr_err("PID %llu asks for 0x%llx, which never arrived",
		       (unsigned long long)pi->dst_id, (unsigned long long)pi->vaddr);
		return r;
	}
	pi->cmd = PE_PRESENT_FLAG << PS_CMD_BITS | PS_IOV_ADD_F;
	pi->nr_pages = nr;
	r = write_full(srv->sk, pi, sizeof(*pi));
	if (r == 0)
		r = send_pages(srv->sk, fd, off, nr);
	srv->pages += nr;
	srv->requests++;
	return r;
}

static void *serve(void *arg)
{
	struct page_server *srv = arg;
	struct ps_iov pi;
	int r;

	for (;;) {
		r = read_full(srv->sk, &pi, 1);
		if (r == -EPIPE) { /* the client went away between requests */
			r = 0;
			break;
		}
		if (r == 0) /* a header cut short is an error */
			r = read_full(srv->sk, (uint8_t *)&pi + 1, sizeof(pi) - 1);
		if (r < 0)
			break;
		if ((pi.cmd & 0xffff) == PS_IOV_GET) {
			r = answer_get(srv, &pi);
		} else if (pi.cmd == PS_IOV_CLOSE || pi.cmd == PS_IOV_FORCE_CLOSE) {
			int32_t status = 0;
			r = write_full(srv->sk, &status, sizeof(status));
			break;
		} else {
			pr_err("unexpected command 0x%x", pi.cmd);
			r = -EPROTO;
		}
		if (r < 0)
			break;
	}
	srv->err = r;
	if (r < 0)
		pr_err("stopped: %s", strerror(-r));
	pr_debug("served %llu pages in %llu requests", (unsigned long long)srv->pages,
		 (unsigned long long)srv->requests);
	return NULL;
}

int page_server_start(struct page_server *srv, const struct pagestore *ps, int sk)
{
	int r;

	memset(srv, 0, sizeof(*srv));
	srv->sk = sk;
	srv->ps = ps;
	r = pthread_create(&srv->thread, NULL, serve, srv);
	if (r) {
		close(sk);
		srv->sk = -1;
		return -r;
	}
	srv->running = true;
	return 0;
}

int page_server_join(struct page_server *srv)
{
	if (!srv->running)
		return 0;
	shutdown(srv->sk, SHUT_RDWR);
	pthread_join(srv->thread, NULL);
	close(srv->sk);
	srv->sk = -1;
	srv->running = false;
	return srv->err;
}
