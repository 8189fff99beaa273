/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "control: "
#include "engine/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "proto/tls.h"

static struct {
	pthread_mutex_t lock;
	bool cancelled, committed;
	int pipe[2]; /* the TLS reads' cancel fd: written at a cancel */
	int forward; /* the daemon's stop fd, passed on to pipe[1] */
	int stop[2]; /* ends the thread */
	int lfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct events *ev;
	pthread_t thread;
	bool running;
} ctl = { .lock = PTHREAD_MUTEX_INITIALIZER,
	  .pipe = { -1, -1 },
	  .forward = -1,
	  .stop = { -1, -1 },
	  .lfd = -1 };

static bool is_hex_id(const char *s)
{
	if (strlen(s) != CONTROL_ID_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

/* The fields of a parsed request object: exactly those of its op. */
static int parse_obj(json_object *o, struct control_req *rq)
{
	json_object *v, *op, *id;
	const char *name;

	if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "v", &v) ||
	    !json_object_is_type(v, json_type_int) || json_object_get_int64(v) != EVENTS_VERSION ||
	    !json_object_object_get_ex(o, "op", &op) || !json_object_is_type(op, json_type_string))
		return -EINVAL;
	memset(rq, 0, sizeof(*rq));
	name = json_object_get_string(op);
	if (!strcmp(name, "status")) {
		rq->op = CONTROL_STATUS;
		return json_object_object_length(o) == 2 ? 0 : -EINVAL;
	}
	if (strcmp(name, "cancel") || json_object_object_length(o) != 3 ||
	    !json_object_object_get_ex(o, "id", &id) ||
	    !json_object_is_type(id, json_type_string) || !is_hex_id(json_object_get_string(id)))
		return -EINVAL;
	rq->op = CONTROL_CANCEL;
	memcpy(rq->id, json_object_get_string(id), CONTROL_ID_LEN + 1);
	return 0;
}

int control_parse(const char *buf, size_t len, struct control_req *rq)
{
	json_tokener *tok;
	json_object *o;
	int r = -EINVAL;

	if (len > CONTROL_REQ_MAX)
		return -E2BIG;
	/* one line: the newline ends it, nothing may follow */
	if (len && buf[len - 1] == '\n')
		len--;
	if (!len || memchr(buf, '\n', len) || memchr(buf, '\0', len))
		return -EINVAL;
	/* depth 4: a request is one flat object */
	tok = json_tokener_new_ex(4);
	if (!tok)
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (o && json_tokener_get_parse_end(tok) == len)
		r = parse_obj(o, rq);
	json_object_put(o);
	json_tokener_free(tok);
	return r;
}

const char *control_dir(void)
{
	const char *d = getenv("PHAUL_CONTROL_DIR");

	return d && *d ? d : CONTROL_DIR;
}

/* lock-free: the page loops ask it for every run they send */
bool control_cancelled(void)
{
	return __atomic_load_n(&ctl.cancelled, __ATOMIC_ACQUIRE);
}

int control_commit(void)
{
	int r = 0;

	pthread_mutex_lock(&ctl.lock);
	if (ctl.cancelled)
		r = -ECANCELED;
	else
		ctl.committed = true;
	pthread_mutex_unlock(&ctl.lock);
	if (r == 0)
		events_committed(ctl.ev);
	return r;
}

static json_object *reply_new(bool ok, const char *error, const char *message)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "v", json_object_new_int(EVENTS_VERSION));
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	if (error)
		json_object_object_add(o, "error", json_object_new_string(error));
	if (message)
		json_object_object_add(o, "message", json_object_new_string(message));
	return o;
}

static json_object *cancel(const struct control_req *rq)
{
	json_object *st = events_status(ctl.ev), *id;
	bool ours = json_object_object_get_ex(st, "id", &id) && id &&
		    !strcmp(json_object_get_string(id), rq->id);
	json_object *o;

	json_object_put(st);
	if (!ours)
		return reply_new(false, "unknown", "no such migration here");
	pthread_mutex_lock(&ctl.lock);
	if (ctl.committed) {
		o = reply_new(false, "committed",
			      "the migration has committed: it completes on the destination");
	} else {
		if (!ctl.cancelled && ctl.pipe[1] >= 0 && write(ctl.pipe[1], "c", 1) < 0)
			pr_warn("cannot wake the migration: %m");
		__atomic_store_n(&ctl.cancelled, true, __ATOMIC_RELEASE);
		o = reply_new(true, NULL, "cancelled: rolling back");
	}
	pthread_mutex_unlock(&ctl.lock);
	if (json_object_get_boolean(json_object_object_get(o, "ok")))
		pr_warn("session %s: " CONTROL_CANCELLED, rq->id);
	return o;
}

/* One connection: one request, one answer. */
static void serve_one(int fd)
{
	struct timeval tv = { 1, 0 };
	char buf[CONTROL_REQ_MAX + 1];
	size_t len = 0;
	struct control_req rq;
	json_object *o;
	ssize_t n;
	int r;

	if (!sock_peer_is_root(fd)) {
		pr_warn("refused a control request from a process not run by root");
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (len < sizeof(buf) && !memchr(buf, '\n', len)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	r = control_parse(buf, len, &rq);
	if (r < 0)
		o = reply_new(false, "bad-request",
			      r == -E2BIG ? "request too long" : "not a valid request");
	else if (rq.op == CONTROL_STATUS)
		o = events_status(ctl.ev);
	else
		o = cancel(&rq);
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (write_full(fd, s, strlen(s)) == 0)
		write_full(fd, "\n", 1);
	json_object_put(o);
}

static void *control_main(void *arg)
{
	for (;;) {
		struct pollfd p[3] = { { .fd = ctl.stop[0], .events = POLLIN },
				       { .fd = ctl.lfd, .events = POLLIN },
				       { .fd = ctl.forward, .events = POLLIN } };
		int fd;

		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_perror("poll");
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		if (p[2].revents) {
			/* the daemon shuts down: as tls_set_cancel_fd() says */
			ctl.forward = -1;
			if (write(ctl.pipe[1], "s", 1) < 0)
				pr_warn("cannot pass on the daemon's shutdown: %m");
		}
		if (!p[1].revents)
			continue;
		fd = accept4(ctl.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(fd);
		close(fd);
	}
}

static int listen_at(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint32_t rnd = 0;
	struct stat st;
	int r = mkdir_p(dir, 0700);

	if (r < 0)
		return r;
	/* root's directory, nobody else's: it holds the only door in */
	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & 077))
		return -EPERM;
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (uint32_t)now_us();
	if ((size_t)snprintf(ctl.path, sizeof(ctl.path), "%s/%d-%08x.sock", dir, (int)getpid(),
			     rnd) >= sizeof(ctl.path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, ctl.path, sizeof(ctl.path));
	ctl.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl.lfd < 0)
		return -errno;
	if (bind(ctl.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ctl.path[0] = '\0';
		return -errno;
	}
	return listen(ctl.lfd, 8) < 0 ? -errno : 0;
}

int control_start(struct events *ev)
{
	int r;

	ctl.ev = ev;
	if (pipe2(ctl.pipe, O_CLOEXEC) < 0 || pipe2(ctl.stop, O_CLOEXEC) < 0) {
		r = -errno;
		pr_perror("pipe");
		return r;
	}
	r = listen_at(control_dir());
	if (r < 0) {
		pr_warn("no control socket in %s: %s", control_dir(), strerror(-r));
		return r;
	}
	ctl.forward = tls_get_cancel_fd();
	r = -pthread_create(&ctl.thread, NULL, control_main, NULL);
	if (r < 0) {
		pr_err("cannot start the control thread: %s", strerror(-r));
		return r;
	}
	ctl.running = true;
	tls_set_cancel_fd(ctl.pipe[0]);
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void control_stop(void)
{
	if (ctl.running) {
		if (write(ctl.stop[1], "x", 1) < 0)
			pr_warn("cannot stop the control thread: %m");
		pthread_join(ctl.thread, NULL);
		ctl.running = false;
	}
	if (ctl.path[0])
		unlink(ctl.path);
	ctl.path[0] = '\0';
	close_fd(&ctl.lfd);
	close_fd(&ctl.stop[0]);
	close_fd(&ctl.stop[1]);
	/* pipe[0] stays: it may still be the TLS cancel fd */
	close_fd(&ctl.pipe[1]);
	ctl.ev = NULL;
}

int control_call(const char *path, const char *req, char **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 5, 0 };
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	if (!sock_peer_is_root(fd))
		return -EPERM;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (write_full(fd, req, strlen(req)) < 0 || write_full(fd, "\n", 1) < 0)
		return -EIO;
	buf = malloc(CONTROL_REPLY_MAX + 1);
	if (!buf)
		return -ENOMEM;
	while (len < CONTROL_REPLY_MAX && (n = read(fd, buf + len, CONTROL_REPLY_MAX - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		len += n;
	}
	buf[len] = '\0';
	*reply = TAKE_PTR(buf);
	return len ? 0 : -EPROTO;
}
