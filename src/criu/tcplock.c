/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "tcplock: "
#include "criu/tcplock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"
#include "criu/imgfile.h"
#include "criu-image.pb-c.h"

#define INVENTORY_MAX (64u << 10)
#define FILES_MAX (256u << 20)
#define RECORD_MAX (1u << 20)
#define FD_TYPE_INETSK 4
#define SOCCR_MARK "0xc114"

int tcplock_parse_inventory(const uint8_t *buf, size_t len, struct tcplock *l)
{
	Cimg__InventoryEntry *ie;
	const uint8_t *rec;
	uint32_t rlen;
	size_t off = 4;
	int r = 0;

	if (len < 4 || img_u32(buf) != CRIU_INVENTORY_MAGIC ||
	    img_next_record(buf, len, &off, &rec, &rlen, INVENTORY_MAX) <= 0)
		return -EINVAL;
	ie = cimg__inventory_entry__unpack(NULL, rlen, rec);
	if (!ie)
		return -EINVAL;
	l->method = ie->has_network_lock_method ? ie->network_lock_method : TCPLOCK_IPTABLES;
	l->tcp_close = ie->has_tcp_close && ie->tcp_close;
	if (l->method > TCPLOCK_SKIP)
		r = -EINVAL;
	l->table[0] = '\0';
	if (r == 0 && ie->dump_criu_run_id && ie->dump_criu_run_id[0]) {
		char t[sizeof(l->table) + 5];

		/* CRIU writes "inet CRIU-<id>" into 32 bytes (nftables_get_table) */
		snprintf(t, 32, "inet CRIU-%s", ie->dump_criu_run_id);
		snprintf(l->table, sizeof(l->table), "%s", t + 5);
	}
	cimg__inventory_entry__free_unpacked(ie, NULL);
	return r;
}

/* @words as CRIU stores an address: network-order u32s, 1 (v4) or 4 (v6). */
static int get_addr(int family, const uint32_t *words, size_t n, uint8_t out[16])
{
	if ((family == AF_INET && n < 1) || (family == AF_INET6 && n != 4))
		return -EINVAL;
	memset(out, 0, 16);
	memcpy(out, words, family == AF_INET ? 4 : 16);
	return 0;
}

static int add_conn(struct tcplock *l, const Cimg__InetSkEntry *sk)
{
	struct tcp_conn c = { .family = (int)sk->family };
	struct tcp_conn *n;

	if (sk->family != AF_INET && sk->family != AF_INET6)
		return -EINVAL;
	if (sk->src_port > 65535 || sk->dst_port > 65535 ||
	    get_addr(c.family, sk->src_addr, sk->n_src_addr, c.src) < 0 ||
	    get_addr(c.family, sk->dst_addr, sk->n_dst_addr, c.dst) < 0)
		return -EINVAL;
	/* an IPv4-mapped peer is locked with iptables, as CRIU does */
	if (c.family == AF_INET6 && sk->dst_addr[2] == htonl(0xffff)) {
		c.family = AF_INET;
		memmove(c.src, c.src + 12, 4);
		memmove(c.dst, c.dst + 12, 4);
		memset(c.src + 4, 0, 12);
		memset(c.dst + 4, 0, 12);
	}
	c.sport = sk->src_port;
	c.dport = sk->dst_port;
	if (l->nr >= TCPLOCK_MAX_CONNS)
		return -E2BIG;
	n = realloc(l->c, (l->nr + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	l->c = n;
	l->c[l->nr++] = c;
	return 0;
}

int tcplock_parse_files(const uint8_t *buf, size_t len, struct tcplock *l)
{
	const uint8_t *rec;
	uint32_t rlen;
	size_t off = 8;
	int r;

	if (!img_has_magic(buf, len, CRIU_FILES_MAGIC))
		return -EINVAL;
	while ((r = img_next_record(buf, len, &off, &rec, &rlen, RECORD_MAX)) > 0) {
		Cimg__FileEntry *fe = cimg__file_entry__unpack(NULL, rlen, rec);
		const Cimg__InetSkEntry *sk;

		if (!fe)
			return -EINVAL;
		sk = fe->type == FD_TYPE_INETSK ? fe->isk : NULL;
		r = 0;
		if (sk && sk->proto == IPPROTO_TCP && sk->dst_port)
			r = add_conn(l, sk);
		cimg__file_entry__free_unpacked(fe, NULL);
		if (r < 0)
			return r;
	}
	return r;
}

static int parse_image(int imgfd, const char *name, size_t max, struct tcplock *l,
		       int (*parse)(const uint8_t *, size_t, struct tcplock *))
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	int r = img_read_file(imgfd, name, max, &buf, &len);

	if (r < 0) {
		pr_err("cannot read %s: %s", name, strerror(-r));
		return r;
	}
	r = parse(buf, len, l);
	if (r < 0)
		pr_err("%s: not a CRIU image as expected: %s", name, strerror(-r));
	return r;
}

int tcplock_read(int imgfd, struct tcplock *l)
{
	int r;

	memset(l, 0, sizeof(*l));
	r = parse_image(imgfd, "inventory.img", INVENTORY_MAX, l, tcplock_parse_inventory);
	if (r == 0)
		r = parse_image(imgfd, "files.img", FILES_MAX, l, tcplock_parse_files);
	if (r < 0)
		tcplock_free(l);
	return r;
}

/* CRIU's IPTABLES_CONN_CMD (criu/netfilter.c), its "-I" made "-D" */
int tcplock_iptables_argv(const struct tcp_conn *c, bool input, struct tcplock_argbuf *b,
			  char *argv[TCPLOCK_ARGV])
{
	const uint8_t *from = input ? c->dst : c->src, *to = input ? c->src : c->dst;
	size_t i = 0;

	if ((c->family != AF_INET && c->family != AF_INET6) ||
	    !inet_ntop(c->family, from, b->src, sizeof(b->src)) ||
	    !inet_ntop(c->family, to, b->dst, sizeof(b->dst)))
		return -EINVAL;
	snprintf(b->sport, sizeof(b->sport), "%u", input ? c->dport : c->sport);
	snprintf(b->dport, sizeof(b->dport), "%u", input ? c->sport : c->dport);
	argv[i++] = c->family == AF_INET ? "iptables" : "ip6tables";
	argv[i++] = "-w";
	argv[i++] = "-t";
	argv[i++] = "filter";
	argv[i++] = "-D";
	argv[i++] = input ? "INPUT" : "OUTPUT";
	argv[i++] = "--protocol";
	argv[i++] = "tcp";
	argv[i++] = "-m";
	argv[i++] = "mark";
	argv[i++] = "!";
	argv[i++] = "--mark";
	argv[i++] = SOCCR_MARK;
	argv[i++] = "--source";
	argv[i++] = b->src;
	argv[i++] = "--sport";
	argv[i++] = b->sport;
	argv[i++] = "--destination";
	argv[i++] = b->dst;
	argv[i++] = "--dport";
	argv[i++] = b->dport;
	argv[i++] = "-j";
	argv[i++] = "DROP";
	argv[i] = NULL;
	return 0;
}

static int run_logged(char *argv[], const char *what)
{
	int r = run_cmd(argv);

	if (r != 0)
		pr_warn("%s: %s failed (exit %d)", what, argv[0], r);
	return r != 0;
}

static int remove_rules(const struct tcplock *l)
{
	int failed = 0;

	for (size_t i = 0; i < l->nr; i++) {
		for (int input = 1; input >= 0; input--) {
			struct tcplock_argbuf b;
			char *argv[TCPLOCK_ARGV];

			if (tcplock_iptables_argv(&l->c[i], input, &b, argv) < 0)
				failed++;
			else
				failed += run_logged(argv, input ? "INPUT rule" : "OUTPUT rule");
		}
	}
	if (l->nr)
		pr_info("removed the dump's iptables rules of %zu connections (%d failed)", l->nr,
			failed);
	return failed ? -EIO : 0;
}

int tcplock_remove(const struct tcplock *l)
{
	char *argv[] = { "nft", "delete", "table", "inet", (char *)l->table, NULL };

	switch (l->method) {
	case TCPLOCK_IPTABLES: return l->tcp_close ? 0 : remove_rules(l);
	case TCPLOCK_NFTABLES:
		if (!l->table[0]) {
			pr_warn("the dump's run id is not in its images: its nftables table is left");
			return -ENOENT;
		}
		if (run_logged(argv, l->table))
			return -EIO;
		pr_info("removed the dump's table inet %s (%zu connections)", l->table, l->nr);
		return 0;
	default: return 0;
	}
}

void tcplock_free(struct tcplock *l)
{
	free(l->c);
	memset(l, 0, sizeof(*l));
}
