/*
 * hostinit: PID 1 of a test host's PID namespace.
 *
 *   hostinit
 *
 * Reaps every child (and every orphan reparented to it) until SIGTERM or
 * SIGINT; then SIGKILLs every other process of its PID namespace, reaps
 * them and exits 0.  It closes every fd above 2 at start so that nothing it
 * inherited pins another mount namespace.  PID 1 ignores signals that have
 * no handler, so SIGTERM/SIGINT are taken with sigwaitinfo().
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void close_extra_fds(void)
{
	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
}

static void reap_all(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* Kill the rest of the namespace, then wait (bounded) until it is empty. */
static void shutdown_ns(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	for (int i = 0; i < 500; i++) { /* 5 s at most */
		kill(-1, SIGKILL);
		reap_all();
		if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
			return;
		nanosleep(&ts, NULL);
	}
}

int main(int argc, char **argv)
{
	sigset_t set;
	siginfo_t si;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: hostinit\n");
		return 2;
	}
	close_extra_fds();

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) {
		perror("hostinit: sigprocmask");
		return 1;
	}
	if (getpid() != 1)
		fprintf(stderr, "hostinit: warning: not PID 1 (pid %d)\n", (int)getpid());

	for (;;) {
		int sig = sigwaitinfo(&set, &si);

		if (sig < 0) {
			if (errno == EINTR)
				continue;
			perror("hostinit: sigwaitinfo");
			return 1;
		}
		if (sig == SIGCHLD) {
			reap_all();
			continue;
		}
		if (sig == SIGHUP)
			continue;
		/* SIGTERM / SIGINT */
		shutdown_ns();
		return 0;
	}
}
