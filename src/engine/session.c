/* SPDX-License-Identifier: MIT */
#define LOG_PREFIX "engine: "
#include "engine/session.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "common/log.h"
#include "common/proc.h"
#include "common/util.h"
#include "criu/criu.h"
#include "proto/wire.h"

/* The inode of this process's PID namespace (0 if unknown). */
static unsigned long long pidns_ino(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

void session_hex(const uint8_t id[PHAUL_SESSION_ID_LEN], char *buf)
{
	for (int i = 0; i < PHAUL_SESSION_ID_LEN; i++)
		sprintf(buf + 2 * i, "%02x", id[i]);
}

int expect_msg(struct migration *m, int want, Msg **ret)
{
	Msg *msg = NULL;
	int r = msg_recv(m->conn, &msg);

	/* post-copy: page requests may come at any time; answer them first */
	while (r == 0 && m->on_page_req && msg->body_case == PHAUL__MSG__BODY_PAGE_REQ) {
		r = m->on_page_req(m, msg->page_req);
		msg_free(msg);
		msg = NULL;
		if (r == 0)
			r = msg_recv(m->conn, &msg);
		else if (m->error[0])
			return r;
	}
	if (r == -EPIPE || r == -ECONNRESET)
		return mig_fail(m, r, "the peer closed the connection");
	if (r == -ETIMEDOUT)
		return mig_fail(m, r, "timed out waiting for %s", msg_name(want));
	if (r < 0)
		return mig_fail(m, r, "waiting for %s: %s", msg_name(want), strerror(-r));
	if ((int)msg->body_case == want) {
		*ret = msg;
		return 0;
	}
	m->peer_said = true;
	if (msg->body_case == PHAUL__MSG__BODY_ERROR) {
		Phaul__Error *e = msg->error;
		r = mig_fail(m, -(int)e->code, "peer: %s%s%s", e->step ? e->step : "",
			     e->step ? ": " : "", e->message);
	} else if (msg->body_case == PHAUL__MSG__BODY_ABORT) {
		r = mig_fail(m, -ECANCELED, "peer aborted: %s", msg->abort->reason);
	} else {
		r = mig_fail(m, -EPROTO, "protocol error: got %s, expected %s",
			     msg_name(msg->body_case), msg_name(want));
	}
	msg_free(msg);
	return r;
}

int session_mkdirs(struct migration *m, const char *workdir, const char *prefix)
{
	char hex[2 * PHAUL_SESSION_ID_LEN + 1];
	char path[4096];
	int r;

	session_hex(m->session_id, hex);
	r = mkdir_p(workdir, 0700);
	if (r < 0)
		return mig_fail(m, r, "cannot create work directory %s: %s", workdir, strerror(-r));
	if (asprintf(&m->dir, "%s/%s%s", workdir, prefix, hex) < 0)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/img", m->dir);
	if (mkdir(m->dir, 0700) < 0 || mkdir(path, 0700) < 0)
		return mig_fail(m, -errno, "cannot create %s: %m", path);
	m->imgfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (m->imgfd < 0)
		return mig_fail(m, -errno, "cannot open %s: %m", path);
	return 0;
}

/* The owner file of this process's session, locked for its lifetime. */
static int owner_fd = -1;

/*
 * The owner file is locked before it takes its name: a sweep by another
 * phaul finds either no owner (a young directory: kept) or a locked one,
 * never an unlocked one that looks left by the dead.
 */
int session_write_owner(struct migration *m)
{
	char path[4200], tmp[4200], text[48];
	_cleanup_close_ int fd = -1;
	int n = snprintf(text, sizeof(text), "%d %llu\n", getpid(), pidns_ino());

	snprintf(path, sizeof(path), "%s/owner", m->dir);
	snprintf(tmp, sizeof(tmp), "%s/owner.tmp", m->dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || write_full(fd, text, n) < 0 ||
	    rename(tmp, path) < 0)
		return mig_fail(m, -EIO, "cannot write %s: %m", path);
	/* held while we live: a PID says nothing from another PID namespace */
	if (owner_fd >= 0)
		close(owner_fd);
	owner_fd = TAKE_FD(fd);
	return 0;
}

void session_rmdirs(struct migration *m)
{
	char path[4200];
	bool keep;

	if (!m->dir)
		return;
	if (m->imgfd >= 0)
		close(m->imgfd);
	m->imgfd = -1;
	keep = getenv("PHAUL_KEEP_WORKDIR") && *getenv("PHAUL_KEEP_WORKDIR"); /* debugging */
	/* unlocked and still named, it would look left by the dead to a sweep */
	snprintf(path, sizeof(path), "%s/owner", m->dir);
	if (!keep)
		unlink(path);
	if (owner_fd >= 0)
		close(owner_fd);
	owner_fd = -1;
	if (keep) {
		pr_warn("PHAUL_KEEP_WORKDIR: keeping %s", m->dir);
		return;
	}
	if (rm_rf(m->dir) < 0)
		pr_warn("could not remove %s completely", m->dir);
}

void session_log_criu_errors(struct migration *m, const char *log, int max)
{
	char path[4096];
	_cleanup_free_ char *text = NULL;
	char *save = NULL;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", m->dir, log);
	if (read_file(path, 1 << 20, &text, NULL) < 0)
		return;
	for (char *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
		if (!strstr(l, "Error") && !strstr(l, "error"))
			continue;
		pr_err("CRIU %s: %s", log, l);
		n++;
	}
}

/* Remove the oldest *.log files of @dir until @keep remain. */
static void prune_logs(int dfd, unsigned int keep)
{
	_cleanup_close_ int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	unsigned int n = 0;
	struct stat st;
	time_t oldest;
	char name[256];

	if (!d)
		return;
	fd = -1; /* the DIR owns it */
	for (;;) {
		n = 0;
		oldest = 0;
		name[0] = '\0';
		rewinddir(d);
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 5 || strcmp(de->d_name + l - 4, ".log") ||
			    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;
			n++;
			if (!name[0] || st.st_mtime < oldest) {
				oldest = st.st_mtime;
				snprintf(name, sizeof(name), "%s", de->d_name);
			}
		}
		if (n <= keep || !name[0] || unlinkat(dfd, name, 0) < 0)
			break;
	}
	closedir(d);
}

int session_keep_log(const char *src, const char *dir, const char *name, unsigned int keep)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int dfd = -1, out = -1;
	char buf[65536];
	ssize_t n;
	int r;

	if (in < 0)
		return -errno;
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	out = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return -errno;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if ((r = write_full(out, buf, n)) < 0)
			return r;
	if (n < 0)
		return -errno;
	prune_logs(dfd, keep);
	return 0;
}

int session_criu_failed(struct migration *m, const char *log, const char *what)
{
	char path[4200], kept[4200], cause[256], hex[2 * PHAUL_SESSION_ID_LEN + 1];
	const char *base = strrchr(log, '/') ? strrchr(log, '/') + 1 : log;
	int r = -ENOENT;

	snprintf(path, sizeof(path), "%s/%s", m->dir, log);
	criu_log_error(path, cause, sizeof(cause));
	session_hex(m->session_id, hex);
	snprintf(kept, sizeof(kept), "%s/%s-%s", m->logdir ? m->logdir : "", hex, base);
	if (m->logdir)
		r = session_keep_log(path, m->logdir, kept + strlen(m->logdir) + 1,
				     SESSION_LOGS_KEEP);
	if (r < 0) {
		pr_warn("cannot keep CRIU's log %s in %s: %s", path, m->logdir ?: "-",
			strerror(-r));
		return mig_fail(m, -EIO, "%s: %s (CRIU's log was not kept)", what, cause);
	}
	return mig_fail(m, -EIO, "%s: %s (CRIU's log: %s on the %s)", what, cause, kept,
			m->source ? "source" : "destination");
}

static int outcome_path(const char *workdir, const char *hex, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/outcomes/%s", workdir, hex);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int outcome_write(const char *workdir, const char *hex, const char *state, int pid)
{
	char path[4096], tmp[4200], text[80];
	_cleanup_close_ int fd = -1;
	uint64_t start;
	int r, n;

	r = outcome_path(workdir, hex, path, sizeof(path));
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s/outcomes", workdir);
	mkdir_p(tmp, 0700);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* with its start time, a PID reused later is not taken for it */
	if (pid <= 0 || proc_start_time(pid, &start) < 0)
		start = 0;
	n = snprintf(text, sizeof(text), "%s %d %" PRIu64 "\n", state, pid, start);
	/*
	 * No fsync: the record must outlive this process (a crash, a daemon
	 * restart), which the page cache guarantees; and on the frozen path an
	 * fsync on ext4 (data=ordered) waits for the page store's gigabytes
	 * to reach the disk (measured: 600 ms of frozen time for 1 GiB).
	 */
	r = write_full(fd, text, n);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		pr_err("cannot record outcome %s of session %s: %s", state, hex, strerror(-r));
		unlink(tmp);
	}
	return r;
}

int outcome_read(const char *workdir, const char *hex, char *state, size_t len, int *pid,
		 uint64_t *start)
{
	char path[4096];
	_cleanup_free_ char *text = NULL;
	unsigned long long st = 0;
	size_t n;
	int r;

	r = outcome_path(workdir, hex, path, sizeof(path));
	if (r < 0)
		return r;
	r = read_file(path, 128, &text, NULL);
	if (r < 0)
		return r;
	n = strcspn(text, " \n");
	if (n == 0 || n >= len)
		return -EINVAL;
	memcpy(state, text, n);
	state[n] = '\0';
	*pid = 0;
	if (text[n] == ' ' && sscanf(text + n + 1, "%d %llu", pid, &st) < 1)
		*pid = 0;
	*start = st;
	return 0;
}

bool outcome_pid_alive(int pid, uint64_t start)
{
	uint64_t now;

	if (pid <= 0 || kill(pid, 0) < 0)
		return false;
	/* a record without a start time (older phaul): the PID alone */
	return start == 0 || (proc_start_time(pid, &now) == 0 && now == start);
}

void outcome_remove(const char *workdir, const char *hex)
{
	char path[4096];

	if (outcome_path(workdir, hex, path, sizeof(path)) == 0)
		unlink(path);
}

/*
 * Whether the process that owns @dir still runs: it holds a lock on its
 * "owner" file ("PID PIDNS"; the PID alone would not tell from another
 * PID namespace: two test hosts, or containers, sharing a work directory).
 */
static bool owner_alive(const char *dir)
{
	char path[4200];
	_cleanup_close_ int fd = -1;
	struct stat st;

	snprintf(path, sizeof(path), "%s/owner", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) /* no owner yet: just created, or its owner died at once */
		return stat(dir, &st) == 0 && time(NULL) - st.st_mtime < 60;
	return flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
}

void session_sweep(const char *workdir, const char *prefix)
{
	char path[4096];
	DIR *d = opendir(workdir);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", workdir, de->d_name);
		if (owner_alive(path))
			continue;
		pr_warn("removing %s, left by a process that died", path);
		rm_rf(path);
	}
	if (d)
		closedir(d);
}

void session_drain(struct conn *c, unsigned int max_ms)
{
	_cleanup_free_ uint8_t *buf = malloc(FRAME_DATA_MAX);
	uint64_t end = now_ms() + max_ms;
	enum frame_type type;
	uint32_t len;

	if (!buf)
		return;
	conn_set_timeout(c, 200);
	while (now_ms() < end && frame_recv(c, &type, buf, FRAME_DATA_MAX, &len) == 0)
		;
}

void session_peer_reason(struct migration *m, unsigned int max_ms)
{
	uint64_t end = now_ms() + max_ms;

	if (!m->conn || m->peer_said)
		return;
	conn_set_timeout(m->conn, max_ms);
	while (now_ms() < end) {
		Msg *msg = NULL;
		if (msg_recv(m->conn, &msg) < 0)
			return;
		if (msg->body_case == PHAUL__MSG__BODY_ERROR) {
			snprintf(m->error, sizeof(m->error), "%s failed: destination: %s%s%s",
				 m->step ? m->step : "migration",
				 msg->error->step ? msg->error->step : "",
				 msg->error->step ? ": " : "", msg->error->message);
			m->peer_said = true;
			msg_free(msg);
			return;
		}
		msg_free(msg);
	}
}
