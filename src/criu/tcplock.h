/* SPDX-License-Identifier: MIT */
/*
 * tcplock: the per-connection TCP lock a CRIU dump leaves on its host.
 *
 * Dumping a tree with established TCP connections and no network
 * namespace of its own, CRIU locks each connection in the host's
 * netfilter: with iptables, a DROP rule for packets without CRIU's mark
 * (0xc114) in INPUT and one in OUTPUT per socket; with nftables, the
 * elements of the table "inet CRIU-<the dump's run id>" (the name cut to
 * 31 characters, as CRIU cuts it). When the dump kills the tree CRIU
 * leaves the lock for a restore on the same host to remove; after a
 * migration no restore runs there. tcplock_read() finds what this dump
 * locked from its images (inventory.img: the method and the run id;
 * files.img: the TCP sockets that have a peer), tcplock_remove() removes
 * exactly that, with the commands CRIU's own unlock would run: `nft
 * delete table` or `iptables -D` of each rule. With nftables the dump
 * makes its table even when it locks no connection (CRIU's
 * network_lock()), so the table goes whatever the images hold.
 */
#ifndef PHAUL_TCPLOCK_H
#define PHAUL_TCPLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRIU_INVENTORY_MAGIC 0x58313116u
#define CRIU_FILES_MAGIC 0x56303138u
#define TCPLOCK_MAX_CONNS 65536

/* CRIU's enum NETWORK_LOCK_METHOD, as inventory.img stores it */
enum tcplock_method { TCPLOCK_IPTABLES = 0, TCPLOCK_NFTABLES = 1, TCPLOCK_SKIP = 2 };

struct tcp_conn {
	int family;		  /* AF_INET or AF_INET6 (a mapped v4 is AF_INET) */
	uint8_t src[16], dst[16]; /* the socket's own address, its peer's */
	uint16_t sport, dport;
};

struct tcplock {
	enum tcplock_method method;
	bool tcp_close; /* dumped with --tcp-close: no connection locked */
	char table[32]; /* nftables: "CRIU-..." (family inet), "" if unknown */
	struct tcp_conn *c;
	size_t nr;
};

/* inventory.img: the lock method (iptables when absent) and table name. */
int tcplock_parse_inventory(const uint8_t *buf, size_t len, struct tcplock *l);
/* files.img: append every TCP socket with a peer (dst_port != 0). */
int tcplock_parse_files(const uint8_t *buf, size_t len, struct tcplock *l);
/* Both, from the image directory @imgfd. */
int tcplock_read(int imgfd, struct tcplock *l);
/*
 * The iptables command that removes one of @c's two rules (@input: the
 * INPUT one, packets from the peer; else OUTPUT), into @argv (at least
 * TCPLOCK_ARGV entries) with its strings in @buf. 0 or -EINVAL.
 */
#define TCPLOCK_ARGV 24
struct tcplock_argbuf {
	char src[64], dst[64], sport[8], dport[8];
};
int tcplock_iptables_argv(const struct tcp_conn *c, bool input, struct tcplock_argbuf *buf,
			  char *argv[TCPLOCK_ARGV]);
/*
 * Remove the lock @l describes from this host's netfilter: every command
 * is tried, each failure logged; -EIO if one failed.
 */
int tcplock_remove(const struct tcplock *l);
void tcplock_free(struct tcplock *l);

#endif
