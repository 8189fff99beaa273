/* SPDX-License-Identifier: MIT */
/*
 * Writes the fuzzers' seed corpora: a few valid inputs per target, built
 * with the library's own encoders so they stay in step with the protocol.
 *
 *   cc -std=gnu11 -D_GNU_SOURCE -I src -I build/gen -o build/gen_corpus \
 *      tests/fuzz/gen_corpus.c build/libphaul.a \
 *      $(pkg-config --libs gnutls libprotobuf-c json-c libxxhash) -lpthread
 *   build/gen_corpus tests/fuzz/corpus
 *
 * Input layouts are described at the top of each tests/fuzz/fuzz_*.c.
 * Existing seeds (and regression inputs added by hand) are left alone
 * unless a seed of the same name is regenerated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/util.h"
#include "proto/msg.h"
#include "proto/wire.h"

struct buf {
	uint8_t *b;
	size_t len, cap;
};

static void put(struct buf *s, const void *p, size_t len)
{
	if (s->len + len > s->cap) {
		s->cap = (s->len + len) * 2 + 64;
		s->b = realloc(s->b, s->cap);
		if (!s->b)
			abort();
	}
	if (len)
		memcpy(s->b + s->len, p, len);
	s->len += len;
}

static void put_byte(struct buf *s, uint8_t v)
{
	put(s, &v, 1);
}

static void put_frame(struct buf *s, enum frame_type type, const void *p, size_t len)
{
	uint8_t hdr[FRAME_HDR_LEN];

	frame_hdr_encode(hdr, type, len);
	put(s, hdr, sizeof(hdr));
	put(s, p, len);
}

static void put_packed(struct buf *s, const Msg *m)
{
	size_t len = phaul__msg__get_packed_size(m);
	uint8_t *p = malloc(len + 1);

	if (!p)
		abort();
	phaul__msg__pack(m, p);
	put(s, p, len);
	free(p);
}

static void put_msg_frame(struct buf *s, const Msg *m)
{
	struct buf t = { 0 };

	put_packed(&t, m);
	put_frame(s, FRAME_MSG, t.b, t.len);
	free(t.b);
}

static const char *outdir;

static void save(const char *target, const char *name, const struct buf *s)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	if (mkdir_p(path, 0755) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write_full(fd, s->b, s->len) < 0) {
		perror(path);
		exit(1);
	}
	close(fd);
	printf("%s\n", path);
}

static void save_msg(const char *name, const Msg *m)
{
	struct buf s = { 0 };

	put_packed(&s, m);
	save("fuzz_msg", name, &s);
	free(s.b);
}

static uint8_t sid[PHAUL_SESSION_ID_LEN] = "0123456789abcdef";

/* One valid message of every type. */
static void gen_msgs(void)
{
	Msg m = PHAUL__MSG__INIT;
	Phaul__Hello hello = PHAUL__HELLO__INIT;
	Phaul__HelloReply hr = PHAUL__HELLO_REPLY__INIT;
	Phaul__Preflight pf = PHAUL__PREFLIGHT__INIT;
	Phaul__PreflightReply pr = PHAUL__PREFLIGHT_REPLY__INIT;
	Phaul__FileBegin fb = PHAUL__FILE_BEGIN__INIT;
	Phaul__FileEnd fe = PHAUL__FILE_END__INIT;
	Phaul__Restore rs = PHAUL__RESTORE__INIT;
	Phaul__RestoreReady rr = PHAUL__RESTORE_READY__INIT;
	Phaul__Commit cm = PHAUL__COMMIT__INIT;
	Phaul__Committed cd = PHAUL__COMMITTED__INIT;
	Phaul__Abort ab = PHAUL__ABORT__INIT;
	Phaul__Outcome oc = PHAUL__OUTCOME__INIT;
	Phaul__Error er = PHAUL__ERROR__INIT;
	Phaul__PageRun pg = PHAUL__PAGE_RUN__INIT;
	Phaul__RoundEnd re = PHAUL__ROUND_END__INIT;
	char *fs[] = { "shared:/mnt/data", "shared:/srv" };
	int32_t pids[] = { 1234, 1235, 1240, 4194304 };
	uint8_t cpuinfo[64];

	memset(cpuinfo, 0x5a, sizeof(cpuinfo));

	hello.version = PHAUL_PROTO_VERSION;
	hello.host = "source-host";
	hello.has_features = 1;
	hello.features = 3;
	msg_set_hello(&m, &hello);
	save_msg("hello", &m);
	hello.has_resume = 1;
	hello.resume.data = sid;
	hello.resume.len = sizeof(sid);
	save_msg("hello-resume", &m);

	hr.version = PHAUL_PROTO_VERSION;
	hr.has_session_id = 1;
	hr.session_id.data = sid;
	hr.session_id.len = sizeof(sid);
	hr.host = "dest-host";
	msg_set_hello_reply(&m, &hr);
	save_msg("hello-reply", &m);

	pf.mode = "stop";
	pf.htype = "pid";
	pf.fs = fs;
	pf.n_fs = 2;
	pf.criu_version = 40101;
	pf.has_cpuinfo = 1;
	pf.cpuinfo.data = cpuinfo;
	pf.cpuinfo.len = sizeof(cpuinfo);
	pf.pids = pids;
	pf.n_pids = 4;
	pf.est_bytes = 123456789;
	pf.root_cmd = "counter";
	pf.has_shell_job = 1;
	pf.shell_job = 1;
	pf.has_stream = 1;
	pf.stream = 1;
	msg_set_preflight(&m, &pf);
	save_msg("preflight", &m);

	pr.ok = 0;
	pr.error = "CRIU 3.17 is older than the source's 4.1.1";
	pr.has_criu_version = 1;
	pr.criu_version = 31700;
	pr.has_free_bytes = 1;
	pr.free_bytes = 1 << 30;
	pr.has_stream = 1;
	pr.stream = 0;
	pr.stream_why = "PHAUL_STOP_STREAM=0 on the destination";
	msg_set_preflight_reply(&m, &pr);
	save_msg("preflight-reply", &m);

	fb.name = "pages-1.img";
	fb.size = 4096;
	fb.has_mode = 1;
	fb.mode = 0600;
	msg_set_file_begin(&m, &fb);
	save_msg("file-begin", &m);

	fe.xxh64 = 0x0123456789abcdefull;
	msg_set_file_end(&m, &fe);
	save_msg("file-end", &m);

	rs.has_shell_job = 1;
	rs.shell_job = 0;
	msg_set_restore(&m, &rs);
	save_msg("restore", &m);

	rr.root_pid = 1234;
	rr.restore_ms = 250;
	msg_set_restore_ready(&m, &rr);
	save_msg("restore-ready", &m);

	msg_set_commit(&m, &cm);
	save_msg("commit", &m);

	cd.root_pid = 1234;
	cd.restore_ms = 260;
	msg_set_committed(&m, &cd);
	save_msg("committed", &m);

	ab.reason = "interrupted\n\x1b[1m";
	msg_set_abort(&m, &ab);
	save_msg("abort", &m);

	oc.state = PHAUL__OUTCOME__STATE__COMMITTED;
	msg_set_outcome(&m, &oc);
	save_msg("outcome", &m);

	pg.pid = 1234;
	pg.vaddr = 0x7ffc12345000ull;
	pg.nr_pages = 16;
	msg_set_page_run(&m, &pg);
	save_msg("page-run", &m);

	pg.pid = 0; /* a shared memory object's first run */
	pg.has_shmid = 1;
	pg.shmid = 468057;
	pg.vaddr = 0x200000;
	pg.has_shm_size = 1;
	pg.shm_size = 256ull << 20;
	pg.shm_name = "/dev/zero";
	pg.has_shm_seals = 1;
	pg.shm_seals = 1; /* F_SEAL_SEAL */
	msg_set_page_run(&m, &pg);
	save_msg("page-run-shmem", &m);

	re.round = 2;
	re.pages = 4096;
	re.has_final = 1;
	re.final = 1;
	msg_set_round_end(&m, &re);
	save_msg("round-end", &m);

	er.code = ENOSPC;
	er.message = "no space left for images";
	er.step = "dst.transfer";
	msg_set_error(&m, &er);
	save_msg("error", &m);
}

/* Post-copy: the page messages, and Restore with its link timeout. */
static void gen_page_msgs(void)
{
	Msg m = PHAUL__MSG__INIT;
	Phaul__PageReq rq = PHAUL__PAGE_REQ__INIT;
	Phaul__PageData pd = PHAUL__PAGE_DATA__INIT;
	Phaul__PageDrop dr = PHAUL__PAGE_DROP__INIT;
	Phaul__PageShared sh = PHAUL__PAGE_SHARED__INIT;
	Phaul__PagesDone done = PHAUL__PAGES_DONE__INIT;
	Phaul__Restore rs = PHAUL__RESTORE__INIT;

	rq.pid = 1234;
	rq.vaddr = 0x7ffc12345000ull;
	rq.nr_pages = MSG_REQ_PAGES_MAX;
	msg_set_page_req(&m, &rq);
	save_msg("page-req", &m);

	pd.pid = 1234;
	pd.vaddr = 0x7ffc12345000ull;
	pd.nr_pages = 3;
	msg_set_page_data(&m, &pd);
	save_msg("page-data", &m);
	pd.nr_pages = 0; /* the source cannot read them */
	save_msg("page-data-none", &m);

	dr.pid = 4194304;
	dr.vaddr = 0x400000ull;
	dr.nr_pages = 1u << 20;
	msg_set_page_drop(&m, &dr);
	save_msg("page-drop", &m);

	sh.pid = 2;
	sh.vaddr = 0x7f0000000000ull;
	sh.nr_pages = 256;
	msg_set_page_shared(&m, &sh);
	save_msg("page-shared", &m);

	done.pages_remote = 1500;
	done.pages_local = 250000;
	done.pages_fault = 12;
	done.last_page_ms = 830;
	msg_set_pages_done(&m, &done);
	save_msg("pages-done", &m);

	rs.has_recover_timeout_s = 1;
	rs.recover_timeout_s = 30;
	msg_set_restore(&m, &rs);
	save_msg("restore-recover", &m);
}

/* A Preflight with its pids in packed encoding (what protobuf-c accepts). */
static void gen_packed_pids(void)
{
	struct buf pre = { 0 }, msg = { 0 };
	static const uint8_t head[] = {
		0x0a, 4,    's', 't', 'o', 'p',	 /* mode */
		0x12, 3,    'p', 'i', 'd',	 /* htype */
		0x20, 0x01,			 /* criu_version */
		0x38, 0x10,			 /* est_bytes */
		0x32, 4,    1,	 2,   3,   0x7f, /* pids, packed */
	};

	put(&pre, head, sizeof(head));
	put_byte(&msg, 0x1a);
	put_byte(&msg, pre.len);
	put(&msg, pre.b, pre.len);
	save("fuzz_msg", "preflight-packed-pids", &msg);
	free(pre.b);
	free(msg.b);
}

/* fuzz_frame: [read chunk][cap] frames... */
static void gen_frames(void)
{
	Phaul__Hello hello = PHAUL__HELLO__INIT;
	Phaul__FileEnd fe = PHAUL__FILE_END__INIT;
	Msg m = PHAUL__MSG__INIT;
	struct buf s = { 0 };
	uint8_t data[3000];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = i * 7;
	hello.version = 1;
	hello.host = "h";
	msg_set_hello(&m, &hello);

	put_byte(&s, 0);
	put_byte(&s, 0);
	put_msg_frame(&s, &m);
	save("fuzz_frame", "hello", &s);

	s.len = 0;
	put_byte(&s, 3); /* three bytes per read */
	put_byte(&s, 1); /* cap FRAME_MSG_MAX */
	put_msg_frame(&s, &m);
	put_frame(&s, FRAME_DATA, data, sizeof(data));
	put_frame(&s, FRAME_DATA, NULL, 0);
	fe.xxh64 = XXH64(data, sizeof(data), 0);
	msg_set_file_end(&m, &fe);
	put_msg_frame(&s, &m);
	save("fuzz_frame", "msg-data-empty-msg", &s);

	s.len = 0;
	put_byte(&s, 0);
	put_byte(&s, 10); /* cap 160: the data frame does not fit */
	put_frame(&s, FRAME_DATA, data, 100);
	put_frame(&s, FRAME_DATA, data, 200);
	save("fuzz_frame", "over-cap", &s);

	s.len = 0;
	put_byte(&s, 0);
	put_byte(&s, 0);
	put_frame(&s, FRAME_MSG, data, 10);
	s.b[s.len - 10 - 5] = 1; /* flags */
	save("fuzz_frame", "bad-flags", &s);
	free(s.b);
}

/* fuzz_xfer: 8-byte FileBegin header, then DATA... FileEnd. */
static void xfer_hdr(struct buf *s, uint8_t flags, uint64_t size, uint8_t budget, uint8_t chunk)
{
	put_byte(s, flags);
	for (int i = 0; i < 5; i++)
		put_byte(s, size >> (8 * i));
	put_byte(s, budget);
	put_byte(s, chunk);
}

static void xfer_body(struct buf *s, const uint8_t *data, size_t len, size_t chunk)
{
	Phaul__FileEnd fe = PHAUL__FILE_END__INIT;
	Msg m = PHAUL__MSG__INIT;

	for (size_t off = 0; off < len; off += chunk)
		put_frame(s, FRAME_DATA, data + off, MIN(chunk, len - off));
	fe.xxh64 = XXH64(data, len, 0);
	msg_set_file_end(&m, &fe);
	put_msg_frame(s, &m);
}

static void gen_xfer(void)
{
	struct buf s = { 0 };
	uint8_t data[5000];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (i * 131) ^ (i >> 3);

	xfer_hdr(&s, 0, sizeof(data), 0, 0);
	xfer_body(&s, data, sizeof(data), 2048);
	save("fuzz_xfer", "valid-3-chunks", &s);

	s.len = 0;
	xfer_hdr(&s, 1 | 8, 100, 1, 7); /* budget exactly size, 7-byte reads */
	xfer_body(&s, data, 100, 100);
	save("fuzz_xfer", "valid-one-chunk", &s);

	s.len = 0;
	xfer_hdr(&s, 2, 0, 0, 0);
	xfer_body(&s, data, 0, 1);
	save("fuzz_xfer", "valid-empty", &s);

	s.len = 0;
	xfer_hdr(&s, 3 | 4, 100, 0, 0); /* the file exists already */
	xfer_body(&s, data, 100, 50);
	save("fuzz_xfer", "exists", &s);

	s.len = 0;
	xfer_hdr(&s, 0, 100, 2, 0); /* budget one byte short */
	xfer_body(&s, data, 100, 50);
	save("fuzz_xfer", "over-budget", &s);

	s.len = 0;
	xfer_hdr(&s, 0, 300, 0, 0);
	xfer_body(&s, data, 300, 100);
	s.b[8 + 8 + 10] ^= 1; /* corrupted byte */
	save("fuzz_xfer", "corrupted", &s);
	free(s.b);
}

static void save_text(const char *name, const char *text)
{
	struct buf s = { (uint8_t *)text, strlen(text), 0 };

	save("fuzz_key", name, &s);
}

static void gen_keys(void)
{
	save_text(
		"valid-newline",
		"phaul-psk-v1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
	save_text("valid-upper",
		  "phaul-psk-v1 00112233445566778899AABBCCDDEEFF00112233445566778899AaBbCcDdEeFf");
	save_text("short",
		  "phaul-psk-v1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeF\n");
	save_text(
		"trailing",
		"phaul-psk-v1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\n");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	gen_msgs();
	gen_page_msgs();
	gen_packed_pids();
	gen_frames();
	gen_xfer();
	gen_keys();
	return 0;
}
