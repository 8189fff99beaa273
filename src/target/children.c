/* SPDX-License-Identifier: MIT */
/*
 * children: the daemon's children (see children.h).
 */
#define LOG_PREFIX "serve: "
#include "target/children.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "engine/session.h"
#include "target/gate.h"
#include "target/target.h"
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

int kids_init(struct kids *k, const struct serve_opts *o)
{
	k->cap = o->max_parallel + o->max_unauth + BUSY_MAX;
	k->tab = calloc(k->cap, sizeof(*k->tab));
	k->pfd = calloc(k->cap + 1, sizeof(*k->pfd));
	return k->tab && k->pfd ? 0 : -ENOMEM;
}

void kids_fini(struct kids *k)
{
	free(k->tab);
	free(k->pfd);
	k->tab = NULL;
	k->pfd = NULL;
}

static void addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
	memset(key, 0, 16);
	if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else if (ss->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
}

static const char *addr_str(const uint8_t key[16], char *buf, size_t len)
{
	static const uint8_t v4[12] = { [10] = 0xff, [11] = 0xff };

	if (!memcmp(key, v4, 12))
		return inet_ntop(AF_INET, key + 12, buf, len);
	return inet_ntop(AF_INET6, key, buf, len);
}

/* Closed unread: say so, but at most once a second under a flood. */
static void closed_unread(struct kids *k, const char *why, const uint8_t addr[16])
{
	char a[INET6_ADDRSTRLEN] = "?";
	uint64_t now = now_ms();

	if (now - k->warned_ms < 1000) {
		k->unwarned++;
		return;
	}
	addr_str(addr, a, sizeof(a));
	pr_warn("closed a connection from %s unread: %s%s", a, why,
		k->unwarned ? " (and more since the last such line)" : "");
	k->warned_ms = now;
	k->unwarned = 0;
}

static bool may_handshake(struct kids *k, const struct serve_opts *o, const uint8_t addr[16])
{
	unsigned int same = 0;

	if (k->nr_handshake >= o->max_unauth || k->len >= k->cap) {
		closed_unread(k, "too many unauthenticated connections (--max-unauth)", addr);
		return false;
	}
	for (size_t i = 0; i < k->len; i++)
		same += k->tab[i].state == KID_HANDSHAKE && !memcmp(k->tab[i].addr, addr, 16);
	if (same >= o->max_unauth_per_host) {
		closed_unread(k,
			      "too many unauthenticated connections from this address "
			      "(--max-unauth-per-host)",
			      addr);
		return false;
	}
	return true;
}

static void spawn(int fd, const struct serve_opts *o, int lfd, struct kids *k,
		  const uint8_t addr[16])
{
	int sp[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		pr_perror("socketpair");
		return;
	}
	pid = fork();
	if (pid < 0) {
		pr_perror("fork");
		close(sp[0]);
		close(sp[1]);
		return;
	}
	if (pid == 0) {
		child_init(k, lfd, "phaul-session");
		for (size_t i = 0; i < k->len; i++)
			if (k->tab[i].gate >= 0)
				close(k->tab[i].gate);
		close(sp[0]);
		gate_set_child_fd(sp[1]);
		_exit(target_session(fd, o));
	}
	close(sp[1]);
	k->tab[k->len++] = (struct kid){ .pid = pid, .gate = sp[0], .state = KID_HANDSHAKE };
	memcpy(k->tab[k->len - 1].addr, addr, 16);
	k->nr_handshake++;
}

void kids_accept(int lfd, const struct serve_opts *o, struct kids *k)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	uint8_t addr[16];
	int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EINTR && errno != EAGAIN)
			pr_perror("accept");
		return;
	}
	kids_reap(o->workdir, k); /* a child that just ended frees its place */
	addr_key(&ss, addr);
	if (may_handshake(k, o, addr))
		spawn(fd, o, lfd, k, addr);
	close(fd);
}

static unsigned int nr_busy(const struct kids *k)
{
	unsigned int n = 0;

	for (size_t i = 0; i < k->len; i++)
		n += k->tab[i].state == KID_BUSY;
	return n;
}

/* A child authenticated (or died trying): a slot, a busy answer, or none. */
static void answer_gate(struct kids *k, const struct serve_opts *o, struct kid *c)
{
	char ask, verdict;
	ssize_t n = recv(c->gate, &ask, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n == 1 && ask == 'A') {
		k->nr_handshake--;
		if (k->nr < o->max_parallel) {
			c->state = KID_SESSION;
			k->nr++;
			verdict = 'G';
		} else {
			verdict = nr_busy(k) < BUSY_MAX ? 'B' : 'X';
			c->state = KID_BUSY;
			pr_warn("refusing a connection: %u migrations already running%s", k->nr,
				verdict == 'X' ? " (closed unanswered: too many refusals at once)" :
						 "");
		}
		if (send(c->gate, &verdict, 1, MSG_NOSIGNAL) != 1)
			pr_warn("session process %d did not get its answer", c->pid);
	}
	/* one question per child; its end (EOF) or its answer closes it */
	close(c->gate);
	c->gate = -1;
}

int kids_poll(struct kids *k, const struct serve_opts *o, int lfd, int ms)
{
	size_t n = 0;
	int r;

	k->pfd[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	for (size_t i = 0; i < k->len; i++)
		if (k->tab[i].gate >= 0)
			k->pfd[n++] = (struct pollfd){ .fd = k->tab[i].gate, .events = POLLIN };
	r = poll(k->pfd, n, ms);
	if (r <= 0)
		return 0;
	/* a session that just ended frees its slot before anyone asks; the
	 * table may shrink, the pollfds keep the gates to answer */
	if (n > 1)
		kids_reap(o->workdir, k);
	for (size_t j = 1; j < n; j++) {
		if (!k->pfd[j].revents)
			continue;
		for (size_t i = 0; i < k->len; i++)
			if (k->tab[i].gate == k->pfd[j].fd)
				answer_gate(k, o, &k->tab[i]);
	}
	return lfd >= 0 && (k->pfd[0].revents & POLLIN);
}

void kids_close_gates(struct kids *k)
{
	for (size_t i = 0; i < k->len; i++)
		if (k->tab[i].gate >= 0) {
			close(k->tab[i].gate);
			k->tab[i].gate = -1;
		}
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

/* The child @pid ended: forget it; whether it was a session. */
static bool forget(struct kids *k, pid_t pid)
{
	for (size_t i = 0; i < k->len; i++) {
		struct kid *c = &k->tab[i];
		bool session = c->state == KID_SESSION;
		if (c->pid != pid)
			continue;
		if (c->gate >= 0)
			close(c->gate);
		if (c->state == KID_HANDSHAKE)
			k->nr_handshake--;
		if (session && k->nr)
			k->nr--;
		*c = k->tab[--k->len];
		return session;
	}
	return false;
}

void kids_reap(const char *workdir, struct kids *k)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (!forget(k, pid))
			continue;
		if (WIFSIGNALED(status)) {
			pr_warn("session process %d killed by signal %d", pid, WTERMSIG(status));
			remove_session_of(workdir, pid);
		}
	}
}
