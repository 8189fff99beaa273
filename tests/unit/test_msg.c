/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/msg: every message type through msg_send/msg_recv,
 * and msg_decode's validation of peer input (limits, names, ranges,
 * control characters).
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/conn.h"
#include "proto/msg.h"
#include "proto/wire.h"

#define TIMEOUT_MS 5000

/* --- helpers ----------------------------------------------------------- */

static void open_pair(struct conn **a, struct conn **b)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(conn_from_fd(sv[0], a), 0);
	assert_int_equal(conn_from_fd(sv[1], b), 0);
	assert_int_equal(conn_set_timeout(*a, TIMEOUT_MS), 0);
	assert_int_equal(conn_set_timeout(*b, TIMEOUT_MS), 0);
}

/* Pack @m into a fresh buffer. */
static uint8_t *pack(const Msg *m, size_t *len)
{
	uint8_t *buf;

	*len = phaul__msg__get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(phaul__msg__pack(m, buf), *len);
	return buf;
}

/* msg_decode() of @m packed; the decoded message in *ret if wanted. */
static int decode_packed(const Msg *m, Msg **ret)
{
	size_t len;
	uint8_t *buf = pack(m, &len);
	Msg *out = NULL;
	int r = msg_decode(buf, len, &out);

	free(buf);
	if (r == 0) {
		assert_non_null(out);
		if (ret)
			*ret = out;
		else
			msg_free(out);
	}
	return r;
}

#define assert_valid(m) assert_int_equal(decode_packed((m), NULL), 0)
#define assert_invalid(m) assert_int_equal(decode_packed((m), NULL), -EPROTO)

/* Send @m from one end, receive it at the other; both must pack the same. */
static void roundtrip(Msg *m)
{
	struct conn *a, *b;
	Msg *got = NULL;
	uint8_t *want_buf, *got_buf;
	size_t want_len, got_len;

	open_pair(&a, &b);
	assert_int_equal(msg_send(a, m), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_non_null(got);
	assert_int_equal(got->body_case, m->body_case);
	assert_int_equal(b->bytes_in, a->bytes_out);
	want_buf = pack(m, &want_len);
	got_buf = pack(got, &got_len);
	assert_int_equal(got_len, want_len);
	assert_memory_equal(got_buf, want_buf, want_len);
	free(want_buf);
	free(got_buf);
	msg_free(got);
	conn_free(a);
	conn_free(b);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* A tiny protobuf writer, for encodings protobuf-c would not produce. */
struct pb {
	uint8_t *b;
	size_t len, cap;
};

static void pb_byte(struct pb *p, uint8_t v)
{
	if (p->len == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 256;
		p->b = realloc(p->b, p->cap);
		assert_non_null(p->b);
	}
	p->b[p->len++] = v;
}

static void pb_varint(struct pb *p, uint64_t v)
{
	while (v >= 0x80) {
		pb_byte(p, (v & 0x7f) | 0x80);
		v >>= 7;
	}
	pb_byte(p, v);
}

static void pb_bytes(struct pb *p, unsigned field, const void *data, size_t len)
{
	pb_varint(p, field << 3 | 2);
	pb_varint(p, len);
	for (size_t i = 0; i < len; i++)
		pb_byte(p, ((const uint8_t *)data)[i]);
}

static void pb_uint(struct pb *p, unsigned field, uint64_t v)
{
	pb_varint(p, field << 3 | 0);
	pb_varint(p, v);
}

/* A Msg{preflight} whose pids are @n copies of @pid in packed encoding. */
static int decode_packed_pids(size_t n, int32_t pid, Msg **ret)
{
	struct pb pids = { 0 }, pre = { 0 }, msg = { 0 };
	Msg *m = NULL;
	int r;

	for (size_t i = 0; i < n; i++)
		pb_varint(&pids, (uint64_t)(int64_t)pid);
	pb_bytes(&pre, 1, "stop", 4);
	pb_bytes(&pre, 2, "pid", 3);
	pb_uint(&pre, 4, 40101);
	pb_bytes(&pre, 6, pids.b, pids.len);
	pb_uint(&pre, 7, 1000);
	pb_bytes(&msg, PHAUL__MSG__BODY_PREFLIGHT, pre.b, pre.len);
	r = msg_decode(msg.b, msg.len, &m);
	free(pids.b);
	free(pre.b);
	free(msg.b);
	if (r == 0) {
		if (ret)
			*ret = m;
		else
			msg_free(m);
	}
	return r;
}

/* A Msg{outcome{state = @state}}, any int32 value. */
static int decode_outcome(int32_t state)
{
	struct pb out = { 0 }, msg = { 0 };
	Msg *m = NULL;
	int r;

	pb_uint(&out, 1, (uint64_t)(int64_t)state);
	pb_bytes(&msg, PHAUL__MSG__BODY_OUTCOME, out.b, out.len);
	r = msg_decode(msg.b, msg.len, &m);
	free(out.b);
	free(msg.b);
	if (r == 0)
		msg_free(m);
	return r;
}

/* Message templates, filled in by each test. */
#define MSG_OF(var, member, BODY, obj)           \
	Msg var = PHAUL__MSG__INIT;              \
	var.body_case = PHAUL__MSG__BODY_##BODY; \
	var.member = &obj

static uint8_t sid[PHAUL_SESSION_ID_LEN] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
};
static uint8_t big[MSG_CPUINFO_MAX + 2];

static void init_preflight(Phaul__Preflight *p, char **fs, size_t n_fs, int32_t *pids,
			   size_t n_pids)
{
	*p = (Phaul__Preflight)PHAUL__PREFLIGHT__INIT;
	p->mode = "stop";
	p->htype = "pid";
	p->fs = fs;
	p->n_fs = n_fs;
	p->criu_version = 40101;
	p->pids = pids;
	p->n_pids = n_pids;
	p->est_bytes = 1ull << 30;
}

/* --- round trips of every message type --------------------------------- */

static void test_roundtrip_hello(void **state)
{
	Phaul__Hello h = PHAUL__HELLO__INIT;
	MSG_OF(m, hello, HELLO, h);

	h.version = PHAUL_PROTO_VERSION;
	roundtrip(&m);
	h.has_features = true;
	h.features = 0x8000000000000005ull;
	h.host = "source.example";
	h.has_resume = true;
	h.resume.data = sid;
	h.resume.len = sizeof(sid);
	roundtrip(&m);
}

static void test_roundtrip_hello_reply(void **state)
{
	Phaul__HelloReply h = PHAUL__HELLO_REPLY__INIT;
	MSG_OF(m, hello_reply, HELLO_REPLY, h);

	h.version = PHAUL_PROTO_VERSION;
	h.has_session_id = true;
	h.session_id.data = sid;
	h.session_id.len = sizeof(sid);
	h.host = "dst";
	roundtrip(&m);
}

static void test_roundtrip_preflight(void **state)
{
	char *fs[] = { "shared:/mnt/data", "shared:/srv" };
	int32_t pids[] = { 1, 2, 77, 4194304 };
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);

	init_preflight(&p, fs, 2, pids, 4);
	p.has_cpuinfo = true;
	p.cpuinfo.data = big;
	p.cpuinfo.len = 1000;
	p.root_cmd = "counter";
	p.has_shell_job = true;
	p.shell_job = true;
	p.has_stream = true;
	p.stream = true;
	roundtrip(&m);

	init_preflight(&p, NULL, 0, NULL, 0);
	roundtrip(&m);
}

/* `phaul check` sends a Preflight as Msg.check: same fields, same limits. */
static void test_check_is_a_validated_preflight(void **state)
{
	int32_t pids[] = { 10002 };
	int32_t bad_pids[] = { 0 };
	Phaul__Preflight p;
	MSG_OF(m, check, CHECK, p);

	init_preflight(&p, NULL, 0, pids, 1);
	roundtrip(&m);
	init_preflight(&p, NULL, 0, NULL, 0);
	roundtrip(&m);
	init_preflight(&p, NULL, 0, bad_pids, 1);
	assert_invalid(&m);
	assert_string_equal(msg_name(PHAUL__MSG__BODY_CHECK), "Check");
}

static void test_roundtrip_preflight_reply(void **state)
{
	Phaul__PreflightReply p = PHAUL__PREFLIGHT_REPLY__INIT;
	MSG_OF(m, preflight_reply, PREFLIGHT_REPLY, p);

	p.ok = true;
	p.has_criu_version = true;
	p.criu_version = 40101;
	p.has_free_bytes = true;
	p.free_bytes = 1ull << 40;
	roundtrip(&m);
	p.ok = false;
	p.error = "not enough space";
	roundtrip(&m);
	/* stop mode's answer to Preflight.stream */
	p.ok = true;
	p.error = NULL;
	p.has_stream = true;
	p.stream = false;
	p.stream_why = "PHAUL_STOP_STREAM=0 on the destination";
	roundtrip(&m);
}

static void test_roundtrip_file_begin(void **state)
{
	Phaul__FileBegin f = PHAUL__FILE_BEGIN__INIT;
	MSG_OF(m, file_begin, FILE_BEGIN, f);

	f.name = "pages-1.img";
	f.size = 123456789;
	roundtrip(&m);
	f.has_mode = true;
	f.mode = 0644;
	roundtrip(&m);
}

static void test_roundtrip_file_end(void **state)
{
	Phaul__FileEnd f = PHAUL__FILE_END__INIT;
	MSG_OF(m, file_end, FILE_END, f);

	f.xxh64 = 0xdeadbeefcafebabeull;
	roundtrip(&m);
}

static void test_roundtrip_restore(void **state)
{
	Phaul__Restore r = PHAUL__RESTORE__INIT;
	MSG_OF(m, restore, RESTORE, r);

	roundtrip(&m);
	r.has_shell_job = true;
	r.shell_job = true;
	roundtrip(&m);
}

static void test_roundtrip_restore_ready(void **state)
{
	Phaul__RestoreReady r = PHAUL__RESTORE_READY__INIT;
	MSG_OF(m, restore_ready, RESTORE_READY, r);

	r.root_pid = 4242;
	r.restore_ms = 17;
	roundtrip(&m);
}

static void test_roundtrip_commit(void **state)
{
	Phaul__Commit c = PHAUL__COMMIT__INIT;
	MSG_OF(m, commit, COMMIT, c);

	roundtrip(&m);
}

static void test_roundtrip_committed(void **state)
{
	Phaul__Committed c = PHAUL__COMMITTED__INIT;
	MSG_OF(m, committed, COMMITTED, c);

	c.root_pid = 1;
	c.restore_ms = 99;
	roundtrip(&m);
}

static void test_roundtrip_abort(void **state)
{
	Phaul__Abort a = PHAUL__ABORT__INIT;
	MSG_OF(m, abort, ABORT, a);

	a.reason = "interrupted by the user";
	roundtrip(&m);
	a.reason = "";
	roundtrip(&m);
}

static void test_roundtrip_outcome(void **state)
{
	Phaul__Outcome o = PHAUL__OUTCOME__INIT;
	MSG_OF(m, outcome, OUTCOME, o);

	for (int s = PHAUL__OUTCOME__STATE__UNKNOWN; s <= PHAUL__OUTCOME__STATE__PENDING; s++) {
		o.state = s;
		roundtrip(&m);
	}
}

static void test_roundtrip_error(void **state)
{
	Phaul__Error e = PHAUL__ERROR__INIT;
	MSG_OF(m, error, ERROR, e);

	e.code = EIO;
	e.message = "restore failed";
	roundtrip(&m);
	e.step = "dst.restore";
	e.code = 4095;
	roundtrip(&m);
}

static void test_roundtrip_page_run(void **state)
{
	Phaul__PageRun p = PHAUL__PAGE_RUN__INIT;
	MSG_OF(m, page_run, PAGE_RUN, p);

	p.pid = 4242;
	p.vaddr = 0x7f0000001000ull;
	p.nr_pages = MSG_RUN_PAGES_MAX;
	roundtrip(&m);
}

static void test_roundtrip_round_end(void **state)
{
	Phaul__RoundEnd r = PHAUL__ROUND_END__INIT;
	MSG_OF(m, round_end, ROUND_END, r);

	r.round = 3;
	r.pages = 123456;
	roundtrip(&m);
	r.has_final = true;
	r.final = true;
	roundtrip(&m);
}

/* The fields, not just the encoding, survive. */
static void test_roundtrip_fields(void **state)
{
	char *fs[] = { "shared:/a" };
	int32_t pids[] = { 10, 11 };
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);
	struct conn *a, *b;
	Msg *got = NULL;

	init_preflight(&p, fs, 1, pids, 2);
	p.root_cmd = "sleep";
	open_pair(&a, &b);
	assert_int_equal(msg_send(a, &m), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->body_case, PHAUL__MSG__BODY_PREFLIGHT);
	assert_string_equal(got->preflight->mode, "stop");
	assert_string_equal(got->preflight->htype, "pid");
	assert_string_equal(got->preflight->root_cmd, "sleep");
	assert_int_equal(got->preflight->n_fs, 1);
	assert_string_equal(got->preflight->fs[0], "shared:/a");
	assert_int_equal(got->preflight->n_pids, 2);
	assert_int_equal(got->preflight->pids[0], 10);
	assert_int_equal(got->preflight->pids[1], 11);
	assert_int_equal(got->preflight->criu_version, 40101);
	assert_int_equal(got->preflight->est_bytes, 1ull << 30);
	assert_false(got->preflight->has_cpuinfo);
	msg_free(got);
	conn_free(a);
	conn_free(b);
}

static void test_send_error_and_abort(void **state)
{
	struct conn *a, *b;
	Msg *got = NULL;
	char *longtext = repeat('e', 3000);

	open_pair(&a, &b);

	assert_int_equal(msg_send_error(a, -ENOSPC, "dst.transfer", "only %d MiB left", 5), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->body_case, PHAUL__MSG__BODY_ERROR);
	assert_int_equal(got->error->code, ENOSPC);
	assert_string_equal(got->error->message, "only 5 MiB left");
	assert_string_equal(got->error->step, "dst.transfer");
	msg_free(got);

	/* code 0 and out-of-range codes become EIO, so the message stays valid */
	assert_int_equal(msg_send_error(a, 0, NULL, "x"), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->error->code, EIO);
	assert_null(got->error->step);
	msg_free(got);
	assert_int_equal(msg_send_error(a, -100000, "s", "y"), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->error->code, EIO);
	msg_free(got);

	/* over-long text is cut to fit the receiver's limit */
	assert_int_equal(msg_send_error(a, EPERM, "s", "%s", longtext), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(strlen(got->error->message), MSG_TEXT_MAX - 1);
	msg_free(got);

	assert_int_equal(msg_send_abort(a, "bye"), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->body_case, PHAUL__MSG__BODY_ABORT);
	assert_string_equal(got->abort->reason, "bye");
	msg_free(got);
	assert_int_equal(msg_send_abort(a, longtext), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(strlen(got->abort->reason), MSG_TEXT_MAX - 1);
	msg_free(got);

	conn_free(a);
	conn_free(b);
	free(longtext);
}

static void test_send_too_large(void **state)
{
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);
	struct conn *a, *b;

	init_preflight(&p, NULL, 0, NULL, 0);
	p.has_cpuinfo = true;
	p.cpuinfo.data = big;
	p.cpuinfo.len = FRAME_MSG_MAX;
	open_pair(&a, &b);
	assert_int_equal(msg_send(a, &m), -EMSGSIZE);
	assert_int_equal(a->bytes_out, 0);
	conn_free(a);
	conn_free(b);
}

/* --- msg_recv ------------------------------------------------------------ */

static void test_recv_rejects_data_frame(void **state)
{
	struct conn *a, *b;
	Msg *got = NULL;

	open_pair(&a, &b);
	assert_int_equal(frame_send(a, FRAME_DATA, "\x0a\x02\x08\x01", 4), 0);
	assert_int_equal(msg_recv(b, &got), -EPROTO);
	assert_null(got);
	conn_free(a);
	conn_free(b);
}

static void test_recv_rejects_invalid(void **state)
{
	Phaul__Hello h = PHAUL__HELLO__INIT;
	MSG_OF(m, hello, HELLO, h);
	struct conn *a, *b;
	Msg *got = NULL;
	char *host = repeat('h', 256);

	h.version = 1;
	h.host = host;
	open_pair(&a, &b);
	/* msg_send does not validate; the receiver must */
	assert_int_equal(msg_send(a, &m), 0);
	assert_int_equal(msg_recv(b, &got), -EPROTO);
	assert_null(got);
	assert_int_equal(frame_send(a, FRAME_MSG, "\xff\xff\xff", 3), 0);
	assert_int_equal(msg_recv(b, &got), -EPROTO);
	assert_int_equal(frame_send(a, FRAME_MSG, NULL, 0), 0);
	assert_int_equal(msg_recv(b, &got), -EPROTO);
	assert_null(got);
	conn_free(a);
	conn_free(b);
	free(host);
}

static void test_recv_peer_closed(void **state)
{
	struct conn *a, *b;
	Msg *got = NULL;

	open_pair(&a, &b);
	conn_free(a);
	assert_int_equal(msg_recv(b, &got), -EPIPE);
	assert_null(got);
	conn_free(b);
}

/* --- msg_decode: malformed input ----------------------------------------- */

static void test_decode_garbage(void **state)
{
	static const struct {
		const char *buf;
		size_t len;
	} bad[] = {
		{ "\xff", 1 },
		{ "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11 },
		{ "\x08\x01", 2 },	       /* field 1 as a varint */
		{ "\x0a\x05\x08\x01", 4 },     /* truncated submessage */
		{ "\x0a\x80", 2 },	       /* truncated length */
		{ "\x0a\x00", 2 },	       /* Hello without its required version */
		{ "\x82\x7d\x02\x08\x01", 5 }, /* field 2000: unknown, no body */
		{ "\x00\x00\x00\x00", 4 },     /* field 0 */
		{ "PH\x01\x00\x00\x00\x00\x00", 8 },
	};
	Msg *m = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(msg_decode((const uint8_t *)bad[i].buf, bad[i].len, &m), -EPROTO);
		assert_null(m);
	}
}

static void test_decode_empty(void **state)
{
	Msg empty = PHAUL__MSG__INIT;
	uint8_t b = 0;
	Msg *m = NULL;

	assert_int_equal(msg_decode(&b, 0, &m), -EPROTO);
	assert_null(m);
	assert_invalid(&empty);
}

static void test_decode_truncated(void **state)
{
	char *fs[] = { "shared:/mnt" };
	int32_t pids[] = { 5, 6, 7 };
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);
	Msg *out = NULL;
	size_t len;
	uint8_t *buf;

	init_preflight(&p, fs, 1, pids, 3);
	p.root_cmd = "x";
	buf = pack(&m, &len);
	assert_int_equal(msg_decode(buf, len, &out), 0);
	msg_free(out);
	for (size_t cut = 0; cut < len; cut++) {
		out = NULL;
		assert_int_equal(msg_decode(buf, cut, &out), -EPROTO);
		assert_null(out);
	}
	free(buf);
}

/* A valid Commit padded with an unknown field (2000) to @total bytes (> 2^14). */
static void commit_padded(uint8_t *buf, size_t total)
{
	size_t pad = total - 7;

	memset(buf, 0, total);
	buf[0] = 0x4a; /* field 9 (commit), length-delimited, empty */
	buf[1] = 0x00;
	buf[2] = 0x82; /* field 2000, length-delimited */
	buf[3] = 0x7d;
	buf[4] = 0x80 | (pad & 0x7f); /* 3-byte length */
	buf[5] = 0x80 | ((pad >> 7) & 0x7f);
	buf[6] = pad >> 14;
}

static void test_decode_too_long(void **state)
{
	uint8_t *buf = malloc(FRAME_MSG_MAX + 1);
	Msg *m = NULL;

	assert_non_null(buf);
	commit_padded(buf, FRAME_MSG_MAX);
	assert_int_equal(msg_decode(buf, FRAME_MSG_MAX, &m), 0);
	assert_int_equal(m->body_case, PHAUL__MSG__BODY_COMMIT);
	msg_free(m);
	m = NULL;
	commit_padded(buf, FRAME_MSG_MAX + 1);
	assert_int_equal(msg_decode(buf, FRAME_MSG_MAX + 1, &m), -EPROTO);
	assert_null(m);
	free(buf);
}

/* Two bodies on the wire: the last one wins, and nothing leaks. */
static void test_decode_two_bodies(void **state)
{
	struct pb p = { 0 };
	Msg *m = NULL;

	pb_bytes(&p, PHAUL__MSG__BODY_ABORT, "\x0a\x01x", 3);
	pb_bytes(&p, PHAUL__MSG__BODY_COMMIT, "", 0);
	assert_int_equal(msg_decode(p.b, p.len, &m), 0);
	assert_int_equal(m->body_case, PHAUL__MSG__BODY_COMMIT);
	msg_free(m);
	free(p.b);
}

/* --- msg_decode: limits on each field ------------------------------------ */

static void test_preflight_reply_in_place(void **state)
{
	Phaul__PreflightReply p = PHAUL__PREFLIGHT_REPLY__INIT;
	MSG_OF(m, preflight_reply, PREFLIGHT_REPLY, p);
	char *paths[MSG_IN_PLACE_MAX + 1] = { "/var/lib/lxc/c1/config", "/a", "/b", "/c", "/d" };
	char *p4096 = repeat('/', 4096), *p4097 = repeat('/', 4097);

	p.ok = true;
	p.in_place = paths;
	p.n_in_place = 1;
	roundtrip(&m);
	p.n_in_place = MSG_IN_PLACE_MAX;
	assert_valid(&m);
	p.n_in_place = MSG_IN_PLACE_MAX + 1;
	assert_invalid(&m);
	/* absolute paths of at most 4096 bytes only */
	p.n_in_place = 1;
	paths[0] = "relative/config";
	assert_invalid(&m);
	paths[0] = "";
	assert_invalid(&m);
	paths[0] = p4096;
	assert_valid(&m);
	paths[0] = p4097;
	assert_invalid(&m);
	free(p4096);
	free(p4097);
}

/* PodmanInfo (in OciContainer): names, image ID, MACs, dirs checked */
static void test_podman_limits(void **state)
{
	Phaul__OciContainer oc = PHAUL__OCI_CONTAINER__INIT;
	Phaul__PodmanInfo pi = PHAUL__PODMAN_INFO__INIT;
	char *nets[] = { "podman" }, *dirs[] = { "/var/lib/containers/x" };
	char *macs[] = { "0a:1b:2c:3d:4e:5f" };
	char id[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	Msg m = PHAUL__MSG__INIT;

	(void)state;
	m.body_case = PHAUL__MSG__BODY_OCI;
	m.oci = &oc;
	oc.id = id;
	oc.runtime = "runc";
	oc.runtime_root = "/run/runc";
	oc.bundle = "/var/lib/containers/b";
	oc.rootfs = "/var/lib/containers/r";
	oc.podman = &pi;
	pi.name = "web";
	pi.image_id = id;
	pi.image = "localhost/bb:1";
	pi.networks = nets;
	pi.n_networks = 1;
	pi.dirs = dirs;
	pi.n_dirs = 1;
	pi.macs = macs;
	pi.n_macs = 1;
	assert_valid(&m);
	pi.name = "../x";
	assert_invalid(&m);
	pi.name = "web";
	pi.image_id = "0123";
	assert_invalid(&m);
	id[3] = 'G';
	pi.image_id = id;
	assert_invalid(&m);
	id[3] = '3';
	macs[0] = "0a:1b:2c:3d:4e";
	assert_invalid(&m);
	macs[0] = "0a:1b:2c:3d:4e:5f:00";
	assert_invalid(&m);
	macs[0] = "0a:1b:2c:3d:4e:5f";
	nets[0] = "a/b";
	assert_invalid(&m);
	nets[0] = "podman";
	dirs[0] = "relative";
	assert_invalid(&m);
	dirs[0] = "/ok";
	assert_valid(&m);
	char *many[MSG_PODMAN_NETS_MAX + 1];
	for (size_t i = 0; i < MSG_PODMAN_NETS_MAX + 1; i++)
		many[i] = "n";
	pi.networks = many;
	pi.n_networks = MSG_PODMAN_NETS_MAX + 1;
	assert_invalid(&m);
}

static void test_hello_limits(void **state)
{
	Phaul__Hello h = PHAUL__HELLO__INIT;
	MSG_OF(m, hello, HELLO, h);
	char *h255 = repeat('a', 255), *h256 = repeat('a', 256), *h5000 = repeat('a', 5000);

	h.version = 1;
	assert_valid(&m);
	h.host = h255;
	assert_valid(&m);
	h.host = h256;
	assert_invalid(&m);
	h.host = h5000;
	assert_invalid(&m);
	h.host = NULL;

	h.has_resume = true;
	h.resume.data = big;
	h.resume.len = PHAUL_SESSION_ID_LEN;
	assert_valid(&m);
	for (size_t len = 0; len <= 40; len++) {
		if (len == PHAUL_SESSION_ID_LEN)
			continue;
		h.resume.len = len;
		assert_invalid(&m);
	}
	free(h255);
	free(h256);
	free(h5000);
}

static void test_hello_reply_limits(void **state)
{
	Phaul__HelloReply h = PHAUL__HELLO_REPLY__INIT;
	MSG_OF(m, hello_reply, HELLO_REPLY, h);
	char *h255 = repeat('b', 255), *h256 = repeat('b', 256);

	h.version = 1;
	assert_valid(&m);
	h.host = h255;
	assert_valid(&m);
	h.host = h256;
	assert_invalid(&m);
	h.host = NULL;

	h.has_session_id = true;
	h.session_id.data = big;
	h.session_id.len = PHAUL_SESSION_ID_LEN;
	assert_valid(&m);
	for (size_t len = 0; len <= 40; len++) {
		if (len == PHAUL_SESSION_ID_LEN)
			continue;
		h.session_id.len = len;
		assert_invalid(&m);
	}
	free(h255);
	free(h256);
}

static void test_preflight_strings(void **state)
{
	char *fs_ok[] = { NULL }, *s;
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);

	init_preflight(&p, NULL, 0, NULL, 0);
	assert_valid(&m);

	s = repeat('m', 16);
	p.mode = s;
	assert_valid(&m);
	free(s);
	s = repeat('m', 17);
	p.mode = s;
	assert_invalid(&m);
	free(s);
	p.mode = "stop";

	s = repeat('h', 32);
	p.htype = s;
	assert_valid(&m);
	free(s);
	s = repeat('h', 33);
	p.htype = s;
	assert_invalid(&m);
	free(s);
	p.htype = "pid";

	s = repeat('r', 64);
	p.root_cmd = s;
	assert_valid(&m);
	free(s);
	s = repeat('r', 65);
	p.root_cmd = s;
	assert_invalid(&m);
	free(s);
	p.root_cmd = NULL;

	p.fs = fs_ok;
	p.n_fs = 1;
	s = repeat('f', 4096);
	fs_ok[0] = s;
	assert_valid(&m);
	free(s);
	s = repeat('f', 4097);
	fs_ok[0] = s;
	assert_invalid(&m);
	free(s);
}

static void test_preflight_fs_count(void **state)
{
	char *fs[MSG_FS_MAX + 1];
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);

	for (size_t i = 0; i < MSG_FS_MAX + 1; i++)
		fs[i] = "shared:/x";
	init_preflight(&p, fs, MSG_FS_MAX, NULL, 0);
	assert_valid(&m);
	p.n_fs = MSG_FS_MAX + 1;
	assert_invalid(&m);
}

static void test_preflight_pid_range(void **state)
{
	static const int32_t good[] = { 1, 2, 300, 32768, 4194303, 4194304 };
	static const int32_t bad[] = { 0, -1, -4194304, INT32_MIN, 4194305, 1 << 23, INT32_MAX };
	int32_t pids[3] = { 100, 0, 200 };
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);

	init_preflight(&p, NULL, 0, pids, 3);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		pids[1] = good[i];
		assert_valid(&m);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pids[1] = bad[i];
		assert_invalid(&m);
		/* first and last position too */
		pids[1] = 5;
		pids[0] = bad[i];
		assert_invalid(&m);
		pids[0] = 100;
		pids[2] = bad[i];
		assert_invalid(&m);
		pids[2] = 200;
	}
}

static void test_preflight_pid_count(void **state)
{
	Msg *m = NULL;

	/* packed encoding: the only way this many pids fit in one frame */
	assert_int_equal(decode_packed_pids(3, 9, &m), 0);
	assert_int_equal(m->preflight->n_pids, 3);
	assert_int_equal(m->preflight->pids[2], 9);
	msg_free(m);
	assert_int_equal(decode_packed_pids(MSG_PIDS_MAX, 1, NULL), 0);
	assert_int_equal(decode_packed_pids(MSG_PIDS_MAX + 1, 1, NULL), -EPROTO);
	assert_int_equal(decode_packed_pids(60000, 1, NULL), -EPROTO);
	assert_int_equal(decode_packed_pids(2, -1, NULL), -EPROTO);
}

static void test_preflight_cpuinfo(void **state)
{
	Phaul__Preflight p;
	MSG_OF(m, preflight, PREFLIGHT, p);

	init_preflight(&p, NULL, 0, NULL, 0);
	p.has_cpuinfo = true;
	p.cpuinfo.data = big;
	p.cpuinfo.len = 0;
	assert_valid(&m);
	p.cpuinfo.len = MSG_CPUINFO_MAX;
	assert_valid(&m);
	p.cpuinfo.len = MSG_CPUINFO_MAX + 1;
	assert_invalid(&m);
}

static void test_file_begin_names(void **state)
{
	static const char *const bad[] = {
		"../x", "..",	".",   "a/b",  "/etc/passwd", ".hidden", "",	 "x\n",
		"a b",	"a\\b", "x:y", "\x01", "caf\xc3\xa9", "*",	 "a\tb", "~x",
	};
	static const char *const good[] = {
		"a", "pages-1.img", "A_b-c.d", "core-4242.img", "x..y", "0", "name.",
	};
	Phaul__FileBegin f = PHAUL__FILE_BEGIN__INIT;
	MSG_OF(m, file_begin, FILE_BEGIN, f);
	char *n128 = repeat('n', 128), *n129 = repeat('n', 129);

	f.size = 1;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f.name = (char *)bad[i];
		assert_false(name_is_safe(bad[i]));
		assert_invalid(&m);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		f.name = (char *)good[i];
		assert_true(name_is_safe(good[i]));
		assert_valid(&m);
	}
	f.name = n128;
	assert_valid(&m);
	f.name = n129;
	assert_false(name_is_safe(n129));
	assert_invalid(&m);
	assert_false(name_is_safe(NULL));
	free(n128);
	free(n129);
}

/* A name with an embedded NUL must not pass as its prefix. */
static void test_file_begin_embedded_nul(void **state)
{
	struct pb fb = { 0 }, msg = { 0 };
	Msg *m = NULL;
	int r;

	pb_bytes(&fb, 1, "ok\0/../../x", 11);
	pb_uint(&fb, 2, 1);
	pb_bytes(&msg, PHAUL__MSG__BODY_FILE_BEGIN, fb.b, fb.len);
	r = msg_decode(msg.b, msg.len, &m);
	if (r == 0) {
		/* accepted: then the name used must be the safe prefix */
		assert_string_equal(m->file_begin->name, "ok");
		msg_free(m);
	} else {
		assert_int_equal(r, -EPROTO);
	}
	free(fb.b);
	free(msg.b);
}

static void test_file_begin_size_mode(void **state)
{
	Phaul__FileBegin f = PHAUL__FILE_BEGIN__INIT;
	MSG_OF(m, file_begin, FILE_BEGIN, f);

	f.name = "img";
	f.size = 0;
	assert_valid(&m);
	f.size = MSG_FILE_MAX;
	assert_valid(&m);
	f.size = MSG_FILE_MAX + 1;
	assert_invalid(&m);
	f.size = UINT64_MAX;
	assert_invalid(&m);
	f.size = 10;
	f.has_mode = true;
	f.mode = 07777;
	assert_valid(&m);
	f.mode = 010000;
	assert_invalid(&m);
	f.mode = UINT32_MAX;
	assert_invalid(&m);
}

static void test_outcome_range(void **state)
{
	for (int32_t s = 0; s <= 3; s++)
		assert_int_equal(decode_outcome(s), 0);
	assert_int_equal(decode_outcome(4), -EPROTO);
	assert_int_equal(decode_outcome(100), -EPROTO);
	assert_int_equal(decode_outcome(INT32_MAX), -EPROTO);
	assert_int_equal(decode_outcome(-1), -EPROTO);
	assert_int_equal(decode_outcome(INT32_MIN), -EPROTO);
}

static void test_error_limits(void **state)
{
	Phaul__Error e = PHAUL__ERROR__INIT;
	MSG_OF(m, error, ERROR, e);
	char *t1024 = repeat('t', MSG_TEXT_MAX), *t1025 = repeat('t', MSG_TEXT_MAX + 1);
	char *s32 = repeat('s', 32), *s33 = repeat('s', 33);

	e.message = "m";
	e.code = 0;
	assert_invalid(&m);
	e.code = 1;
	assert_valid(&m);
	e.code = 4095;
	assert_valid(&m);
	e.code = 4096;
	assert_invalid(&m);
	e.code = UINT32_MAX;
	assert_invalid(&m);

	e.code = EIO;
	e.message = t1024;
	assert_valid(&m);
	e.message = t1025;
	assert_invalid(&m);
	e.message = "m";
	e.step = s32;
	assert_valid(&m);
	e.step = s33;
	assert_invalid(&m);
	free(t1024);
	free(t1025);
	free(s32);
	free(s33);
}

static void test_text_limits(void **state)
{
	Phaul__Abort a = PHAUL__ABORT__INIT;
	MSG_OF(ma, abort, ABORT, a);
	Phaul__PreflightReply p = PHAUL__PREFLIGHT_REPLY__INIT;
	MSG_OF(mp, preflight_reply, PREFLIGHT_REPLY, p);
	char *t1024 = repeat('t', MSG_TEXT_MAX), *t1025 = repeat('t', MSG_TEXT_MAX + 1);

	a.reason = t1024;
	assert_valid(&ma);
	a.reason = t1025;
	assert_invalid(&ma);
	p.error = t1024;
	assert_valid(&mp);
	p.error = t1025;
	assert_invalid(&mp);
	p.error = NULL;
	p.stream_why = t1024;
	assert_valid(&mp);
	p.stream_why = t1025;
	assert_invalid(&mp);
	free(t1024);
	free(t1025);
}

static void test_pid_messages(void **state)
{
	Phaul__RestoreReady r = PHAUL__RESTORE_READY__INIT;
	MSG_OF(mr, restore_ready, RESTORE_READY, r);
	Phaul__Committed c = PHAUL__COMMITTED__INIT;
	MSG_OF(mc, committed, COMMITTED, c);

	r.root_pid = 1;
	assert_valid(&mr);
	c.root_pid = 1;
	assert_valid(&mc);
	r.root_pid = 0;
	assert_invalid(&mr);
	c.root_pid = 0;
	assert_invalid(&mc);
	r.root_pid = -5;
	assert_invalid(&mr);
	c.root_pid = INT32_MIN;
	assert_invalid(&mc);
}

/* A run of a shared memory object: pid 0, a shmid, the offset checked as
 * a vaddr. */
static void test_page_run_shmem(void **state)
{
	Phaul__PageRun p = PHAUL__PAGE_RUN__INIT;
	MSG_OF(m, page_run, PAGE_RUN, p);

	(void)state;
	p.has_shmid = true;
	p.shmid = 464584;
	p.pid = 0;
	p.vaddr = 1 << 20;
	p.nr_pages = MSG_RUN_PAGES_MAX;
	assert_valid(&m);
	p.pid = 1; /* a process's and an object's at once */
	assert_invalid(&m);
	p.pid = 0;
	p.shmid = 0;
	assert_invalid(&m);
	p.shmid = 7;
	p.vaddr = 4096 + 1;
	assert_invalid(&m);
	p.vaddr = MSG_VADDR_LIMIT - 4096;
	p.nr_pages = 2;
	assert_invalid(&m);
	p.nr_pages = 0;
	p.vaddr = 0;
	assert_invalid(&m);
	/* without a shmid, pid 0 is no process */
	p.nr_pages = 1;
	p.has_shmid = false;
	assert_invalid(&m);
}

static void test_page_run_limits(void **state)
{
	Phaul__PageRun p = PHAUL__PAGE_RUN__INIT;
	MSG_OF(m, page_run, PAGE_RUN, p);

	p.pid = 1;
	p.vaddr = 0;
	p.nr_pages = 1;
	assert_valid(&m);
	p.pid = 4194304;
	p.vaddr = MSG_VADDR_LIMIT - 4096 * MSG_RUN_PAGES_MAX;
	p.nr_pages = MSG_RUN_PAGES_MAX;
	assert_valid(&m);
	/* the run must end at the limit, not only start below it */
	p.vaddr = MSG_VADDR_LIMIT - 4096;
	p.nr_pages = 1;
	assert_valid(&m);
	p.nr_pages = 2;
	assert_invalid(&m);

	p.nr_pages = 0;
	assert_invalid(&m);
	p.nr_pages = MSG_RUN_PAGES_MAX + 1;
	assert_invalid(&m);
	p.nr_pages = UINT32_MAX;
	assert_invalid(&m);
	p.nr_pages = 1;

	p.vaddr = MSG_VADDR_LIMIT;
	assert_invalid(&m);
	p.vaddr = UINT64_MAX & ~4095ull;
	assert_invalid(&m);
	p.vaddr = 4096 + 1;
	assert_invalid(&m);
	p.vaddr = 4096 + 2048;
	assert_invalid(&m);
	p.vaddr = 4096;

	p.pid = 0;
	assert_invalid(&m);
	p.pid = -1;
	assert_invalid(&m);
	p.pid = 4194305;
	assert_invalid(&m);
	p.pid = INT32_MIN;
	assert_invalid(&m);
}

static void test_round_end_limits(void **state)
{
	Phaul__RoundEnd r = PHAUL__ROUND_END__INIT;
	MSG_OF(m, round_end, ROUND_END, r);

	r.round = 0;
	assert_valid(&m);
	r.round = MSG_ROUNDS_MAX;
	r.pages = UINT64_MAX;
	assert_valid(&m);
	r.round = MSG_ROUNDS_MAX + 1;
	assert_invalid(&m);
	r.round = UINT32_MAX;
	assert_invalid(&m);
}

/* --- post-copy page messages ------------------------------------------------ */

/* PageReq, PageData, PageDrop, PageShared: one layout {pid, vaddr, nr_pages}. */
struct page_args {
	int32_t pid;
	uint64_t vaddr;
	uint32_t nr;
};

static int decode_page_msg(int body, struct page_args a)
{
	Phaul__PageReq rq = PHAUL__PAGE_REQ__INIT;
	Phaul__PageData pd = PHAUL__PAGE_DATA__INIT;
	Phaul__PageDrop dr = PHAUL__PAGE_DROP__INIT;
	Phaul__PageShared sh = PHAUL__PAGE_SHARED__INIT;
	Msg m = PHAUL__MSG__INIT;

	m.body_case = body;
	rq.pid = pd.pid = dr.pid = sh.pid = a.pid;
	rq.vaddr = pd.vaddr = dr.vaddr = sh.vaddr = a.vaddr;
	rq.nr_pages = pd.nr_pages = dr.nr_pages = sh.nr_pages = a.nr;
	if (body == PHAUL__MSG__BODY_PAGE_REQ)
		m.page_req = &rq;
	else if (body == PHAUL__MSG__BODY_PAGE_DATA)
		m.page_data = &pd;
	else if (body == PHAUL__MSG__BODY_PAGE_SHARED)
		m.page_shared = &sh;
	else
		m.page_drop = &dr;
	return decode_packed(&m, NULL);
}

#define page_ok(body, ...) \
	assert_int_equal(decode_page_msg(body, (struct page_args){ __VA_ARGS__ }), 0)
#define page_bad(body, ...) \
	assert_int_equal(decode_page_msg(body, (struct page_args){ __VA_ARGS__ }), -EPROTO)

/* What all three check the same way: pid, alignment, the address limit. */
static void check_page_common(int body, uint32_t max)
{
	page_ok(body, 1, 0, 1);
	page_ok(body, 4194304, 0x7f0000000000ull, max);
	page_ok(body, 100, MSG_VADDR_LIMIT - 4096ull * max, max);
	page_ok(body, 100, MSG_VADDR_LIMIT - 4096, 1);
	page_bad(body, 100, MSG_VADDR_LIMIT - 4096, 2); /* ends past the limit */
	page_bad(body, 100, MSG_VADDR_LIMIT - 4096ull * max + 4096, max);
	page_bad(body, 100, MSG_VADDR_LIMIT, 1);
	page_bad(body, 100, UINT64_MAX & ~4095ull, 1); /* would wrap */
	page_bad(body, 100, UINT64_MAX & ~4095ull, max);
	page_bad(body, 100, 4096 + 1, 1); /* not page aligned */
	page_bad(body, 100, 4096 + 2048, 1);
	page_bad(body, 0, 4096, 1);
	page_bad(body, -1, 4096, 1);
	page_bad(body, 4194305, 4096, 1);
	page_bad(body, INT32_MIN, 4096, 1);
	page_bad(body, 100, 4096, max + 1);
	page_bad(body, 100, 4096, UINT32_MAX);
}

static void test_page_req_limits(void **state)
{
	check_page_common(PHAUL__MSG__BODY_PAGE_REQ, MSG_REQ_PAGES_MAX);
	assert_int_equal(MSG_REQ_PAGES_MAX, 1024);
	page_bad(PHAUL__MSG__BODY_PAGE_REQ, 100, 4096, 0);
	page_ok(PHAUL__MSG__BODY_PAGE_REQ, 100, 4096, 1024);
	page_bad(PHAUL__MSG__BODY_PAGE_REQ, 100, 4096, 1025);
}

static void test_page_data_limits(void **state)
{
	check_page_common(PHAUL__MSG__BODY_PAGE_DATA, MSG_REQ_PAGES_MAX);
	/* 0 pages: the source cannot read them, still a valid answer */
	page_ok(PHAUL__MSG__BODY_PAGE_DATA, 100, 4096, 0);
	page_ok(PHAUL__MSG__BODY_PAGE_DATA, 100, MSG_VADDR_LIMIT - 4096, 0);
	page_ok(PHAUL__MSG__BODY_PAGE_DATA, 100, 4096, 1024);
	page_bad(PHAUL__MSG__BODY_PAGE_DATA, 100, 4096, 1025);
	page_bad(PHAUL__MSG__BODY_PAGE_DATA, 100, MSG_VADDR_LIMIT, 0);
	page_bad(PHAUL__MSG__BODY_PAGE_DATA, 100, 4097, 0);
	page_bad(PHAUL__MSG__BODY_PAGE_DATA, 0, 4096, 0);
}

static void test_page_drop_limits(void **state)
{
	check_page_common(PHAUL__MSG__BODY_PAGE_DROP, MSG_DROP_PAGES_MAX);
	assert_int_equal(MSG_DROP_PAGES_MAX, 1u << 24);
	page_bad(PHAUL__MSG__BODY_PAGE_DROP, 100, 4096, 0);
	page_ok(PHAUL__MSG__BODY_PAGE_DROP, 100, 4096, 1u << 24);
	page_bad(PHAUL__MSG__BODY_PAGE_DROP, 100, 4096, (1u << 24) + 1);
}

static void test_page_shared_limits(void **state)
{
	check_page_common(PHAUL__MSG__BODY_PAGE_SHARED, MSG_DROP_PAGES_MAX);
	page_bad(PHAUL__MSG__BODY_PAGE_SHARED, 100, 4096, 0);
	page_bad(PHAUL__MSG__BODY_PAGE_SHARED, 0, 4096, 1);
	page_bad(PHAUL__MSG__BODY_PAGE_SHARED, 100, 4097, 1);
	page_bad(PHAUL__MSG__BODY_PAGE_SHARED, 100, MSG_VADDR_LIMIT - 4096, 2);
	page_ok(PHAUL__MSG__BODY_PAGE_SHARED, 100, 4096, 1u << 24);
	page_bad(PHAUL__MSG__BODY_PAGE_SHARED, 100, 4096, (1u << 24) + 1);
}

/* PageShared's from_pid: another process of the migration, when set. */
static void test_page_shared_from(void **state)
{
	Phaul__PageShared sh = PHAUL__PAGE_SHARED__INIT;
	Msg m = PHAUL__MSG__INIT;

	msg_set_page_shared(&m, &sh);
	sh.pid = 100;
	sh.vaddr = 4096;
	sh.nr_pages = 1;
	sh.has_from_pid = true;
	sh.from_pid = 99;
	assert_int_equal(decode_packed(&m, NULL), 0);
	sh.from_pid = 100; /* itself */
	assert_int_equal(decode_packed(&m, NULL), -EPROTO);
	sh.from_pid = 0;
	assert_int_equal(decode_packed(&m, NULL), -EPROTO);
	sh.from_pid = (1 << 22) + 1;
	assert_int_equal(decode_packed(&m, NULL), -EPROTO);
	sh.has_from_pid = false;
	assert_int_equal(decode_packed(&m, NULL), 0);
}

static void test_roundtrip_page_messages(void **state)
{
	Phaul__PageReq rq = PHAUL__PAGE_REQ__INIT;
	Phaul__PageData pd = PHAUL__PAGE_DATA__INIT;
	Phaul__PageDrop dr = PHAUL__PAGE_DROP__INIT;
	Phaul__PagesDone pdone = PHAUL__PAGES_DONE__INIT;
	MSG_OF(mrq, page_req, PAGE_REQ, rq);
	MSG_OF(mpd, page_data, PAGE_DATA, pd);
	MSG_OF(mdr, page_drop, PAGE_DROP, dr);
	MSG_OF(mdone, pages_done, PAGES_DONE, pdone);

	rq.pid = pd.pid = dr.pid = 4242;
	rq.vaddr = pd.vaddr = dr.vaddr = 0x7f0000001000ull;
	rq.nr_pages = pd.nr_pages = MSG_REQ_PAGES_MAX;
	dr.nr_pages = MSG_DROP_PAGES_MAX;
	roundtrip(&mrq);
	roundtrip(&mpd);
	roundtrip(&mdr);
	roundtrip(&mdone);
	/* PagesDone carries statistics only: any values are accepted */
	pdone.pages_remote = pdone.pages_local = UINT64_MAX;
	pdone.pages_fault = pdone.last_page_ms = UINT64_MAX;
	assert_valid(&mdone);
	roundtrip(&mdone);
}

static void test_restore_recover_timeout(void **state)
{
	Phaul__Restore r = PHAUL__RESTORE__INIT;
	MSG_OF(m, restore, RESTORE, r);
	Msg *out = NULL;

	r.has_recover_timeout_s = true;
	r.recover_timeout_s = 30;
	roundtrip(&m);
	assert_int_equal(decode_packed(&m, &out), 0);
	assert_true(out->restore->has_recover_timeout_s);
	assert_int_equal(out->restore->recover_timeout_s, 30);
	msg_free(out);
}

static void test_page_names(void **state)
{
	assert_string_equal(msg_name(PHAUL__MSG__BODY_PAGE_REQ), "PageReq");
	assert_string_equal(msg_name(PHAUL__MSG__BODY_PAGE_DATA), "PageData");
	assert_string_equal(msg_name(PHAUL__MSG__BODY_PAGE_DROP), "PageDrop");
	assert_string_equal(msg_name(PHAUL__MSG__BODY_PAGE_SHARED), "PageShared");
	assert_string_equal(msg_name(PHAUL__MSG__BODY_PAGES_DONE), "PagesDone");
}

/* --- control characters in peer text -------------------------------------- */

static void test_control_chars_replaced(void **state)
{
	Phaul__Error e = PHAUL__ERROR__INIT;
	MSG_OF(me, error, ERROR, e);
	Phaul__Hello h = PHAUL__HELLO__INIT;
	MSG_OF(mh, hello, HELLO, h);
	Phaul__Abort a = PHAUL__ABORT__INIT;
	MSG_OF(ma, abort, ABORT, a);
	char *fs[] = { "x\x1b[2Jy" };
	Phaul__Preflight p;
	MSG_OF(mp, preflight, PREFLIGHT, p);
	Msg *out = NULL;

	e.code = EIO;
	e.message = "line1\nline2\r\x1b[31mred\x7f\tend caf\xc3\xa9";
	e.step = "st\x01"
		 "ep";
	assert_int_equal(decode_packed(&me, &out), 0);
	assert_string_equal(out->error->message, "line1?line2??[31mred??end caf\xc3\xa9");
	assert_string_equal(out->error->step, "st?ep");
	msg_free(out);

	h.version = 1;
	h.host = "evil\x08\x08\x08host";
	assert_int_equal(decode_packed(&mh, &out), 0);
	assert_string_equal(out->hello->host, "evil???host");
	msg_free(out);

	a.reason = "\x1f\x20\x7e\x7f";
	assert_int_equal(decode_packed(&ma, &out), 0);
	assert_string_equal(out->abort->reason, "? ~?");
	msg_free(out);

	init_preflight(&p, fs, 1, NULL, 0);
	p.mode = "st\nop";
	p.htype = "p\x02id";
	p.root_cmd = "\x1b]0;title\x07";
	assert_int_equal(decode_packed(&mp, &out), 0);
	assert_string_equal(out->preflight->mode, "st?op");
	assert_string_equal(out->preflight->htype, "p?id");
	assert_string_equal(out->preflight->root_cmd, "?]0;title?");
	assert_string_equal(out->preflight->fs[0], "x?[2Jy");
	msg_free(out);
}

/* --- typed builders (MSG_BODIES) ---------------------------------------- */

/* Msg's field descriptor for the body @field; NULL if there is none. */
static const ProtobufCFieldDescriptor *body_field(const char *field)
{
	return protobuf_c_message_descriptor_get_field_by_name(&phaul__msg__descriptor, field);
}

/*
 * MSG_BODIES names every body of Msg's oneof, once, with its own case and
 * type: msg_set_<field>() sets exactly that body and its case.
 */
static void test_set_body_case(void **state)
{
	unsigned listed = 0, oneof = 0;

#define CHECK_SETTER(field, CASE, Type, name)                                                 \
	do {                                                                                  \
		const ProtobufCFieldDescriptor *fd = body_field(#field);                      \
		Msg m = PHAUL__MSG__INIT;                                                     \
		Type body;                                                                    \
                                                                                              \
		assert_non_null(fd);                                                          \
		assert_int_equal(fd->id, PHAUL__MSG__BODY_##CASE);                            \
		assert_int_equal(fd->type, PROTOBUF_C_TYPE_MESSAGE);                          \
		assert_int_equal(                                                             \
			((const ProtobufCMessageDescriptor *)fd->descriptor)->sizeof_message, \
			sizeof(Type));                                                        \
		msg_set_##field(&m, &body);                                                   \
		assert_int_equal(m.body_case, PHAUL__MSG__BODY_##CASE);                       \
		assert_ptr_equal(m.field, &body);                                             \
		assert_string_not_equal(msg_name(m.body_case), "unknown");                    \
		listed++;                                                                     \
	} while (0);
	MSG_BODIES(CHECK_SETTER)
#undef CHECK_SETTER

	for (unsigned i = 0; i < phaul__msg__descriptor.n_fields; i++)
		if (phaul__msg__descriptor.fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
			oneof++;
	assert_int_equal(listed, oneof);
}

/*
 * Every msg_send_<field>() puts its body, and only it, on the wire: the
 * frame unpacks (unvalidated: empty bodies) to that case, and packs back
 * to the same bytes as the message built by hand.
 */
#define COUNT_BODY(field, CASE, Type, name) +1
static void test_senders_body_case(void **state)
{
	struct conn *a, *b;
	uint8_t *buf = malloc(FRAME_MSG_MAX);
	unsigned sent = 0;

	assert_non_null(buf);
	open_pair(&a, &b);
#define CHECK_SENDER(field, CASE, Type, name)                                        \
	do {                                                                         \
		const ProtobufCFieldDescriptor *fd = body_field(#field);             \
		Msg want = PHAUL__MSG__INIT;                                         \
		enum frame_type type;                                                \
		uint32_t len;                                                        \
		Msg *got;                                                            \
		Type body;                                                           \
                                                                                     \
		protobuf_c_message_init(fd->descriptor, &body);                      \
		assert_int_equal(msg_send_##field(a, &body), 0);                     \
		assert_int_equal(frame_recv(b, &type, buf, FRAME_MSG_MAX, &len), 0); \
		assert_int_equal(type, FRAME_MSG);                                   \
		got = phaul__msg__unpack(NULL, len, buf);                            \
		assert_non_null(got);                                                \
		assert_int_equal(got->body_case, PHAUL__MSG__BODY_##CASE);           \
		assert_non_null(got->field);                                         \
		msg_set_##field(&want, &body);                                       \
		assert_int_equal(phaul__msg__get_packed_size(&want), len);           \
		msg_free(got);                                                       \
		sent++;                                                              \
	} while (0);
	MSG_SENT_BODIES(CHECK_SENDER)
#undef CHECK_SENDER
	/* all but Abort and Error, which have their own senders */
	assert_int_equal(sent + 2, 0 MSG_BODIES(COUNT_BODY));
	conn_free(a);
	conn_free(b);
	free(buf);
}

/* Typed senders through msg_recv's validation, fields intact. */
static void test_senders_roundtrip(void **state)
{
	Phaul__Commit cm = PHAUL__COMMIT__INIT;
	Phaul__PageReq rq = PHAUL__PAGE_REQ__INIT;
	Phaul__Outcome o = PHAUL__OUTCOME__INIT;
	struct conn *a, *b;
	Msg *got = NULL;

	open_pair(&a, &b);

	assert_int_equal(msg_send_commit(a, &cm), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->body_case, PHAUL__MSG__BODY_COMMIT);
	assert_non_null(got->commit);
	msg_free(got);

	rq.vaddr = 0x7f0000000000ull;
	rq.nr_pages = 16;
	rq.pid = 42;
	assert_int_equal(msg_send_page_req(a, &rq), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->body_case, PHAUL__MSG__BODY_PAGE_REQ);
	assert_int_equal(got->page_req->vaddr, 0x7f0000000000ull);
	assert_int_equal(got->page_req->nr_pages, 16);
	assert_int_equal(got->page_req->pid, 42);
	msg_free(got);

	o.state = PHAUL__OUTCOME__STATE__COMMITTED;
	assert_int_equal(msg_send_outcome(a, &o), 0);
	assert_int_equal(msg_recv(b, &got), 0);
	assert_int_equal(got->body_case, PHAUL__MSG__BODY_OUTCOME);
	assert_int_equal(got->outcome->state, PHAUL__OUTCOME__STATE__COMMITTED);
	msg_free(got);

	conn_free(a);
	conn_free(b);
}

static void test_msg_name(void **state)
{
	static const char *const names[] = {
		"unknown",   "Hello",	"HelloReply", "Preflight",    "PreflightReply",
		"FileBegin", "FileEnd", "Restore",    "RestoreReady", "Commit",
		"Committed", "Abort",	"Outcome",    "Error",
	};
	const ProtobufCMessageDescriptor *d = &phaul__msg__descriptor;
	unsigned max = 0;

	for (int i = 0; i < (int)(sizeof(names) / sizeof(names[0])); i++)
		assert_string_equal(msg_name(i), names[i]);
	/* every body phaul.proto defines has a name of its own */
	for (unsigned i = 0; i < d->n_fields; i++) {
		const char *n = msg_name(d->fields[i].id);
		if (!strcmp(n, "unknown"))
			fail_msg("msg_name(%u) (%s) is \"unknown\"", d->fields[i].id,
				 d->fields[i].name);
		for (unsigned j = 0; j < i; j++)
			assert_string_not_equal(n, msg_name(d->fields[j].id));
		max = MAX(max, d->fields[i].id);
	}
	assert_string_equal(msg_name(max + 1), "unknown");
	assert_string_equal(msg_name(-1), "unknown");
	assert_string_equal(msg_name(1 << 30), "unknown");
}

/* Storage messages: driver index, round, data size and status in range. */
static void test_fs_limits(void **state)
{
	Phaul__FsSync fs = PHAUL__FS_SYNC__INIT;
	Phaul__FsData fd = PHAUL__FS_DATA__INIT;
	Phaul__FsSyncDone dn = PHAUL__FS_SYNC_DONE__INIT;
	Msg m = PHAUL__MSG__INIT;
	uint8_t *chunk = calloc(1, MSG_FSDATA_MAX + 1);

	assert_non_null(chunk);
	m.body_case = PHAUL__MSG__BODY_FS_SYNC;
	m.fs_sync = &fs;
	fs.driver = MSG_FS_MAX - 1;
	fs.round = MSG_ROUNDS_MAX;
	assert_valid(&m);
	roundtrip(&m);
	fs.driver = MSG_FS_MAX;
	assert_invalid(&m);
	fs.driver = 0;
	fs.round = MSG_ROUNDS_MAX + 1;
	assert_invalid(&m);

	m.body_case = PHAUL__MSG__BODY_FS_DATA;
	m.fs_data = &fd;
	fd.has_data = true;
	fd.data.data = chunk;
	fd.data.len = MSG_FSDATA_MAX;
	assert_valid(&m);
	roundtrip(&m);
	fd.data.len = MSG_FSDATA_MAX + 1;
	assert_invalid(&m);
	fd.has_data = false;
	fd.has_eof = fd.eof = true;
	assert_valid(&m);

	m.body_case = PHAUL__MSG__BODY_FS_SYNC_DONE;
	m.fs_sync_done = &dn;
	dn.status = 255;
	assert_valid(&m);
	dn.status = 256;
	assert_invalid(&m);
	dn.status = -1;
	assert_invalid(&m);
	free(chunk);
}

/* The feature names logged by both sides (what an older peer agreed to). */
static void test_features_str(void **state)
{
	char b[64], tiny[8];

	(void)state;
	assert_string_equal(proto_features_str(0, b, sizeof(b)), "none");
	assert_string_equal(proto_features_str(PHAUL_FEAT_PAGE_FRAMES | PHAUL_FEAT_PAGE_SHARED, b,
					       sizeof(b)),
			    "frames shared");
	assert_string_equal(proto_features_str(PHAUL_FEAT_PAGES_RESUME | PHAUL_FEAT_PAGE_ZSTD |
						       (1ULL << 40),
					       b, sizeof(b)),
			    "resume zstd 0x10000000000");
	assert_string_equal(proto_features_str(~0ULL, b, sizeof(b)),
			    "resume frames zstd shared imgzstd shmem 0xffffffffffffffc0");
	/* truncated, still terminated */
	assert_string_equal(proto_features_str(~0ULL, tiny, sizeof(tiny)), "resume ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_hello),
		cmocka_unit_test(test_roundtrip_hello_reply),
		cmocka_unit_test(test_roundtrip_preflight),
		cmocka_unit_test(test_roundtrip_preflight_reply),
		cmocka_unit_test(test_check_is_a_validated_preflight),
		cmocka_unit_test(test_roundtrip_file_begin),
		cmocka_unit_test(test_roundtrip_file_end),
		cmocka_unit_test(test_roundtrip_restore),
		cmocka_unit_test(test_roundtrip_restore_ready),
		cmocka_unit_test(test_roundtrip_commit),
		cmocka_unit_test(test_roundtrip_committed),
		cmocka_unit_test(test_roundtrip_abort),
		cmocka_unit_test(test_roundtrip_outcome),
		cmocka_unit_test(test_roundtrip_error),
		cmocka_unit_test(test_roundtrip_page_run),
		cmocka_unit_test(test_roundtrip_round_end),
		cmocka_unit_test(test_roundtrip_fields),
		cmocka_unit_test(test_send_error_and_abort),
		cmocka_unit_test(test_send_too_large),
		cmocka_unit_test(test_recv_rejects_data_frame),
		cmocka_unit_test(test_recv_rejects_invalid),
		cmocka_unit_test(test_recv_peer_closed),
		cmocka_unit_test(test_decode_garbage),
		cmocka_unit_test(test_decode_empty),
		cmocka_unit_test(test_decode_truncated),
		cmocka_unit_test(test_decode_too_long),
		cmocka_unit_test(test_decode_two_bodies),
		cmocka_unit_test(test_preflight_reply_in_place),
		cmocka_unit_test(test_hello_limits),
		cmocka_unit_test(test_podman_limits),
		cmocka_unit_test(test_hello_reply_limits),
		cmocka_unit_test(test_preflight_strings),
		cmocka_unit_test(test_preflight_fs_count),
		cmocka_unit_test(test_preflight_pid_range),
		cmocka_unit_test(test_preflight_pid_count),
		cmocka_unit_test(test_preflight_cpuinfo),
		cmocka_unit_test(test_file_begin_names),
		cmocka_unit_test(test_file_begin_embedded_nul),
		cmocka_unit_test(test_file_begin_size_mode),
		cmocka_unit_test(test_outcome_range),
		cmocka_unit_test(test_error_limits),
		cmocka_unit_test(test_text_limits),
		cmocka_unit_test(test_pid_messages),
		cmocka_unit_test(test_page_run_limits),
		cmocka_unit_test(test_page_run_shmem),
		cmocka_unit_test(test_round_end_limits),
		cmocka_unit_test(test_page_req_limits),
		cmocka_unit_test(test_page_data_limits),
		cmocka_unit_test(test_page_drop_limits),
		cmocka_unit_test(test_page_shared_limits),
		cmocka_unit_test(test_page_shared_from),
		cmocka_unit_test(test_roundtrip_page_messages),
		cmocka_unit_test(test_restore_recover_timeout),
		cmocka_unit_test(test_page_names),
		cmocka_unit_test(test_control_chars_replaced),
		cmocka_unit_test(test_msg_name),
		cmocka_unit_test(test_set_body_case),
		cmocka_unit_test(test_senders_body_case),
		cmocka_unit_test(test_senders_roundtrip),
		cmocka_unit_test(test_fs_limits),
		cmocka_unit_test(test_features_str),
	};

	log_init("test", LOG_QUIET);
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("msg", tests, NULL, NULL);
}
