/* SPDX-License-Identifier: MIT */
/*
 * serve_kids: the daemon's children (see serve_kids.h).
 */
#define LOG_PREFIX "serve: "
#include "engine/serve_kids.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "engine/target.h"
#include "proto/tls.h"

/* In a new child: what every child of the daemon does first. */
static void ignore_signal(int sig)
{
	(void)sig;
}

static void child_init(struct kids *k, int lfd, const char *role)
{
	/* a handler, not SIG_IGN: what we exec (CRIU, and through it the
	 * restored tree) must not inherit an ignored SIGTERM or SIGINT */
	struct sigaction sa = { .sa_handler = ignore_signal, .sa_flags = SA_RESTART };

	/* its own process group, which its CRIU inherits: see end_group() */
	setpgid(0, 0);
	close(lfd);
	close(k->stop_wr);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	log_init(role, log_get_level());
	tls_set_cancel_fd(k->stop_rd);
}

void kids_spawn(int fd, const struct serve_opts *o, int lfd, struct kids *k)
{
	pid_t pid = fork();

	if (pid < 0) {
		pr_perror("fork");
		close(fd);
		return;
	}
	if (pid == 0) {
		child_init(k, lfd, "phaul-session");
		_exit(target_session(fd, o));
	}
	close(fd);
	k->nr++;
}

/* Authenticate, read the Hello, answer Error EBUSY: the client says why. */
static int answer_busy(int fd, const struct serve_opts *o, unsigned int nr)
{
	_cleanup_conn_ struct conn *c = NULL;
	Msg *msg = NULL;

	if (tls_accept(fd, &o->key, o->auth_timeout_s * 1000, &c) < 0)
		return 1;
	conn_set_timeout(c, 5000);
	if (msg_recv(c, &msg) < 0)
		return 1;
	msg_free(msg);
	msg_send_error(c, EBUSY, "handshake",
		       "busy: %u migrations running there (--max-parallel %u); try again later",
		       nr, o->max_parallel);
	session_drain(c, 1000);
	return 0;
}

void kids_refuse(int fd, const struct serve_opts *o, int lfd, struct kids *k)
{
	size_t i;
	pid_t pid;

	for (i = 0; i < BUSY_MAX && k->busy[i]; i++)
		;
	pr_warn("refusing a connection: %u migrations already running%s", k->nr,
		i == BUSY_MAX ? " (closed unanswered: too many refusals at once)" : "");
	if (i == BUSY_MAX) {
		close(fd);
		return;
	}
	pid = fork();
	if (pid == 0) {
		child_init(k, lfd, "phaul-busy");
		_exit(answer_busy(fd, o, k->nr));
	}
	if (pid < 0)
		pr_perror("fork");
	else
		k->busy[i] = pid;
	close(fd);
}

/*
 * A session process was killed: its CRIU children (a restore, criu
 * lazy-pages) may still run and write into its directory. Before the
 * directory goes, wait until its process group (a session leads its own,
 * which its CRIU inherits) is gone: CRIU, having lost its client, rolls
 * back (kills the tree it restored) and exits by itself. Only what is
 * still there after 5 s is killed, and not after a commit: a tree
 * restored as a shell job may have joined that group, and it now runs
 * here.
 */
static bool group_gone(pid_t pgid, int ms)
{
	struct timespec ts = { 0, 10000000 };

	for (int i = 0; i < ms / 10 && kill(-pgid, 0) == 0; i++)
		nanosleep(&ts, NULL);
	return kill(-pgid, 0) < 0;
}

static void end_group(pid_t pgid, bool committed)
{
	if (group_gone(pgid, 5000) || committed)
		return;
	pr_warn("processes of session process %d still there after 5 s: killing them", pgid);
	kill(-pgid, SIGKILL);
	if (!group_gone(pgid, 2000))
		pr_warn("processes of session process %d survive SIGKILL", pgid);
}

/* Whether session in-@hex got past its commit point (its outcome record). */
static bool session_committed(const char *workdir, const char *hex)
{
	char state[32];
	uint64_t start;
	int pid;

	return outcome_read(workdir, hex, state, sizeof(state), &pid, &start) == 0 &&
	       !strncmp(state, "commit", 6);
}

/* A session process that died left its directory: find it by its owner file. */
static void remove_session_of(const char *workdir, pid_t pid)
{
	char path[4096];
	DIR *d = opendir(workdir);
	struct dirent *de;
	bool ended = false;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *owner = NULL;
		if (strncmp(de->d_name, "in-", 3))
			continue;
		snprintf(path, sizeof(path), "%s/%s/owner", workdir, de->d_name);
		if (read_file(path, 32, &owner, NULL) < 0 || atoi(owner) != pid)
			continue;
		end_group(pid, session_committed(workdir, de->d_name + 3));
		ended = true;
		snprintf(path, sizeof(path), "%s/%s", workdir, de->d_name);
		pr_warn("removing %s, left by session process %d", path, pid);
		rm_rf(path);
	}
	if (d)
		closedir(d);
	if (!ended)
		end_group(pid, false); /* no directory yet: nothing committed */
}

static bool was_busy_answer(struct kids *k, pid_t pid)
{
	for (size_t i = 0; i < BUSY_MAX; i++)
		if (k->busy[i] == pid) {
			k->busy[i] = 0;
			return true;
		}
	return false;
}

unsigned int kids_nr_busy(const struct kids *k)
{
	unsigned int n = 0;

	for (size_t i = 0; i < BUSY_MAX; i++)
		n += k->busy[i] != 0;
	return n;
}

void kids_reap(const char *workdir, struct kids *k)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (was_busy_answer(k, pid))
			continue;
		if (k->nr)
			k->nr--;
		if (WIFSIGNALED(status)) {
			pr_warn("session process %d killed by signal %d", pid, WTERMSIG(status));
			remove_session_of(workdir, pid);
		}
	}
}
