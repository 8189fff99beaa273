/* SPDX-License-Identifier: MIT */
/*
 * serve: the destination daemon. Accepts connections until SIGTERM and
 * runs each migration in a child process of its own (a crash there
 * cannot take the daemon or other migrations with it), at most
 * --max-parallel at once. A child dies with the daemon (PDEATHSIG), and
 * its CRIU then rolls back anything not yet committed.
 */
#define LOG_PREFIX "serve: "
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "engine/target.h"
#include "proto/tls.h"

#define OUTCOME_TTL_S (15 * 60)

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static Phaul__Outcome__State decide(const char *state, int pid)
{
	if (!strcmp(state, "committed"))
		return PHAUL__OUTCOME__STATE__COMMITTED;
	if (!strcmp(state, "aborted"))
		return PHAUL__OUTCOME__STATE__ABORTED;
	/* committing: CRIU was told to resume; the tree's life tells */
	if (!strcmp(state, "committing"))
		return kill(pid, 0) == 0 ? PHAUL__OUTCOME__STATE__COMMITTED
					 : PHAUL__OUTCOME__STATE__ABORTED;
	/* pending: the session still runs, or died and CRIU rolled back */
	if (!strcmp(state, "pending"))
		return kill(pid, 0) == 0 ? PHAUL__OUTCOME__STATE__PENDING
					 : PHAUL__OUTCOME__STATE__ABORTED;
	return PHAUL__OUTCOME__STATE__UNKNOWN;
}

int target_outcome(struct target *t, const uint8_t *id)
{
	Phaul__Outcome o = PHAUL__OUTCOME__INIT;
	Msg msg = PHAUL__MSG__INIT;
	char hex[2 * PHAUL_SESSION_ID_LEN + 1], state[32];
	int pid = 0;

	session_hex(id, hex);
	o.state = PHAUL__OUTCOME__STATE__UNKNOWN;
	if (outcome_read(t->so->workdir, hex, state, sizeof(state), &pid) == 0)
		o.state = decide(state, pid);
	pr_info("outcome query for session %s: %s", hex,
		o.state == PHAUL__OUTCOME__STATE__COMMITTED ? "committed" :
		o.state == PHAUL__OUTCOME__STATE__ABORTED   ? "aborted" :
		o.state == PHAUL__OUTCOME__STATE__PENDING   ? "pending" : "unknown");
	msg.body_case = PHAUL__MSG__BODY_OUTCOME;
	msg.outcome = &o;
	return msg_send(t->m.conn, &msg);
}

/* Leftovers of sessions that died (a committed session may outlive a
 * daemon and still fill its workload's memory: its directory stays), and
 * expired outcome records. */
static void sweep_workdir(const char *workdir)
{
	char path[4096];
	DIR *d;
	struct dirent *de;
	struct stat st;
	time_t now = time(NULL);

	session_sweep(workdir, "in-");
	snprintf(path, sizeof(path), "%s/outcomes", workdir);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		snprintf(path, sizeof(path), "%s/outcomes/%s", workdir, de->d_name);
		if (de->d_name[0] != '.' && stat(path, &st) == 0 && now - st.st_mtime > OUTCOME_TTL_S)
			unlink(path);
	}
	if (d)
		closedir(d);
}

static void spawn_session(int fd, const struct serve_opts *o, int lfd, unsigned *nr)
{
	pid_t pid = fork();

	if (pid < 0) {
		pr_perror("fork");
		close(fd);
		return;
	}
	if (pid == 0) {
		close(lfd);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		log_init("phaul-session", log_get_level());
		_exit(target_session(fd, o));
	}
	close(fd);
	(*nr)++;
}

/* A session process that died left its directory: find it by its owner file. */
static void remove_session_of(const char *workdir, pid_t pid)
{
	char path[4096];
	DIR *d = opendir(workdir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *owner = NULL;
		if (strncmp(de->d_name, "in-", 3))
			continue;
		snprintf(path, sizeof(path), "%s/%s/owner", workdir, de->d_name);
		if (read_file(path, 32, &owner, NULL) < 0 || atoi(owner) != pid)
			continue;
		snprintf(path, sizeof(path), "%s/%s", workdir, de->d_name);
		pr_warn("removing %s, left by session process %d", path, pid);
		rm_rf(path);
	}
	if (d)
		closedir(d);
}

static void reap(const char *workdir, unsigned *nr)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (*nr)
			(*nr)--;
		if (WIFSIGNALED(status)) {
			pr_warn("session process %d killed by signal %d", pid, WTERMSIG(status));
			remove_session_of(workdir, pid);
		}
	}
}

static void setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void accept_one(int lfd, const struct serve_opts *o, unsigned *nr)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EINTR && errno != EAGAIN)
			pr_perror("accept");
		return;
	}
	if (*nr >= o->max_parallel) {
		pr_warn("refusing a connection: %u migrations already running", *nr);
		close(fd);
		return;
	}
	spawn_session(fd, o, lfd, nr);
}

int serve(const struct serve_opts *o)
{
	_cleanup_close_ int lfd = -1;
	unsigned nr = 0;
	int r;

	r = mkdir_p(o->workdir, 0700);
	if (r < 0) {
		pr_err("cannot create work directory %s: %s", o->workdir, strerror(-r));
		return r;
	}
	sweep_workdir(o->workdir);
	r = tls_listen(o->listen, &lfd);
	if (r < 0)
		return r;
	setup_signals();
	pr_info("listening on %s, work directory %s", o->listen, o->workdir);
	while (!stopping) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		reap(o->workdir, &nr);
		if (poll(&pfd, 1, 500) > 0)
			accept_one(lfd, o, &nr);
	}
	pr_info("SIGTERM: no new migrations; waiting for %u running", nr);
	close(TAKE_FD(lfd));
	while (nr > 0) {
		struct timespec ts = { 0, 100000000 };
		reap(o->workdir, &nr);
		nanosleep(&ts, NULL);
	}
	pr_info("stopped");
	return 0;
}
