/*
 * pipetree: a three-process tree passing a token around a ring of pipes.
 *
 *   pipetree FILE
 *
 * parent --pipe--> child1 --pipe--> child2 --pipe--> parent
 *
 * In round N (N = 1, 2, ...) the parent sends 3N, child1 checks it and
 * sends 3N+1, child2 checks it and sends 3N+2, the parent checks that and
 * appends "ROUND N WALL_MS\n" to FILE (open/append/close), then sleeps
 * 10 ms.  Every process checks the value it receives against its own count
 * of rounds, so a lost, repeated or corrupted token is caught wherever it
 * shows up.  Any wrong token, broken pipe, early EOF or dead child makes
 * the process that saw it append "FAIL ..." to FILE and exit non-zero.
 * Like counter, the parent also checks FILE's size before each append
 * (a second copy of the tree writing to FILE is a FAIL).
 *
 * SIGTERM/SIGINT to the parent: it SIGTERMs both children, reaps them and
 * exits 0.  A child whose upstream pipe reaches EOF (the parent is gone)
 * exits 0 quietly.  Only fds 0-2 are open at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *log_path;
static off_t log_size; /* parent only: size FILE must have */
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

/* 0, or -EPIPE-style errno, or 1 for EOF before any byte. */
static int read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return got == 0 ? 1 : -EPROTO;
		got += (size_t)n;
	}
	return 0;
}

__attribute__((format(printf, 2, 3))) static void append_fail(const char *who, const char *fmt, ...)
{
	char msg[256];
	int len;
	va_list ap;
	int fd;

	len = snprintf(msg, sizeof(msg), "FAIL %s: ", who);
	va_start(ap, fmt);
	len += vsnprintf(msg + len, sizeof(msg) - (size_t)len - 1, fmt, ap);
	va_end(ap);
	if (len > (int)sizeof(msg) - 2)
		len = (int)sizeof(msg) - 2;
	msg[len++] = '\n';
	msg[len] = 0;
	fputs(msg, stderr);
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		write_all(fd, msg, (size_t)len);
		close(fd);
	}
}

/* Parent: append one ROUND line after checking nobody else wrote. */
static int append_round(uint64_t round)
{
	char line[64];
	struct stat st;
	int ret, fd;

	snprintf(line, sizeof(line), "ROUND %llu %lld\n", (unsigned long long)round,
		 (long long)wall_ms());
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	close(fd);
	if (st.st_size != log_size) {
		append_fail("parent", "log size %lld, expected %lld (another writer? split brain?)",
			    (long long)st.st_size, (long long)log_size);
		return -EEXIST;
	}
	fd = open(log_path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = write_all(fd, line, strlen(line));
	close(fd);
	if (ret == 0)
		log_size += (off_t)strlen(line);
	return ret;
}

/* Child k (1 or 2): receive 3N+k-1 from in, send 3N+k to out. */
static int child_loop(int k, int in, int out)
{
	char who[16];
	uint64_t round = 0;

	snprintf(who, sizeof(who), "child%d", k);
	prctl(PR_SET_NAME, k == 1 ? "pipetree-c1" : "pipetree-c2");
	for (;;) {
		uint64_t v, want;
		int ret = read_all(in, &v, sizeof(v));

		if (ret == 1)
			return 0; /* upstream closed: the parent is gone */
		if (ret < 0) {
			append_fail(who, "read: %s", strerror(-ret));
			return 1;
		}
		round++;
		want = 3 * round + (uint64_t)k - 1;
		if (v != want) {
			append_fail(who, "round %llu: token %llu, expected %llu",
				    (unsigned long long)round, (unsigned long long)v,
				    (unsigned long long)want);
			return 1;
		}
		v++;
		ret = write_all(out, &v, sizeof(v));
		if (ret < 0) {
			append_fail(who, "round %llu: write: %s", (unsigned long long)round,
				    strerror(-ret));
			return 1;
		}
	}
}

static pid_t spawn_child(int k, int in, int out, const int *all, int nall)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	for (int i = 0; i < nall; i++)
		if (all[i] != in && all[i] != out)
			close(all[i]);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	_exit(child_loop(k, in, out));
}

static void describe_child(pid_t pid, int status)
{
	if (WIFEXITED(status))
		append_fail("parent", "child %d exited with %d", (int)pid, WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		append_fail("parent", "child %d killed by signal %d", (int)pid, WTERMSIG(status));
}

static int parent_loop(int out, int in, pid_t c1, pid_t c2)
{
	const struct timespec period = { 0, 10 * 1000 * 1000 };
	uint64_t round = 0;

	while (!stop) {
		uint64_t v = 3 * (round + 1);
		int ret, status;
		pid_t dead;

		ret = write_all(out, &v, sizeof(v));
		if (ret == 0)
			ret = read_all(in, &v, sizeof(v));
		if (stop)
			break;
		if (ret != 0) {
			append_fail("parent", "round %llu: %s", (unsigned long long)round + 1,
				    ret == 1 ? "ring closed (EOF)" : strerror(-ret));
			dead = waitpid(-1, &status, WNOHANG);
			if (dead > 0)
				describe_child(dead, status);
			return 1;
		}
		round++;
		if (v != 3 * round + 2) {
			append_fail("parent", "round %llu: token %llu, expected %llu",
				    (unsigned long long)round, (unsigned long long)v,
				    (unsigned long long)(3 * round + 2));
			return 1;
		}
		dead = waitpid(-1, &status, WNOHANG);
		if (dead > 0) {
			describe_child(dead, status);
			return 1;
		}
		ret = append_round(round);
		if (ret == -EEXIST)
			return 3;
		if (ret < 0) {
			fprintf(stderr, "pipetree: FAIL append to %s: %s\n", log_path,
				strerror(-ret));
			return 1;
		}
		nanosleep(&period, NULL);
	}
	kill(c1, SIGTERM);
	kill(c2, SIGTERM);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_stop };
	int p0[2], p1[2], p2[2]; /* parent->c1, c1->c2, c2->parent */
	struct stat st;
	pid_t c1, c2;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: pipetree FILE\n");
		return 2;
	}
	log_path = argv[1];
	close_extra_fds();
	if (stat(log_path, &st) == 0 && st.st_size != 0) {
		fprintf(stderr, "pipetree: %s is not empty\n", log_path);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(p0, O_CLOEXEC) || pipe2(p1, O_CLOEXEC) || pipe2(p2, O_CLOEXEC)) {
		perror("pipetree: pipe");
		return 1;
	}
	{
		int all[6] = { p0[0], p0[1], p1[0], p1[1], p2[0], p2[1] };

		c1 = spawn_child(1, p0[0], p1[1], all, 6);
		c2 = spawn_child(2, p1[0], p2[1], all, 6);
	}
	if (c1 < 0 || c2 < 0) {
		perror("pipetree: fork");
		return 1;
	}
	close(p0[0]);
	close(p1[0]);
	close(p1[1]);
	close(p2[1]);
	/* The parent's handler is installed after fork: children keep SIG_DFL. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	printf("pipetree: parent %d children %d %d\n", (int)getpid(), (int)c1, (int)c2);
	fflush(stdout);
	return parent_loop(p0[1], p2[0], c1, c2);
}
