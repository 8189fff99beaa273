/*
 * fifo: a workload whose state is data waiting in a named FIFO.
 *
 *   fifo DIR LOG [BYTES]
 *
 * Makes the FIFO DIR/fifo (replacing whatever has that name), opens its
 * read end (O_NONBLOCK) and its write end, and writes BYTES bytes
 * (default 20000, at most 60000: below a pipe's 64 KiB, the write never
 * blocks) of a known pattern into it without reading them: the kernel holds them in
 * the pipe's buffer, where a migration must carry them. Then every 10 ms
 * it appends "TICK WALL_MS\n" to LOG (opened, appended, closed each time).
 *
 * SIGUSR1: read the FIFO until it is empty and compare with the pattern:
 * "VERIFY PASS bytes=N" or "VERIFY FAIL ..." in LOG; then the next
 * generation of the pattern is written, so a later migration carries data
 * again. Both ends stay open for the whole life (fds 3 and 4).
 * SIGTERM/SIGINT: exit 0. Errors: "FAIL ..." in LOG, exit 3.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_BYTES 60000
#define TICK_MS 10

static volatile sig_atomic_t stop, verify;
static const char *logpath;
static size_t bytes = 20000;

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

static unsigned char pattern(unsigned int gen, size_t i)
{
	return (unsigned char)(i * 7 + gen * 13 + (i >> 8));
}

static int fill(int wfd, unsigned int gen)
{
	static unsigned char buf[MAX_BYTES];

	for (size_t i = 0; i < bytes; i++)
		buf[i] = pattern(gen, i);
	return write(wfd, buf, bytes) == (ssize_t)bytes ? 0 : -1;
}

/* 0 if the FIFO held exactly generation @gen's bytes */
static int check(int rfd, unsigned int gen)
{
	static unsigned char buf[4 * MAX_BYTES];
	size_t got = 0;
	ssize_t n;

	/* all of it: more than was written is as wrong as less */
	while (got < sizeof(buf) && (n = read(rfd, buf + got, sizeof(buf) - got)) > 0)
		got += n;
	if (got != bytes)
		return log_line("VERIFY FAIL bytes=%zu expected=%zu", got, bytes), -1;
	for (size_t i = 0; i < bytes; i++)
		if (buf[i] != pattern(gen, i))
			return log_line("VERIFY FAIL byte=%zu expected=0x%02x got=0x%02x", i,
					pattern(gen, i), buf[i]),
			       -1;
	return log_line("VERIFY PASS bytes=%zu", bytes);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_stop };
	struct sigaction su = { .sa_handler = on_usr1 };
	struct timespec tick = { 0, TICK_MS * 1000000L };
	char path[4096];
	unsigned int gen = 0;
	uint64_t n = 0;
	int rfd, wfd;

	if (argc > 3)
		bytes = strtoul(argv[3], NULL, 10);
	if (argc < 3 || argc > 4 || bytes == 0 || bytes > MAX_BYTES) {
		fprintf(stderr, "usage: fifo DIR LOG [BYTES]\n");
		return 2;
	}
	logpath = argv[2];
	syscall(SYS_close_range, 3U, ~0U, 0U);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &su, NULL);
	snprintf(path, sizeof(path), "%s/fifo", argv[1]);
	unlink(path);
	if (mkfifo(path, 0600) < 0) {
		log_line("FAIL mkfifo %s: %s", path, strerror(errno));
		return 3;
	}
	rfd = open(path, O_RDONLY | O_NONBLOCK);
	wfd = rfd < 0 ? -1 : open(path, O_WRONLY);
	if (wfd < 0 || fill(wfd, gen) < 0) {
		log_line("FAIL open or fill %s: %s", path, strerror(errno));
		return 3;
	}
	while (!stop) {
		if (verify) {
			verify = 0;
			if (check(rfd, gen) < 0 || fill(wfd, ++gen) < 0)
				return 3;
		}
		if (log_line("%llu %lld", (unsigned long long)++n, (long long)wall_ms()) < 0)
			return 3;
		nanosleep(&tick, NULL);
	}
	return 0;
}
