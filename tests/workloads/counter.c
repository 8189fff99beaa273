/*
 * counter: the simplest self-checking workload.
 *
 *   counter FILE
 *
 * Every 10 ms appends "TICK WALL_MS\n" to FILE (TICK = 1, 2, 3, ...;
 * WALL_MS = CLOCK_REALTIME in ms), opening, appending and closing FILE each
 * time, so no fd is held between ticks.  Only fds 0-2 stay open.
 *
 * Self-check: before each append it checks that FILE still has exactly the
 * size it left there.  Anything else appending (a second copy of this
 * process still running after a migration: split brain) or truncating the
 * file makes it append "FAIL ..." and exit 3.  SIGTERM/SIGINT: exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Append one line; returns the file size after the append, or -errno. */
static off_t append_line(const char *path, off_t expect, const char *line)
{
	struct stat st;
	off_t ret;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (expect >= 0 && st.st_size != expect) {
		char msg[160];

		snprintf(
			msg, sizeof(msg),
			"FAIL size mismatch: expected %lld bytes, found %lld (another writer? split brain?)\n",
			(long long)expect, (long long)st.st_size);
		write_all(fd, msg, strlen(msg));
		fprintf(stderr, "counter: %s", msg);
		ret = -EEXIST;
		goto out;
	}
	ret = write_all(fd, line, strlen(line));
	if (ret == 0)
		ret = st.st_size + (off_t)strlen(line);
out:
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_stop };
	const struct timespec period = { 0, 10 * 1000 * 1000 };
	off_t size = -1;
	uint64_t tick = 0;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: counter FILE\n");
		return 2;
	}
	close_extra_fds();
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	{
		/* The tick sequence starts at 1: refuse a file with old ticks. */
		struct stat st;

		if (stat(argv[1], &st) == 0 && st.st_size != 0) {
			fprintf(stderr, "counter: %s is not empty\n", argv[1]);
			return 2;
		}
	}

	while (!stop) {
		char line[64];

		snprintf(line, sizeof(line), "%llu %lld\n", (unsigned long long)++tick,
			 (long long)wall_ms());
		size = append_line(argv[1], size < 0 ? 0 : size, line);
		if (size == -EEXIST)
			return 3;
		if (size < 0) {
			fprintf(stderr, "counter: FAIL append to %s: %s\n", argv[1],
				strerror((int)-size));
			return 1;
		}
		nanosleep(&period, NULL);
	}
	return 0;
}
