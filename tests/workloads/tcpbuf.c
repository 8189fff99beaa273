/*
 * tcpbuf: both ends of a loopback TCP connection, each in its own process
 * of one tree, with data in flight both ways.
 *
 *   tcpbuf LOG [4|6]
 *
 * The parent connects to itself over 127.0.0.1 (or ::1 with 6), on a port
 * the kernel picks, and forks: the child keeps the connecting end, the
 * parent the accepted one (the listener is closed). Each writes a known
 * pattern of its own into its end until the socket would block, without
 * reading: its peer's receive queue is full, the rest waits in its own send
 * queue, part of it never sent. Each logs "FILLED ROLE bytes=N". Then the
 * parent appends "N WALL_MS\n" to LOG every 10 ms; both check their socket
 * every 10 ms, and a pending error (a reset) is "FAIL ROLE ...".
 *
 * SIGUSR1 to the parent (it passes it on to the child): each shuts its
 * writing side down and reads until EOF, checking each byte against the
 * peer's pattern: "VERIFY PASS ROLE bytes=N" (N must be the peer's FILLED
 * count) or "VERIFY FAIL ROLE ...". Once only: the connection is then
 * half-closed both ways.
 * SIGTERM/SIGINT to the parent: it SIGTERMs the child, reaps it, exits 0.
 * Errors: "FAIL ..." in LOG, exit 3. Only fds 0-2 are open at start.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 10
#define READ_TIMEOUT_MS 10000

static volatile sig_atomic_t stop, verify;
static const char *logpath;
static const char *role;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void on_usr1(int sig)
{
	(void)sig;
	verify = 1;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int log_line(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int fd, n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = write(fd, buf, n) == n ? 0 : -EIO;
	close(fd);
	return n;
}

/* byte @i of what @who ("parent" or "child") writes */
static unsigned char pattern(const char *who, uint64_t i)
{
	return (unsigned char)(i % 251 + (who[0] == 'p' ? 0 : 101) + (i >> 16));
}

static const char *peer_of(const char *who)
{
	return who[0] == 'p' ? "child" : "parent";
}

/* write the pattern until the socket would block */
static int fill(int sk)
{
	unsigned char buf[16384];
	uint64_t off = 0;
	ssize_t n;

	for (;;) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(role, off + i);
		n = send(sk, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0)
			return log_line("FAIL %s fill: %s", role, strerror(errno)), -1;
		off += n;
	}
	return log_line("FILLED %s bytes=%llu", role, (unsigned long long)off);
}

/* a reset or any error pending on the socket is a failure */
static int healthy(int sk)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(sk, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return log_line("FAIL %s connection: %s", role, strerror(err)), -1;
	return 0;
}

static int check(int sk)
{
	const char *peer = peer_of(role);
	struct pollfd p = { .fd = sk, .events = POLLIN };
	unsigned char buf[16384];
	uint64_t got = 0;
	ssize_t n;

	if (shutdown(sk, SHUT_WR) < 0)
		return log_line("VERIFY FAIL %s shutdown: %s", role, strerror(errno)), -1;
	for (;;) {
		if (poll(&p, 1, READ_TIMEOUT_MS) == 0) {
			log_line("VERIFY FAIL %s no EOF after bytes=%llu", role,
				 (unsigned long long)got);
			return -1;
		}
		n = recv(sk, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return log_line("VERIFY FAIL %s read: %s", role, strerror(errno)), -1;
		for (ssize_t i = 0; i < n; i++, got++) {
			if (buf[i] == pattern(peer, got))
				continue;
			log_line("VERIFY FAIL %s byte=%llu expected=0x%02x got=0x%02x", role,
				 (unsigned long long)got, pattern(peer, got), buf[i]);
			return -1;
		}
	}
	return log_line("VERIFY PASS %s bytes=%llu", role, (unsigned long long)got);
}

/* a connected pair over loopback: *@a accepted, *@b connecting */
static int pair(int family, int *a, int *b)
{
	struct sockaddr_storage ss = { .ss_family = family };
	socklen_t len = family == AF_INET6 ? sizeof(struct sockaddr_in6) :
					     sizeof(struct sockaddr_in);
	int l;

	if (family == AF_INET6)
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	else
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	*b = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*b < 0 || connect(*b, (struct sockaddr *)&ss, len) < 0)
		return -1;
	*a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	return *a < 0 ? -1 : 0;
}

static int run(int sk, pid_t child)
{
	struct timespec tick = { 0, TICK_MS * 1000000L };
	uint64_t n = 0;

	if (fill(sk) < 0)
		return 3;
	while (!stop) {
		if (verify) {
			verify = 0;
			if (child > 0)
				kill(child, SIGUSR1);
			if (check(sk) < 0)
				return 3;
		} else if (healthy(sk) < 0) {
			return 3;
		}
		if (child > 0 &&
		    log_line("%llu %lld", (unsigned long long)++n, (long long)wall_ms()) < 0)
			return 3;
		nanosleep(&tick, NULL);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_stop };
	struct sigaction su = { .sa_handler = on_usr1 };
	int family = AF_INET, a, b, ret;
	pid_t child;

	if (argc == 3 && strcmp(argv[2], "6") == 0)
		family = AF_INET6;
	else if (argc != 2 && !(argc == 3 && strcmp(argv[2], "4") == 0)) {
		fprintf(stderr, "usage: tcpbuf LOG [4|6]\n");
		return 2;
	}
	logpath = argv[1];
	role = "parent";
	syscall(SYS_close_range, 3U, ~0U, 0U);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &su, NULL);
	if (pair(family, &a, &b) < 0) {
		log_line("FAIL connect over loopback: %s", strerror(errno));
		return 3;
	}
	child = fork();
	if (child < 0) {
		log_line("FAIL fork: %s", strerror(errno));
		return 3;
	}
	if (child == 0) {
		role = "child";
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close(a);
		return run(b, 0);
	}
	close(b);
	ret = run(a, child);
	kill(child, SIGTERM);
	waitpid(child, NULL, 0);
	return ret;
}
