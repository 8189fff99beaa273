/* SPDX-License-Identifier: MIT */
/*
 * tls: the authenticated, encrypted channel between the hosts. TLS 1.3
 * (GnuTLS) with the pre-shared key from the key file, ECDHE for forward
 * secrecy; no certificates. A peer without the key fails the handshake:
 * both sides return -EACCES and log "wrong key".
 *
 * TCP keepalive and TCP_USER_TIMEOUT (30 s) bound how long a dead link
 * can hold a blocked read or write.
 */
#ifndef PHAUL_TLS_H
#define PHAUL_TLS_H

#include "proto/conn.h"
#include "proto/key.h"

/* Connect to "ADDR:PORT" and run the client handshake. */
int tls_connect(const char *hostport, const struct psk_key *key, int timeout_ms, struct conn **ret);
/* Bind and listen on "ADDR:PORT"; returns the listening fd. */
int tls_listen(const char *hostport, int *ret_fd);
/* Run the server handshake on an accepted socket (taken over). */
int tls_accept(int fd, const struct psk_key *key, int timeout_ms, struct conn **ret);

/*
 * Once @fd (a pipe's read end) becomes readable or hangs up, the next
 * wait for data on this process's TLS connections (handshake or read)
 * fails with -ECANCELED, once; later calls work as before. -1 disarms.
 * The daemon closes the pipe's write end at SIGTERM.
 */
void tls_set_cancel_fd(int fd);
/* The fd set by tls_set_cancel_fd() (-1: none, or fired already). */
int tls_get_cancel_fd(void);

#endif
