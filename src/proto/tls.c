/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "tls: "
#include "proto/tls.h"

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/log.h"
#include "common/util.h"

#define PSK_IDENTITY "phaul"
#define TLS_PRIORITY                                                    \
	"SECURE128:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK:" \
	"-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
#define TCP_USER_TIMEOUT_MS 30000

struct tls_priv {
	int fd;
	int io_errno; /* the transport's last errno (custom push/pull) */
	gnutls_session_t session;
	gnutls_psk_client_credentials_t ccred;
	gnutls_psk_server_credentials_t scred;
	struct psk_key key;
};

/* tls_set_cancel_fd(): one per process (a session process has one conn) */
static int cancel_fd = -1;
static bool cancel_fired;

void tls_set_cancel_fd(int fd)
{
	cancel_fd = fd;
	cancel_fired = false;
}

int tls_get_cancel_fd(void)
{
	return cancel_fd;
}

/* One-shot: report a fired cancel once, as -ECANCELED. */
static bool take_cancel(void)
{
	bool fired = cancel_fired;

	cancel_fired = false;
	return fired;
}

/*
 * GnuTLS waits for data here. The cancel fd wins over data: a session
 * streaming images must notice a shutdown too. It interrupts the wait
 * the way a signal would (EINTR: the session stays usable, e.g. to send
 * an Error), and only once.
 */
static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct pollfd p[2] = {
		{ .fd = ((struct tls_priv *)ptr)->fd, .events = POLLIN },
		{ .fd = cancel_fd, .events = POLLIN },
	};
	int r = poll(p, cancel_fd >= 0 ? 2 : 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);

	if (r > 0 && cancel_fd >= 0 && p[1].revents) {
		cancel_fd = -1;
		cancel_fired = true;
		errno = EINTR;
		return -1;
	}
	return r;
}

/*
 * The socket's own calls: GnuTLS reports their failure as PUSH/PULL_ERROR,
 * and the errno (ETIMEDOUT of a dead link, ECONNRESET, EPIPE) is kept here
 * to say which.
 */
static ssize_t push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	struct tls_priv *t = ptr;
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = iovcnt };
	ssize_t n = sendmsg(t->fd, &msg, MSG_NOSIGNAL);

	if (n < 0) {
		t->io_errno = errno;
		gnutls_transport_set_errno(t->session, errno);
	}
	return n;
}

static ssize_t pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct tls_priv *t = ptr;
	ssize_t n = recv(t->fd, buf, len, 0);

	if (n < 0) {
		t->io_errno = errno;
		gnutls_transport_set_errno(t->session, errno);
	}
	return n;
}

/* After the handshake (which says "wrong key" itself). */
static int gnutls_to_errno(const struct tls_priv *t, int r)
{
	switch (r) {
	case GNUTLS_E_AGAIN:
	case GNUTLS_E_TIMEDOUT: return -ETIMEDOUT;
	case GNUTLS_E_PUSH_ERROR:
	case GNUTLS_E_PULL_ERROR: return t->io_errno > 0 ? -t->io_errno : -ECONNRESET;
	case GNUTLS_E_PREMATURE_TERMINATION: return -ECONNRESET;
	case GNUTLS_E_DECRYPTION_FAILED:
		/* a record that fails its integrity check: forged or corrupted */
		return -EBADMSG;
	case GNUTLS_E_INSUFFICIENT_CREDENTIALS:
	case GNUTLS_E_KEYFILE_ERROR: return -EACCES;
	default: return -EIO;
	}
}

static ssize_t tls_read(void *priv, void *buf, size_t len)
{
	struct tls_priv *t = priv;
	ssize_t n;

	do
		n = gnutls_record_recv(t->session, buf, len);
	while (n == GNUTLS_E_INTERRUPTED && !cancel_fired);
	if (n >= 0)
		return n;
	if (take_cancel())
		return -ECANCELED;
	if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_TIMEDOUT)
		pr_debug("receive failed: %s", gnutls_strerror(n));
	return gnutls_to_errno(t, n);
}

static ssize_t tls_write(void *priv, const void *buf, size_t len)
{
	struct tls_priv *t = priv;
	ssize_t n;

	do
		n = gnutls_record_send(t->session, buf, len);
	while (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN);
	if (n >= 0)
		return n;
	pr_debug("send failed: %s", gnutls_strerror(n));
	return gnutls_to_errno(t, n);
}

static int tls_set_timeout(void *priv, int timeout_ms)
{
	struct tls_priv *t = priv;

	gnutls_record_set_timeout(t->session, timeout_ms > 0 ? (unsigned)timeout_ms :
							       GNUTLS_INDEFINITE_TIMEOUT);
	return 0;
}

static int tls_poll_fd(void *priv, bool *buffered)
{
	struct tls_priv *t = priv;

	*buffered = gnutls_record_check_pending(t->session) > 0;
	return t->fd;
}

static int tls_set_link_timeout(void *priv, int timeout_ms)
{
	struct tls_priv *t = priv;
	unsigned int uto = timeout_ms > 0 ? (unsigned)timeout_ms : TCP_USER_TIMEOUT_MS;

	if (setsockopt(t->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto)) < 0)
		return -errno;
	return 0;
}

static void tls_abort(void *priv)
{
	shutdown(((struct tls_priv *)priv)->fd, SHUT_RDWR);
}

static void tls_close(void *priv)
{
	struct tls_priv *t = priv;

	if (t->session) {
		gnutls_bye(t->session, GNUTLS_SHUT_WR);
		gnutls_deinit(t->session);
	}
	if (t->ccred)
		gnutls_psk_free_client_credentials(t->ccred);
	if (t->scred)
		gnutls_psk_free_server_credentials(t->scred);
	if (t->fd >= 0)
		close(t->fd);
	explicit_bzero(&t->key, sizeof(t->key));
	free(t);
}

static const struct conn_ops tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.set_timeout = tls_set_timeout,
	.close = tls_close,
	.poll_fd = tls_poll_fd,
	.set_link_timeout = tls_set_link_timeout,
	.abort = tls_abort,
};

static void tune_socket(int fd)
{
	int one = 1, idle = 5, intvl = 2, cnt = 5, uto = TCP_USER_TIMEOUT_MS;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int server_psk_cb(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
	struct tls_priv *t = gnutls_session_get_ptr(s);

	if (strcmp(user, PSK_IDENTITY)) {
		pr_warn("peer sent unknown PSK identity");
		return -1;
	}
	key->data = gnutls_malloc(PHAUL_KEY_LEN);
	if (!key->data)
		return -1;
	memcpy(key->data, t->key.bytes, PHAUL_KEY_LEN);
	key->size = PHAUL_KEY_LEN;
	return 0;
}

/* In TLS 1.3 a wrong PSK shows as a bad binder or an undecryptable record. */
static bool wrong_key_error(int r)
{
	return r == GNUTLS_E_DECRYPTION_FAILED || r == GNUTLS_E_RECEIVED_ILLEGAL_PARAMETER ||
	       r == GNUTLS_E_INSUFFICIENT_CREDENTIALS || r == GNUTLS_E_KEYFILE_ERROR;
}

static bool wrong_key_alert(gnutls_alert_description_t a)
{
	return a == GNUTLS_A_DECRYPT_ERROR || a == GNUTLS_A_BAD_RECORD_MAC ||
	       a == GNUTLS_A_ILLEGAL_PARAMETER || a == GNUTLS_A_UNKNOWN_PSK_IDENTITY;
}

static int handshake(struct tls_priv *t, int timeout_ms, const char *who)
{
	int r;

	gnutls_handshake_set_timeout(t->session, timeout_ms);
	do
		r = gnutls_handshake(t->session);
	while (r < 0 && !gnutls_error_is_fatal(r) && !cancel_fired);
	if (r == 0)
		return 0;
	if (take_cancel()) {
		pr_err("TLS handshake with %s cancelled", who);
		return -ECANCELED;
	}
	if (r != GNUTLS_E_FATAL_ALERT_RECEIVED)
		gnutls_alert_send_appropriate(t->session, r); /* tell the peer why */
	if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		gnutls_alert_description_t a = gnutls_alert_get(t->session);
		if (wrong_key_alert(a)) {
			pr_err("%s refused our key (wrong key?): %s", who,
			       gnutls_alert_get_name(a));
			return -EACCES;
		}
		pr_err("TLS handshake with %s failed: alert %s", who, gnutls_alert_get_name(a));
		return -EPROTO;
	}
	if (wrong_key_error(r)) {
		pr_err("TLS handshake with %s failed: wrong key (%s)", who, gnutls_strerror(r));
		return -EACCES;
	}
	if (r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR) {
		pr_err("%s closed the connection during the TLS handshake", who);
		return -ECONNRESET;
	}
	pr_err("TLS handshake with %s failed: %s", who, gnutls_strerror(r));
	return r == GNUTLS_E_TIMEDOUT ? -ETIMEDOUT : -EPROTO;
}

static int session_init(struct tls_priv *t, unsigned flags)
{
	int r = gnutls_init(&t->session, flags | GNUTLS_NO_SIGNAL);
	const char *err = NULL;

	if (r < 0)
		return -ENOMEM;
	gnutls_session_set_ptr(t->session, t);
	r = gnutls_priority_set_direct(t->session, TLS_PRIORITY, &err);
	if (r < 0) {
		pr_err("TLS priority string rejected at '%s': %s", err ? err : "?",
		       gnutls_strerror(r));
		return -EINVAL;
	}
	gnutls_transport_set_ptr(t->session, t);
	gnutls_transport_set_vec_push_function(t->session, push);
	gnutls_transport_set_pull_function(t->session, pull);
	gnutls_transport_set_pull_timeout_function(t->session, pull_timeout);
	return 0;
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int err = 0;
	socklen_t elen = sizeof(err);

	if (connect(fd, sa, len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -errno;
	if (poll(&pfd, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -errno;
	return -err;
}

static int tcp_connect(const char *hostport, int timeout_ms, int *ret_fd)
{
	struct sockaddr_storage ss;
	unsigned int len;
	_cleanup_close_ int fd = -1;
	int r;

	r = parse_hostport(hostport, &ss, &len);
	if (r < 0) {
		pr_err("bad address '%s' (want ADDR:PORT)", hostport);
		return r;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect_timeout(fd, (struct sockaddr *)&ss, len, timeout_ms);
	if (r < 0) {
		errno = -r;
		pr_perror("cannot connect to %s", hostport);
		return r;
	}
	/* back to blocking; GnuTLS timeouts poll the fd themselves */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return -errno;
	tune_socket(fd);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int tls_connect(const char *hostport, const struct psk_key *key, int timeout_ms, struct conn **ret)
{
	struct tls_priv *t = calloc(1, sizeof(*t));
	gnutls_datum_t k = { (unsigned char *)key->bytes, PHAUL_KEY_LEN };
	int r;

	if (!t)
		return -ENOMEM;
	t->fd = -1;
	r = tcp_connect(hostport, timeout_ms, &t->fd);
	if (r < 0)
		goto fail;
	r = -ENOMEM;
	if (gnutls_psk_allocate_client_credentials(&t->ccred) < 0 ||
	    gnutls_psk_set_client_credentials(t->ccred, PSK_IDENTITY, &k, GNUTLS_PSK_KEY_RAW) < 0)
		goto fail;
	r = session_init(t, GNUTLS_CLIENT);
	if (r < 0)
		goto fail;
	if (gnutls_credentials_set(t->session, GNUTLS_CRD_PSK, t->ccred) < 0)
		goto fail;
	r = handshake(t, timeout_ms, hostport);
	if (r < 0)
		goto fail;
	if (log_get_level() >= LOG_DEBUG) {
		char *desc = gnutls_session_get_desc(t->session); /* allocated */
		pr_debug("TLS 1.3 session with %s: %s", hostport, desc ?: "?");
		gnutls_free(desc);
	}
	return conn_new(&tls_ops, t, ret);
fail:
	tls_close(t);
	return r;
}

int tls_accept(int fd, const struct psk_key *key, int timeout_ms, struct conn **ret)
{
	struct tls_priv *t = calloc(1, sizeof(*t));
	int r;

	if (!t) {
		close(fd);
		return -ENOMEM;
	}
	t->fd = fd;
	t->key = *key;
	tune_socket(fd);
	r = -ENOMEM;
	if (gnutls_psk_allocate_server_credentials(&t->scred) < 0)
		goto fail;
	gnutls_psk_set_server_credentials_function(t->scred, server_psk_cb);
	r = session_init(t, GNUTLS_SERVER);
	if (r < 0)
		goto fail;
	if (gnutls_credentials_set(t->session, GNUTLS_CRD_PSK, t->scred) < 0)
		goto fail;
	r = handshake(t, timeout_ms, "client");
	if (r < 0)
		goto fail;
	return conn_new(&tls_ops, t, ret);
fail:
	tls_close(t);
	return r;
}

int tls_listen(const char *hostport, int *ret_fd)
{
	struct sockaddr_storage ss;
	unsigned int len;
	_cleanup_close_ int fd = -1;
	int one = 1, r;

	r = parse_hostport(hostport, &ss, &len);
	if (r < 0) {
		pr_err("bad listen address '%s' (want ADDR:PORT)", hostport);
		return r;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		r = -errno;
		pr_perror("cannot listen on %s", hostport);
		return r;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}
