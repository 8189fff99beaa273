/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for pages/server: the thread that answers CRIU's
 * lazy-pages daemon from the page store.
 *
 * The store is filled the way the target fills it (a sender thread speaking
 * msg_send / frame_send on a socketpair, received with msg_recv and
 * pagestore_recv_run / pagestore_end_round). The test then plays CRIU's
 * lazy-pages client on the other end of a second socketpair (criu/page-xfer.c:
 * a 24-byte host-endian header {u32 cmd; u32 nr_pages; u64 vaddr; u64 dst_id},
 * PS_IOV_GET asks, the answer is a PS_IOV_ADD_F|PE_PRESENT header for as many
 * pages as are contiguous in the store, then those pages; PS_IOV_CLOSE is
 * answered by an int32 0).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/page.h"
#include "common/util.h"
#include "pages/server.h"
#include "pages/store.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/wire.h"

#define P PAGE
#define TIMEOUT_MS 10000

/* CRIU's page-server protocol */
#define PS_IOV_ADD_F 6
#define PS_IOV_GET 7
#define PS_IOV_CLOSE 0x1023
#define PS_IOV_FORCE_CLOSE 0x1024
#define PS_REPLY_CMD ((4u << 16) | PS_IOV_ADD_F) /* PE_PRESENT << PS_CMD_BITS */

struct ps_iov {
	uint32_t cmd;
	uint32_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

#define PID_A 100
#define PID_B 4194304
#define BASE_A 0x7f0000000000ull
#define BASE_B 0x10000ull
#define BIG_PAGES 1300 /* one round's run longer than a reply (1024) */

static const int32_t allowed[] = { PID_A, PID_B };

/* --- page contents ------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static void fill_page(uint8_t *p, int32_t pid, uint64_t vaddr, unsigned int round)
{
	uint64_t x = mix((uint64_t)pid << 40 ^ vaddr ^ (uint64_t)round << 56);

	for (size_t i = 0; i < P; i += 8) {
		x = mix(x);
		memcpy(p + i, &x, 8);
	}
}

/* --- filling the store --------------------------------------------------- */

struct sender {
	struct conn *c;
	pthread_t th;
	int err;
};

static void send_run(struct sender *s, int32_t pid, uint64_t vaddr, uint32_t nr, unsigned int round)
{
	Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
	Msg m = PHAUL__MSG__INIT;
	uint8_t *buf = malloc(nr * P);

	assert_non_null(buf);
	pr.pid = pid;
	pr.vaddr = vaddr;
	pr.nr_pages = nr;
	msg_set_page_run(&m, &pr);
	for (uint32_t i = 0; i < nr; i++)
		fill_page(buf + i * P, pid, vaddr + i * P, round);
	if (s->err == 0)
		s->err = msg_send(s->c, &m);
	for (size_t off = 0; s->err == 0 && off < nr * P; off += 3 * P)
		s->err = frame_send(s->c, FRAME_DATA, buf + off, MIN(3 * P, nr * P - off));
	free(buf);
}

static void send_round_end(struct sender *s, unsigned int round)
{
	Phaul__RoundEnd re = PHAUL__ROUND_END__INIT;
	Msg m = PHAUL__MSG__INIT;

	re.round = round;
	msg_set_round_end(&m, &re);
	if (s->err == 0)
		s->err = msg_send(s->c, &m);
}

/* A long run, in MSG_RUN_PAGES_MAX pieces. */
static void send_long(struct sender *s, int32_t pid, uint64_t vaddr, uint32_t nr,
		      unsigned int round)
{
	for (uint32_t i = 0; i < nr; i += MSG_RUN_PAGES_MAX)
		send_run(s, pid, vaddr + i * P, MIN(MSG_RUN_PAGES_MAX, nr - i), round);
}

/*
 * The store's contents, by page (base + index * P):
 *   A round 1: 0-99, 200-(200+BIG_PAGES)
 *   A round 2: 10-19, 50
 *   A round 3: 60-61
 *   B round 2: 0-7
 *   B round 3: 3
 */
static void *sender_main(void *arg)
{
	struct sender *s = arg;

	send_long(s, PID_A, BASE_A, 100, 1);
	send_long(s, PID_A, BASE_A + 200 * P, BIG_PAGES, 1);
	send_round_end(s, 1);
	send_run(s, PID_B, BASE_B, 8, 2);
	send_run(s, PID_A, BASE_A + 10 * P, 10, 2);
	send_run(s, PID_A, BASE_A + 50 * P, 1, 2);
	send_round_end(s, 2);
	send_run(s, PID_A, BASE_A + 60 * P, 2, 3);
	send_run(s, PID_B, BASE_B + 3 * P, 1, 3);
	send_round_end(s, 3);
	conn_free(s->c);
	s->c = NULL;
	return NULL;
}

/* Which round holds the newest copy of a page; 0 if none. */
static unsigned int model(int32_t pid, uint64_t vaddr)
{
	long i;

	if (pid == PID_A) {
		if (vaddr < BASE_A || vaddr % P)
			return 0;
		i = (vaddr - BASE_A) / P;
		if (i == 60 || i == 61)
			return 3;
		if ((i >= 10 && i < 20) || i == 50)
			return 2;
		if (i < 100 || (i >= 200 && i < 200 + BIG_PAGES))
			return 1;
		return 0;
	}
	if (pid == PID_B) {
		if (vaddr < BASE_B || vaddr % P)
			return 0;
		i = (vaddr - BASE_B) / P;
		if (i == 3)
			return 3;
		return i < 8 ? 2 : 0;
	}
	return 0;
}

struct fixture {
	char dir[1024];
	int sessfd;
	struct pagestore ps;
	struct page_server srv;
	int client; /* our end: we are criu lazy-pages */
};

static int fill_store(struct fixture *f)
{
	struct sender s = { 0 };
	uint64_t budget = UINT64_MAX;
	struct conn *c;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (conn_from_fd(sv[1], &s.c) < 0 || conn_from_fd(sv[0], &c) < 0)
		return -ENOMEM;
	conn_set_timeout(c, TIMEOUT_MS);
	if (pthread_create(&s.th, NULL, sender_main, &s))
		return -EAGAIN;
	for (;;) {
		Msg *m = NULL;
		r = msg_recv(c, &m);
		if (r < 0)
			break;
		if (m->body_case == PHAUL__MSG__BODY_PAGE_RUN)
			r = pagestore_recv_run(&f->ps, c, m->page_run, &budget);
		else if (m->body_case == PHAUL__MSG__BODY_ROUND_END)
			r = pagestore_end_round(&f->ps);
		else
			r = -EBADMSG;
		msg_free(m);
		if (r < 0)
			break;
	}
	conn_free(c);
	pthread_join(s.th, NULL);
	if (r != -EPIPE || s.err)
		return -EIO;
	return f->ps.round == 4 ? 0 : -EIO;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int r;

	if (f->client >= 0)
		close(f->client);
	page_server_join(&f->srv); /* 0 when never started */
	pagestore_fini(&f->ps);
	if (f->sessfd >= 0)
		close(f->sessfd);
	r = f->dir[0] ? rm_rf(f->dir) : 0;
	free(f);
	return r;
}

/* The session directory and the store in it, filled. */
static int make_store(struct fixture *f)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(f->dir, sizeof(f->dir), "%s/phaul-test-pageserver.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	f->sessfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->sessfd < 0 || pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)) < 0)
		return -1;
	return fill_store(f);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->client = f->sessfd = -1;
	f->ps.dirfd = f->ps.round_fd = -1; /* pagestore_fini is safe from here */
	*state = f;
	if (make_store(f) < 0) {
		teardown(state); /* cmocka runs none after a failed setup */
		return -1;
	}
	return 0;
}

static void start(struct fixture *f)
{
	int sv[2];
	struct timeval tv = { TIMEOUT_MS / 1000, 0 };

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* a server that does not answer fails the test instead of hanging it */
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	f->client = sv[1];
	assert_int_equal(page_server_start(&f->srv, &f->ps, sv[0], NULL, NULL, 0, 0), 0);
}

static void request(struct fixture *f, uint32_t cmd, uint32_t nr, uint64_t vaddr, uint64_t id)
{
	struct ps_iov pi = { cmd, nr, vaddr, id };

	assert_int_equal(sizeof(pi), 24);
	assert_int_equal(write_full(f->client, &pi, sizeof(pi)), 0);
}

/* Ask for @nr pages; check the answer header and the pages; returns the count. */
static uint32_t get(struct fixture *f, int32_t pid, uint64_t vaddr, uint32_t nr)
{
	struct ps_iov pi;
	uint8_t *buf, want[P];

	request(f, PS_IOV_GET, nr, vaddr, pid);
	assert_int_equal(read_full(f->client, &pi, sizeof(pi)), 0);
	assert_int_equal(pi.cmd, PS_REPLY_CMD);
	assert_int_equal(pi.vaddr, vaddr);
	assert_int_equal(pi.dst_id, (uint64_t)pid);
	assert_true(pi.nr_pages >= 1 && pi.nr_pages <= nr);
	buf = malloc(pi.nr_pages * P);
	assert_non_null(buf);
	assert_int_equal(read_full(f->client, buf, pi.nr_pages * P), 0);
	for (uint32_t i = 0; i < pi.nr_pages; i++) {
		unsigned int k = model(pid, vaddr + i * P);
		if (!k)
			fail_msg("page 0x%llx of %d was never sent",
				 (unsigned long long)(vaddr + i * P), pid);
		fill_page(want, pid, vaddr + i * P, k);
		if (memcmp(buf + i * P, want, P))
			fail_msg("page 0x%llx of %d is not round %u's",
				 (unsigned long long)(vaddr + i * P), pid, k);
	}
	free(buf);
	return pi.nr_pages;
}

/* Ask for everything in [vaddr, vaddr + nr pages), as lazy-pages does. */
static uint32_t get_all(struct fixture *f, int32_t pid, uint64_t vaddr, uint32_t nr)
{
	uint32_t replies = 0;

	while (nr > 0) {
		uint32_t got = get(f, pid, vaddr, nr);
		vaddr += got * P;
		nr -= got;
		replies++;
	}
	return replies;
}

static void close_session(struct fixture *f)
{
	int32_t status = -1;

	request(f, PS_IOV_CLOSE, 0, 0, 0);
	assert_int_equal(read_full(f->client, &status, sizeof(status)), 0);
	assert_int_equal(status, 0);
}

/* --- tests -------------------------------------------------------------- */

static void test_whole_pages(void **state)
{
	struct fixture *f = *state;

	start(f);
	assert_int_equal(get(f, PID_A, BASE_A, 1), 1);
	assert_int_equal(get(f, PID_A, BASE_A + 99 * P, 1), 1);
	assert_int_equal(get(f, PID_A, BASE_A + 50 * P, 1), 1);
	assert_int_equal(get(f, PID_A, BASE_A + 61 * P, 1), 1);
	assert_int_equal(get(f, PID_B, BASE_B + 3 * P, 1), 1);
	assert_int_equal(get(f, PID_B, BASE_B + 7 * P, 1), 1);
	assert_int_equal(get(f, PID_A, BASE_A + 20 * P, 5), 5);
	assert_int_equal(get(f, PID_A, BASE_A + 20 * P, 30), 30); /* 20-49: round 1 */
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
	assert_int_equal(f->srv.requests, 8);
	assert_int_equal(f->srv.pages, 41);
}

/* Fewer pages than asked, where the newest copies change rounds. */
static void test_partial_replies(void **state)
{
	struct fixture *f = *state;

	start(f);
	assert_int_equal(get(f, PID_A, BASE_A, 100), 10);	  /* 10 is round 2's */
	assert_int_equal(get(f, PID_A, BASE_A + 10 * P, 90), 10); /* 10-19 of round 2 */
	assert_int_equal(get(f, PID_A, BASE_A + 20 * P, 80), 30); /* up to 50 */
	assert_int_equal(get(f, PID_A, BASE_A + 50 * P, 50), 1);
	assert_int_equal(get(f, PID_A, BASE_A + 51 * P, 49), 9); /* up to 60 */
	assert_int_equal(get(f, PID_A, BASE_A + 60 * P, 40), 2);
	assert_int_equal(get(f, PID_A, BASE_A + 62 * P, 38), 38);
	assert_int_equal(get(f, PID_B, BASE_B, 8), 3);
	assert_int_equal(get_all(f, PID_B, BASE_B, 8), 3);
	/* the end of a run: no more than what is there */
	assert_int_equal(get(f, PID_A, BASE_A + 98 * P, 2), 2);
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
}

/* A reply carries at most 1024 pages, even from one long run. */
static void test_big_request(void **state)
{
	struct fixture *f = *state;

	start(f);
	assert_int_equal(get(f, PID_A, BASE_A + 200 * P, BIG_PAGES), 1024);
	assert_int_equal(get(f, PID_A, BASE_A + 1224 * P, BIG_PAGES - 1024), BIG_PAGES - 1024);
	assert_int_equal(get_all(f, PID_A, BASE_A + 200 * P, BIG_PAGES), 2);
	assert_int_equal(get(f, PID_A, BASE_A + 300 * P, 1u << 20), 1024); /* the largest ask */
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
}

/* Every page of the store, in random requests. */
static void test_random_requests(void **state)
{
	struct fixture *f = *state;
	uint64_t x = 12345;

	start(f);
	for (int i = 0; i < 300; i++) {
		x = mix(x);
		bool a = x & 1;
		uint64_t n = a ? 200 + BIG_PAGES : 8;
		uint64_t idx = (x >> 8) % n, base = a ? BASE_A : BASE_B;
		if (a && idx >= 100 && idx < 200)
			idx -= 100;
		uint32_t want = 1 + (x >> 32) % 70;
		uint32_t room = 0;
		while (room < want && model(a ? PID_A : PID_B, base + (idx + room) * P))
			room++;
		get_all(f, a ? PID_A : PID_B, base + idx * P, room);
	}
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
}

/* PS_IOV_FORCE_CLOSE ends it too; so does the client going away. */
static void test_force_close_and_hangup(void **state)
{
	struct fixture *f = *state;
	int32_t status = -1;

	start(f);
	get(f, PID_B, BASE_B, 1);
	request(f, PS_IOV_FORCE_CLOSE, 0, 0, 0);
	assert_int_equal(read_full(f->client, &status, sizeof(status)), 0);
	assert_int_equal(status, 0);
	assert_int_equal(page_server_join(&f->srv), 0);
	close(f->client);

	start(f);
	get(f, PID_B, BASE_B, 1);
	close(f->client); /* lazy-pages exits */
	f->client = -1;
	assert_int_equal(page_server_join(&f->srv), 0);
	/* joining twice is harmless */
	assert_int_equal(page_server_join(&f->srv), 0);
}

/* The server stopped by itself (the thread ended and left its error). */
static int wait_stopped(struct fixture *f)
{
	char c;

	/* nothing is answered to a request that ends the server: it shuts
	 * the socket down (criu lazy-pages then ends), no byte comes */
	assert_int_equal(read(f->client, &c, 1), 0);
	return page_server_join(&f->srv);
}

static void test_missing_page(void **state)
{
	struct fixture *f = *state;
	static const struct {
		int32_t pid;
		uint64_t vaddr;
	} cases[] = {
		{ PID_A, BASE_A + 100 * P }, /* the gap between runs */
		{ PID_A, BASE_A - P },
		{ PID_A, BASE_A + (200 + BIG_PAGES) * P },
		{ PID_B, BASE_B + 8 * P },
		{ 4242, BASE_A }, /* a process the store does not know */
		{ 0, BASE_A },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		start(f);
		get(f, PID_A, BASE_A, 1); /* it works before */
		request(f, PS_IOV_GET, 1, cases[i].vaddr, cases[i].pid);
		assert_int_equal(wait_stopped(f), -ENOENT);
		close(f->client);
		f->client = -1;
	}
}

static void test_bogus_requests(void **state)
{
	struct fixture *f = *state;
	static const struct ps_iov cases[] = {
		{ PS_IOV_GET, 1, BASE_A + 8, PID_A }, /* not page-aligned */
		{ PS_IOV_GET, 1, 1ull << 57, PID_A }, /* beyond any address */
		{ PS_IOV_GET, 1, UINT64_MAX & ~4095ull, PID_A },
		{ 0, 1, BASE_A, PID_A }, /* no such command */
		{ 1, 1, BASE_A, PID_A }, /* PS_IOV_ADD: not to us */
		{ PS_IOV_ADD_F, 1, BASE_A, PID_A },
		{ 0xffffffff, 1, BASE_A, PID_A },
		{ 0x0107, 1, BASE_A, PID_A },		       /* GET is all 16 bits */
		{ PS_IOV_GET, 0, BASE_A, PID_A },	       /* no pages */
		{ PS_IOV_GET, (1u << 20) + 1, BASE_A, PID_A }, /* too many */
		{ PS_IOV_GET, UINT32_MAX, BASE_A, PID_A },
		{ PS_IOV_GET, 1, BASE_A, (1u << 22) + 1 }, /* not a pid */
		{ PS_IOV_GET, 1, BASE_A, (uint64_t)PID_A << 32 | PID_A },
		{ PS_IOV_GET, 1, BASE_A, UINT64_MAX },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		start(f);
		get(f, PID_A, BASE_A, 1);
		assert_int_equal(write_full(f->client, &cases[i], sizeof(cases[i])), 0);
		int r = wait_stopped(f);
		if (r >= 0)
			fail_msg("request %zu (cmd 0x%x) was not refused", i, cases[i].cmd);
		assert_int_equal(r, -EPROTO);
		close(f->client);
		f->client = -1;
	}
}

/* A header cut short by the client's end is not a clean close. */
static void test_truncated_header(void **state)
{
	struct fixture *f = *state;
	struct ps_iov pi = { PS_IOV_GET, 1, BASE_A, PID_A };

	start(f);
	get(f, PID_A, BASE_A, 1);
	assert_int_equal(write_full(f->client, &pi, 10), 0);
	assert_int_equal(shutdown(f->client, SHUT_WR), 0);
	int r = page_server_join(&f->srv);
	if (r == 0)
		fail_msg("a request cut off after 10 of its 24 bytes ended the server cleanly");
}

/* The client goes away in the middle of a long answer: an error, no crash. */
static void test_client_gone_mid_reply(void **state)
{
	struct fixture *f = *state;
	struct ps_iov pi;

	start(f);
	request(f, PS_IOV_GET, 1024, BASE_A + 200 * P, PID_A);
	assert_int_equal(read_full(f->client, &pi, sizeof(pi)), 0);
	assert_int_equal(pi.nr_pages, 1024);
	close(f->client);
	f->client = -1;
	int r = page_server_join(&f->srv);
	assert_true(r == -EPIPE || r == -ECONNRESET);
}

/* A store file cut short under the server: an error, never a short reply. */
static void test_store_file_short(void **state)
{
	struct fixture *f = *state;
	struct ps_iov pi;
	char path[sizeof(f->dir) + 64];
	uint8_t byte;
	int cut = 0;

	for (int round = 1; round <= 4; round++) {
		snprintf(path, sizeof(path), "%s/rounds/%d/pages-%d.img", f->dir, round, PID_A);
		if (truncate(path, 0) == 0)
			cut++;
	}
	assert_true(cut > 0);
	start(f);
	request(f, PS_IOV_GET, 1024, BASE_A + 200 * P, PID_A);
	assert_int_equal(read_full(f->client, &pi, sizeof(pi)), 0);
	assert_int_equal(pi.nr_pages, 1024);
	assert_int_not_equal(read_full(f->client, &byte, 1), 0); /* no page follows */
	assert_int_equal(page_server_join(&f->srv), -EIO);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_whole_pages),
		T(test_partial_replies),
		T(test_big_request),
		T(test_random_requests),
		T(test_force_close_and_hangup),
		T(test_missing_page),
		T(test_bogus_requests),
		T(test_truncated_header),
		T(test_client_gone_mid_reply),
		T(test_store_file_short),
	};
#undef T

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("pageserver", tests, NULL, NULL);
}
