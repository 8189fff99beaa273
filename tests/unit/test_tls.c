/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for proto/tls.c over loopback TCP: the handshake with the
 * same and with a wrong key, data both ways, and the errors a reader gets
 * from a silent peer, a forged record and a peer that closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

#include "proto/conn.h"
#include "proto/tls.h"

struct client {
	char hostport[64];
	struct psk_key key;
	struct conn *conn;
	int r;
};

static void *client_main(void *arg)
{
	struct client *c = arg;

	c->r = tls_connect(c->hostport, &c->key, 5000, &c->conn);
	return NULL;
}

/* A client with @ckey connected to a server with @skey; returns accept's result. */
static int connect_pair(const struct psk_key *ckey, const struct psk_key *skey, struct client *cli,
			struct conn **srv)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	pthread_t th;
	int lfd, fd, r;

	/* a port the kernel picks (tls_listen wants one named) */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	memset(cli, 0, sizeof(*cli));
	snprintf(cli->hostport, sizeof(cli->hostport), "127.0.0.1:%u", ntohs(sa.sin_port));
	assert_int_equal(tls_listen(cli->hostport, &lfd), 0);
	cli->key = *ckey;
	assert_int_equal(pthread_create(&th, NULL, client_main, cli), 0);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	r = tls_accept(fd, skey, 5000, srv);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(lfd);
	return r;
}

static void key_of(struct psk_key *k, uint8_t fill)
{
	memset(k->bytes, fill, sizeof(k->bytes));
}

static void test_roundtrip(void **state)
{
	struct psk_key k;
	struct client cli;
	struct conn *srv = NULL;
	uint8_t out[65536], in[sizeof(out)];

	(void)state;
	key_of(&k, 0x5a);
	assert_int_equal(connect_pair(&k, &k, &cli, &srv), 0);
	assert_int_equal(cli.r, 0);
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(conn_write(cli.conn, out, sizeof(out)), 0);
	assert_int_equal(conn_read(srv, in, sizeof(in)), 0);
	assert_memory_equal(in, out, sizeof(out));
	assert_int_equal(conn_write(srv, "ok", 2), 0);
	assert_int_equal(conn_read(cli.conn, in, 2), 0);
	assert_memory_equal(in, "ok", 2);
	conn_free(cli.conn);
	conn_free(srv);
}

static void test_wrong_key(void **state)
{
	struct psk_key a, b;
	struct client cli;
	struct conn *srv = NULL;

	(void)state;
	key_of(&a, 1);
	key_of(&b, 2);
	assert_int_equal(connect_pair(&a, &b, &cli, &srv), -EACCES);
	assert_int_equal(cli.r, -EACCES);
	assert_null(srv);
	assert_null(cli.conn);
}

/* nothing comes within the read timeout */
static void test_timeout(void **state)
{
	struct psk_key k;
	struct client cli;
	struct conn *srv = NULL;
	uint8_t b;

	(void)state;
	key_of(&k, 3);
	assert_int_equal(connect_pair(&k, &k, &cli, &srv), 0);
	assert_int_equal(conn_set_timeout(srv, 100), 0);
	assert_int_equal(conn_read(srv, &b, 1), -ETIMEDOUT);
	conn_free(cli.conn);
	conn_free(srv);
}

/*
 * Bytes written into the TCP stream by someone without the session's
 * keys: a TLS 1.3 application-data record that cannot decrypt. The
 * reader is told the data is corrupt (not "wrong key", which is the
 * handshake's).
 */
static void test_forged_record(void **state)
{
	struct psk_key k;
	struct client cli;
	struct conn *srv = NULL;
	uint8_t rec[5 + 48] = { 0x17, 0x03, 0x03, 0x00, 48 }, b;
	bool buffered;
	int fd;

	(void)state;
	key_of(&k, 4);
	assert_int_equal(connect_pair(&k, &k, &cli, &srv), 0);
	for (size_t i = 5; i < sizeof(rec); i++)
		rec[i] = (uint8_t)(i * 13);
	fd = conn_poll_fd(cli.conn, &buffered);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, rec, sizeof(rec)), (ssize_t)sizeof(rec));
	assert_int_equal(conn_set_timeout(srv, 2000), 0);
	assert_int_equal(conn_read(srv, &b, 1), -EBADMSG);
	conn_free(cli.conn);
	conn_free(srv);
}

/* the peer's end is gone: a read says so, a write fails with the socket's errno */
static void test_peer_gone(void **state)
{
	struct psk_key k;
	struct client cli;
	struct conn *srv = NULL;
	uint8_t buf[4096] = { 0 };
	int r = 0;

	(void)state;
	key_of(&k, 5);
	assert_int_equal(connect_pair(&k, &k, &cli, &srv), 0);
	conn_free(cli.conn);
	assert_int_equal(conn_set_timeout(srv, 2000), 0);
	assert_int_equal(conn_read(srv, buf, 1), -EPIPE);
	/* the first write may still be taken by the kernel; the RST ends it */
	for (int i = 0; i < 100 && r == 0; i++)
		r = conn_write(srv, buf, sizeof(buf));
	assert_true(r == -EPIPE || r == -ECONNRESET);
	conn_free(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_timeout),	  cmocka_unit_test(test_forged_record),
		cmocka_unit_test(test_peer_gone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
