/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "ssh: "
#include "proto/sshchan.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/spawn.h"
#include "common/util.h"

#define SSH_MAX_ARGS 32
#define SSH_REAP_MS 2000

bool ssh_is_url(const char *to)
{
	return to && !strncmp(to, SSH_URL_PREFIX, strlen(SSH_URL_PREFIX));
}

static bool name_ok(const char *s, size_t n, bool v6)
{
	if (n == 0 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
		    c != '.' && c != '_' && c != '-' && !(v6 && c == ':'))
			return false;
	}
	return true;
}

static int copy_part(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		return -EINVAL;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return 0;
}

static int parse_port(const char *s, struct ssh_dest *d)
{
	uint64_t v;

	if (parse_u64(s, 1, 65535, &v) < 0)
		return -EINVAL;
	snprintf(d->port, sizeof(d->port), "%u", (unsigned int)v);
	return 0;
}

int ssh_url_parse(const char *url, struct ssh_dest *d)
{
	const char *p, *at, *end;
	size_t n;

	memset(d, 0, sizeof(*d));
	if (!ssh_is_url(url))
		return -EINVAL;
	p = url + strlen(SSH_URL_PREFIX);
	at = strchr(p, '@');
	if (at) {
		if (!name_ok(p, at - p, false) || copy_part(d->user, sizeof(d->user), p, at - p))
			return -EINVAL;
		p = at + 1;
	}
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end || !name_ok(p + 1, end - p - 1, true) ||
		    copy_part(d->host, sizeof(d->host), p + 1, end - p - 1))
			return -EINVAL;
		p = end + 1;
		if (*p == '\0')
			return 0;
		return *p == ':' ? parse_port(p + 1, d) : -EINVAL;
	}
	end = strchr(p, ':');
	n = end ? (size_t)(end - p) : strlen(p);
	if (!name_ok(p, n, false) || copy_part(d->host, sizeof(d->host), p, n))
		return -EINVAL;
	return end ? parse_port(end + 1, d) : 0;
}

/* The channel: a socketpair end whose peer is ssh's stdin and stdout. */
struct ssh_priv {
	struct conn *sock;
	pid_t pid;
	int status; /* ssh's exit status once reaped, else -1 */
};

/* Reap ssh within @timeout_ms; its status, or -1 while it runs. */
static int reap(struct ssh_priv *s, int timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct timespec ts = { 0, 20000000 };
	int st;

	while (s->status < 0 && s->pid > 0) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);
		if (r == s->pid)
			s->status = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
		else if (r < 0 && errno != EINTR)
			break;
		else if (now_ms() >= deadline)
			break;
		else
			nanosleep(&ts, NULL);
	}
	return s->status;
}

static ssize_t ssh_read(void *priv, void *buf, size_t len)
{
	struct conn *c = ((struct ssh_priv *)priv)->sock;

	return c->ops->read(c->priv, buf, len);
}

static ssize_t ssh_write(void *priv, const void *buf, size_t len)
{
	struct conn *c = ((struct ssh_priv *)priv)->sock;

	return c->ops->write(c->priv, buf, len);
}

static int ssh_set_timeout(void *priv, int timeout_ms)
{
	return conn_set_timeout(((struct ssh_priv *)priv)->sock, timeout_ms);
}

static int ssh_poll_fd(void *priv, bool *buffered)
{
	return conn_poll_fd(((struct ssh_priv *)priv)->sock, buffered);
}

/* A broken link is a dead ssh: kill it, the peer sees its channel close. */
static void ssh_abort(void *priv)
{
	struct ssh_priv *s = priv;

	conn_abort(s->sock);
	if (s->status < 0)
		kill(s->pid, SIGKILL);
}

static void ssh_close(void *priv)
{
	struct ssh_priv *s = priv;

	conn_free(s->sock); /* ssh sees end of file and leaves */
	if (reap(s, SSH_REAP_MS) < 0) {
		kill(s->pid, SIGKILL);
		reap(s, SSH_REAP_MS);
	}
	free(s);
}

static const struct conn_ops ssh_ops = {
	.read = ssh_read,
	.write = ssh_write,
	.set_timeout = ssh_set_timeout,
	.close = ssh_close,
	.poll_fd = ssh_poll_fd,
	.abort = ssh_abort,
};

/* ssh [options] -o BatchMode=yes [-l USER] [-p PORT] -- HOST REMOTE */
static int build_argv(char *cmd, const struct ssh_dest *d, const char *remote, char **av)
{
	size_t n = 0;

	for (char *save = NULL, *w = strtok_r(cmd, " \t", &save); w;
	     w = strtok_r(NULL, " \t", &save)) {
		if (n >= SSH_MAX_ARGS - 10)
			return -E2BIG;
		av[n++] = w;
	}
	if (n == 0)
		return -EINVAL;
	av[n++] = "-o";
	av[n++] = "BatchMode=yes";
	if (d->user[0]) {
		av[n++] = "-l";
		av[n++] = (char *)d->user;
	}
	if (d->port[0]) {
		av[n++] = "-p";
		av[n++] = (char *)d->port;
	}
	av[n++] = "--";
	av[n++] = (char *)d->host;
	av[n++] = (char *)remote;
	av[n] = NULL;
	return 0;
}

/* Whether @cmd runs here: a path, or a name on $PATH (an ssh that is not
 * there would exit 127 like a missing remote phaul, and be blamed on it). */
static bool runnable(const char *cmd)
{
	_cleanup_free_ char *path = NULL;
	char file[4096];

	if (strchr(cmd, '/'))
		return access(cmd, X_OK) == 0;
	path = strdup(getenv("PATH") ?: "/usr/local/bin:/usr/bin:/bin");
	for (char *save = NULL, *dir = path ? strtok_r(path, ":", &save) : NULL; dir;
	     dir = strtok_r(NULL, ":", &save)) {
		snprintf(file, sizeof(file), "%s/%s", dir, cmd);
		if (access(file, X_OK) == 0)
			return true;
	}
	return false;
}

int ssh_dial(const struct ssh_dest *d, const char *ssh_cmd, const char *remote, struct conn **ret)
{
	_cleanup_free_ char *cmd = strdup(ssh_cmd && *ssh_cmd ? ssh_cmd : SSH_DEFAULT_CMD);
	char *av[SSH_MAX_ARGS];
	struct ssh_priv *s;
	int sp[2], r;
	pid_t pid;

	if (!cmd)
		return -ENOMEM;
	r = build_argv(cmd, d, remote && *remote ? remote : SSH_DEFAULT_REMOTE, av);
	if (r < 0) {
		pr_err("bad ssh command \"%s\": %s", ssh_cmd, strerror(-r));
		return r;
	}
	if (!runnable(av[0])) {
		pr_err("cannot run %s here: install OpenSSH's client, or give --ssh-cmd", av[0]);
		return -ENOENT;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		r = -errno;
		pr_perror("socketpair");
		return r;
	}
	r = spawn(av, sp[1], sp[1], -1, &pid);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		return r;
	}
	pr_debug("started %s for %s (pid %d)", av[0], d->host, pid);
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(sp[0]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -ENOMEM;
	}
	s->pid = pid;
	s->status = -1;
	r = conn_from_fd(sp[0], &s->sock);
	if (r < 0) {
		s->sock = NULL;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		free(s);
		return r;
	}
	return conn_new(&ssh_ops, s, ret);
}

const char *ssh_status_text(int status)
{
	switch (status) {
	case 127: return "no phaul on the far side (the remote command was not found)";
	case 126: return "the remote phaul cannot be run (not executable)";
	case 255: return "ssh could not connect or log in (its message is above)";
	default: return "the remote command ended before it answered";
	}
}

int ssh_await(struct conn *c, int timeout_ms, char *why, size_t len)
{
	struct ssh_priv *s = c->priv;
	bool buffered;
	struct pollfd pfd;
	char b;
	int r;

	if (c->ops != &ssh_ops)
		return 0;
	pfd.fd = conn_poll_fd(c, &buffered);
	pfd.events = POLLIN;
	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		snprintf(why, len, "no answer from ssh within %d s", timeout_ms / 1000);
		return -ETIMEDOUT;
	}
	if (r > 0 && recv(pfd.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 1)
		return 0;
	r = reap(s, SSH_REAP_MS);
	if (r < 0)
		snprintf(why, len, "the ssh channel closed before the destination answered");
	else
		snprintf(why, len, "%s: ssh exited with status %d", ssh_status_text(r), r);
	return r == 127 ? -ENOEXEC : r == 255 ? -EHOSTUNREACH : -EPIPE;
}
