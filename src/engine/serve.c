/* SPDX-License-Identifier: MIT */
/*
 * serve: the destination daemon. Accepts connections until SIGTERM and
 * runs each migration in a child process of its own (a crash there
 * cannot take the daemon or other migrations with it), at most
 * --max-parallel at once, the unauthenticated ones included. One more
 * connection than that is answered, after the handshake, with Error
 * EBUSY by a short-lived child (at most BUSY_MAX at once; beyond that it
 * is closed unanswered).
 *
 * SIGTERM (or SIGINT): no new connections; the daemon closes the write
 * end of a pipe every session holds the read end of, which cancels the
 * session's next network read (tls_set_cancel_fd): a session before its
 * commit point rolls back (Error to the source, CRIU kills what it
 * restored), a committed one finishes (it reads nothing more). The
 * daemon exits when every session has. Sessions ignore SIGTERM and
 * SIGINT themselves; a session dies with the daemon (PDEATHSIG) until
 * it commits.
 */
#define LOG_PREFIX "serve: "
#include <dirent.h>
#include <fcntl.h>
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
#define BUSY_MAX 4

/* The daemon's children: migration sessions, and "busy" answers. */
struct kids {
	unsigned int nr;		/* sessions */
	pid_t busy[BUSY_MAX];		/* processes answering EBUSY, or 0 */
	int stop_rd, stop_wr;		/* shutdown pipe */
};

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

/* In a new child: what every child of the daemon does first. */
static void child_init(struct kids *k, int lfd, const char *role)
{
	close(lfd);
	close(k->stop_wr);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	log_init(role, log_get_level());
	tls_set_cancel_fd(k->stop_rd);
}

static void spawn_session(int fd, const struct serve_opts *o, int lfd, struct kids *k)
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

static void refuse_busy(int fd, const struct serve_opts *o, int lfd, struct kids *k)
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

static bool was_busy_answer(struct kids *k, pid_t pid)
{
	for (size_t i = 0; i < BUSY_MAX; i++)
		if (k->busy[i] == pid) {
			k->busy[i] = 0;
			return true;
		}
	return false;
}

static unsigned int nr_busy(const struct kids *k)
{
	unsigned int n = 0;

	for (size_t i = 0; i < BUSY_MAX; i++)
		n += k->busy[i] != 0;
	return n;
}

static void reap(const char *workdir, struct kids *k)
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

static void setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void accept_one(int lfd, const struct serve_opts *o, struct kids *k)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EINTR && errno != EAGAIN)
			pr_perror("accept");
		return;
	}
	reap(o->workdir, k); /* a session that just ended frees its slot */
	if (k->nr >= o->max_parallel) {
		refuse_busy(fd, o, lfd, k);
		return;
	}
	spawn_session(fd, o, lfd, k);
}

static void shut_down(struct kids *k, const char *workdir)
{
	struct timespec ts = { 0, 100000000 };

	pr_info("shutting down: no new migrations; %u running: those not committed yet roll back",
		k->nr);
	close(k->stop_wr);
	while (k->nr > 0 || nr_busy(k) > 0) {
		reap(workdir, k);
		nanosleep(&ts, NULL);
	}
	close(k->stop_rd);
}

int serve(const struct serve_opts *o)
{
	_cleanup_close_ int lfd = -1;
	struct kids k = { 0 };
	int r, p[2];

	r = mkdir_p(o->workdir, 0700);
	if (r < 0) {
		pr_err("cannot create work directory %s: %s", o->workdir, strerror(-r));
		return r;
	}
	sweep_workdir(o->workdir);
	r = tls_listen(o->listen, &lfd);
	if (r < 0)
		return r;
	if (pipe2(p, O_CLOEXEC) < 0) {
		pr_perror("pipe");
		return -errno;
	}
	k.stop_rd = p[0];
	k.stop_wr = p[1];
	setup_signals();
	pr_info("listening on %s, work directory %s", o->listen, o->workdir);
	while (!stopping) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		reap(o->workdir, &k);
		if (poll(&pfd, 1, 500) > 0)
			accept_one(lfd, o, &k);
	}
	close(TAKE_FD(lfd));
	shut_down(&k, o->workdir);
	pr_info("stopped");
	return 0;
}
