/*
 * openfile: a workload whose state lives in open fds.
 *
 *   openfile DIR           run (DIR must exist)
 *   openfile --ping DIR    ask a running instance for its counter
 *
 * Run mode keeps two fds open for its whole life (across a migration):
 *   - DIR/data, a regular file opened O_RDWR|O_APPEND, to which it appends
 *     "N WALL_MS\n" every 10 ms (N = 1, 2, ...; WALL_MS = CLOCK_REALTIME ms);
 *   - a listening unix stream socket bound to the path DIR/sock.
 * Each client connection gets one line back, "COUNTER N\n", and is closed.
 *
 * Self-check: before each append the file must have exactly the size this
 * process left (through the same fd); after it, the line is read back with
 * pread; every second and before each ping reply the whole file is re-read
 * and must hold exactly lines 1..N.  Any mismatch: "FAIL ..." is appended
 * to DIR/status and stderr (and sent to a pinging client), exit 3.
 * SIGTERM/SIGINT: exit 0.  Only fds 0-2 are inherited.
 *
 * Ping mode prints the reply line and exits 0 if it is "COUNTER N", 1 if
 * the reply is anything else, 2 if it cannot connect (5 s timeout).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 10
#define FULL_CHECK_EVERY 100 /* ticks */

struct state {
	const char *dir;
	int data; /* DIR/data */
	int lsk;  /* listening socket */
	uint64_t counter;
	off_t size; /* bytes appended so far */
	char fail[256];
};

static volatile sig_atomic_t stop;

static void on_stop(int sig)
{
	(void)sig;
	stop = 1;
}

static void close_extra_fds(void)
{
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int path_in(char *buf, size_t size, const char *dir, const char *name)
{
	int n = snprintf(buf, size, "%s/%s", dir, name);

	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

/* Record the first failure: DIR/status, stderr. */
__attribute__((format(printf, 2, 3))) static void set_fail(struct state *s, const char *fmt, ...)
{
	char path[4096];
	va_list ap;
	int fd, len;

	if (s->fail[0])
		return;
	len = snprintf(s->fail, sizeof(s->fail), "FAIL ");
	va_start(ap, fmt);
	vsnprintf(s->fail + len, sizeof(s->fail) - (size_t)len, fmt, ap);
	va_end(ap);
	fprintf(stderr, "openfile: %s\n", s->fail);
	if (path_in(path, sizeof(path), s->dir, "status") < 0)
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dprintf(fd, "%s\n", s->fail);
		close(fd);
	}
}

/* The whole file must be lines "1 T", "2 T", ... "counter T". */
static int full_check(struct state *s)
{
	char buf[65536], line[64];
	uint64_t want = 1;
	size_t ll = 0;
	off_t off = 0;

	for (;;) {
		ssize_t n = pread(s->data, buf, sizeof(buf), off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			set_fail(s, "pread data: %s", strerror(errno));
			return -1;
		}
		if (n == 0)
			break;
		off += n;
		for (ssize_t i = 0; i < n; i++) {
			uint64_t got;

			if (buf[i] != '\n') {
				if (ll >= sizeof(line) - 1) {
					set_fail(s, "line %" PRIu64 " too long", want);
					return -1;
				}
				line[ll++] = buf[i];
				continue;
			}
			line[ll] = 0;
			ll = 0;
			if (sscanf(line, "%" SCNu64, &got) != 1 || got != want) {
				set_fail(s, "data line %" PRIu64 " is \"%s\"", want, line);
				return -1;
			}
			want++;
		}
	}
	if (ll != 0 || off != s->size || want != s->counter + 1) {
		set_fail(s, "data holds %lld bytes / %" PRIu64 " lines, expected %lld / %" PRIu64,
			 (long long)off, want - 1, (long long)s->size, s->counter);
		return -1;
	}
	return 0;
}

static int tick(struct state *s)
{
	char line[64], back[64];
	struct stat st;
	size_t len;
	ssize_t n;
	int ret;

	if (fstat(s->data, &st) < 0 || st.st_size != s->size) {
		set_fail(s, "data is %lld bytes before append %" PRIu64 ", expected %lld",
			 (long long)st.st_size, s->counter + 1, (long long)s->size);
		return -1;
	}
	len = (size_t)snprintf(line, sizeof(line), "%" PRIu64 " %lld\n", s->counter + 1,
			       (long long)wall_ms());
	ret = write_all(s->data, line, len);
	if (ret < 0) {
		set_fail(s, "append to data: %s", strerror(-ret));
		return -1;
	}
	n = pread(s->data, back, len, s->size);
	if (n != (ssize_t)len || memcmp(back, line, len) != 0) {
		set_fail(s, "line %" PRIu64 " did not read back", s->counter + 1);
		return -1;
	}
	s->counter++;
	s->size += (off_t)len;
	if (s->counter % FULL_CHECK_EVERY == 0)
		return full_check(s);
	return 0;
}

static void serve_one(struct state *s)
{
	char reply[300];
	int c = accept4(s->lsk, NULL, NULL, SOCK_CLOEXEC);

	if (c < 0)
		return;
	if (!s->fail[0])
		full_check(s);
	if (s->fail[0])
		snprintf(reply, sizeof(reply), "%s\n", s->fail);
	else
		snprintf(reply, sizeof(reply), "COUNTER %" PRIu64 "\n", s->counter);
	write_all(c, reply, strlen(reply));
	close(c);
}

static int make_sockaddr(struct sockaddr_un *sa, const char *dir)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	return path_in(sa->sun_path, sizeof(sa->sun_path), dir, "sock");
}

static int setup(struct state *s)
{
	struct sockaddr_un sa;
	char path[4096];

	if (make_sockaddr(&sa, s->dir) < 0) {
		fprintf(stderr, "openfile: %s/sock: path too long for a unix socket\n", s->dir);
		return -1;
	}
	if (path_in(path, sizeof(path), s->dir, "data") < 0)
		return -1;
	s->data = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (s->data < 0) {
		fprintf(stderr, "openfile: create %s: %s\n", path, strerror(errno));
		return -1;
	}
	unlink(sa.sun_path);
	s->lsk = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->lsk < 0 || bind(s->lsk, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(s->lsk, 16) < 0) {
		fprintf(stderr, "openfile: listen on %s: %s\n", sa.sun_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int run(const char *dir)
{
	struct sigaction sa = { .sa_handler = on_stop };
	struct state s = { .dir = dir, .data = -1, .lsk = -1 };
	int64_t next;

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (setup(&s) < 0)
		return 1;
	printf("openfile: pid %d serving %s/sock\n", (int)getpid(), dir);
	fflush(stdout);
	next = mono_ms();
	while (!stop) {
		struct pollfd pfd = { .fd = s.lsk, .events = POLLIN };
		int64_t now = mono_ms();

		if (now >= next) {
			if (tick(&s) < 0)
				return 3;
			/* After a long pause (a migration) do not burst to catch up. */
			next = next + TICK_MS > now ? next + TICK_MS : now + TICK_MS;
			continue;
		}
		if (poll(&pfd, 1, (int)(next - now)) > 0)
			serve_one(&s);
		if (s.fail[0])
			return 3;
	}
	return 0;
}

static int ping(const char *dir)
{
	struct timeval tv = { .tv_sec = 5 };
	struct sockaddr_un sa;
	char buf[300];
	size_t got = 0;
	int fd;

	if (make_sockaddr(&sa, dir) < 0) {
		fprintf(stderr, "openfile: %s/sock: path too long\n", dir);
		return 2;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "openfile: connect %s: %s\n", sa.sun_path, strerror(errno));
		return 2;
	}
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = 0;
	fputs(buf, stdout);
	return strncmp(buf, "COUNTER ", 8) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--ping") == 0)
		return ping(argv[2]);
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: openfile DIR | openfile --ping DIR\n");
		return 2;
	}
	close_extra_fds();
	return run(argv[1]);
}
