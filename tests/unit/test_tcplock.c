/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for criu/tcplock: what a CRIU dump locked, read from
 * hand-built inventory.img and files.img (the nftables table's name cut
 * as CRIU cuts it, only TCP sockets with a peer, IPv4-mapped peers as
 * IPv4, malformed images refused), and the iptables commands that remove
 * each rule, which must match the rule CRIU inserted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "criu-image.pb-c.h"
#include "criu/imgfile.h"
#include "criu/tcplock.h"

#define RUN_ID "e2f7c1a4-5b6d-4e8f-9a0b-1c2d3e4f5a6b"

struct img {
	uint8_t b[8192];
	size_t len;
};

static void put_u32(struct img *s, uint32_t v)
{
	memcpy(s->b + s->len, &v, 4);
	s->len += 4;
}

static void put_msg(struct img *s, const ProtobufCMessage *m)
{
	uint32_t n = protobuf_c_message_get_packed_size(m);

	assert_true(s->len + 4 + n <= sizeof(s->b));
	put_u32(s, n);
	protobuf_c_message_pack(m, s->b + s->len);
	s->len += n;
}

static void inventory(struct img *s, int method, const char *run_id, bool tcp_close)
{
	Cimg__InventoryEntry ie = CIMG__INVENTORY_ENTRY__INIT;

	ie.img_version = 2;
	ie.has_network_lock_method = method >= 0;
	ie.network_lock_method = method;
	ie.dump_criu_run_id = (char *)run_id;
	ie.has_tcp_close = tcp_close;
	ie.tcp_close = tcp_close;
	s->len = 0;
	put_u32(s, CRIU_INVENTORY_MAGIC);
	put_msg(s, &ie.base);
}

static void files_begin(struct img *s)
{
	s->len = 0;
	put_u32(s, CRIU_IMG_COMMON_MAGIC);
	put_u32(s, CRIU_FILES_MAGIC);
}

/* a socket file; @src, @dst: 1 word (v4) or 4 (v6), network order */
static void add_sk(struct img *s, uint32_t family, uint32_t proto, const uint32_t *src,
		   const uint32_t *dst, size_t n, uint32_t sport, uint32_t dport)
{
	Cimg__FileEntry fe = CIMG__FILE_ENTRY__INIT;
	Cimg__InetSkEntry sk = CIMG__INET_SK_ENTRY__INIT;

	sk.family = family;
	sk.proto = proto;
	sk.type = proto == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
	sk.src_port = sport;
	sk.dst_port = dport;
	sk.n_src_addr = sk.n_dst_addr = n;
	sk.src_addr = (uint32_t *)src;
	sk.dst_addr = (uint32_t *)dst;
	fe.type = 4;
	fe.id = s->len;
	fe.isk = &sk;
	put_msg(s, &fe.base);
}

static void add_reg(struct img *s)
{
	Cimg__FileEntry fe = CIMG__FILE_ENTRY__INIT;

	fe.type = 1;
	fe.id = 99;
	put_msg(s, &fe.base);
}

static uint32_t v4(const char *a)
{
	struct in_addr in;

	assert_int_equal(inet_pton(AF_INET, a, &in), 1);
	return in.s_addr;
}

static void v6(const char *a, uint32_t w[4])
{
	assert_int_equal(inet_pton(AF_INET6, a, w), 1);
}

static void test_inventory(void **state)
{
	struct tcplock l = { 0 };
	struct img s;

	(void)state;
	inventory(&s, TCPLOCK_NFTABLES, RUN_ID, false);
	assert_int_equal(tcplock_parse_inventory(s.b, s.len, &l), 0);
	assert_int_equal(l.method, TCPLOCK_NFTABLES);
	assert_false(l.tcp_close);
	/* "inet CRIU-<id>" in CRIU's 32 bytes: 21 characters of the id */
	assert_string_equal(l.table, "CRIU-e2f7c1a4-5b6d-4e8f-9a");

	inventory(&s, -1, NULL, true); /* old images: iptables, no run id */
	assert_int_equal(tcplock_parse_inventory(s.b, s.len, &l), 0);
	assert_int_equal(l.method, TCPLOCK_IPTABLES);
	assert_true(l.tcp_close);
	assert_string_equal(l.table, "");
}

static void test_inventory_bad(void **state)
{
	struct tcplock l = { 0 };
	struct img s;

	(void)state;
	inventory(&s, 3, RUN_ID, false); /* no such method */
	assert_int_equal(tcplock_parse_inventory(s.b, s.len, &l), -EINVAL);
	inventory(&s, TCPLOCK_NFTABLES, RUN_ID, false);
	assert_int_equal(tcplock_parse_inventory(s.b, s.len - 1, &l), -EINVAL);
	assert_int_equal(tcplock_parse_inventory(s.b, 3, &l), -EINVAL);
	s.b[0] ^= 1;
	assert_int_equal(tcplock_parse_inventory(s.b, s.len, &l), -EINVAL);
}

static void test_files(void **state)
{
	struct tcplock l = { 0 };
	uint32_t a = v4("10.0.0.1"), b = v4("10.0.0.2"), s6[4], d6[4], m6[4], n6[4];
	struct img s;

	(void)state;
	v6("2001:db8::1", s6);
	v6("2001:db8::2", d6);
	v6("::ffff:192.0.2.1", m6);
	v6("::ffff:192.0.2.9", n6);
	files_begin(&s);
	add_reg(&s);
	add_sk(&s, AF_INET, IPPROTO_TCP, &a, &b, 1, 40000, 80);	  /* locked */
	add_sk(&s, AF_INET, IPPROTO_TCP, &a, &b, 1, 8080, 0);	  /* listening */
	add_sk(&s, AF_INET, IPPROTO_UDP, &a, &b, 1, 5353, 53);	  /* not TCP */
	add_sk(&s, AF_INET6, IPPROTO_TCP, s6, d6, 4, 41000, 443); /* locked */
	add_sk(&s, AF_INET6, IPPROTO_TCP, m6, n6, 4, 42000, 22);  /* mapped */
	assert_int_equal(tcplock_parse_files(s.b, s.len, &l), 0);
	assert_int_equal(l.nr, 3);
	assert_int_equal(l.c[0].family, AF_INET);
	assert_memory_equal(l.c[0].src, &a, 4);
	assert_memory_equal(l.c[0].dst, &b, 4);
	assert_int_equal(l.c[0].sport, 40000);
	assert_int_equal(l.c[0].dport, 80);
	assert_int_equal(l.c[1].family, AF_INET6);
	assert_memory_equal(l.c[1].src, s6, 16);
	assert_memory_equal(l.c[1].dst, d6, 16);
	assert_int_equal(l.c[2].family, AF_INET);
	assert_memory_equal(l.c[2].src, &m6[3], 4);
	assert_memory_equal(l.c[2].dst, &n6[3], 4);
	tcplock_free(&l);
}

static void test_files_bad(void **state)
{
	struct tcplock l = { 0 };
	uint32_t a = v4("10.0.0.1"), w[4] = { 0 };
	struct img s;

	(void)state;
	files_begin(&s); /* an IPv6 connection with one address word */
	add_sk(&s, AF_INET6, IPPROTO_TCP, &a, &a, 1, 1, 2);
	assert_int_equal(tcplock_parse_files(s.b, s.len, &l), -EINVAL);
	tcplock_free(&l);
	files_begin(&s); /* a port that is not one */
	add_sk(&s, AF_INET, IPPROTO_TCP, &a, &a, 1, 70000, 2);
	assert_int_equal(tcplock_parse_files(s.b, s.len, &l), -EINVAL);
	tcplock_free(&l);
	files_begin(&s); /* no family CRIU locks */
	add_sk(&s, AF_UNIX, IPPROTO_TCP, w, w, 4, 1, 2);
	assert_int_equal(tcplock_parse_files(s.b, s.len, &l), -EINVAL);
	tcplock_free(&l);
	files_begin(&s); /* a record cut short */
	add_sk(&s, AF_INET, IPPROTO_TCP, &a, &a, 1, 1, 2);
	assert_int_equal(tcplock_parse_files(s.b, s.len - 1, &l), -EINVAL);
	tcplock_free(&l);
	files_begin(&s); /* an empty files.img: nothing locked */
	assert_int_equal(tcplock_parse_files(s.b, s.len, &l), 0);
	assert_int_equal(l.nr, 0);
	s.b[4] ^= 1; /* another image */
	assert_int_equal(tcplock_parse_files(s.b, s.len, &l), -EINVAL);
}

static void joined(const struct tcp_conn *c, bool input, char *out, size_t len)
{
	struct tcplock_argbuf b;
	char *argv[TCPLOCK_ARGV];

	assert_int_equal(tcplock_iptables_argv(c, input, &b, argv), 0);
	out[0] = '\0';
	for (size_t i = 0; argv[i]; i++) {
		assert_true(i < TCPLOCK_ARGV - 1);
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", argv[i]);
	}
}

#define RULE " --protocol tcp -m mark ! --mark 0xc114 --source "

/* The rules CRIU inserts (IPTABLES_CONN_CMD with "-I"): deleted with "-D". */
static void test_iptables_argv(void **state)
{
	static const struct {
		int family;
		const char *src, *dst;
		bool input;
		const char *cmd;
	} cases[] = {
		{ AF_INET, "10.0.0.1", "10.0.0.2", true,
		  "iptables -w -t filter -D INPUT" RULE "10.0.0.2 --sport 80 "
		  "--destination 10.0.0.1 --dport 40000 -j DROP" },
		{ AF_INET, "10.0.0.1", "10.0.0.2", false,
		  "iptables -w -t filter -D OUTPUT" RULE "10.0.0.1 --sport 40000 "
		  "--destination 10.0.0.2 --dport 80 -j DROP" },
		{ AF_INET6, "::1", "2001:db8::2", true,
		  "ip6tables -w -t filter -D INPUT" RULE "2001:db8::2 --sport 80 "
		  "--destination ::1 --dport 40000 -j DROP" },
	};
	struct tcp_conn c = { .sport = 40000, .dport = 80 };
	struct tcplock_argbuf b;
	char *argv[TCPLOCK_ARGV];
	char s[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c.family = cases[i].family;
		assert_int_equal(inet_pton(c.family, cases[i].src, c.src), 1);
		assert_int_equal(inet_pton(c.family, cases[i].dst, c.dst), 1);
		joined(&c, cases[i].input, s, sizeof(s));
		assert_string_equal(s, cases[i].cmd);
	}
	c.family = AF_UNIX;
	assert_int_equal(tcplock_iptables_argv(&c, true, &b, argv), -EINVAL);
}

/* tcplock_read: both images from a directory; a missing one is an error. */
static void test_read(void **state)
{
	char dir[] = "/tmp/test_tcplock.XXXXXX";
	struct tcplock l;
	uint32_t a = v4("127.0.0.1");
	struct img s;
	int dfd, fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	inventory(&s, TCPLOCK_IPTABLES, RUN_ID, false);
	fd = openat(dfd, "inventory.img", O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write_full(fd, s.b, s.len), 0);
	close(fd);
	assert_int_equal(tcplock_read(dfd, &l), -ENOENT);
	assert_null(l.c);
	files_begin(&s);
	add_sk(&s, AF_INET, IPPROTO_TCP, &a, &a, 1, 1000, 2000);
	fd = openat(dfd, "files.img", O_WRONLY | O_CREAT, 0600);
	assert_int_equal(write_full(fd, s.b, s.len), 0);
	close(fd);
	assert_int_equal(tcplock_read(dfd, &l), 0);
	assert_int_equal(l.method, TCPLOCK_IPTABLES);
	assert_int_equal(l.nr, 1);
	assert_int_equal(l.c[0].sport, 1000);
	tcplock_free(&l);
	unlinkat(dfd, "inventory.img", 0);
	unlinkat(dfd, "files.img", 0);
	close(dfd);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inventory),     cmocka_unit_test(test_inventory_bad),
		cmocka_unit_test(test_files),	      cmocka_unit_test(test_files_bad),
		cmocka_unit_test(test_iptables_argv), cmocka_unit_test(test_read),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
