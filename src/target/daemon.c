/* SPDX-License-Identifier: MIT */
/*
 * target/daemon: the destination daemon. Accepts connections until SIGTERM and
 * runs each migration in a child process of its own (a crash there
 * cannot take the daemon or other migrations with it), at most
 * --max-parallel at once. Connections not authenticated yet have a budget
 * of their own (--max-unauth, --max-unauth-per-host), separate from the
 * sessions': target/children.h.
 *
 * SIGTERM (or SIGINT): no new connections; the daemon closes the write
 * end of a pipe every session holds the read end of, which cancels the
 * session's next network read (tls_set_cancel_fd): a session before its
 * commit point rolls back (Error to the source, CRIU kills what it
 * restored), a committed one finishes (it reads nothing more). The
 * daemon exits when every session has. Sessions ignore SIGTERM and
 * SIGINT themselves; a session dies with the daemon (PDEATHSIG) until
 * it commits. Each child leads its own process group: when a session is
 * killed, the daemon waits for what is left of the group (its CRIU)
 * before it removes the session's directory (target/children.h).
 */
#define LOG_PREFIX "serve: "
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "target/children.h"
#include "target/serve.h"
#include "target/target.h"
#include "proto/tls.h"

#define OUTCOME_TTL_S (15 * 60)

static volatile sig_atomic_t stopping;

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
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
		if (de->d_name[0] != '.' && stat(path, &st) == 0 &&
		    now - st.st_mtime > OUTCOME_TTL_S)
			unlink(path);
	}
	if (d)
		closedir(d);
}

static void setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void shut_down(struct kids *k, const char *workdir)
{
	struct timespec ts = { 0, 100000000 };

	pr_info("shutting down: no new migrations; %u running: those not committed yet roll back",
		k->nr);
	kids_close_gates(k);
	close(k->stop_wr);
	while (k->len > 0) {
		kids_reap(workdir, k);
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
	if (kids_init(&k, o) < 0) {
		kids_fini(&k);
		return -ENOMEM;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		r = -errno;
		pr_perror("pipe");
		kids_fini(&k);
		return r;
	}
	k.stop_rd = p[0];
	k.stop_wr = p[1];
	setup_signals();
	pr_info("listening on %s, work directory %s", o->listen, o->workdir);
	while (!stopping) {
		kids_reap(o->workdir, &k);
		if (kids_poll(&k, o, lfd, 500) > 0)
			kids_accept(lfd, o, &k);
	}
	close(TAKE_FD(lfd));
	shut_down(&k, o->workdir);
	kids_fini(&k);
	pr_info("stopped");
	return 0;
}
