/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for pages/fetch: the page server in post-copy mode.
 *
 * The store holds a few pages of one process (filled the way the target
 * fills it: PageRun messages and data frames on a socketpair). The page
 * server gets the destination's end of a second socketpair as its
 * connection to the source; a fake source thread on the other end answers
 * each PageReq with PageData and data frames of at most MSG_RUN_PAGES_MAX
 * pages, or misbehaves as the test asks. The test itself plays CRIU's
 * lazy-pages client on the page server's socket (criu/page-xfer.c: a
 * 24-byte {u32 cmd; u32 nr_pages; u64 vaddr; u64 dst_id} header, PS_IOV_GET
 * asks, the answer is a PS_IOV_ADD_F|PE_PRESENT header and the pages).
 *
 * Pages in the store carry round 1's tag, pages from the source SRC_ROUND's,
 * so the test sees where each page came from.
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
#include <sys/wait.h>
#include <time.h>
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

#define PS_IOV_GET 7
#define PS_IOV_CLOSE 0x1023
#define PS_REPLY_CMD ((4u << 16) | 6) /* PE_PRESENT << 16 | PS_IOV_ADD_F */

struct criu_iov {
	uint32_t cmd;
	uint32_t nr_pages;
	uint64_t vaddr;
	uint64_t dst_id;
};

#define PID_A 100
#define BASE 0x7f0000000000ull
#define SRC_ROUND 9 /* the tag of the pages the source sends */
#define MAX_REQS 16

static const int32_t allowed[] = { PID_A };

/* --- page contents ------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static void fill_page(uint8_t *p, int32_t pid, uint64_t vaddr, unsigned int round)
{
	uint64_t x = mix(vaddr ^ (uint64_t)pid << 48 ^ round);

	for (size_t i = 0; i < P; i += 8) {
		x = mix(x + i);
		memcpy(p + i, &x, 8);
	}
}

static uint8_t *make_pages(int32_t pid, uint64_t vaddr, uint32_t nr, unsigned int round)
{
	uint8_t *buf = malloc(nr ? nr * P : 1);

	assert_non_null(buf);
	for (uint32_t i = 0; i < nr; i++)
		fill_page(buf + i * P, pid, vaddr + i * P, round);
	return buf;
}

/* @nr pages as data frames of at most MSG_RUN_PAGES_MAX pages. */
static int send_data(struct conn *c, const uint8_t *buf, uint32_t nr)
{
	int r = 0;

	for (uint32_t i = 0; r == 0 && i < nr; i += MSG_RUN_PAGES_MAX)
		r = frame_send(c, FRAME_DATA, buf + i * P, MIN(MSG_RUN_PAGES_MAX, nr - i) * P);
	return r;
}

static int send_body(struct conn *c, int body, void *obj)
{
	Msg m = PHAUL__MSG__INIT;

	m.body_case = body;
	switch (body) {
	case PHAUL__MSG__BODY_PAGE_RUN: m.page_run = obj; break;
	case PHAUL__MSG__BODY_ROUND_END: m.round_end = obj; break;
	case PHAUL__MSG__BODY_PAGE_DATA: m.page_data = obj; break;
	case PHAUL__MSG__BODY_COMMIT: m.commit = obj; break;
	default: return -EINVAL;
	}
	return msg_send(c, &m);
}

/* --- filling the store: A has pages 0-3 and 10-11, from round 1 ---------- */

static void *filler_main(void *arg)
{
	static const uint32_t runs[][2] = { { 0, 4 }, { 10, 2 } };
	struct conn *c = arg;
	Phaul__RoundEnd re = PHAUL__ROUND_END__INIT;
	int r = 0;

	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(runs); i++) {
		Phaul__PageRun pr = PHAUL__PAGE_RUN__INIT;
		uint8_t *buf = make_pages(PID_A, BASE + runs[i][0] * P, runs[i][1], 1);
		pr.pid = PID_A;
		pr.vaddr = BASE + runs[i][0] * P;
		pr.nr_pages = runs[i][1];
		r = send_body(c, PHAUL__MSG__BODY_PAGE_RUN, &pr);
		if (r == 0)
			r = send_data(c, buf, runs[i][1]);
		free(buf);
	}
	re.round = 1;
	if (r == 0)
		send_body(c, PHAUL__MSG__BODY_ROUND_END, &re);
	conn_free(c);
	return NULL;
}

static int fill_store(struct pagestore *ps)
{
	uint64_t budget = UINT64_MAX;
	struct conn *in, *out;
	pthread_t th;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (conn_from_fd(sv[0], &in) < 0 || conn_from_fd(sv[1], &out) < 0)
		return -ENOMEM;
	conn_set_timeout(in, TIMEOUT_MS);
	if (pthread_create(&th, NULL, filler_main, out))
		return -EAGAIN;
	do {
		Msg *m = NULL;
		r = msg_recv(in, &m);
		if (r < 0)
			break;
		if (m->body_case == PHAUL__MSG__BODY_PAGE_RUN)
			r = pagestore_recv_run(ps, in, m->page_run, &budget);
		else
			r = pagestore_end_round(ps);
		msg_free(m);
	} while (r == 0);
	conn_free(in);
	pthread_join(th, NULL);
	return r == -EPIPE && ps->round == 2 ? 0 : -EIO;
}

/* --- the fake source ------------------------------------------------------ */

enum src_mode {
	SRC_SERVE,	/* answer every request in full */
	SRC_COMMIT_MID, /* a Commit between the request and its PageData */
	SRC_WRONG_PID,
	SRC_WRONG_VADDR,
	SRC_TOO_MANY,	 /* one page more than asked */
	SRC_ZERO,	 /* "cannot read them" */
	SRC_TRUNCATED,	 /* one page of the data, then the end of the stream */
	SRC_OVERLONG,	 /* a data frame longer than what is due */
	SRC_MSG_IN_DATA, /* a message where the data should be */
	SRC_CLOSE,	 /* the connection ends at the request */
	SRC_SILENT,	 /* never answers */
};

struct source {
	struct conn *c;
	pthread_t th;
	enum src_mode mode;
	int first; /* a message body to send unasked first, or 0 */
	pthread_mutex_t lock;
	Phaul__PageReq req[MAX_REQS];
	int nreq;
	int unexpected; /* messages that were not PageReq */
};

static int answer(struct source *s, const Phaul__PageReq *rq)
{
	Phaul__PageData pd = PHAUL__PAGE_DATA__INIT;
	uint32_t data;
	uint8_t *buf;
	int r = 0;

	if (s->mode == SRC_CLOSE)
		return -EPIPE;
	if (s->mode == SRC_SILENT)
		return 0;
	if (s->mode == SRC_COMMIT_MID)
		r = send_body(s->c, PHAUL__MSG__BODY_COMMIT, &(Phaul__Commit)PHAUL__COMMIT__INIT);
	pd.pid = rq->pid + (s->mode == SRC_WRONG_PID);
	pd.vaddr = rq->vaddr + (s->mode == SRC_WRONG_VADDR ? P : 0);
	pd.nr_pages = s->mode == SRC_ZERO ? 0 : rq->nr_pages + (s->mode == SRC_TOO_MANY);
	data = s->mode == SRC_TRUNCATED ? 1 :
	       s->mode == SRC_OVERLONG	? pd.nr_pages + 1 :
					  pd.nr_pages;
	buf = make_pages(rq->pid, rq->vaddr, data, SRC_ROUND);
	if (r == 0)
		r = send_body(s->c, PHAUL__MSG__BODY_PAGE_DATA, &pd);
	if (r == 0 && s->mode == SRC_MSG_IN_DATA)
		r = send_body(s->c, PHAUL__MSG__BODY_COMMIT, &(Phaul__Commit)PHAUL__COMMIT__INIT);
	else if (r == 0 && s->mode == SRC_OVERLONG)
		r = frame_send(s->c, FRAME_DATA, buf, data * P);
	else if (r == 0)
		r = send_data(s->c, buf, data);
	free(buf);
	return r == 0 && s->mode == SRC_TRUNCATED ? -EPIPE : r;
}

static void *source_main(void *arg)
{
	struct source *s = arg;
	Phaul__RoundEnd re = PHAUL__ROUND_END__INIT;
	int r = 0;

	if (s->first == PHAUL__MSG__BODY_COMMIT)
		r = send_body(s->c, s->first, &(Phaul__Commit)PHAUL__COMMIT__INIT);
	else if (s->first)
		r = send_body(s->c, s->first, &re);
	while (r == 0) {
		Msg *m = NULL;
		if (msg_recv(s->c, &m) < 0)
			break;
		pthread_mutex_lock(&s->lock);
		if (m->body_case != PHAUL__MSG__BODY_PAGE_REQ)
			s->unexpected++;
		else if (s->nreq < MAX_REQS)
			s->req[s->nreq++] = *m->page_req;
		pthread_mutex_unlock(&s->lock);
		r = m->body_case == PHAUL__MSG__BODY_PAGE_REQ ? answer(s, m->page_req) : -EPROTO;
		msg_free(m);
	}
	conn_free(s->c); /* the destination sees the end of the stream */
	s->c = NULL;
	return NULL;
}

static int source_requests(struct source *s)
{
	int n;

	pthread_mutex_lock(&s->lock);
	n = s->nreq;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* --- fixture -------------------------------------------------------------- */

struct fixture {
	char dir[1024];
	int sessfd;
	struct pagestore ps;
	struct page_server srv;
	struct conn *conn; /* the destination's end, the page server's */
	struct source src;
	bool src_running;
	int client;	 /* our end: we are criu lazy-pages */
	int32_t pids[1]; /* the "restored tree" */
	size_t nr_pids;
};

/* Stop the page server, then the source (it sees the connection end). */
static void stop(struct fixture *f)
{
	if (f->client >= 0)
		close(f->client);
	f->client = -1;
	page_server_join(&f->srv);
	if (f->conn)
		conn_free(f->conn);
	f->conn = NULL;
	if (f->src_running)
		pthread_join(f->src.th, NULL);
	f->src_running = false;
}

static void reap_sleeper(struct fixture *f)
{
	if (f->nr_pids) {
		kill(f->pids[0], SIGKILL);
		waitpid(f->pids[0], NULL, 0);
	}
	f->nr_pids = 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int r;

	stop(f);
	reap_sleeper(f);
	pthread_mutex_destroy(&f->src.lock);
	pagestore_fini(&f->ps);
	if (f->sessfd >= 0)
		close(f->sessfd);
	r = f->dir[0] ? rm_rf(f->dir) : 0;
	free(f);
	return r;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	f->client = f->sessfd = -1;
	f->ps.dirfd = f->ps.round_fd = -1;
	pthread_mutex_init(&f->src.lock, NULL);
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "%s/phaul-test-pagefetch.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		f->dir[0] = '\0';
	else
		f->sessfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->sessfd < 0 || pagestore_init(&f->ps, f->sessfd, allowed, ARRAY_SIZE(allowed)) < 0 ||
	    fill_store(&f->ps) < 0) {
		teardown(state);
		return -1;
	}
	f->ps.remote = true;
	return 0;
}

/* The page server with a source that behaves as @mode says. */
static void start(struct fixture *f, enum src_mode mode, int first, int link_ms)
{
	struct timeval tv = { TIMEOUT_MS / 1000, 0 };
	int sk[2], sv[2];

	stop(f);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk), 0);
	assert_int_equal(setsockopt(sk[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	f->client = sk[1];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], &f->conn), 0);
	assert_int_equal(conn_from_fd(sv[1], &f->src.c), 0);
	assert_int_equal(conn_set_timeout(f->conn, TIMEOUT_MS), 0);
	assert_int_equal(conn_set_timeout(f->src.c, TIMEOUT_MS), 0);
	f->src.mode = mode;
	f->src.first = first;
	f->src.nreq = f->src.unexpected = 0;
	assert_int_equal(pthread_create(&f->src.th, NULL, source_main, &f->src), 0);
	f->src_running = true;
	assert_int_equal(page_server_start(&f->srv, &f->ps, sk[0], f->conn, f->pids, f->nr_pids,
					   link_ms),
			 0);
}

/* --- playing CRIU's lazy-pages -------------------------------------------- */

static void request(struct fixture *f, long page, uint32_t nr)
{
	struct criu_iov pi = { PS_IOV_GET, nr, BASE + page * P, PID_A };

	assert_int_equal(write_full(f->client, &pi, sizeof(pi)), 0);
}

/* The answer to a request at @page: @nr pages of round @round. */
static void expect_pages(struct fixture *f, long page, uint32_t nr, unsigned int round)
{
	uint64_t vaddr = BASE + page * P;
	struct criu_iov pi;
	uint8_t *got, *want;

	assert_int_equal(read_full(f->client, &pi, sizeof(pi)), 0);
	assert_int_equal(pi.cmd, PS_REPLY_CMD);
	assert_int_equal(pi.vaddr, vaddr);
	assert_int_equal(pi.dst_id, PID_A);
	assert_int_equal(pi.nr_pages, nr);
	got = malloc(nr * P);
	assert_non_null(got);
	assert_int_equal(read_full(f->client, got, nr * P), 0);
	want = make_pages(PID_A, vaddr, nr, round);
	for (uint32_t i = 0; i < nr; i++)
		if (memcmp(got + i * P, want + i * P, P))
			fail_msg("page %ld is not round %u's", page + (long)i, round);
	free(got);
	free(want);
}

static void get(struct fixture *f, long page, uint32_t nr, uint32_t want, unsigned int round)
{
	request(f, page, nr);
	expect_pages(f, page, want, round);
}

/* The page server hung up on us (whatever it wrote before). */
static void expect_hangup(struct fixture *f)
{
	uint8_t buf[4096];
	ssize_t n;

	do
		n = read(f->client, buf, sizeof(buf));
	while (n > 0 || (n < 0 && errno == EINTR));
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		fail_msg("the page server neither answered nor hung up");
}

static void close_session(struct fixture *f)
{
	struct criu_iov pi = { PS_IOV_CLOSE, 0, 0, 0 };
	int32_t status = -1;

	assert_int_equal(write_full(f->client, &pi, sizeof(pi)), 0);
	assert_int_equal(read_full(f->client, &status, sizeof(status)), 0);
	assert_int_equal(status, 0);
}

static void assert_req(struct fixture *f, int i, long page, uint32_t nr)
{
	Phaul__PageReq *rq = &f->src.req[i];

	assert_true(i < f->src.nreq);
	assert_int_equal(rq->pid, PID_A);
	if (rq->vaddr != BASE + page * P || rq->nr_pages != nr)
		fail_msg("request %d: %u pages at page %lld, want %u at %ld", i, rq->nr_pages,
			 (long long)((rq->vaddr - BASE) / P), nr, page);
}

static uint64_t elapsed_ms(uint64_t t0)
{
	return now_ms() - t0;
}

/* --- tests ---------------------------------------------------------------- */

static void test_local_pages(void **state)
{
	struct fixture *f = *state;

	start(f, SRC_SERVE, 0, TIMEOUT_MS);
	get(f, 0, 4, 4, 1);
	get(f, 2, 100, 2, 1); /* the end of the run: the rest is not asked */
	get(f, 10, 2, 2, 1);
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
	stop(f);
	assert_int_equal(f->src.nreq, 0);
	assert_int_equal(f->src.unexpected, 0);
	assert_int_equal(f->srv.pages, 8);
	assert_int_equal(f->srv.pages_remote, 0);
}

static void test_fetch_missing(void **state)
{
	struct fixture *f = *state;

	start(f, SRC_SERVE, 0, TIMEOUT_MS);
	get(f, 4, 20, 6, SRC_ROUND);	   /* 4-9: page 10 is in the store */
	get(f, 12, 3, 3, SRC_ROUND);	   /* past the store's last page; fault-sized */
	get(f, 9, 1, 1, SRC_ROUND);	   /* a fault at the end of a run */
	get(f, 0, 20, 4, 1);		   /* local again */
	get(f, 100, 2000, 128, SRC_ROUND); /* at most 128 at once, in 64-page frames */
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
	stop(f);
	assert_int_equal(f->src.nreq, 4);
	assert_req(f, 0, 4, 6);
	assert_req(f, 1, 12, 3);
	assert_req(f, 2, 9, 1);
	assert_req(f, 3, 100, 128);
	assert_int_equal(f->srv.pages_remote, 6 + 3 + 1 + 128);
	/* requests of at most CRIU_FAULT_AROUND pages are faults' */
	assert_int_equal(f->srv.pages_fault, 3 + 1);
	assert_int_equal(f->srv.pages, 4);
}

static void test_stale_page_fetched(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(pagestore_drop(&f->ps, PID_A, BASE + P, BASE + 2 * P), 0);
	start(f, SRC_SERVE, 0, TIMEOUT_MS);
	get(f, 0, 4, 1, 1);	    /* page 1 is stale: not served from here */
	get(f, 1, 4, 1, SRC_ROUND); /* fetched; page 2 is the store's */
	get(f, 2, 4, 2, 1);
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
	stop(f);
	assert_int_equal(f->src.nreq, 1);
	assert_req(f, 0, 1, 1);
}

/* A Commit while no page is asked reaches the main thread. */
static void test_commit_idle(void **state)
{
	struct fixture *f = *state;
	Msg *m = NULL;

	start(f, SRC_SERVE, PHAUL__MSG__BODY_COMMIT, TIMEOUT_MS);
	assert_int_equal(page_server_recv(&f->srv, TIMEOUT_MS, &m), 0);
	assert_int_equal(m->body_case, PHAUL__MSG__BODY_COMMIT);
	msg_free(m);
	assert_int_equal(page_server_set_committed(&f->srv), 0);
	get(f, 4, 1, 1, SRC_ROUND); /* fetching goes on after it */
	m = NULL;
	assert_int_equal(page_server_recv(&f->srv, 100, &m), -ETIMEDOUT);
	assert_null(m);
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
}

/* A Commit that comes while a fetch waits for its PageData. */
static void test_commit_mid_fetch(void **state)
{
	struct fixture *f = *state;
	Msg *m = NULL;

	start(f, SRC_COMMIT_MID, 0, TIMEOUT_MS);
	get(f, 4, 2, 2, SRC_ROUND);
	assert_int_equal(page_server_recv(&f->srv, TIMEOUT_MS, &m), 0);
	assert_int_equal(m->body_case, PHAUL__MSG__BODY_COMMIT);
	msg_free(m);
	close_session(f);
	assert_int_equal(page_server_join(&f->srv), 0);
}

/* A message that is neither page data nor Commit/Abort/Error ends it. */
static void test_unexpected_message(void **state)
{
	struct fixture *f = *state;
	Msg *m = NULL;

	start(f, SRC_SERVE, PHAUL__MSG__BODY_ROUND_END, TIMEOUT_MS);
	assert_int_equal(page_server_recv(&f->srv, TIMEOUT_MS, &m), -EPROTO);
	assert_null(m);
	expect_hangup(f);
	assert_int_equal(page_server_join(&f->srv), -EPROTO);
}

static void test_bad_answers(void **state)
{
	struct fixture *f = *state;
	static const struct {
		enum src_mode mode;
		int err;
	} cases[] = {
		{ SRC_WRONG_PID, -EPROTO },   { SRC_WRONG_VADDR, -EPROTO },
		{ SRC_TOO_MANY, -EPROTO },    { SRC_ZERO, -EFAULT },
		{ SRC_TRUNCATED, -EPIPE },    { SRC_OVERLONG, -EPROTO },
		{ SRC_MSG_IN_DATA, -EPROTO }, { SRC_CLOSE, -EPIPE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		Msg *m = NULL;
		uint64_t t0 = now_ms();
		start(f, cases[i].mode, 0, TIMEOUT_MS);
		request(f, 4, 2);
		expect_hangup(f);
		int r = page_server_recv(&f->srv, TIMEOUT_MS, &m);
		if (r != cases[i].err || elapsed_ms(t0) > TIMEOUT_MS / 2)
			fail_msg("case %zu: page_server_recv %d, want %d", i, r, cases[i].err);
		assert_int_equal(page_server_set_committed(&f->srv), -EIO);
		assert_int_equal(page_server_join(&f->srv), cases[i].err);
	}
}

static pid_t spawn_sleeper(void)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0)
		for (;;)
			pause();
	return pid;
}

/* How @pid ended within @ms, or -1 if it still runs. */
static int wait_end(pid_t pid, long ms)
{
	uint64_t t0 = now_ms();
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		assert_true(r >= 0);
		if (r == pid)
			return st;
		if (elapsed_ms(t0) > (uint64_t)ms)
			return -1;
		usleep(10000);
	}
}

/* After the commit, losing the source kills the restored tree. */
static void test_committed_failure_kills(void **state)
{
	struct fixture *f = *state;
	Msg *m = NULL;
	int st;

	f->pids[0] = spawn_sleeper();
	f->nr_pids = 1;
	start(f, SRC_CLOSE, 0, TIMEOUT_MS);
	assert_int_equal(page_server_set_committed(&f->srv), 0);
	request(f, 4, 1);
	expect_hangup(f);
	assert_true(page_server_recv(&f->srv, TIMEOUT_MS, &m) < 0);
	st = wait_end(f->pids[0], 5000);
	if (st == -1)
		fail_msg("the restored tree runs on after its pages were lost");
	f->nr_pids = 0;
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	assert_int_equal(page_server_join(&f->srv), -EPIPE);
}

/* Before the commit the same failure is reported, and the tree lives. */
static void test_uncommitted_failure_spares(void **state)
{
	struct fixture *f = *state;
	Msg *m = NULL;

	f->pids[0] = spawn_sleeper();
	f->nr_pids = 1;
	start(f, SRC_CLOSE, 0, TIMEOUT_MS);
	request(f, 4, 1);
	expect_hangup(f);
	assert_int_equal(page_server_recv(&f->srv, TIMEOUT_MS, &m), -EPIPE);
	assert_int_equal(page_server_set_committed(&f->srv), -EIO);
	assert_int_equal(page_server_join(&f->srv), -EPIPE);
	assert_int_equal(wait_end(f->pids[0], 200), -1);
	assert_int_equal(kill(f->pids[0], 0), 0);
}

/* A source that stays silent longer than the link timeout. */
static void test_link_timeout(void **state)
{
	struct fixture *f = *state;
	uint64_t t0;
	Msg *m = NULL;

	start(f, SRC_SILENT, 0, 300);
	t0 = now_ms();
	request(f, 4, 1);
	assert_int_equal(page_server_recv(&f->srv, TIMEOUT_MS, &m), -ETIMEDOUT);
	if (elapsed_ms(t0) < 250 || elapsed_ms(t0) > 3000)
		fail_msg("a 300 ms link timeout took %llu ms", (unsigned long long)elapsed_ms(t0));
	expect_hangup(f);
	assert_int_equal(page_server_join(&f->srv), -ETIMEDOUT);
	assert_int_equal(source_requests(&f->src), 1);
}

/* page_server_join ends a thread that waits for a PageData. */
static void test_join_wakes_fetch(void **state)
{
	struct fixture *f = *state;
	uint64_t t0;

	start(f, SRC_SILENT, 0, TIMEOUT_MS);
	request(f, 4, 1);
	t0 = now_ms();
	while (source_requests(&f->src) == 0 && elapsed_ms(t0) < 5000)
		usleep(1000);
	assert_int_equal(source_requests(&f->src), 1);
	t0 = now_ms();
	assert_int_equal(page_server_join(&f->srv), -ECANCELED);
	if (elapsed_ms(t0) > 2000)
		fail_msg("page_server_join took %llu ms", (unsigned long long)elapsed_ms(t0));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_local_pages),
		T(test_fetch_missing),
		T(test_stale_page_fetched),
		T(test_commit_idle),
		T(test_commit_mid_fetch),
		T(test_unexpected_message),
		T(test_bad_answers),
		T(test_committed_failure_kills),
		T(test_uncommitted_failure_spares),
		T(test_link_timeout),
		T(test_join_wakes_fetch),
	};
#undef T

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("pagefetch", tests, NULL, NULL);
}
