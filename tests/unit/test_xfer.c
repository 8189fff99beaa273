/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/xfer: files over a socketpair, from the real sender
 * (in a thread) or from a hand-built stream of frames (a forged peer), into
 * a temporary directory. A failed receive must leave no file behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <xxhash.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/wire.h"
#include "proto/xfer.h"

#define TIMEOUT_MS 5000
#define BIG_SIZE (1024 * 1024 + 123)

/* A byte stream of frames, for a forged peer. */
struct stream {
	uint8_t *b;
	size_t len, cap;
};

struct fixture {
	char dir[1024];
	int srcfd;	  /* files to send */
	int dstfd;	  /* where the receiver creates them */
	int outfd;	  /* the parent of both: nothing may appear here */
	struct stream *s; /* a forged stream */
	void *mem[16];	  /* freed by teardown, even when a test fails */
	int nmem;
};

/* Hand @p to the fixture, which frees it. */
static void *keep(struct fixture *f, void *p)
{
	if (!p || f->nmem == (int)(sizeof(f->mem) / sizeof(f->mem[0])))
		fail_msg("out of memory or fixture slots");
	f->mem[f->nmem++] = p;
	return p;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/phaul-test-xfer.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	f->s = calloc(1, sizeof(*f->s));
	if (!f->s || !mkdtemp(f->dir))
		return -1;
	f->outfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->outfd < 0 || mkdirat(f->outfd, "src", 0700) < 0 ||
	    mkdirat(f->outfd, "dst", 0700) < 0)
		return -1;
	f->srcfd = openat(f->outfd, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	f->dstfd = openat(f->outfd, "dst", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->srcfd < 0 || f->dstfd < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int r;

	close(f->srcfd);
	close(f->dstfd);
	close(f->outfd);
	if (f->s)
		free(f->s->b);
	free(f->s);
	for (int i = 0; i < f->nmem; i++)
		free(f->mem[i]);
	r = rm_rf(f->dir);
	free(f);
	return r;
}

/* --- helpers ----------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void fill_random(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		buf[i] = rng >> 24;
	}
}

static void write_file(int dirfd, const char *name, const void *buf, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, buf, len), 0);
	close(fd);
}

/* The whole content of @name in @dirfd; *len its size. */
static uint8_t *read_back(int dirfd, const char *name, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc(st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read_full(fd, buf, st.st_size), 0);
	close(fd);
	*len = st.st_size;
	return buf;
}

static int count_entries(int dirfd)
{
	int fd = dup(dirfd), n = 0;
	DIR *d;
	struct dirent *de;

	assert_true(fd >= 0);
	d = fdopendir(fd);
	assert_non_null(d);
	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void assert_no_file(struct fixture *f)
{
	assert_int_equal(count_entries(f->dstfd), 0);
	assert_int_equal(count_entries(f->outfd), 2); /* src and dst only */
}

static void open_pair(struct conn **a, struct conn **b)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], a), 0);
	assert_int_equal(conn_from_fd(sv[1], b), 0);
	assert_int_equal(conn_set_timeout(*a, TIMEOUT_MS), 0);
	assert_int_equal(conn_set_timeout(*b, TIMEOUT_MS), 0);
}

/* The real sender, in a thread (no cmocka asserts there). */
struct sender {
	struct conn *c;
	int dirfd;
	const char *names[8];
	int ret;
	uint64_t progress;
	int calls;
	bool close_after;
	pthread_t th;
};

static void on_progress(void *arg, uint64_t bytes)
{
	struct sender *s = arg;

	s->progress += bytes;
	s->calls++;
}

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct xfer_progress p = { .cb = on_progress, .arg = s };

	s->ret = 0;
	for (int i = 0; s->ret == 0 && s->names[i]; i++)
		s->ret = xfer_send_file(s->c, s->dirfd, s->names[i], &p);
	if (s->close_after) {
		conn_free(s->c);
		s->c = NULL;
	}
	return NULL;
}

static void sender_start(struct sender *s)
{
	assert_int_equal(pthread_create(&s->th, NULL, sender_main, s), 0);
}

static void sender_join(struct sender *s)
{
	assert_int_equal(pthread_join(s->th, NULL), 0);
}

/* Receive one file the way the destination does: FileBegin, then the rest. */
static int recv_one(struct conn *c, int dirfd, uint64_t *budget, char *name, size_t name_len)
{
	Msg *m = NULL;
	int r = msg_recv(c, &m);

	if (r < 0)
		return r;
	assert_int_equal(m->body_case, PHAUL__MSG__BODY_FILE_BEGIN);
	if (name)
		snprintf(name, name_len, "%s", m->file_begin->name);
	r = xfer_recv_file(c, dirfd, m->file_begin, budget);
	msg_free(m);
	return r;
}

static void st_put(struct stream *s, const void *buf, size_t len)
{
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2;
		s->b = realloc(s->b, s->cap);
		assert_non_null(s->b);
	}
	if (len)
		memcpy(s->b + s->len, buf, len);
	s->len += len;
}

static void st_frame(struct stream *s, enum frame_type type, const void *buf, size_t len)
{
	uint8_t hdr[FRAME_HDR_LEN];

	frame_hdr_encode(hdr, type, len);
	st_put(s, hdr, sizeof(hdr));
	st_put(s, buf, len);
}

static void st_msg(struct stream *s, Msg *m)
{
	size_t len = phaul__msg__get_packed_size(m);
	uint8_t *buf = malloc(len + 1);

	assert_non_null(buf);
	phaul__msg__pack(m, buf);
	st_frame(s, FRAME_MSG, buf, len);
	free(buf);
}

static void st_begin(struct stream *s, const char *name, uint64_t size)
{
	Phaul__FileBegin fb = PHAUL__FILE_BEGIN__INIT;
	Msg m = PHAUL__MSG__INIT;

	fb.name = (char *)name;
	fb.size = size;
	msg_set_file_begin(&m, &fb);
	st_msg(s, &m);
}

static void st_end(struct stream *s, uint64_t hash)
{
	Phaul__FileEnd fe = PHAUL__FILE_END__INIT;
	Msg m = PHAUL__MSG__INIT;

	fe.xxh64 = hash;
	msg_set_file_end(&m, &fe);
	st_msg(s, &m);
}

static void st_commit(struct stream *s)
{
	Phaul__Commit cm = PHAUL__COMMIT__INIT;
	Msg m = PHAUL__MSG__INIT;

	msg_set_commit(&m, &cm);
	st_msg(s, &m);
}

/* Data frames of at most @chunk bytes carrying @buf. */
static void st_data(struct stream *s, const uint8_t *buf, size_t len, size_t chunk)
{
	while (len > 0) {
		size_t n = MIN(len, chunk);
		st_frame(s, FRAME_DATA, buf, n);
		buf += n;
		len -= n;
	}
}

/* A forged peer: writes the stream on a raw socket, then closes it. */
struct forger {
	int fd;
	const struct stream *s;
	pthread_t th;
};

static void *forger_main(void *arg)
{
	struct forger *fg = arg;
	size_t off = 0;

	while (off < fg->s->len) {
		ssize_t n = send(fg->fd, fg->s->b + off, fg->s->len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the receiver gave up and closed: fine */
		off += n;
	}
	close(fg->fd);
	return NULL;
}

/* Feed @s to xfer's receiving side; returns what recv_one returned. */
static int recv_forged(struct fixture *f, const struct stream *s, uint64_t *budget)
{
	struct forger fg = { .s = s };
	struct conn *c;
	int sv[2], r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fg.fd = sv[1];
	assert_int_equal(conn_from_fd(sv[0], &c), 0);
	assert_int_equal(conn_set_timeout(c, TIMEOUT_MS), 0);
	assert_int_equal(pthread_create(&fg.th, NULL, forger_main, &fg), 0);
	r = recv_one(c, f->dstfd, budget, NULL, 0);
	conn_free(c); /* unblocks the forger if it is still writing */
	assert_int_equal(pthread_join(fg.th, NULL), 0);
	return r;
}

/* Everything the real sender writes for @name, captured. */
static void capture_send(struct fixture *f, const char *name, struct stream *out)
{
	struct sender s = { .dirfd = f->srcfd, .names = { name }, .close_after = true };
	uint8_t buf[65536];
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], &s.c), 0);
	sender_start(&s);
	for (;;) {
		ssize_t n = read(sv[1], buf, sizeof(buf));
		assert_true(n >= 0);
		if (n == 0)
			break;
		st_put(out, buf, n);
	}
	close(sv[1]);
	sender_join(&s);
	assert_int_equal(s.ret, 0);
}

/* Offset of the payload of the @idx-th frame in a captured stream. */
static size_t frame_payload(const struct stream *s, int idx, enum frame_type *type, uint32_t *len)
{
	size_t off = 0;

	for (;;) {
		assert_true(off + FRAME_HDR_LEN <= s->len);
		assert_int_equal(frame_hdr_decode(s->b + off, type, len), 0);
		if (idx-- == 0)
			return off + FRAME_HDR_LEN;
		off += FRAME_HDR_LEN + *len;
	}
}

/* --- the real sender and receiver ------------------------------------------ */

/*
 * @s sends its files (data[i], sizes[i] bytes each, @total in all) to @rc,
 * with a budget of exactly @total: each arrives whole, in order, and the
 * budget is spent.
 */
static void send_recv_check(struct fixture *f, struct sender *s, struct conn *rc,
			    uint8_t *const *data, const size_t *sizes, uint64_t total)
{
	uint64_t budget = total;
	char name[256];
	uint8_t *got;
	size_t len;

	sender_start(s);
	for (int i = 0; s->names[i]; i++) {
		assert_int_equal(recv_one(rc, f->dstfd, &budget, name, sizeof(name)), 0);
		assert_string_equal(name, s->names[i]);
	}
	sender_join(s);
	assert_int_equal(s->ret, 0);
	assert_int_equal(budget, 0);
	assert_int_equal(s->progress, total);
	for (int i = 0; s->names[i]; i++) {
		got = keep(f, read_back(f->dstfd, s->names[i], &len));
		assert_int_equal(len, sizes[i]);
		assert_memory_equal(got, data[i], sizes[i]);
	}
}

static void test_send_recv_big_file(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = keep(f, malloc(BIG_SIZE)), *got;
	struct sender s = { .dirfd = f->srcfd, .names = { "pages-1.img" } };
	uint64_t budget = 10ull << 20;
	struct conn *rc;
	char name[256];
	struct stat st;
	size_t len;

	assert_non_null(data);
	fill_random(data, BIG_SIZE);
	write_file(f->srcfd, "pages-1.img", data, BIG_SIZE);
	open_pair(&s.c, &rc);
	sender_start(&s);
	assert_int_equal(recv_one(rc, f->dstfd, &budget, name, sizeof(name)), 0);
	sender_join(&s);
	assert_int_equal(s.ret, 0);
	assert_string_equal(name, "pages-1.img");

	got = keep(f, read_back(f->dstfd, "pages-1.img", &len));
	assert_int_equal(len, BIG_SIZE);
	assert_memory_equal(got, data, BIG_SIZE);
	assert_int_equal(budget, (10ull << 20) - BIG_SIZE);
	assert_int_equal(s.progress, BIG_SIZE);
	assert_int_equal(s.calls, (BIG_SIZE + FRAME_DATA_MAX - 1) / FRAME_DATA_MAX);
	assert_int_equal(rc->bytes_in, s.c->bytes_out);
	assert_true(s.c->bytes_out > BIG_SIZE);
	assert_int_equal(fstatat(f->dstfd, "pages-1.img", &st, 0), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_entries(f->dstfd), 1);

	conn_free(s.c);
	conn_free(rc);
}

static void test_send_recv_several(void **state)
{
	static const size_t sizes[] = {
		0, 1, FRAME_DATA_MAX - 1, FRAME_DATA_MAX, FRAME_DATA_MAX + 1, 3 * FRAME_DATA_MAX + 7
	};
	static const char *const names[] = { "empty", "one", "a-1", "a.2", "A_3", "core-77.img" };
	struct fixture *f = *state;
	struct sender s = { .dirfd = f->srcfd };
	uint8_t *data[6];
	uint64_t total = 0;
	struct conn *rc;

	for (int i = 0; i < 6; i++) {
		data[i] = keep(f, malloc(sizes[i] + 1));
		assert_non_null(data[i]);
		fill_random(data[i], sizes[i]);
		write_file(f->srcfd, names[i], data[i], sizes[i]);
		s.names[i] = names[i];
		total += sizes[i];
	}
	open_pair(&s.c, &rc);
	send_recv_check(f, &s, rc, data, sizes, total);
	conn_free(s.c);
	conn_free(rc);
}

static void test_budget_too_small(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = keep(f, malloc(BIG_SIZE));
	struct sender s = { .dirfd = f->srcfd, .names = { "big.img" } };
	uint64_t budget = BIG_SIZE - 1;
	struct conn *rc;

	assert_non_null(data);
	fill_random(data, BIG_SIZE);
	write_file(f->srcfd, "big.img", data, BIG_SIZE);
	open_pair(&s.c, &rc);
	sender_start(&s);
	assert_int_equal(recv_one(rc, f->dstfd, &budget, NULL, 0), -ENOSPC);
	assert_int_equal(budget, BIG_SIZE - 1);
	assert_no_file(f);
	conn_free(rc); /* the sender fails with EPIPE and ends */
	sender_join(&s);
	assert_true(s.ret < 0);
	conn_free(s.c);
}

static void test_sender_missing_file(void **state)
{
	struct fixture *f = *state;
	struct conn *a, *b;

	open_pair(&a, &b);
	assert_int_equal(xfer_send_file(a, f->srcfd, "nope", NULL), -ENOENT);
	assert_int_equal(a->bytes_out, 0);
	conn_free(a);
	conn_free(b);
}

/* --- corrupted and forged streams ------------------------------------------ */

static void test_corrupted_byte(void **state)
{
	struct fixture *f = *state;
	uint8_t *data = keep(f, malloc(BIG_SIZE));
	struct stream *s = f->s;
	uint64_t budget = UINT64_MAX;
	enum frame_type type;
	uint32_t len;
	size_t off;

	assert_non_null(data);
	fill_random(data, BIG_SIZE);
	write_file(f->srcfd, "img", data, BIG_SIZE);
	capture_send(f, "img", s);

	/* untouched, the captured stream is accepted */
	assert_int_equal(recv_forged(f, s, &budget), 0);
	assert_int_equal(unlinkat(f->dstfd, "img", 0), 0);

	/* one bit flipped in the first data frame */
	off = frame_payload(s, 1, &type, &len);
	assert_int_equal(type, FRAME_DATA);
	s->b[off + 1000] ^= 0x10;
	budget = UINT64_MAX;
	assert_int_equal(recv_forged(f, s, &budget), -EBADMSG);
	assert_int_equal(budget, UINT64_MAX);
	assert_no_file(f);
	s->b[off + 1000] ^= 0x10;

	/* the last byte of the last data frame */
	off = frame_payload(s, 5, &type, &len);
	assert_int_equal(type, FRAME_DATA);
	assert_int_equal(len, BIG_SIZE - 4 * FRAME_DATA_MAX);
	s->b[off + len - 1] ^= 0xff;
	assert_int_equal(recv_forged(f, s, &budget), -EBADMSG);
	assert_no_file(f);
	s->b[off + len - 1] ^= 0xff;

	/* or the hash in FileEnd */
	s->b[s->len - 1] ^= 0x01;
	assert_int_equal(recv_forged(f, s, &budget), -EBADMSG);
	assert_no_file(f);
}

static void test_forged_valid(void **state)
{
	struct fixture *f = *state;
	uint8_t data[5000], *got;
	struct stream *s = f->s;
	uint64_t budget = 5000;
	size_t len;

	fill_random(data, sizeof(data));
	st_begin(s, "odd-chunks", sizeof(data));
	/* any chunking is fine, as long as the sizes add up */
	st_data(s, data, 1, 1);
	st_data(s, data + 1, 2999, 1000);
	st_data(s, data + 3000, 2000, 7);
	st_end(s, XXH64(data, sizeof(data), 0));
	assert_int_equal(recv_forged(f, s, &budget), 0);
	assert_int_equal(budget, 0);
	got = keep(f, read_back(f->dstfd, "odd-chunks", &len));
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(got, data, sizeof(data));
}

static void test_more_data_than_announced(void **state)
{
	struct fixture *f = *state;
	static uint8_t data[200000];
	struct stream *s = f->s;
	uint64_t budget = UINT64_MAX;

	fill_random(data, sizeof(data));

	/* the last frame overshoots */
	st_begin(s, "img", 1000);
	st_data(s, data, 600, 600);
	st_data(s, data + 600, 401, 401);
	st_end(s, XXH64(data, 1000, 0));
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	/* a single frame bigger than the whole file */
	s->len = 0;
	st_begin(s, "img", 10);
	st_data(s, data, 11, 11);
	st_end(s, XXH64(data, 10, 0));
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	/* all of it, then one frame too many */
	s->len = 0;
	st_begin(s, "img", 1000);
	st_data(s, data, 1000, 1000);
	st_data(s, data, 10, 10);
	st_end(s, XXH64(data, 1000, 0));
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	/* a zero-length frame is no progress: refused */
	s->len = 0;
	st_begin(s, "img", 1000);
	st_data(s, data, 500, 500);
	st_frame(s, FRAME_DATA, NULL, 0);
	st_data(s, data + 500, 500, 500);
	st_end(s, XXH64(data, 1000, 0));
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);
	assert_int_equal(budget, UINT64_MAX);
}

/*
 * All of the file, then a data frame larger than a message frame may be
 * where FileEnd belongs: still a protocol violation (-EPROTO), like the
 * small extra frame above.
 */
static void test_big_extra_frame(void **state)
{
	struct fixture *f = *state;
	static uint8_t data[FRAME_DATA_MAX];
	struct stream *s = f->s;
	uint64_t budget = UINT64_MAX;

	fill_random(data, sizeof(data));
	st_begin(s, "img", 1000);
	st_data(s, data, 1000, 1000);
	st_data(s, data, FRAME_MSG_MAX + 1, FRAME_DATA_MAX);
	st_end(s, XXH64(data, 1000, 0));
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);
}

static void test_message_in_the_middle(void **state)
{
	struct fixture *f = *state;
	uint8_t data[3000];
	struct stream *s = f->s;
	uint64_t budget = UINT64_MAX;

	fill_random(data, sizeof(data));

	/* FileEnd too early */
	st_begin(s, "img", 3000);
	st_data(s, data, 1000, 1000);
	st_end(s, XXH64(data, 1000, 0));
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	/* another message between data frames */
	s->len = 0;
	st_begin(s, "img", 3000);
	st_data(s, data, 1000, 1000);
	st_commit(s);
	st_data(s, data + 1000, 2000, 1000);
	st_end(s, XXH64(data, 3000, 0));
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	/* a nested FileBegin */
	s->len = 0;
	st_begin(s, "img", 3000);
	st_data(s, data, 1000, 1000);
	st_begin(s, "img2", 10);
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	/* something else where FileEnd belongs */
	s->len = 0;
	st_begin(s, "img", 3000);
	st_data(s, data, 3000, 1000);
	st_commit(s);
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	/* garbage where a frame header belongs */
	s->len = 0;
	st_begin(s, "img", 3000);
	st_data(s, data, 1000, 1000);
	st_put(s, "XXXXXXXXXXXXXXXX", 16);
	assert_int_equal(recv_forged(f, s, &budget), -EPROTO);
	assert_no_file(f);

	assert_int_equal(budget, UINT64_MAX);
}

static void test_peer_closes_mid_file(void **state)
{
	struct fixture *f = *state;
	uint8_t data[3000];
	struct stream *s = f->s;
	uint64_t budget = UINT64_MAX;

	fill_random(data, sizeof(data));
	st_begin(s, "img", 3000);
	st_data(s, data, 1000, 1000);
	st_put(s, "PH\x02\x00\x00\x00\x03\xe8", 8); /* a frame of 1000 bytes, */
	st_put(s, data, 10);			    /* only 10 of them sent */
	assert_int_equal(recv_forged(f, s, &budget), -EPIPE);
	assert_no_file(f);

	/* all data, no FileEnd */
	s->len = 0;
	st_begin(s, "img", 3000);
	st_data(s, data, 3000, 1000);
	assert_int_equal(recv_forged(f, s, &budget), -EPIPE);
	assert_no_file(f);
}

/* --- names and existing files ------------------------------------------------ */

static void test_existing_file_not_clobbered(void **state)
{
	struct fixture *f = *state;
	uint8_t data[100], *got;
	struct stream *s = f->s;
	uint64_t budget = 1000;
	struct stat st;
	size_t len;

	fill_random(data, sizeof(data));
	write_file(f->dstfd, "img", "precious", 8);
	st_begin(s, "img", sizeof(data));
	st_data(s, data, sizeof(data), sizeof(data));
	st_end(s, XXH64(data, sizeof(data), 0));
	assert_int_equal(recv_forged(f, s, &budget), -EEXIST);
	assert_int_equal(budget, 1000);
	got = keep(f, read_back(f->dstfd, "img", &len));
	assert_int_equal(len, 8);
	assert_memory_equal(got, "precious", 8);

	/* a symlink of that name is neither followed nor replaced */
	assert_int_equal(unlinkat(f->dstfd, "img", 0), 0);
	assert_int_equal(symlinkat("../victim", f->dstfd, "img"), 0);
	assert_int_equal(recv_forged(f, s, &budget), -EEXIST);
	assert_int_equal(fstatat(f->outfd, "victim", &st, AT_SYMLINK_NOFOLLOW), -1);
	assert_int_equal(fstatat(f->dstfd, "img", &st, AT_SYMLINK_NOFOLLOW), 0);
	assert_true(S_ISLNK(st.st_mode));
}

static void test_unsafe_name_refused(void **state)
{
	static const char *const bad[] = { "../escape", "a/b", ".hidden", "", "..", "x\n" };
	struct fixture *f = *state;
	struct conn *a, *b;
	uint64_t budget = 1000;

	open_pair(&a, &b);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Phaul__FileBegin fb = PHAUL__FILE_BEGIN__INIT;

		fb.name = (char *)bad[i];
		fb.size = 1;
		assert_int_equal(xfer_recv_file(b, f->dstfd, &fb, &budget), -EPROTO);
	}
	assert_int_equal(budget, 1000);
	assert_int_equal(b->bytes_in, 0);
	assert_no_file(f);
	conn_free(a);
	conn_free(b);
}

/* --- the image codec (PHAUL_FEAT_IMG_ZSTD) -------------------------------- */

/* Text-like bytes: compressible, and the same for the same @seed. */
static void fill_text(uint8_t *buf, size_t len, unsigned int seed)
{
	static const char *const words[] = { "core ",  "pagemap ", "vma ",   "0x7fff0000 ",
					     "sleep ", "bash ",	   "ld.so ", "\n" };

	for (size_t i = 0; i < len;) {
		const char *w = words[(seed = seed * 1103515245 + 12345) >> 16 & 7];
		for (; *w && i < len; w++)
			buf[i++] = *w;
	}
}

/* The codec on both ends of a socketpair: @compress at the sender. */
static void open_codec_pair(struct conn **a, struct conn **b, enum pf_compress compress,
			    struct xfer_stats *st)
{
	open_pair(a, b);
	assert_int_equal(xfer_attach(*a, compress, st), 0);
	assert_int_equal(xfer_attach(*b, PF_COMPRESS_OFF, NULL), 0);
}

static void test_codec_send_recv(void **state)
{
	static const size_t sizes[] = {
		0, 1, 4096, XF_CHUNK_MAX, XF_CHUNK_MAX + 1, 3 * XF_CHUNK_MAX + 7
	};
	static const char *const names[] = { "empty",	   "one",    "core-1.img",
					     "core-2.img", "random", "pages-1.img" };
	struct fixture *f = *state;
	struct sender s = { .dirfd = f->srcfd };
	struct xfer_stats st = { 0 };
	uint8_t *data[6];
	uint64_t total = 0;
	struct conn *rc;

	for (int i = 0; i < 6; i++) {
		data[i] = keep(f, malloc(sizes[i] + 1));
		if (i == 4)
			fill_random(data[i], sizes[i]);
		else
			fill_text(data[i], sizes[i], i);
		write_file(f->srcfd, names[i], data[i], sizes[i]);
		s.names[i] = names[i];
		total += sizes[i];
	}
	open_codec_pair(&s.c, &rc, PF_COMPRESS_ZSTD, &st);
	send_recv_check(f, &s, rc, data, sizes, total);
	/* every chunk through zstd: 1 + 1 + 1 + 2 + 4 of them */
	assert_int_equal(st.raw_bytes, total);
	assert_int_equal(st.zstd_chunks, 9);
	/* the text shrank, the random file did not grow by more than framing */
	assert_true(st.wire_bytes < total - sizes[5] / 2);
	assert_true(st.wire_bytes > sizes[4]);
	assert_true(s.c->bytes_out < total);
	conn_free(s.c);
	conn_free(rc);
}

/* A file like one sent before costs almost nothing: one stream for all. */
static void test_codec_stream_spans_files(void **state)
{
	struct fixture *f = *state;
	struct sender s = { .dirfd = f->srcfd, .names = { "pages-1.img", "pages-2.img" } };
	struct xfer_stats st = { 0 };
	uint8_t *data = keep(f, malloc(64 * 1024));
	uint64_t budget = 1 << 20, first;
	struct conn *rc;

	fill_random(data, 64 * 1024);
	write_file(f->srcfd, "pages-1.img", data, 64 * 1024);
	write_file(f->srcfd, "pages-2.img", data, 64 * 1024);
	open_codec_pair(&s.c, &rc, PF_COMPRESS_ZSTD, &st);
	s.names[1] = NULL;
	sender_start(&s);
	assert_int_equal(recv_one(rc, f->dstfd, &budget, NULL, 0), 0);
	sender_join(&s);
	first = st.wire_bytes;
	assert_true(first > 64 * 1024); /* random: no gain */
	s.names[0] = "pages-2.img";
	sender_start(&s);
	assert_int_equal(recv_one(rc, f->dstfd, &budget, NULL, 0), 0);
	sender_join(&s);
	assert_int_equal(s.ret, 0);
	assert_true(st.wire_bytes - first < 1024);
	conn_free(s.c);
	conn_free(rc);
}

/* auto: compresses while the link is unknown or slow, not on a fast one */
static void test_codec_auto(void **state)
{
	struct xfer_codec *x = xf_new(PF_COMPRESS_AUTO, NULL);
	uint8_t *raw = malloc(XF_CHUNK_MAX);
	size_t len;

	(void)state;
	assert_non_null(x);
	assert_non_null(raw);
	fill_text(raw, XF_CHUNK_MAX, 1);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 0, &len), 0);
		assert_int_equal(x->buf[0], XF_ZSTD);
		assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 0.125 /* 1 Gbit/s */, &len), 0);
		assert_int_equal(x->buf[0], XF_ZSTD);
		assert_true(len < XF_CHUNK_MAX / 2);
	}
	/* a link faster than any compressor: raw, but a probe now and then */
	for (unsigned int i = 0; i < PF_AUTO_PROBE_EVERY; i++) {
		assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 1000, &len), 0);
		assert_int_equal(x->buf[0], XF_RAW);
		assert_int_equal(len, XF_HDR_LEN + XF_CHUNK_MAX);
	}
	assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 1000, &len), 0);
	assert_int_equal(x->buf[0], XF_ZSTD);
	xf_free(x);
	/* data that does not shrink: raw whatever the link, probes aside */
	x = xf_new(PF_COMPRESS_AUTO, NULL);
	assert_non_null(x);
	for (int i = 0; i < 2; i++) {		/* the first warms the context up */
		fill_random(raw, XF_CHUNK_MAX); /* new data: the window has the old */
		assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 0, &len), 0);
		assert_int_equal(x->buf[0], XF_ZSTD);
	}
	for (unsigned int i = 0; i < PF_AUTO_PROBE_EVERY; i++) {
		fill_random(raw, XF_CHUNK_MAX);
		assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 0, &len), 0);
		assert_int_equal(x->buf[0], XF_RAW);
	}
	assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 0, &len), 0);
	assert_int_equal(x->buf[0], XF_ZSTD);
	/* off: never */
	x->compress = PF_COMPRESS_OFF;
	assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX, 0, &len), 0);
	assert_int_equal(x->buf[0], XF_RAW);
	assert_int_equal(xf_encode(x, raw, 0, 0, &len), -EINVAL);
	assert_int_equal(xf_encode(x, raw, XF_CHUNK_MAX + 1, 0, &len), -EINVAL);
	free(raw);
	xf_free(x);
}

/* Encode @n text bytes with a fresh zstd codec into a copy of its chunk. */
static uint8_t *encoded(size_t n, size_t *len)
{
	struct xfer_codec *x = xf_new(PF_COMPRESS_ZSTD, NULL);
	uint8_t *raw = malloc(n), *out = malloc(FRAME_DATA_MAX);

	assert_non_null(x);
	assert_non_null(raw);
	assert_non_null(out);
	fill_text(raw, n, 7);
	assert_int_equal(xf_encode(x, raw, n, 0, len), 0);
	assert_int_equal(x->buf[0], XF_ZSTD);
	memcpy(out, x->buf, *len);
	free(raw);
	xf_free(x);
	return out;
}

/* Decode @in with a fresh receiver into room for @cap bytes. */
static int decode(const uint8_t *in, size_t n, size_t cap, uint32_t *len)
{
	struct xfer_codec *x = xf_new(PF_COMPRESS_OFF, NULL);
	uint8_t *raw = malloc(XF_CHUNK_MAX);
	int r;

	assert_non_null(x);
	assert_non_null(raw);
	r = xf_decode(x, in, n, raw, cap, len);
	free(raw);
	xf_free(x);
	return r;
}

static void test_codec_decode_bad(void **state)
{
	uint8_t *z, raw[XF_HDR_LEN + 16] = { XF_RAW, 0, 0, 0, 0, 0, 0, 16 };
	size_t n;
	uint32_t len = 0;

	(void)state;
	/* a raw chunk, and its header broken every way */
	assert_int_equal(decode(raw, sizeof(raw), 16, &len), 0);
	assert_int_equal(len, 16);
	assert_int_equal(decode(raw, XF_HDR_LEN - 1, 16, &len), -EPROTO);
	assert_int_equal(decode(raw, sizeof(raw) - 1, 16, &len), -EPROTO); /* short */
	assert_int_equal(decode(raw, sizeof(raw), 15, &len), -EPROTO);	   /* past the file */
	raw[2] = 1;
	assert_int_equal(decode(raw, sizeof(raw), 16, &len), -EPROTO); /* reserved */
	raw[2] = 0;
	raw[0] = 9;
	assert_int_equal(decode(raw, sizeof(raw), 16, &len), -EPROTO); /* codec */
	raw[0] = XF_RAW;
	raw[7] = 0;
	assert_int_equal(decode(raw, XF_HDR_LEN, 16, &len), -EPROTO); /* empty */

	/* a zstd chunk: whole, then claiming more or fewer bytes than it holds */
	z = encoded(4096, &n);
	assert_int_equal(decode(z, n, 4096, &len), 0);
	assert_int_equal(len, 4096);
	assert_int_equal(decode(z, n, 4095, &len), -EPROTO);
	z[6] = 0x0f, z[7] = 0xff; /* 4095 */
	assert_int_equal(decode(z, n, 4096, &len), -EBADMSG);
	z[6] = 0x10, z[7] = 0x01; /* 4097 */
	assert_int_equal(decode(z, n, XF_CHUNK_MAX, &len), -EBADMSG);
	z[7] = 0x00;
	/* cut short, or a byte flipped in its data */
	assert_int_equal(decode(z, n - 5, 4096, &len), -EBADMSG);
	z[n / 2] ^= 0x55;
	assert_int_equal(decode(z, n, 4096, &len), -EBADMSG);
	free(z);
}

/* After a corrupt chunk the receiver takes no more zstd chunks. */
static void test_codec_broken_stays_broken(void **state)
{
	struct xfer_codec *x = xf_new(PF_COMPRESS_OFF, NULL);
	uint8_t *raw = malloc(XF_CHUNK_MAX), *z;
	uint32_t len;
	size_t n;

	(void)state;
	assert_non_null(x);
	assert_non_null(raw);
	z = encoded(4096, &n);
	z[XF_HDR_LEN] ^= 0xff; /* the frame's magic */
	assert_int_equal(xf_decode(x, z, n, raw, 4096, &len), -EBADMSG);
	z[XF_HDR_LEN] ^= 0xff;
	assert_int_equal(xf_decode(x, z, n, raw, 4096, &len), -EBADMSG);
	free(z);
	free(raw);
	xf_free(x);
}

/* A forged peer: a chunk longer than the file has left; nothing is kept. */
static void test_codec_chunk_past_the_file(void **state)
{
	struct fixture *f = *state;
	uint8_t chunk[XF_HDR_LEN + 8] = { XF_RAW, 0, 0, 0, 0, 0, 0, 8 };
	uint64_t budget = 100;
	struct forger fg = { .s = f->s };
	struct conn *c;
	int sv[2];

	st_begin(f->s, "core-1.img", 4);
	st_frame(f->s, FRAME_DATA, chunk, sizeof(chunk));
	st_end(f->s, 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fg.fd = sv[1];
	assert_int_equal(conn_from_fd(sv[0], &c), 0);
	assert_int_equal(conn_set_timeout(c, TIMEOUT_MS), 0);
	assert_int_equal(xfer_attach(c, PF_COMPRESS_OFF, NULL), 0);
	assert_int_equal(pthread_create(&fg.th, NULL, forger_main, &fg), 0);
	assert_int_equal(recv_one(c, f->dstfd, &budget, NULL, 0), -EPROTO);
	conn_free(c);
	assert_int_equal(pthread_join(fg.th, NULL), 0);
	assert_int_equal(budget, 100);
	assert_no_file(f);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_send_recv_big_file),
		T(test_send_recv_several),
		T(test_budget_too_small),
		T(test_sender_missing_file),
		T(test_corrupted_byte),
		T(test_forged_valid),
		T(test_more_data_than_announced),
		T(test_big_extra_frame),
		T(test_message_in_the_middle),
		T(test_peer_closes_mid_file),
		T(test_existing_file_not_clobbered),
		T(test_unsafe_name_refused),
		T(test_codec_send_recv),
		T(test_codec_stream_spans_files),
		cmocka_unit_test(test_codec_auto),
		cmocka_unit_test(test_codec_decode_bad),
		cmocka_unit_test(test_codec_broken_stays_broken),
		T(test_codec_chunk_past_the_file),
	};
#undef T

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("xfer", tests, NULL, NULL);
}
